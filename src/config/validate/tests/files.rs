//! The files read at load: `sessiongate.access-banner` and `sessiongate.ca-bundle`.

use std::path::PathBuf;

use super::{fails, load};

/// Writes `content` to a file of this test process's temporary directory.
fn temp_file(name: &str, content: &str) -> PathBuf {
    // Under the build directory, not /tmp: `cargo clean` removes it, nothing piles up.
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("target")
        .join("unit-tmp")
        .join(format!("config-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, content).unwrap();
    path
}

fn ca_pem() -> String {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut params = rcgen::CertificateParams::new(vec!["ca.example".to_string()]).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params.self_signed(&key).unwrap().pem()
}

#[test]
fn the_access_banner_is_read_at_load() {
    let path = temp_file("banner.html", "<p>Authorised use only</p>\n");
    let c = load(&format!("sessiongate.access-banner: {}\n", path.display()));
    assert_eq!(
        c.gateway.access_banner.as_deref(),
        Some("<p>Authorised use only</p>\n")
    );
    fails(
        "sessiongate.access-banner: /nonexistent/banner.html\n",
        "sessiongate.access-banner",
        "cannot read /nonexistent/banner.html",
    );
}

#[test]
fn the_ca_bundle_is_read_and_parsed_at_load() {
    let pem = ca_pem();
    let path = temp_file("two-cas.pem", &format!("{pem}{}", ca_pem()));
    let c = load(&format!("sessiongate.ca-bundle: {}\n", path.display()));
    let certs = c.gateway.ca_bundle.expect("the bundle's certificates");
    assert_eq!(certs.len(), 2);
    assert!(crate::client::tls_config(Some(&certs)).is_ok());
    fails(
        "sessiongate.ca-bundle: /nonexistent/ca.pem\n",
        "sessiongate.ca-bundle",
        "cannot read /nonexistent/ca.pem",
    );
}

#[test]
fn a_ca_bundle_without_usable_certificates_is_refused() {
    let empty = temp_file("empty.pem", "");
    fails(
        &format!("sessiongate.ca-bundle: {}\n", empty.display()),
        "sessiongate.ca-bundle",
        "holds no certificate",
    );
    let garbage = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
    let not_a_certificate = temp_file("garbage.pem", garbage);
    fails(
        &format!("sessiongate.ca-bundle: {}\n", not_a_certificate.display()),
        "sessiongate.ca-bundle",
        "certificate 1",
    );
}
