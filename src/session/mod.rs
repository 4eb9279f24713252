//! The per-worker session core: ids, the session table and the timer wheel that expires
//! sessions, the `SESSION` cookie, logins in progress and remembered provider logouts.
//!
//! # Ownership
//! Each worker owns one [`SessionTable`] outright: no locks, no `Rc`, no atomics. A
//! session lives on the worker that created it; its [`SessionId`] starts with that
//! worker's index ([`SessionId::owner`]), so a request that lands elsewhere knows where to
//! send the question (or the connection) without a lookup.
//!
//! # Time
//! Nothing here reads a clock. Every operation that depends on time takes `now`, in
//! milliseconds since an epoch the worker picks (its start `Instant`, say) and never moves
//! backwards; tests drive a manual clock.
//!
//! # Expiry
//! A session ends when it has been idle for `idle_timeout_ms` (deadline
//! `last_access + idle_timeout`) or, if configured, `max_lifetime_ms` after it was created,
//! whichever comes first. The request path ([`SessionTable::touch`]) only writes
//! `last_access`: O(1), and the session's timer is not moved. The [`wheel`] holds each
//! session once, in the slot of the deadline it had when it was last slotted; when that
//! slot's tick comes, the table recomputes the real deadline and either removes the
//! session (handing it to the caller for audit and logout) or re-slots it. So an active
//! session costs one re-slot per idle timeout, a tick with nothing due costs one slot-head
//! read, and expiring `k` sessions costs O(k). A session is swept at the first tick at or
//! after its deadline (at most one `tick_ms` late, never early); between its deadline and
//! that tick, `touch` already treats it as gone, so a request cannot revive it.
//!
//! A mass expiry (many sessions due in one tick) can be swept in slices with
//! [`SessionTable::expire_at_most`], so one worker never stalls for the whole batch.
//!
//! # Memory
//! Per session, besides the strings (tokens, subject, sid): one 160-byte record in a
//! chunked slab ([`Session`], 136 bytes, plus its wheel link and two group links), one
//! 8-byte `{tag, handle}` entry in the id index and, per distinct sid and subject, one in
//! each group index (hashbrown keeps its tables 44-88% full, so an entry costs 9-21 bytes
//! with its control byte). About 218 bytes at 1M sessions, the worst point of the tables'
//! growth; `benches/session_table.rs` measures it with a counting allocator.
//!
//! Why not `HashMap<SessionId, Session>`: storing the ~150-byte record inside the buckets
//! costs up to 2.3× its size in a half-full table (~350 bytes per session at 1M), and
//! buckets move when the table grows, so the wheel would have to hold 17-byte ids and
//! search for them. Here the buckets hold 8 bytes and the record is stored once, at a
//! stable handle that the wheel and the group lists link through. The price is one more
//! dependent memory access per lookup (control bytes, entry, record instead of control
//! bytes, bucket).
//!
//! # The store boundary
//! The worker's session gate talks to its sessions only through [`SessionStore`]. With the
//! shared store (`session-store: redis`, [`crate::store`]) the same table is the worker's
//! cache: the gate loads a miss from Redis asynchronously and `insert`s it, notes uses for
//! a write-back once a second, runs every end through Redis before (or instead of) the
//! table's `remove`, and lets the table's `expire` only evict (the cluster's expiry is
//! claimed in Redis); ends made elsewhere arrive on a Redis stream as evictions.
//!
//! # Outside the process
//! [`record`] splits a session into what indexes it and its tokens, on the wall clock;
//! [`seal`] seals the tokens under the configured keys; [`snapshot`] is the file the memory
//! store is written to at shutdown and read back from at the next start.

pub mod cookie;
pub mod id;
pub mod pending;
pub mod record;
pub mod seal;
pub mod snapshot;
pub mod table;
pub mod tombstones;
pub mod users;
pub mod wheel;

pub use id::{IdHashBuilder, SessionId, SessionRef, COOKIE_LEN, ID_LEN};
pub use table::{Session, SessionTable, TableConfig, NEVER};

/// Compares two secrets (a login binding, the management token) in time independent of
/// where they differ, so neither can be guessed byte by byte from response times.
pub fn same_secret(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Why a session ends; decides the calls made for it and how it is counted and audited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndReason {
    Expired,
    User,
    Backchannel,
    Admin,
    /// The provider refused the refresh token (`invalid_grant`).
    RefreshRefused,
    /// The user logged in again past `sessiongate.max-sessions-per-user`: the oldest goes.
    Superseded,
}

impl EndReason {
    /// The `reason` label of `sessiongate_sessions_ended_total`.
    pub fn metric(self) -> &'static str {
        match self {
            EndReason::Backchannel => "backchannel",
            EndReason::RefreshRefused => "refresh_refused",
            other => other.label(),
        }
    }

    /// How logs and the audit trail name it.
    pub fn label(self) -> &'static str {
        match self {
            EndReason::Expired => "expired",
            EndReason::User => "user",
            EndReason::Backchannel => "back-channel",
            EndReason::Admin => "admin",
            EndReason::RefreshRefused => "refresh refused",
            EndReason::Superseded => "superseded",
        }
    }
}

/// What the session gate needs from a session store: the request path (`touch`), logins
/// and logouts, the expiry sweep, the admin API and fresh-token rounds.
pub trait SessionStore {
    /// The session, without counting as use.
    fn get(&self, id: &SessionId) -> Option<&Session>;
    /// The session for a change that is not a use (token refresh).
    fn get_mut(&mut self, id: &SessionId) -> Option<&mut Session>;
    /// The session, recording a use at `now` (ms); `None` if unknown or past its deadline.
    fn touch(&mut self, id: &SessionId, now: u64) -> Option<&mut Session>;
    /// Adds a session; returns one it replaced under the same id.
    fn insert(&mut self, session: Session) -> Option<Session>;
    /// Ends a session (logout).
    fn remove(&mut self, id: &SessionId) -> Option<Session>;
    /// Moves every session whose deadline has passed by `now` (ms) into `out`.
    fn expire(&mut self, now: u64, out: &mut Vec<Session>);
    /// The sessions of one provider session (`sid`).
    fn ids_by_sid(&self, sid: &str) -> Vec<SessionId>;
    /// The sessions of one user (`sub`).
    fn ids_by_subject(&self, subject: &str) -> Vec<SessionId>;
    /// Visits every session (fresh-token rounds).
    fn for_each_mut(&mut self, f: &mut dyn FnMut(&mut Session));
    /// How long an unused session lives, in ms.
    fn idle_timeout_ms(&self) -> u64;
}

impl SessionStore for SessionTable {
    fn get(&self, id: &SessionId) -> Option<&Session> {
        SessionTable::get(self, id)
    }

    fn get_mut(&mut self, id: &SessionId) -> Option<&mut Session> {
        SessionTable::get_mut(self, id)
    }

    fn touch(&mut self, id: &SessionId, now: u64) -> Option<&mut Session> {
        SessionTable::touch(self, id, now)
    }

    fn insert(&mut self, session: Session) -> Option<Session> {
        SessionTable::insert(self, session)
    }

    fn remove(&mut self, id: &SessionId) -> Option<Session> {
        SessionTable::remove(self, id)
    }

    fn expire(&mut self, now: u64, out: &mut Vec<Session>) {
        SessionTable::expire(self, now, out)
    }

    fn ids_by_sid(&self, sid: &str) -> Vec<SessionId> {
        SessionTable::ids_by_sid(self, sid).collect()
    }

    fn ids_by_subject(&self, subject: &str) -> Vec<SessionId> {
        SessionTable::ids_by_subject(self, subject).collect()
    }

    fn for_each_mut(&mut self, f: &mut dyn FnMut(&mut Session)) {
        self.iter_mut().for_each(f)
    }

    fn idle_timeout_ms(&self) -> u64 {
        self.config().idle_timeout_ms
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The trait object works end to end (the worker may hold `Box<dyn SessionStore>`).
    #[test]
    fn store_trait_round_trip() {
        let rng = ring::rand::SystemRandom::new();
        let mut store: Box<dyn SessionStore> = Box::new(SessionTable::new(TableConfig {
            idle_timeout_ms: 1_000,
            max_lifetime_ms: None,
            tick_ms: 100,
        }));
        let id = SessionId::generate(2, &rng).unwrap();
        assert!(store
            .insert(Session::new(id, "alice".into(), None, 0))
            .is_none());
        assert_eq!(store.get(&id).unwrap().id().owner(), 2);
        assert!(store.touch(&id, 500).is_some());
        let mut out = Vec::new();
        store.expire(1_400, &mut out);
        assert!(out.is_empty());
        store.expire(1_500, &mut out);
        assert_eq!(out.len(), 1);
        assert!(store.remove(&id).is_none());
    }
}
