//! The key reader: [`Section`], a map of the tree with its key path, and the field readers
//! (text, booleans, numbers, durations, URLs, IP addresses, lists) that convert a value and
//! name its key in any error.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use super::number::{IntRule, PORT};
use super::suggest::unknown_key;
use super::{ConfigError, Result};
use crate::config::raw::{child_path, Node};
use crate::config::HttpUrl;

/// A map in the tree with its key path; optionally strict about which keys it may hold.
pub(super) struct Section<'a> {
    pub(super) path: String,
    pub(super) entries: &'a [(String, Node)],
}

impl<'a> Section<'a> {
    /// A section whose keys must all be in `known`.
    pub(super) fn strict(
        node: Option<&'a Node>,
        path: &str,
        known: &[&str],
    ) -> Result<Section<'a>> {
        let section = Section::open(node, path)?;
        for (key, _) in section.entries {
            if !known.contains(&key.as_str()) {
                return Err(unknown_key(path, key, known));
            }
        }
        Ok(section)
    }

    /// A section that may hold keys we do not read (they belong to other Spring parts).
    pub(super) fn open(node: Option<&'a Node>, path: &str) -> Result<Section<'a>> {
        let entries: &[(String, Node)] = match node {
            None | Some(Node::Null) => &[],
            Some(Node::Map(entries)) => entries,
            Some(other) => return Err(expected(path, "a map of keys", other)),
        };
        Ok(Section {
            path: path.to_string(),
            entries,
        })
    }

    pub(super) fn section(&self, key: &str, known: &[&str]) -> Result<Section<'a>> {
        Section::strict(self.node(key), &self.key(key), known)
    }

    pub(super) fn open_section(&self, key: &str) -> Result<Section<'a>> {
        Section::open(self.node(key), &self.key(key))
    }

    /// The value under `key`; an empty value counts as absent.
    pub(super) fn node(&self, key: &str) -> Option<&'a Node> {
        self.entries
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v)
            .filter(|v| **v != Node::Null)
    }

    pub(super) fn key(&self, key: &str) -> String {
        child_path(&self.path, key)
    }

    /// A scalar as trimmed text; `None` when absent or empty.
    pub(super) fn text(&self, key: &str) -> Result<Option<String>> {
        self.node(key).map_or(Ok(None), |n| text(n, &self.key(key)))
    }

    pub(super) fn required_text(&self, key: &str) -> Result<String> {
        self.text(key)?
            .ok_or_else(|| ConfigError::invalid(&self.key(key), "required"))
    }

    pub(super) fn bool(&self, key: &str, default: bool) -> Result<bool> {
        let Some(value) = self.text(key)? else {
            return Ok(default);
        };
        match value.to_ascii_lowercase().as_str() {
            "true" | "yes" | "on" => Ok(true),
            "false" | "no" | "off" => Ok(false),
            _ => Err(ConfigError::invalid(
                &self.key(key),
                format!("expected true or false, got {value:?}"),
            )),
        }
    }

    pub(super) fn int(&self, key: &str, rule: IntRule, default: u64) -> Result<u64> {
        Ok(self.opt_int(key, rule)?.unwrap_or(default))
    }

    pub(super) fn opt_int(&self, key: &str, rule: IntRule) -> Result<Option<u64>> {
        self.text(key)?
            .map(|v| rule.check(&v, &self.key(key)))
            .transpose()
    }

    pub(super) fn secs(&self, key: &str, rule: IntRule, default: u64) -> Result<Duration> {
        self.int(key, rule, default).map(Duration::from_secs)
    }

    pub(super) fn millis(&self, key: &str, rule: IntRule, default: u64) -> Result<Duration> {
        self.int(key, rule, default).map(Duration::from_millis)
    }

    pub(super) fn url(&self, key: &str) -> Result<Option<HttpUrl>> {
        self.text(key)?
            .map(|v| parse_url(&v, &self.key(key)))
            .transpose()
    }

    pub(super) fn ip(&self, key: &str, default: IpAddr) -> Result<IpAddr> {
        match self.text(key)? {
            Some(v) => parse_ip(&v, &self.key(key)),
            None => Ok(default),
        }
    }

    pub(super) fn port(&self, key: &str) -> Result<Option<u16>> {
        self.opt_int(key, PORT).map(|p| p.map(|p| p as u16))
    }

    pub(super) fn path(&self, key: &str) -> Result<Option<PathBuf>> {
        Ok(self.text(key)?.map(PathBuf::from))
    }

    /// A YAML list or one comma-separated string, each item with its own key path
    /// (`cg.logoutListeners[1]`). Empty items are dropped.
    pub(super) fn list(&self, key: &str) -> Result<Vec<(String, String)>> {
        let path = self.key(key);
        match self.node(key) {
            None => Ok(Vec::new()),
            Some(Node::Scalar(s)) => Ok(s
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .enumerate()
                .map(|(i, s)| (format!("{path}[{i}]"), s.to_string()))
                .collect()),
            Some(Node::List(items)) => {
                let mut out = Vec::with_capacity(items.len());
                for (i, item) in items.iter().enumerate() {
                    let item_path = format!("{path}[{i}]");
                    if let Some(s) = text(item, &item_path)? {
                        out.push((item_path, s));
                    }
                }
                Ok(out)
            }
            Some(other) => Err(expected(&path, "a list or a comma-separated string", other)),
        }
    }

    pub(super) fn url_list(&self, key: &str) -> Result<Vec<HttpUrl>> {
        self.list(key)?
            .iter()
            .map(|(path, v)| parse_url(v, path))
            .collect()
    }
}

/// A scalar node as trimmed text; `None` when empty.
pub(super) fn text(node: &Node, path: &str) -> Result<Option<String>> {
    match node {
        Node::Null => Ok(None),
        Node::Scalar(s) => {
            let s = s.trim();
            Ok((!s.is_empty()).then(|| s.to_string()))
        }
        other => Err(expected(path, "a single value", other)),
    }
}

pub(super) fn expected(path: &str, what: &str, got: &Node) -> ConfigError {
    ConfigError::invalid(path, format!("expected {what}, got {}", got.describe()))
}

pub(super) fn parse_url(value: &str, path: &str) -> Result<HttpUrl> {
    HttpUrl::parse(value)
        .map_err(|why| ConfigError::invalid(path, format!("invalid URL {value:?}: {why}")))
}

pub(super) fn parse_ip(value: &str, path: &str) -> Result<IpAddr> {
    value
        .parse()
        .map_err(|_| ConfigError::invalid(path, format!("expected an IP address, got {value:?}")))
}
