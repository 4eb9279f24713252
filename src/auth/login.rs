//! Logging in: the authorization-code flow with PKCE. A browser navigation without a
//! session is redirected to the provider with a fresh `state`, `nonce` and code verifier,
//! kept as a pending login; the callback takes the pending login back (from another worker
//! if its `state` names one), exchanges the code, checks the ID token, and creates the
//! session within the gateway-wide `cg.maxSessions`.

use std::sync::atomic::Ordering;

use crate::audit;
use crate::http::form::form_value;
use crate::http::head::RequestHead;
use crate::http::reply::Reply;
use crate::jwt::Claims;
use crate::messages::PeerRequest;
use crate::metrics::Metrics;
use crate::oidc::{self, TokenResponse};
use crate::session::cookie::set_cookie;
use crate::session::pending::PendingLogin;
use crate::session::table::{Session, NEVER};
use crate::session::SessionId;

use super::refresh::access_expiry;
use super::{not_ready, query, safe_return, Decision, Gate, LOG};

impl Gate {
    /// Redirects a browser to the provider's login, remembering what the callback needs.
    pub(super) fn start_login(&self, head: &RequestHead, buf: &[u8]) -> Decision {
        let Some(p) = self.keys.current() else {
            return Decision::Reply(not_ready());
        };
        let return_to = safe_return(&String::from_utf8_lossy(head.target(buf)));
        let state = format!("{:02x}{}", self.worker, oidc::random_token(&self.rng, 24));
        let nonce = oidc::random_token(&self.rng, 24);
        let verifier = oidc::random_token(&self.rng, 32);
        let redirect_uri = self.redirect_uri(head, buf);
        Metrics::inc(&self.metrics.logins_started);
        let location = oidc::authorization_url(
            &p.meta,
            &self.reg,
            &redirect_uri,
            &state,
            &nonce,
            &oidc::pkce_challenge(&verifier),
        );
        let now = self.clock.now_ms();
        let login = PendingLogin {
            nonce,
            verifier,
            return_to,
            redirect_uri,
            created_ms: now,
        };
        if self.pending.borrow_mut().insert(state, login, now).is_err() {
            return Decision::Reply(Reply::page(
                503,
                "Service Unavailable",
                "Too many logins",
                "Too many logins are in progress; try again shortly.",
            ));
        }
        Decision::Reply(Reply::redirect(location))
    }

    /// `spring.security.oauth2.client.registration.<id>.redirect-uri`, or Spring's default.
    fn redirect_uri(&self, head: &RequestHead, buf: &[u8]) -> String {
        let scheme = if self.settings.tls { "https" } else { "http" };
        let host = head
            .host(buf)
            .map(String::from_utf8_lossy)
            .unwrap_or_default();
        let base = format!("{scheme}://{host}");
        match &self.reg.redirect_uri {
            Some(t) => t
                .replace("{baseUrl}", &base)
                .replace("{registrationId}", &self.reg.id)
                .replace("{action}", "login"),
            None => format!("{base}/login/oauth2/code/{}", self.reg.id),
        }
    }

    /// The provider's answer at `/login/oauth2/code/<registration>`.
    pub(super) async fn callback(&self, head: &RequestHead, buf: &[u8], movable: bool) -> Decision {
        let query = query(head.target(buf));
        let Some(state) = form_value(query, "state") else {
            return bad_callback("The login answer carries no state.");
        };
        // The state names the worker that holds the pending login.
        let owner = state.get(..2).and_then(|h| u8::from_str_radix(h, 16).ok());
        let pending = match owner {
            Some(o) if o != self.worker && movable => return Decision::HandOff(o),
            Some(o) if o != self.worker => {
                let state = state.clone();
                self.ask_peer(o, |reply| PeerRequest::TakePending { state, reply })
                    .await
                    .flatten()
            }
            _ => self.pending.borrow_mut().take(&state),
        };
        let Some(pending) = pending else {
            return bad_callback("This login is unknown, expired or was already used.");
        };
        if self
            .pending
            .borrow()
            .check_age(&pending, self.clock.now_ms())
            .is_err()
        {
            return bad_callback("This login took too long; please start again.");
        }
        if let Some(err) = form_value(query, "error") {
            tracing::info!(target: LOG, error = %err.escape_debug(), "provider refused the login");
            return bad_callback("The identity provider refused the login.");
        }
        let Some(code) = form_value(query, "code") else {
            return bad_callback("The login answer carries no code.");
        };
        match self.redeem(&code, &pending).await {
            Ok((tokens, claims)) => self.create_session(tokens, &claims, pending.return_to),
            Err(refusal) => refusal,
        }
    }

    /// Exchanges the code and checks the ID token against the pending login.
    async fn redeem(
        &self,
        code: &str,
        pending: &PendingLogin,
    ) -> Result<(TokenResponse, std::rc::Rc<Claims>), Decision> {
        let Some(p) = self.keys.current() else {
            return Err(Decision::Reply(not_ready()));
        };
        let client = self.calls.client();
        let tokens = oidc::exchange_code(
            client,
            &p.meta,
            &self.reg,
            code,
            &pending.redirect_uri,
            &pending.verifier,
        )
        .await
        .map_err(|e| {
            tracing::warn!(target: LOG, error = %e, "code exchange failed");
            bad_callback("The login could not be completed at the identity provider.")
        })?;
        let Some(id_token) = tokens.id_token.as_deref() else {
            return Err(bad_callback("The identity provider sent no ID token."));
        };
        let claims = self.verify_fresh(id_token).await.map_err(|e| {
            tracing::warn!(target: LOG, error = %e, "ID token refused");
            bad_callback("The identity provider's ID token was not valid.")
        })?;
        if claims.nonce() != Some(pending.nonce.as_str()) {
            return Err(bad_callback(
                "The ID token does not belong to this login (nonce).",
            ));
        }
        let Some(sub) = claims.sub() else {
            return Err(bad_callback("The ID token names no subject."));
        };
        let buried = self.tombstones.borrow().buries(
            claims.sid(),
            sub,
            claims.iat().unwrap_or(0),
            self.clock.now_ms(),
        );
        if buried {
            return Err(bad_callback(
                "This login was ended at the identity provider.",
            ));
        }
        Ok((tokens, claims))
    }

    /// Creates the session within `cg.maxSessions` and sends the browser back where it was
    /// going with its cookie.
    fn create_session(
        &self,
        tokens: TokenResponse,
        claims: &Claims,
        return_to: String,
    ) -> Decision {
        let sub = claims.sub().unwrap_or_default();
        // One limit for the whole gateway: reserve a place first, give it back on failure.
        let max = self.settings.max_sessions;
        if self.shared.sessions.fetch_add(1, Ordering::Relaxed) >= max {
            self.shared.sessions.fetch_sub(1, Ordering::Relaxed);
            Metrics::inc(&self.metrics.sessions_rejected);
            tracing::warn!(target: LOG, max, "maxSessions reached; login refused");
            audit::session_rejected(sub, self.worker, max);
            let r = Reply::page(
                503,
                "Service Unavailable",
                "Too many sessions",
                "The gateway has reached its session limit. Please try again later.",
            );
            return Decision::Reply(r.with_header("Retry-After", "30".into()));
        }
        let Ok(id) = SessionId::generate(self.worker, &self.rng) else {
            self.shared.sessions.fetch_sub(1, Ordering::Relaxed);
            return Decision::Reply(Reply::page(
                500,
                "Internal Server Error",
                "Login failed",
                "No random source.",
            ));
        };
        let (now, unix_ms) = (self.clock.now_ms(), self.clock.unix_ms());
        let mut s = Session::new(id, sub.into(), claims.sid().map(Into::into), now);
        s.access_expires_ms = access_expiry(&tokens, now, unix_ms);
        s.refresh_expires_ms = tokens
            .refresh_expires_in
            .filter(|&e| e > 0)
            .map(|e| now + e * 1000)
            .unwrap_or(NEVER);
        s.access_token = tokens.access_token.into();
        s.refresh_token = tokens.refresh_token.unwrap_or_default().into_boxed_str();
        s.id_token = tokens.id_token.unwrap_or_default().into_boxed_str();
        self.store.borrow_mut().insert(s);
        Metrics::inc(&self.metrics.sessions_created);
        tracing::info!(target: LOG, subject = %sub.escape_debug(), sid = ?claims.sid(), worker = self.worker, "session created");
        audit::session_created(sub, claims.sid(), self.worker);
        let cookie = set_cookie(id.encode().as_str(), self.settings.secure_cookie, None);
        Decision::Reply(Reply::redirect(return_to).with_header("Set-Cookie", cookie))
    }

    /// Owner side of [`PeerRequest::TakePending`].
    pub(super) fn take_pending(&self, state: &str) -> Option<PendingLogin> {
        self.pending.borrow_mut().take(state)
    }
}

fn bad_callback(message: &str) -> Decision {
    Decision::Reply(Reply::page(400, "Bad Request", "Login failed", message))
}
