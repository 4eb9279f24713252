//! `server.*` (the public listener and its TLS files) and `management.*` (the admin
//! listener).

use std::net::{IpAddr, Ipv4Addr};

use super::section::Section;
use crate::config::{ManagementConfig, ServerConfig, SslConfig};

pub(super) fn server(s: &Section) -> ServerConfig {
    ServerConfig {
        address: s
            .take(s.ip("address"))
            .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED)),
        port: s.take(s.port("port")).unwrap_or(8080),
        ssl: ssl(&s.section(
            "ssl",
            &["enabled", "certificate", "certificate-private-key"],
        )),
    }
}

/// `server.ssl`: on when `enabled` says so, or (Spring's default `enabled: true`) when a
/// certificate or key is given; then both are required. The files are read at start-up.
fn ssl(s: &Section) -> Option<SslConfig> {
    let certificate = s.take(s.path("certificate"));
    let key = s.take(s.path("certificate-private-key"));
    let configured = certificate.is_some() || key.is_some();
    if !s.take(s.bool("enabled", configured)) {
        return None;
    }
    const PEM: &str = "required when TLS is enabled (PEM file)";
    if certificate.is_none() {
        s.missing("certificate", PEM);
    }
    if key.is_none() {
        s.missing("certificate-private-key", PEM);
    }
    Some(SslConfig {
        certificate: certificate?,
        certificate_private_key: key?,
    })
}

pub(super) fn management(m: &Section, sessiongate: &Section) -> ManagementConfig {
    let server = m.section("server", &["address", "port"]);
    ManagementConfig {
        address: server
            .take(server.ip("address"))
            .unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST)),
        port: server.take(server.port("port")),
        token: sessiongate.take(sessiongate.text("management-token")),
    }
}
