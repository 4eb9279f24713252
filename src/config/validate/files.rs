//! The files a configuration names for the gateway to keep in memory, read at load so that
//! a missing or unusable one is a configuration error: `sessiongate.access-banner` (the
//! banner page's text), `sessiongate.ca-bundle` (PEM certificates trusted for outgoing
//! https besides the system roots), and the gateway's pages (`sessiongate.page-templates`,
//! `sessiongate.logo`).

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;

use super::section::Section;
use super::{ConfigError, Result};
use crate::pages::{Branding, Pages};

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

/// The largest logo inlined into the pages.
const MAX_LOGO: u64 = 64 * 1024;

/// `page-templates` (a directory; each of `error.html`, `signed-out.html`, `banner.html`
/// it holds replaces the built-in page), `product-name` and `logo` (an image file).
pub(super) fn pages(s: &Section) -> Result<Arc<Pages>> {
    let dir = s.path("page-templates")?;
    let read = |name: &str| -> Result<Option<String>> {
        let Some(dir) = &dir else { return Ok(None) };
        let path = dir.join(name);
        match std::fs::read_to_string(&path) {
            Ok(t) => Ok(Some(t)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && dir.is_dir() => Ok(None),
            Err(e) => Err(cannot_read(s, "page-templates", &path, &e)),
        }
    };
    let (error, signed_out, banner) = (
        read("error.html")?,
        read("signed-out.html")?,
        read("banner.html")?,
    );
    let product_name = s.text("product-name")?;
    let logo = match s.path("logo")? {
        None => None,
        Some(path) => Some(logo(s, &path)?),
    };
    let branding = Branding {
        error: error.as_deref(),
        signed_out: signed_out.as_deref(),
        banner: banner.as_deref(),
        product_name: product_name.as_deref(),
        logo: logo.as_ref().map(|(m, b)| (*m, b.as_slice())),
    };
    Pages::new(&branding)
        .map(Arc::new)
        .map_err(|e| ConfigError::invalid(&s.key("page-templates"), e.to_string()))
}

/// The logo's media type (from its extension) and bytes.
fn logo(s: &Section, path: &Path) -> Result<(&'static str, Vec<u8>)> {
    let invalid = |why: String| ConfigError::invalid(&s.key("logo"), why);
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase();
    let mime = match ext.as_str() {
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "webp" => "image/webp",
        _ => {
            return Err(invalid(format!(
                "{}: expected .svg, .png, .jpg, .gif or .webp",
                path.display()
            )))
        }
    };
    let len = std::fs::metadata(path)
        .map_err(|e| cannot_read(s, "logo", path, &e))?
        .len();
    if len > MAX_LOGO {
        return Err(invalid(format!(
            "{} is {len} bytes; at most {MAX_LOGO} are inlined",
            path.display()
        )));
    }
    let bytes = std::fs::read(path).map_err(|e| cannot_read(s, "logo", path, &e))?;
    Ok((mime, bytes))
}

fn cannot_read(s: &Section, key: &str, path: &Path, e: &dyn std::fmt::Display) -> ConfigError {
    ConfigError::invalid(&s.key(key), format!("cannot read {}: {e}", path.display()))
}
