//! `spring.cloud.gateway.routes`: the route entries (id, upstream URI, order) and their
//! predicates, compiled here into the patterns the router matches with.

use std::collections::HashSet;

use super::definition::{definitions, Definition, Names};
use super::filters::{filter, FILTERS};
use super::section::{expected, parse_url, Section};
use super::{all, ConfigError, Result};
use crate::config::raw::{child_path, Node};
use crate::http::is_tchar;
use crate::route::{HostPattern, PathPattern, Predicate, RouteConfig};

const ROUTE_KEYS: &[&str] = &["id", "uri", "order", "predicates", "filters"];

pub(super) const PREDICATES: Names = Names {
    what: "predicate",
    known: &["Path", "Host", "Method"],
};

pub(super) fn routes(gateway: &Section) -> Vec<RouteConfig> {
    let path = gateway.key("routes");
    let items = match gateway.node("routes") {
        None => return Vec::new(),
        Some(Node::List(items)) => items,
        Some(other) => {
            gateway.report(expected(&path, "a list of routes", other));
            return Vec::new();
        }
    };
    let mut seen = HashSet::new();
    let mut routes = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let route_path = format!("{path}[{i}]");
        let Some(s) = gateway.map_at(Some(item), &route_path, Some(ROUTE_KEYS)) else {
            continue;
        };
        // Read apart from the route, so that a route refused for another reason still
        // claims its id.
        if let Ok(Some(id)) = s.text("id") {
            if !seen.insert(id.clone()) {
                s.report(ConfigError::invalid(
                    &child_path(&route_path, "id"),
                    format!("route id {id:?} is used twice"),
                ));
            }
        }
        routes.extend(route(&s));
    }
    routes
}

/// The route, or `None` when it lacks an id or a usable URI; every problem is reported.
fn route(s: &Section) -> Option<RouteConfig> {
    let id = s.required_text("id");
    let uri = s
        .required_text("uri")
        .and_then(|uri| s.ok(parse_url(&uri, &s.key("uri"))));
    let order = s.take(order(s));
    let predicates = definitions(s, "predicates", &PREDICATES, predicate);
    let filters = definitions(s, "filters", &FILTERS, filter);
    Some(RouteConfig {
        id: id?,
        uri: uri?,
        order,
        predicates,
        filters,
    })
}

fn order(s: &Section) -> Result<i32> {
    match s.text("order")? {
        None => Ok(0),
        Some(v) => v.parse().map_err(|_| {
            ConfigError::invalid(&s.key("order"), format!("expected an integer, got {v:?}"))
        }),
    }
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

/// Converts every `(key path, value)` with `parse`; each error names its item's key path.
fn each<T>(values: Vec<(String, String)>, parse: fn(&str) -> Result<T, String>) -> Result<Vec<T>> {
    all(values
        .into_iter()
        .map(|(path, v)| parse(&v).map_err(|why| ConfigError::invalid(&path, why))))
}

fn method(m: &str) -> Result<String, String> {
    if m.bytes().all(is_tchar) {
        Ok(m.to_ascii_uppercase())
    } else {
        Err(format!("{m:?} is not a method name"))
    }
}
