//! The gate's decisions driven by hand: a real `Gate` with a manual clock, sessions put in
//! its store directly, no network and no sleeping.

use std::sync::atomic::Ordering;

use super::*;
use crate::clock::ManualClock;
use crate::http::form::form_value;
use crate::jwt::testkit::{self, TestKey};
use crate::jwt::Alg;
use crate::oidc::ProviderMeta;
use crate::session::table::{Session, NEVER};

const LOGIN: &str = "spring.security.oauth2.client.registration.kc.client-id: gw\n\
    spring.security.oauth2.client.provider.kc.issuer-uri: http://127.0.0.1:9/realms/r\n\
    cg.sessionTimeoutSec: 60\n\
    cg.sessionCheckIntervalMs: 1000\n\
    cg.expiredSessionFullLogout: true\n\
    cg.censhareLogoutUrl: http://127.0.0.1:9/logout\n";

/// A gate on worker 0 with the given extra configuration and banner, its clock's hand, and
/// the refetch requests it makes.
pub(super) fn gate(extra: &str, banner: Option<&str>) -> (Gate, ManualClock, flume::Receiver<()>) {
    let config = crate::config::load_str(&format!("{LOGIN}{extra}")).unwrap();
    let (clock, hand) = Clock::manual(1_700_000_000_000);
    let (refresher, refetches) = RefreshRequester::channel();
    let (inbox, _rx) = flume::unbounded();
    let deps = GateDeps {
        shared: Arc::new(Shared::default()),
        refresher,
        tls_client: crate::client::tls_config(None).unwrap(),
        banner: banner.map(Rc::from),
        peers: vec![inbox],
        metrics: Arc::new(Metrics::default()),
        clock,
        shared_store: None,
    };
    let g = Gate::new(&config, 0, deps).unwrap();
    (g, hand, refetches)
}

/// Provider metadata with the keys of `keys` (test keys of [`crate::jwt::testkit`]).
fn provider_with(g: &Gate, generation: u64, keys: &[&TestKey]) {
    let jwks =
        serde_json::json!({ "keys": keys.iter().map(|k| k.jwk.clone()).collect::<Vec<_>>() });
    let url = |p: &str| crate::config::HttpUrl::parse(&format!("http://127.0.0.1:9/{p}")).unwrap();
    g.set_provider(Arc::new(ProviderState {
        meta: ProviderMeta {
            issuer: "http://127.0.0.1:9/realms/r".into(),
            authorization_endpoint: url("auth"),
            token_endpoint: url("token"),
            jwks_uri: url("certs"),
            end_session_endpoint: None,
            revocation_endpoint: None,
        },
        jwks: Arc::new(crate::jwt::JwkSet::from_json(jwks.to_string().as_bytes()).unwrap()),
        generation,
    }));
}

/// Provider metadata and one signing key: enough to start logins.
fn provider(g: &Gate, generation: u64) {
    provider_with(g, generation, &[testkit::p256()]);
}

/// A live session of worker 0 created now, with an access token valid for `valid_ms`.
pub(super) fn session(g: &Gate, valid_ms: u64) -> SessionId {
    let id = SessionId::generate(0, &g.rng).unwrap();
    let now = g.now_ms();
    let mut s = Session::new(id, "alice".into(), Some("sid-1".into()), now);
    s.access_token = "at-1".into();
    s.access_expires_ms = now + valid_ms;
    s.refresh_token = "rt-1".into();
    g.store.borrow_mut().insert(s);
    g.shared.sessions.fetch_add(1, Ordering::Relaxed);
    id
}

/// Parses `raw` and runs the gate's decision on it (a plain, movable connection).
fn decide(g: &Gate, raw: &[u8]) -> Decision {
    let mut h = RequestHead::default();
    crate::http::head::parse_request(raw, &Default::default(), &mut h)
        .unwrap()
        .unwrap();
    let from = Client {
        peer: std::net::IpAddr::from([127, 0, 0, 1]),
        tls: false,
        movable: true,
    };
    block_on(g.decide(&h, raw, from))
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
        .enable_timer()
        .build()
        .unwrap()
        .block_on(f)
}

fn get(path: &str, cookie: Option<&SessionId>) -> Vec<u8> {
    let cookie = cookie.map_or(String::new(), |id| {
        format!("Cookie: SESSION={}\r\n", id.encode().as_str())
    });
    format!(
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nSec-Fetch-Mode: navigate\r\n{cookie}\r\n"
    )
    .into_bytes()
}

/// A navigation carrying these cookies (`name=value; ...`).
fn get_with_cookies(path: &str, cookies: &str) -> Vec<u8> {
    format!(
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nSec-Fetch-Mode: navigate\r\nCookie: {cookies}\r\n\r\n"
    )
    .into_bytes()
}

/// The `name=value` of a reply's Set-Cookie for `name`.
fn set_cookie_pair(r: &Reply, name: &str) -> Option<String> {
    r.headers
        .iter()
        .filter(|(n, _)| *n == "Set-Cookie")
        .map(|(_, v)| v.split(';').next().unwrap().to_string())
        .find(|pair| pair.starts_with(&format!("{name}=")))
}

fn reply(d: Decision) -> Reply {
    match d {
        Decision::Reply(r) => r,
        Decision::Forward { .. } => panic!("forwarded"),
        Decision::HandOff(o) => panic!("handed to {o}"),
    }
}

fn location(r: &Reply) -> &str {
    r.headers
        .iter()
        .find(|(n, _)| *n == "Location")
        .map(|(_, v)| v.as_str())
        .unwrap()
}

#[test]
fn a_session_forwards_its_token_until_its_idle_timeout_then_the_sweep_ends_it() {
    let (g, hand, _) = gate("", None);
    let id = session(&g, NEVER - 1);
    match decide(&g, &get("/app", Some(&id))) {
        Decision::Forward { bearer, session } => {
            assert_eq!(bearer.as_deref(), Some("at-1"));
            assert_eq!(session, Some(id));
        }
        _ => panic!("a live session is forwarded"),
    }
    // Idle for 59 s: the sweep keeps it.
    hand.advance_secs(59);
    let mut scratch = Vec::new();
    g.expire(&mut scratch);
    assert!(scratch.is_empty());
    assert_eq!(g.shared.sessions.load(Ordering::Relaxed), 1);
    // Past 60 s idle (plus one tick): swept once, counted, and its full logout queued.
    hand.advance_secs(2);
    g.expire(&mut scratch);
    assert_eq!(scratch.len(), 1);
    assert_eq!(g.shared.sessions.load(Ordering::Relaxed), 0);
    assert_eq!(
        g.dispatcher().pending(),
        1,
        "the backend logout call is queued"
    );
    g.expire(&mut scratch);
    assert!(scratch.is_empty(), "an expired session ends once");
    // Its cookie now means no session: a navigation is sent to log in.
    provider(&g, 1);
    let r = reply(decide(&g, &get("/app", Some(&id))));
    assert_eq!(r.status, 302);
    assert!(location(&r).starts_with("http://127.0.0.1:9/auth?"));
}

#[test]
fn a_request_keeps_a_session_alive() {
    let (g, hand, _) = gate("", None);
    let id = session(&g, NEVER - 1);
    let mut scratch = Vec::new();
    for _ in 0..5 {
        hand.advance_secs(50);
        assert!(matches!(
            decide(&g, &get("/", Some(&id))),
            Decision::Forward { .. }
        ));
        g.expire(&mut scratch);
        assert!(scratch.is_empty(), "used within its idle timeout");
    }
    assert_eq!(g.now_ms(), 250_000);
}

#[test]
fn refresh_is_due_near_the_access_tokens_expiry() {
    let (g, hand, _) = gate("", None);
    let id = session(&g, 120_000);
    let due = |g: &Gate| refresh::refresh_due(g.store.borrow().get(&id).unwrap(), g.now_ms());
    assert!(!due(&g));
    hand.advance_secs(89);
    assert!(!due(&g), "more than the 30 s leeway left");
    hand.advance_secs(1);
    assert!(due(&g), "within 30 s of expiry");
    // A short-lived token is refreshed within a third of its life, not 30 s before.
    let (g, hand, _) = gate("", None);
    let id = session(&g, 30_000);
    let due = |g: &Gate| refresh::refresh_due(g.store.borrow().get(&id).unwrap(), g.now_ms());
    hand.advance_secs(19);
    assert!(!due(&g));
    hand.advance_secs(1);
    assert!(due(&g));
}

#[test]
fn access_expiry_takes_the_earlier_of_expires_in_and_the_tokens_exp() {
    use base64::Engine as _;
    let (clock, hand) = Clock::manual(1_700_000_000_000);
    hand.advance_secs(100);
    let exp = clock.unix_secs() + 50;
    let payload =
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("{{\"exp\":{exp}}}"));
    let t = |access_token: String, expires_in| crate::oidc::TokenResponse {
        access_token,
        refresh_token: None,
        id_token: None,
        expires_in,
        refresh_expires_in: None,
    };
    let now = clock.now_ms();
    let jwt = format!("e30.{payload}.sig");
    assert_eq!(
        refresh::access_expiry(&t(jwt.clone(), Some(300)), now, clock.unix_ms()),
        now + 50_000
    );
    assert_eq!(
        refresh::access_expiry(&t(jwt, Some(20)), now, clock.unix_ms()),
        now + 20_000
    );
    assert_eq!(
        refresh::access_expiry(&t("opaque".into(), Some(20)), now, clock.unix_ms()),
        now + 20_000
    );
    assert_eq!(
        refresh::access_expiry(&t("opaque".into(), None), now, clock.unix_ms()),
        NEVER
    );
}

#[test]
fn a_due_refresh_without_a_provider_keeps_the_session_and_its_token() {
    let (g, hand, _) = gate("", None);
    let id = session(&g, 60_000);
    hand.advance_secs(50);
    // Due, but the provider is not known yet: the token goes out as it is and the refresh
    // slot is given back for the next request.
    assert!(matches!(
        decide(&g, &get("/", Some(&id))),
        Decision::Forward { bearer: Some(t), .. } if &*t == "at-1"
    ));
    assert!(!g.store.borrow().get(&id).unwrap().refreshing);
    assert!(g.refreshing.borrow().is_empty());
}

#[test]
fn a_pending_login_expires_after_ten_minutes() {
    let (g, hand, _) = gate("", None);
    provider(&g, 1);
    let state_of = |r: &Reply| {
        let loc = location(r);
        form_value(loc.split_once('?').unwrap().1.as_bytes(), "state").unwrap()
    };
    let first = reply(decide(&g, &get("/wanted", None)));
    let binding = set_cookie_pair(&first, "__Host-SESSIONGATE-LOGIN").expect("a login cookie");
    // A second tab of the same browser shares the binding (no new cookie).
    let second = reply(decide(&g, &get_with_cookies("/wanted", &binding)));
    assert!(set_cookie_pair(&second, "__Host-SESSIONGATE-LOGIN").is_none());
    assert_eq!(g.pending.borrow().len(), 2);
    let callback = |state: &str| {
        get_with_cookies(
            &format!("/login/oauth2/code/kc?state={state}&error=access_denied"),
            &binding,
        )
    };
    // Within ten minutes the login is found (the provider's refusal is what is reported).
    hand.advance_secs(599);
    let r = reply(decide(&g, &callback(&state_of(&first))));
    assert!(String::from_utf8_lossy(&r.body).contains("refused the login"));
    // After ten minutes it is refused as too old, and used up either way.
    hand.advance_secs(2);
    let r = reply(decide(&g, &callback(&state_of(&second))));
    assert_eq!(r.status, 400);
    assert!(String::from_utf8_lossy(&r.body).contains("took too long"));
    assert!(g.pending.borrow().is_empty());
    let r = reply(decide(&g, &callback(&state_of(&second))));
    assert!(String::from_utf8_lossy(&r.body).contains("unknown, expired or was already used"));
}

#[test]
fn a_callback_opened_in_another_browser_finishes_nothing_and_spoils_nothing() {
    let (g, _, _) = gate("", None);
    provider(&g, 1);
    let start = reply(decide(&g, &get("/wanted", None)));
    let binding = set_cookie_pair(&start, "__Host-SESSIONGATE-LOGIN").unwrap();
    let loc = location(&start);
    let state = form_value(loc.split_once('?').unwrap().1.as_bytes(), "state").unwrap();
    let url = format!("/login/oauth2/code/kc?state={state}&code=stolen");
    // Without the binding cookie, and with another browser's.
    for cookies in [
        None,
        Some("__Host-SESSIONGATE-LOGIN=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"),
    ] {
        let raw = match cookies {
            None => get(&url, None),
            Some(c) => get_with_cookies(&url, c),
        };
        let r = reply(decide(&g, &raw));
        assert_eq!(r.status, 400);
        assert!(String::from_utf8_lossy(&r.body).contains("another browser"));
        assert!(
            r.headers.iter().all(|(n, _)| *n != "Set-Cookie"),
            "no session"
        );
    }
    assert_eq!(g.pending.borrow().len(), 1, "the real login is still there");
    let own = format!("/login/oauth2/code/kc?state={state}&error=access_denied");
    let r = reply(decide(&g, &get_with_cookies(&own, &binding)));
    assert!(String::from_utf8_lossy(&r.body).contains("refused the login"));
}

#[test]
fn a_login_under_an_unknown_host_is_refused_unless_the_public_url_is_set() {
    let (g, _, _) = gate("", None);
    provider(&g, 1);
    let evil = b"GET /x HTTP/1.1\r\nHost: evil.example\r\nSec-Fetch-Mode: navigate\r\n\r\n";
    let r = reply(decide(&g, evil));
    assert_eq!(
        r.status, 400,
        "no redirect URI is built from an unchecked Host"
    );
    assert!(g.pending.borrow().is_empty());
    let (g, _, _) = gate("sessiongate.public-url: https://gw.example.com\n", None);
    provider(&g, 1);
    let r = reply(decide(&g, evil));
    assert_eq!(r.status, 302);
    let loc = location(&r);
    let q = loc.split_once('?').unwrap().1.as_bytes();
    assert_eq!(
        form_value(q, "redirect_uri").unwrap(),
        "https://gw.example.com/login/oauth2/code/kc"
    );
}

#[test]
fn a_flood_from_one_client_cannot_push_out_other_logins() {
    let (g, _, _) = gate("", None);
    provider(&g, 1);
    let alice = reply(decide(&g, &get("/alice", None)));
    assert_eq!(alice.status, 302);
    // Every request of the flood comes from one address (the test's peer).
    let mut refused = 0;
    for i in 0..PENDING_LIMITS.per_client + 10 {
        if reply(decide(&g, &get(&format!("/flood/{i}"), None))).status == 503 {
            refused += 1;
        }
    }
    assert_eq!(g.pending.borrow().len(), PENDING_LIMITS.per_client);
    assert_eq!(refused, 11, "beyond its share the flooder is refused");
    assert_eq!(g.metrics.logins_refused_share.load(Ordering::Relaxed), 11);
}

#[test]
fn a_back_channel_logout_ends_the_sessions_and_buries_older_logins_for_ten_minutes() {
    let (g, hand, _) = gate("", None);
    let id = session(&g, NEVER - 1);
    let iat = g.clock.unix_secs();
    g.end_matching(Some("sid-1"), Some("alice"), iat);
    assert!(g.store.borrow().get(&id).is_none());
    assert_eq!(g.shared.sessions.load(Ordering::Relaxed), 0);
    let buried = |g: &Gate, iat| {
        g.tombstones
            .borrow()
            .buries(Some("sid-1"), "alice", iat, g.now_ms())
    };
    assert!(
        buried(&g, iat),
        "an ID token from before the logout cannot log in"
    );
    assert!(!buried(&g, iat + 1), "a newer login can");
    hand.advance_secs(599);
    assert!(buried(&g, iat));
    hand.advance_secs(1);
    assert!(!buried(&g, iat), "forgotten after ten minutes");
}

#[test]
fn the_banner_is_shown_until_accepted() {
    let (g, hand, _) = gate("", Some("<b>Authorised use only</b>"));
    let id = session(&g, NEVER - 1);
    let page = reply(decide(&g, &get("/docs", Some(&id))));
    assert_eq!(page.status, 200);
    assert!(String::from_utf8_lossy(&page.body).contains("Authorised use only"));
    // An API call of the same session is refused, not shown a page.
    let api = format!(
        "GET /api HTTP/1.1\r\nHost: gw\r\nAccept: application/json\r\nCookie: SESSION={}\r\n\r\n",
        id.encode().as_str()
    );
    assert_eq!(reply(decide(&g, api.as_bytes())).status, 403);
    hand.advance_secs(30);
    let accept = format!(
        "POST /sessiongate/banner/accept?return=%2Fdocs HTTP/1.1\r\nHost: gw\r\nContent-Length: 0\r\nCookie: SESSION={}\r\n\r\n",
        id.encode().as_str()
    );
    let back = reply(decide(&g, accept.as_bytes()));
    assert_eq!((back.status, location(&back)), (302, "/docs"));
    assert!(matches!(
        decide(&g, &get("/docs", Some(&id))),
        Decision::Forward { .. }
    ));
    // Accepting counted as use: 59 s after it the session is still alive.
    hand.advance_secs(59);
    let mut scratch = Vec::new();
    g.expire(&mut scratch);
    assert!(scratch.is_empty());
}

#[test]
fn an_unknown_key_asks_for_a_refetch_and_waits_for_the_rotated_keys() {
    let (g, _, refetches) = gate("", None);
    provider(&g, 1);
    let now = g.clock.unix_secs();
    let claims = serde_json::json!({
        "iss": "http://127.0.0.1:9/realms/r", "aud": "gw", "sub": "alice",
        "iat": now, "exp": now + 300,
    });
    // Signed with a key the gateway has not seen yet (the provider rotated).
    let token = testkit::ed25519().token_with_kid(Alg::EdDSA, &claims);
    let verdict = block_on(async {
        let verify = g.verify_fresh(&token, verify::Purpose::Api);
        let rotate = async {
            monoio::time::sleep(std::time::Duration::from_millis(1)).await;
            provider_with(&g, 2, &[testkit::p256(), testkit::ed25519()]);
        };
        monoio::join!(verify, rotate).0
    });
    assert_eq!(refetches.try_recv(), Ok(()), "a refetch was asked for");
    assert_eq!(verdict.unwrap().sub(), Some("alice"));
    // Once known, the key verifies at once.
    assert!(block_on(g.verify_fresh(&token, verify::Purpose::Api)).is_ok());
}

#[test]
fn after_a_refetch_without_the_key_unknown_kids_are_refused_at_once_for_a_while() {
    let (g, hand, refetches) = gate("", None);
    provider(&g, 1);
    let now = g.clock.unix_secs();
    let claims = serde_json::json!({
        "iss": "http://127.0.0.1:9/realms/r", "aud": "gw", "sub": "mallory",
        "iat": now, "exp": now + 300,
    });
    let token = testkit::ed25519().token_with_kid(Alg::EdDSA, &claims);
    let attempt = |g: &Gate| {
        block_on(async {
            let verify = g.verify_fresh(&token, verify::Purpose::Api);
            // The provider thread answers the refetch: the keys did not change.
            let answer = async {
                monoio::time::sleep(std::time::Duration::from_millis(1)).await;
                provider(g, 1);
            };
            monoio::join!(verify, answer).0
        })
    };
    assert!(matches!(attempt(&g), Err(crate::jwt::JwtError::UnknownKid)));
    assert_eq!(refetches.try_recv(), Ok(()));
    // Within the window: refused without asking (and without waiting for) another refetch.
    hand.advance_ms(4_000);
    assert!(matches!(
        block_on(g.verify_fresh(&token, verify::Purpose::Api)),
        Err(crate::jwt::JwtError::UnknownKid)
    ));
    assert!(
        refetches.try_recv().is_err(),
        "no refetch asked within the window"
    );
    // After it, the next unknown kid asks again.
    hand.advance_ms(1_001);
    assert!(matches!(attempt(&g), Err(crate::jwt::JwtError::UnknownKid)));
    assert_eq!(refetches.try_recv(), Ok(()));
}

#[test]
fn id_and_logout_tokens_are_not_access_tokens() {
    let (g, _, _) = gate("", None);
    provider(&g, 1);
    let now = g.clock.unix_secs();
    let base = serde_json::json!({
        "iss": "http://127.0.0.1:9/realms/r", "aud": "gw", "sub": "alice",
        "iat": now, "exp": now + 300,
    });
    let with = |extra: serde_json::Value, typ: &str| {
        let mut c = base.clone();
        c.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        let header = serde_json::json!({"alg": "ES256", "typ": typ, "kid": "p256-1"});
        testkit::p256().token(Alg::ES256, &header, &c)
    };
    let refused = |token: String| {
        let claims = block_on(g.verify_fresh(&token, verify::Purpose::Api)).unwrap();
        verify::access_token_refusal(&claims)
    };
    assert_eq!(refused(with(serde_json::json!({}), "at+jwt")), None);
    assert_eq!(
        refused(with(serde_json::json!({"typ": "Bearer"}), "JWT")),
        None
    );
    assert!(
        refused(with(serde_json::json!({"nonce": "n"}), "JWT")).is_some(),
        "ID token"
    );
    assert!(
        refused(with(serde_json::json!({"at_hash": "h"}), "JWT")).is_some(),
        "ID token"
    );
    assert!(
        refused(with(serde_json::json!({"typ": "ID"}), "JWT")).is_some(),
        "Keycloak ID token"
    );
    let events =
        serde_json::json!({"events": {"http://schemas.openid.net/event/backchannel-logout": {}}});
    assert!(
        refused(with(events.clone(), "logout+jwt")).is_some(),
        "logout token"
    );
    assert!(
        refused(with(events, "JWT")).is_some(),
        "logout token typed JWT"
    );
}

#[test]
fn return_targets_stay_local() {
    assert_eq!(safe_return("/a?b=c"), "/a?b=c");
    assert_eq!(safe_return("//evil.example/"), "/");
    assert_eq!(safe_return("/\\evil.example"), "/");
    assert_eq!(safe_return("https://evil.example/"), "/");
    assert_eq!(safe_return("/a\r\nSet-Cookie: x"), "/");
}

#[test]
fn navigation_is_told_apart() {
    let mut h = RequestHead::default();
    let raw = b"GET / HTTP/1.1\r\nHost: a\r\nSec-Fetch-Mode: navigate\r\n\r\n";
    crate::http::head::parse_request(raw, &Default::default(), &mut h)
        .unwrap()
        .unwrap();
    assert!(is_navigation(&h, raw));
    let raw = b"GET /api HTTP/1.1\r\nHost: a\r\nAccept: application/json\r\n\r\n";
    crate::http::head::parse_request(raw, &Default::default(), &mut h)
        .unwrap()
        .unwrap();
    assert!(!is_navigation(&h, raw));
}

#[test]
fn a_repeating_warning_is_logged_once_per_ten_seconds_with_the_count_left_out() {
    let t = refresh::Throttle::default();
    assert_eq!(t.admit(0), Some(0));
    assert_eq!(t.admit(1_000), None);
    assert_eq!(t.admit(9_999), None);
    assert_eq!(t.admit(10_000), Some(2));
    assert_eq!(t.admit(10_001), None);
}
