//! Step one of loading: YAML text into a plain tree of maps, lists and scalars.
//!
//! Spring lets operators write the same key nested (`cg: {sessionTimeoutSec: 1800}`) or dotted
//! (`cg.sessionTimeoutSec: 1800`) and mix both in one file, so every map key is split at its
//! dots and merged into one tree here. The one exception is the name under `logging.level`:
//! a logger name such as `com.censhare.core.cloudgateway.LogoutProcessor` is a single key.
//!
//! Scalars are kept as text, the way Spring binds them: `1800`, `"1800"` and
//! `${TIMEOUT:1800}` all mean the same to the validator. `${VAR}` and `${VAR:default}`
//! placeholders are expanded here, before merging, so conflicts compare the real values.
//!
//! Only a YAML syntax error stops the reading. Any other problem (a placeholder that cannot
//! be expanded, a conflict, a malformed key) is noted with the path it leaves out, and the
//! rest of the file is still read and checked.

use std::cell::RefCell;

use super::error::{all, Errors, KeyError};
use super::ConfigError;

/// One node of the configuration tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Node {
    /// An empty value (`key:` or `key: ~`); treated as absent.
    Null,
    /// Any scalar, as text, placeholders expanded.
    Scalar(String),
    List(Vec<Node>),
    /// Entries in file order (the order matters for `logging.level`).
    Map(Vec<(String, Node)>),
}

impl Node {
    /// The value under `key` when this is a map.
    #[cfg(test)]
    pub(crate) fn get(&self, key: &str) -> Option<&Node> {
        match self {
            Node::Map(entries) => entries.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    /// A short description for "expected X, got Y" messages.
    pub(crate) fn describe(&self) -> String {
        match self {
            Node::Null => "an empty value".to_string(),
            Node::Scalar(s) => format!("{s:?}"),
            Node::List(_) => "a list".to_string(),
            Node::Map(_) => "a map".to_string(),
        }
    }
}

/// The map whose keys are logger names and must not be split at dots.
const LOGGER_MAP: &str = "logging.level";

/// The merged tree, and what could not be put into it.
pub(crate) struct Tree {
    pub(crate) root: Node,
    /// The problems found while building the tree.
    pub(crate) errors: Vec<KeyError>,
    /// The paths whose value those problems left out (or, for a conflict, left as first
    /// given): what validation would say at or below them is about a value never read.
    pub(crate) lost: Vec<String>,
}

/// Parses `yaml` and builds the merged tree; `env` looks up placeholder variables. Only a
/// YAML syntax error is an `Err`.
pub(crate) fn read(yaml: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<Tree, ConfigError> {
    let mut value: serde_yaml::Value = serde_yaml::from_str(yaml)?;
    value.apply_merge()?;
    let builder = Builder {
        env,
        errors: Errors::default(),
        lost: RefCell::default(),
    };
    let root = builder.node(&value, "");
    Ok(Tree {
        root,
        errors: builder.errors.into_vec(),
        lost: builder.lost.into_inner(),
    })
}

/// [`read`], refusing the tree when building it found a problem.
#[cfg(test)]
pub(crate) fn parse(yaml: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<Node, ConfigError> {
    let tree = read(yaml, env)?;
    if tree.errors.is_empty() {
        Ok(tree.root)
    } else {
        Err(ConfigError::Invalid(tree.errors))
    }
}

/// Joins a parent path and a child key for error messages (`cg` + `maxSessions`).
pub(crate) fn child_path(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_string()
    } else {
        format!("{parent}.{key}")
    }
}

struct Builder<'a> {
    env: &'a dyn Fn(&str) -> Option<String>,
    errors: Errors,
    lost: RefCell<Vec<String>>,
}

impl Builder<'_> {
    fn node(&self, value: &serde_yaml::Value, path: &str) -> Node {
        use serde_yaml::Value as V;
        match value {
            V::Null => Node::Null,
            V::Bool(b) => Node::Scalar(b.to_string()),
            V::Number(n) => Node::Scalar(n.to_string()),
            V::String(s) => match expand(s, path, self.env) {
                Ok(s) => Node::Scalar(s),
                Err(e) => self.lose(e),
            },
            V::Sequence(items) => Node::List(
                items
                    .iter()
                    .enumerate()
                    .map(|(i, item)| self.node(item, &format!("{path}[{i}]")))
                    .collect(),
            ),
            V::Mapping(map) => self.map(map, path),
            V::Tagged(_) => self.lose(ConfigError::invalid(path, "YAML tags are not supported")),
        }
    }

    fn map(&self, map: &serde_yaml::Mapping, path: &str) -> Node {
        let mut out = Node::Map(Vec::new());
        for (key, value) in map {
            let key = match key_text(key, path) {
                Ok(key) => key,
                // Nothing is left out under a name: the entry has none.
                Err(e) => {
                    self.errors.add(e);
                    continue;
                }
            };
            let Some(segments) = split_key(path, &key) else {
                let full = child_path(path, &key);
                self.lose(ConfigError::invalid(&full, "empty key segment"));
                continue;
            };
            let mut full = path.to_string();
            for segment in &segments {
                full = child_path(&full, segment);
            }
            let node = self.node(value, &full);
            if let Err(e) = insert(&mut out, path, &segments, node) {
                self.lose(e);
            }
        }
        out
    }

    /// Notes `e`, whose keys are left out of the tree; the value becomes empty.
    fn lose(&self, e: ConfigError) -> Node {
        let keys = e.errors().iter().map(|k| k.key.clone());
        self.lost.borrow_mut().extend(keys);
        self.errors.add(e);
        Node::Null
    }
}

/// A map key as text; YAML allows numbers and booleans as keys, Spring reads them as text.
fn key_text(key: &serde_yaml::Value, path: &str) -> Result<String, ConfigError> {
    use serde_yaml::Value as V;
    match key {
        V::String(s) => Ok(s.clone()),
        V::Number(n) => Ok(n.to_string()),
        V::Bool(b) => Ok(b.to_string()),
        _ => Err(ConfigError::invalid(path, "map keys must be plain text")),
    }
}

/// Splits a dotted key below `parent`; below `logging.level` the rest is one logger name.
/// `None` when a segment would be empty (`a..b`, `.a`, `a.`).
fn split_key(parent: &str, key: &str) -> Option<Vec<String>> {
    let mut segments = Vec::new();
    let mut here = parent.to_string();
    let mut rest = key;
    loop {
        let cut = if here == LOGGER_MAP {
            None
        } else {
            rest.find('.')
        };
        let (head, tail) = match cut {
            Some(i) => (&rest[..i], Some(&rest[i + 1..])),
            None => (rest, None),
        };
        if head.is_empty() {
            return None;
        }
        here = child_path(&here, head);
        segments.push(head.to_string());
        match tail {
            Some(t) => rest = t,
            None => return Some(segments),
        }
    }
}

/// Puts `value` at `segments` below `map`, merging with what an earlier key put there.
fn insert(map: &mut Node, path: &str, segments: &[String], value: Node) -> Result<(), ConfigError> {
    let (first, rest) = segments
        .split_first()
        .expect("split_key yields at least one segment");
    let here = child_path(path, first);
    let Node::Map(entries) = map else {
        unreachable!("insert is only called on maps")
    };
    let slot = match entries.iter().position(|(k, _)| k == first) {
        Some(i) => &mut entries[i].1,
        None => {
            entries.push((first.clone(), Node::Null));
            &mut entries.last_mut().expect("just pushed").1
        }
    };
    if rest.is_empty() {
        return merge(slot, value, &here);
    }
    if *slot == Node::Null {
        *slot = Node::Map(Vec::new());
    }
    if !matches!(slot, Node::Map(_)) {
        return Err(conflict(&here));
    }
    insert(slot, &here, rest, value)
}

/// Merges two values given for the same key: maps merge entry by entry, an empty value
/// yields to the other (a `cg:` left with all its lines commented out), equal values are
/// fine, anything else is a conflict.
fn merge(slot: &mut Node, value: Node, path: &str) -> Result<(), ConfigError> {
    match (&mut *slot, value) {
        (_, Node::Null) => Ok(()),
        (Node::Null, value) => {
            *slot = value;
            Ok(())
        }
        (Node::Map(_), Node::Map(entries)) => {
            let results: Vec<_> = entries
                .into_iter()
                .map(|(key, value)| insert(slot, path, &[key], value))
                .collect();
            all(results).map(drop)
        }
        (old, value) if *old == value => Ok(()),
        _ => Err(conflict(path)),
    }
}

fn conflict(path: &str) -> ConfigError {
    ConfigError::invalid(path, "given more than once with different values")
}

/// Expands `${VAR}` and `${VAR:default}` in `text`; a default may itself hold placeholders.
fn expand(
    text: &str,
    path: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<String, ConfigError> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let body_start = start + 2;
        let end = closing_brace(&rest[body_start..])
            .map(|e| body_start + e)
            .ok_or_else(|| {
                ConfigError::invalid(path, format!("unterminated placeholder in {text:?}"))
            })?;
        out.push_str(&resolve(&rest[body_start..end], path, env)?);
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Index of the `}` that closes a placeholder body, skipping nested `${...}`.
fn closing_brace(body: &str) -> Option<usize> {
    let bytes = body.as_bytes();
    let mut depth = 0usize;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'$' if bytes.get(i + 1) == Some(&b'{') => {
                depth += 1;
                i += 1;
            }
            b'}' if depth == 0 => return Some(i),
            b'}' => depth -= 1,
            _ => {}
        }
        i += 1;
    }
    None
}

/// Resolves one placeholder body (`NAME` or `NAME:default`).
fn resolve(
    body: &str,
    path: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<String, ConfigError> {
    let (name, default) = match body.find(':') {
        Some(i) => (&body[..i], Some(&body[i + 1..])),
        None => (body, None),
    };
    let name = name.trim();
    if name.is_empty() {
        return Err(ConfigError::invalid(
            path,
            "placeholder `${}` names no variable",
        ));
    }
    match (env(name), default) {
        (Some(value), _) => Ok(value),
        (None, Some(default)) => expand(default, path, env),
        (None, None) => Err(ConfigError::invalid(
            path,
            format!("environment variable {name} is not set and the placeholder has no default (write ${{{name}:default}})"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    fn tree(yaml: &str) -> Node {
        parse(yaml, &no_env).unwrap()
    }

    fn at<'a>(node: &'a Node, path: &[&str]) -> &'a Node {
        path.iter().fold(node, |n, k| {
            n.get(k).unwrap_or_else(|| panic!("missing {k}"))
        })
    }

    fn scalar(s: &str) -> Node {
        Node::Scalar(s.to_string())
    }

    #[test]
    fn dotted_and_nested_keys_merge() {
        let t = tree("cg:\n  sessionTimeoutSec: 1800\ncg.maxSessions: 5\n");
        assert_eq!(at(&t, &["cg", "sessionTimeoutSec"]), &scalar("1800"));
        assert_eq!(at(&t, &["cg", "maxSessions"]), &scalar("5"));
    }

    #[test]
    fn deep_dotted_keys_become_nested_maps() {
        let t = tree("spring.cloud.gateway.routes: []\nspring:\n  security.oauth2.client: {}\n");
        assert_eq!(
            at(&t, &["spring", "cloud", "gateway", "routes"]),
            &Node::List(vec![])
        );
        assert!(matches!(
            at(&t, &["spring", "security", "oauth2", "client"]),
            Node::Map(_)
        ));
    }

    #[test]
    fn logger_names_are_never_split() {
        let yaml = "\
logging.level.com.censhare.core.cloudgateway.LogoutProcessor: TRACE
logging:
  level:
    com.censhare.foo: DEBUG
  level.root: INFO
";
        let t = tree(yaml);
        let Node::Map(levels) = at(&t, &["logging", "level"]) else {
            panic!("not a map")
        };
        let names: Vec<&str> = levels.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            names,
            [
                "com.censhare.core.cloudgateway.LogoutProcessor",
                "com.censhare.foo",
                "root"
            ]
        );
    }

    #[test]
    fn equal_duplicates_are_fine_and_conflicts_name_the_key() {
        let t = tree("cg.maxSessions: 5\ncg: {maxSessions: 5}\n");
        assert_eq!(at(&t, &["cg", "maxSessions"]), &scalar("5"));
        let err = parse("cg.maxSessions: 5\ncg: {maxSessions: 6}\n", &no_env).unwrap_err();
        assert!(err.to_string().starts_with("cg.maxSessions: "), "{err}");
        let err = parse("cg: 5\ncg.maxSessions: 6\n", &no_env).unwrap_err();
        assert!(err.to_string().starts_with("cg: "), "{err}");
    }

    #[test]
    fn empty_section_yields_to_dotted_keys() {
        let t = tree("cg:\n#  maxSessions: 1\ncg.maxSessions: 7\n");
        assert_eq!(at(&t, &["cg", "maxSessions"]), &scalar("7"));
    }

    #[test]
    fn empty_key_segments_are_refused() {
        let err = parse("cg..maxSessions: 5\n", &no_env).unwrap_err();
        assert!(err.to_string().contains("empty key segment"), "{err}");
    }

    #[test]
    fn placeholders_expand_from_env_or_default() {
        let env = |name: &str| (name == "SECRET").then(|| "s3cr3t".to_string());
        let t = parse(
            "a: ${SECRET}\nb: ${UNSET:fallback}\nc: x-${UNSET:}-y\nd: ${UNSET:${SECRET}}\ne: 5\n",
            &env,
        )
        .unwrap();
        assert_eq!(at(&t, &["a"]), &scalar("s3cr3t"));
        assert_eq!(at(&t, &["b"]), &scalar("fallback"));
        assert_eq!(at(&t, &["c"]), &scalar("x--y"));
        assert_eq!(at(&t, &["d"]), &scalar("s3cr3t"));
        assert_eq!(at(&t, &["e"]), &scalar("5"));
    }

    #[test]
    fn default_keeps_colons_of_urls() {
        let t = tree("u: ${URL:http://127.0.0.1:9000/x}\n");
        assert_eq!(at(&t, &["u"]), &scalar("http://127.0.0.1:9000/x"));
    }

    #[test]
    fn unset_variable_names_the_key() {
        let err = parse("spring.x:\n  secret: \"${NOPE_NOT_SET}\"\n", &no_env).unwrap_err();
        let msg = err.to_string();
        assert!(msg.starts_with("spring.x.secret: "), "{msg}");
        assert!(msg.contains("NOPE_NOT_SET"), "{msg}");
        let err = parse("a: ${UNCLOSED\n", &no_env).unwrap_err();
        assert!(err.to_string().contains("unterminated"), "{err}");
    }

    #[test]
    fn list_items_carry_their_index_in_errors() {
        let err = parse("routes:\n  - id: a\n  - id: ${MISSING}\n", &no_env).unwrap_err();
        assert!(err.to_string().starts_with("routes[1].id: "), "{err}");
    }

    #[test]
    fn every_problem_of_the_tree_is_reported_and_the_rest_kept() {
        let tree = read(
            "a: ${UNSET_A}\nb..c: 1\nd: !tag 1\ne: 5\nf: ['${UNSET_F}', x]\n",
            &no_env,
        )
        .unwrap();
        let keys: Vec<&str> = tree.errors.iter().map(|e| e.key.as_str()).collect();
        assert_eq!(keys, ["a", "b..c", "d", "f[0]"]);
        assert_eq!(tree.lost, keys);
        assert_eq!(at(&tree.root, &["e"]), &scalar("5"));
        assert_eq!(
            at(&tree.root, &["f"]),
            &Node::List(vec![Node::Null, scalar("x")])
        );
    }

    #[test]
    fn empty_document_is_null() {
        assert_eq!(tree(""), Node::Null);
        assert_eq!(tree("# only comments\n"), Node::Null);
    }
}
