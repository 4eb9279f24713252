//! Just enough HTTP/1.1 reading for the fake backend and the raw client.
//!
//! Both sides of the gateway are read through [`Wire`], a small buffered reader that hands out
//! heads (everything up to the blank line), CRLF-terminated lines and body bytes. Parsing is
//! strict where the gateway is the sender (a malformed chunk line from the gateway is an
//! error, so a framing bug surfaces as a failing test) and otherwise simple.

use std::io::{self, Read};

/// Largest head either fake accepts; anything bigger is a gateway bug in these tests.
pub const MAX_HEAD: usize = 1 << 20;

const READ_CHUNK: usize = 64 * 1024;

/// Buffered reader over one direction of a connection.
pub struct Wire<R> {
    inner: R,
    buf: Vec<u8>,
    pos: usize,
}

impl<R: Read> Wire<R> {
    pub fn new(inner: R) -> Self {
        Wire {
            inner,
            buf: Vec::with_capacity(READ_CHUNK),
            pos: 0,
        }
    }

    pub fn get_ref(&self) -> &R {
        &self.inner
    }

    /// The stream itself, e.g. to write requests on a TLS stream that cannot be cloned.
    pub fn get_mut(&mut self) -> &mut R {
        &mut self.inner
    }

    fn buffered(&self) -> &[u8] {
        &self.buf[self.pos..]
    }

    /// Reads once from the socket into the buffer; `Ok(0)` at end of stream.
    fn fill(&mut self) -> io::Result<usize> {
        if self.pos == self.buf.len() {
            self.buf.clear();
            self.pos = 0;
        } else if self.pos > READ_CHUNK {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        let old = self.buf.len();
        self.buf.resize(old + READ_CHUNK, 0);
        match self.inner.read(&mut self.buf[old..]) {
            Ok(n) => {
                self.buf.truncate(old + n);
                Ok(n)
            }
            Err(e) => {
                self.buf.truncate(old);
                Err(e)
            }
        }
    }

    /// Reads one head including its final CRLF CRLF. `Ok(None)`: the peer closed cleanly
    /// before sending a byte of it.
    pub fn read_head(&mut self) -> io::Result<Option<Vec<u8>>> {
        let mut scanned = 0;
        loop {
            let data = self.buffered();
            if let Some(i) = find(&data[scanned..], b"\r\n\r\n") {
                let end = scanned + i + 4;
                let head = data[..end].to_vec();
                self.pos += end;
                return Ok(Some(head));
            }
            scanned = data.len().saturating_sub(3);
            if data.len() > MAX_HEAD {
                return Err(invalid("head larger than the test limit"));
            }
            if self.fill()? == 0 {
                return if self.buffered().is_empty() {
                    Ok(None)
                } else {
                    Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        format!(
                            "stream ended inside a head: {}",
                            String::from_utf8_lossy(self.buffered())
                        ),
                    ))
                };
            }
        }
    }

    /// Reads one line that must end in CRLF; returns it without the CRLF.
    pub fn read_crlf_line(&mut self) -> io::Result<Vec<u8>> {
        loop {
            let data = self.buffered();
            if let Some(i) = memchr(b'\n', data) {
                if i == 0 || data[i - 1] != b'\r' {
                    return Err(invalid(format!(
                        "line not terminated by CRLF: {:?}",
                        String::from_utf8_lossy(&data[..=i])
                    )));
                }
                let line = data[..i - 1].to_vec();
                self.pos += i + 1;
                return Ok(line);
            }
            if data.len() > MAX_HEAD {
                return Err(invalid("line longer than the test limit"));
            }
            if self.fill()? == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
        }
    }

    /// Moves exactly `n` body bytes into `sink` (or drops them when `sink` is `None`).
    pub fn read_exact_into(
        &mut self,
        mut n: u64,
        mut sink: Option<&mut Vec<u8>>,
    ) -> io::Result<()> {
        let take = (self.buffered().len() as u64).min(n) as usize;
        if let Some(s) = sink.as_deref_mut() {
            s.extend_from_slice(&self.buffered()[..take]);
        }
        self.pos += take;
        n -= take as u64;
        let mut scratch = vec![0u8; READ_CHUNK];
        while n > 0 {
            let want = (scratch.len() as u64).min(n) as usize;
            let got = self.inner.read(&mut scratch[..want])?;
            if got == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("stream ended with {n} body bytes missing"),
                ));
            }
            if let Some(s) = sink.as_deref_mut() {
                s.extend_from_slice(&scratch[..got]);
            }
            n -= got as u64;
        }
        Ok(())
    }

    /// Reads until end of stream; returns the number of bytes. A reset counts as the end.
    pub fn read_to_close(&mut self, mut sink: Option<&mut Vec<u8>>) -> io::Result<u64> {
        let mut total = self.buffered().len() as u64;
        if let Some(s) = sink.as_deref_mut() {
            s.extend_from_slice(self.buffered());
        }
        self.pos = self.buf.len();
        let mut scratch = vec![0u8; READ_CHUNK];
        loop {
            match self.inner.read(&mut scratch) {
                Ok(0) => return Ok(total),
                Ok(n) => {
                    total += n as u64;
                    if let Some(s) = sink.as_deref_mut() {
                        s.extend_from_slice(&scratch[..n]);
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::ConnectionReset => return Ok(total),
                Err(e) => return Err(e),
            }
        }
    }

    /// Reads whatever arrives next (buffered bytes first); `Ok(0)` at end of stream.
    pub fn read_some(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if self.buffered().is_empty() {
            self.buf.clear();
            self.pos = 0;
            return self.inner.read(out);
        }
        let n = self.buffered().len().min(out.len());
        out[..n].copy_from_slice(&self.buffered()[..n]);
        self.pos += n;
        Ok(n)
    }

    /// Bytes already read from the socket but not handed out yet.
    pub fn take_buffered(&mut self) -> Vec<u8> {
        let rest = self.buffered().to_vec();
        self.buf.clear();
        self.pos = 0;
        rest
    }
}

/// A parsed head: start line plus header fields in arrival order.
#[derive(Clone, Debug)]
pub struct Head {
    /// The bytes exactly as received, final CRLF CRLF included.
    pub raw: Vec<u8>,
    pub start: String,
    pub headers: Vec<(String, String)>,
}

impl Head {
    pub fn parse(raw: Vec<u8>) -> io::Result<Head> {
        let text = String::from_utf8_lossy(&raw).into_owned();
        let body = text
            .strip_suffix("\r\n\r\n")
            .ok_or_else(|| invalid("head does not end in CRLF CRLF"))?;
        let mut lines = body.split("\r\n");
        let start = lines.next().unwrap_or_default().to_string();
        let mut headers = Vec::new();
        for line in lines {
            let (name, value) = line
                .split_once(':')
                .ok_or_else(|| invalid(format!("header line without colon: {line:?}")))?;
            headers.push((name.to_string(), value.trim().to_string()));
        }
        Ok(Head {
            raw,
            start,
            headers,
        })
    }

    /// First value of a header, name compared case-insensitively.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Every value of a header, in order.
    pub fn all(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }

    pub fn has(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// Whether any value of the comma-separated header `name` lists `token`.
    pub fn has_token(&self, name: &str, token: &str) -> bool {
        self.all(name)
            .iter()
            .flat_map(|v| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case(token))
    }

    /// Start-line fields split on single spaces (method, target, version for a request).
    pub fn start_fields(&self) -> (String, String, String) {
        let mut it = self.start.splitn(3, ' ');
        let a = it.next().unwrap_or_default().to_string();
        let b = it.next().unwrap_or_default().to_string();
        let c = it.next().unwrap_or_default().to_string();
        (a, b, c)
    }
}

/// How a message body is delimited (RFC 9112 §6.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framing {
    Empty,
    Length(u64),
    Chunked,
    UntilClose,
}

/// A body as received.
#[derive(Clone, Debug, Default)]
pub struct Body {
    /// The decoded bytes, empty when the reader was asked not to keep them.
    pub data: Vec<u8>,
    /// Decoded length, counted even when the bytes were dropped.
    pub len: u64,
    pub chunked: bool,
    pub trailers: Vec<(String, String)>,
}

/// Reads a body with the given framing. `keep: false` counts bytes without storing them.
pub fn read_body<R: Read>(wire: &mut Wire<R>, framing: Framing, keep: bool) -> io::Result<Body> {
    let mut body = Body::default();
    match framing {
        Framing::Empty => {}
        Framing::Length(n) => {
            wire.read_exact_into(n, keep.then_some(&mut body.data))?;
            body.len = n;
        }
        Framing::UntilClose => {
            body.len = wire.read_to_close(keep.then_some(&mut body.data))?;
        }
        Framing::Chunked => {
            body.chunked = true;
            loop {
                let line = wire.read_crlf_line()?;
                let line = String::from_utf8_lossy(&line).into_owned();
                let size_text = line.split(';').next().unwrap_or_default();
                let size = u64::from_str_radix(size_text, 16)
                    .map_err(|_| invalid(format!("bad chunk size line {line:?}")))?;
                if size == 0 {
                    loop {
                        let t = wire.read_crlf_line()?;
                        if t.is_empty() {
                            break;
                        }
                        let t = String::from_utf8_lossy(&t).into_owned();
                        let (n, v) = t
                            .split_once(':')
                            .ok_or_else(|| invalid(format!("bad trailer line {t:?}")))?;
                        body.trailers.push((n.to_string(), v.trim().to_string()));
                    }
                    break;
                }
                wire.read_exact_into(size, keep.then_some(&mut body.data))?;
                body.len += size;
                if !wire.read_crlf_line()?.is_empty() {
                    return Err(invalid("chunk data not followed by CRLF"));
                }
            }
        }
    }
    Ok(body)
}

/// Request body framing as the fake backend sees it (the gateway must have normalised it).
pub fn request_framing(head: &Head) -> io::Result<Framing> {
    if head.has("transfer-encoding") {
        if head.has_token("transfer-encoding", "chunked") {
            return Ok(Framing::Chunked);
        }
        return Err(invalid("transfer-encoding without chunked"));
    }
    match head.get("content-length") {
        Some(v) => v
            .parse()
            .map(Framing::Length)
            .map_err(|_| invalid(format!("bad content-length {v:?}"))),
        None => Ok(Framing::Empty),
    }
}

/// Response body framing for a response to `method` (RFC 9112 §6.3 rules 1-7).
pub fn response_framing(method: &str, status: u16, head: &Head) -> io::Result<Framing> {
    if method.eq_ignore_ascii_case("HEAD")
        || (100..200).contains(&status)
        || status == 204
        || status == 304
    {
        return Ok(Framing::Empty);
    }
    if head.has_token("transfer-encoding", "chunked") {
        return Ok(Framing::Chunked);
    }
    match head.get("content-length") {
        Some(v) => v
            .parse()
            .map(Framing::Length)
            .map_err(|_| invalid(format!("bad content-length {v:?}"))),
        None => Ok(Framing::UntilClose),
    }
}

pub fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn memchr(b: u8, data: &[u8]) -> Option<usize> {
    data.iter().position(|&x| x == b)
}

pub fn invalid(msg: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.into())
}
