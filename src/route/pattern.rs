//! Spring's path and host patterns, compiled once and matched without allocating.
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

/// `host` without a `:port` suffix and without a trailing dot; IPv6 literals keep their
/// brackets.
pub(super) fn host_without_port(host: &[u8]) -> &[u8] {
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
pub struct PathPattern {
    /// The pattern as written.
    source: Box<str>,
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
    pub fn parse(pattern: &str) -> Result<PathPattern, String> {
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
            source: pattern.into(),
            segments: segments.into(),
            rest,
        })
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// Whether `path` (starting with `/`, no query) matches.
    pub fn matches(&self, path: &[u8]) -> bool {
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
pub struct HostPattern {
    /// The pattern as written.
    source: Box<str>,
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
    /// Compiles `pattern`; the error says what is wrong with it.
    pub fn parse(pattern: &str) -> Result<HostPattern, String> {
        if pattern.contains(':') {
            return Err("a host pattern matches without the port; leave `:port` out".to_string());
        }
        let labels = pattern
            .to_ascii_lowercase()
            .split('.')
            .map(Label::parse)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(HostPattern {
            source: pattern.into(),
            labels: labels.into(),
        })
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// `host` without port (see `host_without_port`).
    pub fn matches(&self, host: &[u8]) -> bool {
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
    fn patterns_keep_the_text_as_written() {
        assert_eq!(
            PathPattern::parse("/a/{id}/**").unwrap().as_str(),
            "/a/{id}/**"
        );
        let host = HostPattern::parse("**.Example.COM").unwrap();
        assert_eq!(host.as_str(), "**.Example.COM");
        assert!(host.matches(b"www.example.com"));
    }
}
