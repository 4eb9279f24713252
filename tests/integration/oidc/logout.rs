//! Ending a session by logout: the user's `POST /logout` (gateway, backend and provider),
//! and the provider's back-channel logout (OIDC Back-Channel Logout 1.0).

use std::time::{Duration, Instant};

use crate::oidc::browser::{parse_forms, set_cookie, Browser, Url};
use crate::oidc::provider::{aud_contains, bearer};
use crate::oidc::stack::{Stack, APP_PATH, BACKEND_LOGOUT_PATH};

/// How long an asynchronous effect of a logout (the backend call, the provider's event)
/// may take.
const EFFECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Submits the provider's logout confirmation page at `page_url` ("Yes, sign me out"),
/// returning the provider's answer (a 303) without following it.
fn confirm_provider_logout(b: &mut Browser, page_url: &Url) -> crate::client::Response {
    let page = b.navigate(page_url);
    assert_eq!(
        page.status,
        200,
        "provider logout page at {page_url}: {}",
        page.text()
    );
    let mut form = parse_forms(&page.text())
        .into_iter()
        .find(|f| f.id.as_deref() == Some("op.logoutForm"))
        .unwrap_or_else(|| panic!("no logout form at {page_url}:\n{}", page.text()));
    form.set("logout", "yes");
    b.submit_once(page_url, &form)
}

/// `POST /logout`: 302 to the provider's end_session_endpoint with `id_token_hint` and
/// `post_logout_redirect_uri`, the SESSION cookie deleted, the backend's logout URL called
/// with the session's access token, and the old cookie dead. Following the redirect ends
/// the provider's session too and lands on the post-logout page.
#[test]
fn logout_ends_the_session_at_gateway_backend_and_provider() {
    let s = Stack::start();
    let (mut b, login) = s.login("alice");
    let access_token = s.bearer_at_backend(APP_PATH);

    let r = b.post_form(&s.url("/logout"), &[]);
    assert_eq!(r.status, 302, "POST /logout: {} {}", r.status, r.text());
    let cookie = set_cookie(&r, "SESSION").unwrap_or_else(|| {
        panic!(
            "logout must delete the SESSION cookie: {:?}",
            r.head.headers
        )
    });
    assert!(
        cookie.is_removal() && cookie.value.is_empty(),
        "logout must delete the SESSION cookie (empty, Max-Age=0): {cookie:?}"
    );
    assert!(
        b.cookie(&s.url("/"), "SESSION").is_none(),
        "the browser still holds the cookie"
    );

    let end = s.url("/logout").join(r.header("location").unwrap());
    let meta = s.provider.metadata();
    assert_eq!(
        format!("{}{}", end.origin(), end.path()),
        meta["end_session_endpoint"].as_str().unwrap(),
        "logout must redirect to the provider's end_session_endpoint"
    );
    assert_eq!(
        end.param("post_logout_redirect_uri"),
        Some(format!("http://127.0.0.1:{}/", s.port))
    );
    let hint = end
        .param("id_token_hint")
        .unwrap_or_else(|| panic!("no id_token_hint in {end}"));
    let id = s
        .provider
        .jwks()
        .verify(&hint)
        .unwrap_or_else(|e| panic!("id_token_hint is not the provider's ID token: {e}"));
    assert_eq!(id["sub"], "alice");
    assert!(aud_contains(&id, "gateway"), "{id}");

    // The backend hears about it, with the session's access token.
    let call = s
        .wait_for_backend(EFFECT_TIMEOUT, |r| {
            r.target.split('?').next() == Some(BACKEND_LOGOUT_PATH)
        })
        .expect("cg.censhareLogoutUrl was not called");
    assert_eq!(call.method, "POST", "backend logout call: {:?}", call.head);
    assert_eq!(
        bearer(call.header("authorization")).as_deref(),
        Some(access_token.as_str()),
        "the backend logout call must carry the session's access token"
    );

    // The old cookie is dead, from any browser.
    let mut thief = Browser::new();
    thief.set_cookie(&s.url("/"), "SESSION", &login.session);
    let r = thief.navigate(&s.url("/app/after-logout"));
    s.assert_login_redirect(&r, "old SESSION cookie after logout");
    assert!(s.backend_requests_to("/app/after-logout").is_empty());

    // At the provider: confirm, land on the post-logout URL, which (no session) starts a
    // new login.
    let r = confirm_provider_logout(&mut b, &end);
    assert_eq!(r.status, 303, "provider logout confirm: {}", r.text());
    let landing = end.join(r.header("location").unwrap());
    assert_eq!(landing, s.url("/"), "post-logout landing page");
    assert!(
        s.provider
            .wait_for_event("end_session.success", EFFECT_TIMEOUT, |_| true)
            .is_some(),
        "the provider did not end its session"
    );
    let r = b.navigate(&landing);
    s.assert_login_redirect(&r, "post-logout landing page without session");
    // Followed through, that login asks for credentials again: the provider session ended.
    let (page, at) = b.navigate_follow(&landing);
    assert_eq!(page.status, 200, "{at}: {}", page.text());
    assert!(
        at.origin() == s.provider.issuer()
            && parse_forms(&page.text())
                .iter()
                .any(|f| f.inputs.iter().any(|i| i == "login")),
        "expected the provider's login form at {at}:\n{}",
        page.text()
    );
}

/// The provider ends the user's session on its own (the user logged out in another
/// application): it POSTs a logout token to the gateway's back-channel route, the gateway
/// answers 2xx (`backchannel.success`) and the session is gone.
#[test]
fn backchannel_logout_from_provider_ends_the_session() {
    let s = Stack::builder().backchannel_logout().start();
    let (mut b, login) = s.login("alice");
    let (_, other) = s.login("bob");

    // Logout at the provider, from alice's browser (it holds the provider's session cookie).
    let end = s.provider.url("/session/end?client_id=gateway");
    let r = confirm_provider_logout(&mut b, &end);
    assert_eq!(r.status, 303, "provider logout confirm: {}", r.text());

    let ok = s
        .provider
        .wait_for_event("backchannel.success", EFFECT_TIMEOUT, |e| {
            e["account_id"] == "alice"
        });
    assert!(
        ok.is_some(),
        "the gateway did not accept the logout token; provider events: {:?}",
        s.provider.events()
    );

    // The session ends on its owner worker; allow the message a moment to get there.
    let deadline = Instant::now() + EFFECT_TIMEOUT;
    loop {
        let mut probe = Browser::without_keep_alive();
        probe.set_cookie(&s.url("/"), "SESSION", &login.session);
        let r = probe.navigate(&s.url("/app/after-backchannel"));
        if r.status == 302 {
            s.assert_login_redirect(&r, "alice after back-channel logout");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "alice's session still works {EFFECT_TIMEOUT:?} after the back-channel logout: {}",
            r.status
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    // Bob was not logged out.
    let mut bob = Browser::new();
    bob.set_cookie(&s.url("/"), "SESSION", &other.session);
    let r = bob.navigate(&s.url("/app/bob"));
    assert_eq!(r.status, 200, "bob's session must survive: {}", r.text());
}
