//! A scripted browser over std `TcpStream`: what a user's browser does during an OIDC login,
//! and nothing more.
//!
//! It keeps a cookie jar per `host:port` (the gateway and the provider both live on 127.0.0.1,
//! so a real browser's per-host jar would mix them up), reuses one keep-alive connection per
//! server, sends the `Sec-Fetch-*`/`Accept` headers a navigation carries, follows redirects
//! when asked and submits the provider's HTML forms. Requests and responses go through the
//! suite's raw [`Client`], so every byte is checked the same way as in the other tests.
//!
//! [`Browser::login`] drives the whole authorization code flow through the gateway:
//! gateway 302 -> provider `/auth` -> login form -> consent form -> gateway callback ->
//! 302 with `Set-Cookie: SESSION` -> the original URL.

use std::collections::HashMap;
use std::fmt;
use std::io::{self, Write};
use std::net::{SocketAddr, ToSocketAddrs};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::client::{Client, Response};

/// What a navigation sends as `Accept` (Chromium's value).
pub const NAVIGATE_ACCEPT: &str =
    "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8";
const USER_AGENT: &str = "sessiongate-integration-browser/1";
/// Redirects followed before giving up (Chromium stops at 20 too).
const MAX_REDIRECTS: usize = 20;

// ---------------------------------------------------------------------------------------------
// URLs

/// An absolute `http://host:port/path?query` URL (the tests use no TLS and no fragments).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Url {
    pub host: String,
    pub port: u16,
    /// Path and query, at least `/`.
    pub target: String,
}

impl Url {
    /// Parses an absolute http URL; panics on anything else (a test bug or a gateway bug).
    pub fn parse(s: &str) -> Url {
        Url::try_parse(s).unwrap_or_else(|| panic!("not an absolute http URL: {s:?}"))
    }

    pub fn try_parse(s: &str) -> Option<Url> {
        let rest = s.strip_prefix("http://")?;
        let rest = rest.split('#').next().unwrap_or_default();
        let (authority, target) = match rest.find(['/', '?']) {
            Some(i) if rest.as_bytes()[i] == b'/' => (&rest[..i], rest[i..].to_string()),
            Some(i) => (&rest[..i], format!("/{}", &rest[i..])),
            None => (rest, "/".to_string()),
        };
        if authority.is_empty() || authority.contains('@') {
            return None;
        }
        let (host, port) = match authority.rsplit_once(':') {
            Some((h, p)) if !h.ends_with(']') || h.starts_with('[') => (h, p.parse().ok()?),
            _ => (authority, 80),
        };
        Some(Url {
            host: host.to_ascii_lowercase(),
            port,
            target,
        })
    }

    /// `host:port`, as sent in `Host` and used as the cookie jar's key.
    pub fn authority(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }

    pub fn origin(&self) -> String {
        format!("http://{}", self.authority())
    }

    pub fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or("/")
    }

    pub fn query(&self) -> &str {
        self.target.split_once('?').map(|(_, q)| q).unwrap_or("")
    }

    /// Decoded query parameters in order.
    pub fn params(&self) -> Vec<(String, String)> {
        parse_form(self.query())
    }

    /// The first value of query parameter `name`.
    pub fn param(&self, name: &str) -> Option<String> {
        self.params()
            .into_iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v)
    }

    /// This URL with `name` set to `value` (replaced when present, appended otherwise).
    pub fn with_param(&self, name: &str, value: &str) -> Url {
        let mut params = self.params();
        match params.iter_mut().find(|(n, _)| n == name) {
            Some(p) => p.1 = value.to_string(),
            None => params.push((name.to_string(), value.to_string())),
        }
        let mut u = self.clone();
        u.target = format!("{}?{}", self.path(), encode_form(&params));
        u
    }

    /// Another URL with the same origin and this target.
    pub fn with_target(&self, target: &str) -> Url {
        assert!(
            target.starts_with('/'),
            "target must start with /: {target:?}"
        );
        let mut u = self.clone();
        u.target = target.to_string();
        u
    }

    /// Resolves a `Location` (or form `action`) against this URL (RFC 3986 §5.2, the cases
    /// servers send: absolute, absolute-path, query-only and relative-path references).
    pub fn join(&self, reference: &str) -> Url {
        if reference.starts_with("http://") {
            return Url::parse(reference);
        }
        assert!(
            !reference.contains("://") && !reference.starts_with("//"),
            "unsupported reference {reference:?}"
        );
        if reference.starts_with('/') {
            return self.with_target(reference);
        }
        if reference.is_empty() {
            return self.clone();
        }
        if reference.starts_with('?') {
            return self.with_target(&format!("{}{reference}", self.path()));
        }
        let dir = &self.path()[..=self.path().rfind('/').unwrap_or(0)];
        self.with_target(&format!("{dir}{reference}"))
    }

    fn socket_addr(&self) -> SocketAddr {
        (self.host.trim_matches(['[', ']']), self.port)
            .to_socket_addrs()
            .ok()
            .and_then(|mut a| a.next())
            .unwrap_or_else(|| panic!("cannot resolve {}", self.authority()))
    }
}

impl fmt::Display for Url {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "http://{}:{}{}", self.host, self.port, self.target)
    }
}

/// `application/x-www-form-urlencoded` (and query string) decoding.
pub fn parse_form(s: &str) -> Vec<(String, String)> {
    s.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (n, v) = p.split_once('=').unwrap_or((p, ""));
            (percent_decode(n), percent_decode(v))
        })
        .collect()
}

/// `application/x-www-form-urlencoded` encoding.
pub fn encode_form<N: AsRef<str>, V: AsRef<str>>(fields: &[(N, V)]) -> String {
    fields
        .iter()
        .map(|(n, v)| {
            format!(
                "{}={}",
                percent_encode(n.as_ref()),
                percent_encode(v.as_ref())
            )
        })
        .collect::<Vec<_>>()
        .join("&")
}

/// Percent-encodes everything but RFC 3986 unreserved characters.
pub fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Decodes `%XX` and `+` (as a space); malformed escapes stay as they are.
pub fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => match (hex(b[i + 1]), hex(b[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(h << 4 | l);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex(c: u8) -> Option<u8> {
    (c as char).to_digit(16).map(|d| d as u8)
}

// ---------------------------------------------------------------------------------------------
// HTML forms

/// One `<form>` of a page: where it goes and what it sends.
#[derive(Clone, Debug)]
pub struct Form {
    pub id: Option<String>,
    pub action: Option<String>,
    pub method: String,
    /// Hidden and pre-filled inputs, in document order.
    pub fields: Vec<(String, String)>,
    /// Names of the text/password inputs (what a user would type into).
    pub inputs: Vec<String>,
}

impl Form {
    /// Sets a field (replacing a hidden value of the same name).
    pub fn set(&mut self, name: &str, value: &str) -> &mut Form {
        match self.fields.iter_mut().find(|(n, _)| n == name) {
            Some(f) => f.1 = value.to_string(),
            None => self.fields.push((name.to_string(), value.to_string())),
        }
        self
    }

    pub fn field(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The URL the form posts to, resolved against the page's URL.
    pub fn action_url(&self, page: &Url) -> Url {
        page.join(self.action.as_deref().unwrap_or(""))
    }
}

/// Every `<form>` in a page with its inputs (`<input type="hidden" name value>` and friends).
/// A regex-free scan that is enough for the provider's and the gateway's own pages.
pub fn parse_forms(html: &str) -> Vec<Form> {
    let lower = html.to_ascii_lowercase();
    let mut forms = Vec::new();
    let mut at = 0;
    while let Some(start) = lower[at..].find("<form").map(|i| at + i) {
        let tag_end = lower[start..].find('>').map_or(lower.len(), |i| start + i);
        let body_end = lower[tag_end..]
            .find("</form")
            .map_or(lower.len(), |i| tag_end + i);
        let tag = &html[start..tag_end];
        let mut form = Form {
            id: attr(tag, "id"),
            action: attr(tag, "action"),
            method: attr(tag, "method")
                .unwrap_or_else(|| "get".to_string())
                .to_ascii_uppercase(),
            fields: Vec::new(),
            inputs: Vec::new(),
        };
        let inner = &html[tag_end..body_end];
        let inner_lower = &lower[tag_end..body_end];
        let mut i = 0;
        while let Some(s) = inner_lower[i..].find("<input").map(|k| i + k) {
            let e = inner_lower[s..].find('>').map_or(inner.len(), |k| s + k);
            let input = &inner[s..e];
            let kind = attr(input, "type")
                .unwrap_or_else(|| "text".to_string())
                .to_ascii_lowercase();
            if let Some(name) = attr(input, "name") {
                match kind.as_str() {
                    "text" | "password" | "email" => {
                        if let Some(v) = attr(input, "value") {
                            form.fields.push((name.clone(), v));
                        }
                        form.inputs.push(name);
                    }
                    "submit" | "button" | "image" | "reset" | "file" => {}
                    "checkbox" | "radio" => {
                        if has_attr(input, "checked") {
                            let v = attr(input, "value").unwrap_or_else(|| "on".to_string());
                            form.fields.push((name, v));
                        }
                    }
                    _ => form
                        .fields
                        .push((name, attr(input, "value").unwrap_or_default())),
                }
            }
            i = e;
        }
        forms.push(form);
        at = body_end.max(start + 1);
    }
    forms
}

/// The value of attribute `name` in a start tag (quoted or not), entities decoded.
fn attr(tag: &str, name: &str) -> Option<String> {
    let lower = tag.to_ascii_lowercase();
    let bytes = lower.as_bytes();
    let mut from = 0;
    while let Some(i) = lower[from..].find(name).map(|k| from + k) {
        from = i + name.len();
        let boundary = i > 0 && (bytes[i - 1].is_ascii_whitespace() || bytes[i - 1] == b'<');
        let rest = lower[from..].trim_start();
        if !boundary || !rest.starts_with('=') {
            continue;
        }
        let eq = from + (lower[from..].len() - rest.len());
        let value_start = eq + 1 + (lower[eq + 1..].len() - lower[eq + 1..].trim_start().len());
        let raw = &tag[value_start..];
        let value = match raw.chars().next() {
            Some(q @ ('"' | '\'')) => raw[1..].split(q).next().unwrap_or_default(),
            _ => raw
                .split(|c: char| c.is_ascii_whitespace() || c == '>')
                .next()
                .unwrap_or_default()
                .trim_end_matches('/'),
        };
        return Some(html_unescape(value));
    }
    None
}

fn has_attr(tag: &str, name: &str) -> bool {
    tag.to_ascii_lowercase()
        .split(|c: char| c.is_ascii_whitespace() || c == '>' || c == '/')
        .any(|w| w == name || w.starts_with(&format!("{name}=")))
}

/// Decodes the entities template engines emit in attribute values.
pub fn html_unescape(s: &str) -> String {
    if !s.contains('&') {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        rest = &rest[i..];
        let Some(end) = rest.find(';').filter(|&e| e <= 10) else {
            out.push('&');
            rest = &rest[1..];
            continue;
        };
        let entity = &rest[1..end];
        let decoded = match entity {
            "amp" => Some('&'),
            "lt" => Some('<'),
            "gt" => Some('>'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            _ => entity
                .strip_prefix("#x")
                .or_else(|| entity.strip_prefix("#X"))
                .and_then(|h| u32::from_str_radix(h, 16).ok())
                .or_else(|| entity.strip_prefix('#').and_then(|d| d.parse().ok()))
                .and_then(char::from_u32),
        };
        match decoded {
            Some(c) => {
                out.push(c);
                rest = &rest[end + 1..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

// ---------------------------------------------------------------------------------------------
// Cookies

/// One `Set-Cookie` header, parsed.
#[derive(Clone, Debug)]
pub struct SetCookie {
    pub name: String,
    pub value: String,
    /// Attribute names (lower-case) with their values, e.g. `("path", "/")`, `("httponly", "")`.
    pub attrs: Vec<(String, String)>,
}

impl SetCookie {
    pub fn parse(header: &str) -> Option<SetCookie> {
        let mut parts = header.split(';');
        let (name, value) = parts.next()?.split_once('=')?;
        let name = name.trim();
        if name.is_empty() {
            return None;
        }
        let attrs = parts
            .map(|a| {
                let (n, v) = a.split_once('=').unwrap_or((a, ""));
                (n.trim().to_ascii_lowercase(), v.trim().to_string())
            })
            .filter(|(n, _)| !n.is_empty())
            .collect();
        Some(SetCookie {
            name: name.to_string(),
            value: value.trim().trim_matches('"').to_string(),
            attrs,
        })
    }

    /// The value of an attribute (name compared case-insensitively).
    pub fn attr(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.attrs
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn has(&self, name: &str) -> bool {
        self.attr(name).is_some()
    }

    /// Whether this header deletes the cookie (`Max-Age<=0` or an `Expires` in the past).
    pub fn is_removal(&self) -> bool {
        if let Some(age) = self.attr("max-age") {
            return age.parse::<i64>().map(|a| a <= 0).unwrap_or(false);
        }
        match self.attr("expires").and_then(parse_http_date) {
            Some(t) => t <= unix_now(),
            None => false,
        }
    }
}

/// The `Set-Cookie` headers of a response.
pub fn set_cookies(r: &Response) -> Vec<SetCookie> {
    r.head
        .all("set-cookie")
        .into_iter()
        .filter_map(SetCookie::parse)
        .collect()
}

/// The `Set-Cookie` of a response for cookie `name`, if any.
pub fn set_cookie(r: &Response, name: &str) -> Option<SetCookie> {
    set_cookies(r).into_iter().find(|c| c.name == name)
}

#[derive(Clone, Debug)]
struct StoredCookie {
    authority: String,
    name: String,
    value: String,
    path: String,
}

/// Seconds since the epoch from an IMF-fixdate (`Thu, 01 Jan 1970 00:00:00 GMT`).
fn parse_http_date(s: &str) -> Option<i64> {
    let mut it = s.split_whitespace().skip(1);
    let day: i64 = it.next()?.parse().ok()?;
    let month = match &it.next()?.to_ascii_lowercase()[..] {
        "jan" => 1,
        "feb" => 2,
        "mar" => 3,
        "apr" => 4,
        "may" => 5,
        "jun" => 6,
        "jul" => 7,
        "aug" => 8,
        "sep" => 9,
        "oct" => 10,
        "nov" => 11,
        "dec" => 12,
        _ => return None,
    };
    let year: i64 = it.next()?.parse().ok()?;
    let hms: Vec<i64> = it
        .next()?
        .split(':')
        .map(|x| x.parse().ok())
        .collect::<Option<_>>()?;
    if hms.len() != 3 {
        return None;
    }
    // Days from civil (Howard Hinnant's algorithm).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400 + hms[0] * 3600 + hms[1] * 60 + hms[2])
}

pub fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs() as i64
}

// ---------------------------------------------------------------------------------------------
// The browser

/// The outcome of [`Browser::login`].
#[derive(Debug)]
pub struct Login {
    /// The final response for the URL the login started from.
    pub response: Response,
    /// The `SESSION` cookie's value.
    pub session: String,
    /// The gateway's `Set-Cookie` for `SESSION`.
    pub session_cookie: SetCookie,
    /// The gateway's answer to the callback (a 302 on success).
    pub callback: Response,
    /// The callback URL the provider redirected to (code, state, iss).
    pub callback_url: Url,
    /// The authorization request the gateway redirected to.
    pub authorize_url: Url,
}

pub struct Browser {
    cookies: Vec<StoredCookie>,
    conns: HashMap<SocketAddr, Client>,
    /// Reuse one connection per server (true) or open a new one for every request.
    pub keep_alive: bool,
    /// Every request this browser sent, as `METHOD URL -> STATUS`, for failure messages.
    pub history: Vec<String>,
}

impl Default for Browser {
    fn default() -> Self {
        Browser::new()
    }
}

impl Browser {
    pub fn new() -> Browser {
        Browser {
            cookies: Vec::new(),
            conns: HashMap::new(),
            keep_alive: true,
            history: Vec::new(),
        }
    }

    /// A browser that opens a new connection for every request.
    pub fn without_keep_alive() -> Browser {
        Browser {
            keep_alive: false,
            ..Browser::new()
        }
    }

    // --- cookie jar ---------------------------------------------------------------------

    /// The value of cookie `name` stored for `url`'s `host:port` (any path).
    pub fn cookie(&self, url: &Url, name: &str) -> Option<String> {
        let authority = url.authority();
        self.cookies
            .iter()
            .find(|c| c.authority == authority && c.name == name)
            .map(|c| c.value.clone())
    }

    /// Stores a cookie for `url`'s `host:port` with path `/` (replacing one of that name).
    pub fn set_cookie(&mut self, url: &Url, name: &str, value: &str) {
        self.remove_cookie(url, name);
        self.cookies.push(StoredCookie {
            authority: url.authority(),
            name: name.to_string(),
            value: value.to_string(),
            path: "/".to_string(),
        });
    }

    pub fn remove_cookie(&mut self, url: &Url, name: &str) {
        let authority = url.authority();
        self.cookies
            .retain(|c| !(c.authority == authority && c.name == name));
    }

    /// The `Cookie` header this browser sends to `url`.
    pub fn cookie_header(&self, url: &Url) -> Option<String> {
        let authority = url.authority();
        let path = url.path();
        let mut matching: Vec<&StoredCookie> = self
            .cookies
            .iter()
            .filter(|c| c.authority == authority && path_matches(&c.path, path))
            .collect();
        // RFC 6265 §5.4: longer paths first.
        matching.sort_by_key(|c| std::cmp::Reverse(c.path.len()));
        if matching.is_empty() {
            return None;
        }
        Some(
            matching
                .iter()
                .map(|c| format!("{}={}", c.name, c.value))
                .collect::<Vec<_>>()
                .join("; "),
        )
    }

    fn store_cookies(&mut self, url: &Url, r: &Response) {
        for c in set_cookies(r) {
            let path = match c.attr("path") {
                Some(p) if p.starts_with('/') => p.to_string(),
                _ => default_cookie_path(url.path()),
            };
            let authority = url.authority();
            self.cookies
                .retain(|s| !(s.authority == authority && s.name == c.name && s.path == path));
            if !c.is_removal() {
                self.cookies.push(StoredCookie {
                    authority,
                    name: c.name,
                    value: c.value,
                    path,
                });
            }
        }
    }

    // --- requests -----------------------------------------------------------------------

    /// Sends one request (no redirect following) with this browser's cookies; stores the
    /// cookies the response sets. `headers` come after Host/User-Agent/Cookie.
    pub fn request(
        &mut self,
        method: &str,
        url: &Url,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Response {
        let mut raw = format!(
            "{method} {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: {USER_AGENT}\r\n",
            url.target,
            url.authority()
        );
        let has = |name: &str| headers.iter().any(|(n, _)| n.eq_ignore_ascii_case(name));
        if !has("cookie") {
            if let Some(c) = self.cookie_header(url) {
                raw.push_str(&format!("Cookie: {c}\r\n"));
            }
        }
        for (n, v) in headers {
            raw.push_str(&format!("{n}: {v}\r\n"));
        }
        if (!body.is_empty() || method == "POST" || method == "PUT") && !has("content-length") {
            raw.push_str(&format!("Content-Length: {}\r\n", body.len()));
        }
        raw.push_str("\r\n");
        let mut bytes = raw.into_bytes();
        bytes.extend_from_slice(body);

        let response = self.exchange(url, method, &bytes);
        self.history
            .push(format!("{method} {url} -> {}", response.status));
        self.store_cookies(url, &response);
        response
    }

    /// Writes `bytes` on the pooled connection for `url` (or a new one) and reads the answer.
    /// A reused connection the server closed meanwhile is replaced once.
    fn exchange(&mut self, url: &Url, method: &str, bytes: &[u8]) -> Response {
        let addr = url.socket_addr();
        let reused = self.keep_alive && self.conns.contains_key(&addr);
        let mut conn = match self.conns.remove(&addr) {
            Some(c) if self.keep_alive => c,
            _ => Client::connect(addr),
        };
        let result = try_exchange(&mut conn, method, bytes);
        let (response, conn) = match result {
            Ok(r) => (r, conn),
            // The server closed the idle connection before reading the request: retry once.
            Err(_) if reused => {
                let mut fresh = Client::connect(addr);
                let r = try_exchange(&mut fresh, method, bytes)
                    .unwrap_or_else(|e| panic!("{method} {url}: {e}"));
                (r, fresh)
            }
            Err(e) => panic!("{method} {url}: {e}"),
        };
        if self.keep_alive && !response.says_close() && !response.head.start.starts_with("HTTP/1.0")
        {
            self.conns.insert(addr, conn);
        }
        response
    }

    /// A navigation to `url` (GET, no redirect following).
    pub fn navigate(&mut self, url: &Url) -> Response {
        self.navigate_with(url, &[])
    }

    /// A navigation with extra request headers.
    pub fn navigate_with(&mut self, url: &Url, extra: &[(&str, &str)]) -> Response {
        let mut headers = navigation_headers("none");
        headers.extend_from_slice(extra);
        self.request("GET", url, &headers, b"")
    }

    /// A `fetch()`-style GET (JSON wanted, not a navigation).
    pub fn fetch(&mut self, url: &Url) -> Response {
        self.request("GET", url, &fetch_headers(), b"")
    }

    /// A navigation (GET, or a form POST with `body`) that follows redirects (303, and
    /// 301/302 after a POST, become GET). Returns the final response and its URL.
    pub fn go(&mut self, method: &str, url: &Url, body: &[u8]) -> (Response, Url) {
        let mut url = url.clone();
        let mut method = method.to_string();
        let mut body = body.to_vec();
        let mut site = "none";
        for _ in 0..=MAX_REDIRECTS {
            let mut headers = navigation_headers(site);
            if method == "POST" {
                headers.push(("Content-Type", "application/x-www-form-urlencoded"));
            }
            let origin = url.origin();
            if method == "POST" {
                headers.push(("Origin", &origin));
            }
            let r = self.request(&method, &url, &headers, &body);
            let Some(next) = redirect_target(&url, &r) else {
                return (r, url);
            };
            if r.status == 303 || ((r.status == 301 || r.status == 302) && method == "POST") {
                method = "GET".to_string();
                body.clear();
            }
            site = if next.origin() == url.origin() {
                "same-origin"
            } else {
                "cross-site"
            };
            url = next;
        }
        panic!(
            "more than {MAX_REDIRECTS} redirects; history:\n{}",
            self.history.join("\n")
        );
    }

    /// Navigates to `url` and follows redirects.
    pub fn navigate_follow(&mut self, url: &Url) -> (Response, Url) {
        self.go("GET", url, b"")
    }

    /// Submits a form found on the page at `page` (navigation; redirects followed).
    pub fn submit(&mut self, page: &Url, form: &Form) -> (Response, Url) {
        let action = form.action_url(page);
        let body = encode_form(&form.fields);
        if form.method == "POST" {
            self.go("POST", &action, body.as_bytes())
        } else {
            let target = if body.is_empty() {
                action
            } else {
                action.with_target(&format!("{}?{body}", action.path()))
            };
            self.navigate_follow(&target)
        }
    }

    /// Submits a form without following the answer's redirect.
    pub fn submit_once(&mut self, page: &Url, form: &Form) -> Response {
        let action = form.action_url(page);
        let body = encode_form(&form.fields);
        let mut headers = navigation_headers("same-origin");
        headers.push(("Content-Type", "application/x-www-form-urlencoded"));
        let origin = page.origin();
        headers.push(("Origin", &origin));
        self.request(&form.method, &action, &headers, body.as_bytes())
    }

    /// A navigation form POST to `url` with these fields, without following redirects.
    pub fn post_form(&mut self, url: &Url, fields: &[(&str, &str)]) -> Response {
        let body = encode_form(fields);
        let mut headers = navigation_headers("same-origin");
        headers.push(("Content-Type", "application/x-www-form-urlencoded"));
        let origin = url.origin();
        headers.push(("Origin", &origin));
        self.request("POST", url, &headers, body.as_bytes())
    }

    /// At the provider: opens its logout confirmation page (`/session/end...`) at
    /// `page_url` and submits its form (`op.logoutForm`, with its `xsrf`) with
    /// `logout=yes`, "Yes, sign me out". Returns the provider's answer, not followed.
    pub fn confirm_provider_logout(&mut self, page_url: &Url) -> Response {
        let page = self.navigate(page_url);
        assert_eq!(
            page.status,
            200,
            "provider logout page at {page_url}: {}",
            page.text()
        );
        let mut form = parse_forms(&page.text())
            .into_iter()
            .find(|f| f.id.as_deref() == Some("op.logoutForm"))
            .unwrap_or_else(|| panic!("no logout form at {page_url}:\n{}", page.text()));
        assert!(
            form.field("xsrf").is_some_and(|x| !x.is_empty()),
            "the provider's logout form has no xsrf field: {form:?}"
        );
        form.set("logout", "yes");
        self.submit_once(page_url, &form)
    }

    // --- the login flow -----------------------------------------------------------------

    /// Step 1: navigate to a gateway URL without a session; expects the 302 to the provider
    /// and returns the authorization request URL it points to.
    pub fn start_login(&mut self, gateway_url: &Url) -> Url {
        let r = self.navigate(gateway_url);
        assert_eq!(
            r.status,
            302,
            "a navigation without session must be redirected to the provider; got {} {:?}\n{}",
            r.status,
            r.head.start,
            r.text()
        );
        let location = r.header("location").expect("302 without Location");
        gateway_url.join(location)
    }

    /// Step 2: at the provider, from the authorization request to the redirect back to the
    /// client: signs in as `user` (dev login form), consents, and returns the callback URL
    /// (not followed).
    pub fn authorize(&mut self, authorize_url: &Url, user: &str) -> Url {
        let back_to_client = client_redirect(authorize_url);
        let mut url = authorize_url.clone();
        let mut r = self.navigate(&url);
        for _ in 0..MAX_REDIRECTS {
            if let Some(next) = redirect_target(&url, &r) {
                if back_to_client(&next) {
                    return next;
                }
                url = next;
                r = self.request("GET", &url, &navigation_headers("same-origin"), b"");
                continue;
            }
            assert_eq!(
                r.status,
                200,
                "unexpected answer from the provider at {url}: {}\n{}\nhistory:\n{}",
                r.status,
                r.text(),
                self.history.join("\n")
            );
            let page = r.text();
            let mut forms = parse_forms(&page);
            let Some(mut form) = forms.drain(..).find(|f| f.method == "POST") else {
                panic!("no form on provider page {url}:\n{page}");
            };
            match form.field("prompt") {
                Some("login") | None if form.inputs.iter().any(|i| i == "login") => {
                    form.set("login", user);
                    form.set("password", "any-password");
                }
                _ => {}
            }
            r = self.submit_once(&url, &form);
            url = form.action_url(&url);
        }
        panic!(
            "the provider never redirected back; history:\n{}",
            self.history.join("\n")
        );
    }

    /// At the provider: aborts the interaction (the user declines); returns the callback URL
    /// the provider redirects to (with `error=access_denied`), not followed.
    pub fn deny(&mut self, authorize_url: &Url) -> Url {
        let back_to_client = client_redirect(authorize_url);
        let (page, url) = {
            let mut url = authorize_url.clone();
            let mut r = self.navigate(&url);
            while let Some(next) = redirect_target(&url, &r) {
                assert!(
                    !back_to_client(&next),
                    "provider left before the login form"
                );
                url = next;
                r = self.request("GET", &url, &navigation_headers("same-origin"), b"");
            }
            (r, url)
        };
        assert_eq!(page.status, 200, "no login page at {url}: {}", page.text());
        // The dev interactions offer "Cancel" as a link to /interaction/<uid>/abort.
        let abort = url.with_target(&format!("{}/abort", url.path().trim_end_matches('/')));
        let mut r = self.request("GET", &abort, &navigation_headers("same-origin"), b"");
        let mut at = abort;
        for _ in 0..MAX_REDIRECTS {
            let next = redirect_target(&at, &r)
                .unwrap_or_else(|| panic!("abort did not redirect: {} {}", r.status, r.text()));
            if back_to_client(&next) {
                return next;
            }
            at = next;
            r = self.request("GET", &at, &navigation_headers("same-origin"), b"");
        }
        panic!("abort never left the provider");
    }

    /// Step 3: navigates to the callback URL; returns the gateway's answer (not followed).
    pub fn callback(&mut self, callback_url: &Url) -> Response {
        self.request("GET", callback_url, &navigation_headers("cross-site"), b"")
    }

    /// The whole code flow through the gateway, starting from `gateway_url` (which needs a
    /// session), signing in as `user`. Panics with the request history if any step fails.
    pub fn login(&mut self, gateway_url: &Url, user: &str) -> Login {
        let authorize_url = self.start_login(gateway_url);
        let callback_url = self.authorize(&authorize_url, user);
        assert_eq!(
            callback_url.origin(),
            gateway_url.origin(),
            "the provider must redirect back to the gateway; history:\n{}",
            self.history.join("\n")
        );
        let callback = self.callback(&callback_url);
        assert_eq!(
            callback.status,
            302,
            "the callback must answer 302; got {} {}\nhistory:\n{}",
            callback.status,
            callback.text(),
            self.history.join("\n")
        );
        let session_cookie = set_cookie(&callback, "SESSION").unwrap_or_else(|| {
            panic!(
                "the callback must set the SESSION cookie; headers: {:?}",
                callback.head.headers
            )
        });
        let back = callback_url.join(callback.header("location").expect("302 without Location"));
        let response = self.request("GET", &back, &navigation_headers("cross-site"), b"");
        Login {
            response,
            session: session_cookie.value.clone(),
            session_cookie,
            callback,
            callback_url,
            authorize_url,
        }
    }
}

fn try_exchange(conn: &mut Client, method: &str, bytes: &[u8]) -> io::Result<Response> {
    conn.writer().write_all(bytes)?;
    conn.try_read_response(method, true)
}

/// Headers of a top-level navigation; `site` is the `Sec-Fetch-Site` value.
pub fn navigation_headers(site: &'static str) -> Vec<(&'static str, &'static str)> {
    vec![
        ("Accept", NAVIGATE_ACCEPT),
        ("Sec-Fetch-Mode", "navigate"),
        ("Sec-Fetch-Dest", "document"),
        ("Sec-Fetch-Site", site),
        ("Sec-Fetch-User", "?1"),
        ("Upgrade-Insecure-Requests", "1"),
    ]
}

/// Headers of a script's `fetch()` for JSON.
pub fn fetch_headers() -> Vec<(&'static str, &'static str)> {
    vec![
        ("Accept", "application/json"),
        ("Sec-Fetch-Mode", "cors"),
        ("Sec-Fetch-Dest", "empty"),
        ("Sec-Fetch-Site", "same-origin"),
    ]
}

/// The URL a 3xx response sends the browser to, if it is a redirect with a Location.
pub fn redirect_target(from: &Url, r: &Response) -> Option<Url> {
    if !matches!(r.status, 301 | 302 | 303 | 307 | 308) {
        return None;
    }
    r.header("location").map(|l| from.join(l))
}

/// For an authorization request: whether a URL is the redirect back to the client (its
/// `redirect_uri`, or any other origin when the request names none).
fn client_redirect(authorize_url: &Url) -> impl Fn(&Url) -> bool {
    let provider = authorize_url.origin();
    let redirect_uri = authorize_url.param("redirect_uri").map(|u| Url::parse(&u));
    move |next: &Url| match &redirect_uri {
        Some(r) => next.origin() == r.origin() && next.path() == r.path(),
        None => next.origin() != provider,
    }
}

/// RFC 6265 §5.1.4 path-match.
fn path_matches(cookie_path: &str, request_path: &str) -> bool {
    request_path == cookie_path
        || (request_path.starts_with(cookie_path)
            && (cookie_path.ends_with('/')
                || request_path.as_bytes().get(cookie_path.len()) == Some(&b'/')))
}

/// RFC 6265 §5.1.4 default-path.
fn default_cookie_path(request_path: &str) -> String {
    match request_path.rfind('/') {
        Some(0) | None => "/".to_string(),
        Some(i) => request_path[..i].to_string(),
    }
}

#[test]
fn browser_helpers_parse_what_servers_send() {
    let u = Url::parse("http://127.0.0.1:8080/a/b?x=1&y=a%20b+c");
    assert_eq!(u.authority(), "127.0.0.1:8080");
    assert_eq!(u.path(), "/a/b");
    assert_eq!(u.param("y").as_deref(), Some("a b c"));
    assert_eq!(u.join("/c").target, "/c");
    assert_eq!(u.join("d?z=1").target, "/a/d?z=1");
    assert_eq!(u.join("?q").target, "/a/b?q");
    assert_eq!(u.join("http://127.0.0.1:9/x").authority(), "127.0.0.1:9");
    assert_eq!(Url::parse("http://h:1?x").target, "/?x");

    let forms = parse_forms(
        r#"<p>x</p><form autocomplete="off" action="/interaction/abc?a=1&amp;b=2" method="post">
        <input type="hidden" name="prompt" value="login"/>
        <input required type="text" name="login" placeholder="Enter any login" autofocus="on">
        <input type='hidden' name=xsrf value=t0k&#x2F;en>
        <button type="submit">Sign-in</button></form>
        <form id="op.logoutForm" method="post" action="http://h:1/session/end/confirm"></form>"#,
    );
    assert_eq!(forms.len(), 2);
    assert_eq!(forms[0].action.as_deref(), Some("/interaction/abc?a=1&b=2"));
    assert_eq!(forms[0].method, "POST");
    assert_eq!(forms[0].field("prompt"), Some("login"));
    assert_eq!(forms[0].field("xsrf"), Some("t0k/en"));
    assert_eq!(forms[0].inputs, ["login"]);
    assert_eq!(forms[1].id.as_deref(), Some("op.logoutForm"));

    let c = SetCookie::parse("SESSION=abc; Path=/; HttpOnly; SameSite=Lax").unwrap();
    assert_eq!(c.value, "abc");
    assert_eq!(c.attr("samesite"), Some("Lax"));
    assert!(c.has("HttpOnly") && !c.has("secure") && !c.is_removal());
    assert!(SetCookie::parse("SESSION=; Max-Age=0")
        .unwrap()
        .is_removal());
    assert!(
        SetCookie::parse("a=; expires=Thu, 01 Jan 1970 00:00:00 GMT")
            .unwrap()
            .is_removal()
    );
    assert_eq!(
        parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT"),
        Some(784_111_777)
    );
    assert!(path_matches("/", "/x") && path_matches("/a", "/a/b") && !path_matches("/a", "/ab"));
    assert_eq!(encode_form(&[("a b", "c&d=é")]), "a%20b=c%26d%3D%C3%A9");
}
