//! Logout tokens the back-channel route must refuse: one flaw each, in an otherwise valid
//! token for alice's live session (her `sid` and `sub`, signed with the provider's key), so
//! that accepting it by mistake would end her session. Each gets 400 with
//! `{"error":"invalid_request","error_description":...}` and `Cache-Control: no-store`;
//! her session keeps working and the logout listener hears nothing.

use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde_json::{json, Value};

use crate::client::Response;
use crate::harness::quote;
use crate::oidc::browser::{unix_now, Browser};
use crate::oidc::listener::Listener;
use crate::oidc::stack::{Stack, APP_PATH};

const EFFECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A stack with the back-channel route and one logout listener, alice logged in.
struct World {
    s: Stack,
    listener: Listener,
    browser: Browser,
    session: String,
    sid: String,
}

impl World {
    fn start() -> World {
        let listener = Listener::ok();
        let s = Stack::builder()
            .backchannel_logout()
            .cg("logoutListeners", quote(&listener.url("/relay")))
            .start();
        let (browser, login) = s.login("alice");
        let sid = s.provider.sid_of("alice");
        World {
            s,
            listener,
            browser,
            session: login.session,
            sid,
        }
    }

    /// Valid claims for alice's session.
    fn claims(&self) -> Value {
        self.s
            .provider
            .logout_claims(Some("alice"), Some(&self.sid))
    }

    /// Claims signed as the provider signs logout tokens.
    fn sign(&self, claims: Value) -> String {
        self.s.provider.sign_logout(claims)
    }

    /// Posts the token and asserts it is refused without effect.
    fn refuses(&self, token: &str, what: &str) {
        let r = self.s.post_logout_token(token);
        self.assert_refused(&r, what, 0);
    }

    /// The 400 answer, alice's session alive, `relays` calls at the listener.
    fn assert_refused(&self, r: &Response, what: &str, relays: usize) {
        assert_eq!(r.status, 400, "{what}: expected 400, got {}", r.text());
        assert_eq!(
            r.header("cache-control"),
            Some("no-store"),
            "{what}: {:?}",
            r.head.headers
        );
        let ct = r.header("content-type").unwrap_or_default();
        assert!(
            ct.starts_with("application/json"),
            "{what}: content type {ct:?}"
        );
        let body: Value = serde_json::from_slice(&r.body)
            .unwrap_or_else(|e| panic!("{what}: the 400 body is not JSON ({e}): {}", r.text()));
        assert_eq!(body["error"], "invalid_request", "{what}: {body}");
        assert!(
            body["error_description"]
                .as_str()
                .is_some_and(|d| !d.is_empty()),
            "{what}: no error_description: {body}"
        );
        self.s.assert_session_works(&self.session, what);
        assert_eq!(
            self.listener.calls().len(),
            relays,
            "{what}: a refused token must not be relayed"
        );
    }
}

/// `header.payload.` with no signature.
fn unsigned(header: Value, claims: &Value) -> String {
    format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    )
}

#[test]
fn bad_signature_is_refused() {
    let w = World::start();
    // Signed by a key the provider never published, under its published kid.
    let token = w.s.provider.sign(
        "bcl-rogue",
        json!({"kid": "k1", "typ": "logout+jwt"}),
        w.claims(),
    );
    w.refuses(&token, "a token signed by another key under kid k1");
}

#[test]
fn alg_none_is_refused() {
    let w = World::start();
    let token = unsigned(json!({"alg": "none", "typ": "logout+jwt"}), &w.claims());
    w.refuses(&token, "an unsigned token (alg none)");
}

#[test]
fn wrong_issuer_is_refused() {
    let w = World::start();
    let mut c = w.claims();
    c["iss"] = json!("http://127.0.0.1:1");
    w.refuses(&w.sign(c), "a token from another issuer");
}

#[test]
fn wrong_audience_is_refused() {
    let w = World::start();
    let mut c = w.claims();
    c["aud"] = json!("another-client");
    w.refuses(&w.sign(c), "a token for another client");
}

#[test]
fn missing_events_is_refused() {
    let w = World::start();
    let mut c = w.claims();
    c.as_object_mut().unwrap().remove("events");
    w.refuses(&w.sign(c), "a token without events");
}

#[test]
fn wrong_events_member_is_refused() {
    let w = World::start();
    let mut c = w.claims();
    c["events"] = json!({"http://schemas.openid.net/event/something-else": {}});
    w.refuses(
        &w.sign(c),
        "a token whose events lack the back-channel member",
    );
}

#[test]
fn events_member_that_is_not_an_object_is_refused() {
    let w = World::start();
    let mut c = w.claims();
    c["events"] = json!({"http://schemas.openid.net/event/backchannel-logout": "yes"});
    w.refuses(
        &w.sign(c),
        "a token whose back-channel event is not an object",
    );
}

#[test]
fn nonce_is_refused() {
    let w = World::start();
    let mut c = w.claims();
    c["nonce"] = json!("n-0S6_WzA2Mj");
    w.refuses(&w.sign(c), "a token with a nonce");
}

#[test]
fn neither_sub_nor_sid_is_refused() {
    let w = World::start();
    let mut c = w.claims();
    c.as_object_mut().unwrap().remove("sub");
    c.as_object_mut().unwrap().remove("sid");
    w.refuses(&w.sign(c), "a token without sub and sid");
}

#[test]
fn missing_jti_is_refused() {
    let w = World::start();
    let mut c = w.claims();
    c.as_object_mut().unwrap().remove("jti");
    w.refuses(&w.sign(c), "a token without jti");
}

#[test]
fn wrong_typ_is_refused() {
    let w = World::start();
    let token =
        w.s.provider
            .sign("k1", json!({"typ": "at+jwt"}), w.claims());
    w.refuses(&token, "a token typed at+jwt");
}

/// The first use ends alice's session (200); she logs in again in the same browser (same
/// provider session, so the same `sid`), and the same token again is refused and leaves the
/// new session alone.
#[test]
fn replayed_jti_is_refused() {
    let mut w = World::start();
    let mut c = w.claims();
    // A few seconds old, so the new login's ID token is clearly younger than the logout.
    c["iat"] = json!(unix_now() - 5);
    let token = w.sign(c);
    let r = w.s.post_logout_token(&token);
    assert_eq!(r.status, 200, "first use: {}", r.text());
    w.s.wait_until_session_ended(&w.session, EFFECT_TIMEOUT, "alice after the first use");
    w.listener.wait_for_calls(1, EFFECT_TIMEOUT);

    w.browser.remove_cookie(&w.s.url("/"), "SESSION");
    let again = w.browser.login(&w.s.url(APP_PATH), "alice");
    assert_eq!(
        w.s.provider.sid_of("alice"),
        w.sid,
        "the new login must share the provider session"
    );
    w.session = again.session;

    let r = w.s.post_logout_token(&token);
    w.assert_refused(&r, "the same token again", 1);
}

#[test]
fn iat_far_in_the_future_is_refused() {
    let w = World::start();
    let now = unix_now();
    let mut c = w.claims();
    c["iat"] = json!(now + 3600);
    c["exp"] = json!(now + 3720);
    w.refuses(&w.sign(c), "a token issued an hour from now");
}

#[test]
fn expired_token_is_refused() {
    let w = World::start();
    let now = unix_now();
    let mut c = w.claims();
    c["iat"] = json!(now - 600);
    c["exp"] = json!(now - 300);
    w.refuses(&w.sign(c), "a token that expired five minutes ago");
}

#[test]
fn old_token_without_exp_is_refused() {
    let w = World::start();
    let mut c = w.claims();
    c.as_object_mut().unwrap().remove("exp");
    c["iat"] = json!(unix_now() - 400);
    w.refuses(&w.sign(c), "a token without exp issued 400 s ago");
}

#[test]
fn empty_body_is_refused() {
    let w = World::start();
    let r = w.s.post_backchannel("");
    w.assert_refused(&r, "an empty body", 0);
}

#[test]
fn form_without_logout_token_is_refused() {
    let w = World::start();
    let token = w.sign(w.claims());
    let r =
        w.s.post_backchannel(&crate::oidc::browser::encode_form(&[("token", &token)]));
    w.assert_refused(&r, "a form without logout_token", 0);
}
