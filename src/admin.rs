//! The management listener (`management.server.*`, loopback by default): health, metrics and
//! the sessions admin API of Spring Boot's actuator (DESIGN §9).
//!
//! It runs on its own plain thread with blocking I/O, one request at a time: admin traffic
//! is tiny, and this keeps it off the workers' event loops entirely. Session queries travel
//! to the workers as messages; each answers about the sessions it owns.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use crate::client::form_value;
use crate::gate::Shared;
use crate::http::head::{parse_request, Limits, RequestHead};
use crate::http::name_is;
use crate::metrics::{self, Metrics};
use crate::session::SessionId;
use crate::worker::WorkerMsg;

const LOG: &str = "sessiongate::admin";
/// How long the admin API waits for each worker's answer.
const WORKER_ANSWER: Duration = Duration::from_secs(5);

/// What a worker can be asked about its sessions.
#[derive(Debug, Clone)]
pub enum AdminQuery {
    BySubject(String),
    Get(SessionId),
    End(SessionId),
    EndSubject(String),
}

/// One session as the admin API shows it (no tokens).
#[derive(Debug, Clone, serde::Serialize)]
pub struct SessionInfo {
    pub id: String,
    pub subject: String,
    pub sid: Option<String>,
    pub worker: u8,
    #[serde(rename = "creationTime")]
    pub creation_time_ms: u64,
    #[serde(rename = "lastAccessedTime")]
    pub last_accessed_time_ms: u64,
    #[serde(rename = "maxInactiveInterval")]
    pub max_inactive_secs: u64,
}

#[derive(Debug, Clone)]
pub enum AdminAnswer {
    Sessions(Vec<SessionInfo>),
    Ended(usize),
}

/// Everything the management thread reads.
pub struct Admin {
    pub workers: Vec<flume::Sender<WorkerMsg>>,
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

struct Answer {
    status: u16,
    reason: &'static str,
    content_type: &'static str,
    body: String,
}

fn json(status: u16, reason: &'static str, body: String) -> Answer {
    Answer {
        status,
        reason,
        content_type: "application/json",
        body,
    }
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
    let head = format!(
        "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n",
        answer.status,
        answer.reason,
        answer.content_type,
        answer.body.len()
    );
    s.write_all(head.as_bytes())?;
    s.write_all(answer.body.as_bytes())
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

fn route(buf: &[u8], head: &RequestHead, admin: &Admin) -> Answer {
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
        (b"GET", b"/actuator/prometheus") => Answer {
            status: 200,
            reason: "OK",
            content_type: "text/plain; version=0.0.4; charset=utf-8",
            body: metrics::render(
                &admin.metrics,
                admin.shared.sessions.load(Ordering::Relaxed),
                ready,
            ),
        },
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
                    Some(AdminAnswer::Ended(n)) if n > 0 => Answer {
                        status: 204,
                        reason: "No Content",
                        content_type: "application/json",
                        body: String::new(),
                    },
                    _ => json(404, "Not Found", "{\"error\":\"no such session\"}".into()),
                },
                _ => json(405, "Method Not Allowed", "{}".into()),
            }
        }
        _ => json(404, "Not Found", "{\"error\":\"not found\"}".into()),
    }
}

fn ask(worker: &flume::Sender<WorkerMsg>, query: AdminQuery) -> Option<AdminAnswer> {
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
