//! Recently ended provider sessions: the `sid` (or `sub` when the logout token had no sid)
//! of each back-channel logout with the logout's `iat`. An ID token issued before that
//! logout cannot start a session, so a logout that overtakes a login still wins.

use hashbrown::HashMap;

/// How long a logout is remembered, in milliseconds of the session clock.
pub const TTL_MS: u64 = 600_000;

#[derive(Default)]
pub struct Tombstones {
    /// key → (logout `iat` in Unix seconds, when it was recorded in ms).
    map: HashMap<String, (u64, u64)>,
}

impl Tombstones {
    /// Records a logout of `key` issued at `iat`; forgets those older than [`TTL_MS`].
    pub fn record(&mut self, key: &str, iat: u64, now: u64) {
        self.map
            .retain(|_, (_, at)| now.saturating_sub(*at) < TTL_MS);
        self.map.insert(key.to_string(), (iat, now));
    }

    /// A login whose ID token (`iat`) predates a remembered logout of its `sid` or `sub`.
    pub fn buries(&self, sid: Option<&str>, sub: &str, iat: u64, now: u64) -> bool {
        [sid, Some(sub)].into_iter().flatten().any(|k| {
            self.map.get(k).is_some_and(|(logout_iat, at)| {
                now.saturating_sub(*at) < TTL_MS && iat <= *logout_iat
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_logout_buries_older_logins_for_its_ttl() {
        let mut t = Tombstones::default();
        t.record("sid-1", 1_000, 0);
        assert!(t.buries(Some("sid-1"), "alice", 999, 10));
        assert!(t.buries(Some("sid-1"), "alice", 1_000, 10));
        assert!(
            !t.buries(Some("sid-1"), "alice", 1_001, 10),
            "a newer login wins"
        );
        assert!(!t.buries(Some("sid-2"), "alice", 999, 10));
        assert!(
            !t.buries(Some("sid-1"), "alice", 999, TTL_MS),
            "forgotten after the TTL"
        );
    }

    #[test]
    fn a_logout_without_sid_buries_by_subject() {
        let mut t = Tombstones::default();
        t.record("alice", 50, 0);
        assert!(t.buries(Some("any"), "alice", 40, 1));
        assert!(t.buries(None, "alice", 40, 1));
        assert!(!t.buries(None, "bob", 40, 1));
    }

    #[test]
    fn recording_sweeps_old_entries() {
        let mut t = Tombstones::default();
        t.record("a", 1, 0);
        t.record("b", 1, TTL_MS + 1);
        assert_eq!(t.map.len(), 1);
    }
}
