//! OpenID Connect Back-Channel Logout 1.0 (final, errata 1): logout-token validation and
//! the replay guard. Pure functions of bytes and `now`, so they are fuzzed and tested alone;
//! the gate wires them to the route with the `BackchannelLogout` filter.
//!
//! Validation order (spec §2.6): signature with the provider's keys (never `alg: none`, the
//! key's algorithm must match), `iss`, `aud` contains our client id, `iat` (and `exp` when
//! present) within the skew, `sub` or `sid`, the back-channel `events` member, no `nonce`,
//! then `jti` not seen within the token's validity.

use hashbrown::HashMap;

use crate::jwt::{self, JwkSet, JwtError, Validation};

/// The censhare `BackchannelLogoutGatewayFilterFactory` maps onto this target.
pub const LOG: &str = "sessiongate::backchannel";
pub const EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";
/// A form body larger than this is not a logout token.
pub const MAX_BODY: usize = 64 * 1024;

/// What a valid logout token says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogoutToken {
    pub sub: Option<String>,
    pub sid: Option<String>,
    pub jti: String,
    pub iat: u64,
    /// When the replay guard may forget the `jti`.
    pub forget_after: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum LogoutError {
    #[error("no logout_token in the request body")]
    MissingToken,
    #[error("logout token: {0}")]
    Jwt(#[from] JwtError),
    #[error("logout token: typ must be logout+jwt or JWT")]
    WrongTyp,
    #[error("logout token: events lacks the back-channel logout member")]
    MissingEvent,
    #[error("logout token: nonce is forbidden")]
    NoncePresent,
    #[error("logout token: neither sub nor sid")]
    NoSubject,
    #[error("logout token: jti missing")]
    NoJti,
    #[error("logout token: iat missing")]
    NoIat,
    #[error("logout token: iat too old and no exp")]
    TooOld,
    #[error("logout token: jti already used")]
    Replayed,
    #[error("identity provider keys not loaded yet")]
    NotReady,
}

impl LogoutError {
    /// The `error` member of the 400 answer (spec §2.8).
    pub fn code(&self) -> &'static str {
        "invalid_request"
    }
}

/// Settings for validation.
#[derive(Debug, Clone)]
pub struct Policy {
    pub issuer: String,
    pub client_id: String,
    pub leeway_secs: u64,
    /// Without `exp` (older Keycloak), an `iat` older than this is refused.
    pub max_age_secs: u64,
}

/// Extracts `logout_token` from an `application/x-www-form-urlencoded` body.
pub fn token_from_form(body: &[u8]) -> Result<String, LogoutError> {
    crate::http::form::form_value(body, "logout_token")
        .filter(|t| !t.is_empty())
        .ok_or(LogoutError::MissingToken)
}

/// Validates a logout token (everything but replay).
pub fn validate(
    token: &str,
    keys: &JwkSet,
    policy: &Policy,
    now: u64,
) -> Result<LogoutToken, LogoutError> {
    let mut v = Validation::new(policy.issuer.clone(), policy.client_id.clone());
    v.leeway_secs = policy.leeway_secs;
    v.require_exp = false;
    let claims = jwt::verify(token, keys, &v, now)?;
    if let Some(typ) = claims.typ() {
        let t = typ.to_ascii_lowercase();
        if t != "logout+jwt" && t != "application/logout+jwt" && t != "jwt" {
            return Err(LogoutError::WrongTyp);
        }
    }
    let has_event = claims
        .events()
        .and_then(|e| e.as_object())
        .is_some_and(|e| e.get(EVENT).is_some_and(|m| m.is_object()));
    if !has_event {
        return Err(LogoutError::MissingEvent);
    }
    if claims.get("nonce").is_some() {
        return Err(LogoutError::NoncePresent);
    }
    let sub = claims.sub().map(str::to_owned);
    let sid = claims.sid().map(str::to_owned);
    if sub.is_none() && sid.is_none() {
        return Err(LogoutError::NoSubject);
    }
    let jti = claims.jti().ok_or(LogoutError::NoJti)?.to_owned();
    let iat = claims.iat().ok_or(LogoutError::NoIat)?;
    let forget_after = match claims.exp() {
        Some(exp) => exp.saturating_add(policy.leeway_secs),
        None => {
            if now.saturating_sub(iat) > policy.max_age_secs.saturating_add(policy.leeway_secs) {
                return Err(LogoutError::TooOld);
            }
            // Still accepted at exactly iat + max age + leeway, so the guard must hold the
            // jti through that second: it forgets at the first second the token is refused.
            iat.saturating_add(policy.max_age_secs)
                .saturating_add(policy.leeway_secs)
                .saturating_add(1)
        }
    };
    Ok(LogoutToken {
        sub,
        sid,
        jti,
        iat,
        forget_after,
    })
}

/// Remembers every accepted `jti` until its token could no longer be valid.
#[derive(Debug, Default)]
pub struct ReplayGuard {
    seen: HashMap<String, u64>,
    next_prune: u64,
}

/// Entries kept at most, so a flood of valid-looking tokens cannot grow memory without bound.
const GUARD_MAX: usize = 1_000_000;

impl ReplayGuard {
    /// Records the token's `jti`; `Err(Replayed)` if it was seen while still valid.
    pub fn admit(&mut self, t: &LogoutToken, now: u64) -> Result<(), LogoutError> {
        if now >= self.next_prune || self.seen.len() >= GUARD_MAX {
            self.seen.retain(|_, &mut until| until > now);
            self.next_prune = now + 60;
        }
        match self.seen.get(&t.jti) {
            Some(&until) if until > now => Err(LogoutError::Replayed),
            _ => {
                self.seen.insert(t.jti.clone(), t.forget_after);
                Ok(())
            }
        }
    }

    pub fn len(&self) -> usize {
        self.seen.len()
    }

    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_extraction() {
        assert_eq!(token_from_form(b"logout_token=a.b.c").unwrap(), "a.b.c");
        assert_eq!(
            token_from_form(b"x=1&logout_token=a%2Eb.c").unwrap(),
            "a.b.c"
        );
        assert_eq!(token_from_form(b"x=1"), Err(LogoutError::MissingToken));
        assert_eq!(
            token_from_form(b"logout_token="),
            Err(LogoutError::MissingToken)
        );
    }

    #[test]
    fn replay_guard() {
        let mut g = ReplayGuard::default();
        let t = LogoutToken {
            sub: Some("u".into()),
            sid: None,
            jti: "j1".into(),
            iat: 100,
            forget_after: 200,
        };
        assert!(g.admit(&t, 100).is_ok());
        assert_eq!(g.admit(&t, 150), Err(LogoutError::Replayed));
        // Past its validity the token itself would be refused; the guard may forget it.
        assert!(g.admit(&t, 201).is_ok());
    }
}
