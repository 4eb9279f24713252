//! The one writer of the answers the gateway makes itself (login redirects, 401 JSON, its
//! pages (rendered by [`crate::pages`]), the management API, the plain-HTTP-on-TLS-port answer). The canned refusals of
//! [`super::error::HttpError`] use the same shape, precomputed, so refusing allocates
//! nothing; a test keeps the two in step.

use std::io::Write as _;

/// A complete response with a small body.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub reason: &'static str,
    pub headers: Vec<(&'static str, String)>,
    pub content_type: &'static str,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn new(status: u16, reason: &'static str) -> Reply {
        Reply {
            status,
            reason,
            headers: Vec::new(),
            content_type: "text/plain; charset=utf-8",
            body: Vec::new(),
        }
    }

    pub fn text(status: u16, reason: &'static str, body: &str) -> Reply {
        let mut r = Reply::new(status, reason);
        r.body = body.as_bytes().to_vec();
        r
    }

    pub fn redirect(location: String) -> Reply {
        Reply::new(302, "Found").with_header("Location", location)
    }

    pub fn json(status: u16, reason: &'static str, body: String) -> Reply {
        let mut r = Reply::new(status, reason);
        r.content_type = "application/json";
        r.body = body.into_bytes();
        r
    }

    pub fn html(status: u16, reason: &'static str, body: String) -> Reply {
        let mut r = Reply::new(status, reason);
        r.content_type = "text/html; charset=utf-8";
        r.body = body.into_bytes();
        r
    }

    pub fn with_header(mut self, name: &'static str, value: String) -> Reply {
        self.headers.push((name, value));
        self
    }

    /// Serialises the reply; `close` adds `Connection: close`.
    pub fn write(&self, out: &mut Vec<u8>, close: bool) {
        self.write_to(out, close, false);
    }

    /// Serialises the reply as the answer to a request; to HEAD without the body, whose
    /// Content-Length stays (RFC 9110 §9.3.2). A body there would be read as the next
    /// response by a client that reuses the connection.
    pub fn write_to(&self, out: &mut Vec<u8>, close: bool, head_request: bool) {
        let _ = write!(out, "HTTP/1.1 {} {}\r\n", self.status, self.reason);
        for (n, v) in &self.headers {
            let _ = write!(out, "{n}: {v}\r\n");
        }
        let _ = write!(
            out,
            "Content-Type: {}\r\nCache-Control: no-store\r\n",
            self.content_type
        );
        if close {
            out.extend_from_slice(b"Connection: close\r\n");
        }
        let _ = write!(out, "Content-Length: {}\r\n\r\n", self.body.len());
        if !head_request {
            out.extend_from_slice(&self.body);
        }
    }

    /// The serialised reply.
    pub fn to_bytes(&self, close: bool) -> Vec<u8> {
        let mut out = Vec::with_capacity(128 + self.body.len());
        self.write(&mut out, close);
        out
    }
}

/// Escapes text for HTML element content and attribute values.
pub fn html_escape(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '&' => o.push_str("&amp;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::error::HttpError;

    #[test]
    fn canned_refusals_are_what_the_writer_writes() {
        for e in [
            HttpError::BadRequest("x"),
            HttpError::NotFound,
            HttpError::RequestTimeout,
            HttpError::GatewayTimeout,
            HttpError::BadGateway("x"),
        ] {
            let canned = e.response();
            let text = std::str::from_utf8(canned).unwrap();
            let status_line = text.lines().next().unwrap();
            let reason: &'static str = status_line
                .splitn(3, ' ')
                .nth(2)
                .unwrap()
                .to_string()
                .leak();
            let body = &text[text.find("\r\n\r\n").unwrap() + 4..];
            let written = Reply::text(e.status(), reason, body).to_bytes(true);
            assert_eq!(std::str::from_utf8(&written).unwrap(), text);
        }
    }

    #[test]
    fn no_body_to_head() {
        let r = Reply::json(401, "Unauthorized", "{\"error\":1}".into());
        let full = r.to_bytes(false);
        let mut head = Vec::new();
        r.write_to(&mut head, false, true);
        assert!(full.starts_with(&head) && head.ends_with(b"Content-Length: 11\r\n\r\n"));
        assert_eq!(full.len() - head.len(), 11);
        for e in [HttpError::BadRequest("x"), HttpError::NotFound] {
            let to_head = e.response_to(true);
            assert!(e.response().starts_with(to_head) && to_head.ends_with(b"\r\n\r\n"));
            assert!(to_head.len() < e.response().len());
            assert_eq!(e.response_to(false), e.response());
        }
    }
}
