//! The access banner (`sessiongate.access-banner`): a page every session must accept once
//! before its first request goes upstream. Navigations get the page with an Accept button;
//! other requests get 403 JSON until then.

use crate::http::form::{form_encode, form_value};
use crate::http::head::RequestHead;
use crate::http::reply::Reply;
use crate::messages::{PeerRequest, WorkerMsg};
use crate::session::SessionId;

use super::{forbidden, is_navigation, query, safe_return, Client, Decision, Gate};

/// Where the banner's form posts.
pub const ACCEPT_PATH: &[u8] = b"/sessiongate/banner/accept";

impl Gate {
    /// The banner for a session that has not accepted it yet.
    pub(super) fn banner_page(&self, head: &RequestHead, buf: &[u8]) -> Reply {
        if !is_navigation(head, buf) {
            return Reply::json(
                403,
                "Forbidden",
                "{\"error\":\"access_banner_not_accepted\"}".into(),
            );
        }
        let target = safe_return(&String::from_utf8_lossy(head.target(buf)));
        let mut action = String::from_utf8_lossy(ACCEPT_PATH).into_owned();
        action.push_str("?return=");
        form_encode(&mut action, &target);
        let banner = self.settings.banner.as_deref().unwrap_or("");
        self.pages.banner(banner, &action)
    }

    /// `POST /sessiongate/banner/accept?return=...`: records the acceptance in the session
    /// (wherever it lives) and sends the browser back.
    pub(super) fn accept_banner(
        &self,
        head: &RequestHead,
        buf: &[u8],
        client: &Client,
    ) -> Decision {
        if !self.same_origin(head, buf, client) {
            // Accepting the banner is the user's act; a page elsewhere cannot do it for them.
            return Decision::Reply(forbidden("cross-site banner acceptance refused"));
        }
        let back = safe_return(
            &form_value(query(head.target(buf)), "return").unwrap_or_else(|| "/".into()),
        );
        if let Some(id) = self.cookie_session(head, buf) {
            if self.home(&id) == self.worker {
                self.accept_banner_here(&id);
            } else if client.movable {
                return Decision::HandOff(self.home(&id));
            } else if let Some(peer) = self.peers.get(usize::from(self.home(&id))) {
                let _ = peer.send(WorkerMsg::Peer(PeerRequest::AcceptBanner { id }));
            }
        }
        Decision::Reply(Reply::redirect(back))
    }

    pub(super) fn accept_banner_here(&self, id: &SessionId) {
        if let Some(s) = self.store.borrow_mut().touch(id, self.clock.now_ms()) {
            s.banner_accepted = true;
        }
        self.share_banner_acceptance(id);
    }
}
