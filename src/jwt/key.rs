//! One JWK (RFC 7517/7518/8037) decoded once into an immutable [`VerifyingKey`], and the
//! JWS algorithms ([`Alg`]) we accept.
//!
//! Decoding happens when the provider's JWKS is fetched, never per token: base64url, length
//! and range checks are done here, so a verification only hands ready bytes to `ring`.
//! (`ring` itself re-derives its RSA Montgomery constants on every call; it has no API to keep
//! a parsed RSA public key, and its ~µs cost is small next to the exponentiation.)
//!
//! Refused at load time, each with a [`KeyRejected`] reason the JWKS keeps for logging:
//! symmetric keys (`kty: oct`: a shared secret has no place in a public key set, and accepting
//! one is how HS256/RS256 confusion starts), keys whose `use` is not `sig` or whose `key_ops`
//! lack `verify`, keys that carry private members (`d`, `p`, ...: a published private key lets
//! anyone sign), RSA moduli below 2048 or above 8192 bits, curves other than P-256, P-384 and
//! Ed25519, and a JWK `alg` that is not one of ours or does not fit the key.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use ring::signature::{self, RsaPublicKeyComponents, UnparsedPublicKey};
use serde::Deserialize;

/// A JWS algorithm we verify. Everything else (`none`, `HS*`, unknown names) is refused
/// before any key is looked at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Alg {
    /// RSASSA-PKCS1-v1_5 with SHA-256.
    RS256,
    /// RSASSA-PKCS1-v1_5 with SHA-384.
    RS384,
    /// RSASSA-PKCS1-v1_5 with SHA-512.
    RS512,
    /// RSASSA-PSS with SHA-256 (MGF1 SHA-256, salt = hash length).
    PS256,
    /// RSASSA-PSS with SHA-384.
    PS384,
    /// RSASSA-PSS with SHA-512.
    PS512,
    /// ECDSA on P-256 with SHA-256, signature as JOSE raw `r || s`.
    ES256,
    /// ECDSA on P-384 with SHA-384, signature as JOSE raw `r || s`.
    ES384,
    /// EdDSA; only the Ed25519 curve (RFC 8037).
    EdDSA,
}

/// Why an `alg` name was not turned into an [`Alg`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlgRefused {
    /// `none` in any letter case: an unsecured JWS.
    None,
    /// A name we do not verify: `HS*` (symmetric), `ES256K`, `RSA-OAEP`, typos, ...
    NotAllowed,
}

impl Alg {
    /// Every algorithm we accept.
    pub const ALL: [Alg; 9] = [
        Alg::RS256,
        Alg::RS384,
        Alg::RS512,
        Alg::PS256,
        Alg::PS384,
        Alg::PS512,
        Alg::ES256,
        Alg::ES384,
        Alg::EdDSA,
    ];

    /// Maps a JOSE `alg` name (case-sensitive, RFC 7515 §4.1.1) to an [`Alg`].
    pub fn from_name(name: &str) -> Result<Alg, AlgRefused> {
        Ok(match name {
            "RS256" => Alg::RS256,
            "RS384" => Alg::RS384,
            "RS512" => Alg::RS512,
            "PS256" => Alg::PS256,
            "PS384" => Alg::PS384,
            "PS512" => Alg::PS512,
            "ES256" => Alg::ES256,
            "ES384" => Alg::ES384,
            "EdDSA" => Alg::EdDSA,
            // "None", "NONE", ... are not valid names either, but reporting them as `alg: none`
            // says in the log what the sender tried.
            n if n.eq_ignore_ascii_case("none") => return Err(AlgRefused::None),
            _ => return Err(AlgRefused::NotAllowed),
        })
    }

    /// The JOSE name.
    pub fn name(self) -> &'static str {
        match self {
            Alg::RS256 => "RS256",
            Alg::RS384 => "RS384",
            Alg::RS512 => "RS512",
            Alg::PS256 => "PS256",
            Alg::PS384 => "PS384",
            Alg::PS512 => "PS512",
            Alg::ES256 => "ES256",
            Alg::ES384 => "ES384",
            Alg::EdDSA => "EdDSA",
        }
    }

    /// The key family this algorithm needs.
    pub fn family(self) -> KeyFamily {
        match self {
            Alg::RS256 | Alg::RS384 | Alg::RS512 | Alg::PS256 | Alg::PS384 | Alg::PS512 => {
                KeyFamily::Rsa
            }
            Alg::ES256 => KeyFamily::EcP256,
            Alg::ES384 => KeyFamily::EcP384,
            Alg::EdDSA => KeyFamily::Ed25519,
        }
    }

    /// ring's parameters for the RSA algorithms (2048..=8192-bit moduli); `None` for the rest.
    fn rsa_params(self) -> Option<&'static signature::RsaParameters> {
        Some(match self {
            Alg::RS256 => &signature::RSA_PKCS1_2048_8192_SHA256,
            Alg::RS384 => &signature::RSA_PKCS1_2048_8192_SHA384,
            Alg::RS512 => &signature::RSA_PKCS1_2048_8192_SHA512,
            Alg::PS256 => &signature::RSA_PSS_2048_8192_SHA256,
            Alg::PS384 => &signature::RSA_PSS_2048_8192_SHA384,
            Alg::PS512 => &signature::RSA_PSS_2048_8192_SHA512,
            Alg::ES256 | Alg::ES384 | Alg::EdDSA => return None,
        })
    }
}

impl std::fmt::Display for Alg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// What kind of key an algorithm needs; a token's `alg` must name the family of the key it is
/// checked against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyFamily {
    /// RSA, 2048..=8192 bits: RS* and PS*.
    Rsa,
    /// ECDSA P-256: ES256.
    EcP256,
    /// ECDSA P-384: ES384.
    EcP384,
    /// Ed25519: EdDSA.
    Ed25519,
}

/// The parsed public key material, ready for `ring`.
#[derive(Debug, Clone)]
pub enum KeyKind {
    /// Modulus and exponent, big-endian without leading zeros.
    Rsa(RsaPublicKeyComponents<Box<[u8]>>),
    /// Uncompressed SEC1 point `04 || x || y` with the fixed-signature verifier.
    EcP256(UnparsedPublicKey<Box<[u8]>>),
    /// Uncompressed SEC1 point `04 || x || y` with the fixed-signature verifier.
    EcP384(UnparsedPublicKey<Box<[u8]>>),
    /// The 32-byte public key.
    Ed25519(UnparsedPublicKey<Box<[u8]>>),
}

impl KeyKind {
    /// The family of this key.
    pub fn family(&self) -> KeyFamily {
        match self {
            KeyKind::Rsa(_) => KeyFamily::Rsa,
            KeyKind::EcP256(_) => KeyFamily::EcP256,
            KeyKind::EcP384(_) => KeyFamily::EcP384,
            KeyKind::Ed25519(_) => KeyFamily::Ed25519,
        }
    }
}

/// Why a JWK was not made into a [`VerifyingKey`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum KeyRejected {
    /// Not a JSON object, or a member of the wrong JSON type.
    #[error("not a JWK object, or a member has the wrong JSON type")]
    Malformed,
    /// `kty: oct`: symmetric keys are never accepted.
    #[error("symmetric key (kty oct) refused")]
    Symmetric,
    /// `kty` absent or not RSA, EC or OKP.
    #[error("unsupported or missing kty")]
    UnsupportedKty,
    /// `crv` not P-256, P-384 (EC) or Ed25519 (OKP).
    #[error("unsupported or missing crv")]
    UnsupportedCurve,
    /// `use` present and not `sig`.
    #[error("key use is not sig")]
    NotForSignature,
    /// `key_ops` present without `verify`.
    #[error("key_ops does not allow verify")]
    OpsWithoutVerify,
    /// The JWK `alg` is not one we verify.
    #[error("JWK alg is not an allowed signature algorithm")]
    UnsupportedAlg,
    /// The JWK `alg` does not fit the key's type or curve.
    #[error("JWK alg does not fit the key type")]
    AlgKeyMismatch,
    /// Private key members present: the key is published and so cannot be trusted.
    #[error("private key material in a public key set")]
    PrivateKeyMaterial,
    /// A required member (`n`, `e`, `x`, `y`) is missing.
    #[error("required key member missing")]
    MissingMember,
    /// A member is not base64url without padding, or has the wrong length.
    #[error("key member badly encoded or of the wrong length")]
    BadEncoding,
    /// RSA modulus under 2048 bits.
    #[error("RSA modulus shorter than 2048 bits")]
    RsaTooSmall,
    /// RSA modulus over 8192 bits.
    #[error("RSA modulus longer than 8192 bits")]
    RsaTooLarge,
    /// RSA exponent even, below 3 or above 2^33 - 1.
    #[error("RSA public exponent out of range")]
    RsaBadExponent,
    /// The set already holds the maximum number of keys.
    #[error("too many keys in the set")]
    TooMany,
}

/// A public key from a JWK, decoded once; immutable.
#[derive(Debug, Clone)]
pub struct VerifyingKey {
    /// The JWK `kid`, if any.
    pub kid: Option<String>,
    /// The JWK `alg`, if any: a token's `alg` must then equal it.
    pub alg: Option<Alg>,
    /// The key material.
    pub kind: KeyKind,
}

/// The JWK members we read. Unknown members are ignored; a known member of the wrong JSON
/// type makes the whole key unusable.
#[derive(Deserialize)]
struct RawJwk {
    kty: Option<String>,
    #[serde(rename = "use")]
    use_: Option<String>,
    key_ops: Option<Vec<String>>,
    alg: Option<String>,
    kid: Option<String>,
    n: Option<String>,
    e: Option<String>,
    crv: Option<String>,
    x: Option<String>,
    y: Option<String>,
    // Private members (RFC 7518 §6.2.2, §6.3.2; RFC 8037 §2): presence alone is the signal.
    d: Option<serde::de::IgnoredAny>,
    p: Option<serde::de::IgnoredAny>,
    q: Option<serde::de::IgnoredAny>,
    dp: Option<serde::de::IgnoredAny>,
    dq: Option<serde::de::IgnoredAny>,
    qi: Option<serde::de::IgnoredAny>,
    oth: Option<serde::de::IgnoredAny>,
}

impl RawJwk {
    fn has_private_members(&self) -> bool {
        self.d.is_some()
            || self.p.is_some()
            || self.q.is_some()
            || self.dp.is_some()
            || self.dq.is_some()
            || self.qi.is_some()
            || self.oth.is_some()
    }
}

const RSA_MIN_BITS: usize = 2048;
const RSA_MAX_BITS: usize = 8192;

impl VerifyingKey {
    /// Decodes one JWK given as JSON bytes.
    pub fn from_jwk_json(json: &[u8]) -> Result<VerifyingKey, KeyRejected> {
        let raw: RawJwk = serde_json::from_slice(json).map_err(|_| KeyRejected::Malformed)?;
        Self::from_raw(raw)
    }

    /// Decodes one JWK given as a parsed JSON value (one element of a JWKS `keys` array).
    pub fn from_jwk(value: &serde_json::Value) -> Result<VerifyingKey, KeyRejected> {
        if !value.is_object() {
            return Err(KeyRejected::Malformed);
        }
        let raw = RawJwk::deserialize(value).map_err(|_| KeyRejected::Malformed)?;
        Self::from_raw(raw)
    }

    fn from_raw(raw: RawJwk) -> Result<VerifyingKey, KeyRejected> {
        let kty = raw.kty.as_deref().ok_or(KeyRejected::UnsupportedKty)?;
        if kty == "oct" {
            return Err(KeyRejected::Symmetric);
        }
        if raw.use_.as_deref().is_some_and(|u| u != "sig") {
            return Err(KeyRejected::NotForSignature);
        }
        if let Some(ops) = &raw.key_ops {
            if !ops.iter().any(|op| op == "verify") {
                return Err(KeyRejected::OpsWithoutVerify);
            }
        }
        if raw.has_private_members() {
            return Err(KeyRejected::PrivateKeyMaterial);
        }
        let alg = match raw.alg.as_deref() {
            None => None,
            Some(name) => Some(Alg::from_name(name).map_err(|_| KeyRejected::UnsupportedAlg)?),
        };
        let kind = match kty {
            "RSA" => rsa_kind(&raw)?,
            "EC" => ec_kind(&raw)?,
            "OKP" => okp_kind(&raw)?,
            _ => return Err(KeyRejected::UnsupportedKty),
        };
        if alg.is_some_and(|a| a.family() != kind.family()) {
            return Err(KeyRejected::AlgKeyMismatch);
        }
        Ok(VerifyingKey {
            kid: raw.kid,
            alg,
            kind,
        })
    }

    /// The family of this key.
    pub fn family(&self) -> KeyFamily {
        self.kind.family()
    }

    /// Whether a token signed with `alg` may be checked against this key: the family fits and,
    /// when the JWK names an `alg`, it is that one.
    pub fn admits(&self, alg: Alg) -> bool {
        alg.family() == self.family() && (self.alg.is_none() || self.alg == Some(alg))
    }

    /// Checks `signature` over `message` with `alg`. The caller has already checked
    /// [`VerifyingKey::admits`]; a mismatch here simply fails.
    pub fn verify_signature(&self, alg: Alg, message: &[u8], signature: &[u8]) -> bool {
        if !self.admits(alg) {
            return false;
        }
        match &self.kind {
            KeyKind::Rsa(components) => alg
                .rsa_params()
                .is_some_and(|params| components.verify(params, message, signature).is_ok()),
            KeyKind::EcP256(key) | KeyKind::EcP384(key) | KeyKind::Ed25519(key) => {
                key.verify(message, signature).is_ok()
            }
        }
    }
}

fn b64(member: &Option<String>) -> Result<Vec<u8>, KeyRejected> {
    let text = member.as_deref().ok_or(KeyRejected::MissingMember)?;
    URL_SAFE_NO_PAD
        .decode(text)
        .map_err(|_| KeyRejected::BadEncoding)
}

/// RFC 7518 §6.3.1 says `n` and `e` carry no leading zeros, but some providers send a sign
/// byte; `ring` wants minimal big-endian, so strip them.
fn strip_leading_zeros(bytes: Vec<u8>) -> Box<[u8]> {
    let first = bytes.iter().position(|&b| b != 0).unwrap_or(bytes.len());
    bytes[first..].into()
}

fn rsa_kind(raw: &RawJwk) -> Result<KeyKind, KeyRejected> {
    let n = strip_leading_zeros(b64(&raw.n)?);
    let e = strip_leading_zeros(b64(&raw.e)?);
    let bits = match n.first() {
        None => 0,
        Some(&top) => n.len() * 8 - top.leading_zeros() as usize,
    };
    if bits < RSA_MIN_BITS {
        return Err(KeyRejected::RsaTooSmall);
    }
    if bits > RSA_MAX_BITS {
        return Err(KeyRejected::RsaTooLarge);
    }
    // ring's range: odd, 3 ..= 2^33 - 1.
    if e.len() > 5 {
        return Err(KeyRejected::RsaBadExponent);
    }
    let e_value = e.iter().fold(0u64, |acc, &b| (acc << 8) | u64::from(b));
    if e_value < 3 || e_value & 1 == 0 || e_value > (1u64 << 33) - 1 {
        return Err(KeyRejected::RsaBadExponent);
    }
    Ok(KeyKind::Rsa(RsaPublicKeyComponents { n, e }))
}

fn ec_kind(raw: &RawJwk) -> Result<KeyKind, KeyRejected> {
    let (len, alg): (usize, &'static dyn signature::VerificationAlgorithm) =
        match raw.crv.as_deref() {
            Some("P-256") => (32, &signature::ECDSA_P256_SHA256_FIXED),
            Some("P-384") => (48, &signature::ECDSA_P384_SHA384_FIXED),
            _ => return Err(KeyRejected::UnsupportedCurve),
        };
    let x = b64(&raw.x)?;
    let y = b64(&raw.y)?;
    // RFC 7518 §6.2.1.2: the coordinates are the full field size, leading zeros kept.
    if x.len() != len || y.len() != len {
        return Err(KeyRejected::BadEncoding);
    }
    let mut point = Vec::with_capacity(1 + 2 * len);
    point.push(0x04);
    point.extend_from_slice(&x);
    point.extend_from_slice(&y);
    // Whether the point is on the curve is checked by ring at each verification; an invalid
    // point simply never verifies.
    let key = UnparsedPublicKey::new(alg, point.into_boxed_slice());
    Ok(if len == 32 {
        KeyKind::EcP256(key)
    } else {
        KeyKind::EcP384(key)
    })
}

fn okp_kind(raw: &RawJwk) -> Result<KeyKind, KeyRejected> {
    if raw.crv.as_deref() != Some("Ed25519") {
        return Err(KeyRejected::UnsupportedCurve);
    }
    let x = b64(&raw.x)?;
    if x.len() != 32 {
        return Err(KeyRejected::BadEncoding);
    }
    Ok(KeyKind::Ed25519(UnparsedPublicKey::new(
        &signature::ED25519,
        x.into_boxed_slice(),
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jwt::testkit;
    use serde_json::json;

    #[test]
    fn alg_names_round_trip_and_refusals() {
        for alg in Alg::ALL {
            assert_eq!(Alg::from_name(alg.name()), Ok(alg));
        }
        for none in ["none", "None", "NONE", "nOnE"] {
            assert_eq!(Alg::from_name(none), Err(AlgRefused::None));
        }
        for other in [
            "HS256", "HS384", "HS512", "rs256", "ES256K", "RSA-OAEP", "Ed25519", "",
        ] {
            assert_eq!(
                Alg::from_name(other),
                Err(AlgRefused::NotAllowed),
                "{other}"
            );
        }
    }

    #[test]
    fn decodes_every_supported_key_type() {
        let rsa = VerifyingKey::from_jwk(&testkit::rsa().jwk).unwrap();
        assert_eq!(rsa.family(), KeyFamily::Rsa);
        assert_eq!(rsa.kid.as_deref(), Some("rsa-1"));
        assert_eq!(rsa.alg, None);
        let p256 = VerifyingKey::from_jwk(&testkit::p256().jwk).unwrap();
        assert_eq!(p256.family(), KeyFamily::EcP256);
        let p384 = VerifyingKey::from_jwk(&testkit::p384().jwk).unwrap();
        assert_eq!(p384.family(), KeyFamily::EcP384);
        let ed = VerifyingKey::from_jwk(&testkit::ed25519().jwk).unwrap();
        assert_eq!(ed.family(), KeyFamily::Ed25519);
        assert!(ed.admits(Alg::EdDSA));
        assert!(!ed.admits(Alg::ES256));
    }

    #[test]
    fn refuses_symmetric_and_non_signature_keys() {
        let oct = json!({"kty": "oct", "k": "c2VjcmV0", "alg": "HS256"});
        assert_eq!(
            VerifyingKey::from_jwk(&oct).unwrap_err(),
            KeyRejected::Symmetric
        );
        let mut enc = testkit::rsa().jwk.clone();
        enc["use"] = json!("enc");
        assert_eq!(
            VerifyingKey::from_jwk(&enc).unwrap_err(),
            KeyRejected::NotForSignature
        );
        let mut ops = testkit::rsa().jwk.clone();
        ops["key_ops"] = json!(["encrypt"]);
        assert_eq!(
            VerifyingKey::from_jwk(&ops).unwrap_err(),
            KeyRejected::OpsWithoutVerify
        );
        let mut sig = testkit::rsa().jwk.clone();
        sig["use"] = json!("sig");
        sig["key_ops"] = json!(["verify"]);
        assert!(VerifyingKey::from_jwk(&sig).is_ok());
    }

    #[test]
    fn refuses_private_keys_and_bad_members() {
        let mut private = testkit::p256().jwk.clone();
        private["d"] = json!("AAAA");
        assert_eq!(
            VerifyingKey::from_jwk(&private).unwrap_err(),
            KeyRejected::PrivateKeyMaterial
        );
        let mut kid_number = testkit::p256().jwk.clone();
        kid_number["kid"] = json!(7);
        assert_eq!(
            VerifyingKey::from_jwk(&kid_number).unwrap_err(),
            KeyRejected::Malformed
        );
        let mut padded = testkit::p256().jwk.clone();
        padded["x"] = json!(format!("{}=", padded["x"].as_str().unwrap()));
        assert_eq!(
            VerifyingKey::from_jwk(&padded).unwrap_err(),
            KeyRejected::BadEncoding
        );
        let mut short = testkit::p256().jwk.clone();
        short["y"] = json!("AAAA");
        assert_eq!(
            VerifyingKey::from_jwk(&short).unwrap_err(),
            KeyRejected::BadEncoding
        );
        let mut no_x = testkit::ed25519().jwk.clone();
        no_x.as_object_mut().unwrap().remove("x");
        assert_eq!(
            VerifyingKey::from_jwk(&no_x).unwrap_err(),
            KeyRejected::MissingMember
        );
        assert_eq!(
            VerifyingKey::from_jwk(&json!(["RSA"])).unwrap_err(),
            KeyRejected::Malformed
        );
        assert_eq!(
            VerifyingKey::from_jwk_json(b"{\"kty\":\"EC\",\"crv\":\"P-521\"}").unwrap_err(),
            KeyRejected::UnsupportedCurve
        );
        assert_eq!(
            VerifyingKey::from_jwk_json(b"{\"kty\":\"OKP\",\"crv\":\"Ed448\",\"x\":\"AA\"}")
                .unwrap_err(),
            KeyRejected::UnsupportedCurve
        );
        assert_eq!(
            VerifyingKey::from_jwk_json(b"{\"kty\":\"DSA\"}").unwrap_err(),
            KeyRejected::UnsupportedKty
        );
    }

    #[test]
    fn refuses_jwk_alg_that_is_unknown_or_does_not_fit() {
        let mut hs = testkit::rsa().jwk.clone();
        hs["alg"] = json!("HS256");
        assert_eq!(
            VerifyingKey::from_jwk(&hs).unwrap_err(),
            KeyRejected::UnsupportedAlg
        );
        let mut es384_on_p256 = testkit::p256().jwk.clone();
        es384_on_p256["alg"] = json!("ES384");
        assert_eq!(
            VerifyingKey::from_jwk(&es384_on_p256).unwrap_err(),
            KeyRejected::AlgKeyMismatch
        );
        let mut ps = testkit::rsa().jwk.clone();
        ps["alg"] = json!("PS256");
        let key = VerifyingKey::from_jwk(&ps).unwrap();
        assert!(key.admits(Alg::PS256));
        assert!(!key.admits(Alg::RS256));
    }

    #[test]
    fn rsa_size_and_exponent_limits() {
        let (n, _) = testkit::rsa().n_e();
        // 1024-bit modulus: the top half of ours (any odd-looking number works for the size check).
        let small = json!({"kty": "RSA", "n": URL_SAFE_NO_PAD.encode(&n[..128]), "e": "AQAB"});
        assert_eq!(
            VerifyingKey::from_jwk(&small).unwrap_err(),
            KeyRejected::RsaTooSmall
        );
        // 2047 bits: clear the top bit.
        let mut n2047 = n.clone();
        n2047[0] = 0x7f;
        let k = json!({"kty": "RSA", "n": URL_SAFE_NO_PAD.encode(&n2047), "e": "AQAB"});
        assert_eq!(
            VerifyingKey::from_jwk(&k).unwrap_err(),
            KeyRejected::RsaTooSmall
        );
        let huge =
            json!({"kty": "RSA", "n": URL_SAFE_NO_PAD.encode(vec![0xffu8; 1025]), "e": "AQAB"});
        assert_eq!(
            VerifyingKey::from_jwk(&huge).unwrap_err(),
            KeyRejected::RsaTooLarge
        );
        // A leading zero byte (sign byte some providers add) is tolerated.
        let mut padded = vec![0u8];
        padded.extend_from_slice(&n);
        let k = json!({"kty": "RSA", "n": URL_SAFE_NO_PAD.encode(&padded), "e": "AQAB"});
        assert!(VerifyingKey::from_jwk(&k).is_ok());
        for e in ["AQ", "Ag", "AAAAAQ", "AQAAAAAB"] {
            let k = json!({"kty": "RSA", "n": URL_SAFE_NO_PAD.encode(&n), "e": e});
            assert_eq!(
                VerifyingKey::from_jwk(&k).unwrap_err(),
                KeyRejected::RsaBadExponent,
                "{e}"
            );
        }
        let k = json!({"kty": "RSA", "n": URL_SAFE_NO_PAD.encode(&n), "e": "Aw"});
        assert!(VerifyingKey::from_jwk(&k).is_ok());
    }
}
