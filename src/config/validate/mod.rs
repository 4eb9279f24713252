//! Step two of loading: the raw tree into the typed [`Config`], checked once.
//!
//! Every reader names the key it reads, so each error says where the problem is. Sections we
//! own (`cg`, `server`, `management`, `sessiongate`, `spring.cloud.gateway`,
//! `spring.security.oauth2` with its registrations and providers) refuse unknown keys and
//! suggest the nearest known one; everything else in an operator's Spring file (other
//! top-level keys, other `spring.*` keys, other `logging.*` keys) is ignored without a word,
//! except near misses of `spring.security.oauth2`, which would silently turn login off.
//!
//! The rules a start depends on are checked here too, so a configuration error is refused
//! (exit 64) before anything starts: route patterns are compiled into the router's types,
//! `sessiongate.workers` is bounded, and the files the gateway keeps in memory (the access
//! banner, the CA bundle) are read. What is left to a start is what only the machine can
//! refuse (ports, host names, the audit log file) and the server certificate, which
//! `tls::load` checks for both `check` and a start.
//!
//! One module a topic: [`section`] reads keys, [`number`] holds the integer and duration
//! ranges, [`suggest`] the did-you-mean for unknown keys, [`files`] the files read at load;
//! then a module a part of the file: [`server`], [`cg`], [`oauth2`], [`routes`] (with
//! [`definition`] and [`filters`]), [`logging`] and [`gateway`] (`sessiongate.*`).

mod cg;
mod definition;
mod files;
mod filters;
mod gateway;
mod logging;
mod number;
mod oauth2;
mod routes;
mod section;
mod server;
mod suggest;
#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};

use super::raw::{self, Node};
use super::Config;
use section::Section;

/// Why a configuration was refused. `Invalid` displays as `key.path: what is wrong`.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid YAML: {0}")]
    Yaml(#[from] serde_yaml::Error),
    #[error("{key}: {message}")]
    Invalid { key: String, message: String },
}

impl ConfigError {
    pub(crate) fn invalid(key: &str, message: impl Into<String>) -> ConfigError {
        ConfigError::Invalid {
            key: key.to_string(),
            message: message.into(),
        }
    }

    /// The key path the error is about, when it is about one.
    pub fn key(&self) -> Option<&str> {
        match self {
            ConfigError::Invalid { key, .. } => Some(key),
            _ => None,
        }
    }
}

type Result<T, E = ConfigError> = std::result::Result<T, E>;

/// Reads and validates the configuration file at `path`.
pub fn load_file(path: &Path) -> Result<Config> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    load_str(&text)
}

/// Validates configuration text; `${VAR}` placeholders come from the process environment.
pub fn load_str(yaml: &str) -> Result<Config> {
    load_str_with(yaml, &|name| std::env::var(name).ok())
}

/// [`load_str`] with placeholder variables from `env` (tests, `check` with overrides).
pub(crate) fn load_str_with(yaml: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<Config> {
    let root = raw::parse(yaml, env)?;
    config(&root)
}

fn config(root: &Node) -> Result<Config> {
    let top = Section::open(Some(root), "")?;
    let spring = top.open_section("spring")?;
    let sessiongate = top.section("sessiongate", gateway::SESSIONGATE_KEYS)?;
    let server = server::server(&top.section("server", &["address", "port", "ssl"])?)?;
    if let Some(p) = sessiongate.port("http-port")? {
        // Both listeners use SO_REUSEPORT: on one port they would share connections.
        if p != 0 && p == server.port {
            return Err(ConfigError::invalid(
                &sessiongate.key("http-port"),
                format!("must differ from server.port ({p})"),
            ));
        }
    }
    Ok(Config {
        server,
        management: server::management(&top.section("management", &["server"])?, &sessiongate)?,
        cg: cg::cg(&top.section("cg", cg::CG_KEYS)?)?,
        oauth2: oauth2::oauth2(&spring)?,
        routes: routes::routes(
            &spring
                .open_section("cloud")?
                .section("gateway", &["routes"])?,
        )?,
        logging: logging::logging(&top.open_section("logging")?)?,
        gateway: gateway::gateway(&sessiongate)?,
    })
}
