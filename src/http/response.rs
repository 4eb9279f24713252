//! Upstream response head: parsed with `httparse`, framing decided per RFC 9112 §6.3, and
//! connection-specific fields marked so the proxy writes a clean head to the client.
//! Anything ambiguous from the backend is a 502, never forwarded.

use std::io::Write as _;
use std::mem::MaybeUninit;

use super::error::HttpError;
use super::head::{is_hop_by_hop, Field, Framing, MAX_HEADERS_LIMIT};
use super::{list_elements, name_is, parse_content_length};

#[derive(Debug, Default)]
pub struct ResponseHead {
    pub head_len: usize,
    pub code: u16,
    pub reason: (u32, u32),
    pub minor: u8,
    pub fields: Vec<Field>,
    pub framing: Option<Framing>,
    /// The Content-Length field as sent; kept for HEAD and 304 answers, which carry one
    /// without a body.
    pub content_length: Option<u64>,
    /// The upstream connection may carry another request after this response.
    pub reusable: bool,
}

impl ResponseHead {
    pub fn framing(&self) -> Framing {
        self.framing.unwrap_or(Framing::Length(0))
    }
    pub fn reason<'a>(&self, buf: &'a [u8]) -> &'a [u8] {
        &buf[self.reason.0 as usize..self.reason.1 as usize]
    }
    pub fn is_interim(&self) -> bool {
        (100..200).contains(&self.code) && self.code != 101
    }
}

/// Parses a response head. `request_is_head` is needed because a response to HEAD has no
/// body whatever its fields say.
pub fn parse_response(
    buf: &[u8],
    max_head: usize,
    request_is_head: bool,
    out: &mut ResponseHead,
) -> Result<Option<()>, HttpError> {
    out.fields.clear();
    out.framing = None;
    out.content_length = None;
    let mut slots = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS_LIMIT];
    let mut res = httparse::Response::new(&mut []);
    let parser = httparse::ParserConfig::default();
    let end = match parser.parse_response_with_uninit_headers(&mut res, buf, &mut slots) {
        Ok(httparse::Status::Complete(end)) => end,
        Ok(httparse::Status::Partial) => {
            if buf.len() >= max_head {
                return Err(HttpError::BadGateway("upstream response head too large"));
            }
            return Ok(None);
        }
        Err(_) => return Err(HttpError::BadGateway("malformed upstream response head")),
    };
    if end > max_head {
        return Err(HttpError::BadGateway("upstream response head too large"));
    }
    let base = buf.as_ptr() as usize;
    let span = |s: &[u8]| -> (u32, u32) {
        let start = s.as_ptr() as usize - base;
        (start as u32, (start + s.len()) as u32)
    };
    out.head_len = end;
    out.code = res.code.unwrap_or(0);
    out.minor = res.version.unwrap_or(1);
    let reason = res.reason.unwrap_or("").as_bytes();
    out.reason = if reason.is_empty() {
        (0, 0)
    } else {
        span(reason)
    };
    for h in res.headers.iter() {
        out.fields.push(Field {
            name: span(h.name.as_bytes()),
            value: span(h.value),
            hop: false,
        });
    }

    judge_fields(buf, request_is_head, out)?;
    Ok(Some(()))
}

/// Decides the response's framing and reuse from its fields, and marks the fields the proxy
/// must not relay as they are.
fn judge_fields(
    buf: &[u8],
    request_is_head: bool,
    out: &mut ResponseHead,
) -> Result<(), HttpError> {
    let mut content_length: Option<u64> = None;
    let mut chunked_last = None;
    let mut close = out.minor == 0;
    for i in 0..out.fields.len() {
        let f = out.fields[i];
        let (name, value) = (f.name(buf), f.value(buf));
        if name_is(name, b"content-length") {
            let n = parse_content_length(value)
                .ok_or(HttpError::BadGateway("invalid upstream Content-Length"))?;
            if content_length.is_some_and(|m| m != n) {
                return Err(HttpError::BadGateway("conflicting upstream Content-Length"));
            }
            content_length = Some(n);
            out.fields[i].hop = true;
        } else if name_is(name, b"transfer-encoding") {
            if chunked_last.is_some() {
                return Err(HttpError::BadGateway(
                    "duplicate upstream Transfer-Encoding",
                ));
            }
            let last = list_elements(value).last().unwrap_or_default();
            chunked_last = Some(name_is(last, b"chunked"));
            out.fields[i].hop = true;
        } else if name_is(name, b"connection") {
            out.fields[i].hop = true;
            close = connection_options(buf, value, close, out);
        } else if is_hop_by_hop(name) {
            out.fields[i].hop = true;
        }
    }
    if chunked_last.is_some() && out.minor == 0 {
        // RFC 9112 §6.1: Transfer-Encoding in an HTTP/1.0 message means faulty framing,
        // and §6.3 makes faulty framing from upstream a 502 (as for requests: a 400).
        return Err(HttpError::BadGateway(
            "Transfer-Encoding in HTTP/1.0 response",
        ));
    }
    let bodiless =
        request_is_head || (100..200).contains(&out.code) || matches!(out.code, 204 | 304);
    out.content_length = content_length;
    let framing = if bodiless {
        Framing::Length(0)
    } else {
        match (chunked_last, content_length) {
            (Some(_), Some(_)) => {
                return Err(HttpError::BadGateway(
                    "upstream sent both Content-Length and Transfer-Encoding",
                ))
            }
            (Some(true), None) => Framing::Chunked,
            // Final coding not chunked: the body runs to the end of the connection.
            (Some(false), None) => Framing::Close,
            (None, Some(n)) => Framing::Length(n),
            (None, None) => Framing::Close,
        }
    };
    out.framing = Some(framing);
    out.reusable = !close && framing != Framing::Close;
    Ok(())
}

/// A `Connection` field's options: whether the connection closes after this response
/// (`close` so far), and the fields it names marked connection-specific.
fn connection_options(buf: &[u8], value: &[u8], mut close: bool, out: &mut ResponseHead) -> bool {
    for opt in list_elements(value) {
        if name_is(opt, b"close") {
            close = true;
        } else if name_is(opt, b"keep-alive") && out.minor == 0 {
            close = false;
        }
        for g in out.fields.iter_mut() {
            let n = g.name(buf);
            if n.len() == opt.len() && n.eq_ignore_ascii_case(opt) {
                g.hop = true;
            }
        }
    }
    close
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponseFraming {
    /// Same as upstream: Content-Length (or none for bodiless answers).
    AsUpstream,
    /// Re-framed as chunked.
    Chunked,
    /// Raw bytes, delimited by closing the connection.
    Raw,
    Interim,
    Upgrade,
}

/// Writes the relayed head the client sees: status line, end-to-end fields, our framing.
pub fn write_response_head(
    out: &mut Vec<u8>,
    buf: &[u8],
    resp: &ResponseHead,
    framing: ResponseFraming,
    close: bool,
    client_minor: u8,
) {
    let _ = write!(out, "HTTP/1.1 {} ", resp.code);
    out.extend_from_slice(resp.reason(buf));
    out.extend_from_slice(b"\r\n");
    for f in resp.fields.iter().filter(|f| !f.hop) {
        out.extend_from_slice(f.name(buf));
        out.extend_from_slice(b": ");
        out.extend_from_slice(f.value(buf));
        out.extend_from_slice(b"\r\n");
    }
    match framing {
        ResponseFraming::AsUpstream => {
            let n = match resp.framing() {
                Framing::Length(n) => Some(n),
                _ => None,
            };
            // HEAD and 304 answers keep the length the upstream announced; 1xx/204 carry none.
            let announced = if resp.code == 204 || resp.code < 200 {
                None
            } else if n == Some(0) {
                resp.content_length.or(Some(0))
            } else {
                n
            };
            if let Some(n) = announced {
                let _ = write!(out, "Content-Length: {n}\r\n");
            }
        }
        ResponseFraming::Chunked => out.extend_from_slice(b"Transfer-Encoding: chunked\r\n"),
        ResponseFraming::Raw | ResponseFraming::Interim => {}
        ResponseFraming::Upgrade => {
            out.extend_from_slice(b"Connection: Upgrade\r\nUpgrade: websocket\r\n")
        }
    }
    if !matches!(framing, ResponseFraming::Interim | ResponseFraming::Upgrade) {
        if close {
            out.extend_from_slice(b"Connection: close\r\n");
        } else if client_minor == 0 {
            out.extend_from_slice(b"Connection: keep-alive\r\n");
        }
    }
    out.extend_from_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(raw: &[u8], head: bool) -> Result<ResponseHead, HttpError> {
        let mut r = ResponseHead::default();
        parse_response(raw, 16384, head, &mut r).map(|o| {
            o.expect("complete");
            r
        })
    }

    #[test]
    fn framing() {
        let r = parse(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", false).unwrap();
        assert_eq!(r.framing(), Framing::Length(5));
        assert!(r.reusable);
        let r = parse(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", true).unwrap();
        assert_eq!(r.framing(), Framing::Length(0));
        let r = parse(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
            false,
        )
        .unwrap();
        assert_eq!(r.framing(), Framing::Chunked);
        let r = parse(b"HTTP/1.1 200 OK\r\n\r\n", false).unwrap();
        assert_eq!(r.framing(), Framing::Close);
        assert!(!r.reusable);
        let r = parse(
            b"HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\n\r\n",
            false,
        )
        .unwrap();
        assert_eq!(r.framing(), Framing::Length(0));
        let r = parse(b"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n", false).unwrap();
        assert!(r.is_interim());
        let r = parse(b"HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\n", false).unwrap();
        assert!(!r.reusable);
    }

    #[test]
    fn refusals() {
        assert_eq!(
            parse(
                b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
                false
            )
            .unwrap_err()
            .status(),
            502
        );
        assert!(parse(
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
            false
        )
        .is_err());
        assert!(parse(b"HTTP/1.1 200 OK\r\nX: a\rb\r\n\r\n", false).is_err());
    }
}
