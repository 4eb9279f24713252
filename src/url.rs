//! [`HttpUrl`]: an absolute http(s) URL split once into scheme, host, port and path. The
//! configuration's URLs (route upstreams, listeners, provider endpoints) and the URLs a
//! provider announces in its discovery document are held in this form.

use std::net::Ipv6Addr;

/// An absolute http(s) URL, split once at load time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpUrl {
    /// The URL as written (after placeholder expansion).
    pub original: String,
    pub tls: bool,
    pub host: String,
    pub port: u16,
    /// Path and query, at least `/`.
    pub path_and_query: String,
}

impl HttpUrl {
    /// `host` or `host:port` as it belongs in a Host header (port omitted when default).
    pub fn authority(&self) -> String {
        let default = if self.tls { 443 } else { 80 };
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        if self.port == default {
            host
        } else {
            format!("{}:{}", host, self.port)
        }
    }

    /// Parses an absolute `http://` or `https://` URL. Refused: other schemes, user
    /// information, fragments, an empty host, a bad port, spaces, control and non-ASCII
    /// characters (percent-encode them). The host is lower-cased; IPv6 literals must be in
    /// brackets and are stored without them. The error says what is wrong.
    pub fn parse(text: &str) -> Result<HttpUrl, String> {
        let (tls, rest) =
            split_scheme(text).ok_or("expected an absolute http:// or https:// URL")?;
        if text.bytes().any(|b| !(0x21..=0x7e).contains(&b)) {
            return Err("spaces, control and non-ASCII characters must be percent-encoded".into());
        }
        if text.contains('#') {
            return Err("a fragment (#...) is not allowed".into());
        }
        let end = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, tail) = rest.split_at(end);
        if authority.contains('@') {
            return Err("user information (user@host) is not allowed".into());
        }
        let (host, port) = split_host_port(authority)?;
        let port = match port {
            None if tls => 443,
            None => 80,
            Some(p) => parse_port(p)?,
        };
        let path_and_query = match tail {
            "" => "/".to_string(),
            t if t.starts_with('?') => format!("/{t}"),
            t => t.to_string(),
        };
        Ok(HttpUrl {
            original: text.to_string(),
            tls,
            host,
            port,
            path_and_query,
        })
    }
}

fn split_scheme(text: &str) -> Option<(bool, &str)> {
    let (scheme, rest) = text.split_once("://")?;
    match scheme.to_ascii_lowercase().as_str() {
        "http" => Some((false, rest)),
        "https" => Some((true, rest)),
        _ => None,
    }
}

fn split_host_port(authority: &str) -> Result<(String, Option<&str>), String> {
    if let Some(bracketed) = authority.strip_prefix('[') {
        let (ip, after) = bracketed
            .split_once(']')
            .ok_or("unclosed `[` in the host")?;
        let ip: Ipv6Addr = ip
            .parse()
            .map_err(|_| format!("{ip:?} is not an IPv6 address"))?;
        let port = match after {
            "" => None,
            p => Some(
                p.strip_prefix(':')
                    .ok_or("unexpected text after the IPv6 address")?,
            ),
        };
        return Ok((ip.to_string(), port));
    }
    let (host, port) = match authority.split_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (authority, None),
    };
    if host.is_empty() {
        return Err("the host is empty".into());
    }
    if port.is_some_and(|p| p.contains(':')) {
        return Err("IPv6 addresses must be written in brackets ([::1])".into());
    }
    if !host
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'))
    {
        return Err(format!("{host:?} is not a valid host name"));
    }
    Ok((host.to_ascii_lowercase(), port))
}

fn parse_port(port: &str) -> Result<u16, String> {
    match port.parse::<u16>() {
        Ok(p) if p > 0 && port.bytes().all(|b| b.is_ascii_digit()) => Ok(p),
        _ => Err(format!("{port:?} is not a port number (1-65535)")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_parsing() {
        let u = HttpUrl::parse("HTTPS://Example.COM?x=1").unwrap();
        assert!(u.tls);
        assert_eq!(
            (u.host.as_str(), u.port, u.path_and_query.as_str()),
            ("example.com", 443, "/?x=1")
        );
        for bad in [
            "example.com/x",
            "http://",
            "http://:80/",
            "http://h:0/",
            "http://h:/",
            "http://h:8o/",
            "http://u:p@h/",
            "http://h/#frag",
            "http://h/a b",
            "http://::1/",
            "http://[zz]/",
            "ws://h/",
        ] {
            assert!(HttpUrl::parse(bad).is_err(), "{bad} should be refused");
        }
    }

    #[test]
    fn authority_omits_the_default_port_and_brackets_ipv6() {
        let authority = |s: &str| HttpUrl::parse(s).unwrap().authority();
        assert_eq!(authority("https://h:443/"), "h");
        assert_eq!(authority("http://h:8080/"), "h:8080");
        assert_eq!(authority("http://[::1]:8081/"), "[::1]:8081");
        assert_eq!(authority("http://[::1]/"), "[::1]");
    }
}
