//! The gate's decisions driven by hand: a real `Gate` with a manual clock, sessions put in
//! its store directly, no network.

use super::*;

#[test]
fn return_targets_stay_local() {
    assert_eq!(safe_return("/a?b=c"), "/a?b=c");
    assert_eq!(safe_return("//evil.example/"), "/");
    assert_eq!(safe_return("/\\evil.example"), "/");
    assert_eq!(safe_return("https://evil.example/"), "/");
    assert_eq!(safe_return("/a\r\nSet-Cookie: x"), "/");
}

#[test]
fn navigation_is_told_apart() {
    let mut h = RequestHead::default();
    let raw = b"GET / HTTP/1.1\r\nHost: a\r\nSec-Fetch-Mode: navigate\r\n\r\n";
    crate::http::head::parse_request(raw, &Default::default(), &mut h)
        .unwrap()
        .unwrap();
    assert!(is_navigation(&h, raw));
    let raw = b"GET /api HTTP/1.1\r\nHost: a\r\nAccept: application/json\r\n\r\n";
    crate::http::head::parse_request(raw, &Default::default(), &mut h)
        .unwrap()
        .unwrap();
    assert!(!is_navigation(&h, raw));
}
