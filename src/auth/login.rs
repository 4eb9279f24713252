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
use crate::messages::{PeerRequest, WorkerMsg};
use crate::metrics::Metrics;
use crate::oidc::{self, TokenResponse};
use crate::session::cookie::{cookie_value, login_cookie_name, set_cookie, set_login_cookie};
use crate::session::pending::{Missing, PendingLogin, ShareExceeded, MAX_RETURN_TO};
use crate::session::table::{Session, NEVER};
use crate::session::{EndReason, SessionId};
use crate::store::Created;

use super::refresh::access_expiry;
use super::verify::Purpose;
use super::{not_ready, query, safe_return, Client, Decision, Gate, LOG};

/// A login-binding cookie value: 24 random bytes, base64url.
const BINDING_LEN: usize = 32;

impl Gate {
    /// Redirects a browser to the provider's login, remembering what the callback needs,
    /// bound to this browser by its login cookie.
    pub(super) async fn start_login(
        &self,
        head: &RequestHead,
        buf: &[u8],
        client: &Client,
    ) -> Decision {
        let Some(p) = self.keys.current() else {
            return Decision::Reply(not_ready());
        };
        let Some(redirect_uri) = self.redirect_uri(head, buf, client) else {
            return self.unknown_host();
        };
        let target = head.target(buf);
        let return_to = match target.len() <= MAX_RETURN_TO {
            true => safe_return(&String::from_utf8_lossy(target)),
            false => "/".to_string(),
        };
        // One binding per browser, shared by its tabs' logins.
        let secure = self.settings.secure_cookie;
        let existing = cookie_value(head, buf, login_cookie_name(secure)).filter(|v| {
            v.len() == BINDING_LEN
                && v.iter()
                    .all(|&b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        });
        let binding = match existing {
            Some(v) => String::from_utf8_lossy(v).into_owned(),
            None => oidc::random_token(&self.rng, 24),
        };
        let state = format!("{:02x}{}", self.worker, oidc::random_token(&self.rng, 24));
        let nonce = oidc::random_token(&self.rng, 24);
        let verifier = oidc::random_token(&self.rng, 32);
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
            browser: binding_hash(binding.as_bytes()),
            client: self.client_ip(head, buf, client.peer),
        };
        // With the shared store a copy goes to Redis (the provider may send the browser back
        // to any instance) once the local table admitted it: its limits bound both.
        let shared_copy = self
            .shared_store
            .as_ref()
            .map(|_| serde_json::to_vec(&login).expect("pending login serialises"));
        let inserted = self.pending.borrow_mut().insert(state.clone(), login, now);
        match inserted {
            Ok(evicted) => {
                self.metrics
                    .pending_logins_evicted(evicted.expired, evicted.full);
                self.forget_shared_pending(evicted.full_states);
            }
            Err(ShareExceeded) => {
                Metrics::inc(&self.metrics.logins_refused_share);
                let r = self.pages.error(
                    503,
                    "Service Unavailable",
                    "Too many logins",
                    "Too many logins are in progress from your network; try again shortly.",
                );
                return Decision::Reply(r.with_header("Retry-After", "10".into()));
            }
        }
        if let (Some(sh), Some(copy)) = (&self.shared_store, shared_copy) {
            let ttl_ms = self.pending.borrow().ttl_secs() * 1000;
            if sh.store.put_pending(&state, &copy, ttl_ms).await.is_err() {
                return Decision::Reply(super::shared::store_unavailable());
            }
        }
        Metrics::inc(&self.metrics.logins_started);
        let mut r = Reply::redirect(location);
        if existing.is_none() {
            let max_age = self.pending.borrow().ttl_secs();
            r = r.with_header("Set-Cookie", set_login_cookie(&binding, secure, max_age));
        }
        Decision::Reply(r)
    }

    /// `spring.security.oauth2.client.registration.<id>.redirect-uri` (Spring's default
    /// `{baseUrl}/login/oauth2/code/{registrationId}`), with `{baseUrl}` from
    /// `sessiongate.public-url` or a Host known to be this gateway's; `None` otherwise.
    fn redirect_uri(&self, head: &RequestHead, buf: &[u8], client: &Client) -> Option<String> {
        let base = self.base_url(head, buf, client)?;
        Some(match &self.reg.redirect_uri {
            Some(t) => t
                .replace("{baseUrl}", &base)
                .replace("{registrationId}", &self.reg.id)
                .replace("{action}", "login"),
            None => format!("{base}/login/oauth2/code/{}", self.reg.id),
        })
    }

    /// The provider's answer at `/login/oauth2/code/<registration>`: finished only in the
    /// browser that started the login.
    pub(super) async fn callback(
        &self,
        head: &RequestHead,
        buf: &[u8],
        client: &Client,
    ) -> Decision {
        let query = query(head.target(buf));
        let Some(state) = form_value(query, "state") else {
            return self.bad_callback("The login answer carries no state.");
        };
        let browser = cookie_value(head, buf, login_cookie_name(self.settings.secure_cookie))
            .map(binding_hash)
            .unwrap_or([0; 32]);
        // The state names the worker that holds the pending login.
        let owner = state.get(..2).and_then(|h| u8::from_str_radix(h, 16).ok());
        let taken = match owner {
            _ if self.shared_store.is_some() => self.take_shared_pending(&state, &browser).await,
            Some(o) if o != self.worker && client.movable && usize::from(o) < self.peers.len() => {
                return Decision::HandOff(o)
            }
            Some(o) if o != self.worker => {
                let state = state.clone();
                self.ask_peer(o, |reply| PeerRequest::TakePending {
                    state,
                    browser,
                    reply,
                })
                .await
                .unwrap_or(Err(Missing::Unknown))
            }
            _ => self.take_pending(&state, &browser),
        };
        let pending = match taken {
            Ok(p) => p,
            Err(missing) => return self.no_pending_login(head, buf, missing).await,
        };
        if let Some(err) = form_value(query, "error") {
            tracing::info!(target: LOG, error = %err.escape_debug(), "provider refused the login");
            return self.bad_callback("The identity provider refused the login.");
        }
        let Some(code) = form_value(query, "code") else {
            return self.bad_callback("The login answer carries no code.");
        };
        match self.redeem(&code, &pending).await {
            Ok((tokens, claims)) => {
                self.create_session(tokens, &claims, pending.return_to)
                    .await
            }
            Err(refusal) => refusal,
        }
    }

    /// A callback whose login cannot be finished here. Opened again (the Back button) by a
    /// user who is logged in, it sends them on to where they were going.
    async fn no_pending_login(&self, head: &RequestHead, buf: &[u8], missing: Missing) -> Decision {
        let logged_in = match self.cookie_session(head, buf) {
            Some(id) => self.session_alive(&id).await,
            None => false,
        };
        match missing {
            Missing::Used { return_to } if logged_in => Decision::Reply(Reply::redirect(return_to)),
            Missing::Unknown if logged_in => Decision::Reply(Reply::redirect("/".into())),
            Missing::Expired => self.bad_callback("This login took too long; please start again."),
            Missing::OtherBrowser => {
                tracing::info!(target: LOG, "login callback refused: started in another browser");
                self.bad_callback(
                    "This login was started in another browser; please start again here.",
                )
            }
            _ => self.bad_callback("This login is unknown, expired or was already used."),
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
        let started = std::time::Instant::now();
        let tokens = oidc::exchange_code(
            client,
            &p.meta,
            &self.reg,
            code,
            &pending.redirect_uri,
            &pending.verifier,
        )
        .await;
        self.metrics
            .provider_call("code_exchange", started.elapsed());
        let tokens = tokens.map_err(|e| {
            tracing::warn!(target: LOG, error = %e, "code exchange failed");
            self.bad_callback("The login could not be completed at the identity provider.")
        })?;
        let Some(id_token) = tokens.id_token.as_deref() else {
            return Err(self.bad_callback("The identity provider sent no ID token."));
        };
        let claims = self
            .verify_fresh(id_token, Purpose::Login)
            .await
            .map_err(|e| {
                tracing::warn!(target: LOG, error = %e, "ID token refused");
                self.bad_callback("The identity provider's ID token was not valid.")
            })?;
        if claims.nonce() != Some(pending.nonce.as_str()) {
            return Err(self.bad_callback("The ID token does not belong to this login (nonce)."));
        }
        let Some(sub) = claims.sub() else {
            return Err(self.bad_callback("The ID token names no subject."));
        };
        let buried = self.tombstones.borrow().buries(
            claims.sid(),
            sub,
            claims.iat().unwrap_or(0),
            self.clock.now_ms(),
        );
        let buried = buried
            || match &self.shared_store {
                Some(sh) => sh
                    .store
                    .buried(claims.sid(), sub, claims.iat().unwrap_or(0))
                    .await
                    .unwrap_or(false),
                None => false,
            };
        if buried {
            return Err(self.bad_callback("This login was ended at the identity provider."));
        }
        Ok((tokens, claims))
    }

    /// Creates the session within `cg.maxSessions` (and the user's oldest session ends past
    /// `sessiongate.max-sessions-per-user`), and sends the browser back where it was going
    /// with its cookie.
    async fn create_session(
        &self,
        tokens: TokenResponse,
        claims: &Claims,
        return_to: String,
    ) -> Decision {
        let sub = claims.sub().unwrap_or_default();
        // One limit for the whole gateway: reserve a place first, give it back on failure.
        // With the shared store the limit is the cluster's, checked where it is stored.
        let max = self.settings.max_sessions;
        let local = self.shared_store.is_none();
        if local && self.shared.sessions.fetch_add(1, Ordering::Relaxed) >= max {
            self.shared.sessions.fetch_sub(1, Ordering::Relaxed);
            return self.sessions_full(sub);
        }
        let Ok(id) = SessionId::generate(self.worker, &self.rng) else {
            if local {
                self.shared.sessions.fetch_sub(1, Ordering::Relaxed);
            }
            return Decision::Reply(self.pages.error(
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
        if let Some(sh) = &self.shared_store {
            let per_user = self.settings.max_sessions_per_user;
            let iat = claims.iat().unwrap_or(0);
            match sh.store.create(&s, self.epoch(), max, per_user, iat).await {
                Ok(Created::Stored { superseded }) => {
                    self.cache(s, 0);
                    for hash in superseded {
                        self.end_shared_hash(hash, EndReason::Superseded);
                    }
                }
                Ok(Created::Full) => return self.sessions_full(sub),
                Ok(Created::Buried) => {
                    return self.bad_callback("This login was ended at the identity provider.")
                }
                Err(e) => {
                    tracing::warn!(target: LOG, error = %e, "session not stored; login refused");
                    return Decision::Reply(super::shared::store_unavailable());
                }
            }
        } else {
            self.store.borrow_mut().insert(s);
            self.metrics.sessions.fetch_add(1, Ordering::Relaxed);
        }
        Metrics::inc(&self.metrics.sessions_created);
        tracing::info!(target: LOG, subject = %sub.escape_debug(), sid = ?claims.sid(), worker = self.worker, "session created");
        audit::session_created(sub, claims.sid(), self.worker);
        if local {
            let superseded = self
                .shared
                .users
                .add(sub, id, self.settings.max_sessions_per_user);
            for old in superseded {
                self.supersede(old);
            }
        }
        let cookie = set_cookie(id.encode().as_str(), self.settings.secure_cookie, None);
        Decision::Reply(Reply::redirect(return_to).with_header("Set-Cookie", cookie))
    }

    /// `cg.maxSessions` is reached: the login is refused with a page that says so.
    fn sessions_full(&self, sub: &str) -> Decision {
        let max = self.settings.max_sessions;
        Metrics::inc(&self.metrics.sessions_rejected);
        tracing::warn!(target: LOG, max, "maxSessions reached; login refused");
        audit::session_rejected(sub, self.worker, max);
        let r = self.pages.error(
            503,
            "Service Unavailable",
            "Too many sessions",
            "The gateway has reached its session limit. Please try again later.",
        );
        Decision::Reply(r.with_header("Retry-After", "30".into()))
    }

    /// With the shared store: the pending login of `state`, taken once for the cluster
    /// (whichever instance the provider sent the browser back to), if this browser
    /// started it.
    async fn take_shared_pending(
        &self,
        state: &str,
        browser: &[u8; 32],
    ) -> Result<PendingLogin, Missing> {
        let Some(sh) = &self.shared_store else {
            return Err(Missing::Unknown);
        };
        // This worker's own copy (when it started the login) only says how it went.
        let local = self.take_pending(state, browser);
        match sh.store.take_pending(state).await {
            Ok(Some(p)) if crate::session::same_secret(&p.browser, browser) => Ok(p),
            Ok(Some(_)) => Err(Missing::OtherBrowser),
            Ok(None) => match local {
                Ok(_) => Err(Missing::Unknown),
                Err(missing) => Err(missing),
            },
            Err(_) => Err(Missing::Unknown),
        }
    }

    /// Ends a session its user went past the per-user limit with, wherever it lives.
    fn supersede(&self, id: SessionId) {
        if id.owner() == self.worker {
            self.end_session(&id, EndReason::Superseded);
        } else if let Some(owner) = self.peers.get(usize::from(id.owner())) {
            let _ = owner.send(WorkerMsg::EndSession(id, EndReason::Superseded));
        }
    }

    fn bad_callback(&self, message: &str) -> Decision {
        Decision::Reply(
            self.pages
                .error(400, "Bad Request", "Login failed", message),
        )
    }

    /// A login reached under a name the gateway cannot vouch for (no
    /// `sessiongate.public-url`).
    fn unknown_host(&self) -> Decision {
        Decision::Reply(self.pages.error(
            400,
            "Bad Request",
            "Unknown address",
            "This gateway does not know the address it was reached at, so it cannot send you to log in. The operator sets it with sessiongate.public-url.",
        ))
    }

    /// Owner side of [`PeerRequest::TakePending`].
    pub(super) fn take_pending(
        &self,
        state: &str,
        browser: &[u8; 32],
    ) -> Result<PendingLogin, Missing> {
        let now = self.clock.now_ms();
        self.pending.borrow_mut().take(state, browser, now)
    }

    /// Sweeps pending logins past their TTL (the worker's expiry tick).
    pub(super) fn sweep_pending(&self) {
        let n = self.pending.borrow_mut().sweep(self.clock.now_ms());
        self.metrics.pending_logins_evicted(n, 0);
    }
}

/// The SHA-256 a pending login keeps of its browser's binding.
fn binding_hash(value: &[u8]) -> [u8; 32] {
    let d = ring::digest::digest(&ring::digest::SHA256, value);
    let mut h = [0; 32];
    h.copy_from_slice(d.as_ref());
    h
}
