//! Each user's sessions across all workers, oldest first: what the per-user session limit
//! (`sessiongate.max-sessions-per-user`) counts. Shared by the workers behind a mutex,
//! taken only when a session is created or ends, never on the request path.

use std::sync::Mutex;

use hashbrown::HashMap;

use super::SessionId;

#[derive(Default)]
pub struct UserSessions {
    by_subject: Mutex<HashMap<Box<str>, Vec<SessionId>>>,
}

impl UserSessions {
    /// Records a new session of `subject`; with `max` sessions per user (0: no limit),
    /// answers the ones that must end to make room, oldest first (already forgotten here).
    pub fn add(&self, subject: &str, id: SessionId, max: u64) -> Vec<SessionId> {
        let mut map = self.by_subject.lock().unwrap_or_else(|p| p.into_inner());
        let list = map.entry(subject.into()).or_default();
        list.push(id);
        let over = match max {
            0 => 0,
            max => list.len().saturating_sub(max as usize),
        };
        list.drain(..over).collect()
    }

    /// Forgets an ended session.
    pub fn remove(&self, subject: &str, id: &SessionId) {
        let mut map = self.by_subject.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(list) = map.get_mut(subject) {
            list.retain(|s| s != id);
            if list.is_empty() {
                map.remove(subject);
            }
        }
    }

    /// How many sessions `subject` has.
    pub fn count(&self, subject: &str) -> usize {
        let map = self.by_subject.lock().unwrap_or_else(|p| p.into_inner());
        map.get(subject).map_or(0, Vec::len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u8) -> SessionId {
        SessionId::from_bytes([n; super::super::ID_LEN])
    }

    #[test]
    fn beyond_the_limit_the_oldest_sessions_go() {
        let u = UserSessions::default();
        assert!(u.add("alice", id(1), 2).is_empty());
        assert!(u.add("alice", id(2), 2).is_empty());
        assert!(u.add("bob", id(9), 2).is_empty(), "counted per user");
        assert_eq!(u.add("alice", id(3), 2), vec![id(1)]);
        assert_eq!(u.count("alice"), 2);
        u.remove("alice", &id(2));
        assert!(
            u.add("alice", id(4), 2).is_empty(),
            "an ended session frees its place"
        );
        assert!(u.add("carol", id(5), 0).is_empty() && u.add("carol", id(6), 0).is_empty());
        u.remove("bob", &id(9));
        assert_eq!(u.count("bob"), 0);
    }
}
