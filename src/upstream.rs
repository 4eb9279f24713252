//! Per-worker upstream connections: one keep-alive pool per upstream address, owned by the
//! worker's thread, so lending and returning a connection takes no lock.

use std::cell::RefCell;
use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::time::{Duration, Instant};

use monoio::net::TcpStream;

use crate::config::HttpUrl;
use crate::http::error::HttpError;

/// One upstream: where to connect and what to send as Host.
#[derive(Debug, Clone)]
pub struct Upstream {
    pub url: HttpUrl,
    pub addrs: Vec<SocketAddr>,
    /// The Host field value, built once.
    pub authority: Box<str>,
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
        Ok(Upstream {
            url: url.clone(),
            addrs,
            authority: url.authority().into_boxed_str(),
        })
    }
}

struct Idle {
    stream: TcpStream,
    since: Instant,
}

/// The worker's upstreams and their idle connections.
pub struct Pools {
    upstreams: Vec<Upstream>,
    idle: Vec<RefCell<Vec<Idle>>>,
    max_idle: usize,
    idle_timeout: Duration,
    connect_timeout: Duration,
}

impl Pools {
    pub fn new(
        upstreams: Vec<Upstream>,
        max_idle: usize,
        idle_timeout: Duration,
        connect_timeout: Duration,
    ) -> Pools {
        let idle = upstreams.iter().map(|_| RefCell::new(Vec::new())).collect();
        Pools {
            upstreams,
            idle,
            max_idle,
            idle_timeout,
            connect_timeout,
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
    pub fn take(&self, id: usize) -> Option<TcpStream> {
        let mut idle = self.idle[id].borrow_mut();
        let now = Instant::now();
        while let Some(c) = idle.pop() {
            if now.duration_since(c.since) < self.idle_timeout {
                return Some(c.stream);
            }
        }
        None
    }

    pub fn put(&self, id: usize, stream: TcpStream) {
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

    /// A fresh connection: 502 when refused or unreachable, 504 when the connect times out.
    pub async fn connect(&self, id: usize) -> Result<TcpStream, HttpError> {
        let mut last = HttpError::BadGateway("upstream unreachable");
        for addr in &self.upstreams[id].addrs {
            match monoio::time::timeout(self.connect_timeout, TcpStream::connect(*addr)).await {
                Ok(Ok(s)) => {
                    let _ = s.set_nodelay(true);
                    return Ok(s);
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
