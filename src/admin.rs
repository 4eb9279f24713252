//! The management listener (`management.server.*`, loopback by default): health, metrics and
//! the sessions admin API of Spring Boot's actuator.
//!
//! It runs on its own plain thread with blocking I/O, one request at a time: admin traffic
//! is tiny, and this keeps it off the workers' event loops entirely. Session queries travel
//! to the workers as messages; each answers about the sessions it owns.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use crate::http::form::form_value;
use crate::http::head::{parse_request, Limits, RequestHead};
use crate::http::name_is;
use crate::http::reply::Reply;
use crate::messages::{AdminAnswer, AdminQuery, Inbox, SessionInfo, Shared, WorkerMsg};
use crate::metrics::{self, Metrics};
use crate::session::SessionId;

const LOG: &str = "sessiongate::admin";
/// How long the admin API waits for each worker's answer.
const WORKER_ANSWER: Duration = Duration::from_secs(5);

/// Everything the management thread reads.
pub struct Admin {
    pub workers: Vec<Inbox>,
    pub metrics: Vec<Arc<Metrics>>,
    pub shared: Arc<Shared>,
    pub token: Option<String>,
    /// No login configured: readiness does not wait for a provider.
    pub proxy_only: bool,
}

/// Starts the management listener on its own thread.
pub fn spawn(addr: SocketAddr, admin: Admin) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind(addr)?;
    let bound = listener.local_addr()?;
    std::thread::Builder::new().name("sessiongate-admin".into()).spawn(move || {
        for conn in listener.incoming() {
            match conn {
                Ok(s) => {
                    if let Err(e) = serve(s, &admin) {
                        tracing::debug!(target: LOG, error = %e, "management connection failed");
                    }
                }
                Err(e) => {
                    tracing::warn!(target: LOG, error = %e, "management accept failed");
                    std::thread::sleep(Duration::from_millis(50));
                }
            }
        }
    })?;
    Ok(bound)
}

fn json(status: u16, reason: &'static str, body: String) -> Reply {
    Reply::json(status, reason, body)
}

fn serve(mut s: TcpStream, admin: &Admin) -> std::io::Result<()> {
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    s.set_write_timeout(Some(Duration::from_secs(5)))?;
    let mut buf = vec![0u8; 16 * 1024];
    let mut len = 0;
    let mut head = RequestHead::default();
    let limits = Limits::default();
    let answer = loop {
        let n = s.read(&mut buf[len..])?;
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
    s.write_all(&answer.to_bytes(true))
}

/// Constant-time comparison, so the secret cannot be guessed byte by byte from timings.
fn same_secret(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
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
    let method = head.method(buf);
    let path = head.path(buf);
    let target = head.target(buf);
    let query = memchr::memchr(b'?', target)
        .map(|q| &target[q + 1..])
        .unwrap_or(b"");
    let ready = admin.proxy_only || admin.shared.provider_ready.load(Ordering::Relaxed);
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
                    "{\"status\":\"OUT_OF_SERVICE\",\"reason\":\"identity provider not loaded\"}"
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
                ready,
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
    ask(admin.workers.get(usize::from(id.owner()))?, query)
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
    fn secret_comparison() {
        assert!(same_secret(b"abc", b"abc"));
        assert!(!same_secret(b"abc", b"abd"));
        assert!(!same_secret(b"abc", b"abcd"));
    }
}
