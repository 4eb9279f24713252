//! JWTs and back-channel logout tokens against a fixed key set: unsigned, signed with the
//! fixture's keys (so the checks behind the signature are reached), claims and key sets.

use std::sync::OnceLock;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;

use crate::backchannel::{self, LogoutError, Policy, ReplayGuard};
use crate::jwt::claims::Claims;
use crate::jwt::{self, Alg, JwkSet, JwtError, KeyKind, Validation};

// ---------------------------------------------------------------------------------------
// jwt_logout_token

/// The fixture's issuer, client id and reference time.
const ISSUER: &str = "https://idp.example/realms/fuzz";
const CLIENT_ID: &str = "gateway";
pub const NOW: u64 = 1_750_000_000;
const LEEWAY: u64 = 60;
const MAX_AGE: u64 = 120;

/// The key set every token is checked against: an EC P-256 key and an Ed25519 key, as a
/// provider would publish them.
const JWKS: &str = r#"{"keys":[
  {"kty":"EC","crv":"P-256","use":"sig","alg":"ES256","kid":"fuzz-p256",
   "x":"HUyre5RrUWzh_owctfG_4NxPdtFScRwZDflklRCi3cE",
   "y":"uOUE5FtksNrW74rC-RJ1PBfU3i0sNjcq-JTIJPi9j38"},
  {"kty":"OKP","crv":"Ed25519","use":"sig","kid":"fuzz-ed",
   "x":"XEtjKAIbeycNdNYgKR3wm-nobR8FCUASg3EiiLzsczs"}
]}"#;

/// The private halves, so the target can sign claims the fuzzer writes and reach the checks
/// behind the signature. Made for this fixture only; they sign nothing else anywhere.
const P256_PKCS8: &str =
    "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgST7Q2CNx-BItaPHX0T75oXfFm\
    nNj46OWvvTcBU603M6hRANCAAQdTKt7lGtRbOH-jBy18b_g3E920VJxHBkN-WSVEKLdwbjlBORbZLDa1u-KwvkSdTwX1\
    N4tLDY3KviUyCT4vY9_";
const ED25519_SEED: &str = "9Df966AWuEkoAfs3KnbQPlknCtytafYxJrAmM-K5xmY";

struct JwtFixture {
    keys: JwkSet,
    p256: ring::signature::EcdsaKeyPair,
    ed25519: ring::signature::Ed25519KeyPair,
    rng: ring::rand::SystemRandom,
    validation: Validation,
    policy: Policy,
}

fn jwt_fixture() -> &'static JwtFixture {
    static FIXTURE: OnceLock<JwtFixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        use ring::signature::{EcdsaKeyPair, Ed25519KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
        let rng = ring::rand::SystemRandom::new();
        let der = URL_SAFE_NO_PAD
            .decode(P256_PKCS8.replace(' ', ""))
            .expect("fixture key");
        let p256 = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &der, &rng)
            .expect("fixture P-256 key");
        let seed = URL_SAFE_NO_PAD.decode(ED25519_SEED).expect("fixture seed");
        let ed25519 = Ed25519KeyPair::from_seed_unchecked(&seed).expect("fixture Ed25519 key");
        let mut validation = Validation::new(ISSUER, CLIENT_ID);
        validation.leeway_secs = LEEWAY;
        JwtFixture {
            keys: JwkSet::from_json(JWKS.as_bytes()).expect("fixture JWKS"),
            p256,
            ed25519,
            rng,
            validation,
            policy: Policy {
                issuer: ISSUER.into(),
                client_id: CLIENT_ID.into(),
                leeway_secs: LEEWAY,
                max_age_secs: MAX_AGE,
            },
        }
    })
}

/// JWS verification and back-channel logout-token validation.
///
/// Layout: a mode byte, two bytes of clock offset (i16, little-endian; `now` is
/// [`NOW`] plus the offset, or the bare offset when bit 3 is set), then by mode (the low
/// three bits):
/// - 0: a compact token as received;
/// - 1: a form body carrying `logout_token`;
/// - 2: header JSON, a NUL byte, claims JSON (no NUL: the claims, with a default header);
///   the target signs them with the fixture's Ed25519 key, or its P-256 key when mode bit
///   4 is set, then verifies and validates the token;
/// - 3: claims JSON checked without a signature (the claim rules alone);
/// - 4 to 7: a JWKS document.
pub fn jwt_logout_token(data: &[u8]) {
    let [mode, t0, t1, rest @ ..] = data else {
        return;
    };
    let offset = i16::from_le_bytes([*t0, *t1]);
    let now = if mode & 8 != 0 {
        u64::from(offset as u16)
    } else {
        NOW.saturating_add_signed(i64::from(offset))
    };
    match mode & 7 {
        0 => unsigned_token(&String::from_utf8_lossy(rest), now),
        1 => {
            if let Ok(token) = backchannel::token_from_form(rest) {
                assert!(!token.is_empty());
                unsigned_token(&token, now);
            }
        }
        2 => signed_token(rest, mode & 16 != 0, now),
        3 => claims_only(rest, now),
        _ => key_set(rest),
    }
}

/// A token nobody signed with the fixture's keys: it never verifies, and it fails the same
/// way whichever entry point sees it.
fn unsigned_token(token: &str, now: u64) {
    let f = jwt_fixture();
    let header = jwt::decode_unverified_header(token);
    let verified = jwt::verify(token, &f.keys, &f.validation, now);
    let Err(e) = verified else {
        panic!("a token the fuzzer wrote verified: {token:?}");
    };
    if let Err(h) = header {
        assert_eq!(e, h, "header verdicts differ");
    }
    assert_eq!(
        backchannel::validate(token, &f.keys, &f.policy, now),
        Err(LogoutError::Jwt(e))
    );
}

fn signed_token(rest: &[u8], p256: bool, now: u64) {
    let f = jwt_fixture();
    let (header, claims): (&[u8], &[u8]) = match rest.iter().position(|&b| b == 0) {
        Some(i) => (&rest[..i], &rest[i + 1..]),
        None if p256 => (
            br#"{"alg":"ES256","kid":"fuzz-p256","typ":"logout+jwt"}"#,
            rest,
        ),
        None => (
            br#"{"alg":"EdDSA","kid":"fuzz-ed","typ":"logout+jwt"}"#,
            rest,
        ),
    };
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header),
        URL_SAFE_NO_PAD.encode(claims)
    );
    let signature = if p256 {
        f.p256
            .sign(&f.rng, input.as_bytes())
            .expect("signing")
            .as_ref()
            .to_vec()
    } else {
        f.ed25519.sign(input.as_bytes()).as_ref().to_vec()
    };
    let token = format!("{input}.{}", URL_SAFE_NO_PAD.encode(&signature));

    let verified = jwt::verify(&token, &f.keys, &f.validation, now);
    if let Ok(c) = &verified {
        let family = if p256 { Alg::ES256 } else { Alg::EdDSA };
        assert_eq!(c.header().alg, family);
        assert_valid_claims(c, now, true);
    }
    let mut relaxed = f.validation.clone();
    relaxed.require_exp = false;
    let relaxed = jwt::verify(&token, &f.keys, &relaxed, now);
    if verified.is_ok() {
        assert_eq!(relaxed, verified);
    }
    let logout = backchannel::validate(&token, &f.keys, &f.policy, now);
    match (&relaxed, &logout) {
        (Err(e), _) => assert_eq!(logout, Err(LogoutError::Jwt(*e))),
        (Ok(c), Ok(t)) => {
            assert_valid_claims(c, now, false);
            assert!(t.sub.is_some() || t.sid.is_some());
            assert_eq!((t.sub.as_deref(), t.sid.as_deref()), (c.sub(), c.sid()));
            assert_eq!((Some(t.jti.as_str()), Some(t.iat)), (c.jti(), c.iat()));
            assert!(c.get("nonce").is_none());
            // Back-channel logout §2.6: a jti seen while the token is valid is a replay.
            let mut guard = ReplayGuard::default();
            assert_eq!(guard.admit(t, now), Ok(()));
            assert_eq!(guard.admit(t, now), Err(LogoutError::Replayed));
        }
        (Ok(_), Err(_)) => {}
    }
    if relaxed.is_ok() {
        // One changed signature byte and nothing verifies.
        let (input, sig) = token.rsplit_once('.').expect("three segments");
        let first = if sig.starts_with('A') { 'B' } else { 'A' };
        let tampered = format!("{input}.{first}{}", &sig[1..]);
        assert_eq!(
            jwt::verify(&tampered, &f.keys, &f.validation, now),
            Err(JwtError::BadSignature)
        );
        assert!(backchannel::validate(&tampered, &f.keys, &f.policy, now).is_err());
    }
}

/// What a token that passed [`Validation::validate`] at `now` must satisfy.
fn assert_valid_claims(c: &Claims, now: u64, exp_required: bool) {
    assert_eq!(c.iss(), Some(ISSUER));
    assert!(c.aud().any(|a| a == CLIENT_ID));
    if c.aud().len() > 1 {
        assert_eq!(c.azp(), Some(CLIENT_ID));
    }
    match c.exp() {
        Some(exp) => assert!(exp.saturating_add(LEEWAY) > now),
        None => assert!(!exp_required),
    }
    assert!(!matches!(c.nbf(), Some(t) if t > now.saturating_add(LEEWAY)));
    assert!(!matches!(c.iat(), Some(t) if t > now.saturating_add(LEEWAY)));
}

fn claims_only(payload: &[u8], now: u64) {
    let f = jwt_fixture();
    let header = jwt::Header {
        alg: Alg::EdDSA,
        kid: None,
        typ: None,
    };
    if let Ok(c) = Claims::from_payload(payload, header) {
        if f.validation.validate(&c, now).is_ok() {
            assert_valid_claims(&c, now, true);
        }
    }
}

fn key_set(json: &[u8]) {
    let _ = jwt::VerifyingKey::from_jwk_json(json);
    let Ok(set) = JwkSet::from_json(json) else {
        return;
    };
    assert!(!set.is_empty() && set.len() <= jwt::jwks::MAX_KEYS);
    for key in set.keys() {
        if let Some(kid) = &key.kid {
            assert!(set.contains_kid(kid));
            assert!(set.get(kid).is_some());
        }
        if let Some(alg) = key.alg {
            assert_eq!(alg.family(), key.family());
        }
        if let KeyKind::Rsa(c) = &key.kind {
            assert!(c.n.first().is_some_and(|&b| b != 0));
            assert!(c.n.len() * 8 >= 2048 && c.n.len() * 8 <= 8192 + 7);
        }
    }
    // A token signed by the fixture key verifies against a set only if it holds that key.
    let f = jwt_fixture();
    let token = fixture_token();
    let ours = &f.keys.get("fuzz-ed").expect("fixture key").kind;
    let holds_ours = set.keys().iter().any(|k| match (&k.kind, ours) {
        (KeyKind::Ed25519(a), KeyKind::Ed25519(b)) => a.as_ref() == b.as_ref(),
        _ => false,
    });
    if jwt::verify(token, &set, &f.validation, NOW).is_ok() {
        assert!(holds_ours);
    }
}

/// A valid token signed with the fixture's Ed25519 key (deterministic), made once.
fn fixture_token() -> &'static str {
    static TOKEN: OnceLock<String> = OnceLock::new();
    TOKEN.get_or_init(|| {
        let f = jwt_fixture();
        let header = br#"{"alg":"EdDSA","kid":"fuzz-ed"}"#;
        let claims = format!(
            r#"{{"iss":"{ISSUER}","aud":"{CLIENT_ID}","sub":"u","exp":{},"iat":{NOW}}}"#,
            NOW + 300
        );
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header),
            URL_SAFE_NO_PAD.encode(claims)
        );
        let sig = f.ed25519.sign(input.as_bytes());
        let token = format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig.as_ref()));
        assert!(jwt::verify(&token, &f.keys, &f.validation, NOW).is_ok());
        token
    })
}
