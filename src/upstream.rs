//! Per-worker upstream connections: one keep-alive pool per upstream address, owned by the
//! worker's thread, so lending and returning a connection takes no lock.
//!
//! An `https://` route's connections speak TLS (rustls, verified against the system roots
//! plus `sessiongate.ca-bundle`, the same client settings as the gateway's own outgoing
//! calls); [`UpstreamStream`] hides which one the proxy loop is talking to.

use std::cell::RefCell;
use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Arc;
use std::time::{Duration, Instant};

use monoio::buf::{IoBuf, IoBufMut, IoVecBuf, IoVecBufMut};
use monoio::io::{AsyncReadRent, AsyncWriteRent};
use monoio::net::TcpStream;
use monoio::BufResult;
use monoio_rustls::{ClientTlsStream, TlsConnector};
use rustls::pki_types::ServerName;

use crate::config::HttpUrl;
use crate::http::error::HttpError;

/// One upstream: where to connect and what to send as Host.
#[derive(Debug, Clone)]
pub struct Upstream {
    pub url: HttpUrl,
    pub addrs: Vec<SocketAddr>,
    /// The Host field value, built once.
    pub authority: Box<str>,
    /// The name the upstream's certificate must carry (`https://` only).
    pub server_name: Option<ServerName<'static>>,
}

impl Upstream {
    /// Resolves the URL's host once, at start (DNS on a worker would block its loop).
    pub fn resolve(url: &HttpUrl) -> io::Result<Upstream> {
        let addrs: Vec<SocketAddr> = (url.host.as_str(), url.port).to_socket_addrs()?.collect();
        if addrs.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("{} resolves to no address", url.host),
            ));
        }
        let server_name = if url.tls {
            Some(ServerName::try_from(url.host.clone()).map_err(|e| {
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("{} is not a TLS server name: {e}", url.host),
                )
            })?)
        } else {
            None
        };
        Ok(Upstream {
            url: url.clone(),
            addrs,
            authority: url.authority().into_boxed_str(),
            server_name,
        })
    }
}

/// A connection to an upstream, plain or TLS.
pub enum UpstreamStream {
    Plain(TcpStream),
    /// Boxed: the TLS state is large and would make every pooled plain connection as big.
    Tls(Box<ClientTlsStream<TcpStream>>),
}

impl AsyncReadRent for UpstreamStream {
    async fn read<T: IoBufMut>(&mut self, buf: T) -> BufResult<usize, T> {
        match self {
            UpstreamStream::Plain(s) => s.read(buf).await,
            UpstreamStream::Tls(s) => s.read(buf).await,
        }
    }

    async fn readv<T: IoVecBufMut>(&mut self, buf: T) -> BufResult<usize, T> {
        match self {
            UpstreamStream::Plain(s) => s.readv(buf).await,
            UpstreamStream::Tls(s) => s.readv(buf).await,
        }
    }
}

impl AsyncWriteRent for UpstreamStream {
    async fn write<T: IoBuf>(&mut self, buf: T) -> BufResult<usize, T> {
        match self {
            UpstreamStream::Plain(s) => s.write(buf).await,
            UpstreamStream::Tls(s) => s.write(buf).await,
        }
    }

    async fn writev<T: IoVecBuf>(&mut self, buf: T) -> BufResult<usize, T> {
        match self {
            UpstreamStream::Plain(s) => s.writev(buf).await,
            UpstreamStream::Tls(s) => s.writev(buf).await,
        }
    }

    async fn flush(&mut self) -> io::Result<()> {
        match self {
            UpstreamStream::Plain(s) => s.flush().await,
            UpstreamStream::Tls(s) => s.flush().await,
        }
    }

    async fn shutdown(&mut self) -> io::Result<()> {
        match self {
            UpstreamStream::Plain(s) => s.shutdown().await,
            UpstreamStream::Tls(s) => s.shutdown().await,
        }
    }
}

struct Idle {
    stream: UpstreamStream,
    since: Instant,
}

/// The worker's upstreams and their idle connections.
pub struct Pools {
    upstreams: Vec<Upstream>,
    idle: Vec<RefCell<Vec<Idle>>>,
    max_idle: usize,
    idle_timeout: Duration,
    connect_timeout: Duration,
    tls: TlsConnector,
}

impl Pools {
    /// `tls`: client settings for `https://` upstreams.
    pub fn new(
        upstreams: Vec<Upstream>,
        max_idle: usize,
        idle_timeout: Duration,
        connect_timeout: Duration,
        tls: Arc<rustls::ClientConfig>,
    ) -> Pools {
        let idle = upstreams.iter().map(|_| RefCell::new(Vec::new())).collect();
        Pools {
            upstreams,
            idle,
            max_idle,
            idle_timeout,
            connect_timeout,
            tls: TlsConnector::from(tls),
        }
    }

    pub fn upstream(&self, id: usize) -> &Upstream {
        &self.upstreams[id]
    }

    /// Index of the upstream serving `url` (same scheme, host and port).
    pub fn index_of(&self, url: &HttpUrl) -> Option<usize> {
        self.upstreams
            .iter()
            .position(|u| u.url.port == url.port && u.url.tls == url.tls && u.url.host == url.host)
    }

    /// The most recently returned idle connection that has not outlived the idle timeout.
    pub fn take(&self, id: usize) -> Option<UpstreamStream> {
        let mut idle = self.idle[id].borrow_mut();
        let now = Instant::now();
        while let Some(c) = idle.pop() {
            if now.duration_since(c.since) < self.idle_timeout {
                return Some(c.stream);
            }
        }
        None
    }

    pub fn put(&self, id: usize, stream: UpstreamStream) {
        let mut idle = self.idle[id].borrow_mut();
        if idle.len() >= self.max_idle {
            // Drop the oldest: it is the likeliest to be closed by the upstream soon.
            idle.remove(0);
        }
        idle.push(Idle {
            stream,
            since: Instant::now(),
        });
    }

    /// A fresh connection: 502 when refused, unreachable or (https) its certificate is not
    /// accepted, 504 when the connect or the TLS handshake times out.
    pub async fn connect(&self, id: usize) -> Result<UpstreamStream, HttpError> {
        let up = &self.upstreams[id];
        let mut last = HttpError::BadGateway("upstream unreachable");
        for addr in &up.addrs {
            match monoio::time::timeout(self.connect_timeout, TcpStream::connect(*addr)).await {
                Ok(Ok(s)) => {
                    let _ = s.set_nodelay(true);
                    let Some(name) = &up.server_name else {
                        return Ok(UpstreamStream::Plain(s));
                    };
                    return match monoio::time::timeout(
                        self.connect_timeout,
                        self.tls.connect(name.clone(), s),
                    )
                    .await
                    {
                        Ok(Ok(s)) => Ok(UpstreamStream::Tls(Box::new(s))),
                        Ok(Err(e)) => {
                            // A certificate the gateway does not accept is an operator's
                            // problem (name, CA bundle), worth more than a debug line.
                            tracing::warn!(target: "sessiongate::proxy", upstream = %up.url.original, error = %tls_error(&e), "upstream TLS handshake failed");
                            Err(HttpError::BadGateway("upstream TLS handshake failed"))
                        }
                        Err(_) => {
                            tracing::debug!(target: "sessiongate::proxy", upstream = %addr, "TLS handshake timed out");
                            Err(HttpError::GatewayTimeout)
                        }
                    };
                }
                Ok(Err(e)) => {
                    tracing::debug!(target: "sessiongate::proxy", upstream = %addr, error = %e, "connect failed");
                    last = HttpError::BadGateway("upstream unreachable");
                }
                Err(_) => {
                    tracing::debug!(target: "sessiongate::proxy", upstream = %addr, "connect timed out");
                    last = HttpError::GatewayTimeout;
                }
            }
        }
        Err(last)
    }
}

/// monoio-rustls's error says only "rustls error"; the cause is inside.
fn tls_error(e: &monoio_rustls::TlsError) -> String {
    match e {
        monoio_rustls::TlsError::Rustls(e) => e.to_string(),
        monoio_rustls::TlsError::Io(e) => match e.get_ref() {
            Some(inner) => inner.to_string(),
            None => e.to_string(),
        },
    }
}
