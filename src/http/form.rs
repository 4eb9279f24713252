//! `application/x-www-form-urlencoded`: query strings and form bodies (RFC 1866 §8.2.1,
//! WHATWG URL), for the few requests the gateway reads or writes itself.

/// `application/x-www-form-urlencoded` encoding of one value.
pub fn form_encode(out: &mut String, v: &str) {
    for b in v.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            _ => {
                let _ = std::fmt::Write::write_fmt(out, format_args!("%{b:02X}"));
            }
        }
    }
}

/// Builds a form body or query string from pairs.
pub fn form(pairs: &[(&str, &str)]) -> String {
    let mut s = String::new();
    for (i, (k, v)) in pairs.iter().enumerate() {
        if i > 0 {
            s.push('&');
        }
        form_encode(&mut s, k);
        s.push('=');
        form_encode(&mut s, v);
    }
    s
}

/// Percent-decodes a query or form value (`+` as space). `None` on bad escapes or UTF-8.
pub fn form_decode(v: &[u8]) -> Option<String> {
    let mut out = Vec::with_capacity(v.len());
    let mut i = 0;
    while i < v.len() {
        match v[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = v.get(i + 1..i + 3)?;
                let s = std::str::from_utf8(hex).ok()?;
                out.push(u8::from_str_radix(s, 16).ok()?);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

/// The value of `name` in a query string or form body.
pub fn form_value(query: &[u8], name: &str) -> Option<String> {
    query.split(|&b| b == b'&').find_map(|pair| {
        let (k, v) = match memchr::memchr(b'=', pair) {
            Some(i) => (&pair[..i], &pair[i + 1..]),
            None => (pair, &b""[..]),
        };
        (form_decode(k)? == name).then(|| form_decode(v)).flatten()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_round_trip() {
        let f = form(&[("a b", "c&d=e/é"), ("x", "")]);
        assert_eq!(f, "a+b=c%26d%3De%2F%C3%A9&x=");
        assert_eq!(form_value(f.as_bytes(), "a b").as_deref(), Some("c&d=e/é"));
        assert_eq!(form_value(f.as_bytes(), "x").as_deref(), Some(""));
        assert_eq!(form_value(f.as_bytes(), "y"), None);
        assert_eq!(form_decode(b"%zz"), None);
    }
}
