//! Outgoing HTTP/1.1 calls from a worker (provider discovery, JWKS, token endpoint, logout
//! and listener calls): keep-alive per destination, timeouts, https through rustls with the
//! ring provider. The response side reuses the proxy's strict parsers.
//!
//! Not a general-purpose client: bodies are small (bounded by [`MAX_BODY`]) and read whole.

use std::cell::RefCell;
use std::collections::HashMap;
use std::io::Write as _;
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Arc;
use std::time::{Duration, Instant};

use monoio::buf::IoBufMut;
use monoio::io::{AsyncReadRent, AsyncWriteRentExt};
use monoio::net::TcpStream;
use monoio_rustls::TlsConnector;
use rustls::pki_types::{CertificateDer, ServerName};

use crate::config::HttpUrl;
use crate::http::body::{ChunkedDecoder, Output};
use crate::http::head::Framing;
use crate::http::response::{parse_response, ResponseHead};

const LOG: &str = "sessiongate::client";
/// Largest response body read (discovery documents, JWKS and token answers are far smaller).
pub const MAX_BODY: usize = 4 * 1024 * 1024;
const MAX_HEAD: usize = 64 * 1024;
/// Idle connections kept per destination.
const MAX_IDLE: usize = 8;
/// An idle connection older than this is not reused (servers close theirs after 5-60 s).
const IDLE_REUSE: Duration = Duration::from_secs(4);

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot resolve {0}")]
    Resolve(String),
    #[error("connect to {0} failed: {1}")]
    Connect(String, std::io::Error),
    #[error("TLS with {0} failed: {1}")]
    Tls(String, String),
    #[error("{0} timed out")]
    Timeout(String),
    #[error("I/O error talking to {0}: {1}")]
    Io(String, std::io::Error),
    #[error("bad response from {0}: {1}")]
    Protocol(String, &'static str),
}

impl ClientError {
    /// Worth retrying: the call may not have reached the server, or the server failed.
    pub fn is_transient(&self) -> bool {
        !matches!(self, ClientError::Resolve(_))
    }
}

/// A response read whole.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Client-side TLS settings: the system roots plus the certificates of the CA bundle
/// (`sessiongate.ca-bundle`, read and checked when the configuration was loaded).
pub fn tls_config(
    ca_bundle: Option<&[CertificateDer<'static>]>,
) -> Result<Arc<rustls::ClientConfig>, String> {
    let mut roots = rustls::RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    for cert in native.certs {
        let _ = roots.add(cert);
    }
    for cert in ca_bundle.unwrap_or_default() {
        roots
            .add(cert.clone())
            .map_err(|e| format!("sessiongate.ca-bundle: {e}"))?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(cfg))
}

enum Conn {
    Plain(TcpStream),
    Tls(Box<monoio_rustls::ClientTlsStream<TcpStream>>),
}

impl Conn {
    async fn write_all(&mut self, buf: Vec<u8>) -> (std::io::Result<usize>, Vec<u8>) {
        match self {
            Conn::Plain(s) => s.write_all(buf).await,
            Conn::Tls(s) => s.write_all(buf).await,
        }
    }

    async fn read_spare(&mut self, buf: Vec<u8>) -> (std::io::Result<usize>, Vec<u8>) {
        let (len, cap) = (buf.len(), buf.capacity());
        let slice = buf.slice_mut(len..cap);
        let (r, slice) = match self {
            Conn::Plain(s) => s.read(slice).await,
            Conn::Tls(s) => s.read(slice).await,
        };
        (r, slice.into_inner())
    }
}

type Key = (bool, String, u16);

/// One per worker (or per start-up runtime); not `Send`.
pub struct HttpClient {
    connector: TlsConnector,
    connect_timeout: Duration,
    timeout: Duration,
    idle: RefCell<HashMap<Key, Vec<(Conn, Instant)>>>,
    resolved: RefCell<HashMap<(String, u16), Vec<SocketAddr>>>,
}

impl HttpClient {
    pub fn new(
        tls: Arc<rustls::ClientConfig>,
        connect_timeout: Duration,
        timeout: Duration,
    ) -> Self {
        HttpClient {
            connector: TlsConnector::from(tls),
            connect_timeout,
            timeout,
            idle: RefCell::new(HashMap::new()),
            resolved: RefCell::new(HashMap::new()),
        }
    }

    /// Seeds the resolver cache, so a worker never blocks on DNS for known hosts.
    pub fn preresolve(&self, url: &HttpUrl) -> Result<(), ClientError> {
        self.addrs(url).map(|_| ())
    }

    fn addrs(&self, url: &HttpUrl) -> Result<Vec<SocketAddr>, ClientError> {
        let key = (url.host.clone(), url.port);
        if let Some(a) = self.resolved.borrow().get(&key) {
            return Ok(a.clone());
        }
        // A host first seen at run time (e.g. from a discovery document): resolved once.
        let addrs: Vec<SocketAddr> = (url.host.as_str(), url.port)
            .to_socket_addrs()
            .map_err(|_| ClientError::Resolve(url.host.clone()))?
            .collect();
        if addrs.is_empty() {
            return Err(ClientError::Resolve(url.host.clone()));
        }
        self.resolved.borrow_mut().insert(key, addrs.clone());
        Ok(addrs)
    }

    async fn connect(&self, url: &HttpUrl) -> Result<Conn, ClientError> {
        let mut last = ClientError::Resolve(url.host.clone());
        for addr in self.addrs(url)? {
            let tcp =
                match monoio::time::timeout(self.connect_timeout, TcpStream::connect(addr)).await {
                    Ok(Ok(s)) => s,
                    Ok(Err(e)) => {
                        last = ClientError::Connect(url.original.clone(), e);
                        continue;
                    }
                    Err(_) => {
                        last = ClientError::Timeout(format!("connect to {}", url.original));
                        continue;
                    }
                };
            let _ = tcp.set_nodelay(true);
            if !url.tls {
                return Ok(Conn::Plain(tcp));
            }
            let name = ServerName::try_from(url.host.clone())
                .map_err(|e| ClientError::Tls(url.original.clone(), e.to_string()))?;
            return match monoio::time::timeout(
                self.connect_timeout,
                self.connector.connect(name, tcp),
            )
            .await
            {
                Ok(Ok(s)) => Ok(Conn::Tls(Box::new(s))),
                Ok(Err(e)) => Err(ClientError::Tls(url.original.clone(), e.to_string())),
                Err(_) => Err(ClientError::Timeout(format!(
                    "TLS handshake with {}",
                    url.original
                ))),
            };
        }
        Err(last)
    }

    fn take_idle(&self, key: &Key) -> Option<Conn> {
        let mut idle = self.idle.borrow_mut();
        let list = idle.get_mut(key)?;
        while let Some((c, since)) = list.pop() {
            if since.elapsed() < IDLE_REUSE {
                return Some(c);
            }
        }
        None
    }

    fn put_idle(&self, key: Key, c: Conn) {
        let mut idle = self.idle.borrow_mut();
        let list = idle.entry(key).or_default();
        if list.len() >= MAX_IDLE {
            list.remove(0);
        }
        list.push((c, Instant::now()));
    }

    /// Sends one request and reads the whole response. A non-2xx status is not an error;
    /// the caller decides what it means.
    pub async fn send(
        &self,
        method: &str,
        url: &HttpUrl,
        headers: &[(&str, &str)],
        body: Option<(&str, &[u8])>,
    ) -> Result<Response, ClientError> {
        let mut req = Vec::with_capacity(256 + body.map_or(0, |b| b.1.len()));
        let _ = write!(
            req,
            "{method} {} HTTP/1.1\r\nHost: {}\r\n",
            url.path_and_query,
            url.authority()
        );
        for (n, v) in headers {
            let _ = write!(req, "{n}: {v}\r\n");
        }
        match body {
            Some((ctype, b)) => {
                let _ = write!(
                    req,
                    "Content-Type: {ctype}\r\nContent-Length: {}\r\n",
                    b.len()
                );
            }
            None if method == "POST" || method == "PUT" => {
                req.extend_from_slice(b"Content-Length: 0\r\n")
            }
            None => {}
        }
        req.extend_from_slice(b"User-Agent: sessiongate\r\nAccept: */*\r\n\r\n");
        if let Some((_, b)) = body {
            req.extend_from_slice(b);
        }
        let key: Key = (url.tls, url.host.clone(), url.port);
        let deadline = Instant::now() + self.timeout;
        // A pooled connection the server has closed fails before any byte of an answer; the
        // request never reached the server then, so one retry on a fresh connection is safe.
        if let Some(conn) = self.take_idle(&key) {
            match self
                .exchange(conn, &req, url, method == "HEAD", deadline)
                .await
            {
                Ok((resp, conn)) => {
                    if let Some(c) = conn {
                        self.put_idle(key, c);
                    }
                    return Ok(resp);
                }
                Err(Attempt::Untouched) => {
                    tracing::trace!(target: LOG, url = %url.original, "pooled connection was closed; reconnecting");
                }
                Err(Attempt::Failed(e)) => return Err(e),
            }
        }
        let conn = self.connect(url).await?;
        match self
            .exchange(conn, &req, url, method == "HEAD", deadline)
            .await
        {
            Ok((resp, conn)) => {
                if let Some(c) = conn {
                    self.put_idle(key, c);
                }
                Ok(resp)
            }
            Err(Attempt::Untouched) => Err(ClientError::Protocol(
                url.original.clone(),
                "connection closed before a response",
            )),
            Err(Attempt::Failed(e)) => Err(e),
        }
    }

    async fn exchange(
        &self,
        mut conn: Conn,
        req: &[u8],
        url: &HttpUrl,
        is_head: bool,
        deadline: Instant,
    ) -> Result<(Response, Option<Conn>), Attempt> {
        let remaining = || deadline.saturating_duration_since(Instant::now());
        let timeout = || Attempt::Failed(ClientError::Timeout(url.original.clone()));
        let (res, _) = monoio::time::timeout(remaining(), conn.write_all(req.to_vec()))
            .await
            .map_err(|_| timeout())?;
        if res.is_err() {
            return Err(Attempt::Untouched);
        }
        let mut buf = Vec::with_capacity(16 * 1024);
        let mut head = ResponseHead::default();
        loop {
            let (res, b) = monoio::time::timeout(remaining(), conn.read_spare(buf))
                .await
                .map_err(|_| timeout())?;
            buf = b;
            match res {
                Ok(0) | Err(_) if buf.is_empty() => return Err(Attempt::Untouched),
                Ok(0) => return Err(proto(url, "connection closed in response head")),
                Err(e) => return Err(Attempt::Failed(ClientError::Io(url.original.clone(), e))),
                Ok(_) => {}
            }
            match parse_response(&buf, MAX_HEAD, is_head, &mut head) {
                Ok(Some(())) if head.is_interim() => {
                    buf.drain(..head.head_len);
                }
                Ok(Some(())) => break,
                Ok(None) => {
                    if buf.capacity() - buf.len() < 4096 {
                        buf.reserve(16 * 1024);
                    }
                }
                Err(_) => return Err(proto(url, "malformed response head")),
            }
        }
        let headers = head
            .fields
            .iter()
            .map(|f| {
                (
                    String::from_utf8_lossy(f.name(&buf)).into_owned(),
                    String::from_utf8_lossy(f.value(&buf)).into_owned(),
                )
            })
            .collect();
        let status = head.code;
        let framing = head.framing();
        let reusable = head.reusable;
        buf.drain(..head.head_len);
        let mut body = Vec::new();
        let mut decoder = ChunkedDecoder::new(Output::Raw, MAX_BODY as u64, MAX_HEAD);
        loop {
            let done = match framing {
                Framing::Length(n) => {
                    body.extend_from_slice(&buf);
                    buf.clear();
                    if body.len() as u64 > n {
                        return Err(proto(url, "more body than announced"));
                    }
                    body.len() as u64 == n
                }
                Framing::Chunked => {
                    let p = decoder
                        .feed(&buf, &mut body)
                        .map_err(|_| proto(url, "malformed chunked body"))?;
                    buf.drain(..p.consumed);
                    p.done
                }
                Framing::Close => {
                    body.extend_from_slice(&buf);
                    buf.clear();
                    false
                }
            };
            if body.len() > MAX_BODY {
                return Err(proto(url, "response body too large"));
            }
            if done {
                break;
            }
            if buf.capacity() < 16 * 1024 {
                buf.reserve(16 * 1024);
            }
            let (res, b) = monoio::time::timeout(remaining(), conn.read_spare(buf))
                .await
                .map_err(|_| timeout())?;
            buf = b;
            match res {
                Ok(0) if framing == Framing::Close => break,
                Ok(0) => return Err(proto(url, "connection closed in response body")),
                Err(e) => return Err(Attempt::Failed(ClientError::Io(url.original.clone(), e))),
                Ok(_) => {}
            }
        }
        let keep = reusable && buf.is_empty() && framing != Framing::Close;
        Ok((
            Response {
                status,
                headers,
                body,
            },
            keep.then_some(conn),
        ))
    }
}

enum Attempt {
    /// Nothing of a response arrived: the server may never have seen the request.
    Untouched,
    Failed(ClientError),
}

fn proto(url: &HttpUrl, why: &'static str) -> Attempt {
    Attempt::Failed(ClientError::Protocol(url.original.clone(), why))
}

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
