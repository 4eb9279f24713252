//! A session's access token on the request path: handed out while it is fresh, refreshed
//! at the provider shortly before it expires (one refresh per session at a time; other
//! requests of the session wait for it), and the session ended when the provider refuses
//! the refresh token.

use std::rc::Rc;
use std::time::Duration;

use crate::metrics::Metrics;
use crate::oidc::{self, RefreshFailure, TokenResponse};
use crate::session::table::{Session, NEVER};
use crate::session::{EndReason, SessionId};
use crate::signal::Signal;

use super::{Gate, LOG};

/// Refresh this long before the access token expires, but never more than a third of its
/// lifetime (a fixed 60 s leeway on 60 s tokens would refresh on every request).
const REFRESH_LEEWAY_MS: u64 = 30_000;
/// How long a request waits for another request's refresh of its session.
const REFRESH_WAIT: Duration = Duration::from_secs(10);

impl Gate {
    /// Touches a session of this worker, refreshes its access token when due, and answers
    /// the token and whether the access banner was accepted; `None` when there is no such
    /// live session here (with the shared store, callers load a miss first: `Gate::held`).
    pub(super) async fn session_token(&self, id: &SessionId) -> Option<(Rc<str>, bool)> {
        let now = self.clock.now_ms();
        let refresh = {
            let mut store = self.store.borrow_mut();
            let s = store.touch(id, now)?;
            // With the shared store, also written back (a miss was loaded by the caller).
            self.note_use(id);
            if refresh_due(s, now) && !s.refresh_token.is_empty() && s.try_begin_refresh() {
                Some(s.refresh_token.to_string())
            } else if s.access_expires_ms > now || !s.refreshing {
                // The common case: one lookup, the token shared, not copied.
                return Some((s.access_token.clone(), s.banner_accepted));
            } else {
                None
            }
        };
        match refresh {
            Some(rt) => {
                self.refreshing.borrow_mut().insert(*id, Signal::new());
                match self.shared_store.is_some() {
                    true => self.refresh_shared(id, &rt).await,
                    false => self.refresh(id, &rt).await,
                }
                if let Some(done) = self.refreshing.borrow_mut().remove(id) {
                    done.trigger();
                }
            }
            None => {
                // Expired while another request refreshes it: wait for that refresh rather
                // than send a token the backend would refuse.
                let done = self.refreshing.borrow().get(id).cloned();
                if let Some(done) = done {
                    let _ = monoio::time::timeout(REFRESH_WAIT, done.wait()).await;
                }
            }
        }
        let store = self.store.borrow();
        let s = store.get(id)?;
        Some((s.access_token.clone(), s.banner_accepted))
    }

    /// Refreshes a session's tokens; a refused grant ends the session, a network error
    /// leaves it (the next request tries again).
    async fn refresh(&self, id: &SessionId, refresh_token: &str) {
        let Some(p) = self.keys.current() else {
            if let Some(s) = self.store.borrow_mut().get_mut(id) {
                s.refreshing = false;
            }
            return;
        };
        let started = std::time::Instant::now();
        let result = oidc::refresh(self.calls.client(), &p.meta, &self.reg, refresh_token).await;
        self.metrics
            .provider_call("token_refresh", started.elapsed());
        match result {
            Ok(t) => {
                let (now, unix_ms) = (self.clock.now_ms(), self.clock.unix_ms());
                if let Some(s) = self.store.borrow_mut().get_mut(id) {
                    store_tokens(s, t, now, unix_ms);
                    Metrics::inc(&self.metrics.refreshes);
                    tracing::debug!(target: LOG, session = %id.reference(), "access token refreshed");
                }
                self.save_shared_tokens(id).await;
            }
            Err(RefreshFailure::InvalidGrant(why)) => {
                tracing::info!(target: LOG, session = %id.reference(), why, "refresh refused; session ended");
                self.end_session(id, EndReason::RefreshRefused);
            }
            Err(RefreshFailure::Transient(why)) => {
                let now = self.clock.now_ms();
                if let Some(suppressed) = self.refresh_warnings.admit(now) {
                    tracing::warn!(target: LOG, session = %id.reference(), why, suppressed, "refresh failed; will retry");
                }
                if let Some(s) = self.store.borrow_mut().get_mut(id) {
                    s.refreshing = false;
                }
            }
        }
    }
}

impl Gate {
    /// A refresh with the shared store: one instance at a time refreshes a session (a
    /// rotated refresh token must never be used twice); the others wait for its new tokens.
    async fn refresh_shared(&self, id: &SessionId, refresh_token: &str) {
        let Some(sh) = &self.shared_store else {
            return;
        };
        match sh.store.lock_refresh(id).await {
            Ok(Some(lock)) => {
                // Another instance may have refreshed since this copy was loaded.
                if !self.adopt_newer_tokens(id).await {
                    let current = self
                        .store
                        .borrow()
                        .get(id)
                        .map(|s| s.refresh_token.to_string());
                    self.refresh(id, current.as_deref().unwrap_or(refresh_token))
                        .await;
                }
                sh.store.unlock_refresh(id, &lock).await;
            }
            Ok(None) => {
                let deadline = std::time::Instant::now() + REFRESH_WAIT;
                while std::time::Instant::now() < deadline {
                    monoio::time::sleep(Duration::from_millis(200)).await;
                    if self.adopt_newer_tokens(id).await {
                        break;
                    }
                }
            }
            // Redis away: keep the tokens there are (no refresh that could race another
            // instance's); the next request tries again.
            Err(_) => {}
        }
        if let Some(s) = self.store.borrow_mut().get_mut(id) {
            s.refreshing = false;
        }
    }

    /// Takes tokens another instance refreshed into this worker's copy; `true` when there
    /// were newer ones (or the session is gone, so there is nothing left to refresh).
    async fn adopt_newer_tokens(&self, id: &SessionId) -> bool {
        let Some(sh) = &self.shared_store else {
            return false;
        };
        let Ok(loaded) = sh.store.load(id, self.epoch()).await else {
            return false;
        };
        let Some(l) = loaded else {
            self.evict(id);
            return true;
        };
        if super::shared::cached_version(sh, id).is_some_and(|v| v >= l.version) {
            return false;
        }
        if let Some(s) = self.store.borrow_mut().get_mut(id) {
            s.access_token = l.session.access_token.clone();
            s.access_expires_ms = l.session.access_expires_ms;
            s.refresh_token = l.session.refresh_token.clone();
            s.refresh_expires_ms = l.session.refresh_expires_ms;
            s.id_token = l.session.id_token.clone();
        }
        super::shared::keep_version(sh, id, l.version);
        true
    }

    /// Writes a refreshed session's tokens to the shared store.
    async fn save_shared_tokens(&self, id: &SessionId) {
        let Some(sh) = &self.shared_store else {
            return;
        };
        let epoch = self.epoch();
        let sealed = self
            .store
            .borrow()
            .get(id)
            .map(|s| sh.store.seal_tokens(s, epoch));
        let Some((key, sealed)) = sealed else {
            return;
        };
        // Tried a few times while the refresh lock is still ours: an instance that refreshed
        // with the old, rotated refresh token would have the grant revoked.
        for attempt in 0..3 {
            match sh.store.save_tokens(&key, &sealed).await {
                Ok(Some(v)) => return super::shared::keep_version(sh, id, v),
                Ok(None) => {
                    self.evict(id);
                    return;
                }
                Err(e) if attempt == 2 => {
                    tracing::warn!(target: LOG, session = %id.reference(), error = %e, "refreshed tokens not stored; another instance may refresh with the old refresh token")
                }
                Err(_) => monoio::time::sleep(Duration::from_millis(200)).await,
            }
        }
    }
}

/// At most one WARN per [`Throttle::EVERY_MS`] for a failure that repeats on every request
/// (a provider that is down), saying how many were left out.
#[derive(Default)]
pub struct Throttle {
    last_ms: std::cell::Cell<Option<u64>>,
    suppressed: std::cell::Cell<u64>,
}

impl Throttle {
    pub const EVERY_MS: u64 = 10_000;

    /// `Some(suppressed since the last one)` when a line may be logged at `now`.
    pub fn admit(&self, now: u64) -> Option<u64> {
        match self.last_ms.get() {
            Some(last) if now.saturating_sub(last) < Self::EVERY_MS => {
                self.suppressed.set(self.suppressed.get() + 1);
                None
            }
            _ => {
                self.last_ms.set(Some(now));
                Some(self.suppressed.replace(0))
            }
        }
    }
}

/// A refresh's answer into the session.
fn store_tokens(s: &mut Session, t: TokenResponse, now: u64, unix_ms: u64) {
    s.refreshing = false;
    s.access_expires_ms = access_expiry(&t, now, unix_ms);
    s.access_token = t.access_token.into();
    if let Some(r) = t.refresh_token {
        // Rotation: the old refresh token is dead now; never send it again.
        s.refresh_token = r.into_boxed_str();
    }
    if let Some(i) = t.id_token {
        s.id_token = i.into_boxed_str();
    }
}

/// When the access token expires on the session clock (`now` ms; `unix_ms` the wall clock
/// at the same instant), from `expires_in` (RFC 6749 §5.1) and the token's own `exp`,
/// whichever is first; without either the token is used until the session's other limits
/// end it.
pub fn access_expiry(t: &TokenResponse, now: u64, unix_ms: u64) -> u64 {
    let by_expires_in = t
        .expires_in
        .filter(|&e| e > 0)
        .map(|e| now.saturating_add(e.saturating_mul(1000)))
        .unwrap_or(NEVER);
    // A JWT access token's own `exp` is what the backend checks; `expires_in` counts from
    // when the provider answered, up to a second later. (The token came straight from the
    // token endpoint, so reading it unverified is safe.)
    let by_exp = jwt_exp(&t.access_token)
        .map(|exp| now.saturating_add(exp.saturating_mul(1000).saturating_sub(unix_ms)));
    by_exp.map_or(by_expires_in, |e| e.min(by_expires_in))
}

/// The `exp` claim of a JWT, read without verification.
fn jwt_exp(token: &str) -> Option<u64> {
    use base64::Engine as _;
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .ok()?;
    let v: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    v.get("exp")?.as_u64()
}

/// The access token is due for refresh at `now`: within the leeway of its expiry, the
/// leeway capped at a third of the token's remaining life since the session's last use.
pub fn refresh_due(s: &Session, now: u64) -> bool {
    if s.access_expires_ms == NEVER {
        return false;
    }
    let life = s
        .access_expires_ms
        .saturating_sub(s.last_access_ms().min(now));
    let leeway = REFRESH_LEEWAY_MS.min(life / 3).max(1000);
    now + leeway >= s.access_expires_ms
}
