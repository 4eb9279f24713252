//! WebSockets bound to their session: peers check authorization only at upgrade time, so
//! a revoked user would keep a live socket. Each session's open sockets share a signal
//! that fires when the session ends; traffic on them counts as use of the session.

use std::cell::RefCell;

use hashbrown::HashMap;

use crate::session::SessionId;
use crate::signal::Signal;

use super::Gate;

/// Open WebSockets per session of this worker.
#[derive(Default)]
pub struct WebSockets {
    open: RefCell<HashMap<SessionId, (u16, Signal)>>,
}

impl WebSockets {
    pub fn any_open(&self, id: &SessionId) -> bool {
        self.open.borrow().contains_key(id)
    }

    /// Closes every WebSocket of an ended session.
    pub fn close(&self, id: &SessionId) {
        if let Some((_, signal)) = self.open.borrow_mut().remove(id) {
            signal.trigger();
        }
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

    /// Traffic on a session's WebSocket counts as use of the session.
    pub fn touch(&self, id: &SessionId) {
        let now = self.clock.now_ms();
        self.store.borrow_mut().touch(id, now);
    }
}
