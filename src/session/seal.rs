//! Sessions at rest: tokens written outside the process (the shared Redis store, the
//! restart snapshot) are sealed with AES-256-GCM under a configured key, so a Redis dump or
//! a copied snapshot file alone yields no usable token.
//!
//! Why a configured key and not a per-session key in the cookie (as oauth2-proxy does):
//! sessions must be ended when no browser is there to present the cookie (idle expiry
//! with its full logout, back-channel logout, the admin API), and those ends need the
//! tokens (the ID token as logout hint, the refresh token to revoke). Only a key the
//! gateways hold can open them then.
//!
//! Rotation: `sessiongate.session-encryption-keys` is a list; the first key seals, every
//! key opens. Each sealed blob names its key by a 4-byte id (a hash of the key, so the list
//! may be reordered), so an operator adds the new key first, waits out the session
//! lifetime, then drops the old one.
//!
//! Layout of a sealed blob: `[version 1][key id 4][nonce 12][ciphertext][tag 16]`; the
//! caller's `aad` (what the blob belongs to, e.g. the session's Redis key) is authenticated,
//! so a blob moved to another record does not open. Nonces are random (96 bits): within
//! the 2^32 seals per key NIST allows for random nonces, which a key rotated yearly does
//! not approach.

use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use ring::rand::{SecureRandom, SystemRandom};

const VERSION: u8 = 1;
const KEY_ID_LEN: usize = 4;
const HEADER: usize = 1 + KEY_ID_LEN + NONCE_LEN;
/// Bytes of key material each configured key holds.
pub const KEY_LEN: usize = 32;

/// Why a sealed blob did not open.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum OpenError {
    #[error("not a sealed session record (unknown format)")]
    Format,
    #[error("sealed with a key that is not configured (sessiongate.session-encryption-keys)")]
    UnknownKey,
    #[error("the record does not authenticate (tampered, or another record's)")]
    Forged,
}

/// The configured keys: the first seals, all open.
pub struct Keyring {
    keys: Vec<([u8; KEY_ID_LEN], LessSafeKey)>,
    rng: SystemRandom,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The ids only: never key material.
        let ids: Vec<String> = self.keys.iter().map(|(id, _)| hex(id)).collect();
        f.debug_struct("Keyring").field("key_ids", &ids).finish()
    }
}

impl Keyring {
    /// A keyring from raw keys, first one sealing; `None` when the list is empty.
    pub fn new(keys: &[[u8; KEY_LEN]]) -> Option<Keyring> {
        if keys.is_empty() {
            return None;
        }
        let keys = keys
            .iter()
            .map(|k| {
                let unbound = UnboundKey::new(&AES_256_GCM, k).expect("32-byte AES-256 key");
                (key_id(k), LessSafeKey::new(unbound))
            })
            .collect();
        Some(Keyring {
            keys,
            rng: SystemRandom::new(),
        })
    }

    /// Seals `plain`, bound to `aad`.
    pub fn seal(&self, plain: &[u8], aad: &[u8]) -> Vec<u8> {
        let (id, key) = &self.keys[0];
        let mut nonce = [0u8; NONCE_LEN];
        // The system random source failing is not a state a server can continue in.
        self.rng.fill(&mut nonce).expect("system random source");
        let mut out = Vec::with_capacity(HEADER + plain.len() + AES_256_GCM.tag_len());
        out.push(VERSION);
        out.extend_from_slice(id);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(plain);
        let tag = key
            .seal_in_place_separate_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad),
                &mut out[HEADER..],
            )
            .expect("AES-GCM seals any length a session has");
        out.extend_from_slice(tag.as_ref());
        out
    }

    /// Opens a blob [`Keyring::seal`] made with any configured key, bound to the same `aad`.
    pub fn open(&self, sealed: &[u8], aad: &[u8]) -> Result<Vec<u8>, OpenError> {
        if sealed.len() < HEADER + AES_256_GCM.tag_len() || sealed[0] != VERSION {
            return Err(OpenError::Format);
        }
        let id = &sealed[1..1 + KEY_ID_LEN];
        let (_, key) = self
            .keys
            .iter()
            .find(|(k, _)| k == id)
            .ok_or(OpenError::UnknownKey)?;
        let mut nonce = [0u8; NONCE_LEN];
        nonce.copy_from_slice(&sealed[1 + KEY_ID_LEN..HEADER]);
        let mut body = sealed[HEADER..].to_vec();
        let plain = key
            .open_in_place(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad),
                &mut body,
            )
            .map_err(|_| OpenError::Forged)?;
        let n = plain.len();
        body.truncate(n);
        Ok(body)
    }
}

/// The id a sealed blob names its key by: the first bytes of the key's SHA-256 (public;
/// says which key, not what it is).
fn key_id(key: &[u8; KEY_LEN]) -> [u8; KEY_ID_LEN] {
    let d = ring::digest::digest(&ring::digest::SHA256, key);
    let mut id = [0; KEY_ID_LEN];
    id.copy_from_slice(&d.as_ref()[..KEY_ID_LEN]);
    id
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ring(keys: &[u8]) -> Keyring {
        let keys: Vec<[u8; KEY_LEN]> = keys.iter().map(|&b| [b; KEY_LEN]).collect();
        Keyring::new(&keys).unwrap()
    }

    #[test]
    fn sealed_opens_with_same_aad_only() {
        let k = ring(&[1]);
        let sealed = k.seal(b"refresh-token-value", b"sessiongate:{s}:ab");
        assert!(!sealed
            .windows(b"refresh-token-value".len())
            .any(|w| w == b"refresh-token-value"));
        assert_eq!(
            k.open(&sealed, b"sessiongate:{s}:ab").unwrap(),
            b"refresh-token-value"
        );
        assert_eq!(
            k.open(&sealed, b"sessiongate:{s}:cd"),
            Err(OpenError::Forged)
        );
    }

    #[test]
    fn tampered_or_truncated_blobs_are_refused() {
        let k = ring(&[1]);
        let mut sealed = k.seal(b"x", b"a");
        let last = sealed.len() - 1;
        sealed[last] ^= 1;
        assert_eq!(k.open(&sealed, b"a"), Err(OpenError::Forged));
        assert_eq!(k.open(&sealed[..10], b"a"), Err(OpenError::Format));
        assert_eq!(k.open(b"", b"a"), Err(OpenError::Format));
    }

    #[test]
    fn rotation_old_key_still_opens_new_key_seals() {
        let old = ring(&[1]);
        let sealed_old = old.seal(b"t", b"a");
        let rotated = ring(&[2, 1]);
        assert_eq!(rotated.open(&sealed_old, b"a").unwrap(), b"t");
        let sealed_new = rotated.seal(b"t", b"a");
        assert_eq!(old.open(&sealed_new, b"a"), Err(OpenError::UnknownKey));
        assert!(Keyring::new(&[]).is_none());
    }

    #[test]
    fn debug_shows_no_key_material() {
        let k = ring(&[7]);
        // The key's 4-byte id and nothing else: no bytes of the key in any notation.
        let id = hex(&key_id(&[7; KEY_LEN]));
        assert_eq!(format!("{k:?}"), format!("Keyring {{ key_ids: [{id:?}] }}"));
    }
}
