//! Many logins at once: a thousand complete code flows from 32 threads, each a new browser.

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use crate::oidc::browser::Browser;
use crate::oidc::provider::jwt_payload;
use crate::oidc::stack::Stack;

const LOGINS: usize = 1000;
const THREADS: usize = 32;
/// Bound for the whole run; a login takes a few milliseconds of provider and gateway time.
const WITHIN: Duration = Duration::from_secs(45);

/// 1000 parallel logins all succeed, each with its own session, and each session then
/// carries its own user's token to the backend.
#[test]
fn a_thousand_parallel_logins_get_distinct_sessions() {
    let s = Stack::start();
    let next = AtomicUsize::new(0);
    let started = Instant::now();
    let sessions: Vec<(usize, String)> = thread::scope(|scope| {
        let handles: Vec<_> = (0..THREADS)
            .map(|_| {
                scope.spawn(|| {
                    let mut mine = Vec::new();
                    loop {
                        let n = next.fetch_add(1, Ordering::Relaxed);
                        if n >= LOGINS {
                            return mine;
                        }
                        assert!(
                            started.elapsed() < WITHIN,
                            "{n} of {LOGINS} logins started within {WITHIN:?}"
                        );
                        let mut b = Browser::new();
                        let login = b.login(&s.url(&format!("/app/load/{n}")), &format!("user{n}"));
                        assert_eq!(
                            login.response.status,
                            200,
                            "login {n}: {}",
                            login.response.text()
                        );
                        mine.push((n, login.session));
                    }
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
            .collect()
    });
    let took = started.elapsed();
    assert_eq!(sessions.len(), LOGINS);
    let distinct: HashSet<&String> = sessions.iter().map(|(_, s)| s).collect();
    assert_eq!(distinct.len(), LOGINS, "session ids must be distinct");
    assert!(took < WITHIN, "{LOGINS} logins took {took:?}");
    eprintln!("{LOGINS} logins from {THREADS} threads in {took:?}");

    // Each login reached the backend once, with its own user's token.
    let reqs = s.backend.requests();
    for n in (0..LOGINS).step_by(37) {
        let target = format!("/app/load/{n}");
        let seen: Vec<_> = reqs.iter().filter(|r| r.target == target).collect();
        assert_eq!(
            seen.len(),
            1,
            "{target} reached the backend {} times",
            seen.len()
        );
        let token = crate::oidc::provider::bearer(seen[0].header("authorization"))
            .unwrap_or_else(|| panic!("{target} without bearer"));
        assert_eq!(jwt_payload(&token)["sub"], format!("user{n}"));
    }

    // A sample of the sessions still works.
    for (n, session) in sessions.iter().step_by(50) {
        let mut b = Browser::without_keep_alive();
        b.set_cookie(&s.url("/"), "SESSION", session);
        let target = format!("/app/again/{n}");
        let r = b.navigate(&s.url(&target));
        assert_eq!(r.status, 200, "session of login {n}: {}", r.text());
        let token = s.bearer_at_backend(&target);
        assert_eq!(jwt_payload(&token)["sub"], format!("user{n}"));
    }
}
