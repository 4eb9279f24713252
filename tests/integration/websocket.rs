//! `Upgrade: websocket`: the backend's 101 is passed on and bytes are spliced both ways.

use std::io::Write;
use std::thread;
use std::time::{Duration, Instant};

use crate::backend::{pattern, Backend, Reply, WS_ACCEPT, WS_KEY};
use crate::client::{Client, HOST};
use crate::harness::Gateway;

fn upgrade_request(path: &str) -> String {
    format!(
        "GET {path} HTTP/1.1\r\nHost: {HOST}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {WS_KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
}

fn echo_backend() -> Backend {
    Backend::replying(|r| {
        if r.head.has_token("upgrade", "websocket") {
            Reply::websocket_echo()
        } else {
            Reply::status(403).body("no upgrade")
        }
    })
}

/// Connects and completes the upgrade; returns the client positioned after the 101.
fn upgraded(gw: &Gateway) -> Client {
    let mut c = gw.client();
    c.send(upgrade_request("/ws").as_bytes());
    let r = c.read_response();
    assert_eq!(
        r.status, 101,
        "expected 101 Switching Protocols: {:?}",
        r.head
    );
    assert!(
        r.head.has_token("upgrade", "websocket"),
        "101 without Upgrade: {:?}",
        r.head
    );
    assert!(
        r.head.has_token("connection", "upgrade"),
        "101 without Connection: upgrade"
    );
    assert_eq!(r.header("sec-websocket-accept"), Some(WS_ACCEPT));
    c
}

/// A masked client text frame (RFC 6455 §5.2) with a payload shorter than 126 bytes.
fn text_frame(payload: &[u8]) -> Vec<u8> {
    assert!(payload.len() < 126);
    let mask = [0x37, 0xfa, 0x21, 0x3d];
    let mut f = vec![0x81, 0x80 | payload.len() as u8];
    f.extend_from_slice(&mask);
    f.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    f
}

#[test]
fn upgrade_is_passed_and_bytes_echo() {
    let backend = echo_backend();
    let gw = Gateway::to(&backend).start();
    let mut c = upgraded(&gw);
    let req = backend.single_request();
    assert!(
        req.head.has_token("upgrade", "websocket"),
        "backend needs Upgrade: {:?}",
        req.head
    );
    assert!(
        req.head.has_token("connection", "upgrade"),
        "backend needs Connection: upgrade"
    );
    assert_eq!(req.header("sec-websocket-key"), Some(WS_KEY));

    for msg in [&b"Hello"[..], b"second message", b""] {
        let frame = text_frame(msg);
        c.send(&frame);
        assert_eq!(c.read_exact(frame.len()), frame);
    }
}

#[test]
fn large_transfer_both_ways_at_once() {
    let backend = echo_backend();
    let gw = Gateway::to(&backend).start();
    let mut c = upgraded(&gw);
    let data = pattern(4 << 20);
    let mut writer = c.writer();
    let sent = data.clone();
    let t = thread::spawn(move || writer.write_all(&sent).expect("write through the splice"));
    let echoed = c.read_exact(data.len());
    t.join().unwrap();
    assert!(echoed == data, "echoed bytes differ");
}

#[test]
fn client_close_closes_the_backend_side() {
    let backend = echo_backend();
    let gw = Gateway::to(&backend).start();
    let mut c = upgraded(&gw);
    c.send(b"ping");
    assert_eq!(c.read_exact(4), b"ping");
    drop(c);
    let deadline = Instant::now() + Duration::from_secs(5);
    while backend.closed_connections() < 1 {
        assert!(
            Instant::now() < deadline,
            "backend side of the tunnel still open 5 s after the client left"
        );
        thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn refused_upgrade_is_an_ordinary_response() {
    let backend = Backend::replying(|_| Reply::status(403).body("no upgrade"));
    let gw = Gateway::to(&backend).start();
    let mut c = gw.client();
    c.send(upgrade_request("/ws").as_bytes());
    let r = c.read_response();
    assert_eq!(r.status, 403);
    assert_eq!(r.text(), "no upgrade");
}
