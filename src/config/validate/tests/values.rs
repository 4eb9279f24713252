//! Values refused with their key named (numbers, booleans, URLs, addresses), listener
//! lists, and the `server` and `management` sections.

use std::net::IpAddr;
use std::path::PathBuf;

use super::{fails, fails_all, load};

#[test]
fn bad_cg_values_name_their_keys() {
    fails(
        "cg.sessionTimeoutSec: abc\n",
        "cg.sessionTimeoutSec",
        "expected a positive integer number of seconds, got \"abc\"",
    );
    fails(
        "cg.sessionTimeoutSec: 0\n",
        "cg.sessionTimeoutSec",
        "positive",
    );
    fails(
        "cg.sessionTimeoutSec: -5\n",
        "cg.sessionTimeoutSec",
        "positive",
    );
    fails(
        "cg.sessionCheckIntervalMs: 5\n",
        "cg.sessionCheckIntervalMs",
        "at least 10",
    );
    fails("cg.maxSessions: 0\n", "cg.maxSessions", "positive");
    fails(
        "cg.expiredSessionFullLogout: maybe\n",
        "cg.expiredSessionFullLogout",
        "true or false",
    );
    fails(
        "cg.censhareLogoutUrl: ftp://x/\n",
        "cg.censhareLogoutUrl",
        "http",
    );
    fails(
        "cg.logoutListeners: [http://a/, 'http://u@b/']\n",
        "cg.logoutListeners[1]",
        "user information",
    );
    fails(
        "cg.freshTokenListeners: http://a/, http://b:99999/\n",
        "cg.freshTokenListeners[1]",
        "port",
    );
    fails("cg: [1]\n", "cg", "expected a map");
    fails(
        "cg.sessionTimeoutSec: [1]\n",
        "cg.sessionTimeoutSec",
        "single value",
    );
}

#[test]
fn bad_server_gateway_and_logging_values_name_their_keys() {
    fails("server.port: 70000\n", "server.port", "from 0 to 65535");
    fails(
        "server.address: example.com\n",
        "server.address",
        "IP address",
    );
    fails(
        "management.server.port: x\n",
        "management.server.port",
        "integer",
    );
    fails(
        "sessiongate.max-head-bytes: 100\n",
        "sessiongate.max-head-bytes",
        "from 1024 to 1048576",
    );
    fails(
        "sessiongate.max-headers: 0\n",
        "sessiongate.max-headers",
        "from 1 to 1000",
    );
    fails(
        "sessiongate.driver: epoll\n",
        "sessiongate.driver",
        "io_uring or legacy",
    );
    fails(
        "sessiongate.trusted-proxies: 10.0.0.1, nope\n",
        "sessiongate.trusted-proxies[1]",
        "IP address",
    );
    fails(
        "sessiongate.post-logout-redirect-uri: javascript:alert(1)\n",
        "sessiongate.post-logout-redirect-uri",
        "URL",
    );
    fails(
        "logging.level.com.x: LOUD\n",
        "logging.level.com.x",
        "TRACE, DEBUG",
    );
}

#[test]
fn listener_lists_accept_lists_and_comma_strings() {
    let c = load(
        "cg.logoutListeners: \"http://a:1/x, https://b/y\"\ncg.freshTokenListeners:\n  - http://c/\n  - http://[::1]:8081/r?q=1\n",
    );
    let hosts: Vec<(&str, u16)> =
        c.cg.logout_listeners
            .iter()
            .map(|u| (u.host.as_str(), u.port))
            .collect();
    assert_eq!(hosts, [("a", 1), ("b", 443)]);
    let fresh = &c.cg.fresh_token_listeners;
    assert_eq!(fresh[0].path_and_query, "/");
    assert_eq!((fresh[1].host.as_str(), fresh[1].port), ("::1", 8081));
    assert_eq!(fresh[1].path_and_query, "/r?q=1");
    assert_eq!(fresh[1].authority(), "[::1]:8081");
}

#[test]
fn http_port_differs_from_server_port() {
    fails(
        "server.port: 8443\nsessiongate.http-port: 8443\n",
        "sessiongate.http-port",
        "must differ from server.port",
    );
    let c = load("server.port: 8443\nsessiongate.http-port: 8080\n");
    assert_eq!(c.gateway.http_port, Some(8080));
}

#[test]
fn ssl_rules() {
    assert!(
        load("server.ssl.enabled: false\nserver.ssl.certificate: /x\n")
            .server
            .ssl
            .is_none()
    );
    let c = load("server.ssl:\n  certificate: /c.pem\n  certificate-private-key: /k.pem\n");
    let ssl = c.server.ssl.unwrap();
    assert_eq!(ssl.certificate, PathBuf::from("/c.pem"));
    assert_eq!(ssl.certificate_private_key, PathBuf::from("/k.pem"));
    fails(
        "server.ssl.enabled: true\nserver.ssl.certificate: /c.pem\n",
        "server.ssl.certificate-private-key",
        "required",
    );
    fails_all(
        "server.ssl.enabled: true\n",
        &[
            ("server.ssl.certificate", "required"),
            ("server.ssl.certificate-private-key", "required"),
        ],
    );
}

#[test]
fn server_and_management() {
    let c = load(
        "server: {address: '::1', port: 0}\nmanagement.server: {address: 127.0.0.2, port: 9090}\nsessiongate.management-token: t0ken\n",
    );
    assert_eq!(c.server.address, "::1".parse::<IpAddr>().unwrap());
    assert_eq!(c.server.port, 0);
    assert_eq!(c.management.address, "127.0.0.2".parse::<IpAddr>().unwrap());
    assert_eq!(c.management.port, Some(9090));
    assert_eq!(c.management.token.as_deref(), Some("t0ken"));
}
