//! One worker's sessions: a slab of records, a hash index by id, group indexes by the
//! provider's `sid` and by subject, and a timer wheel for expiry.
//!
//! Layout, per session (see the module docs of [`crate::session`] for the why):
//! - the record ([`Session`], its wheel link and two group links: 160 bytes) lives in a
//!   slab of fixed-size chunks, addressed by a `u32` handle that never changes while the
//!   session lives;
//! - the id index is a `hashbrown::HashTable` of 8-byte `{tag, handle}` entries: the
//!   record is stored once, not beside a copy of its key, and growing the index rehashes
//!   from the stored tag without touching the records;
//! - each group index (sid, subject) holds one entry per distinct key pointing at the first
//!   record of the group; the group is a doubly linked list through the records, so
//!   removing a session from a group of any size is O(1);
//! - the wheel's list for a tick is threaded through the records' wheel links.

use std::collections::hash_map::RandomState;
use std::fmt;
use std::hash::BuildHasher;

use hashbrown::HashTable;

use super::id::{widen, IdHashBuilder, SessionId};
use super::wheel::{self, Handle, LinkStore, Wheel, MAX_HANDLE};

/// "No expiry" for the token expiry fields.
pub const NEVER: u64 = u64::MAX;

/// How a table expires sessions. All times in milliseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TableConfig {
    /// A session not used for this long ends (`cg.sessionTimeoutSec` × 1000).
    pub idle_timeout_ms: u64,
    /// A session ends this long after it was created, however active (none: no limit).
    pub max_lifetime_ms: Option<u64>,
    /// Wheel granularity (`cg.sessionCheckIntervalMs`): a session is removed at the first
    /// tick at or after its deadline, so at most one tick late, never early.
    pub tick_ms: u64,
}

impl TableConfig {
    /// The latest a deadline can be, counted from now: the wheel is sized to cover it.
    fn span_ms(&self) -> u64 {
        self.max_lifetime_ms
            .map_or(self.idle_timeout_ms, |m| m.min(self.idle_timeout_ms))
    }

    /// When `s` ends: idle deadline or absolute deadline, whichever is first.
    #[inline]
    fn deadline(&self, s: &Session) -> u64 {
        let idle = s.last_access_ms.saturating_add(self.idle_timeout_ms);
        match self.max_lifetime_ms {
            Some(max) => idle.min(s.created_ms.saturating_add(max)),
            None => idle,
        }
    }

    /// The first tick at or after `deadline_ms`.
    #[inline]
    fn tick_at_or_after(&self, deadline_ms: u64) -> u64 {
        deadline_ms.div_ceil(self.tick_ms)
    }
}

/// One login's state.
///
/// The fields that decide expiry and index membership (id, subject, sid, created, last
/// access) are read through methods, so a caller holding `&mut Session` cannot put the
/// table's indexes or wheel out of step. Times are milliseconds since the table's epoch,
/// the same clock as the `now` passed to the table.
pub struct Session {
    id: SessionId,
    subject: Box<str>,
    sid: Option<Box<str>>,
    created_ms: u64,
    last_access_ms: u64,
    pub access_token: std::rc::Rc<str>,
    /// When the access token expires ([`NEVER`] if unknown).
    pub access_expires_ms: u64,
    pub refresh_token: Box<str>,
    /// When the refresh token expires ([`NEVER`] for offline tokens or when not given).
    pub refresh_expires_ms: u64,
    pub id_token: Box<str>,
    /// The access banner was accepted in this session.
    pub banner_accepted: bool,
    /// A token refresh is in flight; at most one runs per session.
    pub refreshing: bool,
    /// Fresh-token propagation: set by every [`SessionTable::touch`] and at login, cleared
    /// by whoever sends the session's token to the `freshTokenListeners`. A flag rather
    /// than a last-sent time: it answers "used since the last send?" exactly and costs one
    /// byte where a timestamp costs eight.
    pub used_since_fresh_send: bool,
    /// WebSocket connections open in this session, closed when it ends.
    pub open_websockets: u16,
}

impl Session {
    /// A session created at `now_ms`, last used then, with no tokens yet (empty tokens do
    /// not allocate); set the token fields before inserting.
    pub fn new(id: SessionId, subject: Box<str>, sid: Option<Box<str>>, now_ms: u64) -> Self {
        Session {
            id,
            subject,
            sid,
            created_ms: now_ms,
            last_access_ms: now_ms,
            access_token: std::rc::Rc::from(""),
            access_expires_ms: NEVER,
            refresh_token: Box::default(),
            refresh_expires_ms: NEVER,
            id_token: Box::default(),
            banner_accepted: false,
            refreshing: false,
            used_since_fresh_send: true,
            open_websockets: 0,
        }
    }

    /// A session read back from outside the process (the shared store, a snapshot), with
    /// its creation and last use already on this table's clock.
    pub fn restored(
        id: SessionId,
        subject: Box<str>,
        sid: Option<Box<str>>,
        created_ms: u64,
        last_access_ms: u64,
    ) -> Self {
        let mut s = Session::new(id, subject, sid, created_ms);
        s.last_access_ms = last_access_ms.max(created_ms);
        s
    }

    pub fn id(&self) -> &SessionId {
        &self.id
    }

    /// The provider's `sub` for the user.
    pub fn subject(&self) -> &str {
        &self.subject
    }

    /// The provider's session id (`sid` claim of the ID token), if it sent one.
    pub fn sid(&self) -> Option<&str> {
        self.sid.as_deref()
    }

    pub fn created_ms(&self) -> u64 {
        self.created_ms
    }

    pub fn last_access_ms(&self) -> u64 {
        self.last_access_ms
    }

    /// Claims the session's one refresh slot: `true` if the caller may start a refresh
    /// (and must clear [`Session::refreshing`] when it ends), `false` if one is running.
    pub fn try_begin_refresh(&mut self) -> bool {
        !std::mem::replace(&mut self.refreshing, true)
    }
}

impl fmt::Debug for Session {
    /// Tokens are credentials: only their lengths are shown.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session")
            .field("id", &self.id)
            .field("subject", &self.subject)
            .field("sid", &self.sid)
            .field("created_ms", &self.created_ms)
            .field("last_access_ms", &self.last_access_ms)
            .field("access_token_len", &self.access_token.len())
            .field("access_expires_ms", &self.access_expires_ms)
            .field("refresh_token_len", &self.refresh_token.len())
            .field("refresh_expires_ms", &self.refresh_expires_ms)
            .field("id_token_len", &self.id_token.len())
            .field("banner_accepted", &self.banner_accepted)
            .field("refreshing", &self.refreshing)
            .field("used_since_fresh_send", &self.used_since_fresh_send)
            .field("open_websockets", &self.open_websockets)
            .finish()
    }
}

// ---------------------------------------------------------------------------------------
// Records: a slab of fixed-size chunks.

const NIL: u32 = u32::MAX;

/// Records per slab chunk. Fixed chunks instead of one growing `Vec`: growing never copies
/// the records (at 1M sessions a doubling `Vec` would move ~160 MB in one go, stalling the
/// worker, and briefly need twice the memory), and the slack is at most one chunk.
const CHUNK: usize = 1024;

/// A session's place in one group list (`NIL`-terminated).
#[derive(Clone, Copy, Debug)]
struct GroupLink {
    /// The previous handle; for the head, `HEAD | tag` with the group key's 31-bit tag,
    /// so taking the head out finds its index entry without reading or hashing the key.
    prev: u32,
    next: u32,
}

/// Marks `GroupLink::prev` of a group's head (handles are below 2^31).
const HEAD: u32 = 1 << 31;

const LONE: GroupLink = GroupLink {
    prev: NIL,
    next: NIL,
};

struct Record {
    session: Session,
    wheel: wheel::Link,
    by_sid: GroupLink,
    by_subject: GroupLink,
}

#[derive(Default)]
struct Slab {
    chunks: Vec<Box<[Option<Record>]>>,
    /// Vacant handles; popped from the end.
    free: Vec<Handle>,
}

impl Slab {
    fn insert(&mut self, record: Record) -> Handle {
        if self.free.is_empty() {
            let base = self.chunks.len() * CHUNK;
            assert!(
                base + CHUNK <= MAX_HANDLE as usize + 1,
                "session slab full ({base} records)"
            );
            self.chunks.push((0..CHUNK).map(|_| None).collect());
            self.free
                .extend((base..base + CHUNK).rev().map(|h| h as Handle));
        }
        let h = self.free.pop().expect("a free handle after growing");
        let slot = &mut self.chunks[h as usize / CHUNK][h as usize % CHUNK];
        debug_assert!(slot.is_none());
        *slot = Some(record);
        h
    }

    #[inline]
    fn get(&self, h: Handle) -> &Record {
        self.chunks[h as usize / CHUNK][h as usize % CHUNK]
            .as_ref()
            .expect("live handle")
    }

    #[inline]
    fn get_mut(&mut self, h: Handle) -> &mut Record {
        self.chunks[h as usize / CHUNK][h as usize % CHUNK]
            .as_mut()
            .expect("live handle")
    }

    fn take(&mut self, h: Handle) -> Record {
        let r = self.chunks[h as usize / CHUNK][h as usize % CHUNK]
            .take()
            .expect("live handle");
        self.free.push(h);
        r
    }

    fn iter(&self) -> impl Iterator<Item = &Record> + '_ {
        self.chunks.iter().flat_map(|c| c.iter().flatten())
    }

    fn iter_mut(&mut self) -> impl Iterator<Item = &mut Record> + '_ {
        self.chunks.iter_mut().flat_map(|c| c.iter_mut().flatten())
    }
}

/// The wheel's lists run through the records.
impl LinkStore for Slab {
    #[inline]
    fn link(&self, h: Handle) -> wheel::Link {
        self.get(h).wheel
    }

    #[inline]
    fn link_mut(&mut self, h: Handle) -> &mut wheel::Link {
        &mut self.get_mut(h).wheel
    }
}

// ---------------------------------------------------------------------------------------
// Hash indexes.

/// An index entry, 8 bytes: the handle and the tag its hash is [`widen`]ed from (32 bits
/// of an id, 31 of a group key's SipHash), so rehashing on growth never reads the records.
#[derive(Clone, Copy, Debug)]
struct Entry {
    tag: u32,
    handle: Handle,
}

impl Entry {
    #[inline]
    fn hash(&self) -> u64 {
        widen(self.tag)
    }
}

/// Which group index.
#[derive(Clone, Copy, Debug)]
enum Group {
    Sid,
    Subject,
}

impl Group {
    fn key(self, s: &Session) -> Option<&str> {
        match self {
            Group::Sid => s.sid.as_deref(),
            Group::Subject => Some(&s.subject),
        }
    }

    fn link(self, r: &Record) -> GroupLink {
        match self {
            Group::Sid => r.by_sid,
            Group::Subject => r.by_subject,
        }
    }

    fn link_mut(self, r: &mut Record) -> &mut GroupLink {
        match self {
            Group::Sid => &mut r.by_sid,
            Group::Subject => &mut r.by_subject,
        }
    }
}

/// Everything but the wheel, so records can be removed while the wheel hands them out.
struct Store {
    slab: Slab,
    ids: HashTable<Entry>,
    by_sid: HashTable<Entry>,
    by_subject: HashTable<Entry>,
    /// Keyed (SipHash) for sid and subject: those strings come from outside, unlike ids.
    key_hasher: RandomState,
}

impl Store {
    #[inline]
    fn find(&self, id: &SessionId) -> Option<Handle> {
        let tag = id.tag();
        let slab = &self.slab;
        // `IdHashBuilder` hashes an id as `widen(tag)`, the same as `Entry::hash`. The
        // stored tag is compared first: a control-byte false match (1 in 128) then costs
        // no read of the record.
        self.ids
            .find(IdHashBuilder.hash_one(id), |e| {
                e.tag == tag && slab.get(e.handle).session.id == *id
            })
            .map(|e| e.handle)
    }

    /// The 31-bit tag of a group key: part of a keyed SipHash of the string.
    fn key_tag(&self, key: &str) -> u32 {
        self.key_hasher.hash_one(key) as u32 & !HEAD
    }

    fn groups(&self, g: Group) -> &HashTable<Entry> {
        match g {
            Group::Sid => &self.by_sid,
            Group::Subject => &self.by_subject,
        }
    }

    /// The first handle of the group keyed `key`, or `NIL`.
    fn group_head(&self, g: Group, key: &str) -> Handle {
        let tag = self.key_tag(key);
        let slab = &self.slab;
        self.groups(g)
            .find(widen(tag), |e| {
                e.tag == tag && g.key(&slab.get(e.handle).session) == Some(key)
            })
            .map_or(NIL, |e| e.handle)
    }

    /// Adds the record `h` to the front of its group.
    fn join(&mut self, g: Group, h: Handle) {
        let slab = &self.slab;
        let Some(key) = g.key(&slab.get(h).session) else {
            return;
        };
        let tag = self.key_tag(key);
        let table = match g {
            Group::Sid => &mut self.by_sid,
            Group::Subject => &mut self.by_subject,
        };
        let found = table.find_mut(widen(tag), |e| {
            e.tag == tag && g.key(&slab.get(e.handle).session) == Some(key)
        });
        let old_head = match found {
            Some(e) => std::mem::replace(&mut e.handle, h),
            None => {
                table.insert_unique(widen(tag), Entry { tag, handle: h }, Entry::hash);
                NIL
            }
        };
        *g.link_mut(self.slab.get_mut(h)) = GroupLink {
            prev: HEAD | tag,
            next: old_head,
        };
        if old_head != NIL {
            g.link_mut(self.slab.get_mut(old_head)).prev = h;
        }
    }

    /// Takes the record `h` out of its group.
    fn leave(&mut self, g: Group, h: Handle) {
        let record = self.slab.get(h);
        if g.key(&record.session).is_none() {
            return;
        }
        let GroupLink { prev, next } = g.link(record);
        if prev & HEAD != 0 {
            // The head: the index entry points here. The tag in `prev` finds it.
            let table = match g {
                Group::Sid => &mut self.by_sid,
                Group::Subject => &mut self.by_subject,
            };
            let Ok(mut entry) = table.find_entry(widen(prev & !HEAD), |e| e.handle == h) else {
                unreachable!("group head {h} missing from its index");
            };
            if next == NIL {
                entry.remove();
            } else {
                entry.get_mut().handle = next;
            }
        } else {
            g.link_mut(self.slab.get_mut(prev)).next = next;
        }
        if next != NIL {
            // The new head inherits `HEAD | tag`, or its new predecessor.
            g.link_mut(self.slab.get_mut(next)).prev = prev;
        }
        *g.link_mut(self.slab.get_mut(h)) = LONE;
    }

    /// Adds a record whose id is not in the table yet (not to the wheel).
    fn add(&mut self, session: Session) -> Handle {
        let tag = session.id.tag();
        let h = self.slab.insert(Record {
            session,
            wheel: wheel::Link::UNSCHEDULED,
            by_sid: LONE,
            by_subject: LONE,
        });
        self.ids
            .insert_unique(widen(tag), Entry { tag, handle: h }, Entry::hash);
        self.join(Group::Sid, h);
        self.join(Group::Subject, h);
        h
    }

    /// Removes the record `h`, which is not in the wheel, from every index and the slab.
    fn remove(&mut self, h: Handle) -> Session {
        debug_assert!(!self.slab.get(h).wheel.is_scheduled());
        self.leave(Group::Sid, h);
        self.leave(Group::Subject, h);
        let tag = self.slab.get(h).session.id.tag();
        match self.ids.find_entry(widen(tag), |e| e.handle == h) {
            Ok(entry) => {
                entry.remove();
            }
            Err(_) => unreachable!("record {h} missing from the id index"),
        }
        self.slab.take(h).session
    }
}

// ---------------------------------------------------------------------------------------
// The table.

/// One worker's sessions. Single-threaded: the worker owns it, nothing is shared.
///
/// Time is passed in, never read: every `now` is milliseconds since an epoch the owner
/// picks (e.g. the worker's start `Instant`) and must not go backwards.
pub struct SessionTable {
    config: TableConfig,
    store: Store,
    wheel: Wheel,
}

impl SessionTable {
    /// An empty table.
    ///
    /// # Panics
    /// If `config.tick_ms` is 0 (the config layer enforces a 10 ms floor).
    pub fn new(config: TableConfig) -> Self {
        Self::with_capacity(config, 0)
    }

    /// An empty table with room for `capacity` sessions in its indexes (e.g. the worker's
    /// share of `cg.maxSessions`), so they never rehash below that.
    ///
    /// # Panics
    /// If `config.tick_ms` is 0.
    pub fn with_capacity(config: TableConfig, capacity: usize) -> Self {
        assert!(config.tick_ms > 0, "session table tick must be positive");
        let span_ticks = config.span_ms().div_ceil(config.tick_ms);
        SessionTable {
            config,
            store: Store {
                slab: Slab::default(),
                ids: HashTable::with_capacity(capacity),
                by_sid: HashTable::with_capacity(capacity),
                by_subject: HashTable::with_capacity(capacity),
                key_hasher: RandomState::new(),
            },
            wheel: Wheel::new(span_ticks),
        }
    }

    pub fn config(&self) -> &TableConfig {
        &self.config
    }

    /// Sessions held, including any past their deadline that the wheel has not yet swept.
    pub fn len(&self) -> usize {
        self.store.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Adds a session and schedules its expiry from its own `created_ms` and
    /// `last_access_ms` (a deadline already past is swept by the next `expire`). A
    /// session with the same id is replaced and returned (ids are random: this means the
    /// caller inserted the same session twice).
    pub fn insert(&mut self, session: Session) -> Option<Session> {
        let old = self.remove(&session.id);
        let tick = self.config.tick_at_or_after(self.config.deadline(&session));
        let h = self.store.add(session);
        self.wheel.schedule(&mut self.store.slab, h, tick);
        old
    }

    /// The session, whatever its deadline (admin views, the owner answering another
    /// worker's question). The request path uses [`SessionTable::touch`].
    pub fn get(&self, id: &SessionId) -> Option<&Session> {
        self.store.find(id).map(|h| &self.store.slab.get(h).session)
    }

    /// The session for changing tokens or flags, without counting as use.
    pub fn get_mut(&mut self, id: &SessionId) -> Option<&mut Session> {
        let h = self.store.find(id)?;
        Some(&mut self.store.slab.get_mut(h).session)
    }

    /// The request path: looks the session up and records a use at `now` (last access,
    /// the fresh-token flag). O(1); the session's wheel entry stays where it is and is
    /// re-slotted when its old tick comes.
    ///
    /// A session whose deadline has been reached is `None` here even before the wheel
    /// sweeps it (at most one tick later, when [`SessionTable::expire`] hands it out for
    /// logout): an idle session cannot be revived by a request in that window.
    #[inline]
    pub fn touch(&mut self, id: &SessionId, now: u64) -> Option<&mut Session> {
        let h = self.store.find(id)?;
        let s = &mut self.store.slab.get_mut(h).session;
        if self.config.deadline(s) <= now {
            return None;
        }
        // `max`: a late message carrying an older `now` must not move the deadline back.
        s.last_access_ms = s.last_access_ms.max(now);
        s.used_since_fresh_send = true;
        Some(s)
    }

    /// Removes a session (logout), from the indexes and the wheel too.
    pub fn remove(&mut self, id: &SessionId) -> Option<Session> {
        let h = self.store.find(id)?;
        self.wheel.cancel(&mut self.store.slab, h);
        Some(self.store.remove(h))
    }

    /// Ids of the sessions with provider session `sid` (back-channel logout). Collect
    /// them before removing.
    pub fn ids_by_sid<'a>(&'a self, sid: &str) -> impl Iterator<Item = SessionId> + 'a {
        self.group(Group::Sid, sid)
    }

    /// Ids of the sessions of user `subject` (logout by `sub`, admin).
    pub fn ids_by_subject<'a>(&'a self, subject: &str) -> impl Iterator<Item = SessionId> + 'a {
        self.group(Group::Subject, subject)
    }

    fn group(&self, g: Group, key: &str) -> GroupIter<'_> {
        GroupIter {
            slab: &self.store.slab,
            group: g,
            next: self.store.group_head(g, key),
        }
    }

    /// Advances the wheel to `now` and moves every session whose deadline (idle or
    /// absolute) has been reached into `out`, at the first tick at or after it. Sessions
    /// in the fired slots that were used since are re-slotted at their new deadline.
    /// Costs O(slots fired + sessions in them), never O(all sessions).
    pub fn expire(&mut self, now: u64, out: &mut Vec<Session>) {
        self.expire_at_most(now, out, usize::MAX);
    }

    /// [`SessionTable::expire`] with a work budget: handles at most `max` sessions
    /// (expired or re-slotted) and returns whether more are due, so a worker facing a
    /// mass expiry can sweep in slices between requests. The next call (with the same or
    /// a later `now`) continues where this one stopped; until then, `touch` already
    /// refuses the sessions that are due.
    pub fn expire_at_most(&mut self, now: u64, out: &mut Vec<Session>, max: usize) -> bool {
        let config = &self.config;
        self.wheel.advance_to(now / config.tick_ms);
        // Not `now`'s tick: after an earlier call with a later `now`, the wheel is there.
        let tick = self.wheel.target();
        for _ in 0..max {
            let Some(h) = self.wheel.pop_due(&mut self.store.slab) else {
                return false;
            };
            let session = &self.store.slab.get(h).session;
            let due = config.tick_at_or_after(config.deadline(session));
            if due <= tick {
                out.push(self.store.remove(h));
            } else {
                self.wheel.schedule(&mut self.store.slab, h, due);
            }
        }
        self.wheel.has_due()
    }

    /// Every session, in no particular order (admin listing). O(capacity).
    pub fn iter(&self) -> impl Iterator<Item = &Session> + '_ {
        self.store.slab.iter().map(|r| &r.session)
    }

    /// Every session, mutably (e.g. the fresh-token sender clearing its flag). O(capacity).
    pub fn iter_mut(&mut self) -> impl Iterator<Item = &mut Session> + '_ {
        self.store.slab.iter_mut().map(|r| &mut r.session)
    }
}

impl fmt::Debug for SessionTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionTable")
            .field("config", &self.config)
            .field("len", &self.len())
            .field("wheel_slots", &self.wheel.slots())
            .field("wheel_tick", &self.wheel.target())
            .finish_non_exhaustive()
    }
}

/// Walks one group list.
struct GroupIter<'a> {
    slab: &'a Slab,
    group: Group,
    next: Handle,
}

impl Iterator for GroupIter<'_> {
    type Item = SessionId;

    fn next(&mut self) -> Option<SessionId> {
        if self.next == NIL {
            return None;
        }
        let r = self.slab.get(self.next);
        self.next = self.group.link(r).next;
        Some(r.session.id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TICK: u64 = 100;
    const IDLE: u64 = 1_000;

    fn config(max_lifetime_ms: Option<u64>) -> TableConfig {
        TableConfig {
            idle_timeout_ms: IDLE,
            max_lifetime_ms,
            tick_ms: TICK,
        }
    }

    fn id(n: u64) -> SessionId {
        // Spread the counter over the hashed bytes like random ids would be.
        let x = n.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0x5555;
        let mut b = [0u8; 17];
        b[1..9].copy_from_slice(&x.to_le_bytes());
        b[9..17].copy_from_slice(&n.to_le_bytes());
        SessionId::from_bytes(b)
    }

    fn session(n: u64, sub: &str, sid: Option<&str>, now: u64) -> Session {
        let mut s = Session::new(id(n), sub.into(), sid.map(Into::into), now);
        s.access_token = format!("at-{n}").into();
        s
    }

    /// Sweeps at every tick boundary from the table's current tick to `to_ms`, returning
    /// (tick time, id) of what expired.
    fn sweep_to(t: &mut SessionTable, to_ms: u64) -> Vec<(u64, SessionId)> {
        let mut got = Vec::new();
        let mut out = Vec::new();
        let from = (t.wheel.target() + 1) * TICK;
        for now in (from..=to_ms).step_by(TICK as usize) {
            t.expire(now, &mut out);
            got.extend(out.drain(..).map(|s| (now, s.id)));
        }
        got
    }

    /// The indexes agree with the records (test-only full check, O(n log n)).
    fn check_consistent(t: &SessionTable) {
        use std::collections::BTreeMap;
        let mut subs: BTreeMap<&str, Vec<[u8; 17]>> = BTreeMap::new();
        let mut sids: BTreeMap<&str, Vec<[u8; 17]>> = BTreeMap::new();
        let mut n = 0;
        for s in t.iter() {
            n += 1;
            assert_eq!(t.get(&s.id).map(|g| g.id), Some(s.id));
            subs.entry(s.subject()).or_default().push(*s.id.as_bytes());
            if let Some(sid) = s.sid() {
                sids.entry(sid).or_default().push(*s.id.as_bytes());
            }
        }
        assert_eq!(n, t.len());
        assert_eq!(t.wheel.len(), t.len());
        assert_eq!(t.store.by_subject.len(), subs.len());
        assert_eq!(t.store.by_sid.len(), sids.len());
        for (groups, by) in [(subs, Group::Subject), (sids, Group::Sid)] {
            for (key, mut want) in groups {
                want.sort_unstable();
                let mut got: Vec<_> = t.group(by, key).map(|i| *i.as_bytes()).collect();
                got.sort_unstable();
                assert_eq!(got, want, "group {key}");
            }
        }
    }

    #[test]
    fn insert_get_touch_remove() {
        let mut t = SessionTable::new(config(None));
        assert!(t.is_empty());
        assert!(t.insert(session(1, "alice", Some("kc-1"), 0)).is_none());
        assert!(t.insert(session(2, "alice", Some("kc-2"), 0)).is_none());
        assert!(t.insert(session(3, "bob", None, 0)).is_none());
        assert_eq!(t.len(), 3);
        assert_eq!(t.get(&id(1)).unwrap().subject(), "alice");
        assert!(t.get(&id(9)).is_none());

        let s = t.touch(&id(2), 250).unwrap();
        assert_eq!(s.last_access_ms(), 250);
        assert!(s.used_since_fresh_send);
        s.used_since_fresh_send = false;
        // An older `now` does not move last access back.
        assert_eq!(t.touch(&id(2), 200).unwrap().last_access_ms(), 250);
        assert!(t.touch(&id(9), 250).is_none());

        let gone = t.remove(&id(1)).unwrap();
        assert_eq!(gone.sid(), Some("kc-1"));
        assert!(t.remove(&id(1)).is_none());
        assert!(t.get(&id(1)).is_none());
        assert_eq!(t.len(), 2);
        assert_eq!(t.ids_by_subject("alice").collect::<Vec<_>>(), vec![id(2)]);
        assert_eq!(t.ids_by_sid("kc-1").count(), 0);
        check_consistent(&t);
    }

    #[test]
    fn insert_same_id_replaces() {
        let mut t = SessionTable::new(config(None));
        t.insert(session(1, "alice", Some("a"), 0));
        let old = t.insert(session(1, "bob", Some("b"), 0)).unwrap();
        assert_eq!(old.subject(), "alice");
        assert_eq!(t.len(), 1);
        assert_eq!(t.ids_by_subject("alice").count(), 0);
        assert_eq!(t.ids_by_sid("b").collect::<Vec<_>>(), vec![id(1)]);
        check_consistent(&t);
    }

    #[test]
    fn idle_expiry_at_the_first_tick_at_or_after_the_deadline() {
        let mut t = SessionTable::new(config(None));
        // Deadline 1_000 + 1_050 = 2_050: first tick at or after it is 2_100.
        t.insert(session(1, "a", None, 1_050));
        // Deadline exactly on a tick: 1_000 + 1_000 = 2_000, expires at 2_000.
        t.insert(session(2, "b", None, 1_000));
        let mut out = Vec::new();
        t.expire(1_999, &mut out);
        assert!(out.is_empty());
        assert_eq!(sweep_to(&mut t, 2_000), vec![(2_000, id(2))]);
        // Between ticks: a later call in the same tick changes nothing.
        t.expire(2_099, &mut out);
        assert!(out.is_empty());
        assert!(t.get(&id(1)).is_some());
        assert_eq!(sweep_to(&mut t, 2_100), vec![(2_100, id(1))]);
        assert!(t.is_empty());
    }

    #[test]
    fn touch_postpones_expiry_by_reslotting() {
        let mut t = SessionTable::new(config(None));
        t.insert(session(1, "a", None, 0)); // deadline 1_000: tick 10
        let h = t.store.find(&id(1)).unwrap();
        let slots = t.wheel.slots(); // 16: tick 16 is slot 0
        assert_eq!(t.wheel.slot_of(&t.store.slab, h), Some(10));
        t.touch(&id(1), 550).unwrap(); // real deadline 1_550: tick 16
                                       // Touch did not move the entry.
        assert_eq!(t.wheel.slot_of(&t.store.slab, h), Some(10));
        assert!(sweep_to(&mut t, 900).is_empty());
        // When tick 10 fires the session is re-slotted at its new deadline, not expired.
        assert!(sweep_to(&mut t, 1_000).is_empty());
        assert_eq!(t.wheel.slot_of(&t.store.slab, h), Some(16 % slots));
        assert!(sweep_to(&mut t, 1_500).is_empty());
        assert_eq!(sweep_to(&mut t, 1_600), vec![(1_600, id(1))]);
        assert!(t.wheel.is_empty());
    }

    #[test]
    fn touch_after_deadline_is_none_and_sweep_still_reports() {
        let mut t = SessionTable::new(config(None));
        t.insert(session(1, "a", None, 50)); // deadline 1_050, swept at 1_100
        assert!(t.touch(&id(1), 1_049).is_some()); // deadline -> 2_049
        assert!(t.touch(&id(1), 2_049).is_none());
        assert!(t.get(&id(1)).is_some());
        assert_eq!(sweep_to(&mut t, 2_100), vec![(2_100, id(1))]);
    }

    #[test]
    fn absolute_lifetime_beats_activity() {
        let mut t = SessionTable::new(config(Some(2_500)));
        t.insert(session(1, "a", Some("s"), 0));
        let mut got = Vec::new();
        for now in (TICK..=3_000).step_by(TICK as usize) {
            // Used on every tick, so never idle.
            if let Some(s) = t.touch(&id(1), now) {
                assert!(now < 2_500);
                s.banner_accepted = true;
            }
            let mut out = Vec::new();
            t.expire(now, &mut out);
            got.extend(out.into_iter().map(|s| (now, s.id)));
        }
        assert_eq!(got, vec![(2_500, id(1))]);
        assert_eq!(t.ids_by_sid("s").count(), 0);
    }

    #[test]
    fn indexes_follow_removal_and_expiry() {
        let mut t = SessionTable::new(config(None));
        // Three sessions in one provider session, two users; one without sid.
        t.insert(session(1, "alice", Some("kc"), 0));
        t.insert(session(2, "alice", Some("kc"), 300));
        t.insert(session(3, "bob", Some("kc"), 600));
        t.insert(session(4, "alice", None, 900));
        let mut by_sid: Vec<_> = t.ids_by_sid("kc").collect();
        by_sid.sort_by_key(|i| *i.as_bytes());
        let mut want = vec![id(1), id(2), id(3)];
        want.sort_by_key(|i| *i.as_bytes());
        assert_eq!(by_sid, want);
        assert_eq!(t.ids_by_subject("alice").count(), 3);
        assert_eq!(t.ids_by_subject("carol").count(), 0);

        // Remove from the middle of a group, then expire the rest one by one.
        t.remove(&id(2));
        check_consistent(&t);
        assert_eq!(t.ids_by_subject("alice").count(), 2);
        assert_eq!(sweep_to(&mut t, 1_000), vec![(1_000, id(1))]);
        check_consistent(&t);
        assert_eq!(t.ids_by_sid("kc").collect::<Vec<_>>(), vec![id(3)]);
        assert_eq!(t.ids_by_subject("alice").collect::<Vec<_>>(), vec![id(4)]);
        assert_eq!(
            sweep_to(&mut t, 1_900),
            vec![(1_600, id(3)), (1_900, id(4))]
        );
        assert_eq!(t.ids_by_sid("kc").count(), 0);
        assert_eq!(t.ids_by_subject("alice").count(), 0);
        assert_eq!(t.ids_by_subject("bob").count(), 0);
        assert!(t.store.by_sid.is_empty() && t.store.by_subject.is_empty());
    }

    #[test]
    fn long_pause_expires_everything_due_in_one_call() {
        let mut t = SessionTable::new(config(None));
        for n in 0..50 {
            t.insert(session(n, "u", None, n * 37));
        }
        t.touch(&id(7), 5_000);
        let mut out = Vec::new();
        // One call after a pause of ~600 ticks (the wheel has 16 slots).
        t.expire(60_000, &mut out);
        assert_eq!(out.len(), 50);
        assert!(t.is_empty());
        assert!(t.wheel.is_empty());
    }

    #[test]
    fn long_pause_keeps_what_is_not_due() {
        let mut t = SessionTable::new(config(None));
        t.insert(session(1, "u", None, 0));
        t.insert(session(2, "u", None, 0));
        let mut out = Vec::new();
        t.expire(900, &mut out);
        t.touch(&id(2), 900); // deadline 1_900
        t.expire(1_850, &mut out); // 9 ticks at once
        assert_eq!(out.iter().map(|s| s.id).collect::<Vec<_>>(), vec![id(1)]);
        out.clear();
        assert_eq!(sweep_to(&mut t, 1_900), vec![(1_900, id(2))]);
    }

    #[test]
    fn insert_with_past_deadline_goes_at_next_tick() {
        let mut t = SessionTable::new(config(None));
        let mut out = Vec::new();
        t.expire(5_000, &mut out);
        t.insert(session(1, "u", None, 1_000)); // deadline 2_000, long past
        assert!(t.touch(&id(1), 5_000).is_none());
        assert_eq!(sweep_to(&mut t, 5_100), vec![(5_100, id(1))]);
    }

    #[test]
    fn refresh_slot_is_exclusive() {
        let mut s = session(1, "u", None, 0);
        assert!(s.try_begin_refresh());
        assert!(!s.try_begin_refresh());
        s.refreshing = false;
        assert!(s.try_begin_refresh());
    }

    #[test]
    fn debug_hides_tokens() {
        let mut s = session(1, "u", None, 0);
        s.refresh_token = "secret-refresh".into();
        let d = format!("{s:?}");
        assert!(!d.contains("secret-refresh") && !d.contains("at-1"));
    }

    /// Deterministic xorshift64* for the property test.
    struct XorShift(u64);
    impl XorShift {
        fn next(&mut self) -> u64 {
            let mut x = self.0;
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            self.0 = x;
            x.wrapping_mul(0x2545_F491_4F6C_DD1D)
        }
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
    }

    /// 100k sessions with random creation times, some touched at random times, some
    /// removed, with an absolute lifetime: each expires exactly once, at the first tick at
    /// or after its real deadline, and the indexes stay consistent.
    #[test]
    fn many_sessions_expire_exactly_once_on_time() {
        const N: u64 = 100_000;
        const TICK: u64 = 10;
        const IDLE: u64 = 5_000;
        const MAX: u64 = 12_000;
        let cfg = TableConfig {
            idle_timeout_ms: IDLE,
            max_lifetime_ms: Some(MAX),
            tick_ms: TICK,
        };
        let mut t = SessionTable::new(cfg);
        let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
        // Per session: (created, last access, removed) as the model sees them.
        let mut model: Vec<(u64, u64, bool)> = Vec::with_capacity(N as usize);
        // Events: creation times spread over 20 s, uses at random later times.
        let mut creates: Vec<(u64, u64)> = (0..N).map(|n| (rng.below(20_000), n)).collect();
        creates.sort_unstable();
        let mut uses: Vec<(u64, u64)> = (0..N * 2)
            .map(|_| {
                let n = rng.below(N);
                (rng.below(40_000), n)
            })
            .collect();
        uses.sort_unstable();
        let removes: Vec<u64> = (0..N / 50).map(|_| rng.below(N)).collect();
        model.resize(N as usize, (0, 0, false));
        let mut expired_at: Vec<Option<u64>> = vec![None; N as usize];
        let mut present = vec![false; N as usize];
        let (mut ci, mut ui) = (0, 0);
        let mut out = Vec::new();
        let deadline = |m: &(u64, u64, bool)| (m.1 + IDLE).min(m.0 + MAX);
        let subjects = ["alice", "bob", "carol", "dave", "eve"];
        // Sessions by the tick they are due at (entries go stale when a touch moves it).
        let mut by_due: std::collections::HashMap<u64, Vec<u64>> = Default::default();
        let mut removed_mid_sweep = 0;

        for now in (0..=60_000u64).step_by(TICK as usize) {
            // Events at times in (now - TICK, now], then the sweep at `now`.
            while ci < creates.len() && creates[ci].0 <= now {
                let (at, n) = creates[ci];
                let sub = subjects[(n % 5) as usize];
                let sid = format!("sid-{}", n % 1_000);
                t.insert(session(n, sub, Some(&sid), at));
                model[n as usize] = (at, at, false);
                by_due
                    .entry(deadline(&model[n as usize]).div_ceil(TICK) * TICK)
                    .or_default()
                    .push(n);
                present[n as usize] = true;
                ci += 1;
            }
            while ui < uses.len() && uses[ui].0 <= now {
                let (at, n) = uses[ui];
                let m = &mut model[n as usize];
                let alive = present[n as usize] && deadline(m) > at;
                assert_eq!(t.touch(&id(n), at).is_some(), alive, "session {n} at {at}");
                if alive {
                    m.1 = m.1.max(at);
                    let due = deadline(m).div_ceil(TICK) * TICK;
                    by_due.entry(due).or_default().push(n);
                }
                ui += 1;
            }
            if now == 15_000 {
                for &n in &removes {
                    let was = present[n as usize];
                    assert_eq!(t.remove(&id(n)).is_some(), was);
                    present[n as usize] = false;
                    model[n as usize].2 |= was;
                }
                check_consistent(&t);
            }
            // Sweep in slices of random size; between slices, log some sessions out
            // (some of them sitting in the list being drained).
            loop {
                let budget = 1 + rng.below(40) as usize;
                let more = t.expire_at_most(now, &mut out, budget);
                for s in out.drain(..) {
                    let n = u64::from_le_bytes(s.id.as_bytes()[9..17].try_into().unwrap());
                    let m = model[n as usize];
                    assert!(
                        present[n as usize],
                        "session {n} expired twice or after removal"
                    );
                    assert!(!m.2);
                    assert_eq!((s.created_ms(), s.last_access_ms()), (m.0, m.1));
                    let due = deadline(&m).div_ceil(TICK) * TICK;
                    assert_eq!(now, due, "session {n}: deadline {}", deadline(&m));
                    expired_at[n as usize] = Some(now);
                    present[n as usize] = false;
                }
                if !more {
                    break;
                }
                // One that is due now, maybe not handed out yet, and one at random.
                let due_now = by_due.get_mut(&now).and_then(|v| v.pop());
                for n in due_now.into_iter().chain([rng.below(N)]) {
                    let was = present[n as usize];
                    assert_eq!(t.remove(&id(n)).is_some(), was);
                    removed_mid_sweep += usize::from(was);
                    present[n as usize] = false;
                    model[n as usize].2 |= was;
                }
            }
            if now % 5_000 == 0 {
                check_consistent(&t);
            }
        }
        assert!(t.is_empty());
        assert!(t.wheel.is_empty());
        assert!(t.store.by_sid.is_empty() && t.store.by_subject.is_empty());
        // Everything not removed by hand expired exactly once.
        let removed = model.iter().filter(|m| m.2).count();
        let expired = expired_at.iter().filter(|e| e.is_some()).count();
        assert!(removed > 0);
        assert!(removed_mid_sweep > 100, "{removed_mid_sweep}");
        assert_eq!(expired + removed, N as usize);
    }
}
