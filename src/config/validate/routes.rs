//! `spring.cloud.gateway.routes`: the route entries (id, upstream URI, order) and their
//! predicates, compiled here into the patterns the router matches with.

use std::collections::HashSet;

use super::definition::{definitions, Definition, Names};
use super::filters::{filter, FILTERS};
use super::section::{expected, parse_url, Section};
use super::{ConfigError, Result};
use crate::config::raw::{child_path, Node};
use crate::http::is_tchar;
use crate::route::{HostPattern, PathPattern, Predicate, RouteConfig};

const ROUTE_KEYS: &[&str] = &["id", "uri", "order", "predicates", "filters"];

pub(super) const PREDICATES: Names = Names {
    what: "predicate",
    known: &["Path", "Host", "Method"],
};

pub(super) fn routes(gateway: &Section) -> Result<Vec<RouteConfig>> {
    let path = gateway.key("routes");
    let items = match gateway.node("routes") {
        None => return Ok(Vec::new()),
        Some(Node::List(items)) => items,
        Some(other) => return Err(expected(&path, "a list of routes", other)),
    };
    let mut seen = HashSet::new();
    let mut routes = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let route_path = format!("{path}[{i}]");
        let r = route(&Section::strict(Some(item), &route_path, ROUTE_KEYS)?)?;
        if !seen.insert(r.id.clone()) {
            return Err(ConfigError::invalid(
                &child_path(&route_path, "id"),
                format!("route id {:?} is used twice", r.id),
            ));
        }
        routes.push(r);
    }
    Ok(routes)
}

fn route(s: &Section) -> Result<RouteConfig> {
    let uri = s.required_text("uri")?;
    let order = match s.text("order")? {
        None => 0,
        Some(v) => v.parse::<i32>().map_err(|_| {
            ConfigError::invalid(&s.key("order"), format!("expected an integer, got {v:?}"))
        })?,
    };
    Ok(RouteConfig {
        id: s.required_text("id")?,
        uri: parse_url(&uri, &s.key("uri"))?,
        order,
        predicates: definitions(s, "predicates", &PREDICATES, predicate)?,
        filters: definitions(s, "filters", &FILTERS, filter)?,
    })
}

/// Builds a predicate, its patterns compiled; `definitions` has already checked the name
/// against [`PREDICATES`].
fn predicate(d: &Definition) -> Result<Predicate> {
    let key = match d.name.as_str() {
        "Path" | "Host" => "patterns",
        _ => "methods",
    };
    let values = d.list_arg(key)?;
    if values.is_empty() {
        return Err(ConfigError::invalid(
            &d.path,
            format!("{} needs at least one {}", d.name, &key[..key.len() - 1]),
        ));
    }
    Ok(match d.name.as_str() {
        "Path" => Predicate::Path(each(values, PathPattern::parse)?),
        "Host" => Predicate::Host(each(values, HostPattern::parse)?),
        _ => Predicate::Method(each(values, method)?),
    })
}

/// Converts every `(key path, value)` with `parse`; an error names the item's key path.
fn each<T>(values: Vec<(String, String)>, parse: fn(&str) -> Result<T, String>) -> Result<Vec<T>> {
    values
        .into_iter()
        .map(|(path, v)| parse(&v).map_err(|why| ConfigError::invalid(&path, why)))
        .collect()
}

fn method(m: &str) -> Result<String, String> {
    if m.bytes().all(is_tchar) {
        Ok(m.to_ascii_uppercase())
    } else {
        Err(format!("{m:?} is not a method name"))
    }
}
