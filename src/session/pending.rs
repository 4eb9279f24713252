//! Logins in progress: what the callback needs to finish a login the gateway started
//! (PKCE verifier, nonce, where the user was going), keyed by the OAuth2 `state`, and bound
//! to the browser that started it.
//!
//! Kept server-side, so several tabs can log in at once and no flow state travels in
//! cookies: the browser holds only a login-binding value, whose SHA-256 each of its pending
//! logins keeps. The first two hex digits of a `state` name the worker that issued it.
//!
//! Bounded for floods of unauthenticated navigations: by count and by the bytes the entries
//! hold; entries expire on time (the oldest are at the front of an insertion-ordered queue,
//! so expiring costs only what it removes); when full, the oldest goes; and one client may
//! hold only a share of the table, so a single source cannot push real users' logins out.
//! Every operation takes `now` (milliseconds on the worker's session clock).

use std::collections::VecDeque;
use std::net::IpAddr;

use hashbrown::HashMap;

/// A saved target longer than this is not kept (the user lands on `/` after login).
pub const MAX_RETURN_TO: usize = 2048;
/// What an entry costs besides its strings: the map slot, the queue slot, the hash.
const ENTRY_OVERHEAD: usize = 160;
/// Finished logins remembered (state → target), for a callback opened again.
const SPENT_MAX: usize = 4096;

/// One login in progress (serialisable: the shared store keeps it sealed for whichever
/// instance the provider sends the browser back to).
#[derive(serde::Serialize, serde::Deserialize)]
pub struct PendingLogin {
    pub nonce: String,
    pub verifier: String,
    pub return_to: String,
    pub redirect_uri: String,
    pub created_ms: u64,
    /// SHA-256 of the browser's login-binding cookie.
    pub browser: [u8; 32],
    /// The client that started it (its share of the table).
    pub client: IpAddr,
}

impl PendingLogin {
    fn cost(&self, state: &str) -> usize {
        ENTRY_OVERHEAD
            + 2 * state.len()
            + self.nonce.len()
            + self.verifier.len()
            + self.return_to.len()
            + self.redirect_uri.len()
    }
}

/// The limits of one worker's table.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub ttl_ms: u64,
    pub max_entries: usize,
    pub max_bytes: usize,
    /// The most pending logins one client may hold.
    pub per_client: usize,
}

/// Why a callback's `state` found no login to finish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Missing {
    /// Unknown, expired and swept, or evicted.
    Unknown,
    /// Found, but older than the TTL: removed.
    Expired,
    /// Already finished; where that login went.
    Used { return_to: String },
    /// Started by another browser (no or another binding cookie): left in place.
    OtherBrowser,
}

/// What an insert did besides adding the login.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Evicted {
    /// Logins past their TTL removed.
    pub expired: usize,
    /// Young logins removed (oldest first) to stay within the limits.
    pub full: usize,
    /// Their states (the shared store forgets its copies of them too, so a flood of login
    /// starts is bounded there as here). Empty, and so not allocated, unless the table was
    /// full.
    pub full_states: Vec<String>,
}

/// Refused: this client holds its whole share already.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShareExceeded;

/// One worker's pending logins.
pub struct PendingLogins {
    map: HashMap<String, PendingLogin>,
    /// States in insertion (= age) order; entries already taken are skipped when met.
    order: VecDeque<(u64, String)>,
    per_client: HashMap<IpAddr, usize>,
    bytes: usize,
    spent: HashMap<String, String>,
    spent_order: VecDeque<String>,
    limits: Limits,
}

impl PendingLogins {
    pub fn new(limits: Limits) -> PendingLogins {
        PendingLogins {
            map: HashMap::new(),
            order: VecDeque::new(),
            per_client: HashMap::new(),
            bytes: 0,
            spent: HashMap::new(),
            spent_order: VecDeque::new(),
            limits,
        }
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// How long a pending login lives, in seconds.
    pub fn ttl_secs(&self) -> u64 {
        self.limits.ttl_ms / 1000
    }

    /// Bytes held by the entries (estimated from their strings).
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Adds a login: expired ones are swept first, then the oldest go while the table is
    /// over its limits. Refused when the login's client already holds its share.
    pub fn insert(
        &mut self,
        state: String,
        login: PendingLogin,
        now: u64,
    ) -> Result<Evicted, ShareExceeded> {
        let mut evicted = Evicted {
            expired: self.sweep(now),
            full: 0,
            full_states: Vec::new(),
        };
        if self.per_client.get(&login.client).copied().unwrap_or(0) >= self.limits.per_client {
            return Err(ShareExceeded);
        }
        let cost = login.cost(&state);
        while !self.map.is_empty()
            && (self.map.len() >= self.limits.max_entries
                || self.bytes + cost > self.limits.max_bytes)
        {
            if let Some((state, _)) = self.pop_oldest() {
                evicted.full += 1;
                evicted.full_states.push(state);
            }
        }
        self.bytes += cost;
        *self.per_client.entry(login.client).or_default() += 1;
        self.order.push_back((login.created_ms, state.clone()));
        self.map.insert(state, login);
        Ok(evicted)
    }

    /// Removes the logins past their TTL; returns how many.
    pub fn sweep(&mut self, now: u64) -> usize {
        let mut n = 0;
        while let Some((created, _)) = self.order.front() {
            if now.saturating_sub(*created) <= self.limits.ttl_ms {
                break;
            }
            if self.pop_oldest().is_some() {
                n += 1;
            }
        }
        n
    }

    /// Takes the login of `state` if the browser's binding (`browser`, the SHA-256 of its
    /// login cookie) is the one it was started with; a login of another browser stays.
    pub fn take(
        &mut self,
        state: &str,
        browser: &[u8; 32],
        now: u64,
    ) -> Result<PendingLogin, Missing> {
        let Some(login) = self.map.get(state) else {
            return Err(match self.spent.get(state) {
                Some(return_to) => Missing::Used {
                    return_to: return_to.clone(),
                },
                None => Missing::Unknown,
            });
        };
        if !super::same_secret(&login.browser, browser) {
            return Err(Missing::OtherBrowser);
        }
        let login = self.remove(state).expect("present");
        if now.saturating_sub(login.created_ms) > self.limits.ttl_ms {
            return Err(Missing::Expired);
        }
        self.remember_spent(state, &login.return_to);
        Ok(login)
    }

    fn remember_spent(&mut self, state: &str, return_to: &str) {
        if self.spent_order.len() >= SPENT_MAX {
            if let Some(old) = self.spent_order.pop_front() {
                self.spent.remove(&old);
            }
        }
        self.spent_order.push_back(state.to_string());
        self.spent.insert(state.to_string(), return_to.to_string());
    }

    /// Removes the oldest entry still present.
    fn pop_oldest(&mut self) -> Option<(String, PendingLogin)> {
        while let Some((created, state)) = self.order.pop_front() {
            if self
                .map
                .get(&state)
                .is_some_and(|l| l.created_ms == created)
            {
                return self.remove(&state).map(|l| (state, l));
            }
        }
        None
    }

    fn remove(&mut self, state: &str) -> Option<PendingLogin> {
        let login = self.map.remove(state)?;
        self.bytes -= login.cost(state);
        if let Some(n) = self.per_client.get_mut(&login.client) {
            *n -= 1;
            if *n == 0 {
                self.per_client.remove(&login.client);
            }
        }
        Some(login)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Limits = Limits {
        ttl_ms: 600_000,
        max_entries: 10,
        max_bytes: 1 << 20,
        per_client: 4,
    };
    const ALICE: [u8; 32] = [1; 32];

    fn login(at: u64, client: u8) -> PendingLogin {
        PendingLogin {
            nonce: "n".into(),
            verifier: "v".into(),
            return_to: "/wanted".into(),
            redirect_uri: "http://gw/cb".into(),
            created_ms: at,
            browser: ALICE,
            client: IpAddr::from([10, 0, 0, client]),
        }
    }

    #[test]
    fn a_login_expires_after_its_ttl() {
        let mut p = PendingLogins::new(LIMITS);
        p.insert("a".into(), login(1_000, 1), 1_000).unwrap();
        p.insert("b".into(), login(1_000, 1), 1_000).unwrap();
        assert!(p.take("a", &ALICE, 601_000).is_ok());
        assert_eq!(p.take("b", &ALICE, 601_001).err(), Some(Missing::Expired));
        assert_eq!(
            p.take("a", &ALICE, 601_002).err(),
            Some(Missing::Used {
                return_to: "/wanted".into()
            }),
            "a state is used once, and remembered"
        );
        // Expiry happens on time, not only when the table is full.
        p.insert("c".into(), login(700_000, 1), 700_000).unwrap();
        assert_eq!(p.sweep(1_300_001), 1);
        assert!(p.is_empty());
        assert_eq!(p.bytes(), 0);
    }

    #[test]
    fn another_browser_cannot_take_a_login_nor_spoil_it() {
        let mut p = PendingLogins::new(LIMITS);
        p.insert("a".into(), login(0, 1), 0).unwrap();
        assert_eq!(p.take("a", &[2; 32], 10).err(), Some(Missing::OtherBrowser));
        assert!(
            p.take("a", &ALICE, 20).is_ok(),
            "the starting browser still can"
        );
    }

    #[test]
    fn a_full_table_drops_its_oldest_logins() {
        let mut p = PendingLogins::new(LIMITS);
        for i in 0..10u8 {
            p.insert(format!("s{i}"), login(u64::from(i), i), u64::from(i))
                .unwrap();
        }
        let e = p.insert("new".into(), login(20, 99), 20).unwrap();
        assert_eq!(
            e,
            Evicted {
                expired: 0,
                full: 1,
                full_states: vec!["s0".to_string()],
            }
        );
        assert_eq!(p.len(), 10);
        assert_eq!(p.take("s0", &ALICE, 21).err(), Some(Missing::Unknown));
        assert!(p.take("new", &ALICE, 21).is_ok());
    }

    #[test]
    fn the_table_is_bounded_by_bytes_too() {
        let mut p = PendingLogins::new(Limits {
            max_bytes: 2_000,
            ..LIMITS
        });
        let mut big = login(0, 1);
        big.return_to = "/".repeat(900);
        p.insert("a".into(), big, 0).unwrap();
        let mut big = login(1, 2);
        big.return_to = "/".repeat(900);
        let e = p.insert("b".into(), big, 1).unwrap();
        assert_eq!(e.full, 1, "the older one made room");
        assert!(p.bytes() <= 2_000);
    }

    #[test]
    fn one_client_holds_only_its_share() {
        let mut p = PendingLogins::new(LIMITS);
        for i in 0..4 {
            p.insert(format!("m{i}"), login(i, 66), i).unwrap();
        }
        assert_eq!(p.insert("m4".into(), login(5, 66), 5), Err(ShareExceeded));
        assert!(
            p.insert("alice".into(), login(5, 1), 5).is_ok(),
            "others still can"
        );
        // Its share comes back as its logins finish.
        assert!(p.take("m0", &ALICE, 6).is_ok());
        assert!(p.insert("m5".into(), login(7, 66), 7).is_ok());
    }
}
