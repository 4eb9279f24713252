//! The per-connection loop: read a request head, route it, forward it upstream with its body
//! streamed, stream the response back, and repeat while the connection persists.
//!
//! Buffers are owned by the connection and reused for every request on it; monoio's
//! ownership-passing I/O moves them into each read or write and hands them back.
//! Every refusal happens before the first byte goes upstream (the buffered part of a chunked
//! body is decoded first), so a smuggling attempt never reaches the backend.

use std::io::Write as _;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use monoio::buf::IoBufMut;
use monoio::io::{AsyncReadRent, AsyncWriteRent, AsyncWriteRentExt, Split, Splitable};
use monoio::net::TcpStream;

use std::os::fd::{FromRawFd, IntoRawFd, OwnedFd};

use crate::audit::CloseReason;
use crate::config::{Filter, GatewayConfig};
use crate::gate::{Gate, Outcome};
use crate::http::body::{write_hex, ChunkedDecoder, Output};
use crate::http::error::HttpError;
use crate::http::head::{self, Framing, Limits, RequestHead};
use crate::http::response::{parse_response, ResponseHead};
use crate::route::Router;
use crate::session::SessionId;
use crate::shutdown::Shutdown;
use crate::upstream::{Pools, UpstreamStream};
use crate::worker::WorkerMsg;

const LOG: &str = "sessiongate::proxy";
/// Size of the body and response read buffers.
const IO_CHUNK: usize = 64 * 1024;
/// Upper bound for an upstream response head.
const MAX_RESPONSE_HEAD: usize = 64 * 1024;

/// What a worker shares with all its connections (single-threaded: `Rc`, no locks).
pub struct Context {
    /// Routes and upstream pools; replaced whole by a configuration reload (SIGHUP) while
    /// requests in flight finish on the table they started with.
    pub routing: std::cell::RefCell<Rc<Routing>>,
    /// Client TLS settings for https upstreams (kept to rebuild pools on a reload).
    pub tls_client: std::sync::Arc<rustls::ClientConfig>,
    pub limits: Limits,
    pub timeouts: Timeouts,
    pub max_body_bytes: u64,
    pub access_log: bool,
    /// `sessiongate.connection-hand-off`.
    pub hand_off: bool,
    pub shutdown: Shutdown,
    pub worker: usize,
    /// This worker's counters (written only here; read by the management listener).
    pub metrics: std::sync::Arc<crate::metrics::Metrics>,
    /// Session handling; `None` when no OAuth2 registration is configured (proxy only).
    pub gate: Option<Gate>,
    /// Every worker's inbox, for handing a connection to the worker that owns its session.
    pub peers: Vec<flume::Sender<WorkerMsg>>,
    /// The server certificate for the TLS listener; `None` without `server.ssl`.
    pub tls: Option<crate::tls::Terminator>,
}

/// The routing table with the upstream pools its routes use.
pub struct Routing {
    pub router: Router,
    /// For each route of `router` (same order), the index of its upstream in `pools`.
    pub route_upstream: Vec<Option<usize>>,
    pub pools: Pools,
}

impl Routing {
    pub fn new(router: Router, pools: Pools) -> Routing {
        // Every route's upstream was resolved before, so the lookup cannot miss.
        let route_upstream = router
            .routes()
            .iter()
            .map(|r| pools.index_of(&r.upstream))
            .collect();
        Routing {
            router,
            route_upstream,
            pools,
        }
    }
}

impl Context {
    /// The current routing table (an `Rc` clone: a reload never pulls it from under a
    /// request).
    pub fn routing(&self) -> Rc<Routing> {
        self.routing.borrow().clone()
    }
}

/// A client stream whose socket can move to another worker.
pub trait ClientStream: AsyncReadRent + AsyncWriteRent + Split + 'static {
    /// `X-Forwarded-Proto` for requests that arrive on this kind of stream.
    const SCHEME: &'static str = "http";

    /// The connection can be handed to another worker ([`ClientStream::into_fd`] works).
    const MOVABLE: bool = true;

    /// The socket, when no operation is in flight and nothing but the socket holds state.
    fn into_fd(self) -> Option<OwnedFd>;
}

impl ClientStream for TcpStream {
    #[allow(unsafe_code)]
    fn into_fd(self) -> Option<OwnedFd> {
        let raw = self.into_raw_fd();
        // SAFETY: `into_raw_fd` gave up the stream's only handle on an open socket (monoio
        // deregistered it from its driver), so nothing else will close or use `raw`: the
        // new `OwnedFd` is its sole owner.
        Some(unsafe { OwnedFd::from_raw_fd(raw) })
    }
}

#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    pub idle: Duration,
    pub head: Duration,
    pub body: Duration,
    pub response: Duration,
}

impl Timeouts {
    pub fn from_config(g: &GatewayConfig) -> Timeouts {
        Timeouts {
            idle: g.connection_idle_timeout,
            head: g.request_head_timeout,
            body: g.body_read_timeout,
            response: g.upstream_response_timeout,
        }
    }
}

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

/// Per-connection state: the buffers reused by every request.
struct Conn {
    peer: SocketAddr,
    /// Bytes read from the client and not yet consumed.
    cbuf: Vec<u8>,
    /// Bytes going out (upstream request head, re-framed bodies, response heads).
    obuf: Vec<u8>,
    /// Bytes read from the upstream and not yet consumed.
    rbuf: Vec<u8>,
    head: RequestHead,
    resp: ResponseHead,
    /// Method and target of the current request, for the access log (empty while no
    /// head has been accepted).
    log_request: Vec<u8>,
    started: Instant,
    /// Header lines the gate adds upstream (the session's `Authorization: Bearer`).
    extra: Vec<u8>,
    /// The request's credentials come from a session: strip its SESSION cookie and any
    /// Authorization the client sent.
    from_session: bool,
    /// The session the current request belongs to.
    session: Option<SessionId>,
    /// `X-Forwarded-Proto`: the client stream's scheme.
    scheme: &'static str,
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
    ctx: Rc<Context>,
    buffered: Vec<u8>,
) -> CloseReason {
    let mut cbuf = buffered;
    cbuf.reserve(
        ctx.limits
            .max_head_bytes
            .max(4096)
            .saturating_sub(cbuf.len()),
    );
    let mut conn = Conn {
        peer,
        cbuf,
        obuf: Vec::with_capacity(4096),
        rbuf: Vec::with_capacity(IO_CHUNK),
        head: RequestHead::default(),
        resp: ResponseHead::default(),
        log_request: Vec::new(),
        started: Instant::now(),
        extra: Vec::new(),
        from_session: false,
        session: None,
        scheme: S::SCHEME,
    };
    let closed = loop {
        match exchange(&mut client, &mut conn, &ctx).await {
            Ok(Next::KeepAlive) => continue,
            Ok(Next::Close) => break CloseReason::ConnectionClose,
            Ok(Next::Upgraded(upstream)) => {
                websocket(client, upstream, conn, &ctx).await;
                return CloseReason::UpgradeEnded;
            }
            Ok(Next::HandOff(owner)) => {
                hand_off(client, conn, &ctx, owner);
                return CloseReason::OwnerElsewhere;
            }
            Err(End::Answered(e)) => {
                tracing::debug!(target: LOG, peer = %peer, status = e.status(), reason = %e, "refused");
                match e {
                    HttpError::BadGateway(_) => {
                        crate::metrics::Metrics::inc(&ctx.metrics.upstream_connect_errors)
                    }
                    HttpError::GatewayTimeout => {
                        crate::metrics::Metrics::inc(&ctx.metrics.upstream_timeouts)
                    }
                    _ => {}
                }
                log_access(&ctx, &conn, e.status());
                let written = with_timeout(ctx.timeouts.body, client.write_all(e.response())).await;
                if !matches!(written, Ok((Ok(_), _))) {
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

enum Next {
    KeepAlive,
    Close,
    Upgraded(UpstreamStream),
    HandOff(u8),
}

/// Moves the connection to the worker that owns its session: at most one hop per client
/// connection, after which every request is served where the session lives.
fn hand_off<S: ClientStream>(client: S, conn: Conn, ctx: &Context, owner: u8) {
    let Some(peer_inbox) = ctx.peers.get(usize::from(owner)) else {
        // A session id from another gateway instance (or forged): no such worker here.
        tracing::debug!(target: LOG, owner, "session names an unknown worker; closing");
        return;
    };
    let Some(fd) = client.into_fd() else { return };
    crate::metrics::Metrics::inc(&ctx.metrics.handoffs);
    let msg = WorkerMsg::HandOff {
        fd,
        peer: conn.peer,
        buffered: conn.cbuf,
    };
    if peer_inbox.send(msg).is_err() {
        tracing::warn!(target: LOG, owner, "owner worker is gone; connection dropped");
    }
}

/// One request/response exchange on the connection.
async fn exchange<S: ClientStream>(
    client: &mut S,
    c: &mut Conn,
    ctx: &Context,
) -> Result<Next, End> {
    c.log_request.clear();
    read_head(client, c, ctx).await?;
    c.started = Instant::now();
    let buf = &c.cbuf;
    let head = &c.head;
    if ctx.access_log {
        // Kept now: the head's bytes leave `cbuf` once the body starts flowing.
        let target = head.target(buf);
        c.log_request.extend_from_slice(head.method(buf));
        c.log_request.push(b' ');
        c.log_request
            .extend_from_slice(&target[..target.len().min(1024)]);
    }
    c.extra.clear();
    c.from_session = false;
    c.session = None;
    let routing = ctx.routing();
    let route = routing
        .router
        .find(head.method(buf), head.host(buf), head.path(buf));
    if let Some(gate) = &ctx.gate {
        let reply = if route.is_some_and(|r| r.backchannel_logout) {
            // The provider's logout call: answered here, never forwarded.
            let body = read_whole_body(client, c, ctx, crate::backchannel::MAX_BODY).await?;
            let reply = gate.backchannel(&body).await;
            c.obuf.clear();
            let keep = c.head.keep_alive && !ctx.shutdown.is_triggered();
            reply.write(&mut c.obuf, !keep);
            write_all(client, &c.obuf, ctx.timeouts.body).await?;
            log_access(ctx, c, reply.status);
            return Ok(if keep { Next::KeepAlive } else { Next::Close });
        } else {
            match gate
                .check(head, buf, &mut c.extra, S::MOVABLE && ctx.hand_off)
                .await
            {
                Outcome::Forward {
                    session,
                    from_session,
                } => {
                    c.from_session = from_session;
                    c.session = session;
                    None
                }
                Outcome::HandOff(owner) => return Ok(Next::HandOff(owner)),
                Outcome::Reply(reply) => Some(reply),
            }
        };
        if let Some(reply) = reply {
            // Gateway answers read no body: a request that has one ends the connection.
            let keep = c.head.keep_alive
                && c.head.body_framing() == Framing::Length(0)
                && !ctx.shutdown.is_triggered();
            c.obuf.clear();
            reply.write(&mut c.obuf, !keep);
            let head_len = c.head.head_len;
            write_all(client, &c.obuf, ctx.timeouts.body).await?;
            c.cbuf.drain(..head_len);
            log_access(ctx, c, reply.status);
            return Ok(if keep { Next::KeepAlive } else { Next::Close });
        }
    }
    let head = &c.head;
    let route = route.ok_or(End::Answered(HttpError::NotFound))?;
    let upstream_id = routing
        .router
        .routes()
        .iter()
        .position(|r| std::ptr::eq(r, route))
        .and_then(|i| routing.route_upstream[i])
        .ok_or(End::Answered(HttpError::BadGateway(
            "route has no upstream",
        )))?;

    let framing = head.body_framing();
    if let Framing::Length(n) = framing {
        if ctx.max_body_bytes != 0 && n > ctx.max_body_bytes {
            return Err(End::Answered(HttpError::PayloadTooLarge));
        }
    }
    let buf = &c.cbuf;
    let head = &c.head;
    let is_head = head.is_head(buf);
    let client_minor = head.minor;
    let websocket = head.websocket;
    let mut keep_alive = head.keep_alive && !ctx.shutdown.is_triggered();

    // The upstream request head, then whatever body bytes are already buffered.
    let mut out = std::mem::take(&mut c.obuf);
    out.clear();
    write_upstream_head(
        &mut out,
        c,
        route,
        &routing.pools.upstream(upstream_id).authority,
    );
    c.obuf = out;
    let head_len = c.head.head_len;
    let (mut body_left, mut decoder) = match framing {
        Framing::Length(n) => {
            let have = ((c.cbuf.len() - head_len) as u64).min(n);
            c.obuf
                .extend_from_slice(&c.cbuf[head_len..head_len + have as usize]);
            c.cbuf.drain(..head_len + have as usize);
            (n - have, None)
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
            (0, if p.done { None } else { Some(d) })
        }
        Framing::Close => unreachable!("requests are never close-delimited"),
    };
    let body_pending = body_left > 0 || decoder.is_some();
    let expect_continue = c.head.expect_continue && body_pending;
    let request_bodiless = matches!(framing, Framing::Length(0));
    // Connect (or reuse), send the head; retry once on a fresh connection when a pooled
    // one turns out to be closed and the request can be replayed (no body streamed yet).
    let mut attempt = 0;
    let mut upstream = loop {
        let (pooled, mut up) = match routing.pools.take(upstream_id) {
            Some(s) if attempt == 0 => (true, s),
            _ => (
                false,
                routing
                    .pools
                    .connect(upstream_id)
                    .await
                    .map_err(End::Answered)?,
            ),
        };
        if expect_continue && attempt == 0 {
            // We answer 100 ourselves (as nginx does) and drop Expect upstream: relaying the
            // backend's interim answer would need the body and the response read at once.
            write_all(client, b"HTTP/1.1 100 Continue\r\n\r\n", ctx.timeouts.body).await?;
        }
        let out = std::mem::take(&mut c.obuf);
        let (res, out) = up.write_all(out).await;
        c.obuf = out;
        match res {
            Ok(_) => {}
            Err(_) if pooled && request_bodiless => {
                attempt += 1;
                continue;
            }
            Err(_) => {
                return Err(End::Answered(HttpError::BadGateway(
                    "upstream write failed",
                )))
            }
        }
        if !body_pending {
            // Peek at the response now, so a stale pooled connection can still be replaced.
            c.rbuf.clear();
            match read_response_head(&mut up, c, ctx, is_head).await {
                Ok(()) => break up,
                Err(RespErr::Closed) if pooled && request_bodiless => {
                    attempt += 1;
                    continue;
                }
                Err(e) => return Err(End::Answered(e.into())),
            }
        }
        break up;
    };

    if body_pending {
        stream_request_body(client, &mut upstream, c, ctx, &mut body_left, &mut decoder).await?;
        c.rbuf.clear();
        read_response_head(&mut upstream, c, ctx, is_head)
            .await
            .map_err(|e| End::Answered(e.into()))?;
    }

    // Interim answers (100, 103 ...) are passed on; then the final head.
    while c.resp.is_interim() {
        c.obuf.clear();
        write_response_head(
            &mut c.obuf,
            &c.rbuf,
            &c.resp,
            ResponseFraming::Interim,
            false,
            client_minor,
        );
        write_all(client, &c.obuf, ctx.timeouts.body).await?;
        c.rbuf.drain(..c.resp.head_len);
        read_response_head(&mut upstream, c, ctx, is_head)
            .await
            .map_err(|e| End::Answered(e.into()))?;
    }

    if c.resp.code == 101 {
        if !websocket {
            return Err(End::Answered(HttpError::BadGateway(
                "unexpected 101 from upstream",
            )));
        }
        c.obuf.clear();
        write_response_head(
            &mut c.obuf,
            &c.rbuf,
            &c.resp,
            ResponseFraming::Upgrade,
            false,
            client_minor,
        );
        c.obuf.extend_from_slice(&c.rbuf[c.resp.head_len..]);
        write_all(client, &c.obuf, ctx.timeouts.body).await?;
        c.rbuf.clear();
        log_access(ctx, c, 101);
        return Ok(Next::Upgraded(upstream));
    }

    let upstream_framing = c.resp.framing();
    let to_client = match upstream_framing {
        Framing::Length(_) => ResponseFraming::AsUpstream,
        Framing::Chunked | Framing::Close if client_minor == 1 => ResponseFraming::Chunked,
        // HTTP/1.0 clients get raw bytes delimited by the close.
        Framing::Chunked | Framing::Close => {
            keep_alive = false;
            ResponseFraming::Raw
        }
    };
    if ctx.shutdown.is_triggered() {
        keep_alive = false;
    }
    c.obuf.clear();
    let code = c.resp.code;
    write_response_head(
        &mut c.obuf,
        &c.rbuf,
        &c.resp,
        to_client,
        !keep_alive,
        client_minor,
    );
    let head_len = c.resp.head_len;
    c.rbuf.drain(..head_len);
    let reusable = c.resp.reusable;
    stream_response_body(client, &mut upstream, c, ctx, upstream_framing, to_client).await?;

    if reusable && c.rbuf.is_empty() {
        routing.pools.put(upstream_id, upstream);
    }
    log_access(ctx, c, code);
    Ok(if keep_alive {
        Next::KeepAlive
    } else {
        Next::Close
    })
}

fn request_body_error(e: crate::http::body::BodyError) -> End {
    match e {
        crate::http::body::BodyError::TooLarge => End::Answered(HttpError::PayloadTooLarge),
        crate::http::body::BodyError::Malformed(why) => End::Answered(HttpError::BadRequest(why)),
    }
}

/// Reads a small request body whole (at most `max` bytes), consuming head and body from
/// `c.cbuf`; for the few requests the gateway answers itself from their body.
async fn read_whole_body<S: AsyncReadRent>(
    client: &mut S,
    c: &mut Conn,
    ctx: &Context,
    max: usize,
) -> Result<Vec<u8>, End> {
    let head_len = c.head.head_len;
    c.cbuf.drain(..head_len);
    let mut body = Vec::new();
    let mut decoder = match c.head.body_framing() {
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
        let done = match (&mut decoder, c.head.body_framing()) {
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
        let spare = spare(std::mem::take(&mut c.cbuf));
        let (res, slice) = monoio::time::timeout(ctx.timeouts.body, client.read(spare))
            .await
            .map_err(|_| End::Answered(HttpError::RequestTimeout))?;
        c.cbuf = slice.into_inner();
        match res {
            Ok(0) | Err(_) => return Err(End::Broken("client closed during request body")),
            Ok(_) => {}
        }
    }
}

/// Reads until `c.head` holds a complete, accepted request head.
async fn read_head<S: AsyncReadRent>(
    client: &mut S,
    c: &mut Conn,
    ctx: &Context,
) -> Result<(), End> {
    let mut deadline: Option<Instant> = None;
    loop {
        // RFC 9112 §2.2: ignore empty lines before a request line (some clients send CRLF
        // after a POST body).
        let skip = c
            .cbuf
            .iter()
            .take_while(|&&b| b == b'\r' || b == b'\n')
            .count();
        if skip > 0 && c.cbuf[..skip].windows(2).all(|w| w != b"\n\n") {
            let whole_pairs = skip - skip % 2;
            if c.cbuf[..whole_pairs].chunks(2).all(|p| p == b"\r\n") {
                c.cbuf.drain(..whole_pairs);
            }
        }
        if !c.cbuf.is_empty() {
            match head::parse_request(&c.cbuf, &ctx.limits, &mut c.head) {
                Ok(Some(())) => return Ok(()),
                Ok(None) => {}
                Err(e) => return Err(End::Answered(e)),
            }
            if deadline.is_none() {
                deadline = Some(Instant::now() + ctx.timeouts.head);
            }
        }
        let idle = c.cbuf.is_empty();
        if idle && ctx.shutdown.is_triggered() {
            return Err(End::Quiet);
        }
        let wait = match deadline {
            Some(d) => d.saturating_duration_since(Instant::now()),
            None => ctx.timeouts.idle,
        };
        reserve_read(&mut c.cbuf, ctx.limits.max_head_bytes + 1);
        let spare = spare(std::mem::take(&mut c.cbuf));
        let read = client.read(spare);
        let outcome = if idle {
            monoio::select! {
                r = monoio::time::timeout(wait, read) => Some(r),
                _ = ctx.shutdown.wait() => None,
            }
        } else {
            Some(monoio::time::timeout(wait, read).await)
        };
        match outcome {
            None => return Err(End::Quiet),
            Some(Err(_elapsed)) => {
                return Err(if idle {
                    End::Idle
                } else {
                    End::Answered(HttpError::RequestTimeout)
                })
            }
            Some(Ok((res, slice))) => {
                c.cbuf = slice.into_inner();
                match res {
                    Ok(0) | Err(_) => return Err(End::Quiet),
                    Ok(_) => {}
                }
            }
        }
    }
}

/// The unfilled capacity of `buf`, for a read that appends.
fn spare(buf: Vec<u8>) -> monoio::buf::SliceMut<Vec<u8>> {
    let (len, cap) = (buf.len(), buf.capacity());
    buf.slice_mut(len..cap)
}

/// Makes sure `buf` has room to read into, growing up to `max` for heads.
fn reserve_read(buf: &mut Vec<u8>, want: usize) {
    let free = buf.capacity() - buf.len();
    if free < 1024 {
        buf.reserve(want.max(4096).saturating_sub(buf.len()).max(1024));
    }
}

/// Streams the rest of the request body from the client to the upstream.
async fn stream_request_body<S: AsyncReadRent>(
    client: &mut S,
    upstream: &mut UpstreamStream,
    c: &mut Conn,
    ctx: &Context,
    body_left: &mut u64,
    decoder: &mut Option<ChunkedDecoder>,
) -> Result<(), End> {
    loop {
        if decoder.is_none() && *body_left == 0 {
            return Ok(());
        }
        // Read what the client sends next.
        if c.cbuf.capacity() < IO_CHUNK {
            c.cbuf.reserve(IO_CHUNK - c.cbuf.len());
        }
        let spare = spare(std::mem::take(&mut c.cbuf));
        let (res, slice) = monoio::time::timeout(ctx.timeouts.body, client.read(spare))
            .await
            .map_err(|_| End::Answered(HttpError::RequestTimeout))?;
        c.cbuf = slice.into_inner();
        match res {
            Ok(0) | Err(_) => return Err(End::Broken("client closed during request body")),
            Ok(_) => {}
        }
        c.obuf.clear();
        if let Some(d) = decoder.as_mut() {
            let p = d.feed(&c.cbuf, &mut c.obuf).map_err(request_body_error)?;
            c.cbuf.drain(..p.consumed);
            if p.done {
                *decoder = None;
            }
        } else {
            let take = (c.cbuf.len() as u64).min(*body_left) as usize;
            c.obuf.extend_from_slice(&c.cbuf[..take]);
            c.cbuf.drain(..take);
            *body_left -= take as u64;
        }
        if !c.obuf.is_empty() {
            let out = std::mem::take(&mut c.obuf);
            let (res, out) = upstream.write_all(out).await;
            c.obuf = out;
            res.map_err(|_| End::Answered(HttpError::BadGateway("upstream write failed")))?;
        }
    }
}

enum RespErr {
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

/// Reads the upstream's response head into `c.rbuf` / `c.resp` (bytes already in `rbuf`
/// count, e.g. after an interim response).
async fn read_response_head(
    upstream: &mut UpstreamStream,
    c: &mut Conn,
    ctx: &Context,
    is_head: bool,
) -> Result<(), RespErr> {
    let deadline = Instant::now() + ctx.timeouts.response;
    loop {
        if !c.rbuf.is_empty() {
            match parse_response(&c.rbuf, MAX_RESPONSE_HEAD, is_head, &mut c.resp) {
                Ok(Some(())) => return Ok(()),
                Ok(None) => {}
                Err(e) => return Err(RespErr::Other(e)),
            }
        }
        reserve_read(&mut c.rbuf, IO_CHUNK);
        let spare = spare(std::mem::take(&mut c.rbuf));
        let wait = deadline.saturating_duration_since(Instant::now());
        let (res, slice) = monoio::time::timeout(wait, upstream.read(spare))
            .await
            .map_err(|_| RespErr::Other(HttpError::GatewayTimeout))?;
        c.rbuf = slice.into_inner();
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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ResponseFraming {
    /// Same as upstream: Content-Length (or none for bodiless answers).
    AsUpstream,
    /// Re-framed as chunked.
    Chunked,
    /// Raw bytes, delimited by closing the connection.
    Raw,
    Interim,
    Upgrade,
}

/// Writes the head the client sees: status line, end-to-end fields, our framing.
fn write_response_head(
    out: &mut Vec<u8>,
    buf: &[u8],
    resp: &ResponseHead,
    framing: ResponseFraming,
    close: bool,
    client_minor: u8,
) {
    let _ = write!(out, "HTTP/1.1 {} ", resp.code);
    out.extend_from_slice(resp.reason(buf));
    out.extend_from_slice(b"\r\n");
    for f in resp.fields.iter().filter(|f| !f.hop) {
        out.extend_from_slice(f.name(buf));
        out.extend_from_slice(b": ");
        out.extend_from_slice(f.value(buf));
        out.extend_from_slice(b"\r\n");
    }
    match framing {
        ResponseFraming::AsUpstream => {
            let n = match resp.framing() {
                Framing::Length(n) => Some(n),
                _ => None,
            };
            // HEAD and 304 answers keep the length the upstream announced; 1xx/204 carry none.
            let announced = if resp.code == 204 || resp.code < 200 {
                None
            } else if n == Some(0) {
                resp.content_length.or(Some(0))
            } else {
                n
            };
            if let Some(n) = announced {
                let _ = write!(out, "Content-Length: {n}\r\n");
            }
        }
        ResponseFraming::Chunked => out.extend_from_slice(b"Transfer-Encoding: chunked\r\n"),
        ResponseFraming::Raw | ResponseFraming::Interim => {}
        ResponseFraming::Upgrade => {
            out.extend_from_slice(b"Connection: Upgrade\r\nUpgrade: websocket\r\n")
        }
    }
    if !matches!(framing, ResponseFraming::Interim | ResponseFraming::Upgrade) {
        if close {
            out.extend_from_slice(b"Connection: close\r\n");
        } else if client_minor == 0 {
            out.extend_from_slice(b"Connection: keep-alive\r\n");
        }
    }
    out.extend_from_slice(b"\r\n");
}

/// Streams the response body (its first bytes are in `c.rbuf`), head already in `c.obuf`.
async fn stream_response_body<S: AsyncWriteRent>(
    client: &mut S,
    upstream: &mut UpstreamStream,
    c: &mut Conn,
    ctx: &Context,
    framing: Framing,
    to_client: ResponseFraming,
) -> Result<(), End> {
    let mut left = match framing {
        Framing::Length(n) => n,
        _ => u64::MAX,
    };
    let mut decoder = match framing {
        Framing::Chunked => Some(ChunkedDecoder::new(
            if to_client == ResponseFraming::Raw {
                Output::Raw
            } else {
                Output::Chunked
            },
            0,
            MAX_RESPONSE_HEAD,
        )),
        _ => None,
    };
    let mut eof = false;
    loop {
        // Move what `rbuf` holds into `obuf` in the client's framing.
        match framing {
            Framing::Length(_) => {
                let take = (c.rbuf.len() as u64).min(left) as usize;
                c.obuf.extend_from_slice(&c.rbuf[..take]);
                c.rbuf.drain(..take);
                left -= take as u64;
            }
            Framing::Chunked => {
                let d = decoder.as_mut().expect("decoder for chunked");
                let p = d
                    .feed(&c.rbuf, &mut c.obuf)
                    .map_err(|_| End::Broken("malformed chunked response from upstream"))?;
                c.rbuf.drain(..p.consumed);
                if p.done {
                    left = 0;
                }
            }
            Framing::Close => {
                if !c.rbuf.is_empty() {
                    if to_client == ResponseFraming::Chunked {
                        write_hex(&mut c.obuf, c.rbuf.len() as u64);
                        c.obuf.extend_from_slice(b"\r\n");
                        c.obuf.extend_from_slice(&c.rbuf);
                        c.obuf.extend_from_slice(b"\r\n");
                    } else {
                        c.obuf.extend_from_slice(&c.rbuf);
                    }
                    c.rbuf.clear();
                }
                if eof {
                    if to_client == ResponseFraming::Chunked {
                        c.obuf.extend_from_slice(b"0\r\n\r\n");
                    }
                    left = 0;
                }
            }
        }
        if !c.obuf.is_empty() {
            let out = std::mem::take(&mut c.obuf);
            let (res, out) = with_timeout(ctx.timeouts.body, client.write_all(out))
                .await
                .unwrap_or_else(|_| (Err(std::io::ErrorKind::TimedOut.into()), Vec::new()));
            c.obuf = out;
            c.obuf.clear();
            res.map_err(|_| End::Broken("client write failed"))?;
        }
        if left == 0 {
            return Ok(());
        }
        reserve_read(&mut c.rbuf, IO_CHUNK);
        let spare = spare(std::mem::take(&mut c.rbuf));
        let (res, slice) = monoio::time::timeout(ctx.timeouts.response, upstream.read(spare))
            .await
            .map_err(|_| End::Broken("upstream stalled during response body"))?;
        c.rbuf = slice.into_inner();
        match res {
            Ok(0) if framing == Framing::Close => eof = true,
            Ok(0) | Err(_) => return Err(End::Broken("upstream closed during response body")),
            Ok(_) => {}
        }
    }
}

/// Writes the upstream request head: request line with the rewritten target, Host of the
/// upstream, end-to-end fields after the route's filters, X-Forwarded-*, and our framing.
fn write_upstream_head(out: &mut Vec<u8>, c: &Conn, route: &crate::route::Route, authority: &str) {
    let (buf, h, peer, extra, from_session, scheme) =
        (&c.cbuf, &c.head, c.peer, &c.extra, c.from_session, c.scheme);
    out.extend_from_slice(h.method(buf));
    out.push(b' ');
    route.rewrite_target(h.target(buf), out);
    out.extend_from_slice(b" HTTP/1.1\r\nHost: ");
    out.extend_from_slice(authority.as_bytes());
    out.extend_from_slice(b"\r\n");
    'fields: for f in h.fields.iter().filter(|f| !f.hop) {
        let name = f.name(buf);
        if from_session {
            if name_is_ci(name, b"authorization") {
                continue;
            }
            if name_is_ci(name, b"cookie") {
                write_cookie_without_session(out, f.value(buf));
                continue;
            }
        }
        for filter in &route.filters {
            match filter {
                Filter::RemoveRequestHeader(n) | Filter::SetRequestHeader(n, _)
                    if name_is_ci(name, n.as_bytes()) =>
                {
                    continue 'fields
                }
                _ => {}
            }
        }
        out.extend_from_slice(name);
        out.extend_from_slice(b": ");
        out.extend_from_slice(f.value(buf));
        out.extend_from_slice(b"\r\n");
    }
    for filter in &route.filters {
        if let Filter::AddRequestHeader(n, v) | Filter::SetRequestHeader(n, v) = filter {
            let _ = write!(out, "{n}: {v}\r\n");
        }
    }
    out.extend_from_slice(extra);
    out.extend_from_slice(b"X-Forwarded-For: ");
    if let Some(i) = h.forwarded_for {
        out.extend_from_slice(h.fields[i].value(buf));
        out.extend_from_slice(b", ");
    }
    let _ = write!(out, "{}\r\nX-Forwarded-Proto: {scheme}\r\n", peer.ip());
    if let Some(host) = h.host(buf).filter(|v| !v.is_empty()) {
        out.extend_from_slice(b"X-Forwarded-Host: ");
        out.extend_from_slice(host);
        out.extend_from_slice(b"\r\n");
    }
    match h.body_framing() {
        Framing::Length(0) if !method_may_have_body(h.method(buf)) => {}
        Framing::Length(n) => {
            let _ = write!(out, "Content-Length: {n}\r\n");
        }
        Framing::Chunked => out.extend_from_slice(b"Transfer-Encoding: chunked\r\n"),
        Framing::Close => {}
    }
    if h.websocket {
        out.extend_from_slice(b"Connection: Upgrade\r\nUpgrade: websocket\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

/// Re-writes a Cookie field without the gateway's SESSION pair; drops it when nothing is left.
fn write_cookie_without_session(out: &mut Vec<u8>, value: &[u8]) {
    let start = out.len();
    out.extend_from_slice(b"Cookie: ");
    let mut any = false;
    for pair in value.split(|&b| b == b';') {
        let pair = crate::http::trim_ows(pair);
        let name = pair.split(|&b| b == b'=').next().unwrap_or_default();
        if pair.is_empty() || name == crate::gate::COOKIE.as_bytes() {
            continue;
        }
        if any {
            out.extend_from_slice(b"; ");
        }
        out.extend_from_slice(pair);
        any = true;
    }
    if any {
        out.extend_from_slice(b"\r\n");
    } else {
        out.truncate(start);
    }
}

/// Methods whose requests usually carry a body: an explicit `Content-Length: 0` is kept for
/// them, since some backends insist on it for POST.
fn method_may_have_body(m: &[u8]) -> bool {
    matches!(m, b"POST" | b"PUT" | b"PATCH")
}

fn name_is_ci(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.eq_ignore_ascii_case(b)
}

fn log_access(ctx: &Context, c: &Conn, status: u16) {
    ctx.metrics.response(status);
    if !ctx.access_log {
        return;
    }
    // Attacker bytes: lossy UTF-8 and escaped, so a log line cannot be forged.
    tracing::info!(
        target: "sessiongate::access",
        peer = %c.peer,
        request = %if c.log_request.is_empty() {
            "-".into()
        } else {
            String::from_utf8_lossy(&c.log_request)
        }
        .escape_debug(),
        status,
        micros = c.started.elapsed().as_micros() as u64,
        worker = ctx.worker,
    );
}

async fn write_all<S: AsyncWriteRent>(s: &mut S, bytes: &[u8], dur: Duration) -> Result<(), End> {
    // monoio writes owned buffers; a copy of a small head is cheaper than threading buffers.
    let v = bytes.to_vec();
    match monoio::time::timeout(dur, s.write_all(v)).await {
        Ok((Ok(_), _)) => Ok(()),
        _ => Err(End::Broken("client write failed")),
    }
}

async fn with_timeout<F: std::future::Future>(dur: Duration, f: F) -> Result<F::Output, ()> {
    monoio::time::timeout(dur, f).await.map_err(|_| ())
}

/// After a 101: bytes flow both ways until either side closes or idles out.
/// Runs an upgraded connection. A WebSocket of a session is closed when the session ends,
/// keeps the session alive while data flows, and (with keep-alive-after-disconnect) its
/// closing starts the grace after which an abandoned session ends.
async fn websocket<S: ClientStream>(
    client: S,
    upstream: UpstreamStream,
    conn: Conn,
    ctx: &Rc<Context>,
) {
    let idle = ctx.timeouts.idle;
    let bound = conn.session.zip(ctx.gate.as_ref());
    let Some((id, gate)) = bound else {
        match upstream {
            UpstreamStream::Plain(u) => splice(client, u, conn, idle, None).await,
            UpstreamStream::Tls(u) => splice(client, *u, conn, idle, None).await,
        }
        return;
    };
    let ended = gate.ws_opened(&id);
    let touch_ctx = ctx.clone();
    let touch: Rc<dyn Fn()> = Rc::new(move || {
        if let Some(g) = &touch_ctx.gate {
            g.touch(&id);
        }
    });
    let run = async {
        match upstream {
            UpstreamStream::Plain(u) => splice(client, u, conn, idle, Some(touch)).await,
            UpstreamStream::Tls(u) => splice(client, *u, conn, idle, Some(touch)).await,
        }
    };
    monoio::select! {
        _ = run => {}
        _ = ended.wait() => {
            tracing::debug!(target: LOG, session = %id.encode().as_str(), "session ended: WebSocket closed");
        }
    }
    if gate.ws_closed(&id) {
        if let Some(grace) = gate.keep_alive_after_disconnect {
            let closed_at = gate.now_ms();
            let ctx = ctx.clone();
            monoio::spawn(async move {
                monoio::time::sleep(grace).await;
                if let Some(g) = &ctx.gate {
                    g.end_if_abandoned(&id, closed_at);
                }
            });
        }
    }
}

async fn splice<S, U>(client: S, upstream: U, c: Conn, idle: Duration, touch: Option<Rc<dyn Fn()>>)
where
    S: AsyncReadRent + AsyncWriteRent + Split + 'static,
    U: AsyncReadRent + AsyncWriteRent + Split + 'static,
{
    let (mut cr, mut cw) = client.into_split();
    let (mut ur, mut uw) = upstream.into_split();
    let early = c.cbuf;
    let touch_up = touch.clone();
    let up = async move {
        if !early.is_empty() {
            let (r, _) = uw.write_all(early).await;
            if r.is_err() {
                return;
            }
        }
        pump(&mut cr, &mut uw, idle, touch_up.as_deref()).await;
        let _ = uw.shutdown().await;
    };
    let down = async move {
        pump(&mut ur, &mut cw, idle, touch.as_deref()).await;
        let _ = cw.shutdown().await;
    };
    monoio::join!(up, down);
}

async fn pump<R: AsyncReadRent, W: AsyncWriteRent>(
    r: &mut R,
    w: &mut W,
    idle: Duration,
    touch: Option<&dyn Fn()>,
) {
    let mut buf = Vec::with_capacity(16 * 1024);
    let mut touched = Instant::now();
    loop {
        buf.clear();
        let (res, b) = match monoio::time::timeout(idle, r.read(buf)).await {
            Ok(x) => x,
            Err(_) => return,
        };
        buf = b;
        match res {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        if let Some(t) = touch {
            // At most once a second: a touch is cheap, but frames can be many.
            if touched.elapsed() >= Duration::from_secs(1) {
                touched = Instant::now();
                t();
            }
        }
        let (res, b) = w.write_all(buf).await;
        buf = b;
        if res.is_err() {
            return;
        }
    }
}
