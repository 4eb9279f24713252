//! Start-up and the process's life: resolve upstreams, load the server certificate, bind one
//! SO_REUSEPORT listener per worker and port (all before any thread starts, so a bad port or
//! certificate fails the start), spawn the workers, announce readiness, then wait for
//! signals. SIGHUP reloads the server certificate and reopens the audit log. With
//! `sessiongate.session-snapshot`, the sessions of the last stop are handed to their workers
//! before they accept, and this stop's are written once the workers have drained.

use std::io::Write as _;
use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use socket2::{Domain, Protocol, Socket, Type};

use crate::audit;
use crate::client;
use crate::config::{Config, SslConfig};
use crate::messages::{Inbox, Shared, WorkerMsg};
use crate::metrics::Metrics;
use crate::provider;
use crate::session::seal::Keyring;
use crate::session::snapshot::{self, Lifetime, Record};
use crate::tls;
use crate::upstream::Upstream;
use crate::worker::{self, WorkerSpec};

const LOG: &str = "sessiongate::server";
const BACKLOG: i32 = 4096;
/// Open files besides client and upstream sockets: listeners, rings, the audit log, the
/// management listener's connections, outgoing calls.
const FD_RESERVE: u64 = 1000;

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("spring.cloud.gateway.routes[{index}] ({id}): cannot resolve {host}: {source}")]
    Resolve {
        index: usize,
        id: String,
        host: String,
        source: std::io::Error,
    },
    /// Another process listens there already. Without this check SO_REUSEPORT would let
    /// the kernel split users between two gateways with different sessions.
    #[error("{key}: {addr} is already in use by another process (another sessiongate?); stop it or choose another port")]
    InUse { key: &'static str, addr: SocketAddr },
    #[error("server.address/server.port: cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("sessiongate.http-port: cannot listen on {addr}: {source}")]
    BindHttpPort {
        addr: SocketAddr,
        source: std::io::Error,
    },
    /// `server.ssl.*` names files the gateway cannot serve (a configuration error).
    #[error(transparent)]
    Certificate(#[from] tls::CertError),
    #[error("{0}")]
    Audit(String),
    #[error("cannot install signal handlers: {0}")]
    Signals(std::io::Error),
    #[error("{0}")]
    Worker(String),
    #[error("{0}")]
    Tls(String),
}

/// Every distinct route upstream, resolved once.
pub fn resolve_upstreams(config: &Config) -> Result<Vec<Upstream>, StartError> {
    let mut out: Vec<Upstream> = Vec::new();
    for (index, r) in config.routes.iter().enumerate() {
        if out
            .iter()
            .any(|u| u.url.host == r.uri.host && u.url.port == r.uri.port && u.url.tls == r.uri.tls)
        {
            continue;
        }
        let up = Upstream::resolve(&r.uri).map_err(|source| StartError::Resolve {
            index,
            id: r.id.clone(),
            host: r.uri.host.clone(),
            source,
        })?;
        out.push(up);
    }
    Ok(out)
}

/// A listening socket shared by port with the other workers' (SO_REUSEPORT: the kernel
/// spreads connections over the workers without a shared accept queue).
fn bind_reuseport(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(BACKLOG)?;
    Ok(socket.into())
}

/// Whether another process listens on `addr`: a bind without SO_REUSEPORT fails then (with
/// SO_REUSEADDR, so a port whose last connections linger in TIME_WAIT still counts as free).
fn in_use(addr: SocketAddr) -> bool {
    let probe = || -> std::io::Result<()> {
        let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
        socket.set_reuse_address(true)?;
        socket.bind(&addr.into())
    };
    matches!(probe(), Err(e) if e.kind() == std::io::ErrorKind::AddrInUse)
}

/// Binds `n` listeners on the configured address (`key` names it in errors). With port 0
/// the first bind picks the port and the others join it. The workers of this process share
/// the port; another process holding it is refused.
pub fn bind_listeners(
    mut addr: SocketAddr,
    n: usize,
    key: &'static str,
) -> Result<Vec<TcpListener>, StartError> {
    if addr.port() != 0 && in_use(addr) {
        return Err(StartError::InUse { key, addr });
    }
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let l = bind_reuseport(addr).map_err(|source| StartError::Bind { addr, source })?;
        if addr.port() == 0 {
            addr = l
                .local_addr()
                .map_err(|source| StartError::Bind { addr, source })?;
        }
        out.push(l);
    }
    Ok(out)
}

/// Runs the gateway until SIGTERM/SIGINT, then drains and returns.
/// `path`: the file to re-read on SIGHUP (`None`: certificates and audit log only).
pub fn run(config: Config, path: Option<&Path>) -> Result<(), StartError> {
    // Signals first: a stop that arrives right after the ready line must not kill us.
    let mut signals = signal_hook::iterator::Signals::new([SIGTERM, SIGINT, SIGHUP])
        .map_err(StartError::Signals)?;
    let mut config = Arc::new(config);
    let upstreams = resolve_upstreams(&config)?;
    let addr = SocketAddr::new(config.server.address, config.server.port);
    let n = config.gateway.workers;
    let server_tls = match &config.server.ssl {
        Some(ssl) => {
            let loaded = tls::load(ssl, SystemTime::now())?;
            loaded.announce(ssl, SystemTime::now());
            Some(loaded.config)
        }
        None => None,
    };
    if let Some(target) = &config.gateway.audit_log {
        audit::init(target).map_err(StartError::Audit)?;
    }
    if let Some(warning) = crate::check::public_url_warning(&config) {
        tracing::warn!(target: LOG, "{warning}");
    }
    if let Some(warning) = tls::secure_cookie_warning(&config) {
        tracing::warn!(target: LOG, "{warning}");
    }
    if config.oauth2.registrations.is_empty() {
        tracing::warn!(target: LOG, "no spring.security.oauth2 registration: running as an unauthenticated proxy, every route is forwarded without login");
    }
    warn_if_files_short(config.gateway.max_connections);
    let listeners = bind_listeners(addr, n, "server.address/server.port")?;
    let bound = listeners[0]
        .local_addr()
        .map_err(|source| StartError::Bind { addr, source })?;
    let mut plain_listeners = Vec::new();
    if let Some(port) = config.gateway.http_port {
        plain_listeners =
            bind_listeners(SocketAddr::new(addr.ip(), port), n, "sessiongate.http-port").map_err(
                |e| match e {
                    StartError::Bind { addr, source } => StartError::BindHttpPort { addr, source },
                    e => e,
                },
            )?;
    }
    let plain_bound = match plain_listeners.first() {
        Some(l) => Some(
            l.local_addr()
                .map_err(|source| StartError::BindHttpPort { addr, source })?,
        ),
        None => None,
    };
    let mut plain_listeners = plain_listeners.into_iter();

    let tls_client =
        client::tls_config(config.gateway.ca_bundle.as_deref()).map_err(StartError::Tls)?;
    let banner = config.gateway.access_banner.clone();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    // Unbounded: a stop or a handed-off connection must never be refused; their number is
    // bounded by the connections the workers themselves accepted.
    let (inboxes, receivers): (Vec<_>, Vec<_>) = (0..n).map(|_| flume::unbounded()).unzip();
    let refresher = match provider::issuer(&config) {
        Some(issuer) => Some(
            provider::spawn(issuer, tls_client.clone(), inboxes.clone()).map_err(|e| {
                StartError::Worker(format!("cannot start the provider thread: {e}"))
            })?,
        ),
        None => None,
    };
    let mut snapshot = Snapshot::from_config(&config);
    let mut restore = match &mut snapshot {
        Some(s) => s.load(&config),
        None => Vec::new(),
    };
    restore.resize_with(n, Vec::new);
    let (snapshot_tx, snapshot_rx) = std::sync::mpsc::channel();
    let shared = Arc::new(Shared::default());
    let metrics: Vec<Arc<Metrics>> = (0..n).map(|_| Arc::new(Metrics::default())).collect();
    let connections_total = Arc::new(AtomicUsize::new(0));
    let mut threads = Vec::with_capacity(n);
    for ((id, listener), inbox) in listeners.into_iter().enumerate().zip(receivers) {
        let spec = WorkerSpec {
            id,
            listener,
            config: config.clone(),
            upstreams: upstreams.clone(),
            inbox,
            peers: inboxes.clone(),
            shared: shared.clone(),
            metrics: metrics[id].clone(),
            connections_total: connections_total.clone(),
            refresher: refresher.clone(),
            tls_client: tls_client.clone(),
            banner: banner.clone(),
            server_tls: server_tls.clone(),
            plain_listener: plain_listeners.next(),
            restore: std::mem::take(&mut restore[id]),
            snapshot: snapshot.as_ref().map(|_| snapshot_tx.clone()),
        };
        let ready = ready_tx.clone();
        let t = std::thread::Builder::new()
            .name(format!("sessiongate-w{id}"))
            .spawn(move || worker::run(spec, ready))
            .map_err(|e| StartError::Worker(format!("cannot spawn worker {id}: {e}")))?;
        threads.push(t);
    }
    drop(ready_tx);
    for _ in 0..n {
        match ready_rx.recv() {
            Ok(Ok(driver)) => tracing::debug!(target: LOG, ?driver, "worker ready"),
            Ok(Err(e)) => return Err(StartError::Worker(e)),
            Err(_) => return Err(StartError::Worker("a worker died during start".into())),
        }
    }
    if let Some(s) = &snapshot {
        s.restored();
    }
    tracing::info!(target: LOG, %bound, workers = n, "sessiongate started");
    // The ready line tests and scripts wait for; stdout, not the log, so it is never lost.
    let mut out = std::io::stdout().lock();
    let scheme = if server_tls.is_some() {
        "https"
    } else {
        "http"
    };
    let _ = writeln!(out, "sessiongate listening on {scheme}://{bound}");
    if let Some(plain) = plain_bound {
        let _ = writeln!(out, "sessiongate listening on http://{plain}");
    }
    if let Some(port) = config.management.port {
        let admin = crate::admin::Admin {
            workers: inboxes.clone(),
            metrics: metrics.clone(),
            shared: shared.clone(),
            token: config.management.token.clone(),
            proxy_only: refresher.is_none(),
            shared_store: config.gateway.session_store == crate::config::StoreKind::Redis,
        };
        let addr = SocketAddr::new(config.management.address, port);
        let bound =
            crate::admin::spawn(addr, admin).map_err(|source| StartError::Bind { addr, source })?;
        let _ = writeln!(out, "sessiongate management on http://{bound}");
    }
    let _ = out.flush();
    drop(out);

    for sig in signals.forever() {
        match sig {
            SIGHUP => {
                tracing::info!(target: LOG, "SIGHUP received: reloading the configuration, the server certificate and the audit log");
                audit::reopen();
                if let Some(path) = path {
                    if let Some(new) = reload_config(path, &config, &inboxes) {
                        config = new;
                    }
                }
                if let Some(ssl) = &config.server.ssl {
                    reload_certificate(ssl, &inboxes);
                }
            }
            _ => {
                tracing::info!(target: LOG, signal = sig, "stopping: no new connections, draining open ones");
                break;
            }
        }
    }
    for s in &inboxes {
        let _ = s.send(WorkerMsg::Stop);
    }
    let deadline = Instant::now() + config.gateway.shutdown_grace + Duration::from_secs(2);
    for t in threads {
        // Workers bound their own drain by the grace period; this only guards a stuck one.
        while !t.is_finished() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        if t.is_finished() {
            let _ = t.join();
        }
    }
    drop(snapshot_tx);
    if let Some(s) = &snapshot {
        s.write(&config, n, snapshot_rx.try_iter().collect());
    }
    audit::flush(Duration::from_secs(1));
    tracing::info!(target: LOG, "stopped");
    Ok(())
}

/// Warns when the open-file limit cannot hold `max` client connections with an upstream
/// socket each: past it, accepts fail instead of shedding as documented.
fn warn_if_files_short(max: usize) {
    let Some(limit) = open_file_limit() else {
        return;
    };
    let need = 2 * max as u64 + FD_RESERVE;
    if limit < need {
        tracing::warn!(target: LOG, limit, need, "sessiongate.max-connections is {max}, which needs about {need} open files (a client and an upstream socket each, and {FD_RESERVE} more); the process may open {limit}: raise the limit (LimitNOFILE) or lower max-connections");
    }
}

/// The soft limit on open files, from `/proc/self/limits` (Linux; `None` elsewhere or
/// when unlimited).
fn open_file_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line["Max open files".len()..]
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Re-reads the configuration file. Routes, upstreams, listener URLs and log levels take
/// effect at once (sessions and open connections stay); what needs new listeners or
/// workers is reported as needing a restart. An invalid file changes nothing.
fn reload_config(path: &Path, running: &Arc<Config>, inboxes: &[Inbox]) -> Option<Arc<Config>> {
    let new = match crate::config::load_file(path) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(target: LOG, "reload refused, the running configuration stays: {e}");
            return None;
        }
    };
    let upstreams = match resolve_upstreams(&new) {
        Ok(u) => u,
        Err(e) => {
            tracing::error!(target: LOG, "reload refused, the running configuration stays: {e}");
            return None;
        }
    };
    let fixed = [
        (
            "server.address/server.port",
            format!("{:?}{:?}", running.server.address, running.server.port)
                != format!("{:?}{:?}", new.server.address, new.server.port),
        ),
        (
            "sessiongate.workers",
            running.gateway.workers != new.gateway.workers,
        ),
        (
            "spring.security.oauth2",
            format!("{:?}", running.oauth2) != format!("{:?}", new.oauth2),
        ),
        (
            "management",
            format!("{:?}", running.management) != format!("{:?}", new.management),
        ),
        (
            "logging.structured.format.console",
            running.logging.structured != new.logging.structured,
        ),
    ];
    for (key, changed) in fixed {
        if changed {
            tracing::warn!(target: LOG, key, "changed in the file; takes effect after a restart");
        }
    }
    crate::logging::set_levels(&new.logging);
    let new = Arc::new(new);
    let reload = Arc::new(crate::messages::Reload {
        config: new.clone(),
        upstreams,
    });
    for inbox in inboxes {
        let _ = inbox.send(WorkerMsg::Reload(reload.clone()));
    }
    tracing::info!(target: LOG, routes = new.routes.len(), "configuration reloaded");
    Some(new)
}

/// Loads `server.ssl.*` again and, when the files pass every start-up check, gives the new
/// configuration to every worker; otherwise the running one stays and the error says why.
fn reload_certificate(ssl: &SslConfig, inboxes: &[Inbox]) {
    match tls::load(ssl, SystemTime::now()) {
        Ok(loaded) => {
            loaded.announce(ssl, SystemTime::now());
            for inbox in inboxes {
                let _ = inbox.send(WorkerMsg::ServerTls(loaded.config.clone()));
            }
            tracing::info!(target: LOG, "server certificate reloaded: new connections use it");
        }
        Err(e) => {
            tracing::error!(target: LOG, error = %e, "certificate reload refused; the running certificate stays in use");
        }
    }
}

/// `sessiongate.session-snapshot` with the memory store: where sessions go at shutdown and
/// come from at start.
struct Snapshot {
    path: std::path::PathBuf,
    keys: Keyring,
    /// A file was read at this start: removed once the workers hold its sessions.
    loaded: bool,
}

impl Snapshot {
    fn from_config(config: &Config) -> Option<Snapshot> {
        let g = &config.gateway;
        let path = g.session_snapshot.clone()?;
        if g.session_store == crate::config::StoreKind::Redis {
            tracing::warn!(target: LOG, path = %path.display(), "sessiongate.session-snapshot is ignored with session-store: redis (sessions live in Redis)");
            return None;
        }
        if config.oauth2.registrations.is_empty() {
            tracing::warn!(target: LOG, path = %path.display(), "sessiongate.session-snapshot is ignored: no login is configured, so there are no sessions");
            return None;
        }
        // Validation requires keys with a snapshot; without them there is nothing to seal with.
        let keys = Keyring::new(&g.session_keys.0)?;
        Some(Snapshot {
            path,
            keys,
            loaded: false,
        })
    }

    fn lifetime(config: &Config) -> Lifetime {
        Lifetime {
            idle_ms: config.cg.session_timeout.as_millis() as u64,
            max_ms: config
                .gateway
                .session_max_lifetime
                .map(|d| d.as_millis() as u64),
        }
    }

    /// Reads the file, if there is one: each worker's live sessions, by worker id. A file
    /// that does not open is moved aside (kept for a look, never read again) and the start
    /// goes on without sessions.
    fn load(&mut self, config: &Config) -> Vec<Vec<Record>> {
        let path = self.path.display();
        let bytes = match snapshot::read_file(&self.path) {
            Ok(Some(b)) => b,
            Ok(None) => return Vec::new(),
            Err(e) => {
                tracing::error!(target: LOG, path = %path, error = %e, "session snapshot unreadable; starting without sessions");
                return Vec::new();
            }
        };
        let s = match snapshot::decode(&bytes, &self.keys) {
            Ok(s) => s,
            Err(why) => {
                let aside = match snapshot::move_aside(&self.path, ".refused") {
                    Ok(to) => format!("moved to {}", to.display()),
                    Err(e) => format!("could not be moved aside: {e}"),
                };
                tracing::error!(target: LOG, "session snapshot {path} refused: {why}; starting without sessions (the file {aside})");
                return Vec::new();
            }
        };
        let now = crate::clock::Clock::system().unix_ms();
        let n = config.gateway.workers;
        let d = snapshot::distribute(s, n, Self::lifetime(config), config.cg.max_sessions, now);
        if d.orphaned > 0 {
            tracing::warn!(target: LOG, path = %path, workers = n, "{} sessions were held by workers this start does not have", d.orphaned);
        }
        if d.over_limit > 0 {
            tracing::warn!(target: LOG, path = %path, "{} sessions left out: beyond cg.maxSessions", d.over_limit);
        }
        let restored = d.restored();
        tracing::info!(target: LOG, path = %path, restored, expired = d.expired, invalid = d.invalid, "{restored} sessions restored from the snapshot");
        self.loaded = true;
        d.per_worker
    }

    /// Once every worker holds its sessions: the file is deleted, not kept as
    /// `PATH.restored`. Its sessions now live (and end) in memory; a copy left on disk
    /// holds credentials that would outlive them, and a later crash followed by a restore
    /// by hand would bring back sessions users had since logged out of.
    fn restored(&self) {
        if !self.loaded {
            return;
        }
        if let Err(e) = std::fs::remove_file(&self.path) {
            tracing::error!(target: LOG, path = %self.path.display(), error = %e, "cannot remove the restored session snapshot; remove it before the next start, or its sessions come back");
        }
    }

    /// Writes the workers' sessions (the live ones) to the file. A failure is logged; the
    /// stop goes on.
    fn write(&self, config: &Config, workers: usize, exported: Vec<(usize, Vec<Record>)>) {
        let path = self.path.display();
        if exported.len() < workers {
            tracing::warn!(target: LOG, path = %path, missing = workers - exported.len(), "workers that did not stop in time are left out of the session snapshot");
        }
        let now = crate::clock::Clock::system().unix_ms();
        let lifetime = Self::lifetime(config);
        let sessions: Vec<Record> = exported
            .into_iter()
            .flat_map(|(_, v)| v)
            .filter(|r| lifetime.live_at(&r.meta, now))
            .collect();
        let count = sessions.len();
        let bytes = snapshot::encode(
            &snapshot::Snapshot {
                written_unix_ms: now,
                sessions,
            },
            &self.keys,
        );
        match snapshot::write_file(&self.path, &bytes) {
            Ok(()) => {
                tracing::info!(target: LOG, path = %path, sessions = count, "{count} sessions written to the snapshot")
            }
            Err(e) => {
                tracing::error!(target: LOG, path = %path, error = %e, "cannot write the session snapshot: the sessions are lost at this stop")
            }
        }
    }
}
