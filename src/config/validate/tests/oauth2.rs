//! `spring.security.oauth2.client`: registrations, providers and Spring's rules for them.

use super::{fails, fails_all, load};
use crate::config::ClientAuthMethod;

const KEYCLOAK: &str = "
spring.security.oauth2.client:
  registration:
    keycloak:
      client-id: gateway
      client-secret: ${CLIENT_SECRET}
      scope: openid, profile,email
  provider:
    keycloak:
      issuer-uri: https://sso.example.com/realms/censhare
";

#[test]
fn oauth2_registration_and_provider() {
    let c = load(KEYCLOAK);
    let r = &c.oauth2.registrations[0];
    assert_eq!(r.id, "keycloak");
    assert_eq!(r.client_id, "gateway");
    assert_eq!(r.client_secret.as_deref(), Some("from-env"));
    assert_eq!(r.scope, ["openid", "profile", "email"]);
    assert_eq!(r.provider, "keycloak");
    assert_eq!(
        r.client_authentication_method,
        ClientAuthMethod::ClientSecretBasic
    );
    assert_eq!(r.authorization_grant_type, "authorization_code");
    let p = &c.oauth2.providers[0];
    assert_eq!(p.issuer_uri.as_ref().unwrap().host, "sso.example.com");
}

#[test]
fn oauth2_rules() {
    let public = load(
        "spring.security.oauth2.client.registration.google: {client-id: x, scope: [openid]}\n",
    );
    let r = &public.oauth2.registrations[0];
    assert_eq!(r.client_authentication_method, ClientAuthMethod::None);
    assert_eq!(public.oauth2.providers[0].id, "google");
    let post = load(&format!(
        "{KEYCLOAK}spring.security.oauth2.client.registration.keycloak.client-authentication-method: post\n"
    ));
    assert_eq!(
        post.oauth2.registrations[0].client_authentication_method,
        ClientAuthMethod::ClientSecretPost
    );
    let reg = "spring.security.oauth2.client.registration.kc";
    fails(
        &format!("{reg}: {{client-id: a, client-secret: s}}\n"),
        &format!("{reg}.provider"),
        "not defined",
    );
    fails(
        &format!("{KEYCLOAK}{reg}: {{client-id: a, client-secret: b, provider: keycloak, authorization-grant-type: client_credentials}}\n"),
        &format!("{reg}.authorization-grant-type"),
        "authorization_code",
    );
    fails(
        &format!("{KEYCLOAK}{reg}: {{client-secret: b, provider: keycloak}}\n"),
        &format!("{reg}.client-id"),
        "required",
    );
    fails(
        &format!("{KEYCLOAK}{reg}: {{client-id: a, provider: keycloak, client-authentication-method: basic}}\n"),
        &format!("{reg}.client-secret"),
        "required",
    );
    fails(
        &format!("{KEYCLOAK}{reg}: {{client-id: a, provider: keycloak, client-secert: b}}\n"),
        &format!("{reg}.client-secert"),
        "did you mean",
    );
    // The section names no registration either.
    fails_all(
        "spring.security.oauth2.client.provider.kc: {jwk-set-uri: 'https://x/'}\n",
        &[
            (
                "spring.security.oauth2.client.provider.kc.issuer-uri",
                "required unless",
            ),
            (
                "spring.security.oauth2.client.registration",
                "no registration",
            ),
        ],
    );
}

/// Without a registration every route is proxied unauthenticated: what looks like a
/// misspelt one is refused, naming the key.
#[test]
fn oauth2_typos_are_refused() {
    let registration = "registration.kc: {client-id: a, client-secret: s}\n";
    fails(
        &format!("spring.security.oauth2.clients.{registration}"),
        "spring.security.oauth2.clients",
        "did you mean `spring.security.oauth2.client`?",
    );
    fails(
        &format!("spring.security.oauth.client.{registration}"),
        "spring.security.oauth",
        "did you mean `spring.security.oauth2`?",
    );
    fails(
        &format!("spring.securty.oauth2.client.{registration}"),
        "spring.securty",
        "did you mean `spring.security`?",
    );
    fails_all(
        "spring.security.oauth2.resourceserver.jwt.issuer-uri: https://sso.example.com/\n",
        &[
            ("spring.security.oauth2.resourceserver", "unknown key"),
            (
                "spring.security.oauth2.client.registration",
                "no registration",
            ),
        ],
    );
    fails(
        "spring.security.oauth2.client.provider.kc.issuer-uri: https://sso.example.com/\n",
        "spring.security.oauth2.client.registration",
        "no registration: every route would be proxied without authentication",
    );
    // Other Spring parts beside them stay ignored; no oauth2 at all is a plain proxy.
    let c = load("spring.security.user.name: admin\nspring.session.timeout: 10\n");
    assert!(c.oauth2.registrations.is_empty());
}
