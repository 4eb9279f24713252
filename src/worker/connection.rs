//! A TLS connection task: the handshake (bounded by the request-head timeout), then the
//! proxy loop; both ends are audited, also when the task is dropped unfinished.

use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Instant;

use monoio::net::TcpStream;

use crate::audit::{self, CloseReason};
use crate::state::{ConnId, WorkerState};
use crate::tls;

const LOG: &str = "sessiongate::tls";

/// Serves one TLS client connection: handshake (bounded by the request-head timeout), then
/// the proxy loop; both ends are audited.
pub(super) async fn serve_tls(tcp: TcpStream, peer: SocketAddr, ctx: Rc<WorkerState>, id: ConnId) {
    let Some(term) = ctx.tls.as_ref() else {
        crate::proxy::serve(tcp, peer, ctx, Vec::new(), id).await;
        return;
    };
    // Boxed: the handshake's state is freed once it is done, not carried by the connection.
    let handshake = Box::pin(tls::accept(
        tcp,
        term.current(),
        ctx.timeouts.head,
        ctx.buffers.clone(),
    ))
    .await;
    match handshake {
        Ok((stream, hs)) => {
            audit::tls_established(ctx.worker, peer, &hs);
            let mut open = Established {
                worker: ctx.worker,
                peer,
                sni: hs.sni,
                started: Instant::now(),
                reason: None,
            };
            let worker = ctx.worker;
            open.reason = Some(crate::proxy::serve(stream, peer, ctx, Vec::new(), id).await);
            tracing::trace!(target: LOG, worker, peer = %peer, reason = ?open.reason, "TLS connection closed");
        }
        Err(f) => {
            tracing::debug!(target: LOG, worker = ctx.worker, peer = %peer, sni = ?f.sni, reason = %f.reason, "TLS handshake failed");
            audit::tls_failed(ctx.worker, peer, f.sni.as_deref(), f.reason);
        }
    }
}

/// Audits the end of an established connection, also when its task is dropped unfinished
/// (the runtime going away after the shutdown grace period).
struct Established {
    worker: usize,
    peer: SocketAddr,
    sni: Option<Box<str>>,
    started: Instant,
    reason: Option<CloseReason>,
}

impl Drop for Established {
    fn drop(&mut self) {
        audit::tls_terminated(
            self.worker,
            self.peer,
            self.sni.as_deref(),
            self.reason.unwrap_or(CloseReason::Shutdown),
            self.started.elapsed(),
        );
    }
}
