//! The router: picks the route for a request and rewrites its target for the upstream.
//!
//! Routes follow Spring Cloud Gateway: they are tried in ascending `order` (file order among
//! equals) and the first whose predicates all match wins. Patterns are compiled once, when
//! the router is built, into segment lists, so [`Router::find`] and [`Route::rewrite_target`]
//! never allocate; they run for every request.
//!
//! Path patterns have Spring's `PathPattern` semantics:
//! - `/**` matches every path, `/foo/**` matches `/foo`, `/foo/` and `/foo/x/y`
//!   (`**` and `{*name}` only as the last segment, as in Spring);
//! - `*` matches within one segment (`/a/*.js`), `?` one character, `{name}` one whole,
//!   non-empty segment; regular expressions in variables (`{name:[a-z]+}`) are refused;
//! - literal segments are case-sensitive and compared with the percent-decoded request
//!   segment, with `;parameters` ignored, as Spring does;
//! - a pattern without a trailing `/` also matches the path with one (`/foo` matches `/foo/`),
//!   Spring Cloud Gateway's default `matchTrailingSlash: true`.
//!
//! Host patterns use `.` as separator: `*` is one label, `**` any number of labels (zero
//! included, so `**.example.com` matches `example.com`), `{name}` one label. Matching is
//! case-insensitive and ignores a `:port` suffix and a trailing dot.
//!
//! Dot segments (`/a/../b`) are not resolved: as in Spring, segments are compared as sent.
//! A backend that resolves them may see another path than the one routed on, which matters
//! only when routes separate backends of different trust; refusing such targets belongs
//! to the request parser.

use crate::config::{Filter, HttpUrl, Predicate, RouteConfig};

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
    predicates: Vec<Matcher>,
    rewrite: Rewrite,
}

/// One predicate; a route matches when all of them do, a predicate when any pattern does.
#[derive(Debug, Clone)]
enum Matcher {
    Path(Box<[PathPattern]>),
    Host(Box<[HostPattern]>),
    Method(Box<[Box<[u8]>]>),
}

/// The path filters folded into one step: drop `strip` leading segments of the request
/// path, then put `prefix` in front.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Rewrite {
    strip: usize,
    prefix: Vec<u8>,
}

impl Router {
    /// Compiles `routes`, sorted by `order` (stable, so file order breaks ties).
    ///
    /// # Panics
    /// When a pattern is invalid; configuration loading refuses those, so this only
    /// happens for hand-built `RouteConfig`s.
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
        let predicates = config
            .predicates
            .iter()
            .map(|p| Matcher::new(p, &config.id))
            .collect();
        Route {
            id: config.id.clone(),
            upstream: config.uri.clone(),
            order: config.order,
            filters: config.filters.clone(),
            backchannel_logout: config.filters.contains(&Filter::BackchannelLogout),
            predicates,
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

impl Matcher {
    fn new(predicate: &Predicate, route: &str) -> Matcher {
        match predicate {
            Predicate::Path(patterns) => {
                Matcher::Path(compile(patterns, PathPattern::parse, route))
            }
            Predicate::Host(patterns) => {
                Matcher::Host(compile(patterns, HostPattern::parse, route))
            }
            Predicate::Method(methods) => {
                Matcher::Method(methods.iter().map(|m| m.as_bytes().into()).collect())
            }
        }
    }

    fn matches(&self, method: &[u8], host: Option<&[u8]>, path: &[u8]) -> bool {
        match self {
            Matcher::Path(patterns) => patterns.iter().any(|p| p.matches(path)),
            Matcher::Host(patterns) => host.is_some_and(|h| patterns.iter().any(|p| p.matches(h))),
            Matcher::Method(methods) => methods.iter().any(|m| **m == *method),
        }
    }
}

fn compile<T>(patterns: &[String], parse: fn(&str) -> Result<T, String>, route: &str) -> Box<[T]> {
    patterns
        .iter()
        .map(|p| {
            parse(p).unwrap_or_else(|e| {
                panic!("route {route}: invalid pattern {p:?}: {e} (configuration loading refuses these)")
            })
        })
        .collect()
}

/// `host` without a `:port` suffix and without a trailing dot; IPv6 literals keep their
/// brackets.
fn host_without_port(host: &[u8]) -> &[u8] {
    let end = if host.starts_with(b"[") {
        memchr::memchr(b']', host).map_or(host.len(), |i| i + 1)
    } else {
        memchr::memchr(b':', host).unwrap_or(host.len())
    };
    let host = &host[..end];
    host.strip_suffix(b".").unwrap_or(host)
}

/// A compiled Spring path pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PathPattern {
    segments: Box<[Segment]>,
    /// Ends with `**` or `{*name}`: any rest, including none.
    rest: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(Box<[u8]>),
    /// `*`: any segment; empty only as the last one (Spring's `WildcardPathElement`).
    Star,
    /// `{name}`: any non-empty segment.
    Variable,
    /// A segment mixing literal characters with `*`, `?` or `{name}`.
    Glob(Box<[Token]>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Token {
    Byte(u8),
    /// `?`
    One,
    /// `*` or an embedded `{name}`
    Any,
}

impl PathPattern {
    /// Compiles `pattern`; the error says what is wrong with it.
    pub(crate) fn parse(pattern: &str) -> Result<PathPattern, String> {
        let body = pattern
            .strip_prefix('/')
            .ok_or_else(|| "a path pattern must start with `/`".to_string())?;
        if let Some(c) = pattern
            .chars()
            .find(|c| c.is_ascii_control() || matches!(c, ' ' | '%' | '#' | ';'))
        {
            return Err(format!(
                "{c:?} is not allowed in a path pattern (patterns match the decoded path without query or ;parameters)"
            ));
        }
        let parts: Vec<&str> = body.split('/').collect();
        let mut segments = Vec::with_capacity(parts.len());
        let mut rest = false;
        for (i, part) in parts.iter().enumerate() {
            if *part == "**" || is_capture_rest(part) {
                if i + 1 != parts.len() {
                    return Err(format!("`{part}` is only allowed as the last segment"));
                }
                rest = true;
            } else {
                segments.push(Segment::parse(part)?);
            }
        }
        Ok(PathPattern {
            segments: segments.into(),
            rest,
        })
    }

    /// Whether `path` (starting with `/`, no query) matches.
    pub(crate) fn matches(&self, path: &[u8]) -> bool {
        if self.segments.is_empty() && self.rest {
            return true;
        }
        let Some(body) = path.strip_prefix(b"/") else {
            return false;
        };
        let mut parts = body.split(|b| *b == b'/');
        let last = self.segments.len().saturating_sub(1);
        for (i, segment) in self.segments.iter().enumerate() {
            match parts.next() {
                Some(part) if segment.matches(match_value(part), i == last) => {}
                _ => return false,
            }
        }
        if self.rest {
            return true;
        }
        match (parts.next(), parts.next()) {
            (None, _) => true,
            // matchTrailingSlash: `/foo` also matches `/foo/`.
            (Some(b""), None) => {
                !matches!(self.segments.last(), Some(Segment::Literal(l)) if l.is_empty())
            }
            _ => false,
        }
    }
}

fn is_capture_rest(part: &str) -> bool {
    part.len() > 3 && part.starts_with("{*") && part.ends_with('}')
}

/// What a request segment is compared as: without `;parameters` (still percent-encoded).
fn match_value(segment: &[u8]) -> &[u8] {
    &segment[..memchr::memchr(b';', segment).unwrap_or(segment.len())]
}

impl Segment {
    fn parse(part: &str) -> Result<Segment, String> {
        if part.contains("**") {
            return Err(format!("`**` must be a whole segment, got `{part}`"));
        }
        if part == "*" {
            return Ok(Segment::Star);
        }
        let tokens = glob_tokens(part)?;
        Ok(match tokens.as_slice() {
            [Token::Any] => Segment::Variable,
            t if t.iter().all(|t| matches!(t, Token::Byte(_))) => {
                Segment::Literal(part.as_bytes().into())
            }
            _ => Segment::Glob(tokens.into()),
        })
    }

    fn matches(&self, value: &[u8], is_last: bool) -> bool {
        match self {
            Segment::Literal(literal) => decoded_eq(value, literal),
            Segment::Star => is_last || !value.is_empty(),
            Segment::Variable => !value.is_empty(),
            Segment::Glob(tokens) => glob_match(tokens, value, true),
        }
    }
}

/// Splits a segment or label into tokens; `{name}` becomes `Any`.
fn glob_tokens(part: &str) -> Result<Vec<Token>, String> {
    let mut tokens = Vec::with_capacity(part.len());
    let mut rest = part;
    while let Some(c) = rest.chars().next() {
        match c {
            '*' => tokens.push(Token::Any),
            '?' => tokens.push(Token::One),
            '{' => {
                let end = rest
                    .find('}')
                    .ok_or_else(|| format!("unclosed `{{` in `{part}`"))?;
                let name = &rest[1..end];
                if name.contains(':') {
                    return Err(format!(
                        "regular expressions in `{{{name}}}` are not supported"
                    ));
                }
                if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                    return Err(format!("`{{{name}}}` is not a valid variable name"));
                }
                tokens.push(Token::Any);
                rest = &rest[end + 1..];
                continue;
            }
            '}' => return Err(format!("unmatched `}}` in `{part}`")),
            _ => tokens.extend(c.to_string().bytes().map(Token::Byte)),
        }
        rest = &rest[c.len_utf8()..];
    }
    Ok(tokens)
}

/// One character of `text` at `i`: a valid `%XX` escape is decoded when `decode` is set.
/// Returns the byte and the index after it.
fn byte_at(text: &[u8], i: usize, decode: bool) -> (u8, usize) {
    if decode && text[i] == b'%' && i + 2 < text.len() {
        if let (Some(hi), Some(lo)) = (hex(text[i + 1]), hex(text[i + 2])) {
            return (hi << 4 | lo, i + 3);
        }
    }
    (text[i], i + 1)
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// `raw` percent-decoded equals `literal`.
fn decoded_eq(raw: &[u8], literal: &[u8]) -> bool {
    if raw == literal {
        return true;
    }
    let (mut i, mut j) = (0, 0);
    while i < raw.len() {
        let (b, next) = byte_at(raw, i, true);
        if literal.get(j) != Some(&b) {
            return false;
        }
        i = next;
        j += 1;
    }
    j == literal.len()
}

/// Glob match of `text` against `tokens` with one backtrack point per `*`, linear for the
/// patterns a configuration holds. `path` selects percent-decoding (paths) or ASCII case
/// folding (host labels).
fn glob_match(tokens: &[Token], text: &[u8], path: bool) -> bool {
    let same = |a: u8, b: u8| {
        if path {
            a == b
        } else {
            a.eq_ignore_ascii_case(&b)
        }
    };
    let (mut p, mut t) = (0, 0);
    let mut backtrack: Option<(usize, usize)> = None;
    while t < text.len() {
        let (c, next) = byte_at(text, t, path);
        match tokens.get(p) {
            Some(Token::Any) => {
                backtrack = Some((p + 1, t));
                p += 1;
                continue;
            }
            Some(Token::One) => {
                p += 1;
                t = next;
                continue;
            }
            Some(Token::Byte(b)) if same(*b, c) => {
                p += 1;
                t = next;
                continue;
            }
            _ => {}
        }
        match backtrack {
            Some((after_star, from)) => {
                let (_, skip) = byte_at(text, from, path);
                backtrack = Some((after_star, skip));
                p = after_star;
                t = skip;
            }
            None => return false,
        }
    }
    tokens[p..].iter().all(|t| *t == Token::Any)
}

/// A compiled Spring host pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HostPattern {
    labels: Box<[Label]>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Label {
    /// Lower-case literal.
    Literal(Box<[u8]>),
    /// `*` or `{name}`: exactly one label.
    One,
    /// `**`: any number of labels, zero included.
    Many,
    Glob(Box<[Token]>),
}

/// Longest host name DNS allows; longer Host values match no host pattern, which also
/// bounds the backtracking below.
const MAX_HOST_LEN: usize = 253;

impl HostPattern {
    pub(crate) fn parse(pattern: &str) -> Result<HostPattern, String> {
        if pattern.contains(':') {
            return Err("a host pattern matches without the port; leave `:port` out".to_string());
        }
        let pattern = pattern.to_ascii_lowercase();
        let labels = pattern
            .split('.')
            .map(Label::parse)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(HostPattern {
            labels: labels.into(),
        })
    }

    /// `host` without port (see `host_without_port`).
    pub(crate) fn matches(&self, host: &[u8]) -> bool {
        host.len() <= MAX_HOST_LEN && labels_match(&self.labels, Some(host))
    }
}

impl Label {
    fn parse(label: &str) -> Result<Label, String> {
        if label.is_empty() {
            return Err("empty label in host pattern".to_string());
        }
        if let Some(c) = label.chars().find(|c| {
            !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '*' | '?' | '{' | '}'))
        }) {
            return Err(format!("{c:?} is not allowed in a host pattern"));
        }
        Ok(match label {
            "**" => Label::Many,
            "*" => Label::One,
            _ if label.contains("**") => {
                return Err(format!("`**` must be a whole label, got `{label}`"))
            }
            _ => match glob_tokens(label)?.as_slice() {
                [Token::Any] => Label::One,
                t if t.iter().all(|t| matches!(t, Token::Byte(_))) => {
                    Label::Literal(label.as_bytes().into())
                }
                t => Label::Glob(t.into()),
            },
        })
    }

    fn matches(&self, label: &[u8]) -> bool {
        match self {
            Label::Literal(l) => label.eq_ignore_ascii_case(l),
            Label::One => !label.is_empty(),
            Label::Many => true,
            Label::Glob(tokens) => glob_match(tokens, label, false),
        }
    }
}

/// Whether the remaining labels of a host (`None`: no label left) match `patterns`.
fn labels_match(patterns: &[Label], host: Option<&[u8]>) -> bool {
    match patterns.split_first() {
        None => host.is_none(),
        Some((Label::Many, rest)) => {
            labels_match(rest, host)
                || host.is_some_and(|h| labels_match(patterns, next_label(h).1))
        }
        Some((pattern, rest)) => host.is_some_and(|h| {
            let (label, tail) = next_label(h);
            pattern.matches(label) && labels_match(rest, tail)
        }),
    }
}

fn next_label(host: &[u8]) -> (&[u8], Option<&[u8]>) {
    match memchr::memchr(b'.', host) {
        Some(i) => (&host[..i], Some(&host[i + 1..])),
        None => (host, None),
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
        Predicate::Path(strings(&[p]))
    }

    #[test]
    fn path_patterns() {
        let table: &[(&str, &str, bool)] = &[
            ("/**", "/", true),
            ("/**", "/a/b/c", true),
            ("/foo/**", "/foo", true),
            ("/foo/**", "/foo/", true),
            ("/foo/**", "/foo/x/y", true),
            ("/foo/**", "/foobar", false),
            ("/foo/**", "/fo", false),
            ("/foo/{*rest}", "/foo/x/y", true),
            ("/foo", "/foo", true),
            ("/foo", "/foo/", true),
            ("/foo", "/foo/x", false),
            ("/foo", "/Foo", false),
            ("/foo/", "/foo/", true),
            ("/foo/", "/foo", false),
            ("/", "/", true),
            ("/", "/a", false),
            ("/a/*.js", "/a/app.js", true),
            ("/a/*.js", "/a/.js", true),
            ("/a/*.js", "/a/app.css", false),
            ("/a/*.js", "/a/b/app.js", false),
            ("/a/*", "/a/x", true),
            ("/a/*", "/a/", true),
            ("/a/*", "/a", false),
            ("/a/*/c", "/a//c", false),
            ("/a/*/c", "/a/b/c", true),
            ("/a/{id}", "/a/42", true),
            ("/a/{id}", "/a/", false),
            ("/a/{id}/c", "/a/42/c", true),
            ("/a/{id}.json", "/a/42.json", true),
            ("/t?st", "/test", true),
            ("/t?st", "/tst", false),
            ("/t?st", "/toast", false),
            ("/backchannel/logout", "/backchannel/logout", true),
            (
                "/backchannel/logout",
                "/backchannel/logout;jsessionid=1",
                true,
            ),
            ("/backchannel/logout", "/backchannel/%6cogout", true),
            ("/backchannel/logout", "/backchannel/logouts", false),
        ];
        for (pattern, request, expected) in table {
            let p = PathPattern::parse(pattern).unwrap();
            assert_eq!(
                p.matches(request.as_bytes()),
                *expected,
                "{pattern} vs {request}"
            );
        }
    }

    #[test]
    fn path_pattern_errors() {
        for bad in [
            "foo",
            "/a/**/b",
            "/a**",
            "/{x:[0-9]+}",
            "/{x",
            "/x}",
            "/a%20",
            "/a;b",
            "/a b",
            "/{}",
        ] {
            assert!(PathPattern::parse(bad).is_err(), "{bad} should be refused");
        }
    }

    #[test]
    fn host_patterns() {
        let table: &[(&str, &str, bool)] = &[
            ("**.example.com", "a.example.com", true),
            ("**.example.com", "a.b.example.com", true),
            ("**.example.com", "example.com", true),
            ("**.example.com", "example.org", false),
            ("*.example.com", "a.example.com", true),
            ("*.example.com", "a.b.example.com", false),
            ("*.example.com", "example.com", false),
            ("{sub}.example.com", "api.example.com", true),
            ("api-*.example.com", "api-eu.example.com", true),
            ("api-*.example.com", "web.example.com", false),
            ("example.com", "EXAMPLE.com", true),
            ("Example.COM", "example.com", true),
            ("example.com", "example.com.", true),
            ("example.com", "example.com:8443", true),
            ("**", "anything.at.all", true),
        ];
        for (pattern, host, expected) in table {
            let p = HostPattern::parse(pattern).unwrap();
            let host = host_without_port(host.as_bytes());
            assert_eq!(p.matches(host), *expected, "{pattern} vs {host:?}");
        }
        for bad in ["example.com:80", "a..b", "a b.com", "a**.com"] {
            assert!(HostPattern::parse(bad).is_err(), "{bad} should be refused");
        }
    }

    #[test]
    fn ipv6_host_keeps_brackets_and_drops_port() {
        assert_eq!(host_without_port(b"[::1]:8080"), b"[::1]");
        assert_eq!(host_without_port(b"a.b:1"), b"a.b");
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
                    Predicate::Host(strings(&["**.example.com"])),
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
