//! `sessiongate check` without `--access-token-lifespan-sec` asks the configured provider for
//! a client-credentials token and uses its `expires_in` in the SSO Session Idle figure; when
//! the provider refuses that grant (or `--offline` is given) it falls back to Keycloak's 300 s.

use std::time::Duration;

use crate::harness::{quote, routes_yaml, sessiongate, CliOutput, Route, TempConfig};
use crate::oidc::provider::{Provider, ProviderOpts};
use crate::oidc::stack::{reserve_port, REGISTRATION};

/// A gateway file logging users in at `provider` (cg.sessionTimeoutSec 1800,
/// cg.sessionCheckIntervalMs 60000).
fn config(provider: &Provider) -> String {
    let mut y = routes_yaml(&[Route::new("app", "http://censhare:8080").predicate("Path=/**")]);
    y.push_str(&format!(
        "  security:\n    oauth2:\n      client:\n        registration:\n          {REGISTRATION}:\n            client-id: gateway\n            client-secret: secret\n            client-authentication-method: client_secret_basic\n            scope: {}\n        provider:\n          {REGISTRATION}:\n            issuer-uri: {}\n",
        quote("openid,profile,email"),
        quote(&provider.issuer())
    ));
    y.push_str("cg:\n  sessionTimeoutSec: 1800\n  sessionCheckIntervalMs: 60000\n  useSecureSessionCookie: false\n");
    y
}

fn check(yaml: &str, args: &[&str]) -> CliOutput {
    let file = TempConfig::new(yaml);
    let path = file.path.to_str().unwrap().to_string();
    let mut all = vec!["check", "--config", &path];
    all.extend_from_slice(args);
    let out = sessiongate(&all);
    assert_eq!(
        out.code,
        Some(0),
        "check {args:?}\nstdout:\n{}\nstderr:\n{}\nconfig:\n{yaml}",
        out.stdout,
        out.stderr
    );
    assert_eq!(
        out.stdout.lines().next(),
        Some(format!("{path}: ok").as_str())
    );
    out
}

fn idle_line(out: &CliOutput) -> &str {
    out.stdout
        .lines()
        .find(|l| l.contains("provider SSO Session Idle must be at least "))
        .unwrap_or_else(|| panic!("no SSO Session Idle line:\n{}", out.stdout))
}

#[test]
fn the_lifespan_is_read_from_a_provider_that_allows_client_credentials() {
    let port = reserve_port();
    let provider = Provider::start(
        ProviderOpts::for_gateway(port)
            .access_token_ttl(420)
            .client_credentials(true),
    );
    let yaml = config(&provider);

    let out = check(&yaml, &[]);
    let line = idle_line(&out);
    assert!(
        line.contains("at least 2280 s"),
        "1800 + 60 + the provider's 420: {line}"
    );
    assert!(line.contains("read from the provider"), "{line}");
    assert!(
        provider
            .wait_for_event("grant.success", Duration::from_secs(5), |e| {
                e["grant_type"] == "client_credentials"
            })
            .is_some(),
        "the provider saw no client_credentials grant: {:?}",
        provider.events()
    );

    // A flag wins over the provider.
    let out = check(&yaml, &["--access-token-lifespan-sec", "100"]);
    let line = idle_line(&out);
    assert!(line.contains("at least 1960 s"), "{line}");
    assert!(!line.contains("read from the provider"), "{line}");

    // Offline: the provider is not asked.
    let grants = provider.events_named("grant.success").len();
    let out = check(&yaml, &["--offline"]);
    assert!(
        idle_line(&out).contains("at least 2160 s"),
        "{}",
        out.stdout
    );
    assert_eq!(provider.events_named("grant.success").len(), grants);
}

#[test]
fn without_client_credentials_the_lifespan_falls_back_to_300_s() {
    let port = reserve_port();
    let provider = Provider::start(ProviderOpts::for_gateway(port).access_token_ttl(420));
    let out = check(&config(&provider), &[]);
    let line = idle_line(&out);
    assert!(line.contains("at least 2160 s"), "1800 + 60 + 300: {line}");
    assert!(!line.contains("read from the provider"), "{line}");
    assert!(
        line.contains("--access-token-lifespan-sec"),
        "the line says how to give the lifespan: {line}"
    );
}
