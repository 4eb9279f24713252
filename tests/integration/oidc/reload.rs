//! SIGHUP with new listener URLs (`cg.freshTokenListeners`, `cg.logoutListeners`,
//! `cg.censhareLogoutUrl`): the calls made from then on go to the new URLs, and the sessions
//! that exist keep working.

use std::thread;
use std::time::{Duration, Instant};

use crate::harness::quote;
use crate::oidc::listener::{Call, Listener};
use crate::oidc::stack::{Stack, BACKEND_LOGOUT_PATH};

const INTERVAL_MS: u64 = 300;
const EFFECT_TIMEOUT: Duration = Duration::from_secs(10);

fn subjects(calls: &[Call]) -> Vec<String> {
    calls
        .iter()
        .map(|c| c.json()["sub"].as_str().unwrap_or_default().to_string())
        .collect()
}

/// Uses the sessions (so the next round sends their tokens) until `l` has fresh tokens of
/// each of their users beyond its first `skip` calls.
fn wait_for_fresh(s: &Stack, l: &Listener, skip: usize, sessions: &[(&str, &str)]) {
    let deadline = Instant::now() + EFFECT_TIMEOUT;
    loop {
        let calls = l.calls();
        let got = subjects(&calls[skip.min(calls.len())..]);
        if sessions
            .iter()
            .all(|(user, _)| got.iter().any(|g| g == user))
        {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "fresh tokens of {:?} did not reach {}: {got:?}",
            sessions.iter().map(|(u, _)| u).collect::<Vec<_>>(),
            l.url("")
        );
        for (user, session) in sessions {
            s.assert_session_works(session, user);
        }
        thread::sleep(Duration::from_millis(INTERVAL_MS / 3));
    }
}

#[test]
fn a_reload_moves_the_calls_to_new_listener_urls_and_keeps_sessions() {
    let (fresh_old, fresh_new) = (Listener::ok(), Listener::ok());
    let (relay_old, relay_new) = (Listener::ok(), Listener::ok());
    let censhare_new = Listener::ok();
    let s = Stack::builder()
        .backchannel_logout()
        .management(None)
        .cg("freshTokenListeners", quote(&fresh_old.url("/fresh")))
        .cg("freshTokenSendIntervalMs", INTERVAL_MS)
        .cg("logoutListeners", quote(&relay_old.url("/relay")))
        .start();
    let (_, alice) = s.login("alice");
    let (_, bob) = s.login("bob");
    let (_, carol) = s.login("carol");
    let both = [
        ("alice", alice.session.as_str()),
        ("bob", bob.session.as_str()),
    ];
    wait_for_fresh(&s, &fresh_old, 0, &both);

    let running = s.gateway.config_yaml();
    let mut changed = running.clone();
    for (old, new) in [
        (fresh_old.url("/fresh"), fresh_new.url("/fresh")),
        (relay_old.url("/relay"), relay_new.url("/relay")),
        (
            format!("{}{BACKEND_LOGOUT_PATH}", s.backend.uri()),
            censhare_new.url("/cs-logout"),
        ),
    ] {
        assert!(changed.contains(&old), "{old} not in\n{changed}");
        changed = changed.replace(&old, &new);
    }
    s.gateway.rewrite_config(&changed);
    s.gateway.signal(libc::SIGHUP);
    s.gateway
        .wait_for_log_line(EFFECT_TIMEOUT, |l| l.contains("configuration reloaded"))
        .unwrap_or_else(|| panic!("no reload:\n{}", s.gateway.stderr()));
    assert!(
        !s.gateway.stderr().contains("reload refused"),
        "{}",
        s.gateway.stderr()
    );

    // Existing sessions carry on; their fresh tokens go to the new URL.
    for (user, session) in both {
        s.assert_session_works(session, &format!("{user} after the reload"));
    }
    wait_for_fresh(&s, &fresh_new, 0, &both);
    let old_count = fresh_old.calls().len();
    let new_count = fresh_new.calls().len();
    wait_for_fresh(&s, &fresh_new, new_count, &both);
    assert_eq!(
        fresh_old.calls().len(),
        old_count,
        "the old fresh-token URL still gets calls: {:?}",
        subjects(&fresh_old.calls()[old_count..])
    );

    // A back-channel logout is relayed to the new logout listener only.
    let answered = s.provider.end_sessions_of("bob");
    assert!(
        answered.iter().all(|a| a["ok"] == true),
        "the gateway refused bob's logout token: {answered:?}"
    );
    s.wait_until_session_ended(&bob.session, EFFECT_TIMEOUT, "bob after his logout");
    let relayed = relay_new.wait_for_calls(1, EFFECT_TIMEOUT);
    assert!(
        relayed[0].form_value("logout_token").is_some(),
        "{:?}",
        relayed[0].form()
    );
    assert!(
        relay_old.calls().is_empty(),
        "the old logout listener got the token"
    );

    // A full logout calls the new cg.censhareLogoutUrl.
    let r = s.gateway.admin(
        "DELETE",
        &format!("/actuator/sessions/{}", carol.session),
        None,
    );
    assert_eq!(r.status, 204, "{}", r.text());
    let calls = censhare_new.wait_for_calls(1, EFFECT_TIMEOUT);
    assert_eq!(calls[0].request.method, "POST");
    assert!(calls[0].bearer().is_some(), "{:?}", calls[0].request.head);
    assert!(
        s.backend_requests_to(BACKEND_LOGOUT_PATH).is_empty(),
        "the old cg.censhareLogoutUrl was called"
    );
    s.assert_session_works(&alice.session, "alice at the end");
}
