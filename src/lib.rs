//! sessiongate: an edge gateway that owns user sessions in front of a web backend.
//!
//! # Map of the crate
//! - [`config`]: `application.yml` (Cloud Gateway shape) read and validated once.
//! - [`route`]: routes compiled from config; allocation-free matching per request.
//! - [`http`]: HTTP/1.1 on `httparse`, pure functions of bytes: [`http::head`] parses and
//!   judges a request head, [`http::response`] an upstream response head, [`http::body`]
//!   frames bodies (content-length, chunked re-framing), [`http::error`] the canned answers.
//! - [`proxy`]: the per-connection loop: read head, route, forward, stream bodies back.
//! - [`upstream`]: per-worker keep-alive pools of upstream connections, plain or TLS.
//! - [`tls`]: TLS termination: the server certificate (checked at start, reloaded on
//!   SIGHUP) and the handshake each TLS connection task runs before the proxy loop.
//! - [`audit`]: the audit trail (JSON lines): TLS connection sessions and HTTP sessions.
//! - [`worker`]: one thread per core, each a monoio runtime with its own listener.
//! - [`shutdown`]: the stop signal a worker's tasks wait on.
//! - [`logging`]: `logging.level.*` mapped onto our targets, written off the workers.
//! - [`server`]: start-up: bind listeners, spawn workers, handle signals.
//! - [`fuzzing`]: entry points shared by `fuzz/` targets and the corpus-replay tests.
//!
//! # One request's path
//! `worker` accepts (on the TLS listener `tls::serve` runs the handshake first) ->
//! `proxy::serve` reads into a reused buffer -> `http::head::parse_request`
//! (limits, RFC 9112 refusals) -> `route::Router::find` -> the upstream head is written by
//! `proxy` (filters, hop-by-hop removal, X-Forwarded-*) -> `upstream::Pool` lends a
//! connection -> the body is streamed by `http::body` -> the response head is checked by
//! `http::response` and streamed back -> the connection goes back to the pool.
// One `unsafe` block exists (adopting a handed-off socket, `proxy::ClientStream`); every
// other module stays free of it.
#![deny(unsafe_code)]

pub mod admin;
pub mod audit;
pub mod auth;
pub mod backchannel;
pub mod check;
pub mod client;
pub mod clock;
pub mod config;
pub mod dispatcher;
pub mod fuzzing;
pub mod http;
pub mod jwt;
pub mod logging;
pub mod messages;
pub mod metrics;
pub mod net;
pub mod oidc;
pub mod provider;
pub mod proxy;
pub mod route;
pub mod server;
pub mod session;
pub mod signal;
pub mod state;
pub mod tls;
pub mod upstream;
pub mod url;
pub mod worker;
