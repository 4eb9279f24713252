//! JWTs checked against the provider's keys: API clients' Bearer tokens and ID tokens at
//! login, through the worker's cache of verdicts. A token signed with a key id the gateway
//! does not know yet makes it ask the provider thread for the keys again and wait (bounded)
//! for them, so a key rotation at the provider does not refuse valid tokens.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use crate::jwt::{self, Claims, JwtError, Validation, VerifyCache};
use crate::metrics::Metrics;
use crate::oidc::ProviderState;
use crate::provider::RefreshRequester;
use crate::signal::Signal;

use super::Gate;

/// How long a request with an unknown `kid` waits for the refetched keys (the provider
/// thread refetches at most every 5 s, and answers every refetch asked for).
const KID_WAIT: Duration = Duration::from_secs(7);
/// After a refetch that did not bring the `kid`, unknown key ids are refused at once for
/// this long: the provider thread would not fetch again sooner anyway.
const KID_MISS_WINDOW_MS: u64 = 5_000;
/// Verdicts cached per worker.
const CACHE_ENTRIES: usize = 4096;

/// The provider's metadata and keys as this worker last heard of them.
pub struct Keys {
    provider: RefCell<Option<Arc<ProviderState>>>,
    cache: RefCell<VerifyCache>,
    cache_generation: Cell<u64>,
    refresher: RefreshRequester,
    /// Fires when new provider state arrives (then is replaced by a fresh one).
    changed: RefCell<Signal>,
}

impl Keys {
    pub fn new(refresher: RefreshRequester) -> Keys {
        Keys {
            provider: RefCell::new(None),
            cache: RefCell::new(VerifyCache::new(CACHE_ENTRIES)),
            cache_generation: Cell::new(0),
            refresher,
            changed: RefCell::new(Signal::new()),
        }
    }

    pub fn current(&self) -> Option<Arc<ProviderState>> {
        self.provider.borrow().clone()
    }

    pub fn set(&self, state: Arc<ProviderState>) {
        *self.provider.borrow_mut() = Some(state);
        let old = self.changed.replace(Signal::new());
        old.trigger();
    }

    /// Asks the provider thread to fetch the keys again (rate-limited there).
    pub fn request_refetch(&self) {
        self.refresher.request();
    }

    fn changed(&self) -> Signal {
        self.changed.borrow().clone()
    }
}

/// What a token is checked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// The ID token of a login: audience our client id; verified once, not cached.
    Login,
    /// An API client's own Bearer token: an access token (never an ID or logout token) for
    /// `sessiongate.api-audience` (default our client id); verdicts cached.
    Api,
}

/// Why a verified JWT is not an access token.
pub fn access_token_refusal(c: &Claims) -> Option<&'static str> {
    // RFC 9068 access tokens say `at+jwt`; providers that type nothing send `JWT` or none.
    let typ_ok = c.typ().map_or(true, |t| {
        ["at+jwt", "application/at+jwt", "jwt"].contains(&t.to_ascii_lowercase().as_str())
    });
    if !typ_ok {
        return Some("not an access token (typ)");
    }
    // Only ID tokens carry these (OIDC Core §2, §3.1.3.6, §3.3.2.11); only logout tokens
    // carry `events` (OIDC Back-Channel Logout §2.4); Keycloak types its tokens in a claim.
    for claim in ["nonce", "at_hash", "c_hash", "events"] {
        if c.get(claim).is_some() {
            return Some("not an access token (ID or logout token)");
        }
    }
    match c.get("typ").and_then(|t| t.as_str()) {
        Some(t) if !t.eq_ignore_ascii_case("bearer") => Some("not an access token (typ claim)"),
        _ => None,
    }
}

impl Gate {
    fn validation(&self, p: &ProviderState, purpose: Purpose) -> Validation {
        let audience = match (purpose, &self.settings.api_audience) {
            (Purpose::Api, Some(a)) => a.clone(),
            _ => self.reg.client_id.clone(),
        };
        let mut v = Validation::new(p.meta.issuer.clone(), audience);
        v.leeway_secs = self.settings.leeway_secs;
        v
    }

    /// Verifies a JWT against the provider keys; API tokens through the per-worker cache.
    fn verify(
        &self,
        p: &ProviderState,
        token: &str,
        purpose: Purpose,
    ) -> Result<Rc<Claims>, JwtError> {
        let now = self.clock.unix_secs();
        if purpose == Purpose::Login {
            return jwt::verify(token, &p.jwks, &self.validation(p, purpose), now).map(Rc::new);
        }
        let keys = &self.keys;
        if keys.cache_generation.get() != p.generation {
            // Keys changed: a cached verdict under the old keys must not survive.
            keys.cache.borrow_mut().clear();
            keys.cache_generation.set(p.generation);
        }
        if let Some(c) = keys.cache.borrow_mut().get(token, now) {
            Metrics::inc(&self.metrics.jwt_cache_hits);
            return Ok(c);
        }
        Metrics::inc(&self.metrics.jwt_verifications);
        let claims = jwt::verify(token, &p.jwks, &self.validation(p, purpose), now);
        if claims.is_err() {
            Metrics::inc(&self.metrics.jwt_failures);
        }
        let claims = Rc::new(claims?);
        keys.cache.borrow_mut().insert(token, claims.clone(), now);
        Ok(claims)
    }

    /// Verifies like [`Gate::verify`]; on an unknown `kid` (the provider rotated its keys)
    /// asks for a JWKS refetch and waits, bounded, for the new keys before deciding.
    pub(super) async fn verify_fresh(
        &self,
        token: &str,
        purpose: Purpose,
    ) -> Result<Rc<Claims>, JwtError> {
        let Some(p) = self.keys.current() else {
            return Err(JwtError::UnknownKid);
        };
        match self.verify(&p, token, purpose) {
            Err(JwtError::UnknownKid) => {}
            other => return other,
        }
        // Gateway-wide: every worker meets the same crowd.
        let miss_until = &self.shared.unknown_kid_until_ms;
        if self.clock.unix_ms() < miss_until.load(Ordering::Relaxed) {
            return Err(JwtError::UnknownKid);
        }
        // Every request that meets the unknown key waits for the same one refetch.
        self.keys.request_refetch();
        let changed = self.keys.changed();
        let verdict = match monoio::time::timeout(KID_WAIT, changed.wait()).await {
            Ok(()) => match self.keys.current() {
                Some(now) => self.verify(&now, token, purpose),
                None => Err(JwtError::UnknownKid),
            },
            Err(_) => Err(JwtError::UnknownKid),
        };
        if matches!(verdict, Err(JwtError::UnknownKid)) {
            miss_until.store(self.clock.unix_ms() + KID_MISS_WINDOW_MS, Ordering::Relaxed);
        }
        verdict
    }
}
