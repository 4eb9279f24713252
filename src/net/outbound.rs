//! Outgoing connections, plain or TLS, and their keep-alive pools: the one layer under the
//! upstream pools of proxied requests ([`crate::upstream`]) and the gateway's own calls
//! ([`crate::client`]).
//!
//! A pooled connection may have been closed by the server while it sat idle; the first
//! write or read then fails before any byte of an answer. Both users retry such a request
//! once on a fresh connection ([`lease`] says whether a connection was reused), and only
//! when the request can be replayed.

use std::cell::RefCell;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use monoio::buf::{IoBuf, IoBufMut, IoVecBuf, IoVecBufMut};
use monoio::io::{AsyncReadRent, AsyncWriteRent};
use monoio::net::TcpStream;
use monoio::BufResult;
use monoio_rustls::{ClientTlsStream, TlsConnector};
use rustls::pki_types::ServerName;

/// A connection the gateway opened, plain or TLS.
pub enum Stream {
    Plain(TcpStream),
    /// Boxed: the TLS state is large and would make every pooled plain connection as big.
    Tls(Box<ClientTlsStream<TcpStream>>),
}

impl AsyncReadRent for Stream {
    async fn read<T: IoBufMut>(&mut self, buf: T) -> BufResult<usize, T> {
        match self {
            Stream::Plain(s) => s.read(buf).await,
            Stream::Tls(s) => s.read(buf).await,
        }
    }

    async fn readv<T: IoVecBufMut>(&mut self, buf: T) -> BufResult<usize, T> {
        match self {
            Stream::Plain(s) => s.readv(buf).await,
            Stream::Tls(s) => s.readv(buf).await,
        }
    }
}

impl AsyncWriteRent for Stream {
    async fn write<T: IoBuf>(&mut self, buf: T) -> BufResult<usize, T> {
        match self {
            Stream::Plain(s) => s.write(buf).await,
            Stream::Tls(s) => s.write(buf).await,
        }
    }

    async fn writev<T: IoVecBuf>(&mut self, buf: T) -> BufResult<usize, T> {
        match self {
            Stream::Plain(s) => s.writev(buf).await,
            Stream::Tls(s) => s.writev(buf).await,
        }
    }

    async fn flush(&mut self) -> io::Result<()> {
        match self {
            Stream::Plain(s) => s.flush().await,
            Stream::Tls(s) => s.flush().await,
        }
    }

    async fn shutdown(&mut self) -> io::Result<()> {
        match self {
            Stream::Plain(s) => s.shutdown().await,
            Stream::Tls(s) => s.shutdown().await,
        }
    }
}

/// Why no connection could be opened.
#[derive(Debug)]
pub enum ConnectError {
    /// Every address refused or was unreachable (the last error).
    Refused(io::Error),
    /// The TCP connect did not complete in time.
    Timeout,
    /// The TLS handshake failed: the cause (certificate name, unknown issuer ...).
    Tls(String),
    /// The TLS handshake did not complete in time.
    TlsTimeout,
}

/// Opens connections: TCP with a timeout over a host's addresses, then TLS when a server
/// name is given.
pub struct Connector {
    tls: TlsConnector,
    timeout: Duration,
}

impl Connector {
    pub fn new(tls: Arc<rustls::ClientConfig>, timeout: Duration) -> Connector {
        Connector {
            tls: TlsConnector::from(tls),
            timeout,
        }
    }

    /// Tries the addresses in order; a TLS failure is final (the next address would present
    /// the same certificate).
    pub async fn connect(
        &self,
        addrs: &[SocketAddr],
        tls_name: Option<&ServerName<'static>>,
    ) -> Result<Stream, ConnectError> {
        let mut last = ConnectError::Refused(io::ErrorKind::NotFound.into());
        for addr in addrs {
            let tcp = match monoio::time::timeout(self.timeout, TcpStream::connect(*addr)).await {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => {
                    tracing::debug!(target: "sessiongate::net", %addr, error = %e, "connect failed");
                    last = ConnectError::Refused(e);
                    continue;
                }
                Err(_) => {
                    tracing::debug!(target: "sessiongate::net", %addr, "connect timed out");
                    last = ConnectError::Timeout;
                    continue;
                }
            };
            let _ = tcp.set_nodelay(true);
            let Some(name) = tls_name else {
                return Ok(Stream::Plain(tcp));
            };
            return match monoio::time::timeout(self.timeout, self.tls.connect(name.clone(), tcp))
                .await
            {
                Ok(Ok(s)) => Ok(Stream::Tls(Box::new(s))),
                Ok(Err(e)) => Err(ConnectError::Tls(tls_error(&e))),
                Err(_) => Err(ConnectError::TlsTimeout),
            };
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

/// The idle connections to one destination, newest last.
#[derive(Default)]
pub struct IdleConns {
    list: RefCell<Vec<(Stream, Instant)>>,
}

impl IdleConns {
    /// The most recently returned connection that has been idle less than `max_idle`.
    pub fn take(&self, max_idle: Duration) -> Option<Stream> {
        let mut list = self.list.borrow_mut();
        let now = Instant::now();
        while let Some((s, since)) = list.pop() {
            if now.duration_since(since) < max_idle {
                return Some(s);
            }
        }
        None
    }

    /// Keeps `s` for reuse; beyond `max` the oldest goes (the likeliest to be closed by the
    /// server soon).
    pub fn put(&self, s: Stream, max: usize) {
        let mut list = self.list.borrow_mut();
        if list.len() >= max {
            list.remove(0);
        }
        list.push((s, Instant::now()));
    }
}

/// A connection for one attempt of a request.
pub struct Lease {
    pub stream: Stream,
    /// It came from the pool: a failure before any answer byte means it was stale, and the
    /// request may be retried once on a fresh connection.
    pub reused: bool,
}

/// The first attempt takes a pooled connection when there is one; a retry (or an empty
/// pool) opens a fresh one with `connect`.
pub async fn lease<E, F>(
    idle: &IdleConns,
    max_idle: Duration,
    first_attempt: bool,
    connect: F,
) -> Result<Lease, E>
where
    F: std::future::Future<Output = Result<Stream, E>>,
{
    if first_attempt {
        if let Some(stream) = idle.take(max_idle) {
            return Ok(Lease {
                stream,
                reused: true,
            });
        }
    }
    Ok(Lease {
        stream: connect.await?,
        reused: false,
    })
}
