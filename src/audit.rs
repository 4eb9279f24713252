//! The audit trail (`sessiongate.audit-log`): one JSON object per line, to a file or `stdout`.
//!
//! Events follow Dogtag PKI's names for connection sessions (see
//! `shared/seeds/dogtag-pki-session-timeout.txt`) and add the gateway's HTTP sessions:
//!
//! | `event` | when | fields besides `time`, `event`, `worker` |
//! |---|---|---|
//! | `ACCESS_SESSION_ESTABLISH` | every TLS handshake, `outcome` `Success` or `Failure` | `peer`, `sni`, `protocol`, `cipher`, `resumed` (success), `reason` (failure) |
//! | `ACCESS_SESSION_TERMINATED` | every established TLS connection that closes | `peer`, `sni`, `reason` (`idle_timeout`, `peer_closed`, `error`, `shutdown`, `connection_close`, `upgrade_ended`, `owner_elsewhere`), `detail` for errors (`answered 408`, `client write failed` ...), `duration_ms` |
//! | `SESSION_CREATED` | a login created a session | `subject`, `sid` |
//! | `SESSION_EXPIRED` | idle or lifetime expiry | `subject`, `sid` |
//! | `SESSION_LOGOUT` | a session was ended | `subject`, `sid`, `kind` (`user`, `back-channel`, `admin`) |
//! | `SESSION_REJECTED` | a login refused by `cg.maxSessions` | `subject`, `max_sessions` |
//! | `AUDIT_EVENTS_DROPPED` | the queue overflowed | `count` (events lost since the last such line) |
//!
//! Keys are lower-case; `outcome` keeps Dogtag's values. Session ids never appear: they are
//! bearer credentials. `sid` is the provider's session id, which is not.
//!
//! Never blocking a worker: an event is a small struct put on a bounded queue with
//! `try_send`; a writer thread formats and writes it. When the queue is full the event is
//! counted and dropped, and the writer records the loss in the trail itself, so a gap is
//! visible. With no `audit-log` configured, every call returns after one atomic load.

use std::fs::OpenOptions;
use std::io::{self, BufWriter, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, SystemTime};

use crate::clock::rfc3339;

const LOG: &str = "sessiongate::audit";
/// Events queued before new ones are dropped: seconds of a handshake flood.
const CAPACITY: usize = 65_536;

/// What a completed TLS handshake negotiated (`ACCESS_SESSION_ESTABLISH`, `Success`).
#[derive(Debug)]
pub struct Handshake {
    pub sni: Option<Box<str>>,
    pub protocol: &'static str,
    pub cipher: &'static str,
    /// A resumed session (ticket), not a full handshake.
    pub resumed: bool,
}

/// How an HTTP session ended, as the trail tells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionEnd {
    /// Idle or lifetime expiry (`SESSION_EXPIRED`).
    Expired,
    /// Ended by someone (`SESSION_LOGOUT`): `kind` is `user`, `back-channel`, `admin` ...
    Logout { kind: &'static str },
}

/// Why an established client connection closed (`ACCESS_SESSION_TERMINATED`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    /// The client closed (FIN, reset, or TLS without close_notify).
    PeerClosed,
    /// No request within `sessiongate.connection-idle-timeout-ms`.
    IdleTimeout,
    /// The gateway is stopping.
    Shutdown,
    /// The request or response said `Connection: close` (or HTTP/1.0).
    ConnectionClose,
    /// A WebSocket (or other upgraded) connection ended.
    UpgradeEnded,
    /// The request's session lives on another worker and the connection could not move there.
    OwnerElsewhere,
    /// Answered with an error status (400, 408, 502 ...) and closed.
    Refused(u16),
    /// Broken mid-exchange; says what broke.
    Error(&'static str),
}

impl CloseReason {
    pub fn label(self) -> &'static str {
        match self {
            CloseReason::PeerClosed => "peer_closed",
            CloseReason::IdleTimeout => "idle_timeout",
            CloseReason::Shutdown => "shutdown",
            CloseReason::ConnectionClose => "connection_close",
            CloseReason::UpgradeEnded => "upgrade_ended",
            CloseReason::OwnerElsewhere => "owner_elsewhere",
            CloseReason::Refused(_) | CloseReason::Error(_) => "error",
        }
    }
}

#[derive(Debug)]
enum Event {
    Established {
        peer: SocketAddr,
        sni: Option<Box<str>>,
        protocol: &'static str,
        cipher: &'static str,
        resumed: bool,
    },
    HandshakeFailed {
        peer: SocketAddr,
        sni: Option<Box<str>>,
        reason: String,
    },
    Terminated {
        peer: SocketAddr,
        sni: Option<Box<str>>,
        reason: CloseReason,
        duration: Duration,
    },
    SessionCreated {
        subject: Box<str>,
        sid: Option<Box<str>>,
    },
    SessionEnded {
        subject: Box<str>,
        sid: Option<Box<str>>,
        reason: SessionEnd,
    },
    SessionRejected {
        subject: Box<str>,
        max_sessions: u64,
    },
    Dropped {
        count: u64,
    },
}

#[derive(Debug)]
struct Record {
    time: SystemTime,
    worker: Option<usize>,
    event: Event,
}

enum Msg {
    Record(Record),
    /// Reopen the file (after logrotate moved it); SIGHUP.
    Reopen,
    /// Write out everything queued before this, then answer.
    Flush(std::sync::mpsc::Sender<()>),
}

struct Sink {
    tx: flume::Sender<Msg>,
    dropped: AtomicU64,
}

static SINK: OnceLock<Sink> = OnceLock::new();

/// Where the trail goes.
enum Target {
    Stdout,
    File(PathBuf),
}

impl Target {
    fn open(&self) -> io::Result<Box<dyn Write + Send>> {
        Ok(match self {
            Target::Stdout => Box::new(io::stdout()),
            Target::File(p) => Box::new(OpenOptions::new().create(true).append(true).open(p)?),
        })
    }
}

/// Starts the writer for `sessiongate.audit-log` (a path, or `stdout`). The file is opened
/// here, so an unwritable path stops the start. A second call is refused.
pub fn init(target: &str) -> Result<(), String> {
    let target = if target == "stdout" {
        Target::Stdout
    } else {
        Target::File(PathBuf::from(target))
    };
    let out = target.open().map_err(|e| {
        format!(
            "sessiongate.audit-log: cannot open {}: {e}",
            describe(&target)
        )
    })?;
    let (tx, rx) = flume::bounded(CAPACITY);
    SINK.set(Sink {
        tx,
        dropped: AtomicU64::new(0),
    })
    .map_err(|_| "sessiongate.audit-log: the audit log is already open".to_string())?;
    std::thread::Builder::new()
        .name("sessiongate-audit".into())
        .spawn(move || writer(rx, target, out))
        .map_err(|e| format!("sessiongate.audit-log: cannot start the writer thread: {e}"))?;
    Ok(())
}

fn describe(t: &Target) -> String {
    match t {
        Target::Stdout => "stdout".into(),
        Target::File(p) => p.display().to_string(),
    }
}

/// Whether events are recorded at all (lets callers skip building them).
pub fn enabled() -> bool {
    SINK.get().is_some()
}

/// Reopens the audit file (SIGHUP), so a rotated file is let go.
pub fn reopen() {
    if let Some(s) = SINK.get() {
        let _ = s.tx.try_send(Msg::Reopen);
    }
}

/// Waits (at most `within`) until every event queued so far is written; at exit.
pub fn flush(within: Duration) {
    let Some(s) = SINK.get() else { return };
    let (tx, rx) = std::sync::mpsc::channel();
    if s.tx.send_timeout(Msg::Flush(tx), within).is_ok() {
        let _ = rx.recv_timeout(within);
    }
}

fn submit(worker: Option<usize>, event: Event) {
    let Some(s) = SINK.get() else { return };
    let r = Record {
        time: SystemTime::now(),
        worker,
        event,
    };
    if s.tx.try_send(Msg::Record(r)).is_err() {
        s.dropped.fetch_add(1, Ordering::Relaxed);
    }
}

/// `ACCESS_SESSION_ESTABLISH`, `outcome: Success`.
pub fn tls_established(worker: usize, peer: SocketAddr, hs: &Handshake) {
    if enabled() {
        submit(
            Some(worker),
            Event::Established {
                peer,
                sni: hs.sni.clone(),
                protocol: hs.protocol,
                cipher: hs.cipher,
                resumed: hs.resumed,
            },
        );
    }
}

/// `ACCESS_SESSION_ESTABLISH`, `outcome: Failure`, with why.
pub fn tls_failed(worker: usize, peer: SocketAddr, sni: Option<&str>, reason: String) {
    if enabled() {
        submit(
            Some(worker),
            Event::HandshakeFailed {
                peer,
                sni: sni.map(Into::into),
                reason,
            },
        );
    }
}

/// `ACCESS_SESSION_TERMINATED`.
pub fn tls_terminated(
    worker: usize,
    peer: SocketAddr,
    sni: Option<&str>,
    reason: CloseReason,
    duration: Duration,
) {
    if enabled() {
        submit(
            Some(worker),
            Event::Terminated {
                peer,
                sni: sni.map(Into::into),
                reason,
                duration,
            },
        );
    }
}

/// `SESSION_CREATED`.
pub fn session_created(subject: &str, sid: Option<&str>, worker: u8) {
    if enabled() {
        submit(
            Some(usize::from(worker)),
            Event::SessionCreated {
                subject: subject.into(),
                sid: sid.map(Into::into),
            },
        );
    }
}

/// `SESSION_EXPIRED` or `SESSION_LOGOUT` with its kind.
pub fn session_ended(subject: &str, sid: Option<&str>, worker: u8, reason: SessionEnd) {
    if enabled() {
        submit(
            Some(usize::from(worker)),
            Event::SessionEnded {
                subject: subject.into(),
                sid: sid.map(Into::into),
                reason,
            },
        );
    }
}

/// `SESSION_REJECTED`: a login refused because `cg.maxSessions` sessions exist.
pub fn session_rejected(subject: &str, worker: u8, max_sessions: u64) {
    if enabled() {
        submit(
            Some(usize::from(worker)),
            Event::SessionRejected {
                subject: subject.into(),
                max_sessions,
            },
        );
    }
}

fn writer(rx: flume::Receiver<Msg>, target: Target, out: Box<dyn Write + Send>) {
    let mut out = BufWriter::with_capacity(64 * 1024, out);
    let mut line = Vec::with_capacity(512);
    let mut reported = 0u64;
    while let Ok(first) = rx.recv() {
        let mut next = Some(first);
        // Everything already queued goes out in one write.
        while let Some(msg) = next.take().or_else(|| rx.try_recv().ok()) {
            match msg {
                Msg::Record(r) => {
                    line.clear();
                    r.write_json(&mut line);
                    write_or_warn(&mut out, &line);
                }
                Msg::Reopen => {
                    let _ = out.flush();
                    match target.open() {
                        Ok(w) => out = BufWriter::with_capacity(64 * 1024, w),
                        Err(e) => {
                            tracing::error!(target: LOG, error = %e, file = %describe(&target), "cannot reopen the audit log; writing on to the old file")
                        }
                    }
                }
                Msg::Flush(done) => {
                    let _ = out.flush();
                    let _ = done.send(());
                }
            }
        }
        let dropped = SINK.get().map_or(0, |s| s.dropped.load(Ordering::Relaxed));
        if dropped > reported {
            tracing::warn!(target: LOG, count = dropped - reported, "audit queue full: events dropped");
            line.clear();
            Record {
                time: SystemTime::now(),
                worker: None,
                event: Event::Dropped {
                    count: dropped - reported,
                },
            }
            .write_json(&mut line);
            write_or_warn(&mut out, &line);
            reported = dropped;
        }
        if let Err(e) = out.flush() {
            tracing::error!(target: LOG, error = %e, "cannot write the audit log");
        }
    }
    let _ = out.flush();
}

fn write_or_warn(out: &mut impl Write, line: &[u8]) {
    if let Err(e) = out.write_all(line) {
        tracing::error!(target: LOG, error = %e, "cannot write the audit log");
    }
}

impl Record {
    /// One JSON line, newline included.
    fn write_json(&self, out: &mut Vec<u8>) {
        let mut o = serde_json::Map::new();
        o.insert("time".into(), rfc3339(self.time).into());
        let (name, outcome) = match &self.event {
            Event::Established { .. } => ("ACCESS_SESSION_ESTABLISH", Some("Success")),
            Event::HandshakeFailed { .. } => ("ACCESS_SESSION_ESTABLISH", Some("Failure")),
            Event::Terminated { .. } => ("ACCESS_SESSION_TERMINATED", None),
            Event::SessionCreated { .. } => ("SESSION_CREATED", None),
            Event::SessionEnded {
                reason: SessionEnd::Expired,
                ..
            } => ("SESSION_EXPIRED", None),
            Event::SessionEnded { .. } => ("SESSION_LOGOUT", None),
            Event::SessionRejected { .. } => ("SESSION_REJECTED", None),
            Event::Dropped { .. } => ("AUDIT_EVENTS_DROPPED", None),
        };
        o.insert("event".into(), name.into());
        if let Some(v) = outcome {
            o.insert("outcome".into(), v.into());
        }
        if let Some(w) = self.worker {
            o.insert("worker".into(), w.into());
        }
        let sni = |o: &mut serde_json::Map<_, _>, sni: &Option<Box<str>>| {
            if let Some(s) = sni {
                o.insert("sni".into(), (**s).into());
            }
        };
        match &self.event {
            Event::Established {
                peer,
                sni: name,
                protocol,
                cipher,
                resumed,
            } => {
                o.insert("peer".into(), peer.to_string().into());
                sni(&mut o, name);
                o.insert("protocol".into(), (*protocol).into());
                o.insert("cipher".into(), (*cipher).into());
                o.insert("resumed".into(), (*resumed).into());
            }
            Event::HandshakeFailed {
                peer,
                sni: name,
                reason,
            } => {
                o.insert("peer".into(), peer.to_string().into());
                sni(&mut o, name);
                o.insert("reason".into(), reason.as_str().into());
            }
            Event::Terminated {
                peer,
                sni: name,
                reason,
                duration,
            } => {
                o.insert("peer".into(), peer.to_string().into());
                sni(&mut o, name);
                o.insert("reason".into(), reason.label().into());
                match reason {
                    CloseReason::Error(detail) => {
                        o.insert("detail".into(), (*detail).into());
                    }
                    CloseReason::Refused(status) => {
                        o.insert("detail".into(), format!("answered {status}").into());
                    }
                    _ => {}
                }
                o.insert("duration_ms".into(), (duration.as_millis() as u64).into());
            }
            Event::SessionCreated { subject, sid } => {
                o.insert("subject".into(), (**subject).into());
                if let Some(s) = sid {
                    o.insert("sid".into(), (**s).into());
                }
            }
            Event::SessionEnded {
                subject,
                sid,
                reason,
            } => {
                o.insert("subject".into(), (**subject).into());
                if let Some(s) = sid {
                    o.insert("sid".into(), (**s).into());
                }
                if let SessionEnd::Logout { kind } = reason {
                    o.insert("kind".into(), (*kind).into());
                }
            }
            Event::SessionRejected {
                subject,
                max_sessions,
            } => {
                o.insert("subject".into(), (**subject).into());
                o.insert("max_sessions".into(), (*max_sessions).into());
            }
            Event::Dropped { count } => {
                o.insert("count".into(), (*count).into());
            }
        }
        // Serializing a map of strings and numbers cannot fail.
        let _ = serde_json::to_writer(&mut *out, &o);
        out.push(b'\n');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json(r: Record) -> serde_json::Value {
        let mut out = Vec::new();
        r.write_json(&mut out);
        assert_eq!(out.last(), Some(&b'\n'));
        assert_eq!(out.iter().filter(|&&b| b == b'\n').count(), 1);
        serde_json::from_slice(&out).unwrap()
    }

    fn at(secs: u64) -> SystemTime {
        std::time::UNIX_EPOCH + Duration::from_millis(secs * 1000 + 5)
    }

    #[test]
    fn handshake_events() {
        let peer: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        let v = json(Record {
            time: at(0),
            worker: Some(1),
            event: Event::Established {
                peer,
                sni: Some("localhost".into()),
                protocol: "TLSv1.3",
                cipher: "TLS13_AES_128_GCM_SHA256",
                resumed: false,
            },
        });
        assert_eq!(v["event"], "ACCESS_SESSION_ESTABLISH");
        assert_eq!(v["outcome"], "Success");
        assert_eq!(v["peer"], "127.0.0.1:5000");
        assert_eq!(v["sni"], "localhost");
        assert_eq!(v["protocol"], "TLSv1.3");
        assert_eq!(v["worker"], 1);
        assert_eq!(v["resumed"], false);
        let v = json(Record {
            time: at(0),
            worker: Some(0),
            event: Event::HandshakeFailed {
                peer,
                sni: None,
                reason: "quote \" and\nnewline".into(),
            },
        });
        assert_eq!(v["outcome"], "Failure");
        assert_eq!(v["reason"], "quote \" and\nnewline");
        assert!(v.get("sni").is_none());
        let v = json(Record {
            time: at(0),
            worker: Some(0),
            event: Event::Terminated {
                peer,
                sni: None,
                reason: CloseReason::Error("client write failed"),
                duration: Duration::from_millis(1500),
            },
        });
        assert_eq!(v["event"], "ACCESS_SESSION_TERMINATED");
        assert_eq!(v["reason"], "error");
        assert_eq!(v["detail"], "client write failed");
        assert_eq!(v["duration_ms"], 1500);
    }

    #[test]
    fn session_events() {
        let ended = |reason| {
            json(Record {
                time: at(0),
                worker: Some(2),
                event: Event::SessionEnded {
                    subject: "alice".into(),
                    sid: Some("s-1".into()),
                    reason,
                },
            })
        };
        let v = ended(SessionEnd::Expired);
        assert_eq!(v["event"], "SESSION_EXPIRED");
        assert!(v.get("kind").is_none());
        let v = ended(SessionEnd::Logout {
            kind: "back-channel",
        });
        assert_eq!(v["event"], "SESSION_LOGOUT");
        assert_eq!(v["kind"], "back-channel");
        assert_eq!(v["sid"], "s-1");
        assert_eq!(ended(SessionEnd::Logout { kind: "user" })["kind"], "user");
        assert_eq!(ended(SessionEnd::Logout { kind: "admin" })["kind"], "admin");
        let v = json(Record {
            time: at(0),
            worker: Some(0),
            event: Event::SessionRejected {
                subject: "bob".into(),
                max_sessions: 10,
            },
        });
        assert_eq!(v["event"], "SESSION_REJECTED");
        assert_eq!(v["max_sessions"], 10);
        let v = json(Record {
            time: at(0),
            worker: None,
            event: Event::Dropped { count: 3 },
        });
        assert_eq!(v["event"], "AUDIT_EVENTS_DROPPED");
        assert!(v.get("worker").is_none());
    }

    #[test]
    fn disabled_calls_do_nothing() {
        // No init in unit tests: every call returns at once.
        session_created("x", None, 0);
        tls_failed(0, "127.0.0.1:1".parse().unwrap(), None, "r".into());
        flush(Duration::from_millis(10));
    }
}
