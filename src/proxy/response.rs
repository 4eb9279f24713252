//! Reading the upstream's answer and relaying it: the response head (interim answers
//! passed on), the client's framing chosen, the body streamed back re-framed when needed.

use monoio::io::AsyncWriteRent;

use crate::http::body::{write_hex, ChunkedDecoder, Output};
use crate::http::error::HttpError;
use crate::http::head::Framing;
use crate::http::response::{parse_response, write_response_head, ResponseFraming};
use crate::net::{read_lent_within, reserve_read};
use crate::state::WorkerState;
use crate::upstream::Stream;

use super::{flush_obuf, write_all, Conn, End, IO_CHUNK};

/// Upper bound for an upstream response head.
const MAX_RESPONSE_HEAD: usize = 64 * 1024;

pub(super) enum RespErr {
    /// The upstream closed before sending a byte of the response.
    Closed,
    Other(HttpError),
}

impl From<RespErr> for HttpError {
    fn from(e: RespErr) -> HttpError {
        match e {
            RespErr::Closed => HttpError::BadGateway("upstream closed the connection"),
            RespErr::Other(e) => e,
        }
    }
}

impl From<RespErr> for End {
    fn from(e: RespErr) -> End {
        End::Answered(e.into())
    }
}

/// Reads the upstream's response head into `c.rbuf` / `c.resp` (bytes already in `rbuf`
/// count, e.g. after an interim response).
pub(super) async fn read_response_head(
    upstream: &mut Stream,
    c: &mut Conn,
    ctx: &WorkerState,
    is_head: bool,
) -> Result<(), RespErr> {
    let deadline = std::time::Instant::now() + ctx.timeouts.response;
    loop {
        if !c.rbuf.is_empty() {
            match parse_response(&c.rbuf, MAX_RESPONSE_HEAD, is_head, &mut c.resp) {
                Ok(Some(())) => return Ok(()),
                Ok(None) => {}
                Err(e) => return Err(RespErr::Other(e)),
            }
        }
        reserve_read(&mut c.rbuf, IO_CHUNK);
        let wait = deadline.saturating_duration_since(std::time::Instant::now());
        let (res, buf) = read_lent_within(upstream, std::mem::take(&mut c.rbuf), wait, &c.pool)
            .await
            .ok_or(RespErr::Other(HttpError::GatewayTimeout))?;
        c.rbuf = buf;
        match res {
            Ok(0) | Err(_) if c.rbuf.is_empty() => return Err(RespErr::Closed),
            Ok(0) | Err(_) => {
                return Err(RespErr::Other(HttpError::BadGateway(
                    "upstream closed during response head",
                )))
            }
            Ok(_) => {}
        }
    }
}

/// Passes interim answers (100, 103 ...) on until the final head is in `c.resp`.
pub(super) async fn relay_interim<S: AsyncWriteRent>(
    client: &mut S,
    upstream: &mut Stream,
    c: &mut Conn,
    ctx: &WorkerState,
    is_head: bool,
) -> Result<(), End> {
    while c.resp.is_interim() {
        c.obuf.clear();
        write_response_head(
            &mut c.obuf,
            &c.rbuf,
            &c.resp,
            ResponseFraming::Interim,
            false,
            c.head.minor,
        );
        write_all(client, &c.obuf, ctx.timeouts.body).await?;
        c.sent += c.obuf.len() as u64;
        c.rbuf.drain(..c.resp.head_len);
        read_response_head(upstream, c, ctx, is_head).await?;
    }
    Ok(())
}

/// The framing the client gets for the upstream's, and whether the connection can stay
/// open after it (HTTP/1.0 clients get raw bytes delimited by the close).
pub(super) fn client_framing(upstream: Framing, client_minor: u8) -> (ResponseFraming, bool) {
    match upstream {
        Framing::Length(_) => (ResponseFraming::AsUpstream, true),
        Framing::Chunked | Framing::Close if client_minor == 1 => (ResponseFraming::Chunked, true),
        Framing::Chunked | Framing::Close => (ResponseFraming::Raw, false),
    }
}

/// Moves what `c.rbuf` holds into `c.obuf` in the client's framing; `true` once the body
/// is complete.
fn reframe(
    c: &mut Conn,
    framing: Framing,
    to_client: ResponseFraming,
    left: &mut u64,
    decoder: &mut Option<ChunkedDecoder>,
    eof: bool,
) -> Result<bool, End> {
    match framing {
        Framing::Length(_) => {
            let take = (c.rbuf.len() as u64).min(*left) as usize;
            c.obuf.extend_from_slice(&c.rbuf[..take]);
            c.rbuf.drain(..take);
            *left -= take as u64;
            Ok(*left == 0)
        }
        Framing::Chunked => {
            let d = decoder.as_mut().expect("decoder for chunked");
            let p = d
                .feed(&c.rbuf, &mut c.obuf)
                .map_err(|_| End::Broken("malformed chunked response from upstream"))?;
            c.rbuf.drain(..p.consumed);
            Ok(p.done)
        }
        Framing::Close => {
            let chunked = to_client == ResponseFraming::Chunked;
            if !c.rbuf.is_empty() {
                if chunked {
                    write_hex(&mut c.obuf, c.rbuf.len() as u64);
                    c.obuf.extend_from_slice(b"\r\n");
                    c.obuf.extend_from_slice(&c.rbuf);
                    c.obuf.extend_from_slice(b"\r\n");
                } else {
                    c.obuf.extend_from_slice(&c.rbuf);
                }
                c.rbuf.clear();
            }
            if eof && chunked {
                c.obuf.extend_from_slice(b"0\r\n\r\n");
            }
            Ok(eof)
        }
    }
}

/// Streams the response body (its first bytes are in `c.rbuf`), head already in `c.obuf`.
pub(super) async fn stream_response_body<S: AsyncWriteRent>(
    client: &mut S,
    upstream: &mut Stream,
    c: &mut Conn,
    ctx: &WorkerState,
    framing: Framing,
    to_client: ResponseFraming,
) -> Result<(), End> {
    let mut left = match framing {
        Framing::Length(n) => n,
        _ => u64::MAX,
    };
    let mut decoder = (framing == Framing::Chunked).then(|| {
        let out = if to_client == ResponseFraming::Raw {
            Output::Raw
        } else {
            Output::Chunked
        };
        ChunkedDecoder::new(out, 0, MAX_RESPONSE_HEAD)
    });
    let mut eof = false;
    loop {
        let done = reframe(c, framing, to_client, &mut left, &mut decoder, eof)?;
        if !c.obuf.is_empty() {
            c.sent += c.obuf.len() as u64;
            flush_obuf(client, c, ctx.timeouts.body)
                .await
                .map_err(|_| End::Broken("client write failed"))?;
        }
        if done {
            return Ok(());
        }
        reserve_read(&mut c.rbuf, IO_CHUNK);
        let (res, buf) = read_lent_within(
            upstream,
            std::mem::take(&mut c.rbuf),
            ctx.timeouts.response,
            &c.pool,
        )
        .await
        .ok_or(End::Broken("upstream stalled during response body"))?;
        c.rbuf = buf;
        match res {
            Ok(0) if framing == Framing::Close => eof = true,
            Ok(0) | Err(_) => return Err(End::Broken("upstream closed during response body")),
            Ok(_) => {}
        }
    }
}
