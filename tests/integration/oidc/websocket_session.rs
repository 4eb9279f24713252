//! WebSockets bound to their session: the gateway closes them when the session ends (user
//! logout, back-channel logout, expiry), and with
//! `sessiongate.keep-alive-after-disconnect-sec` a session whose last WebSocket closed ends
//! after that grace unless a request comes.
//!
//! The sleeps here wait out the configured grace.

use std::thread;
use std::time::{Duration, Instant};

use crate::backend::WS_KEY;
use crate::client::Client;
use crate::oidc::provider::bearer;
use crate::oidc::stack::Stack;

const EFFECT_TIMEOUT: Duration = Duration::from_secs(10);
const GRACE_SECS: u64 = 2;
const ABANDONED: &str = "no connection came back after the last WebSocket closed";

/// A masked client text frame (RFC 6455 §5.2) with a payload shorter than 126 bytes.
fn text_frame(payload: &[u8]) -> Vec<u8> {
    assert!(payload.len() < 126);
    let mask = [0x37, 0xfa, 0x21, 0x3d];
    let mut f = vec![0x81, 0x80 | payload.len() as u8];
    f.extend_from_slice(&mask);
    f.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    f
}

/// Opens a WebSocket through the gateway with the session's cookie and checks it echoes.
fn open_websocket(s: &Stack, session: &str, path: &str) -> Client {
    let mut c = Client::connect(s.gateway.addr());
    c.send(
        format!(
            "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nCookie: SESSION={session}\r\n\
             Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {WS_KEY}\r\n\
             Sec-WebSocket-Version: 13\r\n\r\n",
            s.port
        )
        .as_bytes(),
    );
    let r = c.read_response();
    assert_eq!(r.status, 101, "WebSocket upgrade at {path}: {:?}", r.head);
    let upgrade = s
        .wait_for_backend(EFFECT_TIMEOUT, |r| r.target == path)
        .expect("the backend saw no upgrade");
    assert!(
        bearer(upgrade.header("authorization")).is_some(),
        "the upgrade must be forwarded as the session's: {:?}",
        upgrade.head
    );
    let frame = text_frame(b"hello");
    c.send(&frame);
    assert_eq!(c.read_exact(frame.len()), frame, "no echo through {path}");
    c
}

/// Asserts the gateway closed the WebSocket.
fn assert_closed_by_gateway(c: &mut Client, why: &str) {
    if let Err(e) = c.closed_within(EFFECT_TIMEOUT) {
        panic!("{why}: the gateway must close the session's WebSocket: {e}");
    }
}

/// Waits for the note that an abandoned session ended; returns when it was seen.
fn wait_for_abandoned(s: &Stack, within: Duration) -> Option<Instant> {
    s.gateway
        .wait_for_log_line(within, |l| l.contains(ABANDONED))
        .map(|_| Instant::now())
}

fn keep_alive_stack() -> Stack {
    Stack::builder()
        .websocket_backend()
        .set("keep-alive-after-disconnect-sec", GRACE_SECS)
        .start()
}

/// The last WebSocket closes and nothing else comes: the session ends after the grace, not
/// before.
#[test]
fn session_ends_after_the_grace_once_its_last_websocket_closed() {
    let s = keep_alive_stack();
    let (_, alice) = s.login("alice");
    let ws = open_websocket(&s, &alice.session, "/ws/1");
    drop(ws);
    let closed = Instant::now();

    let ended = wait_for_abandoned(&s, Duration::from_secs(GRACE_SECS) + EFFECT_TIMEOUT)
        .unwrap_or_else(|| {
            panic!(
                "the session did not end after the grace; stderr:\n{}",
                s.gateway.stderr()
            )
        });
    let after = ended - closed;
    assert!(
        after >= Duration::from_millis(GRACE_SECS * 1000 - 200),
        "the session ended {after:?} after its WebSocket closed, before the {GRACE_SECS} s grace"
    );
    s.wait_until_session_ended(&alice.session, EFFECT_TIMEOUT, "alice after the grace");
}

/// A request within the grace keeps the session.
#[test]
fn a_request_within_the_grace_keeps_the_session() {
    let s = keep_alive_stack();
    let (_, alice) = s.login("alice");
    let ws = open_websocket(&s, &alice.session, "/ws/1");
    drop(ws);
    let closed = Instant::now();

    thread::sleep(Duration::from_millis(GRACE_SECS * 1000 / 2));
    s.assert_session_works(&alice.session, "alice's request within the grace");
    // Past the grace, with a margin.
    let until = closed + Duration::from_millis(GRACE_SECS * 1000 + 1000);
    thread::sleep(until.saturating_duration_since(Instant::now()));
    assert!(
        !s.gateway.stderr().contains(ABANDONED),
        "the session was ended although a request came within the grace"
    );
    s.assert_session_works(&alice.session, "alice after the grace");
}

/// Closing one of two WebSockets starts no grace; closing the last one does.
#[test]
fn a_session_with_another_open_websocket_survives_the_grace() {
    let s = keep_alive_stack();
    let (_, alice) = s.login("alice");
    let first = open_websocket(&s, &alice.session, "/ws/1");
    let mut second = open_websocket(&s, &alice.session, "/ws/2");
    drop(first);

    // Nothing flows on the second one meanwhile, so only its being open keeps the session.
    thread::sleep(Duration::from_millis(GRACE_SECS * 1000 + 500));
    assert!(
        !s.gateway.stderr().contains(ABANDONED),
        "the session was ended while a WebSocket was still open"
    );
    let frame = text_frame(b"still here");
    second.send(&frame);
    assert_eq!(second.read_exact(frame.len()), frame);

    drop(second);
    assert!(
        wait_for_abandoned(&s, Duration::from_secs(GRACE_SECS) + EFFECT_TIMEOUT).is_some(),
        "the session did not end after its last WebSocket closed"
    );
    s.wait_until_session_ended(&alice.session, EFFECT_TIMEOUT, "alice after the grace");
}

/// `POST /logout` closes the session's open WebSocket.
#[test]
fn logout_closes_the_sessions_websocket() {
    let s = Stack::builder().websocket_backend().start();
    let (mut b, alice) = s.login("alice");
    let mut ws = open_websocket(&s, &alice.session, "/ws/1");
    let r = b.post_form(&s.url("/logout"), &[]);
    assert_eq!(r.status, 302, "POST /logout: {}", r.text());
    assert_closed_by_gateway(&mut ws, "after POST /logout");
}

/// A back-channel logout closes the session's open WebSocket.
#[test]
fn backchannel_logout_closes_the_sessions_websocket() {
    let s = Stack::builder()
        .websocket_backend()
        .backchannel_logout()
        .start();
    let (_, alice) = s.login("alice");
    let (_, bob) = s.login("bob");
    let mut ws = open_websocket(&s, &alice.session, "/ws/alice");
    let mut other = open_websocket(&s, &bob.session, "/ws/bob");
    let sid = s.provider.sid_of("alice");
    let token = s
        .provider
        .sign_logout(s.provider.logout_claims(Some("alice"), Some(&sid)));
    let r = s.post_logout_token(&token);
    assert_eq!(r.status, 200, "logout token: {}", r.text());
    assert_closed_by_gateway(&mut ws, "after a back-channel logout");
    // Bob's socket is not his business.
    let frame = text_frame(b"bob");
    other.send(&frame);
    assert_eq!(other.read_exact(frame.len()), frame);
}

/// An idle session's expiry closes its open WebSocket (nothing flows on it).
#[test]
fn expiry_closes_the_sessions_websocket() {
    let s = Stack::builder()
        .websocket_backend()
        .cg("sessionTimeoutSec", 2)
        .cg("sessionCheckIntervalMs", 100)
        .start();
    let (_, alice) = s.login("alice");
    let mut ws = open_websocket(&s, &alice.session, "/ws/1");
    let opened = Instant::now();
    assert_closed_by_gateway(&mut ws, "after the session expired");
    assert!(
        opened.elapsed() >= Duration::from_millis(1500),
        "the WebSocket closed {:?} after opening, before the session could expire",
        opened.elapsed()
    );
    s.wait_until_session_ended(&alice.session, EFFECT_TIMEOUT, "alice after expiry");
}
