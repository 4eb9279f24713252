//! A back-channel logout whose body trickles in: the gateway reads that body itself, so the
//! whole of it must arrive within the request-head timeout (each read's own pause limit,
//! 30 s, never trips at a byte every 2 s).

use std::time::Duration;

use crate::hardening_floods::assert_trickled_body_cut;
use crate::oidc::stack::Stack;

const HEAD_TIMEOUT: Duration = Duration::from_secs(4);

#[test]
fn slow_backchannel_body_is_cut_within_the_head_timeout() {
    let s = Stack::builder()
        .backchannel_logout()
        .set("request-head-timeout-ms", HEAD_TIMEOUT.as_millis())
        .start();
    let head = format!(
        "POST /backchannel/logout HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 65536\r\n\r\n",
        s.port
    );
    assert_trickled_body_cut(
        s.gateway.addr(),
        &head,
        HEAD_TIMEOUT + Duration::from_secs(2),
    );
    // With a registration the start does not call itself unauthenticated.
    assert!(
        !s.gateway.stderr().contains("unauthenticated proxy"),
        "{}",
        s.gateway.stderr()
    );
}
