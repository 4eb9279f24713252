//! After a 101: the WebSocket relay. A WebSocket of a session is closed when the session
//! ends, keeps the session alive while data flows, and (with
//! `keep-alive-after-disconnect`) its closing starts the grace after which an abandoned
//! session ends.

use std::rc::Rc;
use std::time::{Duration, Instant};

use monoio::io::{AsyncReadRent, AsyncWriteRent, AsyncWriteRentExt, Split, Splitable};

use crate::net::inbound::ClientStream;
use crate::state::WorkerState;
use crate::upstream::Stream;

use super::{Conn, LOG};

/// Runs an upgraded connection: bytes flow both ways until either side closes or idles out. A WebSocket of a session is closed when the session ends,
/// keeps the session alive while data flows, and (with keep-alive-after-disconnect) its
/// closing starts the grace after which an abandoned session ends.
pub(super) async fn websocket<S: ClientStream>(
    client: S,
    upstream: Stream,
    conn: Conn,
    ctx: &Rc<WorkerState>,
) {
    let idle = ctx.timeouts.idle;
    let bound = conn.session.zip(ctx.gate.as_ref());
    let Some((id, gate)) = bound else {
        match upstream {
            Stream::Plain(u) => splice(client, u, conn, idle, None).await,
            Stream::Tls(u) => splice(client, *u, conn, idle, None).await,
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
            Stream::Plain(u) => splice(client, u, conn, idle, Some(touch)).await,
            Stream::Tls(u) => splice(client, *u, conn, idle, Some(touch)).await,
        }
    };
    monoio::select! {
        _ = run => {}
        _ = ended.wait() => {
            tracing::debug!(target: LOG, session = %id.reference(), "session ended: WebSocket closed");
        }
    }
    if gate.ws_closed(&id) {
        if let Some(grace) = gate.keep_alive_after_disconnect() {
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
    let mut c = c;
    // The bytes after the upgrade head go upstream once; their buffer leaves the pool.
    let early = std::mem::take(&mut c.cbuf);
    c.pool.forget(&early);
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
