//! Reading from the client: the request head (idle and head timeouts, the stop signal,
//! shedding at max-connections), a small body the gateway answers itself (whole within the
//! head timeout), and a body streamed upstream (at a minimum rate).

use std::time::{Duration, Instant};

use monoio::io::{AsyncReadRent, AsyncWriteRentExt};

use crate::http::body::{BodyError, ChunkedDecoder, Output};
use crate::http::error::HttpError;
use crate::http::head::{self, Framing};
use crate::net::inbound::ClientStream;
use crate::net::{read_lent_within, reserve_read};
use crate::state::WorkerState;
use crate::upstream::Stream;

use super::{Conn, End, IO_CHUNK};

/// Reads until `c.head` holds a complete, accepted request head.
pub(super) async fn read_head<S: ClientStream>(
    client: &mut S,
    c: &mut Conn,
    ctx: &WorkerState,
) -> Result<(), End> {
    let mut deadline: Option<Instant> = None;
    loop {
        skip_empty_lines(&mut c.cbuf);
        if !c.cbuf.is_empty() {
            match head::parse_request(&c.cbuf, &ctx.limits, &mut c.head) {
                Ok(Some(())) => return Ok(()),
                Ok(None) => {}
                Err(e) => return Err(End::Answered(e)),
            }
            deadline.get_or_insert_with(|| Instant::now() + ctx.timeouts.head);
        }
        let idle = c.cbuf.is_empty();
        if idle && ctx.shutdown.is_triggered() {
            return Err(End::Quiet);
        }
        let wait = match deadline {
            Some(d) => d.saturating_duration_since(Instant::now()),
            None => ctx.timeouts.idle,
        };
        // `serve` waited for these bytes with no buffer held; borrow one now.
        ctx.buffers
            .ensure(&mut c.cbuf, ctx.limits.max_head_bytes + 1);
        reserve_read(&mut c.cbuf, ctx.limits.max_head_bytes + 1);
        let read = read_lent_within(client, std::mem::take(&mut c.cbuf), wait, &c.pool);
        let outcome = if idle {
            monoio::select! {
                r = read => r,
                _ = ctx.shutdown.wait() => return Err(End::Quiet),
                // Closed to make room for a new connection, as an idle timeout would.
                _ = ctx.connections.idle(c.id) => return Err(End::Idle),
            }
        } else {
            read.await
        };
        match outcome {
            None if idle => return Err(End::Idle),
            None => return Err(End::Answered(HttpError::RequestTimeout)),
            Some((res, buf)) => {
                c.cbuf = buf;
                match res {
                    Ok(0) | Err(_) => return Err(End::Quiet),
                    Ok(_) => {}
                }
            }
        }
    }
}

/// Waits until the idle connection has bytes (or its end) to read, unless the worker
/// stops or closes it first: to make room for a new connection, or because it waited past
/// `connection-idle-timeout-ms` (the worker's sweep, [`crate::state::Connections::close_idle`],
/// decides that: no timer per idle connection).
pub(super) async fn wait_readable<S: ClientStream>(
    client: &S,
    c: &Conn,
    ctx: &WorkerState,
) -> Result<(), End> {
    monoio::select! {
        // An error here shows on the read as well.
        _ = client.readable() => Ok(()),
        _ = ctx.shutdown.wait() => Err(End::Quiet),
        _ = ctx.connections.idle(c.id) => Err(End::Idle),
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

/// Reads more client bytes into `c.cbuf` within `wait`; says how many came.
async fn read_body_bytes<S: AsyncReadRent>(
    client: &mut S,
    c: &mut Conn,
    wait: Duration,
) -> Result<usize, End> {
    let (res, buf) = read_lent_within(client, std::mem::take(&mut c.cbuf), wait, &c.pool)
        .await
        .ok_or(End::Answered(HttpError::RequestTimeout))?;
    c.cbuf = buf;
    match res {
        Ok(0) | Err(_) => Err(End::Broken("client closed during request body")),
        Ok(n) => Ok(n),
    }
}

/// The grace period before `body-min-rate-bytes-per-sec` applies (Kestrel's default).
const RATE_GRACE: Duration = Duration::from_secs(5);

/// A streamed body's pace: the time spent waiting on the client and the bytes it sent.
/// Time spent writing upstream is not counted, so a slow backend never cuts a client.
struct Pace {
    min_rate: u64,
    waited: Duration,
    received: u64,
}

impl Pace {
    /// How long the next read may wait: the pause limit, less when the client falls behind
    /// the minimum rate; `None` once it has.
    fn next_wait(&self, pause: Duration) -> Option<Duration> {
        if self.min_rate == 0 {
            return Some(pause);
        }
        let earned =
            RATE_GRACE + Duration::from_millis(self.received.saturating_mul(1000) / self.min_rate);
        earned
            .checked_sub(self.waited)
            .filter(|left| !left.is_zero())
            .map(|left| left.min(pause))
    }
}

/// The wait for the next body read within `deadline` (and the pause limit).
fn until(deadline: Instant, pause: Duration) -> Result<Duration, End> {
    match deadline.saturating_duration_since(Instant::now()) {
        left if left.is_zero() => Err(End::Answered(HttpError::RequestTimeout)),
        left => Ok(left.min(pause)),
    }
}

/// Reads a small request body whole (at most `max` bytes), consuming head and body from
/// `c.cbuf`; for the few requests the gateway answers itself from their body. The whole
/// body must come within the request-head timeout: it is small, and no byte of it goes
/// anywhere before it is complete.
pub(super) async fn read_whole_body<S: AsyncReadRent>(
    client: &mut S,
    c: &mut Conn,
    ctx: &WorkerState,
    max: usize,
) -> Result<Vec<u8>, End> {
    let deadline = Instant::now() + ctx.timeouts.head;
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
        read_body_bytes(client, c, until(deadline, ctx.timeouts.body)?).await?;
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

/// Streams the rest of the request body from the client to the upstream, cut (408) when
/// the client pauses longer than the body timeout or falls behind the minimum rate.
pub(super) async fn stream_request_body<S: AsyncReadRent>(
    client: &mut S,
    upstream: &mut Stream,
    c: &mut Conn,
    ctx: &WorkerState,
    left: &mut BodyLeft,
) -> Result<(), End> {
    let mut pace = Pace {
        min_rate: ctx.body_min_rate,
        waited: Duration::ZERO,
        received: 0,
    };
    while left.pending() {
        if c.cbuf.capacity() < IO_CHUNK {
            c.cbuf.reserve(IO_CHUNK - c.cbuf.len());
        }
        let wait = pace
            .next_wait(ctx.timeouts.body)
            .ok_or(End::Answered(HttpError::RequestTimeout))?;
        let started = Instant::now();
        let n = read_body_bytes(client, c, wait).await?;
        pace.waited += started.elapsed();
        pace.received += n as u64;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pace_allows_the_grace_then_what_the_bytes_earned() {
        let pause = Duration::from_secs(30);
        let mut p = Pace {
            min_rate: 1000,
            waited: Duration::ZERO,
            received: 0,
        };
        assert_eq!(p.next_wait(pause), Some(RATE_GRACE));
        p.waited = Duration::from_secs(4);
        p.received = 500;
        assert_eq!(p.next_wait(pause), Some(Duration::from_millis(1500)));
        p.waited = Duration::from_millis(5500);
        assert_eq!(
            p.next_wait(pause),
            None,
            "500 bytes earn 0.5 s past the grace"
        );
        p.received = 1_000_000;
        assert_eq!(
            p.next_wait(pause),
            Some(pause),
            "the pause limit still holds"
        );
        p.min_rate = 0;
        p.received = 0;
        assert_eq!(p.next_wait(pause), Some(pause), "0: no minimum");
    }
}
