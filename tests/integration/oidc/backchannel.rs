//! Back-channel logout (OpenID Connect Back-Channel Logout 1.0) with the real provider: the
//! provider's own logout tokens (after an RP-initiated logout, and after an administrator
//! ends a session) and tokens signed with its key; each ends the matching sessions on
//! whichever of the two workers owns them, and every `cg.logoutListeners` URL gets the token.
//! Refused tokens are in `backchannel_refused`.

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::json;

use crate::harness::quote;
use crate::oidc::browser::{unix_now, Browser};
use crate::oidc::listener::{Call, Listener};
use crate::oidc::provider::{jwt_header, BACKCHANNEL_LOGOUT_EVENT};
use crate::oidc::stack::{session_owner, Stack, APP_PATH};

/// How long an asynchronous effect (a logout token, a relay, a session's end) may take.
const EFFECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Logs `user` in again and again in one browser (one provider session, so one `sid`), each
/// time on new connections, until the gateway holds sessions of it on both workers. Returns
/// the SESSION cookies; the browser keeps the last one.
pub fn login_on_both_workers(s: &Stack, b: &mut Browser, user: &str) -> Vec<String> {
    b.keep_alive = false;
    let mut sessions = Vec::new();
    for _ in 0..16 {
        b.remove_cookie(&s.url("/"), "SESSION");
        sessions.push(b.login(&s.url(APP_PATH), user).session);
        let owners: BTreeSet<u8> = sessions.iter().map(|c| session_owner(c)).collect();
        if owners.len() == 2 {
            return sessions;
        }
    }
    panic!("16 logins of {user} all landed on the same worker");
}

/// Asserts a relayed call is the form POST `logout_token=<token>`; returns the token.
fn relayed_token(call: &Call) -> String {
    assert_eq!(
        call.request.method, "POST",
        "relay: {:?}",
        call.request.head
    );
    let ct = call.header("content-type").unwrap_or_default();
    assert!(
        ct.starts_with("application/x-www-form-urlencoded"),
        "relay content type: {ct:?}"
    );
    call.form_value("logout_token")
        .unwrap_or_else(|| panic!("relay without logout_token: {:?}", call.form()))
}

/// The user logs out at the gateway (`POST /logout`) from one of several sessions of one
/// provider session, follows it to the provider's end_session endpoint and confirms. The
/// provider sends its logout token to the gateway, which ends the other sessions, on both
/// workers, and relays the token to both listeners (configured as a YAML list); other users
/// are untouched.
#[test]
fn rp_initiated_logout_ends_the_provider_session_everywhere_and_reaches_every_listener() {
    let (l1, l2) = (Listener::ok(), Listener::ok());
    let s = Stack::builder()
        .backchannel_logout()
        .cg(
            "logoutListeners",
            format!(
                "[{}, {}]",
                quote(&l1.url("/one/logout")),
                quote(&l2.url("/two/logout"))
            ),
        )
        .start();
    let mut b = Browser::new();
    // Sessions on both workers that only the logout token can end, and one more (same
    // provider session) that the user logs out of.
    let sessions = login_on_both_workers(&s, &mut b, "alice");
    b.remove_cookie(&s.url("/"), "SESSION");
    b.login(&s.url(APP_PATH), "alice");
    let (_, bob) = s.login("bob");
    let sid = s.provider.sid_of("alice");

    let r = b.post_form(&s.url("/logout"), &[]);
    assert_eq!(r.status, 302, "POST /logout: {} {}", r.status, r.text());
    let end = s.url("/logout").join(r.header("location").unwrap());
    assert!(
        end.param("id_token_hint").is_some(),
        "no id_token_hint: {end}"
    );
    let r = b.confirm_provider_logout(&end);
    assert_eq!(r.status, 303, "provider logout confirm: {}", r.text());

    let sent = s
        .provider
        .wait_for_event("backchannel.success", EFFECT_TIMEOUT, |e| {
            e["account_id"] == "alice"
        });
    assert!(
        sent.is_some(),
        "the gateway did not answer the provider's logout token with 200; events: {:?}",
        s.provider.events()
    );
    assert_eq!(sent.unwrap()["sid"], sid.as_str());
    for (i, session) in sessions.iter().enumerate() {
        s.wait_until_session_ended(
            session,
            EFFECT_TIMEOUT,
            &format!(
                "alice's session {i} (worker {}) after the back-channel logout",
                session_owner(session)
            ),
        );
    }
    s.assert_session_works(&bob.session, "bob after alice's logout");

    let keys = s.provider.jwks();
    for (name, l) in [("first", &l1), ("second", &l2)] {
        let calls = l.wait_for_calls(1, EFFECT_TIMEOUT);
        let token = relayed_token(&calls[0]);
        let claims = keys
            .verify(&token)
            .unwrap_or_else(|e| panic!("the {name} listener got no provider token: {e}"));
        assert_eq!(jwt_header(&token)["typ"], "logout+jwt");
        assert_eq!(claims["sid"], sid.as_str(), "{claims}");
        assert_eq!(claims["sub"], "alice", "{claims}");
        assert!(claims["events"][BACKCHANNEL_LOGOUT_EVENT].is_object());
        assert_eq!(
            l.calls().len(),
            1,
            "the {name} listener must get the token once"
        );
    }
    assert!(l1.calls()[0].request.target.starts_with("/one/logout"));
    assert!(l2.calls()[0].request.target.starts_with("/two/logout"));
}

/// An administrator ends alice's session at the provider, no browser involved: the
/// provider's own logout token ends her gateway session and reaches both listeners
/// (configured as one comma-separated string); bob keeps his session.
#[test]
fn session_ended_at_the_provider_without_browser_ends_the_gateway_session() {
    let (l1, l2) = (Listener::ok(), Listener::ok());
    let s = Stack::builder()
        .backchannel_logout()
        .cg(
            "logoutListeners",
            quote(&format!("{},{}", l1.url("/one"), l2.url("/two"))),
        )
        .start();
    let (_, alice) = s.login("alice");
    let (_, bob) = s.login("bob");
    let sid = s.provider.sid_of("alice");

    let results = s.provider.end_sessions_of("alice");
    assert_eq!(
        results,
        vec![json!({"client_id": "gateway", "sid": sid, "ok": true})],
        "the gateway must answer the provider's logout token with 200"
    );
    s.wait_until_session_ended(&alice.session, EFFECT_TIMEOUT, "alice after admin end");
    s.assert_session_works(&bob.session, "bob after alice's admin end");
    assert!(s.provider.sessions_of("alice").is_empty());
    let keys = s.provider.jwks();
    for (name, l) in [("first", &l1), ("second", &l2)] {
        let token = relayed_token(&l.wait_for_calls(1, EFFECT_TIMEOUT)[0]);
        let claims = keys
            .verify(&token)
            .unwrap_or_else(|e| panic!("the {name} listener got no provider token: {e}"));
        assert_eq!(claims["sid"], sid.as_str(), "{claims}");
    }
}

/// A logout token signed with the provider's key for alice's `sid`: 200 with
/// `Cache-Control: no-store`, her session ends, bob's does not. At the default log level
/// the token itself is not logged.
#[test]
fn signed_logout_token_for_a_sid_answers_200_no_store_and_ends_that_session() {
    let s = Stack::builder().backchannel_logout().start();
    let (_, alice) = s.login("alice");
    let (_, bob) = s.login("bob");
    let sid = s.provider.sid_of("alice");
    let token = s
        .provider
        .sign_logout(s.provider.logout_claims(Some("alice"), Some(&sid)));

    let r = s.post_logout_token(&token);
    assert_eq!(r.status, 200, "valid logout token: {}", r.text());
    assert_eq!(
        r.header("cache-control"),
        Some("no-store"),
        "{:?}",
        r.head.headers
    );
    s.wait_until_session_ended(&alice.session, EFFECT_TIMEOUT, "alice after her sid");
    s.assert_session_works(&bob.session, "bob after alice's sid");
    assert!(
        !s.gateway.stderr().contains("logout token received"),
        "the token must not be logged below TRACE"
    );
}

/// Without `sid`, the token ends every session of its `sub`: alice's sessions from two
/// provider sessions, on both workers; bob's stays.
#[test]
fn logout_token_without_sid_ends_every_session_of_the_subject() {
    let s = Stack::builder().backchannel_logout().start();
    let mut b = Browser::new();
    let mut sessions = login_on_both_workers(&s, &mut b, "alice");
    let (_, elsewhere) = s.login("alice");
    sessions.push(elsewhere.session);
    let (_, bob) = s.login("bob");
    assert_eq!(s.provider.sessions_of("alice").len(), 2);

    let token = s
        .provider
        .sign_logout(s.provider.logout_claims(Some("alice"), None));
    let r = s.post_logout_token(&token);
    assert_eq!(r.status, 200, "sub-only logout token: {}", r.text());
    for (i, session) in sessions.iter().enumerate() {
        s.wait_until_session_ended(
            session,
            EFFECT_TIMEOUT,
            &format!(
                "alice's session {i} (worker {}) after a sub-only token",
                session_owner(session)
            ),
        );
    }
    s.assert_session_works(&bob.session, "bob after alice's sub-only token");
}

/// Older Keycloak sends no `exp`: accepted while `iat` is recent.
#[test]
fn logout_token_without_exp_is_accepted_while_iat_is_recent() {
    let s = Stack::builder().backchannel_logout().start();
    let (_, alice) = s.login("alice");
    let sid = s.provider.sid_of("alice");
    let mut claims = s.provider.logout_claims(Some("alice"), Some(&sid));
    claims.as_object_mut().unwrap().remove("exp");
    claims["iat"] = json!(unix_now() - 60);

    let r = s.post_logout_token(&s.provider.sign_logout(claims));
    assert_eq!(r.status, 200, "logout token without exp: {}", r.text());
    s.wait_until_session_ended(
        &alice.session,
        EFFECT_TIMEOUT,
        "alice after a token without exp",
    );
}

/// `typ` may be `JWT` or absent (Back-Channel Logout 1.0 errata 1, and what Keycloak sends):
/// a token of each kind ends its session.
#[test]
fn logout_tokens_typed_jwt_or_untyped_are_accepted() {
    let s = Stack::builder().backchannel_logout().start();
    let (_, alice) = s.login("alice");
    let (_, bob) = s.login("bob");
    let typed = s.provider.sign(
        "k1",
        json!({"typ": "JWT"}),
        s.provider
            .logout_claims(Some("alice"), Some(&s.provider.sid_of("alice"))),
    );
    let untyped = s.provider.sign_without(
        "k1",
        &["typ"],
        s.provider
            .logout_claims(Some("bob"), Some(&s.provider.sid_of("bob"))),
    );
    assert!(jwt_header(&untyped).get("typ").is_none());

    let r = s.post_logout_token(&typed);
    assert_eq!(r.status, 200, "typ JWT: {}", r.text());
    let r = s.post_logout_token(&untyped);
    assert_eq!(r.status, 200, "no typ: {}", r.text());
    s.wait_until_session_ended(&alice.session, EFFECT_TIMEOUT, "alice after typ JWT");
    s.wait_until_session_ended(&bob.session, EFFECT_TIMEOUT, "bob after an untyped token");
}

/// `aud` may be an array containing the client id; as with ID tokens (the spec's §2.6
/// validates aud "in the same way"), several audiences come with `azp` naming the client.
#[test]
fn logout_token_with_an_audience_array_containing_the_client_is_accepted() {
    let s = Stack::builder().backchannel_logout().start();
    let (_, alice) = s.login("alice");
    let mut claims = s
        .provider
        .logout_claims(Some("alice"), Some(&s.provider.sid_of("alice")));
    claims["aud"] = json!(["another-client", s.provider.client_id()]);
    claims["azp"] = json!(s.provider.client_id());

    let r = s.post_logout_token(&s.provider.sign_logout(claims));
    assert_eq!(r.status, 200, "aud array: {}", r.text());
    s.wait_until_session_ended(&alice.session, EFFECT_TIMEOUT, "alice after an aud array");
}
