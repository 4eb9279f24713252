//! `spring.security.oauth2.client`: client registrations and providers, Spring Security's
//! rules for the client authentication method and the built-in providers.

use super::section::Section;
use super::suggest::{suggest, unknown_key};
use super::ConfigError;
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
pub(super) fn oauth2(spring: &Section) -> OAuth2Config {
    refuse_near_miss(spring, "security");
    let security = spring.open_section("security");
    refuse_near_miss(&security, "oauth2");
    clients(&security.section("oauth2", &["client"]))
}

/// Keys beside `wanted` that are close enough to be a typo of it (the section's other keys
/// belong to other Spring parts and are ignored).
fn refuse_near_miss(s: &Section, wanted: &str) {
    for (k, _) in s.entries {
        if k != wanted && suggest(k, &[wanted]).is_some() {
            s.report(unknown_key(&s.path, k, &[wanted]));
        }
    }
}

fn clients(oauth2: &Section) -> OAuth2Config {
    let client = oauth2.section("client", &["registration", "provider"]);
    let provider_section = client.open_section("provider");
    let mut providers: Vec<Provider> = provider_section
        .entries
        .iter()
        .filter_map(|(id, _)| Some(provider(&provider_section.entry(id, PROVIDER_KEYS)?, id)))
        .collect();
    let registration_section = client.open_section("registration");
    let mut registrations = Vec::new();
    for (id, _) in registration_section.entries {
        let Some(s) = registration_section.entry(id, REGISTRATION_KEYS) else {
            continue;
        };
        let r = registration(&s, id);
        if !s.failed(&["provider"]) {
            add_built_in_provider(&r, &s, &provider_section, &mut providers);
        }
        registrations.push(r);
    }
    // A registration misspelt or not a map is already reported as such.
    let attempted = oauth2.misspelt("client")
        || client.misspelt("registration")
        || client.failed(&["registration"]);
    if registration_section.entries.is_empty() && !oauth2.entries.is_empty() && !attempted {
        oauth2.report(ConfigError::invalid(
            &oauth2.key("client.registration"),
            "no registration: every route would be proxied without authentication; add a \
             registration, or remove spring.security.oauth2 to run as a plain proxy",
        ));
    }
    OAuth2Config {
        registrations,
        providers,
    }
}

fn provider(s: &Section, id: &str) -> Provider {
    let p = Provider {
        id: id.to_string(),
        issuer_uri: s.take(s.url("issuer-uri")),
        authorization_uri: s.take(s.url("authorization-uri")),
        token_uri: s.take(s.url("token-uri")),
        jwk_set_uri: s.take(s.url("jwk-set-uri")),
        user_info_uri: s.take(s.url("user-info-uri")),
        user_name_attribute: s.take(s.text("user-name-attribute")),
    };
    let endpoints_given = p.authorization_uri.is_some() && p.token_uri.is_some();
    if p.issuer_uri.is_none() && !endpoints_given && !s.failed(&["authorization-uri", "token-uri"])
    {
        s.missing(
            "issuer-uri",
            "required unless authorization-uri and token-uri are both given",
        );
    }
    p
}

/// The registration as written; what is wrong with it is reported.
fn registration(s: &Section, id: &str) -> Registration {
    if id.is_empty()
        || !id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_'))
    {
        s.report(ConfigError::invalid(
            &s.path,
            "a registration id may hold only letters, digits, `-` and `_` (it is part of the callback path)",
        ));
    }
    let client_secret = s.take(s.text("client-secret"));
    let method = client_auth_method(s, client_secret.is_some());
    let grant = s
        .take(s.text("authorization-grant-type"))
        .unwrap_or_else(|| "authorization_code".into());
    if grant != "authorization_code" {
        s.report(ConfigError::invalid(
            &s.key("authorization-grant-type"),
            format!("only authorization_code is supported, got {grant:?}"),
        ));
    }
    Registration {
        id: id.to_string(),
        client_id: s.required_text("client-id").unwrap_or_default(),
        client_secret,
        scope: s
            .take(s.list("scope"))
            .into_iter()
            .map(|(_, v)| v)
            .collect(),
        provider: s.take(s.text("provider")).unwrap_or_else(|| id.to_string()),
        client_authentication_method: method,
        authorization_grant_type: grant,
        redirect_uri: s.take(s.text("redirect-uri")),
    }
}

/// Spring's rule: without a secret the client is public (`none`), otherwise
/// `client_secret_basic`; the pre-5.5 names `basic` and `post` still work.
fn client_auth_method(s: &Section, has_secret: bool) -> ClientAuthMethod {
    let method = match s
        .take(s.text("client-authentication-method"))
        .map(|m| m.to_ascii_lowercase())
    {
        None if has_secret => ClientAuthMethod::ClientSecretBasic,
        None => ClientAuthMethod::None,
        Some(m) => match m.as_str() {
            "client_secret_basic" | "basic" => ClientAuthMethod::ClientSecretBasic,
            "client_secret_post" | "post" => ClientAuthMethod::ClientSecretPost,
            "none" => ClientAuthMethod::None,
            _ => {
                s.report(ConfigError::invalid(
                    &s.key("client-authentication-method"),
                    format!("expected client_secret_basic, client_secret_post or none, got {m:?}"),
                ));
                return ClientAuthMethod::None;
            }
        },
    };
    if method != ClientAuthMethod::None && !has_secret {
        s.missing(
            "client-secret",
            "required unless client-authentication-method is none",
        );
    }
    method
}

/// Makes sure the registration's provider is defined, adding a built-in one when it is
/// known. One written but refused counts as defined: its problem is already reported.
fn add_built_in_provider(
    r: &Registration,
    s: &Section,
    written: &Section,
    providers: &mut Vec<Provider>,
) {
    let defined = |id: &str| {
        providers.iter().any(|p| p.id == id) || written.entries.iter().any(|(k, _)| k == id)
    };
    if defined(&r.provider) {
        return;
    }
    let Some((_, issuer)) = BUILT_IN_ISSUERS.iter().find(|(id, _)| *id == r.provider) else {
        s.report(ConfigError::invalid(
            &s.key("provider"),
            format!(
                "provider {:?} is not defined under spring.security.oauth2.client.provider",
                r.provider
            ),
        ));
        return;
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
}
