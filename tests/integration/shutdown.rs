//! SIGTERM / SIGINT: stop accepting, let in-flight requests finish, exit 0 within the grace.

use std::thread;
use std::time::{Duration, Instant};

use crate::backend::{Backend, Reply};
use crate::harness::{wait_until_refused, Gateway};

#[test]
fn sigterm_finishes_in_flight_request_refuses_new_and_exits_0() {
    let backend = Backend::replying(|_| {
        Reply::ok()
            .body("finished")
            .delay(Duration::from_millis(3000))
    });
    let mut gw = Gateway::to(&backend).set("shutdown-grace-ms", 8000).start();
    let mut c = gw.client();
    let in_flight = thread::spawn(move || c.get("/slow"));
    backend.wait_for_requests(1);

    let signalled = Instant::now();
    gw.signal(libc::SIGTERM);
    assert!(
        wait_until_refused(gw.addr(), Duration::from_secs(2)),
        "new connections still accepted 2 s after SIGTERM"
    );
    assert!(
        !in_flight.is_finished(),
        "the in-flight request ended before new connections were refused"
    );
    let r = in_flight.join().expect("in-flight client");
    assert_eq!(r.status, 200, "in-flight request must complete");
    assert_eq!(r.text(), "finished");
    let status = gw
        .wait_exit(Duration::from_secs(9))
        .expect("gateway still running 9 s after SIGTERM (grace is 8 s)");
    assert_eq!(
        status.code(),
        Some(0),
        "exit status after SIGTERM: {status:?}"
    );
    assert!(signalled.elapsed() < Duration::from_secs(8));
}

#[test]
fn sigterm_closes_idle_connections_and_exits_0() {
    let backend = Backend::recording();
    let mut gw = Gateway::to(&backend).set("shutdown-grace-ms", 5000).start();
    let mut idle = gw.client();
    assert_eq!(idle.get("/").status, 200);
    gw.signal(libc::SIGTERM);
    // An idle keep-alive connection holds nothing worth waiting for.
    idle.expect_closed(Duration::from_secs(5));
    let status = gw
        .wait_exit(Duration::from_secs(6))
        .expect("gateway still running after SIGTERM");
    assert_eq!(status.code(), Some(0));
}

#[test]
fn sigterm_gives_up_on_requests_after_the_grace_period() {
    let backend = Backend::replying(|_| Reply::ok().delay(Duration::from_secs(20)));
    let mut gw = Gateway::to(&backend).set("shutdown-grace-ms", 500).start();
    let mut c = gw.client();
    c.send(b"GET /stuck HTTP/1.1\r\nHost: x\r\n\r\n");
    backend.wait_for_requests(1);
    gw.signal(libc::SIGTERM);
    assert!(
        gw.wait_exit(Duration::from_secs(5)).is_some(),
        "gateway ignored its 500 ms shutdown grace"
    );
}

#[test]
fn sigint_exits_0() {
    let backend = Backend::recording();
    let mut gw = Gateway::to(&backend).start();
    assert_eq!(gw.get("/").status, 200);
    gw.signal(libc::SIGINT);
    let status = gw
        .wait_exit(Duration::from_secs(5))
        .expect("gateway still running 5 s after SIGINT");
    assert_eq!(status.code(), Some(0));
}
