//! Where the gateway is, as the browser sees it: the base URL login redirect URIs are built
//! from and the origin that `POST /logout`, banner acceptance and WebSocket upgrades must
//! come from. Taken from `sessiongate.public-url`; without it, from a Host that names this
//! gateway directly (a loopback name or the listener's own address) or from the forwarding
//! headers of a trusted proxy; never from an unchecked request header.

use std::net::IpAddr;

use crate::http::head::{is_host_char, RequestHead};
use crate::http::{list_elements, name_is, trim_ows};

use super::{Client, Gate};

impl Gate {
    /// `scheme://host[:port]` of this request's gateway, when it can be trusted.
    pub(super) fn base_url(
        &self,
        head: &RequestHead,
        buf: &[u8],
        client: &Client,
    ) -> Option<String> {
        if let Some(url) = &self.settings.public_url {
            let scheme = if url.tls { "https" } else { "http" };
            return Some(format!("{scheme}://{}", url.authority()));
        }
        let scheme = if client.tls { "https" } else { "http" };
        if self.trusted(client.peer) {
            if let Some(host) = field(head, buf, b"x-forwarded-host").and_then(first_host) {
                let scheme = match field(head, buf, b"x-forwarded-proto").map(trim_ows) {
                    Some(b"https") => "https",
                    Some(b"http") => "http",
                    _ => scheme,
                };
                return Some(format!("{scheme}://{}", String::from_utf8_lossy(host)));
            }
        }
        let host = head.host(buf).filter(|h| self.names_this_gateway(h))?;
        Some(format!("{scheme}://{}", String::from_utf8_lossy(host)))
    }

    /// The request comes from the gateway's own pages, or from no browser page at all:
    /// Fetch metadata when the browser sends it, else `Origin`, else (no browser context,
    /// e.g. a script) yes.
    pub(super) fn same_origin(&self, head: &RequestHead, buf: &[u8], client: &Client) -> bool {
        if let Some(site) = field(head, buf, b"sec-fetch-site").map(trim_ows) {
            // `none`: the user typed or bookmarked it.
            return name_is(site, b"same-origin") || name_is(site, b"none");
        }
        let Some(origin) = field(head, buf, b"origin").map(trim_ows) else {
            return true;
        };
        let expected = self.base_url(head, buf, client).or_else(|| {
            let scheme = if client.tls { "https" } else { "http" };
            head.host(buf)
                .map(|h| format!("{scheme}://{}", String::from_utf8_lossy(h)))
        });
        expected.is_some_and(|e| origin.eq_ignore_ascii_case(e.as_bytes()))
    }

    /// The client a request is from, for its share of pending logins: the peer, or behind a
    /// trusted proxy the last address its `X-Forwarded-For` chain names that is not one.
    pub(super) fn client_ip(&self, head: &RequestHead, buf: &[u8], peer: IpAddr) -> IpAddr {
        if !self.trusted(peer) {
            return peer;
        }
        let Some(chain) = head.forwarded_for.map(|i| head.fields[i].value(buf)) else {
            return peer;
        };
        let hops: Vec<IpAddr> = list_elements(chain)
            .filter_map(|e| std::str::from_utf8(e).ok()?.parse::<IpAddr>().ok())
            .collect();
        hops.into_iter()
            .rev()
            .find(|ip| !self.trusted(*ip))
            .unwrap_or(peer)
    }

    fn trusted(&self, ip: IpAddr) -> bool {
        crate::http::forward::is_trusted(&self.settings.trusted_proxies, ip)
    }

    /// A Host naming this gateway directly: a loopback name or address, or the address the
    /// listener is bound to.
    fn names_this_gateway(&self, host: &[u8]) -> bool {
        let name = match host.iter().rposition(|&b| b == b':') {
            Some(i) if !host.ends_with(b"]") => &host[..i],
            _ => host,
        };
        let name = name
            .strip_prefix(b"[")
            .and_then(|n| n.strip_suffix(b"]"))
            .unwrap_or(name);
        if name.eq_ignore_ascii_case(b"localhost") {
            return true;
        }
        let Some(ip) = std::str::from_utf8(name)
            .ok()
            .and_then(|n| n.parse::<IpAddr>().ok())
        else {
            return false;
        };
        ip.is_loopback() || (!self.settings.listen.is_unspecified() && ip == self.settings.listen)
    }
}

/// The first field named `name` (lower-case).
fn field<'a>(head: &RequestHead, buf: &'a [u8], name: &[u8]) -> Option<&'a [u8]> {
    head.fields
        .iter()
        .find(|f| name_is(f.name(buf), name))
        .map(|f| f.value(buf))
}

/// The first host of an `X-Forwarded-Host` list, if it is one (as a Host field is judged).
fn first_host(v: &[u8]) -> Option<&[u8]> {
    let h = list_elements(v).next()?;
    h.iter().all(|&b| is_host_char(b)).then_some(h)
}
