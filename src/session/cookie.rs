//! The gateway's cookies: `SESSION`, found in a request, set and cleared in an answer; and
//! the login-binding cookie a browser gets when it starts a login, which ties the callback
//! to that browser. (What goes upstream carries neither: [`crate::http::forward`] strips
//! them by name.)

use crate::http::head::RequestHead;
use crate::http::{name_is, trim_ows};

/// The cookie's name (Spring Session's).
pub const COOKIE: &str = "SESSION";

/// The login-binding cookie over https: `__Host-` makes browsers refuse it from a sibling
/// domain or without Secure, so nobody can plant their own binding in a victim's browser.
pub const LOGIN_COOKIE_SECURE: &str = "__Host-SESSIONGATE-LOGIN";
/// The login-binding cookie where the session cookie is not Secure either (plain http).
pub const LOGIN_COOKIE: &str = "SESSIONGATE-LOGIN";

/// Every cookie of the gateway's own: stripped from what goes upstream.
pub const OWN: [&str; 3] = [COOKIE, LOGIN_COOKIE_SECURE, LOGIN_COOKIE];

/// The SESSION cookie's value, if the request carries one.
pub fn session_cookie<'a>(head: &RequestHead, buf: &'a [u8]) -> Option<&'a [u8]> {
    cookie_value(head, buf, COOKIE)
}

/// The value of the first cookie named `name` the request carries.
pub fn cookie_value<'a>(head: &RequestHead, buf: &'a [u8], name: &str) -> Option<&'a [u8]> {
    head.fields
        .iter()
        .filter(|f| name_is(f.name(buf), b"cookie"))
        .flat_map(|f| f.value(buf).split(|&b| b == b';'))
        .find_map(|pair| {
            let pair = trim_ows(pair);
            let eq = memchr::memchr(b'=', pair)?;
            (&pair[..eq] == name.as_bytes()).then(|| &pair[eq + 1..])
        })
}

/// The login-binding cookie's name for the session cookie's `secure` setting.
pub fn login_cookie_name(secure: bool) -> &'static str {
    if secure {
        LOGIN_COOKIE_SECURE
    } else {
        LOGIN_COOKIE
    }
}

/// A `Set-Cookie` value for the login binding, living as long as a pending login.
pub fn set_login_cookie(value: &str, secure: bool, max_age_secs: u64) -> String {
    let name = login_cookie_name(secure);
    let secure = if secure { "; Secure" } else { "" };
    format!("{name}={value}; Path=/; HttpOnly; SameSite=Lax; Max-Age={max_age_secs}{secure}")
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
