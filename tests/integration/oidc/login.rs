//! Logging in: the redirect to the provider, the callback, the SESSION cookie, what the
//! backend receives afterwards, and the callbacks the gateway must refuse.

use std::collections::HashSet;

use crate::client::Client;
use crate::oidc::browser::{set_cookie, unix_now, Browser};
use crate::oidc::provider::{aud_contains, bearer, jwt_payload};
use crate::oidc::stack::{sets_no_session, Stack, APP_PATH};

/// A navigation without a session is sent to the provider's authorization endpoint with a
/// complete, fresh authorization request (state, nonce, PKCE S256) and reaches no backend.
#[test]
fn navigation_without_session_redirects_to_provider_with_pkce() {
    let s = Stack::start();
    let meta = s.provider.metadata();
    let mut seen = HashSet::new();
    for _ in 0..2 {
        let mut b = Browser::new();
        let r = b.navigate(&s.url(APP_PATH));
        s.assert_login_redirect(&r, "navigation without session");
        assert!(
            set_cookie(&r, "SESSION").is_none(),
            "no session before the callback: {:?}",
            r.head.headers
        );
        let auth = s.url(APP_PATH).join(r.header("location").unwrap());
        assert_eq!(
            format!("{}{}", auth.origin(), auth.path()),
            meta["authorization_endpoint"].as_str().unwrap()
        );
        let p = |name: &str| {
            auth.param(name)
                .unwrap_or_else(|| panic!("authorization request without {name}: {auth}"))
        };
        assert_eq!(p("response_type"), "code");
        assert_eq!(p("client_id"), "gateway");
        assert_eq!(
            p("redirect_uri"),
            format!("http://127.0.0.1:{}/login/oauth2/code/demo", s.port)
        );
        let scopes: HashSet<String> = p("scope").split(' ').map(str::to_string).collect();
        for wanted in ["openid", "profile", "email"] {
            assert!(
                scopes.contains(wanted),
                "scope {wanted} missing: {scopes:?}"
            );
        }
        assert_eq!(p("code_challenge_method"), "S256");
        let challenge = p("code_challenge");
        assert_eq!(
            challenge.len(),
            43,
            "an S256 challenge is 32 bytes in base64url: {challenge:?}"
        );
        assert!(challenge
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_'));
        for name in ["state", "nonce"] {
            assert!(
                p(name).len() >= 16,
                "{name} too short to be unguessable: {:?}",
                p(name)
            );
        }
        for name in ["state", "nonce", "code_challenge"] {
            assert!(
                seen.insert(p(name)),
                "{name} repeated across two logins: {}",
                p(name)
            );
        }
    }
    s.backend.assert_saw_nothing();
}

/// The whole code flow: the callback creates a session, answers 302 to the URL the user
/// asked for with `Set-Cookie: SESSION=<id>; Path=/; HttpOnly; SameSite=Lax`, and the
/// backend then sees the original request once.
#[test]
fn login_sets_session_cookie_and_returns_to_original_url() {
    let s = Stack::start();
    let (mut b, login) = s.login("alice");

    let back = login
        .callback_url
        .join(login.callback.header("location").unwrap());
    assert_eq!(
        back,
        s.url(APP_PATH),
        "the callback must send the user back to the original URL"
    );
    assert_eq!(
        login.callback_url.param("state"),
        login.authorize_url.param("state"),
        "the provider echoes the state"
    );
    let c = &login.session_cookie;
    assert_eq!(c.attr("path"), Some("/"), "SESSION cookie: {c:?}");
    assert!(c.has("httponly"), "SESSION cookie must be HttpOnly: {c:?}");
    assert!(
        c.attr("samesite")
            .is_some_and(|v| v.eq_ignore_ascii_case("lax")),
        "SESSION cookie must be SameSite=Lax: {c:?}"
    );
    assert!(
        !c.has("secure"),
        "useSecureSessionCookie: false, yet Secure: {c:?}"
    );
    assert!(
        login.session.len() >= 22
            && login
                .session
                .bytes()
                .all(|b| b.is_ascii_graphic() && !b";,\"\\".contains(&b)),
        "session id must carry >= 128 bits in cookie-safe characters: {:?}",
        login.session
    );

    assert_eq!(login.response.status, 200, "{}", login.response.text());
    assert_eq!(login.response.text(), "ok");
    let app: Vec<String> = s.app_requests().iter().map(|r| r.target.clone()).collect();
    assert_eq!(
        app,
        [APP_PATH],
        "only the request after login reaches the backend"
    );

    // The session keeps working.
    let r = b.navigate(&s.url("/app/next"));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        s.bearer_at_backend("/app/next"),
        s.bearer_at_backend(APP_PATH)
    );
}

/// `cg.useSecureSessionCookie: true` adds `Secure` to the SESSION cookie.
#[test]
fn secure_session_cookie_when_configured() {
    let s = Stack::builder().cg("useSecureSessionCookie", true).start();
    let (_, login) = s.login("alice");
    let c = &login.session_cookie;
    assert!(c.has("secure"), "SESSION cookie must be Secure: {c:?}");
    assert!(c.has("httponly") && c.attr("path") == Some("/"), "{c:?}");
}

/// Requests that are not navigations get 401 with a JSON body instead of a redirect; a
/// request whose Accept prefers HTML counts as a navigation even without Sec-Fetch headers.
#[test]
fn non_navigation_without_session_gets_401_json() {
    let s = Stack::start();
    let mut b = Browser::new();

    let r = b.fetch(&s.url("/api/items"));
    assert_eq!(r.status, 401, "fetch() without session: {}", r.text());
    assert!(
        r.header("content-type")
            .unwrap_or_default()
            .contains("json"),
        "401 must be JSON: {:?}",
        r.head.headers
    );
    let body: serde_json::Value = serde_json::from_slice(&r.body)
        .unwrap_or_else(|e| panic!("401 body is not JSON ({e}): {:?}", r.text()));
    assert!(body.is_object(), "401 body: {body}");
    assert!(set_cookie(&r, "SESSION").is_none());

    // curl: Accept: */*, no Sec-Fetch-*.
    let mut c = Client::connect(s.gateway.addr());
    let r = c.request(
        format!(
            "GET /api/items HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nAccept: */*\r\n\r\n",
            s.port
        )
        .as_bytes(),
    );
    assert_eq!(r.status, 401, "curl-like request: {}", r.text());

    // Sec-Fetch-Mode: cors even with a broad Accept.
    let r = b.request(
        "GET",
        &s.url("/api/items"),
        &[
            ("Accept", "*/*"),
            ("Sec-Fetch-Mode", "cors"),
            ("Sec-Fetch-Dest", "empty"),
        ],
        b"",
    );
    assert_eq!(r.status, 401, "XHR: {}", r.text());

    // A browser that sends no Sec-Fetch headers but asks for HTML is navigating.
    let r = b.request(
        "GET",
        &s.url(APP_PATH),
        &[("Accept", "text/html,application/xhtml+xml,*/*;q=0.8")],
        b"",
    );
    s.assert_login_redirect(&r, "Accept: text/html without Sec-Fetch");

    s.backend.assert_saw_nothing();
}

/// A callback whose state the gateway never issued is refused: 400, no session.
#[test]
fn callback_with_unknown_state_is_refused() {
    let s = Stack::start();
    let mut b = Browser::new();
    for target in [
        format!("{}?code=abc&state=never-issued", s.callback_path()),
        s.callback_path(),
        format!("{}?code=abc", s.callback_path()),
    ] {
        let r = b.callback(&s.url(&target));
        assert_eq!(r.status, 400, "GET {target}: {}", r.text());
        assert!(
            sets_no_session(&r),
            "GET {target} must not set a session: {:?}",
            r.head.headers
        );
    }
    s.backend.assert_saw_nothing();
}

/// A callback URL used a second time is refused in another browser, and, in the browser
/// that is logged in by it (the Back button), sends the user on to where they were going;
/// neither creates a session, and the first session is not affected.
#[test]
fn replayed_callback_is_refused() {
    let s = Stack::start();
    let (mut b, login) = s.login("alice");
    let mut other = Browser::new();
    let r = other.callback(&login.callback_url);
    assert_eq!(
        r.status,
        400,
        "replayed callback from another browser: {}",
        r.text()
    );
    assert!(
        sets_no_session(&r),
        "a replayed callback from another browser must not create a session: {:?}",
        r.head.headers
    );
    let r = b.callback(&login.callback_url);
    assert_eq!(
        r.status,
        302,
        "replayed callback while logged in: {}",
        r.text()
    );
    assert_eq!(
        r.header("location"),
        Some(APP_PATH),
        "the logged-in user is sent where the login was going"
    );
    assert!(
        sets_no_session(&r),
        "no second session: {:?}",
        r.head.headers
    );
    // The browser still holds the first session and it works.
    let r = b.navigate(&s.url("/app/after-replay"));
    assert_eq!(r.status, 200, "{}", r.text());
}

/// The user declines at the provider: the callback carries `error=access_denied` and the
/// gateway answers 400 without a session.
#[test]
fn denied_authorization_is_refused() {
    let s = Stack::start();
    let mut b = Browser::new();
    let auth = b.start_login(&s.url(APP_PATH));
    let callback = b.deny(&auth);
    assert_eq!(callback.param("error").as_deref(), Some("access_denied"));
    assert_eq!(callback.param("state"), auth.param("state"));
    let r = b.callback(&callback);
    assert_eq!(r.status, 400, "access_denied callback: {}", r.text());
    assert!(sets_no_session(&r), "{:?}", r.head.headers);
    s.backend.assert_saw_nothing();
}

/// A callback with a valid state but a code the provider refuses: the exchange fails
/// (invalid_grant at the token endpoint), the gateway answers 400 without a session.
#[test]
fn failed_code_exchange_is_refused() {
    let s = Stack::start();
    let mut b = Browser::new();
    let auth = b.start_login(&s.url(APP_PATH));
    let callback = b.authorize(&auth, "alice");
    let forged = callback.with_param("code", "forged-authorization-code");
    let r = b.callback(&forged);
    assert_eq!(r.status, 400, "callback with a bad code: {}", r.text());
    assert!(sets_no_session(&r), "{:?}", r.head.headers);
    assert!(
        s.provider
            .wait_for_event("grant.error", std::time::Duration::from_secs(5), |_| true)
            .is_some(),
        "the gateway should have tried the exchange (no grant.error at the provider)"
    );
    s.backend.assert_saw_nothing();
}

/// With a session the backend gets `Authorization: Bearer <the provider's JWT access
/// token>` and every cookie but SESSION.
#[test]
fn session_requests_carry_bearer_token_and_no_session_cookie() {
    let s = Stack::start();
    let (mut b, login) = s.login("alice");
    let url = s.url("/app/data?q=1");
    b.set_cookie(&url, "theme", "dark");
    b.set_cookie(&url, "lang", "de");
    let r = b.navigate(&url);
    assert_eq!(r.status, 200, "{}", r.text());

    let req = s
        .backend_requests_to("/app/data")
        .pop()
        .expect("backend request");
    let token = bearer(req.header("authorization"))
        .unwrap_or_else(|| panic!("no bearer token at the backend: {:?}", req.head.headers));
    let claims = s
        .provider
        .jwks()
        .verify(&token)
        .unwrap_or_else(|e| panic!("the forwarded token is not the provider's: {e}"));
    assert_eq!(claims["iss"], s.provider.issuer());
    assert_eq!(claims["sub"], "alice");
    assert!(aud_contains(&claims, "gateway"), "aud: {claims}");
    assert!(
        claims["exp"].as_i64().unwrap() > unix_now(),
        "expired: {claims}"
    );
    assert_eq!(
        req.headers("authorization").len(),
        1,
        "exactly one Authorization header"
    );

    let cookies = req.headers("cookie").join("; ");
    assert!(
        cookies.contains("theme=dark") && cookies.contains("lang=de"),
        "other cookies must reach the backend: {cookies:?}"
    );
    assert!(
        !cookies.contains("SESSION") && !cookies.contains(&login.session),
        "the SESSION cookie must not reach the backend: {cookies:?}"
    );

    // fetch() from a page of the same session works too.
    let r = b.fetch(&s.url("/api/list"));
    assert_eq!(r.status, 200, "{}", r.text());
    let api = s.backend_requests_to("/api/list").pop().unwrap();
    assert_eq!(bearer(api.header("authorization")), Some(token));
    assert!(!api.headers("cookie").join(";").contains("SESSION"));
}

/// The registration's `client-authentication-method: client_secret_post` is honoured (the
/// provider only accepts that method for this client).
#[test]
fn client_secret_post_registration_logs_in() {
    let s = Stack::builder()
        .provider(|o| o.auth_method("client_secret_post"))
        .registration("client-authentication-method", "client_secret_post")
        .start();
    let (_, login) = s.login("alice");
    assert_eq!(login.response.status, 200, "{}", login.response.text());
    let token = s.bearer_at_backend(APP_PATH);
    assert_eq!(jwt_payload(&token)["sub"], "alice");
}

/// Two workers: sessions created on whichever worker accepted the login keep working over
/// many new connections, which SO_REUSEPORT spreads over both workers.
#[test]
fn sessions_work_over_many_new_connections_with_two_workers() {
    let s = Stack::builder().workers(2).start();
    let logins: Vec<_> = (0..4).map(|i| s.login(&format!("user{i}")).1).collect();
    for (i, login) in logins.iter().enumerate() {
        for n in 0..12 {
            let mut b = Browser::without_keep_alive();
            let target = format!("/app/u{i}/n{n}");
            let url = s.url(&target);
            b.set_cookie(&url, "SESSION", &login.session);
            let r = if n % 3 == 0 {
                b.fetch(&url)
            } else {
                b.navigate(&url)
            };
            assert_eq!(
                r.status,
                200,
                "session {i}, new connection {n}: {} {}",
                r.status,
                r.text()
            );
            let token = s.bearer_at_backend(&target);
            assert_eq!(
                jwt_payload(&token)["sub"],
                format!("user{i}"),
                "request {target} carried someone else's token"
            );
        }
    }
}

/// With `sessiongate.connection-hand-off: false` (what TLS connections always do) a request
/// that lands on the worker not owning its session is served through the owner by message:
/// the owner's token reaches the backend, the SESSION cookie does not, and a logout sent on
/// a connection of the other worker ends the session at its owner.
#[test]
fn sessions_are_served_across_workers_by_message_without_hand_off() {
    let s = Stack::builder()
        .workers(2)
        .set("connection-hand-off", "false")
        .start();
    let (_, login) = s.login("carol");
    for n in 0..16 {
        let mut b = Browser::without_keep_alive();
        let target = format!("/app/remote/n{n}");
        let url = s.url(&target);
        b.set_cookie(&url, "SESSION", &login.session);
        b.set_cookie(&url, "theme", "dark");
        let r = b.navigate(&url);
        assert_eq!(
            r.status,
            200,
            "new connection {n}: {} {}",
            r.status,
            r.text()
        );
        let req = s
            .backend_requests_to(&target)
            .pop()
            .expect("backend request");
        let token = bearer(req.header("authorization")).expect("bearer at the backend");
        assert_eq!(jwt_payload(&token)["sub"], "carol");
        let cookies = req.headers("cookie").join("; ");
        assert!(
            !cookies.contains("SESSION") && cookies.contains("theme=dark"),
            "cookies at the backend: {cookies:?}"
        );
    }
    // Logouts from fresh connections: whichever worker takes one, the session ends.
    let mut ended = false;
    for _ in 0..8 {
        let mut b = Browser::without_keep_alive();
        let url = s.url("/logout");
        b.set_cookie(&url, "SESSION", &login.session);
        let r = b.post_form(&url, &[]);
        assert_eq!(r.status, 302, "POST /logout: {}", r.text());
        if r.header("location")
            .is_some_and(|l| l.contains("id_token_hint"))
        {
            ended = true;
            break;
        }
    }
    assert!(
        ended,
        "no logout redirect carried the ended session's id_token_hint"
    );
    let mut b = Browser::without_keep_alive();
    let url = s.url("/app/after-logout");
    b.set_cookie(&url, "SESSION", &login.session);
    s.assert_login_redirect(&b.navigate(&url), "SESSION cookie after logout");
}
