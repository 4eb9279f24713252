//! Receivers of the gateway's outgoing calls (`cg.logoutListeners`, `cg.freshTokenListeners`,
//! a `cg.censhareLogoutUrl`): a recording backend that notes when each call arrived and
//! answers from a script, by arrival order, then with 200.
//!
//! ```ignore
//! let flaky = Listener::scripted(&[503, 503]); // 503, 503, then 200
//! let calls = flaky.wait_for_calls(3, Duration::from_secs(10));
//! ```

use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::backend::{Backend, Reply, Request};
use crate::oidc::browser::parse_form;
use crate::oidc::provider::bearer;

/// One call as the listener received it.
#[derive(Clone, Debug)]
pub struct Call {
    pub at: Instant,
    pub request: Request,
}

impl Call {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.request.header(name)
    }

    /// The token of an `Authorization: Bearer` header.
    pub fn bearer(&self) -> Option<String> {
        bearer(self.header("authorization"))
    }

    /// The body as an `application/x-www-form-urlencoded` form.
    pub fn form(&self) -> Vec<(String, String)> {
        parse_form(&String::from_utf8_lossy(&self.request.body))
    }

    /// The first value of form field `name`.
    pub fn form_value(&self, name: &str) -> Option<String> {
        self.form()
            .into_iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v)
    }

    /// The body as JSON; panics if it is not.
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.request.body).unwrap_or_else(|e| {
            panic!(
                "call body is not JSON ({e}): {:?}",
                String::from_utf8_lossy(&self.request.body)
            )
        })
    }
}

pub struct Listener {
    backend: Backend,
    calls: Arc<Mutex<Vec<Call>>>,
}

impl Listener {
    /// Answers every call with 200.
    pub fn ok() -> Listener {
        Listener::scripted(&[])
    }

    /// Answers the n-th call (0-based, in arrival order) with `statuses[n]`, later ones
    /// with 200.
    pub fn scripted(statuses: &[u16]) -> Listener {
        let calls: Arc<Mutex<Vec<Call>>> = Arc::new(Mutex::new(Vec::new()));
        let script = statuses.to_vec();
        let sink = calls.clone();
        let backend = Backend::replying(move |r| {
            let mut calls = sink.lock().unwrap();
            let status = script.get(calls.len()).copied().unwrap_or(200);
            calls.push(Call {
                at: Instant::now(),
                request: r.clone(),
            });
            Reply::status(status).body(if status < 400 { "ok" } else { "not now" })
        });
        Listener { backend, calls }
    }

    /// `http://127.0.0.1:PORT` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.backend.uri())
    }

    /// The calls so far, in arrival order.
    pub fn calls(&self) -> Vec<Call> {
        self.calls.lock().unwrap().clone()
    }

    /// Waits (bounded) until at least `n` calls arrived; returns them all.
    pub fn wait_for_calls(&self, n: usize, within: Duration) -> Vec<Call> {
        let deadline = Instant::now() + within;
        loop {
            let calls = self.calls();
            if calls.len() >= n {
                return calls;
            }
            assert!(
                Instant::now() < deadline,
                "listener {} got {} calls within {within:?}, expected {n}: {:?}",
                self.backend.uri(),
                calls.len(),
                calls
                    .iter()
                    .map(|c| &c.request.head.start)
                    .collect::<Vec<_>>()
            );
            thread::sleep(Duration::from_millis(10));
        }
    }
}
