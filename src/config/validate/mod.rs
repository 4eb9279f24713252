//! Step two of loading: the raw tree into the typed [`Config`], checked once.
//!
//! Every reader names the key it reads, so each error says where the problem is. Sections we
//! own (`cg`, `server`, `management`, `sessiongate`, `spring.cloud.gateway`,
//! `spring.security.oauth2` with its registrations and providers, `spring.data.redis`,
//! `spring.session.redis`) refuse unknown keys and
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
//! Every problem is reported in one run: a reader's problem is noted and the next key read
//! (only a file that cannot be read or parsed as YAML stops at once). What cannot be read
//! stops only what depends on it: a section that is not a map is read
//! as empty, a route or registration entry that is not a map is skipped, a predicate or
//! filter is built only when its entry is well formed, and a rule combining several keys
//! (a required key, `http-port` against `server.port`) is left out when one of them was
//! refused or looks misspelt.
//!
//! One module a topic: [`section`] reads keys, [`number`] holds the integer and duration
//! ranges, [`suggest`] the did-you-mean for unknown keys, [`files`] the files read at load;
//! then a module a part of the file: [`server`], [`cg`], [`oauth2`], [`routes`] (with
//! [`definition`] and [`filters`]), [`logging`], [`gateway`] (`sessiongate.*`) and [`redis`]
//! (`spring.data.redis`, `spring.session.redis`).

mod cg;
mod definition;
mod files;
mod filters;
mod gateway;
mod logging;
mod number;
mod oauth2;
mod redis;
mod routes;
mod section;
mod server;
mod suggest;
#[cfg(test)]
mod tests;

use std::path::Path;

use super::error::{all, is_at, sort_in_file_order, ConfigError, Errors};
use super::raw::{self, Node};
use super::Config;
use section::Section;

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
    let tree = raw::read(yaml, env)?;
    let errors = Errors::default();
    let config = config(&tree.root, &errors);
    let mut found = tree.errors;
    found.extend(
        errors
            .into_vec()
            .into_iter()
            .filter(|e| !tree.lost.iter().any(|lost| is_at(&e.key, lost))),
    );
    if found.is_empty() {
        return Ok(config);
    }
    sort_in_file_order(&mut found, &tree.root);
    Err(ConfigError::Invalid(found))
}

/// The typed configuration; with a problem reported in `errors` it holds stand-ins and is
/// not used.
fn config(root: &Node, errors: &Errors) -> Config {
    let top = Section::root(root, errors);
    let spring = top.open_section("spring");
    let sessiongate = top.section("sessiongate", gateway::SESSIONGATE_KEYS);
    let server_section = top.section("server", &["address", "port", "ssl"]);
    let server = server::server(&server_section);
    http_port_differs(&sessiongate, &server_section, server.port);
    Config {
        server,
        management: server::management(&top.section("management", &["server"]), &sessiongate),
        cg: cg::cg(&top.section("cg", cg::CG_KEYS)),
        oauth2: oauth2::oauth2(&spring),
        routes: routes::routes(&spring.open_section("cloud").section("gateway", &["routes"])),
        logging: logging::logging(&top.open_section("logging")),
        gateway: gateway::gateway(&sessiongate),
        redis: redis::redis(&spring),
    }
}

/// Both listeners use SO_REUSEPORT: on one port they would share connections. A refused
/// `http-port` is reported where `sessiongate` is read.
fn http_port_differs(sessiongate: &Section, server: &Section, server_port: u16) {
    if server.failed(&["port"]) {
        return;
    }
    if let Ok(Some(p)) = sessiongate.port("http-port") {
        if p != 0 && p == server_port {
            sessiongate.report(ConfigError::invalid(
                &sessiongate.key("http-port"),
                format!("must differ from server.port ({p})"),
            ));
        }
    }
}
