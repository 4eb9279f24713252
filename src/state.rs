//! A worker's state: what every connection task of the worker shares (single-threaded:
//! `Rc`, no locks). Built by the worker at start; the routing table and the TLS server
//! configuration are replaced whole by a reload while requests in flight finish on the ones
//! they started with.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use crate::auth::Gate;
use crate::config::{Config, GatewayConfig};
use crate::http::head::Limits;
use crate::messages::Inbox;
use crate::metrics::Metrics;
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
    pub access_log: bool,
    /// `sessiongate.connection-hand-off`.
    pub hand_off: bool,
    /// `sessiongate.trusted-proxies`: peers whose X-Forwarded-For chain is kept.
    pub trusted_proxies: Vec<std::net::IpAddr>,
    /// The worker's stop: idle connections end, the last request is answered with `close`.
    pub shutdown: Signal,
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
    pub pools: Pools,
}

impl Routing {
    /// The routes of `config` over fresh pools to `upstreams` (at start and on a reload).
    pub fn from_config(
        config: &Config,
        upstreams: Vec<Upstream>,
        tls_client: &Arc<rustls::ClientConfig>,
    ) -> Routing {
        let g = &config.gateway;
        let pools = Pools::new(
            upstreams,
            g.upstream_pool_size,
            g.upstream_idle_timeout,
            g.upstream_connect_timeout,
            tls_client.clone(),
        );
        Routing::new(Router::new(&config.routes), pools)
    }

    pub fn new(router: Router, pools: Pools) -> Routing {
        // Every route's upstream was resolved before, so the lookup cannot miss.
        let route_upstream = router
            .routes()
            .iter()
            .map(|r| pools.index_of(&r.upstream))
            .collect();
        Routing {
            router,
            route_upstream,
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
