//! JWT verification cost per bearer token: a full verification (signature, claims) against a
//! cache hit, for RS256 (Keycloak's default) and ES256.
//!
//! Run: `cargo bench --bench jwt` (quick: `cargo bench --bench jwt -- --warm-up-time 1
//! --measurement-time 3`). The token is a Keycloak-shaped access token of about 1 KiB; the
//! key set holds an RSA-2048 and a P-256 key, each found by `kid`.
//!
//! Figures, 2026-11-23, 2-core AMD EPYC VM, `--warm-up-time 1 --measurement-time 3`, the
//! least loaded of several runs (other builds shared the machine; loaded runs read up to 2x):
//!
//! | bench                 | RS256   | ES256   |
//! |-----------------------|---------|---------|
//! | `verify_cold`         | 29.5 µs | 69 µs   |
//! | `ring_only` (sig)     | 23 µs   | 58 µs   |
//! | `verify_cached` (hit) | 59 ns   | 45 ns   |
//!
//! Conclusion: the signature is ~80% of a full verification (the rest: base64url and the
//! claims' JSON, ~6 µs for a 1.3 KiB token); a cache hit is ~500x cheaper than either, which
//! is what makes per-request verification of API clients' bearer tokens affordable.
use criterion::{black_box, criterion_group, criterion_main, Criterion};
use ring::rand::SystemRandom;
use ring::signature::{self, EcdsaKeyPair, KeyPair, RsaKeyPair};
use sessiongate::jwt::{verify, JwkSet, Validation, VerifyCache};
use std::rc::Rc;

/// The crate's RSA-2048 test fixture (PKCS#8 DER).
const RSA_PKCS8: &[u8] = include_bytes!("../src/jwt/testdata/rsa2048.pk8");
const NOW: u64 = 1_700_000_000;
const ISS: &str = "https://sso.example.com/realms/censhare";

fn b64(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn decode(text: &str) -> Vec<u8> {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(text)
        .unwrap()
}

/// A Keycloak-like access token's claims.
fn claims() -> String {
    serde_json::json!({
        "exp": NOW + 300, "iat": NOW, "auth_time": NOW - 10, "jti": "0c5b2d6e-8f7a-4b1e-9d3c-2a6f1e0b7c94",
        "iss": ISS, "aud": ["gateway", "account"], "sub": "f3a1c2d4-5b6e-4f70-8a9b-0c1d2e3f4a5b",
        "typ": "Bearer", "azp": "gateway", "sid": "6d2f0a3b-1c4e-4d5f-9a8b-7c6d5e4f3a2b",
        "acr": "1", "allowed-origins": ["https://censhare.example.com"],
        "realm_access": {"roles": ["offline_access", "uma_authorization", "default-roles-censhare"]},
        "resource_access": {"account": {"roles": ["manage-account", "manage-account-links", "view-profile"]}},
        "scope": "openid profile email", "email_verified": true, "name": "Ada Lovelace",
        "preferred_username": "ada", "given_name": "Ada", "family_name": "Lovelace",
        "email": "ada@example.com"
    })
    .to_string()
}

struct Fixture {
    rsa_pub: signature::RsaPublicKeyComponents<Vec<u8>>,
    ec_point: Vec<u8>,
    keys: JwkSet,
    validation: Validation,
    rs256: String,
    es256: String,
}

fn fixture() -> Fixture {
    let rng = SystemRandom::new();
    let rsa = RsaKeyPair::from_pkcs8(RSA_PKCS8).unwrap();
    let rsa_pub = signature::RsaPublicKeyComponents::<Vec<u8>>::from(rsa.public());
    let ec_alg = &signature::ECDSA_P256_SHA256_FIXED_SIGNING;
    let ec_pkcs8 = EcdsaKeyPair::generate_pkcs8(ec_alg, &rng).unwrap();
    let ec = EcdsaKeyPair::from_pkcs8(ec_alg, ec_pkcs8.as_ref(), &rng).unwrap();
    let point = ec.public_key().as_ref();
    let jwks = serde_json::json!({"keys": [
        {"kty": "RSA", "kid": "rsa-1", "use": "sig", "alg": "RS256",
         "n": b64(&rsa_pub.n), "e": b64(&rsa_pub.e)},
        {"kty": "EC", "kid": "ec-1", "use": "sig", "crv": "P-256",
         "x": b64(&point[1..33]), "y": b64(&point[33..])},
    ]});
    let payload = b64(claims().as_bytes());

    let input = format!(
        "{}.{payload}",
        b64(br#"{"alg":"RS256","typ":"JWT","kid":"rsa-1"}"#)
    );
    let mut sig = vec![0; rsa.public().modulus_len()];
    rsa.sign(
        &signature::RSA_PKCS1_SHA256,
        &rng,
        input.as_bytes(),
        &mut sig,
    )
    .unwrap();
    let rs256 = format!("{input}.{}", b64(&sig));

    let input = format!(
        "{}.{payload}",
        b64(br#"{"alg":"ES256","typ":"JWT","kid":"ec-1"}"#)
    );
    let sig = ec.sign(&rng, input.as_bytes()).unwrap();
    let es256 = format!("{input}.{}", b64(sig.as_ref()));

    Fixture {
        rsa_pub: rsa_pub.clone(),
        ec_point: point.to_vec(),
        keys: JwkSet::from_json(jwks.to_string().as_bytes()).unwrap(),
        validation: Validation::new(ISS, "gateway"),
        rs256,
        es256,
    }
}

fn bench_jwt(c: &mut Criterion) {
    let f = fixture();
    let mut group = c.benchmark_group("jwt");
    for (name, token) in [("RS256", &f.rs256), ("ES256", &f.es256)] {
        verify(token, &f.keys, &f.validation, NOW).expect("fixture token verifies");
        group.bench_function(format!("verify_cold/{name}"), |b| {
            b.iter(|| verify(black_box(token), &f.keys, &f.validation, NOW).unwrap())
        });
        let mut cache = VerifyCache::new(4096);
        let claims = Rc::new(verify(token, &f.keys, &f.validation, NOW).unwrap());
        assert!(cache.insert(token, claims, NOW));
        group.bench_function(format!("verify_cached/{name}"), |b| {
            b.iter(|| {
                cache
                    .verify(black_box(token), &f.keys, &f.validation, NOW)
                    .unwrap()
            })
        });
    }
    // The signature check alone, for the share of `verify_cold` that is ring's.
    let (input, sig) = f.rs256.rsplit_once('.').unwrap();
    let sig = decode(sig);
    group.bench_function("ring_only/RS256", |b| {
        b.iter(|| {
            f.rsa_pub
                .verify(
                    &signature::RSA_PKCS1_2048_8192_SHA256,
                    black_box(input.as_bytes()),
                    &sig,
                )
                .unwrap()
        })
    });
    let (input, sig) = f.es256.rsplit_once('.').unwrap();
    let sig = decode(sig);
    let ec = signature::UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, &f.ec_point);
    group.bench_function("ring_only/ES256", |b| {
        b.iter(|| ec.verify(black_box(input.as_bytes()), &sig).unwrap())
    });
    group.finish();
    eprintln!(
        "token sizes: RS256 {} B, ES256 {} B",
        f.rs256.len(),
        f.es256.len()
    );
}

criterion_group!(benches, bench_jwt);
criterion_main!(benches);
