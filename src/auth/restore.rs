//! Sessions carried over a restart (`sessiongate.session-snapshot`): exported after the
//! worker drained, imported before it accepts. A restored session is counted exactly like
//! one a login made (`create_session`
//! in [`super::login`]) (the gateway-wide count, the per-user
//! registry, the gauge), but it is not created again: no `sessions_created`, no audit
//! event, no log line per session (the start logs one line for all).

use std::sync::atomic::Ordering;

use crate::session::record::{export, import, Epoch};
use crate::session::snapshot::Record;

use super::{Gate, LOG};

impl Gate {
    /// Every session this worker holds, on the wall clock (the main thread leaves out the
    /// expired ones when it writes the file, by the same rule the next start reads it by).
    pub fn export_sessions(&self) -> Vec<Record> {
        let epoch = Epoch::new(self.clock.now_ms(), self.clock.unix_ms());
        let mut out = Vec::new();
        self.store.borrow_mut().for_each_mut(&mut |s| {
            let (meta, tokens) = export(s, epoch);
            out.push(Record { meta, tokens });
        });
        out
    }

    /// Adopts sessions this worker held before the restart (already judged live and
    /// within `cg.maxSessions` by the start); answers how many.
    pub fn restore(&self, records: Vec<Record>) -> usize {
        let epoch = Epoch::new(self.clock.now_ms(), self.clock.unix_ms());
        let mut n = 0;
        for r in records {
            let Some(s) = import(r.meta, r.tokens, epoch) else {
                continue;
            };
            let (id, subject) = (*s.id(), s.subject().to_string());
            if self.store.borrow_mut().insert(s).is_some() {
                // The same id twice in one file: already counted once.
                continue;
            }
            self.shared.sessions.fetch_add(1, Ordering::Relaxed);
            self.metrics.sessions.fetch_add(1, Ordering::Relaxed);
            // No limit here: the sessions were within it when written; a limit lowered
            // since takes effect at the user's next login, which ends the oldest.
            self.shared.users.add(&subject, id, 0);
            n += 1;
        }
        tracing::debug!(target: LOG, worker = self.worker, restored = n, "sessions restored");
        n
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;

    use super::super::tests::{gate, session};

    /// What one gate exports another adopts, counted like a login but not created again.
    #[test]
    fn exported_sessions_are_adopted_and_counted() {
        let (old, hand, _) = gate("", None);
        let id = session(&old, 60_000);
        hand.advance_secs(5);
        let records = old.export_sessions();
        assert_eq!(records.len(), 1);

        let (new, _, _) = gate("", None);
        assert_eq!(new.restore(records), 1);
        let store = new.store.borrow();
        let s = store.get(&id).expect("restored under the same id");
        assert_eq!(&*s.access_token, "at-1");
        assert_eq!(&*s.refresh_token, "rt-1");
        assert_eq!(new.shared.sessions.load(Ordering::Relaxed), 1);
        assert_eq!(new.metrics.sessions.load(Ordering::Relaxed), 1);
        assert_eq!(new.metrics.sessions_created.load(Ordering::Relaxed), 0);
        assert_eq!(new.shared.users.count("alice"), 1);
    }
}
