//! Black-box tests of the `sessiongate` binary.
//!
//! Each test starts the real gateway process (port 0 on 127.0.0.1) in front of fake backends
//! built on std networking, and speaks raw HTTP/1.1 to it, asserting bytes and status codes.
//! Nothing is shared between tests, so they run in parallel.
//!
//! Support: `wire` (HTTP/1.1 reading for both fakes), `backend` (recording upstream),
//! `client` (raw client), `harness` (gateway process, config, CLI), `redis_server` (a real
//! redis-server).
//! Scenarios: `proxy`, `hostile`, `hardening_http` (attacks on the HTTP layer), `websocket`, `large_body`, `access_log`, `shutdown`,
//! `config_check`, `check` (the report of `sessiongate check`), `reload` (SIGHUP), `tls` (termination, connection sessions, audit, https upstream),
//! `structured_logs` (JSON lines in Spring Boot's ECS and Logstash shapes),
//! `hardening_floods` (slow bodies, the connection cap, the management listener under a
//! trickling client, configurations that would run unauthenticated), `operators` (start-up
//! refusals an operator meets), `layering` (no import circle among the crate's modules).
#![deny(unsafe_code)]
// The rule against `std::sync::Mutex` is for the gateway's request path, not for test fakes.
#![allow(clippy::disallowed_types)]

mod backend;
mod client;
mod harness;
#[allow(dead_code)]
mod redis_server;
mod wire;

mod access_log;
mod check;
mod config_check;
mod hardening_floods;
mod hardening_http;
mod hostile;
mod large_body;
mod layering;
mod oidc;
mod operators;
mod proxy;
mod reload;
mod shutdown;
mod structured_logs;
mod tls;
mod websocket;
