//! The management listener (`management.server.*`, `sessiongate.management-token`): health
//! and readiness, the bearer secret, Prometheus counters summed over the workers, and the
//! sessions admin API (list by subject, read one, end one with full logout, end a subject's).
//!
//! Readiness waits for the provider: the gateway starts against a port where nothing listens
//! yet, answers 503 until the provider is up, then 200 within its discovery backoff.

use std::collections::HashSet;
use std::thread;
use std::time::{Duration, Instant};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde_json::Value;

use crate::backend::Backend;
use crate::client::Response;
use crate::harness::Gateway;
use crate::oidc::browser::unix_now;
use crate::oidc::provider::{bearer, random_token};
use crate::oidc::stack::{session_owner, Stack, BACKEND_LOGOUT_PATH};

const SECRET: &str = "mgmt-s3cret";
const EFFECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The body as JSON; panics with the response if it is not.
fn json(r: &Response) -> Value {
    serde_json::from_slice(&r.body)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {} {}", r.status, r.text()))
}

/// The value of the sample `name` (with its labels, e.g. `x_total{code="2xx"}`) in a
/// Prometheus text page.
fn sample(page: &str, name: &str) -> Option<u64> {
    page.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .map(|v| {
            v.trim()
                .parse::<f64>()
                .unwrap_or_else(|e| panic!("{name}: {v:?} is not a number: {e}")) as u64
        })
}

fn metrics(gw: &Gateway, token: Option<&str>) -> String {
    let r = gw.admin("GET", "/actuator/prometheus", token);
    assert_eq!(r.status, 200, "/actuator/prometheus: {}", r.text());
    assert!(
        r.header("content-type")
            .is_some_and(|c| c.starts_with("text/plain")),
        "Prometheus text expected: {:?}",
        r.head.headers
    );
    r.text()
}

fn metric(gw: &Gateway, token: Option<&str>, name: &str) -> u64 {
    let page = metrics(gw, token);
    sample(&page, name).unwrap_or_else(|| panic!("no sample {name} in:\n{page}"))
}

/// Polls (bounded) until the metric has the wanted value.
fn wait_for_metric(gw: &Gateway, token: Option<&str>, name: &str, want: u64) {
    let deadline = Instant::now() + EFFECT_TIMEOUT;
    loop {
        let got = metric(gw, token, name);
        if got == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{name} is {got}, expected {want}:\n{}",
            metrics(gw, token)
        );
        thread::sleep(Duration::from_millis(20));
    }
}

/// The sessions the admin API lists for `user`.
fn sessions_of(gw: &Gateway, user: &str) -> Vec<Value> {
    let r = gw.admin(
        "GET",
        &format!("/actuator/sessions?username={user}"),
        Some(SECRET),
    );
    assert_eq!(r.status, 200, "sessions of {user}: {}", r.text());
    json(&r)["sessions"]
        .as_array()
        .unwrap_or_else(|| panic!("no `sessions` array: {}", r.text()))
        .clone()
}

fn ids(sessions: &[Value]) -> HashSet<String> {
    sessions
        .iter()
        .map(|s| s["id"].as_str().expect("session id").to_string())
        .collect()
}

/// A well-formed session id (same owner byte as `like`) that no session has.
fn unknown_id_like(like: &str) -> String {
    let mut bytes = URL_SAFE_NO_PAD.decode(like).expect("base64url session id");
    let fresh = URL_SAFE_NO_PAD
        .decode(random_token(bytes.len() - 1))
        .expect("random bytes");
    bytes[1..].copy_from_slice(&fresh);
    URL_SAFE_NO_PAD.encode(bytes)
}

#[test]
fn health_is_open_and_everything_else_needs_the_secret() {
    let backend = Backend::recording();
    let gw = Gateway::to(&backend)
        .workers(2)
        .management(Some(SECRET))
        .start();
    let addr = gw.management_addr();
    assert!(addr.ip().is_loopback(), "{addr}");
    assert_ne!(addr.port(), 0);
    assert_ne!(addr, gw.addr(), "the management listener has its own port");

    for path in [
        "/actuator/health",
        "/actuator/health/liveness",
        // No oauth2 registration: nothing to wait for.
        "/actuator/health/readiness",
    ] {
        let r = gw.admin("GET", path, None);
        assert_eq!(r.status, 200, "{path}: {}", r.text());
        assert_eq!(json(&r)["status"], "UP", "{path}: {}", r.text());
    }

    for (method, path) in [
        ("GET", "/actuator/prometheus"),
        ("GET", "/actuator/sessions?username=alice"),
        ("DELETE", "/actuator/sessions?username=alice"),
        ("GET", "/actuator/sessions/AAAAAAAAAAAAAAAAAAAAAAA"),
        ("DELETE", "/actuator/sessions/AAAAAAAAAAAAAAAAAAAAAAA"),
    ] {
        for token in [
            None,
            Some("wrong"),
            Some("mgmt-s3cre"),
            Some("mgmt-s3cret2"),
        ] {
            let r = gw.admin(method, path, token);
            assert_eq!(
                r.status,
                401,
                "{method} {path} with token {token:?}: {}",
                r.text()
            );
        }
    }
    assert_eq!(
        gw.admin("GET", "/actuator/sessions?username=alice", Some(SECRET))
            .status,
        200
    );

    // Responses are counted by every worker and summed: fresh connections spread over both.
    let before = metric(
        &gw,
        Some(SECRET),
        "sessiongate_responses_total{code=\"2xx\"}",
    );
    const N: u64 = 40;
    for i in 0..N {
        assert_eq!(gw.get(&format!("/counted/{i}")).status, 200);
    }
    // A worker counts a response once it is written, which may be just after the client
    // read it: poll for the sum.
    wait_for_metric(
        &gw,
        Some(SECRET),
        "sessiongate_responses_total{code=\"2xx\"}",
        before + N,
    );
    let page = metrics(&gw, Some(SECRET));
    for name in [
        "sessiongate_sessions_active",
        "sessiongate_sessions_created_total",
        "sessiongate_connection_handoffs_total",
        "sessiongate_sessions_ended_total{reason=\"admin\"}",
    ] {
        assert_eq!(sample(&page, name), Some(0), "{name} in:\n{page}");
    }
    assert!(
        sample(&page, "sessiongate_connections_accepted_total").unwrap_or(0) >= N,
        "{page}"
    );
}

#[test]
fn management_without_a_secret_is_open() {
    let backend = Backend::recording();
    let gw = Gateway::to(&backend).management(None).start();
    let r = gw.admin("GET", "/actuator/sessions?username=nobody", None);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(json(&r)["sessions"], serde_json::json!([]));
    let r = gw.admin("DELETE", "/actuator/sessions?username=nobody", None);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(json(&r)["ended"], 0);
    assert!(metrics(&gw, None).contains("sessiongate_responses_total"));
}

#[test]
fn readiness_waits_for_the_provider() {
    let pending = Stack::builder()
        .management(Some(SECRET))
        .start_before_provider();
    let gw = &pending.gateway;
    // Several probes over half a second: not ready while nothing listens at the issuer.
    for _ in 0..5 {
        let r = gw.admin("GET", "/actuator/health/readiness", None);
        assert_eq!(r.status, 503, "readiness without a provider: {}", r.text());
        assert_eq!(json(&r)["status"], "OUT_OF_SERVICE", "{}", r.text());
        let live = gw.admin("GET", "/actuator/health/liveness", None);
        assert_eq!(live.status, 200, "liveness stays UP: {}", live.text());
        thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(
        sample(&metrics(gw, Some(SECRET)), "sessiongate_provider_ready"),
        Some(0)
    );

    let started = Instant::now();
    let s = pending.start_provider();
    let deadline = started + EFFECT_TIMEOUT;
    loop {
        let r = s.gateway.admin("GET", "/actuator/health/readiness", None);
        if r.status == 200 {
            assert_eq!(json(&r)["status"], "UP", "{}", r.text());
            break;
        }
        assert_eq!(r.status, 503, "{}", r.text());
        assert!(
            Instant::now() < deadline,
            "still not ready {EFFECT_TIMEOUT:?} after the provider started"
        );
        thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(
        sample(
            &metrics(&s.gateway, Some(SECRET)),
            "sessiongate_provider_ready"
        ),
        Some(1)
    );
    // And the gateway logs users in now.
    let (_, login) = s.login("alice");
    s.assert_session_works(&login.session, "after the provider came up");
}

#[test]
fn sessions_are_listed_read_and_ended_over_all_workers() {
    // Back-channel logout registered, so the provider's ID tokens carry a `sid`.
    let s = Stack::builder()
        .workers(2)
        .backchannel_logout()
        .management(Some(SECRET))
        .start();
    let gw = &s.gateway;
    let t0 = (unix_now() * 1000) as u64;
    let (_, alice1) = s.login("alice");
    let (_, alice2) = s.login("alice");
    let (_, bob) = s.login("bob");
    let (_, carol) = s.login("carol");
    let alice_cookies: HashSet<String> = [alice1.session.clone(), alice2.session.clone()].into();

    // Listing: every worker's sessions of that subject, and nothing secret.
    let listed = sessions_of(gw, "alice");
    assert_eq!(listed.len(), 2, "alice logged in twice: {listed:?}");
    assert_eq!(ids(&listed), alice_cookies);
    let t1 = (unix_now() * 1000 + 1000) as u64;
    for sess in &listed {
        let id = sess["id"].as_str().unwrap();
        assert_eq!(sess["subject"], "alice", "{sess}");
        assert!(
            sess["sid"].as_str().is_some_and(|sid| !sid.is_empty()),
            "the provider's sid: {sess}"
        );
        assert_eq!(
            sess["worker"].as_u64(),
            Some(u64::from(session_owner(id))),
            "the owning worker: {sess}"
        );
        let created = sess["creationTime"].as_u64().expect("creationTime ms");
        let accessed = sess["lastAccessedTime"]
            .as_u64()
            .expect("lastAccessedTime ms");
        assert!(
            t0.saturating_sub(1000) <= created && created <= accessed && accessed <= t1,
            "times in ms since the epoch, between {t0} and {t1}: {sess}"
        );
        assert_eq!(
            sess["maxInactiveInterval"], 600,
            "cg.sessionTimeoutSec: {sess}"
        );
    }
    let bobs = sessions_of(gw, "bob");
    assert_eq!(ids(&bobs), HashSet::from([bob.session.clone()]));
    assert_eq!(
        bobs[0]["sid"].as_str(),
        Some(s.provider.sid_of("bob").as_str())
    );
    assert!(sessions_of(gw, "nobody").is_empty());

    let raw = gw
        .admin("GET", "/actuator/sessions?username=alice", Some(SECRET))
        .text();
    let mut secrets = s.provider.refresh_tokens_of("alice");
    secrets.push(s.bearer_at_backend(crate::oidc::stack::APP_PATH));
    for secret in &secrets {
        assert!(!raw.contains(secret.as_str()), "a token in {raw}");
    }
    assert!(!raw.contains("eyJ"), "no JWT may appear: {raw}");

    // One session by id; unknown and garbage ids.
    let r = gw.admin(
        "GET",
        &format!("/actuator/sessions/{}", carol.session),
        Some(SECRET),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let one = json(&r);
    assert_eq!(one["id"].as_str(), Some(carol.session.as_str()), "{one}");
    assert_eq!(one["subject"], "carol");
    for id in [
        unknown_id_like(&carol.session),
        "nope".to_string(),
        "%00%ff".to_string(),
        "x".repeat(200),
    ] {
        let r = gw.admin("GET", &format!("/actuator/sessions/{id}"), Some(SECRET));
        assert_eq!(r.status, 404, "GET session {id:?}: {}", r.text());
        let r = gw.admin("DELETE", &format!("/actuator/sessions/{id}"), Some(SECRET));
        assert_eq!(r.status, 404, "DELETE session {id:?}: {}", r.text());
    }

    // Probes on fresh connections land on either worker; those on the other one are handed
    // over to the owner.
    for _ in 0..16 {
        s.assert_session_works(&carol.session, "carol before the delete");
    }
    assert!(
        metric(gw, Some(SECRET), "sessiongate_connection_handoffs_total") > 0,
        "16 fresh connections, none handed over:\n{}",
        metrics(gw, Some(SECRET))
    );

    // Ending one session: full logout (backend and provider), then it is gone.
    assert!(s.backend_requests_to(BACKEND_LOGOUT_PATH).is_empty());
    let r = gw.admin(
        "DELETE",
        &format!("/actuator/sessions/{}", carol.session),
        Some(SECRET),
    );
    assert_eq!(r.status, 204, "{}", r.text());
    assert!(r.body.is_empty());
    s.wait_until_session_ended(&carol.session, EFFECT_TIMEOUT, "carol after DELETE");
    let call = s
        .wait_for_backend(EFFECT_TIMEOUT, |r| {
            r.target.split('?').next() == Some(BACKEND_LOGOUT_PATH)
        })
        .expect("cg.censhareLogoutUrl was not called for carol");
    assert!(
        bearer(call.header("authorization")).is_some(),
        "the backend logout carries the session's access token: {:?}",
        call.head
    );
    assert!(
        s.provider
            .wait_for_event("grant.revoked", EFFECT_TIMEOUT, |_| true)
            .is_some(),
        "carol's grant was not revoked: {:?}",
        s.provider.events()
    );
    let r = gw.admin(
        "DELETE",
        &format!("/actuator/sessions/{}", carol.session),
        Some(SECRET),
    );
    assert_eq!(r.status, 404, "a second DELETE: {}", r.text());
    let r = gw.admin(
        "GET",
        &format!("/actuator/sessions/{}", carol.session),
        Some(SECRET),
    );
    assert_eq!(r.status, 404, "GET after DELETE: {}", r.text());

    // Ending every session of a subject.
    let r = gw.admin("DELETE", "/actuator/sessions?username=alice", Some(SECRET));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(json(&r), serde_json::json!({"ended": 2}));
    for cookie in [&alice1.session, &alice2.session] {
        s.wait_until_session_ended(cookie, EFFECT_TIMEOUT, "alice after DELETE ?username");
    }
    assert!(sessions_of(gw, "alice").is_empty());
    let deadline = Instant::now() + EFFECT_TIMEOUT;
    while s.backend_requests_to(BACKEND_LOGOUT_PATH).len() < 3 {
        assert!(
            Instant::now() < deadline,
            "cg.censhareLogoutUrl must be called for carol and both of alice's sessions: {} calls",
            s.backend_requests_to(BACKEND_LOGOUT_PATH).len()
        );
        thread::sleep(Duration::from_millis(20));
    }
    s.assert_session_works(&bob.session, "bob after alice's sessions ended");
    let r = gw.admin("DELETE", "/actuator/sessions?username=alice", Some(SECRET));
    assert_eq!(json(&r), serde_json::json!({"ended": 0}));

    // The counters, summed over both workers.
    wait_for_metric(gw, Some(SECRET), "sessiongate_sessions_active", 1);
    assert_eq!(
        metric(gw, Some(SECRET), "sessiongate_sessions_created_total"),
        4
    );
    assert_eq!(
        metric(
            gw,
            Some(SECRET),
            "sessiongate_sessions_ended_total{reason=\"admin\"}"
        ),
        3
    );
    assert!(
        metric(
            gw,
            Some(SECRET),
            "sessiongate_responses_total{code=\"2xx\"}"
        ) > 4 + 16,
        "the four logins' pages and carol's probes at least: {}",
        metrics(gw, Some(SECRET))
    );
    assert!(
        metric(
            gw,
            Some(SECRET),
            "sessiongate_responses_total{code=\"3xx\"}"
        ) >= 3,
        "login redirects and the probes of ended sessions"
    );
}
