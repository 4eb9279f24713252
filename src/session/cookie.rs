//! The `SESSION` cookie: found in a request, set and cleared in an answer, and stripped
//! from what goes upstream (the backend never sees the gateway's credential).

use crate::http::head::RequestHead;
use crate::http::{name_is, trim_ows};

/// The cookie's name (Spring Session's).
pub const COOKIE: &str = "SESSION";

/// The SESSION cookie's value, if the request carries one.
pub fn session_cookie<'a>(head: &RequestHead, buf: &'a [u8]) -> Option<&'a [u8]> {
    head.fields
        .iter()
        .filter(|f| name_is(f.name(buf), b"cookie"))
        .flat_map(|f| f.value(buf).split(|&b| b == b';'))
        .find_map(|pair| {
            let pair = trim_ows(pair);
            let eq = memchr::memchr(b'=', pair)?;
            (&pair[..eq] == COOKIE.as_bytes()).then(|| &pair[eq + 1..])
        })
}

/// A `Set-Cookie` value; `max_age: Some(0)` clears the cookie.
pub fn set_cookie(value: &str, secure: bool, max_age: Option<u64>) -> String {
    let mut c = format!("{COOKIE}={value}; Path=/; HttpOnly; SameSite=Lax");
    if secure {
        c.push_str("; Secure");
    }
    if let Some(a) = max_age {
        let _ = std::fmt::Write::write_fmt(&mut c, format_args!("; Max-Age={a}"));
    }
    c
}

/// Writes a `Cookie` field line without the SESSION pair; nothing when no pair is left.
pub fn write_without_session(out: &mut Vec<u8>, value: &[u8]) {
    let start = out.len();
    out.extend_from_slice(b"Cookie: ");
    let mut any = false;
    for pair in value.split(|&b| b == b';') {
        let pair = trim_ows(pair);
        let name = pair.split(|&b| b == b'=').next().unwrap_or_default();
        if pair.is_empty() || name == COOKIE.as_bytes() {
            continue;
        }
        if any {
            out.extend_from_slice(b"; ");
        }
        out.extend_from_slice(pair);
        any = true;
    }
    if any {
        out.extend_from_slice(b"\r\n");
    } else {
        out.truncate(start);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(raw: &[u8]) -> RequestHead {
        let mut h = RequestHead::default();
        crate::http::head::parse_request(raw, &Default::default(), &mut h)
            .unwrap()
            .unwrap();
        h
    }

    #[test]
    fn finds_the_session_pair_among_others() {
        let raw = b"GET / HTTP/1.1\r\nHost: a\r\nCookie: theme=dark; SESSION=abc; x=1\r\n\r\n";
        assert_eq!(session_cookie(&head(raw), raw), Some(&b"abc"[..]));
        let raw = b"GET / HTTP/1.1\r\nHost: a\r\nCookie: SESSIONX=abc\r\n\r\n";
        assert_eq!(session_cookie(&head(raw), raw), None);
    }

    #[test]
    fn strips_only_the_session_pair() {
        let mut out = Vec::new();
        write_without_session(&mut out, b"theme=dark; SESSION=abc;x=1");
        assert_eq!(out, b"Cookie: theme=dark; x=1\r\n");
        out.clear();
        write_without_session(&mut out, b"SESSION=abc");
        assert!(out.is_empty(), "a field with nothing left is dropped");
    }

    #[test]
    fn set_and_clear() {
        assert_eq!(
            set_cookie("v", true, None),
            "SESSION=v; Path=/; HttpOnly; SameSite=Lax; Secure"
        );
        assert_eq!(
            set_cookie("", false, Some(0)),
            "SESSION=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0"
        );
    }
}
