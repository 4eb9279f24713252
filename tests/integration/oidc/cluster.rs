//! The shared session store (`sessiongate.session-store: redis`) across instances: one
//! provider, one recording backend, one `redis-server` and three gateways (A, B, C), each
//! on its own port with the same configuration apart from the port, two workers each and
//! a management listener.
//!
//! A browser that logged in at A talks to B by carrying its SESSION cookie over (the
//! browser's jar is per `host:port`, a load balancer's clients see one origin). Every wait
//! is a bounded poll; the "within about a second" of the cluster's end notices is checked
//! as "within 2 s", the only sleeps show that nothing more follows an effect.

use std::thread;
use std::time::{Duration, Instant};

use base64::Engine as _;

use crate::backend::{Backend, Request};
use crate::client::Response;
use crate::harness::{quote, Gateway};
use crate::oidc::browser::{set_cookie, Browser, Login, Url};
use crate::oidc::cluster_redis::{contains, keys_dump};
use crate::oidc::provider::{bearer, random_token, Provider, ProviderOpts};
use crate::oidc::stack::{
    assert_login_redirect_to, requests_to, reserve_port, sets_no_session, wait_until_not_503,
    Stack, StackBuilder, APP_PATH, BACKEND_LOGOUT_PATH, REGISTRATION,
};
use crate::redis_server::RedisServer;

/// `spring.session.redis.namespace`; keys are `{NAMESPACE}:...`.
const NAMESPACE: &str = "sessiongate";
/// The management listener's bearer secret.
const SECRET: &str = "cluster-admin-secret";
/// How long an end announced at one instance may take to reach the others (the product
/// promises about a second).
const END_NOTICE: Duration = Duration::from_secs(2);
/// How long an asynchronous effect (a backend call, a restart, readiness) may take.
const EFFECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a gateway may take from its listening line to serving logins.
const READY_TIMEOUT: Duration = Duration::from_secs(20);
/// The login-binding cookie over plain http.
const LOGIN_COOKIE: &str = "SESSIONGATE-LOGIN";

/// Index names in messages.
const NAMES: [&str; 5] = ["A", "B", "C", "D", "E"];

pub struct ClusterBuilder {
    builders: Vec<StackBuilder>,
    provider: ProviderOpts,
    grace_sec: u64,
}

impl ClusterBuilder {
    /// Applies `f` to every gateway's configuration.
    pub fn each(mut self, f: impl Fn(StackBuilder) -> StackBuilder) -> Self {
        self.builders = self.builders.into_iter().map(&f).collect();
        self
    }

    /// Sets a `cg.*` key at every gateway.
    pub fn cg(self, key: &str, value: impl ToString) -> Self {
        let v = value.to_string();
        self.each(|b| b.cg(key, &v))
    }

    /// Sets a `sessiongate.*` key at every gateway.
    pub fn set(self, key: &str, value: impl ToString) -> Self {
        let v = value.to_string();
        self.each(|b| b.set(key, &v))
    }

    /// Changes the provider's options (token lifetimes, rotation).
    pub fn provider(mut self, f: impl FnOnce(ProviderOpts) -> ProviderOpts) -> Self {
        self.provider = f(self.provider);
        self
    }

    /// `redis-outage-grace-sec`.
    pub fn grace(mut self, secs: u64) -> Self {
        self.grace_sec = secs;
        self
    }

    /// The back-channel logout route at every gateway; the provider sends its own logout
    /// tokens to the last one (it knows one URI per client).
    pub fn backchannel_logout(mut self) -> Self {
        let last = self.builders.last().map(|b| b.port()).expect("a gateway");
        self.provider = self
            .provider
            .backchannel_logout_uri(&format!("http://127.0.0.1:{last}/backchannel/logout"));
        self.each(StackBuilder::backchannel_logout)
    }

    /// Starts redis-server, provider, backend and the gateways, and waits until every
    /// gateway is ready.
    pub fn start(self) -> Cluster {
        let redis = RedisServer::start();
        let provider = Provider::start(self.provider);
        let backend = Backend::recording();
        let key = {
            let mut k = [0u8; 32];
            ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut k).unwrap();
            base64::engine::general_purpose::STANDARD.encode(k)
        };
        let builders: Vec<StackBuilder> = self
            .builders
            .into_iter()
            .map(|b| {
                b.set("session-store", "redis")
                    .set("session-encryption-keys", format!("[{}]", quote(&key)))
                    .set("redis-outage-grace-sec", self.grace_sec)
                    .management(Some(SECRET))
                    .set_top("spring.data.redis.host", "127.0.0.1")
                    .set_top("spring.data.redis.port", redis.port)
                    .set_top("spring.session.redis.namespace", NAMESPACE)
            })
            .collect();
        let mut c = Cluster {
            gateways: Vec::new(),
            retired: Vec::new(),
            builders,
            backend,
            provider,
            redis,
        };
        for i in 0..c.builders.len() {
            let gw = c.spawn(i);
            c.gateways.push(Some(gw));
        }
        for i in 0..c.builders.len() {
            c.wait_ready(i);
        }
        c
    }
}

/// Field order is drop order: the gateways stop before the servers they use.
pub struct Cluster {
    gateways: Vec<Option<Gateway>>,
    /// Stopped or killed gateways, kept for their stderr.
    retired: Vec<Gateway>,
    builders: Vec<StackBuilder>,
    pub backend: Backend,
    pub provider: Provider,
    pub redis: RedisServer,
}

impl Cluster {
    /// Three gateways; `cg.sessionCheckIntervalMs: 100`, two workers and a management
    /// listener each, `redis-outage-grace-sec: 30`.
    pub fn builder() -> ClusterBuilder {
        Cluster::builder_of(3)
    }

    pub fn builder_of(n: usize) -> ClusterBuilder {
        let ports: Vec<u16> = (0..n).map(|_| reserve_port()).collect();
        let mut provider = ProviderOpts::for_gateway(ports[0]);
        provider.redirect_uris = ports
            .iter()
            .map(|p| format!("http://127.0.0.1:{p}/login/oauth2/code/{REGISTRATION}"))
            .collect();
        provider.post_logout_redirect_uris = ports
            .iter()
            .map(|p| format!("http://127.0.0.1:{p}/"))
            .collect();
        ClusterBuilder {
            builders: ports
                .iter()
                .map(|&p| {
                    Stack::builder_on(p)
                        .workers(2)
                        .cg("sessionCheckIntervalMs", 100)
                })
                .collect(),
            provider,
            grace_sec: 30,
        }
    }

    pub fn start() -> Cluster {
        Cluster::builder().start()
    }

    pub fn len(&self) -> usize {
        self.builders.len()
    }

    fn spawn(&mut self, i: usize) -> Gateway {
        let issuer = self.provider.issuer();
        self.builders[i].start_gateway_for(&issuer, &self.backend)
    }

    /// Gateway `i` (panics when it is stopped).
    pub fn gw(&self, i: usize) -> &Gateway {
        self.gateways[i]
            .as_ref()
            .unwrap_or_else(|| panic!("gateway {} is not running", NAMES[i]))
    }

    pub fn port(&self, i: usize) -> u16 {
        self.builders[i].port()
    }

    /// `http://127.0.0.1:PORT_i` + `target`.
    pub fn url(&self, i: usize, target: &str) -> Url {
        Url::parse(&format!("http://127.0.0.1:{}{target}", self.port(i)))
    }

    /// GET `/actuator/health/readiness` at gateway `i`'s management listener.
    pub fn readiness(&self, i: usize) -> u16 {
        self.gw(i)
            .admin("GET", "/actuator/health/readiness", None)
            .status
    }

    /// Waits (bounded) until readiness answers `status` at gateway `i`.
    pub fn wait_readiness(&self, i: usize, status: u16, within: Duration, context: &str) {
        let deadline = Instant::now() + within;
        loop {
            let got = self.readiness(i);
            if got == status {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{context}: readiness at {} still {got} after {within:?}, expected {status}; {}",
                NAMES[i],
                busy_threads(self.gw(i).pid())
            );
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// Readiness 200, then navigations on new connections (spread over the workers) until
    /// several in a row are not 503: every worker knows the provider and the store.
    fn wait_ready(&self, i: usize) {
        self.wait_readiness(i, 200, READY_TIMEOUT, "start");
        wait_until_not_503(&self.url(i, "/__sessiongate_it_probe"), READY_TIMEOUT);
    }

    /// SIGTERM to gateway `i`; waits for it to exit.
    pub fn stop(&mut self, i: usize) {
        self.end(i, libc::SIGTERM);
    }

    /// SIGKILL to gateway `i` (no goodbye to anyone); waits for it to be reaped.
    pub fn kill(&mut self, i: usize) {
        self.end(i, libc::SIGKILL);
    }

    fn end(&mut self, i: usize, sig: i32) {
        let mut gw = self.gateways[i]
            .take()
            .unwrap_or_else(|| panic!("gateway {} is not running", NAMES[i]));
        gw.signal(sig);
        let status = gw.wait_exit(EFFECT_TIMEOUT);
        assert!(
            status.is_some(),
            "gateway {} did not exit after signal {sig}",
            NAMES[i]
        );
        self.retired.push(gw);
    }

    /// Starts gateway `i` again (same configuration, same port) after [`Cluster::stop`] or
    /// [`Cluster::kill`]; waits until it is ready.
    pub fn restart(&mut self, i: usize) {
        if self.gateways[i].is_some() {
            self.stop(i);
        }
        let gw = self.spawn(i);
        self.gateways[i] = Some(gw);
        self.wait_ready(i);
    }

    /// A new browser logged in as `user` at gateway `i`, starting from [`APP_PATH`].
    pub fn login_at(&self, i: usize, user: &str) -> (Browser, Login) {
        let mut b = Browser::new();
        let login = b.login(&self.url(i, APP_PATH), user);
        assert_eq!(
            login.response.status, 200,
            "{user}'s first page after the login at {}",
            NAMES[i]
        );
        (b, login)
    }

    /// Gives `b` its SESSION cookie of gateway `from` at gateway `to` too (as one origin
    /// behind a load balancer would).
    pub fn carry_session(&self, b: &mut Browser, from: usize, to: usize) {
        let session = b
            .cookie(&self.url(from, "/"), "SESSION")
            .unwrap_or_else(|| panic!("the browser holds no SESSION for {}", NAMES[from]));
        b.set_cookie(&self.url(to, "/"), "SESSION", &session);
    }

    /// A navigation to `path` at gateway `i` carrying only this SESSION cookie, on a new
    /// connection (so the gateway's workers share the probes).
    pub fn with_session(&self, i: usize, session: &str, path: &str) -> Response {
        let mut b = Browser::without_keep_alive();
        b.set_cookie(&self.url(i, "/"), "SESSION", session);
        let url = self.url(i, path);
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| b.navigate(&url))).unwrap_or_else(
            |_| {
                panic!(
                    "gateway {} gave no answer to GET {url} with a SESSION cookie (the read \
                     timed out: the worker serving that session is stuck); {}",
                    NAMES[i],
                    busy_threads(self.gw(i).pid())
                )
            },
        )
    }

    /// A `fetch()` (not a navigation) with only this SESSION cookie.
    pub fn fetch_with_session(&self, i: usize, session: &str, path: &str) -> Response {
        let mut b = Browser::without_keep_alive();
        b.set_cookie(&self.url(i, "/"), "SESSION", session);
        b.fetch(&self.url(i, path))
    }

    /// Backend requests whose path is `path` (the query ignored).
    pub fn backend_requests_to(&self, path: &str) -> Vec<Request> {
        requests_to(&self.backend, path)
    }

    /// Asserts the session leads to the backend through gateway `i`; returns the backend's
    /// request.
    pub fn assert_session_works(&self, i: usize, session: &str, context: &str) -> Request {
        let path = format!("/app/probe/{}", random_token(6));
        let r = self.with_session(i, session, &path);
        assert_eq!(
            r.status,
            200,
            "{context}: the session must work at {}, got {} {:?}\n{}",
            NAMES[i],
            r.status,
            r.head.headers,
            r.text()
        );
        let seen = self.backend_requests_to(&path);
        assert_eq!(
            seen.len(),
            1,
            "{context}: the probe at {} did not reach the backend once",
            NAMES[i]
        );
        seen.into_iter().next().unwrap()
    }

    /// The access token the backend got with a probe of this session through gateway `i`.
    pub fn bearer_via(&self, i: usize, session: &str, context: &str) -> String {
        let req = self.assert_session_works(i, session, context);
        bearer(req.header("authorization")).unwrap_or_else(|| {
            panic!(
                "{context}: the request via {} carries no bearer token: {:?}",
                NAMES[i], req.head.headers
            )
        })
    }

    /// Asserts `r` is the 302 that starts a login at the provider.
    pub fn assert_login_redirect(&self, r: &Response, context: &str) {
        assert_login_redirect_to(&self.provider, r, context);
    }

    /// Polls (bounded) until the cookie leads to the login at gateway `i` (a navigation;
    /// the backend never sees the final probe), then asserts a `fetch()` gets 401.
    pub fn wait_until_refused(&self, i: usize, session: &str, within: Duration, context: &str) {
        let deadline = Instant::now() + within;
        loop {
            let path = format!("/app/probe/{}", random_token(6));
            let r = self.with_session(i, session, &path);
            if r.status == 302 {
                self.assert_login_redirect(&r, context);
                assert!(
                    self.backend_requests_to(&path).is_empty(),
                    "{context}: the refused probe reached the backend"
                );
                break;
            }
            assert_eq!(
                r.status,
                200,
                "{context}: probe at {} answered {} {:?}\n{}",
                NAMES[i],
                r.status,
                r.head.headers,
                r.text()
            );
            assert!(
                Instant::now() < deadline,
                "{context}: the session still works at {} after {within:?}",
                NAMES[i]
            );
            thread::sleep(Duration::from_millis(50));
        }
        let path = format!("/api/probe/{}", random_token(6));
        let r = self.fetch_with_session(i, session, &path);
        assert_eq!(
            r.status,
            401,
            "{context}: a fetch() with the ended session at {}: {:?}\n{}",
            NAMES[i],
            r.head.headers,
            r.text()
        );
        assert!(self.backend_requests_to(&path).is_empty());
    }

    /// Every gateway's stderr so far (running and retired), for "no panic" checks.
    pub fn all_stderr(&self) -> String {
        self.gateways
            .iter()
            .flatten()
            .chain(self.retired.iter())
            .map(|g| format!("--- {} ---\n{}", g.addr(), g.stderr()))
            .collect()
    }

    /// A login started at gateway `start` (its redirect to the provider, the sign-in
    /// there) and finished at gateway `finish`: the provider's redirect to the callback is
    /// delivered to `finish`'s port, with the login-binding cookie carried over. Returns
    /// the callback's answer and the browser (holding the SESSION for `finish`, if set).
    pub fn login_across(
        &self,
        start: usize,
        finish: usize,
        user: &str,
    ) -> (Browser, Response, Url) {
        let mut b = Browser::new();
        let auth = b.start_login(&self.url(start, APP_PATH));
        let binding = b
            .cookie(&self.url(start, "/"), LOGIN_COOKIE)
            .unwrap_or_else(|| {
                panic!(
                    "the login start at {} set no {LOGIN_COOKIE} cookie; history:\n{}",
                    NAMES[start],
                    b.history.join("\n")
                )
            });
        let callback = b.authorize(&auth, user);
        assert_eq!(
            callback.port,
            self.port(start),
            "the provider must redirect to the gateway the login started at: {callback}"
        );
        let mut elsewhere = callback.clone();
        elsewhere.port = self.port(finish);
        b.set_cookie(&self.url(finish, "/"), LOGIN_COOKIE, &binding);
        let r = b.callback(&elsewhere);
        (b, r, elsewhere)
    }
}

/// The name of gateway `i` in messages.
fn name(i: usize) -> &'static str {
    NAMES[i]
}

/// CPU time each thread of process `pid` used over half a second (from /proc), for
/// failure messages: a worker thread near 50 ticks is spinning.
fn busy_threads(pid: i32) -> String {
    let sample = || -> Vec<(String, u64)> {
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
            return Vec::new();
        };
        tasks
            .flatten()
            .filter_map(|t| {
                let stat = std::fs::read_to_string(t.path().join("stat")).ok()?;
                let comm = std::fs::read_to_string(t.path().join("comm")).ok()?;
                let f: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
                let ticks = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
                Some((comm.trim().to_string(), ticks))
            })
            .collect()
    };
    let before = sample();
    thread::sleep(Duration::from_millis(500));
    let used: Vec<String> = sample()
        .into_iter()
        .map(|(name, t)| {
            let t0 = before
                .iter()
                .find(|(n, _)| *n == name)
                .map_or(0, |(_, t0)| *t0);
            format!("{name}={}", t.saturating_sub(t0))
        })
        .collect();
    format!(
        "CPU ticks (1/100 s) per thread over 0.5 s: {}",
        used.join(" ")
    )
}

/// Asserts `r` is a 503 with a `Retry-After`.
fn assert_503_retry_after(r: &Response, context: &str) {
    assert_eq!(
        r.status,
        503,
        "{context}: {:?}\n{}",
        r.head.headers,
        r.text()
    );
    assert!(
        r.header("retry-after").is_some(),
        "{context}: 503 without Retry-After: {:?}",
        r.head.headers
    );
}

/// Waits (bounded) until the backend saw `n` calls to `cg.censhareLogoutUrl`; returns them.
fn wait_for_backend_logouts(c: &Cluster, n: usize, context: &str) -> Vec<Request> {
    let deadline = Instant::now() + EFFECT_TIMEOUT;
    loop {
        let calls = c.backend_requests_to(BACKEND_LOGOUT_PATH);
        if calls.len() >= n {
            return calls;
        }
        assert!(
            Instant::now() < deadline,
            "{context}: cg.censhareLogoutUrl called {} times after {EFFECT_TIMEOUT:?}, expected {n}",
            calls.len()
        );
        thread::sleep(Duration::from_millis(20));
    }
}

/// After an effect happened once: waits a while (many check intervals, past the ends
/// stream's notice) and asserts it did not happen again.
fn assert_backend_logouts_stay(c: &Cluster, n: usize, context: &str) {
    thread::sleep(Duration::from_secs(3));
    let calls = c.backend_requests_to(BACKEND_LOGOUT_PATH);
    assert_eq!(
        calls.len(),
        n,
        "{context}: cg.censhareLogoutUrl must be called exactly {n} time(s): {:?}",
        calls.iter().map(|r| &r.head.headers).collect::<Vec<_>>()
    );
}

// ---------------------------------------------------------------------------------------------
// Scenarios

/// A session made at A serves requests at B and C, with the same access token at the
/// backend as via A.
#[test]
fn a_session_made_at_one_instance_is_served_by_every_instance() {
    let c = Cluster::start();
    let (_, alice) = c.login_at(0, "alice");
    let via_a = c.bearer_via(0, &alice.session, "alice via A");
    for i in [1, 2] {
        let token = c.bearer_via(i, &alice.session, "alice");
        assert_eq!(
            token,
            via_a,
            "the backend must get the session's access token via {} as via A",
            name(i)
        );
    }
    // And back: A still serves it after the others loaded it.
    assert_eq!(c.bearer_via(0, &alice.session, "alice via A again"), via_a);
}

/// `POST /logout` at B ends a session made at A: the cookie is refused at A and C within
/// the end notice, and the backend's logout URL is called once.
#[test]
fn logout_at_one_instance_ends_the_session_at_the_others() {
    let c = Cluster::start();
    let (mut b, alice) = c.login_at(0, "alice");
    let (_, bob) = c.login_at(1, "bob");
    for i in 0..3 {
        c.assert_session_works(i, &alice.session, "alice before the logout");
    }
    c.carry_session(&mut b, 0, 1);
    let r = b.post_form(&c.url(1, "/logout"), &[]);
    assert_eq!(
        r.status,
        302,
        "POST /logout at B: {} {}",
        r.status,
        r.text()
    );
    let cookie = set_cookie(&r, "SESSION").unwrap_or_else(|| {
        panic!(
            "logout must delete the SESSION cookie: {:?}",
            r.head.headers
        )
    });
    assert!(cookie.is_removal(), "{cookie:?}");
    for i in [0, 2, 1] {
        c.wait_until_refused(i, &alice.session, END_NOTICE, "alice after logout at B");
    }
    for i in 0..3 {
        c.assert_session_works(i, &bob.session, "bob after alice's logout");
    }
    wait_for_backend_logouts(&c, 1, "alice's logout");
    assert_backend_logouts_stay(&c, 1, "alice's logout");
}

/// A provider-signed logout token POSTed to C's back-channel route ends a session made at
/// A (and used at B): refused at A and B.
#[test]
fn backchannel_logout_at_one_instance_ends_the_session_at_the_others() {
    let c = Cluster::builder().backchannel_logout().start();
    let (_, alice) = c.login_at(0, "alice");
    let (_, bob) = c.login_at(0, "bob");
    c.assert_session_works(1, &alice.session, "alice at B before the logout token");
    let sid = c.provider.sid_of("alice");
    let token = c
        .provider
        .sign_logout(c.provider.logout_claims(Some("alice"), Some(&sid)));
    let body = crate::oidc::browser::encode_form(&[("logout_token", token.as_str())]);
    let r = crate::client::Client::connect(c.gw(2).addr()).request(
        format!(
            "POST /backchannel/logout HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            c.port(2),
            body.len()
        )
        .as_bytes(),
    );
    assert_eq!(r.status, 200, "logout token at C: {}", r.text());
    for i in [0, 1, 2] {
        c.wait_until_refused(
            i,
            &alice.session,
            END_NOTICE,
            "alice after the logout token at C",
        );
    }
    for i in 0..3 {
        c.assert_session_works(i, &bob.session, "bob after alice's logout token");
    }
}

/// `DELETE /actuator/sessions/<id>` at B's management listener ends a session made at A
/// that B has served too: refused everywhere, unknown to A's admin API afterwards.
#[test]
fn admin_delete_at_an_instance_that_served_the_session_ends_it_everywhere() {
    let c = Cluster::start();
    let (_, alice) = c.login_at(0, "alice");
    let (_, bob) = c.login_at(0, "bob");
    c.assert_session_works(1, &alice.session, "alice at B before the delete");
    c.assert_session_works(2, &alice.session, "alice at C before the delete");
    admin_delete_ends(&c, 1, &alice.session);
    c.assert_session_works(1, &bob.session, "bob after alice's delete");
}

/// The same at an instance that never served the session: any instance serves any
/// session, so its admin API must find and end it too (an operator's DELETE reaches
/// whichever instance the load balancer picks).
#[test]
fn admin_delete_at_an_instance_that_never_served_the_session_ends_it_everywhere() {
    let c = Cluster::start();
    let (_, alice) = c.login_at(0, "alice");
    c.assert_session_works(2, &alice.session, "alice at C before the delete");
    admin_delete_ends(&c, 1, &alice.session);
}

/// DELETE of `session` at gateway `at`'s management listener: 204, then refused at every
/// gateway within the end notice, and 404 at every admin API.
fn admin_delete_ends(c: &Cluster, at: usize, session: &str) {
    let target = format!("/actuator/sessions/{session}");
    let r = c.gw(at).admin("DELETE", &target, Some(SECRET));
    assert_eq!(
        r.status,
        204,
        "DELETE at {} of a session made at A: {}",
        name(at),
        r.text()
    );
    for i in 0..c.len() {
        c.wait_until_refused(i, session, END_NOTICE, "the session after the admin DELETE");
    }
    for i in 0..c.len() {
        let r = c.gw(i).admin("GET", &target, Some(SECRET));
        assert_eq!(
            r.status,
            404,
            "GET at {} after the DELETE: {}",
            name(i),
            r.text()
        );
    }
}

/// The follower of the ends stream keeps its connection while nothing happens: its
/// blocking read must not run into the command timeout (`spring.data.redis.timeout`,
/// 2 s by default), or every worker drops and re-opens the connection and re-checks its
/// whole cache every few seconds.
#[test]
fn an_idle_cluster_keeps_its_redis_connections() {
    let c = Cluster::builder_of(1).start();
    let (_, alice) = c.login_at(0, "alice");
    thread::sleep(Duration::from_secs(3));
    c.assert_session_works(0, &alice.session, "alice after 3 idle seconds");
    let lost: Vec<String> = crate::harness::strip_ansi(&c.gw(0).stderr())
        .lines()
        .filter(|l| l.contains("redis connection lost"))
        .map(str::to_string)
        .collect();
    assert!(
        lost.is_empty(),
        "the gateway lost its Redis connections with Redis up and idle:\n{}",
        lost.join("\n")
    );
}

/// Idle expiry with `expiredSessionFullLogout`: a session used at A and B expires once for
/// the cluster: the backend's logout URL is called once and the grant revoked once.
#[test]
fn idle_expiry_is_claimed_once_for_the_cluster() {
    let c = Cluster::builder()
        .cg("sessionTimeoutSec", 2)
        .cg("expiredSessionFullLogout", true)
        .start();
    let (_, alice) = c.login_at(0, "alice");
    let token = c.bearer_via(1, &alice.session, "alice at B");
    assert!(c.backend_requests_to(BACKEND_LOGOUT_PATH).is_empty());

    let calls = wait_for_backend_logouts(&c, 1, "alice's expiry");
    assert_eq!(
        bearer(calls[0].header("authorization")).as_deref(),
        Some(token.as_str()),
        "the backend logout carries the session's access token"
    );
    for i in 0..3 {
        c.wait_until_refused(i, &alice.session, END_NOTICE, "alice after her expiry");
    }
    assert_backend_logouts_stay(&c, 1, "alice's expiry");
    let revoked = c.provider.events_named("grant.revoked");
    assert_eq!(
        revoked.len(),
        1,
        "the expiry must revoke the grant once: {revoked:?}"
    );
}

/// `cg.maxSessions: 2` counts the cluster's sessions: logins at A and B succeed, a third
/// at C gets the 503 page with Retry-After and no session.
#[test]
fn max_sessions_counts_across_instances() {
    let c = Cluster::builder().cg("maxSessions", 2).start();
    let (_, alice) = c.login_at(0, "alice");
    let (_, bob) = c.login_at(1, "bob");
    let (_, r, _) = c.login_across(2, 2, "carol");
    assert_503_retry_after(&r, "a third login at C with maxSessions 2");
    assert!(sets_no_session(&r), "{:?}", r.head.headers);
    c.assert_session_works(2, &alice.session, "alice after the refusal");
    c.assert_session_works(2, &bob.session, "bob after the refusal");
}

/// `max-sessions-per-user: 1` counts a user's sessions across instances: alice's second
/// login, at B, ends her first one, made at A, everywhere.
#[test]
fn max_sessions_per_user_counts_across_instances() {
    let c = Cluster::builder().set("max-sessions-per-user", 1).start();
    let (_, first) = c.login_at(0, "alice");
    c.assert_session_works(2, &first.session, "alice's first session at C");
    let (_, second) = c.login_at(1, "alice");
    for i in [0, 2, 1] {
        c.wait_until_refused(i, &first.session, END_NOTICE, "alice's first session");
    }
    for i in 0..3 {
        c.assert_session_works(i, &second.session, "alice's second session");
    }
}

/// A login started at A (redirect to the provider, sign-in) and finished at B (the
/// provider's redirect delivered to B's callback with the login-binding cookie): the
/// session works at B and at A.
#[test]
fn a_login_started_at_one_instance_finishes_at_another() {
    let c = Cluster::start();
    let (mut b, r, callback) = c.login_across(0, 1, "alice");
    assert_eq!(
        r.status,
        302,
        "the callback at B of a login started at A: {:?}\n{}",
        r.head.headers,
        r.text()
    );
    let session = set_cookie(&r, "SESSION")
        .filter(|s| !s.is_removal() && !s.value.is_empty())
        .unwrap_or_else(|| panic!("the callback at B set no SESSION: {:?}", r.head.headers))
        .value;
    let back = callback.join(r.header("location").expect("302 without Location"));
    assert_eq!(back.target, APP_PATH, "back to where the login started");
    let page = b.navigate(&back);
    assert_eq!(page.status, 200, "the first page at B: {}", page.text());
    assert_eq!(c.backend_requests_to("/app/home").len(), 1);
    c.assert_session_works(1, &session, "alice at B");
    c.assert_session_works(0, &session, "alice at A");
}

/// SIGKILL of A: B and C keep serving a session made at A.
#[test]
fn sessions_survive_the_instance_that_made_them() {
    let mut c = Cluster::start();
    let (_, alice) = c.login_at(0, "alice");
    let token = c.bearer_via(0, &alice.session, "alice at A");
    c.kill(0);
    for i in [1, 2] {
        assert_eq!(
            c.bearer_via(i, &alice.session, "alice after A was killed"),
            token
        );
    }
    c.restart(0);
    assert_eq!(c.bearer_via(0, &alice.session, "alice at the new A"), token);
}

/// Every instance stopped (SIGTERM), then started again: the sessions are still there.
#[test]
fn sessions_survive_a_restart_of_every_instance() {
    let mut c = Cluster::start();
    let (_, alice) = c.login_at(0, "alice");
    let (_, bob) = c.login_at(1, "bob");
    let alice_token = c.bearer_via(2, &alice.session, "alice at C");
    let bob_token = c.bearer_via(2, &bob.session, "bob at C");
    for i in 0..c.len() {
        c.stop(i);
    }
    for i in 0..c.len() {
        c.restart(i);
    }
    for i in 0..c.len() {
        assert_eq!(
            c.bearer_via(i, &alice.session, "alice after the restart"),
            alice_token
        );
        assert_eq!(
            c.bearer_via(i, &bob.session, "bob after the restart"),
            bob_token
        );
    }
    assert!(
        c.backend_requests_to(BACKEND_LOGOUT_PATH).is_empty(),
        "a restart is no logout"
    );
}

/// Redis killed while sessions exist: no panic, readiness 503 everywhere, cached sessions
/// served within the grace, new logins 503. Redis back (empty: the test server keeps no
/// data): readiness 200 again, the cached sessions, no longer in Redis, are refused, and
/// new logins work.
#[test]
fn redis_outage_and_recovery() {
    let mut c = Cluster::builder().grace(60).start();
    let (_, alice) = c.login_at(0, "alice");
    for i in 0..3 {
        c.assert_session_works(i, &alice.session, "alice before the outage");
    }

    c.redis.kill();
    for i in 0..3 {
        c.wait_readiness(i, 503, Duration::from_secs(5), "Redis down");
    }
    for i in 0..3 {
        c.assert_session_works(i, &alice.session, "alice (cached) while Redis is down");
    }
    for i in 0..3 {
        let r = Browser::new().navigate(&c.url(i, APP_PATH));
        assert_503_retry_after(
            &r,
            &format!("a new login at {} while Redis is down", name(i)),
        );
    }
    let stderr = c.all_stderr();
    assert!(
        !stderr.contains("panicked"),
        "a gateway panicked:\n{stderr}"
    );

    c.redis.restart();
    for i in 0..3 {
        c.wait_readiness(i, 200, EFFECT_TIMEOUT, "Redis back");
    }
    for i in 0..3 {
        c.wait_until_refused(
            i,
            &alice.session,
            Duration::from_secs(5),
            "alice, gone from the restarted Redis",
        );
    }
    let (_, bob) = c.login_at(1, "bob");
    for i in 0..3 {
        c.assert_session_works(i, &bob.session, "bob, logged in after the recovery");
    }
    let stderr = c.all_stderr();
    assert!(
        !stderr.contains("panicked"),
        "a gateway panicked:\n{stderr}"
    );
}

/// What the store writes to Redis holds no token text and no cookie value: every key and
/// every value (read by type, and DUMPed) is searched for the access token the backend
/// got, the refresh token the provider issued, any JWT, the SESSION cookie values and the
/// login-binding cookie of a pending login.
#[test]
fn redis_holds_no_token_and_no_cookie_value() {
    let c = Cluster::builder().backchannel_logout().start();
    let (_, alice) = c.login_at(0, "alice");
    let access = c.bearer_via(1, &alice.session, "alice at B");
    let (mut b, bob) = c.login_at(2, "bob");
    // An ended session (the ends stream, tombstones) and a pending login.
    c.carry_session(&mut b, 2, 1);
    let r = b.post_form(&c.url(1, "/logout"), &[]);
    assert_eq!(r.status, 302, "bob's logout: {}", r.text());
    let id_token = c
        .url(1, "/logout")
        .join(r.header("location").unwrap())
        .param("id_token_hint")
        .expect("an id_token_hint");
    let mut pending = Browser::new();
    pending.start_login(&c.url(0, APP_PATH));
    let binding = pending
        .cookie(&c.url(0, "/"), LOGIN_COOKIE)
        .expect("a login-binding cookie");
    wait_for_backend_logouts(&c, 1, "bob's logout");

    let mut secrets: Vec<(String, Vec<u8>)> = vec![
        ("alice's access token".into(), access.into_bytes()),
        ("bob's ID token".into(), id_token.into_bytes()),
        ("alice's SESSION".into(), alice.session.clone().into_bytes()),
        ("bob's SESSION".into(), bob.session.clone().into_bytes()),
        ("a login binding".into(), binding.into_bytes()),
        ("a JWT".into(), b"eyJ".to_vec()),
    ];
    for t in c.provider.refresh_tokens_of("alice") {
        secrets.push(("alice's refresh token".into(), t.into_bytes()));
    }
    for s in [&alice.session, &bob.session] {
        let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(s)
            .expect("SESSION is base64url");
        secrets.push(("a session id's bytes".into(), raw));
    }

    let dump = keys_dump(c.redis.addr());
    assert!(!dump.is_empty(), "Redis holds nothing");
    let prefix = format!("{{{NAMESPACE}}}:");
    for k in &dump {
        assert!(
            k.key.starts_with(&prefix),
            "a key outside the namespace: {:?}",
            k.key
        );
        for (what, secret) in &secrets {
            assert!(
                !contains(k.key.as_bytes(), secret),
                "{what} in the key name {:?}",
                k.key
            );
            for part in &k.parts {
                assert!(
                    !contains(part, secret),
                    "{what} in the {} value of {:?}: {:?}",
                    k.kind,
                    k.key,
                    String::from_utf8_lossy(part)
                );
            }
        }
    }
    let kinds: Vec<String> = dump
        .iter()
        .map(|k| format!("{} {}", k.kind, k.key))
        .collect();
    assert!(
        dump.iter().any(|k| k.kind == "stream"),
        "no ends stream after a logout: {kinds:?}"
    );
}

/// Past `redis-outage-grace-sec` (here 1 s) a cached session is no longer served while
/// Redis is away: 503 with Retry-After, at the instance that made it and at one that
/// loaded it; nothing reaches the backend.
#[test]
fn cached_sessions_are_refused_after_the_outage_grace() {
    let mut c = Cluster::builder_of(2).grace(1).start();
    let (_, alice) = c.login_at(0, "alice");
    c.assert_session_works(1, &alice.session, "alice at B before the outage");
    c.redis.kill();
    for i in 0..c.len() {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let path = format!("/app/probe/{}", random_token(6));
            let r = c.with_session(i, &alice.session, &path);
            if r.status == 503 {
                assert_503_retry_after(&r, "a cached session past the outage grace");
                assert!(c.backend_requests_to(&path).is_empty());
                break;
            }
            assert_eq!(
                r.status,
                200,
                "alice at {} during the grace: {}",
                name(i),
                r.text()
            );
            assert!(
                Instant::now() < deadline,
                "alice is still served at {} 5 s into an outage with a 1 s grace",
                name(i)
            );
            thread::sleep(Duration::from_millis(100));
        }
    }
    let stderr = c.all_stderr();
    assert!(
        !stderr.contains("panicked"),
        "a gateway panicked:\n{stderr}"
    );
}

/// Short access tokens (4 s) with refresh-token rotation, one session used at all three
/// instances at once when its token expires: one refresh at the provider for the cluster,
/// every instance forwards the new token, and no refresh token is sent twice (the provider
/// would revoke the grant).
#[test]
fn a_refresh_is_single_flight_across_instances() {
    let c = Cluster::builder()
        .provider(|o| o.access_token_ttl(4).rotate_refresh_token(true))
        .start();
    let (_, alice) = c.login_at(0, "alice");
    let t1 = c.bearer_via(0, &alice.session, "alice at A");
    for i in 1..3 {
        assert_eq!(c.bearer_via(i, &alice.session, "alice before expiry"), t1);
    }
    let before = c.provider.refresh_count();
    let exp = crate::oidc::provider::jwt_payload(&t1)["exp"]
        .as_i64()
        .unwrap();
    let wait = Duration::from_secs(exp.max(0) as u64) + Duration::from_millis(300);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    thread::sleep(wait.saturating_sub(now));

    let barrier = std::sync::Barrier::new(9);
    let paths: Vec<(usize, String)> = thread::scope(|scope| {
        let handles: Vec<_> = (0..9)
            .map(|n| {
                let (c, barrier, session) = (&c, &barrier, &alice.session);
                scope.spawn(move || {
                    let (i, path) = (n % 3, format!("/app/after-expiry/{n}"));
                    barrier.wait();
                    let r = c.with_session(i, session, &path);
                    assert_eq!(r.status, 200, "request {n} via {}: {}", NAMES[i], r.text());
                    (i, path)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let tokens: Vec<String> = paths
        .iter()
        .map(|(_, p)| {
            let seen = c.backend_requests_to(p);
            bearer(seen[0].header("authorization")).expect("a bearer token")
        })
        .collect();
    assert!(
        tokens.iter().all(|t| *t != t1),
        "an instance forwarded the expired token"
    );
    assert!(
        tokens.iter().all(|t| *t == tokens[0]),
        "the instances forwarded {} different tokens",
        tokens
            .iter()
            .collect::<std::collections::HashSet<_>>()
            .len()
    );
    // The provider's events are read from its output by another thread: wait for the one
    // refresh, then make sure no second one follows.
    let deadline = Instant::now() + EFFECT_TIMEOUT;
    while c.provider.refresh_count() <= before && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(20));
    }
    thread::sleep(Duration::from_millis(300));
    assert_eq!(
        c.provider.refresh_count(),
        before + 1,
        "one refresh for the cluster"
    );
    assert!(
        c.provider.events_named("grant.revoked").is_empty(),
        "a refresh token was used twice and the provider revoked the grant"
    );
}

/// The back-channel `jti` replay guard is the cluster's: a logout token accepted at C is
/// refused when replayed at A.
#[test]
fn a_logout_token_replayed_at_another_instance_is_refused() {
    let c = Cluster::builder().backchannel_logout().start();
    let (_, _alice) = c.login_at(0, "alice");
    let sid = c.provider.sid_of("alice");
    let token = c
        .provider
        .sign_logout(c.provider.logout_claims(Some("alice"), Some(&sid)));
    let post = |i: usize| {
        let body = crate::oidc::browser::encode_form(&[("logout_token", token.as_str())]);
        crate::client::Client::connect(c.gw(i).addr()).request(
            format!(
                "POST /backchannel/logout HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                c.port(i),
                body.len()
            )
            .as_bytes(),
        )
    };
    let first = post(2);
    assert_eq!(first.status, 200, "the token at C: {}", first.text());
    let replay = post(0);
    assert_eq!(
        replay.status,
        400,
        "the same token replayed at A: {}",
        replay.text()
    );
    assert!(
        replay.text().contains("replay") || replay.text().contains("jti"),
        "{}",
        replay.text()
    );
}

/// `GET /actuator/sessions?username=` at any instance lists the user's sessions of the
/// whole cluster (made at A and at B), once each, without tokens.
#[test]
fn admin_lists_a_users_sessions_of_every_instance() {
    let c = Cluster::start();
    let (_, at_a) = c.login_at(0, "alice");
    let (_, at_b) = c.login_at(1, "alice");
    let r = c
        .gw(2)
        .admin("GET", "/actuator/sessions?username=alice", Some(SECRET));
    assert_eq!(r.status, 200, "{}", r.text());
    let listed: serde_json::Value = serde_json::from_str(&r.text()).unwrap();
    let text = r.text();
    let sessions = listed["sessions"].as_array().cloned().unwrap_or_default();
    assert_eq!(
        sessions.len(),
        2,
        "alice's sessions at C's admin API: {text}"
    );
    for s in [&at_a.session, &at_b.session] {
        assert_eq!(
            text.matches(s.as_str()).count(),
            1,
            "{s} not listed once: {text}"
        );
    }
    assert!(
        !text.contains("eyJ"),
        "a token in the admin listing: {text}"
    );
}

/// Fresh tokens once a round for the cluster: a session used at all three instances in
/// every round is sent to the listener at most once per round (rounds are slices of the
/// wall clock every instance shares), not once per instance.
#[test]
fn fresh_tokens_go_once_a_round_whichever_instances_used_the_session() {
    const ROUND_MS: u64 = 1000;
    let listener = crate::oidc::listener::Listener::ok();
    let c = Cluster::builder()
        .cg("freshTokenListeners", quote(&listener.url("/fresh")))
        .cg("freshTokenSendIntervalMs", ROUND_MS)
        .start();
    let (_, alice) = c.login_at(0, "alice");
    let started = Instant::now();
    let mut n = 0;
    while started.elapsed() < Duration::from_millis(4 * ROUND_MS) {
        for i in 0..3 {
            c.assert_session_works(i, &alice.session, &format!("alice's request {n} at {i}"));
        }
        n += 1;
        thread::sleep(Duration::from_millis(50));
    }
    // The last round's sends arrive within a round or so.
    thread::sleep(Duration::from_millis(2 * ROUND_MS));
    // Used in every round of ~6 (the login's, four of requests, and the one the last
    // requests fall in): about one send a round; one per instance would be about 3 a round.
    let sends = listener.calls().len();
    assert!(
        (3..=8).contains(&sends),
        "{sends} fresh-token sends for ~6 rounds of use at three instances (one per instance \
         and round would be ~18)"
    );
}
