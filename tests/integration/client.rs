//! A raw HTTP/1.1 client: writes exactly the bytes a test gives it and parses what comes back
//! (interim 1xx responses, then the final one with its body by Content-Length, chunked or
//! close). Every socket has read and write timeouts, so a test fails instead of hanging.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use crate::backend::IO_TIMEOUT;
use crate::wire::{self, Head, Wire};

/// The Host header the helpers send.
pub const HOST: &str = "sessiongate.test";

/// A final response plus any interim responses that preceded it.
#[derive(Clone, Debug)]
pub struct Response {
    pub status: u16,
    pub head: Head,
    pub body: Vec<u8>,
    pub body_len: u64,
    pub chunked: bool,
    pub trailers: Vec<(String, String)>,
    /// 1xx heads received before the final response (101 is final).
    pub interim: Vec<Head>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.head.get(name)
    }

    pub fn has_header(&self, name: &str) -> bool {
        self.head.has(name)
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The response carries `Connection: close`.
    pub fn says_close(&self) -> bool {
        self.head.has_token("connection", "close")
    }

    pub fn trailer(&self, name: &str) -> Option<&str> {
        self.trailers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

pub struct Client {
    out: TcpStream,
    wire: Wire<TcpStream>,
}

impl Client {
    pub fn connect(addr: SocketAddr) -> Client {
        let stream = TcpStream::connect_timeout(&addr, IO_TIMEOUT)
            .unwrap_or_else(|e| panic!("connect to gateway {addr}: {e}"));
        stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
        stream.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
        stream.set_nodelay(true).unwrap();
        let out = stream.try_clone().unwrap();
        Client {
            out,
            wire: Wire::new(stream),
        }
    }

    /// Writes all bytes in one call; panics on failure.
    pub fn send(&mut self, bytes: &[u8]) {
        self.out.write_all(bytes).expect("write to gateway");
    }

    /// Writes all bytes, tolerating a gateway that already closed its side (it may refuse
    /// before reading everything); the response is what the test checks.
    pub fn send_lenient(&mut self, bytes: &[u8]) {
        if let Err(e) = self.out.write_all(bytes) {
            eprintln!("write to gateway failed (gateway closed early?): {e}");
        }
    }

    /// A second handle on the socket, e.g. for a writer thread.
    pub fn writer(&self) -> TcpStream {
        self.out.try_clone().unwrap()
    }

    /// `GET path` with Host, keeping the connection open.
    pub fn get(&mut self, path: &str) -> Response {
        self.request(format!("GET {path} HTTP/1.1\r\nHost: {HOST}\r\n\r\n").as_bytes())
    }

    /// Sends a raw request and reads its response (HEAD-aware from the method in `raw`).
    pub fn request(&mut self, raw: &[u8]) -> Response {
        self.send(raw);
        let method =
            String::from_utf8_lossy(raw.split(|&b| b == b' ').next().unwrap_or(b"")).into_owned();
        self.read_response_to(&method)
    }

    /// Reads the response to a non-HEAD request.
    pub fn read_response(&mut self) -> Response {
        self.read_response_to("GET")
    }

    pub fn read_response_to(&mut self, method: &str) -> Response {
        self.try_read_response(method, true)
            .unwrap_or_else(|e| panic!("reading response from gateway: {e}"))
    }

    /// Reads a response but only counts the body bytes.
    pub fn read_response_counting(&mut self) -> Response {
        self.try_read_response("GET", false)
            .unwrap_or_else(|e| panic!("reading response from gateway: {e}"))
    }

    pub fn try_read_response(&mut self, method: &str, keep: bool) -> io::Result<Response> {
        read_response(&mut self.wire, method, keep)
    }

    /// Reads exactly one head (interim or final) without a body.
    pub fn read_head(&mut self) -> io::Result<Head> {
        read_head(&mut self.wire)
    }

    /// Reads exactly `n` raw bytes (after an upgrade).
    pub fn read_exact(&mut self, n: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(n);
        self.wire
            .read_exact_into(n as u64, Some(&mut out))
            .expect("read raw bytes from gateway");
        out
    }

    /// Asserts the gateway closes the connection within `within`, sending nothing more.
    pub fn expect_closed(&mut self, within: Duration) {
        match self.closed_within(within) {
            Ok(()) => {}
            Err(why) => panic!("{why}"),
        }
    }

    /// Waits for end of stream (or reset); an error says what happened instead.
    pub fn closed_within(&mut self, within: Duration) -> Result<(), String> {
        let deadline = Instant::now() + within;
        let mut buf = [0u8; 4096];
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(format!("connection still open after {within:?}"));
            }
            self.wire.get_ref().set_read_timeout(Some(left)).unwrap();
            let r = self.wire.read_some(&mut buf);
            self.wire
                .get_ref()
                .set_read_timeout(Some(IO_TIMEOUT))
                .unwrap();
            match r {
                Ok(0) => return Ok(()),
                Ok(n) => {
                    return Err(format!(
                        "expected the connection to close, got more bytes: {:?}",
                        String::from_utf8_lossy(&buf[..n])
                    ))
                }
                Err(e) if e.kind() == io::ErrorKind::ConnectionReset => return Ok(()),
                Err(e)
                    if e.kind() == io::ErrorKind::WouldBlock
                        || e.kind() == io::ErrorKind::TimedOut =>
                {
                    continue
                }
                Err(e) => return Err(format!("read error while waiting for close: {e}")),
            }
        }
    }
}

/// Reads one response (interim 1xx heads, then the final one and its body) from any stream;
/// `keep`: keep the body bytes, else only count them.
pub fn read_response<R: Read>(
    wire: &mut Wire<R>,
    method: &str,
    keep: bool,
) -> io::Result<Response> {
    let mut interim = Vec::new();
    loop {
        let head = read_head(wire)?;
        let status = status_of(&head)?;
        if (100..200).contains(&status) && status != 101 {
            interim.push(head);
            continue;
        }
        let framing = wire::response_framing(method, status, &head)?;
        let body = wire::read_body(wire, framing, keep)?;
        return Ok(Response {
            status,
            head,
            body: body.data,
            body_len: body.len,
            chunked: body.chunked,
            trailers: body.trailers,
            interim,
        });
    }
}

fn read_head<R: Read>(wire: &mut Wire<R>) -> io::Result<Head> {
    match wire.read_head()? {
        Some(raw) => Head::parse(raw),
        None => Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "gateway closed the connection without a response",
        )),
    }
}

fn status_of(head: &Head) -> io::Result<u16> {
    let (version, code, _) = head.start_fields();
    if !version.starts_with("HTTP/1.") {
        return Err(wire::invalid(format!("bad status line {:?}", head.start)));
    }
    code.parse()
        .map_err(|_| wire::invalid(format!("bad status line {:?}", head.start)))
}

/// A request with a Content-Length body.
pub fn post(path: &str, body: &[u8]) -> Vec<u8> {
    let mut r = format!(
        "POST {path} HTTP/1.1\r\nHost: {HOST}\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    r.extend_from_slice(body);
    r
}

/// A request with a chunked body made of these chunks, plus optional trailers.
pub fn post_chunked(path: &str, chunks: &[&[u8]], trailers: &[(&str, &str)]) -> Vec<u8> {
    let mut r =
        format!("POST {path} HTTP/1.1\r\nHost: {HOST}\r\nTransfer-Encoding: chunked\r\n\r\n")
            .into_bytes();
    for c in chunks {
        r.extend_from_slice(format!("{:x}\r\n", c.len()).as_bytes());
        r.extend_from_slice(c);
        r.extend_from_slice(b"\r\n");
    }
    r.extend_from_slice(b"0\r\n");
    for (n, v) in trailers {
        r.extend_from_slice(format!("{n}: {v}\r\n").as_bytes());
    }
    r.extend_from_slice(b"\r\n");
    r
}
