//! A worker's state: what every connection task of the worker shares (single-threaded:
//! `Rc`, no locks). Built by the worker at start; the routing table and the TLS server
//! configuration are replaced whole by a reload while requests in flight finish on the ones
//! they started with.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use crate::auth::Gate;
use crate::config::{Config, GatewayConfig};
use crate::http::head::Limits;
use crate::messages::Inbox;
use crate::metrics::Metrics;
use crate::net::buffers::BufPool;
use crate::route::Router;
use crate::signal::Signal;
use crate::tls::Terminator;
use crate::upstream::{Pools, Upstream};

pub struct WorkerState {
    /// Routes and upstream pools.
    pub routing: RefCell<Rc<Routing>>,
    /// Client TLS settings for https upstreams (kept to rebuild pools on a reload).
    pub tls_client: Arc<rustls::ClientConfig>,
    pub limits: Limits,
    pub timeouts: Timeouts,
    pub max_body_bytes: u64,
    /// `sessiongate.body-min-rate-bytes-per-sec`; 0 = no minimum.
    pub body_min_rate: u64,
    /// The worker's client connections under `sessiongate.max-connections`.
    pub connections: Connections,
    pub access_log: bool,
    /// `sessiongate.connection-hand-off`.
    pub hand_off: bool,
    /// `sessiongate.trusted-proxies`: peers whose X-Forwarded-For chain is kept.
    pub trusted_proxies: Vec<std::net::IpAddr>,
    /// The worker's stop: idle connections end, the last request is answered with `close`.
    pub shutdown: Signal,
    /// I/O buffers lent to connections while an exchange is in flight.
    pub buffers: Rc<BufPool>,
    pub worker: usize,
    /// This worker's counters (written only here; read by the management listener).
    pub metrics: Arc<Metrics>,
    /// Session handling; `None` when no OAuth2 registration is configured (proxy only).
    pub gate: Option<Gate>,
    /// Every worker's inbox, for handing a connection to the worker that owns its session.
    pub peers: Vec<Inbox>,
    /// The server certificate for the TLS listener; `None` without `server.ssl`.
    pub tls: Option<Terminator>,
}

impl WorkerState {
    /// The current routing table (an `Rc` clone: a reload never pulls it from under a
    /// request).
    pub fn routing(&self) -> Rc<Routing> {
        self.routing.borrow().clone()
    }
}

/// The routing table with the upstream pools its routes use.
pub struct Routing {
    pub router: Router,
    /// For each route of `router` (same order), the index of its upstream in `pools`.
    pub route_upstream: Vec<Option<usize>>,
    /// For each route, its slot in the worker's per-route metrics.
    pub route_slot: Vec<usize>,
    /// For each route, its id, shared so the access log holds it without a copy.
    pub route_ids: Vec<Rc<str>>,
    pub pools: Pools,
}

impl Routing {
    /// The routes of `config` over fresh pools to `upstreams` (at start and on a reload).
    pub fn from_config(
        config: &Config,
        upstreams: Vec<Upstream>,
        tls_client: &Arc<rustls::ClientConfig>,
        metrics: &Metrics,
    ) -> Routing {
        let g = &config.gateway;
        let pools = Pools::new(
            upstreams,
            g.upstream_pool_size,
            g.upstream_idle_timeout,
            g.upstream_connect_timeout,
            tls_client.clone(),
        );
        Routing::new(Router::new(&config.routes), pools, metrics)
    }

    pub fn new(router: Router, pools: Pools, metrics: &Metrics) -> Routing {
        // Every route's upstream was resolved before, so the lookup cannot miss.
        let route_upstream = router
            .routes()
            .iter()
            .map(|r| pools.index_of(&r.upstream))
            .collect();
        let route_slot = router
            .routes()
            .iter()
            .map(|r| metrics.routes.slot(&r.id))
            .collect();
        let route_ids = router.routes().iter().map(|r| Rc::from(&*r.id)).collect();
        Routing {
            router,
            route_upstream,
            route_slot,
            route_ids,
            pools,
        }
    }
}

/// The connection timeouts (`sessiongate.*-timeout`).
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    pub idle: Duration,
    pub head: Duration,
    pub body: Duration,
    pub response: Duration,
}

impl Timeouts {
    pub fn from_config(g: &GatewayConfig) -> Timeouts {
        Timeouts {
            idle: g.connection_idle_timeout,
            head: g.request_head_timeout,
            body: g.body_read_timeout,
            response: g.upstream_response_timeout,
        }
    }
}

/// A client connection's place in [`Connections`].
#[derive(Debug, Clone, Copy)]
pub struct ConnId(usize);

/// The worker's client connections, for `sessiongate.max-connections`: the process-wide
/// count, and which connections wait idle for a request, so that the one idle longest can
/// be closed to make room for a new one, and those idle past
/// `connection-idle-timeout-ms` are closed by one sweep ([`Connections::close_idle`]) rather
/// than by a timer each (a timer would cost every idle connection ~1 KiB of task state).
///
/// The limit is process-wide because what it protects, the open-file limit, is; a
/// handed-off connection moves between workers without changing the total.
pub struct Connections {
    /// Client connections open in the whole process (every worker adds its own).
    total: Arc<AtomicUsize>,
    max: usize,
    slots: RefCell<Vec<Slot>>,
    free: RefCell<Vec<usize>>,
    /// Connections of this worker.
    here: Cell<usize>,
    /// Orders idle marks: the lowest one has waited longest.
    seq: Cell<u64>,
    /// Where `Slot::since_ms` counts from.
    epoch: Instant,
}

#[derive(Default)]
struct Slot {
    /// Since when (in `seq` order) the connection waits for a request; 0: busy.
    idle: u64,
    /// When it began to wait (ms since the table's epoch).
    since_ms: u64,
    /// Chosen to be closed: to make room, idle too long, or the worker stops.
    shed: bool,
    waker: Option<Waker>,
}

impl Connections {
    pub fn new(total: Arc<AtomicUsize>, max: usize) -> Connections {
        Connections {
            total,
            max,
            slots: RefCell::new(Vec::new()),
            free: RefCell::new(Vec::new()),
            here: Cell::new(0),
            seq: Cell::new(0),
            epoch: Instant::now(),
        }
    }

    /// Counts a new connection (at accept, or when one is handed over).
    pub fn add(&self) -> ConnId {
        self.total.fetch_add(1, Relaxed);
        self.here.set(self.here.get() + 1);
        let mut slots = self.slots.borrow_mut();
        let i = match self.free.borrow_mut().pop() {
            Some(i) => {
                slots[i] = Slot::default();
                i
            }
            None => {
                slots.push(Slot::default());
                slots.len() - 1
            }
        };
        ConnId(i)
    }

    pub fn remove(&self, id: ConnId) {
        self.total.fetch_sub(1, Relaxed);
        self.here.set(self.here.get() - 1);
        self.slots.borrow_mut()[id.0].waker = None;
        self.free.borrow_mut().push(id.0);
    }

    /// This worker's open connections.
    pub fn here(&self) -> usize {
        self.here.get()
    }

    /// The whole process holds `max-connections`.
    pub fn at_cap(&self) -> bool {
        self.total.load(Relaxed) >= self.max
    }

    /// Tells the connection that has waited longest for a request to close; `false` when
    /// none of this worker's connections is idle. A linear scan, done only at the cap.
    pub fn shed_longest_idle(&self) -> bool {
        let mut slots = self.slots.borrow_mut();
        let Some(oldest) = slots
            .iter_mut()
            .filter(|s| s.idle != 0)
            .min_by_key(|s| s.idle)
        else {
            return false;
        };
        oldest.idle = 0;
        oldest.shed = true;
        if let Some(w) = oldest.waker.take() {
            w.wake();
        }
        true
    }

    /// Closes every connection that has waited for a request for `max_idle` or longer
    /// (all idle ones with zero: the worker stops); answers how many. One pass over the
    /// worker's slots, run a few times a second.
    pub fn close_idle(&self, max_idle: Duration) -> usize {
        let now = self.epoch.elapsed().as_millis() as u64;
        let max = max_idle.as_millis() as u64;
        let mut closed = 0;
        for slot in self.slots.borrow_mut().iter_mut() {
            if slot.idle != 0 && now.saturating_sub(slot.since_ms) >= max {
                slot.idle = 0;
                slot.shed = true;
                if let Some(w) = slot.waker.take() {
                    w.wake();
                }
                closed += 1;
            }
        }
        closed
    }

    /// Marks the connection idle while awaited; completes when it is chosen to be closed
    /// (to make room, idle too long, or the worker stops).
    pub fn idle(&self, id: ConnId) -> Idle<'_> {
        Idle { c: self, id }
    }
}

/// See [`Connections::idle`].
pub struct Idle<'a> {
    c: &'a Connections,
    id: ConnId,
}

impl Future for Idle<'_> {
    type Output = ();
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let mut slots = self.c.slots.borrow_mut();
        let slot = &mut slots[self.id.0];
        if slot.shed {
            return Poll::Ready(());
        }
        if slot.idle == 0 {
            let seq = self.c.seq.get() + 1;
            self.c.seq.set(seq);
            slot.idle = seq;
            slot.since_ms = self.c.epoch.elapsed().as_millis() as u64;
        }
        match &slot.waker {
            Some(w) if w.will_wake(cx.waker()) => {}
            _ => slot.waker = Some(cx.waker().clone()),
        }
        Poll::Pending
    }
}

impl Drop for Idle<'_> {
    fn drop(&mut self) {
        let mut slots = self.c.slots.borrow_mut();
        let slot = &mut slots[self.id.0];
        slot.idle = 0;
        slot.waker = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn poll(f: &mut Pin<Box<Idle<'_>>>) -> Poll<()> {
        f.as_mut().poll(&mut Context::from_waker(Waker::noop()))
    }

    #[test]
    fn the_longest_idle_connection_is_shed_first() {
        let total = Arc::new(AtomicUsize::new(0));
        let c = Connections::new(total.clone(), 3);
        let (a, b, busy) = (c.add(), c.add(), c.add());
        assert!(c.at_cap() && total.load(Relaxed) == 3);
        let mut wait_b = Box::pin(c.idle(b));
        let mut wait_a = Box::pin(c.idle(a));
        assert!(poll(&mut wait_b).is_pending() && poll(&mut wait_a).is_pending());
        assert!(c.shed_longest_idle());
        assert!(poll(&mut wait_b).is_ready(), "b waited longest");
        assert!(poll(&mut wait_a).is_pending());
        assert!(c.shed_longest_idle());
        assert!(poll(&mut wait_a).is_ready());
        assert!(!c.shed_longest_idle(), "the busy one is never shed");
        drop((wait_a, wait_b));
        c.remove(a);
        assert!(!c.at_cap() && c.here() == 2);
        let reused = c.add();
        let mut wait = Box::pin(c.idle(reused));
        assert!(poll(&mut wait).is_pending(), "a reused slot starts fresh");
        drop(wait);
        assert!(!c.shed_longest_idle(), "no longer idle once the wait ends");
        let _ = busy;
    }

    #[test]
    fn the_sweep_closes_connections_idle_past_the_timeout_only() {
        let c = Connections::new(Arc::new(AtomicUsize::new(0)), 10);
        let (idle, busy) = (c.add(), c.add());
        let mut wait = Box::pin(c.idle(idle));
        assert!(poll(&mut wait).is_pending());
        assert_eq!(
            c.close_idle(Duration::from_secs(60)),
            0,
            "not idle long enough"
        );
        assert!(poll(&mut wait).is_pending());
        assert_eq!(
            c.close_idle(Duration::ZERO),
            1,
            "the busy one is never closed"
        );
        assert!(poll(&mut wait).is_ready());
        drop(wait);
        assert_eq!(c.close_idle(Duration::ZERO), 0, "closed once");
        c.remove(busy);
    }
}
