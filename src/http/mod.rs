//! HTTP/1.1 message handling without I/O, so it can be fuzzed and benched alone.

pub mod body;
pub mod error;
pub mod head;
pub mod response;
pub mod url;

/// ASCII case-insensitive comparison of a header name with a lower-case constant.
#[inline]
pub fn name_is(name: &[u8], lower: &[u8]) -> bool {
    name.len() == lower.len() && name.eq_ignore_ascii_case(lower)
}

/// Iterates the comma-separated elements of a list-valued field, OWS trimmed, empty
/// elements skipped (RFC 9110 §5.6.1 tells recipients to ignore them).
pub fn list_elements(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value
        .split(|&b| b == b',')
        .map(trim_ows)
        .filter(|e| !e.is_empty())
}

/// Strips optional whitespace (SP / HTAB) from both ends.
pub fn trim_ows(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

/// RFC 9110 §5.6.2 token characters.
#[inline]
pub fn is_tchar(b: u8) -> bool {
    matches!(b,
        b'!' | b'#' | b'$' | b'%' | b'&' | b'\'' | b'*' | b'+' | b'-' | b'.' | b'^' | b'_'
        | b'`' | b'|' | b'~' | b'0'..=b'9' | b'a'..=b'z' | b'A'..=b'Z')
}

/// Parses a Content-Length value: 1*DIGIT only (no sign, no list, no spaces inside), at
/// most 19 digits so it always fits a u64 (RFC 9112 §6.3 item 5: anything else is invalid).
pub fn parse_content_length(v: &[u8]) -> Option<u64> {
    if v.is_empty() || v.len() > 19 || !v.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(v.iter().fold(0u64, |n, &d| n * 10 + u64::from(d - b'0')))
}
