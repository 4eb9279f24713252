//! Logins in progress: what the callback needs to finish a login the gateway started
//! (PKCE verifier, nonce, where the user was going), keyed by the OAuth2 `state`.
//!
//! Kept server-side, so several tabs can log in at once and no flow cookies pile up. The
//! first two hex digits of a `state` name the worker that issued it. Bounded in number;
//! every operation takes `now` (milliseconds on the worker's session clock).

use hashbrown::HashMap;

/// One login in progress.
pub struct PendingLogin {
    pub nonce: String,
    pub verifier: String,
    pub return_to: String,
    pub redirect_uri: String,
    pub created_ms: u64,
}

/// The table is full of logins that are all still young.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Full;

/// Why a callback's `state` found no login to finish.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Missing {
    /// Unknown, already used, or swept.
    Unknown,
    /// Found, but older than the TTL: removed.
    Expired,
}

/// One worker's pending logins.
pub struct PendingLogins {
    map: HashMap<String, PendingLogin>,
    ttl_ms: u64,
    max: usize,
}

impl PendingLogins {
    pub fn new(ttl_ms: u64, max: usize) -> PendingLogins {
        PendingLogins {
            map: HashMap::new(),
            ttl_ms,
            max,
        }
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Adds a login; when the table is full, logins past their TTL are swept first, and if
    /// none was, the new one is refused.
    pub fn insert(&mut self, state: String, login: PendingLogin, now: u64) -> Result<(), Full> {
        if self.map.len() >= self.max {
            let ttl = self.ttl_ms;
            self.map
                .retain(|_, l| now.saturating_sub(l.created_ms) < ttl);
            if self.map.len() >= self.max {
                return Err(Full);
            }
        }
        self.map.insert(state, login);
        Ok(())
    }

    /// Removes and returns the login of `state`, whatever its age (the caller decides with
    /// [`PendingLogins::check_age`]; a peer worker asking for it has its own clock).
    pub fn take(&mut self, state: &str) -> Option<PendingLogin> {
        self.map.remove(state)
    }

    /// The login is still young enough to finish at `now`.
    pub fn check_age(&self, login: &PendingLogin, now: u64) -> Result<(), Missing> {
        if now.saturating_sub(login.created_ms) > self.ttl_ms {
            Err(Missing::Expired)
        } else {
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn login(at: u64) -> PendingLogin {
        PendingLogin {
            nonce: "n".into(),
            verifier: "v".into(),
            return_to: "/".into(),
            redirect_uri: "http://gw/cb".into(),
            created_ms: at,
        }
    }

    #[test]
    fn a_login_expires_after_its_ttl() {
        let mut p = PendingLogins::new(600_000, 10);
        p.insert("00aa".into(), login(1_000), 1_000).unwrap();
        let l = p.take("00aa").unwrap();
        assert_eq!(p.check_age(&l, 601_000), Ok(()));
        assert_eq!(p.check_age(&l, 601_001), Err(Missing::Expired));
        assert!(p.take("00aa").is_none(), "a state is used once");
    }

    #[test]
    fn a_full_table_sweeps_old_logins_before_refusing() {
        let mut p = PendingLogins::new(1_000, 2);
        p.insert("a".into(), login(0), 0).unwrap();
        p.insert("b".into(), login(500), 500).unwrap();
        assert_eq!(p.insert("c".into(), login(900), 900), Err(Full));
        // At 1,200 "a" is past its TTL and makes room; "b" stays.
        p.insert("c".into(), login(1_200), 1_200).unwrap();
        assert_eq!(p.len(), 2);
        assert!(p.take("a").is_none());
        assert!(p.take("b").is_some());
    }
}
