//! The gate over the shared store (`sessiongate.session-store: redis`): the worker's
//! session table becomes a cache of the sessions it serves, and [`crate::store`] holds
//! them for the cluster.
//!
//! - A miss loads the session from Redis (`Gate::held`; concurrent requests of
//!   one session wait for the one load).
//! - Uses are collected in a set and written back in one pipeline a tick (once a second,
//!   or `sessionCheckIntervalMs` if shorter; [`Gate::shared_tick`]): a cache hit costs no
//!   Redis command.
//! - Every end goes through `Gate::queue_end`: the cached copy goes at once, the end
//!   script runs in the background, and the calls the end requires are made by whichever
//!   instance's script ended it (exactly once). While Redis is away ends wait, in order.
//! - Expiry for the cluster is claimed by worker 0 of every instance, each claim atomic;
//!   the cache's own expiry only evicts (a session used elsewhere is simply loaded again).
//! - [`Gate::follow_ends`] evicts what other instances ended; after a lost connection it
//!   re-checks the whole cache before trusting it again.
//! - Redis away: cached sessions are served for `redis-outage-grace-sec`, then refused
//!   with 503; new logins get 503 with Retry-After; readiness answers 503.

use std::cell::RefCell;
use std::sync::atomic::Ordering;
use std::time::Duration;

use hashbrown::{HashMap, HashSet};

use crate::dispatcher::Call;
use crate::http::reply::Reply;
use crate::redis::Redis;
use crate::session::record::Epoch;
use crate::session::table::Session;
use crate::session::{EndReason, SessionId};
use crate::signal::Signal;
use crate::store::{self, SharedSessions};

use super::{Gate, LOG};

/// Expired sessions one sweep claims at most (the next tick takes the rest).
const CLAIMS_PER_TICK: usize = 512;
/// How long a follower's XREAD blocks before it asks again.
const FOLLOW_BLOCK_MS: u64 = 5_000;
/// How long a follower waits before it tries again after a failed call.
const FOLLOW_RETRY: Duration = Duration::from_millis(200);

/// The cache's bookkeeping beside the session table.
pub struct SharedState {
    pub store: SharedSessions,
    /// The connection that follows the ends stream (a blocking read holds it).
    ends: Redis,
    /// Cached sessions by their Redis name, and the token version each was loaded at.
    /// (By the hash's 32 bytes, not its 64 hex digits: two small entries per session.)
    by_hash: RefCell<HashMap<[u8; 32], SessionId>>,
    versions: RefCell<HashMap<SessionId, i64>>,
    /// Sessions used since the last write-back.
    used: RefCell<HashSet<SessionId>>,
    /// Loads in flight, so concurrent requests of one session load it once.
    loading: RefCell<HashMap<SessionId, Signal>>,
    /// Sessions ended lately (here or, by the stream, elsewhere): a load that read the
    /// record before its end must not cache it after.
    recently_ended: RefCell<RecentHashes>,
    /// Sessions Redis lately said it does not have.
    recently_missing: RefCell<RecentHashes>,
    /// Ends to run on Redis, in order; woken by `wake`.
    ends_queue: RefCell<std::collections::VecDeque<Job>>,
    wake: RefCell<Signal>,
}

/// An end for the cluster, waiting its turn.
enum Job {
    /// One session, by its name in Redis.
    End(String, EndReason),
    /// Every session of a provider session (`sid`) or of a user, looked up in Redis.
    Matching {
        sid: Option<String>,
        sub: Option<String>,
        reason: EndReason,
    },
    /// The access banner was accepted in this session.
    Banner(SessionId),
    /// This round's fresh-token calls of the sessions used here, each session's sent if
    /// this instance claims its round (one pipeline for all).
    FreshTokens(Vec<(SessionId, Vec<Call>)>),
    /// Pending logins this worker's full table pushed out: their copies in Redis go too.
    ForgetPending(Vec<String>),
}

/// What a lookup in Redis found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lookup {
    /// Now in this worker's cache.
    Found,
    /// The cluster has no such session (ended, expired, never made).
    Missing,
    /// Redis could not say: the answer is 503, never "log in again".
    Unavailable,
}

/// The longest a request waits for its session's load.
const LOAD_WAIT: Duration = Duration::from_secs(10);

/// A load in flight: waiting requests are released when it ends, however it ends (also
/// when its request goes away mid-load).
struct Loading<'a> {
    sh: &'a SharedState,
    id: SessionId,
    done: Signal,
}

impl<'a> Loading<'a> {
    fn start(sh: &'a SharedState, id: SessionId) -> Loading<'a> {
        let done = Signal::new();
        sh.loading.borrow_mut().insert(id, done.clone());
        Loading { sh, id, done }
    }
}

impl Drop for Loading<'_> {
    fn drop(&mut self) {
        self.sh.loading.borrow_mut().remove(&self.id);
        self.done.trigger();
    }
}

/// Session names seen lately, for `keep_ms`, at most `max` of them (the oldest go first).
struct RecentHashes {
    keep_ms: u64,
    max: usize,
    order: std::collections::VecDeque<(u64, String)>,
    seen: HashMap<String, u64>,
}

impl RecentHashes {
    fn new(keep_ms: u64, max: usize) -> RecentHashes {
        RecentHashes {
            keep_ms,
            max,
            order: std::collections::VecDeque::new(),
            seen: HashMap::new(),
        }
    }

    fn add(&mut self, hash: &str, now: u64) {
        while let Some((at, _)) = self.order.front() {
            if now.saturating_sub(*at) < self.keep_ms && self.order.len() < self.max {
                break;
            }
            if let Some((at, old)) = self.order.pop_front() {
                // Only if not seen again since (then a later entry stands for it).
                if self.seen.get(&old) == Some(&at) {
                    self.seen.remove(&old);
                }
            }
        }
        self.seen.insert(hash.to_string(), now);
        self.order.push_back((now, hash.to_string()));
    }

    fn contains(&self, hash: &str, now: u64) -> bool {
        self.seen
            .get(hash)
            .is_some_and(|at| now.saturating_sub(*at) < self.keep_ms)
    }
}

/// Ends seen lately: longer than any load waits for Redis ([`LOAD_WAIT`]).
const ENDS_KEPT_MS: u64 = 30_000;
/// Sessions Redis did not have, remembered briefly: a browser or client repeating a stale
/// or made-up cookie costs no Redis round trip each time (ids are random: a name that was
/// missing never comes to exist).
const MISSING_KEPT_MS: u64 = 10_000;

impl SharedState {
    pub fn new(store: SharedSessions, ends: Redis) -> SharedState {
        SharedState {
            store,
            ends,
            by_hash: RefCell::default(),
            versions: RefCell::default(),
            used: RefCell::default(),
            loading: RefCell::default(),
            recently_ended: RefCell::new(RecentHashes::new(ENDS_KEPT_MS, 500_000)),
            recently_missing: RefCell::new(RecentHashes::new(MISSING_KEPT_MS, 50_000)),
            ends_queue: RefCell::default(),
            wake: RefCell::new(Signal::new()),
        }
    }

    /// At shutdown: the follower's blocking read is cut short; the store connection stays
    /// for the ends still queued (the worker's exit closes it).
    pub fn close_when_idle(&self) {
        self.ends.close();
        self.wake.borrow().trigger();
    }
}

impl Gate {
    /// `session-store: redis`.
    pub fn has_shared_store(&self) -> bool {
        self.shared_store.is_some()
    }

    /// Ends not yet taken by Redis (shutdown waits for them within its grace).
    pub fn shared_ends_waiting(&self) -> usize {
        self.shared_store.as_ref().map_or(0, |sh| {
            sh.ends_queue.borrow().len() + sh.store.ends_waiting()
        })
    }

    pub(super) fn epoch(&self) -> Epoch {
        Epoch::new(self.clock.now_ms(), self.clock.unix_ms())
    }

    /// The worker whose cache serves a session: the one its id names, folded onto this
    /// instance's workers (another instance may run more).
    pub(super) fn home(&self, id: &SessionId) -> u8 {
        match &self.shared_store {
            Some(_) => (usize::from(id.owner()) % self.peers.len().max(1)) as u8,
            None => id.owner(),
        }
    }

    /// With the shared store, Redis has been away longer than the grace (sessions are
    /// refused rather than served from a cache that can no longer learn of ends), or is
    /// away and the session is not cached here: 503 with Retry-After.
    pub(super) fn store_outage(&self, id: &SessionId) -> Option<Reply> {
        let sh = self.shared_store.as_ref()?;
        // A session not cached here cannot be looked up: "try again", not "log in".
        let uncached = !sh.store.is_up() && self.store.borrow().get(id).is_none();
        if !uncached && sh.store.serving(self.clock.unix_ms()) {
            return None;
        }
        Some(store_unavailable())
    }

    /// Notes a use for the next write-back.
    pub(super) fn note_use(&self, id: &SessionId) {
        if let Some(sh) = &self.shared_store {
            sh.used.borrow_mut().insert(*id);
        }
    }

    /// With the shared store: the session in this worker's cache, loaded from Redis if it
    /// is not there yet. The one way every path (requests, peers, logout, admin) finds a
    /// session it may not hold.
    pub(super) async fn held(&self, id: &SessionId) -> Lookup {
        if self.store.borrow().get(id).is_some() {
            return Lookup::Found;
        }
        self.load_shared(id).await
    }

    /// The session can be looked for in this worker's table: always with the memory store,
    /// with the shared store once [`Gate::held`] found it.
    pub(super) async fn in_table(&self, id: &SessionId) -> bool {
        self.shared_store.is_none() || self.held(id).await == Lookup::Found
    }

    /// Loads a session this worker does not cache from Redis into the cache.
    async fn load_shared(&self, id: &SessionId) -> Lookup {
        let Some(sh) = &self.shared_store else {
            return Lookup::Missing;
        };
        let running = sh.loading.borrow().get(id).cloned();
        if let Some(done) = running {
            let _ = monoio::time::timeout(LOAD_WAIT, done.wait()).await;
            return match self.store.borrow().get(id) {
                Some(_) => Lookup::Found,
                None if sh.store.is_up() => Lookup::Missing,
                None => Lookup::Unavailable,
            };
        }
        if sh
            .recently_missing
            .borrow()
            .contains(&SharedSessions::hash_of(id), self.clock.now_ms())
        {
            return Lookup::Missing;
        }
        let loading = Loading::start(sh, *id);
        // Bounded below `ENDS_KEPT_MS`, whatever `spring.data.redis.timeout` says, so
        // an end seen meanwhile is still remembered when the answer comes.
        let loaded = monoio::time::timeout(LOAD_WAIT, sh.store.load(id, self.epoch())).await;
        let hash = SharedSessions::hash_of(id);
        let now = self.clock.now_ms();
        let ended_meanwhile = || sh.recently_ended.borrow().contains(&hash, now);
        let found = match loaded {
            Ok(Ok(Some(_))) if ended_meanwhile() => Lookup::Missing,
            Ok(Ok(Some(l))) => {
                self.cache(l.session, l.version);
                Lookup::Found
            }
            Ok(Ok(None)) => Lookup::Missing,
            Ok(Err(e)) => {
                tracing::debug!(target: LOG, error = %e, "session load failed");
                Lookup::Unavailable
            }
            Err(_) => Lookup::Unavailable,
        };
        if found == Lookup::Missing {
            sh.recently_missing
                .borrow_mut()
                .add(&hash, self.clock.now_ms());
        }
        self.metrics.store_load(match found {
            Lookup::Found => "hit",
            Lookup::Missing => "missing",
            Lookup::Unavailable => "error",
        });
        // The waiting requests look in the cache, now filled (or not).
        drop(loading);
        found
    }

    /// Puts a session from Redis (or just created) in the cache.
    pub(super) fn cache(&self, s: Session, version: i64) {
        let Some(sh) = &self.shared_store else {
            return;
        };
        let id = *s.id();
        if self.store.borrow_mut().insert(s).is_none() {
            self.shared.sessions.fetch_add(1, Ordering::Relaxed);
            self.metrics.sessions.fetch_add(1, Ordering::Relaxed);
        }
        sh.by_hash
            .borrow_mut()
            .insert(SharedSessions::digest_of(&id), id);
        sh.versions.borrow_mut().insert(id, version);
    }

    /// Drops a session from this worker's cache (ended elsewhere, or evicted): no calls,
    /// no audit; those belong to the end itself.
    pub(super) fn evict(&self, id: &SessionId) -> Option<Session> {
        let sh = self.shared_store.as_ref()?;
        let s = self.store.borrow_mut().remove(id)?;
        self.forget_cached(sh, &s);
        Some(s)
    }

    fn forget_cached(&self, sh: &SharedState, s: &Session) {
        if sh.versions.borrow_mut().remove(s.id()).is_some() {
            sh.by_hash
                .borrow_mut()
                .remove(&SharedSessions::digest_of(s.id()));
        }
        sh.used.borrow_mut().remove(s.id());
        self.shared.sessions.fetch_sub(1, Ordering::Relaxed);
        self.metrics.sessions.fetch_sub(1, Ordering::Relaxed);
        self.close_websockets(s.id());
    }

    fn evict_hash(&self, hash: &str) {
        let id = self
            .shared_store
            .as_ref()
            .zip(SharedSessions::digest_of_hash(hash))
            .and_then(|(sh, digest)| sh.by_hash.borrow().get(&digest).copied());
        if let Some(id) = id {
            self.evict(&id);
        }
    }

    /// Ends a session for the cluster: the cached copy now, the rest when Redis takes it.
    /// Only a session this worker holds is queued (every path that ends one loads it
    /// first), so a flood of made-up cookies at `POST /logout` queues nothing.
    pub(super) fn queue_end(&self, id: &SessionId, reason: EndReason) -> Option<Session> {
        let sh = self.shared_store.as_ref()?;
        let local = self.evict(id)?;
        self.queue_end_hash(sh, SharedSessions::hash_of(id), reason);
        Some(local)
    }

    /// Ends a held session for the cluster before answering (a user's logout): once this
    /// returns, no instance's kill can lose the end; if Redis fails it, the end is kept for
    /// retry as a queued one would be.
    pub(super) async fn end_now(&self, id: &SessionId, reason: EndReason) -> Option<Session> {
        let sh = self.shared_store.as_ref()?;
        let local = self.evict(id)?;
        let hash = SharedSessions::hash_of(id);
        sh.recently_ended
            .borrow_mut()
            .add(&hash, self.clock.now_ms());
        if let Ok(Some(s)) = sh.store.end(&hash, reason, self.epoch()).await {
            self.record_end(&s, reason);
        }
        Some(local)
    }

    fn queue_end_hash(&self, sh: &SharedState, hash: String, reason: EndReason) {
        // A load racing this end (another tab) must not cache the session again before
        // Redis has ended it.
        sh.recently_ended
            .borrow_mut()
            .add(&hash, self.clock.now_ms());
        self.queue_job(sh, Job::End(hash, reason));
    }

    /// Ends a session by its name in Redis (one the per-user cap pushed out).
    pub(super) fn end_shared_hash(&self, hash: String, reason: EndReason) {
        if let Some(sh) = &self.shared_store {
            self.evict_hash(&hash);
            self.queue_end_hash(sh, hash, reason);
        }
    }

    /// Ends the sessions of a provider session or user that Redis holds, cached here or not.
    pub(super) fn end_shared_matching(
        &self,
        sh: &SharedState,
        sid: Option<&str>,
        sub: Option<&str>,
        reason: EndReason,
    ) {
        let job = Job::Matching {
            sid: sid.map(str::to_string),
            sub: sub.map(str::to_string),
            reason,
        };
        self.queue_job(sh, job);
    }

    /// The banner accepted here counts on every instance.
    pub(super) fn share_banner_acceptance(&self, id: &SessionId) {
        if let Some(sh) = &self.shared_store {
            self.queue_job(sh, Job::Banner(*id));
        }
    }

    /// Fresh-token calls of sessions, each sent unless another instance sent them this
    /// round.
    pub(super) fn queue_fresh_tokens(&self, calls: Vec<(SessionId, Vec<Call>)>) {
        if let Some(sh) = &self.shared_store {
            self.queue_job(sh, Job::FreshTokens(calls));
        }
    }

    /// Pending logins the full local table dropped are dropped from Redis too, so a flood
    /// of login starts holds no more there than the tables here do.
    pub(super) fn forget_shared_pending(&self, states: Vec<String>) {
        if let (Some(sh), false) = (&self.shared_store, states.is_empty()) {
            self.queue_job(sh, Job::ForgetPending(states));
        }
    }

    fn queue_job(&self, sh: &SharedState, job: Job) {
        sh.ends_queue.borrow_mut().push_back(job);
        sh.wake.borrow().trigger();
    }

    /// Runs queued ends on Redis until shutdown; the one that ended a session makes the
    /// calls its end requires.
    pub async fn run_shared_ends(&self) {
        let Some(sh) = &self.shared_store else {
            return;
        };
        loop {
            let next = sh.ends_queue.borrow_mut().pop_front();
            let Some(job) = next else {
                if self.stopping() {
                    return;
                }
                let wake = Signal::new();
                *sh.wake.borrow_mut() = wake.clone();
                monoio::select! {
                    _ = wake.wait() => {}
                    _ = monoio::time::sleep(Duration::from_millis(500)) => {}
                }
                continue;
            };
            let (hashes, reason) = match job {
                Job::Banner(id) => {
                    let _ = sh.store.accept_banner(&id).await;
                    continue;
                }
                Job::ForgetPending(states) => {
                    let _ = sh.store.forget_pending(&states).await;
                    continue;
                }
                Job::FreshTokens(sessions) => {
                    let round = self.settings.fresh_every_ms;
                    let ids: Vec<SessionId> = sessions.iter().map(|(id, _)| *id).collect();
                    let won = sh
                        .store
                        .claim_rounds(&ids, "f", round, self.clock.unix_ms())
                        .await;
                    for (n, (_, calls)) in sessions.into_iter().enumerate() {
                        // Redis away: sent anyway (a duplicate beats a listener left stale).
                        if won
                            .as_ref()
                            .map_or(true, |w| w.get(n).copied().unwrap_or(true))
                        {
                            calls
                                .into_iter()
                                .for_each(|c| self.calls.dispatcher().submit(c));
                        }
                    }
                    continue;
                }
                Job::End(hash, reason) => (vec![hash], reason),
                Job::Matching { sid, sub, reason } => {
                    match sh.store.hashes_of(sid.as_deref(), sub.as_deref()).await {
                        Ok(hashes) => (hashes, reason),
                        Err(e) => {
                            // Put back in front: a provider logout must not be lost.
                            tracing::debug!(target: LOG, error = %e, "logout lookup waits for the store");
                            sh.ends_queue.borrow_mut().push_front(Job::Matching {
                                sid,
                                sub,
                                reason,
                            });
                            monoio::time::sleep(Duration::from_millis(500)).await;
                            continue;
                        }
                    }
                }
            };
            for hash in hashes {
                self.evict_hash(&hash);
                if let Ok(Some(s)) = sh.store.end(&hash, reason, self.epoch()).await {
                    self.record_end(&s, reason);
                }
            }
        }
    }

    /// Shutdown has begun and no end is left to hand to Redis.
    fn stopping(&self) -> bool {
        self.shutdown_started.get()
    }

    /// Worker tick with the shared store: cache expiry (evictions only), uses written
    /// back, ends Redis could not take retried and, on worker 0, the cluster's expired
    /// sessions claimed and ended.
    pub async fn shared_tick(&self, scratch: &mut Vec<Session>) {
        let Some(sh) = &self.shared_store else {
            return;
        };
        scratch.clear();
        self.sweep_pending();
        self.store.borrow_mut().expire(self.clock.now_ms(), scratch);
        for s in scratch.drain(..) {
            self.forget_cached(sh, &s);
        }
        let epoch = self.epoch();
        let uses: Vec<(String, u64)> = {
            let mut used = sh.used.borrow_mut();
            let store = self.store.borrow();
            used.drain()
                .filter_map(|id| {
                    let last = store.get(&id)?.last_access_ms();
                    Some((SharedSessions::hash_of(&id), epoch.to_unix(last)))
                })
                .collect()
        };
        match sh.store.touch(&uses).await {
            Ok(alive) => {
                for ((hash, _), alive) in uses.iter().zip(alive) {
                    if !alive {
                        self.evict_hash(hash);
                    }
                }
            }
            Err(e) => {
                // Kept for the next tick: a use lost would let the cluster expire an
                // active session.
                tracing::debug!(target: LOG, error = %e, "uses not written back; kept for the next tick");
                let by_hash = sh.by_hash.borrow();
                let mut used = sh.used.borrow_mut();
                used.extend(
                    uses.iter()
                        .filter_map(|(hash, _)| SharedSessions::digest_of_hash(hash))
                        .filter_map(|digest| by_hash.get(&digest).copied()),
                );
            }
        }
        for (s, reason) in sh.store.retry_ends(epoch).await {
            self.record_end(&s, reason);
        }
        self.metrics
            .store_ends_waiting
            .store(self.shared_ends_waiting() as u64, Ordering::Relaxed);
        if self.worker == 0 {
            self.shared
                .store_down
                .store(!sh.store.is_up(), Ordering::Relaxed);
            match sh
                .store
                .claim_expired(self.clock.unix_ms(), CLAIMS_PER_TICK, epoch)
                .await
            {
                Ok(ended) => {
                    for s in ended {
                        self.evict(s.id());
                        self.record_end(&s, EndReason::Expired);
                    }
                }
                Err(e) => tracing::debug!(target: LOG, error = %e, "expiry sweep skipped"),
            }
        }
    }

    /// Follows the cluster's ends stream until shutdown, evicting what other instances
    /// ended. After the connection was lost it re-checks every cached session first.
    pub async fn follow_ends(&self) {
        let Some(sh) = &self.shared_store else {
            return;
        };
        let stream = sh.store.ends_key();
        let mut last: Option<String> = None;
        let mut recheck = false;
        while !self.stopping() {
            if !sh.ends.is_up() {
                recheck = true;
                sh.ends.wait_up(Duration::from_secs(1)).await;
                continue;
            }
            // Every retry below waits: the Redis client fails fast while a connection is
            // down, and its reconnects run on this same thread.
            let from = match &last {
                Some(l) => l.clone(),
                None => match store::ends_tail(&sh.ends, &stream).await {
                    Ok(tail) => tail,
                    Err(_) => {
                        monoio::time::sleep(FOLLOW_RETRY).await;
                        continue;
                    }
                },
            };
            if recheck {
                // The re-check goes over the store's connection, which may come back later
                // than this one.
                if !sh.store.wait_up(FOLLOW_RETRY).await {
                    continue;
                }
                let cached: Vec<String> = sh
                    .by_hash
                    .borrow()
                    .values()
                    .map(SharedSessions::hash_of)
                    .collect();
                match sh.store.missing(&cached).await {
                    Ok(gone) => {
                        for hash in &gone {
                            self.evict_hash(hash);
                        }
                        tracing::info!(target: LOG, worker = self.worker, checked = cached.len(), evicted = gone.len(), "session cache re-checked after the store came back");
                        recheck = false;
                    }
                    Err(_) => {
                        monoio::time::sleep(FOLLOW_RETRY).await;
                        continue;
                    }
                }
            }
            last = Some(from.clone());
            match store::read_ends(&sh.ends, &stream, &from, FOLLOW_BLOCK_MS).await {
                Ok((next, hashes)) => {
                    let now = self.clock.now_ms();
                    for hash in &hashes {
                        sh.recently_ended.borrow_mut().add(hash, now);
                        self.evict_hash(hash);
                    }
                    last = Some(next);
                }
                Err(_) => {
                    recheck = true;
                    monoio::time::sleep(FOLLOW_RETRY).await;
                }
            }
        }
    }
}

pub(super) fn store_unavailable() -> Reply {
    let body = "{\"error\":\"session_store_unavailable\",\"message\":\"the session store is not reachable; try again shortly\"}";
    Reply::json(503, "Service Unavailable", body.into()).with_header("Retry-After", "5".into())
}

/// Shared by [`Gate::cache`] callers that hold the version of a record.
pub(super) fn keep_version(sh: &SharedState, id: &SessionId, version: i64) {
    if let Some(v) = sh.versions.borrow_mut().get_mut(id) {
        *v = version;
    }
}

/// The version this worker's copy of a session was loaded at.
pub(super) fn cached_version(sh: &SharedState, id: &SessionId) -> Option<i64> {
    sh.versions.borrow().get(id).copied()
}

#[cfg(test)]
mod tests {
    use super::RecentHashes;

    #[test]
    fn recent_hashes_are_kept_for_their_window_and_within_their_count() {
        let mut r = RecentHashes::new(100, 3);
        r.add("a", 0);
        assert!(r.contains("a", 99));
        assert!(!r.contains("a", 100), "kept past its window");
        r.add("b", 50);
        r.add("a", 60); // seen again: the later time counts
        r.add("c", 70);
        assert!(
            r.contains("a", 120),
            "a renewed name went with its old entry"
        );
        r.add("d", 80);
        r.add("e", 90);
        assert!(
            r.seen.len() <= 3 && r.order.len() <= 3,
            "over its count: {:?}",
            r.order
        );
        assert!(r.contains("e", 90) && r.contains("d", 90));
        assert!(!r.contains("b", 90), "the oldest go first");
    }
}
