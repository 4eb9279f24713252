//! Configuration: `application.yml` in the Cloud Gateway's shape.
//!
//! The file is read in two steps (the monolake pattern): `raw` turns YAML into a tree with
//! dotted keys expanded and `${ENV:default}` placeholders resolved; `validate` converts that
//! tree once into the resolved, typed structs below, refusing anything unknown or out of
//! range with an error that names the key, every such error of the file at once
//! (`error`). Nothing downstream re-checks a value.
//!
//! Values of other modules' types are held as those modules define them: URLs as
//! [`HttpUrl`] (`crate::url`), routes as [`RouteConfig`] with their patterns compiled
//! (`route`, which does not depend on this module).

mod error;
mod raw;
mod validate;

use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::CertificateDer;

pub use crate::route::{Filter, Predicate, RouteConfig};
pub use crate::url::HttpUrl;
pub use error::{ConfigError, KeyError};
pub(crate) use validate::load_str_with;
pub use validate::{load_file, load_str};

/// Everything sessiongate needs at run time, validated.
#[derive(Debug, Clone)]
pub struct Config {
    pub server: ServerConfig,
    pub management: ManagementConfig,
    pub cg: CgConfig,
    pub oauth2: OAuth2Config,
    pub routes: Vec<RouteConfig>,
    pub logging: LoggingConfig,
    pub gateway: GatewayConfig,
    /// `spring.data.redis.*` and `spring.session.redis.namespace`: used only with the shared
    /// session store.
    pub redis: RedisConfig,
}

/// `server.*`: the public listener.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub address: IpAddr,
    /// 0 asks the kernel for a free port (tests); the bound port is printed at start.
    pub port: u16,
    /// `server.ssl.*`; `None` when absent or `enabled: false`.
    pub ssl: Option<SslConfig>,
}

#[derive(Debug, Clone)]
pub struct SslConfig {
    pub certificate: PathBuf,
    pub certificate_private_key: PathBuf,
}

/// `management.server.*`: the management listener (health, metrics, sessions admin API).
#[derive(Debug, Clone)]
pub struct ManagementConfig {
    pub address: IpAddr,
    /// `None`: no management listener.
    pub port: Option<u16>,
    /// `sessiongate.management-token`: optional bearer secret for the admin endpoints.
    pub token: Option<String>,
}

/// The `cg.*` keys of the censhare Cloud Gateway, same names and defaults.
#[derive(Debug, Clone)]
pub struct CgConfig {
    pub censhare_logout_url: Option<HttpUrl>,
    pub expired_session_full_logout: bool,
    pub session_timeout: Duration,
    pub session_check_interval: Duration,
    pub max_sessions: u64,
    pub use_secure_session_cookie: bool,
    pub max_retry_attempts: u32,
    pub min_retry_delay: Duration,
    pub fresh_token_listeners: Vec<HttpUrl>,
    pub fresh_token_send_interval: Duration,
    pub logout_listeners: Vec<HttpUrl>,
}

/// `spring.security.oauth2.client.*`.
#[derive(Debug, Clone, Default)]
pub struct OAuth2Config {
    pub registrations: Vec<Registration>,
    pub providers: Vec<Provider>,
}

#[derive(Debug, Clone)]
pub struct Registration {
    /// The map key (`keycloak` in `registration.keycloak`), used in the callback path.
    pub id: String,
    pub client_id: String,
    pub client_secret: Option<String>,
    pub scope: Vec<String>,
    /// Provider id; defaults to the registration id.
    pub provider: String,
    pub client_authentication_method: ClientAuthMethod,
    /// `authorization-grant-type`; only `authorization_code` is accepted.
    pub authorization_grant_type: String,
    /// `redirect-uri`, Spring template (`{baseUrl}/login/oauth2/code/{registrationId}`).
    pub redirect_uri: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuthMethod {
    ClientSecretBasic,
    ClientSecretPost,
    None,
}

#[derive(Debug, Clone)]
pub struct Provider {
    pub id: String,
    pub issuer_uri: Option<HttpUrl>,
    pub authorization_uri: Option<HttpUrl>,
    pub token_uri: Option<HttpUrl>,
    pub jwk_set_uri: Option<HttpUrl>,
    pub user_info_uri: Option<HttpUrl>,
    pub user_name_attribute: Option<String>,
}

/// `logging.level.*`: Spring-style logger names mapped to our targets.
#[derive(Debug, Clone, Default)]
pub struct LoggingConfig {
    /// (logger name as written, level) in file order; `root` included when present.
    pub levels: Vec<(String, LogLevel)>,
    /// `logging.structured.format.console`; `None`: plain text lines.
    pub structured: Option<StructuredFormat>,
}

/// Spring Boot's structured console formats: one JSON object a line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StructuredFormat {
    /// Elastic Common Schema (`ecs`).
    Ecs,
    /// Logstash JSON encoder (`logstash`).
    Logstash,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogLevel {
    Off,
    Error,
    Warn,
    Info,
    Debug,
    Trace,
}

/// `sessiongate.session-store`: where sessions live.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StoreKind {
    /// Each worker's own memory (one instance; a snapshot may carry them over a restart).
    #[default]
    Memory,
    /// Redis or Valkey, shared by every instance; each worker caches what it serves.
    Redis,
}

/// `sessiongate.session-encryption-keys`, decoded: the first seals, all open. Its `Debug`
/// shows how many, never the keys.
#[derive(Clone, Default)]
pub struct SessionKeys(pub Vec<[u8; crate::session::seal::KEY_LEN]>);

impl std::fmt::Debug for SessionKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SessionKeys({} configured)", self.0.len())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Driver {
    /// io_uring with COOP_TASKRUN/SINGLE_ISSUER/DEFER_TASKRUN, falling back to plain
    /// io_uring, then to the legacy (epoll) driver with a WARN.
    #[default]
    IoUring,
    /// monoio's epoll driver, for comparison or old kernels.
    Legacy,
}

/// `sessiongate.*`: our own knobs, kebab-case.
#[derive(Debug, Clone)]
pub struct GatewayConfig {
    /// `workers`, 0 in the file means one per core; here already resolved to 1..=255.
    pub workers: usize,
    pub driver: Driver,
    pub connection_idle_timeout: Duration,
    /// `request-head-timeout-ms`: time allowed to receive a full request head.
    pub request_head_timeout: Duration,
    /// `body-read-timeout-ms`: longest pause between body bytes from the client.
    pub body_read_timeout: Duration,
    /// `body-min-rate-bytes-per-sec`: the least a proxied request body must average per
    /// second spent waiting on the client, after a 5 s grace period; 0 = no minimum.
    pub body_min_rate: u64,
    /// `max-connections`: client connections the whole process holds at once (9000: each
    /// may hold an upstream connection too, inside 20,000 open files with room to spare).
    pub max_connections: usize,
    pub max_head_bytes: usize,
    pub max_headers: usize,
    pub max_uri_bytes: usize,
    /// `max-body-bytes`; 0 = unlimited.
    pub max_body_bytes: u64,
    pub upstream_connect_timeout: Duration,
    /// `upstream-response-timeout-ms`: time to the first byte of the response head.
    pub upstream_response_timeout: Duration,
    pub upstream_idle_timeout: Duration,
    /// Idle keep-alive connections kept per upstream per worker.
    pub upstream_pool_size: usize,
    pub shutdown_grace: Duration,
    pub access_log: bool,
    /// `connection-hand-off` (default true): a plain connection whose session lives on
    /// another worker moves there once; false: every such request asks the owner by message
    /// (what TLS connections always do).
    pub connection_hand_off: bool,
    pub post_logout_redirect_uri: Option<String>,
    pub session_max_lifetime: Option<Duration>,
    /// The text of the `access-banner` file, read at load.
    pub access_banner: Option<Arc<str>>,
    pub keep_alive_after_disconnect: Option<Duration>,
    pub audit_log: Option<String>,
    pub http_port: Option<u16>,
    pub trusted_proxies: Vec<IpAddr>,
    pub jwt_clock_skew: Duration,
    /// The certificates of the `ca-bundle` PEM file, read at load: trusted for outgoing
    /// https besides the system roots.
    pub ca_bundle: Option<Vec<CertificateDer<'static>>>,
    /// `public-url`: the origin browsers use; redirect URIs and `Origin` checks are built
    /// from it. Without it, only a Host naming this listener directly (or one a trusted
    /// proxy forwarded) is used.
    pub public_url: Option<HttpUrl>,
    /// `max-sessions-per-user` (default 10; 0: no limit): beyond it a user's oldest session
    /// is ended, as Spring Security's `maximumSessions` does by default.
    pub max_sessions_per_user: u64,
    /// `api-audience`: the `aud` an API client's own Bearer token must carry (default: the
    /// registration's client id).
    pub api_audience: Option<String>,
    /// The gateway's own pages: built in, or the operator's (`page-templates`,
    /// `product-name`, `logo`), checked at load.
    pub pages: Arc<crate::pages::Pages>,
    /// `session-store` (default memory).
    pub session_store: StoreKind,
    /// `session-encryption-keys`: seal what leaves the process (required by the redis
    /// store and the snapshot).
    pub session_keys: SessionKeys,
    /// `session-snapshot`: with the memory store, sessions are written here at shutdown
    /// and read back at the next start.
    pub session_snapshot: Option<std::path::PathBuf>,
    /// `redis-outage-grace-sec` (default 30): how long sessions cached before Redis went
    /// away are still served; after that they are refused until it is back.
    pub redis_outage_grace: Duration,
}

/// The Redis (or Valkey) server of the shared session store: `spring.data.redis.*`
/// (`host`, `port`, `username`, `password`, `database`, `ssl.enabled`, `timeout`, or `url`)
/// and `spring.session.redis.namespace`. Read always, used only when sessions are kept in
/// Redis.
#[derive(Clone, PartialEq, Eq)]
pub struct RedisConfig {
    pub host: String,
    pub port: u16,
    /// Sent with AUTH (Redis 6 ACL user); `None`: the password alone (`default` user).
    pub username: Option<String>,
    /// `None`: no AUTH.
    pub password: Option<String>,
    /// SELECT after connecting when not 0.
    pub database: u32,
    /// TLS to the server, verified against `host` (the system roots and the CA bundle).
    pub tls: bool,
    /// How long one command (or pipeline) may wait for its reply; also the connect and TLS
    /// handshake timeout.
    pub timeout: Duration,
    /// The prefix of every key the store writes (`[A-Za-z0-9._-]`, 1 to 64 characters).
    pub namespace: String,
}

impl Default for RedisConfig {
    fn default() -> RedisConfig {
        RedisConfig {
            host: "localhost".to_string(),
            port: 6379,
            username: None,
            password: None,
            database: 0,
            tls: false,
            timeout: Duration::from_secs(2),
            namespace: "sessiongate".to_string(),
        }
    }
}

impl RedisConfig {
    /// The server's addresses. Resolved at each connect attempt (rare: at start and after a
    /// lost connection), so a managed server's new address after a failover is found; an IP
    /// literal needs no lookup.
    pub fn addrs(&self) -> std::io::Result<Vec<SocketAddr>> {
        if let Ok(ip) = self.host.parse::<IpAddr>() {
            return Ok(vec![SocketAddr::new(ip, self.port)]);
        }
        Ok((self.host.as_str(), self.port).to_socket_addrs()?.collect())
    }

    /// `host:port` for logs (an IPv6 literal in brackets).
    pub fn address(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

/// The password never appears in a debug print (`check`, logs of the configuration).
impl std::fmt::Debug for RedisConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisConfig")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("database", &self.database)
            .field("tls", &self.tls)
            .field("timeout", &self.timeout)
            .field("namespace", &self.namespace)
            .finish()
    }
}
