//! Request head: read limits, `httparse`, and the RFC 9112 refusals that make request
//! smuggling impossible by construction.
//!
//! [`parse_request`] is a pure function of the bytes read so far. It answers `Ok(None)` while
//! the head is incomplete, and otherwise fills a reusable [`RequestHead`] with offsets into
//! the caller's buffer (no copies), plus the facts the proxy needs: body framing,
//! persistence, `Expect`, WebSocket upgrade and which fields are hop-by-hop.

use std::mem::MaybeUninit;
use std::ops::Range;

use super::error::HttpError;
use super::{is_tchar, list_elements, name_is, parse_content_length, trim_ows};

/// Upper bound on `max-headers`; also sizes the uninitialised array given to httparse.
pub const MAX_HEADERS_LIMIT: usize = 1000;

/// The request limits from config (`sessiongate.max-*`).
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_head_bytes: usize,
    pub max_headers: usize,
    pub max_uri_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_head_bytes: 16 * 1024,
            max_headers: 100,
            max_uri_bytes: 8 * 1024,
        }
    }
}

/// How the message body is delimited (RFC 9112 §6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// Exactly this many bytes (0 = no body).
    Length(u64),
    Chunked,
    /// Until the peer closes (responses only).
    Close,
}

/// Byte range of one field in the head buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Field {
    pub name: (u32, u32),
    pub value: (u32, u32),
    /// Connection-specific (hop-by-hop) or re-framed by us: never forwarded as is.
    pub hop: bool,
}

impl Field {
    pub fn name<'a>(&self, buf: &'a [u8]) -> &'a [u8] {
        &buf[self.name.0 as usize..self.name.1 as usize]
    }
    pub fn value<'a>(&self, buf: &'a [u8]) -> &'a [u8] {
        &buf[self.value.0 as usize..self.value.1 as usize]
    }
}

/// A parsed request head; reused across the requests of a connection.
#[derive(Debug, Default)]
pub struct RequestHead {
    pub head_len: usize,
    pub method: (u32, u32),
    pub target: (u32, u32),
    /// Minor version: 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub minor: u8,
    pub fields: Vec<Field>,
    /// Index into `fields` of the Host field.
    pub host: Option<usize>,
    pub framing: Option<Framing>,
    /// The connection persists after this exchange (RFC 9112 §9.3).
    pub keep_alive: bool,
    pub expect_continue: bool,
    pub websocket: bool,
    /// Index of an existing X-Forwarded-For field, to append to (from a trusted proxy only).
    pub forwarded_for: Option<usize>,
    /// A GET or HEAD with a body: parsers disagree on whether it has one, so neither the
    /// client connection nor the upstream one is reused after it.
    pub ambiguous: bool,
}

impl RequestHead {
    pub fn method<'a>(&self, buf: &'a [u8]) -> &'a [u8] {
        &buf[self.method.0 as usize..self.method.1 as usize]
    }
    pub fn target<'a>(&self, buf: &'a [u8]) -> &'a [u8] {
        &buf[self.target.0 as usize..self.target.1 as usize]
    }
    /// The target's path, without the query.
    pub fn path<'a>(&self, buf: &'a [u8]) -> &'a [u8] {
        let t = self.target(buf);
        match memchr::memchr(b'?', t) {
            Some(q) => &t[..q],
            None => t,
        }
    }
    pub fn host<'a>(&self, buf: &'a [u8]) -> Option<&'a [u8]> {
        self.host.map(|i| self.fields[i].value(buf))
    }
    pub fn is_head(&self, buf: &[u8]) -> bool {
        self.method(buf) == b"HEAD"
    }
    pub fn body_framing(&self) -> Framing {
        self.framing.unwrap_or(Framing::Length(0))
    }

    fn clear(&mut self) {
        self.head_len = 0;
        self.fields.clear();
        self.host = None;
        self.framing = None;
        self.keep_alive = false;
        self.expect_continue = false;
        self.websocket = false;
        self.forwarded_for = None;
        self.ambiguous = false;
    }
}

/// Finds the end of the head (after CRLFCRLF) while refusing bytes that some parsers treat
/// as line ends and others do not: bare CR, bare LF and NUL (RFC 9112 §2.2), and obs-fold
/// (§5.2). Returns `Ok(None)` when the terminator has not arrived yet.
pub fn find_head_end(buf: &[u8]) -> Result<Option<usize>, HttpError> {
    let mut line_start = 0;
    let mut at = 0;
    while let Some(off) = memchr::memchr3(b'\r', b'\n', 0, &buf[at..]) {
        let i = at + off;
        match buf[i] {
            0 => return Err(HttpError::BadRequest("NUL byte in request head")),
            b'\n' => return Err(HttpError::BadRequest("bare LF in request head")),
            _ => {}
        }
        // A CR must be followed by LF; if the LF has not arrived yet, wait for it.
        let Some(&next) = buf.get(i + 1) else {
            return Ok(None);
        };
        if next != b'\n' {
            return Err(HttpError::BadRequest("bare CR in request head"));
        }
        if i == line_start {
            if i == 0 {
                return Err(HttpError::BadRequest("empty line before request line"));
            }
            return Ok(Some(i + 2));
        }
        line_start = i + 2;
        if let Some(b' ' | b'\t') = buf.get(line_start) {
            return Err(HttpError::BadRequest("obs-fold in header field"));
        }
        at = line_start;
    }
    Ok(None)
}

/// Parses a request head from `buf`. `Ok(None)`: need more bytes (and the limits allow it).
pub fn parse_request(
    buf: &[u8],
    limits: &Limits,
    out: &mut RequestHead,
) -> Result<Option<()>, HttpError> {
    out.clear();
    let end = match find_head_end(buf)? {
        Some(end) => end,
        None => {
            check_partial(buf, limits)?;
            return Ok(None);
        }
    };
    if end > limits.max_head_bytes {
        return Err(early_limit_error(buf, limits));
    }
    let head = &buf[..end];
    // The head is complete, so counting its line ends counts its fields exactly.
    let lines = memchr::memchr_iter(b'\n', head).count();
    if lines.saturating_sub(2) > limits.max_headers {
        return Err(HttpError::HeaderFieldsTooLarge("too many header fields"));
    }

    let mut slots = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS_LIMIT];
    let mut req = httparse::Request::new(&mut []);
    let slots = &mut slots[..limits.max_headers.min(MAX_HEADERS_LIMIT)];
    match req.parse_with_uninit_headers(head, slots) {
        Ok(httparse::Status::Complete(_)) => {}
        Ok(httparse::Status::Partial) => {
            return Err(HttpError::BadRequest("malformed request head"))
        }
        Err(httparse::Error::Version) if has_version_shape(head) => {
            return Err(HttpError::VersionNotSupported)
        }
        Err(httparse::Error::TooManyHeaders) => {
            return Err(HttpError::HeaderFieldsTooLarge("too many header fields"))
        }
        Err(httparse::Error::HeaderName) => {
            return Err(HttpError::BadRequest("invalid header field name"))
        }
        Err(httparse::Error::HeaderValue) => {
            return Err(HttpError::BadRequest("invalid header field value"))
        }
        Err(httparse::Error::Token) => return Err(HttpError::BadRequest("invalid method")),
        Err(_) => return Err(HttpError::BadRequest("malformed request line")),
    }
    let base = buf.as_ptr() as usize;
    let span = |s: &[u8]| -> (u32, u32) {
        let start = s.as_ptr() as usize - base;
        (start as u32, (start + s.len()) as u32)
    };
    let method = req.method.unwrap_or_default().as_bytes();
    let target = req.path.unwrap_or_default().as_bytes();
    out.method = span(method);
    out.target = span(target);
    out.minor = req.version.unwrap_or(1);
    out.head_len = end;

    if target.len() > limits.max_uri_bytes {
        return Err(HttpError::UriTooLong);
    }
    // We are a reverse proxy: only origin-form is meaningful (RFC 9112 §3.2.1). Absolute-form
    // would let the client pick the authority; asterisk-form has no route.
    if target.first() != Some(&b'/') {
        return Err(HttpError::BadRequest("request target must be origin-form"));
    }
    // httparse refuses controls and DEL but lets well-formed UTF-8 through; a URI is visible
    // ASCII only (RFC 3986), and backends decode anything else each their own way.
    if !target.iter().all(|&b| matches!(b, 0x21..=0x7e)) {
        return Err(HttpError::BadRequest(
            "request target byte outside visible ASCII",
        ));
    }

    for h in req.headers.iter() {
        out.fields.push(Field {
            name: span(h.name.as_bytes()),
            value: span(h.value),
            hop: false,
        });
    }
    judge_fields(buf, out, method)?;
    Ok(Some(()))
}

/// The request line ends in `HTTP/d.d`: a well-formed line naming another version (505),
/// as opposed to a malformed line such as a space inside the target (400).
fn has_version_shape(head: &[u8]) -> bool {
    let line = &head[..memchr::memchr(b'\r', head).unwrap_or(head.len())];
    let mut parts = line.split(|&b| b == b' ');
    let (Some(_), Some(_), Some(v), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return false;
    };
    matches!(v, [b'H', b'T', b'T', b'P', b'/', a, b'.', b] if a.is_ascii_digit() && b.is_ascii_digit())
}

/// Limits that can be judged before the head is complete.
fn check_partial(buf: &[u8], limits: &Limits) -> Result<(), HttpError> {
    if buf.len() >= limits.max_head_bytes {
        return Err(early_limit_error(buf, limits));
    }
    // The request line alone already carries a target longer than allowed.
    let line = match memchr::memchr(b'\r', buf) {
        Some(i) => &buf[..i],
        None => buf,
    };
    if let Some(sp) = memchr::memchr(b' ', line) {
        let rest = &line[sp + 1..];
        let target_len = memchr::memchr(b' ', rest).unwrap_or(rest.len());
        if target_len > limits.max_uri_bytes {
            return Err(HttpError::UriTooLong);
        }
    }
    // Field count is bounded before the end too, so a flood of tiny fields is cut early.
    if memchr::memchr_iter(b'\n', buf).count() > limits.max_headers + 1 {
        return Err(HttpError::HeaderFieldsTooLarge("too many header fields"));
    }
    Ok(())
}

/// A head over the size limit: 414 when the request line alone is the culprit.
fn early_limit_error(buf: &[u8], limits: &Limits) -> HttpError {
    let line_end = memchr::memchr(b'\r', buf).unwrap_or(buf.len());
    if line_end > limits.max_uri_bytes {
        HttpError::UriTooLong
    } else {
        HttpError::HeaderFieldsTooLarge("request head too large")
    }
}

/// The semantic checks on fields: framing (RFC 9112 §6), Host (RFC 9112 §3.2), persistence
/// and the hop-by-hop set (RFC 9110 §7.6.1).
fn judge_fields(buf: &[u8], out: &mut RequestHead, method: &[u8]) -> Result<(), HttpError> {
    let mut seen = Seen::default();
    for i in 0..out.fields.len() {
        let f = out.fields[i];
        seen.field(i, f.name(buf), f.value(buf), out)?;
    }
    // Fields named by Connection are connection-specific too (RFC 9110 §7.6.1).
    for ci in seen
        .connection_fields
        .iter()
        .take(seen.n_connection)
        .flatten()
    {
        let list = out.fields[*ci].value(buf);
        for opt in list_elements(list) {
            for f in out.fields.iter_mut() {
                if name_is_ci(f.name(buf), opt) {
                    f.hop = true;
                }
            }
        }
    }
    seen.conclude(out, method)
}

/// What the framing and connection fields of a request head said, gathered field by field.
#[derive(Default)]
struct Seen {
    content_length: Option<u64>,
    chunked: bool,
    conn_close: bool,
    conn_keep_alive: bool,
    conn_upgrade: bool,
    upgrade_websocket: bool,
    connection_fields: [Option<usize>; 4],
    n_connection: usize,
    authorization: bool,
}

impl Seen {
    /// Judges field `i`; marks the fields the proxy must not forward as they are.
    fn field(
        &mut self,
        i: usize,
        name: &[u8],
        value: &[u8],
        out: &mut RequestHead,
    ) -> Result<(), HttpError> {
        match name.len() {
            4 if name_is(name, b"host") => {
                if out.host.is_some() {
                    return Err(HttpError::BadRequest("duplicate Host"));
                }
                if !value.iter().all(|&b| is_host_char(b)) {
                    return Err(HttpError::BadRequest("invalid Host"));
                }
                out.host = Some(i);
            }
            14 if name_is(name, b"content-length") => {
                if self.content_length.is_some() {
                    return Err(HttpError::BadRequest("duplicate Content-Length"));
                }
                let n = parse_content_length(value)
                    .ok_or(HttpError::BadRequest("invalid Content-Length"))?;
                self.content_length = Some(n);
            }
            17 if name_is(name, b"transfer-encoding") => {
                if self.chunked {
                    return Err(HttpError::BadRequest("duplicate Transfer-Encoding"));
                }
                judge_transfer_encoding(value)?;
                self.chunked = true;
            }
            10 if name_is(name, b"connection") => self.connection(i, value)?,
            7 if name_is(name, b"upgrade") => {
                self.upgrade_websocket = list_elements(value).any(|p| {
                    let proto = p.split(|&b| b == b'/').next().unwrap_or_default();
                    name_is(proto, b"websocket")
                });
            }
            6 if name_is(name, b"expect") => {
                if !name_is(trim_ows(value), b"100-continue") {
                    return Err(HttpError::ExpectationFailed);
                }
                out.expect_continue = true;
            }
            15 if name_is(name, b"x-forwarded-for") => {
                if out.forwarded_for.is_some() {
                    return Err(HttpError::BadRequest("duplicate X-Forwarded-For"));
                }
                out.forwarded_for = Some(i);
            }
            13 if name_is(name, b"authorization") => {
                // The gate verifies the first; a backend may read the last.
                if self.authorization {
                    return Err(HttpError::BadRequest("duplicate Authorization"));
                }
                self.authorization = true;
                return Ok(());
            }
            _ => {
                if is_hop_by_hop(name) || is_forwarding(name) {
                    out.fields[i].hop = true;
                } else if is_lookalike(name) {
                    return Err(HttpError::BadRequest(
                        "field name resembling a framing or forwarding field",
                    ));
                }
                return Ok(());
            }
        }
        // Every field judged above is one the proxy writes itself or drops.
        out.fields[i].hop = true;
        Ok(())
    }

    /// A `Connection` field: its options, remembered to mark the fields it names.
    fn connection(&mut self, i: usize, value: &[u8]) -> Result<(), HttpError> {
        if self.n_connection == self.connection_fields.len() {
            return Err(HttpError::BadRequest("too many Connection fields"));
        }
        self.connection_fields[self.n_connection] = Some(i);
        self.n_connection += 1;
        for opt in list_elements(value) {
            if name_is(opt, b"close") {
                self.conn_close = true;
            } else if name_is(opt, b"keep-alive") {
                self.conn_keep_alive = true;
            } else if name_is(opt, b"upgrade") {
                self.conn_upgrade = true;
            } else if !opt.iter().all(|&b| is_tchar(b)) {
                return Err(HttpError::BadRequest("invalid Connection option"));
            }
        }
        Ok(())
    }

    /// The head's framing, persistence and upgrade, from all its fields.
    fn conclude(self, out: &mut RequestHead, method: &[u8]) -> Result<(), HttpError> {
        let is_get = method == b"GET";
        if out.minor == 1 && out.host.is_none() {
            return Err(HttpError::BadRequest("missing Host"));
        }
        if self.chunked && out.minor == 0 {
            // RFC 9112 §6.1: Transfer-Encoding in HTTP/1.0 means the framing is faulty.
            return Err(HttpError::BadRequest(
                "Transfer-Encoding in HTTP/1.0 request",
            ));
        }
        out.framing = match (self.content_length, self.chunked) {
            (Some(_), true) => {
                // RFC 9112 §6.1 lets a server process such a message, but a proxy that picks
                // one framing disagrees with some backend picking the other: refuse.
                return Err(HttpError::BadRequest(
                    "both Content-Length and Transfer-Encoding",
                ));
            }
            (Some(n), false) => Some(Framing::Length(n)),
            (None, true) => Some(Framing::Chunked),
            (None, false) => None,
        };
        // RFC 9110 §9.3.1/§9.3.2: content in GET or HEAD has no defined meaning, and some
        // servers read no body there: what follows may be taken for the next request.
        out.ambiguous = (is_get || method == b"HEAD")
            && matches!(out.framing, Some(Framing::Chunked | Framing::Length(1..)));
        out.keep_alive =
            !self.conn_close && (out.minor == 1 || self.conn_keep_alive) && !out.ambiguous;
        out.websocket = self.upgrade_websocket && self.conn_upgrade && is_get && out.minor == 1;
        if out.expect_continue && out.minor == 0 {
            // RFC 9110 §10.1.1: ignore 100-continue from HTTP/1.0 clients.
            out.expect_continue = false;
        }
        Ok(())
    }
}

fn name_is_ci(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.eq_ignore_ascii_case(b)
}

/// Only `chunked` alone is accepted: a request whose final coding is not chunked cannot be
/// delimited (RFC 9112 §6.3 item 4, 400), chunked twice is forbidden (§7), and any other
/// coding before it is one we do not implement (RFC 9112 §6.1, 501).
fn judge_transfer_encoding(value: &[u8]) -> Result<(), HttpError> {
    let mut codings = list_elements(value).peekable();
    let mut seen_chunked = false;
    let mut any = false;
    while let Some(c) = codings.next() {
        any = true;
        let last = codings.peek().is_none();
        if !c.iter().all(|&b| is_tchar(b)) {
            return Err(HttpError::BadRequest("invalid Transfer-Encoding"));
        }
        if name_is(c, b"chunked") {
            if seen_chunked || !last {
                return Err(HttpError::BadRequest("chunked is not the final coding"));
            }
            seen_chunked = true;
        } else if last {
            return Err(HttpError::BadRequest("chunked is not the final coding"));
        } else {
            return Err(HttpError::NotImplemented("unsupported transfer coding"));
        }
    }
    if !any {
        return Err(HttpError::BadRequest("empty Transfer-Encoding"));
    }
    Ok(())
}

/// RFC 9110 §7.6.1 and common practice: fields that describe one connection only.
pub fn is_hop_by_hop(name: &[u8]) -> bool {
    const HOP: [&[u8]; 8] = [
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
        b"proxy-authorization",
    ];
    HOP.iter().any(|h| name_is(name, h))
}

/// Fields that describe the hops before us (`Forwarded`, `X-Forwarded-*`, `X-Real-IP`): a
/// client can write anything there, so they are ours to write. X-Forwarded-For is judged
/// on its own (kept from a trusted proxy only, see `forward`).
pub fn is_forwarding(name: &[u8]) -> bool {
    const PREFIX: &[u8] = b"x-forwarded-";
    name_is(name, b"forwarded")
        || name_is(name, b"x-real-ip")
        || (name.len() >= PREFIX.len() && name[..PREFIX.len()].eq_ignore_ascii_case(PREFIX))
}

/// Framing, hop-by-hop and forwarding fields, whose look-alikes some backend may take for
/// the real thing. (The names without a dash have no look-alike under this normal form;
/// they are listed so the set stays the one the head judgment treats specially.)
const LOOKALIKE_TARGETS: [&[u8]; 14] = [
    b"content-length",
    b"transfer-encoding",
    b"host",
    b"connection",
    b"keep-alive",
    b"proxy-connection",
    b"proxy-authorization",
    b"te",
    b"trailer",
    b"upgrade",
    b"expect",
    b"forwarded",
    b"x-real-ip",
    // Stands for every X-Forwarded-* field: matched as a prefix.
    b"x-forwarded-",
];

/// A name that is not one of `LOOKALIKE_TARGETS` but normalises to one (lower case, `_` as
/// `-`, runs of dashes as one): `Transfer_Encoding`, `Content--Length`. Servers behind CGI-
/// style mappings or lenient parsers read these as the real fields. Compared in place.
pub fn is_lookalike(name: &[u8]) -> bool {
    // Without `_` or `--` the normal form is the name in lower case, which matches a target
    // only when the name is that field: nothing to compare.
    let mut prev = 0u8;
    let suspicious = name.iter().any(|&b| {
        let hit = b == b'_' || (b == b'-' && prev == b'-');
        prev = b;
        hit
    });
    if !suspicious {
        return false;
    }
    LOOKALIKE_TARGETS
        .iter()
        .any(|t| match normal_prefix(name, t) {
            Some(whole) => whole || t.ends_with(b"-"),
            None => false,
        })
}

/// Whether `target` (lower case, no `_`, no `--`) starts the normal form of `name`:
/// `Some(true)` when it is all of it.
fn normal_prefix(name: &[u8], target: &[u8]) -> Option<bool> {
    let mut j = 0;
    let mut prev_dash = false;
    for &b in name {
        let c = match b.to_ascii_lowercase() {
            b'_' => b'-',
            c => c,
        };
        if c == b'-' && prev_dash {
            continue;
        }
        prev_dash = c == b'-';
        if j == target.len() {
            return Some(false);
        }
        if target[j] != c {
            return None;
        }
        j += 1;
    }
    (j == target.len()).then_some(true)
}

/// Host = uri-host [ ":" port ] (RFC 3986): reg-name, IPv4 or IP-literal characters.
pub fn is_host_char(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'-' | b'.'
                | b'_'
                | b'~'
                | b'!'
                | b'$'
                | b'&'
                | b'\''
                | b'('
                | b')'
                | b'*'
                | b'+'
                | b','
                | b';'
                | b'='
                | b':'
                | b'['
                | b']'
                | b'%'
        )
}

/// Range helper for tests and callers that want `Range<usize>`.
pub fn range(span: (u32, u32)) -> Range<usize> {
    span.0 as usize..span.1 as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(raw: &[u8]) -> Result<Option<RequestHead>, HttpError> {
        let mut h = RequestHead::default();
        parse_request(raw, &Limits::default(), &mut h).map(|o| o.map(|_| h))
    }

    fn status(raw: &[u8]) -> u16 {
        match parse(raw) {
            Ok(Some(_)) => 200,
            Ok(None) => 0,
            Err(e) => e.status(),
        }
    }

    #[test]
    fn simple_get() {
        let raw = b"GET /a/b?x=1 HTTP/1.1\r\nHost: example.com\r\nAccept: */*\r\n\r\n";
        let h = parse(raw).unwrap().unwrap();
        assert_eq!(h.method(raw), b"GET");
        assert_eq!(h.target(raw), b"/a/b?x=1");
        assert_eq!(h.path(raw), b"/a/b");
        assert_eq!(h.host(raw), Some(&b"example.com"[..]));
        assert_eq!(h.head_len, raw.len());
        assert!(h.keep_alive);
        assert_eq!(h.body_framing(), Framing::Length(0));
    }

    #[test]
    fn partial_heads_wait() {
        let raw = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n";
        for n in 0..raw.len() {
            assert_eq!(status(&raw[..n]), 0, "prefix of {n} bytes");
        }
    }

    #[test]
    fn connection_named_fields_are_hop_by_hop() {
        let raw = b"GET / HTTP/1.1\r\nHost: a\r\nConnection: x-secret, close\r\nX-Secret: 1\r\nX-Keep: 2\r\n\r\n";
        let h = parse(raw).unwrap().unwrap();
        assert!(!h.keep_alive);
        let hop: Vec<_> = h
            .fields
            .iter()
            .filter(|f| f.hop)
            .map(|f| f.name(raw))
            .collect();
        assert!(hop.contains(&&b"X-Secret"[..]));
        assert!(!hop.contains(&&b"X-Keep"[..]));
    }

    #[test]
    fn http10_keep_alive_only_when_asked() {
        let h = parse(b"GET / HTTP/1.0\r\n\r\n").unwrap().unwrap();
        assert!(!h.keep_alive);
        let h = parse(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
            .unwrap()
            .unwrap();
        assert!(h.keep_alive);
    }

    #[test]
    fn websocket_upgrade() {
        let raw =
            b"GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n";
        assert!(parse(raw).unwrap().unwrap().websocket);
        let raw =
            b"POST /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n";
        assert!(!parse(raw).unwrap().unwrap().websocket);
    }

    #[test]
    fn refusals() {
        let cases: &[(&[u8], u16)] = &[
            (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
            (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", 400),
            (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n", 400),
            (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1, 2\r\n\r\n", 400),
            (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +1\r\n\r\n", 400),
            (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999\r\n\r\n", 400),
            (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, identity\r\n\r\n", 400),
            (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n", 400),
            (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 501),
            (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, chunked\r\n\r\n", 400),
            (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
            (b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\nHost: a\r\nX-A: b\r\n c\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\nHost : a\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\nHost: a\r\nX-A: b\0c\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\nHost: a\r\nX-A: b\rc\r\n\r\n", 400),
            (b"GET / HTTP/1.1\nHost: a\n\n", 400),
            (b"GET / HTTP/1.1\r\nHost: a\r\nX A: b\r\n\r\n", 400),
            (b"GET http://evil/ HTTP/1.1\r\nHost: a\r\n\r\n", 400),
            (b"OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n", 400),
            (b"GET / HTTP/2.0\r\nHost: a\r\n\r\n", 505),
            (b"G(T / HTTP/1.1\r\nHost: a\r\n\r\n", 400),
            (b"GET /a b HTTP/1.1\r\nHost: a\r\n\r\n", 400),
            (b"GET / FOO/1.1\r\nHost: a\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\nHost: a b\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\nHost: a\r\nExpect: something\r\n\r\n", 417),
            (b"GET / HTTP/1.1\r\nHost: a\r\nAuthorization: a\r\nAuthorization: b\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\nHost: a\r\nauthorization: a\r\nAUTHORIZATION: a\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\nHost: a\r\nTransfer_Encoding: chunked\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\nHost: a\r\nContent_Length: 0\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\nHost: a\r\nTransfer---Encoding: chunked\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\nHost: a\r\nX-Real_Ip: 1.2.3.4\r\n\r\n", 400),
            (b"GET /caf\xc3\xa9 HTTP/1.1\r\nHost: a\r\n\r\n", 400),
        ];
        for (raw, want) in cases {
            assert_eq!(status(raw), *want, "{}", String::from_utf8_lossy(raw));
        }
    }

    #[test]
    fn lookalikes() {
        for name in [
            &b"Transfer_Encoding"[..],
            b"content_length",
            b"Content--Length",
            b"TRANSFER-_-ENCODING",
            b"Keep_Alive",
            b"Proxy_Connection",
            b"Proxy_Authorization",
            b"X_Forwarded_For",
            b"x_forwarded_anything",
            b"X-Real_IP",
        ] {
            assert!(is_lookalike(name), "{}", String::from_utf8_lossy(name));
        }
        for name in [
            &b"Content-Length"[..],
            b"CONTENT-LENGTH",
            b"Content-Lengths",
            b"Content_Length_",
            b"X-Custom_Name",
            b"_host",
            b"t_e",
            b"X--Trace",
            b"Connection",
        ] {
            assert!(!is_lookalike(name), "{}", String::from_utf8_lossy(name));
        }
    }

    #[test]
    fn forwarding_fields_are_ours() {
        let raw = b"GET / HTTP/1.1\r\nHost: a\r\nForwarded: for=x\r\nX-Forwarded-For: 1.2.3.4\r\n\
            X-Forwarded-Prefix: /p\r\nx-forwarded-port: 1\r\nX-Forwarded-Proto: https\r\n\
            X-Forwarded-Host: h\r\nX-Forwarded-Ssl: on\r\nX-Real-IP: 1.2.3.4\r\nX-Keep: 1\r\n\r\n";
        let h = parse(raw).unwrap().unwrap();
        for f in &h.fields {
            // Host is written by us too.
            assert_eq!(
                f.hop,
                f.name(raw) != b"X-Keep",
                "{}",
                String::from_utf8_lossy(f.name(raw))
            );
        }
        assert_eq!(
            h.forwarded_for.map(|i| h.fields[i].name(raw)),
            Some(&b"X-Forwarded-For"[..])
        );
    }

    #[test]
    fn get_or_head_with_a_body_is_ambiguous() {
        for (raw, ambiguous) in [
            (
                &b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\n\r\n"[..],
                true,
            ),
            (
                b"HEAD / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n",
                true,
            ),
            (
                b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n",
                false,
            ),
            (b"GET / HTTP/1.1\r\nHost: a\r\n\r\n", false),
            (
                b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\n\r\n",
                false,
            ),
        ] {
            let h = parse(raw).unwrap().unwrap();
            assert_eq!(h.ambiguous, ambiguous, "{}", String::from_utf8_lossy(raw));
            assert_eq!(h.keep_alive, !ambiguous);
        }
    }

    /// httparse itself refuses controls, DEL, tab and bytes that are not UTF-8 in the target
    /// (an `httparse::Error::Token`), but lets well-formed UTF-8 through: that is ours.
    #[test]
    fn target_bytes() {
        let cases: [(&[u8], bool); 9] = [
            (b"/a\x01b", false),
            (b"/a\tb", false),
            (b"/a\x7fb", false),
            (b"/\x80", false),
            (b"/\xc3", false),
            (b"/a?b=\xff", false),
            (b"/caf\xc3\xa9", true),
            (b"/\xe2\x82\xac", true),
            (b"/\xf0\x9f\x98\x80", true),
        ];
        for (t, httparse_accepts) in cases {
            let raw = [b"GET ", t, b" HTTP/1.1\r\nHost: a\r\n\r\n"].concat();
            let mut h = [httparse::EMPTY_HEADER; 4];
            let r = httparse::Request::new(&mut h).parse(&raw);
            assert_eq!(r.is_ok(), httparse_accepts, "{t:?}: {r:?}");
            assert_eq!(status(&raw), 400, "{t:?}");
        }
        let visible: Vec<u8> = (0x21..=0x7e).collect();
        let raw = [b"GET /", &visible[..], b" HTTP/1.1\r\nHost: a\r\n\r\n"].concat();
        assert_eq!(status(&raw), 200);
    }

    #[test]
    fn limits() {
        let limits = Limits {
            max_head_bytes: 1024,
            max_headers: 4,
            max_uri_bytes: 64,
        };
        let mut h = RequestHead::default();
        let long_uri = format!("GET /{} HTTP/1.1\r\nHost: a\r\n\r\n", "a".repeat(100));
        let err = parse_request(long_uri.as_bytes(), &limits, &mut h).unwrap_err();
        assert_eq!(err.status(), 414);
        // The request line alone gives it away before the head ends.
        let partial = format!("GET /{}", "a".repeat(100));
        let err = parse_request(partial.as_bytes(), &limits, &mut h).unwrap_err();
        assert_eq!(err.status(), 414);
        let many = "GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 1\r\nC: 1\r\nD: 1\r\n\r\n";
        let err = parse_request(many.as_bytes(), &limits, &mut h).unwrap_err();
        assert_eq!(err.status(), 431);
        let big = format!(
            "GET / HTTP/1.1\r\nHost: a\r\nA: {}\r\n\r\n",
            "x".repeat(2000)
        );
        let err = parse_request(big.as_bytes(), &limits, &mut h).unwrap_err();
        assert_eq!(err.status(), 431);
        let err = parse_request(&big.as_bytes()[..1500], &limits, &mut h).unwrap_err();
        assert_eq!(err.status(), 431);
    }
}
