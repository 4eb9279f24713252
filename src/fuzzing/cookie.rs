//! The SESSION cookie: found in a request head, then parsed as a session id.

use crate::http::head::{parse_request, Limits, RequestHead};
use crate::session::id::{SessionId, COOKIE_LEN, ID_LEN};

// ---------------------------------------------------------------------------------------
// cookie_parsing

/// The SESSION cookie: found in a request head, then parsed as a session id.
///
/// Layout: the bytes after `Cookie: ` in a request head (they may add more fields).
pub fn cookie_parsing(data: &[u8]) {
    let mut buf = Vec::with_capacity(data.len() + 64);
    buf.extend_from_slice(b"GET / HTTP/1.1\r\nHost: a\r\nCookie: ");
    buf.extend_from_slice(data);
    buf.extend_from_slice(b"\r\n\r\n");
    let mut head = RequestHead::default();
    if let Ok(Some(())) = parse_request(&buf, &Limits::default(), &mut head) {
        let found = crate::session::cookie::session_cookie(&head, &buf);
        assert_eq!(found, first_session_pair(&head, &buf));
        if let Some(v) = found {
            assert!(!v.contains(&b';'));
            assert!(!v.ends_with(b" ") && !v.ends_with(b"\t"));
            check_session_id(v);
        }
    }
    // The parser alone, on the raw bytes and on each cookie pair's value.
    check_session_id(data);
    for pair in data.split(|&b| b == b';') {
        if let Some(eq) = pair.iter().position(|&b| b == b'=') {
            check_session_id(&pair[eq + 1..]);
        }
    }
    // And the other way: any 17 bytes encode to a value that parses back to them.
    if let Some(bytes) = data.get(..ID_LEN) {
        let id = SessionId::from_bytes(bytes.try_into().expect("ID_LEN bytes"));
        let enc = id.encode();
        assert_eq!(enc.as_bytes().len(), COOKIE_LEN);
        assert!(enc
            .as_bytes()
            .iter()
            .all(|&c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_'));
        assert_eq!(SessionId::parse(enc.as_bytes()), Some(id));
        assert_eq!(id.owner(), bytes[0]);
        assert!(
            !format!("{id:?}").contains(enc.as_str()),
            "Debug leaks the id"
        );
    }
}

/// A plain restatement of how the first SESSION pair is found, for comparison.
fn first_session_pair<'a>(head: &RequestHead, buf: &'a [u8]) -> Option<&'a [u8]> {
    for f in &head.fields {
        if !f.name(buf).eq_ignore_ascii_case(b"cookie") {
            continue;
        }
        for pair in f.value(buf).split(|&b| b == b';') {
            let pair = crate::http::trim_ows(pair);
            if let Some(v) = pair.strip_prefix(b"SESSION=") {
                return Some(v);
            }
        }
    }
    None
}

/// Accepted values are exactly the canonical encodings: parse then encode is the identity.
fn check_session_id(value: &[u8]) {
    if let Some(id) = SessionId::parse(value) {
        assert_eq!(value.len(), COOKIE_LEN);
        assert_eq!(id.encode().as_bytes(), value);
        assert_eq!(id.as_bytes()[0], id.owner());
    }
}
