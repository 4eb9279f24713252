//! The shared session store on one gateway with two workers: a login is stored in Redis
//! (sealed), served, and ended through Redis.

use std::time::{Duration, Instant};

use crate::oidc::stack::{Stack, StackBuilder, APP_PATH, BACKEND_LOGOUT_PATH};
use crate::redis_server::RedisServer;

/// A 32-byte key, base64.
pub const KEY: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";

/// A stack whose gateway keeps its sessions in `redis`.
pub fn on_redis(b: StackBuilder, redis: &RedisServer) -> StackBuilder {
    b.set("session-store", "redis")
        .set("session-encryption-keys", KEY)
        .set_top("spring.data.redis.host", "127.0.0.1")
        .set_top("spring.data.redis.port", redis.port)
}

#[test]
fn a_login_lives_in_redis_sealed_and_ends_there() {
    let redis = RedisServer::start();
    let s = on_redis(Stack::builder(), &redis).start();
    let (mut b, login) = s.login("alice");
    let token = s.bearer_at_backend(APP_PATH);
    let keys = redis.cmd(&["KEYS", "*"]);
    assert!(keys.contains("{sessiongate}:s:"), "no session key: {keys}");
    assert!(
        !keys.contains(&login.session_cookie.value),
        "the cookie value names a key: {keys}"
    );
    let dump = dump_all(&redis);
    assert!(
        !dump.contains(&token),
        "the access token is in Redis in clear"
    );
    assert!(
        !dump.contains(&login.session_cookie.value),
        "the cookie value is in Redis"
    );

    let r = b.post_form(&s.url("/logout"), &[]);
    assert_eq!(r.status, 302, "logout: {}", r.text());
    // Ended in Redis before the answer: killing the instance now would lose nothing.
    assert!(
        !redis.cmd(&["KEYS", "{sessiongate}:s:*"]).contains(":s:"),
        "the session was still in Redis when the logout was answered"
    );
}

/// Every key and value in `redis`, as the raw replies (for "no plaintext" checks).
pub fn dump_all(redis: &RedisServer) -> String {
    let keys = redis.cmd(&["KEYS", "*"]);
    let mut out = keys.clone();
    for key in keys.lines().filter(|l| l.starts_with('{')) {
        let kind = redis.cmd(&["TYPE", key]);
        let reply = match kind.trim() {
            k if k.contains("hash") => redis.cmd(&["HGETALL", key]),
            k if k.contains("zset") => redis.cmd(&["ZRANGE", key, "0", "-1"]),
            k if k.contains("set") => redis.cmd(&["SMEMBERS", key]),
            k if k.contains("stream") => redis.cmd(&["XRANGE", key, "-", "+"]),
            _ => redis.cmd(&["GET", key]),
        };
        out.push_str(&reply);
    }
    out
}

/// Readiness at the stack's management port: (status, body).
fn readiness(s: &Stack) -> (u16, String) {
    let r = s.gateway.admin("GET", "/actuator/health/readiness", None);
    (r.status, r.text())
}

/// Waits (bounded) until readiness answers `status` with `saying` in its body.
fn wait_readiness(s: &Stack, status: u16, saying: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (got, body) = readiness(s);
        if got == status && body.contains(saying) {
            return body;
        }
        assert!(
            Instant::now() < deadline,
            "readiness stayed {got} ({body}), wanted {status}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Redis not there at start: the gateway starts anyway, says why it is not ready, refuses
/// logins with 503 and Retry-After instead of hanging, and becomes ready once Redis answers.
#[test]
fn without_redis_at_start_the_gateway_waits_unready_and_recovers() {
    let port = crate::harness::closed_port_addr().port();
    let s = Stack::builder()
        .set("session-store", "redis")
        .set("session-encryption-keys", KEY)
        .set_top("spring.data.redis.host", "127.0.0.1")
        .set_top("spring.data.redis.port", port)
        .management(None)
        .start_unready();
    wait_readiness(&s, 503, "session store unreachable");
    let mut b = crate::oidc::browser::Browser::new();
    let r = b.navigate(&s.url(APP_PATH));
    assert_eq!(
        r.status,
        503,
        "a login without Redis: {} {}",
        r.status,
        r.text()
    );
    assert!(r.header("retry-after").is_some(), "503 without Retry-After");
    let stderr = s.gateway.stderr();
    assert!(
        stderr.contains("redis") || stderr.contains("Redis"),
        "no log line names the store: {stderr}"
    );

    let _redis = RedisServer::start_on(port);
    wait_readiness(&s, 200, "UP");
    s.wait_until_provider_known();
    let (_b, _login) = s.login("alice");
    assert!(!s.gateway.stderr().contains("panicked"));
}

/// A logout while Redis is away is not lost: the cached copy goes at once, and the end
/// (with its backend logout call) is written when Redis is back, even to a Redis that
/// came back from its dump still holding the session.
#[test]
fn an_end_during_a_redis_outage_is_written_when_redis_is_back() {
    let mut redis = RedisServer::start();
    let s = on_redis(Stack::builder(), &redis)
        .set("redis-outage-grace-sec", 60)
        .management(None)
        .start();
    let (mut b, _login) = s.login("alice");
    s.bearer_at_backend(APP_PATH);
    redis.cmd(&["SAVE"]);
    redis.kill();

    let r = b.post_form(&s.url("/logout"), &[]);
    assert_eq!(r.status, 302, "logout while Redis is away: {}", r.text());
    // Operators see it waiting.
    let metric = |name| crate::hardening_floods::metric(&s.gateway, name);
    let deadline = Instant::now() + Duration::from_secs(10);
    while metric("sessiongate_store_ends_waiting") == 0 || metric("sessiongate_store_up") != 0 {
        assert!(Instant::now() < deadline, "the waiting end is not shown");
        std::thread::sleep(Duration::from_millis(100));
    }
    redis.restart();
    assert!(
        redis.cmd(&["KEYS", "{sessiongate}:s:*"]).contains(":s:"),
        "the dump did not bring the session back; the test proves nothing"
    );
    let deadline = Instant::now() + Duration::from_secs(15);
    while redis.cmd(&["KEYS", "{sessiongate}:s:*"]).contains(":s:") {
        assert!(Instant::now() < deadline, "the logout never reached Redis");
        std::thread::sleep(Duration::from_millis(100));
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while s.backend_requests_to(BACKEND_LOGOUT_PATH).is_empty() {
        assert!(
            Instant::now() < deadline,
            "the backend logout was never called"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while metric("sessiongate_store_ends_waiting") != 0 || metric("sessiongate_store_up") != 1 {
        assert!(
            Instant::now() < deadline,
            "still shown waiting after Redis took the end"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(!s.gateway.stderr().contains("panicked"));
}

/// Hostile cookies against the shared store: a session's cookie with its worker byte
/// changed (any instance's worker may be named, so the byte is not refused up front) and
/// random well-formed ids are no session: 401 for an API call, nothing reaches the backend
/// with a token, the gateway keeps serving the real one.
#[test]
fn a_cookie_with_another_worker_byte_or_random_bytes_is_no_session() {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine as _;
    let redis = RedisServer::start();
    let s = on_redis(Stack::builder(), &redis).start();
    let (mut b, login) = s.login("alice");
    let real = login.session_cookie.value.clone();
    let mut bytes = URL_SAFE_NO_PAD.decode(&real).unwrap();
    let mut forged = Vec::new();
    for owner in [bytes[0] ^ 1, 0xff, 0x80] {
        bytes[0] = owner;
        forged.push(URL_SAFE_NO_PAD.encode(&bytes));
    }
    forged.push(URL_SAFE_NO_PAD.encode([0xffu8; 17]));
    forged.push(URL_SAFE_NO_PAD.encode([0u8; 17]));
    let url = s.url("/api/whoami");
    for cookie in &forged {
        let mut other = crate::oidc::browser::Browser::new();
        other.set_cookie(&url, "SESSION", cookie);
        let r = other.fetch(&url);
        assert_eq!(
            r.status,
            401,
            "forged cookie {cookie}: {} {}",
            r.status,
            r.text()
        );
    }
    assert!(
        s.backend_requests_to("/api/whoami").is_empty(),
        "a forged cookie reached the backend"
    );
    // The same made-up cookie again and again costs Redis one lookup, not one a request.
    let commands = || -> u64 {
        let info = redis.cmd(&["INFO", "stats"]);
        info.lines()
            .find_map(|l| l.strip_prefix("total_commands_processed:"))
            .and_then(|n| n.trim().parse().ok())
            .expect("INFO stats")
    };
    let mut repeat = crate::oidc::browser::Browser::new();
    repeat.set_cookie(&url, "SESSION", &forged[0]);
    let before = commands();
    for _ in 0..60 {
        assert_eq!(repeat.fetch(&url).status, 401);
    }
    let spent = commands() - before;
    assert!(
        spent < 30,
        "60 requests with one made-up cookie cost Redis {spent} commands"
    );
    let r = b.fetch(&url);
    assert_eq!(r.status, 200, "the real session: {}", r.text());
    assert!(!s.gateway.stderr().contains("panicked"));
}

/// A back-channel logout that arrives while Redis is away is not acknowledged (the
/// provider retries an answer other than 200), and its `jti` is not spent: the retry,
/// once Redis is back, is accepted and ends the session. A Redis restored from its dump
/// still holds the session, so the test shows the retry did the ending.
#[test]
fn a_backchannel_logout_during_a_redis_outage_is_refused_and_its_retry_ends_the_session() {
    let mut redis = RedisServer::start();
    let s = on_redis(Stack::builder().backchannel_logout(), &redis)
        .set("redis-outage-grace-sec", 60)
        .start();
    let (_b, login) = s.login("alice");
    s.bearer_at_backend(APP_PATH);
    let sid = s.provider.sid_of("alice");
    let token = s
        .provider
        .sign_logout(s.provider.logout_claims(Some("alice"), Some(&sid)));
    let post = || {
        let body = crate::oidc::browser::encode_form(&[("logout_token", token.as_str())]);
        crate::client::Client::connect(s.gateway.addr()).request(
            format!(
                "POST /backchannel/logout HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                s.port,
                body.len()
            )
            .as_bytes(),
        )
    };
    redis.cmd(&["SAVE"]);
    redis.kill();
    let refused = post();
    assert_ne!(
        refused.status,
        200,
        "acknowledged while Redis was away: {}",
        refused.text()
    );
    redis.restart();
    let deadline = Instant::now() + Duration::from_secs(15);
    let accepted = loop {
        let r = post();
        if r.status == 200 || Instant::now() > deadline {
            break r;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(
        accepted.status,
        200,
        "the provider's retry: {}",
        accepted.text()
    );
    assert!(
        !redis.cmd(&["KEYS", "{sessiongate}:s:*"]).contains(":s:"),
        "the session is still in Redis after the accepted logout"
    );
    let mut probe = crate::oidc::browser::Browser::new();
    probe.set_cookie(&s.url("/"), "SESSION", &login.session);
    let r = probe.fetch(&s.url("/api/after"));
    assert_eq!(r.status, 401, "alice after the logout: {}", r.text());
}
