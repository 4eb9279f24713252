//! The session gate: what happens to a request before it may go upstream.
//!
//! Order of decisions (DESIGN §4.2-4.3): the gateway's own endpoints (OIDC callback,
//! `POST /logout`, banner acceptance), then the SESSION cookie (handing the connection to
//! the owner worker when the session lives elsewhere), then an API client's own
//! `Authorization: Bearer` JWT, and last the answer to a request without a session: a login
//! redirect for a browser navigation, 401 JSON for everything else.
//!
//! Pending logins live server-side, keyed by `state` (whose first two hex digits name the
//! worker that issued it), so several tabs can log in at once and no flow cookies pile up.

use std::cell::RefCell;
use std::io::Write as _;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use hashbrown::HashMap;
use ring::rand::SystemRandom;

use crate::backchannel::{self, LogoutError, LogoutToken, ReplayGuard};
use crate::client::{form, form_value, HttpClient};
use crate::config::{Config, HttpUrl, Registration};
use crate::dispatcher::{Call, CallKind, Dispatcher, RetryPolicy};
use crate::http::head::RequestHead;
use crate::http::name_is;
use crate::jwt::{self, JwtError, Validation, VerifyCache};
use crate::metrics::Metrics;
use crate::oidc::{self, ProviderState, RefreshFailure};
use crate::provider::RefreshRequester;
use crate::session::table::{Session, SessionTable, TableConfig};
use crate::session::SessionId;
use crate::worker::WorkerMsg;

const LOG: &str = "sessiongate::session";
const LOGOUT_LOG: &str = "sessiongate::logout";
pub const COOKIE: &str = "SESSION";
const CALLBACK_PREFIX: &[u8] = b"/login/oauth2/code/";
pub const BANNER_ACCEPT: &[u8] = b"/sessiongate/banner/accept";
/// A pending login is kept this long (a user at the login form).
const PENDING_TTL: Duration = Duration::from_secs(600);
/// Pending logins per worker: bounds memory under a flood of unauthenticated navigations.
const PENDING_MAX: usize = 50_000;
/// Refresh this long before the access token expires, but never more than a third of its
/// lifetime (a fixed 60 s leeway on 60 s tokens would refresh on every request).
const REFRESH_LEEWAY_MS: u64 = 30_000;
/// Dispatcher queue bound per worker (fresh-token calls beyond it are dropped, oldest first).
const DISPATCH_QUEUE: usize = 100_000;

/// Gateway-wide facts shared by all workers, read with atomics only.
#[derive(Debug, Default)]
pub struct Shared {
    pub sessions: AtomicU64,
    /// Some worker has the provider's metadata and keys (readiness).
    pub provider_ready: std::sync::atomic::AtomicBool,
}

/// What one worker asks another about state the other owns.
pub enum PeerRequest {
    Lookup {
        id: SessionId,
        reply: flume::Sender<Option<PeerView>>,
    },
    TakePending {
        state: String,
        reply: flume::Sender<Option<PendingLogin>>,
    },
    /// A user logout; the answer is the ended session's ID token.
    EndUser {
        id: SessionId,
        reply: flume::Sender<Option<String>>,
    },
    AcceptBanner {
        id: SessionId,
    },
}

/// What a request on another worker needs from a session.
pub struct PeerView {
    pub access_token: Box<str>,
    pub banner_accepted: bool,
}

/// How long a worker waits for another worker's answer.
const PEER_ANSWER: Duration = Duration::from_secs(10);

pub struct PendingLogin {
    nonce: String,
    verifier: String,
    return_to: String,
    redirect_uri: String,
    created: Instant,
}

/// A worker's session state and OIDC client.
pub struct Gate {
    pub worker: u8,
    reg: Registration,
    pub provider: RefCell<Option<Arc<ProviderState>>>,
    pub table: RefCell<SessionTable>,
    pending: RefCell<HashMap<String, PendingLogin>>,
    pub client: Rc<HttpClient>,
    pub dispatcher: Rc<Dispatcher>,
    cache: RefCell<VerifyCache>,
    cache_generation: std::cell::Cell<u64>,
    shared: Arc<Shared>,
    max_sessions: u64,
    secure_cookie: bool,
    leeway_secs: u64,
    post_logout: Option<String>,
    /// `cg.censhareLogoutUrl`, `cg.freshTokenListeners`, `cg.logoutListeners`: replaced by a
    /// configuration reload.
    listeners: RefCell<Rc<Listeners>>,
    banner: Option<Rc<str>>,
    refresher: RefreshRequester,
    rng: SystemRandom,
    epoch: Instant,
    /// The listener speaks TLS: redirect URIs use https.
    tls: bool,
    full_logout: bool,
    /// Every worker's inbox (back-channel logouts are admitted on worker 0, then fanned out).
    peers: Vec<flume::Sender<WorkerMsg>>,
    /// Worker 0 only: `jti`s of accepted logout tokens.
    replay: RefCell<ReplayGuard>,
    /// Recently ended provider sessions (`sid`, or `sub` when the token had no sid) with the
    /// logout's `iat`: an ID token issued before it cannot start a session (a logout that
    /// overtakes a login still wins).
    tombstones: RefCell<HashMap<String, (u64, Instant)>>,
    max_logout_age_secs: u64,
    /// Open WebSockets per session and the signal that closes them when the session ends
    /// (peers check auth only at upgrade time, so a revoked user would keep a live socket).
    ws: RefCell<HashMap<SessionId, (u16, crate::shutdown::Shutdown)>>,
    /// `sessiongate.keep-alive-after-disconnect-sec`.
    pub keep_alive_after_disconnect: Option<Duration>,
    metrics: Arc<Metrics>,
}

/// Why a session ends; decides the calls made for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndReason {
    Expired,
    User,
    Backchannel,
    Admin,
    /// The provider refused the refresh token (`invalid_grant`).
    RefreshRefused,
}

impl EndReason {
    /// The `reason` label of `sessiongate_sessions_ended_total`.
    pub fn metric(self) -> &'static str {
        match self {
            EndReason::Backchannel => "backchannel",
            EndReason::RefreshRefused => "refresh_refused",
            other => other.label(),
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            EndReason::Expired => "expired",
            EndReason::User => "user",
            EndReason::Backchannel => "back-channel",
            EndReason::Admin => "admin",
            EndReason::RefreshRefused => "refresh refused",
        }
    }
}

const TOMBSTONE_TTL: Duration = Duration::from_secs(600);
/// How long a request with an unknown `kid` waits for the refetched keys (the provider
/// thread refetches at most every 5 s).
const KID_WAIT: Duration = Duration::from_secs(7);

/// What the gate decided for one request.
pub enum Outcome {
    /// Go upstream. `bearer` was written into the extra headers; strip SESSION and the
    /// client's Authorization when a session supplied the token.
    Forward {
        /// The session, when it lives on this worker (WebSockets bind to it).
        session: Option<SessionId>,
        /// The credentials come from a session (strip SESSION and the client's own
        /// Authorization upstream).
        from_session: bool,
    },
    /// Answer with these bytes (a complete response without body framing decisions left).
    Reply(Reply),
    /// The session (or pending login) lives on another worker.
    HandOff(u8),
}

/// A response the gateway makes itself.
pub struct Reply {
    pub status: u16,
    pub reason: &'static str,
    pub headers: Vec<(&'static str, String)>,
    pub content_type: &'static str,
    pub body: Vec<u8>,
}

impl Reply {
    fn new(status: u16, reason: &'static str) -> Reply {
        Reply {
            status,
            reason,
            headers: Vec::new(),
            content_type: "text/plain; charset=utf-8",
            body: Vec::new(),
        }
    }

    fn redirect(location: String) -> Reply {
        let mut r = Reply::new(302, "Found");
        r.headers.push(("Location", location));
        r
    }

    fn json(status: u16, reason: &'static str, body: String) -> Reply {
        let mut r = Reply::new(status, reason);
        r.content_type = "application/json";
        r.body = body.into_bytes();
        r
    }

    fn page(status: u16, reason: &'static str, title: &str, message: &str) -> Reply {
        let mut r = Reply::new(status, reason);
        r.content_type = "text/html; charset=utf-8";
        r.body = format!(
            "<!doctype html><html><head><meta charset=\"utf-8\"><title>{t}</title></head>\
             <body><h1>{t}</h1><p>{m}</p><p><a href=\"/\">Start again</a></p></body></html>\n",
            t = html_escape(title),
            m = html_escape(message)
        )
        .into_bytes();
        r
    }

    /// Serialises the reply; `close` adds `Connection: close`.
    pub fn write(&self, out: &mut Vec<u8>, close: bool) {
        let _ = write!(out, "HTTP/1.1 {} {}\r\n", self.status, self.reason);
        for (n, v) in &self.headers {
            let _ = write!(out, "{n}: {v}\r\n");
        }
        let _ = write!(
            out,
            "Content-Type: {}\r\nContent-Length: {}\r\nCache-Control: no-store\r\n",
            self.content_type,
            self.body.len()
        );
        if close {
            out.extend_from_slice(b"Connection: close\r\n");
        }
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(&self.body);
    }
}

fn html_escape(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '&' => o.push_str("&amp;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
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

/// The request is a top-level browser navigation (DESIGN §4.3): Fetch metadata when the
/// browser sends it, otherwise a GET that asks for HTML.
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

/// The SESSION cookie's value, if the request carries one.
pub fn session_cookie<'a>(head: &RequestHead, buf: &'a [u8]) -> Option<&'a [u8]> {
    head.fields
        .iter()
        .filter(|f| name_is(f.name(buf), b"cookie"))
        .flat_map(|f| f.value(buf).split(|&b| b == b';'))
        .find_map(|pair| {
            let pair = crate::http::trim_ows(pair);
            let eq = memchr::memchr(b'=', pair)?;
            (&pair[..eq] == COOKIE.as_bytes()).then(|| &pair[eq + 1..])
        })
}

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

fn set_cookie(value: &str, secure: bool, max_age: Option<u64>) -> String {
    let mut c = format!("{COOKIE}={value}; Path=/; HttpOnly; SameSite=Lax");
    if secure {
        c.push_str("; Secure");
    }
    if let Some(a) = max_age {
        let _ = std::fmt::Write::write_fmt(&mut c, format_args!("; Max-Age={a}"));
    }
    c
}

/// The URLs outgoing calls go to; a reload swaps them whole.
#[derive(Debug, Clone, Default)]
pub struct Listeners {
    pub censhare_logout_url: Option<HttpUrl>,
    pub fresh_token: Vec<HttpUrl>,
    pub logout: Vec<HttpUrl>,
}

impl Listeners {
    pub fn from_config(cg: &crate::config::CgConfig) -> Listeners {
        Listeners {
            censhare_logout_url: cg.censhare_logout_url.clone(),
            fresh_token: cg.fresh_token_listeners.clone(),
            logout: cg.logout_listeners.clone(),
        }
    }
}

/// What a worker hands its gate besides the config.
pub struct GateDeps {
    pub shared: Arc<Shared>,
    pub refresher: RefreshRequester,
    pub tls_client: Arc<rustls::ClientConfig>,
    pub banner: Option<Rc<str>>,
    pub peers: Vec<flume::Sender<WorkerMsg>>,
    pub metrics: Arc<Metrics>,
}

impl Gate {
    /// Builds the worker's gate when login is configured (`None`: proxy-only mode).
    pub fn new(config: &Config, worker: u8, deps: GateDeps) -> Option<Gate> {
        let GateDeps {
            shared,
            refresher,
            tls_client,
            banner,
            peers,
            metrics,
        } = deps;
        let reg = config.oauth2.registrations.first()?.clone();
        let cg = &config.cg;
        let g = &config.gateway;
        let table = SessionTable::new(TableConfig {
            idle_timeout_ms: cg.session_timeout.as_millis() as u64,
            max_lifetime_ms: g.session_max_lifetime.map(|d| d.as_millis() as u64),
            tick_ms: cg.session_check_interval.as_millis() as u64,
        });
        let client = Rc::new(HttpClient::new(
            tls_client,
            g.upstream_connect_timeout,
            Duration::from_secs(10),
        ));
        let dispatcher = Dispatcher::new(
            client.clone(),
            RetryPolicy {
                max_retries: cg.max_retry_attempts,
                min_delay: cg.min_retry_delay,
            },
            DISPATCH_QUEUE,
            metrics.clone(),
        );
        Some(Gate {
            worker,
            reg,
            provider: RefCell::new(None),
            table: RefCell::new(table),
            pending: RefCell::new(HashMap::new()),
            client,
            dispatcher,
            cache: RefCell::new(VerifyCache::new(4096)),
            cache_generation: std::cell::Cell::new(0),
            shared,
            max_sessions: cg.max_sessions,
            secure_cookie: cg.use_secure_session_cookie,
            leeway_secs: g.jwt_clock_skew.as_secs(),
            post_logout: g.post_logout_redirect_uri.clone(),
            listeners: RefCell::new(Rc::new(Listeners::from_config(cg))),
            banner,
            refresher,
            rng: SystemRandom::new(),
            epoch: Instant::now(),
            tls: config.server.ssl.is_some(),
            full_logout: cg.expired_session_full_logout,
            peers,
            replay: RefCell::new(ReplayGuard::default()),
            tombstones: RefCell::new(HashMap::new()),
            max_logout_age_secs: 300,
            ws: RefCell::new(HashMap::new()),
            keep_alive_after_disconnect: g.keep_alive_after_disconnect,
            metrics,
        })
    }

    /// Milliseconds since this worker's table epoch: the session clock.
    pub fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    /// A configuration reload: new listener URLs for the calls made from now on.
    pub fn set_listeners(&self, l: Listeners) {
        *self.listeners.borrow_mut() = Rc::new(l);
    }

    pub fn set_provider(&self, state: Arc<ProviderState>) {
        *self.provider.borrow_mut() = Some(state);
        self.shared.provider_ready.store(true, Ordering::Relaxed);
    }

    /// Answers the management listener about this worker's sessions.
    pub fn admin(&self, query: crate::admin::AdminQuery) -> crate::admin::AdminAnswer {
        use crate::admin::{AdminAnswer, AdminQuery, SessionInfo};
        let now = self.now_ms();
        let epoch_unix_ms = (SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0))
        .saturating_sub(now);
        let idle = self.table.borrow().config().idle_timeout_ms / 1000;
        let info = |s: &Session| SessionInfo {
            id: s.id().encode().as_str().to_string(),
            subject: s.subject().to_string(),
            sid: s.sid().map(str::to_string),
            worker: self.worker,
            creation_time_ms: epoch_unix_ms + s.created_ms(),
            last_accessed_time_ms: epoch_unix_ms + s.last_access_ms(),
            max_inactive_secs: idle,
        };
        match query {
            AdminQuery::BySubject(sub) => {
                let table = self.table.borrow();
                let ids: Vec<SessionId> = table.ids_by_subject(&sub).collect();
                AdminAnswer::Sessions(
                    ids.iter()
                        .filter_map(|id| table.get(id))
                        .map(info)
                        .collect(),
                )
            }
            AdminQuery::Get(id) => {
                AdminAnswer::Sessions(self.table.borrow().get(&id).map(info).into_iter().collect())
            }
            AdminQuery::End(id) => AdminAnswer::Ended(usize::from(
                self.end_session(&id, EndReason::Admin).is_some(),
            )),
            AdminQuery::EndSubject(sub) => {
                AdminAnswer::Ended(self.end_subject(&sub, EndReason::Admin))
            }
        }
    }

    fn provider(&self) -> Option<Arc<ProviderState>> {
        self.provider.borrow().clone()
    }

    fn validation(&self, p: &ProviderState) -> Validation {
        let mut v = Validation::new(p.meta.issuer.clone(), self.reg.client_id.clone());
        v.leeway_secs = self.leeway_secs;
        v
    }

    /// Verifies a JWT against the provider keys, through the per-worker cache.
    fn verify(&self, p: &ProviderState, token: &str) -> Result<Rc<jwt::Claims>, JwtError> {
        let now = unix_now();
        if self.cache_generation.get() != p.generation {
            // Keys changed: a cached verdict under the old keys must not survive.
            self.cache.borrow_mut().clear();
            self.cache_generation.set(p.generation);
        }
        if let Some(c) = self.cache.borrow_mut().get(token, now) {
            Metrics::inc(&self.metrics.jwt_cache_hits);
            return Ok(c);
        }
        Metrics::inc(&self.metrics.jwt_verifications);
        let claims = jwt::verify(token, &p.jwks, &self.validation(p), now);
        if claims.is_err() {
            Metrics::inc(&self.metrics.jwt_failures);
        }
        let claims = Rc::new(claims?);
        self.cache.borrow_mut().insert(token, claims.clone(), now);
        Ok(claims)
    }

    /// Verifies like [`Gate::verify`]; on an unknown `kid` (the provider rotated its keys)
    /// asks for a JWKS refetch and waits, bounded, for the new keys before deciding.
    async fn verify_fresh(&self, token: &str) -> Result<Rc<jwt::Claims>, JwtError> {
        let Some(p) = self.provider() else {
            return Err(JwtError::UnknownKid);
        };
        match self.verify(&p, token) {
            Err(JwtError::UnknownKid) => {}
            other => return other,
        }
        self.refresher.request();
        let deadline = Instant::now() + KID_WAIT;
        while Instant::now() < deadline {
            monoio::time::sleep(Duration::from_millis(25)).await;
            if let Some(newer) = self.provider().filter(|n| n.generation != p.generation) {
                return self.verify(&newer, token);
            }
        }
        Err(JwtError::UnknownKid)
    }

    /// Decides what to do with a request. `extra` receives header lines to add upstream.
    /// `movable`: the connection can be handed to another worker (plain TCP). A TLS
    /// connection cannot; its requests reach another worker's session by message instead.
    pub async fn check(
        &self,
        head: &RequestHead,
        buf: &[u8],
        extra: &mut Vec<u8>,
        movable: bool,
    ) -> Outcome {
        let path = head.path(buf);
        let method = head.method(buf);
        if let Some(reg) = path.strip_prefix(CALLBACK_PREFIX) {
            if reg == self.reg.id.as_bytes() {
                return self.callback(head, buf, movable).await;
            }
        }
        if path == b"/logout" && method == b"POST" {
            return self.logout(head, buf, movable).await;
        }
        if path == BANNER_ACCEPT && method == b"POST" {
            return self.accept_banner(head, buf, movable);
        }

        if let Some(id) = session_cookie(head, buf).and_then(SessionId::parse) {
            let found = if id.owner() == self.worker {
                self.session_forward(&id, head, buf, extra).await
            } else if movable {
                return Outcome::HandOff(id.owner());
            } else {
                self.remote_forward(&id, head, buf, extra).await
            };
            // Expired or unknown: carry on as without a session.
            if let Some(o) = found {
                return o;
            }
        }

        if let Some(token) = bearer(head, buf) {
            if self.provider().is_none() {
                return Outcome::Reply(not_ready());
            }
            let Ok(token) = std::str::from_utf8(token) else {
                return Outcome::Reply(unauthorized("invalid_token", "malformed bearer token"));
            };
            return match self.verify_fresh(token).await {
                Ok(_) => Outcome::Forward {
                    session: None,
                    from_session: false,
                },
                Err(e) => {
                    tracing::debug!(target: LOG, error = %e, "bearer token refused");
                    Outcome::Reply(unauthorized("invalid_token", e.label()))
                }
            };
        }

        if is_navigation(head, buf) {
            return self.start_login(head, buf);
        }
        Outcome::Reply(unauthorized("unauthorized", "no session; log in first"))
    }

    /// A valid session: touch it, refresh its access token when due, add the Bearer line.
    async fn session_forward(
        &self,
        id: &SessionId,
        head: &RequestHead,
        buf: &[u8],
        extra: &mut Vec<u8>,
    ) -> Option<Outcome> {
        let mark = extra.len();
        extra.extend_from_slice(b"Authorization: Bearer ");
        let Some(banner_accepted) = self.session_token(id, extra).await else {
            extra.truncate(mark);
            return None;
        };
        if self.banner.is_some() && !banner_accepted {
            extra.truncate(mark);
            return Some(Outcome::Reply(self.banner_page(head, buf)));
        }
        extra.extend_from_slice(b"\r\n");
        Some(Outcome::Forward {
            session: Some(*id),
            from_session: true,
        })
    }

    /// Touches a session of this worker, refreshes its access token when due (one refresh per
    /// session at a time; others wait for it), and appends the token to `out`. Answers
    /// whether the access banner was accepted; `None` when there is no such live session.
    async fn session_token(&self, id: &SessionId, out: &mut Vec<u8>) -> Option<bool> {
        let now = self.now_ms();
        let refresh = {
            let mut table = self.table.borrow_mut();
            let s = table.touch(id, now)?;
            let due = refresh_due(s, now);
            if due && !s.refresh_token.is_empty() && s.try_begin_refresh() {
                Some(s.refresh_token.to_string())
            } else if s.access_expires_ms > now || !s.refreshing {
                // The common case: one lookup, the token copied straight into the head.
                out.extend_from_slice(s.access_token.as_bytes());
                return Some(s.banner_accepted);
            } else {
                None
            }
        };
        match refresh {
            Some(rt) => self.refresh(id, &rt).await,
            None => {
                // Expired while another request refreshes it: wait for that refresh rather
                // than send a token the backend would refuse.
                let deadline = Instant::now() + Duration::from_secs(10);
                while self.table.borrow().get(id).is_some_and(|s| s.refreshing)
                    && Instant::now() < deadline
                {
                    monoio::time::sleep(Duration::from_millis(5)).await;
                }
            }
        }
        let table = self.table.borrow();
        let s = table.get(id)?;
        out.extend_from_slice(s.access_token.as_bytes());
        Some(s.banner_accepted)
    }

    /// Refreshes a session's tokens; a refused grant ends the session, a network error
    /// leaves it (the next request tries again).
    async fn refresh(&self, id: &SessionId, refresh_token: &str) {
        let Some(p) = self.provider() else {
            if let Some(s) = self.table.borrow_mut().get_mut(id) {
                s.refreshing = false;
            }
            return;
        };
        let result = oidc::refresh(&self.client, &p.meta, &self.reg, refresh_token).await;
        let now = self.now_ms();
        match result {
            Ok(t) => {
                let mut table = self.table.borrow_mut();
                if let Some(s) = table.get_mut(id) {
                    s.refreshing = false;
                    s.access_expires_ms = access_expiry(&t, now);
                    s.access_token = t.access_token.into_boxed_str();
                    if let Some(r) = t.refresh_token {
                        // Rotation: the old refresh token is dead now; never send it again.
                        s.refresh_token = r.into_boxed_str();
                    }
                    if let Some(i) = t.id_token {
                        s.id_token = i.into_boxed_str();
                    }
                    Metrics::inc(&self.metrics.refreshes);
                    tracing::debug!(target: LOG, session = %id.encode().as_str(), "access token refreshed");
                }
            }
            Err(RefreshFailure::InvalidGrant(why)) => {
                tracing::info!(target: LOG, session = %id.encode().as_str(), why, "refresh refused; session ended");
                self.end_session(id, EndReason::RefreshRefused);
            }
            Err(RefreshFailure::Transient(why)) => {
                tracing::warn!(target: LOG, session = %id.encode().as_str(), why, "refresh failed; will retry");
                if let Some(s) = self.table.borrow_mut().get_mut(id) {
                    s.refreshing = false;
                }
            }
        }
    }

    fn redirect_uri(&self, head: &RequestHead, buf: &[u8]) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        let host = head
            .host(buf)
            .map(String::from_utf8_lossy)
            .unwrap_or_default();
        let base = format!("{scheme}://{host}");
        match &self.reg.redirect_uri {
            Some(t) => t
                .replace("{baseUrl}", &base)
                .replace("{registrationId}", &self.reg.id)
                .replace("{action}", "login"),
            None => format!("{base}/login/oauth2/code/{}", self.reg.id),
        }
    }

    fn start_login(&self, head: &RequestHead, buf: &[u8]) -> Outcome {
        let Some(p) = self.provider() else {
            return Outcome::Reply(not_ready());
        };
        let target = String::from_utf8_lossy(head.target(buf));
        let return_to = safe_return(&target);
        let state = format!("{:02x}{}", self.worker, oidc::random_token(&self.rng, 24));
        let nonce = oidc::random_token(&self.rng, 24);
        let verifier = oidc::random_token(&self.rng, 32);
        let redirect_uri = self.redirect_uri(head, buf);
        Metrics::inc(&self.metrics.logins_started);
        let location = oidc::authorization_url(
            &p.meta,
            &self.reg,
            &redirect_uri,
            &state,
            &nonce,
            &oidc::pkce_challenge(&verifier),
        );
        let mut pending = self.pending.borrow_mut();
        if pending.len() >= PENDING_MAX {
            pending.retain(|_, l| l.created.elapsed() < PENDING_TTL);
            if pending.len() >= PENDING_MAX {
                return Outcome::Reply(Reply::page(
                    503,
                    "Service Unavailable",
                    "Too many logins",
                    "Too many logins are in progress; try again shortly.",
                ));
            }
        }
        pending.insert(
            state,
            PendingLogin {
                nonce,
                verifier,
                return_to,
                redirect_uri,
                created: Instant::now(),
            },
        );
        Outcome::Reply(Reply::redirect(location))
    }

    async fn callback(&self, head: &RequestHead, buf: &[u8], movable: bool) -> Outcome {
        let target = head.target(buf);
        let query = memchr::memchr(b'?', target)
            .map(|q| &target[q + 1..])
            .unwrap_or(b"");
        let Some(state) = form_value(query, "state") else {
            return Outcome::Reply(bad_callback("The login answer carries no state."));
        };
        // The state names the worker that holds the pending login.
        let owner = state.get(..2).and_then(|h| u8::from_str_radix(h, 16).ok());
        let pending = match owner {
            Some(o) if o != self.worker && movable => return Outcome::HandOff(o),
            Some(o) if o != self.worker => {
                let state = state.clone();
                self.ask_peer(o, |reply| PeerRequest::TakePending { state, reply })
                    .await
                    .flatten()
            }
            _ => self.pending.borrow_mut().remove(&state),
        };
        let Some(pending) = pending else {
            return Outcome::Reply(bad_callback(
                "This login is unknown, expired or was already used.",
            ));
        };
        if pending.created.elapsed() > PENDING_TTL {
            return Outcome::Reply(bad_callback(
                "This login took too long; please start again.",
            ));
        }
        if let Some(err) = form_value(query, "error") {
            tracing::info!(target: LOG, error = %err.escape_debug(), "provider refused the login");
            return Outcome::Reply(bad_callback("The identity provider refused the login."));
        }
        let Some(code) = form_value(query, "code") else {
            return Outcome::Reply(bad_callback("The login answer carries no code."));
        };
        let Some(p) = self.provider() else {
            return Outcome::Reply(not_ready());
        };
        let tokens = match oidc::exchange_code(
            &self.client,
            &p.meta,
            &self.reg,
            &code,
            &pending.redirect_uri,
            &pending.verifier,
        )
        .await
        {
            Ok(t) => t,
            Err(e) => {
                tracing::warn!(target: LOG, error = %e, "code exchange failed");
                return Outcome::Reply(bad_callback(
                    "The login could not be completed at the identity provider.",
                ));
            }
        };
        let Some(id_token) = tokens.id_token.as_deref() else {
            return Outcome::Reply(bad_callback("The identity provider sent no ID token."));
        };
        let claims = match self.verify_fresh(id_token).await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(target: LOG, error = %e, "ID token refused");
                return Outcome::Reply(bad_callback(
                    "The identity provider's ID token was not valid.",
                ));
            }
        };
        if claims.nonce() != Some(pending.nonce.as_str()) {
            return Outcome::Reply(bad_callback(
                "The ID token does not belong to this login (nonce).",
            ));
        }
        let Some(sub) = claims.sub() else {
            return Outcome::Reply(bad_callback("The ID token names no subject."));
        };
        if self.tombstoned(claims.sid(), sub, claims.iat().unwrap_or(0)) {
            return Outcome::Reply(bad_callback(
                "This login was ended at the identity provider.",
            ));
        }
        // One limit for the whole gateway: reserve a place first, give it back on failure.
        if self.shared.sessions.fetch_add(1, Ordering::Relaxed) >= self.max_sessions {
            self.shared.sessions.fetch_sub(1, Ordering::Relaxed);
            Metrics::inc(&self.metrics.sessions_rejected);
            tracing::warn!(target: LOG, max = self.max_sessions, "maxSessions reached; login refused");
            crate::audit::session_rejected(sub, self.worker, self.max_sessions);
            let mut r = Reply::page(
                503,
                "Service Unavailable",
                "Too many sessions",
                "The gateway has reached its session limit. Please try again later.",
            );
            r.headers.push(("Retry-After", "30".into()));
            return Outcome::Reply(r);
        }
        let now = self.now_ms();
        let id = match SessionId::generate(self.worker, &self.rng) {
            Ok(id) => id,
            Err(_) => {
                self.shared.sessions.fetch_sub(1, Ordering::Relaxed);
                return Outcome::Reply(Reply::page(
                    500,
                    "Internal Server Error",
                    "Login failed",
                    "No random source.",
                ));
            }
        };
        let mut s = Session::new(id, sub.into(), claims.sid().map(Into::into), now);
        s.access_expires_ms = access_expiry(&tokens, now);
        s.refresh_expires_ms = tokens
            .refresh_expires_in
            .filter(|&e| e > 0)
            .map(|e| now + e * 1000)
            .unwrap_or(crate::session::table::NEVER);
        s.access_token = tokens.access_token.clone().into_boxed_str();
        s.refresh_token = tokens
            .refresh_token
            .clone()
            .unwrap_or_default()
            .into_boxed_str();
        s.id_token = id_token.into();
        self.table.borrow_mut().insert(s);
        Metrics::inc(&self.metrics.sessions_created);
        tracing::info!(target: LOG, subject = %sub.escape_debug(), sid = ?claims.sid(), worker = self.worker, "session created");
        crate::audit::session_created(sub, claims.sid(), self.worker);
        let mut r = Reply::redirect(pending.return_to);
        r.headers.push((
            "Set-Cookie",
            set_cookie(id.encode().as_str(), self.secure_cookie, None),
        ));
        Outcome::Reply(r)
    }

    async fn logout(&self, head: &RequestHead, buf: &[u8], movable: bool) -> Outcome {
        let id = session_cookie(head, buf).and_then(SessionId::parse);
        let id_token: Option<String> = match id {
            Some(id) if id.owner() != self.worker && movable => {
                return Outcome::HandOff(id.owner())
            }
            Some(id) if id.owner() != self.worker => self
                .ask_peer(id.owner(), |reply| PeerRequest::EndUser { id, reply })
                .await
                .flatten(),
            Some(id) => self
                .end_session(&id, EndReason::User)
                .map(|s| s.id_token.into()),
            None => None,
        };
        let p = self.provider();
        let mut location = self.post_logout.clone().unwrap_or_else(|| "/".into());
        if let Some(id_token) = &id_token {
            if let Some(p) = &p {
                if let Some(u) = oidc::end_session_url(
                    &p.meta,
                    &self.reg,
                    Some(id_token),
                    self.post_logout.as_deref(),
                ) {
                    location = u;
                }
            }
        }
        let mut r = Reply::redirect(location);
        r.headers
            .push(("Set-Cookie", set_cookie("", self.secure_cookie, Some(0))));
        Outcome::Reply(r)
    }

    /// The calls that end a session elsewhere (DESIGN §5): the backend's logout URL with the
    /// session's access token, and the provider (revocation or Keycloak logout with the
    /// refresh token), both through the dispatcher. An expiry does this only with
    /// `cg.expiredSessionFullLogout`; a back-channel logout skips the backend (the listeners
    /// get the token instead).
    pub fn end_effects(&self, s: &Session, reason: EndReason) {
        if reason == EndReason::Expired && !self.full_logout {
            return;
        }
        let session = s.id().encode().as_str().into();
        if reason != EndReason::Backchannel {
            if let Some(url) = &self.listeners.borrow().censhare_logout_url {
                self.dispatcher.submit(Call {
                    kind: CallKind::BackendLogout,
                    url: url.clone(),
                    headers: vec![("Authorization", format!("Bearer {}", s.access_token))],
                    body: None,
                    subject: s.subject().into(),
                    session,
                });
            }
        }
        // Offline grants outlive logins by design: leave them alone. A refused refresh token
        // is already dead at the provider.
        let offline = self.reg.scope.iter().any(|sc| sc == "offline_access");
        if s.refresh_token.is_empty() || offline || reason == EndReason::RefreshRefused {
            return;
        }
        let Some(p) = self.provider() else { return };
        if let Some((url, headers, body)) =
            oidc::provider_logout_call(&p.meta, &self.reg, &s.refresh_token)
        {
            self.dispatcher.submit(Call {
                kind: CallKind::ProviderLogout,
                url,
                headers,
                body: Some(("application/x-www-form-urlencoded", body)),
                subject: s.subject().into(),
                session: s.id().encode().as_str().into(),
            });
        }
    }

    /// Removes one session, counts it, and makes the calls its end requires.
    fn end_session(&self, id: &SessionId, reason: EndReason) -> Option<Session> {
        let s = self.table.borrow_mut().remove(id)?;
        self.after_end(&s, reason);
        Some(s)
    }

    /// Everything that follows a session leaving the table, whatever removed it: the global
    /// count, its WebSockets, metrics, log and audit, and the calls to end it elsewhere.
    fn after_end(&self, s: &Session, reason: EndReason) {
        self.shared.sessions.fetch_sub(1, Ordering::Relaxed);
        self.close_websockets(s.id());
        self.metrics.session_ended(reason.metric());
        tracing::info!(target: LOGOUT_LOG, subject = %s.subject().escape_debug(), reason = reason.label(), "session ended");
        crate::audit::session_ended(s.subject(), s.sid(), self.worker, reason);
        self.end_effects(s, reason);
    }

    /// A WebSocket of session `id` opened: the returned signal fires when the session ends.
    pub fn ws_opened(&self, id: &SessionId) -> crate::shutdown::Shutdown {
        let mut ws = self.ws.borrow_mut();
        let e = ws
            .entry(*id)
            .or_insert_with(|| (0, crate::shutdown::Shutdown::new()));
        e.0 = e.0.saturating_add(1);
        e.1.clone()
    }

    /// A WebSocket of session `id` closed; `true` when it was the session's last one.
    pub fn ws_closed(&self, id: &SessionId) -> bool {
        let mut ws = self.ws.borrow_mut();
        match ws.get_mut(id) {
            Some(e) if e.0 > 1 => {
                e.0 -= 1;
                false
            }
            Some(_) => {
                ws.remove(id);
                true
            }
            None => false,
        }
    }

    /// Traffic on a session's WebSocket counts as use of the session.
    pub fn touch(&self, id: &SessionId) {
        let now = self.now_ms();
        self.table.borrow_mut().touch(id, now);
    }

    fn close_websockets(&self, id: &SessionId) {
        if let Some((_, signal)) = self.ws.borrow_mut().remove(id) {
            signal.trigger();
        }
    }

    /// `keep-alive-after-disconnect`: after the grace, a session whose last WebSocket closed
    /// at `closed_at` ends unless a request (or a new socket) came since.
    pub fn end_if_abandoned(&self, id: &SessionId, closed_at: u64) {
        if self.ws.borrow().contains_key(id) {
            return;
        }
        let idle = self
            .table
            .borrow()
            .get(id)
            .is_some_and(|s| s.last_access_ms() <= closed_at);
        if idle {
            tracing::info!(target: LOG, session = %id.encode().as_str(), "no connection came back after the last WebSocket closed; session ended");
            self.end_session(id, EndReason::Expired);
        }
    }

    /// Ends the sessions of one user (admin API): returns how many ended.
    pub fn end_subject(&self, sub: &str, reason: EndReason) -> usize {
        let ids: Vec<SessionId> = self.table.borrow().ids_by_subject(sub).collect();
        ids.iter()
            .filter(|id| self.end_session(id, reason).is_some())
            .count()
    }

    /// The `BackchannelLogout` route: validates the token here, then lets worker 0 check
    /// replay and fan the logout out to every worker.
    pub async fn backchannel(&self, body: &[u8]) -> Reply {
        match self.backchannel_inner(body).await {
            Ok(()) => {
                Metrics::inc(&self.metrics.backchannel_logouts);
                let mut r = Reply::new(200, "OK");
                r.headers.push(("Pragma", "no-cache".into()));
                r
            }
            Err(e) => {
                Metrics::inc(&self.metrics.backchannel_refused);
                tracing::info!(target: backchannel::LOG, error = %e, "logout token refused");
                let body =
                    serde_json::json!({"error": e.code(), "error_description": e.to_string()})
                        .to_string();
                Reply::json(400, "Bad Request", body)
            }
        }
    }

    async fn backchannel_inner(&self, body: &[u8]) -> Result<(), LogoutError> {
        let token = backchannel::token_from_form(body)?;
        tracing::trace!(target: backchannel::LOG, token = %token, "logout token received");
        let p = self.provider().ok_or(LogoutError::NotReady)?;
        let policy = backchannel::Policy {
            issuer: p.meta.issuer.clone(),
            client_id: self.reg.client_id.clone(),
            leeway_secs: self.leeway_secs,
            max_age_secs: self.max_logout_age_secs,
        };
        let t = match backchannel::validate(&token, &p.jwks, &policy, unix_now()) {
            Err(LogoutError::Jwt(JwtError::UnknownKid)) => {
                self.refresher.request();
                return Err(LogoutError::Jwt(JwtError::UnknownKid));
            }
            other => other?,
        };
        let (tx, rx) = flume::bounded(1);
        let msg = WorkerMsg::Backchannel {
            token: t,
            raw: token,
            reply: tx,
        };
        self.peers
            .first()
            .ok_or(LogoutError::NotReady)?
            .send(msg)
            .map_err(|_| LogoutError::NotReady)?;
        rx.recv_async().await.unwrap_or(Err(LogoutError::NotReady))
    }

    /// Worker 0: admits a validated logout token once, fans it out, relays it to listeners.
    pub fn admit_logout(&self, t: LogoutToken, raw: String) -> Result<(), LogoutError> {
        self.replay.borrow_mut().admit(&t, unix_now())?;
        for peer in &self.peers {
            let _ = peer.send(WorkerMsg::EndSessions {
                sid: t.sid.clone(),
                sub: t.sub.clone(),
                iat: t.iat,
            });
        }
        let body = form(&[("logout_token", raw.as_str())]).into_bytes();
        let listeners = self.listeners.borrow().clone();
        for url in &listeners.logout {
            self.dispatcher.submit(Call {
                kind: CallKind::LogoutRelay,
                url: url.clone(),
                headers: Vec::new(),
                body: Some(("application/x-www-form-urlencoded", body.clone())),
                subject: t.sub.clone().unwrap_or_default().into(),
                session: t.sid.clone().unwrap_or_default().into(),
            });
        }
        Ok(())
    }

    /// Any worker: ends its sessions of a provider logout (by `sid`, else by `sub`).
    pub fn end_matching(&self, sid: Option<&str>, sub: Option<&str>, iat: u64) {
        let key = sid.or(sub).unwrap_or_default();
        {
            let mut tombs = self.tombstones.borrow_mut();
            tombs.retain(|_, (_, at)| at.elapsed() < TOMBSTONE_TTL);
            tombs.insert(key.to_string(), (iat, Instant::now()));
        }
        let ids: Vec<SessionId> = {
            let table = self.table.borrow();
            match (sid, sub) {
                (Some(sid), _) => table.ids_by_sid(sid).collect(),
                (None, Some(sub)) => table.ids_by_subject(sub).collect(),
                (None, None) => Vec::new(),
            }
        };
        let n = ids
            .iter()
            .filter(|id| self.end_session(id, EndReason::Backchannel).is_some())
            .count();
        tracing::debug!(target: LOGOUT_LOG, worker = self.worker, sid = ?sid, sub = ?sub, ended = n, "back-channel logout applied");
    }

    /// A login whose ID token predates a logout of the same provider session must not win.
    fn tombstoned(&self, sid: Option<&str>, sub: &str, iat: u64) -> bool {
        let tombs = self.tombstones.borrow();
        [sid, Some(sub)].into_iter().flatten().any(|k| {
            tombs
                .get(k)
                .is_some_and(|(logout_iat, at)| at.elapsed() < TOMBSTONE_TTL && iat <= *logout_iat)
        })
    }

    /// Sends each session used since the last round to every fresh-token listener.
    pub fn send_fresh_tokens(&self) {
        let listeners = self.listeners.borrow().clone();
        if listeners.fresh_token.is_empty() {
            return;
        }
        let epoch_unix = unix_now().saturating_sub(self.now_ms() / 1000);
        let mut table = self.table.borrow_mut();
        for s in table.iter_mut().filter(|s| s.used_since_fresh_send) {
            s.used_since_fresh_send = false;
            let exp = (s.access_expires_ms != crate::session::table::NEVER)
                .then(|| epoch_unix + s.access_expires_ms / 1000);
            let body = serde_json::json!({"sub": s.subject(), "sid": s.sid(), "exp": exp})
                .to_string()
                .into_bytes();
            for url in &listeners.fresh_token {
                self.dispatcher.submit(Call {
                    kind: CallKind::FreshToken,
                    url: url.clone(),
                    headers: vec![("Authorization", format!("Bearer {}", s.access_token))],
                    body: Some(("application/json", body.clone())),
                    subject: s.subject().into(),
                    session: s.id().encode().as_str().into(),
                });
            }
        }
    }

    fn banner_page(&self, head: &RequestHead, buf: &[u8]) -> Reply {
        if !is_navigation(head, buf) {
            return Reply::json(
                403,
                "Forbidden",
                "{\"error\":\"access_banner_not_accepted\"}".into(),
            );
        }
        let target = safe_return(&String::from_utf8_lossy(head.target(buf)));
        let mut action = String::from_utf8_lossy(BANNER_ACCEPT).into_owned();
        action.push_str("?return=");
        crate::client::form_encode(&mut action, &target);
        let mut r = Reply::new(200, "OK");
        r.content_type = "text/html; charset=utf-8";
        r.body = format!(
            "<!doctype html><html><head><meta charset=\"utf-8\"><title>Access banner</title></head><body>\
             <div class=\"banner\">{}</div>\
             <form method=\"post\" action=\"{}\"><button type=\"submit\">Accept</button></form></body></html>\n",
            self.banner.as_deref().unwrap_or(""),
            html_escape(&action)
        )
        .into_bytes();
        r
    }

    fn accept_banner(&self, head: &RequestHead, buf: &[u8], movable: bool) -> Outcome {
        let target = head.target(buf);
        let query = memchr::memchr(b'?', target)
            .map(|q| &target[q + 1..])
            .unwrap_or(b"");
        let back = safe_return(&form_value(query, "return").unwrap_or_else(|| "/".into()));
        if let Some(id) = session_cookie(head, buf).and_then(SessionId::parse) {
            if id.owner() != self.worker {
                if movable {
                    return Outcome::HandOff(id.owner());
                }
                if let Some(peer) = self.peers.get(usize::from(id.owner())) {
                    let _ = peer.send(WorkerMsg::Peer(PeerRequest::AcceptBanner { id }));
                }
            } else {
                self.accept_banner_here(&id);
            }
        }
        Outcome::Reply(Reply::redirect(back))
    }

    fn accept_banner_here(&self, id: &SessionId) {
        if let Some(s) = self.table.borrow_mut().touch(id, self.now_ms()) {
            s.banner_accepted = true;
        }
    }

    /// Sends a request to worker `owner` and waits (bounded) for its answer.
    async fn ask_peer<T>(
        &self,
        owner: u8,
        make: impl FnOnce(flume::Sender<T>) -> PeerRequest,
    ) -> Option<T> {
        let peer = self.peers.get(usize::from(owner))?;
        let (tx, rx) = flume::bounded(1);
        peer.send(WorkerMsg::Peer(make(tx))).ok()?;
        monoio::time::timeout(PEER_ANSWER, rx.recv_async())
            .await
            .ok()?
            .ok()
    }

    /// A session owned by another worker, for a connection that cannot move there: the owner
    /// touches it (refreshing when due) and sends back what the request needs.
    async fn remote_forward(
        &self,
        id: &SessionId,
        head: &RequestHead,
        buf: &[u8],
        extra: &mut Vec<u8>,
    ) -> Option<Outcome> {
        let view = self
            .ask_peer(id.owner(), |reply| PeerRequest::Lookup { id: *id, reply })
            .await??;
        if self.banner.is_some() && !view.banner_accepted {
            return Some(Outcome::Reply(self.banner_page(head, buf)));
        }
        push_bearer(extra, &view.access_token);
        Some(Outcome::Forward {
            session: None,
            from_session: true,
        })
    }

    /// Owner side of [`PeerRequest`].
    pub async fn serve_peer(&self, req: PeerRequest) {
        match req {
            PeerRequest::Lookup { id, reply } => {
                let mut scratch = Vec::new();
                let accepted = self.session_token(&id, &mut scratch).await;
                let view = accepted.map(|banner_accepted| PeerView {
                    access_token: String::from_utf8_lossy(&scratch)
                        .into_owned()
                        .into_boxed_str(),
                    banner_accepted,
                });
                let _ = reply.send(view);
            }
            PeerRequest::TakePending { state, reply } => {
                let _ = reply.send(self.pending.borrow_mut().remove(&state));
            }
            PeerRequest::EndUser { id, reply } => {
                let _ = reply.send(
                    self.end_session(&id, EndReason::User)
                        .map(|s| s.id_token.into()),
                );
            }
            PeerRequest::AcceptBanner { id } => self.accept_banner_here(&id),
        }
    }

    /// Ends every session whose deadline passed; runs every `sessionCheckIntervalMs`.
    pub async fn expire(&self, scratch: &mut Vec<Session>) {
        scratch.clear();
        // Pending logins are not swept here: the tick must stay near-free. They are bounded
        // (pruned when the map is full) and their age is checked at the callback.
        self.table.borrow_mut().expire(self.now_ms(), scratch);
        if scratch.is_empty() {
            return;
        }
        for s in scratch.iter() {
            self.after_end(s, EndReason::Expired);
        }
    }
}

/// When the access token expires, from `expires_in` (RFC 6749 §5.1); without it the token
/// is used until the provider's other limits end the session.
fn access_expiry(t: &oidc::TokenResponse, now: u64) -> u64 {
    let by_expires_in = t
        .expires_in
        .filter(|&e| e > 0)
        .map(|e| now.saturating_add(e.saturating_mul(1000)))
        .unwrap_or(crate::session::table::NEVER);
    // A JWT access token's own `exp` is what the backend checks; `expires_in` counts from
    // when the provider answered, up to a second later. The earlier of the two wins. (The
    // token came straight from the token endpoint, so reading it unverified is safe.)
    let unix_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    let by_exp = jwt_exp(&t.access_token)
        .map(|exp| now.saturating_add(exp.saturating_mul(1000).saturating_sub(unix_ms)));
    by_exp.map_or(by_expires_in, |e| e.min(by_expires_in))
}

/// The `exp` claim of a JWT, read without verification.
fn jwt_exp(token: &str) -> Option<u64> {
    use base64::Engine as _;
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .ok()?;
    let v: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    v.get("exp")?.as_u64()
}

/// The access token is due for refresh: within the leeway of its expiry, the leeway capped at
/// a third of the token's remaining life at creation is approximated by the fixed leeway.
fn refresh_due(s: &Session, now: u64) -> bool {
    if s.access_expires_ms == crate::session::table::NEVER {
        return false;
    }
    let life = s
        .access_expires_ms
        .saturating_sub(s.last_access_ms().min(now));
    let leeway = REFRESH_LEEWAY_MS.min(life / 3).max(1000);
    now + leeway >= s.access_expires_ms
}

fn push_bearer(extra: &mut Vec<u8>, token: &str) {
    extra.extend_from_slice(b"Authorization: Bearer ");
    extra.extend_from_slice(token.as_bytes());
    extra.extend_from_slice(b"\r\n");
}

fn not_ready() -> Reply {
    let mut r = Reply::json(
        503,
        "Service Unavailable",
        "{\"error\":\"provider_unavailable\",\"message\":\"the identity provider is not reachable yet\"}".into(),
    );
    r.headers.push(("Retry-After", "5".into()));
    r
}

fn unauthorized(error: &str, message: &str) -> Reply {
    let body = serde_json::json!({"error": error, "message": message}).to_string();
    let mut r = Reply::json(401, "Unauthorized", body);
    r.headers.push(("WWW-Authenticate", "Bearer".into()));
    r
}

fn bad_callback(message: &str) -> Reply {
    Reply::page(400, "Bad Request", "Login failed", message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn return_targets_stay_local() {
        assert_eq!(safe_return("/a?b=c"), "/a?b=c");
        assert_eq!(safe_return("//evil.example/"), "/");
        assert_eq!(safe_return("/\\evil.example"), "/");
        assert_eq!(safe_return("https://evil.example/"), "/");
        assert_eq!(safe_return("/a\r\nSet-Cookie: x"), "/");
    }

    #[test]
    fn cookie_and_navigation() {
        let raw = b"GET / HTTP/1.1\r\nHost: a\r\nCookie: theme=dark; SESSION=abc; x=1\r\nSec-Fetch-Mode: navigate\r\n\r\n";
        let mut h = RequestHead::default();
        crate::http::head::parse_request(raw, &Default::default(), &mut h)
            .unwrap()
            .unwrap();
        assert_eq!(session_cookie(&h, raw), Some(&b"abc"[..]));
        assert!(is_navigation(&h, raw));
        let raw = b"GET /api HTTP/1.1\r\nHost: a\r\nAccept: application/json\r\n\r\n";
        crate::http::head::parse_request(raw, &Default::default(), &mut h)
            .unwrap()
            .unwrap();
        assert!(!is_navigation(&h, raw));
        assert_eq!(session_cookie(&h, raw), None);
    }
}
