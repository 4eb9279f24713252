//! WebSockets bound to their session: peers check authorization only at upgrade time, so
//! a revoked user would keep a live socket. Each session's open sockets on a worker share a
//! signal that fires when the session ends; traffic on them counts as use of the session.
//! A socket of another worker's session (a TLS connection cannot move to the owner) is
//! registered at the owner too, which tells that worker when the session ends.

use std::cell::RefCell;

use hashbrown::HashMap;

use crate::messages::{PeerRequest, WorkerMsg};
use crate::session::SessionId;
use crate::signal::Signal;

use super::Gate;

/// Open WebSockets per session on this worker, and, for this worker's sessions, the other
/// workers that hold some.
#[derive(Default)]
pub struct WebSockets {
    open: RefCell<HashMap<SessionId, (u16, Signal)>>,
    watchers: RefCell<HashMap<SessionId, Vec<u8>>>,
}

impl WebSockets {
    pub fn any_open(&self, id: &SessionId) -> bool {
        self.open.borrow().contains_key(id)
    }

    /// Closes every WebSocket of an ended session on this worker.
    pub fn close(&self, id: &SessionId) {
        if let Some((_, signal)) = self.open.borrow_mut().remove(id) {
            signal.trigger();
        }
    }

    /// Worker `worker` holds a WebSocket of this worker's session `id`.
    pub fn watch(&self, id: SessionId, worker: u8) {
        let mut w = self.watchers.borrow_mut();
        let list = w.entry(id).or_default();
        if !list.contains(&worker) {
            list.push(worker);
        }
    }

    /// The workers to tell when session `id` ended (forgotten here).
    fn take_watchers(&self, id: &SessionId) -> Vec<u8> {
        self.watchers.borrow_mut().remove(id).unwrap_or_default()
    }
}

impl Gate {
    /// A WebSocket of session `id` opened: the returned signal fires when the session ends.
    pub fn ws_opened(&self, id: &SessionId) -> Signal {
        let mut open = self.websockets.open.borrow_mut();
        let e = open.entry(*id).or_insert_with(|| (0, Signal::new()));
        e.0 = e.0.saturating_add(1);
        e.1.clone()
    }

    /// A WebSocket of session `id` closed; `true` when it was the session's last one.
    pub fn ws_closed(&self, id: &SessionId) -> bool {
        let mut open = self.websockets.open.borrow_mut();
        match open.get_mut(id) {
            Some(e) if e.0 > 1 => {
                e.0 -= 1;
                false
            }
            Some(_) => {
                open.remove(id);
                true
            }
            None => false,
        }
    }

    /// Traffic on a session's WebSocket counts as use of the session, wherever it lives.
    pub fn touch(&self, id: &SessionId) {
        if self.home(id) == self.worker {
            let now = self.clock.now_ms();
            self.store.borrow_mut().touch(id, now);
        } else if let Some(owner) = self.peers.get(usize::from(self.home(id))) {
            let _ = owner.send(WorkerMsg::Peer(PeerRequest::Touch { id: *id }));
        }
    }

    /// A session ended: its WebSockets here close, and the other workers holding some are
    /// told to close theirs.
    pub(super) fn close_websockets(&self, id: &SessionId) {
        self.websockets.close(id);
        for worker in self.websockets.take_watchers(id) {
            if let Some(peer) = self.peers.get(usize::from(worker)) {
                let _ = peer.send(WorkerMsg::CloseWebSockets(*id));
            }
        }
    }

    /// The owner says session `id` ended: close its WebSockets on this worker.
    pub fn close_remote_websockets(&self, id: &SessionId) {
        self.websockets.close(id);
    }
}
