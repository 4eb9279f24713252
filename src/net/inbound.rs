//! The client streams the proxy loop serves: plain TCP (which can move to another worker)
//! and TLS after the handshake (which cannot).

use std::os::fd::{FromRawFd, IntoRawFd, OwnedFd};

use monoio::io::{AsyncReadRent, AsyncWriteRent, Split};
use monoio::net::TcpStream;

use super::tls_stream::ServerTls;

/// A client stream whose socket can move to another worker.
pub trait ClientStream: AsyncReadRent + AsyncWriteRent + Split + 'static {
    /// `X-Forwarded-Proto` for requests that arrive on this kind of stream.
    const SCHEME: &'static str = "http";

    /// The connection can be handed to another worker ([`ClientStream::into_fd`] works).
    const MOVABLE: bool = true;

    /// The socket, when no operation is in flight and nothing but the socket holds state.
    fn into_fd(self) -> Option<OwnedFd>;

    /// Completes once a read would find bytes (or the end of the stream), with no buffer
    /// held meanwhile. By default at once (a stream that cannot tell).
    fn readable(&self) -> impl std::future::Future<Output = std::io::Result<()>> {
        std::future::ready(Ok(()))
    }
}

impl ClientStream for TcpStream {
    fn readable(&self) -> impl std::future::Future<Output = std::io::Result<()>> {
        // Not relaxed: on the epoll driver a stale readiness must not wake an idle
        // connection into taking a buffer for nothing.
        TcpStream::readable(self, false)
    }

    #[allow(unsafe_code)]
    fn into_fd(self) -> Option<OwnedFd> {
        let raw = self.into_raw_fd();
        // SAFETY: `into_raw_fd` gave up the stream's only handle on an open socket (monoio
        // deregistered it from its driver), so nothing else will close or use `raw`: the
        // new `OwnedFd` is its sole owner.
        Some(unsafe { OwnedFd::from_raw_fd(raw) })
    }
}

/// Client connections after the handshake: served by the proxy loop, never handed to
/// another worker (the TLS state lives in this task).
impl ClientStream for ServerTls {
    const SCHEME: &'static str = "https";
    // rustls state cannot move between threads: requests for another worker's session are
    // answered through that worker by message.
    const MOVABLE: bool = false;

    /// Decrypted bytes (or the end) waiting in rustls answer at once; otherwise the socket
    /// is waited on with no read, and so no buffer, in flight.
    fn readable(&self) -> impl std::future::Future<Output = std::io::Result<()>> {
        let buffered = self.has_buffered();
        let socket = self.socket();
        async move {
            if buffered {
                return Ok(());
            }
            socket.readable(false).await
        }
    }

    fn into_fd(self) -> Option<OwnedFd> {
        None
    }
}
