//! The command line and configuration validation: `check`, exit code 64 with the key named,
//! `--help`, `--version`, logger names from the Cloud Gateway, placeholders, dotted keys.

use crate::backend::Backend;
use crate::client::HOST;
use crate::harness::{
    check, routes_yaml, run_expecting_exit, sessiongate, Gateway, Route, TempConfig, EX_CONFIG,
};

/// A complete file in the documented shape, every `sessiongate` knob spelled out.
fn full_config(extra_sessiongate: &str) -> String {
    let mut y = routes_yaml(&[Route::new("app", "http://127.0.0.1:9")
        .predicate("Path=/**")
        .filter("StripPrefix=1")
        .filter("PrefixPath=/x")
        .filter("AddRequestHeader=X-A, 1")
        .filter("SetRequestHeader=X-B, 2")
        .filter("RemoveRequestHeader=X-C")]);
    y.push_str(
        "sessiongate:\n  workers: 2\n  request-head-timeout-ms: 10000\n  body-read-timeout-ms: 30000\n\
         \x20 connection-idle-timeout-ms: 300000\n  max-head-bytes: 16384\n  max-headers: 100\n\
         \x20 max-uri-bytes: 8192\n  max-body-bytes: 0\n  upstream-connect-timeout-ms: 3000\n\
         \x20 upstream-response-timeout-ms: 60000\n  shutdown-grace-ms: 10000\n  access-log: false\n\
         \x20 driver: io_uring\n",
    );
    y.push_str(extra_sessiongate);
    y.push_str("logging:\n  level:\n    root: INFO\n");
    y
}

/// `check` must refuse this config with exit 64 and an error naming `key`.
fn assert_refused(yaml: &str, key: &str) {
    let out = check(yaml);
    assert_eq!(
        out.code,
        Some(EX_CONFIG),
        "check should refuse (exit 64); stdout:\n{}\nstderr:\n{}\nconfig:\n{yaml}",
        out.stdout,
        out.stderr
    );
    assert!(
        out.stderr.contains(key),
        "the error should name `{key}`; stderr:\n{}",
        out.stderr
    );
}

#[test]
fn check_accepts_the_documented_shape() {
    let out = check(&full_config(""));
    assert_eq!(
        out.code,
        Some(0),
        "stdout:\n{}\nstderr:\n{}",
        out.stdout,
        out.stderr
    );
}

#[test]
fn check_accepts_cloud_gateway_logger_names() {
    let yaml = full_config("").replace(
        "    root: INFO\n",
        "    root: INFO\n    com.censhare.core.cloudgateway.LogoutProcessor: TRACE\n    sessiongate: DEBUG\n",
    );
    let out = check(&yaml);
    assert_eq!(out.code, Some(0), "stderr:\n{}", out.stderr);
}

#[test]
fn check_refuses_non_numeric_limit() {
    // Build the bad value by replacing the good line, so only one key differs.
    let yaml = full_config("").replace("max-head-bytes: 16384", "max-head-bytes: lots");
    assert_refused(&yaml, "max-head-bytes");
}

#[test]
fn check_refuses_non_numeric_timeout() {
    let yaml = full_config("").replace(
        "request-head-timeout-ms: 10000",
        "request-head-timeout-ms: soon",
    );
    assert_refused(&yaml, "request-head-timeout-ms");
}

#[test]
fn check_refuses_unknown_driver() {
    let yaml = full_config("").replace("driver: io_uring", "driver: carrier-pigeon");
    assert_refused(&yaml, "driver");
}

#[test]
fn check_refuses_negative_workers() {
    let yaml = full_config("").replace("workers: 2", "workers: -1");
    assert_refused(&yaml, "workers");
}

#[test]
fn check_refuses_port_out_of_range() {
    let yaml = full_config("").replace("port: 0", "port: 70000");
    assert_refused(&yaml, "port");
}

#[test]
fn check_refuses_route_without_uri() {
    let yaml = full_config("").replace("          uri: \"http://127.0.0.1:9\"\n", "");
    assert_refused(&yaml, "uri");
}

#[test]
fn check_refuses_malformed_route_uri() {
    let yaml = full_config("").replace("http://127.0.0.1:9", "not a uri");
    assert_refused(&yaml, "uri");
}

#[test]
fn check_refuses_yaml_syntax_error() {
    let out = check("server: {address: 127.0.0.1, port: [\n");
    assert_eq!(out.code, Some(EX_CONFIG), "stderr:\n{}", out.stderr);
}

/// `run` must refuse this config with exit 64 and an error naming `key`, before it binds
/// a port; `check` must refuse it the same way.
fn assert_run_refused(yaml: &str, key: &str) {
    let out = run_expecting_exit(yaml);
    assert_eq!(out.code, Some(EX_CONFIG), "stderr:\n{}", out.stderr);
    assert!(out.stderr.contains(key), "stderr:\n{}", out.stderr);
    assert!(
        !out.stdout.contains("listening"),
        "a bad config must be refused before any port is bound:\n{}",
        out.stdout
    );
    assert_refused(yaml, key);
}

#[test]
fn run_refuses_bad_config_with_64() {
    let yaml = full_config("").replace("max-head-bytes: 16384", "max-head-bytes: lots");
    assert_run_refused(&yaml, "max-head-bytes");
}

/// What a start needs beyond the file is checked with it: more than 255 workers, an access
/// banner that cannot be read, a CA bundle that cannot be read or holds no certificate.
#[test]
fn run_refuses_start_time_rules_with_64() {
    let empty = TempConfig::new("");
    let empty_bundle = format!("  ca-bundle: {}\n", empty.path.display());
    let cases = [
        (
            full_config("").replace("workers: 2", "workers: 256"),
            "sessiongate.workers: at most 255".to_string(),
        ),
        (
            full_config("  access-banner: /nonexistent/sessiongate-it-banner.html\n"),
            "sessiongate.access-banner: cannot read".to_string(),
        ),
        (
            full_config("  ca-bundle: /nonexistent/sessiongate-it-ca.pem\n"),
            "sessiongate.ca-bundle: cannot read".to_string(),
        ),
        (
            full_config(&empty_bundle),
            format!(
                "sessiongate.ca-bundle: {} holds no certificate",
                empty.path.display()
            ),
        ),
    ];
    for (yaml, key) in cases {
        assert_run_refused(&yaml, &key);
    }
}

/// Three typos in three sections (a route, `sessiongate`, `cg`) are all reported by one
/// run of `check` and of `run`: after a line `FILE: 3 errors:`, one line each in file order,
/// each with its "did you mean".
#[test]
fn every_typo_is_reported_in_one_run() {
    let mut yaml = full_config("")
        .replacen("          predicates:\n", "          predicate:\n", 1)
        .replace("max-head-bytes: 16384", "max-head-byte: 16384");
    yaml.push_str("cg:\n  sessionTimeoutSecs: 600\n");
    let route = "spring.cloud.gateway.routes[0]";
    let expected = [
        format!("  {route}.predicate: unknown key; did you mean `{route}.predicates`?"),
        "  sessiongate.max-head-byte: unknown key; did you mean `sessiongate.max-head-bytes`?"
            .to_string(),
        "  cg.sessionTimeoutSecs: unknown key; did you mean `cg.sessionTimeoutSec`?".to_string(),
    ];
    let config = TempConfig::new(&yaml);
    let path = config.path.to_str().unwrap();
    for command in ["check", "run"] {
        let out = sessiongate(&[command, "--config", path]);
        assert_eq!(
            out.code,
            Some(EX_CONFIG),
            "{command} must refuse (exit 64); stdout:\n{}\nstderr:\n{}",
            out.stdout,
            out.stderr
        );
        let lines: Vec<&str> = out.stderr.lines().collect();
        let header = format!("{path}: 3 errors:");
        let at = lines
            .iter()
            .position(|l| *l == header)
            .unwrap_or_else(|| panic!("{command}: no line {header:?}; stderr:\n{}", out.stderr));
        assert_eq!(
            lines[at + 1..],
            expected,
            "{command}: every typo, in file order; stderr:\n{}",
            out.stderr
        );
        assert!(
            !out.stdout.contains("listening"),
            "{command}: refused before any port is bound:\n{}",
            out.stdout
        );
    }
}

#[test]
fn missing_config_file_is_an_error_naming_the_path() {
    let out = sessiongate(&["check", "--config", "/nonexistent/sessiongate-it.yml"]);
    assert_ne!(out.code, Some(0));
    assert!(
        out.stderr.contains("/nonexistent/sessiongate-it.yml"),
        "stderr:\n{}",
        out.stderr
    );
}

#[test]
fn help_and_version() {
    let help = sessiongate(&["--help"]);
    assert_eq!(help.code, Some(0));
    assert!(
        help.stdout.contains("run") && help.stdout.contains("check"),
        "{}",
        help.stdout
    );
    let version = sessiongate(&["--version"]);
    assert_eq!(version.code, Some(0));
    assert!(
        version.stdout.contains(env!("CARGO_PKG_VERSION")),
        "{}",
        version.stdout
    );
}

/// `${ENV_VAR:default}` placeholders are replaced by the variable's value, or by the default
/// when the variable is unset.
#[test]
fn env_placeholders_are_expanded() {
    let backend = Backend::recording();
    let yaml = "server:\n  address: \"${SG_IT_UNSET_ADDRESS:127.0.0.1}\"\n  port: 0\n\
                spring:\n  cloud:\n    gateway:\n      routes:\n        - id: app\n\
                \x20         uri: \"${SG_IT_BACKEND}\"\n          predicates:\n            - \"Path=/**\"\n";
    let gw = Gateway::with(yaml)
        .env("SG_IT_BACKEND", &backend.uri())
        .start();
    assert!(gw.addr().ip().is_loopback());
    assert_eq!(gw.get("/via-env").status, 200);
    assert_eq!(backend.single_request().target, "/via-env");
}

/// A dotted key (`sessiongate.max-uri-bytes: 100`) means the same as the nested form.
#[test]
fn dotted_keys_work_like_nested_ones() {
    let backend = Backend::recording();
    let yaml = format!(
        "{}sessiongate.max-uri-bytes: 100\n",
        routes_yaml(&[Route::new("app", backend.uri()).predicate("Path=/**")])
    );
    let gw = Gateway::with(yaml).start();
    let mut c = gw.client();
    let r =
        c.request(format!("GET /{} HTTP/1.1\r\nHost: {HOST}\r\n\r\n", "d".repeat(200)).as_bytes());
    assert_eq!(
        r.status, 414,
        "sessiongate.max-uri-bytes: 100 (dotted) was not applied"
    );
    backend.assert_saw_nothing();
}
