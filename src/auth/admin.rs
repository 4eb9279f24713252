//! The management API's questions about this worker's sessions (Spring Boot's sessions
//! actuator): listing by user, one session, ending one or all of a user's. No tokens leave.

use crate::messages::{AdminAnswer, AdminQuery, SessionInfo};
use crate::session::table::Session;
use crate::session::EndReason;

use super::Gate;

impl Gate {
    /// Answers the management listener about this worker's sessions.
    pub fn admin(&self, query: AdminQuery) -> AdminAnswer {
        let epoch_unix_ms = self.clock.unix_ms().saturating_sub(self.clock.now_ms());
        let store = self.store.borrow();
        let idle = store.idle_timeout_ms() / 1000;
        let info = |s: &Session| SessionInfo {
            id: s.id().encode().as_str().to_string(),
            subject: s.subject().to_string(),
            sid: s.sid().map(str::to_string),
            worker: self.worker,
            creation_time_ms: epoch_unix_ms + s.created_ms(),
            last_accessed_time_ms: epoch_unix_ms + s.last_access_ms(),
            max_inactive_secs: idle,
        };
        match query {
            AdminQuery::BySubject(sub) => AdminAnswer::Sessions(
                store
                    .ids_by_subject(&sub)
                    .iter()
                    .filter_map(|id| store.get(id))
                    .map(info)
                    .collect(),
            ),
            AdminQuery::Get(id) => {
                AdminAnswer::Sessions(store.get(&id).map(info).into_iter().collect())
            }
            AdminQuery::End(id) => {
                drop(store);
                AdminAnswer::Ended(usize::from(
                    self.end_session(&id, EndReason::Admin).is_some(),
                ))
            }
            AdminQuery::EndSubject(sub) => {
                drop(store);
                AdminAnswer::Ended(self.end_subject(&sub, EndReason::Admin))
            }
        }
    }
}
