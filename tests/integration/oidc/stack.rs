//! One scenario's world: a provider, a recording backend and a gateway configured to log
//! users in at that provider, each on its own loopback port.
//!
//! The provider must know the gateway's redirect URI before the gateway exists (and the
//! gateway reads the provider's metadata when it starts), so the gateway's port is reserved
//! first (bind 127.0.0.1:0, read the port, release it), then the provider starts with
//! `http://127.0.0.1:PORT/login/oauth2/code/demo` registered, then the gateway on that port.
//!
//! ```ignore
//! let s = Stack::builder().cg("sessionTimeoutSec", 2).provider(|o| o.access_token_ttl(4)).start();
//! let (mut browser, login) = s.login("alice");
//! ```

use std::net::TcpListener;
use std::path::PathBuf;
use std::thread;
use std::time::{Duration, Instant};

use crate::backend::{Backend, Reply, Request, IO_TIMEOUT};
use crate::client::{Client, Response};
use crate::harness::{management_yaml, quote, routes_yaml, Gateway, GatewayBuilder, Route};
use crate::oidc::browser::{encode_form, set_cookie, Browser, Login, Url};
use crate::oidc::provider::{bearer, random_token, Provider, ProviderOpts};

/// The registration id in the gateway config (and so in the callback path).
pub const REGISTRATION: &str = "demo";
/// Where a login starts in most scenarios.
pub const APP_PATH: &str = "/app/home?tab=1";
/// The backend path `cg.censhareLogoutUrl` points at.
pub const BACKEND_LOGOUT_PATH: &str = "/logout";

/// How long the gateway may take to read the provider's metadata after it listens.
const PROVIDER_DISCOVERY_TIMEOUT: Duration = Duration::from_secs(10);

pub struct StackBuilder {
    port: u16,
    provider: ProviderOpts,
    cg: Vec<(String, String)>,
    registration: Vec<(String, String)>,
    knobs: Vec<(String, String)>,
    backchannel: bool,
    logging: Vec<(String, String)>,
    /// `logging.structured.format.console`.
    structured: Option<String>,
    backend: Option<Box<Responder>>,
    management: bool,
    /// `server.ssl` files: the TLS listener on a port of its own, and `port` (the one
    /// browsers and the provider use) as `sessiongate.http-port` beside it.
    tls: Option<(PathBuf, PathBuf)>,
    /// Dotted top-level keys (`spring.data.redis.port: 6379`) appended to the file.
    top: Vec<(String, String)>,
}

/// How the stack's recording backend answers.
type Responder = dyn Fn(&Request) -> Reply + Send + Sync;

impl StackBuilder {
    /// Changes the provider's options (TTLs, keys, auth method).
    pub fn provider(mut self, f: impl FnOnce(ProviderOpts) -> ProviderOpts) -> Self {
        self.provider = f(self.provider);
        self
    }

    /// Sets a `cg.*` key (camelCase name, value written as is).
    pub fn cg(mut self, key: &str, value: impl ToString) -> Self {
        set(&mut self.cg, key, value.to_string());
        self
    }

    /// Sets a key of `spring.security.oauth2.client.registration.demo`.
    pub fn registration(mut self, key: &str, value: impl ToString) -> Self {
        set(&mut self.registration, key, value.to_string());
        self
    }

    /// Sets a `sessiongate.*` key (kebab-case, value written as is).
    /// A top-level key, dotted (`spring.data.redis.port`), outside `sessiongate`.
    pub fn set_top(mut self, key: &str, value: impl ToString) -> Self {
        set(&mut self.top, key, value.to_string());
        self
    }

    pub fn set(mut self, key: &str, value: impl ToString) -> Self {
        set(&mut self.knobs, key, value.to_string());
        self
    }

    pub fn workers(self, n: usize) -> Self {
        self.set("workers", n)
    }

    /// A TLS listener with this certificate chain and key beside the plain one.
    pub fn tls(mut self, cert: &std::path::Path, key: &std::path::Path) -> Self {
        self.tls = Some((cert.to_path_buf(), key.to_path_buf()));
        let port = self.port;
        self.set("http-port", port)
    }

    /// The port the gateway will listen on (reserved when the builder was made).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Adds the back-channel logout route and registers its URL at the provider.
    pub fn backchannel_logout(mut self) -> Self {
        self.backchannel = true;
        self.provider = self.provider.backchannel_logout_uri(&format!(
            "http://127.0.0.1:{}/backchannel/logout",
            self.port
        ));
        self
    }

    /// Sets `logging.level.<logger>` (a Spring logger name such as
    /// `com.censhare.core.cloudgateway.LogoutSignalSender`, or `root`).
    pub fn logging(mut self, logger: &str, level: &str) -> Self {
        set(&mut self.logging, logger, level.to_string());
        self
    }

    /// Sets `logging.structured.format.console` (`ecs`, `logstash`).
    pub fn structured_logs(mut self, format: &str) -> Self {
        self.structured = Some(format.to_string());
        self
    }

    /// The backend records every request and answers with `f(request)` (default: 200 "ok").
    pub fn backend(mut self, f: impl Fn(&Request) -> Reply + Send + Sync + 'static) -> Self {
        self.backend = Some(Box::new(f));
        self
    }

    /// The backend accepts WebSocket upgrades (101, then echoes every byte) and answers
    /// everything else with 200 "ok".
    pub fn websocket_backend(self) -> Self {
        self.backend(|r| {
            if r.head.has_token("upgrade", "websocket") {
                Reply::websocket_echo()
            } else {
                Reply::ok()
            }
        })
    }

    /// Adds a management listener on 127.0.0.1 (port 0) and, when given, its bearer secret
    /// `sessiongate.management-token`.
    pub fn management(mut self, token: Option<&str>) -> Self {
        self.management = true;
        match token {
            Some(t) => self.set("management-token", quote(t)),
            None => self,
        }
    }

    /// The gateway's configuration for these settings (before `sessiongate:`).
    fn base_yaml(&self, issuer: &str, backend: &Backend) -> String {
        let mut routes = Vec::new();
        if self.backchannel {
            routes.push(
                Route::new(
                    "censhare5_backchannel_logout",
                    format!("http://127.0.0.1:{}", self.port),
                )
                .predicate("Path=/backchannel/logout")
                .filter("BackchannelLogout"),
            );
        }
        routes.push(Route::new("app", backend.uri()).predicate("Path=/**"));
        let rendered = routes_yaml(&routes);
        let cloud = rendered
            .strip_prefix("server:\n  address: 127.0.0.1\n  port: 0\nspring:\n")
            .expect("routes_yaml starts with server and spring");

        let mut y = match &self.tls {
            None => format!(
                "server:\n  address: 127.0.0.1\n  port: {}\nspring:\n",
                self.port
            ),
            Some((cert, key)) => format!(
                "server:\n  address: 127.0.0.1\n  port: 0\n  ssl:\n    certificate: {}\n    certificate-private-key: {}\nspring:\n",
                quote(&cert.display().to_string()),
                quote(&key.display().to_string())
            ),
        };
        y.push_str("  security:\n    oauth2:\n      client:\n        registration:\n");
        y.push_str(&format!("          {REGISTRATION}:\n"));
        for (k, v) in &self.registration {
            y.push_str(&format!("            {k}: {v}\n"));
        }
        y.push_str("        provider:\n");
        y.push_str(&format!("          {REGISTRATION}:\n"));
        y.push_str(&format!("            issuer-uri: {}\n", quote(issuer)));
        y.push_str(cloud);
        y.push_str("cg:\n");
        for (k, v) in &self.cg {
            y.push_str(&format!("  {k}: {v}\n"));
        }
        if !self.logging.is_empty() {
            y.push_str("logging:\n  level:\n");
            for (k, v) in &self.logging {
                y.push_str(&format!("    {k}: {v}\n"));
            }
        }
        if let Some(format) = &self.structured {
            // Dotted, so it merges with a `logging:` section above.
            y.push_str(&format!("logging.structured.format.console: {format}\n"));
        }
        if self.management {
            y.push_str(&management_yaml());
        }
        for (k, v) in &self.top {
            y.push_str(&format!("{k}: {v}\n"));
        }
        y
    }

    /// Starts provider, backend and gateway (in that order).
    pub fn start(self) -> Stack {
        let stack = self.start_unready();
        stack.wait_until_provider_known();
        stack
    }

    /// [`StackBuilder::start`] without waiting for the gateway to answer navigations (a
    /// scenario where something it needs is missing on purpose).
    pub fn start_unready(mut self) -> Stack {
        let provider = Provider::start(self.provider.clone());
        let backend = self.take_backend();
        let (gateway, relaunch) = self.start_gateway(&provider.issuer(), &backend);
        Stack {
            port: self.port,
            provider,
            backend,
            gateway,
            relaunch,
        }
    }
}

impl StackBuilder {
    /// Starts backend and gateway with the provider's issuer on a reserved port where
    /// nothing listens yet; [`PendingStack::start_provider`] starts the provider there.
    pub fn start_before_provider(mut self) -> PendingStack {
        let provider_port = reserve_port();
        let backend = self.take_backend();
        let issuer = format!("http://127.0.0.1:{provider_port}");
        let (gateway, relaunch) = self.start_gateway(&issuer, &backend);
        PendingStack {
            port: self.port,
            gateway,
            relaunch,
            backend,
            provider_port,
            provider: self.provider,
        }
    }

    fn take_backend(&mut self) -> Backend {
        match self.backend.take() {
            Some(f) => Backend::replying(f),
            None => Backend::recording(),
        }
    }

    /// [`StackBuilder::start_gateway`] for callers with a provider and backend of their
    /// own: callable again after that gateway stopped (the same configuration on the same
    /// port), and for several builders sharing one provider and backend.
    pub fn start_gateway_for(&mut self, issuer: &str, backend: &Backend) -> Gateway {
        self.start_gateway(issuer, backend).0
    }

    /// Writes the config (with `cg.censhareLogoutUrl` at the backend unless set) and
    /// starts the gateway on the reserved port.
    fn start_gateway(
        &mut self,
        issuer: &str,
        backend: &Backend,
    ) -> (Gateway, (GatewayBuilder, bool)) {
        if !self.cg.iter().any(|(k, _)| k == "censhareLogoutUrl") {
            let url = quote(&format!("{}{BACKEND_LOGOUT_PATH}", backend.uri()));
            self.cg.push(("censhareLogoutUrl".to_string(), url));
        }
        let mut builder: GatewayBuilder = Gateway::with(self.base_yaml(issuer, backend));
        for (k, v) in &self.knobs {
            builder = builder.set(k, v);
        }
        let tls = self.tls.is_some();
        let gateway = start_on(builder.clone(), self.port, tls);
        (gateway, (builder, tls))
    }
}

/// A gateway and backend whose provider is not started yet
/// ([`StackBuilder::start_before_provider`]).
pub struct PendingStack {
    pub port: u16,
    pub gateway: Gateway,
    relaunch: (GatewayBuilder, bool),
    pub backend: Backend,
    pub provider_port: u16,
    provider: ProviderOpts,
}

impl PendingStack {
    /// Starts the provider on the port the gateway's issuer names, and waits (bounded)
    /// until the gateway has read its metadata.
    pub fn start_provider(self) -> Stack {
        let provider = Provider::start_on(self.provider, self.provider_port);
        let stack = Stack {
            port: self.port,
            provider,
            backend: self.backend,
            gateway: self.gateway,
            relaunch: self.relaunch,
        };
        stack.wait_until_provider_known();
        stack
    }
}

/// Starts the gateway and checks it took the reserved port (plain, or `http-port` beside
/// TLS).
fn start_on(builder: GatewayBuilder, port: u16, tls: bool) -> Gateway {
    let gateway = builder.start();
    let plain = match tls {
        false => Some(gateway.addr()),
        true => gateway.listening("http"),
    };
    assert_eq!(
        plain.map(|a| a.port()),
        Some(port),
        "the gateway must listen on the reserved port"
    );
    gateway
}

fn set(list: &mut Vec<(String, String)>, key: &str, value: String) {
    match list.iter_mut().find(|(k, _)| k == key) {
        Some(kv) => kv.1 = value,
        None => list.push((key.to_string(), value)),
    }
}

/// Asserts `r` is the 302 that starts a login: to `provider`'s authorization endpoint.
pub fn assert_login_redirect_to(provider: &Provider, r: &Response, context: &str) {
    assert_eq!(
        r.status,
        302,
        "{context}: expected a 302 to the provider, got {} {:?}\n{}",
        r.status,
        r.head.start,
        r.text()
    );
    let location = r.header("location").unwrap_or_default();
    let auth = format!("{}/auth?", provider.issuer());
    assert!(
        location.starts_with(&auth),
        "{context}: expected a redirect to {auth}..., got {location:?}"
    );
}

/// Polls (bounded) with navigations to `url` on new connections, which SO_REUSEPORT
/// spreads over a gateway's workers, until several in a row are not 503.
pub fn wait_until_not_503(url: &Url, within: Duration) {
    let deadline = Instant::now() + within;
    let mut in_a_row = 0;
    while in_a_row < 6 {
        let r = Browser::without_keep_alive().navigate(url);
        if r.status == 503 {
            in_a_row = 0;
            assert!(
                Instant::now() < deadline,
                "{} still answers 503 after {within:?}: {}",
                url.authority(),
                r.text()
            );
            thread::sleep(Duration::from_millis(20));
        } else {
            in_a_row += 1;
        }
    }
}

/// The backend's requests whose path is `path` (the query ignored).
pub fn requests_to(backend: &Backend, path: &str) -> Vec<Request> {
    backend
        .requests()
        .into_iter()
        .filter(|r| r.target.split('?').next() == Some(path))
        .collect()
}

/// A free loopback port (bound, then released) for a server that must be named up front.
pub fn reserve_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    l.local_addr().unwrap().port()
}

/// Provider, backend and gateway of one scenario. Field order is drop order: the gateway
/// stops first, so it never sees its provider vanish.
pub struct Stack {
    pub port: u16,
    pub gateway: Gateway,
    pub backend: Backend,
    pub provider: Provider,
    /// How the gateway was started, to start it again.
    relaunch: (GatewayBuilder, bool),
}

impl Stack {
    /// Defaults: client `gateway`/`secret` with `client_secret_basic`, scope
    /// `openid,profile,email`, `cg.sessionTimeoutSec: 600`, `cg.sessionCheckIntervalMs: 100`,
    /// `cg.useSecureSessionCookie: false`, `cg.censhareLogoutUrl` at the backend's `/logout`
    /// (set when the backend is known, at `start`), two workers and
    /// `post-logout-redirect-uri: http://127.0.0.1:PORT/`.
    pub fn builder() -> StackBuilder {
        Stack::builder_on(reserve_port())
    }

    /// [`Stack::builder`] for a gateway on this (reserved) port.
    pub fn builder_on(port: u16) -> StackBuilder {
        let b = StackBuilder {
            port,
            provider: ProviderOpts::for_gateway(port),
            cg: Vec::new(),
            registration: Vec::new(),
            knobs: Vec::new(),
            backchannel: false,
            logging: Vec::new(),
            structured: None,
            backend: None,
            management: false,
            tls: None,
            top: Vec::new(),
        };
        b.registration("client-id", "gateway")
            .registration("client-secret", "secret")
            .registration("scope", quote("openid,profile,email"))
            .registration("client-authentication-method", "client_secret_basic")
            .cg("sessionTimeoutSec", 600)
            .cg("sessionCheckIntervalMs", 100)
            .cg("maxSessions", 10000)
            .cg("useSecureSessionCookie", false)
            .workers(2)
            .set(
                "post-logout-redirect-uri",
                quote(&format!("http://127.0.0.1:{port}/")),
            )
    }

    /// A stack with all defaults.
    pub fn start() -> Stack {
        Stack::builder().start()
    }

    /// `http://127.0.0.1:PORT` + `target` at the gateway.
    pub fn url(&self, target: &str) -> Url {
        Url::parse(&format!("http://127.0.0.1:{}{target}", self.port))
    }

    /// The callback path for the registration.
    pub fn callback_path(&self) -> String {
        format!("/login/oauth2/code/{REGISTRATION}")
    }

    /// A new browser logged in as `user`, starting from [`APP_PATH`].
    pub fn login(&self, user: &str) -> (Browser, Login) {
        let mut b = Browser::new();
        let login = b.login(&self.url(APP_PATH), user);
        (b, login)
    }

    /// Backend requests whose path is `path` (the query ignored).
    pub fn backend_requests_to(&self, path: &str) -> Vec<Request> {
        requests_to(&self.backend, path)
    }

    /// Backend requests that are not calls to `cg.censhareLogoutUrl`.
    pub fn app_requests(&self) -> Vec<Request> {
        self.backend
            .requests()
            .into_iter()
            .filter(|r| r.target.split('?').next() != Some(BACKEND_LOGOUT_PATH))
            .collect()
    }
}

/// Restarts: the gateway stops and starts again on the same port; provider and backend
/// keep running.
impl Stack {
    /// SIGTERM, and waits (bounded) for a clean exit.
    pub fn stop_gateway(&mut self) {
        self.gateway.signal(libc::SIGTERM);
        let status = self
            .gateway
            .wait_exit(Duration::from_secs(15))
            .expect("the gateway still runs 15 s after SIGTERM");
        assert_eq!(status.code(), Some(0), "exit after SIGTERM: {status:?}");
    }

    /// Stops the gateway (if it still runs) and starts it again with the same config.
    pub fn restart_gateway(&mut self) {
        self.restart_gateway_with(|b| b);
    }

    /// Like [`Stack::restart_gateway`], with `f` changing `sessiongate.*` keys first.
    pub fn restart_gateway_with(&mut self, f: impl FnOnce(GatewayBuilder) -> GatewayBuilder) {
        if self.gateway.wait_exit(Duration::ZERO).is_none() {
            self.stop_gateway();
        }
        let (builder, tls) = self.relaunch.clone();
        self.gateway = start_on(f(builder), self.port, tls);
        self.wait_until_provider_known();
    }
}

impl Stack {
    /// The gateway prints its listening line before it has read the provider's metadata
    /// and keys; until each worker has them, it answers navigations with 503. Polls
    /// (bounded) with navigations on new connections, which SO_REUSEPORT spreads over the
    /// workers, until several in a row are not 503.
    pub fn wait_until_provider_known(&self) {
        wait_until_not_503(
            &self.url("/__sessiongate_it_probe"),
            PROVIDER_DISCOVERY_TIMEOUT,
        );
    }

    /// Asserts `r` is the 302 that starts a login: to the provider's authorization endpoint.
    pub fn assert_login_redirect(&self, r: &Response, context: &str) {
        assert_login_redirect_to(&self.provider, r, context);
    }

    /// Waits (bounded) for a backend request that satisfies `pred`.
    pub fn wait_for_backend(
        &self,
        within: Duration,
        pred: impl Fn(&Request) -> bool,
    ) -> Option<Request> {
        let deadline = Instant::now() + within;
        loop {
            if let Some(r) = self.backend.requests().into_iter().find(|r| pred(r)) {
                return Some(r);
            }
            if Instant::now() >= deadline {
                return None;
            }
            thread::sleep(Duration::from_millis(10));
        }
    }

    /// The bearer token of the latest backend request to `target` (path and query).
    pub fn bearer_at_backend(&self, target: &str) -> String {
        let req = self
            .wait_for_backend(IO_TIMEOUT, |r| r.target == target)
            .unwrap_or_else(|| panic!("the backend never saw {target}"));
        let last = self
            .backend
            .requests()
            .into_iter()
            .rev()
            .find(|r| r.target == target)
            .unwrap_or(req);
        bearer(last.header("authorization")).unwrap_or_else(|| {
            panic!(
                "the backend request to {target} has no bearer token: {:?}",
                last.head.headers
            )
        })
    }
}

/// The gateway's back-channel logout endpoint and probes of one session.
impl Stack {
    /// `POST /backchannel/logout` with this form body, as a provider sends it, on a new
    /// connection.
    pub fn post_backchannel(&self, body: &str) -> Response {
        Client::connect(self.gateway.addr()).request(
            format!(
                "POST /backchannel/logout HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                self.port,
                body.len()
            )
            .as_bytes(),
        )
    }

    /// `POST /backchannel/logout` with `logout_token=<token>`.
    pub fn post_logout_token(&self, token: &str) -> Response {
        self.post_backchannel(&encode_form(&[("logout_token", token)]))
    }

    /// A navigation to `path` carrying only this SESSION cookie, on a new connection (so
    /// the gateway's workers share the probes).
    pub fn with_session(&self, session: &str, path: &str) -> Response {
        let mut b = Browser::without_keep_alive();
        b.set_cookie(&self.url("/"), "SESSION", session);
        b.navigate(&self.url(path))
    }

    /// Asserts the session still leads to the backend.
    pub fn assert_session_works(&self, session: &str, context: &str) {
        let path = format!("/app/probe/{}", random_token(6));
        let r = self.with_session(session, &path);
        assert_eq!(
            r.status,
            200,
            "{context}: the session must still work, got {} {}",
            r.status,
            r.text()
        );
        assert_eq!(
            self.backend_requests_to(&path).len(),
            1,
            "{context}: the probe did not reach the backend"
        );
    }

    /// Polls (bounded) until the session's cookie leads to the login again; asserts that
    /// redirect and that the backend never saw the final probe.
    pub fn wait_until_session_ended(&self, session: &str, within: Duration, context: &str) {
        let deadline = Instant::now() + within;
        loop {
            let path = format!("/app/probe/{}", random_token(6));
            let r = self.with_session(session, &path);
            if r.status == 302 {
                self.assert_login_redirect(&r, context);
                assert!(self.backend_requests_to(&path).is_empty());
                return;
            }
            assert_eq!(r.status, 200, "{context}: probe answered {}", r.text());
            assert!(
                Instant::now() < deadline,
                "{context}: the session still works after {within:?}"
            );
            thread::sleep(Duration::from_millis(50));
        }
    }
}

/// The worker that owns a session: the first byte of the decoded SESSION cookie (any
/// worker can tell where a cookie's session lives without a lookup).
pub fn session_owner(session: &str) -> u8 {
    use base64::Engine as _;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(session)
        .unwrap_or_else(|e| panic!("SESSION cookie {session:?} is not base64url: {e}"));
    bytes[0]
}

/// How the gateway's logs name a session: `w<owner>-` and 12 hex digits of the SHA-256 of
/// its id (computed here independently, so a log line can be matched without the gateway
/// ever writing the cookie value).
pub fn session_reference(session: &str) -> String {
    use base64::Engine as _;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(session)
        .unwrap_or_else(|e| panic!("SESSION cookie {session:?} is not base64url: {e}"));
    let d = ring::digest::digest(&ring::digest::SHA256, &bytes);
    let hex: String = d.as_ref()[..6].iter().map(|b| format!("{b:02x}")).collect();
    format!("w{}-{hex}", bytes[0])
}

/// A file in the test target's temporary directory, removed on drop.
pub struct TempFile {
    pub path: PathBuf,
}

impl TempFile {
    pub fn new(suffix: &str, content: &str) -> TempFile {
        let path = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!(
            "sessiongate-it-{}-{}{suffix}",
            std::process::id(),
            random_token(6)
        ));
        std::fs::write(&path, content).expect("write temp file");
        TempFile { path }
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Whether a response leaves the browser without a (new) session: no `Set-Cookie: SESSION`
/// other than one that deletes it.
pub fn sets_no_session(r: &Response) -> bool {
    set_cookie(r, "SESSION").map_or(true, |c| c.is_removal() || c.value.is_empty())
}
