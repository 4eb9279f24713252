//! Logging: `logging.level.*` from the config, with the censhare Cloud Gateway's logger
//! names mapped onto our targets so an operator's existing lines keep working. Output goes
//! through a background writer thread, so no worker ever blocks on stderr.

use tracing_subscriber::EnvFilter;

use crate::config::{LogLevel, LoggingConfig};

/// Environment variable whose directives (`sessiongate::proxy=debug,...`) override the file.
pub const ENV_OVERRIDE: &str = "SESSIONGATE_LOG";

/// Spring logger names and the target each one maps to.
const LOGGER_MAP: &[(&str, &str)] = &[
    (
        "com.censhare.core.cloudgateway.BackchannelLogoutGatewayFilterFactory",
        "sessiongate::backchannel",
    ),
    (
        "com.censhare.core.cloudgateway.LogoutProcessor",
        "sessiongate::logout",
    ),
    (
        "com.censhare.core.cloudgateway.LogoutSignalSender",
        "sessiongate::dispatcher",
    ),
    ("com.censhare.core.cloudgateway", "sessiongate"),
    ("com.censhare.core", "sessiongate"),
    ("com.censhare", "sessiongate"),
    ("org.springframework.cloud.gateway", "sessiongate::proxy"),
    ("reactor.netty", "sessiongate::proxy"),
];

/// Our target for a Spring logger name; `None` when it names nothing of ours.
pub fn target_for(logger: &str) -> Option<String> {
    if let Some((_, t)) = LOGGER_MAP.iter().find(|(name, _)| *name == logger) {
        return Some((*t).to_string());
    }
    // A name with directive syntax in it (`=`, `,`, `[`, spaces) would make EnvFilter refuse
    // every directive, and `init` would fall back to plain `info`: treat it as not ours.
    let plain = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'.' | b':' | b'_' | b'-');
    if (logger == "sessiongate"
        || logger.starts_with("sessiongate.")
        || logger.starts_with("sessiongate::"))
        && logger.bytes().all(plain)
    {
        return Some(logger.replace('.', "::"));
    }
    None
}

fn level_str(l: LogLevel) -> &'static str {
    match l {
        LogLevel::Off => "off",
        LogLevel::Error => "error",
        LogLevel::Warn => "warn",
        LogLevel::Info => "info",
        LogLevel::Debug => "debug",
        LogLevel::Trace => "trace",
    }
}

/// The filter directives for a logging section, and the logger names that map to nothing.
pub fn directives(cfg: &LoggingConfig) -> (String, Vec<String>) {
    let mut root = "info";
    let mut parts = Vec::new();
    let mut unknown = Vec::new();
    for (name, level) in &cfg.levels {
        if name.eq_ignore_ascii_case("root") {
            root = level_str(*level);
        } else if let Some(t) = target_for(name) {
            parts.push(format!("{t}={}", level_str(*level)));
        } else {
            unknown.push(name.clone());
        }
    }
    // The default goes first: later, more specific directives win in EnvFilter.
    let mut all = vec![root.to_string()];
    all.extend(parts);
    (all.join(","), unknown)
}

type ReloadHandle = tracing_subscriber::reload::Handle<EnvFilter, tracing_subscriber::Registry>;
static RELOAD: std::sync::OnceLock<ReloadHandle> = std::sync::OnceLock::new();

/// Applies a reloaded `logging.level` section (the environment override, when set, stays).
pub fn set_levels(cfg: &LoggingConfig) {
    if std::env::var_os(ENV_OVERRIDE).is_some() {
        return;
    }
    let (directives, _) = directives(cfg);
    match (RELOAD.get(), EnvFilter::try_new(&directives)) {
        (Some(h), Ok(f)) => {
            let _ = h.reload(f);
        }
        _ => tracing::warn!(target: "sessiongate", "logging levels could not be reloaded"),
    }
}

/// Installs the global subscriber. Keep the guard alive until exit: dropping it flushes.
pub fn init(cfg: &LoggingConfig) -> tracing_appender::non_blocking::WorkerGuard {
    let (file_directives, unknown) = directives(cfg);
    let directives = std::env::var(ENV_OVERRIDE).unwrap_or(file_directives);
    let filter = EnvFilter::try_new(&directives).unwrap_or_else(|_| EnvFilter::new("info"));
    // Lossy when the queue is full: dropping a log line beats stalling a worker.
    let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .lossy(true)
        .buffered_lines_limit(64 * 1024)
        .finish(std::io::stderr());
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    // The filter sits in a reload layer so SIGHUP can change levels without a restart.
    let (filter, handle) = tracing_subscriber::reload::Layer::new(filter);
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(writer)
        .with_ansi(false)
        .with_target(true);
    tracing_subscriber::registry().with(filter).with(fmt).init();
    let _ = RELOAD.set(handle);
    for name in unknown {
        tracing::debug!(target: "sessiongate", logger = %name, "logging.level entry names no sessiongate component; ignored");
    }
    guard
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn censhare_names_map_to_our_targets() {
        let cfg = LoggingConfig {
            levels: vec![
                ("root".into(), LogLevel::Warn),
                (
                    "com.censhare.core.cloudgateway.BackchannelLogoutGatewayFilterFactory".into(),
                    LogLevel::Trace,
                ),
                (
                    "com.censhare.core.cloudgateway.LogoutSignalSender".into(),
                    LogLevel::Debug,
                ),
                ("sessiongate.proxy".into(), LogLevel::Error),
                ("org.hibernate".into(), LogLevel::Info),
            ],
        };
        let (d, unknown) = directives(&cfg);
        assert_eq!(
            d,
            "warn,sessiongate::backchannel=trace,sessiongate::dispatcher=debug,sessiongate::proxy=error"
        );
        assert_eq!(unknown, vec!["org.hibernate".to_string()]);
        assert!(EnvFilter::try_new(&d).is_ok());
    }
}
