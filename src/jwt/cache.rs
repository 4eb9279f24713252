//! A per-worker cache of verified tokens, so an API client that sends the same bearer token on
//! every request pays for one signature check, not one per request.
//!
//! Single-threaded by design (`Rc`, `&mut self`, no locks): each worker owns one, as it owns
//! its sessions. One cache serves one [`Validation`] and one key-set lineage: call
//! [`VerifyCache::clear`] when the JWKS is swapped, since a key the provider withdrew must stop
//! vouching for tokens at once.
//!
//! # Keying: the full token, not only its hash
//! An entry stores the whole token (`Box<str>`) and a hit requires byte equality, so a hit can
//! never hand out the claims of a different token, whatever the hash does. The alternative, a
//! pair of independent 64-bit keyed hashes plus the length, would save the token's bytes but
//! make correctness rest on a probability; the bytes are affordable: only tokens whose
//! signature verified get in, so an attacker cannot fill the cache with junk, and a token is at
//! most [`MAX_TOKEN_LEN`](super::MAX_TOKEN_LEN) (provider tokens are 1-2 KiB: 4096 entries are
//! about 8 MiB of tokens per worker, plus their parsed claims).
//!
//! The hash only places entries. It is keyed (std's `RandomState`: SipHash-1-3 with a 128-bit
//! key from the operating system's CSPRNG, a different key per cache) so that an attacker
//! cannot aim many lookups at one bucket. It covers the token's length and its last
//! [`HASHED_TAIL`] bytes, which lie in the signature: hashing all of a 1.3 KiB token made a
//! hit cost ~400 ns instead of ~50 ns (`benches/jwt.rs`), and the tail already tells verified
//! tokens apart (192 bits of signature). Two tokens sharing a tail only share a bucket; the byte
//! comparison still refuses the wrong one.
//!
//! # Eviction: CLOCK (second chance)
//! Entries sit in a slab; a hit sets the entry's reference bit. When the cache is full, a hand
//! sweeps the slab: an expired entry, or one whose bit is clear, is replaced; a set bit is
//! cleared and the hand moves on. Amortized O(1) per insert, no list to relink on a hit, and
//! tokens in active use stay while one-off tokens go first.

use super::{verify, Claims, JwkSet, JwtError, Validation};
use hashbrown::HashTable;
use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::rc::Rc;

/// How many trailing bytes of a token the hash covers (see module docs).
pub const HASHED_TAIL: usize = 32;

/// Counters for metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Lookups answered from the cache.
    pub hits: u64,
    /// Lookups that found nothing, or only an expired entry.
    pub misses: u64,
    /// Entries added.
    pub inserts: u64,
    /// Entries pushed out by the CLOCK hand to make room (expired ones included).
    pub evictions: u64,
}

struct Slot {
    hash: u64,
    token: Box<str>,
    claims: Rc<Claims>,
    /// The token's `exp`: the entry answers only while `now < valid_until`.
    valid_until: u64,
    referenced: bool,
}

/// A bounded cache from token to verified claims. See the module docs.
pub struct VerifyCache<S = RandomState> {
    /// Indices into `slots`, placed by `Slot::hash`.
    index: HashTable<usize>,
    slots: Vec<Slot>,
    hand: usize,
    capacity: usize,
    hasher: S,
    stats: CacheStats,
}

impl VerifyCache<RandomState> {
    /// An empty cache holding at most `capacity` tokens (0 disables caching).
    pub fn new(capacity: usize) -> Self {
        Self::with_hasher(capacity, RandomState::new())
    }
}

impl<S: BuildHasher> VerifyCache<S> {
    /// An empty cache with the given hasher. The hasher should be keyed (see module docs); a
    /// weak one costs speed under attack, never correctness.
    pub fn with_hasher(capacity: usize, hasher: S) -> Self {
        VerifyCache {
            index: HashTable::new(),
            slots: Vec::new(),
            hand: 0,
            capacity,
            hasher,
            stats: CacheStats::default(),
        }
    }

    fn hash(&self, token: &str) -> u64 {
        let bytes = token.as_bytes();
        let mut h = self.hasher.build_hasher();
        h.write_usize(bytes.len());
        h.write(&bytes[bytes.len().saturating_sub(HASHED_TAIL)..]);
        h.finish()
    }

    fn find(&self, hash: u64, token: &str) -> Option<usize> {
        let slots = &self.slots;
        self.index
            .find(hash, |&i| {
                slots[i].hash == hash && *slots[i].token == *token
            })
            .copied()
    }

    /// The claims of `token` if it was verified and inserted before and its `exp` is still
    /// after `now`. An expired entry is dropped.
    pub fn get(&mut self, token: &str, now: u64) -> Option<Rc<Claims>> {
        let hash = self.hash(token);
        let Some(i) = self.find(hash, token) else {
            self.stats.misses += 1;
            return None;
        };
        let slot = &mut self.slots[i];
        if slot.valid_until <= now {
            self.remove(i);
            self.stats.misses += 1;
            return None;
        }
        slot.referenced = true;
        self.stats.hits += 1;
        Some(Rc::clone(&slot.claims))
    }

    /// Remembers verified `claims` for `token` until the claims' `exp`. Returns false (and
    /// stores nothing) when caching is off, the token has no `exp`, or it is already past at
    /// `now`. Only insert what [`verify`] accepted with this cache's validation and keys.
    pub fn insert(&mut self, token: &str, claims: Rc<Claims>, now: u64) -> bool {
        if self.capacity == 0 {
            return false;
        }
        let Some(valid_until) = claims.exp().filter(|&exp| exp > now) else {
            return false;
        };
        let hash = self.hash(token);
        if let Some(i) = self.find(hash, token) {
            let slot = &mut self.slots[i];
            slot.claims = claims;
            slot.valid_until = valid_until;
            slot.referenced = true;
            return true;
        }
        let slot = Slot {
            hash,
            token: token.into(),
            claims,
            valid_until,
            referenced: false,
        };
        let i = if self.slots.len() < self.capacity {
            self.slots.push(slot);
            self.slots.len() - 1
        } else {
            let i = self.victim(now);
            let old_hash = self.slots[i].hash;
            if let Ok(entry) = self.index.find_entry(old_hash, |&j| j == i) {
                entry.remove();
            }
            self.slots[i] = slot;
            self.stats.evictions += 1;
            i
        };
        let slots = &self.slots;
        self.index.insert_unique(hash, i, |&j| slots[j].hash);
        self.stats.inserts += 1;
        true
    }

    /// The CLOCK hand's next victim; the slab is full and non-empty. Ends within two sweeps:
    /// the first clears every bit it passes.
    fn victim(&mut self, now: u64) -> usize {
        loop {
            let i = self.hand;
            self.hand = (self.hand + 1) % self.slots.len();
            let slot = &mut self.slots[i];
            if !slot.referenced || slot.valid_until <= now {
                return i;
            }
            slot.referenced = false;
        }
    }

    /// Drops slot `i`, moving the last slot into its place.
    fn remove(&mut self, i: usize) {
        let hash = self.slots[i].hash;
        if let Ok(entry) = self.index.find_entry(hash, |&j| j == i) {
            entry.remove();
        }
        let last = self.slots.len() - 1;
        if i != last {
            let moved = self.slots[last].hash;
            if let Some(pos) = self.index.find_mut(moved, |&j| j == last) {
                *pos = i;
            }
        }
        self.slots.swap_remove(i);
        if self.hand >= self.slots.len() {
            self.hand = 0;
        }
    }

    /// Verifies through the cache: a hit returns the cached claims, a miss runs [`verify`] and
    /// caches what it accepts. Errors are not cached.
    pub fn verify(
        &mut self,
        token: &str,
        keys: &JwkSet,
        validation: &Validation,
        now: u64,
    ) -> Result<Rc<Claims>, JwtError> {
        if let Some(claims) = self.get(token, now) {
            return Ok(claims);
        }
        let claims = Rc::new(verify(token, keys, validation, now)?);
        self.insert(token, Rc::clone(&claims), now);
        Ok(claims)
    }

    /// Forgets everything; call when the key set is replaced.
    pub fn clear(&mut self) {
        self.index.clear();
        self.slots.clear();
        self.hand = 0;
    }

    /// Entries held (expired ones not yet dropped included).
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// Whether the cache holds nothing.
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// Maximum number of entries.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Hit, miss, insert and eviction counts since creation.
    pub fn stats(&self) -> CacheStats {
        self.stats
    }
}

impl<S> std::fmt::Debug for VerifyCache<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifyCache")
            .field("len", &self.slots.len())
            .field("capacity", &self.capacity)
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jwt::testkit;
    use crate::jwt::Alg;
    use serde_json::json;
    use std::hash::BuildHasherDefault;

    const NOW: u64 = 1_700_000_000;
    const ISS: &str = "https://op.example";

    fn validation() -> Validation {
        Validation {
            issuer: ISS.into(),
            audience: "gateway".into(),
            leeway_secs: 0,
            require_exp: true,
        }
    }

    fn token(sub: &str, exp: u64) -> String {
        testkit::p256().token_with_kid(
            Alg::ES256,
            &json!({"iss": ISS, "aud": "gateway", "sub": sub, "exp": exp, "iat": NOW}),
        )
    }

    fn verified(token: &str) -> Rc<Claims> {
        Rc::new(crate::jwt::verify(token, &testkit::all_keys(), &validation(), NOW).unwrap())
    }

    /// Every token hashes to the same value: lookups must still tell tokens apart.
    #[derive(Default)]
    struct Colliding;
    impl Hasher for Colliding {
        fn finish(&self) -> u64 {
            42
        }
        fn write(&mut self, _: &[u8]) {}
    }

    #[test]
    fn hit_returns_the_same_claims() {
        let mut cache = VerifyCache::new(16);
        let t = token("u1", NOW + 60);
        assert!(cache.get(&t, NOW).is_none());
        let claims = verified(&t);
        assert!(cache.insert(&t, Rc::clone(&claims), NOW));
        let hit = cache.get(&t, NOW + 10).unwrap();
        assert!(Rc::ptr_eq(&hit, &claims));
        assert_eq!(hit.sub(), Some("u1"));
        assert_eq!(
            cache.stats(),
            CacheStats {
                hits: 1,
                misses: 1,
                inserts: 1,
                evictions: 0
            }
        );
    }

    #[test]
    fn expiry_is_honoured() {
        let mut cache = VerifyCache::new(16);
        let t = token("u1", NOW + 60);
        cache.insert(&t, verified(&t), NOW);
        assert!(cache.get(&t, NOW + 59).is_some());
        assert!(cache.get(&t, NOW + 60).is_none());
        assert_eq!(cache.len(), 0, "an expired entry is dropped on lookup");
        assert!(cache.get(&t, NOW + 59).is_none());
        // Not cached: already expired at insert, or no exp at all.
        assert!(!cache.insert(&t, verified(&t), NOW + 60));
        let no_exp = testkit::p256().token_with_kid(
            Alg::ES256,
            &json!({"iss": ISS, "aud": "gateway", "sub": "u"}),
        );
        let mut lenient = validation();
        lenient.require_exp = false;
        let claims =
            Rc::new(crate::jwt::verify(&no_exp, &testkit::all_keys(), &lenient, NOW).unwrap());
        assert!(!cache.insert(&no_exp, claims, NOW));
        assert!(cache.is_empty());
    }

    #[test]
    fn a_different_token_never_hits() {
        let t = token("u1", NOW + 60);
        let claims = verified(&t);
        let mut near: Vec<String> = vec![
            token("u1", NOW + 60), // same claims, new ECDSA signature
            t[..t.len() - 1].to_string(),
            format!("{t}A"),
            format!(" {t}"),
            String::new(),
            // Same length and same hashed tail, so the same hash: only the bytes differ.
            format!("x{}", &t[1..]),
        ];
        let mut flipped = t.clone().into_bytes();
        let last = flipped.len() - 1;
        flipped[last] = if flipped[last] == b'A' { b'B' } else { b'A' };
        near.push(String::from_utf8(flipped).unwrap());
        assert!(near.iter().all(|n| *n != t));

        let mut keyed = VerifyCache::new(16);
        let mut colliding =
            VerifyCache::with_hasher(16, BuildHasherDefault::<Colliding>::default());
        keyed.insert(&t, Rc::clone(&claims), NOW);
        colliding.insert(&t, Rc::clone(&claims), NOW);
        for n in &near {
            assert!(keyed.get(n, NOW).is_none());
            assert!(colliding.get(n, NOW).is_none(), "full-collision hasher");
        }
        assert!(keyed.get(&t, NOW).is_some());
        assert!(colliding.get(&t, NOW).is_some());

        // With every hash equal, several entries still stay apart.
        let others: Vec<_> = (0..8).map(|i| token(&format!("u{i}"), NOW + 60)).collect();
        for o in &others {
            colliding.insert(o, verified(o), NOW);
        }
        for (i, o) in others.iter().enumerate() {
            let sub = format!("u{i}");
            assert_eq!(colliding.get(o, NOW).unwrap().sub(), Some(sub.as_str()));
        }
    }

    #[test]
    fn eviction_keeps_the_bound() {
        let mut cache = VerifyCache::new(8);
        let claims = verified(&token("u", NOW + 60));
        // Distinct strings are enough here: the cache only compares them.
        let tokens: Vec<String> = (0..100).map(|i| format!("token-{i}")).collect();
        for t in &tokens {
            assert!(cache.insert(t, Rc::clone(&claims), NOW));
            assert!(cache.len() <= 8);
        }
        assert_eq!(cache.len(), 8);
        assert_eq!(cache.stats().evictions, 92);
        let present = tokens
            .iter()
            .filter(|t| cache.get(t, NOW).is_some())
            .count();
        assert_eq!(present, 8);
        cache.clear();
        assert!(cache.is_empty());
        assert!(tokens.iter().all(|t| cache.get(t, NOW).is_none()));
    }

    #[test]
    fn clock_gives_used_entries_a_second_chance() {
        let mut cache = VerifyCache::new(4);
        let claims = verified(&token("u", NOW + 60));
        for i in 0..4 {
            cache.insert(&format!("t{i}"), Rc::clone(&claims), NOW);
        }
        // t0 and t2 are in use.
        assert!(cache.get("t0", NOW).is_some());
        assert!(cache.get("t2", NOW).is_some());
        cache.insert("n1", Rc::clone(&claims), NOW);
        cache.insert("n2", Rc::clone(&claims), NOW);
        assert!(cache.get("t0", NOW).is_some());
        assert!(cache.get("t2", NOW).is_some());
        assert!(cache.get("t1", NOW).is_none());
        assert!(cache.get("t3", NOW).is_none());
        assert!(cache.get("n1", NOW).is_some());
        assert!(cache.get("n2", NOW).is_some());
    }

    #[test]
    fn expired_entries_are_evicted_first() {
        let mut cache = VerifyCache::new(3);
        let short = verified(&token("short", NOW + 10));
        let long = verified(&token("long", NOW + 600));
        cache.insert("a", Rc::clone(&long), NOW);
        cache.insert("b", Rc::clone(&short), NOW);
        cache.insert("c", Rc::clone(&long), NOW);
        for t in ["a", "b", "c"] {
            assert!(cache.get(t, NOW).is_some());
        }
        // At NOW + 20 "b" has expired; it goes although every entry was used.
        cache.insert("d", Rc::clone(&long), NOW + 20);
        assert!(cache.get("a", NOW + 20).is_some());
        assert!(cache.get("c", NOW + 20).is_some());
        assert!(cache.get("d", NOW + 20).is_some());
        assert_eq!(cache.len(), 3);
    }

    #[test]
    fn removal_keeps_the_index_consistent() {
        let mut cache = VerifyCache::new(8);
        let short = verified(&token("short", NOW + 10));
        let long = verified(&token("long", NOW + 600));
        for i in 0..6 {
            let claims = if i % 2 == 0 { &short } else { &long };
            cache.insert(&format!("t{i}"), Rc::clone(claims), NOW);
        }
        // Lookups at NOW + 10 drop t0, t2, t4, moving later slots around.
        for i in 0..6 {
            let hit = cache.get(&format!("t{i}"), NOW + 10).is_some();
            assert_eq!(hit, i % 2 == 1, "t{i}");
        }
        assert_eq!(cache.len(), 3);
        for i in [1, 3, 5] {
            assert!(cache.get(&format!("t{i}"), NOW + 10).is_some());
        }
        for i in 10..20 {
            cache.insert(&format!("t{i}"), Rc::clone(&long), NOW + 10);
        }
        assert_eq!(cache.len(), 8);
    }

    #[test]
    fn verify_through_the_cache() {
        let keys = testkit::all_keys();
        let mut cache = VerifyCache::new(4);
        let t = token("u1", NOW + 60);
        let a = cache.verify(&t, &keys, &validation(), NOW).unwrap();
        let b = cache.verify(&t, &keys, &validation(), NOW + 1).unwrap();
        assert!(Rc::ptr_eq(&a, &b));
        assert_eq!(cache.stats().hits, 1);
        let last = if t.ends_with('A') { 'B' } else { 'A' };
        let bad = format!("{}{last}", &t[..t.len() - 1]);
        assert!(cache.verify(&bad, &keys, &validation(), NOW).is_err());
        assert_eq!(cache.len(), 1);
        // Past exp the cache does not answer, and verify refuses.
        assert_eq!(
            cache
                .verify(&t, &keys, &validation(), NOW + 60)
                .unwrap_err(),
            JwtError::Expired
        );
        let mut off = VerifyCache::new(0);
        assert!(off.verify(&t, &keys, &validation(), NOW).is_ok());
        assert!(off.is_empty());
    }
}
