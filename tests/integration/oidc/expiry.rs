//! Sessions over time: idle expiry (`cg.sessionTimeoutSec`), the absolute lifetime
//! (`sessiongate.session-max-lifetime-sec`), the session limit (`cg.maxSessions`) and the
//! refresh of short-lived access tokens.
//!
//! The sleeps here wait out a lifetime on purpose; everything else polls with deadlines.

use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use crate::oidc::browser::{unix_now, Browser};
use crate::oidc::provider::{bearer, jwt_payload};
use crate::oidc::stack::{sets_no_session, Stack, APP_PATH, BACKEND_LOGOUT_PATH};

/// A browser holding only this session cookie, on new connections.
fn with_session(s: &Stack, session: &str) -> Browser {
    let mut b = Browser::without_keep_alive();
    b.set_cookie(&s.url("/"), "SESSION", session);
    b
}

/// Sleeps until the unix time `t` has passed by `margin`.
fn sleep_past(t: i64, margin: Duration) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    let target = Duration::from_secs(t.max(0) as u64) + margin;
    if target > now {
        thread::sleep(target - now);
    }
}

/// Each request resets the idle clock; once a session has been idle for longer than
/// `sessionTimeoutSec` (plus one check interval) its cookie leads to the login again.
#[test]
fn idle_session_expires_after_session_timeout() {
    const TIMEOUT_SECS: u64 = 3;
    let s = Stack::builder()
        .cg("sessionTimeoutSec", TIMEOUT_SECS)
        .cg("sessionCheckIntervalMs", 100)
        .start();
    let (_, login) = s.login("alice");
    let mut b = with_session(&s, &login.session);

    // Active use keeps it alive past the timeout counted from login: half a timeout apart.
    for n in 0..3 {
        thread::sleep(Duration::from_millis(TIMEOUT_SECS * 1000 / 2));
        let r = b.navigate(&s.url(&format!("/app/active/{n}")));
        assert_eq!(
            r.status,
            200,
            "request {n}, {:.1} s after the previous one, must find the session",
            TIMEOUT_SECS as f64 / 2.0
        );
    }

    // Idle for the timeout, one check interval and a margin (expiry to the millisecond is
    // unit-tested on a manual clock).
    thread::sleep(Duration::from_millis(TIMEOUT_SECS * 1000 + 100 + 500));
    let r = b.navigate(&s.url("/app/after-idle"));
    s.assert_login_redirect(&r, "SESSION cookie after the idle timeout");
    assert!(s.backend_requests_to("/app/after-idle").is_empty());
}

/// `cg.expiredSessionFullLogout` (default true): an idle-expired session is also ended at
/// the backend (`cg.censhareLogoutUrl`, with its access token) and at the provider (its
/// refresh token revoked, which ends the grant).
#[test]
fn idle_expiry_logs_out_at_backend_and_provider() {
    let s = Stack::builder()
        .cg("sessionTimeoutSec", 1)
        .cg("sessionCheckIntervalMs", 100)
        .start();
    let (_, login) = s.login("alice");
    let token = s.bearer_at_backend(APP_PATH);

    // Nothing touches the session from here on; wait for its effects.
    let call = s
        .wait_for_backend(Duration::from_secs(10), |r| {
            r.target.split('?').next() == Some(BACKEND_LOGOUT_PATH)
        })
        .expect("expiry did not call cg.censhareLogoutUrl");
    assert_eq!(call.method, "POST");
    assert_eq!(
        bearer(call.header("authorization")).as_deref(),
        Some(token.as_str())
    );
    assert!(
        s.provider
            .wait_for_event("grant.revoked", Duration::from_secs(10), |_| true)
            .is_some(),
        "expiry did not revoke the grant at the provider; events: {:?}",
        s.provider.events()
    );
    let r = with_session(&s, &login.session).navigate(&s.url("/app/late"));
    s.assert_login_redirect(&r, "SESSION cookie after expiry");
}

/// `session-max-lifetime-sec` ends a session that is in constant use.
#[test]
fn session_max_lifetime_ends_an_active_session() {
    const LIFETIME_SECS: u64 = 3;
    let s = Stack::builder()
        .set("session-max-lifetime-sec", LIFETIME_SECS)
        .cg("sessionTimeoutSec", 600)
        .cg("sessionCheckIntervalMs", 100)
        .start();
    let before_login = Instant::now();
    let (mut b, _) = s.login("alice");
    let after_login = Instant::now();

    let deadline = before_login + Duration::from_secs(LIFETIME_SECS + 4);
    let mut n = 0;
    let ended_at = loop {
        let r = b.navigate(&s.url(&format!("/app/busy/{n}")));
        if r.status == 302 {
            s.assert_login_redirect(&r, "session past its max lifetime");
            break Instant::now();
        }
        assert_eq!(r.status, 200, "request {n}: {}", r.text());
        assert!(
            Instant::now() < deadline,
            "the session still works {:?} after login, max lifetime {LIFETIME_SECS} s",
            before_login.elapsed()
        );
        n += 1;
        thread::sleep(Duration::from_millis(200));
    };
    // Whole-second bookkeeping may end it up to a second early, not more.
    let lived = ended_at - after_login;
    assert!(
        lived >= Duration::from_secs(LIFETIME_SECS - 1),
        "the session ended after {lived:?}, before its max lifetime of {LIFETIME_SECS} s"
    );
}

/// `cg.maxSessions: 2`: the third login's callback gets 503 with Retry-After and no session;
/// the existing sessions keep working; after one logs out a new login succeeds.
#[test]
fn max_sessions_refuses_new_logins_with_503() {
    let s = Stack::builder().cg("maxSessions", 2).start();
    let (mut alice, _) = s.login("alice");
    let (mut bob, _) = s.login("bob");

    let mut carol = Browser::new();
    let auth = carol.start_login(&s.url(APP_PATH));
    let callback = carol.authorize(&auth, "carol");
    let r = carol.callback(&callback);
    assert_eq!(
        r.status,
        503,
        "login beyond maxSessions: {} {}",
        r.status,
        r.text()
    );
    let retry = r
        .header("retry-after")
        .unwrap_or_else(|| panic!("503 without Retry-After: {:?}", r.head.headers));
    assert!(
        retry.trim().parse::<u64>().is_ok(),
        "Retry-After must be delay-seconds: {retry:?}"
    );
    assert!(
        sets_no_session(&r),
        "503 must not set a session: {:?}",
        r.head.headers
    );

    for (who, b) in [("alice", &mut alice), ("bob", &mut bob)] {
        let r = b.navigate(&s.url(&format!("/app/{who}")));
        assert_eq!(
            r.status,
            200,
            "{who}'s session after the refusal: {}",
            r.text()
        );
    }

    // A logout frees a slot.
    let r = alice.post_form(&s.url("/logout"), &[]);
    assert_eq!(r.status, 302, "logout: {}", r.text());
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let mut carol = Browser::new();
        let auth = carol.start_login(&s.url(APP_PATH));
        let callback = carol.authorize(&auth, "carol");
        let r = carol.callback(&callback);
        if r.status == 302 {
            assert!(
                !sets_no_session(&r),
                "login after a logout: {:?}",
                r.head.headers
            );
            break;
        }
        assert!(
            r.status == 503 && Instant::now() < deadline,
            "login after a logout freed a slot: {} {}",
            r.status,
            r.text()
        );
        thread::sleep(Duration::from_millis(100));
    }
}

/// Short access tokens (4 s) with refresh-token rotation: after the token expires the
/// backend sees a new one and the session goes on; requests right after a refresh reuse it
/// (no refresh per request); parallel requests at expiry share one refresh, and no refresh
/// token is ever sent twice (the provider would revoke the grant).
#[test]
fn access_token_is_refreshed_and_the_session_continues() {
    let s = Stack::builder()
        .provider(|o| o.access_token_ttl(4).rotate_refresh_token(true))
        .start();
    let (mut b, login) = s.login("alice");
    let jwks = s.provider.jwks();
    let t1 = s.bearer_at_backend(APP_PATH);
    let exp1 = jwt_payload(&t1)["exp"].as_i64().unwrap();

    let r = b.navigate(&s.url("/app/fresh"));
    assert_eq!(r.status, 200);
    assert_eq!(
        s.bearer_at_backend("/app/fresh"),
        t1,
        "a token with most of its 4 s left must not be refreshed"
    );

    // First expiry: one request.
    sleep_past(exp1, Duration::from_millis(300));
    let r = b.navigate(&s.url("/app/after-exp1"));
    assert_eq!(
        r.status,
        200,
        "request after the first expiry: {}",
        r.text()
    );
    let t2 = s.bearer_at_backend("/app/after-exp1");
    assert_ne!(t2, t1, "the backend got the expired token again");
    let c2 = jwks.verify(&t2).expect("refreshed token verifies");
    assert_eq!(c2["sub"], "alice");
    let exp2 = c2["exp"].as_i64().unwrap();
    assert!(
        exp2 > unix_now(),
        "the refreshed token is already expired: {c2}"
    );
    assert!(s.provider.refresh_count() >= 1);
    let refreshes_after_first = s.provider.refresh_count();
    for n in 0..3 {
        let target = format!("/app/reuse/{n}");
        assert_eq!(b.navigate(&s.url(&target)).status, 200);
        assert_eq!(
            s.bearer_at_backend(&target),
            t2,
            "request {n} right after a refresh must reuse the new token"
        );
    }
    assert_eq!(s.provider.refresh_count(), refreshes_after_first);

    // Second expiry: eight parallel requests over new connections (both workers).
    sleep_past(exp2, Duration::from_millis(300));
    let barrier = Arc::new(Barrier::new(8));
    let results: Vec<(String, u16, String)> = thread::scope(|scope| {
        let handles: Vec<_> = (0..8)
            .map(|n| {
                let barrier = barrier.clone();
                let session = login.session.clone();
                let s = &s;
                scope.spawn(move || {
                    let mut b = with_session(s, &session);
                    let target = format!("/app/parallel/{n}");
                    barrier.wait();
                    let r = b.navigate(&s.url(&target));
                    (target, r.status, r.text())
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let failed: Vec<_> = results.iter().filter(|(_, st, _)| *st != 200).collect();
    assert!(
        failed.is_empty(),
        "parallel requests at the second expiry must all pass (waiting for the one refresh); \
         {} of 8 did not: {failed:?}",
        failed.len()
    );
    let tokens: Vec<String> = results
        .iter()
        .map(|(target, _, _)| s.bearer_at_backend(target))
        .collect();
    let stale = tokens.iter().filter(|t| **t == t2).count();
    assert_eq!(
        stale,
        0,
        "{stale} of 8 parallel requests were forwarded with the access token whose exp \
         ({exp2}) had passed; they should wait for the refresh (refreshes at the provider: \
         {} before the burst, {} after)",
        refreshes_after_first,
        s.provider.refresh_count()
    );
    assert!(
        tokens.iter().all(|t| *t == tokens[0]),
        "parallel requests must share one refreshed token; got {} distinct",
        tokens
            .iter()
            .collect::<std::collections::HashSet<_>>()
            .len()
    );
    assert_ne!(tokens[0], t2);
    assert_eq!(
        s.provider.refresh_count(),
        refreshes_after_first + 1,
        "one refresh for the parallel requests"
    );
    assert!(
        s.provider.events_named("grant.revoked").is_empty(),
        "a refresh token was reused and the provider revoked the grant: {:?}",
        s.provider.events()
    );
    let r = b.navigate(&s.url("/app/end"));
    assert_eq!(r.status, 200, "the session goes on: {}", r.text());
}

/// A refresh the provider refuses (`invalid_grant`: the refresh token expired) ends the
/// session: the next navigation leads to the login.
#[test]
fn refused_refresh_ends_the_session() {
    let s = Stack::builder()
        .provider(|o| o.access_token_ttl(3).refresh_token_ttl(3))
        .start();
    let (mut b, _) = s.login("alice");
    let t1 = s.bearer_at_backend(APP_PATH);
    let exp1 = jwt_payload(&t1)["exp"].as_i64().unwrap();
    // Both tokens were issued together with the same 3 s lifetime.
    sleep_past(exp1, Duration::from_millis(500));
    let r = b.navigate(&s.url("/app/after-refresh-token-expired"));
    s.assert_login_redirect(&r, "session whose refresh was refused");
    // The provider's event line is read from its output by another thread: wait for it.
    let refused = s
        .provider
        .wait_for_event("grant.error", Duration::from_secs(5), |e| {
            e["error"] == "invalid_grant"
        });
    assert!(
        refused.is_some(),
        "the gateway should have tried the refresh; events: {:?}",
        s.provider.events()
    );
    assert!(s
        .backend_requests_to("/app/after-refresh-token-expired")
        .is_empty());
}
