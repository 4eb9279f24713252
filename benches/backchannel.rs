//! Back-channel logouts handled per second by one worker (issue #4, target ≥ 5000/s per
//! worker): an RS256 logout token validated (signature and every rule of Back-Channel Logout
//! 1.0), its `jti` admitted by the replay guard, and the matching session found by `sid` and
//! removed from a table of 100k sessions. The HTTP exchange around it is the proxy's usual
//! cost (see `perf/RESULTS.md`); this is the work specific to a logout.
//!
//! Run: `cargo bench --bench backchannel` (quick: `-- --warm-up-time 1 --measurement-time 3`).
//! Figures and machine: `perf/RESULTS.md`, section "Back-channel logout".
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use ring::rand::SystemRandom;
use ring::signature::{self, RsaKeyPair};
use sessiongate::backchannel::{validate, Policy, ReplayGuard};
use sessiongate::jwt::JwkSet;
use sessiongate::session::table::{Session, SessionTable, TableConfig};
use sessiongate::session::SessionId;

const RSA_PKCS8: &[u8] = include_bytes!("../src/jwt/testdata/rsa2048.pk8");
const ISS: &str = "https://sso.example.com/realms/censhare";
const NOW: u64 = 1_700_000_000;
const SESSIONS: usize = 100_000;

fn b64(b: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(b)
}

fn logout_token(kp: &RsaKeyPair, sid: &str, jti: usize) -> String {
    let header = b64(br#"{"alg":"RS256","typ":"logout+jwt","kid":"k1"}"#);
    let claims = serde_json::json!({
        "iss": ISS, "aud": "gateway", "iat": NOW, "exp": NOW + 120, "jti": format!("jti-{jti}"),
        "sub": format!("user-{jti}"), "sid": sid,
        "events": {"http://schemas.openid.net/event/backchannel-logout": {}}
    });
    let payload = b64(claims.to_string().as_bytes());
    let input = format!("{header}.{payload}");
    let mut sig = vec![0; kp.public().modulus_len()];
    kp.sign(
        &signature::RSA_PKCS1_SHA256,
        &SystemRandom::new(),
        input.as_bytes(),
        &mut sig,
    )
    .expect("sign");
    format!("{input}.{}", b64(&sig))
}

fn bench(c: &mut Criterion) {
    let kp = RsaKeyPair::from_pkcs8(RSA_PKCS8).expect("fixture key");
    let pk = signature::RsaPublicKeyComponents::<Vec<u8>>::from(kp.public());
    let jwks = serde_json::json!({"keys": [{"kty": "RSA", "kid": "k1", "alg": "RS256", "use": "sig",
        "n": b64(&pk.n), "e": b64(&pk.e)}]});
    let keys = JwkSet::from_json(jwks.to_string().as_bytes()).expect("jwks");
    let policy = Policy {
        issuer: ISS.into(),
        client_id: "gateway".into(),
        leeway_secs: 30,
        max_age_secs: 300,
    };
    let rng = SystemRandom::new();
    let mut table = SessionTable::new(TableConfig {
        idle_timeout_ms: 1_800_000,
        max_lifetime_ms: None,
        tick_ms: 60_000,
    });
    let mut sids = Vec::with_capacity(SESSIONS);
    for i in 0..SESSIONS {
        let sid = format!("sid-{i:06}");
        let mut s = Session::new(
            SessionId::generate(0, &rng).expect("rng"),
            format!("user-{i}").into(),
            Some(sid.clone().into()),
            0,
        );
        s.access_token = "a".repeat(900).into();
        table.insert(s);
        sids.push(sid);
    }
    // Distinct tokens (distinct jti), each naming a live session.
    const TOKENS: usize = 4096;
    let tokens: Vec<String> = (0..TOKENS)
        .map(|i| logout_token(&kp, &sids[i * 24], i))
        .collect();

    let mut g = c.benchmark_group("backchannel_logout");
    g.throughput(Throughput::Elements(1));
    let mut guard = ReplayGuard::default();
    let mut i = 0usize;
    let mut round = 0u64;
    g.bench_function("validate_admit_end_100k_sessions", |b| {
        b.iter(|| {
            let token = &tokens[i % TOKENS];
            i += 1;
            if i % TOKENS == 0 {
                // Every token once per round: a fresh guard keeps `jti`s new.
                guard = ReplayGuard::default();
                round += 1;
            }
            let t = validate(black_box(token), &keys, &policy, NOW).expect("valid token");
            guard.admit(&t, NOW).expect("fresh jti");
            let sid = t.sid.as_deref().expect("sid");
            let ids: Vec<SessionId> = table.ids_by_sid(sid).collect();
            for id in ids {
                // End it, then put it back so the table stays at 100k for the next token.
                let s = table.remove(&id).expect("live session");
                table.insert(s);
            }
        })
    });
    black_box(round);
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
