//! Session ids: who owns a session, and the secret that names it in the `SESSION` cookie.
//!
//! An id is 17 bytes: the index of the worker that created it (so any worker can tell
//! where a cookie's session lives without a lookup) and 16 bytes (128 bits)
//! from `ring::rand::SystemRandom`. The cookie carries it as unpadded base64url, always
//! [`COOKIE_LEN`] characters; [`SessionId::parse`] accepts nothing else.
//!
//! The id is a bearer credential: its `Debug` shows the owner and a short prefix only,
//! and there is deliberately no `Display`; use [`SessionId::encode`] to write the cookie.

use std::fmt;
use std::hash::{BuildHasher, Hash, Hasher};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use ring::rand::{SecureRandom, SystemRandom};

/// Random bytes in an id: 128 bits, the floor OWASP sets for session ids.
pub const RANDOM_LEN: usize = 16;

/// Bytes in an id: the owner byte, then the random bytes.
pub const ID_LEN: usize = 1 + RANDOM_LEN;

/// Characters in the cookie form: unpadded base64url of [`ID_LEN`] bytes.
pub const COOKIE_LEN: usize = (ID_LEN * 8).div_ceil(6);

/// One session's id: owner worker byte + 128 random bits.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct SessionId([u8; ID_LEN]);

impl SessionId {
    /// A fresh id owned by worker `owner`. Fails only if the OS random source does.
    pub fn generate(owner: u8, rng: &SystemRandom) -> Result<Self, ring::error::Unspecified> {
        let mut bytes = [0u8; ID_LEN];
        bytes[0] = owner;
        rng.fill(&mut bytes[1..])?;
        Ok(Self(bytes))
    }

    /// Parses the cookie form: exactly [`COOKIE_LEN`] base64url characters, no padding,
    /// canonical (the unused low bits of the last character must be zero, so each id has
    /// exactly one spelling). Anything else is `None`, never an error to report: a wrong
    /// cookie is simply no session.
    pub fn parse(cookie_value: &[u8]) -> Option<Self> {
        if cookie_value.len() != COOKIE_LEN {
            return None;
        }
        // Headroom: the decoder's length estimate rounds up to whole 3-byte groups.
        let mut buf = [0u8; ID_LEN + 3];
        match URL_SAFE_NO_PAD.decode_slice(cookie_value, &mut buf) {
            Ok(ID_LEN) => {
                let mut bytes = [0u8; ID_LEN];
                bytes.copy_from_slice(&buf[..ID_LEN]);
                Some(Self(bytes))
            }
            _ => None,
        }
    }

    /// The cookie form of this id.
    pub fn encode(&self) -> EncodedId {
        let mut out = [0u8; COOKIE_LEN];
        let n = URL_SAFE_NO_PAD
            .encode_slice(self.0, &mut out)
            .expect("COOKIE_LEN fits the encoding of ID_LEN bytes");
        debug_assert_eq!(n, COOKIE_LEN);
        EncodedId(out)
    }

    /// The worker that created (and holds) this session.
    #[inline]
    pub fn owner(&self) -> u8 {
        self.0[0]
    }

    /// A short reference for logs and outgoing-call bookkeeping: the owner and 48 bits of
    /// the id's SHA-256. It tells sessions apart in a log without being the credential:
    /// nothing of the id can be recovered from it.
    pub fn reference(&self) -> SessionRef {
        let d = ring::digest::digest(&ring::digest::SHA256, &self.0);
        let mut r = [0u8; 6];
        r.copy_from_slice(&d.as_ref()[..6]);
        SessionRef(self.owner(), r)
    }

    /// The raw bytes, for a store that persists ids.
    pub fn as_bytes(&self) -> &[u8; ID_LEN] {
        &self.0
    }

    /// An id from raw bytes, for a store that persists ids, and for tests and benches.
    /// New sessions must get their id from [`SessionId::generate`].
    pub fn from_bytes(bytes: [u8; ID_LEN]) -> Self {
        Self(bytes)
    }

    /// 32 of the random bits: all an id's hash is made of (see the `Hash` impl).
    #[inline]
    pub(crate) fn tag(&self) -> u32 {
        let b = &self.0;
        u32::from_le_bytes([b[1], b[2], b[3], b[4]])
    }
}

/// What logs name a session by ([`SessionId::reference`]): `w<owner>-<12 hex digits>`.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct SessionRef(u8, [u8; 6]);

impl fmt::Display for SessionRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "w{}-", self.0)?;
        self.1.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

impl fmt::Debug for SessionRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Spreads a 32-bit tag over the 64 bits hashbrown reads: it takes the bucket from the
/// low bits and a 7-bit filter from the top 7. Multiplying by an odd constant keeps the
/// low bits a bijection of the tag's low bits (uniform, since the tag is) and mixes every
/// tag bit into the top ones. Being a function of 32 stored bits is the point: an index
/// can keep the tag beside its handle (4 bytes) and rehash from it when it grows, without
/// reading the records.
#[inline]
pub(crate) fn widen(tag: u32) -> u64 {
    u64::from(tag).wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

/// Hashing an id takes 4 of its random bytes as they are (then widens them).
///
/// Why that is safe against HashDoS: collision flooding needs the attacker to choose the
/// keys that get *inserted*. Only the gateway inserts ids, and it draws them from the OS
/// CSPRNG, so the keys in the table are uniformly random whatever clients do. A client can
/// only make us *look up* ids of its choosing; each lookup probes one group of the table,
/// and since the stored tags are uniform there is no crowded group to aim at. A keyed hash
/// (SipHash) would cost ~20 ns per request for no protection gained. 32 bits are plenty:
/// they address 2^32 buckets, and two live ids sharing a tag (~1 pair per 2^32/n lookups
/// at n sessions) only costs the second one a full-id comparison.
///
/// Equal ids have equal hashes (the bytes are part of the id), as `Hash` requires.
impl Hash for SessionId {
    #[inline]
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u32(self.tag());
    }
}

/// The `BuildHasher` for maps keyed by [`SessionId`]: the hash is the id's own random bits.
#[derive(Clone, Copy, Debug, Default)]
pub struct IdHashBuilder;

impl BuildHasher for IdHashBuilder {
    type Hasher = IdHasher;
    #[inline]
    fn build_hasher(&self) -> IdHasher {
        IdHasher(0)
    }
}

/// Passes a [`SessionId`]'s random bits through. Meant for `SessionId` keys only: other
/// input is folded in with a multiply-rotate so the hasher stays a correct `Hasher`, but
/// without any flooding resistance.
#[derive(Clone, Copy, Debug)]
pub struct IdHasher(u64);

impl Hasher for IdHasher {
    #[inline]
    fn write_u32(&mut self, v: u32) {
        self.0 = self.0.rotate_left(26) ^ widen(v);
    }

    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(4) {
            let mut word = [0u8; 4];
            word[..chunk.len()].copy_from_slice(chunk);
            self.write_u32(u32::from_le_bytes(word));
        }
    }

    #[inline]
    fn finish(&self) -> u64 {
        self.0
    }
}

impl fmt::Debug for SessionId {
    /// Owner and the first 4 cookie characters (24 bits): enough to tell ids apart in a
    /// log, far too little to replay one.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let enc = self.encode();
        write!(f, "SessionId({}:{}…)", self.owner(), &enc.as_str()[..4])
    }
}

/// The cookie form of a [`SessionId`], on the stack.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct EncodedId([u8; COOKIE_LEN]);

impl EncodedId {
    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).expect("base64url is ASCII")
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for EncodedId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EncodedId({}…)", &self.as_str()[..4])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookie_round_trip_and_length() {
        let rng = SystemRandom::new();
        assert_eq!(COOKIE_LEN, 23);
        for owner in [0u8, 1, 7, 255] {
            let id = SessionId::generate(owner, &rng).unwrap();
            let enc = id.encode();
            assert_eq!(enc.as_bytes().len(), COOKIE_LEN);
            assert!(enc
                .as_bytes()
                .iter()
                .all(|c| c.is_ascii_alphanumeric() || *c == b'-' || *c == b'_'));
            let back = SessionId::parse(enc.as_bytes()).unwrap();
            assert_eq!(back, id);
            assert_eq!(back.owner(), owner);
        }
    }

    #[test]
    fn a_reference_names_a_session_without_its_id() {
        let rng = SystemRandom::new();
        let id = SessionId::generate(3, &rng).unwrap();
        let r = id.reference().to_string();
        assert!(r.starts_with("w3-") && r.len() == 15, "{r}");
        assert_eq!(r, id.reference().to_string(), "stable");
        let cookie = id.encode();
        assert!(!r.contains(&cookie.as_str()[..6]));
        let other = SessionId::generate(3, &rng).unwrap();
        assert_ne!(r, other.reference().to_string());
    }

    #[test]
    fn two_ids_differ() {
        let rng = SystemRandom::new();
        let a = SessionId::generate(3, &rng).unwrap();
        let b = SessionId::generate(3, &rng).unwrap();
        assert_ne!(a, b);
    }

    #[test]
    fn parse_is_strict() {
        let id = SessionId::from_bytes([9; ID_LEN]);
        let good = id.encode();
        let good = good.as_bytes();
        assert!(SessionId::parse(good).is_some());
        // Wrong lengths.
        assert!(SessionId::parse(&good[..COOKIE_LEN - 1]).is_none());
        assert!(SessionId::parse(b"").is_none());
        let mut long = good.to_vec();
        long.push(b'A');
        assert!(SessionId::parse(&long).is_none());
        // Padding is not accepted, even in place of the last character.
        let mut padded = good.to_vec();
        padded[COOKIE_LEN - 1] = b'=';
        assert!(SessionId::parse(&padded).is_none());
        // The standard alphabet's + and / are not base64url.
        for bad in [b'+', b'/', b'.', b' ', 0xC3] {
            let mut v = good.to_vec();
            v[5] = bad;
            assert!(SessionId::parse(&v).is_none(), "byte {bad:#x}");
        }
        // Non-canonical: the last character's two unused low bits set.
        let all_zero = SessionId::from_bytes([0; ID_LEN]).encode();
        let mut v = all_zero.as_bytes().to_vec();
        assert_eq!(v[COOKIE_LEN - 1], b'A');
        v[COOKIE_LEN - 1] = b'B';
        assert!(SessionId::parse(&v).is_none());
    }

    #[test]
    fn debug_does_not_leak_the_id() {
        let id = SessionId::from_bytes([0xAB; ID_LEN]);
        let s = format!("{id:?}");
        assert!(!s.contains(id.encode().as_str()));
        assert!(s.starts_with("SessionId(171:"));
    }

    #[test]
    fn hash_is_four_random_bytes_widened() {
        let mut b = [0xEEu8; ID_LEN];
        b[0] = 5; // the owner byte is not hashed
        b[1..5].copy_from_slice(&0x0102_0304u32.to_le_bytes());
        let id = SessionId::from_bytes(b);
        assert_eq!(id.tag(), 0x0102_0304);
        assert_eq!(IdHashBuilder.hash_one(id), widen(0x0102_0304));
        b[0] = 6;
        b[9] = 0;
        assert_eq!(
            IdHashBuilder.hash_one(SessionId::from_bytes(b)),
            widen(0x0102_0304)
        );
    }
}
