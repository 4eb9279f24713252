//! Errors of the HTTP layer: a small `Copy` enum whose variants map straight to a status
//! code and a canned answer, so refusing a request allocates nothing.

/// Whose fault a failed exchange is, and what the client is told.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HttpError {
    #[error("bad request: {0}")]
    BadRequest(&'static str),
    #[error("request head not received in time")]
    RequestTimeout,
    #[error("request body too large")]
    PayloadTooLarge,
    #[error("request target too long")]
    UriTooLong,
    #[error("expectation not supported")]
    ExpectationFailed,
    #[error("header fields too large: {0}")]
    HeaderFieldsTooLarge(&'static str),
    #[error("not implemented: {0}")]
    NotImplemented(&'static str),
    #[error("HTTP version not supported")]
    VersionNotSupported,
    #[error("no route")]
    NotFound,
    #[error("bad gateway: {0}")]
    BadGateway(&'static str),
    #[error("upstream did not answer in time")]
    GatewayTimeout,
    #[error("service unavailable: {0}")]
    Unavailable(&'static str),
}

impl HttpError {
    pub fn status(&self) -> u16 {
        match self {
            HttpError::BadRequest(_) => 400,
            HttpError::NotFound => 404,
            HttpError::RequestTimeout => 408,
            HttpError::PayloadTooLarge => 413,
            HttpError::UriTooLong => 414,
            HttpError::ExpectationFailed => 417,
            HttpError::HeaderFieldsTooLarge(_) => 431,
            HttpError::NotImplemented(_) => 501,
            HttpError::BadGateway(_) => 502,
            HttpError::Unavailable(_) => 503,
            HttpError::GatewayTimeout => 504,
            HttpError::VersionNotSupported => 505,
        }
    }

    /// The response to a request: to HEAD the head alone (its Content-Length kept), since a
    /// client reusing the connection would read a body as the next response.
    pub fn response_to(&self, head_request: bool) -> &'static [u8] {
        let full = self.response();
        if !head_request {
            return full;
        }
        let end = memchr::memmem::find(full, b"\r\n\r\n").map_or(full.len(), |i| i + 4);
        &full[..end]
    }

    /// The complete response: status line, a short plain-text body, `Connection: close`
    /// (after a refused head the rest of the stream cannot be trusted).
    pub fn response(&self) -> &'static [u8] {
        // concat! cannot measure the body, so its length is spelled out (a test checks it).
        macro_rules! c {
            ($status:literal, $reason:literal, $body:literal, $len:literal) => {
                concat!(
                    "HTTP/1.1 ",
                    $status,
                    " ",
                    $reason,
                    "\r\n",
                    "Content-Type: text/plain; charset=utf-8\r\n",
                    "Cache-Control: no-store\r\n",
                    "Connection: close\r\n",
                    "Content-Length: ",
                    $len,
                    "\r\n\r\n",
                    $body
                )
                .as_bytes()
            };
        }
        match self {
            HttpError::BadRequest(_) => c!("400", "Bad Request", "bad request\n", "12"),
            HttpError::NotFound => c!("404", "Not Found", "no route\n", "9"),
            HttpError::RequestTimeout => c!("408", "Request Timeout", "request timeout\n", "16"),
            HttpError::PayloadTooLarge => {
                c!("413", "Content Too Large", "content too large\n", "18")
            }
            HttpError::UriTooLong => c!("414", "URI Too Long", "uri too long\n", "13"),
            HttpError::ExpectationFailed => {
                c!("417", "Expectation Failed", "expectation failed\n", "19")
            }
            HttpError::HeaderFieldsTooLarge(_) => c!(
                "431",
                "Request Header Fields Too Large",
                "request header fields too large\n",
                "32"
            ),
            HttpError::NotImplemented(_) => c!("501", "Not Implemented", "not implemented\n", "16"),
            HttpError::BadGateway(_) => c!("502", "Bad Gateway", "bad gateway\n", "12"),
            HttpError::Unavailable(_) => {
                c!("503", "Service Unavailable", "service unavailable\n", "20")
            }
            HttpError::GatewayTimeout => c!("504", "Gateway Timeout", "gateway timeout\n", "16"),
            HttpError::VersionNotSupported => c!(
                "505",
                "HTTP Version Not Supported",
                "http version not supported\n",
                "27"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canned_lengths_match_bodies() {
        let all = [
            HttpError::BadRequest(""),
            HttpError::NotFound,
            HttpError::RequestTimeout,
            HttpError::PayloadTooLarge,
            HttpError::UriTooLong,
            HttpError::ExpectationFailed,
            HttpError::HeaderFieldsTooLarge(""),
            HttpError::NotImplemented(""),
            HttpError::BadGateway(""),
            HttpError::Unavailable(""),
            HttpError::GatewayTimeout,
            HttpError::VersionNotSupported,
        ];
        for e in all {
            let r = std::str::from_utf8(e.response()).unwrap();
            let (head, body) = r.split_once("\r\n\r\n").unwrap();
            assert!(head.starts_with(&format!("HTTP/1.1 {} ", e.status())));
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("Content-Length: "))
                .unwrap()
                .parse()
                .unwrap();
            assert_eq!(len, body.len(), "{r}");
        }
    }
}
