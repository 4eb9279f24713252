//! `spring.data.redis` and `spring.session.redis`: defaults, the separate keys, the URL
//! winning over them, and refusals that name their key (never echoing a password).

use std::time::Duration;

use super::{error, fails, fails_all, load};

#[test]
fn defaults_without_keys() {
    let r = load("").redis;
    assert_eq!(
        (r.host.as_str(), r.port, r.database),
        ("localhost", 6379, 0)
    );
    assert_eq!((r.username, r.password, r.tls), (None, None, false));
    assert_eq!(r.timeout, Duration::from_secs(2));
    assert_eq!(r.namespace, "sessiongate");
}

#[test]
fn separate_keys_are_read() {
    let r = load(
        "spring:\n  data:\n    redis:\n      host: cache.internal\n      port: 6380\n      username: gw\n      password: s3cret\n      database: 15\n      ssl.enabled: true\n      timeout: 500ms\n  session.redis.namespace: gw-prod.1\n",
    )
    .redis;
    assert_eq!(
        (r.host.as_str(), r.port, r.database),
        ("cache.internal", 6380, 15)
    );
    assert_eq!(r.username.as_deref(), Some("gw"));
    assert_eq!(r.password.as_deref(), Some("s3cret"));
    assert!(r.tls);
    assert_eq!(r.timeout, Duration::from_millis(500));
    assert_eq!(r.namespace, "gw-prod.1");
    assert!(!format!("{r:?}").contains("s3cret"));
    assert_eq!(
        load("spring.data.redis.timeout: 2000\n").redis.timeout,
        Duration::from_secs(2)
    );
    assert_eq!(
        load("spring.data.redis.timeout: 3s\n").redis.timeout,
        Duration::from_secs(3)
    );
}

#[test]
fn url_wins_over_the_separate_keys() {
    let r = load(
        "spring.data.redis:\n  host: ignored\n  port: 1\n  password: ignored\n  database: 2\n  url: rediss://u:p%3Ass@10.0.0.5:7000/4\n",
    )
    .redis;
    assert_eq!((r.host.as_str(), r.port, r.database), ("10.0.0.5", 7000, 4));
    assert_eq!(
        (r.username.as_deref(), r.password.as_deref()),
        (Some("u"), Some("p:ss"))
    );
    assert!(r.tls);
    // Without a database path the `database` key stays.
    let r = load("spring.data.redis:\n  database: 2\n  url: redis://cache\n").redis;
    assert_eq!(
        (r.host.as_str(), r.port, r.database, r.tls),
        ("cache", 6379, 2, false)
    );
}

#[test]
fn bad_values_name_their_keys() {
    fails(
        "spring.data.redis.port: 0\n",
        "spring.data.redis.port",
        "from 1 to 65535",
    );
    fails(
        "spring.data.redis.database: 256\n",
        "spring.data.redis.database",
        "from 0 to 255",
    );
    fails(
        "spring.data.redis.ssl.enabled: maybe\n",
        "spring.data.redis.ssl.enabled",
        "true or false",
    );
    fails(
        "spring.data.redis.timeout: 2 weeks\n",
        "spring.data.redis.timeout",
        "duration",
    );
    fails(
        "spring.data.redis.timeout: 0\n",
        "spring.data.redis.timeout",
        "at least 1ms",
    );
    fails(
        "spring.data.redis.host: 'a b'\n",
        "spring.data.redis.host",
        "host name",
    );
    fails(
        "spring.data.redis.url: http://x\n",
        "spring.data.redis.url",
        "redis://",
    );
    fails(
        "spring.data.redis.url: redis://x:99999\n",
        "spring.data.redis.url",
        "port",
    );
    fails(
        "spring.data.redis.url: redis://x/db\n",
        "spring.data.redis.url",
        "database",
    );
    fails(
        "spring.data.redis.url: redis://x?timeout=1\n",
        "spring.data.redis.url",
        "query",
    );
    fails(
        "spring.session.redis.namespace: 'a:b'\n",
        "spring.session.redis.namespace",
        "A-Z",
    );
    let long = "n".repeat(65);
    fails(
        &format!("spring.session.redis.namespace: {long}\n"),
        "spring.session.redis.namespace",
        "1 to 64",
    );
}

#[test]
fn a_refused_url_does_not_repeat_the_password() {
    let msg = error("spring.data.redis.url: 'redis://u:hunter2@x:port'\n");
    assert!(
        msg.contains("spring.data.redis.url") && !msg.contains("hunter2"),
        "{msg}"
    );
}

#[test]
fn unknown_keys_are_refused_in_owned_sections_only() {
    fails_all(
        "spring.data.redis.hots: x\nspring.data.redis.ssl.bundle: b\nspring.session.redis.namespce: x\n",
        &[
            ("spring.data.redis.hots", "did you mean `spring.data.redis.host`?"),
            ("spring.data.redis.ssl.bundle", "unknown key"),
            ("spring.session.redis.namespce", "did you mean `spring.session.redis.namespace`?"),
        ],
    );
    // The rest of spring.data and spring.session belongs to other Spring parts.
    let c = load("spring.data.mongodb.uri: mongodb://x\nspring.session.timeout: 30m\n");
    assert_eq!(c.redis.host, "localhost");
}
