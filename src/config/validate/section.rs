//! The key reader: [`Section`], a map of the tree with its key path, and the field readers
//! (text, booleans, numbers, durations, URLs, IP addresses, lists) that convert a value and
//! name its key in any error.
//!
//! A reader returns its problem; the section's builder reports it with [`Section::take`]
//! and goes on with the next key, so that one run finds every problem of the file.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use super::number::{IntRule, PORT};
use super::suggest::{suggest, unknown_key};
use super::{all, is_at, ConfigError, Errors, Result};
use crate::config::raw::{child_path, Node};
use crate::config::HttpUrl;

/// A map in the tree with its key path; optionally strict about which keys it may hold.
pub(super) struct Section<'a> {
    pub(super) path: String,
    pub(super) entries: &'a [(String, Node)],
    /// The keys a strict section may hold; `None` for one that may hold others too.
    known: Option<&'static [&'static str]>,
    errors: &'a Errors,
}

impl<'a> Section<'a> {
    /// The whole file, which may hold keys we do not read (other Spring parts).
    pub(super) fn root(node: &'a Node, errors: &'a Errors) -> Section<'a> {
        open(Some(node), "", None, errors).unwrap_or_else(|| empty(String::new(), errors))
    }

    /// The map `node` at `path`, strict about its keys when `known` is given: each unknown
    /// key is reported and the known ones are still read. `None`, reported, when it is not
    /// a map: nothing below it can be read.
    pub(super) fn map_at(
        &self,
        node: Option<&'a Node>,
        path: &str,
        known: Option<&'static [&'static str]>,
    ) -> Option<Section<'a>> {
        open(node, path, known, self.errors)
    }

    /// The strict section under `key`, or `None` when it is not a map (reported).
    pub(super) fn entry(&self, key: &str, known: &'static [&'static str]) -> Option<Section<'a>> {
        self.map_at(self.node(key), &self.key(key), Some(known))
    }

    /// The strict section under `key`; one that is not a map is reported and read as empty,
    /// so that the rest of the file is still checked.
    pub(super) fn section(&self, key: &str, known: &'static [&'static str]) -> Section<'a> {
        self.entry(key, known).unwrap_or_else(|| self.empty(key))
    }

    /// [`Section::section`] for a section that may hold keys we do not read (they belong to
    /// other Spring parts).
    pub(super) fn open_section(&self, key: &str) -> Section<'a> {
        self.map_at(self.node(key), &self.key(key), None)
            .unwrap_or_else(|| self.empty(key))
    }

    fn empty(&self, key: &str) -> Section<'a> {
        empty(self.key(key), self.errors)
    }

    /// Reports a problem; reading goes on.
    pub(super) fn report(&self, e: ConfigError) {
        self.errors.add(e);
    }

    /// The value read, or (its problem reported) a stand-in: with a problem reported the
    /// file is refused, so the stand-in is never used.
    pub(super) fn take<T: Default>(&self, read: Result<T>) -> T {
        self.ok(read).unwrap_or_default()
    }

    /// The value read, or `None` with its problem reported.
    pub(super) fn ok<T>(&self, read: Result<T>) -> Option<T> {
        read.map_err(|e| self.report(e)).ok()
    }

    /// Whether a problem was reported for this section itself or at one of `keys` in it: a
    /// rule combining those keys would then judge values that were never read.
    pub(super) fn failed(&self, keys: &[&str]) -> bool {
        let keys: Vec<String> = keys.iter().map(|k| self.key(k)).collect();
        self.errors
            .any(|e| e.key == self.path || keys.iter().any(|k| is_at(&e.key, k)))
    }

    /// Reports `key: message` for a key that must be given, unless its value was refused or
    /// an unknown key here is a likely typo of it (both already reported).
    pub(super) fn missing(&self, key: &str, message: &str) {
        if !self.failed(&[key]) && !self.misspelt(key) {
            self.report(ConfigError::invalid(&self.key(key), message));
        }
    }

    /// Whether an unknown key here suggests `key`.
    pub(super) fn misspelt(&self, key: &str) -> bool {
        let Some(known) = self.known else {
            return false;
        };
        self.entries
            .iter()
            .any(|(k, _)| !known.contains(&k.as_str()) && suggest(k, known) == Some(key))
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

    /// One of the named `choices` (matched without regard to case); `None` when absent. A
    /// value not among them is refused with the names.
    pub(super) fn choice<T: Copy>(&self, key: &str, choices: &[(&str, T)]) -> Result<Option<T>> {
        let Some(value) = self.text(key)? else {
            return Ok(None);
        };
        if let Some((_, v)) = choices.iter().find(|(n, _)| n.eq_ignore_ascii_case(&value)) {
            return Ok(Some(*v));
        }
        let names: Vec<&str> = choices.iter().map(|(n, _)| *n).collect();
        let (last, rest) = names.split_last().expect("choices are given");
        Err(ConfigError::invalid(
            &self.key(key),
            format!("expected {} or {last}, got {value:?}", rest.join(", ")),
        ))
    }

    /// The text under `key`, or `None` with the problem reported (see [`Section::missing`]).
    pub(super) fn required_text(&self, key: &str) -> Option<String> {
        let text = self.ok(self.text(key))?;
        if text.is_none() {
            self.missing(key, "required");
        }
        text
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

    pub(super) fn ip(&self, key: &str) -> Result<Option<IpAddr>> {
        self.text(key)?
            .map(|v| parse_ip(&v, &self.key(key)))
            .transpose()
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

    /// Every URL of a [`Section::list`]; each bad one is a problem of its own.
    pub(super) fn url_list(&self, key: &str) -> Result<Vec<HttpUrl>> {
        all(self.list(key)?.iter().map(|(path, v)| parse_url(v, path)))
    }
}

/// What a section that is not a map is read as.
fn empty(path: String, errors: &Errors) -> Section<'_> {
    Section {
        path,
        entries: &[],
        known: None,
        errors,
    }
}

/// A map node at `path` as a section (see [`Section::map_at`]).
fn open<'a>(
    node: Option<&'a Node>,
    path: &str,
    known: Option<&'static [&'static str]>,
    errors: &'a Errors,
) -> Option<Section<'a>> {
    let entries: &[(String, Node)] = match node {
        None | Some(Node::Null) => &[],
        Some(Node::Map(entries)) => entries,
        Some(other) => {
            errors.add(expected(path, "a map of keys", other));
            return None;
        }
    };
    if let Some(known) = known {
        for (key, _) in entries {
            if !known.contains(&key.as_str()) {
                errors.add(unknown_key(path, key, known));
            }
        }
    }
    Some(Section {
        path: path.to_string(),
        entries,
        known,
        errors,
    })
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
