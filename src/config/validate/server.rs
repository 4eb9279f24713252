//! `server.*` (the public listener and its TLS files) and `management.*` (the admin
//! listener).

use std::net::{IpAddr, Ipv4Addr};

use super::section::Section;
use super::{ConfigError, Result};
use crate::config::{ManagementConfig, ServerConfig, SslConfig};

pub(super) fn server(s: &Section) -> Result<ServerConfig> {
    Ok(ServerConfig {
        address: s.ip("address", IpAddr::V4(Ipv4Addr::UNSPECIFIED))?,
        port: s.port("port")?.unwrap_or(8080),
        ssl: ssl(&s.section(
            "ssl",
            &["enabled", "certificate", "certificate-private-key"],
        )?)?,
    })
}

/// `server.ssl`: on when `enabled` says so, or (Spring's default `enabled: true`) when a
/// certificate or key is given; then both are required. The files are read at start-up.
fn ssl(s: &Section) -> Result<Option<SslConfig>> {
    let certificate = s.path("certificate")?;
    let key = s.path("certificate-private-key")?;
    let configured = certificate.is_some() || key.is_some();
    if !s.bool("enabled", configured)? {
        return Ok(None);
    }
    let missing =
        |k: &str| ConfigError::invalid(&s.key(k), "required when TLS is enabled (PEM file)");
    Ok(Some(SslConfig {
        certificate: certificate.ok_or_else(|| missing("certificate"))?,
        certificate_private_key: key.ok_or_else(|| missing("certificate-private-key"))?,
    }))
}

pub(super) fn management(m: &Section, sessiongate: &Section) -> Result<ManagementConfig> {
    let server = m.section("server", &["address", "port"])?;
    Ok(ManagementConfig {
        address: server.ip("address", IpAddr::V4(Ipv4Addr::LOCALHOST))?,
        port: server.port("port")?,
        token: sessiongate.text("management-token")?,
    })
}
