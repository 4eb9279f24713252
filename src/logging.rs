//! Logging: `logging.level.*` from the config, with the censhare Cloud Gateway's logger
//! names mapped onto our targets so an operator's existing lines keep working. Output goes
//! through a background writer thread, so no worker ever blocks on stderr.
//!
//! `logging.structured.format.console: ecs | logstash` writes each line as one JSON
//! object with the member names of Spring Boot 3.4's formatters ([`JsonLines`]).

use std::fmt::{self, Write as _};
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_log::NormalizeEvent as _;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::{FormatTime as _, SystemTime};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::EnvFilter;

use crate::config::{LogLevel, LoggingConfig, StructuredFormat};

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

/// Set once by [`init`]: lines are JSON, so the access log names its fields for that.
static STRUCTURED: AtomicBool = AtomicBool::new(false);

/// The log is JSON lines (`logging.structured.format.console` was set at start).
pub fn structured() -> bool {
    STRUCTURED.load(Relaxed)
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
    // One of the two is `None`: an absent layer does nothing.
    let (plain, json) = match cfg.structured {
        None => (
            Some(
                tracing_subscriber::fmt::layer()
                    .with_writer(writer)
                    .with_ansi(false)
                    .with_target(true),
            ),
            None,
        ),
        Some(format) => (
            None,
            Some(
                tracing_subscriber::fmt::layer()
                    .with_writer(writer)
                    .event_format(JsonLines::new(format)),
            ),
        ),
    };
    STRUCTURED.store(cfg.structured.is_some(), Relaxed);
    tracing_subscriber::registry()
        .with(filter)
        .with(plain)
        .with(json)
        .init();
    let _ = RELOAD.set(handle);
    for name in unknown {
        tracing::debug!(target: "sessiongate", logger = %name, "logging.level entry names no sessiongate component; ignored");
    }
    guard
}

/// Elastic Common Schema's version the ECS lines claim (Spring Boot 3.4's).
const ECS_VERSION: &str = "8.11";

/// One JSON object a line, member names as Spring Boot 3.4's structured formatters write
/// them. ECS: `@timestamp`, `log.level`, `process.pid`, `process.thread.name`,
/// `service.name`, `service.version`, `log.logger`, `message`, the event's fields,
/// `ecs.version`. Logstash: `@timestamp`, `@version`, `message`, `logger_name`,
/// `thread_name`, `level`, `level_value`, the event's fields.
///
/// Written straight into the subscriber's reused line buffer, escaping as it goes: the
/// crate's own JSON format has fixed member names (`timestamp`, `fields`, `target`) and
/// builds a map of every event's fields first.
pub struct JsonLines {
    format: StructuredFormat,
    pid: u32,
}

impl JsonLines {
    pub fn new(format: StructuredFormat) -> JsonLines {
        JsonLines {
            format,
            pid: std::process::id(),
        }
    }
}

impl<S, N> FormatEvent<S, N> for JsonLines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &FmtContext<'_, S, N>,
        mut w: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        // Records from the `log` crate (rustls) carry their real target in `log.*` fields.
        let normalized = event.normalized_metadata();
        let meta = normalized.as_ref().unwrap_or_else(|| event.metadata());
        let thread = std::thread::current();
        let thread = thread.name().unwrap_or("");
        let level = level_name(*meta.level());
        w.write_str("{\"@timestamp\":\"")?;
        SystemTime.format_time(&mut w)?;
        let ecs = self.format == StructuredFormat::Ecs;
        if ecs {
            write!(
                w,
                "\",\"log.level\":\"{level}\",\"process.pid\":{},\"process.thread.name\":",
                self.pid
            )?;
            json_str(&mut w, thread)?;
            w.write_str(concat!(
                ",\"service.name\":\"sessiongate\",\"service.version\":\"",
                env!("CARGO_PKG_VERSION"),
                "\",\"log.logger\":"
            ))?;
            json_str(&mut w, meta.target())?;
        } else {
            w.write_str("\",\"@version\":\"1\",\"logger_name\":")?;
            json_str(&mut w, meta.target())?;
            w.write_str(",\"thread_name\":")?;
            json_str(&mut w, thread)?;
            write!(
                w,
                ",\"level\":\"{level}\",\"level_value\":{}",
                level_value(*meta.level())
            )?;
        }
        let mut members = Members {
            w: &mut w,
            ecs,
            from_log: normalized.is_some(),
            message: false,
            result: Ok(()),
        };
        event.record(&mut members);
        members.result?;
        // Both formats always carry `message`; log viewers show it as the line.
        if !members.message {
            w.write_str(",\"message\":\"\"")?;
        }
        if ecs {
            write!(w, ",\"ecs.version\":\"{ECS_VERSION}\"")?;
        }
        w.write_str("}\n")
    }
}

fn level_name(l: Level) -> &'static str {
    match l {
        Level::TRACE => "TRACE",
        Level::DEBUG => "DEBUG",
        Level::INFO => "INFO",
        Level::WARN => "WARN",
        Level::ERROR => "ERROR",
    }
}

/// Logback's numeric levels, which the Logstash encoder writes as `level_value`.
fn level_value(l: Level) -> u32 {
    match l {
        Level::TRACE => 5000,
        Level::DEBUG => 10000,
        Level::INFO => 20000,
        Level::WARN => 30000,
        Level::ERROR => 40000,
    }
}

/// ECS maps these names as objects (`error.message`, `url.full`, `file.path`): a plain
/// value under one would be refused by an ECS index, so it goes to the matching leaf.
fn ecs_name(name: &str) -> &str {
    match name {
        "error" => "error.message",
        "url" => "url.full",
        "file" => "file.path",
        other => other,
    }
}

/// The event's fields as members: numbers and booleans as JSON values, anything else as an
/// escaped string.
struct Members<'a, 'w> {
    w: &'a mut Writer<'w>,
    ecs: bool,
    /// The event came from the `log` crate: its `log.*` fields are the metadata already used.
    from_log: bool,
    /// A `message` member was written.
    message: bool,
    result: fmt::Result,
}

impl Members<'_, '_> {
    /// Writes `,"name":` and then the value; a failed write stops the rest.
    fn member(&mut self, field: &Field, value: impl FnOnce(&mut Writer<'_>) -> fmt::Result) {
        let name = field.name();
        if self.result.is_err() || (self.from_log && name.starts_with("log.")) {
            return;
        }
        self.message |= name == "message";
        let name = if self.ecs { ecs_name(name) } else { name };
        self.result = (|| {
            self.w.write_char(',')?;
            json_str(self.w, name)?;
            self.w.write_char(':')?;
            value(self.w)
        })();
    }
}

impl Visit for Members<'_, '_> {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.member(field, |w| {
            w.write_char('"')?;
            write!(Escaped(w), "{value:?}")?;
            w.write_char('"')
        });
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.member(field, |w| json_str(w, value));
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.member(field, |w| {
            w.write_char('"')?;
            write!(Escaped(w), "{value}")?;
            w.write_char('"')
        });
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.member(field, |w| write!(w, "{value}"));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.member(field, |w| write!(w, "{value}"));
    }

    fn record_u128(&mut self, field: &Field, value: u128) {
        self.member(field, |w| write!(w, "{value}"));
    }

    fn record_i128(&mut self, field: &Field, value: i128) {
        self.member(field, |w| write!(w, "{value}"));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.member(field, |w| write!(w, "{value}"));
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        // JSON has no NaN or infinity; Display never writes an exponent.
        match value.is_finite() {
            true => self.member(field, |w| write!(w, "{value}")),
            false => self.member(field, |w| w.write_str("null")),
        }
    }
}

/// `s` as a JSON string, quotes included.
fn json_str(w: &mut impl fmt::Write, s: &str) -> fmt::Result {
    w.write_char('"')?;
    Escaped(&mut *w).write_str(s)?;
    w.write_char('"')
}

/// Escapes what passes through for the inside of a JSON string, so a `Debug` or `Display`
/// value is written without being collected first. Control characters (a forged line
/// break, a terminal escape) come out as `\n` or `\u001b`.
struct Escaped<'a, W: fmt::Write + ?Sized>(&'a mut W);

impl<W: fmt::Write + ?Sized> fmt::Write for Escaped<'_, W> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let mut plain = 0;
        for (i, b) in s.bytes().enumerate() {
            let short = match b {
                b'"' => "\\\"",
                b'\\' => "\\\\",
                b'\n' => "\\n",
                b'\r' => "\\r",
                b'\t' => "\\t",
                0..=0x1f | 0x7f => "",
                _ => continue,
            };
            // Everything escaped is ASCII, so `i` is a char boundary.
            self.0.write_str(&s[plain..i])?;
            match short.is_empty() {
                true => write!(self.0, "\\u{b:04x}")?,
                false => self.0.write_str(short)?,
            }
            plain = i + 1;
        }
        self.0.write_str(&s[plain..])
    }
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
            ..LoggingConfig::default()
        };
        let (d, unknown) = directives(&cfg);
        assert_eq!(
            d,
            "warn,sessiongate::backchannel=trace,sessiongate::dispatcher=debug,sessiongate::proxy=error"
        );
        assert_eq!(unknown, vec!["org.hibernate".to_string()]);
        assert!(EnvFilter::try_new(&d).is_ok());
    }

    /// The lines `emit` logs through [`JsonLines`], each parsed as JSON.
    fn json_lines(format: StructuredFormat, emit: impl FnOnce()) -> Vec<serde_json::Value> {
        use std::sync::{Arc, Mutex};
        #[derive(Clone, Default)]
        struct Buf(Arc<Mutex<Vec<u8>>>);
        impl std::io::Write for Buf {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let buf = Buf::default();
        let out = buf.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(Level::TRACE)
            .with_writer(move || out.clone())
            .event_format(JsonLines::new(format))
            .finish();
        tracing::subscriber::with_default(subscriber, emit);
        let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        assert!(text.ends_with('\n'), "{text:?}");
        text.lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect()
    }

    #[test]
    fn ecs_lines_carry_spring_boot_names_and_typed_fields() {
        let lines = json_lines(StructuredFormat::Ecs, || {
            let err = std::io::Error::other("disk full");
            tracing::warn!(
                target: "sessiongate::proxy",
                count = 3u64,
                delta = -2i64,
                ratio = 0.5,
                ok = true,
                peer = %"1.2.3.4:5",
                why = ?Some(1),
                error = &err as &(dyn std::error::Error + 'static),
                url = "http://x/",
                none = Option::<u64>::None,
                http.response.status_code = 502u16,
                "upstream {} failed",
                "a"
            );
        });
        let l = &lines[0];
        assert_eq!(l["log.level"], "WARN");
        assert_eq!(l["log.logger"], "sessiongate::proxy");
        assert_eq!(l["message"], "upstream a failed");
        assert_eq!(l["process.pid"], std::process::id());
        assert!(l["process.thread.name"].is_string(), "{l}");
        assert_eq!(l["service.name"], "sessiongate");
        assert_eq!(l["service.version"], env!("CARGO_PKG_VERSION"));
        assert_eq!(l["ecs.version"], "8.11");
        let ts = l["@timestamp"].as_str().unwrap();
        assert!(
            ts.len() == 27 && ts.ends_with('Z') && &ts[10..11] == "T",
            "{ts}"
        );
        assert_eq!(l["count"], 3);
        assert_eq!(l["delta"], -2);
        assert_eq!(l["ratio"], 0.5);
        assert_eq!(l["ok"], true);
        assert_eq!(l["peer"], "1.2.3.4:5");
        assert_eq!(l["why"], "Some(1)");
        assert_eq!(l["http.response.status_code"], 502);
        // ECS objects get their leaf, not a plain value.
        assert_eq!(l["error.message"], "disk full");
        assert_eq!(l["url.full"], "http://x/");
        assert!(l.get("error").is_none() && l.get("url").is_none(), "{l}");
        assert!(
            l.get("none").is_none(),
            "an absent value writes no member: {l}"
        );
    }

    #[test]
    fn logstash_lines_carry_the_encoder_names() {
        let lines = json_lines(StructuredFormat::Logstash, || {
            tracing::error!(target: "sessiongate::auth", error = "x", "refresh failed");
            tracing::debug!(target: "sessiongate", n = 1);
        });
        let l = &lines[0];
        assert_eq!(l["@version"], "1");
        assert_eq!(l["level"], "ERROR");
        assert_eq!(l["level_value"], 40000);
        assert_eq!(l["logger_name"], "sessiongate::auth");
        assert_eq!(l["message"], "refresh failed");
        assert_eq!(l["error"], "x", "no ECS renaming here");
        assert!(
            l["thread_name"].is_string() && l["@timestamp"].is_string(),
            "{l}"
        );
        assert!(l.get("log.level").is_none() && l.get("ecs.version").is_none());
        assert_eq!(lines[1]["level_value"], 10000);
        assert_eq!(
            lines[1]["message"], "",
            "a line without one still has a message"
        );
    }

    #[test]
    fn records_of_the_log_crate_take_their_own_target() {
        let lines = json_lines(StructuredFormat::Ecs, || {
            let record = tracing_log::log::Record::builder()
                .args(format_args!("handshake done"))
                .level(tracing_log::log::Level::Info)
                .target("rustls::client")
                .build();
            tracing_log::format_trace(&record).unwrap();
        });
        let l = &lines[0];
        assert_eq!(l["log.logger"], "rustls::client");
        assert_eq!(l["message"], "handshake done");
        let fields: Vec<&String> = l.as_object().unwrap().keys().collect();
        assert!(
            !fields
                .iter()
                .any(|k| k.starts_with("log.") && *k != "log.level" && *k != "log.logger"),
            "the log crate's own fields stay out: {fields:?}"
        );
    }

    #[test]
    fn every_character_survives_escaping_and_none_breaks_the_line() {
        let mut all: String = (0u8..=0x7f).map(char::from).collect();
        all.push_str("é€😀\u{2028}\"\\");
        let lines = json_lines(StructuredFormat::Logstash, || {
            tracing::info!(target: "sessiongate", text = %all, raw = all.as_str(), "{all}");
        });
        assert_eq!(lines.len(), 1, "one line, whatever the value holds");
        for key in ["text", "raw", "message"] {
            assert_eq!(lines[0][key], all.as_str(), "{key}");
        }
        let mut out = String::new();
        json_str(&mut out, "a\u{1b}[31m\nb").unwrap();
        assert_eq!(out, r#""a\u001b[31m\nb""#);
    }
}
