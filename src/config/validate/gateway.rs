//! `sessiongate.*`: the gateway's own knobs (workers, driver, limits, timeouts, upstream
//! pool, sessions, trusted proxies).

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use super::files::{access_banner, ca_bundle, pages};
use super::number::{IntRule, COUNT, COUNT_U64, MS, POSITIVE_MS, POSITIVE_SECS, SECS};
use super::section::{parse_ip, parse_url, Section};
use super::{all, ConfigError, Result};
use crate::config::{Driver, GatewayConfig, HttpUrl, SessionKeys, StoreKind};
use crate::pages::Pages;
use crate::session::seal::KEY_LEN;

pub(super) const SESSIONGATE_KEYS: &[&str] = &[
    "workers",
    "driver",
    "connection-idle-timeout-ms",
    "request-head-timeout-ms",
    "body-read-timeout-ms",
    "body-min-rate-bytes-per-sec",
    "max-connections",
    "max-head-bytes",
    "max-headers",
    "max-uri-bytes",
    "max-body-bytes",
    "upstream-connect-timeout-ms",
    "upstream-response-timeout-ms",
    "upstream-idle-timeout-ms",
    "upstream-pool-size",
    "shutdown-grace-ms",
    "access-log",
    "connection-hand-off",
    "post-logout-redirect-uri",
    "session-max-lifetime-sec",
    "access-banner",
    "keep-alive-after-disconnect-sec",
    "audit-log",
    "http-port",
    "trusted-proxies",
    "jwt-clock-skew-sec",
    "ca-bundle",
    "management-token",
    "public-url",
    "max-sessions-per-user",
    "api-audience",
    "page-templates",
    "product-name",
    "logo",
    "session-store",
    "session-encryption-keys",
    "session-snapshot",
    "redis-outage-grace-sec",
];

const MIB: u64 = 1024 * 1024;

pub(super) fn gateway(s: &Section) -> GatewayConfig {
    let session_store = s.take(session_store(s));
    let session_keys = s.take(session_keys(s));
    let session_snapshot = s.take(s.path("session-snapshot"));
    needs_keys(s, session_store, session_snapshot.is_some(), &session_keys);
    let ms = |key: &str, rule, default| s.take(s.millis(key, rule, default));
    let count =
        |key: &str, min, max, default| s.take(s.int(key, IntRule::range(min, max), default));
    GatewayConfig {
        workers: s.take(workers(s)),
        driver: s.take(driver(s)),
        connection_idle_timeout: ms("connection-idle-timeout-ms", POSITIVE_MS, 300_000),
        request_head_timeout: ms("request-head-timeout-ms", POSITIVE_MS, 10_000),
        body_read_timeout: ms("body-read-timeout-ms", POSITIVE_MS, 30_000),
        body_min_rate: s.take(s.int("body-min-rate-bytes-per-sec", COUNT_U64, 1024)),
        max_connections: count("max-connections", 1, 10_000_000, 9000) as usize,
        max_head_bytes: count("max-head-bytes", 1024, MIB, 16_384) as usize,
        max_headers: count("max-headers", 1, 1000, 100) as usize,
        max_uri_bytes: count("max-uri-bytes", 16, MIB, 8192) as usize,
        max_body_bytes: s.take(s.int("max-body-bytes", COUNT_U64, 0)),
        upstream_connect_timeout: ms("upstream-connect-timeout-ms", POSITIVE_MS, 3000),
        upstream_response_timeout: ms("upstream-response-timeout-ms", POSITIVE_MS, 60_000),
        upstream_idle_timeout: ms("upstream-idle-timeout-ms", POSITIVE_MS, 60_000),
        upstream_pool_size: count("upstream-pool-size", 0, 65_536, 64) as usize,
        shutdown_grace: ms("shutdown-grace-ms", MS, 10_000),
        access_log: s.take(s.bool("access-log", false)),
        connection_hand_off: s.take(s.bool("connection-hand-off", true)),
        post_logout_redirect_uri: s.take(post_logout_redirect(s)),
        session_max_lifetime: s
            .take(s.opt_int("session-max-lifetime-sec", POSITIVE_SECS))
            .map(Duration::from_secs),
        access_banner: s.take(access_banner(s)),
        keep_alive_after_disconnect: s
            .take(s.opt_int("keep-alive-after-disconnect-sec", SECS))
            .filter(|secs| *secs > 0)
            .map(Duration::from_secs),
        audit_log: s.take(s.text("audit-log")),
        http_port: s.take(s.port("http-port")),
        trusted_proxies: s.take(trusted_proxies(s)),
        jwt_clock_skew: s.take(s.secs("jwt-clock-skew-sec", IntRule::secs(0, 3600), 30)),
        ca_bundle: s.take(ca_bundle(s)),
        public_url: s.take(public_url(s)),
        max_sessions_per_user: count("max-sessions-per-user", 0, 1_000_000, 10),
        api_audience: s.take(s.text("api-audience")),
        pages: s.ok(pages(s)).unwrap_or_else(|| Arc::new(Pages::builtin())),
        session_store,
        session_keys,
        session_snapshot,
        redis_outage_grace: s.take(s.secs("redis-outage-grace-sec", IntRule::secs(0, 86_400), 30)),
    }
}

/// `session-store`: `memory` (default) or `redis`.
fn session_store(s: &Section) -> Result<StoreKind> {
    let choices = [("memory", StoreKind::Memory), ("redis", StoreKind::Redis)];
    Ok(s.choice("session-store", &choices)?.unwrap_or_default())
}

/// `session-encryption-keys`: each a base64 (standard or URL-safe) 32-byte key, e.g. from
/// `openssl rand -base64 32`; each bad one is a problem of its own, naming only its index.
fn session_keys(s: &Section) -> Result<SessionKeys> {
    use base64::Engine as _;
    let keys = all(s.list("session-encryption-keys")?.iter().map(|(path, v)| {
        let v = v.trim_end_matches('=');
        let decoded = base64::engine::general_purpose::STANDARD_NO_PAD
            .decode(v)
            .or_else(|_| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(v));
        match decoded.ok().and_then(|k| <[u8; KEY_LEN]>::try_from(k).ok()) {
            Some(k) => Ok(k),
            None => Err(ConfigError::invalid(
                path,
                "expected 32 bytes in base64, e.g. the output of `openssl rand -base64 32`",
            )),
        }
    }))?;
    Ok(SessionKeys(keys))
}

/// A store or snapshot that writes sessions out needs a key to seal their tokens.
fn needs_keys(s: &Section, store: StoreKind, snapshot: bool, keys: &SessionKeys) {
    let why = match (store, snapshot) {
        (StoreKind::Redis, _) => "session-store: redis",
        (_, true) => "session-snapshot",
        _ => return,
    };
    if keys.0.is_empty() {
        s.missing(
            "session-encryption-keys",
            &format!("required with {why}: the tokens written outside the process are sealed with it (e.g. `openssl rand -base64 32`)"),
        );
    }
}

/// `public-url`: the origin browsers reach the gateway at (`https://gw.example.com`), from
/// which login redirect URIs and the expected `Origin` are built. Scheme, host and port only.
fn public_url(s: &Section) -> Result<Option<HttpUrl>> {
    let Some(url) = s.url("public-url")? else {
        return Ok(None);
    };
    if url.path_and_query != "/" {
        return Err(ConfigError::invalid(
            &s.key("public-url"),
            format!(
                "an origin without a path, e.g. https://gw.example.com; got {}",
                url.original
            ),
        ));
    }
    Ok(Some(url))
}

/// The most workers: a session id names the worker that holds it in one byte.
const MAX_WORKERS: usize = u8::MAX as usize;

/// `workers`: 0 means one per core. The number, as written or as resolved from the cores,
/// is at most [`MAX_WORKERS`].
fn workers(s: &Section) -> Result<usize> {
    let configured = s.int("workers", COUNT, 0)?;
    let n = match configured {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n as usize,
    };
    if n <= MAX_WORKERS {
        return Ok(n);
    }
    let given = match configured {
        0 => format!("0 (one per core) gives {n} on this machine"),
        _ => format!("got {n}"),
    };
    Err(ConfigError::invalid(
        &s.key("workers"),
        format!("at most {MAX_WORKERS} (a session id names its worker in one byte); {given}"),
    ))
}

fn driver(s: &Section) -> Result<Driver> {
    let choices = [("io_uring", Driver::IoUring), ("legacy", Driver::Legacy)];
    Ok(s.choice("driver", &choices)?.unwrap_or_default())
}

/// An absolute http(s) URL, or a path on the gateway itself (`/`, `/goodbye`).
fn post_logout_redirect(s: &Section) -> Result<Option<String>> {
    let Some(uri) = s.text("post-logout-redirect-uri")? else {
        return Ok(None);
    };
    let local_path = uri.starts_with('/')
        && !uri.starts_with("//")
        && HttpUrl::parse(&format!("http://h{uri}")).is_ok();
    if !local_path {
        parse_url(&uri, &s.key("post-logout-redirect-uri"))?;
    }
    Ok(Some(uri))
}

/// Each address that is not one is a problem of its own.
fn trusted_proxies(s: &Section) -> Result<Vec<IpAddr>> {
    all(s
        .list("trusted-proxies")?
        .iter()
        .map(|(path, v)| parse_ip(v, path)))
}
