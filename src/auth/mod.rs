//! The session gate: what happens to a request before it may go upstream.
//!
//! [`Gate::decide`] reads top to bottom in the order the decisions are made: the gateway's
//! own endpoints (the OIDC callback, `POST /logout`, banner acceptance), then the SESSION
//! cookie (handing the connection to the owner worker when the session lives elsewhere),
//! then an API client's own `Authorization: Bearer` JWT, and last the answer to a request
//! without a session: a login redirect for a browser navigation, 401 JSON for everything
//! else. It returns a [`Decision`]; the proxy writes the bytes.
//!
//! The rest of the stage, one idea a file: [`login`] (PKCE, pending logins, the callback),
//! [`refresh`] (a session's access token, refreshed before it expires), [`logout`] (every
//! way a session ends, through one bookkeeping path), [`calls`] (what is sent to the
//! backend and listeners when sessions end or stay in use), [`banner`], [`peer`] (requests
//! for another worker's session from a connection that cannot move), [`websockets`],
//! [`verify`] (JWTs against the provider's keys), [`admin`] (the management API's view) and
//! [`restore`] (sessions carried over a restart).
//!
//! One `Gate` per worker; everything in it is single-threaded (`RefCell`, `Rc`). Time comes
//! from the [`Clock`] it is given, so unit tests drive it by hand.

pub mod admin;
pub mod banner;
pub mod calls;
pub mod login;
pub mod logout;
mod origin;
pub mod peer;
pub mod refresh;
pub mod restore;
pub mod shared;
pub mod verify;
pub mod websockets;

#[cfg(test)]
mod tests;

use std::cell::RefCell;
use std::net::IpAddr;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use hashbrown::HashMap;
use ring::rand::SystemRandom;

use crate::backchannel::ReplayGuard;
use crate::client::HttpClient;
use crate::clock::Clock;
use crate::config::{Config, Registration};
use crate::dispatcher::{Dispatcher, RetryPolicy};
use crate::http::head::RequestHead;
use crate::http::name_is;
use crate::http::reply::Reply;
use crate::messages::{Inbox, Shared};
use crate::metrics::Metrics;
use crate::oidc::ProviderState;
use crate::pages::{Pages, SIGNED_OUT_PATH};
use crate::provider::RefreshRequester;
use crate::session::cookie::session_cookie;
use crate::session::pending::{self, PendingLogins};
use crate::session::table::{SessionTable, TableConfig};
use crate::session::tombstones::Tombstones;
use crate::session::{SessionId, SessionStore};
use crate::signal::Signal;

const LOG: &str = "sessiongate::session";
const CALLBACK_PREFIX: &[u8] = b"/login/oauth2/code/";
/// Pending logins per worker: kept ten minutes (a user at the login form); bounded in
/// number and bytes under a flood of unauthenticated navigations (about 24 MiB at most);
/// one client may hold 1/16 of the table.
const PENDING_LIMITS: pending::Limits = pending::Limits {
    ttl_ms: 600_000,
    max_entries: 50_000,
    max_bytes: 24 << 20,
    per_client: 50_000 / 16,
};
/// Dispatcher queue bound per worker (fresh-token calls beyond it are dropped, oldest first).
const DISPATCH_QUEUE: usize = 100_000;

/// Who sent a request, as the gate needs to know it.
#[derive(Debug, Clone, Copy)]
pub struct Client {
    /// The connection's peer address.
    pub peer: IpAddr,
    /// The connection speaks TLS.
    pub tls: bool,
    /// The connection can be handed to another worker (plain TCP). A TLS connection cannot;
    /// its requests reach another worker's session by message instead.
    pub movable: bool,
}

/// What the gate decided for one request.
pub enum Decision {
    /// Go upstream.
    Forward {
        /// The session's access token: sent upstream as `Authorization: Bearer` in place of
        /// the client's own, with the SESSION cookie stripped. `None`: the client's own
        /// verified Bearer token goes as it came.
        bearer: Option<Rc<str>>,
        /// The session, when it lives on this worker (WebSockets bind to it).
        session: Option<SessionId>,
    },
    /// Answer with this (the gateway's own endpoints, redirects, refusals).
    Reply(Reply),
    /// The session (or pending login) lives on another worker: move the connection there.
    HandOff(u8),
}

/// Settings read from the configuration once.
struct Settings {
    max_sessions: u64,
    secure_cookie: bool,
    leeway_secs: u64,
    post_logout: Option<String>,
    full_logout: bool,
    max_logout_age_secs: u64,
    banner: Option<Rc<str>>,
    keep_alive_after_disconnect: Option<Duration>,
    /// `sessiongate.api-audience`.
    api_audience: Option<String>,
    public_url: Option<crate::config::HttpUrl>,
    trusted_proxies: Vec<IpAddr>,
    /// `server.address`: a Host naming it names this gateway.
    listen: IpAddr,
    max_sessions_per_user: u64,
    /// `cg.freshTokenSendIntervalMs` (a round of fresh-token calls).
    fresh_every_ms: u64,
}

/// What a worker hands its gate besides the config.
pub struct GateDeps {
    pub shared: Arc<Shared>,
    pub refresher: RefreshRequester,
    pub tls_client: Arc<rustls::ClientConfig>,
    pub banner: Option<Rc<str>>,
    /// Every worker's inbox, indexed by worker id.
    pub peers: Vec<Inbox>,
    pub metrics: Arc<Metrics>,
    pub clock: Clock,
    /// `session-store: redis`: the worker's handles on the shared store.
    pub shared_store: Option<shared::SharedState>,
}

/// A worker's session state and OIDC client.
pub struct Gate {
    pub worker: u8,
    reg: Registration,
    settings: Settings,
    clock: Clock,
    keys: verify::Keys,
    store: RefCell<Box<dyn SessionStore>>,
    pending: RefCell<PendingLogins>,
    /// Recently ended provider sessions: a login that predates their logout cannot win.
    tombstones: RefCell<Tombstones>,
    /// Worker 0 only: `jti`s of accepted logout tokens.
    replay: RefCell<ReplayGuard>,
    /// Sessions whose refresh is in flight, and the signal that ends the others' wait.
    refreshing: RefCell<HashMap<SessionId, Signal>>,
    /// "refresh failed" repeats on every request while the provider is down.
    refresh_warnings: refresh::Throttle,
    websockets: websockets::WebSockets,
    calls: calls::Calls,
    /// The gateway's own pages.
    pages: Arc<Pages>,
    shared: Arc<Shared>,
    /// Every worker's inbox (back-channel logouts are admitted on worker 0, then fanned out).
    peers: Vec<Inbox>,
    metrics: Arc<Metrics>,
    rng: SystemRandom,
    /// The shared store (`session-store: redis`); `None`: sessions live here only.
    shared_store: Option<shared::SharedState>,
    /// The worker is draining: background loops finish what is queued and stop.
    shutdown_started: std::cell::Cell<bool>,
}

impl Gate {
    /// Builds the worker's gate when login is configured (`None`: proxy-only mode).
    pub fn new(config: &Config, worker: u8, deps: GateDeps) -> Option<Gate> {
        let reg = config.oauth2.registrations.first()?.clone();
        let (cg, g) = (&config.cg, &config.gateway);
        let table = SessionTable::new(TableConfig {
            idle_timeout_ms: cg.session_timeout.as_millis() as u64,
            max_lifetime_ms: g.session_max_lifetime.map(|d| d.as_millis() as u64),
            tick_ms: cg.session_check_interval.as_millis() as u64,
        });
        let client = Rc::new(HttpClient::new(
            deps.tls_client,
            g.upstream_connect_timeout,
            Duration::from_secs(10),
        ));
        let retry = RetryPolicy {
            max_retries: cg.max_retry_attempts,
            min_delay: cg.min_retry_delay,
        };
        let dispatcher =
            Dispatcher::new(client.clone(), retry, DISPATCH_QUEUE, deps.metrics.clone());
        Some(Gate {
            worker,
            settings: Settings {
                max_sessions: cg.max_sessions,
                secure_cookie: cg.use_secure_session_cookie,
                leeway_secs: g.jwt_clock_skew.as_secs(),
                post_logout: g.post_logout_redirect_uri.clone(),
                full_logout: cg.expired_session_full_logout,
                max_logout_age_secs: 300,
                banner: deps.banner,
                keep_alive_after_disconnect: g.keep_alive_after_disconnect,
                api_audience: g.api_audience.clone(),
                public_url: g.public_url.clone(),
                trusted_proxies: g.trusted_proxies.clone(),
                listen: config.server.address,
                max_sessions_per_user: g.max_sessions_per_user,
                fresh_every_ms: cg.fresh_token_send_interval.as_millis() as u64,
            },
            keys: verify::Keys::new(deps.refresher),
            store: RefCell::new(Box::new(table)),
            pending: RefCell::new(PendingLogins::new(PENDING_LIMITS)),
            tombstones: RefCell::new(Tombstones::default()),
            replay: RefCell::new(ReplayGuard::default()),
            refreshing: RefCell::new(HashMap::new()),
            refresh_warnings: refresh::Throttle::default(),
            websockets: websockets::WebSockets::default(),
            calls: calls::Calls::new(client, dispatcher, calls::Listeners::from_config(cg)),
            pages: g.pages.clone(),
            shared: deps.shared,
            peers: deps.peers,
            metrics: deps.metrics,
            rng: SystemRandom::new(),
            clock: deps.clock,
            shared_store: deps.shared_store,
            shutdown_started: std::cell::Cell::new(false),
            reg,
        })
    }

    /// Milliseconds on this worker's session clock.
    pub fn now_ms(&self) -> u64 {
        self.clock.now_ms()
    }

    /// The outgoing-call queue (the worker runs it and waits for it at shutdown).
    pub fn dispatcher(&self) -> &Rc<Dispatcher> {
        self.calls.dispatcher()
    }

    /// A configuration reload: new listener URLs for the calls made from now on.
    pub fn set_listeners(&self, l: calls::Listeners) {
        self.calls.set_listeners(l);
    }

    /// New provider metadata or keys from the provider thread.
    pub fn set_provider(&self, state: Arc<ProviderState>) {
        self.keys.set(state);
        self.shared.provider_ready.store(true, Ordering::Relaxed);
    }

    /// `sessiongate.keep-alive-after-disconnect-sec`.
    pub fn keep_alive_after_disconnect(&self) -> Option<Duration> {
        self.settings.keep_alive_after_disconnect
    }

    /// The worker drains: the shared store's loops finish their queues and stop.
    pub fn begin_shutdown(&self) {
        self.shutdown_started.set(true);
        if let Some(sh) = &self.shared_store {
            sh.close_when_idle();
        }
    }

    /// Decides what to do with a request.
    pub async fn decide(&self, head: &RequestHead, buf: &[u8], client: Client) -> Decision {
        let (path, method) = (head.path(buf), head.method(buf));
        if path.strip_prefix(CALLBACK_PREFIX) == Some(self.reg.id.as_bytes()) {
            return self.callback(head, buf, &client).await;
        }
        if path == b"/logout" && method == b"POST" {
            return self.logout(head, buf, &client).await;
        }
        if path == banner::ACCEPT_PATH && method == b"POST" {
            return self.accept_banner(head, buf, &client);
        }
        if path == SIGNED_OUT_PATH && (method == b"GET" || method == b"HEAD") {
            return Decision::Reply(self.pages.signed_out());
        }
        if let Some(id) = self.cookie_session(head, buf) {
            if head.websocket && !self.same_origin(head, buf, &client) {
                // A page elsewhere opening a socket with the user's cookie (CSWSH).
                return Decision::Reply(forbidden("cross-site WebSocket refused"));
            }
            let home = self.home(&id);
            let found = if home == self.worker {
                self.session_forward(&id, head, buf).await
            } else if client.movable {
                return Decision::HandOff(home);
            } else {
                self.remote_forward(&id, head, buf).await
            };
            // Expired or unknown: carry on as without a session.
            if let Some(d) = found {
                return d;
            }
        }
        if let Some(token) = bearer(head, buf) {
            return self.api_client(token).await;
        }
        if is_navigation(head, buf) {
            return self.start_login(head, buf, &client).await;
        }
        Decision::Reply(unauthorized("unauthorized", "no session; log in first"))
    }

    /// The request's SESSION cookie as an id of a session this gateway could hold: one
    /// naming a worker that does not exist (forged, or another instance's) is no session.
    fn cookie_session(&self, head: &RequestHead, buf: &[u8]) -> Option<SessionId> {
        // With the shared store any instance's session may come here (folded onto this
        // instance's workers by `home`).
        session_cookie(head, buf)
            .and_then(SessionId::parse)
            .filter(|id| self.shared_store.is_some() || usize::from(id.owner()) < self.peers.len())
    }

    /// A session of this worker: its access token goes upstream (refreshed when due),
    /// unless the access banner still waits to be accepted.
    async fn session_forward(
        &self,
        id: &SessionId,
        head: &RequestHead,
        buf: &[u8],
    ) -> Option<Decision> {
        if let Some(refusal) = self.store_outage(id) {
            return Some(Decision::Reply(refusal));
        }
        if self.shared_store.is_some() {
            match self.held(id).await {
                shared::Lookup::Found => {}
                shared::Lookup::Missing => return None,
                shared::Lookup::Unavailable => {
                    return Some(Decision::Reply(shared::store_unavailable()))
                }
            }
        }
        let (token, banner_accepted) = self.session_token(id).await?;
        if self.settings.banner.is_some() && !banner_accepted {
            return Some(Decision::Reply(self.banner_page(head, buf)));
        }
        Some(Decision::Forward {
            bearer: Some(token),
            session: Some(*id),
        })
    }

    /// An API client's own `Authorization: Bearer` JWT: forwarded as it is when valid.
    async fn api_client(&self, token: &[u8]) -> Decision {
        if self.keys.current().is_none() {
            return Decision::Reply(not_ready());
        }
        let Ok(token) = std::str::from_utf8(token) else {
            return Decision::Reply(unauthorized("invalid_token", "malformed bearer token"));
        };
        let refusal = match self.verify_fresh(token, verify::Purpose::Api).await {
            Ok(claims) => match verify::access_token_refusal(&claims) {
                None => {
                    return Decision::Forward {
                        bearer: None,
                        session: None,
                    }
                }
                Some(why) => why,
            },
            Err(e) => e.label(),
        };
        tracing::debug!(target: LOG, error = refusal, "bearer token refused");
        Decision::Reply(unauthorized("invalid_token", refusal))
    }
}

/// The request is a top-level browser navigation: Fetch metadata when the browser sends
/// it, otherwise a GET that asks for HTML.
fn is_navigation(head: &RequestHead, buf: &[u8]) -> bool {
    let mut accept_html = false;
    for f in &head.fields {
        let (n, v) = (f.name(buf), f.value(buf));
        if name_is(n, b"sec-fetch-mode") {
            return name_is(v, b"navigate");
        }
        if name_is(n, b"x-requested-with") {
            return false;
        }
        if name_is(n, b"accept") && memchr::memmem::find(v, b"text/html").is_some() {
            accept_html = true;
        }
    }
    accept_html && head.method(buf) == b"GET"
}

/// The client's own Bearer token, if its Authorization field carries one.
fn bearer<'a>(head: &RequestHead, buf: &'a [u8]) -> Option<&'a [u8]> {
    head.fields
        .iter()
        .find(|f| name_is(f.name(buf), b"authorization"))
        .and_then(|f| {
            let v = f.value(buf);
            (v.len() > 7 && v[..7].eq_ignore_ascii_case(b"bearer "))
                .then(|| crate::http::trim_ows(&v[7..]))
        })
}

/// A same-origin local target: one leading `/` and no backslash, so it can never become a
/// protocol-relative (`//evil`) or scheme URL in a Location field.
pub fn safe_return(target: &str) -> String {
    let ok = target.starts_with('/')
        && !target.starts_with("//")
        && !target.contains('\\')
        && !target.bytes().any(|b| b.is_ascii_control());
    if ok {
        target.to_string()
    } else {
        "/".to_string()
    }
}

/// The query string of a request target (empty when it has none).
fn query(target: &[u8]) -> &[u8] {
    memchr::memchr(b'?', target)
        .map(|q| &target[q + 1..])
        .unwrap_or(b"")
}

fn not_ready() -> Reply {
    Reply::json(
        503,
        "Service Unavailable",
        "{\"error\":\"provider_unavailable\",\"message\":\"the identity provider is not reachable yet\"}".into(),
    )
    .with_header("Retry-After", "5".into())
}

fn forbidden(message: &str) -> Reply {
    let body = serde_json::json!({"error": "forbidden", "message": message}).to_string();
    Reply::json(403, "Forbidden", body)
}

fn unauthorized(error: &str, message: &str) -> Reply {
    let body = serde_json::json!({"error": error, "message": message}).to_string();
    Reply::json(401, "Unauthorized", body).with_header("WWW-Authenticate", "Bearer".into())
}
