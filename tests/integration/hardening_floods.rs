//! Floods and fail-open starts: slow request bodies (`body-min-rate-bytes-per-sec`), the
//! connection cap (`max-connections`) and its shedding, the management listener under a
//! trickling client, and configurations that would run without authentication unnoticed.
//! The back-channel logout's slow body is in `oidc::hardening_floods` (it needs a gate).
//!
//! Every attack runs against the real process; bounds are those of the behaviour itself
//! (a grace period or deadline plus 2 s or more), never a measurement.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use crate::backend::{pattern, Backend, Reply};
use crate::client::{Client, Response, HOST};
use crate::harness::{check, run_expecting_exit, single_route_yaml, Gateway, EX_CONFIG};

/// The grace period before the minimum body rate applies (`RATE_GRACE` in the gateway).
const RATE_GRACE: Duration = Duration::from_secs(5);
/// The management listener's whole-request deadline and connection cap.
const ADMIN_DEADLINE: Duration = sessiongate::admin::REQUEST_DEADLINE;
const ADMIN_CONNECTIONS: usize = sessiongate::admin::MAX_CONNECTIONS;
/// Slack on top of a bound of the gateway's own.
const SLACK: Duration = Duration::from_secs(2);

/// Writes `bytes` one at a time, `every` apart, on its own thread, until they run out, a
/// write fails (the gateway closed) or the handle drops.
struct Trickle {
    stop: Arc<AtomicBool>,
}

impl Trickle {
    fn start(mut out: TcpStream, bytes: Vec<u8>, every: Duration) -> Trickle {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        thread::spawn(move || {
            for b in bytes {
                if flag.load(Ordering::SeqCst) || out.write_all(&[b]).is_err() {
                    return;
                }
                let until = Instant::now() + every;
                while Instant::now() < until {
                    if flag.load(Ordering::SeqCst) {
                        return;
                    }
                    thread::sleep(Duration::from_millis(20));
                }
            }
        });
        Trickle { stop }
    }
}

impl Drop for Trickle {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// The value of the sample `name` (labels included) on the Prometheus page.
pub(crate) fn metric(gw: &Gateway, name: &str) -> u64 {
    let page = gw.admin("GET", "/actuator/prometheus", None);
    assert_eq!(page.status, 200, "/actuator/prometheus: {}", page.text());
    let text = page.text();
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no sample {name} in:\n{text}"))
}

fn assert_timeout_and_close(r: &Response, what: &str) {
    assert_eq!(r.status, 408, "{what}: {:?}", r.head.start);
    assert!(
        r.says_close(),
        "{what}: 408 must close: {:?}",
        r.head.headers
    );
}

// --- 13: slow request bodies ---

/// Sends `head`, which announces a 64 KiB body, trickles the body a byte every 2 s (never
/// tripping the 30 s pause limit), and asserts a 408 that closes the connection, within
/// `within` of the head.
pub fn assert_trickled_body_cut(addr: SocketAddr, head: &str, within: Duration) {
    let mut c = Client::connect(addr);
    c.send(head.as_bytes());
    let started = Instant::now();
    let _trickle = Trickle::start(c.writer(), vec![b'x'; 65536], Duration::from_secs(2));
    let r = c
        .try_read_response("POST", true)
        .unwrap_or_else(|e| panic!("no answer to a body trickled at 0.5 B/s: {e}"));
    assert_timeout_and_close(&r, "a trickled body");
    assert!(
        started.elapsed() < within,
        "cut only after {:?}",
        started.elapsed()
    );
    c.expect_closed(SLACK);
}

/// The minimum rate (1024 B/s by default) cuts a trickled body once its grace is over.
#[test]
fn slow_proxied_body_is_cut_at_the_minimum_rate() {
    let backend = Backend::recording();
    let gw = Gateway::to(&backend).start();
    let head = format!("POST /upload HTTP/1.1\r\nHost: {HOST}\r\nContent-Length: 65536\r\n\r\n");
    assert_trickled_body_cut(gw.addr(), &head, RATE_GRACE + SLACK);
    assert!(
        backend.requests().is_empty(),
        "the backend must not see a complete request"
    );
}

/// A body paced above the minimum rate, for longer than the grace period, goes through.
#[test]
fn body_above_the_minimum_rate_reaches_the_backend() {
    let backend = Backend::recording();
    let gw = Gateway::to(&backend)
        .set("body-min-rate-bytes-per-sec", 1024)
        .start();
    let body = pattern(8 * 4096);
    let mut c = gw.client();
    c.send(
        format!(
            "POST /upload HTTP/1.1\r\nHost: {HOST}\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .as_bytes(),
    );
    for piece in body.chunks(4096) {
        thread::sleep(Duration::from_secs(1));
        c.send(piece);
    }
    let r = c.read_response();
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(backend.single_request().body, body);
}

// --- 14: the connection cap ---

/// At the cap the longest-idle keep-alive connection makes room for a new one; when none
/// is idle, the new connection is closed at once. Both are counted.
#[test]
fn connections_beyond_the_cap_are_shed_longest_idle_first() {
    const CAP: usize = 4;
    let backend = Backend::replying(|r| {
        if r.target.starts_with("/slow") {
            Reply::ok().delay(Duration::from_secs(4))
        } else {
            Reply::ok()
        }
    });
    let gw = Gateway::to(&backend)
        .workers(1)
        .set("max-connections", CAP)
        .management(None)
        .start();
    let served = |c: &mut Client, what: &str| {
        let r = c.get("/");
        assert_eq!(r.status, 200, "{what}: {}", r.text());
    };
    // CAP idle keep-alive connections, oldest first.
    let mut idle: Vec<Client> = (0..CAP).map(|_| gw.client()).collect();
    for (i, c) in idle.iter_mut().enumerate() {
        served(c, &format!("connection {i}"));
    }
    // Three more: each is served, and pushes out the one idle longest.
    let mut newer = Vec::new();
    for (i, oldest) in idle.iter_mut().take(3).enumerate() {
        let mut c = gw.client();
        served(&mut c, &format!("connection {} beyond the cap", i + 1));
        oldest.expect_closed(SLACK);
        newer.push(c);
    }
    served(&mut idle[3], "the youngest of the first connections");
    assert_eq!(
        metric(&gw, "sessiongate_connections_shed_total{reason=\"idle\"}"),
        3
    );

    // Every connection busy: a new one is closed unanswered.
    let mut busy: Vec<Client> = vec![idle.pop().unwrap()];
    busy.extend(newer);
    for (i, c) in busy.iter_mut().enumerate() {
        c.send(format!("GET /slow/{i} HTTP/1.1\r\nHost: {HOST}\r\n\r\n").as_bytes());
    }
    // So far CAP + 3 + 1 requests; the slow ones follow.
    backend.wait_for_requests(CAP + 4 + busy.len());
    let mut refused = gw.client();
    refused.send_lenient(format!("GET / HTTP/1.1\r\nHost: {HOST}\r\n\r\n").as_bytes());
    refused.expect_closed(SLACK);
    assert_eq!(
        metric(&gw, "sessiongate_connections_shed_total{reason=\"new\"}"),
        1
    );
    for c in &mut busy {
        assert_eq!(c.read_response().status, 200, "the busy ones finish");
    }
    // Idle again: the next connection is served.
    let mut after = gw.client();
    served(&mut after, "a connection once the others are idle");
    assert_eq!(
        metric(&gw, "sessiongate_connections_shed_total{reason=\"idle\"}"),
        4
    );
}

// --- 15: the management listener ---

/// A fresh connection to the management listener.
fn admin_conn(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).expect("connect to the management listener");
    s.set_read_timeout(Some(ADMIN_DEADLINE + SLACK)).unwrap();
    s
}

/// Reads what the listener answers until it closes.
fn read_answer(mut s: &TcpStream) -> String {
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

/// A client trickling its request a byte every 4 s no longer holds up the health probe,
/// and is itself cut at the whole-request deadline.
#[test]
fn trickling_admin_client_does_not_hold_up_health() {
    let backend = Backend::recording();
    let gw = Gateway::to(&backend).management(None).start();
    let addr = gw.management_addr();
    let slow = admin_conn(addr);
    let started = Instant::now();
    let _trickle = Trickle::start(
        slow.try_clone().unwrap(),
        format!("GET /actuator/health HTTP/1.1\r\nHost: {addr}\r\n\r\n").into_bytes(),
        Duration::from_secs(4),
    );
    let health = gw.admin("GET", "/actuator/health", None);
    assert_eq!(health.status, 200, "{}", health.text());
    slow.set_nonblocking(true).unwrap();
    let mut probe = [0u8; 1];
    let still_open =
        matches!((&slow).read(&mut probe), Err(e) if e.kind() == ErrorKind::WouldBlock);
    assert!(
        still_open,
        "health must answer while the trickling client is held"
    );
    slow.set_nonblocking(false).unwrap();
    let answer = read_answer(&slow);
    assert!(
        answer.starts_with("HTTP/1.1 408"),
        "the trickling client is cut with 408: {answer:?}"
    );
    assert!(started.elapsed() < ADMIN_DEADLINE + SLACK);
}

/// Connections beyond the cap are answered 503 at once; once the held ones reach their
/// deadline, health answers again.
#[test]
fn admin_connections_beyond_the_cap_are_refused() {
    let backend = Backend::recording();
    let gw = Gateway::to(&backend).management(None).start();
    let addr = gw.management_addr();
    let held: Vec<TcpStream> = (0..ADMIN_CONNECTIONS).map(|_| admin_conn(addr)).collect();
    let over = gw.admin("GET", "/actuator/health", None);
    assert_eq!(over.status, 503, "beyond the cap: {}", over.text());
    for s in &held {
        let answer = read_answer(s);
        assert!(answer.starts_with("HTTP/1.1 408"), "held: {answer:?}");
    }
    let health = gw.admin("GET", "/actuator/health", None);
    assert_eq!(health.status, 200, "{}", health.text());
}

#[test]
fn admin_on_all_addresses_without_token_is_warned_about() {
    let backend = Backend::recording();
    let yaml = format!(
        "{}management:\n  server:\n    address: 0.0.0.0\n    port: 0\n",
        single_route_yaml(&backend)
    );
    let gw = Gateway::with(yaml).start();
    let warned = gw.wait_for_log_line(Duration::from_secs(5), |l| {
        l.contains("WARN") && l.contains("sessiongate.management-token is not set")
    });
    assert!(warned.is_some(), "no WARN line:\n{}", gw.stderr());
}

// --- 20: fail open on a typo ---

fn with_oauth2(backend: &Backend, oauth2: &str) -> String {
    single_route_yaml(backend).replacen(
        "spring:\n",
        &format!("spring:\n  security:\n    oauth2:\n{oauth2}"),
        1,
    )
}

/// `run` and `check` refuse `yaml` with exit 64 before anything listens, the error holding
/// every one of `needles`.
fn assert_refused(yaml: &str, needles: &[&str]) {
    for out in [run_expecting_exit(yaml), check(yaml)] {
        assert_eq!(out.code, Some(EX_CONFIG), "stderr:\n{}", out.stderr);
        for needle in needles {
            assert!(
                out.stderr.contains(needle),
                "{needle:?} in stderr:\n{}",
                out.stderr
            );
        }
        assert!(!out.stdout.contains("listening"), "{}", out.stdout);
    }
}

/// A misspelt key, and an `oauth2` section left without a registration: either would
/// forward every route without login.
#[test]
fn misspelt_oauth2_key_exits_64_naming_it() {
    let backend = Backend::recording();
    let provider =
        "        provider:\n          kc:\n            issuer-uri: http://127.0.0.1:9/realms/r\n";
    let registration = "        registration:\n          kc:\n            client-id: gw\n            client-secret: s\n";
    let cases = [
        (
            format!("      clinet:\n{registration}{provider}"),
            &[
                "spring.security.oauth2.clinet",
                "did you mean `spring.security.oauth2.client`?",
            ][..],
        ),
        (
            format!("      client:\n{provider}"),
            &["spring.security.oauth2.client.registration: no registration"][..],
        ),
    ];
    for (oauth2, needles) in cases {
        assert_refused(&with_oauth2(&backend, &oauth2), needles);
    }
    backend.assert_saw_nothing();
}

#[test]
fn proxy_only_start_warns_it_is_unauthenticated() {
    let backend = Backend::recording();
    let gw = Gateway::to(&backend).start();
    let warned = gw.wait_for_log_line(Duration::from_secs(5), |l| {
        l.contains("WARN") && l.contains("running as an unauthenticated proxy")
    });
    assert!(warned.is_some(), "no WARN line:\n{}", gw.stderr());
    assert_eq!(gw.get("/x").status, 200, "it still proxies");
}
