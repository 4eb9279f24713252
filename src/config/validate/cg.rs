//! `cg.*`: the censhare Cloud Gateway's session, retry and listener keys, with its names and
//! defaults.

use super::number::{IntRule, COUNT, POSITIVE_SECS, SECS, TICK_MS};
use super::section::Section;
use crate::config::CgConfig;

pub(super) const CG_KEYS: &[&str] = &[
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
pub(super) fn cg(s: &Section) -> CgConfig {
    CgConfig {
        censhare_logout_url: s.take(s.url("censhareLogoutUrl")),
        expired_session_full_logout: s.take(s.bool("expiredSessionFullLogout", true)),
        session_timeout: s.take(s.secs("sessionTimeoutSec", POSITIVE_SECS, 1800)),
        session_check_interval: s.take(s.millis("sessionCheckIntervalMs", TICK_MS, 60_000)),
        max_sessions: s.take(s.int("maxSessions", IntRule::range(1, u64::MAX), 10_000)),
        use_secure_session_cookie: s.take(s.bool("useSecureSessionCookie", true)),
        max_retry_attempts: s.take(s.int("maxRetryAttempts", COUNT, 3)) as u32,
        min_retry_delay: s.take(s.secs("minRetryDelaySeconds", SECS, 5)),
        fresh_token_listeners: s.take(s.url_list("freshTokenListeners")),
        fresh_token_send_interval: s.take(s.millis("freshTokenSendIntervalMs", TICK_MS, 60_000)),
        logout_listeners: s.take(s.url_list("logoutListeners")),
    }
}
