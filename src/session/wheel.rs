//! A hashed timer wheel over compact handles (DESIGN §5; Varghese & Lauck, scheme 6).
//!
//! Time is counted in ticks. The wheel has a power-of-two number of slots; a handle due at
//! tick `t` sits in slot `t mod slots`, on a doubly linked list threaded through a `Vec`
//! indexed by handle (8 bytes per handle, no allocation per entry). The wheel does not know
//! what a handle's real deadline is: when a slot's tick comes it hands every handle in it to
//! the caller, who answers "done" (the handle leaves the wheel) or "later, at tick `t`" (the
//! handle is re-slotted). That is what lets a session's deadline move on every request with
//! no work at all: touching a session only writes its `last_access`, and the one entry it
//! has here is checked when the *old* deadline's slot fires.
//!
//! Costs:
//! - `schedule`, `cancel`: O(1). Cancel unlinks at once, so the wheel never holds stale
//!   entries: its size is exactly the number of scheduled handles.
//! - `advance` to a tick whose slot is empty: reading one slot head. Over `k` ticks: `k`
//!   slot heads, but never more than one revolution (`slots`), however long the pause.
//! - Per handle visited: O(1). A handle is visited at its slot's tick; one whose deadline
//!   moved is re-slotted once per firing, so an active session costs one visit per idle
//!   timeout, never a scan of all entries.
//!
//! Deadlines beyond one revolution need no overflow list: such a handle is put in its
//! deadline's slot anyway and is simply offered to the caller once per revolution before
//! it is due (a round counter kept implicitly by the caller's deadline). The table sizes
//! the wheel to cover its longest deadline, so this only happens when the configured span
//! exceeds [`MAX_SLOTS`] ticks.
//!
//! Guarantee: a handle scheduled for tick `t` is offered to the caller at the first
//! `advance` whose tick is `>= t` (or earlier, once per revolution, if `t` is beyond the
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
/// In `Link::prev`: this entry is first in its list; the low bits are the slot index.
const SLOT_FLAG: u32 = 1 << 31;

#[derive(Clone, Copy, Debug)]
struct Link {
    /// Previous handle, `SLOT_FLAG | slot` for a list head, or `NIL` when not scheduled.
    prev: u32,
    /// Next handle or `NIL`.
    next: u32,
}

const UNSCHEDULED: Link = Link {
    prev: NIL,
    next: NIL,
};

/// The wheel. Single-threaded, owned by one worker's session table.
#[derive(Debug)]
pub struct Wheel {
    /// First handle in each slot's list, or `NIL`.
    heads: Box<[u32]>,
    mask: u64,
    /// Per handle: its place in a slot list.
    links: Vec<Link>,
    /// The last tick processed; nothing can be scheduled at or before it.
    current: u64,
    len: usize,
}

impl Wheel {
    /// A wheel whose one revolution covers `span_ticks` ticks ahead of now (rounded up to a
    /// power of two, within [`MIN_SLOTS`]..=[`MAX_SLOTS`]), starting at tick 0.
    pub fn new(span_ticks: u64) -> Self {
        let want = span_ticks.saturating_add(1).min(MAX_SLOTS as u64) as usize;
        let slots = want.next_power_of_two().clamp(MIN_SLOTS, MAX_SLOTS);
        Wheel {
            heads: vec![NIL; slots].into_boxed_slice(),
            mask: slots as u64 - 1,
            links: Vec::new(),
            current: 0,
            len: 0,
        }
    }

    /// Number of slots (one revolution, in ticks).
    pub fn slots(&self) -> usize {
        self.heads.len()
    }

    /// The last tick processed by [`Wheel::advance`].
    pub fn current(&self) -> u64 {
        self.current
    }

    /// Handles scheduled.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Makes room for handles `0..handles` without reallocating later.
    pub fn reserve(&mut self, handles: usize) {
        self.links.reserve(handles.saturating_sub(self.links.len()));
    }

    /// Whether `h` is in the wheel.
    pub fn is_scheduled(&self, h: Handle) -> bool {
        self.links.get(h as usize).is_some_and(|l| l.prev != NIL)
    }

    /// Puts `h` in the slot of `tick`, or of the next tick if `tick` has already been
    /// processed (a deadline in the past is due at the next `advance`). A handle already
    /// scheduled is moved.
    ///
    /// # Panics
    /// If `h > MAX_HANDLE`.
    pub fn schedule(&mut self, h: Handle, tick: u64) {
        assert!(h <= MAX_HANDLE, "wheel handle {h} out of range");
        let i = h as usize;
        if i >= self.links.len() {
            self.links.resize(i + 1, UNSCHEDULED);
        } else if self.links[i].prev != NIL {
            self.unlink(h);
        }
        self.link(h, tick);
    }

    /// Takes `h` out of the wheel. Returns whether it was scheduled.
    pub fn cancel(&mut self, h: Handle) -> bool {
        if self.is_scheduled(h) {
            self.unlink(h);
            true
        } else {
            false
        }
    }

    /// Processes every tick after the current one up to `now_tick`: each handle in a slot
    /// whose tick came is taken out of the wheel and passed to `due`, which answers `None`
    /// (done: it stays out) or `Some(tick)` (re-slot it there; a tick not after `now_tick`
    /// means the next tick). After a pause longer than a revolution each slot is visited
    /// once. Returns the number of handles visited.
    ///
    /// A handle re-slotted into a slot that this same call has yet to visit is offered
    /// again when that slot is reached; it is then re-slotted into the slot being
    /// processed, which is not visited again, so a handle is seen at most twice per call.
    pub fn advance(&mut self, now_tick: u64, mut due: impl FnMut(Handle) -> Option<u64>) -> usize {
        if now_tick <= self.current {
            return 0;
        }
        let from = self.current;
        let ticks = (now_tick - from).min(self.heads.len() as u64);
        // Re-slotting during the walk must land after `now_tick`.
        self.current = now_tick;
        let mut visited = 0;
        for step in 1..=ticks {
            let slot = ((from + step) & self.mask) as usize;
            // Detach the whole list first: entries re-slotted here go on a fresh list.
            let mut h = std::mem::replace(&mut self.heads[slot], NIL);
            while h != NIL {
                let next = self.links[h as usize].next;
                self.links[h as usize] = UNSCHEDULED;
                self.len -= 1;
                visited += 1;
                if let Some(tick) = due(h) {
                    self.link(h, tick);
                }
                h = next;
            }
        }
        visited
    }

    /// Links an unscheduled `h` at the head of `tick`'s slot.
    fn link(&mut self, h: Handle, tick: u64) {
        let tick = tick.max(self.current + 1);
        let slot = (tick & self.mask) as usize;
        let old = self.heads[slot];
        self.links[h as usize] = Link {
            prev: SLOT_FLAG | slot as u32,
            next: old,
        };
        if old != NIL {
            self.links[old as usize].prev = h;
        }
        self.heads[slot] = h;
        self.len += 1;
    }

    /// The slot `h` sits in, if scheduled (tests check where an entry is).
    #[cfg(test)]
    pub(crate) fn slot_of(&self, h: Handle) -> Option<usize> {
        let prev = self.links.get(h as usize)?.prev;
        if prev == NIL {
            return None;
        }
        let mut prev = prev;
        while prev & SLOT_FLAG == 0 {
            prev = self.links[prev as usize].prev;
        }
        Some((prev & !SLOT_FLAG) as usize)
    }

    /// Unlinks a scheduled `h`.
    fn unlink(&mut self, h: Handle) {
        let Link { prev, next } = self.links[h as usize];
        if prev & SLOT_FLAG != 0 {
            self.heads[(prev & !SLOT_FLAG) as usize] = next;
        } else {
            self.links[prev as usize].next = next;
        }
        if next != NIL {
            self.links[next as usize].prev = prev;
        }
        self.links[h as usize] = UNSCHEDULED;
        self.len -= 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Advances tick by tick, collecting what is offered; `deadline` is each handle's
    /// real deadline tick.
    fn run(w: &mut Wheel, to: u64, deadline: &[u64], fired: &mut Vec<(u64, Handle)>) {
        for t in w.current() + 1..=to {
            w.advance(t, |h| {
                if deadline[h as usize] <= t {
                    fired.push((t, h));
                    None
                } else {
                    Some(deadline[h as usize])
                }
            });
        }
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
        let deadline = [5, 7, 7, 1];
        for (h, d) in deadline.iter().enumerate() {
            w.schedule(h as Handle, *d);
        }
        assert_eq!(w.len(), 4);
        let mut fired = Vec::new();
        run(&mut w, 10, &deadline, &mut fired);
        fired.sort();
        assert_eq!(fired, vec![(1, 3), (5, 0), (7, 1), (7, 2)]);
        assert!(w.is_empty());
    }

    #[test]
    fn past_deadline_fires_next_tick() {
        let mut w = Wheel::new(100);
        w.advance(10, |_| unreachable!());
        w.schedule(0, 3);
        let mut seen = Vec::new();
        w.advance(11, |h| {
            seen.push(h);
            None
        });
        assert_eq!(seen, vec![0]);
    }

    #[test]
    fn cancel_unlinks_anywhere_in_a_list() {
        let mut w = Wheel::new(100);
        for h in 0..5 {
            w.schedule(h, 4);
        }
        assert!(w.cancel(2)); // middle
        assert!(w.cancel(4)); // head (pushed last)
        assert!(w.cancel(0)); // tail
        assert!(!w.cancel(0));
        assert!(!w.cancel(99));
        assert_eq!(w.len(), 2);
        let mut seen = Vec::new();
        w.advance(4, |h| {
            seen.push(h);
            None
        });
        seen.sort();
        assert_eq!(seen, vec![1, 3]);
    }

    #[test]
    fn schedule_twice_moves() {
        let mut w = Wheel::new(100);
        w.schedule(0, 3);
        w.schedule(0, 6);
        assert_eq!(w.len(), 1);
        let mut seen = Vec::new();
        for t in 1..=6 {
            w.advance(t, |h| {
                seen.push((t, h));
                None
            });
        }
        assert_eq!(seen, vec![(6, 0)]);
    }

    #[test]
    fn reslotting_moves_to_the_new_deadline() {
        let mut w = Wheel::new(100);
        w.schedule(0, 5);
        let mut deadline = vec![5u64];
        let mut fired = Vec::new();
        run(&mut w, 4, &deadline, &mut fired);
        deadline[0] = 12; // "touched": the real deadline moved, the entry did not
        let mut offered = Vec::new();
        for t in 5..=12 {
            w.advance(t, |h| {
                offered.push(t);
                (deadline[h as usize] > t).then_some(deadline[h as usize])
            });
        }
        assert_eq!(offered, vec![5, 12]);
        assert!(w.is_empty());
    }

    #[test]
    fn long_pause_visits_each_slot_once() {
        let mut w = Wheel::new(15); // 16 slots
        for h in 0..16u32 {
            w.schedule(h, 1 + u64::from(h));
        }
        let mut n = 0;
        let visited = w.advance(1_000_000, |_| {
            n += 1;
            None
        });
        assert_eq!((n, visited), (16, 16));
        assert!(w.is_empty());
        assert_eq!(w.current(), 1_000_000);
    }

    #[test]
    fn long_pause_with_reslotting_is_bounded() {
        let mut w = Wheel::new(15);
        for h in 0..16u32 {
            w.schedule(h, 1 + u64::from(h));
        }
        // Every entry wants to live until 2_000_000: each is re-slotted, and offered at
        // most twice in this call.
        let mut offers = [0u32; 16];
        w.advance(1_000_000, |h| {
            offers[h as usize] += 1;
            Some(2_000_000)
        });
        assert!(offers.iter().all(|&c| (1..=2).contains(&c)), "{offers:?}");
        assert_eq!(w.len(), 16);
    }

    #[test]
    fn beyond_the_span_is_offered_early_then_fires_on_time() {
        let mut w = Wheel::new(15); // 16 slots
        w.schedule(0, 40);
        let deadline = [40u64];
        let mut offered = Vec::new();
        for t in 1..=40 {
            w.advance(t, |h| {
                offered.push(t);
                (deadline[h as usize] > t).then_some(deadline[h as usize])
            });
        }
        // Once per revolution before the deadline (slot 40 mod 16 = 8), then at 40.
        assert_eq!(offered, vec![8, 24, 40]);
    }
}
