//! TLS termination, connection sessions and their audit trail (issue #5), with certificates
//! generated here by rcgen: a private CA, server certificates for `localhost`/127.0.0.1,
//! an expired one and a key that does not fit.
//!
//! Scenarios: TLS 1.2 and 1.3 clients (pinned versions) through to the backend with
//! `X-Forwarded-Proto: https`; RSA, ECDSA and Ed25519 keys; a wrong SNI, plain HTTP on the
//! TLS port, a client that aborts or stalls the handshake (each an audited `Failure` with
//! its reason); the idle timeout closing a TLS connection (audited `TERMINATED`); SIGHUP
//! serving a new certificate to new connections while an open one goes on; a plain
//! `sessiongate.http-port` beside the TLS port; an `https://` upstream behind a private CA;
//! bad certificate files refused at start and by `check`; the Secure-cookie warning.
//!
//! SNI decision (see `src/tls.rs`): the gateway has one certificate and serves it whatever
//! name is asked; a verifying client refuses a name the certificate lacks, and the audit
//! `Failure` carries its alert and the SNI it sent.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{
    ClientConfig, ClientConnection, RootCertStore, StreamOwned, SupportedProtocolVersion,
};
use serde_json::Value;

use crate::backend::{Backend, Reply, IO_TIMEOUT};
use crate::client::{self, Response, HOST};
use crate::harness::{check, run_expecting_exit, single_route_yaml, Gateway, EX_CONFIG};
use crate::wire::Wire;

// ---------------------------------------------------------------------------------------
// Certificates

/// A private CA and a directory for the files the gateway reads.
pub(crate) struct Pki {
    ca: rcgen::Certificate,
    ca_key: rcgen::KeyPair,
    dir: PathBuf,
}

/// A server certificate (PEM chain: leaf, then the CA) and its key.
pub(crate) struct Leaf {
    cert_pem: String,
    key_pem: String,
    der: CertificateDer<'static>,
}

#[derive(Clone, Copy)]
enum Alg {
    Rsa,
    EcdsaP256,
    Ed25519,
}

impl Pki {
    pub(crate) fn new() -> Pki {
        static SEQ: AtomicUsize = AtomicUsize::new(0);
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!(
            "sessiongate-tls-{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::SeqCst)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let ca_key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let mut p = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        p.distinguished_name
            .push(rcgen::DnType::CommonName, "sessiongate test CA");
        p.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        p.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::CrlSign,
        ];
        let ca = p.self_signed(&ca_key).unwrap();
        Pki { ca, ca_key, dir }
    }

    fn ca_pem(&self) -> String {
        self.ca.pem()
    }

    /// A leaf for `localhost` and 127.0.0.1, valid from 2020 until `until` (y, m, d).
    fn leaf_with(&self, alg: Alg, until: (i32, u8, u8)) -> Leaf {
        let key = match alg {
            Alg::Rsa => rcgen::KeyPair::from_pem_and_sign_algo(
                include_str!("../fixtures/tls/rsa-2048.pkcs8.pem"),
                &rcgen::PKCS_RSA_SHA256,
            )
            .unwrap(),
            Alg::EcdsaP256 => rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap(),
            Alg::Ed25519 => rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap(),
        };
        let mut p = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap();
        p.subject_alt_names
            .push(rcgen::SanType::IpAddress("127.0.0.1".parse().unwrap()));
        p.distinguished_name
            .push(rcgen::DnType::CommonName, "localhost");
        p.not_before = rcgen::date_time_ymd(2020, 1, 1);
        p.not_after = rcgen::date_time_ymd(until.0, until.1, until.2);
        p.is_ca = rcgen::IsCa::ExplicitNoCa;
        p.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
        let cert = p.signed_by(&key, &self.ca, &self.ca_key).unwrap();
        Leaf {
            cert_pem: format!("{}{}", cert.pem(), self.ca.pem()),
            key_pem: key.serialize_pem(),
            der: cert.der().clone(),
        }
    }

    pub(crate) fn leaf(&self) -> Leaf {
        self.leaf_with(Alg::EcdsaP256, (2090, 1, 1))
    }

    fn file(&self, name: &str, content: &str) -> PathBuf {
        let p = self.dir.join(name);
        std::fs::write(&p, content).unwrap();
        p
    }

    /// Writes the leaf to `tls.crt` / `tls.key` (replacing what was there).
    pub(crate) fn install(&self, leaf: &Leaf) -> (PathBuf, PathBuf) {
        (
            self.file("tls.crt", &leaf.cert_pem),
            self.file("tls.key", &leaf.key_pem),
        )
    }

    fn audit_path(&self) -> PathBuf {
        self.dir.join("audit.log")
    }
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// `yaml` (from the harness) with `server.ssl` pointing at these files.
fn with_ssl(yaml: &str, cert: &Path, key: &Path) -> String {
    let ssl = format!(
        "  port: 0\n  ssl:\n    certificate: \"{}\"\n    certificate-private-key: \"{}\"\n",
        cert.display(),
        key.display()
    );
    assert!(yaml.contains("  port: 0\n"));
    yaml.replacen("  port: 0\n", &ssl, 1)
}

/// A TLS gateway in front of `backend`, auditing to the PKI's directory.
fn tls_gateway(pki: &Pki, leaf: &Leaf, backend: &Backend) -> crate::harness::GatewayBuilder {
    let (cert, key) = pki.install(leaf);
    Gateway::with(with_ssl(&single_route_yaml(backend), &cert, &key)).set(
        "audit-log",
        crate::harness::quote(&pki.audit_path().display().to_string()),
    )
}

// ---------------------------------------------------------------------------------------
// A TLS client on std networking

fn roots(ca_pem: &str) -> RootCertStore {
    let mut roots = RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(c.unwrap()).unwrap();
    }
    roots
}

fn client_config(ca_pem: &str, version: &'static SupportedProtocolVersion) -> Arc<ClientConfig> {
    let mut cfg =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_protocol_versions(&[version])
            .unwrap()
            .with_root_certificates(roots(ca_pem))
            .with_no_client_auth();
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Arc::new(cfg)
}

pub(crate) fn tls13(pki: &Pki) -> Arc<ClientConfig> {
    client_config(&pki.ca_pem(), &rustls::version::TLS13)
}

type Tls = StreamOwned<ClientConnection, TcpStream>;

pub(crate) struct TlsClient {
    wire: Wire<Tls>,
}

impl TlsClient {
    /// Connects and completes the handshake, asking for `sni`.
    fn try_connect(addr: SocketAddr, cfg: Arc<ClientConfig>, sni: &str) -> io::Result<TlsClient> {
        let tcp = TcpStream::connect_timeout(&addr, IO_TIMEOUT)?;
        tcp.set_read_timeout(Some(IO_TIMEOUT))?;
        tcp.set_write_timeout(Some(IO_TIMEOUT))?;
        let name = ServerName::try_from(sni.to_string()).unwrap();
        let conn = ClientConnection::new(cfg, name).map_err(io::Error::other)?;
        let mut s = StreamOwned::new(conn, tcp);
        while s.conn.is_handshaking() {
            s.conn.complete_io(&mut s.sock)?;
        }
        Ok(TlsClient { wire: Wire::new(s) })
    }

    pub(crate) fn connect(addr: SocketAddr, cfg: Arc<ClientConfig>) -> TlsClient {
        TlsClient::try_connect(addr, cfg, "localhost")
            .unwrap_or_else(|e| panic!("TLS connect to {addr}: {e}"))
    }

    fn tls(&mut self) -> &mut Tls {
        self.wire.get_mut()
    }

    fn get(&mut self, path: &str) -> Response {
        let req = format!("GET {path} HTTP/1.1\r\nHost: {HOST}\r\n\r\n");
        self.tls()
            .write_all(req.as_bytes())
            .expect("write over TLS");
        self.tls().flush().unwrap();
        client::read_response(&mut self.wire, "GET", true).expect("response over TLS")
    }

    /// Sends raw bytes and reads one response head (and body, if any) for `method`.
    pub(crate) fn request(&mut self, raw: &[u8], method: &str) -> Response {
        self.tls().write_all(raw).expect("write over TLS");
        self.tls().flush().unwrap();
        client::read_response(&mut self.wire, method, true).expect("response over TLS")
    }

    fn protocol(&mut self) -> Option<rustls::ProtocolVersion> {
        self.tls().conn.protocol_version()
    }

    fn peer_leaf(&mut self) -> CertificateDer<'static> {
        self.tls().conn.peer_certificates().unwrap()[0]
            .clone()
            .into_owned()
    }

    /// Waits until the gateway ends the connection (close_notify, FIN or reset).
    pub(crate) fn closed_within(&mut self, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        self.tls().sock.set_read_timeout(Some(within)).unwrap();
        let mut buf = [0u8; 1024];
        loop {
            match self.tls().read(&mut buf) {
                Ok(0) => return true,
                Ok(_) => return false,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock && Instant::now() < deadline => {
                    continue
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return false,
                // Reset, or closed without close_notify: closed all the same.
                Err(_) => return true,
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// The audit trail

fn audit_events(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("audit line {l:?}: {e}")))
        .collect()
}

/// Waits (bounded) for an audit event matching `pred`; panics with the trail if none comes.
fn wait_event(path: &Path, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let events = audit_events(path);
        if let Some(e) = events.iter().find(|e| pred(e)) {
            return e.clone();
        }
        if Instant::now() >= deadline {
            panic!("no audit event {what} within 5 s; trail:\n{events:#?}");
        }
        thread::sleep(Duration::from_millis(10));
    }
}

fn is(e: &Value, event: &str, outcome: Option<&str>) -> bool {
    e["event"] == event && outcome.map_or(true, |o| e["outcome"] == o)
}

fn failure_with(path: &Path, needle: &str) -> Value {
    wait_event(path, &format!("Failure {needle:?}"), |e| {
        is(e, "ACCESS_SESSION_ESTABLISH", Some("Failure"))
            && e["reason"].as_str().unwrap_or("").contains(needle)
    })
}

// ---------------------------------------------------------------------------------------
// Scenarios

#[test]
fn tls12_and_tls13_clients_reach_the_backend() {
    let pki = Pki::new();
    let backend = Backend::recording();
    let gw = tls_gateway(&pki, &pki.leaf(), &backend).start();
    assert_eq!(gw.listening("https"), Some(gw.addr()));
    let audit = pki.audit_path();

    for (version, name) in [
        (&rustls::version::TLS12, "TLSv1.2"),
        (&rustls::version::TLS13, "TLSv1.3"),
    ] {
        let mut c = TlsClient::connect(gw.addr(), client_config(&pki.ca_pem(), version));
        assert_eq!(c.tls().conn.alpn_protocol(), Some(&b"http/1.1"[..]));
        let r = c.get(&format!("/v/{name}"));
        assert_eq!(r.status, 200, "{name}");
        assert_eq!(r.text(), "ok");
        // Keep-alive over TLS.
        assert_eq!(c.get("/again").status, 200);
        assert_eq!(
            c.protocol(),
            Some(match name {
                "TLSv1.2" => rustls::ProtocolVersion::TLSv1_2,
                _ => rustls::ProtocolVersion::TLSv1_3,
            })
        );
        let e = wait_event(&audit, name, |e| {
            is(e, "ACCESS_SESSION_ESTABLISH", Some("Success")) && e["protocol"] == name
        });
        assert_eq!(e["sni"], "localhost");
        assert!(
            e["cipher"].as_str().unwrap().contains("AES")
                || e["cipher"].as_str().unwrap().contains("CHACHA")
        );
        assert!(e["peer"].as_str().unwrap().starts_with("127.0.0.1:"));
        // The client closes: the connection's end is audited.
        c.tls().conn.send_close_notify();
        let _ = c.tls().flush();
        let peer = e["peer"].clone();
        let t = wait_event(&audit, "TERMINATED", |t| {
            is(t, "ACCESS_SESSION_TERMINATED", None) && t["peer"] == peer
        });
        assert_eq!(t["reason"], "peer_closed");
    }
    let seen = backend.wait_for_requests(4);
    for r in &seen {
        assert_eq!(r.header("x-forwarded-proto"), Some("https"));
    }
    assert_eq!(seen[0].target, "/v/TLSv1.2");
}

#[test]
fn rsa_ecdsa_and_ed25519_keys_serve_both_versions() {
    for alg in [Alg::Rsa, Alg::EcdsaP256, Alg::Ed25519] {
        let pki = Pki::new();
        let backend = Backend::recording();
        let leaf = pki.leaf_with(alg, (2090, 1, 1));
        let gw = tls_gateway(&pki, &leaf, &backend).workers(1).start();
        for version in [&rustls::version::TLS12, &rustls::version::TLS13] {
            let mut c = TlsClient::connect(gw.addr(), client_config(&pki.ca_pem(), version));
            assert_eq!(c.peer_leaf(), leaf.der);
            assert_eq!(c.get("/").status, 200);
        }
    }
}

#[test]
fn wrong_sni_is_refused_by_a_verifying_client_and_audited() {
    let pki = Pki::new();
    let backend = Backend::recording();
    let gw = tls_gateway(&pki, &pki.leaf(), &backend).start();
    let err = TlsClient::try_connect(gw.addr(), tls13(&pki), "wrong.example")
        .err()
        .expect("a verifying client refuses a certificate without its name");
    assert!(err.to_string().contains("not valid for name"), "{err}");
    let e = failure_with(&pki.audit_path(), "refused our certificate");
    assert_eq!(e["sni"], "wrong.example");
    assert!(
        e["reason"].as_str().unwrap().contains("BadCertificate"),
        "{e}"
    );
    // The same gateway serves the right name.
    assert_eq!(
        TlsClient::connect(gw.addr(), tls13(&pki)).get("/").status,
        200
    );
    assert_eq!(backend.requests().len(), 1);
}

#[test]
fn plain_http_on_the_tls_port_is_answered_and_audited() {
    let pki = Pki::new();
    let backend = Backend::counting(|_| Reply::ok());
    let gw = tls_gateway(&pki, &pki.leaf(), &backend).start();
    let mut c = gw.client();
    let r = c.request(format!("GET / HTTP/1.1\r\nHost: {HOST}\r\n\r\n").as_bytes());
    assert_eq!(r.status, 400);
    assert!(r.text().contains("HTTPS"), "{}", r.text());
    c.expect_closed(Duration::from_secs(2));
    let e = failure_with(&pki.audit_path(), "plain HTTP request on the TLS port");
    assert!(e.get("sni").is_none());
    backend.assert_saw_nothing();
}

#[test]
fn aborted_and_stalled_handshakes_are_audited() {
    let pki = Pki::new();
    let backend = Backend::counting(|_| Reply::ok());
    let gw = tls_gateway(&pki, &pki.leaf(), &backend)
        .set("request-head-timeout-ms", 400)
        .start();
    let audit = pki.audit_path();

    // Half a ClientHello, then the client goes away.
    let mut hello = Vec::new();
    let mut conn =
        ClientConnection::new(tls13(&pki), ServerName::try_from("localhost").unwrap()).unwrap();
    conn.write_tls(&mut hello).unwrap();
    let mut s = TcpStream::connect(gw.addr()).unwrap();
    s.write_all(&hello[..hello.len() / 2]).unwrap();
    thread::sleep(Duration::from_millis(50));
    drop(s);
    failure_with(&audit, "client closed the connection during the handshake");

    // Connected, said nothing, left.
    drop(TcpStream::connect(gw.addr()).unwrap());
    failure_with(&audit, "before sending a ClientHello");

    // The whole ClientHello, then silence: the handshake timeout ends it.
    let mut s = TcpStream::connect(gw.addr()).unwrap();
    s.write_all(&hello).unwrap();
    let e = failure_with(&audit, "handshake not completed within 400 ms");
    assert_eq!(e["sni"], "localhost");
    s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let mut rest = Vec::new();
    let _ = s.read_to_end(&mut rest);
    backend.assert_saw_nothing();
}

#[test]
fn idle_timeout_closes_a_tls_connection_and_audits_it() {
    let pki = Pki::new();
    let backend = Backend::recording();
    let gw = tls_gateway(&pki, &pki.leaf(), &backend)
        .set("connection-idle-timeout-ms", 300)
        .start();
    let mut c = TlsClient::connect(gw.addr(), tls13(&pki));
    assert_eq!(c.get("/").status, 200);
    let started = Instant::now();
    assert!(c.closed_within(Duration::from_secs(5)), "still open");
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(250),
        "closed after {waited:?}"
    );
    let t = wait_event(&pki.audit_path(), "TERMINATED idle_timeout", |e| {
        is(e, "ACCESS_SESSION_TERMINATED", None) && e["reason"] == "idle_timeout"
    });
    assert!(t["duration_ms"].as_u64().unwrap() >= 300, "{t}");
    assert_eq!(t["sni"], "localhost");
}

#[test]
fn sighup_serves_a_new_certificate_to_new_connections_only() {
    let pki = Pki::new();
    let backend = Backend::recording();
    let first = pki.leaf();
    let gw = tls_gateway(&pki, &first, &backend).start();
    let mut old = TlsClient::connect(gw.addr(), tls13(&pki));
    assert_eq!(old.peer_leaf(), first.der);
    assert_eq!(old.get("/before").status, 200);

    let second = pki.leaf();
    assert_ne!(first.der, second.der);
    pki.install(&second);
    gw.signal(libc::SIGHUP);
    gw.wait_for_log_line(Duration::from_secs(5), |l| {
        l.contains("server certificate reloaded")
    })
    .expect("reload logged");
    let mut new = TlsClient::connect(gw.addr(), tls13(&pki));
    assert_eq!(
        new.peer_leaf(),
        second.der,
        "new connection, new certificate"
    );
    assert_eq!(new.get("/new").status, 200);
    // The connection opened before the reload goes on.
    assert_eq!(old.get("/after").status, 200);

    // Broken files on the next reload: refused, the running certificate stays.
    pki.file("tls.crt", "not a certificate\n");
    gw.signal(libc::SIGHUP);
    let line = gw
        .wait_for_log_line(Duration::from_secs(5), |l| {
            l.contains("certificate reload refused")
        })
        .expect("refusal logged");
    assert!(line.contains("server.ssl.certificate"), "{line}");
    let mut third = TlsClient::connect(gw.addr(), tls13(&pki));
    assert_eq!(third.peer_leaf(), second.der);
    assert_eq!(third.get("/still").status, 200);
}

#[test]
fn http_port_adds_a_plain_listener_beside_tls() {
    let pki = Pki::new();
    let backend = Backend::recording();
    let gw = tls_gateway(&pki, &pki.leaf(), &backend)
        .set("http-port", 0)
        .start();
    let plain = gw.listening("http").expect("an http:// ready line");
    assert_ne!(plain, gw.addr());
    assert_eq!(
        crate::client::Client::connect(plain).get("/plain").status,
        200
    );
    assert_eq!(
        TlsClient::connect(gw.addr(), tls13(&pki))
            .get("/tls")
            .status,
        200
    );
    let seen = backend.wait_for_requests(2);
    let proto = |path: &str| {
        seen.iter()
            .find(|r| r.target == path)
            .and_then(|r| r.header("x-forwarded-proto"))
            .map(str::to_string)
    };
    assert_eq!(proto("/plain").as_deref(), Some("http"));
    assert_eq!(proto("/tls").as_deref(), Some("https"));
}

/// An https upstream in the test: TLS in front of a recording backend, one thread per
/// connection bridging bytes both ways.
struct TlsUpstream {
    addr: SocketAddr,
}

impl TlsUpstream {
    fn start(leaf: &Leaf, backend: SocketAddr) -> TlsUpstream {
        let certs: Vec<CertificateDer<'static>> =
            CertificateDer::pem_slice_iter(leaf.cert_pem.as_bytes())
                .map(Result::unwrap)
                .collect();
        let key = PrivateKeyDer::from_pem_slice(leaf.key_pem.as_bytes()).unwrap();
        let cfg = Arc::new(
            rustls::ServerConfig::builder_with_provider(Arc::new(
                rustls::crypto::ring::default_provider(),
            ))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .unwrap(),
        );
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        thread::spawn(move || {
            for s in listener.incoming() {
                let Ok(s) = s else { return };
                let cfg = cfg.clone();
                thread::spawn(move || bridge(s, cfg, backend));
            }
        });
        TlsUpstream { addr }
    }
}

fn bridge(s: TcpStream, cfg: Arc<rustls::ServerConfig>, backend: SocketAddr) {
    let tick = Some(Duration::from_millis(5));
    let Ok(mut b) = TcpStream::connect(backend) else {
        return;
    };
    let _ = s.set_read_timeout(tick);
    let _ = b.set_read_timeout(tick);
    let mut tls = StreamOwned::new(rustls::ServerConnection::new(cfg).unwrap(), s);
    let mut buf = vec![0u8; 64 * 1024];
    let idle = |e: &io::Error| {
        matches!(
            e.kind(),
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
        )
    };
    loop {
        match tls.read(&mut buf) {
            Ok(0) => return,
            Ok(n) => {
                if b.write_all(&buf[..n]).is_err() {
                    return;
                }
            }
            Err(e) if idle(&e) => {}
            Err(_) => return,
        }
        match b.read(&mut buf) {
            Ok(0) => return,
            Ok(n) => {
                if tls.write_all(&buf[..n]).and_then(|_| tls.flush()).is_err() {
                    return;
                }
            }
            Err(e) if idle(&e) => {}
            Err(_) => return,
        }
    }
}

#[test]
fn https_upstream_is_verified_against_the_ca_bundle() {
    let pki = Pki::new();
    let backend = Backend::replying(|r| {
        if r.target == "/ws" {
            Reply::websocket_echo()
        } else {
            Reply::ok()
        }
    });
    let upstream = TlsUpstream::start(&pki.leaf(), backend.addr());
    let uri = format!("https://localhost:{}", upstream.addr.port());
    let yaml = crate::harness::routes_yaml(&[
        crate::harness::Route::new("secure", uri).predicate("Path=/**")
    ]);
    let bundle = pki.file("ca.pem", &pki.ca_pem());
    let gw = Gateway::with(yaml.clone())
        .set(
            "ca-bundle",
            crate::harness::quote(&bundle.display().to_string()),
        )
        .start();
    let mut c = gw.client();
    for path in ["/a", "/b"] {
        let r = c.get(path);
        assert_eq!(r.status, 200, "{path}");
        assert_eq!(r.text(), "ok");
    }
    let seen = backend.wait_for_requests(2);
    assert_eq!(
        seen[0].header("host"),
        Some(format!("localhost:{}", upstream.addr.port()).as_str())
    );
    assert_eq!(seen[1].target, "/b");

    // A WebSocket through the TLS upstream: spliced both ways.
    let mut ws = gw.client();
    let r = ws.request(
        format!(
            "GET /ws HTTP/1.1\r\nHost: {HOST}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
             Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: {}\r\n\r\n",
            crate::backend::WS_KEY
        )
        .as_bytes(),
    );
    assert_eq!(r.status, 101);
    ws.send(b"ping over tls");
    assert_eq!(ws.read_exact(13), b"ping over tls");

    // Without the private CA the upstream's certificate is not trusted: 502, never 200.
    let untrusting = Gateway::with(yaml).start();
    assert_eq!(untrusting.get("/c").status, 502);
    untrusting
        .wait_for_log_line(Duration::from_secs(5), |l| {
            l.contains("upstream TLS handshake failed")
        })
        .expect("the refused upstream certificate is logged");
}

#[test]
fn bad_certificate_files_stop_the_start() {
    let pki = Pki::new();
    let backend = Backend::counting(|_| Reply::ok());
    let good = pki.leaf();
    let expired = pki.leaf_with(Alg::EcdsaP256, (2021, 6, 1));
    let other = pki.leaf();
    let yaml = single_route_yaml(&backend);
    let cases: Vec<(&str, PathBuf, PathBuf, &str, &str)> = vec![
        (
            "missing certificate",
            pki.dir.join("missing.crt"),
            pki.file("k1.key", &good.key_pem),
            "server.ssl.certificate: cannot read",
            "No such file",
        ),
        (
            "missing key",
            pki.file("c2.crt", &good.cert_pem),
            pki.dir.join("missing.key"),
            "server.ssl.certificate-private-key: cannot read",
            "No such file",
        ),
        (
            "key of another certificate",
            pki.file("c3.crt", &good.cert_pem),
            pki.file("k3.key", &other.key_pem),
            "server.ssl.certificate-private-key:",
            "does not belong to the certificate",
        ),
        (
            "expired",
            pki.file("c4.crt", &expired.cert_pem),
            pki.file("k4.key", &expired.key_pem),
            "server.ssl.certificate:",
            "expired on 2021-06-01",
        ),
        (
            "no certificate in the file",
            pki.file("c5.crt", &good.key_pem),
            pki.file("k5.key", &good.key_pem),
            "server.ssl.certificate:",
            "holds no certificate",
        ),
    ];
    for (what, cert, key, prefix, needle) in cases {
        let config = format!(
            "{}sessiongate:\n  workers: 1\n",
            with_ssl(&yaml, &cert, &key)
        );
        for out in [run_expecting_exit(&config), check(&config)] {
            assert_eq!(out.code, Some(EX_CONFIG), "{what}: {}", out.stderr);
            assert!(
                out.stderr.contains(prefix) && out.stderr.contains(needle),
                "{what}: stderr should name the key and say why:\n{}",
                out.stderr
            );
        }
    }
    backend.assert_saw_nothing();
}

#[test]
fn secure_cookie_without_tls_is_warned_about() {
    let pki = Pki::new();
    let login = "  security:\n    oauth2:\n      client:\n        registration:\n          kc:\n            client-id: gw\n            client-secret: s\n        provider:\n          kc:\n            issuer-uri: http://127.0.0.1:9/realms/r\n";
    let base = single_route_yaml(&Backend::recording()).replacen(
        "spring:\n",
        &format!("spring:\n{login}"),
        1,
    );
    let warned = |yaml: &str| {
        let out = check(yaml);
        assert_eq!(out.code, Some(0), "{}", out.stderr);
        // `check` prints its warnings on stdout; the start logs the same at WARN.
        out.stdout
            .contains("warning: cg.useSecureSessionCookie is true but")
    };
    assert!(warned(&base));
    assert!(!warned(&format!(
        "{base}cg:\n  useSecureSessionCookie: false\n"
    )));
    assert!(!warned(&format!(
        "{base}sessiongate:\n  trusted-proxies: 10.0.0.1\n"
    )));
    let (cert, key) = pki.install(&pki.leaf());
    assert!(!warned(&with_ssl(&base, &cert, &key)));
}

#[test]
fn refusals_and_shutdown_end_tls_connections_with_their_reason() {
    let pki = Pki::new();
    let backend = Backend::recording();
    let mut gw = tls_gateway(&pki, &pki.leaf(), &backend).start();
    let audit = pki.audit_path();

    // A refused request: answered, closed, audited as an error with the status.
    let mut bad = TlsClient::connect(gw.addr(), tls13(&pki));
    bad.tls()
        .write_all(b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n")
        .unwrap();
    bad.tls().flush().unwrap();
    let r = client::read_response(&mut bad.wire, "GET", true).unwrap();
    assert_eq!(r.status, 400);
    let t = wait_event(&audit, "TERMINATED error", |e| {
        is(e, "ACCESS_SESSION_TERMINATED", None) && e["reason"] == "error"
    });
    assert_eq!(t["detail"], "answered 400");

    // An idle keep-alive connection when the gateway stops.
    let mut idle = TlsClient::connect(gw.addr(), tls13(&pki));
    assert_eq!(idle.get("/").status, 200);
    gw.signal(libc::SIGTERM);
    assert!(idle.closed_within(Duration::from_secs(5)));
    wait_event(&audit, "TERMINATED shutdown", |e| {
        is(e, "ACCESS_SESSION_TERMINATED", None) && e["reason"] == "shutdown"
    });
    assert!(gw.wait_exit(Duration::from_secs(5)).is_some());
}

#[test]
fn a_tls_client_that_stops_reading_does_not_take_the_worker_down() {
    let pki = Pki::new();
    let backend = Backend::counting(|_| Reply::ok().generated(256 * 1024 * 1024));
    let gw = tls_gateway(&pki, &pki.leaf(), &backend)
        .workers(1)
        .set("body-read-timeout-ms", 300)
        .start();
    let mut stalled = TlsClient::connect(gw.addr(), tls13(&pki));
    stalled
        .tls()
        .write_all(format!("GET /big HTTP/1.1\r\nHost: {HOST}\r\n\r\n").as_bytes())
        .unwrap();
    stalled.tls().flush().unwrap();
    // Never read: the gateway's write to this client times out.
    let t = wait_event(&pki.audit_path(), "TERMINATED client write failed", |e| {
        is(e, "ACCESS_SESSION_TERMINATED", None) && e["detail"] == "client write failed"
    });
    assert_eq!(t["reason"], "error");
    // The only worker is still serving.
    let backend2_seen = backend.connections();
    let mut next = TlsClient::connect(gw.addr(), tls13(&pki));
    next.tls()
        .write_all(format!("HEAD /small HTTP/1.1\r\nHost: {HOST}\r\n\r\n").as_bytes())
        .unwrap();
    next.tls().flush().unwrap();
    let r = client::read_response(&mut next.wire, "HEAD", true).unwrap();
    assert_eq!(r.status, 200);
    assert!(backend.connections() >= backend2_seen);
    drop(stalled);
}

#[test]
fn sessions_resume_with_tickets_on_any_worker() {
    let pki = Pki::new();
    let backend = Backend::recording();
    let gw = tls_gateway(&pki, &pki.leaf(), &backend).workers(2).start();
    for version in [&rustls::version::TLS13, &rustls::version::TLS12] {
        // One client config: its session cache carries the ticket to the next connections,
        // which the kernel spreads over both workers.
        let cfg = client_config(&pki.ca_pem(), version);
        let mut first = TlsClient::connect(gw.addr(), cfg.clone());
        assert_eq!(first.get("/").status, 200);
        assert_eq!(
            first.tls().conn.handshake_kind(),
            Some(rustls::HandshakeKind::Full)
        );
        for _ in 0..4 {
            let mut again = TlsClient::connect(gw.addr(), cfg.clone());
            assert_eq!(again.get("/").status, 200);
            assert_eq!(
                again.tls().conn.handshake_kind(),
                Some(rustls::HandshakeKind::Resumed),
                "{version:?}"
            );
        }
    }
    wait_event(&pki.audit_path(), "a resumed session", |e| {
        is(e, "ACCESS_SESSION_ESTABLISH", Some("Success")) && e["resumed"] == true
    });
}

/// An idle TLS keep-alive connection holds no I/O buffer either: the ciphertext of each
/// read and write goes through buffers lent for that one operation, so after one answered
/// request each the pool's count of lent buffers is back to zero with the connections open,
/// and each still serves.
#[test]
fn idle_tls_connections_hold_no_buffer() {
    let pki = Pki::new();
    let backend = Backend::recording();
    let gw = tls_gateway(&pki, &pki.leaf(), &backend)
        .workers(2)
        .management(None)
        .start();
    let mut idle: Vec<TlsClient> = (0..20)
        .map(|_| {
            let mut c = TlsClient::connect(gw.addr(), tls13(&pki));
            assert_eq!(c.get("/x").status, 200);
            c
        })
        .collect();
    let lent = || crate::hardening_floods::metric(&gw, "sessiongate_io_buffers_lent");
    let deadline = Instant::now() + Duration::from_secs(5);
    while lent() != 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(lent(), 0, "idle TLS connections hold buffers");
    assert!(crate::hardening_floods::metric(&gw, "sessiongate_connections_open") >= 20);
    for c in &mut idle {
        assert_eq!(
            c.get("/again").status,
            200,
            "an idle TLS connection still serves"
        );
    }
}
