//! Fresh tokens: every `cg.freshTokenSendIntervalMs`, each session used since the previous
//! send goes to every `cg.freshTokenListeners` URL (here two, as one comma-separated
//! string): a POST with its current access token as Bearer and `{"sub","sid","exp"}`.
//! Sessions idle since their last send are not sent again.

use std::thread;
use std::time::{Duration, Instant};

use crate::harness::quote;
use crate::oidc::listener::{Call, Listener};
use crate::oidc::provider::jwt_payload;
use crate::oidc::stack::Stack;

const INTERVAL_MS: u64 = 500;
const EFFECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long alice keeps using her session.
const ACTIVE: Duration = Duration::from_millis(3000);

fn sent_for<'a>(calls: &'a [Call], sub: &str) -> Vec<&'a Call> {
    calls.iter().filter(|c| c.json()["sub"] == sub).collect()
}

#[test]
fn fresh_tokens_go_to_every_listener_for_active_sessions_only() {
    let (l1, l2) = (Listener::ok(), Listener::ok());
    let s = Stack::builder()
        .backchannel_logout()
        .cg(
            "freshTokenListeners",
            quote(&format!("{}, {}", l1.url("/fresh/1"), l2.url("/fresh/2"))),
        )
        .cg("freshTokenSendIntervalMs", INTERVAL_MS)
        .start();
    s.login("bob");
    let bob_token = s.bearer_at_backend(crate::oidc::stack::APP_PATH);
    let (_, alice) = s.login("alice");
    let alice_sid = s.provider.sid_of("alice");
    let bob_sid = s.provider.sid_of("bob");

    // Both logins count as use: each session is sent once to each listener.
    for l in [&l1, &l2] {
        let deadline = Instant::now() + EFFECT_TIMEOUT;
        while sent_for(&l.calls(), "bob").is_empty() || sent_for(&l.calls(), "alice").is_empty() {
            assert!(
                Instant::now() < deadline,
                "the logins' first fresh tokens did not arrive: {:?}",
                l.calls()
            );
            thread::sleep(Duration::from_millis(10));
        }
    }

    // Alice keeps working; bob stays idle.
    let started = Instant::now();
    let mut n = 0;
    let mut alice_token = String::new();
    while started.elapsed() < ACTIVE {
        let path = format!("/app/alice/{n}");
        let r = s.with_session(&alice.session, &path);
        assert_eq!(r.status, 200, "alice's request {n}: {}", r.text());
        alice_token = s.bearer_at_backend(&path);
        n += 1;
        thread::sleep(Duration::from_millis(150));
    }
    let active_until = Instant::now();
    // One more interval (and a margin) for the last round of her activity to arrive.
    thread::sleep(Duration::from_millis(2 * INTERVAL_MS));

    for (name, l) in [("first", &l1), ("second", &l2)] {
        let calls = l.calls();
        for c in &calls {
            assert_eq!(c.request.method, "POST");
            let ct = c.header("content-type").unwrap_or_default();
            assert!(ct.starts_with("application/json"), "content type {ct:?}");
        }

        let bobs = sent_for(&calls, "bob");
        assert_eq!(
            bobs.len(),
            1,
            "the {name} listener must get idle bob's token once (after his login), got {}",
            bobs.len()
        );
        assert_eq!(bobs[0].bearer().as_deref(), Some(bob_token.as_str()));
        assert_eq!(bobs[0].json()["sid"], bob_sid.as_str());

        let alices = sent_for(&calls, "alice");
        let during: Vec<_> = alices
            .iter()
            .filter(|c| c.at > started && c.at <= active_until)
            .collect();
        // About one per interval while she is active; not one per request.
        let expected = (ACTIVE.as_millis() / INTERVAL_MS as u128) as usize;
        assert!(
            (expected - 2..=expected + 2).contains(&during.len()),
            "the {name} listener got {} of alice's tokens during {ACTIVE:?} of use ({n} requests), expected about {expected}",
            during.len()
        );
        for w in during.windows(2) {
            let gap = w[1].at - w[0].at;
            assert!(
                gap >= Duration::from_millis(INTERVAL_MS / 2),
                "two sends of alice's token only {gap:?} apart"
            );
        }
        let last = alices.last().unwrap();
        assert_eq!(last.bearer().as_deref(), Some(alice_token.as_str()));
        let body = last.json();
        assert_eq!(body["sid"], alice_sid.as_str(), "{body}");
        let exp = jwt_payload(&alice_token)["exp"].as_i64().unwrap();
        let sent_exp = body["exp"]
            .as_i64()
            .unwrap_or_else(|| panic!("no exp in {body}"));
        assert!(
            (sent_exp - exp).abs() <= 2,
            "exp {sent_exp} is not the access token's {exp}"
        );
        // Once she stopped, at most the round for her last requests followed.
        let after = alices.iter().filter(|c| c.at > active_until).count();
        assert!(
            after <= 1,
            "the {name} listener got {after} of alice's tokens after she went idle"
        );
    }
}
