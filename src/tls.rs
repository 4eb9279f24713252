//! TLS termination (`server.ssl.*`): the server certificate, loaded and checked at start and
//! on SIGHUP, and the handshake each TLS connection task runs before the proxy loop.
//!
//! - rustls with the ring provider, TLS 1.3 and 1.2, ALPN `http/1.1` only (a client that
//!   offers only other protocols is refused with `no_application_protocol`, RFC 7301 §3.2).
//! - One certificate chain and key (RSA, ECDSA P-256/P-384 or Ed25519; PKCS#8, PKCS#1 or
//!   SEC1 PEM). Refused at start: an unreadable file, no certificate, a key that does not
//!   belong to the leaf certificate, or a certificate of the chain past its `notAfter`.
//! - SNI: the gateway has one certificate, so it is served whatever name the client asks
//!   for (or none, as clients connecting by IP address send). A client that verifies names
//!   refuses it and says so with an alert; that alert is the `reason` of the audit
//!   `Failure`, next to the SNI it sent. Refusing unknown names ourselves would only turn
//!   that clear client-side error into an opaque `unrecognized_name` and break clients that
//!   connect by address, for no security gain.
//! - Resumption: stateless tickets (a ticket key per loaded configuration, shared by the
//!   workers, rotated by rustls), no server-side session cache, so no lock is shared
//!   between workers and a ticket works on whichever worker the kernel picks.
//! - The handshake runs here, driving rustls directly: the audit event needs the SNI and
//!   the reason of a failure, and a plain HTTP request on the TLS port gets a readable 400,
//!   as nginx does. Afterwards the connection goes on as a [`ServerTls`] stream, which holds
//!   no buffer of its own between requests.
//! - Reload: the main thread builds and checks a new [`ServerConfig`] and sends it to every
//!   worker; a connection uses the configuration current when it was accepted, so open
//!   connections keep theirs.

use std::cell::RefCell;
use std::io;
use std::path::Path;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use monoio::io::AsyncReadRent;
use monoio::io::AsyncWriteRentExt;
use monoio::net::TcpStream;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{NoServerSessionStorage, ServerConfig, ServerConnection};
use rustls::sign::{CertifiedKey, SingleCertAndKey};
use rustls::{AlertDescription, Error as TlsError, ProtocolVersion};

use crate::audit::Handshake;
use crate::config::{Config, SslConfig};
use crate::http::reply::Reply;
use crate::net::buffers::BufPool;
use crate::net::tls_stream::ServerTls;

const LOG: &str = "sessiongate::tls";
const CERT_KEY: &str = "server.ssl.certificate";
const KEY_KEY: &str = "server.ssl.certificate-private-key";
/// A certificate this close to its end is announced with a WARN at start and reload.
const EXPIRY_WARNING: Duration = Duration::from_secs(14 * 24 * 3600);
/// What a plain HTTP request on the TLS port is told before the connection closes.
fn plain_http_answer(head_request: bool) -> Vec<u8> {
    let text = "This port speaks HTTPS; the request was sent as plain HTTP.\n";
    let mut out = Vec::with_capacity(256);
    Reply::text(400, "Bad Request", text).write_to(&mut out, true, head_request);
    out
}

/// A certificate or key the gateway cannot serve; names the configuration key.
#[derive(Debug, thiserror::Error)]
#[error("{key}: {message}")]
pub struct CertError {
    pub key: &'static str,
    pub message: String,
}

fn cert_error(key: &'static str, message: String) -> CertError {
    CertError { key, message }
}

/// A checked server configuration and what to tell the operator about it.
pub struct Loaded {
    pub config: Arc<ServerConfig>,
    /// End of validity of the leaf certificate (seconds since the Unix epoch).
    pub not_after: i64,
    /// Certificates in the chain, leaf included.
    pub chain: usize,
}

impl Loaded {
    /// Logs what was loaded, and a WARN when the leaf is about to expire or not yet valid.
    pub fn announce(&self, ssl: &SslConfig, now: SystemTime) {
        let until = format_unix(self.not_after);
        let left = self.not_after - unix(now);
        if left < EXPIRY_WARNING.as_secs() as i64 {
            tracing::warn!(target: LOG, certificate = %ssl.certificate.display(), until = %until, "server certificate expires in less than 14 days");
        } else {
            tracing::info!(target: LOG, certificate = %ssl.certificate.display(), chain = self.chain, until = %until, "server certificate loaded");
        }
    }
}

/// Reads and checks `server.ssl.*` and builds the server configuration.
pub fn load(ssl: &SslConfig, now: SystemTime) -> Result<Loaded, CertError> {
    let pem = read(&ssl.certificate, CERT_KEY)?;
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<_, _>>()
        .map_err(|e| {
            cert_error(
                CERT_KEY,
                format!(
                    "{}: not a PEM certificate chain: {e}",
                    ssl.certificate.display()
                ),
            )
        })?;
    if chain.is_empty() {
        return Err(cert_error(
            CERT_KEY,
            format!(
                "{} holds no certificate (expected PEM `BEGIN CERTIFICATE` blocks, leaf first)",
                ssl.certificate.display()
            ),
        ));
    }
    let now = unix(now);
    let mut not_after = 0;
    for (i, der) in chain.iter().enumerate() {
        let which = if i == 0 {
            "the certificate".to_string()
        } else {
            format!("certificate {} of the chain", i + 1)
        };
        let Some((from, until)) = validity(der) else {
            return Err(cert_error(
                CERT_KEY,
                format!(
                    "{}: {which} is not a valid X.509 certificate",
                    ssl.certificate.display()
                ),
            ));
        };
        if until < now {
            return Err(cert_error(
                CERT_KEY,
                format!(
                    "{}: {which} expired on {}",
                    ssl.certificate.display(),
                    format_unix(until)
                ),
            ));
        }
        if from > now {
            tracing::warn!(target: LOG, certificate = %ssl.certificate.display(), from = %format_unix(from), "{which} is not valid yet; clients will refuse it until then");
        }
        if i == 0 {
            not_after = until;
        }
    }

    let pem = read(&ssl.certificate_private_key, KEY_KEY)?;
    let key = PrivateKeyDer::from_pem_slice(&pem).map_err(|e| {
        cert_error(
            KEY_KEY,
            format!(
                "{}: no private key found (PKCS#8, PKCS#1 or SEC1 PEM expected): {e}",
                ssl.certificate_private_key.display()
            ),
        )
    })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let key = provider.key_provider.load_private_key(key).map_err(|e| {
        cert_error(
            KEY_KEY,
            format!(
                "{}: unsupported private key (RSA, ECDSA P-256/P-384 or Ed25519 expected): {e}",
                ssl.certificate_private_key.display()
            ),
        )
    })?;
    let chain_len = chain.len();
    let certified = CertifiedKey::new(chain, key);
    match certified.keys_match() {
        Ok(()) | Err(TlsError::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => {}
        Err(TlsError::InconsistentKeys(_)) => {
            return Err(cert_error(
                KEY_KEY,
                format!(
                    "{} does not belong to the certificate in {} ({CERT_KEY}): their public keys differ",
                    ssl.certificate_private_key.display(),
                    ssl.certificate.display()
                ),
            ))
        }
        Err(e) => {
            return Err(cert_error(
                CERT_KEY,
                format!("{}: {e}", ssl.certificate.display()),
            ))
        }
    }
    let ticketer = rustls::crypto::ring::Ticketer::new()
        .map_err(|e| cert_error(CERT_KEY, format!("cannot create a ticket key: {e}")))?;
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| cert_error(CERT_KEY, e.to_string()))?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(SingleCertAndKey::from(certified)));
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    config.session_storage = Arc::new(NoServerSessionStorage {});
    config.ticketer = ticketer;
    Ok(Loaded {
        config: Arc::new(config),
        not_after,
        chain: chain_len,
    })
}

fn read(path: &Path, key: &'static str) -> Result<Vec<u8>, CertError> {
    std::fs::read(path).map_err(|e| cert_error(key, format!("cannot read {}: {e}", path.display())))
}

fn unix(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// `2026-05-01 12:00:00 UTC`.
fn format_unix(secs: i64) -> String {
    let (y, m, d) = crate::clock::civil_from_days(secs.div_euclid(86_400));
    let s = secs.rem_euclid(86_400);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} UTC",
        s / 3600,
        s / 60 % 60,
        s % 60
    )
}

/// The WARN for a Secure SESSION cookie that browsers will never send back: login is on,
/// `cg.useSecureSessionCookie` is true, no listener speaks TLS and no trusted front proxy is
/// declared that could terminate it.
pub fn secure_cookie_warning(config: &Config) -> Option<&'static str> {
    let login = !config.oauth2.registrations.is_empty();
    (login
        && config.cg.use_secure_session_cookie
        && config.server.ssl.is_none()
        && config.gateway.trusted_proxies.is_empty())
    .then_some(
        "cg.useSecureSessionCookie is true but no listener speaks TLS (server.ssl) and no \
         TLS-terminating front proxy is declared (sessiongate.trusted-proxies): browsers keep a \
         Secure cookie set over plain http only for localhost, so logins will not stick. \
         Enable server.ssl, declare the proxy, or set cg.useSecureSessionCookie: false for \
         a plain-http test setup",
    )
}

// ---------------------------------------------------------------------------------------
// Certificate validity, read from DER without a full X.509 parser.

/// One DER TLV: (tag, content, rest).
fn der(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, mut rest) = rest.split_first()?;
    let len = if first < 0x80 {
        usize::from(first)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n]
            .iter()
            .fold(0usize, |l, &b| (l << 8) | usize::from(b));
        rest = &rest[n..];
        len
    };
    (rest.len() >= len).then(|| (tag, &rest[..len], &rest[len..]))
}

/// `(notBefore, notAfter)` of an X.509 certificate, seconds since the Unix epoch (RFC 5280
/// §4.1: Certificate > TBSCertificate > `[version]`, serial, signature, issuer, validity).
pub fn validity(cert: &[u8]) -> Option<(i64, i64)> {
    const SEQ: u8 = 0x30;
    let (SEQ, cert, _) = der(cert)? else {
        return None;
    };
    let (SEQ, tbs, _) = der(cert)? else {
        return None;
    };
    let (tag, _, after_version) = der(tbs)?;
    let fields = if tag == 0xa0 { after_version } else { tbs };
    let (0x02, _, rest) = der(fields)? else {
        return None;
    };
    let (SEQ, _, rest) = der(rest)? else {
        return None;
    };
    let (SEQ, _, rest) = der(rest)? else {
        return None;
    };
    let (SEQ, validity, _) = der(rest)? else {
        return None;
    };
    let (t1, from, rest) = der(validity)?;
    let (t2, until, _) = der(rest)?;
    Some((der_time(t1, from)?, der_time(t2, until)?))
}

/// UTCTime (`YYMMDDHHMMSSZ`, 1950-2049) or GeneralizedTime (`YYYYMMDDHHMMSSZ`), RFC 5280
/// §4.1.2.5.
fn der_time(tag: u8, s: &[u8]) -> Option<i64> {
    let num = |b: &[u8]| -> Option<u32> {
        b.iter().try_fold(0u32, |n, &c| {
            c.is_ascii_digit().then(|| n * 10 + u32::from(c - b'0'))
        })
    };
    let (year, rest) = match (tag, s.len()) {
        (0x17, 13) => {
            let yy = i64::from(num(&s[..2])?);
            (if yy >= 50 { 1900 + yy } else { 2000 + yy }, &s[2..])
        }
        (0x18, 15) => (i64::from(num(&s[..4])?), &s[4..]),
        _ => return None,
    };
    if rest[10] != b'Z' {
        return None;
    }
    let (mo, d, h, mi, sec) = (
        num(&rest[0..2])?,
        num(&rest[2..4])?,
        num(&rest[4..6])?,
        num(&rest[6..8])?,
        num(&rest[8..10])?,
    );
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    Some(crate::clock::days_from_civil(year, mo, d) * 86_400 + i64::from(h * 3600 + mi * 60 + sec))
}

// ---------------------------------------------------------------------------------------
// Per worker: the configuration new connections get, and the connection task.

/// A worker's current server configuration; replaced by a reload.
pub struct Terminator {
    config: RefCell<Arc<ServerConfig>>,
}

impl Terminator {
    pub fn new(config: Arc<ServerConfig>) -> Terminator {
        Terminator {
            config: RefCell::new(config),
        }
    }

    /// Connections accepted from now on use `config`; open ones keep theirs.
    pub fn set(&self, config: Arc<ServerConfig>) {
        *self.config.borrow_mut() = config;
    }

    pub fn current(&self) -> Arc<ServerConfig> {
        self.config.borrow().clone()
    }
}

/// Why a handshake failed, with the SNI if the ClientHello got that far.
#[derive(Debug)]
pub struct Failure {
    pub sni: Option<Box<str>>,
    pub reason: String,
}

enum HsError {
    /// The peer closed; `true` once it had sent something.
    Eof(bool),
    Io(io::Error),
    Tls(TlsError),
    /// A plain HTTP request; `true` when it is a HEAD (its answer carries no body).
    PlainHttp(bool),
}

/// Runs the server side of a handshake on `tcp` within `limit`.
pub async fn accept(
    mut tcp: TcpStream,
    config: Arc<ServerConfig>,
    limit: Duration,
    pool: Rc<BufPool>,
) -> Result<(ServerTls, Handshake), Failure> {
    let mut conn = ServerConnection::new(config).map_err(|e| Failure {
        sni: None,
        reason: format!("cannot start TLS: {e}"),
    })?;
    let result = monoio::time::timeout(limit, drive(&mut tcp, &mut conn)).await;
    let sni = || conn.server_name().map(Into::into);
    let error = match result {
        Ok(Ok(())) => {
            let hs = Handshake {
                sni: sni(),
                protocol: match conn.protocol_version() {
                    Some(ProtocolVersion::TLSv1_3) => "TLSv1.3",
                    Some(ProtocolVersion::TLSv1_2) => "TLSv1.2",
                    _ => "unknown",
                },
                cipher: conn
                    .negotiated_cipher_suite()
                    .and_then(|s| s.suite().as_str())
                    .unwrap_or("unknown"),
                resumed: conn.handshake_kind() == Some(rustls::HandshakeKind::Resumed),
            };
            return Ok((ServerTls::new(tcp, conn, pool), hs));
        }
        Ok(Err(e)) => e,
        Err(_) => {
            return Err(Failure {
                sni: sni(),
                reason: format!("handshake not completed within {} ms", limit.as_millis()),
            })
        }
    };
    let reason = match error {
        HsError::Eof(false) => "client closed the connection before sending a ClientHello".into(),
        HsError::Eof(true) => "client closed the connection during the handshake".into(),
        HsError::Io(e) => format!("I/O error during the handshake: {e}"),
        HsError::PlainHttp(head_request) => {
            let _ =
                monoio::time::timeout(limit, tcp.write_all(plain_http_answer(head_request))).await;
            "plain HTTP request on the TLS port".into()
        }
        HsError::Tls(e) => tls_reason(&e),
    };
    Err(Failure { sni: sni(), reason })
}

fn tls_reason(e: &TlsError) -> String {
    match e {
        TlsError::AlertReceived(
            a @ (AlertDescription::BadCertificate
            | AlertDescription::UnknownCA
            | AlertDescription::CertificateUnknown
            | AlertDescription::CertificateExpired
            | AlertDescription::UnsupportedCertificate
            | AlertDescription::AccessDenied),
        ) => format!(
            "client refused our certificate (alert {a:?}): the name it asked for is not in the certificate, or it does not trust the issuer"
        ),
        TlsError::AlertReceived(a) => format!("client sent alert {a:?}"),
        TlsError::NoApplicationProtocol => {
            "no common ALPN protocol (the client does not offer http/1.1)".into()
        }
        TlsError::PeerIncompatible(p) => format!("client is incompatible: {p:?}"),
        e => format!("TLS error: {e}"),
    }
}

/// The handshake loop: send what rustls wants sent, feed it what arrives, until it is done.
/// Records that arrive with the client's last flight (an early request) stay decrypted in
/// `conn` and are read first by the stream built from it.
async fn drive(tcp: &mut TcpStream, conn: &mut ServerConnection) -> Result<(), HsError> {
    let mut rbuf: Vec<u8> = Vec::with_capacity(16 * 1024);
    let mut wbuf: Vec<u8> = Vec::with_capacity(4 * 1024);
    let mut received = false;
    loop {
        flush(tcp, conn, &mut wbuf).await?;
        if !conn.is_handshaking() {
            return Ok(());
        }
        rbuf.clear();
        let (res, b) = tcp.read(rbuf).await;
        rbuf = b;
        match res {
            Ok(0) => return Err(HsError::Eof(received)),
            Ok(_) => {}
            Err(e) => return Err(HsError::Io(e)),
        }
        if !received && rbuf[0].is_ascii_uppercase() {
            // A TLS record starts with its content type (0x16 for a handshake); an upper-
            // case letter is the first byte of an HTTP method.
            return Err(HsError::PlainHttp(rbuf.starts_with(b"HEAD ")));
        }
        received = true;
        let mut rest = &rbuf[..];
        while !rest.is_empty() {
            conn.read_tls(&mut rest).map_err(HsError::Io)?;
            if let Err(e) = conn.process_new_packets() {
                // rustls queued an alert saying why; send it, best effort.
                let _ = flush(tcp, conn, &mut wbuf).await;
                return Err(HsError::Tls(e));
            }
        }
    }
}

async fn flush(
    tcp: &mut TcpStream,
    conn: &mut ServerConnection,
    wbuf: &mut Vec<u8>,
) -> Result<(), HsError> {
    while conn.wants_write() {
        wbuf.clear();
        conn.write_tls(wbuf).map_err(HsError::Io)?;
        let (res, b) = tcp.write_all(std::mem::take(wbuf)).await;
        *wbuf = b;
        res.map_err(HsError::Io)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A self-signed certificate's validity: 2024-01-01 to 2049-12-31 (UTCTime), and
    /// 2050-01-01 (GeneralizedTime, as RFC 5280 requires from 2050 on).
    #[test]
    fn der_times() {
        assert_eq!(
            der_time(0x17, b"240101000000Z"),
            Some(crate::clock::days_from_civil(2024, 1, 1) * 86_400)
        );
        assert_eq!(
            der_time(0x17, b"491231235959Z"),
            Some(crate::clock::days_from_civil(2049, 12, 31) * 86_400 + 86_399)
        );
        assert_eq!(
            der_time(0x17, b"500101000000Z"),
            Some(crate::clock::days_from_civil(1950, 1, 1) * 86_400)
        );
        assert_eq!(
            der_time(0x18, b"20500101000000Z"),
            Some(crate::clock::days_from_civil(2050, 1, 1) * 86_400)
        );
        assert_eq!(der_time(0x17, b"241301000000Z"), None);
        assert_eq!(der_time(0x17, b"2401010000000"), None);
        assert_eq!(der_time(0x17, b"24010100000Z"), None);
        assert_eq!(der_time(0x04, b"240101000000Z"), None);
    }

    #[test]
    fn der_lengths() {
        assert_eq!(
            der(&[0x30, 0x01, 0xff, 0x00]),
            Some((0x30, &[0xff][..], &[0x00][..]))
        );
        let mut long = vec![0x04, 0x82, 0x01, 0x00];
        long.extend_from_slice(&[7u8; 256]);
        let (tag, content, rest) = der(&long).unwrap();
        assert_eq!((tag, content.len(), rest.len()), (0x04, 256, 0));
        assert_eq!(der(&[0x30, 0x02, 0x00]), None);
        assert_eq!(der(&[0x30, 0x80]), None);
        assert_eq!(der(&[0x30]), None);
        assert_eq!(validity(&[0x30, 0x00]), None);
        assert_eq!(validity(b"not a certificate"), None);
    }

    #[test]
    fn plain_http_answer_is_well_framed() {
        let answer = plain_http_answer(false);
        let head = plain_http_answer(true);
        assert!(answer.starts_with(&head) && head.ends_with(b"\r\n\r\n"));
        let text = std::str::from_utf8(&answer).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(head.contains(&format!("Content-Length: {}", body.len())));
    }

    #[test]
    fn secure_cookie_warning_needs_login_and_no_tls_anywhere() {
        let login = "spring.security.oauth2.client.registration.kc.client-id: gw\n\
                     spring.security.oauth2.client.provider.kc.issuer-uri: http://127.0.0.1:9/r\n";
        let cfg = |extra: &str| crate::config::load_str(&format!("{login}{extra}")).unwrap();
        assert!(secure_cookie_warning(&cfg("")).is_some());
        assert!(secure_cookie_warning(&cfg("cg.useSecureSessionCookie: false\n")).is_none());
        assert!(secure_cookie_warning(&cfg("sessiongate.trusted-proxies: 10.0.0.1\n")).is_none());
        assert!(secure_cookie_warning(&cfg(
            "server.ssl.certificate: /c\nserver.ssl.certificate-private-key: /k\n"
        ))
        .is_none());
        // Proxy only: no session cookie to warn about.
        let proxy_only = crate::config::load_str("").unwrap();
        assert!(secure_cookie_warning(&proxy_only).is_none());
    }

    #[test]
    fn dates_read_well() {
        assert_eq!(format_unix(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(format_unix(1_700_000_000), "2023-11-14 22:13:20 UTC");
    }

    /// Writes a chain and key to temporary files; returns the `server.ssl` section.
    fn files(name: &str, cert_pem: &str, key_pem: &str) -> SslConfig {
        // Under the build directory, not /tmp: `cargo clean` removes it, nothing piles up.
        let dir = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("target")
            .join("unit-tmp")
            .join(format!("tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let certificate = dir.join(format!("{name}.crt"));
        let certificate_private_key = dir.join(format!("{name}.key"));
        std::fs::write(&certificate, cert_pem).unwrap();
        std::fs::write(&certificate_private_key, key_pem).unwrap();
        SslConfig {
            certificate,
            certificate_private_key,
        }
    }

    fn self_signed(key: &rcgen::KeyPair, not_after: (i32, u8, u8)) -> String {
        let mut p = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap();
        p.not_before = rcgen::date_time_ymd(2020, 1, 1);
        p.not_after = rcgen::date_time_ymd(not_after.0, not_after.1, not_after.2);
        p.self_signed(key).unwrap().pem()
    }

    #[test]
    fn key_types_load() {
        let rsa_pkcs8 = include_str!("../tests/fixtures/tls/rsa-2048.pkcs8.pem");
        let rsa_pkcs1 = include_str!("../tests/fixtures/tls/rsa-2048.pkcs1.pem");
        let rsa =
            rcgen::KeyPair::from_pem_and_sign_algo(rsa_pkcs8, &rcgen::PKCS_RSA_SHA256).unwrap();
        let ecdsa = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let p384 = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).unwrap();
        let ed = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
        let cases = [
            (
                "rsa-pkcs1",
                self_signed(&rsa, (2090, 1, 1)),
                rsa_pkcs1.to_string(),
            ),
            (
                "rsa-pkcs8",
                self_signed(&rsa, (2090, 1, 1)),
                rsa.serialize_pem(),
            ),
            (
                "ecdsa",
                self_signed(&ecdsa, (2090, 1, 1)),
                ecdsa.serialize_pem(),
            ),
            (
                "p384",
                self_signed(&p384, (2090, 1, 1)),
                p384.serialize_pem(),
            ),
            (
                "ed25519",
                self_signed(&ed, (2090, 1, 1)),
                ed.serialize_pem(),
            ),
        ];
        for (name, cert, key) in cases {
            let l = load(&files(name, &cert, &key), SystemTime::now())
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(l.chain, 1);
            assert_eq!(
                l.not_after,
                crate::clock::days_from_civil(2090, 1, 1) * 86_400,
                "{name}"
            );
            assert_eq!(l.config.alpn_protocols, vec![b"http/1.1".to_vec()]);
        }
    }

    #[test]
    fn bad_files_are_refused_with_their_key() {
        let a = rcgen::KeyPair::generate().unwrap();
        let b = rcgen::KeyPair::generate().unwrap();
        let cert = self_signed(&a, (2090, 1, 1));

        let e = load(
            &files("mismatch", &cert, &b.serialize_pem()),
            SystemTime::now(),
        )
        .err()
        .unwrap();
        assert_eq!(e.key, KEY_KEY);
        assert!(
            e.message.contains("does not belong to the certificate"),
            "{e}"
        );

        let expired = self_signed(&a, (2021, 1, 1));
        let e = load(
            &files("expired", &expired, &a.serialize_pem()),
            SystemTime::now(),
        )
        .err()
        .unwrap();
        assert_eq!(e.key, CERT_KEY);
        assert!(
            e.message.contains("expired on 2021-01-01 00:00:00 UTC"),
            "{e}"
        );

        let e = load(
            &files("nocert", "hello\n", &a.serialize_pem()),
            SystemTime::now(),
        )
        .err()
        .unwrap();
        assert_eq!(e.key, CERT_KEY);
        assert!(e.message.contains("holds no certificate"), "{e}");

        let e = load(&files("nokey", &cert, &cert), SystemTime::now())
            .err()
            .unwrap();
        assert_eq!(e.key, KEY_KEY);
        assert!(e.message.contains("no private key"), "{e}");

        // Time is passed in: the same files are fine before the expiry.
        let before = UNIX_EPOCH + Duration::from_secs(1_600_000_000);
        assert!(load(&files("expired2", &expired, &a.serialize_pem()), before).is_ok());
    }

    #[test]
    fn missing_files_name_their_key() {
        let ssl = SslConfig {
            certificate: "/nonexistent/tls.crt".into(),
            certificate_private_key: "/nonexistent/tls.key".into(),
        };
        let e = load(&ssl, SystemTime::now()).err().expect("refused");
        assert_eq!(e.key, CERT_KEY);
        assert!(e
            .to_string()
            .starts_with("server.ssl.certificate: cannot read /nonexistent/tls.crt"));
    }
}
