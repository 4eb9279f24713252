//! `sessiongate check`'s report: the provider's SSO Session Idle an operator must set
//! (`cg.sessionTimeoutSec` + the check interval in whole seconds + the access-token
//! lifespan), and warnings for settings that do not fit together: listener URLs on the local
//! host, fresh tokens slower than the backend's keep-alive, a check interval not below the
//! timeout, a Secure cookie over plain http. Validation failures are in `config_check`; the
//! lifespan read from a live provider is in `oidc::check_lifespan`.

use crate::harness::{quote, routes_yaml, sessiongate, CliOutput, Route, TempConfig, EX_CONFIG};

/// A proxy-only file with these `cg` keys (values written as is) and `extra` appended.
fn config(cg: &[(&str, &str)], extra: &str) -> String {
    let mut y = routes_yaml(&[Route::new("app", "http://censhare:8080").predicate("Path=/**")]);
    y.push_str("cg:\n");
    for (k, v) in cg {
        y.push_str(&format!("  {k}: {v}\n"));
    }
    y.push_str(extra);
    y
}

/// `sessiongate check --config FILE --offline ARGS` on this YAML; the file's path is
/// returned too, for the `FILE: ok` line.
fn run_check(yaml: &str, args: &[&str]) -> (CliOutput, String) {
    let file = TempConfig::new(yaml);
    let path = file.path.to_str().unwrap().to_string();
    let mut all = vec!["check", "--config", &path, "--offline"];
    all.extend_from_slice(args);
    (sessiongate(&all), path)
}

/// Runs the check, asserts exit 0 and the `FILE: ok` line, returns stdout.
fn ok(yaml: &str, args: &[&str]) -> String {
    let (out, path) = run_check(yaml, args);
    assert_eq!(
        out.code,
        Some(0),
        "check {args:?} must accept the file\nstdout:\n{}\nstderr:\n{}\nconfig:\n{yaml}",
        out.stdout,
        out.stderr
    );
    assert_eq!(
        out.stdout.lines().next(),
        Some(format!("{path}: ok").as_str()),
        "the first line names the file:\n{}",
        out.stdout
    );
    out.stdout
}

/// The SSO Session Idle figure in seconds from the report.
fn sso_idle(stdout: &str) -> u64 {
    const LEAD: &str = "provider SSO Session Idle must be at least ";
    let line = stdout
        .lines()
        .find(|l| l.contains(LEAD))
        .unwrap_or_else(|| panic!("no `{LEAD}` line:\n{stdout}"));
    let rest = &line[line.find(LEAD).unwrap() + LEAD.len()..];
    let (n, unit) = rest
        .split_once(' ')
        .unwrap_or_else(|| panic!("no figure in {line:?}"));
    assert!(unit.starts_with("s"), "seconds expected: {line:?}");
    n.parse()
        .unwrap_or_else(|e| panic!("{n:?} in {line:?} is not a number: {e}"))
}

fn warnings(stdout: &str) -> Vec<&str> {
    stdout
        .lines()
        .filter(|l| l.starts_with("warning: "))
        .collect()
}

/// Asserts exactly one warning mentions every word of `words`, and returns it.
fn warning_with<'a>(stdout: &'a str, words: &[&str]) -> &'a str {
    let found: Vec<&str> = warnings(stdout)
        .into_iter()
        .filter(|w| words.iter().all(|x| w.contains(x)))
        .collect();
    assert_eq!(
        found.len(),
        1,
        "expected one warning with {words:?}:\n{stdout}"
    );
    found[0]
}

fn no_warning_with(stdout: &str, word: &str) {
    let found: Vec<&str> = warnings(stdout)
        .into_iter()
        .filter(|w| w.contains(word))
        .collect();
    assert!(
        found.is_empty(),
        "no warning about {word} expected:\n{stdout}"
    );
}

/// A file with these two timings (and no Secure cookie, which would warn without TLS).
fn timing(timeout: u64, check_ms: u64) -> String {
    config(
        &[
            ("sessionTimeoutSec", &timeout.to_string()),
            ("sessionCheckIntervalMs", &check_ms.to_string()),
            ("useSecureSessionCookie", "false"),
        ],
        "",
    )
}

#[test]
fn sso_session_idle_is_timeout_plus_check_interval_plus_lifespan() {
    // The seed's example: 1800 s + 60 s + 300 s.
    let out = ok(
        &timing(1800, 60_000),
        &["--access-token-lifespan-sec", "300"],
    );
    assert_eq!(sso_idle(&out), 2160, "{out}");
    assert!(
        warnings(&out).is_empty(),
        "a clean file warns about nothing:\n{out}"
    );

    // The check interval counts in whole seconds, rounded up: 1500 ms is 2 s.
    let out = ok(&timing(900, 1500), &["--access-token-lifespan-sec", "120"]);
    assert_eq!(sso_idle(&out), 900 + 2 + 120, "{out}");

    let out = ok(&timing(600, 100), &["--access-token-lifespan-sec", "3600"]);
    assert_eq!(sso_idle(&out), 600 + 1 + 3600, "{out}");

    // The Cloud Gateway's defaults (sessionTimeoutSec 1800, sessionCheckIntervalMs 60000),
    // offline without a lifespan: Keycloak's default of 300 s is assumed.
    let out = ok(&config(&[], ""), &[]);
    assert_eq!(sso_idle(&out), 2160, "{out}");
    assert!(!out.contains("read from the provider"), "{out}");
}

#[test]
fn listener_urls_on_the_local_host_ask_for_an_alias() {
    let local = config(
        &[
            ("censhareLogoutUrl", &quote("http://localhost:9000/logout")),
            ("freshTokenListeners", &quote("http://127.0.0.2:9000/fresh")),
            (
                "logoutListeners",
                &quote("http://censhare:9000/a, http://LOCALHOST/b"),
            ),
            ("useSecureSessionCookie", "false"),
        ],
        "",
    );
    let out = ok(&local, &["--access-token-lifespan-sec", "300"]);
    for (key, url) in [
        ("cg.censhareLogoutUrl", "localhost:9000"),
        ("cg.freshTokenListeners", "127.0.0.2:9000"),
        ("cg.logoutListeners", "LOCALHOST"),
    ] {
        let w = warning_with(&out, &[key, "alias"]);
        assert!(w.contains(url), "the warning names the URL {url}: {w}");
    }
    assert!(
        !warnings(&out).iter().any(|w| w.contains("censhare:9000")),
        "an alias is fine:\n{out}"
    );

    let aliases = config(
        &[
            ("censhareLogoutUrl", &quote("http://censhare:9000/logout")),
            ("freshTokenListeners", &quote("http://censhare:9000/fresh")),
            ("logoutListeners", &quote("http://cs.internal/a")),
            ("useSecureSessionCookie", "false"),
        ],
        "",
    );
    let out = ok(&aliases, &["--access-token-lifespan-sec", "300"]);
    no_warning_with(&out, "alias");
}

#[test]
fn fresh_tokens_must_beat_the_backend_keep_alive() {
    let with_interval = |ms: &str| {
        config(
            &[
                ("freshTokenListeners", &quote("http://censhare:9000/fresh")),
                ("freshTokenSendIntervalMs", ms),
                ("useSecureSessionCookie", "false"),
            ],
            "",
        )
    };
    let lifespan = ["--access-token-lifespan-sec", "300"];
    // The backend keeps a session 180 s by default: 200 s and exactly 180 s are too slow.
    for ms in ["200000", "180000"] {
        let out = ok(&with_interval(ms), &lifespan);
        warning_with(&out, &["freshTokenSendIntervalMs", ms]);
    }
    let out = ok(&with_interval("179000"), &lifespan);
    no_warning_with(&out, "freshTokenSendIntervalMs");

    // A backend that keeps sessions longer.
    let out = ok(
        &with_interval("200000"),
        &[
            "--access-token-lifespan-sec",
            "300",
            "--backend-keep-alive-sec",
            "300",
        ],
    );
    no_warning_with(&out, "freshTokenSendIntervalMs");
    let out = ok(
        &with_interval("60000"),
        &[
            "--access-token-lifespan-sec",
            "300",
            "--backend-keep-alive-sec",
            "60",
        ],
    );
    warning_with(&out, &["freshTokenSendIntervalMs", "60"]);
}

#[test]
fn a_check_interval_not_below_the_timeout_is_warned_about() {
    let lifespan = ["--access-token-lifespan-sec", "300"];
    for (timeout, ms) in [(60, 60_000), (60, 90_000)] {
        let out = ok(&timing(timeout, ms), &lifespan);
        warning_with(&out, &["sessionCheckIntervalMs", "sessionTimeoutSec"]);
    }
    let out = ok(&timing(60, 59_000), &lifespan);
    no_warning_with(&out, "sessionCheckIntervalMs");
}

#[test]
fn a_secure_cookie_needs_tls_or_a_trusted_proxy() {
    let lifespan = ["--access-token-lifespan-sec", "300"];
    let secure = |extra: &str| config(&[("useSecureSessionCookie", "true")], extra);
    let out = ok(&secure(""), &lifespan);
    warning_with(&out, &["useSecureSessionCookie"]);

    let out = ok(
        &secure("sessiongate:\n  trusted-proxies: [10.0.0.1]\n"),
        &lifespan,
    );
    no_warning_with(&out, "useSecureSessionCookie");

    // TLS terminated by the gateway itself.
    let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let tag = format!("{}-{}", std::process::id(), line!());
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let cert_path = dir.join(format!("sessiongate-check-{tag}.crt"));
    let key_path = dir.join(format!("sessiongate-check-{tag}.key"));
    std::fs::write(&cert_path, cert.cert.pem()).unwrap();
    std::fs::write(&key_path, cert.key_pair.serialize_pem()).unwrap();
    let tls = secure("").replacen(
        "  port: 0\n",
        &format!(
            "  port: 0\n  ssl:\n    certificate: {}\n    certificate-private-key: {}\n",
            quote(cert_path.to_str().unwrap()),
            quote(key_path.to_str().unwrap())
        ),
        1,
    );
    let out = ok(&tls, &lifespan);
    let _ = std::fs::remove_file(&cert_path);
    let _ = std::fs::remove_file(&key_path);
    no_warning_with(&out, "useSecureSessionCookie");
}

#[test]
fn a_bad_file_exits_64_naming_the_key() {
    for (yaml, key) in [
        (
            config(&[("sessionTimeoutSecs", "600")], ""),
            "sessionTimeoutSecs",
        ),
        (
            config(&[("sessionCheckIntervalMs", "often")], ""),
            "cg.sessionCheckIntervalMs",
        ),
        (
            config(&[("logoutListeners", &quote("not a url"))], ""),
            "cg.logoutListeners",
        ),
    ] {
        let (out, _) = run_check(&yaml, &["--access-token-lifespan-sec", "300"]);
        assert_eq!(
            out.code,
            Some(EX_CONFIG),
            "check must refuse:\nstdout:\n{}\nstderr:\n{}\nconfig:\n{yaml}",
            out.stdout,
            out.stderr
        );
        assert!(
            out.stderr.contains(key),
            "stderr must name {key}:\n{}",
            out.stderr
        );
        assert!(!out.stdout.contains(": ok"), "{}", out.stdout);
    }
}
