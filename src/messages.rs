//! The messages between a gateway's threads: the main thread, the workers, the provider
//! thread and the management listener. Every thread talks through these types, so none
//! imports another's module to do it.
//!
//! A worker's inbox is an unbounded `flume` channel (a stop or a handed-off connection
//! must never be refused; their number is bounded by the connections the workers accepted);
//! questions carry a bounded reply channel of their own.

use std::net::SocketAddr;
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::Arc;

use crate::backchannel::{LogoutError, LogoutToken};
use crate::config::Config;
use crate::oidc::ProviderState;
use crate::session::pending::{Missing, PendingLogin};
use crate::session::users::UserSessions;
use crate::session::{EndReason, SessionId};
use crate::upstream::Upstream;

/// A worker's inbox.
pub type Inbox = flume::Sender<WorkerMsg>;

/// Messages a worker receives from the main thread, the provider thread, its peers and the
/// management listener.
pub enum WorkerMsg {
    /// Stop accepting, drain, exit.
    Stop,
    /// New provider metadata or keys.
    Provider(Arc<ProviderState>),
    /// A client connection whose session lives here: the socket, its peer address and the
    /// bytes already read from it (at least one full request head).
    HandOff {
        fd: OwnedFd,
        peer: SocketAddr,
        buffered: Vec<u8>,
    },
    /// To worker 0: admit a validated logout token (replay check) and fan it out.
    Backchannel {
        token: LogoutToken,
        raw: String,
        reply: flume::Sender<Result<(), LogoutError>>,
    },
    /// From the management listener: a question about this worker's sessions.
    Admin {
        query: AdminQuery,
        reply: flume::Sender<AdminAnswer>,
    },
    /// A configuration reload: new routes and upstreams, new listener URLs.
    Reload(Arc<Reload>),
    /// From another worker whose connection cannot move here (TLS).
    Peer(PeerRequest),
    /// To every worker: end the sessions of a provider logout.
    EndSessions {
        sid: Option<String>,
        sub: Option<String>,
        iat: u64,
    },
    /// A reloaded server certificate (SIGHUP), already checked: for the connections
    /// accepted from now on; open ones keep theirs.
    ServerTls(Arc<rustls::ServerConfig>),
    /// From a session's owner: the session ended; close its WebSockets on this worker.
    CloseWebSockets(SessionId),
    /// To a session's owner: end it (its user went past the per-user session limit).
    EndSession(SessionId, EndReason),
}

/// What a worker takes from a reloaded configuration.
pub struct Reload {
    pub config: Arc<Config>,
    pub upstreams: Vec<Upstream>,
}

/// What one worker asks another about state the other owns.
pub enum PeerRequest {
    /// A request of the session; `websocket_on`: a WebSocket of it opens on that worker,
    /// which must be told when the session ends.
    Lookup {
        id: SessionId,
        websocket_on: Option<u8>,
        reply: flume::Sender<Option<PeerView>>,
    },
    /// Traffic on a WebSocket of the session, on another worker.
    Touch {
        id: SessionId,
    },
    /// The pending login of `state`, if `browser` (its binding's hash) started it.
    TakePending {
        state: String,
        browser: [u8; 32],
        reply: flume::Sender<Result<PendingLogin, Missing>>,
    },
    /// A user logout; the answer is the ended session's ID token.
    EndUser {
        id: SessionId,
        reply: flume::Sender<Option<String>>,
    },
    AcceptBanner {
        id: SessionId,
    },
}

/// What a request on another worker needs from a session.
pub struct PeerView {
    pub access_token: Box<str>,
    pub banner_accepted: bool,
}

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

/// Gateway-wide facts shared by all workers: atomics, and the per-user session registry
/// (locked only when sessions are created or end).
#[derive(Default)]
pub struct Shared {
    pub sessions: AtomicU64,
    /// Some worker has the provider's metadata and keys (readiness).
    pub provider_ready: AtomicBool,
    /// Until then (Unix ms) a token with an unknown key id is refused at once: a refetch
    /// just showed the provider does not publish it.
    pub unknown_kid_until_ms: AtomicU64,
    /// `session-store: redis` only: worker 0 last found Redis unreachable (readiness 503).
    pub store_down: AtomicBool,
    pub users: UserSessions,
}
