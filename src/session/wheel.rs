//! A hashed timer wheel over compact handles (Varghese & Lauck, scheme 6).
//!
//! Time is counted in ticks. The wheel has a power-of-two number of slots; a handle due at
//! tick `t` sits in slot `t mod slots`, on a doubly linked list. The links live wherever
//! the caller keeps its records ([`LinkStore`]): the session table keeps them inside each
//! session's record, so walking a due list reads exactly the records the caller is about
//! to look at anyway, and the wheel allocates nothing per entry.
//!
//! The wheel does not know a handle's real deadline. When a slot's tick comes, its handles
//! are handed out one by one ([`Wheel::pop_due`]); the caller either drops a handle (done)
//! or schedules it again at its new deadline. That is what lets a session's deadline move
//! on every request at no cost: touching a session only writes its `last_access`, and the
//! one entry it has here is looked at when the *old* deadline's tick comes.
//!
//! Costs:
//! - `schedule`, `cancel`: O(1). Cancel unlinks at once, so the wheel never holds stale
//!   entries: its size is exactly the number of scheduled handles.
//! - `advance_to`: O(1). `pop_due` reads one slot head per tick passed, but never more
//!   than one revolution (`slots`) per advance, however long the pause, plus O(1) per
//!   handle handed out. An active session is handed out once per idle timeout.
//! - Draining is resumable: a caller may stop popping at any point (a work budget per
//!   call) and continue on the next call; the rest of the slot stays pending.
//!
//! Deadlines beyond one revolution need no overflow list: such a handle is put in its
//! deadline's slot anyway and is handed out once per revolution before it is due (the
//! caller re-schedules it, a round counter kept implicitly by the real deadline). The
//! table sizes the wheel to cover its longest deadline, so this only happens when the
//! configured span exceeds [`MAX_SLOTS`] ticks.
//!
//! Guarantee: a handle scheduled for tick `t` is handed out by the first drain after an
//! `advance_to(n)` with `n >= t` (or earlier, once per revolution, if `t` is beyond the
//! span) — never later.

/// A caller's name for one entry. The table uses slab indexes: dense, reused after free.
pub type Handle = u32;

/// Largest handle the wheel accepts (the top bit of a link marks a slot index).
pub const MAX_HANDLE: Handle = SLOT_FLAG - 1;

/// Most slots a wheel allocates: 1 MiB of slot heads, which covers 43 minutes at the
/// smallest tick the config allows (10 ms).
pub const MAX_SLOTS: usize = 1 << 18;

/// Fewest slots, so tiny spans still spread entries.
pub const MIN_SLOTS: usize = 16;

const NIL: u32 = u32::MAX;
/// In `Link::prev`: first in the list being drained.
const PENDING: u32 = u32::MAX - 1;
/// In `Link::prev`: first in a slot's list; the low bits are the slot index.
const SLOT_FLAG: u32 = 1 << 31;

/// One handle's place in the wheel: 8 bytes the caller stores per handle.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Link {
    /// Previous handle, `SLOT_FLAG | slot` or `PENDING` for a list head, `NIL` when not
    /// scheduled.
    prev: u32,
    /// Next handle or `NIL`.
    next: u32,
}

impl Link {
    /// Not in the wheel: the state a new record's link must start in.
    pub const UNSCHEDULED: Link = Link {
        prev: NIL,
        next: NIL,
    };

    /// Whether the handle owning this link is in the wheel.
    pub fn is_scheduled(&self) -> bool {
        self.prev != NIL
    }
}

impl Default for Link {
    fn default() -> Self {
        Link::UNSCHEDULED
    }
}

/// Where the caller keeps each handle's [`Link`]. Every handle passed to the wheel must
/// have one, and it must stay put while the handle is scheduled.
pub trait LinkStore {
    fn link(&self, h: Handle) -> Link;
    fn link_mut(&mut self, h: Handle) -> &mut Link;
}

impl LinkStore for [Link] {
    fn link(&self, h: Handle) -> Link {
        self[h as usize]
    }
    fn link_mut(&mut self, h: Handle) -> &mut Link {
        &mut self[h as usize]
    }
}

impl LinkStore for Vec<Link> {
    fn link(&self, h: Handle) -> Link {
        self[h as usize]
    }
    fn link_mut(&mut self, h: Handle) -> &mut Link {
        &mut self[h as usize]
    }
}

/// The wheel. Single-threaded, owned by one worker's session table.
#[derive(Debug)]
pub struct Wheel {
    /// First handle in each slot's list, or `NIL`.
    heads: Box<[u32]>,
    mask: u64,
    /// The tick to process up to (the largest passed to `advance_to`).
    target: u64,
    /// The next tick whose slot is still to be detached; every earlier tick is done.
    next_tick: u64,
    /// The rest of the slot being drained, or `NIL`.
    pending: u32,
    len: usize,
}

impl Wheel {
    /// A wheel whose one revolution covers `span_ticks` ticks ahead of now (rounded up to a
    /// power of two, within [`MIN_SLOTS`]..=[`MAX_SLOTS`]), at tick 0.
    pub fn new(span_ticks: u64) -> Self {
        let want = span_ticks.saturating_add(1).min(MAX_SLOTS as u64) as usize;
        let slots = want.next_power_of_two().clamp(MIN_SLOTS, MAX_SLOTS);
        Wheel {
            heads: vec![NIL; slots].into_boxed_slice(),
            mask: slots as u64 - 1,
            target: 0,
            next_tick: 1,
            pending: NIL,
            len: 0,
        }
    }

    /// Number of slots (one revolution, in ticks).
    pub fn slots(&self) -> usize {
        self.heads.len()
    }

    /// The tick the wheel is advancing (or has advanced) to.
    pub fn target(&self) -> u64 {
        self.target
    }

    /// Handles scheduled, including any not yet handed out from a due slot.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether [`Wheel::pop_due`] has more to hand out before reaching the target.
    pub fn has_due(&self) -> bool {
        self.pending != NIL || self.next_tick <= self.target
    }

    /// Puts `h` in the slot of `tick`, or of the earliest tick not yet processed if `tick`
    /// has been (a deadline in the past is handed out by the next drain). A handle already
    /// scheduled is moved.
    ///
    /// # Panics
    /// If `h > MAX_HANDLE`.
    pub fn schedule<L: LinkStore + ?Sized>(&mut self, links: &mut L, h: Handle, tick: u64) {
        assert!(h <= MAX_HANDLE, "wheel handle {h} out of range");
        if links.link(h).is_scheduled() {
            self.unlink(links, h);
        }
        let slot = (tick.max(self.next_tick) & self.mask) as usize;
        let old = self.heads[slot];
        *links.link_mut(h) = Link {
            prev: SLOT_FLAG | slot as u32,
            next: old,
        };
        if old != NIL {
            links.link_mut(old).prev = h;
        }
        self.heads[slot] = h;
        self.len += 1;
    }

    /// Takes `h` out of the wheel. Returns whether it was scheduled.
    pub fn cancel<L: LinkStore + ?Sized>(&mut self, links: &mut L, h: Handle) -> bool {
        if links.link(h).is_scheduled() {
            self.unlink(links, h);
            true
        } else {
            false
        }
    }

    /// Moves the wheel's target to `now_tick` (never back). O(1): the work happens in
    /// [`Wheel::pop_due`]. After a pause longer than a revolution, only the last
    /// revolution's ticks are walked: they cover every slot once.
    pub fn advance_to(&mut self, now_tick: u64) {
        if now_tick <= self.target {
            return;
        }
        self.target = now_tick;
        let slots = self.heads.len() as u64;
        if now_tick - self.next_tick >= slots {
            self.next_tick = now_tick - slots + 1;
        }
    }

    /// The next handle in a slot whose tick has come, taken out of the wheel; `None` when
    /// every slot up to the target is done. The caller schedules it again if its real
    /// deadline is later than the target. A handle scheduled again into a slot this
    /// drain has yet to reach is handed out once more there (then it lands in the slot
    /// being drained, which is not revisited), so at most twice per advance.
    pub fn pop_due<L: LinkStore + ?Sized>(&mut self, links: &mut L) -> Option<Handle> {
        loop {
            if self.pending != NIL {
                let h = self.pending;
                let next = links.link(h).next;
                *links.link_mut(h) = Link::UNSCHEDULED;
                if next != NIL {
                    links.link_mut(next).prev = PENDING;
                }
                self.pending = next;
                self.len -= 1;
                return Some(h);
            }
            if self.next_tick > self.target {
                return None;
            }
            let slot = (self.next_tick & self.mask) as usize;
            self.next_tick += 1;
            let first = std::mem::replace(&mut self.heads[slot], NIL);
            if first != NIL {
                links.link_mut(first).prev = PENDING;
                self.pending = first;
            }
        }
    }

    /// The slot `h` sits in (`None`: not scheduled or being drained); tests check where
    /// an entry is.
    #[cfg(test)]
    pub(crate) fn slot_of<L: LinkStore + ?Sized>(&self, links: &L, h: Handle) -> Option<usize> {
        let mut prev = links.link(h).prev;
        while prev != NIL && prev != PENDING && prev & SLOT_FLAG == 0 {
            prev = links.link(prev).prev;
        }
        (prev != NIL && prev != PENDING).then_some((prev & !SLOT_FLAG) as usize)
    }

    /// Unlinks a scheduled `h`.
    fn unlink<L: LinkStore + ?Sized>(&mut self, links: &mut L, h: Handle) {
        let Link { prev, next } = links.link(h);
        if prev == PENDING {
            self.pending = next;
        } else if prev & SLOT_FLAG != 0 {
            self.heads[(prev & !SLOT_FLAG) as usize] = next;
        } else {
            links.link_mut(prev).next = next;
        }
        if next != NIL {
            links.link_mut(next).prev = prev;
        }
        *links.link_mut(h) = Link::UNSCHEDULED;
        self.len -= 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn links(n: usize) -> Vec<Link> {
        vec![Link::UNSCHEDULED; n]
    }

    /// Advances to `tick` and drains: handles whose `deadline` has come are collected,
    /// the others scheduled again at their deadline.
    fn drain(
        w: &mut Wheel,
        l: &mut Vec<Link>,
        tick: u64,
        deadline: &[u64],
        fired: &mut Vec<(u64, Handle)>,
    ) -> usize {
        w.advance_to(tick);
        let mut offered = 0;
        while let Some(h) = w.pop_due(l) {
            offered += 1;
            if deadline[h as usize] <= tick {
                fired.push((tick, h));
            } else {
                w.schedule(l, h, deadline[h as usize]);
            }
        }
        offered
    }

    #[test]
    fn sizes_to_the_span() {
        assert_eq!(Wheel::new(0).slots(), MIN_SLOTS);
        assert_eq!(Wheel::new(31).slots(), 32);
        assert_eq!(Wheel::new(32).slots(), 64);
        assert_eq!(Wheel::new(180_000).slots(), 1 << 18);
        assert_eq!(Wheel::new(u64::MAX).slots(), MAX_SLOTS);
    }

    #[test]
    fn fires_at_the_deadline_tick_not_before() {
        let mut w = Wheel::new(100);
        let mut l = links(4);
        let deadline = [5, 7, 7, 1];
        for (h, d) in deadline.iter().enumerate() {
            w.schedule(&mut l, h as Handle, *d);
        }
        assert_eq!(w.len(), 4);
        let mut fired = Vec::new();
        for t in 1..=10 {
            drain(&mut w, &mut l, t, &deadline, &mut fired);
        }
        fired.sort();
        assert_eq!(fired, vec![(1, 3), (5, 0), (7, 1), (7, 2)]);
        assert!(w.is_empty());
    }

    #[test]
    fn past_deadline_is_handed_out_next() {
        let mut w = Wheel::new(100);
        let mut l = links(1);
        w.advance_to(10);
        assert_eq!(w.pop_due(&mut l), None);
        w.schedule(&mut l, 0, 3);
        assert_eq!(w.pop_due(&mut l), None);
        w.advance_to(11);
        assert_eq!(w.pop_due(&mut l), Some(0));
        assert_eq!(w.pop_due(&mut l), None);
    }

    #[test]
    fn cancel_unlinks_anywhere_in_a_list() {
        let mut w = Wheel::new(100);
        let mut l = links(5);
        for h in 0..5 {
            w.schedule(&mut l, h, 4);
        }
        assert!(w.cancel(&mut l, 2)); // middle
        assert!(w.cancel(&mut l, 4)); // head (pushed last)
        assert!(w.cancel(&mut l, 0)); // tail
        assert!(!w.cancel(&mut l, 0));
        assert_eq!(w.len(), 2);
        w.advance_to(4);
        let mut seen = vec![w.pop_due(&mut l).unwrap(), w.pop_due(&mut l).unwrap()];
        assert_eq!(w.pop_due(&mut l), None);
        seen.sort();
        assert_eq!(seen, vec![1, 3]);
    }

    #[test]
    fn cancel_while_a_slot_is_being_drained() {
        let mut w = Wheel::new(100);
        let mut l = links(4);
        for h in 0..4 {
            w.schedule(&mut l, h, 2);
        }
        w.advance_to(2);
        let first = w.pop_due(&mut l).unwrap(); // 3: the list is 3, 2, 1, 0
        assert_eq!(first, 3);
        assert!(w.cancel(&mut l, 2)); // the head of what is pending
        assert!(w.cancel(&mut l, 0)); // its tail
        assert!(!w.cancel(&mut l, 3)); // already handed out
        assert_eq!(w.pop_due(&mut l), Some(1));
        assert_eq!(w.pop_due(&mut l), None);
        assert!(w.is_empty());
    }

    #[test]
    fn draining_can_stop_and_resume() {
        let mut w = Wheel::new(100);
        let mut l = links(6);
        for h in 0..6 {
            w.schedule(&mut l, h, 1 + u64::from(h % 2));
        }
        w.advance_to(2);
        let mut got = vec![w.pop_due(&mut l).unwrap(), w.pop_due(&mut l).unwrap()];
        assert!(w.has_due());
        // A later call, after new work was scheduled and the clock moved on.
        w.schedule(&mut l, 0, 9);
        w.advance_to(3);
        while let Some(h) = w.pop_due(&mut l) {
            got.push(h);
        }
        assert!(!w.has_due());
        got.sort();
        assert_eq!(got, vec![1, 2, 3, 4, 5]);
        assert_eq!(w.len(), 1);
    }

    #[test]
    fn schedule_twice_moves() {
        let mut w = Wheel::new(100);
        let mut l = links(1);
        w.schedule(&mut l, 0, 3);
        w.schedule(&mut l, 0, 6);
        assert_eq!(w.len(), 1);
        assert_eq!(w.slot_of(&l, 0), Some(6));
        let mut fired = Vec::new();
        for t in 1..=6 {
            drain(&mut w, &mut l, t, &[6], &mut fired);
        }
        assert_eq!(fired, vec![(6, 0)]);
    }

    #[test]
    fn reslotting_moves_to_the_new_deadline() {
        let mut w = Wheel::new(100);
        let mut l = links(1);
        w.schedule(&mut l, 0, 5);
        let mut fired = Vec::new();
        let deadline = [12u64]; // "touched": the real deadline moved, the entry did not
        let offered: Vec<u64> = (1..=12)
            .filter(|&t| drain(&mut w, &mut l, t, &deadline, &mut fired) > 0)
            .collect();
        assert_eq!(offered, vec![5, 12]);
        assert_eq!(fired, vec![(12, 0)]);
        assert!(w.is_empty());
    }

    #[test]
    fn long_pause_visits_each_slot_once() {
        let mut w = Wheel::new(15); // 16 slots
        let mut l = links(16);
        for h in 0..16u32 {
            w.schedule(&mut l, h, 1 + u64::from(h));
        }
        let deadline = [0u64; 16];
        let mut fired = Vec::new();
        let offered = drain(&mut w, &mut l, 1_000_000, &deadline, &mut fired);
        assert_eq!((offered, fired.len()), (16, 16));
        assert!(w.is_empty());
        // The walk covered one revolution, not a million ticks.
        assert_eq!(w.next_tick, 1_000_001);
    }

    #[test]
    fn long_pause_with_reslotting_is_bounded() {
        let mut w = Wheel::new(15);
        let mut l = links(16);
        for h in 0..16u32 {
            w.schedule(&mut l, h, 1 + u64::from(h));
        }
        // Every entry lives on: each is re-slotted, and handed out at most twice.
        let mut offers = [0u32; 16];
        w.advance_to(1_000_000);
        while let Some(h) = w.pop_due(&mut l) {
            offers[h as usize] += 1;
            w.schedule(&mut l, h, 2_000_000 + u64::from(h));
        }
        assert!(offers.iter().all(|&c| (1..=2).contains(&c)), "{offers:?}");
        assert_eq!(w.len(), 16);
    }

    #[test]
    fn beyond_the_span_is_offered_early_then_fires_on_time() {
        let mut w = Wheel::new(15); // 16 slots
        let mut l = links(1);
        w.schedule(&mut l, 0, 40);
        let mut fired = Vec::new();
        let offered: Vec<u64> = (1..=40)
            .filter(|&t| drain(&mut w, &mut l, t, &[40], &mut fired) > 0)
            .collect();
        // Once per revolution before the deadline (slot 40 mod 16 = 8), then at 40.
        assert_eq!(offered, vec![8, 24, 40]);
        assert_eq!(fired, vec![(40, 0)]);
    }
}
