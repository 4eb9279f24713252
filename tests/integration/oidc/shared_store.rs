//! The shared session store on one gateway with two workers: a login is stored in Redis
//! (sealed), served, and ended through Redis.

use std::time::{Duration, Instant};

use crate::oidc::stack::{Stack, StackBuilder, APP_PATH};
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
    let deadline = Instant::now() + Duration::from_secs(5);
    while redis.cmd(&["KEYS", "{sessiongate}:s:*"]).contains(":s:") {
        assert!(
            Instant::now() < deadline,
            "the session stayed in Redis after logout"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
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
