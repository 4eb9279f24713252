//! The per-connection loop: read a request head, let the session gate decide, forward it
//! upstream with its body streamed, stream the response back, and repeat while the
//! connection persists.
//!
//! One exchange in steps, a file each: `request` reads the head and request bodies,
//! `exchange` authorizes, picks the upstream and sends the head (retrying once on a stale
//! pooled connection), `response` reads and relays the response, `upgrade` runs a
//! WebSocket after a 101.
//!
//! Buffers are owned by the connection and reused for every request on it; monoio's
//! ownership-passing I/O moves them into each read or write and hands them back.
//! Every refusal happens before the first byte goes upstream (the buffered part of a chunked
//! body is decoded first), so a smuggling attempt never reaches the backend.

mod exchange;
mod request;
mod response;
mod upgrade;

use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use monoio::io::{AsyncWriteRent, AsyncWriteRentExt};
use tracing::field::display;

use crate::audit::CloseReason;
use crate::http::error::HttpError;
use crate::http::head::RequestHead;
use crate::http::response::ResponseHead;
use crate::messages::WorkerMsg;
use crate::metrics::Metrics;
use crate::net::buffers::BufPool;
use crate::net::inbound::ClientStream;
use crate::session::SessionId;
use crate::state::{ConnId, WorkerState};
use crate::upstream::Stream;

const LOG: &str = "sessiongate::proxy";
/// Size of the body and response read buffers.
const IO_CHUNK: usize = 64 * 1024;

/// Why a connection ended; only used for logging.
#[derive(Debug)]
enum End {
    /// Normal close: peer closed, `Connection: close`, shutdown.
    Quiet,
    /// No request within the keep-alive idle timeout.
    Idle,
    /// We answered an error and closed.
    Answered(HttpError),
    /// The peer or upstream failed mid-stream; nothing more can be said.
    Broken(&'static str),
}

/// What follows an exchange.
enum Next {
    KeepAlive,
    Close,
    Upgraded(Stream),
    HandOff(u8),
}

/// Per-connection state: the buffers of the exchange in flight (lent by the worker's pool
/// and given back while the connection idles), and what the current request is.
struct Conn {
    pool: Rc<BufPool>,
    peer: SocketAddr,
    /// Bytes read from the client and not yet consumed.
    cbuf: Vec<u8>,
    /// Bytes going out (upstream request head, re-framed bodies, response heads).
    obuf: Vec<u8>,
    /// Bytes read from the upstream and not yet consumed.
    rbuf: Vec<u8>,
    head: RequestHead,
    resp: ResponseHead,
    /// Method and path (never the query) of the current request, for the access log
    /// (empty while no head has been accepted).
    log_request: Vec<u8>,
    started: Instant,
    /// Bytes written to the client for the current request's answer, heads included.
    sent: u64,
    /// The current request's upstream time to the response head, once it answered.
    upstream_time: Option<Duration>,
    /// The id of the route that forwarded the current request.
    route: Option<Rc<str>>,
    /// The session's access token for the current request (sent as `Authorization:
    /// Bearer`; the client's own Authorization and SESSION cookie are stripped).
    bearer: Option<Rc<str>>,
    /// The session the current request belongs to.
    session: Option<SessionId>,
    /// The current request's route in the worker's metrics (0: answered by the gateway).
    route_slot: usize,
    /// `X-Forwarded-Proto`: the client stream's scheme.
    scheme: &'static str,
    /// The connection in the worker's table (idle marks, shedding at max-connections).
    id: ConnId,
    /// The current request is a HEAD: its answers, refusals included, carry no body.
    is_head: bool,
}

/// Serves one client connection to its end; says why it ended.
///
/// After a broken exchange the connection is dropped without a graceful shutdown: a write
/// cut short by its timeout leaves a TLS stream unable to write again (its record buffer
/// went with the cancelled write), and a TLS client should see the missing close_notify as
/// the truncation it is.
pub async fn serve<S: ClientStream>(
    mut client: S,
    peer: SocketAddr,
    ctx: Rc<WorkerState>,
    buffered: Vec<u8>,
    id: ConnId,
) -> CloseReason {
    // Bytes read on another worker: their buffer is this worker's to lend now.
    ctx.buffers.adopt(&buffered);
    let mut conn = Conn {
        pool: ctx.buffers.clone(),
        peer,
        cbuf: buffered,
        obuf: Vec::new(),
        rbuf: Vec::new(),
        head: RequestHead::default(),
        resp: ResponseHead::default(),
        log_request: Vec::new(),
        started: Instant::now(),
        sent: 0,
        upstream_time: None,
        route: None,
        bearer: None,
        session: None,
        route_slot: 0,
        scheme: S::SCHEME,
        id,
        is_head: false,
    };
    let closed = loop {
        // Between requests the connection waits here, in its small outer future, with no
        // buffer held; the exchange's much larger state (several KiB) is allocated only
        // while a request is in flight, from the allocator's thread-local free lists.
        if conn.cbuf.is_empty() && conn.cbuf.capacity() == 0 {
            if ctx.shutdown.is_triggered() {
                break CloseReason::PeerClosed;
            }
            match request::wait_readable(&client, &conn, &ctx).await {
                Ok(()) => {}
                Err(End::Idle) => break CloseReason::IdleTimeout,
                Err(_) => break CloseReason::PeerClosed,
            }
        }
        let exchanged = Box::pin(exchange::exchange(&mut client, &mut conn, &ctx)).await;
        match exchanged {
            Ok(Next::KeepAlive) => conn.idle(),
            Ok(Next::Close) => break CloseReason::ConnectionClose,
            Ok(Next::Upgraded(upstream)) => {
                // Boxed: its relay state is large, and idle connections must not carry it.
                Box::pin(upgrade::websocket(client, upstream, conn, &ctx)).await;
                return CloseReason::UpgradeEnded;
            }
            Ok(Next::HandOff(owner)) => {
                hand_off(client, conn, &ctx, owner);
                return CloseReason::OwnerElsewhere;
            }
            Err(End::Answered(e)) => {
                // Boxed: a refusal's timed write would otherwise size every idle task.
                if !Box::pin(refuse(&mut client, &mut conn, &ctx, e)).await {
                    return CloseReason::Error("client write failed");
                }
                break CloseReason::Refused(e.status());
            }
            Err(End::Broken(why)) => {
                tracing::debug!(target: LOG, peer = %peer, why, "connection broken");
                return CloseReason::Error(why);
            }
            Err(End::Quiet) => break CloseReason::PeerClosed,
            Err(End::Idle) => break CloseReason::IdleTimeout,
        }
    };
    let _ = client.shutdown().await;
    match closed {
        // A stop ends idle connections and answers the last request with `close`.
        CloseReason::PeerClosed | CloseReason::ConnectionClose if ctx.shutdown.is_triggered() => {
            CloseReason::Shutdown
        }
        _ => closed,
    }
}

/// Answers a refused request with its canned response; `false` when that write failed.
async fn refuse<S: ClientStream>(
    client: &mut S,
    c: &mut Conn,
    ctx: &WorkerState,
    e: HttpError,
) -> bool {
    tracing::debug!(target: LOG, peer = %c.peer, status = e.status(), reason = %e, "refused");
    match e {
        HttpError::BadGateway(_) => Metrics::inc(&ctx.metrics.upstream_connect_errors),
        HttpError::GatewayTimeout => Metrics::inc(&ctx.metrics.upstream_timeouts),
        _ => {}
    }
    let answer = e.response_to(c.is_head);
    c.sent += answer.len() as u64;
    log_access(ctx, c, e.status());
    let written = monoio::time::timeout(ctx.timeouts.body, client.write_all(answer)).await;
    matches!(written, Ok((Ok(_), _)))
}

/// Moves the connection to the worker that owns its session: at most one hop per client
/// connection, after which every request is served where the session lives.
fn hand_off<S: ClientStream>(client: S, conn: Conn, ctx: &WorkerState, owner: u8) {
    let Some(peer_inbox) = ctx.peers.get(usize::from(owner)) else {
        // A session id from another gateway instance (or forged): no such worker here.
        tracing::debug!(target: LOG, owner, "session names an unknown worker; closing");
        return;
    };
    let Some(fd) = client.into_fd() else { return };
    Metrics::inc(&ctx.metrics.handoffs);
    let mut conn = conn;
    let buffered = std::mem::take(&mut conn.cbuf);
    // The buffer goes with the connection: the owner's pool counts it from now on.
    conn.pool.forget(&buffered);
    let msg = WorkerMsg::HandOff {
        fd,
        peer: conn.peer,
        buffered,
    };
    if peer_inbox.send(msg).is_err() {
        tracing::warn!(target: LOG, owner, "owner worker is gone; connection dropped");
    }
}

impl Conn {
    /// Between requests: with no pipelined bytes waiting, every buffer goes back to the pool.
    fn idle(&mut self) {
        if self.cbuf.is_empty() {
            self.pool.reclaim(&mut self.cbuf);
        }
        self.pool.reclaim(&mut self.obuf);
        self.pool.reclaim(&mut self.rbuf);
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        self.pool.reclaim(&mut self.cbuf);
        self.pool.reclaim(&mut self.obuf);
        self.pool.reclaim(&mut self.rbuf);
    }
}

/// Counts the answer in the metrics and, with `sessiongate.access-log`, writes its line
/// (target `sessiongate::access`). Only borrowed values and numbers go into the event, so
/// the formatted line is the one allocation (the writer thread's copy of it).
fn log_access(ctx: &WorkerState, c: &Conn, status: u16) {
    ctx.metrics.response(status);
    let elapsed = c.started.elapsed();
    let micros = elapsed.as_micros() as u64;
    ctx.metrics.request_done(c.route_slot, status, micros);
    if !ctx.access_log {
        return;
    }
    // Attacker bytes: lossy UTF-8 (borrowed when valid), escaped by either format.
    let request = String::from_utf8_lossy(&c.log_request);
    let route = c.route.as_deref();
    // A reference tells sessions apart without being the cookie; computed (a SHA-256 of
    // the id) only when the line is written, as every value in the macros is.
    let session = || c.session.as_ref().map(|s| display(s.reference()));
    if crate::logging::structured() {
        let (method, path) = match request.split_once(' ') {
            Some((m, p)) => (Some(m), Some(p)),
            None => (None, None),
        };
        // Elastic Common Schema names (durations in nanoseconds), ours under `sessiongate`.
        tracing::info!(
            target: "sessiongate::access",
            {
                client.address = %c.peer.ip(),
                client.port = c.peer.port(),
                http.request.method = method,
                url.path = path,
                http.response.status_code = status,
                http.response.bytes = c.sent,
                event.duration = elapsed.as_nanos() as u64,
                sessiongate.upstream.duration = c.upstream_time.map(|d| d.as_nanos() as u64),
                sessiongate.route.id = route,
                sessiongate.session = session(),
            },
            "{} {status}",
            if request.is_empty() { "-" } else { &request },
        );
    } else {
        tracing::info!(
            target: "sessiongate::access",
            peer = %c.peer,
            request = %if request.is_empty() { "-".into() } else { request }.escape_debug(),
            status,
            bytes = c.sent,
            micros,
            upstream_micros = c.upstream_time.map(|d| d.as_micros() as u64),
            route = route.map(|r| display(r.escape_debug())),
            session = session(),
            worker = ctx.worker,
        );
    }
}

/// Writes `bytes` to the client within `dur`.
async fn write_all<S: AsyncWriteRent>(s: &mut S, bytes: &[u8], dur: Duration) -> Result<(), End> {
    // monoio writes owned buffers; a copy of a small head is cheaper than threading buffers.
    let v = bytes.to_vec();
    match monoio::time::timeout(dur, s.write_all(v)).await {
        Ok((Ok(_), _)) => Ok(()),
        _ => Err(End::Broken("client write failed")),
    }
}

/// Writes `c.obuf` whole to `s` within `dur` and hands the (cleared) buffer back to `c`.
async fn flush_obuf<S: AsyncWriteRent>(
    s: &mut S,
    c: &mut Conn,
    dur: Duration,
) -> std::io::Result<()> {
    let out = std::mem::take(&mut c.obuf);
    let write = c.pool.lend_during(out, |o| s.write_all(o));
    let (res, out) = monoio::time::timeout(dur, write)
        .await
        .unwrap_or_else(|_| (Err(std::io::ErrorKind::TimedOut.into()), Vec::new()));
    c.obuf = out;
    c.obuf.clear();
    res.map(|_| ())
}
