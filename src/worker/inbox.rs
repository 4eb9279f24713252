//! The worker's inbox: what other threads tell it, handled on its own loop.

use std::rc::Rc;

use crate::auth::calls::Listeners;
use crate::backchannel::LogoutError;
use crate::messages::{AdminAnswer, WorkerMsg};
use crate::state::{Routing, WorkerState};

use super::{Open, LOG};

/// Handles the worker's messages until the channel closes.
pub(super) async fn run(rx: flume::Receiver<WorkerMsg>, ctx: Rc<WorkerState>) {
    while let Ok(msg) = rx.recv_async().await {
        match msg {
            WorkerMsg::Stop => ctx.shutdown.trigger(),
            WorkerMsg::Provider(state) => {
                if let Some(g) = &ctx.gate {
                    g.set_provider(state);
                }
            }
            WorkerMsg::Backchannel { token, raw, reply } => {
                let r = match &ctx.gate {
                    Some(g) => g.admit_logout(token, raw),
                    None => Err(LogoutError::NotReady),
                };
                let _ = reply.send(r);
            }
            WorkerMsg::Admin { query, reply } => {
                // With the shared store an answer may wait for Redis: off the inbox loop.
                let ctx = ctx.clone();
                monoio::spawn(async move {
                    let answer = match &ctx.gate {
                        Some(g) => g.admin(query).await,
                        None => AdminAnswer::Sessions(Vec::new()),
                    };
                    let _ = reply.send(answer);
                });
            }
            WorkerMsg::Reload(r) => {
                let routing = Routing::from_config(
                    &r.config,
                    r.upstreams.clone(),
                    &ctx.tls_client,
                    &ctx.metrics,
                );
                *ctx.routing.borrow_mut() = Rc::new(routing);
                if let Some(gate) = &ctx.gate {
                    gate.set_listeners(Listeners::from_config(&r.config.cg));
                }
                tracing::debug!(target: LOG, worker = ctx.worker, "configuration reloaded");
            }
            WorkerMsg::Peer(req) => {
                // Answering may await a token refresh: never block the inbox on it.
                let ctx = ctx.clone();
                monoio::spawn(async move {
                    if let Some(g) = &ctx.gate {
                        g.serve_peer(req).await;
                    }
                });
            }
            WorkerMsg::EndSessions { sid, sub, iat } => {
                if let Some(g) = &ctx.gate {
                    g.end_matching(sid.as_deref(), sub.as_deref(), iat);
                }
            }
            WorkerMsg::CloseWebSockets(id) => {
                if let Some(g) = &ctx.gate {
                    g.close_remote_websockets(&id);
                }
            }
            WorkerMsg::EndSession(id, reason) => {
                if let Some(g) = &ctx.gate {
                    g.end_on_request(&id, reason);
                }
            }
            WorkerMsg::ServerTls(config) => {
                if let Some(t) = &ctx.tls {
                    t.set(config);
                }
            }
            WorkerMsg::HandOff { fd, peer, buffered } => {
                let stream = match monoio::net::TcpStream::from_std(std::net::TcpStream::from(fd)) {
                    Ok(s) => s,
                    Err(e) => {
                        tracing::warn!(target: LOG, worker = ctx.worker, error = %e, "cannot adopt a handed-off connection");
                        continue;
                    }
                };
                // Not held to max-connections: it only moves from one worker to another.
                let guard = Open::new(&ctx);
                let ctx = ctx.clone();
                monoio::spawn(async move {
                    crate::proxy::serve(stream, peer, ctx, buffered, guard.id).await;
                    drop(guard);
                });
            }
        }
    }
    // The main thread is gone: stop as well.
    ctx.shutdown.trigger();
}
