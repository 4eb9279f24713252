//! Outgoing HTTP/1.1 calls from a worker (provider discovery, JWKS, token endpoint, logout
//! and listener calls): keep-alive per destination, timeouts, https through rustls with the
//! ring provider. The response side reuses the proxy's strict parsers.
//!
//! Not a general-purpose client: bodies are small (bounded by [`MAX_BODY`]) and read whole.

use std::cell::RefCell;
use std::collections::HashMap;
use std::io::Write as _;
use std::net::{SocketAddr, ToSocketAddrs};
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use monoio::io::AsyncWriteRentExt;
use rustls::pki_types::{CertificateDer, ServerName};

use crate::config::HttpUrl;
use crate::http::body::{ChunkedDecoder, Output};
use crate::http::head::Framing;
use crate::http::response::{parse_response, ResponseHead};
use crate::net::outbound::{self, ConnectError, Connector, IdleConns, Stream};

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

type Key = (bool, String, u16);

/// One per worker (or per start-up runtime); not `Send`.
pub struct HttpClient {
    connector: Connector,
    timeout: Duration,
    idle: RefCell<HashMap<Key, Rc<IdleConns>>>,
    resolved: RefCell<HashMap<(String, u16), Vec<SocketAddr>>>,
}

impl HttpClient {
    pub fn new(
        tls: Arc<rustls::ClientConfig>,
        connect_timeout: Duration,
        timeout: Duration,
    ) -> Self {
        HttpClient {
            connector: Connector::new(tls, connect_timeout),
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

    async fn connect(&self, url: &HttpUrl) -> Result<Stream, ClientError> {
        let addrs = self.addrs(url)?;
        let name = match url.tls {
            true => Some(
                ServerName::try_from(url.host.clone())
                    .map_err(|e| ClientError::Tls(url.original.clone(), e.to_string()))?,
            ),
            false => None,
        };
        self.connector
            .connect(&addrs, name.as_ref())
            .await
            .map_err(|e| match e {
                ConnectError::Refused(e) => ClientError::Connect(url.original.clone(), e),
                ConnectError::Timeout => {
                    ClientError::Timeout(format!("connect to {}", url.original))
                }
                ConnectError::Tls(why) => ClientError::Tls(url.original.clone(), why),
                ConnectError::TlsTimeout => {
                    ClientError::Timeout(format!("TLS handshake with {}", url.original))
                }
            })
    }

    fn idle(&self, key: &Key) -> Rc<IdleConns> {
        self.idle
            .borrow_mut()
            .entry(key.clone())
            .or_default()
            .clone()
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
        let idle = self.idle(&(url.tls, url.host.clone(), url.port));
        let deadline = Instant::now() + self.timeout;
        // A pooled connection the server has closed fails before any byte of an answer; the
        // request never reached the server then, so one retry on a fresh connection is safe.
        for attempt in 0..2 {
            let lease = outbound::lease(&idle, IDLE_REUSE, attempt == 0, self.connect(url)).await?;
            match self
                .exchange(lease.stream, &req, url, method == "HEAD", deadline)
                .await
            {
                Ok((resp, conn)) => {
                    if let Some(c) = conn {
                        idle.put(c, MAX_IDLE);
                    }
                    return Ok(resp);
                }
                Err(Attempt::Untouched) if lease.reused => {
                    tracing::trace!(target: LOG, url = %url.original, "pooled connection was closed; reconnecting");
                }
                Err(Attempt::Untouched) => break,
                Err(Attempt::Failed(e)) => return Err(e),
            }
        }
        Err(ClientError::Protocol(
            url.original.clone(),
            "connection closed before a response",
        ))
    }

    async fn exchange(
        &self,
        mut conn: Stream,
        req: &[u8],
        url: &HttpUrl,
        is_head: bool,
        deadline: Instant,
    ) -> Result<(Response, Option<Stream>), Attempt> {
        let mut io = Io {
            url,
            deadline,
            buf: Vec::with_capacity(16 * 1024),
        };
        let written = monoio::time::timeout(io.remaining(), conn.write_all(req.to_vec())).await;
        match written {
            Err(_) => return Err(io.timeout()),
            Ok((Err(_), _)) => return Err(Attempt::Untouched),
            Ok((Ok(_), _)) => {}
        }
        let mut head = ResponseHead::default();
        loop {
            match io.read(&mut conn).await? {
                0 if io.buf.is_empty() => return Err(Attempt::Untouched),
                0 => return Err(proto(url, "connection closed in response head")),
                _ => {}
            }
            match parse_response(&io.buf, MAX_HEAD, is_head, &mut head) {
                Ok(Some(())) if head.is_interim() => {
                    io.buf.drain(..head.head_len);
                }
                Ok(Some(())) => break,
                Ok(None) => {}
                Err(_) => return Err(proto(url, "malformed response head")),
            }
        }
        let headers = head
            .fields
            .iter()
            .map(|f| {
                (
                    String::from_utf8_lossy(f.name(&io.buf)).into_owned(),
                    String::from_utf8_lossy(f.value(&io.buf)).into_owned(),
                )
            })
            .collect();
        let framing = head.framing();
        io.buf.drain(..head.head_len);
        let body = read_body(&mut io, &mut conn, framing).await?;
        let keep = head.reusable && io.buf.is_empty() && framing != Framing::Close;
        let resp = Response {
            status: head.code,
            headers,
            body,
        };
        Ok((resp, keep.then_some(conn)))
    }
}

/// A call's reads: the buffer, and the deadline of the whole call.
struct Io<'a> {
    url: &'a HttpUrl,
    deadline: Instant,
    buf: Vec<u8>,
}

impl Io<'_> {
    fn remaining(&self) -> Duration {
        self.deadline.saturating_duration_since(Instant::now())
    }

    fn timeout(&self) -> Attempt {
        Attempt::Failed(ClientError::Timeout(self.url.original.clone()))
    }

    /// Reads more into `buf` (growing it when nearly full); the count read, 0 at EOF.
    async fn read(&mut self, conn: &mut Stream) -> Result<usize, Attempt> {
        crate::net::reserve_read(&mut self.buf, 16 * 1024);
        let buf = std::mem::take(&mut self.buf);
        let (res, buf) = crate::net::read_spare_within(conn, buf, self.remaining())
            .await
            .ok_or_else(|| self.timeout())?;
        self.buf = buf;
        match res {
            Ok(n) => Ok(n),
            // Nothing of an answer yet: the server may never have seen the request.
            Err(_) if self.buf.is_empty() => Ok(0),
            Err(e) => Err(Attempt::Failed(ClientError::Io(
                self.url.original.clone(),
                e,
            ))),
        }
    }
}

/// Reads a response body whole (at most [`MAX_BODY`]) after its head.
async fn read_body(
    io: &mut Io<'_>,
    conn: &mut Stream,
    framing: Framing,
) -> Result<Vec<u8>, Attempt> {
    let url = io.url;
    let mut body = Vec::new();
    let mut decoder = ChunkedDecoder::new(Output::Raw, MAX_BODY as u64, MAX_HEAD);
    loop {
        let done = match framing {
            Framing::Length(n) => {
                body.extend_from_slice(&io.buf);
                io.buf.clear();
                if body.len() as u64 > n {
                    return Err(proto(url, "more body than announced"));
                }
                body.len() as u64 == n
            }
            Framing::Chunked => {
                let p = decoder
                    .feed(&io.buf, &mut body)
                    .map_err(|_| proto(url, "malformed chunked body"))?;
                io.buf.drain(..p.consumed);
                p.done
            }
            Framing::Close => {
                body.extend_from_slice(&io.buf);
                io.buf.clear();
                false
            }
        };
        if body.len() > MAX_BODY {
            return Err(proto(url, "response body too large"));
        }
        if done {
            return Ok(body);
        }
        match io.read(conn).await? {
            0 if framing == Framing::Close => return Ok(body),
            0 => return Err(proto(url, "connection closed in response body")),
            _ => {}
        }
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
