//! `sessiongate check`: beyond validation, the values an operator must align elsewhere
//! (the provider's SSO Session Idle, the backend's session limits) and warnings for
//! settings that do not fit together: a check interval not below the session timeout, fresh
//! tokens slower than the backend's keep-alive or the timeout, listener URLs on the local
//! host, a Secure session cookie without TLS or a trusted front proxy.

use std::fmt::Write as _;
use std::time::Duration;

use crate::config::{Config, StoreKind};

/// Facts `check` cannot read from the file.
#[derive(Debug, Clone, Default)]
pub struct CheckInput {
    /// The provider's access-token lifespan, when known (flag or read from the provider).
    pub access_token_lifespan: Option<Duration>,
    /// Where the lifespan came from, for the report.
    pub lifespan_source: &'static str,
    /// The backend's idle limit for a session kept alive by fresh tokens (censhare "Keep
    /// session alive", 3 minutes by default).
    pub backend_keep_alive: Duration,
}

/// The command's flags.
#[derive(Debug, Clone, Default)]
pub struct Options {
    pub access_token_lifespan_sec: Option<u64>,
    pub backend_keep_alive_sec: u64,
    pub offline: bool,
}

/// Why `check` refused a file: the message names the file and the key.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Refused(String);

/// `sessiongate check`: validates the file (certificates included, as a start would), then
/// prints the report.
pub fn run(path: &std::path::Path, opts: &Options) -> Result<(), Refused> {
    let refused = |e: &dyn std::fmt::Display| Refused(format!("{}: {e}", path.display()));
    let cfg = crate::config::load_file(path).map_err(|e| refused(&e))?;
    if let Some(ssl) = &cfg.server.ssl {
        crate::tls::load(ssl, std::time::SystemTime::now()).map_err(|e| refused(&e))?;
    }
    let (lifespan, source) = match opts.access_token_lifespan_sec {
        Some(s) => (Some(Duration::from_secs(s)), "given"),
        None if opts.offline => (None, ""),
        None => (
            probe_lifespan(&cfg, Duration::from_secs(3)),
            "read from the provider",
        ),
    };
    let input = CheckInput {
        access_token_lifespan: lifespan,
        lifespan_source: source,
        backend_keep_alive: Duration::from_secs(opts.backend_keep_alive_sec),
    };
    let (text, warnings) = report(&cfg, &input);
    println!("{}: ok", path.display());
    print!("{text}");
    for w in warnings {
        println!("warning: {w}");
    }
    Ok(())
}

/// Keycloak's default access-token lifespan, used when nothing better is known.
pub const DEFAULT_LIFESPAN: Duration = Duration::from_secs(300);

/// The report: lines to print and warnings (each a line on its own).
pub fn report(cfg: &Config, input: &CheckInput) -> (String, Vec<String>) {
    let mut out = String::new();
    let cg = &cfg.cg;
    let timeout = cg.session_timeout.as_secs();
    let tick = cg.session_check_interval.as_millis() as u64;
    let lifespan = input.access_token_lifespan.unwrap_or(DEFAULT_LIFESPAN);
    let source = if input.access_token_lifespan.is_some() {
        input.lifespan_source
    } else {
        "assumed: Keycloak's default; pass --access-token-lifespan-sec"
    };
    // The seed's formula; the check interval counts in whole seconds, rounded up.
    let idle = timeout + tick.div_ceil(1000) + lifespan.as_secs();
    let _ = writeln!(
        out,
        "routes: {}; workers: {}",
        cfg.routes.len(),
        cfg.gateway.workers
    );
    let _ = writeln!(
        out,
        "provider SSO Session Idle must be at least {idle} s ({} min): cg.sessionTimeoutSec {timeout} s + cg.sessionCheckIntervalMs {tick} ms + access-token lifespan {} s ({source})",
        idle.div_ceil(60),
        lifespan.as_secs()
    );
    let _ = writeln!(
        out,
        "sessions expire between {timeout} s and {:.1} s after their last request",
        timeout as f64 + tick as f64 / 1000.0
    );
    if cfg.oauth2.registrations.is_empty() {
        let _ = writeln!(
            out,
            "no spring.security.oauth2 registration: proxy only, no login"
        );
    }
    let _ = writeln!(out, "{}", session_store_line(cfg));
    (out, warnings(cfg, input))
}

/// Where sessions live, as `check` reports it (no password: the address and namespace).
fn session_store_line(cfg: &Config) -> String {
    let g = &cfg.gateway;
    match g.session_store {
        StoreKind::Redis => format!(
            "sessions: shared store at {}://{} (database {}, keys {{{}}}:*), {} encryption key(s)",
            if cfg.redis.tls { "rediss" } else { "redis" },
            cfg.redis.address(),
            cfg.redis.database,
            cfg.redis.namespace,
            g.session_keys.0.len()
        ),
        StoreKind::Memory => match &g.session_snapshot {
            Some(path) => format!(
                "sessions: in memory, kept over a restart in {}",
                path.display()
            ),
            None => "sessions: in memory (a restart ends them)".to_string(),
        },
    }
}

/// Settings that do not fit together, in the order the report prints them.
fn warnings(cfg: &Config, input: &CheckInput) -> Vec<String> {
    let mut warnings = Vec::new();
    if cfg.gateway.session_store == StoreKind::Redis && cfg.gateway.session_snapshot.is_some() {
        warnings.push(
            "sessiongate.session-snapshot is ignored with session-store: redis (Redis keeps the sessions)"
                .to_string(),
        );
    }
    let cg = &cfg.cg;
    let timeout = cg.session_timeout.as_secs();
    let tick = cg.session_check_interval.as_millis() as u64;
    if tick >= cg.session_timeout.as_millis() as u64 {
        warnings.push(format!(
            "cg.sessionCheckIntervalMs ({tick} ms) is not below cg.sessionTimeoutSec ({timeout} s): sessions may live up to twice their timeout"
        ));
    }
    if !cg.fresh_token_listeners.is_empty() {
        let every = cg.fresh_token_send_interval;
        if every >= input.backend_keep_alive {
            warnings.push(format!(
                "cg.freshTokenSendIntervalMs ({} ms) is not below the backend's session keep-alive ({} s): active sessions may be closed at the backend between two fresh tokens",
                every.as_millis(),
                input.backend_keep_alive.as_secs()
            ));
        }
        if every >= cg.session_timeout {
            warnings.push("cg.freshTokenSendIntervalMs is not below cg.sessionTimeoutSec".into());
        }
    }
    warnings.extend(local_url_warnings(cfg));
    warnings.extend(public_url_warning(cfg));
    if cg.use_secure_session_cookie
        && cfg.server.ssl.is_none()
        && cfg.gateway.trusted_proxies.is_empty()
    {
        warnings.push(
            "cg.useSecureSessionCookie is true but there is no TLS listener (server.ssl) and no trusted front proxy (sessiongate.trusted-proxies): browsers drop a Secure cookie received over plain http".into(),
        );
    }
    warnings
}

/// The `cg` URLs that name the local host.
fn local_url_warnings(cfg: &Config) -> impl Iterator<Item = String> + '_ {
    let cg = &cfg.cg;
    let urls = cg
        .censhare_logout_url
        .iter()
        .map(|u| ("cg.censhareLogoutUrl", u))
        .chain(
            cg.fresh_token_listeners
                .iter()
                .map(|u| ("cg.freshTokenListeners", u)),
        )
        .chain(
            cg.logout_listeners
                .iter()
                .map(|u| ("cg.logoutListeners", u)),
        );
    urls.filter(|(_, u)| is_local(&u.host)).map(|(key, u)| {
        format!(
            "{key}: {} names the local host; use an alias of the server instead (it keeps working when a component moves)",
            u.original
        )
    })
}

/// Asks the provider for a token with the configured client to read `expires_in`; `None`
/// when the provider is unreachable or refuses the grant. Bounded by `within`.
pub fn probe_lifespan(cfg: &Config, within: Duration) -> Option<Duration> {
    let reg = cfg.oauth2.registrations.first()?;
    let issuer = crate::provider::issuer(cfg)?;
    let tls = crate::client::tls_config(cfg.gateway.ca_bundle.as_deref()).ok()?;
    let mut rt = monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
        .enable_timer()
        .build()
        .ok()?;
    rt.block_on(async move {
        let client = crate::client::HttpClient::new(tls, within, within);
        let probe = async {
            let meta = crate::oidc::discover(&client, &issuer).await.ok()?;
            let t = crate::oidc::client_credentials(&client, &meta, reg)
                .await
                .ok()?;
            t.expires_in.filter(|&e| e > 0).map(Duration::from_secs)
        };
        monoio::time::timeout(within, probe).await.ok().flatten()
    })
}

fn is_local(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost") || host.starts_with("127.") || host == "::1"
}

/// Login without `sessiongate.public-url` on a listener that is not loopback: logins will be
/// refused under any name but the listener's own address (a public name is not trusted from
/// the Host header).
pub fn public_url_warning(cfg: &Config) -> Option<String> {
    let login = !cfg.oauth2.registrations.is_empty();
    let exposed = !cfg.server.address.is_loopback();
    (login && exposed && cfg.gateway.public_url.is_none()).then(|| {
        "login is configured without sessiongate.public-url: logins are accepted only under the listener's own address or a trusted proxy's X-Forwarded-Host; set public-url to the address browsers use".to_string()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formula_and_warnings() {
        let cfg = crate::config::load_str(
            "cg: {sessionTimeoutSec: 1800, sessionCheckIntervalMs: 60000, censhareLogoutUrl: 'http://localhost:9000/x', freshTokenListeners: 'http://cs:9000/a', freshTokenSendIntervalMs: 200000}\n",
        )
        .unwrap();
        let input = CheckInput {
            access_token_lifespan: Some(Duration::from_secs(300)),
            lifespan_source: "flag",
            backend_keep_alive: Duration::from_secs(180),
        };
        let (text, warnings) = report(&cfg, &input);
        assert!(text.contains("at least 2160 s"), "{text}");
        assert!(warnings
            .iter()
            .any(|w| w.contains("cg.censhareLogoutUrl") && w.contains("alias")));
        assert!(warnings
            .iter()
            .any(|w| w.contains("freshTokenSendIntervalMs")));
        assert!(warnings
            .iter()
            .any(|w| w.contains("useSecureSessionCookie")));
    }

    #[test]
    fn the_report_says_where_sessions_live_without_the_password() {
        let input = CheckInput {
            access_token_lifespan: None,
            lifespan_source: "flag",
            backend_keep_alive: Duration::from_secs(180),
        };
        let memory = crate::config::load_str("cg: {sessionTimeoutSec: 1800}\n").unwrap();
        assert!(report(&memory, &input)
            .0
            .contains("sessions: in memory (a restart ends them)"));
        let shared = crate::config::load_str(concat!(
            "sessiongate: {session-store: redis, session-snapshot: /tmp/s, ",
            "session-encryption-keys: [MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=]}\n",
            "spring.data.redis.url: rediss://u:hunter2@r.example:6380/2\n"
        ))
        .unwrap();
        let (text, warnings) = report(&shared, &input);
        assert!(
            text.contains("sessions: shared store at rediss://r.example:6380 (database 2, keys {sessiongate}:*), 1 encryption key(s)"),
            "{text}"
        );
        assert!(!text.contains("hunter2"));
        assert!(warnings
            .iter()
            .any(|w| w.contains("session-snapshot is ignored")));
    }
}
