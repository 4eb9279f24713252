//! A route's predicates and filters as written: the name and arguments of each, in Spring's
//! shortcut form (`Path=/a,/b`) or its expanded form (`{name: Path, args: {patterns: [/a]}}`).

use super::section::{expected, text, Section};
use super::suggest::{suggest, unknown_key};
use super::{all, ConfigError, Result};
use crate::config::raw::Node;

/// One predicate or filter as written: its name and its arguments.
pub(super) struct Definition<'a> {
    /// Key path of the entry (`spring.cloud.gateway.routes[0].filters[1]`).
    pub(super) path: String,
    pub(super) name: String,
    args: Args<'a>,
}

enum Args<'a> {
    /// The text after `=` (absent: no `=`).
    Shortcut(Option<String>),
    Named(Section<'a>),
}

/// The names a list of definitions may use, and what one is called in an error.
pub(super) struct Names {
    pub(super) what: &'static str,
    pub(super) known: &'static [&'static str],
}

/// Reads the list under `key` and converts each entry with `build`, which gets only names
/// in `names`. Each entry's problem is reported; the entries built are returned.
pub(super) fn definitions<T>(
    s: &Section,
    key: &str,
    names: &Names,
    build: fn(&Definition) -> Result<T>,
) -> Vec<T> {
    let path = s.key(key);
    let items: &[Node] = match s.node(key) {
        None => &[],
        Some(Node::List(items)) => items,
        Some(single @ Node::Scalar(_)) => std::slice::from_ref(single),
        Some(other) => {
            s.report(expected(&path, "a list", other));
            return Vec::new();
        }
    };
    let mut out = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let Some(d) = definition(s, item, format!("{path}[{i}]")) else {
            continue;
        };
        if !names.known.contains(&d.name.as_str()) {
            s.report(unknown_name(&d, names));
            continue;
        }
        out.extend(s.ok(build(&d)));
    }
    out
}

/// The entry's name and arguments, or `None` (reported) when it has no name or its `args`
/// is not a map.
fn definition<'a>(s: &Section<'a>, node: &'a Node, path: String) -> Option<Definition<'a>> {
    if let Node::Map(_) = node {
        let entry = s.map_at(Some(node), &path, Some(&["name", "args"]))?;
        let name = entry.required_text("name");
        let args = entry.map_at(entry.node("args"), &entry.key("args"), None);
        return Some(Definition {
            path,
            name: name?,
            args: Args::Named(args?),
        });
    }
    let text = match text(node, &path) {
        Ok(Some(text)) => text,
        Ok(None) => {
            s.report(ConfigError::invalid(&path, "empty entry"));
            return None;
        }
        Err(e) => {
            s.report(e);
            return None;
        }
    };
    let (name, args) = match text.split_once('=') {
        Some((n, a)) => (n.trim().to_string(), Some(a.trim().to_string())),
        None => (text, None),
    };
    Some(Definition {
        path,
        name,
        args: Args::Shortcut(args),
    })
}

fn unknown_name(d: &Definition, names: &Names) -> ConfigError {
    let hint = match suggest(&d.name, names.known) {
        Some(best) => format!("; did you mean `{best}`?"),
        None => format!("; known: {}", names.known.join(", ")),
    };
    let what = names.what;
    ConfigError::invalid(&d.path, format!("unknown {what} `{}`{hint}", d.name))
}

impl Definition<'_> {
    /// The arguments as a list: shortcut text split at commas, or the named list
    /// argument `key` (a YAML list or a comma-separated string).
    pub(super) fn list_arg(&self, key: &str) -> Result<Vec<(String, String)>> {
        match &self.args {
            Args::Shortcut(text) => Ok(text
                .as_deref()
                .unwrap_or("")
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .enumerate()
                .map(|(i, v)| (format!("{}[{i}]", self.path), v.to_string()))
                .collect()),
            Args::Named(args) => {
                check_arg_names(args, &[key])?;
                args.list(key)
            }
        }
    }

    /// The arguments named `keys`, all required and non-empty. Shortcut text is split at
    /// the first `len - 1` commas, so a header value may itself contain commas.
    pub(super) fn args(&self, keys: &[&str]) -> Result<Vec<String>> {
        let values: Vec<String> = match &self.args {
            Args::Shortcut(text) => {
                let text = text.as_deref().unwrap_or("");
                if keys.is_empty() && !text.is_empty() {
                    return Err(self.arg_count(keys));
                }
                match keys.len() {
                    0 => Vec::new(),
                    n => text.splitn(n, ',').map(|p| p.trim().to_string()).collect(),
                }
            }
            Args::Named(args) => {
                check_arg_names(args, keys)?;
                keys.iter()
                    .map(|k| args.text(k).map(Option::unwrap_or_default))
                    .collect::<Result<_>>()?
            }
        };
        if values.len() != keys.len() || values.iter().any(String::is_empty) {
            return Err(self.arg_count(keys));
        }
        Ok(values)
    }

    fn arg_count(&self, keys: &[&str]) -> ConfigError {
        let message = match keys {
            [] => format!("{} takes no arguments", self.name),
            _ => format!("{} expects {}", self.name, keys.join(", ")),
        };
        ConfigError::invalid(&self.path, message)
    }
}

/// Every argument name not in `known` is a problem.
fn check_arg_names(args: &Section, known: &[&str]) -> Result<()> {
    all(args
        .entries
        .iter()
        .filter(|(k, _)| !known.contains(&k.as_str()))
        .map(|(k, _)| Err::<(), _>(unknown_key(&args.path, k, known))))
    .map(drop)
}
