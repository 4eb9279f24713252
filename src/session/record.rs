//! A session as it is written outside the process: times on the wall clock (Unix ms, the
//! one clock every instance and the next start share) instead of a worker's monotonic
//! clock, and the tokens apart from the rest so they can be sealed ([`super::seal`]) while
//! the fields that index and expire the session stay readable to the store.

use serde::{Deserialize, Serialize};

use super::table::{Session, NEVER};
use super::SessionId;

/// Converts between a worker's session clock and Unix ms: `unix = mono + offset`, with the
/// offset read once from the worker's clock (`unix_ms() - now_ms()`).
#[derive(Debug, Clone, Copy)]
pub struct Epoch {
    offset: i128,
}

impl Epoch {
    pub fn new(now_ms: u64, unix_ms: u64) -> Epoch {
        Epoch {
            offset: i128::from(unix_ms) - i128::from(now_ms),
        }
    }

    pub fn to_unix(&self, mono_ms: u64) -> u64 {
        if mono_ms == NEVER {
            return NEVER;
        }
        (i128::from(mono_ms) + self.offset).clamp(0, i128::from(NEVER - 1)) as u64
    }

    /// A wall-clock time on this worker's clock; times before the worker's epoch become 0
    /// (a session used long ago is as idle as one used at the epoch, for expiry's purpose
    /// at most one idle timeout off, and the store's own deadline decides first).
    pub fn to_mono(&self, unix_ms: u64) -> u64 {
        if unix_ms == NEVER {
            return NEVER;
        }
        (i128::from(unix_ms) - self.offset).clamp(0, i128::from(NEVER - 1)) as u64
    }
}

/// What indexes and expires a session, readable without the key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Meta {
    pub subject: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
    pub created_unix_ms: u64,
    pub last_access_unix_ms: u64,
    #[serde(default)]
    pub banner_accepted: bool,
}

/// The credentials of a session: sealed before they leave the process.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tokens {
    /// The session id itself (the cookie value) travels sealed: a dump must not yield it.
    pub id: String,
    pub access_token: String,
    pub access_expires_unix_ms: u64,
    #[serde(default)]
    pub refresh_token: String,
    pub refresh_expires_unix_ms: u64,
    #[serde(default)]
    pub id_token: String,
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Tokens(..)")
    }
}

impl Tokens {
    /// JSON: the sealed plaintext.
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("tokens serialise")
    }

    pub fn from_bytes(bytes: &[u8]) -> Option<Tokens> {
        serde_json::from_slice(bytes).ok()
    }
}

/// Splits a session into what is written out.
pub fn export(s: &Session, epoch: Epoch) -> (Meta, Tokens) {
    let meta = Meta {
        subject: s.subject().to_string(),
        sid: s.sid().map(str::to_string),
        created_unix_ms: epoch.to_unix(s.created_ms()),
        last_access_unix_ms: epoch.to_unix(s.last_access_ms()),
        banner_accepted: s.banner_accepted,
    };
    let tokens = Tokens {
        id: s.id().encode().as_str().to_string(),
        access_token: s.access_token.to_string(),
        access_expires_unix_ms: epoch.to_unix(s.access_expires_ms),
        refresh_token: s.refresh_token.to_string(),
        refresh_expires_unix_ms: epoch.to_unix(s.refresh_expires_ms),
        id_token: s.id_token.to_string(),
    };
    (meta, tokens)
}

/// A session back from what [`export`] wrote; `None` when the id is not one.
pub fn import(meta: Meta, tokens: Tokens, epoch: Epoch) -> Option<Session> {
    let id = SessionId::parse(tokens.id.as_bytes())?;
    let mut s = Session::restored(
        id,
        meta.subject.into_boxed_str(),
        meta.sid.map(String::into_boxed_str),
        epoch.to_mono(meta.created_unix_ms),
        epoch.to_mono(meta.last_access_unix_ms),
    );
    s.access_token = tokens.access_token.into();
    s.access_expires_ms = epoch.to_mono(tokens.access_expires_unix_ms);
    s.refresh_token = tokens.refresh_token.into_boxed_str();
    s.refresh_expires_ms = epoch.to_mono(tokens.refresh_expires_unix_ms);
    s.id_token = tokens.id_token.into_boxed_str();
    s.banner_accepted = meta.banner_accepted;
    Some(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn export_import_round_trip_across_epochs() {
        let rng = ring::rand::SystemRandom::new();
        let id = SessionId::generate(1, &rng).unwrap();
        let mut s = Session::new(id, "alice".into(), Some("sid-1".into()), 5_000);
        s.access_token = "at".into();
        s.access_expires_ms = 65_000;
        s.refresh_token = "rt".into();
        s.id_token = "it".into();
        s.banner_accepted = true;
        // Written by a worker whose clock started at Unix 1_000_000 ms ...
        let (meta, tokens) = export(&s, Epoch::new(0, 1_000_000));
        assert_eq!(meta.created_unix_ms, 1_005_000);
        assert_eq!(tokens.refresh_expires_unix_ms, NEVER);
        assert!(!format!("{tokens:?}").contains("rt"));
        // ... read by one that started 2 s later.
        let back = import(meta, tokens, Epoch::new(0, 1_002_000)).unwrap();
        assert_eq!(back.id(), &id);
        assert_eq!(back.created_ms(), 3_000);
        assert_eq!(back.access_expires_ms, 63_000);
        assert_eq!(back.refresh_expires_ms, NEVER);
        assert_eq!(&*back.access_token, "at");
        assert_eq!(back.sid(), Some("sid-1"));
        assert!(back.banner_accepted);
    }

    #[test]
    fn times_before_the_epoch_clamp_to_zero() {
        let e = Epoch::new(0, 10_000);
        assert_eq!(e.to_mono(4_000), 0);
        assert_eq!(e.to_mono(NEVER), NEVER);
    }
}
