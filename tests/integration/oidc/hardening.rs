//! Attacks on logins and sessions, performed against the running gateway with a real
//! provider and a recording backend, and what a secure gateway does about each.

use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::json;

use crate::backend::WS_KEY;
use crate::client::Client;
use crate::oidc::browser::{set_cookie, Browser, Url};
use crate::oidc::stack::{sets_no_session, Stack, APP_PATH};

const EFFECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A raw request to the gateway on a new connection.
fn raw(s: &Stack, request: &str) -> crate::client::Response {
    Client::connect(s.gateway.addr()).request(request.as_bytes())
}

/// A stolen callback URL (code and state of the attacker's own login) opened in the
/// victim's browser logs nobody in there, and does not spoil the attacker's login either;
/// the access log never holds a code or a state.
#[test]
fn a_callback_url_opened_in_another_browser_logs_nobody_in() {
    let s = Stack::builder().set("access-log", "true").start();
    let mut mallory = Browser::new();
    let authorize = mallory.start_login(&s.url(APP_PATH));
    let callback = mallory.authorize(&authorize, "mallory");
    let mut victim = Browser::new();
    let r = victim.callback(&callback);
    assert_eq!(
        r.status,
        400,
        "a callback from another browser: {}",
        r.text()
    );
    assert!(
        sets_no_session(&r),
        "no session for the victim: {:?}",
        r.head.headers
    );
    assert!(r.text().contains("another browser"), "{}", r.text());
    let r = mallory.callback(&callback);
    assert_eq!(
        r.status,
        302,
        "the browser that started it finishes it: {}",
        r.text()
    );
    assert!(set_cookie(&r, "SESSION").is_some());
    let log = s.gateway.stderr();
    let (code, state) = (
        callback.param("code").unwrap(),
        callback.param("state").unwrap(),
    );
    assert!(
        log.contains("/login/oauth2/code/"),
        "the callback is in the access log"
    );
    assert!(
        !log.contains(&code) && !log.contains(&state),
        "code or state logged:\n{log}"
    );
}

/// A hostile `Host` never becomes the redirect URI: without `sessiongate.public-url` only a
/// name of this gateway is used, and with it the public URL is.
#[test]
fn a_hostile_host_never_becomes_the_redirect_uri() {
    let nav = "Sec-Fetch-Mode: navigate\r\nAccept: text/html\r\n\r\n";
    let s = Stack::start();
    let r = raw(
        &s,
        &format!("GET /app HTTP/1.1\r\nHost: evil.example\r\n{nav}"),
    );
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(r.header("location").is_none());
    let s = Stack::builder()
        .set("public-url", "https://gw.example.com")
        .start();
    let r = raw(
        &s,
        &format!("GET /app HTTP/1.1\r\nHost: evil.example\r\n{nav}"),
    );
    assert_eq!(r.status, 302, "{}", r.text());
    let to = Url::parse(r.header("location").unwrap());
    assert_eq!(
        to.param("redirect_uri").as_deref(),
        Some("https://gw.example.com/login/oauth2/code/demo")
    );
}

/// One client flooding the pending-login table gets refused beyond its share, counted in
/// the metrics, while another client still logs in.
#[test]
fn a_pending_login_flood_from_one_client_leaves_room_for_others() {
    let s = Stack::builder()
        .set("trusted-proxies", "127.0.0.1")
        .management(None)
        .start();
    let share = 50_000 / 16;
    let mut c = Client::connect(s.gateway.addr());
    let mut refused = 0;
    for i in 0..share + 20 {
        let r = c.request(
            format!(
                "GET /flood/{i}/{} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nX-Forwarded-For: 10.6.6.6\r\nSec-Fetch-Mode: navigate\r\n\r\n",
                "x".repeat(200),
                s.port
            )
            .as_bytes(),
        );
        match r.status {
            302 => {}
            503 => refused += 1,
            other => panic!("flood request {i}: {other} {}", r.text()),
        }
    }
    assert_eq!(
        refused, 20,
        "beyond its share the flooding client is refused"
    );
    // Another client (through the same trusted proxy) logs in all the same.
    let mut b = Browser::new();
    let url = s.url(APP_PATH);
    let authorize = {
        let r = b.navigate_with(&url, &[("X-Forwarded-For", "10.1.1.1")]);
        assert_eq!(r.status, 302, "a real user during the flood: {}", r.text());
        url.join(r.header("location").unwrap())
    };
    let callback = b.authorize(&authorize, "alice");
    assert_eq!(b.callback(&callback).status, 302);
    let metrics = s.gateway.admin("GET", "/actuator/prometheus", None).text();
    assert!(
        metrics.contains("sessiongate_logins_refused_total 20"),
        "refusals counted:\n{metrics}"
    );
}

/// One account cannot fill the gateway: past `sessiongate.max-sessions-per-user` its
/// oldest session ends (counted over both workers), and other users log in as before.
#[test]
fn one_user_cannot_hold_more_than_their_share_of_sessions() {
    let s = Stack::builder()
        .workers(2)
        .set("max-sessions-per-user", 2)
        .start();
    let (_, first) = s.login("alice");
    let (_, second) = s.login("alice");
    let (_, third) = s.login("alice");
    s.wait_until_session_ended(&first.session, EFFECT_TIMEOUT, "alice's oldest session");
    s.assert_session_works(&second.session, "alice's second session");
    s.assert_session_works(&third.session, "alice's newest session");
    let (_, bob) = s.login("bob");
    s.assert_session_works(&bob.session, "bob");
}

/// An ID token (as the logout redirect's `id_token_hint` reveals it) and a back-channel
/// logout token are not API credentials; a real access token is.
#[test]
fn id_and_logout_tokens_are_refused_as_bearer_tokens() {
    let s = Stack::start();
    let tokens = s.provider.tokens_for("alice");
    let logout = s
        .provider
        .sign_logout(s.provider.logout_claims(Some("alice"), None));
    let api = |token: &str| {
        raw(
            &s,
            &format!(
                "GET /api/data HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nAuthorization: Bearer {token}\r\n\r\n",
                s.port
            ),
        )
    };
    let id = tokens.id_token.clone().expect("an ID token");
    for (what, token) in [("ID token", &id), ("logout token", &logout)] {
        let r = api(token);
        assert_eq!(r.status, 401, "{what} as Bearer: {}", r.text());
    }
    assert!(s.backend_requests_to("/api/data").is_empty());
    let r = api(&tokens.access_token);
    assert_eq!(r.status, 200, "the access token: {}", r.text());
}

/// Requests signed with a key id the provider does not publish are held for one refetch at
/// most, then answered 401 at once: a crowd of them does not tie up connections for seconds
/// each, and makes the gateway ask the provider once.
#[test]
fn unknown_key_ids_cost_one_refetch_not_seconds_per_request() {
    let s = Stack::builder()
        .logging("sessiongate.provider", "DEBUG")
        .start();
    let claims = s.provider.access_claims("mallory", 300);
    let token = s.provider.sign("unpublished", json!({}), claims);
    let request = format!(
        "GET /api/x HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nAuthorization: Bearer {token}\r\n\r\n",
        s.port
    );
    let first = raw(&s, &request);
    assert_eq!(first.status, 401, "{}", first.text());
    let started = Instant::now();
    let crowd: Vec<_> = (0..40)
        .map(|_| {
            let (addr, request) = (s.gateway.addr(), request.clone());
            std::thread::spawn(move || Client::connect(addr).request(request.as_bytes()).status)
        })
        .collect();
    for t in crowd {
        assert_eq!(t.join().unwrap(), 401);
    }
    // Waiting ~7 s each (as before) would not fit; no refetch is needed for them at all.
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
    let refetches = s.gateway.stderr().matches("JWKS refetch requested").count();
    assert_eq!(refetches, 1, "one refetch for the whole crowd");
}

/// A SESSION cookie naming a worker that does not exist is no session: a navigation is sent
/// to log in and an API call gets 401, never a dropped connection.
#[test]
fn a_forged_worker_byte_is_no_session() {
    let s = Stack::builder().workers(2).start();
    let mut id = [7u8; 17];
    id[0] = 200;
    let forged = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(id);
    let nav = raw(
        &s,
        &format!(
            "GET /app HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nCookie: SESSION={forged}\r\nSec-Fetch-Mode: navigate\r\n\r\n",
            s.port
        ),
    );
    s.assert_login_redirect(&nav, "a forged SESSION cookie");
    let api = raw(
        &s,
        &format!(
            "GET /api HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nCookie: SESSION={forged}\r\n\r\n",
            s.port
        ),
    );
    assert_eq!(api.status, 401, "{}", api.text());
}

/// At TRACE for every logger, a login, its requests, a refresh, a back-channel logout and a
/// lost call leave no cookie value, code, state or token in any log line.
#[test]
fn no_cookie_value_or_token_is_ever_logged() {
    let s = Stack::builder()
        .backchannel_logout()
        .provider(|p| p.access_token_ttl(3))
        .logging("root", "TRACE")
        .set("access-log", "true")
        .cg("freshTokenListeners", "http://127.0.0.1:9/fresh")
        .cg("freshTokenSendIntervalMs", 500)
        .start();
    let (mut b, login) = s.login("alice");
    for i in 0..3 {
        assert_eq!(b.navigate(&s.url(&format!("/app/{i}"))).status, 200);
    }
    let first_bearer = s.bearer_at_backend("/app/0");
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(b.navigate(&s.url("/app/after-refresh")).status, 200);
    let refreshed = s.bearer_at_backend("/app/after-refresh");
    assert_ne!(first_bearer, refreshed, "the access token was refreshed");
    let sid = s.provider.sessions_of("alice")[0]["sids"]
        .as_object()
        .and_then(|m| m.values().next())
        .and_then(|v| v.as_str())
        .map(str::to_string);
    let token = s
        .provider
        .sign_logout(s.provider.logout_claims(Some("alice"), sid.as_deref()));
    assert_eq!(s.post_logout_token(&token).status, 200);
    s.wait_until_session_ended(&login.session, EFFECT_TIMEOUT, "alice after the logout");
    let log = s.gateway.stderr();
    assert!(log.contains("TRACE"), "the gateway logged at TRACE");
    let code = login.callback_url.param("code").unwrap();
    let state = login.callback_url.param("state").unwrap();
    for (what, secret) in [
        ("the SESSION cookie", login.session.as_str()),
        ("the authorization code", code.as_str()),
        ("the state", state.as_str()),
        ("an access token", first_bearer.as_str()),
        ("the refreshed access token", refreshed.as_str()),
        ("the logout token", token.as_str()),
    ] {
        assert!(!log.contains(secret), "{what} appears in the log");
    }
}

/// While the provider is down, every request of a session due for refresh fails to refresh;
/// the WARN saying so is written once, not once per request.
#[test]
fn a_provider_outage_is_warned_about_once_not_per_request() {
    let mut s = Stack::builder().provider(|p| p.access_token_ttl(2)).start();
    let (mut b, _) = s.login("alice");
    s.provider.stop();
    std::thread::sleep(Duration::from_secs(2));
    for i in 0..8 {
        b.navigate(&s.url(&format!("/app/outage/{i}")));
    }
    let warnings = s
        .gateway
        .stderr()
        .matches("refresh failed; will retry")
        .count();
    assert_eq!(
        warnings,
        1,
        "one WARN for the outage:\n{}",
        s.gateway.stderr()
    );
}

/// A page elsewhere cannot log the user out (nor make the browser drop its cookie), nor
/// open a WebSocket with the user's session; the gateway's own page can.
#[test]
fn cross_site_logout_and_websockets_are_refused() {
    let s = Stack::builder().websocket_backend().start();
    let (mut b, login) = s.login("alice");
    let logout = s.url("/logout");
    for headers in [
        vec![("Origin", "https://evil.example")],
        vec![("Sec-Fetch-Site", "cross-site")],
        vec![
            ("Sec-Fetch-Site", "same-site"),
            ("Origin", "http://evil.127.0.0.1.nip.io"),
        ],
    ] {
        let r = b.request("POST", &logout, &headers, b"");
        assert_eq!(r.status, 403, "POST /logout with {headers:?}: {}", r.text());
        assert!(
            set_cookie(&r, "SESSION").is_none(),
            "the cookie is not cleared"
        );
        s.assert_session_works(&login.session, "alice after a cross-site logout");
    }
    let upgrade = |origin: &str| {
        let mut c = Client::connect(s.gateway.addr());
        c.send(
            format!(
                "GET /ws HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nOrigin: {origin}\r\nCookie: SESSION={}\r\n\
                 Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {WS_KEY}\r\n\
                 Sec-WebSocket-Version: 13\r\n\r\n",
                login.session,
                port = s.port
            )
            .as_bytes(),
        );
        c.read_response().status
    };
    assert_eq!(upgrade("https://evil.example"), 403, "cross-site WebSocket");
    assert_eq!(upgrade(&format!("http://127.0.0.1:{}", s.port)), 101);
    let own = format!("http://127.0.0.1:{}", s.port);
    let r = b.request("POST", &logout, &[("Origin", own.as_str())], b"");
    assert_eq!(r.status, 302, "a same-origin logout: {}", r.text());
    s.wait_until_session_ended(&login.session, EFFECT_TIMEOUT, "alice after her logout");
}

/// With two workers and connections that cannot move (as TLS connections never can), the
/// WebSockets of a session on the worker that does not own it are closed when the session
/// ends, like those on its owner.
#[test]
fn websockets_of_an_ended_session_close_on_every_worker() {
    let s = Stack::builder()
        .workers(2)
        .set("connection-hand-off", "false")
        .websocket_backend()
        .start();
    let (mut b, login) = s.login("alice");
    let mut sockets: Vec<Client> = (0..12)
        .map(|i| {
            let mut c = Client::connect(s.gateway.addr());
            c.send(
                format!(
                    "GET /ws/{i} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nCookie: SESSION={}\r\n\
                     Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {WS_KEY}\r\n\
                     Sec-WebSocket-Version: 13\r\n\r\n",
                    s.port, login.session
                )
                .as_bytes(),
            );
            assert_eq!(c.read_response().status, 101, "upgrade {i}");
            c
        })
        .collect();
    let r = b.post_form(&s.url("/logout"), &[]);
    assert_eq!(r.status, 302, "{}", r.text());
    for (i, c) in sockets.iter_mut().enumerate() {
        if let Err(e) = c.closed_within(EFFECT_TIMEOUT) {
            panic!("WebSocket {i} of the ended session stayed open: {e}");
        }
    }
}

/// A page elsewhere cannot accept the access banner for the user.
#[test]
fn cross_site_banner_acceptance_is_refused() {
    let banner = crate::oidc::stack::TempFile::new(".html", "<p>Authorised use only</p>");
    let s = Stack::builder()
        .set(
            "access-banner",
            crate::harness::quote(banner.path.to_str().unwrap()),
        )
        .start();
    let (mut b, _) = s.login("alice");
    let accept = s.url("/sessiongate/banner/accept?return=%2Fapp%2Fx");
    let r = b.request("POST", &accept, &[("Origin", "https://evil.example")], b"");
    assert_eq!(r.status, 403, "cross-site acceptance: {}", r.text());
    let page = b.navigate(&s.url("/app/x"));
    assert!(
        page.text().contains("Authorised use only"),
        "the banner still waits"
    );
    let own = format!("http://127.0.0.1:{}", s.port);
    let r = b.request("POST", &accept, &[("Origin", own.as_str())], b"");
    assert_eq!(r.status, 302, "same-origin acceptance: {}", r.text());
    assert_eq!(b.navigate(&s.url("/app/x")).text(), "ok");
}

/// The same over TLS: WSS connections to both workers (TLS connections never move to the
/// session's worker), the session ended by a logout on the plain listener beside; every one
/// of its WebSockets closes.
#[test]
fn tls_websockets_of_an_ended_session_close_on_every_worker() {
    let pki = crate::tls::Pki::new();
    let (cert, key) = pki.install(&pki.leaf());
    let s = Stack::builder()
        .workers(2)
        .tls(&cert, &key)
        .websocket_backend()
        .start();
    let (mut b, login) = s.login("alice");
    let tls = s.gateway.addr();
    assert_ne!(tls.port(), s.port, "the first listener is the TLS one");
    let mut sockets: Vec<_> = (0..12)
        .map(|i| {
            let mut c = crate::tls::TlsClient::connect(tls, crate::tls::tls13(&pki));
            let r = c.request(
                format!(
                    "GET /wss/{i} HTTP/1.1\r\nHost: localhost:{}\r\nCookie: SESSION={}\r\n\
                     Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {WS_KEY}\r\n\
                     Sec-WebSocket-Version: 13\r\n\r\n",
                    tls.port(),
                    login.session
                )
                .as_bytes(),
                "GET",
            );
            assert_eq!(r.status, 101, "TLS upgrade {i}: {:?}", r.head.start);
            c
        })
        .collect();
    let r = b.post_form(&s.url("/logout"), &[]);
    assert_eq!(r.status, 302, "{}", r.text());
    for (i, c) in sockets.iter_mut().enumerate() {
        assert!(
            c.closed_within(EFFECT_TIMEOUT),
            "TLS WebSocket {i} of the ended session stayed open"
        );
    }
}
