//! OpenID Connect relying-party steps: discovery, the authorization redirect (state, nonce,
//! PKCE S256), the code exchange, refresh and the end-session redirect. Pure request
//! building and answer parsing live here; the calls go through [`crate::client`].

use std::sync::Arc;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde::Deserialize;

use crate::client::{ClientError, HttpClient};
use crate::config::{ClientAuthMethod, HttpUrl, Registration};
use crate::http::form::{form, form_encode};
use crate::jwt::JwkSet;

const LOG: &str = "sessiongate::oidc";

/// The provider's endpoints, from `/.well-known/openid-configuration`.
#[derive(Debug, Clone)]
pub struct ProviderMeta {
    pub issuer: String,
    pub authorization_endpoint: HttpUrl,
    pub token_endpoint: HttpUrl,
    pub jwks_uri: HttpUrl,
    pub end_session_endpoint: Option<HttpUrl>,
    pub revocation_endpoint: Option<HttpUrl>,
}

/// What workers know of the provider; replaced whole (an `Arc` swap) on every refresh.
#[derive(Debug)]
pub struct ProviderState {
    pub meta: ProviderMeta,
    pub jwks: Arc<JwkSet>,
    /// Bumped on every JWKS change, so workers know to drop cached verifications.
    pub generation: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum OidcError {
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error("{what}: HTTP {status}")]
    Status { what: &'static str, status: u16 },
    #[error("{0}: malformed answer")]
    Malformed(&'static str),
    #[error("discovery: issuer {found:?} does not match the configured {expected:?}")]
    IssuerMismatch { expected: String, found: String },
    #[error("{what}: {error}")]
    Refused { what: &'static str, error: String },
}

#[derive(Deserialize)]
struct Discovery {
    issuer: String,
    authorization_endpoint: String,
    token_endpoint: String,
    jwks_uri: String,
    end_session_endpoint: Option<String>,
    revocation_endpoint: Option<String>,
}

fn url(s: &str, what: &'static str) -> Result<HttpUrl, OidcError> {
    HttpUrl::parse(s).map_err(|_| OidcError::Malformed(what))
}

/// The discovery document's location for an issuer (OIDC Discovery §4).
pub fn discovery_url(issuer: &HttpUrl) -> Result<HttpUrl, OidcError> {
    let base = issuer.original.trim_end_matches('/');
    url(
        &format!("{base}/.well-known/openid-configuration"),
        "issuer-uri",
    )
}

pub async fn discover(client: &HttpClient, issuer: &HttpUrl) -> Result<ProviderMeta, OidcError> {
    let r = client
        .send(
            "GET",
            &discovery_url(issuer)?,
            &[("Accept", "application/json")],
            None,
        )
        .await?;
    if r.status != 200 {
        return Err(OidcError::Status {
            what: "discovery",
            status: r.status,
        });
    }
    let d: Discovery =
        serde_json::from_slice(&r.body).map_err(|_| OidcError::Malformed("discovery"))?;
    // OIDC Discovery §4.3: the issuer in the document must be the one we asked for.
    let expected = issuer.original.trim_end_matches('/');
    if d.issuer.trim_end_matches('/') != expected {
        return Err(OidcError::IssuerMismatch {
            expected: expected.to_string(),
            found: d.issuer,
        });
    }
    Ok(ProviderMeta {
        issuer: d.issuer,
        authorization_endpoint: url(&d.authorization_endpoint, "authorization_endpoint")?,
        token_endpoint: url(&d.token_endpoint, "token_endpoint")?,
        jwks_uri: url(&d.jwks_uri, "jwks_uri")?,
        end_session_endpoint: d
            .end_session_endpoint
            .as_deref()
            .map(|u| url(u, "end_session_endpoint"))
            .transpose()?,
        revocation_endpoint: d
            .revocation_endpoint
            .as_deref()
            .map(|u| url(u, "revocation_endpoint"))
            .transpose()?,
    })
}

/// Fetches the provider's keys; also returns a digest of the document to notice changes.
pub async fn fetch_jwks(
    client: &HttpClient,
    meta: &ProviderMeta,
) -> Result<(JwkSet, Vec<u8>), OidcError> {
    let r = client
        .send(
            "GET",
            &meta.jwks_uri,
            &[("Accept", "application/json")],
            None,
        )
        .await?;
    if r.status != 200 {
        return Err(OidcError::Status {
            what: "jwks",
            status: r.status,
        });
    }
    let set = JwkSet::from_json(&r.body).map_err(|_| OidcError::Malformed("jwks"))?;
    for s in set.skipped() {
        tracing::debug!(target: LOG, kid = ?s.kid, reason = ?s.reason, "JWKS key skipped");
    }
    let digest = ring::digest::digest(&ring::digest::SHA256, &r.body)
        .as_ref()
        .to_vec();
    Ok((set, digest))
}

/// Random URL-safe string of `n` random bytes.
pub fn random_token(rng: &ring::rand::SystemRandom, n: usize) -> String {
    let mut buf = [0u8; 64];
    let n = n.min(buf.len());
    ring::rand::SecureRandom::fill(rng, &mut buf[..n]).expect("system random source");
    URL_SAFE_NO_PAD.encode(&buf[..n])
}

/// PKCE S256 (RFC 7636 §4.2): base64url(SHA-256(verifier)).
pub fn pkce_challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(ring::digest::digest(
        &ring::digest::SHA256,
        verifier.as_bytes(),
    ))
}

/// The authorization request URL (OIDC Core §3.1.2.1).
pub fn authorization_url(
    meta: &ProviderMeta,
    reg: &Registration,
    redirect_uri: &str,
    state: &str,
    nonce: &str,
    challenge: &str,
) -> String {
    let scope = reg.scope.join(" ");
    let mut u = meta.authorization_endpoint.original.clone();
    u.push(if u.contains('?') { '&' } else { '?' });
    u.push_str(&form(&[
        ("response_type", "code"),
        ("client_id", &reg.client_id),
        ("redirect_uri", redirect_uri),
        ("scope", &scope),
        ("state", state),
        ("nonce", nonce),
        ("code_challenge", challenge),
        ("code_challenge_method", "S256"),
    ]));
    u
}

/// The end-session redirect (RP-Initiated Logout 1.0 §2).
pub fn end_session_url(
    meta: &ProviderMeta,
    reg: &Registration,
    id_token: Option<&str>,
    post_logout: Option<&str>,
) -> Option<String> {
    let end = meta.end_session_endpoint.as_ref()?;
    let mut u = end.original.clone();
    u.push(if u.contains('?') { '&' } else { '?' });
    let mut pairs = vec![("client_id", reg.client_id.as_str())];
    if let Some(t) = id_token {
        pairs.push(("id_token_hint", t));
    }
    if let Some(p) = post_logout {
        pairs.push(("post_logout_redirect_uri", p));
    }
    u.push_str(&form(&pairs));
    Some(u)
}

/// A token endpoint answer (RFC 6749 §5.1).
#[derive(Debug, Clone, Deserialize)]
pub struct TokenResponse {
    pub access_token: String,
    #[serde(default)]
    pub refresh_token: Option<String>,
    #[serde(default)]
    pub id_token: Option<String>,
    #[serde(default)]
    pub expires_in: Option<u64>,
    #[serde(default)]
    pub refresh_expires_in: Option<u64>,
}

#[derive(Deserialize)]
struct ErrorAnswer {
    error: String,
    #[serde(default)]
    error_description: Option<String>,
}

/// Outcome of a refresh that did not succeed: a refused grant ends the session, anything
/// else (network, 5xx) leaves it alone to try again later.
#[derive(Debug)]
pub enum RefreshFailure {
    InvalidGrant(String),
    Transient(String),
}

/// Client authentication per the registration (RFC 6749 §2.3.1): a Basic header, or the
/// credentials among the form parameters.
fn client_auth(reg: &Registration, params: &mut Vec<(&'static str, String)>) -> Option<String> {
    let secret = reg.client_secret.as_deref().unwrap_or("");
    match reg.client_authentication_method {
        ClientAuthMethod::ClientSecretBasic => {
            // RFC 6749 §2.3.1: id and secret are form-encoded before base64.
            let mut user = String::new();
            form_encode(&mut user, &reg.client_id);
            user.push(':');
            form_encode(&mut user, secret);
            Some(format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(user)
            ))
        }
        ClientAuthMethod::ClientSecretPost => {
            params.push(("client_id", reg.client_id.clone()));
            params.push(("client_secret", secret.to_string()));
            None
        }
        ClientAuthMethod::None => {
            params.push(("client_id", reg.client_id.clone()));
            None
        }
    }
}

fn form_owned(params: &[(&'static str, String)]) -> String {
    let pairs: Vec<(&str, &str)> = params.iter().map(|(k, v)| (*k, v.as_str())).collect();
    form(&pairs)
}

/// Calls the token endpoint with client authentication per the registration.
async fn token_call(
    client: &HttpClient,
    meta: &ProviderMeta,
    reg: &Registration,
    params: Vec<(&'static str, &str)>,
) -> Result<crate::client::Response, ClientError> {
    let mut params: Vec<(&'static str, String)> = params
        .into_iter()
        .map(|(k, v)| (k, v.to_string()))
        .collect();
    let auth = client_auth(reg, &mut params);
    let mut headers = vec![("Accept", "application/json")];
    if let Some(a) = &auth {
        headers.push(("Authorization", a.as_str()));
    }
    let body = form_owned(&params);
    client
        .send(
            "POST",
            &meta.token_endpoint,
            &headers,
            Some(("application/x-www-form-urlencoded", body.as_bytes())),
        )
        .await
}

/// A form POST to make: URL, extra headers, body.
pub type FormCall = (HttpUrl, Vec<(&'static str, String)>, Vec<u8>);

/// The call that ends a login at the provider with its refresh token: Keycloak's logout
/// endpoint (it ends the SSO session, not just the token), else token revocation (RFC 7009).
/// `None` when the provider offers neither.
pub fn provider_logout_call(
    meta: &ProviderMeta,
    reg: &Registration,
    refresh_token: &str,
) -> Option<FormCall> {
    let keycloak = meta.issuer.contains("/realms/");
    let (url, mut params) = match (&meta.end_session_endpoint, &meta.revocation_endpoint) {
        (Some(end), _) if keycloak => (
            end.clone(),
            vec![("refresh_token", refresh_token.to_string())],
        ),
        (_, Some(rev)) => (
            rev.clone(),
            vec![
                ("token", refresh_token.to_string()),
                ("token_type_hint", "refresh_token".to_string()),
            ],
        ),
        _ => return None,
    };
    if keycloak && reg.client_authentication_method == ClientAuthMethod::ClientSecretBasic {
        // Keycloak's logout endpoint takes the client credentials in the form.
        params.push(("client_id", reg.client_id.clone()));
        params.push((
            "client_secret",
            reg.client_secret.clone().unwrap_or_default(),
        ));
        return Some((url, Vec::new(), form_owned(&params).into_bytes()));
    }
    let mut headers = Vec::new();
    if let Some(a) = client_auth(reg, &mut params) {
        headers.push(("Authorization", a));
    }
    Some((url, headers, form_owned(&params).into_bytes()))
}

fn parse_token_answer(
    r: &crate::client::Response,
    what: &'static str,
) -> Result<TokenResponse, OidcError> {
    if r.status == 200 {
        return serde_json::from_slice(&r.body).map_err(|_| OidcError::Malformed(what));
    }
    match serde_json::from_slice::<ErrorAnswer>(&r.body) {
        Ok(e) => Err(OidcError::Refused {
            what,
            error: match e.error_description {
                Some(d) => format!("{}: {d}", e.error),
                None => e.error,
            },
        }),
        Err(_) => Err(OidcError::Status {
            what,
            status: r.status,
        }),
    }
}

pub async fn exchange_code(
    client: &HttpClient,
    meta: &ProviderMeta,
    reg: &Registration,
    code: &str,
    redirect_uri: &str,
    verifier: &str,
) -> Result<TokenResponse, OidcError> {
    let params = vec![
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", redirect_uri),
        ("code_verifier", verifier),
    ];
    let r = token_call(client, meta, reg, params).await?;
    parse_token_answer(&r, "code exchange")
}

/// A client-credentials grant: used by `check` to learn the access-token lifespan from a
/// real answer (works when the client may use that grant, e.g. a Keycloak service account).
pub async fn client_credentials(
    client: &HttpClient,
    meta: &ProviderMeta,
    reg: &Registration,
) -> Result<TokenResponse, OidcError> {
    let r = token_call(
        client,
        meta,
        reg,
        vec![("grant_type", "client_credentials")],
    )
    .await?;
    parse_token_answer(&r, "client credentials")
}

pub async fn refresh(
    client: &HttpClient,
    meta: &ProviderMeta,
    reg: &Registration,
    refresh_token: &str,
) -> Result<TokenResponse, RefreshFailure> {
    let params = vec![
        ("grant_type", "refresh_token"),
        ("refresh_token", refresh_token),
    ];
    let r = token_call(client, meta, reg, params)
        .await
        .map_err(|e| RefreshFailure::Transient(e.to_string()))?;
    match parse_token_answer(&r, "refresh") {
        Ok(t) => Ok(t),
        // RFC 6749 §5.2: invalid_grant means the refresh token is dead for good.
        Err(OidcError::Refused { error, .. }) if error.starts_with("invalid_grant") => {
            Err(RefreshFailure::InvalidGrant(error))
        }
        Err(OidcError::Refused { error, .. }) if r.status < 500 => {
            Err(RefreshFailure::InvalidGrant(error))
        }
        Err(e) => Err(RefreshFailure::Transient(e.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pkce_matches_rfc7636_appendix_b() {
        assert_eq!(
            pkce_challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }

    #[test]
    fn authorization_url_carries_every_parameter() {
        let meta = ProviderMeta {
            issuer: "http://op".into(),
            authorization_endpoint: HttpUrl::parse("http://op/auth").unwrap(),
            token_endpoint: HttpUrl::parse("http://op/token").unwrap(),
            jwks_uri: HttpUrl::parse("http://op/jwks").unwrap(),
            end_session_endpoint: None,
            revocation_endpoint: None,
        };
        let reg = Registration {
            id: "demo".into(),
            client_id: "gw".into(),
            client_secret: None,
            scope: vec!["openid".into(), "email".into()],
            provider: "demo".into(),
            client_authentication_method: ClientAuthMethod::None,
            authorization_grant_type: "authorization_code".into(),
            redirect_uri: None,
        };
        let u = authorization_url(&meta, &reg, "http://gw/cb", "st", "no", "ch");
        assert_eq!(
            u,
            "http://op/auth?response_type=code&client_id=gw&redirect_uri=http%3A%2F%2Fgw%2Fcb&scope=openid+email&state=st&nonce=no&code_challenge=ch&code_challenge_method=S256"
        );
    }
}
