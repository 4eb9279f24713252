//! The shared session store: sessions in Redis or Valkey, so every instance serves every
//! session and a restart, crash or kill of one logs no one out
//! (`sessiongate.session-store: redis`).
//!
//! # Shape
//! Each worker keeps its local [`crate::session::SessionTable`] as a cache of the sessions
//! it serves; this module is the worker's view of Redis under it. A cache hit costs no
//! Redis round trip. A miss is loaded asynchronously ([`SharedSessions::load`]); uses are
//! written back in one pipeline per tick ([`SharedSessions::touch`]); creation and every
//! end write through. An end is announced on a stream every instance follows, so cached
//! copies elsewhere go within a round trip; after a lost connection a follower re-checks
//! its whole cache, so no end missed while it was away is ever served.
//!
//! # Decided once
//! Every decision that must happen once for the cluster is one Lua script, atomic in Redis:
//! creating a session within `cg.maxSessions` and the per-user cap; ending one (whoever
//! ends it first gets the record back and makes the calls its end requires; later
//! attempts get nothing); claiming an expired one (a sorted set of deadlines every
//! instance sweeps; the claim re-checks the deadline against the last use any instance
//! wrote). Refresh is single-flight across instances by a lock key.
//!
//! # Keys
//! All under one hash tag, `{<namespace>}`, so the scripts' keys share a slot and Redis
//! Cluster can hold them (as one shard: one cluster's sessions are one slot). A session is
//! named by the SHA-256 of its cookie value, never the value itself:
//! - `{ns}:s:<hash>` hash: `sub`, `sid`, `c` created and `a` last use (Unix ms), `b` banner
//!   accepted, `v` token version, `t` the tokens and the cookie value, sealed
//!   ([`crate::session::seal`], bound to the key name);
//! - `{ns}:expiry` sorted set: session hash → deadline; `{ns}:u:<sub>` sorted set: hash →
//!   creation (per-user cap, admin listing); `{ns}:sid:<sid>` set (back-channel logout);
//! - `{ns}:ends` stream of ended hashes; `{ns}:r:<hash>` refresh lock; `{ns}:l:<state>`
//!   pending login (sealed); `{ns}:jti:<jti>` accepted logout tokens; `{ns}:f:<hash>:<round>`
//!   this round's fresh-token calls claimed; `{ns}:tomb:sid:<sid>` / `tomb:sub:<sub>` a
//!   provider logout's `iat`; `{ns}:done:<hash>` an ended record, kept a minute.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::rc::Rc;

use crate::redis::{Cmd, Redis, RedisError, Script, Value};
use crate::session::pending::PendingLogin;
use crate::session::record::{self, Epoch, Meta, Tokens};
use crate::session::seal::Keyring;
use crate::session::table::Session;
use crate::session::{EndReason, SessionId};

#[cfg(test)]
mod tests;

pub const LOG: &str = "sessiongate::store";

/// Ended sessions kept on the ends stream (approximate trim): a follower away for longer
/// re-checks its cache instead of replaying.
const ENDS_KEPT: &str = "100000";
/// A session key outlives its deadline by this much: the sweep claims it first; the TTL
/// only keeps Redis from holding sessions no instance is left to sweep.
const KEY_GRACE_MS: u64 = 3_600_000;
/// Ends one worker keeps waiting for Redis at most.
const RETRY_MAX: usize = 100_000;
/// How long a refresh lock is held at most (a refresh that takes longer lets another try).
const REFRESH_LOCK_MS: u64 = 30_000;

/// Creates a session within the cluster-wide and per-user limits. Answers -1 when
/// `cg.maxSessions` is reached, else the hashes of the user's sessions beyond the cap
/// (oldest first), which the caller ends.
/// Also -2 when a provider logout remembered for its `sid` or `sub` (KEYS[4], KEYS[5])
/// is as new as the ID token's `iat` (ARGV[12]): checked here, in the same step as the
/// creation, so a logout cannot slip in between. Members of the user's set whose session
/// is gone (expired by TTL) are dropped on the way, so they never count against the cap.
const CREATE: &str = r#"
local iat = tonumber(ARGV[12])
for _, k in ipairs({KEYS[4], KEYS[5]}) do
  local t = tonumber(redis.call('GET', k) or '-1')
  if t and iat <= t then return -2 end
end
local max = tonumber(ARGV[9])
if max > 0 and redis.call('ZCARD', KEYS[2]) >= max then return -1 end
redis.call('HSET', KEYS[1], 'sub', ARGV[3], 'c', ARGV[5], 'a', ARGV[6], 'b', '0', 't', ARGV[7], 'v', '0')
if ARGV[4] ~= '' then
  redis.call('HSET', KEYS[1], 'sid', ARGV[4])
  redis.call('SADD', ARGV[2] .. 'sid:' .. ARGV[4], ARGV[1])
end
redis.call('PEXPIRE', KEYS[1], ARGV[11])
redis.call('ZADD', KEYS[2], ARGV[8], ARGV[1])
redis.call('ZADD', KEYS[3], ARGV[5], ARGV[1])
local cap = tonumber(ARGV[10])
if cap > 0 then
  local live = {}
  for _, h in ipairs(redis.call('ZRANGE', KEYS[3], 0, -1)) do
    if redis.call('EXISTS', ARGV[2] .. 's:' .. h) == 1 then
      table.insert(live, h)
    else
      redis.call('ZREM', KEYS[3], h)
    end
  end
  local out = {}
  -- The oldest beyond the cap, never the session being made (clocks of instances differ).
  for i = 1, #live - cap do
    if live[i] ~= ARGV[1] then table.insert(out, live[i]) end
  end
  return out
end
return {}
"#;

/// Ends a session once: the first caller gets its record, every later one nothing. With
/// `now` > 0 it ends only if its deadline (from the last use any instance wrote) has
/// passed, else it is put back in the expiry set at its real deadline.
/// The record it removed stays readable under `{ns}:done:<hash>` for a minute, so a caller
/// whose answer was lost (a timeout, a dropped connection) still makes the end's calls.
/// A record without readable times is due (it could never be claimed otherwise, and would
/// stop every sweep that meets it first).
const END: &str = r#"
local f = redis.call('HMGET', KEYS[1], 'sub', 'sid', 'c', 'a', 'b', 't')
if not f[1] then
  redis.call('ZREM', KEYS[2], ARGV[1])
  return false
end
local now = tonumber(ARGV[3])
local a, c = tonumber(f[4]), tonumber(f[3])
if now > 0 and a and c then
  local d = a + tonumber(ARGV[4])
  local m = tonumber(ARGV[5])
  if m > 0 then d = math.min(d, c + m) end
  if d > now then
    redis.call('ZADD', KEYS[2], string.format('%.0f', d), ARGV[1])
    return false
  end
end
redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('ZREM', ARGV[2] .. 'u:' .. f[1], ARGV[1])
if f[2] then redis.call('SREM', ARGV[2] .. 'sid:' .. f[2], ARGV[1]) end
redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[6], '*', 'h', ARGV[1])
local done = ARGV[2] .. 'done:' .. ARGV[1]
redis.call('HSET', done, 'sub', f[1], 'c', f[3] or '0', 'a', f[4] or '0', 'b', f[5] or '0', 't', f[6] or '')
if f[2] then redis.call('HSET', done, 'sid', f[2]) end
redis.call('PEXPIRE', done, 60000)
return f
"#;

/// Writes a later last use back (never an earlier one) and moves the deadline; answers 0
/// when the session no longer exists (ended elsewhere: the cache drops it).
const TOUCH: &str = r#"
local f = redis.call('HMGET', KEYS[1], 'c', 'a')
if not f[1] then return 0 end
local a = math.max(tonumber(f[2]), tonumber(ARGV[2]))
local d = a + tonumber(ARGV[3])
local m = tonumber(ARGV[4])
if m > 0 then d = math.min(d, tonumber(f[1]) + m) end
redis.call('HSET', KEYS[1], 'a', string.format('%.0f', a))
redis.call('ZADD', KEYS[2], string.format('%.0f', d), ARGV[1])
redis.call('PEXPIREAT', KEYS[1], string.format('%.0f', d + tonumber(ARGV[5])))
return 1
"#;

/// Replaces the tokens of a live session and bumps its version; -1 when it is gone.
const SAVE_TOKENS: &str = r#"
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
redis.call('HSET', KEYS[1], 't', ARGV[1])
return redis.call('HINCRBY', KEYS[1], 'v', 1)
"#;

/// Remembers a provider logout's `iat` for a `sid` or `sub` (the latest wins).
const BURY: &str = r#"
local v = tonumber(redis.call('GET', KEYS[1]) or '0')
if tonumber(ARGV[1]) > v then redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) end
return 1
"#;

/// Releases a lock only if it is still the caller's.
const UNLOCK: &str = r#"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"#;

/// How the store's expiry works, in ms.
#[derive(Debug, Clone, Copy)]
pub struct Expiry {
    pub idle_ms: u64,
    /// `sessiongate.session-max-lifetime-sec`; 0: none.
    pub max_ms: u64,
}

/// A session as Redis holds it, back in the process.
pub struct Loaded {
    pub session: Session,
    /// Bumped by every token refresh anywhere.
    pub version: i64,
}

/// What [`SharedSessions::create`] decided.
pub enum Created {
    /// `cg.maxSessions` is reached cluster-wide.
    Full,
    /// A provider logout newer than the login's ID token was remembered.
    Buried,
    /// Stored; these sessions of the same user went past the per-user cap and are to be
    /// ended (as [`EndReason::Superseded`]).
    Stored { superseded: Vec<String> },
}

/// An end Redis has not taken yet (it was down): retried until it does.
struct PendingEnd {
    hash: String,
    reason: EndReason,
}

/// One worker's handle on the shared store.
pub struct SharedSessions {
    redis: Redis,
    keys: Rc<Keyring>,
    /// `{namespace}:`, the prefix of every key.
    prefix: String,
    expiry: Expiry,
    scripts: Scripts,
    /// Unix ms since which Redis has been unreachable (`None`: reachable).
    down_since: Cell<Option<u64>>,
    outage_grace_ms: u64,
    retry: RefCell<VecDeque<PendingEnd>>,
}

struct Scripts {
    create: Script,
    end: Script,
    touch: Script,
    save_tokens: Script,
    unlock: Script,
    bury: Script,
}

impl SharedSessions {
    pub fn new(
        redis: Redis,
        keys: Rc<Keyring>,
        namespace: &str,
        expiry: Expiry,
        outage_grace_ms: u64,
    ) -> SharedSessions {
        SharedSessions {
            redis,
            keys,
            prefix: format!("{{{namespace}}}:"),
            expiry,
            scripts: Scripts {
                create: Script::new(CREATE),
                end: Script::new(END),
                touch: Script::new(TOUCH),
                save_tokens: Script::new(SAVE_TOKENS),
                unlock: Script::new(UNLOCK),
                bury: Script::new(BURY),
            },
            down_since: Cell::new(None),
            outage_grace_ms,
            retry: RefCell::new(VecDeque::new()),
        }
    }

    /// The stream every instance follows for ends.
    pub fn ends_key(&self) -> String {
        format!("{}ends", self.prefix)
    }

    /// The name a session goes by in Redis: the SHA-256 of its cookie value, in hex.
    pub fn hash_of(id: &SessionId) -> String {
        Self::digest_of(id)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    /// [`SharedSessions::hash_of`] as its 32 bytes (what a worker's cache indexes by).
    pub fn digest_of(id: &SessionId) -> [u8; 32] {
        let d = ring::digest::digest(&ring::digest::SHA256, id.encode().as_bytes());
        let mut out = [0; 32];
        out.copy_from_slice(d.as_ref());
        out
    }

    /// The 32 bytes of a hash as Redis names it (64 hex digits); `None` for anything else.
    pub fn digest_of_hash(hash: &str) -> Option<[u8; 32]> {
        let hex = hash.as_bytes();
        if hex.len() != 64 {
            return None;
        }
        let mut out = [0; 32];
        for (i, pair) in hex.chunks(2).enumerate() {
            let pair = std::str::from_utf8(pair).ok()?;
            out[i] = u8::from_str_radix(pair, 16).ok()?;
        }
        Some(out)
    }

    fn session_key(&self, hash: &str) -> String {
        format!("{}s:{hash}", self.prefix)
    }

    fn expiry_key(&self) -> String {
        format!("{}expiry", self.prefix)
    }

    fn user_key(&self, sub: &str) -> String {
        format!("{}u:{sub}", self.prefix)
    }

    /// Waits (at most `within`) until the store's connection is up.
    pub async fn wait_up(&self, within: std::time::Duration) -> bool {
        self.redis.wait_up(within).await
    }

    /// Redis is reachable now, as far as this worker's connection knows.
    pub fn is_up(&self) -> bool {
        self.redis.is_up()
    }

    /// Sessions cached here may still be served at `now_unix`: Redis is reachable, or has
    /// been away for less than `redis-outage-grace-sec`.
    pub fn serving(&self, now_unix: u64) -> bool {
        if self.redis.is_up() {
            self.down_since.set(None);
            return true;
        }
        let since = *self.down_since.get().get_or_insert(now_unix);
        self.down_since.set(Some(since));
        now_unix.saturating_sub(since) < self.outage_grace_ms
    }

    /// The session named by a cookie, from Redis; `Ok(None)` when Redis does not have it
    /// (ended, expired, never existed, or its record does not open).
    pub async fn load(&self, id: &SessionId, epoch: Epoch) -> Result<Option<Loaded>, RedisError> {
        let hash = Self::hash_of(id);
        let key = self.session_key(&hash);
        let cmd = Cmd::new("HMGET")
            .arg(&key)
            .arg("sub")
            .arg("sid")
            .arg("c")
            .arg("a")
            .arg("b")
            .arg("t")
            .arg("v");
        let v = self.redis.query(cmd).await?;
        let Some(f) = v.into_array() else {
            return Err(RedisError::Protocol("HMGET answered no array".into()));
        };
        let Some((meta, tokens)) = self.open_record(&key, &f[..6.min(f.len())]) else {
            return Ok(None);
        };
        if tokens.id.as_bytes() != id.encode().as_bytes() {
            // Bound by the key name already; this is a second lock on the same door.
            return Ok(None);
        }
        let version = f.get(6).and_then(int_of).unwrap_or(0);
        Ok(record::import(meta, tokens, epoch).map(|session| Loaded { session, version }))
    }

    /// `[sub, sid, c, a, b, t]` as HMGET or the end script answer them.
    fn open_record(&self, key: &str, f: &[Value]) -> Option<(Meta, Tokens)> {
        let text = |i: usize| {
            f.get(i)
                .and_then(Value::as_bytes)
                .map(|b| String::from_utf8_lossy(b).into_owned())
        };
        let meta = Meta {
            subject: text(0)?,
            sid: text(1),
            created_unix_ms: f.get(2).and_then(int_of)? as u64,
            last_access_unix_ms: f.get(3).and_then(int_of)? as u64,
            banner_accepted: f.get(4).and_then(int_of) == Some(1),
        };
        let sealed = f.get(5)?.as_bytes()?;
        match self.keys.open(sealed, key.as_bytes()) {
            Ok(plain) => Tokens::from_bytes(&plain).map(|t| (meta, t)),
            Err(e) => {
                tracing::warn!(target: LOG, error = %e, "a stored session does not open; treated as ended");
                None
            }
        }
    }

    fn deadline(&self, created_unix: u64, last_unix: u64) -> u64 {
        let idle = last_unix.saturating_add(self.expiry.idle_ms);
        match self.expiry.max_ms {
            0 => idle,
            max => idle.min(created_unix.saturating_add(max)),
        }
    }

    /// Stores a new session within `max_sessions` (0: none) and the per-user cap.
    pub async fn create(
        &self,
        s: &Session,
        epoch: Epoch,
        max_sessions: u64,
        per_user: u64,
        id_token_iat: u64,
    ) -> Result<Created, RedisError> {
        let hash = Self::hash_of(s.id());
        let key = self.session_key(&hash);
        let (meta, tokens) = record::export(s, epoch);
        let sealed = self.keys.seal(&tokens.to_bytes(), key.as_bytes());
        let deadline = self.deadline(meta.created_unix_ms, meta.last_access_unix_ms);
        let ttl = deadline
            .saturating_sub(meta.created_unix_ms)
            .saturating_add(KEY_GRACE_MS);
        let (expiry, user) = (self.expiry_key(), self.user_key(&meta.subject));
        let numbers = [
            meta.created_unix_ms,
            meta.last_access_unix_ms,
            deadline,
            max_sessions,
            per_user,
            ttl,
        ]
        .map(|n| n.to_string());
        let [created, last, deadline, max, per_user, ttl] = &numbers;
        let iat = id_token_iat.to_string();
        let args: [&[u8]; 12] = [
            hash.as_bytes(),
            self.prefix.as_bytes(),
            meta.subject.as_bytes(),
            meta.sid.as_deref().unwrap_or("").as_bytes(),
            created.as_bytes(),
            last.as_bytes(),
            &sealed,
            deadline.as_bytes(),
            max.as_bytes(),
            per_user.as_bytes(),
            ttl.as_bytes(),
            iat.as_bytes(),
        ];
        let tomb_sid = match &meta.sid {
            Some(sid) => format!("{}tomb:sid:{sid}", self.prefix),
            None => format!("{}tomb:sid:", self.prefix),
        };
        let tomb_sub = format!("{}tomb:sub:{}", self.prefix, meta.subject);
        let keys: [&[u8]; 5] = [
            key.as_bytes(),
            expiry.as_bytes(),
            user.as_bytes(),
            tomb_sid.as_bytes(),
            tomb_sub.as_bytes(),
        ];
        let r = self.redis.script(&self.scripts.create, &keys, &args).await;
        match r? {
            Value::Int(-1) => Ok(Created::Full),
            Value::Int(-2) => Ok(Created::Buried),
            Value::Array(old) => Ok(Created::Stored {
                superseded: old.iter().filter_map(text_of).collect(),
            }),
            other => Err(unexpected("create", &other)),
        }
    }

    /// Ends a session for the cluster. `Ok(Some)`: this call ended it (its record, for the
    /// calls its end requires); `Ok(None)`: it was already gone. Redis away: the end is
    /// queued and retried by [`SharedSessions::retry_ends`], so it is never lost.
    pub async fn end(
        &self,
        hash: &str,
        reason: EndReason,
        epoch: Epoch,
    ) -> Result<Option<Session>, RedisError> {
        match self.run_end(hash, 0, epoch).await {
            Ok(ended) => Ok(ended),
            // Every failure is retried, an error answer too (`LOADING` after a restart,
            // `READONLY` after a failover, `OOM`): an end is never dropped.
            Err(e) => {
                self.keep_for_retry(hash, reason, &e);
                Err(e)
            }
        }
    }

    fn keep_for_retry(&self, hash: &str, reason: EndReason, e: &RedisError) {
        let mut retry = self.retry.borrow_mut();
        if retry.len() >= RETRY_MAX {
            // Bounded (only ends of sessions this worker served are queued); the oldest
            // still ends when its session's deadline comes, by the sweep.
            retry.pop_front();
            tracing::error!(target: LOG, waiting = RETRY_MAX, "too many session ends wait for the store; the oldest is left to expiry");
        }
        if retry.is_empty() {
            tracing::warn!(target: LOG, error = %e, "session end not taken by the store; retried until it is");
        }
        retry.push_back(PendingEnd {
            hash: hash.to_string(),
            reason,
        });
    }

    /// The end script; `now_unix` > 0: only if due (expiry).
    async fn run_end(
        &self,
        hash: &str,
        now_unix: u64,
        epoch: Epoch,
    ) -> Result<Option<Session>, RedisError> {
        let key = self.session_key(hash);
        let (expiry, ends) = (self.expiry_key(), self.ends_key());
        let keys: [&[u8]; 3] = [key.as_bytes(), expiry.as_bytes(), ends.as_bytes()];
        let (now, idle, max) = (
            now_unix.to_string(),
            self.expiry.idle_ms.to_string(),
            self.expiry.max_ms.to_string(),
        );
        let args: [&[u8]; 6] = [
            hash.as_bytes(),
            self.prefix.as_bytes(),
            now.as_bytes(),
            idle.as_bytes(),
            max.as_bytes(),
            ENDS_KEPT.as_bytes(),
        ];
        let r = self.redis.script(&self.scripts.end, &keys, &args).await;
        match r? {
            Value::Array(f) => {
                let ended = self
                    .open_record(&key, &f)
                    .and_then(|(m, t)| record::import(m, t, epoch));
                if ended.is_none() {
                    tracing::warn!(target: LOG, "a session ended whose record did not open (a key no longer configured?): its logout calls are skipped");
                }
                Ok(ended)
            }
            Value::Nil => Ok(None),
            other => Err(unexpected("end", &other)),
        }
    }

    /// Ends queued while Redis was away, retried in order; the ones this retry ended are
    /// answered with their reason (for the calls their end requires).
    pub async fn retry_ends(&self, epoch: Epoch) -> Vec<(Session, EndReason)> {
        let mut done = Vec::new();
        loop {
            let Some(next) = self.retry.borrow_mut().pop_front() else {
                break;
            };
            match self.run_end(&next.hash, 0, epoch).await {
                Ok(Some(s)) => done.push((s, next.reason)),
                // Gone: perhaps by the attempt whose answer was lost; if so its record says.
                Ok(None) => {
                    if let Ok(Some(s)) = self.ended_record(&next.hash, epoch).await {
                        done.push((s, next.reason));
                    }
                }
                Err(_) => {
                    self.retry.borrow_mut().push_front(next);
                    break;
                }
            }
        }
        done
    }

    /// The record an end removed within the last minute (read by a retry whose first
    /// attempt's answer was lost). Taken once: a second retry finds nothing.
    async fn ended_record(&self, hash: &str, epoch: Epoch) -> Result<Option<Session>, RedisError> {
        let done = format!("{}done:{hash}", self.prefix);
        // Sealed under the session's own key name.
        let ended = self
            .read_record(&done, &self.session_key(hash), epoch)
            .await?;
        let _ = self.redis.query(Cmd::new("DEL").arg(&done)).await;
        Ok(ended)
    }

    /// The session record at `at`, sealed for the key name `sealed_for`.
    async fn read_record(
        &self,
        at: &str,
        sealed_for: &str,
        epoch: Epoch,
    ) -> Result<Option<Session>, RedisError> {
        let cmd = ["sub", "sid", "c", "a", "b", "t"]
            .iter()
            .fold(Cmd::new("HMGET").arg(at), |c, f| c.arg(f));
        let f = self
            .redis
            .query(cmd)
            .await?
            .into_array()
            .unwrap_or_default();
        Ok(self
            .open_record(sealed_for, &f)
            .and_then(|(m, t)| record::import(m, t, epoch)))
    }

    /// Ends waiting for Redis.
    pub fn ends_waiting(&self) -> usize {
        self.retry.borrow().len()
    }

    /// Claims up to `limit` sessions whose deadline passed by `now_unix`: each is ended by
    /// exactly one instance, whose call answers it.
    pub async fn claim_expired(
        &self,
        now_unix: u64,
        limit: usize,
        epoch: Epoch,
    ) -> Result<Vec<Session>, RedisError> {
        let cmd = Cmd::new("ZRANGE")
            .arg(self.expiry_key())
            .arg("-inf")
            .arg(now_unix.to_string())
            .arg("BYSCORE")
            .arg("LIMIT")
            .arg("0")
            .arg(limit.to_string());
        let due = self.redis.query(cmd).await?;
        let mut ended = Vec::new();
        // One failure does not lose the claims already made (their sessions are gone from
        // Redis: their calls must be made); the rest of the batch waits for the next tick.
        let due: Vec<String> = due
            .into_array()
            .unwrap_or_default()
            .iter()
            .filter_map(text_of)
            .collect();
        for hash in due {
            match self.run_end(&hash, now_unix.max(1), epoch).await {
                Ok(Some(s)) => ended.push(s),
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(target: LOG, error = %e, "expiry claim failed; the sweep goes on next tick");
                    break;
                }
            }
        }
        Ok(ended)
    }

    /// Writes uses back, one pipeline; answers, per session, whether it still exists.
    pub async fn touch(&self, uses: &[(String, u64)]) -> Result<Vec<bool>, RedisError> {
        if uses.is_empty() {
            return Ok(Vec::new());
        }
        let (idle, max, grace) = (
            self.expiry.idle_ms.to_string(),
            self.expiry.max_ms.to_string(),
            KEY_GRACE_MS.to_string(),
        );
        let expiry = self.expiry_key();
        let (first, rest) = uses.split_first().expect("not empty");
        // The first through `script`, which loads the script if Redis lacks it, so the
        // pipeline's EVALSHAs find it.
        let key = self.session_key(&first.0);
        let last = first.1.to_string();
        let keys: [&[u8]; 2] = [key.as_bytes(), expiry.as_bytes()];
        let args: [&[u8]; 5] = [
            first.0.as_bytes(),
            last.as_bytes(),
            idle.as_bytes(),
            max.as_bytes(),
            grace.as_bytes(),
        ];
        let r = self.redis.script(&self.scripts.touch, &keys, &args).await;
        let mut alive = vec![r?.as_int() != Some(0)];
        if rest.is_empty() {
            return Ok(alive);
        }
        let cmds = rest
            .iter()
            .map(|(hash, last)| {
                Cmd::new("EVALSHA")
                    .arg(self.scripts.touch.sha())
                    .arg("2")
                    .arg(self.session_key(hash))
                    .arg(&expiry)
                    .arg(hash)
                    .arg(last.to_string())
                    .arg(&idle)
                    .arg(&max)
                    .arg(&grace)
            })
            .collect();
        let answers = self.redis.pipeline(cmds).await?;
        // An error answer (the script gone after a Redis restart) is not an end.
        alive.extend(answers.iter().map(|v| v.as_int() != Some(0)));
        Ok(alive)
    }

    /// Marks the access banner accepted for the cluster.
    pub async fn accept_banner(&self, id: &SessionId) -> Result<(), RedisError> {
        let key = self.session_key(&Self::hash_of(id));
        let cmd = Cmd::new("HSET").arg(key).arg("b").arg("1");
        self.redis.query(cmd).await.map(|_| ())
    }

    /// Takes the session's refresh lock for the cluster: `Some(token)` to release it with.
    pub async fn lock_refresh(&self, id: &SessionId) -> Result<Option<String>, RedisError> {
        let token = format!("{:016x}", rand_u64());
        let cmd = set_once(&self.lock_key(id), &token, REFRESH_LOCK_MS);
        Ok(self.redis.query(cmd).await?.is_ok().then_some(token))
    }

    pub async fn unlock_refresh(&self, id: &SessionId, token: &str) {
        let key = self.lock_key(id);
        let keys: [&[u8]; 1] = [key.as_bytes()];
        let _ = self
            .redis
            .script(&self.scripts.unlock, &keys, &[token.as_bytes()])
            .await;
    }

    fn lock_key(&self, id: &SessionId) -> String {
        format!("{}r:{}", self.prefix, Self::hash_of(id))
    }

    /// A session's tokens sealed for its key (sealed while the caller holds the session;
    /// written by [`SharedSessions::save_tokens`] after).
    pub fn seal_tokens(&self, s: &Session, epoch: Epoch) -> (String, Vec<u8>) {
        let key = self.session_key(&Self::hash_of(s.id()));
        let (_, tokens) = record::export(s, epoch);
        let sealed = self.keys.seal(&tokens.to_bytes(), key.as_bytes());
        (key, sealed)
    }

    /// Writes a session's refreshed tokens; answers the new version (`None`: it is gone).
    pub async fn save_tokens(&self, key: &str, sealed: &[u8]) -> Result<Option<i64>, RedisError> {
        let keys: [&[u8]; 1] = [key.as_bytes()];
        match self
            .redis
            .script(&self.scripts.save_tokens, &keys, &[sealed])
            .await?
        {
            Value::Int(-1) => Ok(None),
            Value::Int(v) => Ok(Some(v)),
            other => Err(unexpected("save tokens", &other)),
        }
    }

    /// Hashes of the sessions of a provider session (`sid`), or of a user.
    pub async fn hashes_of(
        &self,
        sid: Option<&str>,
        sub: Option<&str>,
    ) -> Result<Vec<String>, RedisError> {
        let cmd = match (sid, sub) {
            (Some(sid), _) => Cmd::new("SMEMBERS").arg(format!("{}sid:{sid}", self.prefix)),
            (None, Some(sub)) => Cmd::new("ZRANGE")
                .arg(self.user_key(sub))
                .arg("0")
                .arg("-1"),
            (None, None) => return Ok(Vec::new()),
        };
        let v = self.redis.query(cmd).await?;
        Ok(v.into_array()
            .unwrap_or_default()
            .iter()
            .filter_map(text_of)
            .collect())
    }

    /// Drops names of sessions that no longer exist from a provider session's set.
    pub async fn forget_in_sid(&self, sid: &str, hashes: &[String]) -> Result<(), RedisError> {
        let cmd = hashes.iter().fold(
            Cmd::new("SREM").arg(format!("{}sid:{sid}", self.prefix)),
            |c, h| c.arg(h),
        );
        self.redis.query(cmd).await.map(|_| ())
    }

    /// The sessions of one user, read from Redis (admin API across instances).
    pub async fn sessions_of(&self, sub: &str, epoch: Epoch) -> Result<Vec<Session>, RedisError> {
        let mut out = Vec::new();
        for hash in self.hashes_of(None, Some(sub)).await? {
            let key = self.session_key(&hash);
            out.extend(self.read_record(&key, &key, epoch).await?);
        }
        Ok(out)
    }

    /// Which of `hashes` Redis no longer has (a follower's re-check after it was away).
    pub async fn missing(&self, hashes: &[String]) -> Result<Vec<String>, RedisError> {
        let mut gone = Vec::new();
        for chunk in hashes.chunks(1000) {
            let cmds = chunk
                .iter()
                .map(|h| Cmd::new("EXISTS").arg(self.session_key(h)))
                .collect();
            let answers = self.redis.pipeline(cmds).await?;
            gone.extend(
                chunk
                    .iter()
                    .zip(answers)
                    .filter(|(_, v)| v.as_int() == Some(0))
                    .map(|(h, _)| h.clone()),
            );
        }
        Ok(gone)
    }

    /// Keeps a pending login for whichever instance the provider sends the browser back
    /// to; sealed (it holds the PKCE verifier), gone after `ttl_ms`.
    /// `login` is the [`PendingLogin`] as JSON.
    pub async fn put_pending(
        &self,
        state: &str,
        login: &[u8],
        ttl_ms: u64,
    ) -> Result<(), RedisError> {
        let key = self.pending_key(state);
        let sealed = self.keys.seal(login, key.as_bytes());
        let cmd = Cmd::new("SET")
            .arg(&key)
            .arg(sealed)
            .arg("PX")
            .arg(ttl_ms.to_string());
        self.redis.query(cmd).await.map(|_| ())
    }

    /// Takes a pending login, once for the cluster (GETDEL).
    pub async fn take_pending(&self, state: &str) -> Result<Option<PendingLogin>, RedisError> {
        let key = self.pending_key(state);
        let v = self.redis.query(Cmd::new("GETDEL").arg(&key)).await?;
        let Some(sealed) = v.as_bytes() else {
            return Ok(None);
        };
        Ok(self
            .keys
            .open(sealed, key.as_bytes())
            .ok()
            .and_then(|p| serde_json::from_slice(&p).ok()))
    }

    /// Drops pending logins (a full local table pushed them out).
    pub async fn forget_pending(&self, states: &[String]) -> Result<(), RedisError> {
        let cmd = states
            .iter()
            .fold(Cmd::new("DEL"), |c, s| c.arg(self.pending_key(s)));
        self.redis.query(cmd).await.map(|_| ())
    }

    fn pending_key(&self, state: &str) -> String {
        format!("{}l:{state}", self.prefix)
    }

    /// Claims the current round of a once-a-round duty for a session (`what` names the
    /// duty): `true` for the first instance to ask. Rounds are `round_ms` slices of the
    /// wall clock, the same at every instance whatever the phase of its own timer.
    pub async fn claim_round(
        &self,
        id: &SessionId,
        what: &str,
        round_ms: u64,
        now_unix: u64,
    ) -> Result<bool, RedisError> {
        let won = self.claim_rounds(&[*id], what, round_ms, now_unix).await?;
        Ok(won.first().copied().unwrap_or(false))
    }

    /// Remembers a provider logout (of a `sid`, else of a `sub`, issued at `iat` Unix
    /// seconds) for `ttl_ms`, so a login whose ID token predates it cannot win at any
    /// instance.
    pub async fn bury(
        &self,
        sid: Option<&str>,
        sub: &str,
        iat: u64,
        ttl_ms: u64,
    ) -> Result<(), RedisError> {
        // By sid when the logout token names one, else by subject (as the local tombstones).
        let name = match sid {
            Some(sid) => format!("{}tomb:sid:{sid}", self.prefix),
            None => format!("{}tomb:sub:{sub}", self.prefix),
        };
        let (iat, ttl) = (iat.to_string(), ttl_ms.to_string());
        let keys: [&[u8]; 1] = [name.as_bytes()];
        self.redis
            .script(&self.scripts.bury, &keys, &[iat.as_bytes(), ttl.as_bytes()])
            .await
            .map(|_| ())
    }

    /// A login whose ID token was issued at `iat` predates a remembered provider logout of
    /// its `sid` or `sub`.
    pub async fn buried(&self, sid: Option<&str>, sub: &str, iat: u64) -> Result<bool, RedisError> {
        let mut cmd = Cmd::new("MGET").arg(format!("{}tomb:sub:{sub}", self.prefix));
        if let Some(sid) = sid {
            cmd = cmd.arg(format!("{}tomb:sid:{sid}", self.prefix));
        }
        let v = self.redis.query(cmd).await?;
        Ok(v.into_array()
            .unwrap_or_default()
            .iter()
            .filter_map(int_of)
            .any(|logout_iat| iat <= logout_iat.max(0) as u64))
    }

    /// A logout token's `jti` was admitted already (by any instance).
    pub async fn jti_seen(&self, jti: &str) -> Result<bool, RedisError> {
        let v = self
            .redis
            .query(Cmd::new("EXISTS").arg(format!("{}jti:{jti}", self.prefix)))
            .await?;
        Ok(v.as_int() == Some(1))
    }

    /// [`SharedSessions::claim_round`] for many sessions in one pipeline.
    pub async fn claim_rounds(
        &self,
        ids: &[SessionId],
        what: &str,
        round_ms: u64,
        now_unix: u64,
    ) -> Result<Vec<bool>, RedisError> {
        let round = now_unix / round_ms.max(1);
        let cmds = ids
            .iter()
            .map(|id| {
                let key = format!("{}{what}:{}:{round}", self.prefix, Self::hash_of(id));
                set_once(&key, "1", round_ms)
            })
            .collect();
        let answers = self.redis.pipeline(cmds).await?;
        Ok(answers.iter().map(Value::is_ok).collect())
    }

    /// Admits a logout token's `jti` once for the cluster: `false` if seen before.
    pub async fn admit_jti(&self, jti: &str, ttl_ms: u64) -> Result<bool, RedisError> {
        let cmd = set_once(&format!("{}jti:{jti}", self.prefix), "1", ttl_ms);
        Ok(self.redis.query(cmd).await?.is_ok())
    }
}

/// Reads the ends stream after `last` (`$`: from now), blocking up to `block_ms`; answers
/// the last entry id and the hashes ended.
pub async fn read_ends(
    redis: &Redis,
    stream: &str,
    last: &str,
    block_ms: u64,
) -> Result<(String, Vec<String>), RedisError> {
    let cmd = Cmd::new("XREAD")
        .arg("COUNT")
        .arg("1000")
        .arg("BLOCK")
        .arg(block_ms.to_string())
        .arg("STREAMS")
        .arg(stream)
        .arg(last);
    let mut last = last.to_string();
    let mut hashes = Vec::new();
    // [[stream, [[id, [field, value, ...]], ...]]] or nil on timeout.
    let within = std::time::Duration::from_millis(block_ms + 2_000);
    let streams = redis
        .query_within(cmd, within)
        .await?
        .into_array()
        .unwrap_or_default();
    for s in streams {
        let mut s = s.into_array().unwrap_or_default();
        let entries = if s.len() == 2 {
            s.pop().and_then(Value::into_array)
        } else {
            None
        };
        for e in entries.unwrap_or_default() {
            let mut e = e.into_array().unwrap_or_default().into_iter();
            if let Some(id) = e.next().as_ref().and_then(text_of) {
                last = id;
            }
            let fields = e.next().and_then(Value::into_array).unwrap_or_default();
            hashes.extend(fields.chunks(2).filter_map(|kv| match kv {
                [k, v] if k.as_bytes() == Some(b"h") => text_of(v),
                _ => None,
            }));
        }
    }
    Ok((last, hashes))
}

/// The id of the stream's newest entry, where a follower starts (`0-0` when empty).
pub async fn ends_tail(redis: &Redis, stream: &str) -> Result<String, RedisError> {
    let cmd = Cmd::new("XREVRANGE")
        .arg(stream)
        .arg("+")
        .arg("-")
        .arg("COUNT")
        .arg("1");
    let v = redis.query(cmd).await?;
    Ok(v.into_array()
        .and_then(|a| a.into_iter().next())
        .and_then(Value::into_array)
        .and_then(|e| e.first().and_then(text_of))
        .unwrap_or_else(|| "0-0".to_string()))
}

/// `SET key value NX PX ttl`: the first asker wins (answer `OK`), for `ttl_ms`.
fn set_once(key: &str, value: &str, ttl_ms: u64) -> Cmd {
    Cmd::new("SET")
        .arg(key)
        .arg(value)
        .arg("NX")
        .arg("PX")
        .arg(ttl_ms.max(1).to_string())
}

fn int_of(v: &Value) -> Option<i64> {
    match v {
        Value::Int(n) => Some(*n),
        other => std::str::from_utf8(other.as_bytes()?).ok()?.parse().ok(),
    }
}

fn text_of(v: &Value) -> Option<String> {
    v.as_bytes()
        .map(|b| String::from_utf8_lossy(b).into_owned())
}

fn unexpected(what: &str, v: &Value) -> RedisError {
    RedisError::Protocol(format!("{what}: unexpected answer {v:?}"))
}

fn rand_u64() -> u64 {
    use ring::rand::SecureRandom;
    let mut b = [0u8; 8];
    let _ = ring::rand::SystemRandom::new().fill(&mut b);
    u64::from_le_bytes(b)
}
