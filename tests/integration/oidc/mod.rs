//! OpenID Connect login, end to end: a real provider (npm `oidc-provider`, started by
//! `tests/oidc/provider.js`), the gateway, a recording backend, and a scripted browser.
//!
//! Support: `provider` (the provider process, its keys and events, JWT checks with `ring`),
//! `browser` (cookie jar, redirects, the provider's forms, the whole code flow), `stack`
//! (provider + backend + gateway wired together on fresh ports).
//! Scenarios: `login` (redirect, callback, cookie, refusals, forwarding), `bearer` (API
//! clients with their own tokens, key rotation), `logout` (user and back-channel logout),
//! `expiry` (idle timeout, absolute lifetime, maxSessions, token refresh), `banner` (access
//! banner), `load` (a thousand parallel logins).
//!
//! Every scenario starts its own provider, backend and gateway, so they run in parallel.
//! They wait with deadlines; the only sleeps wait out a token or session lifetime.

mod browser;
mod provider;
mod stack;

mod banner;
mod bearer;
mod expiry;
mod load;
mod login;
mod logout;
