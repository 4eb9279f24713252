//! `sessiongate.*` and `logging.level.*`.

use std::time::Duration;

use super::{fails, load};
use crate::config::{Driver, LogLevel};

#[test]
fn logging_levels_keep_file_order() {
    let c = load(
        "logging.level.com.censhare.core.cloudgateway.LogoutProcessor: TRACE\nlogging:\n  level:\n    root: info\n    com.censhare.foo: debug\n    org:\n      springframework: WARN\n",
    );
    let levels: Vec<(&str, LogLevel)> = c
        .logging
        .levels
        .iter()
        .map(|(n, l)| (n.as_str(), *l))
        .collect();
    assert_eq!(
        levels,
        [
            (
                "com.censhare.core.cloudgateway.LogoutProcessor",
                LogLevel::Trace
            ),
            ("root", LogLevel::Info),
            ("com.censhare.foo", LogLevel::Debug),
            ("org.springframework", LogLevel::Warn),
        ]
    );
}

#[test]
fn sessiongate_knobs() {
    let c = load(
        "
sessiongate:
  workers: 3
  driver: legacy
  max-body-bytes: 1048576
  keep-alive-after-disconnect-sec: 0
  session-max-lifetime-sec: 86400
  trusted-proxies: [10.0.0.1, '::1']
  audit-log: stdout
  post-logout-redirect-uri: /goodbye
  upstream-pool-size: 0
  access-log: true
",
    );
    let g = &c.gateway;
    assert_eq!(g.workers, 3);
    assert_eq!(g.driver, Driver::Legacy);
    assert_eq!(g.max_body_bytes, 1 << 20);
    assert_eq!(g.keep_alive_after_disconnect, None);
    assert_eq!(g.session_max_lifetime, Some(Duration::from_secs(86_400)));
    assert_eq!(g.trusted_proxies.len(), 2);
    assert_eq!(g.audit_log.as_deref(), Some("stdout"));
    assert_eq!(g.post_logout_redirect_uri.as_deref(), Some("/goodbye"));
    assert_eq!(g.upstream_pool_size, 0);
    assert!(g.access_log);
    let c = load("sessiongate.keep-alive-after-disconnect-sec: 180\n");
    assert_eq!(
        c.gateway.keep_alive_after_disconnect,
        Some(Duration::from_secs(180))
    );
}

#[test]
fn workers_are_at_most_255() {
    assert_eq!(load("sessiongate.workers: 255\n").gateway.workers, 255);
    fails(
        "sessiongate.workers: 256\n",
        "sessiongate.workers",
        "at most 255 (a session id names its worker in one byte); got 256",
    );
    fails(
        "sessiongate.workers: -1\n",
        "sessiongate.workers",
        "non-negative integer",
    );
}

#[test]
fn a_session_snapshot_needs_encryption_keys() {
    fails(
        "sessiongate.session-snapshot: /var/lib/sessiongate/sessions\n",
        "sessiongate.session-encryption-keys",
        "required with session-snapshot",
    );
    let c = load(
        "sessiongate.session-snapshot: /var/lib/sessiongate/sessions\nsessiongate.session-encryption-keys: ['AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=']\n",
    );
    assert_eq!(
        c.gateway.session_snapshot.as_deref(),
        Some(std::path::Path::new("/var/lib/sessiongate/sessions"))
    );
    assert_eq!(c.gateway.session_keys.0, vec![[0u8; 32]]);
}
