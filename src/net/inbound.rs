//! The client streams the proxy loop serves: plain TCP (which can move to another worker)
//! and TLS after the handshake (which cannot).

use std::os::fd::{FromRawFd, IntoRawFd, OwnedFd};

use monoio::io::{AsyncReadRent, AsyncWriteRent, Split};
use monoio::net::TcpStream;
use monoio_rustls::ServerTlsStream;

/// A client stream whose socket can move to another worker.
pub trait ClientStream: AsyncReadRent + AsyncWriteRent + Split + 'static {
    /// `X-Forwarded-Proto` for requests that arrive on this kind of stream.
    const SCHEME: &'static str = "http";

    /// The connection can be handed to another worker ([`ClientStream::into_fd`] works).
    const MOVABLE: bool = true;

    /// The socket, when no operation is in flight and nothing but the socket holds state.
    fn into_fd(self) -> Option<OwnedFd>;

    /// Completes once a read would find bytes (or the end of the stream), with no buffer
    /// held meanwhile. A stream that may hold decrypted bytes of its own (TLS) completes at
    /// once.
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
impl ClientStream for ServerTlsStream<TcpStream> {
    const SCHEME: &'static str = "https";
    // rustls state (and monoio-rustls's buffered records) cannot move between threads:
    // requests for another worker's session are answered through that worker by message.
    const MOVABLE: bool = false;

    fn into_fd(self) -> Option<OwnedFd> {
        None
    }
}
