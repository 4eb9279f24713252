//! The provider's JSON Web Key Set (RFC 7517 §5), decoded once into usable [`VerifyingKey`]s.
//!
//! A `JwkSet` is immutable. The owner wraps it in an `Arc` and, when the provider rotates its
//! keys (a token names a `kid` we do not know, see [`JwtError::UnknownKid`]), fetches the set
//! again, builds a new `JwkSet` and swaps the whole `Arc`: a verification in flight keeps the
//! set it started with, and no lock is ever taken on the request path.
//!
//! Keys we cannot use (encryption keys, symmetric keys, unsupported curves, ...) are skipped,
//! not fatal: providers publish them next to their signing keys (Keycloak lists an
//! `RSA-OAEP` key with `use: enc`). Each skip is kept with its reason for the log. A set with
//! no usable key at all is an error.
//!
//! Lookup is a linear scan: a set holds a handful of keys (at most [`MAX_KEYS`]), for which
//! comparing a few short strings beats hashing one.

use super::key::{KeyRejected, VerifyingKey};
use super::JwtError;
use serde::Deserialize;

/// Keys beyond this many usable ones are skipped. A token without `kid` is tried against every
/// key of its family, so this also bounds the signature checks one token can cost.
pub const MAX_KEYS: usize = 16;

/// A JWK the set could not use, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkippedKey {
    /// Position in the document's `keys` array.
    pub index: usize,
    /// Its `kid`, when it had a string one.
    pub kid: Option<String>,
    /// Why it was skipped.
    pub reason: KeyRejected,
}

impl std::fmt::Display for SkippedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "keys[{}]", self.index)?;
        if let Some(kid) = &self.kid {
            write!(f, " (kid {kid:?})")?;
        }
        write!(f, ": {}", self.reason)
    }
}

/// The usable keys of one JWKS document.
#[derive(Debug, Clone)]
pub struct JwkSet {
    keys: Vec<VerifyingKey>,
    skipped: Vec<SkippedKey>,
}

#[derive(Deserialize)]
struct RawSet {
    keys: Vec<serde_json::Value>,
}

impl JwkSet {
    /// Parses a JWKS document (`{"keys": [...]}`). Keys that cannot be used are skipped and
    /// listed in [`JwkSet::skipped`].
    ///
    /// # Errors
    /// [`JwtError::JwksMalformed`] when the document is not a JSON object with a `keys` array,
    /// [`JwtError::JwksEmpty`] when no key in it is usable.
    pub fn from_json(json: &[u8]) -> Result<JwkSet, JwtError> {
        if json.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
            return Err(JwtError::JwksMalformed);
        }
        let raw: RawSet = serde_json::from_slice(json).map_err(|_| JwtError::JwksMalformed)?;
        let mut keys = Vec::new();
        let mut skipped = Vec::new();
        for (index, value) in raw.keys.iter().enumerate() {
            let result = if keys.len() >= MAX_KEYS {
                Err(KeyRejected::TooMany)
            } else {
                VerifyingKey::from_jwk(value)
            };
            match result {
                Ok(key) => keys.push(key),
                Err(reason) => skipped.push(SkippedKey {
                    index,
                    kid: value.get("kid").and_then(|k| k.as_str()).map(str::to_owned),
                    reason,
                }),
            }
        }
        if keys.is_empty() {
            return Err(JwtError::JwksEmpty);
        }
        Ok(JwkSet { keys, skipped })
    }

    /// A set of already decoded keys (tests, static configuration).
    ///
    /// # Errors
    /// [`JwtError::JwksEmpty`] for no keys, [`JwtError::JwksMalformed`] for more than
    /// [`MAX_KEYS`].
    pub fn from_keys(keys: Vec<VerifyingKey>) -> Result<JwkSet, JwtError> {
        if keys.is_empty() {
            return Err(JwtError::JwksEmpty);
        }
        if keys.len() > MAX_KEYS {
            return Err(JwtError::JwksMalformed);
        }
        Ok(JwkSet {
            keys,
            skipped: Vec::new(),
        })
    }

    /// The first key whose `kid` is `kid`.
    pub fn get(&self, kid: &str) -> Option<&VerifyingKey> {
        self.keys.iter().find(|k| k.kid.as_deref() == Some(kid))
    }

    /// Whether any key has this `kid`: a token naming another one means the provider has
    /// rotated its keys and the set should be fetched again.
    pub fn contains_kid(&self, kid: &str) -> bool {
        self.get(kid).is_some()
    }

    /// Every key whose `kid` is `kid` (normally one; kids are not required to be unique).
    pub fn with_kid<'a>(&'a self, kid: &'a str) -> impl Iterator<Item = &'a VerifyingKey> + 'a {
        self.keys
            .iter()
            .filter(move |k| k.kid.as_deref() == Some(kid))
    }

    /// The usable keys.
    pub fn keys(&self) -> &[VerifyingKey] {
        &self.keys
    }

    /// The keys that were skipped, with reasons, for logging.
    pub fn skipped(&self) -> &[SkippedKey] {
        &self.skipped
    }

    /// Number of usable keys (never 0).
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Always false: an empty set is refused at construction. Present for clippy's sake.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jwt::key::KeyFamily;
    use crate::jwt::testkit;
    use serde_json::json;

    #[test]
    fn keeps_usable_keys_and_lists_skipped_ones() {
        let mut enc = testkit::rsa().jwk.clone();
        enc["use"] = json!("enc");
        enc["kid"] = json!("enc-1");
        let doc = json!({"keys": [
            testkit::rsa().jwk,
            {"kty": "oct", "k": "c2VjcmV0", "kid": "hmac"},
            enc,
            testkit::p256().jwk,
            {"kty": "EC", "crv": "secp256k1", "x": "AA", "y": "AA"},
            testkit::ed25519().jwk,
        ]});
        let set = JwkSet::from_json(doc.to_string().as_bytes()).unwrap();
        assert_eq!(set.len(), 3);
        assert!(set.contains_kid("rsa-1"));
        assert!(set.contains_kid("p256-1"));
        assert!(!set.contains_kid("hmac"));
        assert!(!set.contains_kid("enc-1"));
        assert_eq!(set.get("ed-1").unwrap().family(), KeyFamily::Ed25519);
        let reasons: Vec<_> = set.skipped().iter().map(|s| (s.index, s.reason)).collect();
        assert_eq!(
            reasons,
            vec![
                (1, KeyRejected::Symmetric),
                (2, KeyRejected::NotForSignature),
                (4, KeyRejected::UnsupportedCurve),
            ]
        );
        assert_eq!(
            set.skipped()[0].to_string(),
            "keys[1] (kid \"hmac\"): symmetric key (kty oct) refused"
        );
    }

    #[test]
    fn empty_or_unusable_sets_are_errors() {
        assert_eq!(
            JwkSet::from_json(br#"{"keys": []}"#).unwrap_err(),
            JwtError::JwksEmpty
        );
        assert_eq!(
            JwkSet::from_json(br#"{"keys": [{"kty": "oct", "k": "AA"}]}"#).unwrap_err(),
            JwtError::JwksEmpty
        );
        for bad in [
            &b"not json"[..],
            b"{}",
            b"[]",
            br#"[[{"kty":"RSA"}]]"#,
            br#"{"keys": {}}"#,
        ] {
            assert_eq!(
                JwkSet::from_json(bad).unwrap_err(),
                JwtError::JwksMalformed,
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        assert_eq!(JwkSet::from_keys(vec![]).unwrap_err(), JwtError::JwksEmpty);
    }

    #[test]
    fn caps_the_number_of_keys() {
        let keys: Vec<_> = (0..MAX_KEYS + 3)
            .map(|i| {
                let mut k = testkit::p256().jwk.clone();
                k["kid"] = json!(format!("k{i}"));
                k
            })
            .collect();
        let set = JwkSet::from_json(json!({ "keys": keys }).to_string().as_bytes()).unwrap();
        assert_eq!(set.len(), MAX_KEYS);
        assert_eq!(set.skipped().len(), 3);
        assert!(set
            .skipped()
            .iter()
            .all(|s| s.reason == KeyRejected::TooMany));
    }

    #[test]
    fn a_set_can_be_shared_across_workers() {
        fn send_sync<T: Send + Sync>() {}
        send_sync::<std::sync::Arc<JwkSet>>();
    }

    #[test]
    fn duplicate_kids_are_all_found() {
        let mut a = testkit::p256().jwk.clone();
        a["kid"] = json!("same");
        let mut b = testkit::rsa().jwk.clone();
        b["kid"] = json!("same");
        let set = JwkSet::from_json(json!({ "keys": [a, b] }).to_string().as_bytes()).unwrap();
        assert_eq!(set.with_kid("same").count(), 2);
    }
}
