//! Routes: the compiled form of `spring.cloud.gateway.routes`, and the router that picks the
//! route for a request and rewrites its target for the upstream.
//!
//! The types here are plain values, independent of the configuration reader: loading the
//! configuration compiles every pattern once ([`PathPattern::parse`], [`HostPattern::parse`],
//! in `pattern`) into a [`RouteConfig`] and refuses a bad one with its key named;
//! [`Router::new`] then only orders the compiled routes and cannot fail. Patterns are
//! segment lists, so [`Router::find`] and [`Route::rewrite_target`] never allocate; they run
//! for every request.
//!
//! Routes follow Spring Cloud Gateway: they are tried in ascending `order` (file order among
//! equals) and the first whose predicates all match wins. `StripPrefix` and `PrefixPath`
//! are folded into one rewrite step per route.

mod pattern;

use crate::url::HttpUrl;
use pattern::host_without_port;
pub use pattern::{HostPattern, PathPattern};

/// One entry of `spring.cloud.gateway.routes` as loaded: checked, its patterns compiled.
#[derive(Debug, Clone)]
pub struct RouteConfig {
    pub id: String,
    pub uri: HttpUrl,
    pub order: i32,
    pub predicates: Vec<Predicate>,
    pub filters: Vec<Filter>,
}

/// One predicate of a route; a route matches when all of them do, a predicate when any of
/// its patterns (or methods) does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Predicate {
    /// `Path=/a/**,/b/*`: Spring path patterns.
    Path(Vec<PathPattern>),
    /// `Host=**.example.com,api.example.org`: Spring host patterns (`*`, `**`).
    Host(Vec<HostPattern>),
    /// `Method=GET,POST`: upper-case method names.
    Method(Vec<String>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Filter {
    /// Remove this many leading path segments.
    StripPrefix(usize),
    /// Prepend this path (starts with `/`, no trailing `/`).
    PrefixPath(String),
    AddRequestHeader(String, String),
    SetRequestHeader(String, String),
    RemoveRequestHeader(String),
    /// Marks the OIDC back-channel logout endpoint: the gateway answers it itself.
    BackchannelLogout,
}

/// The routing table, immutable once built.
#[derive(Debug, Clone, Default)]
pub struct Router {
    routes: Vec<Route>,
}

/// One compiled route.
#[derive(Debug, Clone)]
pub struct Route {
    pub id: String,
    /// Where matching requests go; only scheme, host and port are used (Spring ignores
    /// the path of a route's `uri`, so do we).
    pub upstream: HttpUrl,
    pub order: i32,
    /// All filters in configuration order, path filters included.
    pub filters: Vec<Filter>,
    /// The route carries the `BackchannelLogout` filter: the gateway answers it itself.
    pub backchannel_logout: bool,
    predicates: Vec<Predicate>,
    rewrite: Rewrite,
}

/// The path filters folded into one step: drop `strip` leading segments of the request
/// path, then put `prefix` in front.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Rewrite {
    strip: usize,
    prefix: Vec<u8>,
}

impl Router {
    /// The table of `routes`, sorted by `order` (stable, so file order breaks ties). Their
    /// patterns were compiled when the configuration was loaded, so this cannot fail.
    pub fn new(routes: &[RouteConfig]) -> Router {
        let mut routes: Vec<Route> = routes.iter().map(Route::new).collect();
        routes.sort_by_key(|r| r.order);
        Router { routes }
    }

    /// The first route matching the request. `path` is the request-target's path without
    /// the query; `host` the Host header value (or the authority of an absolute-form target).
    pub fn find(&self, method: &[u8], host: Option<&[u8]>, path: &[u8]) -> Option<&Route> {
        let host = host.map(host_without_port);
        self.routes.iter().find(|r| r.matches(method, host, path))
    }

    /// All routes in match order.
    pub fn routes(&self) -> &[Route] {
        &self.routes
    }
}

impl Route {
    fn new(config: &RouteConfig) -> Route {
        Route {
            id: config.id.clone(),
            upstream: config.uri.clone(),
            order: config.order,
            filters: config.filters.clone(),
            backchannel_logout: config.filters.contains(&Filter::BackchannelLogout),
            predicates: config.predicates.clone(),
            rewrite: Rewrite::fold(&config.filters),
        }
    }

    fn matches(&self, method: &[u8], host: Option<&[u8]>, path: &[u8]) -> bool {
        self.predicates
            .iter()
            .all(|p| p.matches(method, host, path))
    }

    /// The request-header filters (`Add`/`Set`/`RemoveRequestHeader`) in configuration
    /// order; the proxy applies them while it writes the upstream head.
    pub fn header_filters(&self) -> impl Iterator<Item = &Filter> {
        self.filters.iter().filter(|f| {
            matches!(
                f,
                Filter::AddRequestHeader(..)
                    | Filter::SetRequestHeader(..)
                    | Filter::RemoveRequestHeader(_)
            )
        })
    }

    /// False when [`Route::rewrite_target`] would copy the target unchanged, so the proxy
    /// can skip it.
    pub fn rewrites_path(&self) -> bool {
        self.rewrite != Rewrite::default()
    }

    /// Appends the upstream request-target for the client's `target` (origin-form, path
    /// and query) to `out`: `StripPrefix` and `PrefixPath` applied in configuration order,
    /// the query kept as it is. Stripping every segment leaves `/`. A target that is not
    /// origin-form (`*`) is copied unchanged.
    pub fn rewrite_target(&self, target: &[u8], out: &mut Vec<u8>) {
        if !target.starts_with(b"/") {
            out.extend_from_slice(target);
            return;
        }
        let split = memchr::memchr(b'?', target).unwrap_or(target.len());
        let (path, query) = target.split_at(split);
        let rest = strip_segments(path, self.rewrite.strip);
        out.extend_from_slice(&self.rewrite.prefix);
        if rest.is_empty() {
            // Spring keeps the prefix as written when the path is just `/` (`/api` + `/`
            // gives `/api/`); an empty result becomes `/`.
            out.push(b'/');
        } else {
            out.extend_from_slice(rest);
        }
        out.extend_from_slice(query);
    }
}

impl Rewrite {
    /// Folds the path filters, in order, into one strip-then-prefix step: a later
    /// `StripPrefix` first eats segments of an earlier `PrefixPath`.
    fn fold(filters: &[Filter]) -> Rewrite {
        let mut rewrite = Rewrite::default();
        for filter in filters {
            match filter {
                Filter::StripPrefix(n) => rewrite.strip_more(*n),
                Filter::PrefixPath(p) => {
                    let mut prefix = p.trim_end_matches('/').as_bytes().to_vec();
                    prefix.extend_from_slice(&rewrite.prefix);
                    rewrite.prefix = prefix;
                }
                _ => {}
            }
        }
        rewrite
    }

    fn strip_more(&mut self, n: usize) {
        let prefix_segments = self
            .prefix
            .split(|b| *b == b'/')
            .filter(|s| !s.is_empty())
            .count();
        if n <= prefix_segments {
            let rest = strip_segments(&self.prefix, n);
            self.prefix = rest.to_vec();
        } else {
            self.prefix.clear();
            self.strip += n - prefix_segments;
        }
    }
}

/// The path after its first `n` segments, starting with `/`, or empty when nothing is
/// left. Empty segments (`//`) do not count, as in Spring's `StripPrefix`.
fn strip_segments(path: &[u8], n: usize) -> &[u8] {
    if n == 0 {
        return path;
    }
    let mut rest = path;
    for _ in 0..n {
        rest = trim_slashes(rest);
        rest = &rest[memchr::memchr(b'/', rest).unwrap_or(rest.len())..];
    }
    // `rest` is empty or starts with slashes: keep exactly one, unless only slashes are left.
    let slashes = rest.len() - trim_slashes(rest).len();
    if slashes == rest.len() {
        &rest[..0]
    } else {
        &rest[slashes - 1..]
    }
}

fn trim_slashes(s: &[u8]) -> &[u8] {
    &s[s.iter().position(|b| *b != b'/').unwrap_or(s.len())..]
}

impl Predicate {
    fn matches(&self, method: &[u8], host: Option<&[u8]>, path: &[u8]) -> bool {
        match self {
            Predicate::Path(patterns) => patterns.iter().any(|p| p.matches(path)),
            Predicate::Host(patterns) => {
                host.is_some_and(|h| patterns.iter().any(|p| p.matches(h)))
            }
            Predicate::Method(methods) => methods.iter().any(|m| m.as_bytes() == method),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> HttpUrl {
        HttpUrl::parse(s).unwrap()
    }

    fn route(
        id: &str,
        order: i32,
        predicates: Vec<Predicate>,
        filters: Vec<Filter>,
    ) -> RouteConfig {
        RouteConfig {
            id: id.to_string(),
            uri: url("http://127.0.0.1:9000/ignored"),
            order,
            predicates,
            filters,
        }
    }

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    fn path(p: &str) -> Predicate {
        Predicate::Path(vec![PathPattern::parse(p).unwrap()])
    }

    #[test]
    fn routes_are_tried_by_order_then_file_order() {
        let router = Router::new(&[
            route("catch-all", 10, vec![path("/**")], vec![]),
            route("api-first", 0, vec![path("/api/**")], vec![]),
            route("api-second", 0, vec![path("/api/**")], vec![]),
            route("early", -1, vec![path("/early")], vec![]),
        ]);
        let ids: Vec<&str> = router.routes().iter().map(|r| r.id.as_str()).collect();
        assert_eq!(ids, ["early", "api-first", "api-second", "catch-all"]);
        assert_eq!(
            router.find(b"GET", None, b"/api/x").unwrap().id,
            "api-first"
        );
        assert_eq!(
            router.find(b"GET", None, b"/other").unwrap().id,
            "catch-all"
        );
    }

    #[test]
    fn all_predicates_must_match() {
        let router = Router::new(&[
            route(
                "posts",
                0,
                vec![
                    path("/p/**"),
                    Predicate::Method(strings(&["POST", "PUT"])),
                    Predicate::Host(vec![HostPattern::parse("**.example.com").unwrap()]),
                ],
                vec![],
            ),
            route("no-predicates", 1, vec![], vec![]),
        ]);
        let find = |m: &str, h: Option<&str>, p: &str| {
            router
                .find(m.as_bytes(), h.map(str::as_bytes), p.as_bytes())
                .map(|r| r.id.as_str())
        };
        assert_eq!(
            find("POST", Some("www.example.com:443"), "/p/1"),
            Some("posts")
        );
        assert_eq!(
            find("GET", Some("www.example.com"), "/p/1"),
            Some("no-predicates")
        );
        assert_eq!(
            find("post", Some("www.example.com"), "/p/1"),
            Some("no-predicates")
        );
        assert_eq!(find("POST", None, "/p/1"), Some("no-predicates"));
        assert_eq!(
            find("POST", Some("evil.com"), "/p/1"),
            Some("no-predicates")
        );
        let empty = Router::new(&[]);
        assert!(empty.find(b"GET", None, b"/").is_none());
    }

    fn rewrite(filters: Vec<Filter>, target: &str) -> String {
        let router = Router::new(&[route("r", 0, vec![], filters)]);
        let mut out = b"GET ".to_vec();
        router.routes()[0].rewrite_target(target.as_bytes(), &mut out);
        String::from_utf8(out)
            .unwrap()
            .strip_prefix("GET ")
            .unwrap()
            .to_string()
    }

    #[test]
    fn rewrite_target_cases() {
        use Filter::{PrefixPath, StripPrefix};
        let cases: Vec<(Vec<Filter>, &str, &str)> = vec![
            (vec![], "/a/b?x=1", "/a/b?x=1"),
            (vec![StripPrefix(1)], "/api/x/y?q", "/x/y?q"),
            (vec![StripPrefix(1)], "/api", "/"),
            (vec![StripPrefix(1)], "/api/", "/"),
            (vec![StripPrefix(1)], "/api?q=1", "/?q=1"),
            (vec![StripPrefix(1)], "/api/x/", "/x/"),
            (vec![StripPrefix(2)], "/a/b/c", "/c"),
            (vec![StripPrefix(5)], "/a/b/c", "/"),
            (vec![StripPrefix(1)], "//a//b", "/b"),
            (vec![PrefixPath("/v1".into())], "/x?q", "/v1/x?q"),
            (vec![PrefixPath("/v1".into())], "/", "/v1/"),
            (
                vec![StripPrefix(1), PrefixPath("/v1".into())],
                "/api/x",
                "/v1/x",
            ),
            (
                vec![StripPrefix(1), PrefixPath("/v1".into())],
                "/api",
                "/v1/",
            ),
            (
                vec![PrefixPath("/v1/v2".into()), StripPrefix(1)],
                "/api/x",
                "/v2/api/x",
            ),
            (
                vec![PrefixPath("/v1".into()), StripPrefix(2)],
                "/api/x",
                "/x",
            ),
            (
                vec![PrefixPath("/a".into()), PrefixPath("/b".into())],
                "/x",
                "/b/a/x",
            ),
            (vec![StripPrefix(1)], "*", "*"),
        ];
        for (filters, target, expected) in cases {
            assert_eq!(
                rewrite(filters.clone(), target),
                expected,
                "{filters:?} {target}"
            );
        }
    }

    #[test]
    fn route_exposes_filters_and_backchannel_flag() {
        let router = Router::new(&[route(
            "bc",
            0,
            vec![path("/backchannel/logout")],
            vec![
                Filter::BackchannelLogout,
                Filter::AddRequestHeader("X-A".into(), "1".into()),
                Filter::StripPrefix(1),
                Filter::RemoveRequestHeader("X-B".into()),
            ],
        )]);
        let found = router.find(b"POST", None, b"/backchannel/logout").unwrap();
        assert!(found.backchannel_logout);
        assert!(found.rewrites_path());
        assert_eq!(found.header_filters().count(), 2);
        assert_eq!(found.upstream.host, "127.0.0.1");
        let plain = Router::new(&[route("p", 0, vec![], vec![])]);
        assert!(!plain.routes()[0].rewrites_path());
        assert!(!plain.routes()[0].backchannel_logout);
    }
}
