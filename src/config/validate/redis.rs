//! `spring.data.redis` and `spring.session.redis`: the Redis (or Valkey) server of the shared
//! session store, in Spring Boot's key names. Both sections are ours and refuse unknown keys;
//! the rest of `spring.data` and `spring.session` belongs to other Spring parts.
//!
//! `url` (`redis://[user:password@]host[:port][/database]`, `rediss://` for TLS) wins over
//! `host`, `port`, `username`, `password` and `ssl.enabled`, as in Spring Boot; its database
//! path, when given, wins over `database`. An error about the URL never repeats it: it may
//! hold the password.
//!
//! `timeout` is a Spring duration: a number with an optional unit (`ns`, `us`, `ms`, `s`,
//! `m`, `h`, `d`), milliseconds without one.

use std::time::Duration;

use super::number::IntRule;
use super::section::Section;
use super::{ConfigError, Result};
use crate::config::RedisConfig;

const DATA_KEYS: &[&str] = &[
    "host", "port", "username", "password", "database", "ssl", "timeout", "url",
];
const SESSION_KEYS: &[&str] = &["namespace"];
const PORT: IntRule = IntRule::range(1, 65535);
const DATABASE: IntRule = IntRule::range(0, 255);
/// Longer than an hour for one command is a typo, not a timeout.
const MAX_TIMEOUT: Duration = Duration::from_secs(3600);
const MAX_NAMESPACE: usize = 64;

/// The Redis settings from `spring`; absent keys take [`RedisConfig::default`].
pub(super) fn redis(spring: &Section) -> RedisConfig {
    let data = spring.open_section("data").section("redis", DATA_KEYS);
    let session = spring
        .open_section("session")
        .section("redis", SESSION_KEYS);
    let mut c = RedisConfig::default();
    if let Some(host) = data.ok(data.text("host")).flatten() {
        c.host = data.take(host_name(&host, &data.key("host")));
    }
    c.port = data.take(data.int("port", PORT, c.port.into())) as u16;
    c.username = data.take(data.text("username"));
    c.password = data.take(data.text("password"));
    c.database = data.take(data.int("database", DATABASE, 0)) as u32;
    let ssl = data.section("ssl", &["enabled"]);
    c.tls = ssl.take(ssl.bool("enabled", false));
    if let Some(t) = data.ok(data.text("timeout")).flatten() {
        c.timeout = data.take(timeout(&t, &data.key("timeout")));
    }
    if let Some(url) = data.ok(data.text("url")).flatten() {
        if let Some(u) = data.ok(redis_url(&url, &data.key("url"))) {
            c.host = u.host;
            c.port = u.port;
            c.username = u.username;
            c.password = u.password;
            c.tls = u.tls;
            c.database = u.database.unwrap_or(c.database);
        }
    }
    if let Some(ns) = session.ok(session.text("namespace")).flatten() {
        c.namespace = session.take(namespace(&ns, &session.key("namespace")));
    }
    c
}

/// A host name or IP address (an IPv6 one without brackets).
fn host_name(host: &str, key: &str) -> Result<String> {
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    if host.is_empty()
        || host
            .chars()
            .any(|c| c.is_whitespace() || "/@?#".contains(c))
    {
        return Err(ConfigError::invalid(
            key,
            format!("expected a host name or IP address, got {host:?}"),
        ));
    }
    Ok(host.to_string())
}

/// A Spring duration: `2s`, `500ms`, `2000` (milliseconds), at least 1 ms.
fn timeout(value: &str, key: &str) -> Result<Duration> {
    let bad = || {
        ConfigError::invalid(
            key,
            format!(
                "expected a duration such as 2s or 500ms (at least 1ms, at most 1h), got {value:?}"
            ),
        )
    };
    let digits = value
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(value.len());
    let (number, unit) = value.split_at(digits);
    let n: u64 = number.parse().map_err(|_| bad())?;
    let nanos_per: u64 = match unit.trim() {
        "ns" => 1,
        "us" => 1_000,
        "" | "ms" => 1_000_000,
        "s" => 1_000_000_000,
        "m" => 60_000_000_000,
        "h" => 3_600_000_000_000,
        "d" => 86_400_000_000_000,
        _ => return Err(bad()),
    };
    let d = Duration::from_nanos(n.checked_mul(nanos_per).ok_or_else(bad)?);
    if d < Duration::from_millis(1) || d > MAX_TIMEOUT {
        return Err(bad());
    }
    Ok(d)
}

/// The key prefix: it is part of every key name, so only characters that need no quoting.
fn namespace(value: &str, key: &str) -> Result<String> {
    let fine = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
    if value.len() > MAX_NAMESPACE || !value.chars().all(fine) {
        return Err(ConfigError::invalid(
            key,
            format!("expected 1 to {MAX_NAMESPACE} of A-Z a-z 0-9 . _ -, got {value:?}"),
        ));
    }
    Ok(value.to_string())
}

/// What a `redis://` URL names.
#[derive(Debug, PartialEq)]
struct RedisUrl {
    tls: bool,
    host: String,
    port: u16,
    username: Option<String>,
    password: Option<String>,
    database: Option<u32>,
}

/// `redis://[user:password@]host[:port][/database]`; `rediss://` is TLS. User information
/// without a colon is the password (the `default` user), as in Spring Boot.
fn redis_url(value: &str, key: &str) -> Result<RedisUrl> {
    // The value is not repeated: it may carry the password.
    let bad = |why: &str| ConfigError::invalid(key, format!("invalid Redis URL: {why}"));
    let (tls, rest) = if let Some(r) = value.strip_prefix("redis://") {
        (false, r)
    } else if let Some(r) = value.strip_prefix("rediss://") {
        (true, r)
    } else {
        return Err(bad("expected redis:// or rediss://"));
    };
    if rest.contains(['?', '#']) {
        return Err(bad(
            "query parameters are not supported; use the separate keys",
        ));
    }
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    let (userinfo, hostport) = match authority.rsplit_once('@') {
        Some((u, h)) => (Some(u), h),
        None => (None, authority),
    };
    let (mut username, mut password) = (None, None);
    if let Some(u) = userinfo {
        let (user, pass) = u.split_once(':').unwrap_or(("", u));
        let decode =
            |s: &str| percent_decode(s).ok_or_else(|| bad("bad %-escape in the user information"));
        username = Some(decode(user)?).filter(|s| !s.is_empty());
        password = Some(decode(pass)?).filter(|s| !s.is_empty());
    }
    let (host, port) = split_host_port(hostport).ok_or_else(|| bad("expected host[:port]"))?;
    let host = host_name(host, key).map_err(|_| bad("expected a host name or IP address"))?;
    let port = match port {
        None => 6379,
        Some(p) => {
            PORT.check(p, key)
                .map_err(|_| bad("the port must be a number from 1 to 65535"))? as u16
        }
    };
    let database = match path {
        "" => None,
        db => Some(
            DATABASE
                .check(db, key)
                .map_err(|_| bad("the database must be a number from 0 to 255"))?
                as u32,
        ),
    };
    Ok(RedisUrl {
        tls,
        host,
        port,
        username,
        password,
        database,
    })
}

/// `host`, `host:port`, `[v6]` or `[v6]:port`.
fn split_host_port(s: &str) -> Option<(&str, Option<&str>)> {
    if let Some(v6) = s.strip_prefix('[') {
        let (host, after) = v6.split_once(']')?;
        return match after {
            "" => Some((host, None)),
            p => Some((host, Some(p.strip_prefix(':')?))),
        };
    }
    match s.split_once(':') {
        Some((h, p)) if !p.contains(':') => Some((h, Some(p))),
        Some(_) => None,
        None => Some((s, None)),
    }
}

/// `%XX` escapes of a URL's user information; `None` for a broken one.
fn percent_decode(s: &str) -> Option<String> {
    let mut out = Vec::with_capacity(s.len());
    let mut bytes = s.bytes();
    while let Some(b) = bytes.next() {
        if b != b'%' {
            out.push(b);
            continue;
        }
        let hex = [bytes.next()?, bytes.next()?];
        out.push(u8::from_str_radix(std::str::from_utf8(&hex).ok()?, 16).ok()?);
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_split() {
        let u = redis_url("rediss://app:p%40ss@[::1]:6380/3", "k").unwrap();
        assert_eq!(
            u,
            RedisUrl {
                tls: true,
                host: "::1".into(),
                port: 6380,
                username: Some("app".into()),
                password: Some("p@ss".into()),
                database: Some(3),
            }
        );
        let u = redis_url("redis://secret@cache", "k").unwrap();
        assert_eq!((u.username, u.password.as_deref()), (None, Some("secret")));
        assert_eq!((u.port, u.database), (6379, None));
        let u = redis_url("redis://:secret@cache:1/", "k").unwrap();
        assert_eq!((u.password.as_deref(), u.port), (Some("secret"), 1));
    }

    #[test]
    fn durations_in_spring_style() {
        let t = |v| timeout(v, "k");
        assert_eq!(t("2s").unwrap(), Duration::from_secs(2));
        assert_eq!(t("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(t("2000").unwrap(), Duration::from_secs(2));
        assert_eq!(t("1m").unwrap(), Duration::from_secs(60));
        for bad in [
            "0",
            "500us",
            "2 x",
            "s",
            "-1s",
            "2h",
            "99999999999999999999d",
        ] {
            assert!(t(bad).is_err(), "{bad}");
        }
    }
}
