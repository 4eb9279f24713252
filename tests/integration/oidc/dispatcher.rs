//! The dispatcher of outgoing calls: connection errors and 5xx are retried up to
//! `cg.maxRetryAttempts` times after `cg.minRetryDelaySeconds × 2^(n-1)`, a 4xx is final,
//! and every final failure is logged at ERROR with `lost`, the call kind, the subject, the
//! session and the URL, while the gateway goes on serving.

use std::time::Duration;

use crate::harness::{closed_port_addr, quote};
use crate::oidc::listener::Listener;
use crate::oidc::provider::random_token;
use crate::oidc::stack::{session_reference, Stack, BACKEND_LOGOUT_PATH};

const EFFECT_TIMEOUT: Duration = Duration::from_secs(10);
const SIGNAL_SENDER: &str = "com.censhare.core.cloudgateway.LogoutSignalSender";

/// Waits for the ERROR line that reports a lost call and checks what it names.
fn assert_lost_logged(s: &Stack, kind: &str, words: &[&str]) -> String {
    let line = s
        .gateway
        .wait_for_log_line(EFFECT_TIMEOUT, |l| {
            l.contains("ERROR") && l.contains("lost") && l.contains(kind)
        })
        .unwrap_or_else(|| {
            panic!(
                "no ERROR line about a lost {kind} call; stderr:\n{}",
                s.gateway.stderr()
            )
        });
    for w in words {
        assert!(line.contains(w), "the ERROR line must name {w:?}: {line}");
    }
    line
}

/// A listener that answers 503, 503, 200 gets exactly three attempts, the retries after
/// about d and 2d (d = 1 s); the provider's answer is 200 at once all the same.
#[test]
fn a_listener_answering_503_twice_gets_three_attempts_with_doubling_delays() {
    let l = Listener::scripted(&[503, 503]);
    let s = Stack::builder()
        .backchannel_logout()
        .cg("logoutListeners", quote(&l.url("/relay")))
        .cg("maxRetryAttempts", 3)
        .cg("minRetryDelaySeconds", 1)
        .logging(SIGNAL_SENDER, "TRACE")
        .start();
    let sid = random_token(8);
    let token = s
        .provider
        .sign_logout(s.provider.logout_claims(Some("carol"), Some(&sid)));
    let r = s.post_logout_token(&token);
    assert_eq!(
        r.status,
        200,
        "a failing listener must not change the answer: {}",
        r.text()
    );

    let calls = l.wait_for_calls(3, EFFECT_TIMEOUT);
    // Delivered (TRACE) once the 200 came back: nothing more is due after that.
    s.gateway
        .wait_for_log_line(EFFECT_TIMEOUT, |l| l.contains("call delivered"))
        .expect("no `call delivered` line after the third attempt");
    assert_eq!(l.calls().len(), 3, "exactly three attempts");
    for c in &calls {
        assert_eq!(
            c.form_value("logout_token").as_deref(),
            Some(token.as_str())
        );
    }
    let first = calls[1].at - calls[0].at;
    let second = calls[2].at - calls[1].at;
    assert!(
        (0.8..=2.5).contains(&first.as_secs_f64()),
        "first retry after {first:?}, expected about 1 s"
    );
    assert!(
        (1.8..=4.0).contains(&second.as_secs_f64()),
        "second retry after {second:?}, expected about 2 s"
    );
}

/// A listener that refuses the call (4xx) is not asked again; the loss is logged.
#[test]
fn a_4xx_answer_is_final() {
    let l = Listener::scripted(&[400]);
    let s = Stack::builder()
        .backchannel_logout()
        .cg("logoutListeners", quote(&l.url("/relay")))
        .cg("maxRetryAttempts", 3)
        .cg("minRetryDelaySeconds", 0)
        .start();
    let sid = random_token(8);
    let token = s
        .provider
        .sign_logout(s.provider.logout_claims(Some("carol"), Some(&sid)));
    assert_eq!(s.post_logout_token(&token).status, 200);
    let url = l.url("/relay");
    assert_lost_logged(&s, "logout relay", &["carol", &sid, &url]);
    assert_eq!(l.calls().len(), 1, "a 4xx must not be retried");
}

/// A listener that is down for every attempt: the relay is logged at ERROR as lost (kind,
/// subject, session, URL), and the gateway goes on serving sessions, logins and logout
/// tokens.
#[test]
fn a_listener_down_for_every_attempt_is_logged_as_lost_and_nothing_else_breaks() {
    let url = format!("http://{}/down", closed_port_addr());
    let s = Stack::builder()
        .backchannel_logout()
        .cg("logoutListeners", quote(&url))
        .cg("maxRetryAttempts", 1)
        .cg("minRetryDelaySeconds", 0)
        .start();
    let (_, alice) = s.login("alice");
    let sid = random_token(8);
    let token = s
        .provider
        .sign_logout(s.provider.logout_claims(Some("carol"), Some(&sid)));
    assert_eq!(s.post_logout_token(&token).status, 200);
    assert_lost_logged(&s, "logout relay", &["carol", &sid, &url]);

    s.assert_session_works(&alice.session, "alice after a lost relay");
    let (_, bob) = s.login("bob");
    s.assert_session_works(&bob.session, "a login after a lost relay");
    let again = s
        .provider
        .sign_logout(s.provider.logout_claims(Some("dave"), None));
    assert_eq!(s.post_logout_token(&again).status, 200);
}

/// `cg.censhareLogoutUrl` unreachable: the user's logout still ends the session, and the
/// lost backend logout names alice, her session and the URL.
#[test]
fn a_lost_backend_logout_is_logged_with_subject_session_and_url() {
    let url = format!("http://{}{BACKEND_LOGOUT_PATH}", closed_port_addr());
    let s = Stack::builder()
        .cg("censhareLogoutUrl", quote(&url))
        .cg("maxRetryAttempts", 1)
        .cg("minRetryDelaySeconds", 0)
        .start();
    let (mut b, alice) = s.login("alice");
    let r = b.post_form(&s.url("/logout"), &[]);
    assert_eq!(r.status, 302, "POST /logout: {}", r.text());
    let line = assert_lost_logged(
        &s,
        "backend logout",
        &["alice", &session_reference(&alice.session), &url],
    );
    assert!(
        !line.contains(&alice.session),
        "the cookie value is never logged: {line}"
    );
    s.wait_until_session_ended(&alice.session, EFFECT_TIMEOUT, "alice after logout");
}

/// An unreachable `cg.freshTokenListeners` URL: the fresh token is logged as lost.
#[test]
fn a_lost_fresh_token_is_logged_with_subject_session_and_url() {
    let url = format!("http://{}/fresh", closed_port_addr());
    let s = Stack::builder()
        .cg("freshTokenListeners", quote(&url))
        .cg("freshTokenSendIntervalMs", 200)
        .cg("maxRetryAttempts", 1)
        .cg("minRetryDelaySeconds", 0)
        .start();
    let (_, alice) = s.login("alice");
    let line = assert_lost_logged(
        &s,
        "fresh token",
        &["alice", &session_reference(&alice.session), &url],
    );
    assert!(
        !line.contains(&alice.session),
        "the cookie value is never logged: {line}"
    );
    s.assert_session_works(&alice.session, "alice after a lost fresh token");
}
