//! Per-worker upstream connections: one keep-alive pool per upstream address, owned by the
//! worker's thread, so lending and returning a connection takes no lock.
//!
//! An `https://` route's connections speak TLS (rustls, verified against the system roots
//! plus `sessiongate.ca-bundle`, the same client settings as the gateway's own outgoing
//! calls); [`Stream`] hides which one the proxy loop is talking to.

use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::ServerName;

use crate::config::HttpUrl;
use crate::http::error::HttpError;
use crate::net::outbound::{self, ConnectError, Connector, IdleConns, Lease};

pub use crate::net::outbound::Stream;

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

/// The worker's upstreams and their idle connections.
pub struct Pools {
    upstreams: Vec<Upstream>,
    idle: Vec<IdleConns>,
    max_idle: usize,
    idle_timeout: Duration,
    connector: Connector,
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
        let idle = upstreams.iter().map(|_| IdleConns::default()).collect();
        Pools {
            upstreams,
            idle,
            max_idle,
            idle_timeout,
            connector: Connector::new(tls, connect_timeout),
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

    /// A connection for attempt `attempt` (0 first): pooled when there is one on the first
    /// attempt, else fresh.
    pub async fn lease(&self, id: usize, attempt: u32) -> Result<Lease, HttpError> {
        outbound::lease(
            &self.idle[id],
            self.idle_timeout,
            attempt == 0,
            self.connect(id),
        )
        .await
    }

    pub fn put(&self, id: usize, stream: Stream) {
        self.idle[id].put(stream, self.max_idle);
    }

    /// A fresh connection: 502 when refused, unreachable or (https) its certificate is not
    /// accepted, 504 when the connect or the TLS handshake times out.
    async fn connect(&self, id: usize) -> Result<Stream, HttpError> {
        let up = &self.upstreams[id];
        self.connector
            .connect(&up.addrs, up.server_name.as_ref())
            .await
            .map_err(|e| match e {
                ConnectError::Refused(_) => HttpError::BadGateway("upstream unreachable"),
                ConnectError::Timeout | ConnectError::TlsTimeout => HttpError::GatewayTimeout,
                ConnectError::Tls(why) => {
                    // A certificate the gateway does not accept is an operator's problem
                    // (name, CA bundle), worth more than a debug line.
                    tracing::warn!(target: "sessiongate::proxy", upstream = %up.url.original, error = %why, "upstream TLS handshake failed");
                    HttpError::BadGateway("upstream TLS handshake failed")
                }
            })
    }
}
