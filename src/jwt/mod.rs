//! JWT/JWS verification on `ring`: API clients' bearer tokens, ID tokens and back-channel
//! logout tokens, checked against the provider's JWKS.
//!
//! - [`key`]: one JWK decoded once into an immutable [`VerifyingKey`]; the algorithms ([`Alg`]).
//! - [`jwks`]: the provider's key set ([`JwkSet`]), swapped whole (`Arc`) on rotation.
//! - [`claims`]: the verified [`Claims`] and the [`Validation`] every token must pass.
//! - [`cache`]: a per-worker bounded cache of verified tokens ([`VerifyCache`]).
//!
//! # What [`verify`] does, in order
//! 1. Size (at most [`MAX_TOKEN_LEN`] bytes) and shape: exactly three segments of base64url
//!    without padding (RFC 7515 §7.1 compact serialization, §2 base64url), canonical (no
//!    stray trailing bits, so one signature has one spelling).
//! 2. The header, a JSON object: `alg` `none` is refused, then any `alg` we do not verify
//!    (all `HS*`: a public key must never be usable as an HMAC secret); then `crit`, since we
//!    implement no extension (RFC 7515 §4.1.11). Header members that point at keys (`jku`,
//!    `x5u`, `jwk`, `x5c`) are ignored: keys come only from the configured JWKS.
//! 3. The key: a token with a `kid` is checked against exactly the key(s) with that `kid`
//!    ([`JwtError::UnknownKid`] if none: the caller may refetch the JWKS, rate-limited, and
//!    retry); without `kid`, against every key of the family its `alg` needs. A key is only
//!    used when the `alg` fits its family and equals the JWK's own `alg` when it has one
//!    ([`JwtError::AlgKeyMismatch`] otherwise). Only then is a signature checked.
//! 4. The payload is parsed only after the signature verified: unauthenticated bytes reach no
//!    JSON parser but the header's.
//! 5. The claims ([`Validation::validate`]): `iss`, `aud`, `azp`, `exp`, `nbf`, `iat`.
//!
//! Time is passed in as `now` (seconds since the epoch); nothing here reads a clock.
#![forbid(unsafe_code)]

pub mod cache;
pub mod claims;
pub mod jwks;
pub mod key;

pub use cache::{CacheStats, VerifyCache};
pub use claims::{Aud, Claims, Validation};
pub use jwks::{JwkSet, SkippedKey};
pub use key::{Alg, KeyFamily, KeyKind, KeyRejected, VerifyingKey};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use key::AlgRefused;
use serde::Deserialize;

/// Longest token accepted, in bytes. Provider tokens are 1-2 KiB; a bound keeps the work an
/// attacker can cause with one header small.
pub const MAX_TOKEN_LEN: usize = 16 * 1024;

/// Why a token (or a key set) was refused. Small and `Copy`, so the hot path can map it to a
/// status and a metric label without allocating.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum JwtError {
    /// Not three base64url segments, padding or a non-URL-safe character, a header or payload
    /// that is not a JSON object, a missing `alg`, an empty signature.
    #[error("malformed token")]
    Malformed,
    /// Longer than [`MAX_TOKEN_LEN`].
    #[error("token too large")]
    TooLarge,
    /// `alg: none` (an unsecured JWS).
    #[error("unsigned token (alg none) refused")]
    AlgNone,
    /// An `alg` we do not verify (`HS*` and anything unknown).
    #[error("token alg not allowed")]
    AlgNotAllowed,
    /// A `crit` header: we implement no JWS extension.
    #[error("critical header extension not supported")]
    CritUnsupported,
    /// The `alg` does not fit the key's family, or differs from the JWK's `alg`; or no key of
    /// the `alg`'s family exists (token without `kid`).
    #[error("token alg does not fit the key")]
    AlgKeyMismatch,
    /// The token's `kid` is not in the key set: the provider may have rotated its keys.
    #[error("unknown key id")]
    UnknownKid,
    /// No candidate key verified the signature.
    #[error("bad signature")]
    BadSignature,
    /// A registered claim has the wrong JSON type (e.g. a string `exp`).
    #[error("claim of the wrong type")]
    InvalidClaim,
    /// `exp` is past (beyond the leeway).
    #[error("token expired")]
    Expired,
    /// No `exp` where one is required.
    #[error("token has no exp")]
    MissingExp,
    /// `nbf` is in the future (beyond the leeway).
    #[error("token not yet valid")]
    NotYetValid,
    /// `iat` is in the future (beyond the leeway).
    #[error("token issued in the future")]
    IssuedInFuture,
    /// `iss` is not the configured issuer.
    #[error("wrong issuer")]
    WrongIssuer,
    /// `aud` does not contain our client id.
    #[error("wrong audience")]
    WrongAudience,
    /// Several audiences and `azp` is missing or not our client id.
    #[error("wrong or missing authorized party (azp)")]
    WrongAzp,
    /// A JWKS document that is not `{"keys": [...]}`.
    #[error("malformed JWKS")]
    JwksMalformed,
    /// A JWKS without a single usable key.
    #[error("JWKS has no usable signature key")]
    JwksEmpty,
}

impl JwtError {
    /// A short stable name, for metric labels and structured logs.
    pub fn label(self) -> &'static str {
        match self {
            JwtError::Malformed => "malformed",
            JwtError::TooLarge => "too_large",
            JwtError::AlgNone => "alg_none",
            JwtError::AlgNotAllowed => "alg_not_allowed",
            JwtError::CritUnsupported => "crit_unsupported",
            JwtError::AlgKeyMismatch => "alg_key_mismatch",
            JwtError::UnknownKid => "unknown_kid",
            JwtError::BadSignature => "bad_signature",
            JwtError::InvalidClaim => "invalid_claim",
            JwtError::Expired => "expired",
            JwtError::MissingExp => "missing_exp",
            JwtError::NotYetValid => "not_yet_valid",
            JwtError::IssuedInFuture => "issued_in_future",
            JwtError::WrongIssuer => "wrong_issuer",
            JwtError::WrongAudience => "wrong_audience",
            JwtError::WrongAzp => "wrong_azp",
            JwtError::JwksMalformed => "jwks_malformed",
            JwtError::JwksEmpty => "jwks_empty",
        }
    }
}

/// The JOSE header members we act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// The signature algorithm (already known to be one we verify).
    pub alg: Alg,
    /// The key id, if any.
    pub kid: Option<String>,
    /// The media type (`JWT`, `at+jwt`, `logout+jwt`, ...), if any.
    pub typ: Option<String>,
}

/// Serde view of the header. Derived structs refuse duplicate known members (`alg` twice),
/// where a map would silently keep one: two parsers must never see two different `alg`s.
#[derive(Deserialize)]
struct RawHeader {
    alg: Option<String>,
    kid: Option<String>,
    typ: Option<String>,
    #[serde(default, deserialize_with = "present")]
    crit: bool,
}

/// True when the member is there at all, whatever its value (`"crit": null` included).
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    serde::de::IgnoredAny::deserialize(d).map(|_| true)
}

/// The three segments of a compact JWS, still encoded.
struct Parts<'a> {
    header: &'a str,
    payload: &'a str,
    signature: &'a str,
    /// `header.payload`: the bytes the signature covers.
    signing_input: &'a [u8],
}

fn split(token: &str) -> Result<Parts<'_>, JwtError> {
    if token.len() > MAX_TOKEN_LEN {
        return Err(JwtError::TooLarge);
    }
    let (header, rest) = token.split_once('.').ok_or(JwtError::Malformed)?;
    let (payload, signature) = rest.split_once('.').ok_or(JwtError::Malformed)?;
    if signature.contains('.') {
        return Err(JwtError::Malformed);
    }
    Ok(Parts {
        header,
        payload,
        signature,
        signing_input: &token.as_bytes()[..header.len() + 1 + payload.len()],
    })
}

/// base64url, no padding, URL-safe alphabet only, canonical trailing bits (the engine's
/// defaults for `URL_SAFE_NO_PAD`).
fn b64_decode(segment: &str) -> Result<Vec<u8>, JwtError> {
    URL_SAFE_NO_PAD
        .decode(segment)
        .map_err(|_| JwtError::Malformed)
}

fn starts_as_object(json: &[u8]) -> bool {
    json.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{')
}

fn parse_header(segment: &str) -> Result<Header, JwtError> {
    let json = b64_decode(segment)?;
    // A derived struct would also accept a JSON array (fields by position).
    if !starts_as_object(&json) {
        return Err(JwtError::Malformed);
    }
    let raw: RawHeader = serde_json::from_slice(&json).map_err(|_| JwtError::Malformed)?;
    let alg = match Alg::from_name(raw.alg.as_deref().ok_or(JwtError::Malformed)?) {
        Ok(alg) => alg,
        Err(AlgRefused::None) => return Err(JwtError::AlgNone),
        Err(AlgRefused::NotAllowed) => return Err(JwtError::AlgNotAllowed),
    };
    if raw.crit {
        return Err(JwtError::CritUnsupported);
    }
    Ok(Header {
        alg,
        kid: raw.kid,
        typ: raw.typ,
    })
}

/// The header of `token`, checked for shape, size, `alg` and `crit`, but NOT verified.
///
/// For deciding on a JWKS refresh before verifying: if `kid` is set and
/// [`JwkSet::contains_kid`] says no, fetch the set again (rate-limited). Nothing in it may be
/// trusted otherwise. [`verify`] returns [`JwtError::UnknownKid`] in the same case, so calling
/// this first is optional.
pub fn decode_unverified_header(token: &str) -> Result<Header, JwtError> {
    let parts = split(token)?;
    parse_header(parts.header)
}

/// Verifies `token` (compact JWS) against `keys` and checks its claims at time `now`
/// (seconds since the epoch). See the module docs for the order of checks.
pub fn verify(
    token: &str,
    keys: &JwkSet,
    validation: &Validation,
    now: u64,
) -> Result<Claims, JwtError> {
    let parts = split(token)?;
    let header = parse_header(parts.header)?;
    let signature = b64_decode(parts.signature)?;
    if signature.is_empty() {
        return Err(JwtError::Malformed);
    }
    // Decoding (not parsing) the payload before the signature check only refuses bad
    // base64url early; the JSON parser sees it after the signature verified.
    let payload = b64_decode(parts.payload)?;
    check_signature(&header, keys, parts.signing_input, &signature)?;
    let claims = Claims::from_payload(&payload, header)?;
    validation.validate(&claims, now)?;
    Ok(claims)
}

fn check_signature(
    header: &Header,
    keys: &JwkSet,
    signing_input: &[u8],
    signature: &[u8],
) -> Result<(), JwtError> {
    let alg = header.alg;
    let mut named = false;
    let mut admitted = false;
    let mut try_key = |key: &VerifyingKey| {
        named = true;
        if key.admits(alg) {
            admitted = true;
            key.verify_signature(alg, signing_input, signature)
        } else {
            false
        }
    };
    let verified = match header.kid.as_deref() {
        Some(kid) => keys.with_kid(kid).any(&mut try_key),
        None => keys.keys().iter().any(&mut try_key),
    };
    if verified {
        Ok(())
    } else if !named {
        // Only reachable with a kid: a set is never empty.
        Err(JwtError::UnknownKid)
    } else if !admitted {
        Err(JwtError::AlgKeyMismatch)
    } else {
        Err(JwtError::BadSignature)
    }
}

/// Key fixtures and a signer for tests: the RSA key is a committed fixture (ring cannot
/// generate RSA keys), the others are generated per test run.
#[cfg(test)]
pub(crate) mod testkit {
    use super::Alg;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine as _;
    use ring::rand::SystemRandom;
    use ring::signature::{self, EcdsaKeyPair, Ed25519KeyPair, KeyPair, RsaKeyPair};
    use serde_json::{json, Value};
    use std::sync::OnceLock;

    /// 2048-bit RSA private key, PKCS#8 DER, made once with
    /// `openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 |
    ///  openssl pkcs8 -topk8 -nocrypt -outform DER`.
    pub const RSA_PKCS8: &[u8] = include_bytes!("testdata/rsa2048.pk8");

    pub enum Signer {
        Rsa(RsaKeyPair),
        Ecdsa(EcdsaKeyPair),
        Ed25519(Ed25519KeyPair),
    }

    pub struct TestKey {
        pub jwk: Value,
        pub signer: Signer,
    }

    pub fn b64(bytes: &[u8]) -> String {
        URL_SAFE_NO_PAD.encode(bytes)
    }

    impl TestKey {
        /// The raw JWS signature over `input`.
        pub fn sign(&self, alg: Alg, input: &[u8]) -> Vec<u8> {
            let rng = SystemRandom::new();
            match &self.signer {
                Signer::Rsa(kp) => {
                    let padding: &'static dyn signature::RsaEncoding = match alg {
                        Alg::RS256 => &signature::RSA_PKCS1_SHA256,
                        Alg::RS384 => &signature::RSA_PKCS1_SHA384,
                        Alg::RS512 => &signature::RSA_PKCS1_SHA512,
                        Alg::PS256 => &signature::RSA_PSS_SHA256,
                        Alg::PS384 => &signature::RSA_PSS_SHA384,
                        Alg::PS512 => &signature::RSA_PSS_SHA512,
                        other => panic!("{other} with an RSA key"),
                    };
                    let mut sig = vec![0; kp.public().modulus_len()];
                    kp.sign(padding, &rng, input, &mut sig).unwrap();
                    sig
                }
                Signer::Ecdsa(kp) => kp.sign(&rng, input).unwrap().as_ref().to_vec(),
                Signer::Ed25519(kp) => kp.sign(input).as_ref().to_vec(),
            }
        }

        /// A signed compact JWS from already encoded header and payload segments (which may
        /// be deliberately malformed).
        pub fn sign_segments(&self, alg: Alg, header: &str, payload: &str) -> String {
            let input = format!("{header}.{payload}");
            let sig = self.sign(alg, input.as_bytes());
            format!("{input}.{}", b64(&sig))
        }

        /// A signed compact JWS with exactly this header and these claims.
        pub fn token(&self, alg: Alg, header: &Value, claims: &Value) -> String {
            self.sign_segments(
                alg,
                &b64(header.to_string().as_bytes()),
                &b64(claims.to_string().as_bytes()),
            )
        }

        /// A signed compact JWS with header `{alg, kid}` (the JWK's kid).
        pub fn token_with_kid(&self, alg: Alg, claims: &Value) -> String {
            let header = json!({"alg": alg.name(), "typ": "JWT", "kid": self.jwk["kid"]});
            self.token(alg, &header, claims)
        }

        /// RSA modulus and exponent, big-endian.
        pub fn n_e(&self) -> (Vec<u8>, Vec<u8>) {
            let Signer::Rsa(kp) = &self.signer else {
                panic!("not an RSA key")
            };
            let c = signature::RsaPublicKeyComponents::<Vec<u8>>::from(kp.public());
            (c.n, c.e)
        }
    }

    fn rsa_key(kid: &str) -> TestKey {
        let kp = RsaKeyPair::from_pkcs8(RSA_PKCS8).unwrap();
        let c = signature::RsaPublicKeyComponents::<Vec<u8>>::from(kp.public());
        TestKey {
            jwk: json!({"kty": "RSA", "kid": kid, "n": b64(&c.n), "e": b64(&c.e)}),
            signer: Signer::Rsa(kp),
        }
    }

    /// A fresh ECDSA key; `P-256` or `P-384`.
    pub fn ec_key(crv: &str, kid: &str) -> TestKey {
        let rng = SystemRandom::new();
        let alg = match crv {
            "P-256" => &signature::ECDSA_P256_SHA256_FIXED_SIGNING,
            _ => &signature::ECDSA_P384_SHA384_FIXED_SIGNING,
        };
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(alg, &rng).unwrap();
        let kp = EcdsaKeyPair::from_pkcs8(alg, pkcs8.as_ref(), &rng).unwrap();
        let point = kp.public_key().as_ref();
        let len = (point.len() - 1) / 2;
        TestKey {
            jwk: json!({"kty": "EC", "crv": crv, "kid": kid,
                        "x": b64(&point[1..1 + len]), "y": b64(&point[1 + len..])}),
            signer: Signer::Ecdsa(kp),
        }
    }

    /// A fresh Ed25519 key.
    pub fn ed_key(kid: &str) -> TestKey {
        let rng = SystemRandom::new();
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng).unwrap();
        let kp = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap();
        TestKey {
            jwk: json!({"kty": "OKP", "crv": "Ed25519", "kid": kid,
                        "x": b64(kp.public_key().as_ref())}),
            signer: Signer::Ed25519(kp),
        }
    }

    pub fn rsa() -> &'static TestKey {
        static K: OnceLock<TestKey> = OnceLock::new();
        K.get_or_init(|| rsa_key("rsa-1"))
    }

    pub fn p256() -> &'static TestKey {
        static K: OnceLock<TestKey> = OnceLock::new();
        K.get_or_init(|| ec_key("P-256", "p256-1"))
    }

    pub fn p384() -> &'static TestKey {
        static K: OnceLock<TestKey> = OnceLock::new();
        K.get_or_init(|| ec_key("P-384", "p384-1"))
    }

    pub fn ed25519() -> &'static TestKey {
        static K: OnceLock<TestKey> = OnceLock::new();
        K.get_or_init(|| ed_key("ed-1"))
    }

    /// The test key that signs `alg`.
    pub fn for_alg(alg: Alg) -> &'static TestKey {
        match alg.family() {
            super::KeyFamily::Rsa => rsa(),
            super::KeyFamily::EcP256 => p256(),
            super::KeyFamily::EcP384 => p384(),
            super::KeyFamily::Ed25519 => ed25519(),
        }
    }

    /// A set with all four test keys.
    pub fn all_keys() -> super::JwkSet {
        let doc = json!({"keys": [rsa().jwk, p256().jwk, p384().jwk, ed25519().jwk]});
        super::JwkSet::from_json(doc.to_string().as_bytes()).unwrap()
    }
}

#[cfg(test)]
mod tests {
    use super::testkit::{self, b64};
    use super::*;
    use serde_json::{json, Value};
    use std::sync::Arc;

    const NOW: u64 = 1_700_000_000;
    const ISS: &str = "https://sso.example.com/realms/censhare";

    fn validation() -> Validation {
        Validation {
            issuer: ISS.into(),
            audience: "gateway".into(),
            leeway_secs: 30,
            require_exp: true,
        }
    }

    fn claims() -> Value {
        json!({"iss": ISS, "aud": "gateway", "sub": "user-1", "sid": "s-1",
               "exp": NOW + 300, "iat": NOW - 5, "nbf": NOW - 5})
    }

    fn claims_with(key: &str, value: Value) -> Value {
        let mut c = claims();
        c[key] = value;
        c
    }

    fn check(token: &str) -> Result<Claims, JwtError> {
        verify(token, &testkit::all_keys(), &validation(), NOW)
    }

    fn rs256(claims: &Value) -> String {
        testkit::rsa().token_with_kid(Alg::RS256, claims)
    }

    #[test]
    fn every_algorithm_accepts_a_good_token() {
        let keys = testkit::all_keys();
        for alg in Alg::ALL {
            let key = testkit::for_alg(alg);
            let token = key.token_with_kid(alg, &claims());
            let c =
                verify(&token, &keys, &validation(), NOW).unwrap_or_else(|e| panic!("{alg}: {e}"));
            assert_eq!(c.sub(), Some("user-1"), "{alg}");
            assert_eq!(c.header().alg, alg);
            assert_eq!(c.typ(), Some("JWT"));
            // Without kid: the key is found by family.
            let no_kid = key.token(alg, &json!({"alg": alg.name()}), &claims());
            assert!(
                verify(&no_kid, &keys, &validation(), NOW).is_ok(),
                "{alg} no kid"
            );
        }
    }

    #[test]
    fn refuses_alg_none() {
        let payload = b64(claims().to_string().as_bytes());
        for alg in ["none", "None", "NONE"] {
            let header = b64(json!({"alg": alg}).to_string().as_bytes());
            assert_eq!(
                check(&format!("{header}.{payload}.")),
                Err(JwtError::AlgNone)
            );
            // ... also with a (meaningless) signature and a kid we know.
            let header = b64(json!({"alg": alg, "kid": "rsa-1"}).to_string().as_bytes());
            assert_eq!(
                check(&format!("{header}.{payload}.AAAA")),
                Err(JwtError::AlgNone)
            );
        }
    }

    #[test]
    fn refuses_hs256_signed_with_the_rsa_public_key() {
        // The classic confusion attack: HMAC keyed with bytes an attacker knows (the RSA
        // public key, as JWK and as n), hoping the verifier feeds its "key" to HMAC.
        let (n, _) = testkit::rsa().n_e();
        for secret in [testkit::rsa().jwk.to_string().into_bytes(), n] {
            let header = b64(br#"{"alg":"HS256","kid":"rsa-1","typ":"JWT"}"#);
            let payload = b64(claims().to_string().as_bytes());
            let input = format!("{header}.{payload}");
            let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &secret);
            let tag = ring::hmac::sign(&key, input.as_bytes());
            let token = format!("{input}.{}", b64(tag.as_ref()));
            assert_eq!(check(&token), Err(JwtError::AlgNotAllowed));
        }
        for alg in ["HS384", "HS512", "ES256K", "RSA1_5", "rs256", "EdDSA "] {
            let header = b64(json!({"alg": alg}).to_string().as_bytes());
            let token = format!("{header}.{}.AAAA", b64(b"{}"));
            assert_eq!(check(&token), Err(JwtError::AlgNotAllowed), "{alg}");
        }
    }

    #[test]
    fn refuses_alg_that_does_not_fit_the_key_family() {
        // ES256 naming the RSA key, signed with the P-256 key.
        let p256 = testkit::p256();
        let token = p256.token(
            Alg::ES256,
            &json!({"alg": "ES256", "kid": "rsa-1"}),
            &claims(),
        );
        assert_eq!(check(&token), Err(JwtError::AlgKeyMismatch));
        // ES384 naming the P-256 key.
        let token = testkit::p384().token(
            Alg::ES384,
            &json!({"alg": "ES384", "kid": "p256-1"}),
            &claims(),
        );
        assert_eq!(check(&token), Err(JwtError::AlgKeyMismatch));
        // No kid and no key of the family in the set.
        let only_rsa =
            JwkSet::from_json(json!({"keys": [testkit::rsa().jwk]}).to_string().as_bytes())
                .unwrap();
        let token = p256.token(Alg::ES256, &json!({"alg": "ES256"}), &claims());
        assert_eq!(
            verify(&token, &only_rsa, &validation(), NOW).unwrap_err(),
            JwtError::AlgKeyMismatch
        );
    }

    #[test]
    fn refuses_alg_that_differs_from_the_jwk_alg() {
        let mut jwk = testkit::rsa().jwk.clone();
        jwk["alg"] = json!("RS256");
        let keys = JwkSet::from_json(json!({ "keys": [jwk] }).to_string().as_bytes()).unwrap();
        let rsa = testkit::rsa();
        let good = rsa.token_with_kid(Alg::RS256, &claims());
        assert!(verify(&good, &keys, &validation(), NOW).is_ok());
        // A valid PS256 signature by the same key: refused, the JWK pins RS256.
        let ps = rsa.token_with_kid(Alg::PS256, &claims());
        assert_eq!(
            verify(&ps, &keys, &validation(), NOW).unwrap_err(),
            JwtError::AlgKeyMismatch
        );
        let ps_no_kid = rsa.token(Alg::PS256, &json!({"alg": "PS256"}), &claims());
        assert_eq!(
            verify(&ps_no_kid, &keys, &validation(), NOW).unwrap_err(),
            JwtError::AlgKeyMismatch
        );
    }

    #[test]
    fn unknown_kid_then_refetch() {
        let rotated = testkit::ec_key("P-256", "p256-2");
        let token = rotated.token_with_kid(Alg::ES256, &claims());
        let mut current = Arc::new(testkit::all_keys());
        assert_eq!(
            verify(&token, &current, &validation(), NOW).unwrap_err(),
            JwtError::UnknownKid
        );
        // The caller's flow: the header names a kid the set lacks -> fetch, swap, retry.
        let header = decode_unverified_header(&token).unwrap();
        assert_eq!(header.alg, Alg::ES256);
        assert_eq!(header.kid.as_deref(), Some("p256-2"));
        assert!(!current.contains_kid("p256-2"));
        let doc = json!({"keys": [testkit::rsa().jwk, rotated.jwk]});
        current = Arc::new(JwkSet::from_json(doc.to_string().as_bytes()).unwrap());
        assert!(verify(&token, &current, &validation(), NOW).is_ok());

        // A kid never matches a JWK without one.
        let mut anonymous = testkit::p256().jwk.clone();
        anonymous.as_object_mut().unwrap().remove("kid");
        let keys =
            JwkSet::from_json(json!({ "keys": [anonymous] }).to_string().as_bytes()).unwrap();
        let token = testkit::p256().token_with_kid(Alg::ES256, &claims());
        assert_eq!(
            verify(&token, &keys, &validation(), NOW).unwrap_err(),
            JwtError::UnknownKid
        );
    }

    #[test]
    fn no_kid_tries_every_key_of_the_family() {
        let a = testkit::ec_key("P-256", "a");
        let b = testkit::ec_key("P-256", "b");
        let keys =
            JwkSet::from_json(json!({"keys": [a.jwk, b.jwk]}).to_string().as_bytes()).unwrap();
        let token = b.token(Alg::ES256, &json!({"alg": "ES256"}), &claims());
        assert!(verify(&token, &keys, &validation(), NOW).is_ok());
        let stranger = testkit::ec_key("P-256", "c");
        let token = stranger.token(Alg::ES256, &json!({"alg": "ES256"}), &claims());
        assert_eq!(
            verify(&token, &keys, &validation(), NOW).unwrap_err(),
            JwtError::BadSignature
        );
    }

    fn flip_signature_byte(token: &str, index: usize) -> String {
        let (input, sig) = token.rsplit_once('.').unwrap();
        let mut raw = URL_SAFE_NO_PAD.decode(sig).unwrap();
        raw[index] ^= 0x01;
        format!("{input}.{}", b64(&raw))
    }

    #[test]
    fn refuses_bad_signatures() {
        for alg in Alg::ALL {
            let key = testkit::for_alg(alg);
            let token = key.token_with_kid(alg, &claims());
            assert_eq!(
                check(&flip_signature_byte(&token, 0)),
                Err(JwtError::BadSignature),
                "{alg} first byte"
            );
            assert_eq!(
                check(&flip_signature_byte(&token, 20)),
                Err(JwtError::BadSignature),
                "{alg} middle byte"
            );
            // Same signature, other payload.
            let (_, sig) = token.rsplit_once('.').unwrap();
            let other = key.token_with_kid(alg, &claims_with("sub", json!("admin")));
            let (other_input, _) = other.rsplit_once('.').unwrap();
            assert_eq!(
                check(&format!("{other_input}.{sig}")),
                Err(JwtError::BadSignature),
                "{alg} swapped payload"
            );
            // Truncated signature.
            let (input, sig) = token.rsplit_once('.').unwrap();
            let raw = URL_SAFE_NO_PAD.decode(sig).unwrap();
            assert_eq!(
                check(&format!("{input}.{}", b64(&raw[..raw.len() - 1]))),
                Err(JwtError::BadSignature),
                "{alg} truncated"
            );
        }
        // Right kid, other key of the same family.
        let impostor = testkit::ec_key("P-256", "p256-1");
        assert_eq!(
            check(&impostor.token_with_kid(Alg::ES256, &claims())),
            Err(JwtError::BadSignature)
        );
    }

    #[test]
    fn refuses_claims_that_do_not_validate() {
        let cases = [
            (claims_with("exp", json!(NOW - 31)), JwtError::Expired),
            (claims_with("nbf", json!(NOW + 31)), JwtError::NotYetValid),
            (
                claims_with("iat", json!(NOW + 31)),
                JwtError::IssuedInFuture,
            ),
            (
                claims_with("iss", json!("https://evil.example")),
                JwtError::WrongIssuer,
            ),
            (
                claims_with("aud", json!("other-client")),
                JwtError::WrongAudience,
            ),
            (
                claims_with("aud", json!(["account", "gateway"])),
                JwtError::WrongAzp,
            ),
            (
                {
                    let mut c = claims_with("aud", json!(["account", "gateway"]));
                    c["azp"] = json!("account");
                    c
                },
                JwtError::WrongAzp,
            ),
            (
                claims_with("exp", json!("tomorrow")),
                JwtError::InvalidClaim,
            ),
        ];
        for (c, want) in cases {
            assert_eq!(check(&rs256(&c)), Err(want), "{c}");
            assert_eq!(
                check(&testkit::p256().token_with_kid(Alg::ES256, &c)),
                Err(want),
                "{c}"
            );
        }
        let mut ok = claims_with("aud", json!(["account", "gateway"]));
        ok["azp"] = json!("gateway");
        assert!(check(&rs256(&ok)).is_ok());
    }

    #[test]
    fn refuses_malformed_base64url() {
        let key = testkit::p256();
        let header = b64(br#"{"alg":"ES256","kid":"p256-1"}"#);
        let payload = b64(claims().to_string().as_bytes());
        // Sanity: the well-formed version verifies.
        assert!(check(&key.sign_segments(Alg::ES256, &header, &payload)).is_ok());

        // Padding on header/payload, correctly signed over the malformed bytes.
        let mut padded = payload.clone();
        while padded.len() % 4 != 0 {
            padded.push('=');
        }
        assert_ne!(
            padded, payload,
            "choose claims whose encoding needs padding"
        );
        assert_eq!(
            check(&key.sign_segments(Alg::ES256, &header, &padded)),
            Err(JwtError::Malformed)
        );
        let mut padded_header = b64(br#"{"alg":"ES256","kid":"p256-1"} "#);
        while padded_header.len() % 4 != 0 {
            padded_header.push('=');
        }
        assert!(padded_header.ends_with('='));
        assert_eq!(
            check(&key.sign_segments(Alg::ES256, &padded_header, &payload)),
            Err(JwtError::Malformed)
        );
        // Padding on the signature.
        let good = key.sign_segments(Alg::ES256, &header, &payload);
        assert_eq!(check(&format!("{good}==")), Err(JwtError::Malformed));

        // The standard alphabet's '+' and '/' instead of '-' and '_'.
        let std_payload = base64::engine::general_purpose::STANDARD_NO_PAD
            .encode(claims_with("sub", json!("??>>??>>~~~")).to_string());
        assert!(std_payload.contains('+') || std_payload.contains('/'));
        assert_eq!(
            check(&key.sign_segments(Alg::ES256, &header, &std_payload)),
            Err(JwtError::Malformed)
        );
        let (input, sig) = good.rsplit_once('.').unwrap();
        let std_sig = sig.replace('-', "+").replace('_', "/");
        if std_sig != sig {
            assert_eq!(
                check(&format!("{input}.{std_sig}")),
                Err(JwtError::Malformed)
            );
        }
        assert_eq!(check(&format!("{input}.{sig}+")), Err(JwtError::Malformed));

        // Non-canonical trailing bits: 64 bytes take 86 chars, whose last carries 4 unused
        // bits. A lax decoder would read the same signature from another spelling.
        let last = sig.as_bytes()[sig.len() - 1];
        let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let pos = alphabet.iter().position(|&c| c == last).unwrap();
        let sloppy = alphabet[pos | 0x01] as char;
        assert_ne!(sloppy as u8, last);
        let sloppy_sig = format!("{}{sloppy}", &sig[..sig.len() - 1]);
        assert_eq!(
            check(&format!("{input}.{sloppy_sig}")),
            Err(JwtError::Malformed)
        );

        // Whitespace, wrong segment counts, empty parts.
        assert_eq!(check(&format!(" {good}")), Err(JwtError::Malformed));
        assert_eq!(check(&format!("{good}\n")), Err(JwtError::Malformed));
        assert_eq!(
            check(&format!("{header}.{payload}")),
            Err(JwtError::Malformed)
        );
        assert_eq!(check(&format!("{good}.{sig}")), Err(JwtError::Malformed));
        assert_eq!(check(&format!("{input}.")), Err(JwtError::Malformed));
        assert_eq!(
            check(&format!(".{payload}.{sig}")),
            Err(JwtError::Malformed)
        );
        assert_eq!(check(""), Err(JwtError::Malformed));
        assert_eq!(check(".."), Err(JwtError::Malformed));
        assert_eq!(check("Bearer"), Err(JwtError::Malformed));
    }

    #[test]
    fn refuses_non_json_and_non_object_parts() {
        let key = testkit::p256();
        let payload = b64(claims().to_string().as_bytes());
        for header in [
            &b"not json"[..],
            br#"["ES256"]"#,
            br#""ES256""#,
            br#"{"alg":"ES256""#,
            br#"{"kid":"p256-1"}"#,
            br#"{"alg":null}"#,
            br#"{"alg":"ES256","kid":1}"#,
            br#"{"alg":"ES256","alg":"ES256"}"#,
            br#"{"alg":"ES256"} {}"#,
        ] {
            let token = key.sign_segments(Alg::ES256, &b64(header), &payload);
            assert_eq!(
                check(&token),
                Err(JwtError::Malformed),
                "{}",
                String::from_utf8_lossy(header)
            );
        }
        let header = b64(br#"{"alg":"ES256","kid":"p256-1"}"#);
        for body in [
            &b"not json"[..],
            b"[1,2]",
            b"\"claims\"",
            b"null",
            b"{",
            b"",
        ] {
            let token = key.sign_segments(Alg::ES256, &header, &b64(body));
            assert_eq!(
                check(&token),
                Err(JwtError::Malformed),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
        // Unknown header members are ignored; key-carrying ones are never used.
        let header = json!({"alg": "ES256", "kid": "p256-1", "jku": "https://evil.example/jwks",
                            "jwk": {"kty": "oct", "k": "AA"}, "x5u": "https://evil.example"});
        assert!(check(&key.token(Alg::ES256, &header, &claims())).is_ok());
    }

    #[test]
    fn refuses_too_large_tokens() {
        let big = claims_with("pad", json!("x".repeat(MAX_TOKEN_LEN)));
        let token = rs256(&big);
        assert!(token.len() > MAX_TOKEN_LEN);
        assert_eq!(check(&token), Err(JwtError::TooLarge));
        assert_eq!(
            decode_unverified_header(&token).unwrap_err(),
            JwtError::TooLarge
        );
        // Just under the limit is fine.
        let fixed = rs256(&claims_with("pad", json!(""))).len();
        // Base64url turns 3 bytes into 4 characters.
        let fit = claims_with(
            "pad",
            json!("x".repeat((MAX_TOKEN_LEN - fixed) * 3 / 4 - 3)),
        );
        let token = rs256(&fit);
        assert!(token.len() <= MAX_TOKEN_LEN, "{}", token.len());
        assert!(check(&token).is_ok());
    }

    #[test]
    fn refuses_crit() {
        for crit in [json!(["exp"]), json!(["b64"]), json!([]), Value::Null] {
            let header = json!({"alg": "ES256", "kid": "p256-1", "crit": crit, "b64": false});
            let token = testkit::p256().token(Alg::ES256, &header, &claims());
            assert_eq!(check(&token), Err(JwtError::CritUnsupported), "{crit}");
        }
    }

    #[test]
    fn decode_unverified_header_checks_shape_and_alg() {
        let token = rs256(&claims());
        let header = decode_unverified_header(&token).unwrap();
        assert_eq!(
            header,
            Header {
                alg: Alg::RS256,
                kid: Some("rsa-1".into()),
                typ: Some("JWT".into())
            }
        );
        let none = format!("{}.{}.", b64(br#"{"alg":"none"}"#), b64(b"{}"));
        assert_eq!(decode_unverified_header(&none), Err(JwtError::AlgNone));
        assert_eq!(decode_unverified_header("a.b"), Err(JwtError::Malformed));
    }

    #[test]
    fn error_labels_are_distinct() {
        let all = [
            JwtError::Malformed,
            JwtError::TooLarge,
            JwtError::AlgNone,
            JwtError::AlgNotAllowed,
            JwtError::CritUnsupported,
            JwtError::AlgKeyMismatch,
            JwtError::UnknownKid,
            JwtError::BadSignature,
            JwtError::InvalidClaim,
            JwtError::Expired,
            JwtError::MissingExp,
            JwtError::NotYetValid,
            JwtError::IssuedInFuture,
            JwtError::WrongIssuer,
            JwtError::WrongAudience,
            JwtError::WrongAzp,
            JwtError::JwksMalformed,
            JwtError::JwksEmpty,
        ];
        let labels: std::collections::HashSet<_> = all.iter().map(|e| e.label()).collect();
        assert_eq!(labels.len(), all.len());
        assert_eq!(
            JwtError::AlgNone.to_string(),
            "unsigned token (alg none) refused"
        );
    }
}
