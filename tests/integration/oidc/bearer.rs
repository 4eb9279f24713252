//! API clients that bring their own `Authorization: Bearer <JWT>`: verified by the gateway
//! without a session (signature, iss, aud, exp, nbf), and signing key rotation at the
//! provider.

use serde_json::{json, Value};

use crate::client::{Client, Response};
use crate::oidc::browser::unix_now;
use crate::oidc::provider::{bearer, jwt_header, jwt_payload};
use crate::oidc::stack::{sets_no_session, Stack, APP_PATH};

/// `GET target` as an API client: JSON wanted, this bearer token, no cookie.
fn api_get(s: &Stack, target: &str, token: &str) -> Response {
    Client::connect(s.gateway.addr()).request(
        format!(
            "GET {target} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nAccept: application/json\r\nAuthorization: Bearer {token}\r\n\r\n",
            s.port
        )
        .as_bytes(),
    )
}

/// A real access token from the provider (code flow run by the test itself) is accepted
/// without a session and forwarded as it came; no session cookie is handed out.
#[test]
fn api_client_with_provider_access_token_needs_no_session() {
    let s = Stack::start();
    let tokens = s.provider.tokens_for("robot");
    let claims = s
        .provider
        .jwks()
        .verify(&tokens.access_token)
        .expect("the provider's own token verifies");
    assert_eq!(claims["aud"], "gateway", "provider setup: {claims}");
    let id_token = tokens.id_token.as_deref().expect("an ID token");
    assert_eq!(s.provider.jwks().verify(id_token).unwrap()["sub"], "robot");
    assert!(
        tokens.refresh_token.is_some(),
        "provider setup: refresh token issued"
    );

    for n in 0..2 {
        let target = format!("/api/orders/{n}");
        let r = api_get(&s, &target, &tokens.access_token);
        assert_eq!(r.status, 200, "valid bearer token, try {n}: {}", r.text());
        assert_eq!(r.text(), "ok");
        assert!(
            sets_no_session(&r),
            "no session for API clients: {:?}",
            r.head.headers
        );
        let req = s
            .backend_requests_to(&target)
            .pop()
            .expect("backend request");
        assert_eq!(
            bearer(req.header("authorization")).as_deref(),
            Some(tokens.access_token.as_str()),
            "the client's token is forwarded as it came"
        );
    }
}

/// Tokens that must not pass: each gets 401 and the backend sees none of them. A token
/// minted the same way but valid passes, so each refusal is about the one thing broken.
#[test]
fn api_client_with_bad_tokens_gets_401() {
    let s = Stack::start();
    let p = &s.provider;
    let now = unix_now();
    let valid = p.access_claims("robot", 300);
    let with = |patch: Value| {
        let mut c = valid.clone();
        for (k, v) in patch.as_object().unwrap() {
            if v.is_null() {
                c.as_object_mut().unwrap().remove(k);
            } else {
                c[k] = v.clone();
            }
        }
        c
    };

    let control = p.sign("k1", json!({}), valid.clone());
    let r = api_get(&s, "/api/control", &control);
    assert_eq!(
        r.status,
        200,
        "a valid minted token must pass: {}",
        r.text()
    );

    let real = p.tokens_for("robot").access_token;
    let tampered = {
        let parts: Vec<&str> = real.split('.').collect();
        let mut payload = jwt_payload(&real);
        payload["sub"] = json!("admin");
        let enc = base64_url(payload.to_string().as_bytes());
        format!("{}.{enc}.{}", parts[0], parts[2])
    };
    let alg_none = format!(
        "{}.{}.",
        base64_url(br#"{"alg":"none","typ":"JWT"}"#),
        base64_url(valid.to_string().as_bytes())
    );
    let rogue = "rogue"; // a key the provider never publishes
    let cases: Vec<(&str, String)> = vec![
        (
            "expired",
            p.sign(
                "k1",
                json!({}),
                with(json!({"iat": now - 600, "exp": now - 300})),
            ),
        ),
        (
            "wrong audience",
            p.sign(
                "k1",
                json!({}),
                with(json!({"aud": "someone-else", "client_id": "someone-else"})),
            ),
        ),
        (
            "wrong issuer",
            p.sign("k1", json!({}), with(json!({"iss": "http://127.0.0.1:1"}))),
        ),
        (
            "not yet valid (nbf in 10 minutes)",
            p.sign("k1", json!({}), with(json!({"nbf": now + 600}))),
        ),
        (
            "no exp",
            p.sign("k1", json!({}), with(json!({"exp": null}))),
        ),
        (
            "signed by an unpublished key claiming the published kid",
            p.sign(rogue, json!({"kid": "k1"}), valid.clone()),
        ),
        (
            "signed by an unknown key",
            p.sign(rogue, json!({}), valid.clone()),
        ),
        ("payload changed after signing", tampered),
        ("alg none", alg_none),
        (
            "alg HS256 on an RSA key",
            p.sign("k1", json!({"alg": "HS256"}), valid.clone()),
        ),
        ("not a JWT", "not-a-jwt".to_string()),
    ];
    for (what, token) in &cases {
        let r = api_get(&s, "/api/secret", token);
        assert_eq!(r.status, 401, "{what}: {} {}", r.status, r.text());
        assert!(sets_no_session(&r), "{what}: {:?}", r.head.headers);
    }
    assert!(
        s.backend_requests_to("/api/secret").is_empty(),
        "refused tokens must not reach the backend"
    );
}

/// The provider rotates its signing key (restart publishing new + old, signing with new):
/// new logins, whose ID tokens carry the new kid, and API tokens signed with it pass.
#[test]
fn signing_key_rotation_is_picked_up() {
    // Names no other test uses; each key is generated once and kept (see provider.rs).
    let (old, new) = ("rotation-old", "rotation-new");
    let mut s = Stack::builder().provider(|o| o.keys(&[old])).start();
    let (mut b, first) = s.login("alice");
    assert_eq!(first.response.status, 200, "{}", first.response.text());
    let token = s.bearer_at_backend(APP_PATH);
    assert_eq!(jwt_header(&token)["kid"], old);

    s.provider.restart_with_keys(&[new, old]);
    let kids = s.provider.jwks();
    assert_eq!(kids.kids(), [new, old], "provider setup");

    // A new user logs in: the ID token the gateway must verify is signed with the new key.
    let (_, second) = s.login("bob");
    assert_eq!(
        second.response.status,
        200,
        "login after key rotation: {}",
        second.response.text()
    );
    let token = s
        .backend
        .requests()
        .into_iter()
        .rev()
        .find_map(|r| bearer(r.header("authorization")))
        .unwrap();
    assert_eq!(jwt_payload(&token)["sub"], "bob");
    assert_eq!(jwt_header(&token)["kid"], new);

    // An API client's token signed with the new key.
    let api = s.provider.tokens_for("robot").access_token;
    assert_eq!(jwt_header(&api)["kid"], new);
    let r = api_get(&s, "/api/rotated", &api);
    assert_eq!(r.status, 200, "API token with the new kid: {}", r.text());

    // The first session is the gateway's: it still works for a request.
    let r = b.navigate(&s.url("/app/still-there"));
    assert_eq!(r.status, 200, "old session after rotation: {}", r.text());
}

fn base64_url(data: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(data)
}
