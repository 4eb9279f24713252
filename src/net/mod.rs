//! Connections, below HTTP: the client side a worker accepts ([`inbound`], with TLS in
//! [`tls_stream`]) and the
//! connections it opens to upstreams and to the provider ([`outbound`]), one connect,
//! TLS and keep-alive pool layer for both proxied requests and the gateway's own calls.

pub mod buffers;
pub mod inbound;
pub mod outbound;
pub mod tls_stream;

use std::io;
use std::time::Duration;

use monoio::buf::IoBufMut;
use monoio::io::AsyncReadRent;

/// Reads into the unfilled capacity of `buf`, appending to what it holds. With monoio the
/// buffer travels into the read and comes back with its result.
pub async fn read_spare<R: AsyncReadRent>(r: &mut R, buf: Vec<u8>) -> (io::Result<usize>, Vec<u8>) {
    let (len, cap) = (buf.len(), buf.capacity());
    let (res, slice) = r.read(buf.slice_mut(len..cap)).await;
    (res, slice.into_inner())
}

/// [`read_spare`] within `limit`; `None` when the time ran out (the buffer went with the
/// cancelled read: the caller is giving up on the stream anyway).
pub async fn read_spare_within<R: AsyncReadRent>(
    r: &mut R,
    buf: Vec<u8>,
    limit: Duration,
) -> Option<(io::Result<usize>, Vec<u8>)> {
    monoio::time::timeout(limit, read_spare(r, buf)).await.ok()
}

/// [`read_spare_within`] into a buffer lent by `pool`, which stops counting it when it goes
/// with a cancelled read ([`buffers::BufPool::lend_during`]).
pub async fn read_lent_within<R: AsyncReadRent>(
    r: &mut R,
    buf: Vec<u8>,
    limit: Duration,
    pool: &buffers::BufPool,
) -> Option<(io::Result<usize>, Vec<u8>)> {
    let read = pool.lend_during(buf, |b| read_spare(r, b));
    monoio::time::timeout(limit, read).await.ok()
}

/// Makes sure `buf` has room to read into: when less than 1 KiB is free, grows it to at
/// least `want` bytes (4 KiB at the least).
pub fn reserve_read(buf: &mut Vec<u8>, want: usize) {
    let free = buf.capacity() - buf.len();
    if free < 1024 {
        buf.reserve(want.max(4096).saturating_sub(buf.len()).max(1024));
    }
}
