//! What an operator meets: a second gateway on a port one already serves is refused,
//! once, with its own exit code; idle connections cost no I/O buffers.

use std::time::{Duration, Instant};

use crate::backend::{Backend, Reply};
use crate::client::Client;
use crate::hardening_floods::metric;
use crate::harness::{run_expecting_exit, single_route_yaml, Gateway};

/// SO_REUSEPORT would let a second gateway process share the port, and the kernel would
/// split users between two processes with different sessions: the second one is refused.
#[test]
fn a_second_gateway_on_a_busy_port_is_refused_once_with_exit_69() {
    let backend = Backend::recording();
    let first = Gateway::to(&backend).workers(2).start();
    let port = first.addr().port();
    let yaml = single_route_yaml(&backend).replace("port: 0", &format!("port: {port}"));
    assert!(yaml.contains(&format!("port: {port}")), "{yaml}");
    let second = run_expecting_exit(&yaml);
    assert_eq!(second.code, Some(69), "stderr:\n{}", second.stderr);
    assert_eq!(
        second.stderr.matches("already in use").count(),
        1,
        "the error is printed once:\n{}",
        second.stderr
    );
    assert!(second.stderr.contains(&format!("127.0.0.1:{port}")));
    assert!(!second.stdout.contains("listening"), "{}", second.stdout);
    // The first gateway (two workers sharing the port) serves on.
    assert_eq!(first.get("/x").status, 200);
}

/// An idle keep-alive connection holds no I/O buffer: after one answered request each, the
/// pool's count of lent buffers is back to zero while the connections stay open; a request
/// in flight holds some, and gives them back when answered.
#[test]
fn idle_keep_alive_connections_hold_no_buffer() {
    let backend = Backend::replying(|r| {
        if r.target == "/slow" {
            Reply::ok().delay(Duration::from_millis(1500))
        } else {
            Reply::ok()
        }
    });
    let gw = Gateway::to(&backend).workers(2).management(None).start();
    let mut idle: Vec<Client> = (0..40)
        .map(|_| {
            let mut c = gw.client();
            assert_eq!(c.get("/x").status, 200);
            c
        })
        .collect();
    let lent = || metric(&gw, "sessiongate_io_buffers_lent");
    let settles_at = |want: &dyn Fn(u64) -> bool| {
        let deadline = Instant::now() + Duration::from_secs(5);
        while !want(lent()) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        lent()
    };
    assert_eq!(settles_at(&|n| n == 0), 0, "idle connections hold buffers");
    assert!(metric(&gw, "sessiongate_connections_open") >= 40);
    let addr = gw.addr();
    let slow = std::thread::spawn(move || Client::connect(addr).get("/slow").status);
    assert!(
        settles_at(&|n| n > 0) > 0,
        "a request in flight holds buffers"
    );
    assert_eq!(slow.join().unwrap(), 200);
    assert_eq!(settles_at(&|n| n == 0), 0, "given back once answered");
    for c in &mut idle {
        assert_eq!(
            c.get("/again").status,
            200,
            "an idle connection still serves"
        );
    }
}

/// The management listener answers HEAD like GET, without the body (a probe's HEAD must not
/// find body bytes where the next answer should start).
#[test]
fn management_answers_head_without_a_body() {
    let backend = Backend::recording();
    let gw = Gateway::to(&backend).management(None).start();
    let mut c = Client::connect(gw.management_addr());
    c.send(b"HEAD /actuator/health HTTP/1.1\r\nHost: m\r\n\r\n");
    let r = c.try_read_response("HEAD", true).expect("an answer");
    assert_eq!(r.status, 200);
    assert!(r.header("content-length").is_some_and(|n| n != "0"));
    c.expect_closed(Duration::from_secs(5));
}
