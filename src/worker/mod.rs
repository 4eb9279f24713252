//! One worker: a thread with its own monoio runtime, listeners, session gate, routing
//! table and upstream pools. Nothing here is shared with other workers; what crosses
//! threads arrives in the worker's inbox ([`crate::messages::WorkerMsg`]: stop, provider
//! keys, handed-off connections, peer questions, back-channel logouts, admin queries,
//! reloads), a channel whose waker monoio's `sync` feature makes safe.
//!
//! The worker's state is [`crate::state::WorkerState`]; its inbox is handled in `inbox`,
//! its connection tasks (plain, or TLS with the handshake audited) in `connection`.

use std::net::TcpListener as StdListener;
use std::rc::Rc;
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;
use std::time::{Duration, Instant};

use monoio::{IoUringDriver, LegacyDriver, RuntimeBuilder};

mod connection;
mod inbox;

use crate::auth::shared::SharedState;
use crate::auth::{Gate, GateDeps};
use crate::clock::Clock;
use crate::config::{Config, Driver, StoreKind};
use crate::http::head::Limits;
use crate::messages::{Inbox, Shared, WorkerMsg};
use crate::metrics::Metrics;
use crate::net::buffers::BufPool;
use crate::provider::RefreshRequester;
use crate::redis::Redis;
use crate::session::seal::Keyring;
use crate::session::snapshot::Record;
use crate::signal::Signal;
use crate::state::{ConnId, Connections, Routing, Timeouts, WorkerState};
use crate::store::{Expiry, SharedSessions};
use crate::upstream::Upstream;

const LOG: &str = "sessiongate::worker";
/// Submission queue size: enough for thousands of connections' reads in flight per tick.
const RING_ENTRIES: u32 = 4096;

/// What the main thread hands a worker.
pub struct WorkerSpec {
    pub id: usize,
    pub listener: StdListener,
    pub config: Arc<Config>,
    pub upstreams: Vec<Upstream>,
    pub inbox: flume::Receiver<WorkerMsg>,
    /// Every worker's inbox, this one's included, indexed by worker id.
    pub peers: Vec<Inbox>,
    pub shared: Arc<Shared>,
    pub metrics: Arc<crate::metrics::Metrics>,
    /// Client connections open in the whole process, for `sessiongate.max-connections`.
    pub connections_total: Arc<AtomicUsize>,
    pub refresher: Option<RefreshRequester>,
    pub tls_client: Arc<rustls::ClientConfig>,
    pub banner: Option<Arc<str>>,
    /// `server.ssl`: `listener` speaks TLS with this configuration.
    pub server_tls: Option<Arc<rustls::ServerConfig>>,
    /// `sessiongate.http-port`: a plain HTTP listener beside `listener`.
    pub plain_listener: Option<StdListener>,
    /// Sessions this worker held before the restart (`sessiongate.session-snapshot`),
    /// adopted before it accepts.
    pub restore: Vec<Record>,
    /// With a snapshot: where the worker sends its sessions once it has drained.
    pub snapshot: Option<std::sync::mpsc::Sender<(usize, Vec<Record>)>>,
}

/// Which driver a worker ended up on (io_uring setups can be refused by the kernel).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DriverInUse {
    UringTuned,
    Uring,
    Legacy,
}

enum Runtime {
    Uring(monoio::Runtime<monoio::time::TimeDriver<IoUringDriver>>),
    Legacy(monoio::Runtime<monoio::time::TimeDriver<LegacyDriver>>),
}

/// Builds the runtime: io_uring with COOP_TASKRUN, SINGLE_ISSUER and DEFER_TASKRUN (measured
/// to cut CPU per request by a third), else plain io_uring, else epoll with a WARN.
fn build_runtime(driver: Driver, worker: usize) -> std::io::Result<(Runtime, DriverInUse)> {
    if driver == Driver::IoUring {
        if monoio::utils::detect_uring() {
            let mut tuned = io_uring::IoUring::builder();
            tuned
                .setup_coop_taskrun()
                .setup_single_issuer()
                .setup_defer_taskrun();
            match uring(Some(tuned)) {
                Ok(rt) => return Ok((Runtime::Uring(rt), DriverInUse::UringTuned)),
                Err(e) => {
                    tracing::info!(target: LOG, worker, error = %e, "io_uring refused the tuned setup; using the default one")
                }
            }
            match uring(None) {
                Ok(rt) => return Ok((Runtime::Uring(rt), DriverInUse::Uring)),
                Err(e) => {
                    tracing::warn!(target: LOG, worker, error = %e, "io_uring unavailable; falling back to the legacy (epoll) driver")
                }
            }
        } else {
            tracing::warn!(target: LOG, worker, "io_uring unavailable on this kernel; falling back to the legacy (epoll) driver");
        }
    }
    let rt = RuntimeBuilder::<LegacyDriver>::new()
        .enable_timer()
        .build()?;
    Ok((Runtime::Legacy(rt), DriverInUse::Legacy))
}

/// An io_uring runtime with the worker's ring size, set up by `setup` when given.
fn uring(
    setup: Option<io_uring::Builder>,
) -> std::io::Result<monoio::Runtime<monoio::time::TimeDriver<IoUringDriver>>> {
    let mut b = RuntimeBuilder::<IoUringDriver>::new().with_entries(RING_ENTRIES);
    if let Some(setup) = setup {
        b = b.uring_builder(setup);
    }
    b.enable_timer().build()
}

/// Runs a worker on the calling thread until it is told to stop and has drained.
pub fn run(spec: WorkerSpec, ready: std::sync::mpsc::Sender<Result<DriverInUse, String>>) {
    let (rt, in_use) = match build_runtime(spec.config.gateway.driver, spec.id) {
        Ok(x) => x,
        Err(e) => {
            let _ = ready.send(Err(format!(
                "worker {}: cannot build runtime: {e}",
                spec.id
            )));
            return;
        }
    };
    match rt {
        Runtime::Uring(mut rt) => rt.block_on(serve(spec, ready, in_use)),
        Runtime::Legacy(mut rt) => rt.block_on(serve(spec, ready, in_use)),
    }
}

/// A client connection counted as open (in the worker's table, the process-wide count and
/// the gauge) until the guard drops with its task.
pub(crate) struct Open {
    ctx: Rc<WorkerState>,
    pub(crate) id: ConnId,
}

impl Open {
    pub(crate) fn new(ctx: &Rc<WorkerState>) -> Open {
        Metrics::inc(&ctx.metrics.connections_open);
        Open {
            ctx: ctx.clone(),
            id: ctx.connections.add(),
        }
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        self.ctx.connections.remove(self.id);
        self.ctx
            .metrics
            .connections_open
            .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }
}

async fn serve(
    spec: WorkerSpec,
    ready: std::sync::mpsc::Sender<Result<DriverInUse, String>>,
    in_use: DriverInUse,
) {
    let cfg = &spec.config;
    let listener = match monoio::net::TcpListener::from_std(spec.listener) {
        Ok(l) => l,
        Err(e) => {
            let _ = ready.send(Err(format!("worker {}: listener: {e}", spec.id)));
            return;
        }
    };
    let plain_listener = match spec.plain_listener.map(monoio::net::TcpListener::from_std) {
        None => None,
        Some(Ok(l)) => Some(l),
        Some(Err(e)) => {
            let _ = ready.send(Err(format!("worker {}: http-port listener: {e}", spec.id)));
            return;
        }
    };
    let id = spec.id;
    let (inbox_rx, grace) = (spec.inbox, cfg.gateway.shutdown_grace);
    let (check_every, fresh_every) = (
        cfg.cg.session_check_interval,
        cfg.cg.fresh_token_send_interval,
    );
    // The session clock reaches back to the oldest adopted session's creation, so its
    // absolute lifetime is counted from then, not from this start.
    let oldest = spec.restore.iter().map(|r| r.meta.created_unix_ms).min();
    let clock_start_ms = oldest.map_or(0, |t| Clock::system().unix_ms().saturating_sub(t));
    let ctx = Rc::new(state(WorkerSpecParts {
        id,
        clock_start_ms,
        config: spec.config.clone(),
        upstreams: spec.upstreams,
        peers: spec.peers,
        shared: spec.shared,
        metrics: spec.metrics,
        connections_total: spec.connections_total,
        refresher: spec.refresher,
        tls_client: spec.tls_client,
        banner: spec.banner,
        server_tls: spec.server_tls,
    }));
    monoio::spawn(inbox::run(inbox_rx, ctx.clone()));
    monoio::spawn(close_idle_connections(ctx.clone()));
    if let Some(g) = &ctx.gate {
        g.restore(spec.restore);
        let mut scratch = Vec::new();
        monoio::spawn(every(ctx.clone(), check_every, move |g| {
            g.expire(&mut scratch)
        }));
        monoio::spawn(every(ctx.clone(), fresh_every, Gate::send_fresh_tokens));
        monoio::spawn(g.dispatcher().clone().run(ctx.shutdown.clone()));
        if g.has_shared_store() {
            spawn_shared_store_loops(&ctx, check_every);
        }
    }
    let _ = ready.send(Ok(in_use));
    tracing::debug!(target: LOG, worker = id, driver = ?in_use, "worker started");

    if let Some(l) = plain_listener {
        monoio::spawn(accept(l, ctx.clone(), false));
    }
    accept(listener, ctx.clone(), ctx.tls.is_some()).await;
    drain(&ctx, Instant::now() + grace).await;
    // After the drain: the last requests' uses and refreshed tokens are in the sessions.
    if let (Some(tx), Some(g)) = (spec.snapshot, &ctx.gate) {
        let _ = tx.send((id, g.export_sessions()));
    }
}

/// With the shared store: the queue of ends for Redis, the follower of other instances'
/// ends, and the tick that writes uses back and sweeps expiry.
fn spawn_shared_store_loops(ctx: &Rc<WorkerState>, check_every: Duration) {
    // At least once a second: uses written back late make another instance's view of a
    // session older, and a killed instance loses what it had not written.
    let tick = check_every.min(Duration::from_secs(1));
    let c = ctx.clone();
    monoio::spawn(async move {
        if let Some(g) = &c.gate {
            g.run_shared_ends().await;
        }
    });
    let c = ctx.clone();
    monoio::spawn(async move {
        if let Some(g) = &c.gate {
            g.follow_ends().await;
        }
    });
    let c = ctx.clone();
    monoio::spawn(async move {
        let Some(g) = &c.gate else { return };
        let mut scratch = Vec::new();
        while !c.shutdown.is_triggered() {
            monoio::select! {
                _ = monoio::time::sleep(tick) => {}
                _ = c.shutdown.wait() => {}
            }
            // Once more at shutdown: the last uses are written back.
            g.shared_tick(&mut scratch).await;
        }
    });
}

/// The worker's handles on the shared store (`session-store: redis`).
fn shared_store(cfg: &Config, tls: &Arc<rustls::ClientConfig>) -> Option<SharedState> {
    let g = &cfg.gateway;
    if g.session_store != StoreKind::Redis {
        return None;
    }
    // Validation requires a key with the redis store.
    let keys = Rc::new(Keyring::new(&g.session_keys.0)?);
    let settings = Rc::new(cfg.redis.clone());
    let expiry = Expiry {
        idle_ms: cfg.cg.session_timeout.as_millis() as u64,
        max_ms: g.session_max_lifetime.map_or(0, |d| d.as_millis() as u64),
    };
    let store = SharedSessions::new(
        Redis::connect(settings.clone(), tls.clone(), "store"),
        keys,
        &settings.namespace,
        expiry,
        g.redis_outage_grace.as_millis() as u64,
    );
    Some(SharedState::new(
        store,
        Redis::connect(settings, tls.clone(), "ends"),
    ))
}

/// What `state` builds a worker's state from.
struct WorkerSpecParts {
    id: usize,
    clock_start_ms: u64,
    config: Arc<Config>,
    upstreams: Vec<Upstream>,
    peers: Vec<Inbox>,
    shared: Arc<Shared>,
    metrics: Arc<crate::metrics::Metrics>,
    connections_total: Arc<AtomicUsize>,
    refresher: Option<RefreshRequester>,
    tls_client: Arc<rustls::ClientConfig>,
    banner: Option<Arc<str>>,
    server_tls: Option<Arc<rustls::ServerConfig>>,
}

/// The worker's state: routing, limits, and the session gate when login is configured.
fn state(p: WorkerSpecParts) -> WorkerState {
    let (cfg, g) = (&p.config, &p.config.gateway);
    let gate = p.refresher.and_then(|refresher| {
        let deps = GateDeps {
            shared: p.shared.clone(),
            refresher,
            tls_client: p.tls_client.clone(),
            banner: p.banner.as_deref().map(Rc::from),
            peers: p.peers.clone(),
            metrics: p.metrics.clone(),
            clock: Clock::system_since(p.clock_start_ms),
            shared_store: shared_store(cfg, &p.tls_client),
        };
        Gate::new(cfg, p.id as u8, deps)
    });
    WorkerState {
        routing: std::cell::RefCell::new(Rc::new(Routing::from_config(
            cfg,
            p.upstreams,
            &p.tls_client,
            &p.metrics,
        ))),
        tls_client: p.tls_client.clone(),
        limits: Limits {
            max_head_bytes: g.max_head_bytes,
            max_headers: g.max_headers,
            max_uri_bytes: g.max_uri_bytes,
        },
        timeouts: Timeouts::from_config(g),
        max_body_bytes: g.max_body_bytes,
        body_min_rate: g.body_min_rate,
        connections: Connections::new(p.connections_total, g.max_connections),
        access_log: g.access_log,
        hand_off: g.connection_hand_off,
        trusted_proxies: g.trusted_proxies.clone(),
        shutdown: Signal::new(),
        buffers: Rc::new(BufPool::shown_in(p.metrics.io_buffers_lent.clone())),
        worker: p.id,
        gate,
        metrics: p.metrics,
        peers: p.peers,
        tls: p.server_tls.map(crate::tls::Terminator::new),
    }
}

/// After the listeners stopped: open connections get until `deadline` to finish, then the
/// outgoing calls (logouts above all) the rest of it; retries stop waiting for their delays
/// once shutdown starts.
async fn drain(ctx: &WorkerState, deadline: Instant) {
    let open = || ctx.connections.here();
    while open() > 0 && Instant::now() < deadline {
        monoio::time::sleep(Duration::from_millis(10)).await;
    }
    if open() > 0 {
        tracing::warn!(target: LOG, worker = ctx.worker, open = open(), "grace period over; closing remaining connections");
    }
    let Some(g) = &ctx.gate else { return };
    g.begin_shutdown();
    // With the shared store the drain's uses are written back, and ends Redis has not
    // taken yet are retried, until they are or the grace is over.
    let mut scratch = Vec::new();
    let mut retried = Instant::now();
    if g.has_shared_store() {
        g.shared_tick(&mut scratch).await;
    }
    while (g.dispatcher().pending() > 0 || g.shared_ends_waiting() > 0) && Instant::now() < deadline
    {
        monoio::time::sleep(Duration::from_millis(10)).await;
        if g.shared_ends_waiting() > 0 && retried.elapsed() >= Duration::from_millis(200) {
            retried = Instant::now();
            g.shared_tick(&mut scratch).await;
        }
    }
    if g.dispatcher().pending() > 0 {
        tracing::error!(target: "sessiongate::dispatcher", worker = ctx.worker, pending = g.dispatcher().pending(), "grace period over with outgoing calls undelivered: lost");
    }
    if g.shared_ends_waiting() > 0 {
        tracing::error!(target: "sessiongate::store", worker = ctx.worker, pending = g.shared_ends_waiting(), "grace period over with session ends the store did not take: those sessions stay valid elsewhere until they expire");
    }
}

/// Accepts on one listener until shutdown; `tls`: its connections start with a handshake.
///
/// At `sessiongate.max-connections` the connection of this worker idle longest is told to
/// close to make room (a keep-alive connection may be closed at any time, and a flood of
/// idle connections then only pushes out its own oldest ones); when none is idle, the new
/// connection is closed at once, since every slot is doing work.
async fn accept(listener: monoio::net::TcpListener, ctx: Rc<WorkerState>, tls: bool) {
    loop {
        let accepted = monoio::select! {
            a = listener.accept() => Some(a),
            _ = ctx.shutdown.wait() => None,
        };
        match accepted {
            None => break,
            Some(Ok((stream, peer))) => {
                Metrics::inc(&ctx.metrics.connections_accepted);
                if ctx.connections.at_cap() {
                    if ctx.connections.shed_longest_idle() {
                        Metrics::inc(&ctx.metrics.connections_shed_idle);
                    } else {
                        Metrics::inc(&ctx.metrics.connections_shed_new);
                        tracing::debug!(target: LOG, worker = ctx.worker, peer = %peer, "max-connections reached and none idle; connection closed");
                        continue;
                    }
                }
                let _ = stream.set_nodelay(true);
                let guard = Open::new(&ctx);
                let ctx = ctx.clone();
                // Two tasks, not one with a branch: a task is as large as its largest state,
                // and a plain connection must not carry the TLS handshake's.
                if tls {
                    monoio::spawn(async move {
                        connection::serve_tls(stream, peer, ctx, guard.id).await;
                        drop(guard);
                    });
                } else {
                    monoio::spawn(async move {
                        crate::proxy::serve(stream, peer, ctx, Vec::new(), guard.id).await;
                        drop(guard);
                    });
                }
            }
            Some(Err(e)) => {
                // EMFILE and friends: back off briefly instead of spinning on the error.
                tracing::warn!(target: LOG, worker = ctx.worker, error = %e, "accept failed");
                monoio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// Closes the connections idle past `connection-idle-timeout-ms`, a few times a second
/// (so at most ~a tenth of the timeout, and never more than a second, late), until the
/// worker stops.
async fn close_idle_connections(ctx: Rc<WorkerState>) {
    let max_idle = ctx.timeouts.idle;
    let every = (max_idle / 10).clamp(Duration::from_millis(10), Duration::from_secs(1));
    while !ctx.shutdown.is_triggered() {
        monoio::select! {
            _ = monoio::time::sleep(every) => {}
            _ = ctx.shutdown.wait() => return,
        }
        ctx.connections.close_idle(max_idle);
    }
}

/// Runs `tick` on the worker's gate every `every` until the worker stops: session expiry
/// (`cg.sessionCheckIntervalMs`, the wheel's tick) and fresh-token rounds
/// (`cg.freshTokenSendIntervalMs`).
async fn every(ctx: Rc<WorkerState>, every: Duration, mut tick: impl FnMut(&Gate)) {
    let Some(gate) = ctx.gate.as_ref() else {
        return;
    };
    while !ctx.shutdown.is_triggered() {
        monoio::select! {
            _ = monoio::time::sleep(every) => {}
            _ = ctx.shutdown.wait() => return,
        }
        tick(gate);
    }
}
