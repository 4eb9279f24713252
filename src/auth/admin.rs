//! The management API's questions about this worker's sessions (Spring Boot's sessions
//! actuator): listing by user, one session, ending one or all of a user's. No tokens leave.
//!
//! With the shared store the answers are the cluster's: a session not cached here is looked
//! up in Redis, and worker 0 alone lists and ends a user's sessions from Redis (the other
//! workers answer nothing, so nothing is counted twice).

use crate::messages::{AdminAnswer, AdminQuery, SessionInfo};
use crate::session::table::Session;
use crate::session::EndReason;

use super::Gate;

impl Gate {
    /// Answers the management listener about this worker's (or the cluster's) sessions.
    pub async fn admin(&self, query: AdminQuery) -> AdminAnswer {
        match &self.shared_store {
            Some(_) => self.admin_shared(query).await,
            None => self.admin_here(query),
        }
    }

    fn admin_here(&self, query: AdminQuery) -> AdminAnswer {
        match query {
            AdminQuery::BySubject(sub) => {
                let store = self.store.borrow();
                let ids = store.ids_by_subject(&sub);
                let found = ids.iter().filter_map(|id| store.get(id));
                AdminAnswer::Sessions(found.map(|s| self.session_info(s)).collect())
            }
            AdminQuery::Get(id) => {
                let store = self.store.borrow();
                AdminAnswer::Sessions(
                    store
                        .get(&id)
                        .map(|s| self.session_info(s))
                        .into_iter()
                        .collect(),
                )
            }
            AdminQuery::End(id) => AdminAnswer::Ended(usize::from(
                self.end_session(&id, EndReason::Admin).is_some(),
            )),
            AdminQuery::EndSubject(sub) => {
                AdminAnswer::Ended(self.end_subject(&sub, EndReason::Admin))
            }
        }
    }

    async fn admin_shared(&self, query: AdminQuery) -> AdminAnswer {
        let Some(sh) = &self.shared_store else {
            return self.admin_here(query);
        };
        match query {
            AdminQuery::Get(id) | AdminQuery::End(id) => {
                self.held(&id).await;
                self.admin_here(query)
            }
            AdminQuery::BySubject(_) | AdminQuery::EndSubject(_) if self.worker != 0 => match query
            {
                AdminQuery::EndSubject(_) => AdminAnswer::Ended(0),
                _ => AdminAnswer::Sessions(Vec::new()),
            },
            AdminQuery::BySubject(sub) => {
                let found = sh.store.sessions_of(&sub, self.epoch()).await;
                let found = found.unwrap_or_default();
                AdminAnswer::Sessions(found.iter().map(|s| self.session_info(s)).collect())
            }
            AdminQuery::EndSubject(sub) => {
                let n = sh
                    .store
                    .hashes_of(None, Some(&sub))
                    .await
                    .map_or(0, |h| h.len());
                self.end_subject(&sub, EndReason::Admin);
                AdminAnswer::Ended(n)
            }
        }
    }

    /// One session as the admin API shows it (no tokens).
    fn session_info(&self, s: &Session) -> SessionInfo {
        let epoch = self.epoch();
        SessionInfo {
            id: s.id().encode().as_str().to_string(),
            subject: s.subject().to_string(),
            sid: s.sid().map(str::to_string),
            worker: self.home(s.id()),
            creation_time_ms: epoch.to_unix(s.created_ms()),
            last_accessed_time_ms: epoch.to_unix(s.last_access_ms()),
            max_inactive_secs: self.store.borrow().idle_timeout_ms() / 1000,
        }
    }
}
