//! The management listener (`management.server.*`, loopback by default): health, metrics and
//! the sessions admin API of Spring Boot's actuator.
//!
//! It runs on plain threads with blocking I/O, off the workers' event loops entirely: one
//! accepting, and one per connection, at most [`MAX_CONNECTIONS`] at once, each with
//! [`REQUEST_DEADLINE`] for its whole request, so a client that trickles bytes cannot hold
//! the health probes up. Session queries travel to the workers as messages; each answers
//! about the sessions it owns.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::http::form::form_value;
use crate::http::head::{parse_request, Limits, RequestHead};
use crate::http::name_is;
use crate::http::reply::Reply;
use crate::messages::{AdminAnswer, AdminQuery, Inbox, SessionInfo, Shared, WorkerMsg};
use crate::metrics::{self, Metrics};
use crate::session::{same_secret, SessionId};

const LOG: &str = "sessiongate::admin";
/// How long the admin API waits for each worker's answer.
const WORKER_ANSWER: Duration = Duration::from_secs(5);
/// Connections served at once; one more is answered 503 at once. Admin traffic is a few
/// probes and scrapes; this bounds the threads a flood of connections can start.
pub const MAX_CONNECTIONS: usize = 32;
/// Time a client has to send its whole request, however it paces the bytes.
pub const REQUEST_DEADLINE: Duration = Duration::from_secs(5);
/// Time to write an answer.
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);

/// Everything the management thread reads.
pub struct Admin {
    pub workers: Vec<Inbox>,
    pub metrics: Vec<Arc<Metrics>>,
    pub shared: Arc<Shared>,
    pub token: Option<String>,
    /// No login configured: readiness does not wait for a provider.
    pub proxy_only: bool,
    /// `session-store: redis`: readiness also needs Redis.
    pub shared_store: bool,
}

/// Starts the management listener on its own thread.
pub fn spawn(addr: SocketAddr, admin: Admin) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind(addr)?;
    let bound = listener.local_addr()?;
    if exposed_without_token(bound, &admin) {
        tracing::warn!(target: LOG, %bound, "the management listener is not on loopback and sessiongate.management-token is not set: whoever reaches it can read and end every session");
    }
    let admin = Arc::new(admin);
    let active = Arc::new(AtomicUsize::new(0));
    std::thread::Builder::new()
        .name("sessiongate-admin".into())
        .spawn(move || {
            for conn in listener.incoming() {
                match conn {
                    Ok(s) => serve_concurrently(s, &admin, &active),
                    Err(e) => {
                        tracing::warn!(target: LOG, error = %e, "management accept failed");
                        std::thread::sleep(Duration::from_millis(50));
                    }
                }
            }
        })?;
    Ok(bound)
}

fn exposed_without_token(bound: SocketAddr, admin: &Admin) -> bool {
    !bound.ip().is_loopback() && admin.token.is_none()
}

/// Serves `s` on a thread of its own, or answers 503 when [`MAX_CONNECTIONS`] are busy.
fn serve_concurrently(s: TcpStream, admin: &Arc<Admin>, active: &Arc<AtomicUsize>) {
    if active.fetch_add(1, Ordering::AcqRel) >= MAX_CONNECTIONS {
        active.fetch_sub(1, Ordering::AcqRel);
        // A small answer on a fresh socket fits its send buffer: this write does not block.
        let busy = json(503, "Service Unavailable", "{\"error\":\"busy\"}".into());
        let _ = s.set_write_timeout(Some(Duration::from_millis(100)));
        let _ = (&s).write_all(&busy.to_bytes(true));
        return;
    }
    let slot = Slot(active.clone());
    let admin = admin.clone();
    let spawned = std::thread::Builder::new()
        .name("sessiongate-admin-conn".into())
        .spawn(move || {
            let _slot = slot;
            if let Err(e) = serve(s, &admin) {
                tracing::debug!(target: LOG, error = %e, "management connection failed");
            }
        });
    if let Err(e) = spawned {
        tracing::warn!(target: LOG, error = %e, "cannot start a management connection thread");
    }
}

/// One of the [`MAX_CONNECTIONS`], given back when its thread ends (or never starts).
struct Slot(Arc<AtomicUsize>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

fn json(status: u16, reason: &'static str, body: String) -> Reply {
    Reply::json(status, reason, body)
}

fn serve(mut s: TcpStream, admin: &Admin) -> std::io::Result<()> {
    s.set_write_timeout(Some(WRITE_TIMEOUT))?;
    let deadline = Instant::now() + REQUEST_DEADLINE;
    let mut buf = vec![0u8; 16 * 1024];
    let mut len = 0;
    let mut head = RequestHead::default();
    let limits = Limits::default();
    let timeout = || json(408, "Request Timeout", "{\"error\":\"timeout\"}".into());
    let answer = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break timeout();
        }
        s.set_read_timeout(Some(left))?;
        let n = match s.read(&mut buf[len..]) {
            Ok(n) => n,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                break timeout()
            }
            Err(e) => return Err(e),
        };
        if n == 0 {
            return Ok(());
        }
        len += n;
        match parse_request(&buf[..len], &limits, &mut head) {
            Ok(Some(())) => break route(&buf[..len], &head, admin),
            Ok(None) if len < buf.len() => continue,
            Ok(None) => break json(431, "Request Header Fields Too Large", "{}".into()),
            Err(e) => {
                break json(
                    e.status(),
                    "Bad Request",
                    "{\"error\":\"bad_request\"}".into(),
                )
            }
        }
    };
    // A HEAD gets the GET's answer without its body (RFC 9110 §9.3.2).
    let head_request = buf.starts_with(b"HEAD ");
    let mut out = Vec::with_capacity(256 + answer.body.len());
    answer.write_to(&mut out, true, head_request);
    s.write_all(&out)
}

fn authorized(buf: &[u8], head: &RequestHead, admin: &Admin) -> bool {
    let Some(secret) = &admin.token else {
        return true;
    };
    head.fields.iter().any(|f| {
        let v = f.value(buf);
        name_is(f.name(buf), b"authorization")
            && v.len() > 7
            && v[..7].eq_ignore_ascii_case(b"bearer ")
            && same_secret(&v[7..], secret.as_bytes())
    })
}

fn route(buf: &[u8], head: &RequestHead, admin: &Admin) -> Reply {
    let method = match head.method(buf) {
        b"HEAD" => &b"GET"[..],
        m => m,
    };
    let path = head.path(buf);
    let target = head.target(buf);
    let query = memchr::memchr(b'?', target)
        .map(|q| &target[q + 1..])
        .unwrap_or(b"");
    let store_up = admin
        .shared_store
        .then(|| !admin.shared.store_down.load(Ordering::Relaxed));
    let provider = admin.proxy_only || admin.shared.provider_ready.load(Ordering::Relaxed);
    let ready = provider && store_up != Some(false);
    // Health stays open to probes; everything else needs the secret when one is set.
    match (method, path) {
        (b"GET", b"/actuator/health") | (b"GET", b"/actuator/health/liveness") => {
            return json(200, "OK", "{\"status\":\"UP\"}".into());
        }
        (b"GET", b"/actuator/health/readiness") => {
            return if ready {
                json(200, "OK", "{\"status\":\"UP\"}".into())
            } else {
                json(
                    503,
                    "Service Unavailable",
                    match provider {
                        false => "{\"status\":\"OUT_OF_SERVICE\",\"reason\":\"identity provider not loaded\"}",
                        true => "{\"status\":\"OUT_OF_SERVICE\",\"reason\":\"session store unreachable\"}",
                    }
                    .into(),
                )
            };
        }
        _ => {}
    }
    if !authorized(buf, head, admin) {
        return json(401, "Unauthorized", "{\"error\":\"unauthorized\"}".into());
    }
    match (method, path) {
        (b"GET", b"/actuator/prometheus") => {
            let mut r = Reply::new(200, "OK");
            r.content_type = "text/plain; version=0.0.4; charset=utf-8";
            r.body = metrics::render(
                &admin.metrics,
                admin.shared.sessions.load(Ordering::Relaxed),
                provider,
                store_up,
            )
            .into_bytes();
            r
        }
        (b"GET", b"/actuator/sessions") => match form_value(query, "username") {
            Some(user) => {
                let sessions = ask_all(admin, AdminQuery::BySubject(user));
                json(
                    200,
                    "OK",
                    serde_json::json!({ "sessions": sessions }).to_string(),
                )
            }
            None => json(
                400,
                "Bad Request",
                "{\"error\":\"username required\"}".into(),
            ),
        },
        (b"DELETE", b"/actuator/sessions") => match form_value(query, "username") {
            Some(user) => {
                let n = ended(admin, AdminQuery::EndSubject(user));
                json(200, "OK", serde_json::json!({ "ended": n }).to_string())
            }
            None => json(
                400,
                "Bad Request",
                "{\"error\":\"username required\"}".into(),
            ),
        },
        (m, p) if p.starts_with(b"/actuator/sessions/") => {
            let Some(id) = SessionId::parse(&p[b"/actuator/sessions/".len()..]) else {
                return json(404, "Not Found", "{\"error\":\"no such session\"}".into());
            };
            match m {
                b"GET" => match ask_owner(admin, &id, AdminQuery::Get(id)) {
                    Some(AdminAnswer::Sessions(mut v)) if !v.is_empty() => json(
                        200,
                        "OK",
                        serde_json::to_string(&v.remove(0)).unwrap_or_default(),
                    ),
                    _ => json(404, "Not Found", "{\"error\":\"no such session\"}".into()),
                },
                b"DELETE" => match ask_owner(admin, &id, AdminQuery::End(id)) {
                    Some(AdminAnswer::Ended(n)) if n > 0 => json(204, "No Content", String::new()),
                    _ => json(404, "Not Found", "{\"error\":\"no such session\"}".into()),
                },
                _ => json(405, "Method Not Allowed", "{}".into()),
            }
        }
        _ => json(404, "Not Found", "{\"error\":\"not found\"}".into()),
    }
}

fn ask(worker: &Inbox, query: AdminQuery) -> Option<AdminAnswer> {
    let (tx, rx) = flume::bounded(1);
    worker.send(WorkerMsg::Admin { query, reply: tx }).ok()?;
    rx.recv_timeout(WORKER_ANSWER).ok()
}

fn ask_owner(admin: &Admin, id: &SessionId, query: AdminQuery) -> Option<AdminAnswer> {
    // With the shared store an id from another instance is folded onto our workers.
    let n = admin.workers.len().max(1);
    ask(admin.workers.get(usize::from(id.owner()) % n)?, query)
}

fn ask_all(admin: &Admin, query: AdminQuery) -> Vec<SessionInfo> {
    admin
        .workers
        .iter()
        .filter_map(|w| match ask(w, query.clone()) {
            Some(AdminAnswer::Sessions(v)) => Some(v),
            _ => None,
        })
        .flatten()
        .collect()
}

fn ended(admin: &Admin, query: AdminQuery) -> usize {
    admin
        .workers
        .iter()
        .filter_map(|w| match ask(w, query.clone()) {
            Some(AdminAnswer::Ended(n)) => Some(n),
            _ => None,
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposure_without_a_token_is_noticed() {
        let admin = |token: Option<&str>| Admin {
            workers: Vec::new(),
            metrics: Vec::new(),
            shared: Arc::default(),
            token: token.map(str::to_string),
            proxy_only: true,
            shared_store: false,
        };
        let any: SocketAddr = "0.0.0.0:9090".parse().unwrap();
        let lo: SocketAddr = "127.0.0.1:9090".parse().unwrap();
        assert!(exposed_without_token(any, &admin(None)));
        assert!(!exposed_without_token(any, &admin(Some("s"))));
        assert!(!exposed_without_token(lo, &admin(None)));
    }

    #[test]
    fn secret_comparison() {
        assert!(same_secret(b"abc", b"abc"));
        assert!(!same_secret(b"abc", b"abd"));
        assert!(!same_secret(b"abc", b"abcd"));
    }
}
