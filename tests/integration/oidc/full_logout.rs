//! `cg.expiredSessionFullLogout`: an idle-expired session is also ended at the backend
//! (`cg.censhareLogoutUrl` with its access token) and at the provider (its refresh token
//! revoked, so it no longer works) when true, and only locally when false.
//!
//! The sleep here waits out check intervals after the expiry, to show nothing follows.

use std::thread;
use std::time::Duration;

use serde_json::Value;

use crate::oidc::provider::bearer;
use crate::oidc::stack::{Stack, APP_PATH, BACKEND_LOGOUT_PATH};

const EFFECT_TIMEOUT: Duration = Duration::from_secs(10);
const CHECK_INTERVAL_MS: u64 = 100;

/// The refresh token the gateway holds for `user`: the only one the provider issued.
fn only_refresh_token(s: &Stack, user: &str) -> String {
    let tokens = s.provider.refresh_tokens_of(user);
    assert_eq!(
        tokens.len(),
        1,
        "expected one refresh token of {user}: {tokens:?}"
    );
    tokens[0].clone()
}

/// Redeems a refresh token at the provider's token endpoint: status and JSON body.
fn redeem(s: &Stack, refresh_token: &str) -> (u16, Value) {
    let r = s.provider.token_request(&[
        ("grant_type", "refresh_token"),
        ("refresh_token", refresh_token),
    ]);
    let body = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
    (r.status, body)
}

/// Waits for the gateway's note that `user`'s session ended by expiry.
fn wait_for_expiry(s: &Stack, user: &str) {
    s.gateway
        .wait_for_log_line(EFFECT_TIMEOUT, |l| {
            l.contains("session ended") && l.contains(user) && l.contains("expired")
        })
        .unwrap_or_else(|| {
            panic!(
                "{user}'s session did not expire; stderr:\n{}",
                s.gateway.stderr()
            )
        });
}

#[test]
fn expiry_with_full_logout_ends_the_session_at_backend_and_provider() {
    let s = Stack::builder()
        .cg("sessionTimeoutSec", 2)
        .cg("sessionCheckIntervalMs", CHECK_INTERVAL_MS)
        .cg("expiredSessionFullLogout", true)
        .start();
    let (_, alice) = s.login("alice");
    let access_token = s.bearer_at_backend(APP_PATH);
    let refresh_token = only_refresh_token(&s, "alice");

    let call = s
        .wait_for_backend(EFFECT_TIMEOUT, |r| {
            r.target.split('?').next() == Some(BACKEND_LOGOUT_PATH)
        })
        .expect("the expiry did not call cg.censhareLogoutUrl");
    assert_eq!(call.method, "POST", "{:?}", call.head);
    assert_eq!(
        bearer(call.header("authorization")).as_deref(),
        Some(access_token.as_str()),
        "the backend logout must carry the session's access token"
    );
    assert!(
        s.provider
            .wait_for_event("grant.revoked", EFFECT_TIMEOUT, |_| true)
            .is_some(),
        "the expiry did not revoke the grant; provider events: {:?}",
        s.provider.events()
    );
    assert!(
        s.provider.refresh_tokens_of("alice").is_empty(),
        "the provider still holds alice's refresh token"
    );
    let (status, body) = redeem(&s, &refresh_token);
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant")),
        "the revoked refresh token must no longer work: {body}"
    );
    s.wait_until_session_ended(&alice.session, EFFECT_TIMEOUT, "alice after expiry");
}

#[test]
fn expiry_without_full_logout_ends_the_session_only_at_the_gateway() {
    let s = Stack::builder()
        .cg("sessionTimeoutSec", 2)
        .cg("sessionCheckIntervalMs", CHECK_INTERVAL_MS)
        .cg("expiredSessionFullLogout", false)
        .start();
    let (_, alice) = s.login("alice");
    let refresh_token = only_refresh_token(&s, "alice");

    wait_for_expiry(&s, "alice");
    // Ten check intervals: anything the expiry sends would be out by then.
    thread::sleep(Duration::from_millis(10 * CHECK_INTERVAL_MS));
    assert!(
        s.backend_requests_to(BACKEND_LOGOUT_PATH).is_empty(),
        "cg.censhareLogoutUrl must not be called"
    );
    assert!(
        s.provider.events_named("grant.revoked").is_empty(),
        "the grant must not be revoked: {:?}",
        s.provider.events()
    );
    assert_eq!(
        s.provider.refresh_tokens_of("alice"),
        vec![refresh_token.clone()]
    );
    let (status, body) = redeem(&s, &refresh_token);
    assert_eq!(status, 200, "the refresh token must still work: {body}");
    s.wait_until_session_ended(&alice.session, EFFECT_TIMEOUT, "alice after expiry");
}
