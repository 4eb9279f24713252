//! The request head sent upstream: the request line with the route's rewritten target,
//! the upstream's Host, the client's end-to-end fields after the route's filters, the
//! session's credentials, `X-Forwarded-*`, and the gateway's own framing.

use std::io::Write as _;
use std::net::IpAddr;

use super::head::{Framing, RequestHead};
use super::name_is;
use crate::route::Filter;
use crate::route::Route;

/// What the upstream head is made from besides the client's head.
pub struct Forward<'a> {
    pub route: &'a Route,
    /// The upstream's Host value.
    pub authority: &'a str,
    /// The client's address (`X-Forwarded-For`).
    pub peer: IpAddr,
    /// The peer is one of `sessiongate.trusted-proxies`: its X-Forwarded-For chain is kept
    /// and appended to. From anyone else the chain is a claim, and only the peer is written.
    pub trusted_peer: bool,
    /// `X-Forwarded-Proto`: the client stream's scheme.
    pub scheme: &'static str,
    /// The session's access token: sent as `Authorization: Bearer`, in place of any
    /// Authorization the client sent, and the session cookie is stripped.
    pub bearer: Option<&'a str>,
    /// The gateway's own cookies (session, login binding): never forwarded.
    pub own_cookies: &'a [&'a str],
}

/// Writes the upstream request head for `h` (whose bytes are in `buf`) into `out`.
pub fn write_upstream_head(out: &mut Vec<u8>, h: &RequestHead, buf: &[u8], f: &Forward) {
    let route = f.route;
    out.extend_from_slice(h.method(buf));
    out.push(b' ');
    route.rewrite_target(h.target(buf), out);
    out.extend_from_slice(b" HTTP/1.1\r\nHost: ");
    out.extend_from_slice(f.authority.as_bytes());
    out.extend_from_slice(b"\r\n");
    'fields: for field in h.fields.iter().filter(|f| !f.hop) {
        let name = field.name(buf);
        if f.bearer.is_some() && name_is(name, b"authorization") {
            continue;
        }
        if name_is(name, b"cookie") {
            write_cookie_without(out, field.value(buf), f.own_cookies);
            continue;
        }
        for filter in &route.filters {
            match filter {
                Filter::RemoveRequestHeader(n) | Filter::SetRequestHeader(n, _)
                    if name.eq_ignore_ascii_case(n.as_bytes()) =>
                {
                    continue 'fields
                }
                _ => {}
            }
        }
        out.extend_from_slice(name);
        out.extend_from_slice(b": ");
        out.extend_from_slice(field.value(buf));
        out.extend_from_slice(b"\r\n");
    }
    for filter in &route.filters {
        if let Filter::AddRequestHeader(n, v) | Filter::SetRequestHeader(n, v) = filter {
            let _ = write!(out, "{n}: {v}\r\n");
        }
    }
    if let Some(token) = f.bearer {
        out.extend_from_slice(b"Authorization: Bearer ");
        out.extend_from_slice(token.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"X-Forwarded-For: ");
    let chain = h.forwarded_for.map(|i| h.fields[i].value(buf));
    if let Some(chain) = chain.filter(|c| f.trusted_peer && !c.is_empty()) {
        out.extend_from_slice(chain);
        out.extend_from_slice(b", ");
    }
    let _ = write!(out, "{}\r\nX-Forwarded-Proto: {}\r\n", f.peer, f.scheme);
    if let Some(host) = h.host(buf).filter(|v| !v.is_empty()) {
        out.extend_from_slice(b"X-Forwarded-Host: ");
        out.extend_from_slice(host);
        out.extend_from_slice(b"\r\n");
    }
    match h.body_framing() {
        Framing::Length(0) if !method_may_have_body(h.method(buf)) => {}
        Framing::Length(n) => {
            let _ = write!(out, "Content-Length: {n}\r\n");
        }
        Framing::Chunked => out.extend_from_slice(b"Transfer-Encoding: chunked\r\n"),
        Framing::Close => {}
    }
    if h.websocket {
        out.extend_from_slice(b"Connection: Upgrade\r\nUpgrade: websocket\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

/// Methods whose requests usually carry a body: an explicit `Content-Length: 0` is kept for
/// them, since some backends insist on it for POST.
fn method_may_have_body(m: &[u8]) -> bool {
    matches!(m, b"POST" | b"PUT" | b"PATCH")
}

/// Writes a `Cookie` field line without the pairs named in `names`; nothing when no pair is
/// left.
fn write_cookie_without(out: &mut Vec<u8>, value: &[u8], names: &[&str]) {
    let start = out.len();
    out.extend_from_slice(b"Cookie: ");
    let mut any = false;
    for pair in value.split(|&b| b == b';') {
        let pair = super::trim_ows(pair);
        let pair_name = pair.split(|&b| b == b'=').next().unwrap_or_default();
        if pair.is_empty() || names.iter().any(|n| n.as_bytes() == pair_name) {
            continue;
        }
        if any {
            out.extend_from_slice(b"; ");
        }
        out.extend_from_slice(pair);
        any = true;
    }
    if any {
        out.extend_from_slice(b"\r\n");
    } else {
        out.truncate(start);
    }
}

/// `peer` is one of the `trusted` proxies; IPv4-mapped IPv6 addresses (a dual-stack
/// listener's view of IPv4 peers) compare as the IPv4 address they are.
pub fn is_trusted(trusted: &[IpAddr], peer: IpAddr) -> bool {
    let peer = peer.to_canonical();
    trusted.iter().any(|t| t.to_canonical() == peer)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mapped_addresses_are_the_ipv4_they_carry() {
        let trusted: [IpAddr; 1] = ["10.0.0.1".parse().unwrap()];
        assert!(is_trusted(&trusted, "::ffff:10.0.0.1".parse().unwrap()));
        assert!(is_trusted(&trusted, "10.0.0.1".parse().unwrap()));
        assert!(!is_trusted(&trusted, "10.0.0.2".parse().unwrap()));
    }

    #[test]
    fn strips_only_the_session_pair() {
        let mut out = Vec::new();
        let own = ["SESSION", "__Host-SESSIONGATE-LOGIN"];
        write_cookie_without(&mut out, b"theme=dark; SESSION=abc;x=1", &own);
        assert_eq!(out, b"Cookie: theme=dark; x=1\r\n");
        out.clear();
        write_cookie_without(&mut out, b"SESSION=abc; __Host-SESSIONGATE-LOGIN=b", &own);
        assert!(out.is_empty(), "a field with nothing left is dropped");
    }
}
