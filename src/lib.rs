//! sessiongate: an edge gateway that owns user sessions in front of a web backend.
//!
//! # Map of the crate
//! Leaves (pure functions of bytes and `now`, no I/O):
//! - [`http`]: HTTP/1.1 on `httparse`: [`http::head`] parses and judges a request head,
//!   [`http::body`] frames bodies, [`http::response`] parses an upstream response head and
//!   writes the relayed one, [`http::forward`] writes the head sent upstream,
//!   [`http::reply`] the gateway's own answers, [`http::error`] the canned refusals,
//!   [`http::form`] query strings and form bodies.
//! - [`url`]: absolute http(s) URLs, split once.
//! - [`route`]: route predicates, filters and patterns (compiled at load), and the
//!   allocation-free matching per request.
//! - [`session`]: session ids, the per-worker table on a timer wheel, the `SESSION` cookie,
//!   pending logins, remembered provider logouts, the [`session::SessionStore`]
//!   boundary the gate uses, and sessions outside the process: sealed records and the
//!   restart snapshot file ([`session::snapshot`]).
//! - [`jwt`]: JWS verification with `ring`, JWKS, claims, the per-worker verdict cache.
//! - [`backchannel`]: logout tokens (OIDC Back-Channel Logout) and the `jti` replay guard.
//! - [`clock`]: the clock the gate is given (a manual one in tests), calendar arithmetic.
//! - [`signal`]: a one-shot signal for one worker's tasks.
//! - [`metrics`]: per-worker counters, gauges and latency histograms, rendered as Prometheus
//!   text.
//! - [`audit`]: the audit trail (JSON lines), with its own event types.
//! - [`pages`]: the gateway's own pages (error, signed out, banner), built in or the
//!   operator's templates.
//!
//! Configuration and start-up:
//! - [`config`]: `application.yml` (Cloud Gateway shape) read and validated once; every
//!   refusal names its key. [`check`]: the `check` command's report.
//! - [`logging`]: `logging.level.*` mapped onto our targets, plain text or JSON lines
//!   (`logging.structured.format.console`), written off the workers.
//! - [`server`]: start-up: bind listeners, spawn workers, the provider thread and the
//!   management listener; signals (stop, SIGHUP reload); the session snapshot read at
//!   start and written at stop.
//! - [`tls`]: the server certificate (checked at start, reloaded on SIGHUP) and the
//!   handshake.
//!
//! Connections and calls:
//! - [`net`]: client streams ([`net::inbound`]; TLS after the handshake on a stream of our
//!   own over rustls, [`net::tls_stream`]), the worker's pool of I/O buffers lent to
//!   connections only while an exchange is in flight ([`net::buffers`]), and the one
//!   connect/TLS/keep-alive layer under both upstream pools and the gateway's own calls
//!   ([`net::outbound`]).
//! - [`upstream`]: per-worker pools of upstream connections. [`client`]: outgoing calls
//!   read whole (provider, listeners). [`oidc`]: discovery, authorization URLs, token
//!   requests. [`provider`]: the thread that keeps the provider's metadata and keys.
//!   [`dispatcher`]: retried outgoing calls (logouts, fresh tokens, relays).
//! - [`redis`]: a Redis/Valkey client on the worker's own runtime (pipelined, reconnecting).
//!   [`store`]: the shared session store on it (`session-store: redis`): records, the
//!   scripts that decide ends and expiry once for the cluster, the ends stream.
//!
//! One worker per core:
//! - [`messages`]: everything threads tell each other (worker inboxes, peer questions, admin
//!   queries), so no module imports another's to talk.
//! - [`worker`]: a thread with its own monoio runtime, listeners and inbox.
//!   [`state`]: what the worker's connection tasks share.
//! - [`auth`]: the session gate: the per-request decision, login, refresh, logout, banner,
//!   WebSockets bound to sessions, peer questions, the admin view.
//! - [`proxy`]: the per-connection loop, one file per step.
//! - [`admin`]: the management listener (health, Prometheus, sessions admin API).
//! - [`fuzzing`]: entry points shared by `fuzz/` targets and the corpus-replay tests.
//!
//! # One request's path
//! `worker` accepts (on the TLS listener `tls::accept` runs the handshake first, audited by
//! `worker::connection`) -> `proxy::serve` waits for the first bytes with no buffer held,
//! then reads into one lent by `net::buffers` ->
//! `http::head::parse_request` (limits, RFC 9112 refusals) -> `route::Router::find` ->
//! `auth::Gate::decide`: the gateway's own endpoints are answered here; a SESSION cookie of
//! this worker is looked up in its `session::SessionStore` (with the shared store, a miss
//! is loaded from Redis; the access token refreshed at the provider when due), one of another worker's hands the connection over (or, on TLS,
//! asks the owner by message); an API client's Bearer JWT is verified; anything else gets a
//! login redirect or 401 -> for `Forward { bearer }`, `http::forward` writes the upstream
//! head (filters, hop-by-hop removal, `Authorization: Bearer`, SESSION stripped,
//! X-Forwarded-*) -> `upstream::Pools` lends a connection (a stale pooled one is replaced
//! once) -> the body is streamed by `http::body` -> the response head is checked by
//! `http::response` and streamed back -> the connection goes back to the pool.
// `unsafe` is allowed in two places, each block with its proof: adopting a handed-off
// socket (`net::inbound`), and the TLS stream's copies into and out of monoio's buffers
// (`net::tls_stream`); every other module stays free of it.
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
pub mod pages;
pub mod provider;
pub mod proxy;
pub mod redis;
pub mod route;
pub mod server;
pub mod session;
pub mod signal;
pub mod state;
pub mod store;
pub mod tls;
pub mod upstream;
pub mod url;
pub mod worker;
