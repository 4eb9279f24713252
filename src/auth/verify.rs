//! JWTs checked against the provider's keys: API clients' Bearer tokens and ID tokens at
//! login, through the worker's cache of verdicts. A token signed with a key id the gateway
//! does not know yet makes it ask the provider thread for the keys again and wait (bounded)
//! for them, so a key rotation at the provider does not refuse valid tokens.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use crate::jwt::{self, Claims, JwtError, Validation, VerifyCache};
use crate::metrics::Metrics;
use crate::oidc::ProviderState;
use crate::provider::RefreshRequester;
use crate::signal::Signal;

use super::Gate;

/// How long a request with an unknown `kid` waits for the refetched keys (the provider
/// thread refetches at most every 5 s).
const KID_WAIT: Duration = Duration::from_secs(7);
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

impl Gate {
    fn validation(&self, p: &ProviderState) -> Validation {
        let mut v = Validation::new(p.meta.issuer.clone(), self.reg.client_id.clone());
        v.leeway_secs = self.settings.leeway_secs;
        v
    }

    /// Verifies a JWT against the provider keys, through the per-worker cache.
    fn verify(&self, p: &ProviderState, token: &str) -> Result<Rc<Claims>, JwtError> {
        let now = self.clock.unix_secs();
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
        let claims = jwt::verify(token, &p.jwks, &self.validation(p), now);
        if claims.is_err() {
            Metrics::inc(&self.metrics.jwt_failures);
        }
        let claims = Rc::new(claims?);
        keys.cache.borrow_mut().insert(token, claims.clone(), now);
        Ok(claims)
    }

    /// Verifies like [`Gate::verify`]; on an unknown `kid` (the provider rotated its keys)
    /// asks for a JWKS refetch and waits, bounded, for the new keys before deciding.
    pub(super) async fn verify_fresh(&self, token: &str) -> Result<Rc<Claims>, JwtError> {
        let Some(p) = self.keys.current() else {
            return Err(JwtError::UnknownKid);
        };
        match self.verify(&p, token) {
            Err(JwtError::UnknownKid) => {}
            other => return other,
        }
        self.keys.request_refetch();
        let newer = async {
            loop {
                self.keys.changed().wait().await;
                if let Some(n) = self.keys.current().filter(|n| n.generation != p.generation) {
                    return n;
                }
            }
        };
        match monoio::time::timeout(KID_WAIT, newer).await {
            Ok(newer) => self.verify(&newer, token),
            Err(_) => Err(JwtError::UnknownKid),
        }
    }
}
