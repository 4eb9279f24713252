//! Tests of configuration loading, a file a topic: [`keys`] (unknown keys and the
//! suggestions), [`values`] (numbers, URLs, addresses, `server` and `management`),
//! [`oauth2`], [`routes`], [`gateway`] (`sessiongate.*` and `logging`), [`redis`]
//! (`spring.data.redis`, `spring.session.redis`), [`files`] (the
//! files read at load) and [`several`] (every problem of a file reported at once). Here: the helpers they share, the defaults, placeholders and merged
//! keys, and the files shipped in `config/`.

mod files;
mod gateway;
mod keys;
mod oauth2;
mod redis;
mod routes;
mod several;
mod values;

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::{load_file, load_str_with};
use crate::config::{Config, Driver};

fn env(name: &str) -> Option<String> {
    match name {
        "CLIENT_SECRET" => Some("from-env".to_string()),
        "TIMEOUT" => Some("900".to_string()),
        _ => None,
    }
}

fn load(yaml: &str) -> Config {
    load_str_with(yaml, &env).unwrap_or_else(|e| panic!("{e}"))
}

fn error(yaml: &str) -> String {
    match load_str_with(yaml, &env) {
        Ok(_) => panic!("expected an error for:\n{yaml}"),
        Err(e) => e.to_string(),
    }
}

/// Asserts that loading fails with an error about `key` containing `needle`.
fn fails(yaml: &str, key: &str, needle: &str) {
    let msg = error(yaml);
    assert!(
        msg.starts_with(&format!("{key}: ")),
        "expected key {key}: {msg}"
    );
    assert!(msg.contains(needle), "expected {needle:?} in: {msg}");
}

/// Asserts that loading fails with exactly these problems in this order, each `(key,
/// needle)` naming a problem's key and a part of its message, and that the message lists
/// them one a line after `N errors:`.
fn fails_all(yaml: &str, expected: &[(&str, &str)]) {
    let err = match load_str_with(yaml, &env) {
        Ok(_) => panic!("expected errors for:\n{yaml}"),
        Err(e) => e,
    };
    let keys: Vec<&str> = err.errors().iter().map(|e| e.key.as_str()).collect();
    let want: Vec<&str> = expected.iter().map(|(key, _)| *key).collect();
    assert_eq!(keys, want, "{err}");
    for (e, (_, needle)) in err.errors().iter().zip(expected) {
        assert!(e.message.contains(needle), "expected {needle:?} in: {e}");
    }
    let text = err.to_string();
    let mut lines = text.lines();
    if expected.len() > 1 {
        assert_eq!(
            lines.next(),
            Some(format!("{} errors:", expected.len()).as_str())
        );
    }
    let indent = if expected.len() > 1 { "  " } else { "" };
    let each: Vec<String> = err
        .errors()
        .iter()
        .map(|e| format!("{indent}{e}"))
        .collect();
    assert_eq!(lines.collect::<Vec<_>>(), each, "{text}");
}

#[test]
fn empty_file_gives_documented_defaults() {
    let c = load("");
    assert_eq!(c.server.address, IpAddr::V4(Ipv4Addr::UNSPECIFIED));
    assert_eq!(c.server.port, 8080);
    assert!(c.server.ssl.is_none());
    assert_eq!(c.management.address, IpAddr::V4(Ipv4Addr::LOCALHOST));
    assert_eq!(c.management.port, None);
    assert_eq!(c.management.token, None);
    let cg = &c.cg;
    assert_eq!(cg.censhare_logout_url, None);
    assert!(cg.expired_session_full_logout);
    assert_eq!(cg.session_timeout, Duration::from_secs(1800));
    assert_eq!(cg.session_check_interval, Duration::from_millis(60_000));
    assert_eq!(cg.max_sessions, 10_000);
    assert!(cg.use_secure_session_cookie);
    assert_eq!(cg.max_retry_attempts, 3);
    assert_eq!(cg.min_retry_delay, Duration::from_secs(5));
    assert!(cg.fresh_token_listeners.is_empty());
    assert_eq!(cg.fresh_token_send_interval, Duration::from_millis(60_000));
    assert!(cg.logout_listeners.is_empty());
    assert!(c.oauth2.registrations.is_empty() && c.oauth2.providers.is_empty());
    assert!(c.routes.is_empty());
    assert!(c.logging.levels.is_empty());
    let g = &c.gateway;
    assert!(g.workers >= 1);
    assert_eq!(g.driver, Driver::IoUring);
    assert_eq!(g.connection_idle_timeout, Duration::from_millis(300_000));
    assert_eq!(g.request_head_timeout, Duration::from_millis(10_000));
    assert_eq!(g.body_read_timeout, Duration::from_millis(30_000));
    assert_eq!(g.body_min_rate, 1024);
    assert_eq!(g.max_connections, 9000);
    assert_eq!(
        (g.max_head_bytes, g.max_headers, g.max_uri_bytes),
        (16_384, 100, 8192)
    );
    assert_eq!(g.max_body_bytes, 0);
    assert_eq!(g.upstream_connect_timeout, Duration::from_millis(3000));
    assert_eq!(g.upstream_response_timeout, Duration::from_millis(60_000));
    assert_eq!(g.upstream_idle_timeout, Duration::from_millis(60_000));
    assert_eq!(g.upstream_pool_size, 64);
    assert_eq!(g.shutdown_grace, Duration::from_millis(10_000));
    assert!(!g.access_log);
    assert_eq!(g.post_logout_redirect_uri, None);
    assert_eq!(g.session_max_lifetime, None);
    assert_eq!(g.access_banner, None);
    assert_eq!(g.keep_alive_after_disconnect, None);
    assert_eq!(g.audit_log, None);
    assert_eq!(g.http_port, None);
    assert!(g.trusted_proxies.is_empty());
    assert_eq!(g.jwt_clock_skew, Duration::from_secs(30));
    assert_eq!(g.ca_bundle, None);
}

#[test]
fn dotted_and_nested_cg_keys_merge() {
    let c = load("cg:\n  sessionTimeoutSec: 600\ncg.sessionCheckIntervalMs: 100\ncg.maxSessions: ${TIMEOUT}\n");
    assert_eq!(c.cg.session_timeout, Duration::from_secs(600));
    assert_eq!(c.cg.session_check_interval, Duration::from_millis(100));
    assert_eq!(c.cg.max_sessions, 900);
}

#[test]
fn env_placeholders_expand_and_unset_ones_name_the_key() {
    let c = load("cg.sessionTimeoutSec: ${TIMEOUT:1800}\ncg.maxSessions: ${UNSET_X:42}\n");
    assert_eq!(c.cg.session_timeout, Duration::from_secs(900));
    assert_eq!(c.cg.max_sessions, 42);
    fails(
        "cg.censhareLogoutUrl: ${UNSET_URL}\n",
        "cg.censhareLogoutUrl",
        "UNSET_URL",
    );
}

#[test]
fn conflicting_duplicates_name_the_key() {
    fails(
        "cg.sessionTimeoutSec: 10\ncg:\n  sessionTimeoutSec: 20\n",
        "cg.sessionTimeoutSec",
        "more than once",
    );
}

#[test]
fn foreign_keys_are_ignored() {
    let c = load(
        "eureka.client.enabled: false\nspring.application.name: gw\nspring.cloud.config.enabled: false\nlogging.file.name: x.log\n",
    );
    assert!(c.routes.is_empty());
}

fn shipped(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("config")
        .join(name)
}

#[test]
fn shipped_files_load() {
    let quickstart = load_file(&shipped("application.yml")).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(quickstart.server.port, 8080);
    assert!(quickstart.routes.iter().any(|r| r.id == "demo"));
    // The quickstart logs users in at the demo provider that quickstart/run.sh starts.
    assert_eq!(quickstart.oauth2.registrations[0].id, "demo");
    assert_eq!(quickstart.oauth2.registrations[0].provider, "demo");
    let yaml = std::fs::read_to_string(shipped("examples/censhare-cloud-gateway.yml")).unwrap();
    let censhare = load_str_with(&yaml, &|_| None).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        censhare.oauth2.registrations[0].client_secret.as_deref(),
        Some("change-me")
    );
    assert_eq!(censhare.logging.levels.len(), 3);
    let bad = load_file(&shipped("examples/bad-unknown-cg-key.yml"))
        .unwrap_err()
        .to_string();
    assert!(
        bad.contains("cg.sessionTimeoutSecs") && bad.contains("did you mean"),
        "{bad}"
    );
}

#[test]
fn missing_file_names_the_path() {
    let err = load_file(Path::new("/nonexistent/application.yml")).unwrap_err();
    assert!(
        err.to_string().contains("/nonexistent/application.yml"),
        "{err}"
    );
}
