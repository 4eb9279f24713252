//! A client's TLS connection after the handshake: rustls over the socket with no buffer of
//! its own. Ciphertext is read into a buffer lent by the worker's pool for the one read,
//! decrypted by rustls and copied into the caller's buffer; what goes out is encrypted
//! into a lent buffer for the one write. An idle TLS connection therefore holds rustls's
//! state (its 4 KiB record buffer, keys) and nothing else, and waits for readability with
//! no read in flight, like a plain one. (A stream with buffers of its own per connection,
//! as monoio-rustls keeps, costs 32 KiB more for the connection's whole life.)
//!
//! The few `unsafe` lines move bytes into and out of the caller's buffers through the raw
//! pointers monoio's buffer traits give: each says why it stays inside the buffer.

use std::io::{self, BufRead, Write};
use std::rc::Rc;

use monoio::buf::{IoBuf, IoBufMut, IoVecBuf, IoVecBufMut, RawBuf};
use monoio::io::{AsyncReadRent, AsyncWriteRent, AsyncWriteRentExt, Split};
use monoio::net::TcpStream;
use monoio::BufResult;
use rustls::ServerConnection;

use super::buffers::{BufPool, SMALL};

/// rustls takes no more ciphertext while it holds more decrypted bytes than this (its
/// default limit); the rest of a socket read waits in a lent buffer until they are read.
const PLAINTEXT_LIMIT: usize = 16 * 1024;

pub struct ServerTls {
    io: TcpStream,
    conn: ServerConnection,
    pool: Rc<BufPool>,
    /// Decrypted bytes rustls holds, not yet read (0 also when it holds none).
    pending: usize,
    /// The client sent close_notify, or its socket ended.
    closed: bool,
    /// Ciphertext read but not yet taken by rustls (it held [`PLAINTEXT_LIMIT`] already):
    /// a lent buffer, empty without capacity otherwise.
    unfed: Vec<u8>,
}

impl ServerTls {
    /// A stream over a socket whose handshake `conn` completed (records that came with
    /// the client's last flight are in `conn` already).
    pub fn new(io: TcpStream, mut conn: ServerConnection, pool: Rc<BufPool>) -> ServerTls {
        conn.set_buffer_limit(Some(64 * 1024));
        let mut s = ServerTls {
            io,
            conn,
            pool,
            pending: 0,
            closed: false,
            unfed: Vec::new(),
        };
        s.note_state();
        s
    }

    /// A read would find bytes now, without the socket: decrypted bytes or the end.
    pub fn has_buffered(&self) -> bool {
        self.pending > 0 || self.closed || !self.unfed.is_empty()
    }

    pub fn socket(&self) -> &TcpStream {
        &self.io
    }

    fn note_state(&mut self) {
        if let Ok(state) = self.conn.process_new_packets() {
            self.pending = state.plaintext_bytes_to_read();
            self.closed |= state.peer_has_closed();
        }
    }

    /// Gives rustls more ciphertext: what waited from an earlier read, else one socket read.
    async fn read_tls(&mut self) -> io::Result<()> {
        if !self.unfed.is_empty() {
            let unfed = std::mem::take(&mut self.unfed);
            let fed = self.feed(&unfed);
            self.pool.give(unfed);
            return fed;
        }
        let buf = self.pool.take(SMALL);
        let io = &mut self.io;
        let (res, buf) = self.pool.lend_during(buf, |b| io.read(b)).await;
        let fed = match res {
            Ok(0) => {
                // rustls judges the end: after close_notify a clean one, else a truncation
                // (its reader then answers UnexpectedEof).
                self.closed = true;
                self.conn.read_tls(&mut &[][..]).map(|_| ())
            }
            Ok(_) => self.feed(&buf),
            Err(e) => Err(e),
        };
        self.pool.give(buf);
        fed
    }

    /// Feeds `rest` to rustls; what it cannot take yet (its decrypted bytes are at the
    /// limit) is kept in `unfed`.
    fn feed(&mut self, mut rest: &[u8]) -> io::Result<()> {
        while !rest.is_empty() {
            if self.pending > PLAINTEXT_LIMIT {
                let mut keep = self.pool.take(rest.len());
                keep.extend_from_slice(rest);
                self.unfed = keep;
                return Ok(());
            }
            if self.conn.read_tls(&mut rest)? == 0 {
                // After close_notify nothing more is read.
                break;
            }
            match self.conn.process_new_packets() {
                Ok(state) => {
                    self.pending = state.plaintext_bytes_to_read();
                    self.closed |= state.peer_has_closed();
                }
                Err(e) => return Err(io::Error::new(io::ErrorKind::InvalidData, e)),
            }
        }
        Ok(())
    }

    /// Sends what rustls has encrypted, through lent buffers.
    async fn write_tls(&mut self) -> io::Result<()> {
        while self.conn.wants_write() {
            let mut buf = self.pool.take(SMALL);
            let written = self.conn.write_tls(&mut buf);
            let res = match written {
                Ok(_) => {
                    let io = &mut self.io;
                    let (res, b) = self.pool.lend_during(buf, |b| io.write_all(b)).await;
                    buf = b;
                    res.map(|_| ())
                }
                Err(e) => Err(e),
            };
            self.pool.give(buf);
            res?;
        }
        Ok(())
    }

    /// Copies decrypted bytes into `buf`: how many (0 at the end of the stream), or
    /// `None` when rustls holds none.
    fn copy_plaintext<T: IoBufMut>(&mut self, buf: &mut T) -> io::Result<Option<usize>> {
        let mut reader = self.conn.reader();
        let chunk = match reader.fill_buf() {
            Ok(chunk) => chunk,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(None),
            Err(e) => return Err(e),
        };
        let n = chunk.len().min(buf.bytes_total());
        // SAFETY: `write_ptr` points at `bytes_total` writable bytes of `buf` (the IoBufMut
        // contract), and `n <= bytes_total`; `chunk` is rustls's own memory, so the ranges
        // cannot overlap. `set_init(n)` then marks exactly the bytes just written.
        #[allow(unsafe_code)]
        unsafe {
            std::ptr::copy_nonoverlapping(chunk.as_ptr(), buf.write_ptr(), n);
            buf.set_init(n);
        }
        reader.consume(n);
        self.pending = self.pending.saturating_sub(n);
        Ok(Some(n))
    }
}

impl Drop for ServerTls {
    fn drop(&mut self) {
        self.pool.reclaim(&mut self.unfed);
    }
}

impl AsyncReadRent for ServerTls {
    async fn read<T: IoBufMut>(&mut self, mut buf: T) -> BufResult<usize, T> {
        loop {
            match self.copy_plaintext(&mut buf) {
                Ok(Some(n)) => return (Ok(n), buf),
                Ok(None) if self.closed => {
                    // A socket end without close_notify: rustls reports it as an error.
                    return (Ok(0), buf);
                }
                Ok(None) => {}
                Err(e) => return (Err(e), buf),
            }
            // No alert is written from here: with the stream split (WebSockets) the write
            // half may be mid-record; the connection ends on the error anyway.
            if let Err(e) = self.read_tls().await {
                return (Err(e), buf);
            }
        }
    }

    async fn readv<T: IoVecBufMut>(&mut self, mut buf: T) -> BufResult<usize, T> {
        // SAFETY: the raw buffer views the first iovec of `buf`, which this call owns and
        // keeps alive, unmoved, until the read into it completes below.
        #[allow(unsafe_code)]
        let raw = unsafe { RawBuf::new_from_iovec_mut(&mut buf) };
        let n = match raw {
            Some(raw) => self.read(raw).await.0,
            None => Ok(0),
        };
        if let Ok(n) = n {
            // SAFETY: `n` bytes were just written into the first iovec by `read`.
            #[allow(unsafe_code)]
            unsafe {
                buf.set_init(n)
            };
        }
        (n, buf)
    }
}

impl AsyncWriteRent for ServerTls {
    async fn write<T: IoBuf>(&mut self, buf: T) -> BufResult<usize, T> {
        let accepted = {
            // SAFETY: `read_ptr` points at `bytes_init` initialised bytes of `buf` (the IoBuf
            // contract), which this call owns; the slice is gone before the next await.
            #[allow(unsafe_code)]
            let bytes = unsafe { std::slice::from_raw_parts(buf.read_ptr(), buf.bytes_init()) };
            self.conn.writer().write(bytes)
        };
        let n = match accepted {
            Ok(n) => n,
            Err(e) => return (Err(e), buf),
        };
        match self.write_tls().await {
            Ok(()) => (Ok(n), buf),
            Err(e) => (Err(e), buf),
        }
    }

    async fn writev<T: IoVecBuf>(&mut self, buf: T) -> BufResult<usize, T> {
        // SAFETY: the raw buffer views the first iovec of `buf`, owned by this call and
        // kept alive, unmoved, until the write from it completes below.
        #[allow(unsafe_code)]
        let raw = unsafe { RawBuf::new_from_iovec(&buf) };
        let n = match raw {
            Some(raw) => self.write(raw).await.0,
            None => Ok(0),
        };
        (n, buf)
    }

    async fn flush(&mut self) -> io::Result<()> {
        self.conn.writer().flush()?;
        self.write_tls().await?;
        self.io.flush().await
    }

    async fn shutdown(&mut self) -> io::Result<()> {
        self.conn.send_close_notify();
        self.write_tls().await?;
        self.io.shutdown().await
    }
}

// SAFETY: monoio's split hands the read half and the write half to two tasks of one
// thread, each calling `&mut self` methods through the shared cell, as it does for its own
// TcpStream (whose halves share one socket the same way). Both halves' futures are alive
// at once, but only one runs at a time (one thread), and every access to rustls's state or
// to `unfed` completes between two awaits: the read half feeds and drains rustls, the
// write half encrypts into it and takes records out, and neither writes the socket for the
// other (the read path sends no alert), so records are never interleaved.
#[allow(unsafe_code)]
unsafe impl Split for ServerTls {}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::sync::Arc;
    use std::time::Duration;

    use monoio::io::AsyncReadRent;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};

    use super::*;

    /// A server config for `localhost` and a client config that trusts it.
    fn configs() -> (Arc<rustls::ServerConfig>, Arc<rustls::ClientConfig>) {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let cert = rcgen::CertificateParams::new(vec!["localhost".to_string()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let server = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(
                vec![CertificateDer::from(cert.der().to_vec())],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
            )
            .unwrap();
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(CertificateDer::from(cert.der().to_vec()))
            .unwrap();
        let client = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        (Arc::new(server), Arc::new(client))
    }

    /// Records a client sends so that one socket read completes a full 16 KiB record and
    /// brings a hundred small ones after it (more than rustls takes in one go): rustls then
    /// holds more than its limit of decrypted bytes with ciphertext left over, which the
    /// stream must keep (`unfed`) and feed later, losing nothing; and the lent buffers are
    /// all back once the bytes are read.
    #[test]
    fn records_beyond_rustls_plaintext_limit_wait_and_arrive_whole() {
        let (server_cfg, client_cfg) = configs();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let mut expected = vec![b'a'; 16 * 1024];
        for i in 0..100u8 {
            expected.extend(std::iter::repeat(i).take(50));
        }
        let to_send = expected.clone();
        let total = expected.len();
        let client = std::thread::spawn(move || {
            let mut sock = std::net::TcpStream::connect(addr).unwrap();
            let name = ServerName::try_from("localhost").unwrap();
            let mut conn = rustls::ClientConnection::new(client_cfg, name).unwrap();
            while conn.is_handshaking() {
                conn.complete_io(&mut sock).unwrap();
            }
            // A full record, then a hundred of 50 bytes; one socket write.
            conn.writer().write_all(&to_send[..16 * 1024]).unwrap();
            for part in to_send[16 * 1024..].chunks(50) {
                conn.writer().write_all(part).unwrap();
            }
            let mut wire = Vec::new();
            while conn.wants_write() {
                conn.write_tls(&mut wire).unwrap();
            }
            sock.write_all(&wire).unwrap();
            // Wait for the server to close (it read everything).
            let mut rest = Vec::new();
            let _ = sock.read_to_end(&mut rest);
        });
        let pool = Rc::new(BufPool::default());
        let got = monoio::RuntimeBuilder::<monoio::FusionDriver>::new()
            .enable_timer()
            .build()
            .unwrap()
            .block_on(async move {
                let (std_sock, _) = listener.accept().unwrap();
                std_sock.set_nonblocking(true).unwrap();
                let tcp = TcpStream::from_std(std_sock).unwrap();
                let (mut tls, _) =
                    crate::tls::accept(tcp, server_cfg, Duration::from_secs(5), pool.clone())
                        .await
                        .unwrap_or_else(|f| panic!("handshake: {}", f.reason));
                let mut got = Vec::new();
                while got.len() < total {
                    let buf = Vec::with_capacity(64 * 1024);
                    // A guard against a hang (bytes lost: the client waits for our close).
                    let read = monoio::time::timeout(Duration::from_secs(10), tls.read(buf));
                    let (n, buf) = read
                        .await
                        .unwrap_or_else(|_| panic!("no more bytes after {} of {total}", got.len()));
                    let n = n.unwrap();
                    assert!(n > 0, "the stream ended after {} bytes", got.len());
                    got.extend_from_slice(&buf[..n]);
                }
                assert_eq!(pool.lent(), 0, "a buffer is still lent once all was read");
                drop(tls);
                got
            });
        client.join().unwrap();
        assert_eq!(got.len(), expected.len());
        assert!(got == expected, "the bytes arrived changed or out of order");
    }
}
