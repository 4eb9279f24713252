//! Reading from the client: the request head (idle and head timeouts, the stop signal),
//! a small body the gateway answers itself, and a body streamed upstream.

use monoio::io::{AsyncReadRent, AsyncWriteRentExt};

use crate::http::body::{BodyError, ChunkedDecoder, Output};
use crate::http::error::HttpError;
use crate::http::head::{self, Framing};
use crate::net::{read_spare_within, reserve_read};
use crate::state::WorkerState;
use crate::upstream::Stream;

use super::{Conn, End, IO_CHUNK};

/// Reads until `c.head` holds a complete, accepted request head.
pub(super) async fn read_head<S: AsyncReadRent>(
    client: &mut S,
    c: &mut Conn,
    ctx: &WorkerState,
) -> Result<(), End> {
    let mut deadline: Option<std::time::Instant> = None;
    loop {
        skip_empty_lines(&mut c.cbuf);
        if !c.cbuf.is_empty() {
            match head::parse_request(&c.cbuf, &ctx.limits, &mut c.head) {
                Ok(Some(())) => return Ok(()),
                Ok(None) => {}
                Err(e) => return Err(End::Answered(e)),
            }
            deadline.get_or_insert_with(|| std::time::Instant::now() + ctx.timeouts.head);
        }
        let idle = c.cbuf.is_empty();
        if idle && ctx.shutdown.is_triggered() {
            return Err(End::Quiet);
        }
        let wait = match deadline {
            Some(d) => d.saturating_duration_since(std::time::Instant::now()),
            None => ctx.timeouts.idle,
        };
        reserve_read(&mut c.cbuf, ctx.limits.max_head_bytes + 1);
        let read = read_spare_within(client, std::mem::take(&mut c.cbuf), wait);
        let outcome = if idle {
            monoio::select! {
                r = read => Some(r),
                _ = ctx.shutdown.wait() => None,
            }
        } else {
            Some(read.await)
        };
        match outcome {
            None => return Err(End::Quiet),
            Some(None) if idle => return Err(End::Idle),
            Some(None) => return Err(End::Answered(HttpError::RequestTimeout)),
            Some(Some((res, buf))) => {
                c.cbuf = buf;
                match res {
                    Ok(0) | Err(_) => return Err(End::Quiet),
                    Ok(_) => {}
                }
            }
        }
    }
}

/// RFC 9112 §2.2: empty lines before a request line are ignored (some clients send CRLF
/// after a POST body).
fn skip_empty_lines(cbuf: &mut Vec<u8>) {
    let skip = cbuf
        .iter()
        .take_while(|&&b| b == b'\r' || b == b'\n')
        .count();
    if skip > 0 && cbuf[..skip].windows(2).all(|w| w != b"\n\n") {
        let whole_pairs = skip - skip % 2;
        if cbuf[..whole_pairs].chunks(2).all(|p| p == b"\r\n") {
            cbuf.drain(..whole_pairs);
        }
    }
}

pub(super) fn request_body_error(e: BodyError) -> End {
    match e {
        BodyError::TooLarge => End::Answered(HttpError::PayloadTooLarge),
        BodyError::Malformed(why) => End::Answered(HttpError::BadRequest(why)),
    }
}

/// Reads more client bytes into `c.cbuf` within the body timeout.
async fn read_body_bytes<S: AsyncReadRent>(
    client: &mut S,
    c: &mut Conn,
    ctx: &WorkerState,
) -> Result<(), End> {
    let (res, buf) = read_spare_within(client, std::mem::take(&mut c.cbuf), ctx.timeouts.body)
        .await
        .ok_or(End::Answered(HttpError::RequestTimeout))?;
    c.cbuf = buf;
    match res {
        Ok(0) | Err(_) => Err(End::Broken("client closed during request body")),
        Ok(_) => Ok(()),
    }
}

/// Reads a small request body whole (at most `max` bytes), consuming head and body from
/// `c.cbuf`; for the few requests the gateway answers itself from their body.
pub(super) async fn read_whole_body<S: AsyncReadRent>(
    client: &mut S,
    c: &mut Conn,
    ctx: &WorkerState,
    max: usize,
) -> Result<Vec<u8>, End> {
    let head_len = c.head.head_len;
    c.cbuf.drain(..head_len);
    let mut body = Vec::new();
    let framing = c.head.body_framing();
    let mut decoder = match framing {
        Framing::Length(n) if n > max as u64 => {
            return Err(End::Answered(HttpError::PayloadTooLarge))
        }
        Framing::Length(_) => None,
        _ => Some(ChunkedDecoder::new(
            Output::Raw,
            max as u64,
            ctx.limits.max_head_bytes,
        )),
    };
    loop {
        let done = match (&mut decoder, framing) {
            (Some(d), _) => {
                let p = d.feed(&c.cbuf, &mut body).map_err(request_body_error)?;
                c.cbuf.drain(..p.consumed);
                p.done
            }
            (None, Framing::Length(n)) => {
                let take = (n as usize - body.len()).min(c.cbuf.len());
                body.extend_from_slice(&c.cbuf[..take]);
                c.cbuf.drain(..take);
                body.len() as u64 == n
            }
            (None, _) => true,
        };
        if done {
            return Ok(body);
        }
        reserve_read(&mut c.cbuf, IO_CHUNK);
        read_body_bytes(client, c, ctx).await?;
    }
}

/// How much of the request body is still to come from the client.
pub(super) struct BodyLeft {
    /// Content-Length bytes not yet read.
    pub bytes: u64,
    /// A chunked body not yet at its last chunk.
    pub decoder: Option<ChunkedDecoder>,
}

impl BodyLeft {
    pub fn pending(&self) -> bool {
        self.bytes > 0 || self.decoder.is_some()
    }
}

/// Moves the body bytes already buffered behind the head (re-framed when chunked) from
/// `c.cbuf` to `c.obuf`, after the upstream head written there; says what is left.
pub(super) fn take_buffered_body(c: &mut Conn, ctx: &WorkerState) -> Result<BodyLeft, End> {
    let head_len = c.head.head_len;
    match c.head.body_framing() {
        Framing::Length(n) => {
            let have = ((c.cbuf.len() - head_len) as u64).min(n);
            c.obuf
                .extend_from_slice(&c.cbuf[head_len..head_len + have as usize]);
            c.cbuf.drain(..head_len + have as usize);
            Ok(BodyLeft {
                bytes: n - have,
                decoder: None,
            })
        }
        Framing::Chunked => {
            let mut d = ChunkedDecoder::new(
                Output::Chunked,
                ctx.max_body_bytes,
                ctx.limits.max_head_bytes,
            );
            let p = d
                .feed(&c.cbuf[head_len..], &mut c.obuf)
                .map_err(request_body_error)?;
            c.cbuf.drain(..head_len + p.consumed);
            Ok(BodyLeft {
                bytes: 0,
                decoder: (!p.done).then_some(d),
            })
        }
        Framing::Close => unreachable!("requests are never close-delimited"),
    }
}

/// Streams the rest of the request body from the client to the upstream.
pub(super) async fn stream_request_body<S: AsyncReadRent>(
    client: &mut S,
    upstream: &mut Stream,
    c: &mut Conn,
    ctx: &WorkerState,
    left: &mut BodyLeft,
) -> Result<(), End> {
    while left.pending() {
        if c.cbuf.capacity() < IO_CHUNK {
            c.cbuf.reserve(IO_CHUNK - c.cbuf.len());
        }
        read_body_bytes(client, c, ctx).await?;
        c.obuf.clear();
        if let Some(d) = left.decoder.as_mut() {
            let p = d.feed(&c.cbuf, &mut c.obuf).map_err(request_body_error)?;
            c.cbuf.drain(..p.consumed);
            if p.done {
                left.decoder = None;
            }
        } else {
            let take = (c.cbuf.len() as u64).min(left.bytes) as usize;
            c.obuf.extend_from_slice(&c.cbuf[..take]);
            c.cbuf.drain(..take);
            left.bytes -= take as u64;
        }
        if !c.obuf.is_empty() {
            let out = std::mem::take(&mut c.obuf);
            let (res, out) = upstream.write_all(out).await;
            c.obuf = out;
            res.map_err(|_| End::Answered(HttpError::BadGateway("upstream write failed")))?;
        }
    }
    Ok(())
}
