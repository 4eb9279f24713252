//! The verified claims of a token ([`Claims`]) and the checks every token must pass
//! ([`Validation`]).
//!
//! The claims are kept as the JSON object they came as (`serde_json`), so any claim is
//! reachable; the registered ones are type-checked once when the token is parsed, so a typed
//! accessor never meets, say, an `exp` that is a string: such a token is refused
//! ([`JwtError::InvalidClaim`]) instead of having the claim silently read as absent.
//!
//! Time is always passed in (`now`, seconds since the epoch); nothing here reads a clock.
//! Arithmetic with the leeway saturates, so neither a huge leeway nor a huge or zero claim
//! value can wrap around into acceptance.

use super::{Header, JwtError};
use serde_json::{Map, Value};

/// The claims of a verified token, plus its header.
#[derive(Debug, Clone, PartialEq)]
pub struct Claims {
    header: Header,
    map: Map<String, Value>,
    exp: Option<u64>,
    nbf: Option<u64>,
    iat: Option<u64>,
}

/// String-valued registered claims (RFC 7519 §4.1, OIDC Core §2, Back-Channel Logout §2.4).
const STRING_CLAIMS: [&str; 6] = ["iss", "sub", "azp", "sid", "nonce", "jti"];

impl Claims {
    /// Parses the decoded payload of a JWS. `header` is the token's, already parsed.
    pub(crate) fn from_payload(payload: &[u8], header: Header) -> Result<Claims, JwtError> {
        if payload.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
            return Err(JwtError::Malformed);
        }
        // Duplicate member names: serde_json keeps the last one, which RFC 7519 §4 allows.
        let map: Map<String, Value> =
            serde_json::from_slice(payload).map_err(|_| JwtError::Malformed)?;
        for name in STRING_CLAIMS {
            if map.get(name).is_some_and(|v| !v.is_string()) {
                return Err(JwtError::InvalidClaim);
            }
        }
        match map.get("aud") {
            None | Some(Value::String(_)) => {}
            Some(Value::Array(items)) if items.iter().all(Value::is_string) => {}
            Some(_) => return Err(JwtError::InvalidClaim),
        }
        Ok(Claims {
            exp: numeric_date(&map, "exp")?,
            nbf: numeric_date(&map, "nbf")?,
            iat: numeric_date(&map, "iat")?,
            header,
            map,
        })
    }

    fn str_claim(&self, name: &str) -> Option<&str> {
        self.map.get(name).and_then(Value::as_str)
    }

    /// `iss`.
    pub fn iss(&self) -> Option<&str> {
        self.str_claim("iss")
    }

    /// `sub`.
    pub fn sub(&self) -> Option<&str> {
        self.str_claim("sub")
    }

    /// `aud`, whether the token sent one string or an array.
    pub fn aud(&self) -> Aud<'_> {
        Aud(match self.map.get("aud") {
            Some(Value::String(s)) => AudInner::One(Some(s)),
            Some(Value::Array(items)) => AudInner::Many(items.iter()),
            _ => AudInner::One(None),
        })
    }

    /// `azp` (OIDC Core §2).
    pub fn azp(&self) -> Option<&str> {
        self.str_claim("azp")
    }

    /// `exp`, seconds since the epoch (a fractional value is rounded down).
    pub fn exp(&self) -> Option<u64> {
        self.exp
    }

    /// `nbf`, seconds since the epoch.
    pub fn nbf(&self) -> Option<u64> {
        self.nbf
    }

    /// `iat`, seconds since the epoch.
    pub fn iat(&self) -> Option<u64> {
        self.iat
    }

    /// `sid`: the provider's session id (OIDC Front/Back-Channel Logout).
    pub fn sid(&self) -> Option<&str> {
        self.str_claim("sid")
    }

    /// `nonce`.
    pub fn nonce(&self) -> Option<&str> {
        self.str_claim("nonce")
    }

    /// `jti`.
    pub fn jti(&self) -> Option<&str> {
        self.str_claim("jti")
    }

    /// `events` as sent (a logout token's must hold the back-channel logout member).
    pub fn events(&self) -> Option<&Value> {
        self.map.get("events")
    }

    /// `typ` from the header (`JWT`, `logout+jwt`, ...), not a claim.
    pub fn typ(&self) -> Option<&str> {
        self.header.typ.as_deref()
    }

    /// The token's header.
    pub fn header(&self) -> &Header {
        &self.header
    }

    /// Any claim by name.
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.map.get(name)
    }

    /// All claims.
    pub fn as_map(&self) -> &Map<String, Value> {
        &self.map
    }
}

/// RFC 7519 §2 NumericDate: a JSON number of seconds, possibly fractional; negative, NaN or
/// non-numeric values are refused.
fn numeric_date(map: &Map<String, Value>, name: &str) -> Result<Option<u64>, JwtError> {
    let Some(value) = map.get(name) else {
        return Ok(None);
    };
    let Value::Number(n) = value else {
        return Err(JwtError::InvalidClaim);
    };
    if let Some(secs) = n.as_u64() {
        return Ok(Some(secs));
    }
    match n.as_f64() {
        // `as` saturates at u64::MAX for values beyond it.
        Some(f) if f.is_finite() && f >= 0.0 => Ok(Some(f.floor() as u64)),
        _ => Err(JwtError::InvalidClaim),
    }
}

/// The audiences of a token: zero, one or many strings.
#[derive(Debug, Clone)]
pub struct Aud<'a>(AudInner<'a>);

#[derive(Debug, Clone)]
enum AudInner<'a> {
    One(Option<&'a str>),
    Many(std::slice::Iter<'a, Value>),
}

impl<'a> Iterator for Aud<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        match &mut self.0 {
            AudInner::One(one) => one.take(),
            // Every element was checked to be a string at parse time.
            AudInner::Many(items) => items.next().and_then(Value::as_str),
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = match &self.0 {
            AudInner::One(one) => usize::from(one.is_some()),
            AudInner::Many(items) => items.len(),
        };
        (n, Some(n))
    }
}

impl ExactSizeIterator for Aud<'_> {}

/// The checks a token's claims must pass, besides its signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Validation {
    /// Expected `iss`, compared exactly (the provider's issuer URI).
    pub issuer: String,
    /// Our client id: `aud` must contain it, and `azp` must equal it when `aud` has several
    /// entries.
    pub audience: String,
    /// Allowed clock skew, seconds, applied to `exp`, `nbf` and `iat`.
    pub leeway_secs: u64,
    /// Whether a token without `exp` is refused. Only back-channel logout tokens from older
    /// Keycloak versions (which send none) need `false`; their `iat` is then checked for age by
    /// the caller.
    pub require_exp: bool,
}

impl Validation {
    /// Default leeway: 60 s, the clock skew Spring Security's `JwtTimestampValidator` allows,
    /// so a gateway replacing it accepts the same tokens.
    pub const DEFAULT_LEEWAY_SECS: u64 = 60;

    /// Issuer and client id, with the default leeway and `exp` required.
    pub fn new(issuer: impl Into<String>, audience: impl Into<String>) -> Validation {
        Validation {
            issuer: issuer.into(),
            audience: audience.into(),
            leeway_secs: Self::DEFAULT_LEEWAY_SECS,
            require_exp: true,
        }
    }

    /// Checks `claims` at time `now` (seconds since the epoch).
    ///
    /// Order: `iss`, `aud`, `azp`, `exp`, `nbf`, `iat`.
    ///
    /// `azp` is checked only when `aud` has several entries (OIDC Core §2 and §3.1.3.7 items
    /// 4-5): a single-audience token may name another authorized party, which is what an API
    /// client's access token for us looks like.
    pub fn validate(&self, claims: &Claims, now: u64) -> Result<(), JwtError> {
        if claims.iss() != Some(self.issuer.as_str()) {
            return Err(JwtError::WrongIssuer);
        }
        let aud = claims.aud();
        let several = aud.len() > 1;
        if !claims.aud().any(|a| a == self.audience) {
            return Err(JwtError::WrongAudience);
        }
        if several && claims.azp() != Some(self.audience.as_str()) {
            return Err(JwtError::WrongAzp);
        }
        let leeway = self.leeway_secs;
        match claims.exp() {
            // Valid while now < exp + leeway.
            Some(exp) if exp <= now.saturating_sub(leeway) => return Err(JwtError::Expired),
            Some(_) => {}
            None if self.require_exp => return Err(JwtError::MissingExp),
            None => {}
        }
        if claims
            .nbf()
            .is_some_and(|nbf| nbf > now.saturating_add(leeway))
        {
            return Err(JwtError::NotYetValid);
        }
        if claims
            .iat()
            .is_some_and(|iat| iat > now.saturating_add(leeway))
        {
            return Err(JwtError::IssuedInFuture);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jwt::key::Alg;
    use serde_json::json;

    const NOW: u64 = 1_700_000_000;

    fn header() -> Header {
        Header {
            alg: Alg::ES256,
            kid: None,
            typ: Some("JWT".into()),
        }
    }

    fn claims(v: Value) -> Result<Claims, JwtError> {
        Claims::from_payload(v.to_string().as_bytes(), header())
    }

    fn validation() -> Validation {
        Validation {
            issuer: "https://op.example".into(),
            audience: "gateway".into(),
            leeway_secs: 30,
            require_exp: true,
        }
    }

    fn good() -> Value {
        json!({"iss": "https://op.example", "aud": "gateway", "sub": "u1",
               "exp": NOW + 300, "iat": NOW, "nbf": NOW})
    }

    fn check(v: Value) -> Result<(), JwtError> {
        validation().validate(&claims(v)?, NOW)
    }

    fn with(key: &str, value: Value) -> Value {
        let mut v = good();
        v[key] = value;
        v
    }

    fn without(key: &str) -> Value {
        let mut v = good();
        v.as_object_mut().unwrap().remove(key);
        v
    }

    #[test]
    fn accessors() {
        let c = claims(json!({
            "iss": "i", "sub": "s", "aud": ["a", "b"], "azp": "a", "exp": 10, "nbf": 5.9,
            "iat": 4, "sid": "sid-1", "nonce": "n", "jti": "j", "email": "x@example.com",
            "events": {"http://schemas.openid.net/event/backchannel-logout": {}}
        }))
        .unwrap();
        assert_eq!(c.iss(), Some("i"));
        assert_eq!(c.sub(), Some("s"));
        assert_eq!(c.aud().collect::<Vec<_>>(), vec!["a", "b"]);
        assert_eq!(c.azp(), Some("a"));
        assert_eq!((c.exp(), c.nbf(), c.iat()), (Some(10), Some(5), Some(4)));
        assert_eq!(c.sid(), Some("sid-1"));
        assert_eq!(c.nonce(), Some("n"));
        assert_eq!(c.jti(), Some("j"));
        assert!(c.events().unwrap().is_object());
        assert_eq!(c.typ(), Some("JWT"));
        assert_eq!(
            c.get("email").and_then(Value::as_str),
            Some("x@example.com")
        );
        assert_eq!(c.header().alg, Alg::ES256);
        let single = claims(json!({"aud": "only"})).unwrap();
        assert_eq!(single.aud().len(), 1);
        assert_eq!(claims(json!({})).unwrap().aud().len(), 0);
    }

    #[test]
    fn registered_claims_of_the_wrong_type_are_refused() {
        for bad in [
            json!({"exp": "1700000000"}),
            json!({"exp": -1}),
            json!({"iat": true}),
            json!({"nbf": null}),
            json!({"aud": 7}),
            json!({"aud": ["a", 7]}),
            json!({"iss": ["i"]}),
            json!({"sub": 1}),
            json!({"azp": {}}),
            json!({"sid": 1}),
            json!({"nonce": 1}),
            json!({"jti": 1}),
        ] {
            assert_eq!(
                claims(bad.clone()).unwrap_err(),
                JwtError::InvalidClaim,
                "{bad}"
            );
        }
        for not_object in [&b"[]"[..], b"\"s\"", b"1", b"{", b"{} x", b""] {
            assert_eq!(
                Claims::from_payload(not_object, header()).unwrap_err(),
                JwtError::Malformed
            );
        }
        // Huge but valid numbers saturate instead of failing.
        assert_eq!(claims(json!({"exp": 1e300})).unwrap().exp(), Some(u64::MAX));
    }

    #[test]
    fn accepts_a_good_token() {
        assert_eq!(check(good()), Ok(()));
        assert_eq!(check(with("aud", json!(["gateway"]))), Ok(()));
        assert_eq!(
            check(with("aud", json!(["account", "gateway"])).tap("azp", json!("gateway"))),
            Ok(())
        );
        // Single audience: azp may name another party (an API client's access token).
        assert_eq!(check(with("azp", json!("api-client"))), Ok(()));
        assert_eq!(check(without("nbf")), Ok(()));
        assert_eq!(check(without("iat")), Ok(()));
    }

    #[test]
    fn issuer_and_audience() {
        assert_eq!(
            check(with("iss", json!("https://op.example/"))),
            Err(JwtError::WrongIssuer)
        );
        assert_eq!(check(without("iss")), Err(JwtError::WrongIssuer));
        assert_eq!(
            check(with("aud", json!("other"))),
            Err(JwtError::WrongAudience)
        );
        assert_eq!(check(with("aud", json!([]))), Err(JwtError::WrongAudience));
        assert_eq!(check(without("aud")), Err(JwtError::WrongAudience));
        assert_eq!(
            check(with("aud", json!(["account", "gateway"]))),
            Err(JwtError::WrongAzp)
        );
        assert_eq!(
            check(with("aud", json!(["account", "gateway"])).tap("azp", json!("account"))),
            Err(JwtError::WrongAzp)
        );
    }

    #[test]
    fn expiry_with_leeway() {
        // Leeway 30: valid while now < exp + 30.
        assert_eq!(check(with("exp", json!(NOW - 29))), Ok(()));
        assert_eq!(check(with("exp", json!(NOW - 30))), Err(JwtError::Expired));
        assert_eq!(check(with("exp", json!(0))), Err(JwtError::Expired));
        assert_eq!(check(without("exp")), Err(JwtError::MissingExp));
        let mut lenient = validation();
        lenient.require_exp = false;
        assert_eq!(
            lenient.validate(&claims(without("exp")).unwrap(), NOW),
            Ok(())
        );
        // A leeway larger than `now` saturates to 0 instead of wrapping.
        let mut huge = validation();
        huge.leeway_secs = u64::MAX;
        assert_eq!(
            huge.validate(&claims(with("exp", json!(0))).unwrap(), NOW),
            Err(JwtError::Expired)
        );
        assert_eq!(
            huge.validate(&claims(with("exp", json!(1))).unwrap(), NOW),
            Ok(())
        );
    }

    #[test]
    fn not_before_and_issued_at_with_leeway() {
        assert_eq!(check(with("nbf", json!(NOW + 30))), Ok(()));
        assert_eq!(
            check(with("nbf", json!(NOW + 31))),
            Err(JwtError::NotYetValid)
        );
        assert_eq!(check(with("iat", json!(NOW + 30))), Ok(()));
        assert_eq!(
            check(with("iat", json!(NOW + 31))),
            Err(JwtError::IssuedInFuture)
        );
        assert_eq!(
            check(with("iat", json!(u64::MAX))),
            Err(JwtError::IssuedInFuture)
        );
        assert_eq!(
            check(with("nbf", json!(u64::MAX))),
            Err(JwtError::NotYetValid)
        );
        // `now + leeway` saturates instead of wrapping to a small number.
        let mut v = validation();
        v.leeway_secs = u64::MAX;
        let c = claims(with("nbf", json!(NOW + 1_000_000))).unwrap();
        assert_eq!(v.validate(&c, NOW), Ok(()));
    }

    #[test]
    fn validation_new_defaults() {
        let v = Validation::new("i", "a");
        assert_eq!(v.leeway_secs, 60);
        assert!(v.require_exp);
    }

    trait Tap {
        fn tap(self, key: &str, value: Value) -> Value;
    }

    impl Tap for Value {
        fn tap(mut self, key: &str, value: Value) -> Value {
            self[key] = value;
            self
        }
    }
}
