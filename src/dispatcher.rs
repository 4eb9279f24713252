//! The per-worker dispatcher of outgoing calls: logouts at the backend and the
//! provider, fresh-token propagation, logout relays. Connection errors, timeouts and 5xx are
//! retried up to `cg.maxRetryAttempts` times after `cg.minRetryDelaySeconds × 2^(n-1)`;
//! a 4xx is final. Every final failure is logged at ERROR with what was lost.
//!
//! The queue is bounded. When it is full, the oldest fresh-token call is dropped (and
//! counted): a newer one for the same session supersedes it anyway. Logout calls are never
//! dropped silently: past the bound they are still queued, with a WARN.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::rc::Rc;
use std::task::{Poll, Waker};
use std::time::{Duration, Instant};

use std::sync::Arc;

use crate::client::HttpClient;
use crate::config::HttpUrl;
use crate::metrics::Metrics;
use crate::signal::Signal;

/// The censhare `LogoutSignalSender` maps onto this target.
const LOG: &str = "sessiongate::dispatcher";
/// Calls executing at once per worker.
const MAX_IN_FLIGHT: usize = 32;

/// What a call is for; decides drop priority and how a loss is reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallKind {
    /// `cg.censhareLogoutUrl` for an ended session.
    BackendLogout,
    /// Revocation (RFC 7009) or Keycloak's logout endpoint for an ended session.
    ProviderLogout,
    /// A session's current access token to a `cg.freshTokenListeners` URL.
    FreshToken,
    /// A back-channel logout token relayed to a `cg.logoutListeners` URL.
    LogoutRelay,
}

impl CallKind {
    pub fn label(self) -> &'static str {
        match self {
            CallKind::BackendLogout => "backend logout",
            CallKind::ProviderLogout => "provider logout",
            CallKind::FreshToken => "fresh token",
            CallKind::LogoutRelay => "logout relay",
        }
    }
}

/// One outgoing call with everything needed to send it again.
#[derive(Debug, Clone)]
pub struct Call {
    pub kind: CallKind,
    pub url: HttpUrl,
    pub headers: Vec<(&'static str, String)>,
    /// Content type and body; calls are POSTs.
    pub body: Option<(&'static str, Vec<u8>)>,
    /// Whose call this is, for the log line that reports a loss.
    pub subject: Box<str>,
    /// The session as logs name it ([`crate::session::SessionId::reference`], or the
    /// provider's `sid`): never the cookie value.
    pub session: Box<str>,
}

/// Retry policy from `cg.maxRetryAttempts` and `cg.minRetryDelaySeconds`.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    pub max_retries: u32,
    pub min_delay: Duration,
}

impl RetryPolicy {
    /// Delay before retry `n` (1-based): `min_delay × 2^(n-1)`, saturating.
    pub fn delay(&self, n: u32) -> Duration {
        let factor = 1u32.checked_shl(n.saturating_sub(1)).unwrap_or(u32::MAX);
        self.min_delay.saturating_mul(factor)
    }
}

/// How one attempt ended.
#[derive(Debug)]
enum Attempt {
    Done(u16),
    /// Worth another try (connection error, timeout, 5xx).
    Retry(String),
    /// Final (4xx).
    Refused(u16),
}

pub struct Dispatcher {
    queue: RefCell<VecDeque<Call>>,
    capacity: usize,
    policy: RetryPolicy,
    client: Rc<HttpClient>,
    in_flight: Cell<usize>,
    wake: Notify,
    /// Set at shutdown: retries skip their delays so the queue drains within the grace.
    hurry: Cell<bool>,
    metrics: Arc<Metrics>,
}

impl Dispatcher {
    pub fn new(
        client: Rc<HttpClient>,
        policy: RetryPolicy,
        capacity: usize,
        metrics: Arc<Metrics>,
    ) -> Rc<Dispatcher> {
        Rc::new(Dispatcher {
            queue: RefCell::new(VecDeque::new()),
            capacity,
            policy,
            client,
            in_flight: Cell::new(0),
            wake: Notify::default(),
            hurry: Cell::new(false),
            metrics,
        })
    }

    /// Calls queued or executing.
    pub fn pending(&self) -> usize {
        self.queue.borrow().len() + self.in_flight.get()
    }

    /// Queues a call.
    pub fn submit(&self, call: Call) {
        let mut q = self.queue.borrow_mut();
        if q.len() >= self.capacity {
            if let Some(i) = q.iter().position(|c| c.kind == CallKind::FreshToken) {
                let old = q.remove(i).expect("index in range");
                Metrics::inc(&self.metrics.calls_dropped);
                tracing::debug!(target: LOG, session = %old.session, url = %old.url.original, "queue full: oldest fresh-token call dropped");
            } else if call.kind == CallKind::FreshToken {
                Metrics::inc(&self.metrics.calls_dropped);
                tracing::debug!(target: LOG, session = %call.session, "queue full of logout calls: fresh-token call dropped");
                return;
            } else {
                tracing::warn!(target: LOG, queued = q.len(), kind = call.kind.label(), "dispatcher queue over its bound; logout call kept");
            }
        }
        tracing::trace!(target: LOG, kind = call.kind.label(), url = %call.url.original, session = %call.session, "call queued");
        q.push_back(call);
        drop(q);
        self.wake.notify();
    }

    /// Runs the dispatcher: takes calls off the queue, at most `MAX_IN_FLIGHT` at once.
    pub async fn run(self: Rc<Self>, stop: Signal) {
        loop {
            while self.in_flight.get() < MAX_IN_FLIGHT {
                let Some(call) = self.queue.borrow_mut().pop_front() else {
                    break;
                };
                self.in_flight.set(self.in_flight.get() + 1);
                let me = self.clone();
                monoio::spawn(async move {
                    me.execute(call).await;
                    me.in_flight.set(me.in_flight.get() - 1);
                    me.wake.notify();
                });
            }
            if stop.is_triggered() {
                self.hurry.set(true);
            }
            if stop.is_triggered() {
                self.wake.notified().await;
            } else {
                monoio::select! {
                    _ = self.wake.notified() => {}
                    _ = stop.wait() => {}
                }
            }
        }
    }

    async fn execute(&self, call: Call) {
        let mut attempt = 1u32;
        loop {
            let outcome = self.attempt(&call).await;
            match outcome {
                Attempt::Done(status) => {
                    Metrics::inc(&self.metrics.calls_sent);
                    tracing::trace!(target: LOG, kind = call.kind.label(), url = %call.url.original, attempt, status, "call delivered");
                    return;
                }
                Attempt::Refused(status) => {
                    Metrics::inc(&self.metrics.calls_failed);
                    tracing::error!(target: LOG, kind = call.kind.label(), subject = %call.subject, session = %call.session, url = %call.url.original, status, "call refused; not retried: lost");
                    return;
                }
                Attempt::Retry(why) if attempt > self.policy.max_retries => {
                    Metrics::inc(&self.metrics.calls_failed);
                    tracing::error!(target: LOG, kind = call.kind.label(), subject = %call.subject, session = %call.session, url = %call.url.original, attempts = attempt, why, "call failed after all retries: lost");
                    return;
                }
                Attempt::Retry(why) => {
                    let delay = self.policy.delay(attempt);
                    tracing::trace!(target: LOG, kind = call.kind.label(), url = %call.url.original, attempt, why, retry_in = ?delay, "call failed; will retry");
                    Metrics::inc(&self.metrics.call_retries);
                    let until = Instant::now() + delay;
                    while Instant::now() < until && !self.hurry.get() {
                        let step = until
                            .saturating_duration_since(Instant::now())
                            .min(Duration::from_millis(100));
                        monoio::time::sleep(step).await;
                    }
                    attempt += 1;
                }
            }
        }
    }

    async fn attempt(&self, call: &Call) -> Attempt {
        let headers: Vec<(&str, &str)> =
            call.headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
        let body = call.body.as_ref().map(|(t, b)| (*t, b.as_slice()));
        let started = std::time::Instant::now();
        let answer = self.client.send("POST", &call.url, &headers, body).await;
        if call.kind == CallKind::ProviderLogout {
            self.metrics
                .provider_call("provider_logout", started.elapsed());
        }
        match answer {
            Ok(r) if r.status < 400 => Attempt::Done(r.status),
            Ok(r) if r.status < 500 => Attempt::Refused(r.status),
            Ok(r) => Attempt::Retry(format!("HTTP {}", r.status)),
            Err(e) => Attempt::Retry(e.to_string()),
        }
    }
}

/// A level-triggered wake-up for the one task that runs the queue.
#[derive(Default)]
struct Notify {
    flag: Cell<bool>,
    waker: Cell<Option<Waker>>,
}

impl Notify {
    fn notify(&self) {
        self.flag.set(true);
        if let Some(w) = self.waker.take() {
            w.wake();
        }
    }

    fn notified(&self) -> impl std::future::Future<Output = ()> + '_ {
        std::future::poll_fn(move |cx| {
            if self.flag.replace(false) {
                Poll::Ready(())
            } else {
                self.waker.set(Some(cx.waker().clone()));
                Poll::Pending
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(kind: CallKind, n: u32) -> Call {
        Call {
            kind,
            url: HttpUrl::parse("http://listener.example/x").unwrap(),
            headers: Vec::new(),
            body: None,
            subject: "alice".into(),
            session: format!("s{n}").into(),
        }
    }

    #[test]
    fn full_queue_drops_oldest_fresh_tokens_never_logouts() {
        let tls = crate::client::tls_config(None).unwrap();
        let client = Rc::new(HttpClient::new(
            tls,
            Duration::from_secs(1),
            Duration::from_secs(1),
        ));
        let metrics = Arc::new(Metrics::default());
        let policy = RetryPolicy {
            max_retries: 0,
            min_delay: Duration::ZERO,
        };
        let d = Dispatcher::new(client, policy, 3, metrics.clone());
        use CallKind::{BackendLogout as L, FreshToken as F};
        let plan = [
            (F, 1),
            (F, 2),
            (L, 1),
            (L, 2),
            (F, 3),
            (L, 3),
            (F, 4),
            (L, 4),
        ];
        for (kind, n) in plan {
            d.submit(call(kind, n));
        }
        let queued: Vec<String> = d
            .queue
            .borrow()
            .iter()
            .map(|c| format!("{}{}", c.kind.label(), c.session))
            .collect();
        assert_eq!(
            queued,
            [
                "backend logouts1",
                "backend logouts2",
                "backend logouts3",
                "backend logouts4"
            ],
            "every logout kept (the last one over the bound), every fresh token dropped"
        );
        assert_eq!(
            metrics
                .calls_dropped
                .load(std::sync::atomic::Ordering::Relaxed),
            4
        );
    }

    #[test]
    fn delays_double() {
        let p = RetryPolicy {
            max_retries: 3,
            min_delay: Duration::from_secs(5),
        };
        assert_eq!(p.delay(1), Duration::from_secs(5));
        assert_eq!(p.delay(2), Duration::from_secs(10));
        assert_eq!(p.delay(3), Duration::from_secs(20));
        assert!(p.delay(64) >= Duration::from_secs(5));
    }
}
