//! The files a configuration names for the gateway to keep in memory, read at load so that
//! a missing or unusable one is a configuration error: `sessiongate.access-banner` (the
//! banner page's text) and `sessiongate.ca-bundle` (PEM certificates trusted for outgoing
//! https besides the system roots).

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;

use super::section::Section;
use super::{ConfigError, Result};

/// `access-banner`: the file's text (UTF-8).
pub(super) fn access_banner(s: &Section) -> Result<Option<Arc<str>>> {
    let Some(path) = s.path("access-banner")? else {
        return Ok(None);
    };
    let text =
        std::fs::read_to_string(&path).map_err(|e| cannot_read(s, "access-banner", &path, &e))?;
    Ok(Some(text.into()))
}

/// `ca-bundle`: every certificate of the PEM file, at least one, each usable as a trust
/// anchor.
pub(super) fn ca_bundle(s: &Section) -> Result<Option<Vec<CertificateDer<'static>>>> {
    let Some(path) = s.path("ca-bundle")? else {
        return Ok(None);
    };
    let invalid = |why: String| ConfigError::invalid(&s.key("ca-bundle"), why);
    let certs = CertificateDer::pem_file_iter(&path)
        .map_err(|e| cannot_read(s, "ca-bundle", &path, &e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| invalid(format!("{}: {e}", path.display())))?;
    if certs.is_empty() {
        return Err(invalid(format!("{} holds no certificate", path.display())));
    }
    let mut roots = rustls::RootCertStore::empty();
    for (i, cert) in certs.iter().enumerate() {
        roots
            .add(cert.clone())
            .map_err(|e| invalid(format!("{}: certificate {}: {e}", path.display(), i + 1)))?;
    }
    Ok(Some(certs))
}

fn cannot_read(s: &Section, key: &str, path: &Path, e: &dyn std::fmt::Display) -> ConfigError {
    ConfigError::invalid(&s.key(key), format!("cannot read {}: {e}", path.display()))
}
