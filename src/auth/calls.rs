//! What the gate sends out through the worker's dispatcher: the calls that end a session
//! elsewhere (the backend's logout URL, the provider's revocation or logout), back-channel
//! logouts relayed to `cg.logoutListeners`, and each used session's fresh token to
//! `cg.freshTokenListeners`.

use std::cell::RefCell;
use std::rc::Rc;

use crate::backchannel::LogoutToken;
use crate::client::HttpClient;
use crate::config::{CgConfig, HttpUrl};
use crate::dispatcher::{Call, CallKind, Dispatcher};
use crate::http::form::form;
use crate::oidc;
use crate::session::table::{Session, NEVER};
use crate::session::EndReason;

use super::Gate;

/// The URLs outgoing calls go to; a reload swaps them whole.
#[derive(Debug, Clone, Default)]
pub struct Listeners {
    pub censhare_logout_url: Option<HttpUrl>,
    pub fresh_token: Vec<HttpUrl>,
    pub logout: Vec<HttpUrl>,
}

impl Listeners {
    pub fn from_config(cg: &CgConfig) -> Listeners {
        Listeners {
            censhare_logout_url: cg.censhare_logout_url.clone(),
            fresh_token: cg.fresh_token_listeners.clone(),
            logout: cg.logout_listeners.clone(),
        }
    }
}

/// The worker's outgoing HTTP client, its dispatcher, and where calls go.
pub struct Calls {
    client: Rc<HttpClient>,
    dispatcher: Rc<Dispatcher>,
    listeners: RefCell<Rc<Listeners>>,
}

impl Calls {
    pub fn new(client: Rc<HttpClient>, dispatcher: Rc<Dispatcher>, l: Listeners) -> Calls {
        Calls {
            client,
            dispatcher,
            listeners: RefCell::new(Rc::new(l)),
        }
    }

    pub fn client(&self) -> &HttpClient {
        &self.client
    }

    pub fn dispatcher(&self) -> &Rc<Dispatcher> {
        &self.dispatcher
    }

    pub fn set_listeners(&self, l: Listeners) {
        *self.listeners.borrow_mut() = Rc::new(l);
    }

    fn listeners(&self) -> Rc<Listeners> {
        self.listeners.borrow().clone()
    }
}

impl Gate {
    /// The calls that end a session elsewhere: the backend's logout URL with the session's
    /// access token, and the provider (revocation or Keycloak logout with the refresh
    /// token), both through the dispatcher. An expiry does this only with
    /// `cg.expiredSessionFullLogout`; a back-channel logout skips the backend (the
    /// listeners get the token instead).
    pub(super) fn end_effects(&self, s: &Session, reason: EndReason) {
        if reason == EndReason::Expired && !self.settings.full_logout {
            return;
        }
        if reason != EndReason::Backchannel {
            if let Some(url) = &self.calls.listeners().censhare_logout_url {
                self.calls.dispatcher.submit(Call {
                    kind: CallKind::BackendLogout,
                    url: url.clone(),
                    headers: vec![("Authorization", format!("Bearer {}", s.access_token))],
                    body: None,
                    subject: s.subject().into(),
                    session: s.id().reference().to_string().into(),
                });
            }
        }
        // Offline grants outlive logins by design: leave them alone. A refused refresh token
        // is already dead at the provider.
        let offline = self.reg.scope.iter().any(|sc| sc == "offline_access");
        if s.refresh_token.is_empty() || offline || reason == EndReason::RefreshRefused {
            return;
        }
        let Some(p) = self.keys.current() else { return };
        if let Some((url, headers, body)) =
            oidc::provider_logout_call(&p.meta, &self.reg, &s.refresh_token)
        {
            self.calls.dispatcher.submit(Call {
                kind: CallKind::ProviderLogout,
                url,
                headers,
                body: Some(("application/x-www-form-urlencoded", body)),
                subject: s.subject().into(),
                session: s.id().reference().to_string().into(),
            });
        }
    }

    /// Relays an admitted back-channel logout token to every `cg.logoutListeners` URL.
    pub(super) fn relay_logout(&self, t: &LogoutToken, raw: &str) {
        let body = form(&[("logout_token", raw)]).into_bytes();
        for url in &self.calls.listeners().logout {
            self.calls.dispatcher.submit(Call {
                kind: CallKind::LogoutRelay,
                url: url.clone(),
                headers: Vec::new(),
                body: Some(("application/x-www-form-urlencoded", body.clone())),
                subject: t.sub.clone().unwrap_or_default().into(),
                session: t.sid.clone().unwrap_or_default().into(),
            });
        }
    }

    /// Sends each session used since the last round to every fresh-token listener.
    pub fn send_fresh_tokens(&self) {
        let listeners = self.calls.listeners();
        if listeners.fresh_token.is_empty() {
            return;
        }
        let epoch_unix = self
            .clock
            .unix_secs()
            .saturating_sub(self.clock.now_ms() / 1000);
        let dispatcher = &self.calls.dispatcher;
        // With the shared store a session may be cached, and used, on several instances:
        // its calls go once a round, by whichever instance claims the round first.
        let mut claims = Vec::new();
        self.store.borrow_mut().for_each_mut(&mut |s| {
            if !s.used_since_fresh_send {
                return;
            }
            s.used_since_fresh_send = false;
            let exp =
                (s.access_expires_ms != NEVER).then(|| epoch_unix + s.access_expires_ms / 1000);
            let body = serde_json::json!({"sub": s.subject(), "sid": s.sid(), "exp": exp})
                .to_string()
                .into_bytes();
            let calls = listeners.fresh_token.iter().map(|url| Call {
                kind: CallKind::FreshToken,
                url: url.clone(),
                headers: vec![("Authorization", format!("Bearer {}", s.access_token))],
                body: Some(("application/json", body.clone())),
                subject: s.subject().into(),
                session: s.id().reference().to_string().into(),
            });
            match self.shared_store.is_some() {
                true => claims.push((*s.id(), calls.collect())),
                false => calls.for_each(|c| dispatcher.submit(c)),
            }
        });
        if !claims.is_empty() {
            self.queue_fresh_tokens(claims);
        }
    }
}
