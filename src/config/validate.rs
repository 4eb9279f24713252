//! Step two of loading: the raw tree into the typed [`Config`], checked once.
//!
//! Every reader names the key it reads, so each error says where the problem is. Sections we
//! own (`cg`, `server`, `management`, `sessiongate`, `spring.cloud.gateway`, the OAuth2
//! registrations and providers) refuse unknown keys and suggest the nearest known one;
//! everything else in an operator's Spring file (other top-level keys, other `spring.*`
//! keys, other `logging.*` keys) is ignored without a word.

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::raw::{self, child_path, Node};
use super::{
    CgConfig, ClientAuthMethod, Config, Driver, Filter, GatewayConfig, HttpUrl, LogLevel,
    LoggingConfig, ManagementConfig, OAuth2Config, Predicate, Provider, Registration, RouteConfig,
    ServerConfig, SslConfig,
};
use crate::route::{HostPattern, PathPattern};

/// Why a configuration was refused. `Invalid` displays as `key.path: what is wrong`.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid YAML: {0}")]
    Yaml(#[from] serde_yaml::Error),
    #[error("{key}: {message}")]
    Invalid { key: String, message: String },
}

impl ConfigError {
    pub(crate) fn invalid(key: &str, message: impl Into<String>) -> ConfigError {
        ConfigError::Invalid {
            key: key.to_string(),
            message: message.into(),
        }
    }

    /// The key path the error is about, when it is about one.
    pub fn key(&self) -> Option<&str> {
        match self {
            ConfigError::Invalid { key, .. } => Some(key),
            _ => None,
        }
    }
}

type Result<T, E = ConfigError> = std::result::Result<T, E>;

/// Reads and validates the configuration file at `path`.
pub fn load_file(path: &Path) -> Result<Config> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    load_str(&text)
}

/// Validates configuration text; `${VAR}` placeholders come from the process environment.
pub fn load_str(yaml: &str) -> Result<Config> {
    load_str_with(yaml, &|name| std::env::var(name).ok())
}

/// [`load_str`] with placeholder variables from `env` (tests, `check` with overrides).
pub(crate) fn load_str_with(yaml: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<Config> {
    let root = raw::parse(yaml, env)?;
    config(&root)
}

fn config(root: &Node) -> Result<Config> {
    let top = Section::open(Some(root), "")?;
    let spring = top.open_section("spring")?;
    let sessiongate = top.section("sessiongate", SESSIONGATE_KEYS)?;
    let server = server(&top.section("server", &["address", "port", "ssl"])?)?;
    if let Some(p) = sessiongate.port("http-port")? {
        // Both listeners use SO_REUSEPORT: on one port they would share connections.
        if p != 0 && p == server.port {
            return Err(ConfigError::invalid(
                &sessiongate.key("http-port"),
                format!("must differ from server.port ({p})"),
            ));
        }
    }
    Ok(Config {
        server,
        management: management(&top.section("management", &["server"])?, &sessiongate)?,
        cg: cg(&top.section("cg", CG_KEYS)?)?,
        oauth2: oauth2(&spring.open_section("security")?.open_section("oauth2")?)?,
        routes: routes(
            &spring
                .open_section("cloud")?
                .section("gateway", &["routes"])?,
        )?,
        logging: logging(&top.open_section("logging")?)?,
        gateway: gateway(&sessiongate)?,
    })
}

// ---------------------------------------------------------------------------------------
// Sections and field readers

/// A map in the tree with its key path; optionally strict about which keys it may hold.
struct Section<'a> {
    path: String,
    entries: &'a [(String, Node)],
}

impl<'a> Section<'a> {
    /// A section whose keys must all be in `known`.
    fn strict(node: Option<&'a Node>, path: &str, known: &[&str]) -> Result<Section<'a>> {
        let section = Section::open(node, path)?;
        for (key, _) in section.entries {
            if !known.contains(&key.as_str()) {
                return Err(unknown_key(path, key, known));
            }
        }
        Ok(section)
    }

    /// A section that may hold keys we do not read (they belong to other Spring parts).
    fn open(node: Option<&'a Node>, path: &str) -> Result<Section<'a>> {
        let entries: &[(String, Node)] = match node {
            None | Some(Node::Null) => &[],
            Some(Node::Map(entries)) => entries,
            Some(other) => return Err(expected(path, "a map of keys", other)),
        };
        Ok(Section {
            path: path.to_string(),
            entries,
        })
    }

    fn section(&self, key: &str, known: &[&str]) -> Result<Section<'a>> {
        Section::strict(self.node(key), &self.key(key), known)
    }

    fn open_section(&self, key: &str) -> Result<Section<'a>> {
        Section::open(self.node(key), &self.key(key))
    }

    /// The value under `key`; an empty value counts as absent.
    fn node(&self, key: &str) -> Option<&'a Node> {
        self.entries
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v)
            .filter(|v| **v != Node::Null)
    }

    fn key(&self, key: &str) -> String {
        child_path(&self.path, key)
    }

    /// A scalar as trimmed text; `None` when absent or empty.
    fn text(&self, key: &str) -> Result<Option<String>> {
        self.node(key).map_or(Ok(None), |n| text(n, &self.key(key)))
    }

    fn required_text(&self, key: &str) -> Result<String> {
        self.text(key)?
            .ok_or_else(|| ConfigError::invalid(&self.key(key), "required"))
    }

    fn bool(&self, key: &str, default: bool) -> Result<bool> {
        let Some(value) = self.text(key)? else {
            return Ok(default);
        };
        match value.to_ascii_lowercase().as_str() {
            "true" | "yes" | "on" => Ok(true),
            "false" | "no" | "off" => Ok(false),
            _ => Err(ConfigError::invalid(
                &self.key(key),
                format!("expected true or false, got {value:?}"),
            )),
        }
    }

    fn int(&self, key: &str, rule: IntRule, default: u64) -> Result<u64> {
        Ok(self.opt_int(key, rule)?.unwrap_or(default))
    }

    fn opt_int(&self, key: &str, rule: IntRule) -> Result<Option<u64>> {
        self.text(key)?
            .map(|v| rule.check(&v, &self.key(key)))
            .transpose()
    }

    fn secs(&self, key: &str, rule: IntRule, default: u64) -> Result<Duration> {
        self.int(key, rule, default).map(Duration::from_secs)
    }

    fn millis(&self, key: &str, rule: IntRule, default: u64) -> Result<Duration> {
        self.int(key, rule, default).map(Duration::from_millis)
    }

    fn url(&self, key: &str) -> Result<Option<HttpUrl>> {
        self.text(key)?
            .map(|v| parse_url(&v, &self.key(key)))
            .transpose()
    }

    fn ip(&self, key: &str, default: IpAddr) -> Result<IpAddr> {
        match self.text(key)? {
            Some(v) => parse_ip(&v, &self.key(key)),
            None => Ok(default),
        }
    }

    fn port(&self, key: &str) -> Result<Option<u16>> {
        self.opt_int(key, PORT).map(|p| p.map(|p| p as u16))
    }

    fn path(&self, key: &str) -> Result<Option<PathBuf>> {
        Ok(self.text(key)?.map(PathBuf::from))
    }

    /// A YAML list or one comma-separated string, each item with its own key path
    /// (`cg.logoutListeners[1]`). Empty items are dropped.
    fn list(&self, key: &str) -> Result<Vec<(String, String)>> {
        let path = self.key(key);
        match self.node(key) {
            None => Ok(Vec::new()),
            Some(Node::Scalar(s)) => Ok(s
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .enumerate()
                .map(|(i, s)| (format!("{path}[{i}]"), s.to_string()))
                .collect()),
            Some(Node::List(items)) => {
                let mut out = Vec::with_capacity(items.len());
                for (i, item) in items.iter().enumerate() {
                    let item_path = format!("{path}[{i}]");
                    if let Some(s) = text(item, &item_path)? {
                        out.push((item_path, s));
                    }
                }
                Ok(out)
            }
            Some(other) => Err(expected(&path, "a list or a comma-separated string", other)),
        }
    }

    fn url_list(&self, key: &str) -> Result<Vec<HttpUrl>> {
        self.list(key)?
            .iter()
            .map(|(path, v)| parse_url(v, path))
            .collect()
    }
}

/// A scalar node as trimmed text; `None` when empty.
fn text(node: &Node, path: &str) -> Result<Option<String>> {
    match node {
        Node::Null => Ok(None),
        Node::Scalar(s) => {
            let s = s.trim();
            Ok((!s.is_empty()).then(|| s.to_string()))
        }
        other => Err(expected(path, "a single value", other)),
    }
}

fn expected(path: &str, what: &str, got: &Node) -> ConfigError {
    ConfigError::invalid(path, format!("expected {what}, got {}", got.describe()))
}

/// An accepted integer range and how to describe it in an error.
#[derive(Clone, Copy)]
struct IntRule {
    min: u64,
    max: u64,
    /// `" number of seconds"` and the like, or empty.
    unit: &'static str,
}

/// Ten years: far beyond any sensible timeout, low enough that adding it to an `Instant`
/// cannot overflow.
const MAX_SECS: u64 = 10 * 365 * 24 * 3600;
const MAX_MS: u64 = MAX_SECS * 1000;

const POSITIVE_SECS: IntRule = IntRule {
    min: 1,
    max: MAX_SECS,
    unit: " number of seconds",
};
const SECS: IntRule = IntRule {
    min: 0,
    max: MAX_SECS,
    unit: " number of seconds",
};
const POSITIVE_MS: IntRule = IntRule {
    min: 1,
    max: MAX_MS,
    unit: " number of milliseconds",
};
const MS: IntRule = IntRule {
    min: 0,
    max: MAX_MS,
    unit: " number of milliseconds",
};
/// Timer ticks: small values are fine (the wheel stays cheap), below 10 ms is a typo.
const TICK_MS: IntRule = IntRule {
    min: 10,
    max: MAX_MS,
    unit: " number of milliseconds",
};
const PORT: IntRule = IntRule {
    min: 0,
    max: 65535,
    unit: "",
};
const COUNT: IntRule = IntRule {
    min: 0,
    max: u32::MAX as u64,
    unit: "",
};

impl IntRule {
    const fn range(min: u64, max: u64) -> IntRule {
        IntRule { min, max, unit: "" }
    }

    fn describe(&self) -> String {
        let unit = self.unit;
        // Caps at or above ten years are overflow guards, named only when exceeded.
        let open_ended = self.max >= MAX_SECS;
        match (self.min, open_ended) {
            (0, true) => format!("a non-negative integer{unit}"),
            (1, true) => format!("a positive integer{unit}"),
            (min, true) => format!("an integer{unit}, at least {min}"),
            (min, false) => format!("an integer{unit} from {min} to {}", self.max),
        }
    }

    fn check(&self, value: &str, path: &str) -> Result<u64> {
        match value.parse::<u64>() {
            Ok(n) if (self.min..=self.max).contains(&n) => Ok(n),
            Ok(n) if n > self.max && self.max >= MAX_SECS => Err(ConfigError::invalid(
                path,
                format!(
                    "expected {}, at most {}, got {value:?}",
                    self.describe(),
                    self.max
                ),
            )),
            _ => Err(ConfigError::invalid(
                path,
                format!("expected {}, got {value:?}", self.describe()),
            )),
        }
    }
}

fn parse_url(value: &str, path: &str) -> Result<HttpUrl> {
    HttpUrl::parse(value)
        .map_err(|why| ConfigError::invalid(path, format!("invalid URL {value:?}: {why}")))
}

fn parse_ip(value: &str, path: &str) -> Result<IpAddr> {
    value
        .parse()
        .map_err(|_| ConfigError::invalid(path, format!("expected an IP address, got {value:?}")))
}

// ---------------------------------------------------------------------------------------
// Unknown keys

fn unknown_key(path: &str, key: &str, known: &[&str]) -> ConfigError {
    let full = child_path(path, key);
    let message = match suggest(key, known) {
        Some(best) => format!("unknown key; did you mean `{}`?", child_path(path, best)),
        None => format!("unknown key; known keys here: {}", known.join(", ")),
    };
    ConfigError::invalid(&full, message)
}

/// The known name nearest to `given`, when near enough to be a likely typo. Names are
/// compared without case, `-` and `_`, so `session-timeout-sec` finds `sessionTimeoutSec`.
fn suggest<'k>(given: &str, known: &[&'k str]) -> Option<&'k str> {
    let given = fold(given);
    let limit = (given.chars().count() / 3).max(2);
    known
        .iter()
        .map(|k| (levenshtein(&given, &fold(k)), *k))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

fn fold(name: &str) -> String {
    name.chars()
        .filter(|c| !matches!(c, '-' | '_'))
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

/// Edit distance (insertions, deletions, substitutions), one row at a time.
fn levenshtein(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitute = diagonal + usize::from(ca != *cb);
            diagonal = row[j + 1];
            row[j + 1] = substitute.min(row[j] + 1).min(diagonal + 1);
        }
    }
    row[b.len()]
}

// ---------------------------------------------------------------------------------------
// HttpUrl

impl HttpUrl {
    /// Parses an absolute `http://` or `https://` URL. Refused: other schemes, user
    /// information, fragments, an empty host, a bad port, spaces, control and non-ASCII
    /// characters (percent-encode them). The host is lower-cased; IPv6 literals must be in
    /// brackets and are stored without them. The error says what is wrong.
    pub fn parse(text: &str) -> Result<HttpUrl, String> {
        let (tls, rest) =
            split_scheme(text).ok_or("expected an absolute http:// or https:// URL")?;
        if text.bytes().any(|b| !(0x21..=0x7e).contains(&b)) {
            return Err("spaces, control and non-ASCII characters must be percent-encoded".into());
        }
        if text.contains('#') {
            return Err("a fragment (#...) is not allowed".into());
        }
        let end = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, tail) = rest.split_at(end);
        if authority.contains('@') {
            return Err("user information (user@host) is not allowed".into());
        }
        let (host, port) = split_host_port(authority)?;
        let port = match port {
            None if tls => 443,
            None => 80,
            Some(p) => parse_port(p)?,
        };
        let path_and_query = match tail {
            "" => "/".to_string(),
            t if t.starts_with('?') => format!("/{t}"),
            t => t.to_string(),
        };
        Ok(HttpUrl {
            original: text.to_string(),
            tls,
            host,
            port,
            path_and_query,
        })
    }
}

fn split_scheme(text: &str) -> Option<(bool, &str)> {
    let (scheme, rest) = text.split_once("://")?;
    match scheme.to_ascii_lowercase().as_str() {
        "http" => Some((false, rest)),
        "https" => Some((true, rest)),
        _ => None,
    }
}

fn split_host_port(authority: &str) -> Result<(String, Option<&str>), String> {
    if let Some(bracketed) = authority.strip_prefix('[') {
        let (ip, after) = bracketed
            .split_once(']')
            .ok_or("unclosed `[` in the host")?;
        let ip: Ipv6Addr = ip
            .parse()
            .map_err(|_| format!("{ip:?} is not an IPv6 address"))?;
        let port = match after {
            "" => None,
            p => Some(
                p.strip_prefix(':')
                    .ok_or("unexpected text after the IPv6 address")?,
            ),
        };
        return Ok((ip.to_string(), port));
    }
    let (host, port) = match authority.split_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (authority, None),
    };
    if host.is_empty() {
        return Err("the host is empty".into());
    }
    if port.is_some_and(|p| p.contains(':')) {
        return Err("IPv6 addresses must be written in brackets ([::1])".into());
    }
    if !host
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'))
    {
        return Err(format!("{host:?} is not a valid host name"));
    }
    Ok((host.to_ascii_lowercase(), port))
}

fn parse_port(port: &str) -> Result<u16, String> {
    match port.parse::<u16>() {
        Ok(p) if p > 0 && port.bytes().all(|b| b.is_ascii_digit()) => Ok(p),
        _ => Err(format!("{port:?} is not a port number (1-65535)")),
    }
}

// ---------------------------------------------------------------------------------------
// server, management

fn server(s: &Section) -> Result<ServerConfig> {
    Ok(ServerConfig {
        address: s.ip("address", IpAddr::V4(Ipv4Addr::UNSPECIFIED))?,
        port: s.port("port")?.unwrap_or(8080),
        ssl: ssl(&s.section(
            "ssl",
            &["enabled", "certificate", "certificate-private-key"],
        )?)?,
    })
}

/// `server.ssl`: on when `enabled` says so, or (Spring's default `enabled: true`) when a
/// certificate or key is given; then both are required. The files are read at start-up.
fn ssl(s: &Section) -> Result<Option<SslConfig>> {
    let certificate = s.path("certificate")?;
    let key = s.path("certificate-private-key")?;
    let configured = certificate.is_some() || key.is_some();
    if !s.bool("enabled", configured)? {
        return Ok(None);
    }
    let missing =
        |k: &str| ConfigError::invalid(&s.key(k), "required when TLS is enabled (PEM file)");
    Ok(Some(SslConfig {
        certificate: certificate.ok_or_else(|| missing("certificate"))?,
        certificate_private_key: key.ok_or_else(|| missing("certificate-private-key"))?,
    }))
}

fn management(m: &Section, sessiongate: &Section) -> Result<ManagementConfig> {
    let server = m.section("server", &["address", "port"])?;
    Ok(ManagementConfig {
        address: server.ip("address", IpAddr::V4(Ipv4Addr::LOCALHOST))?,
        port: server.port("port")?,
        token: sessiongate.text("management-token")?,
    })
}

// ---------------------------------------------------------------------------------------
// cg

const CG_KEYS: &[&str] = &[
    "censhareLogoutUrl",
    "expiredSessionFullLogout",
    "sessionTimeoutSec",
    "sessionCheckIntervalMs",
    "maxSessions",
    "useSecureSessionCookie",
    "maxRetryAttempts",
    "minRetryDelaySeconds",
    "freshTokenListeners",
    "freshTokenSendIntervalMs",
    "logoutListeners",
];

/// The censhare keys with the censhare defaults. `minRetryDelaySeconds: 0` is allowed
/// (retry at once; handy in tests); `freshTokenSendIntervalMs` is a timer tick like
/// `sessionCheckIntervalMs`, so it has the same 10 ms floor.
fn cg(s: &Section) -> Result<CgConfig> {
    Ok(CgConfig {
        censhare_logout_url: s.url("censhareLogoutUrl")?,
        expired_session_full_logout: s.bool("expiredSessionFullLogout", true)?,
        session_timeout: s.secs("sessionTimeoutSec", POSITIVE_SECS, 1800)?,
        session_check_interval: s.millis("sessionCheckIntervalMs", TICK_MS, 60_000)?,
        max_sessions: s.int(
            "maxSessions",
            IntRule {
                min: 1,
                ..COUNT_U64
            },
            10_000,
        )?,
        use_secure_session_cookie: s.bool("useSecureSessionCookie", true)?,
        max_retry_attempts: s.int("maxRetryAttempts", COUNT, 3)? as u32,
        min_retry_delay: s.secs("minRetryDelaySeconds", SECS, 5)?,
        fresh_token_listeners: s.url_list("freshTokenListeners")?,
        fresh_token_send_interval: s.millis("freshTokenSendIntervalMs", TICK_MS, 60_000)?,
        logout_listeners: s.url_list("logoutListeners")?,
    })
}

const COUNT_U64: IntRule = IntRule {
    min: 0,
    max: u64::MAX,
    unit: "",
};

// ---------------------------------------------------------------------------------------
// spring.security.oauth2.client

const REGISTRATION_KEYS: &[&str] = &[
    "client-id",
    "client-secret",
    "client-name",
    "scope",
    "provider",
    "client-authentication-method",
    "authorization-grant-type",
    "redirect-uri",
];

const PROVIDER_KEYS: &[&str] = &[
    "issuer-uri",
    "authorization-uri",
    "token-uri",
    "jwk-set-uri",
    "user-info-uri",
    "user-name-attribute",
];

/// Providers Spring Security knows without configuration; only OpenID Connect ones.
const BUILT_IN_ISSUERS: &[(&str, &str)] = &[("google", "https://accounts.google.com")];

fn oauth2(oauth2: &Section) -> Result<OAuth2Config> {
    let client = oauth2.section("client", &["registration", "provider"])?;
    let mut providers = Vec::new();
    let provider_section = client.open_section("provider")?;
    for (id, _) in provider_section.entries {
        providers.push(provider(&provider_section.section(id, PROVIDER_KEYS)?, id)?);
    }
    let mut registrations = Vec::new();
    let registration_section = client.open_section("registration")?;
    for (id, _) in registration_section.entries {
        let r = registration(&registration_section.section(id, REGISTRATION_KEYS)?, id)?;
        add_built_in_provider(&r, &registration_section.key(id), &mut providers)?;
        registrations.push(r);
    }
    Ok(OAuth2Config {
        registrations,
        providers,
    })
}

fn provider(s: &Section, id: &str) -> Result<Provider> {
    let p = Provider {
        id: id.to_string(),
        issuer_uri: s.url("issuer-uri")?,
        authorization_uri: s.url("authorization-uri")?,
        token_uri: s.url("token-uri")?,
        jwk_set_uri: s.url("jwk-set-uri")?,
        user_info_uri: s.url("user-info-uri")?,
        user_name_attribute: s.text("user-name-attribute")?,
    };
    if p.issuer_uri.is_none() && (p.authorization_uri.is_none() || p.token_uri.is_none()) {
        return Err(ConfigError::invalid(
            &s.key("issuer-uri"),
            "required unless authorization-uri and token-uri are both given",
        ));
    }
    Ok(p)
}

fn registration(s: &Section, id: &str) -> Result<Registration> {
    if id.is_empty()
        || !id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_'))
    {
        return Err(ConfigError::invalid(
            &s.path,
            "a registration id may hold only letters, digits, `-` and `_` (it is part of the callback path)",
        ));
    }
    let client_secret = s.text("client-secret")?;
    let method = client_auth_method(s, client_secret.is_some())?;
    let grant = s
        .text("authorization-grant-type")?
        .unwrap_or_else(|| "authorization_code".into());
    if grant != "authorization_code" {
        return Err(ConfigError::invalid(
            &s.key("authorization-grant-type"),
            format!("only authorization_code is supported, got {grant:?}"),
        ));
    }
    Ok(Registration {
        id: id.to_string(),
        client_id: s.required_text("client-id")?,
        client_secret,
        scope: s.list("scope")?.into_iter().map(|(_, v)| v).collect(),
        provider: s.text("provider")?.unwrap_or_else(|| id.to_string()),
        client_authentication_method: method,
        authorization_grant_type: grant,
        redirect_uri: s.text("redirect-uri")?,
    })
}

/// Spring's rule: without a secret the client is public (`none`), otherwise
/// `client_secret_basic`; the pre-5.5 names `basic` and `post` still work.
fn client_auth_method(s: &Section, has_secret: bool) -> Result<ClientAuthMethod> {
    let key = s.key("client-authentication-method");
    let method = match s
        .text("client-authentication-method")?
        .map(|m| m.to_ascii_lowercase())
    {
        None if has_secret => ClientAuthMethod::ClientSecretBasic,
        None => ClientAuthMethod::None,
        Some(m) => match m.as_str() {
            "client_secret_basic" | "basic" => ClientAuthMethod::ClientSecretBasic,
            "client_secret_post" | "post" => ClientAuthMethod::ClientSecretPost,
            "none" => ClientAuthMethod::None,
            _ => {
                return Err(ConfigError::invalid(
                    &key,
                    format!("expected client_secret_basic, client_secret_post or none, got {m:?}"),
                ))
            }
        },
    };
    if method != ClientAuthMethod::None && !has_secret {
        return Err(ConfigError::invalid(
            &s.key("client-secret"),
            "required unless client-authentication-method is none",
        ));
    }
    Ok(method)
}

/// Makes sure the registration's provider exists, adding a built-in one when it is known.
fn add_built_in_provider(
    r: &Registration,
    path: &str,
    providers: &mut Vec<Provider>,
) -> Result<()> {
    if providers.iter().any(|p| p.id == r.provider) {
        return Ok(());
    }
    let Some((_, issuer)) = BUILT_IN_ISSUERS.iter().find(|(id, _)| *id == r.provider) else {
        return Err(ConfigError::invalid(
            &child_path(path, "provider"),
            format!(
                "provider {:?} is not defined under spring.security.oauth2.client.provider",
                r.provider
            ),
        ));
    };
    providers.push(Provider {
        id: r.provider.clone(),
        issuer_uri: Some(HttpUrl::parse(issuer).expect("built-in issuer is a valid URL")),
        authorization_uri: None,
        token_uri: None,
        jwk_set_uri: None,
        user_info_uri: None,
        user_name_attribute: None,
    });
    Ok(())
}

// ---------------------------------------------------------------------------------------
// spring.cloud.gateway.routes

const ROUTE_KEYS: &[&str] = &["id", "uri", "order", "predicates", "filters"];
const PREDICATES: &[&str] = &["Path", "Host", "Method"];
const FILTERS: &[&str] = &[
    "StripPrefix",
    "PrefixPath",
    "AddRequestHeader",
    "SetRequestHeader",
    "RemoveRequestHeader",
    "BackchannelLogout",
];

fn routes(gateway: &Section) -> Result<Vec<RouteConfig>> {
    let path = gateway.key("routes");
    let items = match gateway.node("routes") {
        None => return Ok(Vec::new()),
        Some(Node::List(items)) => items,
        Some(other) => return Err(expected(&path, "a list of routes", other)),
    };
    let mut seen = HashSet::new();
    let mut routes = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let route_path = format!("{path}[{i}]");
        let r = route(&Section::strict(Some(item), &route_path, ROUTE_KEYS)?)?;
        if !seen.insert(r.id.clone()) {
            return Err(ConfigError::invalid(
                &child_path(&route_path, "id"),
                format!("route id {:?} is used twice", r.id),
            ));
        }
        routes.push(r);
    }
    Ok(routes)
}

fn route(s: &Section) -> Result<RouteConfig> {
    let uri = s.required_text("uri")?;
    let order = match s.text("order")? {
        None => 0,
        Some(v) => v.parse::<i32>().map_err(|_| {
            ConfigError::invalid(&s.key("order"), format!("expected an integer, got {v:?}"))
        })?,
    };
    Ok(RouteConfig {
        id: s.required_text("id")?,
        uri: parse_url(&uri, &s.key("uri"))?,
        order,
        predicates: definitions(s, "predicates", PREDICATES, predicate)?,
        filters: definitions(s, "filters", FILTERS, filter)?,
    })
}

/// One predicate or filter as written: its name and its arguments, in shortcut form
/// (`Path=/a,/b`) or Spring's expanded form (`{name: Path, args: {patterns: [/a]}}`).
struct Definition<'a> {
    path: String,
    name: String,
    args: Args<'a>,
}

enum Args<'a> {
    /// The text after `=` (absent: no `=`).
    Shortcut(Option<String>),
    Named(Section<'a>),
}

/// Reads the list under `key` and converts each entry with `build`.
fn definitions<T>(
    s: &Section,
    key: &str,
    known: &[&str],
    build: fn(&Definition) -> Result<T>,
) -> Result<Vec<T>> {
    let path = s.key(key);
    let items: &[Node] = match s.node(key) {
        None => &[],
        Some(Node::List(items)) => items,
        Some(single @ Node::Scalar(_)) => std::slice::from_ref(single),
        Some(other) => return Err(expected(&path, "a list", other)),
    };
    let mut out = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let d = definition(item, format!("{path}[{i}]"))?;
        if !known.contains(&d.name.as_str()) {
            return Err(unknown_name(&d, known));
        }
        out.push(build(&d)?);
    }
    Ok(out)
}

fn definition(node: &Node, path: String) -> Result<Definition<'_>> {
    if let Node::Map(_) = node {
        let s = Section::strict(Some(node), &path, &["name", "args"])?;
        let name = s.required_text("name")?;
        let args = Args::Named(s.open_section("args")?);
        return Ok(Definition { path, name, args });
    }
    let text = text(node, &path)?.ok_or_else(|| ConfigError::invalid(&path, "empty entry"))?;
    let (name, args) = match text.split_once('=') {
        Some((n, a)) => (n.trim().to_string(), Some(a.trim().to_string())),
        None => (text, None),
    };
    Ok(Definition {
        path,
        name,
        args: Args::Shortcut(args),
    })
}

fn unknown_name(d: &Definition, known: &[&str]) -> ConfigError {
    let what = if known == PREDICATES {
        "predicate"
    } else {
        "filter"
    };
    let hint = match suggest(&d.name, known) {
        Some(best) => format!("; did you mean `{best}`?"),
        None => format!("; known: {}", known.join(", ")),
    };
    ConfigError::invalid(&d.path, format!("unknown {what} `{}`{hint}", d.name))
}

impl Definition<'_> {
    /// The arguments as a list: shortcut text split at commas, or the named list
    /// argument `key` (a YAML list or a comma-separated string).
    fn list_arg(&self, key: &str) -> Result<Vec<(String, String)>> {
        match &self.args {
            Args::Shortcut(text) => Ok(text
                .as_deref()
                .unwrap_or("")
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .enumerate()
                .map(|(i, v)| (format!("{}[{i}]", self.path), v.to_string()))
                .collect()),
            Args::Named(args) => {
                check_arg_names(args, &[key])?;
                args.list(key)
            }
        }
    }

    /// The arguments named `keys`, all required and non-empty. Shortcut text is split at
    /// the first `len - 1` commas, so a header value may itself contain commas.
    fn args(&self, keys: &[&str]) -> Result<Vec<String>> {
        let values: Vec<String> = match &self.args {
            Args::Shortcut(text) => {
                let text = text.as_deref().unwrap_or("");
                if keys.is_empty() && !text.is_empty() {
                    return Err(self.arg_count(keys));
                }
                match keys.len() {
                    0 => Vec::new(),
                    n => text.splitn(n, ',').map(|p| p.trim().to_string()).collect(),
                }
            }
            Args::Named(args) => {
                check_arg_names(args, keys)?;
                keys.iter()
                    .map(|k| args.text(k).map(Option::unwrap_or_default))
                    .collect::<Result<_>>()?
            }
        };
        if values.len() != keys.len() || values.iter().any(String::is_empty) {
            return Err(self.arg_count(keys));
        }
        Ok(values)
    }

    fn arg_count(&self, keys: &[&str]) -> ConfigError {
        let message = match keys {
            [] => format!("{} takes no arguments", self.name),
            _ => format!("{} expects {}", self.name, keys.join(", ")),
        };
        ConfigError::invalid(&self.path, message)
    }
}

fn check_arg_names(args: &Section, known: &[&str]) -> Result<()> {
    match args
        .entries
        .iter()
        .find(|(k, _)| !known.contains(&k.as_str()))
    {
        Some((k, _)) => Err(unknown_key(&args.path, k, known)),
        None => Ok(()),
    }
}

/// Builds a predicate; `definitions` has already checked the name against `PREDICATES`.
fn predicate(d: &Definition) -> Result<Predicate> {
    let key = match d.name.as_str() {
        "Path" | "Host" => "patterns",
        _ => "methods",
    };
    let values = d.list_arg(key)?;
    if values.is_empty() {
        return Err(ConfigError::invalid(
            &d.path,
            format!("{} needs at least one {}", d.name, &key[..key.len() - 1]),
        ));
    }
    let mut out = Vec::with_capacity(values.len());
    for (path, v) in values {
        let checked = match d.name.as_str() {
            "Path" => PathPattern::parse(&v).map(|_| v),
            "Host" => HostPattern::parse(&v).map(|_| v),
            _ => method(&v),
        };
        out.push(checked.map_err(|why| ConfigError::invalid(&path, why))?);
    }
    Ok(match d.name.as_str() {
        "Path" => Predicate::Path(out),
        "Host" => Predicate::Host(out),
        _ => Predicate::Method(out),
    })
}

fn method(m: &str) -> Result<String, String> {
    if m.bytes().all(is_tchar) {
        Ok(m.to_ascii_uppercase())
    } else {
        Err(format!("{m:?} is not a method name"))
    }
}

/// Builds a filter; `definitions` has already checked the name against `FILTERS`.
fn filter(d: &Definition) -> Result<Filter> {
    let at = |why: String| ConfigError::invalid(&d.path, why);
    Ok(match d.name.as_str() {
        "StripPrefix" => {
            let parts = d.args(&["parts"])?.remove(0);
            Filter::StripPrefix(IntRule::range(0, 1000).check(&parts, &d.path)? as usize)
        }
        "PrefixPath" => Filter::PrefixPath(prefix_path(&d.args(&["prefix"])?[0]).map_err(at)?),
        "AddRequestHeader" | "SetRequestHeader" => {
            let [name, value]: [String; 2] =
                d.args(&["name", "value"])?.try_into().expect("two values");
            let name = header_name(&name).map_err(at)?;
            header_value(&value).map_err(at)?;
            if d.name == "AddRequestHeader" {
                Filter::AddRequestHeader(name, value)
            } else {
                Filter::SetRequestHeader(name, value)
            }
        }
        "RemoveRequestHeader" => {
            Filter::RemoveRequestHeader(header_name(&d.args(&["name"])?[0]).map_err(at)?)
        }
        _ => {
            d.args(&[])?;
            Filter::BackchannelLogout
        }
    })
}

/// `PrefixPath` argument: starts with `/`; trailing slashes dropped (`/api/` is `/api`,
/// which avoids a `//` in every rewritten path).
fn prefix_path(p: &str) -> Result<String, String> {
    let trimmed = p.trim_end_matches('/');
    let valid = p.starts_with('/')
        && !trimmed.is_empty()
        && p.bytes()
            .all(|b| (0x21..=0x7e).contains(&b) && b != b'?' && b != b'#');
    if valid {
        Ok(trimmed.to_string())
    } else {
        Err(format!(
            "expected a path such as /api (no query, spaces or bare /), got {p:?}"
        ))
    }
}

fn header_name(name: &str) -> Result<String, String> {
    if name.is_empty() || !name.bytes().all(is_tchar) {
        return Err(format!("{name:?} is not a valid header name"));
    }
    Ok(name.to_string())
}

/// Field values may hold visible characters, spaces, tabs and obs-text, never CR, LF,
/// NUL or other control characters (they would split or corrupt the upstream head).
fn header_value(value: &str) -> Result<(), String> {
    match value
        .bytes()
        .find(|b| (b.is_ascii_control() && *b != b'\t') || *b == 0x7f)
    {
        Some(b) => Err(format!(
            "header value contains the control character 0x{b:02x}"
        )),
        None => Ok(()),
    }
}

/// RFC 9110 `tchar`.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

// ---------------------------------------------------------------------------------------
// logging

/// `logging.level`: names kept as written, in file order; a nested YAML map under a name
/// (`com: {censhare: DEBUG}`) is read as the dotted name, as Spring does.
fn logging(s: &Section) -> Result<LoggingConfig> {
    let mut levels = Vec::new();
    collect_levels(&s.open_section("level")?, "", &mut levels)?;
    Ok(LoggingConfig { levels })
}

fn collect_levels(s: &Section, prefix: &str, out: &mut Vec<(String, LogLevel)>) -> Result<()> {
    for (name, node) in s.entries {
        let full = child_path(prefix, name);
        match node {
            Node::Map(_) => collect_levels(&s.open_section(name)?, &full, out)?,
            _ => {
                if let Some(level) = s.text(name)? {
                    out.push((full, log_level(&level, &s.key(name))?));
                }
            }
        }
    }
    Ok(())
}

fn log_level(level: &str, path: &str) -> Result<LogLevel> {
    Ok(match level.to_ascii_uppercase().as_str() {
        "TRACE" => LogLevel::Trace,
        "DEBUG" => LogLevel::Debug,
        "INFO" => LogLevel::Info,
        "WARN" => LogLevel::Warn,
        // Spring Boot's FATAL: nothing of ours logs above ERROR.
        "ERROR" | "FATAL" => LogLevel::Error,
        "OFF" | "FALSE" => LogLevel::Off,
        _ => {
            return Err(ConfigError::invalid(
                path,
                format!("expected TRACE, DEBUG, INFO, WARN, ERROR or OFF, got {level:?}"),
            ))
        }
    })
}

// ---------------------------------------------------------------------------------------
// sessiongate

const SESSIONGATE_KEYS: &[&str] = &[
    "workers",
    "driver",
    "connection-idle-timeout-ms",
    "request-head-timeout-ms",
    "body-read-timeout-ms",
    "max-head-bytes",
    "max-headers",
    "max-uri-bytes",
    "max-body-bytes",
    "upstream-connect-timeout-ms",
    "upstream-response-timeout-ms",
    "upstream-idle-timeout-ms",
    "upstream-pool-size",
    "shutdown-grace-ms",
    "access-log",
    "connection-hand-off",
    "post-logout-redirect-uri",
    "session-max-lifetime-sec",
    "access-banner",
    "keep-alive-after-disconnect-sec",
    "audit-log",
    "http-port",
    "trusted-proxies",
    "jwt-clock-skew-sec",
    "ca-bundle",
    "management-token",
];

const MIB: u64 = 1024 * 1024;

fn gateway(s: &Section) -> Result<GatewayConfig> {
    Ok(GatewayConfig {
        workers: workers(s.int("workers", IntRule::range(0, 1024), 0)? as usize),
        driver: driver(s)?,
        connection_idle_timeout: s.millis("connection-idle-timeout-ms", POSITIVE_MS, 300_000)?,
        request_head_timeout: s.millis("request-head-timeout-ms", POSITIVE_MS, 10_000)?,
        body_read_timeout: s.millis("body-read-timeout-ms", POSITIVE_MS, 30_000)?,
        max_head_bytes: s.int("max-head-bytes", IntRule::range(1024, MIB), 16_384)? as usize,
        max_headers: s.int("max-headers", IntRule::range(1, 1000), 100)? as usize,
        max_uri_bytes: s.int("max-uri-bytes", IntRule::range(16, MIB), 8192)? as usize,
        max_body_bytes: s.int("max-body-bytes", COUNT_U64, 0)?,
        upstream_connect_timeout: s.millis("upstream-connect-timeout-ms", POSITIVE_MS, 3000)?,
        upstream_response_timeout: s.millis("upstream-response-timeout-ms", POSITIVE_MS, 60_000)?,
        upstream_idle_timeout: s.millis("upstream-idle-timeout-ms", POSITIVE_MS, 60_000)?,
        upstream_pool_size: s.int("upstream-pool-size", IntRule::range(0, 65_536), 64)? as usize,
        shutdown_grace: s.millis("shutdown-grace-ms", MS, 10_000)?,
        access_log: s.bool("access-log", false)?,
        connection_hand_off: s.bool("connection-hand-off", true)?,
        post_logout_redirect_uri: post_logout_redirect(s)?,
        session_max_lifetime: s
            .opt_int("session-max-lifetime-sec", POSITIVE_SECS)?
            .map(Duration::from_secs),
        access_banner: s.path("access-banner")?,
        keep_alive_after_disconnect: s
            .opt_int("keep-alive-after-disconnect-sec", SECS)?
            .filter(|secs| *secs > 0)
            .map(Duration::from_secs),
        audit_log: s.text("audit-log")?,
        http_port: s.port("http-port")?,
        trusted_proxies: trusted_proxies(s)?,
        jwt_clock_skew: s.secs(
            "jwt-clock-skew-sec",
            IntRule {
                unit: " number of seconds",
                ..IntRule::range(0, 3600)
            },
            30,
        )?,
        ca_bundle: s.path("ca-bundle")?,
    })
}

/// 0 means one worker per core.
fn workers(configured: usize) -> usize {
    match configured {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    }
}

fn driver(s: &Section) -> Result<Driver> {
    match s.text("driver")?.as_deref() {
        None | Some("io_uring") => Ok(Driver::IoUring),
        Some("legacy") => Ok(Driver::Legacy),
        Some(other) => Err(ConfigError::invalid(
            &s.key("driver"),
            format!("expected io_uring or legacy, got {other:?}"),
        )),
    }
}

/// An absolute http(s) URL, or a path on the gateway itself (`/`, `/goodbye`).
fn post_logout_redirect(s: &Section) -> Result<Option<String>> {
    let Some(uri) = s.text("post-logout-redirect-uri")? else {
        return Ok(None);
    };
    let local_path = uri.starts_with('/')
        && !uri.starts_with("//")
        && HttpUrl::parse(&format!("http://h{uri}")).is_ok();
    if !local_path {
        parse_url(&uri, &s.key("post-logout-redirect-uri"))?;
    }
    Ok(Some(uri))
}

fn trusted_proxies(s: &Section) -> Result<Vec<IpAddr>> {
    s.list("trusted-proxies")?
        .iter()
        .map(|(path, v)| parse_ip(v, path))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "CLIENT_SECRET" => Some("from-env".to_string()),
            "TIMEOUT" => Some("900".to_string()),
            _ => None,
        }
    }

    fn load(yaml: &str) -> Config {
        load_str_with(yaml, &env).unwrap_or_else(|e| panic!("{e}"))
    }

    fn error(yaml: &str) -> String {
        match load_str_with(yaml, &env) {
            Ok(_) => panic!("expected an error for:\n{yaml}"),
            Err(e) => e.to_string(),
        }
    }

    /// Asserts that loading fails with an error about `key` containing `needle`.
    fn fails(yaml: &str, key: &str, needle: &str) {
        let msg = error(yaml);
        assert!(
            msg.starts_with(&format!("{key}: ")),
            "expected key {key}: {msg}"
        );
        assert!(msg.contains(needle), "expected {needle:?} in: {msg}");
    }

    #[test]
    fn empty_file_gives_documented_defaults() {
        let c = load("");
        assert_eq!(c.server.address, IpAddr::V4(Ipv4Addr::UNSPECIFIED));
        assert_eq!(c.server.port, 8080);
        assert!(c.server.ssl.is_none());
        assert_eq!(c.management.address, IpAddr::V4(Ipv4Addr::LOCALHOST));
        assert_eq!(c.management.port, None);
        assert_eq!(c.management.token, None);
        let cg = &c.cg;
        assert_eq!(cg.censhare_logout_url, None);
        assert!(cg.expired_session_full_logout);
        assert_eq!(cg.session_timeout, Duration::from_secs(1800));
        assert_eq!(cg.session_check_interval, Duration::from_millis(60_000));
        assert_eq!(cg.max_sessions, 10_000);
        assert!(cg.use_secure_session_cookie);
        assert_eq!(cg.max_retry_attempts, 3);
        assert_eq!(cg.min_retry_delay, Duration::from_secs(5));
        assert!(cg.fresh_token_listeners.is_empty());
        assert_eq!(cg.fresh_token_send_interval, Duration::from_millis(60_000));
        assert!(cg.logout_listeners.is_empty());
        assert!(c.oauth2.registrations.is_empty() && c.oauth2.providers.is_empty());
        assert!(c.routes.is_empty());
        assert!(c.logging.levels.is_empty());
        let g = &c.gateway;
        assert!(g.workers >= 1);
        assert_eq!(g.driver, Driver::IoUring);
        assert_eq!(g.connection_idle_timeout, Duration::from_millis(300_000));
        assert_eq!(g.request_head_timeout, Duration::from_millis(10_000));
        assert_eq!(g.body_read_timeout, Duration::from_millis(30_000));
        assert_eq!(
            (g.max_head_bytes, g.max_headers, g.max_uri_bytes),
            (16_384, 100, 8192)
        );
        assert_eq!(g.max_body_bytes, 0);
        assert_eq!(g.upstream_connect_timeout, Duration::from_millis(3000));
        assert_eq!(g.upstream_response_timeout, Duration::from_millis(60_000));
        assert_eq!(g.upstream_idle_timeout, Duration::from_millis(60_000));
        assert_eq!(g.upstream_pool_size, 64);
        assert_eq!(g.shutdown_grace, Duration::from_millis(10_000));
        assert!(!g.access_log);
        assert_eq!(g.post_logout_redirect_uri, None);
        assert_eq!(g.session_max_lifetime, None);
        assert_eq!(g.access_banner, None);
        assert_eq!(g.keep_alive_after_disconnect, None);
        assert_eq!(g.audit_log, None);
        assert_eq!(g.http_port, None);
        assert!(g.trusted_proxies.is_empty());
        assert_eq!(g.jwt_clock_skew, Duration::from_secs(30));
        assert_eq!(g.ca_bundle, None);
    }

    #[test]
    fn dotted_and_nested_cg_keys_merge() {
        let c = load("cg:\n  sessionTimeoutSec: 600\ncg.sessionCheckIntervalMs: 100\ncg.maxSessions: ${TIMEOUT}\n");
        assert_eq!(c.cg.session_timeout, Duration::from_secs(600));
        assert_eq!(c.cg.session_check_interval, Duration::from_millis(100));
        assert_eq!(c.cg.max_sessions, 900);
    }

    #[test]
    fn env_placeholders_expand_and_unset_ones_name_the_key() {
        let c = load("cg.sessionTimeoutSec: ${TIMEOUT:1800}\ncg.maxSessions: ${UNSET_X:42}\n");
        assert_eq!(c.cg.session_timeout, Duration::from_secs(900));
        assert_eq!(c.cg.max_sessions, 42);
        fails(
            "cg.censhareLogoutUrl: ${UNSET_URL}\n",
            "cg.censhareLogoutUrl",
            "UNSET_URL",
        );
    }

    #[test]
    fn conflicting_duplicates_name_the_key() {
        fails(
            "cg.sessionTimeoutSec: 10\ncg:\n  sessionTimeoutSec: 20\n",
            "cg.sessionTimeoutSec",
            "more than once",
        );
    }

    #[test]
    fn bad_values_name_their_keys() {
        fails(
            "cg.sessionTimeoutSec: abc\n",
            "cg.sessionTimeoutSec",
            "expected a positive integer number of seconds, got \"abc\"",
        );
        fails(
            "cg.sessionTimeoutSec: 0\n",
            "cg.sessionTimeoutSec",
            "positive",
        );
        fails(
            "cg.sessionTimeoutSec: -5\n",
            "cg.sessionTimeoutSec",
            "positive",
        );
        fails(
            "cg.sessionCheckIntervalMs: 5\n",
            "cg.sessionCheckIntervalMs",
            "at least 10",
        );
        fails("cg.maxSessions: 0\n", "cg.maxSessions", "positive");
        fails(
            "cg.expiredSessionFullLogout: maybe\n",
            "cg.expiredSessionFullLogout",
            "true or false",
        );
        fails(
            "cg.censhareLogoutUrl: ftp://x/\n",
            "cg.censhareLogoutUrl",
            "http",
        );
        fails(
            "cg.logoutListeners: [http://a/, 'http://u@b/']\n",
            "cg.logoutListeners[1]",
            "user information",
        );
        fails(
            "cg.freshTokenListeners: http://a/, http://b:99999/\n",
            "cg.freshTokenListeners[1]",
            "port",
        );
        fails("cg: [1]\n", "cg", "expected a map");
        fails(
            "cg.sessionTimeoutSec: [1]\n",
            "cg.sessionTimeoutSec",
            "single value",
        );
        fails("server.port: 70000\n", "server.port", "from 0 to 65535");
        fails(
            "server.address: example.com\n",
            "server.address",
            "IP address",
        );
        fails(
            "management.server.port: x\n",
            "management.server.port",
            "integer",
        );
        fails(
            "sessiongate.max-head-bytes: 100\n",
            "sessiongate.max-head-bytes",
            "from 1024 to 1048576",
        );
        fails(
            "sessiongate.max-headers: 0\n",
            "sessiongate.max-headers",
            "from 1 to 1000",
        );
        fails(
            "sessiongate.driver: epoll\n",
            "sessiongate.driver",
            "io_uring or legacy",
        );
        fails(
            "sessiongate.trusted-proxies: 10.0.0.1, nope\n",
            "sessiongate.trusted-proxies[1]",
            "IP address",
        );
        fails(
            "sessiongate.post-logout-redirect-uri: javascript:alert(1)\n",
            "sessiongate.post-logout-redirect-uri",
            "URL",
        );
        fails(
            "logging.level.com.x: LOUD\n",
            "logging.level.com.x",
            "TRACE, DEBUG",
        );
    }

    #[test]
    fn unknown_keys_suggest_the_nearest() {
        fails(
            "cg.sessionTimeoutSecs: 10\n",
            "cg.sessionTimeoutSecs",
            "did you mean `cg.sessionTimeoutSec`?",
        );
        fails(
            "cg.session-timeout-sec: 10\n",
            "cg.session-timeout-sec",
            "did you mean `cg.sessionTimeoutSec`?",
        );
        fails(
            "sessiongate.max_head_bytes: 10\n",
            "sessiongate.max_head_bytes",
            "did you mean `sessiongate.max-head-bytes`?",
        );
        fails(
            "server.prot: 1\n",
            "server.prot",
            "did you mean `server.port`?",
        );
        fails(
            "management.server.adress: 1\n",
            "management.server.adress",
            "did you mean `management.server.address`?",
        );
        fails(
            "spring.cloud.gateway.route: []\n",
            "spring.cloud.gateway.route",
            "did you mean `spring.cloud.gateway.routes`?",
        );
        fails(
            "cg.completelyDifferent: 1\n",
            "cg.completelyDifferent",
            "known keys here: censhareLogoutUrl",
        );
    }

    #[test]
    fn foreign_keys_are_ignored() {
        let c = load(
            "eureka.client.enabled: false\nspring.application.name: gw\nspring.cloud.config.enabled: false\nlogging.file.name: x.log\n",
        );
        assert!(c.routes.is_empty());
    }

    #[test]
    fn levenshtein_distances() {
        assert_eq!(levenshtein("", "abc"), 3);
        assert_eq!(levenshtein("kitten", "sitting"), 3);
        assert_eq!(levenshtein("same", "same"), 0);
        assert_eq!(suggest("Paht", PREDICATES), Some("Path"));
        assert_eq!(suggest("Xyz", PREDICATES), None);
    }

    #[test]
    fn listener_lists_accept_lists_and_comma_strings() {
        let c = load(
            "cg.logoutListeners: \"http://a:1/x, https://b/y\"\ncg.freshTokenListeners:\n  - http://c/\n  - http://[::1]:8081/r?q=1\n",
        );
        let hosts: Vec<(&str, u16)> =
            c.cg.logout_listeners
                .iter()
                .map(|u| (u.host.as_str(), u.port))
                .collect();
        assert_eq!(hosts, [("a", 1), ("b", 443)]);
        let fresh = &c.cg.fresh_token_listeners;
        assert_eq!(fresh[0].path_and_query, "/");
        assert_eq!((fresh[1].host.as_str(), fresh[1].port), ("::1", 8081));
        assert_eq!(fresh[1].path_and_query, "/r?q=1");
        assert_eq!(fresh[1].authority(), "[::1]:8081");
    }

    #[test]
    fn url_parsing() {
        let u = HttpUrl::parse("HTTPS://Example.COM?x=1").unwrap();
        assert!(u.tls);
        assert_eq!(
            (u.host.as_str(), u.port, u.path_and_query.as_str()),
            ("example.com", 443, "/?x=1")
        );
        for bad in [
            "example.com/x",
            "http://",
            "http://:80/",
            "http://h:0/",
            "http://h:/",
            "http://h:8o/",
            "http://u:p@h/",
            "http://h/#frag",
            "http://h/a b",
            "http://::1/",
            "http://[zz]/",
            "ws://h/",
        ] {
            assert!(HttpUrl::parse(bad).is_err(), "{bad} should be refused");
        }
    }

    #[test]
    fn http_port_differs_from_server_port() {
        fails(
            "server.port: 8443\nsessiongate.http-port: 8443\n",
            "sessiongate.http-port",
            "must differ from server.port",
        );
        let c = load("server.port: 8443\nsessiongate.http-port: 8080\n");
        assert_eq!(c.gateway.http_port, Some(8080));
    }

    #[test]
    fn ssl_rules() {
        assert!(
            load("server.ssl.enabled: false\nserver.ssl.certificate: /x\n")
                .server
                .ssl
                .is_none()
        );
        let c = load("server.ssl:\n  certificate: /c.pem\n  certificate-private-key: /k.pem\n");
        let ssl = c.server.ssl.unwrap();
        assert_eq!(ssl.certificate, PathBuf::from("/c.pem"));
        assert_eq!(ssl.certificate_private_key, PathBuf::from("/k.pem"));
        fails(
            "server.ssl.enabled: true\nserver.ssl.certificate: /c.pem\n",
            "server.ssl.certificate-private-key",
            "required",
        );
        fails(
            "server.ssl.enabled: true\n",
            "server.ssl.certificate",
            "required",
        );
    }

    #[test]
    fn server_and_management() {
        let c = load(
            "server: {address: '::1', port: 0}\nmanagement.server: {address: 127.0.0.2, port: 9090}\nsessiongate.management-token: t0ken\n",
        );
        assert_eq!(c.server.address, "::1".parse::<IpAddr>().unwrap());
        assert_eq!(c.server.port, 0);
        assert_eq!(c.management.address, "127.0.0.2".parse::<IpAddr>().unwrap());
        assert_eq!(c.management.port, Some(9090));
        assert_eq!(c.management.token.as_deref(), Some("t0ken"));
    }

    const KEYCLOAK: &str = "
spring.security.oauth2.client:
  registration:
    keycloak:
      client-id: gateway
      client-secret: ${CLIENT_SECRET}
      scope: openid, profile,email
  provider:
    keycloak:
      issuer-uri: https://sso.example.com/realms/censhare
";

    #[test]
    fn oauth2_registration_and_provider() {
        let c = load(KEYCLOAK);
        let r = &c.oauth2.registrations[0];
        assert_eq!(r.id, "keycloak");
        assert_eq!(r.client_id, "gateway");
        assert_eq!(r.client_secret.as_deref(), Some("from-env"));
        assert_eq!(r.scope, ["openid", "profile", "email"]);
        assert_eq!(r.provider, "keycloak");
        assert_eq!(
            r.client_authentication_method,
            ClientAuthMethod::ClientSecretBasic
        );
        assert_eq!(r.authorization_grant_type, "authorization_code");
        let p = &c.oauth2.providers[0];
        assert_eq!(p.issuer_uri.as_ref().unwrap().host, "sso.example.com");
    }

    #[test]
    fn oauth2_rules() {
        let public = load(
            "spring.security.oauth2.client.registration.google: {client-id: x, scope: [openid]}\n",
        );
        let r = &public.oauth2.registrations[0];
        assert_eq!(r.client_authentication_method, ClientAuthMethod::None);
        assert_eq!(public.oauth2.providers[0].id, "google");
        let post = load(&format!(
            "{KEYCLOAK}spring.security.oauth2.client.registration.keycloak.client-authentication-method: post\n"
        ));
        assert_eq!(
            post.oauth2.registrations[0].client_authentication_method,
            ClientAuthMethod::ClientSecretPost
        );
        let reg = "spring.security.oauth2.client.registration.kc";
        fails(
            &format!("{reg}: {{client-id: a, client-secret: s}}\n"),
            &format!("{reg}.provider"),
            "not defined",
        );
        fails(
            &format!("{KEYCLOAK}{reg}: {{client-id: a, client-secret: b, provider: keycloak, authorization-grant-type: client_credentials}}\n"),
            &format!("{reg}.authorization-grant-type"),
            "authorization_code",
        );
        fails(
            &format!("{KEYCLOAK}{reg}: {{client-secret: b, provider: keycloak}}\n"),
            &format!("{reg}.client-id"),
            "required",
        );
        fails(
            &format!("{KEYCLOAK}{reg}: {{client-id: a, provider: keycloak, client-authentication-method: basic}}\n"),
            &format!("{reg}.client-secret"),
            "required",
        );
        fails(
            &format!("{KEYCLOAK}{reg}: {{client-id: a, provider: keycloak, client-secert: b}}\n"),
            &format!("{reg}.client-secert"),
            "did you mean",
        );
        fails(
            "spring.security.oauth2.client.provider.kc: {jwk-set-uri: 'https://x/'}\n",
            "spring.security.oauth2.client.provider.kc.issuer-uri",
            "required unless",
        );
    }

    const ROUTES: &str = "spring.cloud.gateway.routes";

    fn routes_yaml(body: &str) -> String {
        format!("{ROUTES}:\n{body}")
    }

    #[test]
    fn routes_shortcut_form() {
        let c = load(&routes_yaml(
            "
  - id: api
    uri: http://127.0.0.1:9000/ignored
    order: -1
    predicates:
      - Path=/a/**, /b/*
      - Host=**.example.com
      - Method=get,POST
    filters:
      - StripPrefix=1
      - PrefixPath=/api/
      - AddRequestHeader=X-Name, a, b
      - SetRequestHeader=X-Other, v
      - RemoveRequestHeader=Cookie
  - id: bc
    uri: http://127.0.0.1:8080
    predicates: [Path=/backchannel/logout]
    filters: [BackchannelLogout]
",
        ));
        let api = &c.routes[0];
        assert_eq!((api.id.as_str(), api.order), ("api", -1));
        assert_eq!(
            api.predicates,
            [
                Predicate::Path(vec!["/a/**".into(), "/b/*".into()]),
                Predicate::Host(vec!["**.example.com".into()]),
                Predicate::Method(vec!["GET".into(), "POST".into()]),
            ]
        );
        assert_eq!(
            api.filters,
            [
                Filter::StripPrefix(1),
                Filter::PrefixPath("/api".into()),
                Filter::AddRequestHeader("X-Name".into(), "a, b".into()),
                Filter::SetRequestHeader("X-Other".into(), "v".into()),
                Filter::RemoveRequestHeader("Cookie".into()),
            ]
        );
        assert_eq!(c.routes[1].filters, [Filter::BackchannelLogout]);
        assert_eq!(c.routes[1].order, 0);
    }

    #[test]
    fn routes_expanded_form() {
        let c = load(&routes_yaml(
            "
  - id: api
    uri: https://backend
    predicates:
      - name: Path
        args: {patterns: [/a/**, /b]}
      - name: Method
        args:
          methods: GET
    filters:
      - name: StripPrefix
        args: {parts: 2}
      - name: AddRequestHeader
        args: {name: X-A, value: 'x, y'}
      - name: RemoveRequestHeader
        args: {name: X-B}
      - name: PrefixPath
        args: {prefix: /p}
",
        ));
        let r = &c.routes[0];
        assert_eq!(r.uri.port, 443);
        assert_eq!(
            r.predicates,
            [
                Predicate::Path(vec!["/a/**".into(), "/b".into()]),
                Predicate::Method(vec!["GET".into()])
            ]
        );
        assert_eq!(
            r.filters,
            [
                Filter::StripPrefix(2),
                Filter::AddRequestHeader("X-A".into(), "x, y".into()),
                Filter::RemoveRequestHeader("X-B".into()),
                Filter::PrefixPath("/p".into()),
            ]
        );
    }

    #[test]
    fn route_errors_name_the_entry() {
        let r = |body: &str| {
            routes_yaml(&format!("  - id: a\n    uri: http://a\n  - id: b\n    uri: http://b\n  - id: c\n    uri: http://c\n{body}"))
        };
        fails(
            &r("    filters: [StripPrefixx=1]\n"),
            "spring.cloud.gateway.routes[2].filters[0]",
            "did you mean `StripPrefix`?",
        );
        fails(
            &r("    predicates: [Paths=/a]\n"),
            "spring.cloud.gateway.routes[2].predicates[0]",
            "did you mean `Path`?",
        );
        fails(
            &r("    filters: [Frobnicate]\n"),
            "spring.cloud.gateway.routes[2].filters[0]",
            "known: StripPrefix",
        );
        fails(
            &r("    predicates: ['Path=/a,b']\n"),
            "spring.cloud.gateway.routes[2].predicates[0][1]",
            "start with `/`",
        );
        fails(
            &r("    predicates: ['Path=/a/**/b']\n"),
            "spring.cloud.gateway.routes[2].predicates[0][0]",
            "last segment",
        );
        fails(
            &r("    predicates: ['Host=a.com:80']\n"),
            "spring.cloud.gateway.routes[2].predicates[0][0]",
            "port",
        );
        fails(
            &r("    predicates: ['Method=GE T']\n"),
            "spring.cloud.gateway.routes[2].predicates[0][0]",
            "method",
        );
        fails(
            &r("    predicates: ['Path=']\n"),
            "spring.cloud.gateway.routes[2].predicates[0]",
            "at least one",
        );
        fails(
            &r("    filters: ['AddRequestHeader=X Y, v']\n"),
            "spring.cloud.gateway.routes[2].filters[0]",
            "header name",
        );
        fails(
            &r("    filters: [\"SetRequestHeader=X, a\\r\\nEvil: 1\"]\n"),
            "spring.cloud.gateway.routes[2].filters[0]",
            "control character",
        );
        fails(
            &r("    filters: [AddRequestHeader=X]\n"),
            "spring.cloud.gateway.routes[2].filters[0]",
            "expects name, value",
        );
        fails(
            &r("    filters: [StripPrefix=x]\n"),
            "spring.cloud.gateway.routes[2].filters[0]",
            "integer",
        );
        fails(
            &r("    filters: [StripPrefix]\n"),
            "spring.cloud.gateway.routes[2].filters[0]",
            "expects parts",
        );
        fails(
            &r("    filters: [PrefixPath=api]\n"),
            "spring.cloud.gateway.routes[2].filters[0]",
            "/api",
        );
        fails(
            &r("    filters: [BackchannelLogout=1]\n"),
            "spring.cloud.gateway.routes[2].filters[0]",
            "no arguments",
        );
        fails(
            &r("    filters: [{name: StripPrefix, args: {part: 1}}]\n"),
            "spring.cloud.gateway.routes[2].filters[0].args.part",
            "did you mean `spring.cloud.gateway.routes[2].filters[0].args.parts`?",
        );
        fails(
            &r("    filters: [{nme: StripPrefix}]\n"),
            "spring.cloud.gateway.routes[2].filters[0].nme",
            "did you mean",
        );
        fails(
            &r("    metadata: {a: 1}\n"),
            "spring.cloud.gateway.routes[2].metadata",
            "unknown key",
        );
        fails(
            &r("    order: x\n"),
            "spring.cloud.gateway.routes[2].order",
            "integer",
        );
        fails(
            &routes_yaml("  - uri: http://a\n"),
            "spring.cloud.gateway.routes[0].id",
            "required",
        );
        fails(
            &routes_yaml("  - id: a\n"),
            "spring.cloud.gateway.routes[0].uri",
            "required",
        );
        fails(
            &routes_yaml("  - id: a\n    uri: lb://svc\n"),
            "spring.cloud.gateway.routes[0].uri",
            "http",
        );
        fails(
            &routes_yaml("  - {id: a, uri: 'http://a'}\n  - {id: a, uri: 'http://b'}\n"),
            "spring.cloud.gateway.routes[1].id",
            "twice",
        );
        fails(
            "spring.cloud.gateway.routes: x\n",
            "spring.cloud.gateway.routes",
            "list of routes",
        );
    }

    #[test]
    fn logging_levels_keep_file_order() {
        let c = load(
            "logging.level.com.censhare.core.cloudgateway.LogoutProcessor: TRACE\nlogging:\n  level:\n    root: info\n    com.censhare.foo: debug\n    org:\n      springframework: WARN\n",
        );
        let levels: Vec<(&str, LogLevel)> = c
            .logging
            .levels
            .iter()
            .map(|(n, l)| (n.as_str(), *l))
            .collect();
        assert_eq!(
            levels,
            [
                (
                    "com.censhare.core.cloudgateway.LogoutProcessor",
                    LogLevel::Trace
                ),
                ("root", LogLevel::Info),
                ("com.censhare.foo", LogLevel::Debug),
                ("org.springframework", LogLevel::Warn),
            ]
        );
    }

    #[test]
    fn sessiongate_knobs() {
        let c = load(
            "
sessiongate:
  workers: 3
  driver: legacy
  max-body-bytes: 1048576
  keep-alive-after-disconnect-sec: 0
  session-max-lifetime-sec: 86400
  trusted-proxies: [10.0.0.1, '::1']
  audit-log: stdout
  post-logout-redirect-uri: /goodbye
  upstream-pool-size: 0
  access-log: true
",
        );
        let g = &c.gateway;
        assert_eq!(g.workers, 3);
        assert_eq!(g.driver, Driver::Legacy);
        assert_eq!(g.max_body_bytes, 1 << 20);
        assert_eq!(g.keep_alive_after_disconnect, None);
        assert_eq!(g.session_max_lifetime, Some(Duration::from_secs(86_400)));
        assert_eq!(g.trusted_proxies.len(), 2);
        assert_eq!(g.audit_log.as_deref(), Some("stdout"));
        assert_eq!(g.post_logout_redirect_uri.as_deref(), Some("/goodbye"));
        assert_eq!(g.upstream_pool_size, 0);
        assert!(g.access_log);
        let c = load("sessiongate.keep-alive-after-disconnect-sec: 180\n");
        assert_eq!(
            c.gateway.keep_alive_after_disconnect,
            Some(Duration::from_secs(180))
        );
    }

    fn shipped(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("config")
            .join(name)
    }

    #[test]
    fn shipped_files_load() {
        let quickstart = load_file(&shipped("application.yml")).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(quickstart.server.port, 8080);
        assert!(quickstart.routes.iter().any(|r| r.id == "demo"));
        // The quickstart logs users in at the demo provider that quickstart/run.sh starts.
        assert_eq!(quickstart.oauth2.registrations[0].id, "demo");
        assert_eq!(quickstart.oauth2.registrations[0].provider, "demo");
        let yaml = std::fs::read_to_string(shipped("examples/censhare-cloud-gateway.yml")).unwrap();
        let censhare = load_str_with(&yaml, &|_| None).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            censhare.oauth2.registrations[0].client_secret.as_deref(),
            Some("change-me")
        );
        assert_eq!(censhare.logging.levels.len(), 3);
        let bad = load_file(&shipped("examples/bad-unknown-cg-key.yml"))
            .unwrap_err()
            .to_string();
        assert!(
            bad.contains("cg.sessionTimeoutSecs") && bad.contains("did you mean"),
            "{bad}"
        );
    }

    #[test]
    fn missing_file_names_the_path() {
        let err = load_file(Path::new("/nonexistent/application.yml")).unwrap_err();
        assert!(
            err.to_string().contains("/nonexistent/application.yml"),
            "{err}"
        );
    }
}
