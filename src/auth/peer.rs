//! Requests for another worker's session from a connection that cannot move there (TLS):
//! the question travels to the owner by message, and the owner answers from its store.

use std::rc::Rc;
use std::time::Duration;

use crate::http::head::RequestHead;
use crate::messages::{PeerRequest, PeerView, WorkerMsg};
use crate::session::SessionId;

use super::{Decision, Gate};

/// How long a worker waits for another worker's answer.
const PEER_ANSWER: Duration = Duration::from_secs(10);

impl Gate {
    /// Sends a request to worker `owner` and waits (bounded) for its answer.
    pub(super) async fn ask_peer<T>(
        &self,
        owner: u8,
        make: impl FnOnce(flume::Sender<T>) -> PeerRequest,
    ) -> Option<T> {
        let peer = self.peers.get(usize::from(owner))?;
        let (tx, rx) = flume::bounded(1);
        peer.send(WorkerMsg::Peer(make(tx))).ok()?;
        monoio::time::timeout(PEER_ANSWER, rx.recv_async())
            .await
            .ok()?
            .ok()
    }

    /// A session owned by another worker: the owner touches it (refreshing when due) and
    /// sends back what the request needs.
    pub(super) async fn remote_forward(
        &self,
        id: &SessionId,
        head: &RequestHead,
        buf: &[u8],
    ) -> Option<Decision> {
        // A WebSocket opening here must be closed from here when the owner ends the session.
        let websocket_on = head.websocket.then_some(self.worker);
        let view = self
            .ask_peer(self.home(id), |reply| PeerRequest::Lookup {
                id: *id,
                websocket_on,
                reply,
            })
            .await??;
        if self.settings.banner.is_some() && !view.banner_accepted {
            return Some(Decision::Reply(self.banner_page(head, buf)));
        }
        Some(Decision::Forward {
            bearer: Some(Rc::from(view.access_token)),
            session: head.websocket.then_some(*id),
        })
    }

    /// The session is alive, wherever it lives (touching it counts as use).
    pub(super) async fn session_alive(&self, id: &SessionId) -> bool {
        if self.home(id) == self.worker {
            if !self.in_table(id).await {
                return false;
            }
            return self
                .store
                .borrow_mut()
                .touch(id, self.clock.now_ms())
                .is_some();
        }
        let asked = self.ask_peer(self.home(id), |reply| PeerRequest::Lookup {
            id: *id,
            websocket_on: None,
            reply,
        });
        matches!(asked.await, Some(Some(_)))
    }

    /// Owner side of [`PeerRequest`].
    pub async fn serve_peer(&self, req: PeerRequest) {
        match req {
            PeerRequest::Lookup {
                id,
                websocket_on,
                reply,
            } => {
                let view = match self.in_table(&id).await {
                    true => self.session_token(&id).await,
                    false => None,
                };
                let view = view.map(|(token, banner_accepted)| PeerView {
                    access_token: Box::from(&*token),
                    banner_accepted,
                });
                if let (Some(worker), Some(_)) = (websocket_on, &view) {
                    self.websockets.watch(id, worker);
                }
                let _ = reply.send(view);
            }
            PeerRequest::Touch { id } => {
                self.store.borrow_mut().touch(&id, self.clock.now_ms());
            }
            PeerRequest::TakePending {
                state,
                browser,
                reply,
            } => {
                let _ = reply.send(self.take_pending(&state, &browser));
            }
            PeerRequest::EndUser { id, reply } => {
                let _ = reply.send(self.end_user_session(&id));
            }
            PeerRequest::AcceptBanner { id } => self.accept_banner_here(&id),
        }
    }
}
