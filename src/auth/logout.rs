//! Every way a session ends: the user's `POST /logout`, a back-channel logout from the
//! provider (validated here, admitted once on worker 0, fanned out to every worker), the
//! admin API, a refused refresh, expiry, and a WebSocket session abandoned past its grace.
//! All of them go through `Gate::end_session` / `Gate::after_end`, the one place that
//! counts, audits, closes the session's WebSockets and makes the calls its end requires.

use std::sync::atomic::Ordering;

use crate::audit::{self, SessionEnd};
use crate::backchannel::{self, LogoutError, LogoutToken};
use crate::http::head::RequestHead;
use crate::http::reply::Reply;
use crate::jwt::JwtError;
use crate::messages::{PeerRequest, WorkerMsg};
use crate::metrics::Metrics;
use crate::oidc;
use crate::session::cookie::set_cookie;
use crate::session::table::Session;
use crate::session::{EndReason, SessionId};

use super::{forbidden, Client, Decision, Gate, LOG};

const LOGOUT_LOG: &str = "sessiongate::logout";

impl Gate {
    /// `POST /logout`: ends the session (wherever it lives) and sends the browser to the
    /// provider's end-session endpoint with the ID token as hint, else to the configured
    /// post-logout page.
    pub(super) async fn logout(&self, head: &RequestHead, buf: &[u8], client: &Client) -> Decision {
        if !self.same_origin(head, buf, client) {
            // A page elsewhere must not log the user out (nor drop their cookie).
            return Decision::Reply(forbidden("cross-site logout refused"));
        }
        let id = self.cookie_session(head, buf);
        let id_token: Option<String> = match id {
            Some(id) if self.home(&id) != self.worker && client.movable => {
                return Decision::HandOff(self.home(&id))
            }
            Some(id) if self.home(&id) != self.worker => self
                .ask_peer(self.home(&id), |reply| PeerRequest::EndUser { id, reply })
                .await
                .flatten(),
            Some(id) => {
                // Not cached here yet: its ID token (the logout hint) is in Redis, and a
                // logout Redis cannot take is not answered as done.
                let shared = self.shared_store.is_some();
                if shared && self.held(&id).await == super::shared::Lookup::Unavailable {
                    return Decision::Reply(super::shared::store_unavailable());
                }
                match shared {
                    true => self
                        .end_now(&id, EndReason::User)
                        .await
                        .map(|s| s.id_token.into()),
                    false => self.end_user_session(&id),
                }
            }
            None => None,
        };
        let post_logout = self.settings.post_logout.as_deref();
        let end_session_url = id_token
            .as_deref()
            .zip(self.keys.current())
            .and_then(|(t, p)| oidc::end_session_url(&p.meta, &self.reg, Some(t), post_logout));
        // Without a provider to send them to, users see that they are signed out (a bare
        // `/` would start a new login at once).
        let location = end_session_url
            .or_else(|| post_logout.map(str::to_string))
            .unwrap_or_else(|| String::from_utf8_lossy(crate::pages::SIGNED_OUT_PATH).into_owned());
        let clear = set_cookie("", self.settings.secure_cookie, Some(0));
        Decision::Reply(Reply::redirect(location).with_header("Set-Cookie", clear))
    }

    /// A user logout of a session of this worker; answers its ID token (the logout hint).
    pub(super) fn end_user_session(&self, id: &SessionId) -> Option<String> {
        self.end_session(id, EndReason::User)
            .map(|s| s.id_token.into())
    }

    /// Ends a session of this worker another worker asked to end (its user went past the
    /// per-user limit there).
    pub fn end_on_request(&self, id: &SessionId, reason: EndReason) {
        self.end_session(id, reason);
    }

    /// Removes one session and does everything its end requires.
    /// With the shared store, the cached copy goes now and the end is the cluster's once
    /// Redis takes it ([`Gate::queue_end`]); the answer is the cached copy.
    pub(super) fn end_session(&self, id: &SessionId, reason: EndReason) -> Option<Session> {
        if self.shared_store.is_some() {
            return self.queue_end(id, reason);
        }
        let s = self.store.borrow_mut().remove(id)?;
        self.after_end(&s, reason);
        Some(s)
    }

    /// Everything that follows a session leaving the store, whatever removed it: the global
    /// count, its WebSockets, then [`Gate::record_end`].
    fn after_end(&self, s: &Session, reason: EndReason) {
        self.shared.sessions.fetch_sub(1, Ordering::Relaxed);
        self.metrics.sessions.fetch_sub(1, Ordering::Relaxed);
        self.shared.users.remove(s.subject(), s.id());
        self.close_websockets(s.id());
        self.record_end(s, reason);
    }

    /// An end as it counts once: metrics, log and audit, and the calls to end the session
    /// elsewhere (with the shared store, on the instance whose end script ended it).
    pub(super) fn record_end(&self, s: &Session, reason: EndReason) {
        self.metrics.session_ended(reason.metric());
        tracing::info!(target: LOGOUT_LOG, subject = %s.subject().escape_debug(), reason = reason.label(), "session ended");
        let end = match reason {
            EndReason::Expired => SessionEnd::Expired,
            other => SessionEnd::Logout {
                kind: other.label(),
            },
        };
        audit::session_ended(s.subject(), s.sid(), self.worker, end);
        self.end_effects(s, reason);
    }

    /// Ends every session whose deadline passed; runs every `sessionCheckIntervalMs`.
    pub fn expire(&self, scratch: &mut Vec<Session>) {
        if self.shared_store.is_some() {
            return; // `shared_tick` does it, with Redis.
        }
        scratch.clear();
        // Pending logins expire here too: only those past their TTL are touched (they wait
        // in age order), so a tick with none due stays near-free.
        self.sweep_pending();
        self.store.borrow_mut().expire(self.clock.now_ms(), scratch);
        for s in scratch.iter() {
            self.after_end(s, EndReason::Expired);
        }
    }

    /// Ends the sessions of one user (admin API): returns how many ended.
    pub fn end_subject(&self, sub: &str, reason: EndReason) -> usize {
        if let Some(sh) = &self.shared_store {
            // Sessions not cached here: by their names in Redis.
            self.end_shared_matching(sh, None, Some(sub), reason);
        }
        let ids = self.store.borrow().ids_by_subject(sub);
        ids.iter()
            .filter(|id| self.end_session(id, reason).is_some())
            .count()
    }

    /// `keep-alive-after-disconnect`: after the grace, a session whose last WebSocket closed
    /// at `closed_at` ends unless a request (or a new socket) came since.
    pub fn end_if_abandoned(&self, id: &SessionId, closed_at: u64) {
        if self.websockets.any_open(id) {
            return;
        }
        let idle = self
            .store
            .borrow()
            .get(id)
            .is_some_and(|s| s.last_access_ms() <= closed_at);
        if idle {
            tracing::info!(target: LOG, session = %id.reference(), "no connection came back after the last WebSocket closed; session ended");
            self.end_session(id, EndReason::Expired);
        }
    }

    /// The `BackchannelLogout` route: validates the token here, then lets worker 0 check
    /// replay and fan the logout out to every worker.
    pub async fn backchannel(&self, body: &[u8]) -> Reply {
        match self.backchannel_inner(body).await {
            Ok(()) => {
                Metrics::inc(&self.metrics.backchannel_logouts);
                Reply::new(200, "OK").with_header("Pragma", "no-cache".into())
            }
            Err(e) => {
                Metrics::inc(&self.metrics.backchannel_refused);
                tracing::info!(target: backchannel::LOG, error = %e, "logout token refused");
                let body =
                    serde_json::json!({"error": e.code(), "error_description": e.to_string()})
                        .to_string();
                Reply::json(400, "Bad Request", body)
            }
        }
    }

    async fn backchannel_inner(&self, body: &[u8]) -> Result<(), LogoutError> {
        let token = backchannel::token_from_form(body)?;
        // Its size only: a logout token is a credential of the provider's.
        tracing::trace!(target: backchannel::LOG, bytes = token.len(), "logout token received");
        let p = self.keys.current().ok_or(LogoutError::NotReady)?;
        let policy = backchannel::Policy {
            issuer: p.meta.issuer.clone(),
            client_id: self.reg.client_id.clone(),
            leeway_secs: self.settings.leeway_secs,
            max_age_secs: self.settings.max_logout_age_secs,
        };
        let t = match backchannel::validate(&token, &p.jwks, &policy, self.clock.unix_secs()) {
            Err(LogoutError::Jwt(JwtError::UnknownKid)) => {
                self.keys.request_refetch();
                return Err(LogoutError::Jwt(JwtError::UnknownKid));
            }
            other => other?,
        };
        tracing::debug!(target: backchannel::LOG, jti = %t.jti.escape_debug(), sid = ?t.sid, "logout token valid");
        if self.shared_store.is_some() {
            self.backchannel_shared(&t).await?;
        }
        let (tx, rx) = flume::bounded(1);
        let msg = WorkerMsg::Backchannel {
            token: t,
            raw: token,
            reply: tx,
        };
        self.peers
            .first()
            .ok_or(LogoutError::NotReady)?
            .send(msg)
            .map_err(|_| LogoutError::NotReady)?;
        rx.recv_async().await.unwrap_or(Err(LogoutError::NotReady))
    }

    /// With the shared store a logout token is answered 200 only once Redis holds its
    /// effect, so the provider's retry covers every failure: the logout is remembered (a
    /// login at any instance that predates it loses), the sessions it names end for the
    /// cluster (their calls made here), and last its `jti` is admitted, the cluster's replay
    /// guard (admitted first, a failure after it would turn the provider's retry into a
    /// "replay"). Worker 0's own guard and the local fan-out still follow.
    async fn backchannel_shared(&self, t: &LogoutToken) -> Result<(), LogoutError> {
        let Some(sh) = &self.shared_store else {
            return Ok(());
        };
        let jti_key_ttl = (self.settings.max_logout_age_secs + self.settings.leeway_secs) * 2000;
        if sh
            .store
            .jti_seen(&t.jti)
            .await
            .map_err(|_| LogoutError::NotReady)?
        {
            return Err(LogoutError::Replayed);
        }
        let sub = t.sub.as_deref().unwrap_or_default();
        let ttl = crate::session::tombstones::TTL_MS;
        sh.store
            .bury(t.sid.as_deref(), sub, t.iat, ttl)
            .await
            .map_err(|_| LogoutError::NotReady)?;
        let hashes = sh
            .store
            .hashes_of(t.sid.as_deref(), t.sub.as_deref())
            .await
            .map_err(|_| LogoutError::NotReady)?;
        let mut gone = Vec::new();
        for hash in hashes {
            match sh
                .store
                .end(&hash, EndReason::Backchannel, self.epoch())
                .await
            {
                Ok(Some(s)) => self.record_end(&s, EndReason::Backchannel),
                // Its key expired unswept: the provider session's set still named it.
                Ok(None) => gone.push(hash),
                // Kept for retry by the store; the provider retries too.
                Err(_) => return Err(LogoutError::NotReady),
            }
        }
        if let (Some(sid), false) = (t.sid.as_deref(), gone.is_empty()) {
            let _ = sh.store.forget_in_sid(sid, &gone).await;
        }
        match sh.store.admit_jti(&t.jti, jti_key_ttl).await {
            Ok(true) => Ok(()),
            Ok(false) => Err(LogoutError::Replayed),
            Err(_) => Err(LogoutError::NotReady),
        }
    }

    /// Worker 0: admits a validated logout token once, fans it out, relays it to listeners.
    pub fn admit_logout(&self, t: LogoutToken, raw: String) -> Result<(), LogoutError> {
        self.replay.borrow_mut().admit(&t, self.clock.unix_secs())?;
        for peer in &self.peers {
            let _ = peer.send(WorkerMsg::EndSessions {
                sid: t.sid.clone(),
                sub: t.sub.clone(),
                iat: t.iat,
            });
        }
        self.relay_logout(&t, &raw);
        Ok(())
    }

    /// Any worker: ends its sessions of a provider logout (by `sid`, else by `sub`), and
    /// remembers the logout so a login that predates it cannot win.
    pub fn end_matching(&self, sid: Option<&str>, sub: Option<&str>, iat: u64) {
        let key = sid.or(sub).unwrap_or_default();
        self.tombstones
            .borrow_mut()
            .record(key, iat, self.clock.now_ms());
        let ids = {
            let store = self.store.borrow();
            match (sid, sub) {
                (Some(sid), _) => store.ids_by_sid(sid),
                (None, Some(sub)) => store.ids_by_subject(sub),
                (None, None) => Vec::new(),
            }
        };
        let n = ids
            .iter()
            .filter(|id| self.end_session(id, EndReason::Backchannel).is_some())
            .count();
        tracing::debug!(target: LOGOUT_LOG, worker = self.worker, sid = ?sid, sub = ?sub, ended = n, "back-channel logout applied");
    }
}
