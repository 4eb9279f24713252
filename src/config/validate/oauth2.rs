//! `spring.security.oauth2.client`: client registrations and providers, Spring Security's
//! rules for the client authentication method and the built-in providers.

use super::section::Section;
use super::suggest::{suggest, unknown_key};
use super::{ConfigError, Result};
use crate::config::raw::child_path;
use crate::config::{ClientAuthMethod, HttpUrl, OAuth2Config, Provider, Registration};

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

/// `spring.security.oauth2` from `spring`. Without a registration every route is proxied
/// unauthenticated, so what could be a misspelt attempt at one is refused: a near miss of
/// `security` or `oauth2`, an unknown key under `oauth2`, and an `oauth2` section that
/// names no registration.
pub(super) fn oauth2(spring: &Section) -> Result<OAuth2Config> {
    refuse_near_miss(spring, "security")?;
    let security = spring.open_section("security")?;
    refuse_near_miss(&security, "oauth2")?;
    let oauth2 = security.section("oauth2", &["client"])?;
    let config = clients(&oauth2)?;
    if config.registrations.is_empty() && !oauth2.entries.is_empty() {
        return Err(ConfigError::invalid(
            &oauth2.key("client.registration"),
            "no registration: every route would be proxied without authentication; add a \
             registration, or remove spring.security.oauth2 to run as a plain proxy",
        ));
    }
    Ok(config)
}

/// A key beside `wanted` that is close enough to be a typo of it (the section's other keys
/// belong to other Spring parts and are ignored).
fn refuse_near_miss(s: &Section, wanted: &str) -> Result<()> {
    match s
        .entries
        .iter()
        .find(|(k, _)| k != wanted && suggest(k, &[wanted]).is_some())
    {
        Some((k, _)) => Err(unknown_key(&s.path, k, &[wanted])),
        None => Ok(()),
    }
}

fn clients(oauth2: &Section) -> Result<OAuth2Config> {
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
