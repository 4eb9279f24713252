//! Why a configuration was refused: [`ConfigError`], with every [`KeyError`] found in the
//! file, so that one run names every key to fix.
//!
//! While a file is read, each problem goes into an [`Errors`] collection and reading goes
//! on with the next key; only at the end is the file accepted or refused. The problems are
//! then put in file order, by where their keys are in the tree.

use std::cell::RefCell;
use std::fmt;
use std::path::PathBuf;

use super::raw::Node;

/// One problem, about one key: displays as `key.path: what is wrong`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyError {
    pub key: String,
    pub message: String,
}

impl fmt::Display for KeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.key, self.message)
    }
}

/// Why a configuration was refused. A file that cannot be read or parsed has nothing else
/// to check; otherwise every problem found is listed.
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
    /// Never empty, in file order. One displays as itself, several as a line `N errors:`
    /// followed by one indented line each.
    #[error("{}", list(.0))]
    Invalid(Vec<KeyError>),
}

fn list(errors: &[KeyError]) -> String {
    match errors {
        [one] => one.to_string(),
        _ => {
            let mut out = format!("{} errors:", errors.len());
            for e in errors {
                out.push_str(&format!("\n  {e}"));
            }
            out
        }
    }
}

impl ConfigError {
    pub(crate) fn invalid(key: &str, message: impl Into<String>) -> ConfigError {
        ConfigError::Invalid(vec![KeyError {
            key: key.to_string(),
            message: message.into(),
        }])
    }

    /// The key path of the first problem (in file order), when it is about one.
    pub fn key(&self) -> Option<&str> {
        self.errors().first().map(|e| e.key.as_str())
    }

    /// Every problem found about a key; empty when the file could not be read or parsed.
    pub fn errors(&self) -> &[KeyError] {
        match self {
            ConfigError::Invalid(errors) => errors,
            _ => &[],
        }
    }

    fn into_key_errors(self) -> Vec<KeyError> {
        match self {
            ConfigError::Invalid(errors) => errors,
            // Not produced while a tree is read; kept whole should it ever be.
            other => vec![KeyError {
                key: String::new(),
                message: other.to_string(),
            }],
        }
    }
}

/// Every item's value, or every item's problems.
pub(super) fn all<T>(
    items: impl IntoIterator<Item = Result<T, ConfigError>>,
) -> Result<Vec<T>, ConfigError> {
    let mut values = Vec::new();
    let mut errors = Vec::new();
    for item in items {
        match item {
            Ok(v) => values.push(v),
            Err(e) => errors.extend(e.into_key_errors()),
        }
    }
    if errors.is_empty() {
        Ok(values)
    } else {
        Err(ConfigError::Invalid(errors))
    }
}

/// The problems found so far in one file.
#[derive(Debug, Default)]
pub(super) struct Errors(RefCell<Vec<KeyError>>);

impl Errors {
    pub(super) fn add(&self, e: ConfigError) {
        self.0.borrow_mut().extend(e.into_key_errors());
    }

    /// Whether a problem found so far is one `f` looks for.
    pub(super) fn any(&self, f: impl Fn(&KeyError) -> bool) -> bool {
        self.0.borrow().iter().any(f)
    }

    pub(super) fn into_vec(self) -> Vec<KeyError> {
        self.0.into_inner()
    }
}

/// Whether the key path `key` is `at` or below it (`a.b`, `a.b.c` and `a.b[0]` are at `a.b`;
/// `a.bc` is not).
pub(super) fn is_at(key: &str, at: &str) -> bool {
    match key.strip_prefix(at) {
        Some(rest) => at.is_empty() || rest.is_empty() || rest.starts_with(['.', '[']),
        None => false,
    }
}

/// Puts `errors` in file order: by where each key is in the tree, whose maps keep the order
/// of the file. A key the file does not hold (a required one left out) comes after what its
/// nearest written parent holds. Problems at one place keep the order they were found in.
pub(super) fn sort_in_file_order(errors: &mut [KeyError], root: &Node) {
    // A stable sort: equal positions keep the order of finding.
    errors.sort_by_cached_key(|e| position(root, &e.key));
}

/// The index of each map entry and list item on the way to `key` (`usize::MAX` for the
/// first step the tree does not hold).
fn position(root: &Node, key: &str) -> Vec<usize> {
    let mut steps = Vec::new();
    let mut node = root;
    let mut rest = key;
    while !rest.is_empty() {
        let Some((i, child, tail)) = step(node, rest) else {
            steps.push(usize::MAX);
            break;
        };
        steps.push(i);
        node = child;
        rest = tail.strip_prefix('.').unwrap_or(tail);
    }
    steps
}

/// One step of [`position`]: the child `rest` starts with, its index, and what follows it.
/// Of map keys the longest that fits is taken, as a logger name may hold dots.
fn step<'n, 'k>(node: &'n Node, rest: &'k str) -> Option<(usize, &'n Node, &'k str)> {
    match node {
        Node::Map(entries) => entries
            .iter()
            .enumerate()
            .filter_map(|(i, (k, v))| {
                let tail = rest.strip_prefix(k.as_str())?;
                (tail.is_empty() || tail.starts_with(['.', '['])).then_some((i, v, tail))
            })
            .max_by_key(|(_, _, tail)| rest.len() - tail.len()),
        Node::List(items) => {
            let (index, tail) = rest.strip_prefix('[')?.split_once(']')?;
            let i: usize = index.parse().ok()?;
            Some((i, items.get(i)?, tail))
        }
        _ => None,
    }
}
