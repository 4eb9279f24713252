//! `logging.level.*`: logger names and their levels, in file order;
//! `logging.structured.format.console`: plain text or JSON lines.

use super::section::Section;
use super::{ConfigError, Result};
use crate::config::raw::{child_path, Node};
use crate::config::{LogLevel, LoggingConfig, StructuredFormat};

/// `logging.level`: names kept as written, in file order; a nested YAML map under a name
/// (`com: {censhare: DEBUG}`) is read as the dotted name, as Spring does.
pub(super) fn logging(s: &Section) -> LoggingConfig {
    let mut levels = Vec::new();
    collect_levels(&s.open_section("level"), "", &mut levels);
    LoggingConfig {
        levels,
        structured: s.take(console_format(s)),
    }
}

/// `logging.structured.format.console` (Spring Boot 3.4 names); absent: plain text.
fn console_format(s: &Section) -> Result<Option<StructuredFormat>> {
    let format = s.open_section("structured").open_section("format");
    let choices = [
        ("ecs", StructuredFormat::Ecs),
        ("logstash", StructuredFormat::Logstash),
    ];
    format.choice("console", &choices)
}

fn collect_levels(s: &Section, prefix: &str, out: &mut Vec<(String, LogLevel)>) {
    for (name, node) in s.entries {
        let full = child_path(prefix, name);
        match node {
            Node::Map(_) => collect_levels(&s.open_section(name), &full, out),
            _ => {
                let level = s
                    .text(name)
                    .and_then(|level| level.map(|l| log_level(&l, &s.key(name))).transpose());
                if let Some(level) = s.take(level) {
                    out.push((full, level));
                }
            }
        }
    }
}

fn log_level(level: &str, path: &str) -> Result<LogLevel> {
    Ok(match level.to_ascii_uppercase().as_str() {
        "TRACE" => LogLevel::Trace,
        "DEBUG" => LogLevel::Debug,
        "INFO" => LogLevel::Info,
        "WARN" => LogLevel::Warn,
        // Spring Boot's FATAL: nothing of ours logs above ERROR.
        "ERROR" | "FATAL" => LogLevel::Error,
        "OFF" | "FALSE" => LogLevel::Off,
        _ => {
            return Err(ConfigError::invalid(
                path,
                format!("expected TRACE, DEBUG, INFO, WARN, ERROR or OFF, got {level:?}"),
            ))
        }
    })
}
