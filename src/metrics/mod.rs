//! Counters, gauges and latency histograms ([`histogram`]) in the Prometheus text format,
//! served by the management listener. Names and units follow Prometheus conventions
//! (`_total`, `_seconds`); label sets are bounded.
//!
//! Each worker owns one [`Metrics`]; only that worker writes it, with relaxed atomic adds on
//! its own cache lines, so the request path takes no lock and shares no line with another
//! core. The management listener reads every worker's block and sums.

pub mod histogram;

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

use histogram::{Histogram, RouteStats, Sum, CLASSES, ROUTE_SLOTS};

/// The provider calls timed, as labels of `sessiongate_provider_call_duration_seconds`.
pub const PROVIDER_CALLS: [&str; 3] = ["code_exchange", "token_refresh", "provider_logout"];

/// Why a session ended, as a metric label.
pub const END_REASONS: [&str; 6] = [
    "expired",
    "user",
    "backchannel",
    "admin",
    "refresh_refused",
    "superseded",
];

/// How a cache miss of the shared store went, as labels of `sessiongate_store_loads_total`.
pub const STORE_LOADS: [&str; 3] = ["hit", "missing", "error"];

/// One worker's counters.
#[derive(Debug, Default)]
#[repr(align(64))]
pub struct Metrics {
    /// Request duration by route and status class, upstream time by route.
    pub routes: RouteStats,
    /// Provider calls by [`PROVIDER_CALLS`].
    pub provider_calls: [Histogram; 3],
    /// Sessions this worker holds now.
    pub sessions: AtomicU64,
    /// I/O buffers lent to connections now (none to an idle one).
    pub io_buffers_lent: Arc<AtomicU64>,
    pub connections_accepted: AtomicU64,
    pub connections_open: AtomicU64,
    /// At `sessiongate.max-connections`: idle connections closed to make room, and new
    /// ones closed at once because none was idle.
    pub connections_shed_idle: AtomicU64,
    pub connections_shed_new: AtomicU64,
    pub handoffs: AtomicU64,
    /// Responses by status class: 1xx..5xx.
    pub responses: [AtomicU64; 5],
    pub upstream_connect_errors: AtomicU64,
    pub upstream_timeouts: AtomicU64,
    pub sessions_created: AtomicU64,
    pub sessions_rejected: AtomicU64,
    pub sessions_ended: [AtomicU64; 6],
    /// Cache misses loaded from the shared store, by [`STORE_LOADS`].
    pub store_loads: [AtomicU64; 3],
    /// Session ends this worker holds that the shared store has not taken yet.
    pub store_ends_waiting: AtomicU64,
    pub logins_started: AtomicU64,
    pub jwt_verifications: AtomicU64,
    pub jwt_cache_hits: AtomicU64,
    pub jwt_failures: AtomicU64,
    pub refreshes: AtomicU64,
    pub backchannel_logouts: AtomicU64,
    pub backchannel_refused: AtomicU64,
    pub calls_sent: AtomicU64,
    pub call_retries: AtomicU64,
    pub calls_failed: AtomicU64,
    pub calls_dropped: AtomicU64,
    pub tls_handshake_failures: AtomicU64,
    /// Pending logins dropped: past their TTL, or the oldest of a full table.
    pub pending_expired: AtomicU64,
    pub pending_evicted: AtomicU64,
    /// Logins refused because their client held its whole share of pending logins.
    pub logins_refused_share: AtomicU64,
}

impl Metrics {
    #[inline]
    pub fn inc(c: &AtomicU64) {
        c.fetch_add(1, Relaxed);
    }

    #[inline]
    pub fn response(&self, status: u16) {
        self.responses[class(status)].fetch_add(1, Relaxed);
    }

    /// One answered request: its route's slot (0: the gateway's own answer), status and
    /// time from its head to its last byte.
    #[inline]
    pub fn request_done(&self, route_slot: usize, status: u16, micros: u64) {
        self.routes.requests[route_slot.min(ROUTE_SLOTS - 1)][class(status)].observe_us(micros);
    }

    /// Time from sending a request upstream to its response head.
    #[inline]
    pub fn upstream_answered(&self, route_slot: usize, micros: u64) {
        self.routes.upstream[route_slot.min(ROUTE_SLOTS - 1)].observe_us(micros);
    }

    /// A provider call of kind `call` (one of [`PROVIDER_CALLS`]) took `elapsed`.
    pub fn provider_call(&self, call: &str, elapsed: std::time::Duration) {
        if let Some(i) = PROVIDER_CALLS.iter().position(|c| *c == call) {
            self.provider_calls[i].observe_us(elapsed.as_micros() as u64);
        }
    }

    /// Pending logins that left the table without a callback.
    pub fn pending_logins_evicted(&self, expired: usize, full: usize) {
        if expired > 0 {
            self.pending_expired.fetch_add(expired as u64, Relaxed);
        }
        if full > 0 {
            self.pending_evicted.fetch_add(full as u64, Relaxed);
        }
    }

    pub fn store_load(&self, result: &str) {
        if let Some(i) = STORE_LOADS.iter().position(|r| *r == result) {
            self.store_loads[i].fetch_add(1, Relaxed);
        }
    }

    pub fn session_ended(&self, reason: &str) {
        if let Some(i) = END_REASONS.iter().position(|r| *r == reason) {
            self.sessions_ended[i].fetch_add(1, Relaxed);
        }
    }
}

fn class(status: u16) -> usize {
    usize::from((status / 100).clamp(1, 5)) - 1
}

fn sum(all: &[Arc<Metrics>], f: impl Fn(&Metrics) -> &AtomicU64) -> u64 {
    all.iter().map(|m| f(m).load(Relaxed)).sum()
}

/// The plain counters: name, help, and the field each worker counts in.
type Counter = (&'static str, &'static str, fn(&Metrics) -> &AtomicU64);

const COUNTERS: &[Counter] = &[
    (
        "sessiongate_connections_accepted_total",
        "Client connections accepted.",
        |m| &m.connections_accepted,
    ),
    (
        "sessiongate_connection_handoffs_total",
        "Client connections moved to the worker owning their session.",
        |m| &m.handoffs,
    ),
    (
        "sessiongate_upstream_connect_errors_total",
        "Upstream connections that failed (502).",
        |m| &m.upstream_connect_errors,
    ),
    (
        "sessiongate_upstream_timeouts_total",
        "Upstream answers that timed out (504).",
        |m| &m.upstream_timeouts,
    ),
    (
        "sessiongate_sessions_created_total",
        "Sessions created by a login.",
        |m| &m.sessions_created,
    ),
    (
        "sessiongate_sessions_rejected_total",
        "Logins refused because cg.maxSessions was reached.",
        |m| &m.sessions_rejected,
    ),
    (
        "sessiongate_logins_started_total",
        "Redirects to the identity provider.",
        |m| &m.logins_started,
    ),
    (
        "sessiongate_jwt_verifications_total",
        "JWT signature verifications.",
        |m| &m.jwt_verifications,
    ),
    (
        "sessiongate_jwt_cache_hits_total",
        "JWTs accepted from the per-worker verification cache.",
        |m| &m.jwt_cache_hits,
    ),
    ("sessiongate_jwt_failures_total", "JWTs refused.", |m| {
        &m.jwt_failures
    }),
    (
        "sessiongate_token_refreshes_total",
        "Access tokens refreshed.",
        |m| &m.refreshes,
    ),
    (
        "sessiongate_backchannel_logouts_total",
        "Back-channel logout tokens accepted.",
        |m| &m.backchannel_logouts,
    ),
    (
        "sessiongate_backchannel_refused_total",
        "Back-channel logout requests refused (400).",
        |m| &m.backchannel_refused,
    ),
    (
        "sessiongate_calls_sent_total",
        "Outgoing calls delivered by the dispatcher.",
        |m| &m.calls_sent,
    ),
    (
        "sessiongate_call_retries_total",
        "Retries of outgoing calls.",
        |m| &m.call_retries,
    ),
    (
        "sessiongate_calls_failed_total",
        "Outgoing calls lost after their last attempt.",
        |m| &m.calls_failed,
    ),
    (
        "sessiongate_calls_dropped_total",
        "Fresh-token calls dropped from a full queue.",
        |m| &m.calls_dropped,
    ),
    (
        "sessiongate_pending_logins_expired_total",
        "Pending logins dropped after ten minutes without a callback.",
        |m| &m.pending_expired,
    ),
    (
        "sessiongate_pending_logins_evicted_total",
        "Pending logins dropped, oldest first, to keep a flooded table within its bounds.",
        |m| &m.pending_evicted,
    ),
    (
        "sessiongate_logins_refused_total",
        "Logins refused because their client held its whole share of pending logins.",
        |m| &m.logins_refused_share,
    ),
    (
        "sessiongate_tls_handshake_failures_total",
        "TLS handshakes that failed.",
        |m| &m.tls_handshake_failures,
    ),
];

/// Renders every worker's counters, summed, plus gateway-wide gauges.
pub fn render(
    all: &[Arc<Metrics>],
    sessions_active: u64,
    provider_ready: bool,
    store_up: Option<bool>,
) -> String {
    let mut out = String::with_capacity(4096);
    for (name, help, field) in COUNTERS {
        let v = sum(all, field);
        let _ = write!(
            out,
            "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}\n"
        );
    }
    out.push_str("# HELP sessiongate_responses_total Responses to clients by status class.\n# TYPE sessiongate_responses_total counter\n");
    for (i, class) in ["1xx", "2xx", "3xx", "4xx", "5xx"].iter().enumerate() {
        let _ = writeln!(
            out,
            "sessiongate_responses_total{{code=\"{class}\"}} {}",
            sum(all, |m| &m.responses[i])
        );
    }
    out.push_str("# HELP sessiongate_connections_shed_total Client connections closed at sessiongate.max-connections: the longest idle to make room, or a new one when none was idle.\n# TYPE sessiongate_connections_shed_total counter\n");
    for (reason, f) in [
        ("idle", sum(all, |m| &m.connections_shed_idle)),
        ("new", sum(all, |m| &m.connections_shed_new)),
    ] {
        let _ = writeln!(
            out,
            "sessiongate_connections_shed_total{{reason=\"{reason}\"}} {f}"
        );
    }
    out.push_str("# HELP sessiongate_sessions_ended_total Sessions ended, by reason.\n# TYPE sessiongate_sessions_ended_total counter\n");
    for (i, reason) in END_REASONS.iter().enumerate() {
        let _ = writeln!(
            out,
            "sessiongate_sessions_ended_total{{reason=\"{reason}\"}} {}",
            sum(all, |m| &m.sessions_ended[i])
        );
    }
    out.push_str("# HELP sessiongate_store_loads_total Sessions not cached by the worker that served them, looked up in the shared store: found, missing, or failed.\n# TYPE sessiongate_store_loads_total counter\n");
    for (i, result) in STORE_LOADS.iter().enumerate() {
        let _ = writeln!(
            out,
            "sessiongate_store_loads_total{{result=\"{result}\"}} {}",
            sum(all, |m| &m.store_loads[i])
        );
    }
    if let Some(up) = store_up {
        let _ = write!(
            out,
            "# HELP sessiongate_store_up 1 while the shared session store (Redis) is reachable.\n# TYPE sessiongate_store_up gauge\nsessiongate_store_up {}\n# HELP sessiongate_store_ends_waiting Session ends not yet taken by the shared store (retried until they are).\n# TYPE sessiongate_store_ends_waiting gauge\nsessiongate_store_ends_waiting {}\n",
            u8::from(up),
            sum(all, |m| &m.store_ends_waiting)
        );
    }
    let _ = write!(
        out,
        "# HELP sessiongate_connections_open Client connections open now.\n# TYPE sessiongate_connections_open gauge\nsessiongate_connections_open {}\n",
        sum(all, |m| &m.connections_open)
    );
    let _ = write!(
        out,
        "# HELP sessiongate_sessions_active Sessions alive now, whole gateway.\n# TYPE sessiongate_sessions_active gauge\nsessiongate_sessions_active {sessions_active}\n"
    );
    let _ = write!(
        out,
        "# HELP sessiongate_provider_ready 1 once the identity provider's metadata and keys are loaded.\n# TYPE sessiongate_provider_ready gauge\nsessiongate_provider_ready {}\n",
        u8::from(provider_ready)
    );
    let _ = write!(
        out,
        "# HELP sessiongate_io_buffers_lent I/O buffers held by connections now (idle ones hold none).\n# TYPE sessiongate_io_buffers_lent gauge\nsessiongate_io_buffers_lent {}\n",
        all.iter().map(|m| m.io_buffers_lent.load(Relaxed)).sum::<u64>()
    );
    out.push_str("# HELP sessiongate_worker_sessions Sessions each worker holds now.\n# TYPE sessiongate_worker_sessions gauge\n");
    for (i, m) in all.iter().enumerate() {
        let _ = writeln!(
            out,
            "sessiongate_worker_sessions{{worker=\"{i}\"}} {}",
            m.sessions.load(Relaxed)
        );
    }
    render_histograms(&mut out, all);
    out
}

/// The latency histograms, summed over workers by label.
fn render_histograms(out: &mut String, all: &[Arc<Metrics>]) {
    // Routes by name: workers give slots in their own order.
    let mut names: Vec<&str> = Vec::new();
    for m in all {
        for i in 0..ROUTE_SLOTS {
            if let Some(n) = m.routes.name(i).filter(|n| !names.contains(n)) {
                names.push(n);
            }
        }
    }
    let by_route = |name: &str, f: &dyn Fn(&Metrics, usize) -> &Histogram| {
        let mut s = Sum::default();
        for m in all {
            if let Some(i) = (0..ROUTE_SLOTS).find(|&i| m.routes.name(i) == Some(name)) {
                s.add(f(m, i));
            }
        }
        s
    };
    out.push_str("# HELP sessiongate_request_duration_seconds Time from a request's head to its answer's last byte, by route and status class.\n# TYPE sessiongate_request_duration_seconds histogram\n");
    for name in &names {
        for (c, code) in CLASSES.iter().enumerate() {
            let s = by_route(name, &|m, i| &m.routes.requests[i][c]);
            if !s.is_empty() {
                s.write(
                    out,
                    "sessiongate_request_duration_seconds",
                    &format!("route=\"{name}\",code=\"{code}\""),
                );
            }
        }
    }
    out.push_str("# HELP sessiongate_upstream_response_seconds Time from sending a request upstream to its response head, by route.\n# TYPE sessiongate_upstream_response_seconds histogram\n");
    for name in &names {
        let s = by_route(name, &|m, i| &m.routes.upstream[i]);
        if !s.is_empty() {
            s.write(
                out,
                "sessiongate_upstream_response_seconds",
                &format!("route=\"{name}\""),
            );
        }
    }
    out.push_str("# HELP sessiongate_provider_call_duration_seconds Calls to the identity provider: code exchange at login, token refresh, logout.\n# TYPE sessiongate_provider_call_duration_seconds histogram\n");
    for (c, call) in PROVIDER_CALLS.iter().enumerate() {
        let mut s = Sum::default();
        for m in all {
            s.add(&m.provider_calls[c]);
        }
        s.write(
            out,
            "sessiongate_provider_call_duration_seconds",
            &format!("call=\"{call}\""),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_over_workers() {
        let a = Arc::new(Metrics::default());
        let b = Arc::new(Metrics::default());
        a.response(200);
        b.response(204);
        b.response(502);
        Metrics::inc(&a.sessions_created);
        a.session_ended("backchannel");
        Metrics::inc(&b.connections_shed_idle);
        let text = render(&[a, b], 7, true, None);
        assert!(text.contains("sessiongate_responses_total{code=\"2xx\"} 2\n"));
        assert!(text.contains("sessiongate_responses_total{code=\"5xx\"} 1\n"));
        assert!(text.contains("sessiongate_sessions_created_total 1\n"));
        assert!(text.contains("sessiongate_sessions_ended_total{reason=\"backchannel\"} 1\n"));
        assert!(text.contains("sessiongate_sessions_active 7\n"));
        assert!(text.contains("sessiongate_connections_shed_total{reason=\"idle\"} 1\n"));
        assert!(text.contains("sessiongate_connections_shed_total{reason=\"new\"} 0\n"));
        assert!(text.contains("sessiongate_provider_ready 1\n"));
    }
}
