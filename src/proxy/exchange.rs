//! One request/response exchange: read the head, let the session gate decide (answering
//! the gateway's own endpoints here), pick the route's upstream, send the head with the
//! buffered body (retrying once on a fresh connection when a pooled one was stale), stream
//! the rest of the body, and relay the response.

use std::time::Instant;

use crate::auth::{Client, Decision, Gate};
use crate::http::error::HttpError;
use crate::http::forward::{is_trusted, write_upstream_head, Forward};
use crate::http::head::Framing;
use crate::http::reply::Reply;
use crate::http::response::write_response_head;
use crate::http::response::ResponseFraming;
use crate::net::inbound::ClientStream;
use crate::route::Route;
use crate::state::{Routing, WorkerState};
use crate::upstream::Stream;

use super::request::{read_head, read_whole_body, stream_request_body, take_buffered_body};
use super::response::{
    client_framing, read_response_head, relay_interim, stream_response_body, RespErr,
};
use super::{log_access, write_all, Conn, End, Next};

pub(super) async fn exchange<S: ClientStream>(
    client: &mut S,
    c: &mut Conn,
    ctx: &WorkerState,
) -> Result<Next, End> {
    c.log_request.clear();
    // Before the head is read: a head refused while being read belongs to no route or
    // session of the request before it.
    c.bearer = None;
    c.route_slot = 0;
    c.route = None;
    c.session = None;
    c.sent = 0;
    c.upstream_time = None;
    let read = read_head(client, c, ctx).await;
    // From the raw bytes, so that a head refused while being judged is known as HEAD too
    // (the head starts the buffer either way; an accepted one has this very method).
    c.is_head = c.cbuf.starts_with(b"HEAD ");
    read?;
    c.started = Instant::now();
    ctx.buffers.ensure(&mut c.obuf, 4096);
    ctx.buffers.ensure(&mut c.rbuf, crate::net::buffers::LARGE);
    if ctx.access_log {
        // Kept now: the head's bytes leave `cbuf` once the body starts flowing. Never the
        // query: it may carry credentials (a login callback's code and state, API keys).
        let path = c.head.path(&c.cbuf);
        c.log_request.extend_from_slice(c.head.method(&c.cbuf));
        c.log_request.push(b' ');
        c.log_request
            .extend_from_slice(&path[..path.len().min(1024)]);
    }
    let routing = ctx.routing();
    let (buf, head) = (&c.cbuf, &c.head);
    let route = routing
        .router
        .find(head.method(buf), head.host(buf), head.path(buf));
    if let Some(gate) = &ctx.gate {
        if route.is_some_and(|r| r.backchannel_logout) {
            return backchannel(client, c, ctx, gate).await;
        }
        let from = Client {
            peer: c.peer.ip(),
            tls: S::SCHEME == "https",
            movable: S::MOVABLE && ctx.hand_off,
        };
        match gate.decide(head, buf, from).await {
            Decision::Forward { bearer, session } => {
                c.bearer = bearer;
                c.session = session;
            }
            Decision::HandOff(owner) => return Ok(Next::HandOff(owner)),
            Decision::Reply(reply) => return answer(client, c, ctx, &reply).await,
        }
    }
    let route = route.ok_or(End::Answered(HttpError::NotFound))?;
    let (route_index, upstream_id) = pick_upstream(&routing, route)?;
    c.route_slot = routing.route_slot[route_index];
    c.route = Some(routing.route_ids[route_index].clone());
    if let Framing::Length(n) = c.head.body_framing() {
        if ctx.max_body_bytes != 0 && n > ctx.max_body_bytes {
            return Err(End::Answered(HttpError::PayloadTooLarge));
        }
    }
    let is_head = c.is_head;
    let upstream = send_request(client, c, ctx, (&routing, route, upstream_id), is_head).await?;
    relay_response(client, c, ctx, (&routing, upstream_id), upstream, is_head).await
}

/// The provider's back-channel logout call: answered here from its body, never forwarded.
async fn backchannel<S: ClientStream>(
    client: &mut S,
    c: &mut Conn,
    ctx: &WorkerState,
    gate: &Gate,
) -> Result<Next, End> {
    let body = read_whole_body(client, c, ctx, crate::backchannel::MAX_BODY).await?;
    let reply = gate.backchannel(&body).await;
    let keep = c.head.keep_alive && !ctx.shutdown.is_triggered();
    write_reply(client, c, ctx, &reply, keep).await
}

/// An answer of the gateway's own. It reads no body: a request that has one ends the
/// connection.
async fn answer<S: ClientStream>(
    client: &mut S,
    c: &mut Conn,
    ctx: &WorkerState,
    reply: &Reply,
) -> Result<Next, End> {
    let keep = c.head.keep_alive
        && c.head.body_framing() == Framing::Length(0)
        && !ctx.shutdown.is_triggered();
    c.cbuf.drain(..c.head.head_len);
    write_reply(client, c, ctx, reply, keep).await
}

/// Writes a reply of the gateway's own; `keep`: the connection stays open after it.
async fn write_reply<S: ClientStream>(
    client: &mut S,
    c: &mut Conn,
    ctx: &WorkerState,
    reply: &Reply,
    keep: bool,
) -> Result<Next, End> {
    c.obuf.clear();
    reply.write_to(&mut c.obuf, !keep, c.is_head);
    write_all(client, &c.obuf, ctx.timeouts.body).await?;
    c.sent += c.obuf.len() as u64;
    log_access(ctx, c, reply.status);
    Ok(if keep { Next::KeepAlive } else { Next::Close })
}

/// The route's position in the table and the index of its upstream pool.
fn pick_upstream(routing: &Routing, route: &Route) -> Result<(usize, usize), End> {
    let i = routing
        .router
        .routes()
        .iter()
        .position(|r| std::ptr::eq(r, route));
    i.and_then(|i| Some((i, routing.route_upstream[i]?)))
        .ok_or(End::Answered(HttpError::BadGateway(
            "route has no upstream",
        )))
}

/// Sends the request upstream and reads the response head into `c.resp`: the head and
/// whatever body bytes are buffered, then the rest of the body. A pooled connection that
/// turns out to be closed is replaced once, when the request can be replayed (no body
/// streamed yet).
async fn send_request<S: ClientStream>(
    client: &mut S,
    c: &mut Conn,
    ctx: &WorkerState,
    (routing, route, upstream_id): (&Routing, &Route, usize),
    is_head: bool,
) -> Result<Stream, End> {
    c.obuf.clear();
    let forward = Forward {
        route,
        authority: &routing.pools.upstream(upstream_id).authority,
        peer: c.peer.ip(),
        trusted_peer: is_trusted(&ctx.trusted_proxies, c.peer.ip()),
        scheme: c.scheme,
        bearer: c.bearer.as_deref(),
        // Without login the cookie names are the backend's own, passed as they are.
        own_cookies: match ctx.gate {
            Some(_) => &crate::session::cookie::OWN,
            None => &[],
        },
    };
    write_upstream_head(&mut c.obuf, &c.head, &c.cbuf, &forward);
    let mut left = take_buffered_body(c, ctx)?;
    let replayable = matches!(c.head.body_framing(), Framing::Length(0));
    let expect_continue = c.head.expect_continue && left.pending();
    let mut attempt = 0;
    let mut upstream = loop {
        let lease = routing
            .pools
            .lease(upstream_id, attempt)
            .await
            .map_err(End::Answered)?;
        let retry = lease.reused && replayable;
        let mut up = lease.stream;
        if expect_continue && attempt == 0 {
            // We answer 100 ourselves (as nginx does) and drop Expect upstream: relaying the
            // backend's interim answer would need the body and the response read at once.
            const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";
            write_all(client, CONTINUE, ctx.timeouts.body).await?;
            c.sent += CONTINUE.len() as u64;
        }
        let out = std::mem::take(&mut c.obuf);
        let (res, out) = monoio::io::AsyncWriteRentExt::write_all(&mut up, out).await;
        c.obuf = out;
        match res {
            Ok(_) => {}
            Err(_) if retry => {
                attempt += 1;
                continue;
            }
            Err(_) => {
                return Err(End::Answered(HttpError::BadGateway(
                    "upstream write failed",
                )))
            }
        }
        if left.pending() {
            break up;
        }
        // Peek at the response now, so a stale pooled connection can still be replaced.
        c.rbuf.clear();
        let sent = Instant::now();
        match read_response_head(&mut up, c, ctx, is_head).await {
            Ok(()) => {
                upstream_answered(ctx, c, sent);
                return Ok(up);
            }
            Err(RespErr::Closed) if retry => attempt += 1,
            Err(e) => return Err(e.into()),
        }
    };
    stream_request_body(client, &mut upstream, c, ctx, &mut left).await?;
    c.rbuf.clear();
    let sent = Instant::now();
    read_response_head(&mut upstream, c, ctx, is_head).await?;
    upstream_answered(ctx, c, sent);
    Ok(upstream)
}

/// The upstream's time to answer, from the request's last byte to the response head.
fn upstream_answered(ctx: &WorkerState, c: &mut Conn, sent: Instant) {
    let took = sent.elapsed();
    c.upstream_time = Some(took);
    ctx.metrics
        .upstream_answered(c.route_slot, took.as_micros() as u64);
}

/// Relays the response whose head is in `c.resp`: interim answers, a WebSocket upgrade,
/// or the final head and its body; the upstream connection goes back to its pool when it
/// can be reused.
async fn relay_response<S: ClientStream>(
    client: &mut S,
    c: &mut Conn,
    ctx: &WorkerState,
    (routing, upstream_id): (&Routing, usize),
    mut upstream: Stream,
    is_head: bool,
) -> Result<Next, End> {
    let client_minor = c.head.minor;
    relay_interim(client, &mut upstream, c, ctx, is_head).await?;
    if c.resp.code == 101 {
        if !c.head.websocket {
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
        c.sent += c.obuf.len() as u64;
        c.rbuf.clear();
        log_access(ctx, c, 101);
        return Ok(Next::Upgraded(upstream));
    }
    let upstream_framing = c.resp.framing();
    let (to_client, reusable_framing) = client_framing(upstream_framing, client_minor);
    let keep_alive = c.head.keep_alive && reusable_framing && !ctx.shutdown.is_triggered();
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
    c.rbuf.drain(..c.resp.head_len);
    // After an ambiguous request (a GET or HEAD with a body) the backend may still be
    // reading what it took for the next request.
    let reusable = c.resp.reusable && !c.head.ambiguous;
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
