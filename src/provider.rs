//! The provider thread: discovers the OIDC provider, fetches its JWKS, refreshes it
//! periodically and when a worker meets an unknown `kid` (rate-limited), and hands each new
//! [`ProviderState`] to every worker by message. Workers never wait on it: until the first
//! state arrives they answer logins with 503, and key lookups stay lock-free.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::client::HttpClient;
use crate::config::{Config, HttpUrl};
use crate::messages::{Inbox, WorkerMsg};
use crate::oidc::{self, ProviderMeta, ProviderState};

const LOG: &str = "sessiongate::provider";
/// Periodic JWKS refresh, so a key the provider retires is dropped here too.
const JWKS_REFRESH: Duration = Duration::from_secs(300);
/// At most one unknown-kid refetch per this period: a flood of forged kids costs one call.
const KID_REFETCH_MIN_GAP: Duration = Duration::from_secs(5);
const RETRY_MIN: Duration = Duration::from_millis(250);
const RETRY_MAX: Duration = Duration::from_secs(30);

/// How workers ask for a JWKS refetch.
#[derive(Clone)]
pub struct RefreshRequester(flume::Sender<()>);

impl RefreshRequester {
    /// A requester and the receiving end the provider thread (or a test) listens on.
    pub fn channel() -> (RefreshRequester, flume::Receiver<()>) {
        let (tx, rx) = flume::bounded(1);
        (RefreshRequester(tx), rx)
    }

    /// Asks once; repeated asks while one is pending collapse into it.
    pub fn request(&self) {
        let _ = self.0.try_send(());
    }
}

/// The issuer of the (single) registration's provider, when login is configured.
pub fn issuer(config: &Config) -> Option<HttpUrl> {
    let reg = config.oauth2.registrations.first()?;
    let p = config
        .oauth2
        .providers
        .iter()
        .find(|p| p.id == reg.provider)?;
    p.issuer_uri.clone()
}

/// Starts the provider thread. Returns the handle workers use to ask for a refetch.
pub fn spawn(
    issuer: HttpUrl,
    tls: Arc<rustls::ClientConfig>,
    workers: Vec<Inbox>,
) -> std::io::Result<RefreshRequester> {
    let (tx, rx) = flume::bounded(1);
    std::thread::Builder::new()
        .name("sessiongate-provider".into())
        .spawn(move || {
            let mut rt = match monoio::RuntimeBuilder::<monoio::LegacyDriver>::new().enable_timer().build() {
                Ok(rt) => rt,
                Err(e) => {
                    tracing::error!(target: LOG, error = %e, "cannot start the provider thread's runtime");
                    return;
                }
            };
            rt.block_on(run(issuer, tls, workers, rx));
        })?;
    Ok(RefreshRequester(tx))
}

async fn run(
    issuer: HttpUrl,
    tls: Arc<rustls::ClientConfig>,
    workers: Vec<Inbox>,
    rx: flume::Receiver<()>,
) {
    let client = HttpClient::new(tls, Duration::from_secs(5), Duration::from_secs(10));
    let meta = discover_until_done(&client, &issuer).await;
    let mut generation = 0u64;
    let mut last_fetch;
    let mut digest: Vec<u8> = Vec::new();
    let mut delay = RETRY_MIN;
    let mut state: Option<Arc<ProviderState>> = None;
    // A refetch a worker asked for: answered even when nothing changed, so the requests
    // waiting for new keys stop waiting.
    let mut requested = false;
    loop {
        match oidc::fetch_jwks(&client, &meta).await {
            Ok((set, body_digest)) => {
                last_fetch = Instant::now();
                delay = RETRY_MIN;
                // Compare the documents, not kids: a key replaced under the same kid counts.
                let changed = body_digest != digest;
                if changed {
                    digest = body_digest;
                    generation += 1;
                    let jwks = Arc::new(set);
                    tracing::info!(target: LOG, keys = jwks.len(), generation, "provider keys loaded");
                    state = Some(Arc::new(ProviderState {
                        meta: meta.clone(),
                        jwks,
                        generation,
                    }));
                }
                if let Some(state) = state.as_ref().filter(|_| changed || requested) {
                    for w in &workers {
                        let _ = w.send(WorkerMsg::Provider(state.clone()));
                    }
                }
                requested = false;
            }
            Err(e) => {
                tracing::warn!(target: LOG, error = %e, retry_in = ?delay, "JWKS fetch failed");
                monoio::time::sleep(delay).await;
                delay = (delay * 2).min(RETRY_MAX);
                continue;
            }
        }
        // Sleep until the periodic refresh or an unknown-kid request, whichever is first.
        let wait = if state.is_some() { JWKS_REFRESH } else { delay };
        monoio::select! {
            _ = monoio::time::sleep(wait) => {}
            r = rx.recv_async() => {
                if r.is_err() {
                    return; // every worker is gone
                }
                let since = last_fetch.elapsed();
                if since < KID_REFETCH_MIN_GAP {
                    monoio::time::sleep(KID_REFETCH_MIN_GAP - since).await;
                }
                tracing::debug!(target: LOG, "JWKS refetch requested (unknown kid)");
                requested = true;
            }
        }
    }
}

async fn discover_until_done(client: &HttpClient, issuer: &HttpUrl) -> ProviderMeta {
    let mut delay = RETRY_MIN;
    loop {
        match oidc::discover(client, issuer).await {
            Ok(meta) => {
                tracing::info!(target: LOG, issuer = %meta.issuer, "provider discovered");
                return meta;
            }
            Err(e) => {
                tracing::warn!(target: LOG, issuer = %issuer.original, error = %e, retry_in = ?delay, "provider discovery failed");
                monoio::time::sleep(delay).await;
                delay = (delay * 2).min(RETRY_MAX);
            }
        }
    }
}
