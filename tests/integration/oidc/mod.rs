//! OpenID Connect login, end to end: a real provider (npm `oidc-provider`, started by
//! `tests/oidc/provider.js`), the gateway, a recording backend, and a scripted browser.
//!
//! Support: `provider` (the provider process, its keys and events, JWT checks with `ring`),
//! `browser` (cookie jar, redirects, the provider's forms, the whole code flow), `stack`
//! (provider + backend + gateway wired together on fresh ports), `listener` (receivers of
//! the gateway's outgoing calls, with arrival times and scripted answers).
//! Scenarios: `login` (redirect, callback, cookie, refusals, forwarding), `bearer` (API
//! clients with their own tokens, key rotation), `logout` (user and back-channel logout),
//! `expiry` (idle timeout, absolute lifetime, maxSessions, token refresh), `banner` (access
//! banner), `load` (a thousand parallel logins), `backchannel` and `backchannel_refused`
//! (logout tokens from the provider, valid and invalid), `dispatcher` (retries and lost
//! calls), `full_logout` (`expiredSessionFullLogout`), `fresh` (fresh-token listeners),
//! `operator_log` (censhare logger names at TRACE), `websocket_session` (WebSockets closed
//! with their session, keep-alive after disconnect), `admin` (management listener: health,
//! readiness, metrics, sessions admin API), `check_lifespan` (`sessiongate check` reading the
//! access-token lifespan from the provider), `reload` (SIGHUP with new listener URLs),
//! `hardening_floods` (a back-channel logout body trickled in), `snapshot` (sessions kept
//! over a restart by `sessiongate.session-snapshot`), `cluster` (three gateways sharing one
//! Redis session store; `cluster_redis` reads that Redis raw).
//!
//! Every scenario starts its own provider, backend and gateway, so they run in parallel.
//! They wait with deadlines; the only sleeps wait out a token or session lifetime.

pub(crate) mod browser;
mod listener;
pub(crate) mod provider;
pub(crate) mod stack;

mod admin;
mod backchannel;
mod backchannel_refused;
mod banner;
mod bearer;
mod check_lifespan;
mod cluster;
mod cluster_redis;
mod dispatcher;
mod expiry;
mod fresh;
mod full_logout;
mod hardening;
mod hardening_floods;
mod load;
mod login;
mod logout;
mod metrics;
mod operator_log;
mod pages;
mod reload;
mod shared_store;
mod snapshot;
mod websocket_session;
