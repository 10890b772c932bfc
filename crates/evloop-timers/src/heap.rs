//! [`TimerHeap`]: deadlines in a 4-ary min-heap, values in a slab, lazy cancel.
//!
//! # Layout
//!
//! * `slots: Vec<Option<Occupied<T>>>` is a slab holding each live timer's
//!   value, deadline and sequence number; freed slot indices go on a LIFO free
//!   list (`free`) and are reused, so a warm heap does not allocate.
//! * `heap: Vec<Entry>` is a 4-ary min-heap of small `Copy` entries
//!   (24 bytes: key, sequence number, slot index). It is ordered by
//!   `(key, seq)`, where `key` is the deadline in nanoseconds since the heap's
//!   base instant and `seq` is a global insertion counter, so equal deadlines
//!   pop in insertion order.
//! * A [`TimerId`] is `(slot, seq)`. The sequence number never repeats, so it
//!   acts as the slot's generation: a stale id, or a stale heap entry, never
//!   matches a newer timer that reused the slot.
//!
//! Cancelling empties the slot at once and leaves the heap entry behind as
//! garbage; garbage is popped when it reaches the head, and the whole heap is
//! rebuilt without it once it is both more than [`COMPACT_MIN`] entries and
//! more than half of the heap (SPEC 3.5).

use std::fmt;
use std::time::{Duration, Instant};

/// Garbage entries tolerated before a compaction is considered (SPEC 3.5).
const COMPACT_MIN: usize = 100;

/// Heap arity. Four children per node keep the tree shallow (10 levels for a
/// million timers) and a node's children within one or two cache lines.
const ARITY: usize = 4;

/// How far below the first (or an earlier) deadline the base instant is put,
/// so that slightly earlier deadlines arriving later do not force a rebase.
const BASE_MARGIN: Duration = Duration::from_secs(24 * 60 * 60);

/// Identifies one timer in a [`TimerHeap`].
///
/// It names a slot and the timer's unique sequence number; once that timer has
/// fired, been cancelled or been cleared, the id is stale for good: every
/// method given it answers "no such timer", even after the slot is reused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TimerId {
    /// Index into the slab.
    slot: u32,
    /// The timer's insertion number; unique for the heap's lifetime.
    seq: u64,
}

/// A point in a heap's insertion order (see [`TimerHeap::mark`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TimerMark(u64);

/// One heap entry. Small and `Copy` so sifting moves 24 bytes.
#[derive(Clone, Copy, Debug)]
struct Entry {
    /// Deadline in nanoseconds since the heap's base instant (saturating).
    key: u64,
    /// Insertion number: the FIFO tie-break and the liveness check.
    seq: u64,
    /// Slab index of the timer's value.
    slot: u32,
}

impl Entry {
    /// Strict `(key, seq)` order; `seq` is unique so no two entries are equal.
    #[inline]
    fn before(&self, other: &Entry) -> bool {
        (u128::from(self.key) << 64 | u128::from(self.seq))
            < (u128::from(other.key) << 64 | u128::from(other.seq))
    }
}

/// A live timer's slab contents.
#[derive(Debug)]
struct Occupied<T> {
    /// Must equal the heap entry's and the id's `seq` for either to be live.
    seq: u64,
    /// The exact deadline as given to `insert`.
    deadline: Instant,
    value: T,
}

/// A min-heap of timers keyed by deadline, FIFO among equal deadlines, with
/// O(1) cancellation.
///
/// `T` is whatever the caller wants back when the timer fires (the event loop
/// stores its callback). Time is not read here: callers pass deadlines and
/// `now` as [`Instant`]s taken from their [`Clock`](crate::Clock).
///
/// # Complexity
///
/// | operation | cost |
/// |---|---|
/// | [`insert`](Self::insert) | O(log n) amortised; no allocation once warm |
/// | [`cancel`](Self::cancel) | O(1) amortised (an O(n) compaction is paid for by the cancels before it) |
/// | [`pop_expired`](Self::pop_expired) | O(log n) per entry popped, garbage included |
/// | [`contains`](Self::contains), [`deadline`](Self::deadline), [`len`](Self::len) | O(1) |
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use evloop_timers::{Clock, TimerHeap, VirtualClock};
///
/// let clock = VirtualClock::new();
/// let t0 = clock.now();
/// let mut timers = TimerHeap::new();
/// let a = timers.insert(t0 + Duration::from_millis(5), "a");
/// let _b = timers.insert(t0 + Duration::from_millis(1), "b");
/// assert_eq!(timers.cancel(a), Some("a"));
/// assert_eq!(timers.next_deadline(), Some(t0 + Duration::from_millis(1)));
/// assert!(timers.pop_expired(t0).is_none()); // not due yet
/// let (_, _, value) = timers.pop_expired(t0 + Duration::from_millis(1)).unwrap();
/// assert_eq!(value, "b");
/// assert!(timers.is_empty());
/// ```
pub struct TimerHeap<T> {
    /// 4-ary min-heap by `(key, seq)`; holds live entries and garbage.
    heap: Vec<Entry>,
    /// The slab. `None` = free (its index is on `free`).
    slots: Vec<Option<Occupied<T>>>,
    /// Free slot indices, reused last-in first-out (warm in cache).
    free: Vec<u32>,
    /// Number of `Some` slots; equals the number of live heap entries.
    live: usize,
    /// Next insertion number. Never reset, not even by `clear`.
    next_seq: u64,
    /// Keys count nanoseconds from here. Set by the first insert.
    ///
    /// # Invariant
    ///
    /// Every live timer's deadline is `>= base`, so keys below the top of the
    /// `u64` range are exact.
    base: Option<Instant>,
}

impl<T> Default for TimerHeap<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> fmt::Debug for TimerHeap<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TimerHeap")
            .field("len", &self.len())
            .field("garbage", &self.garbage())
            .field("heap_len", &self.heap_len())
            .field("base", &self.base)
            .finish_non_exhaustive()
    }
}

impl<T> TimerHeap<T> {
    /// An empty heap. Does not allocate.
    #[must_use]
    pub fn new() -> Self {
        Self::with_capacity(0)
    }

    /// An empty heap with room for `n` timers before it reallocates.
    #[must_use]
    pub fn with_capacity(n: usize) -> Self {
        Self {
            heap: Vec::with_capacity(n),
            slots: Vec::with_capacity(n),
            free: Vec::with_capacity(n),
            live: 0,
            next_seq: 0,
            base: None,
        }
    }

    /// Schedules `value` for `deadline` and returns its id.
    ///
    /// Any `Instant` is accepted: deadlines in the past simply pop at the next
    /// [`pop_expired`](Self::pop_expired) (in deadline, then insertion,
    /// order), and deadlines centuries away saturate instead of overflowing.
    /// Amortised O(log n); no allocation once the heap has held this many
    /// timers before.
    ///
    /// # Panics
    ///
    /// If more than `u32::MAX - 1` timers are live at once.
    pub fn insert(&mut self, deadline: Instant, value: T) -> TimerId {
        let key = self.key_for(deadline);
        let seq = self.next_seq;
        self.next_seq += 1;
        let occupied = Some(Occupied {
            seq,
            deadline,
            value,
        });
        let slot = if let Some(slot) = self.free.pop() {
            self.slots[slot as usize] = occupied;
            slot
        } else {
            let slot = u32::try_from(self.slots.len())
                .ok()
                .filter(|&s| s != u32::MAX)
                .expect("TimerHeap: more than u32::MAX - 1 live timers");
            self.slots.push(occupied);
            slot
        };
        self.live += 1;
        self.heap.push(Entry { key, seq, slot });
        self.sift_up(self.heap.len() - 1);
        TimerId { slot, seq }
    }

    /// Cancels a timer in O(1): takes its value out of its slot and returns
    /// it, so the caller drops it (and everything it captured) at once.
    ///
    /// The heap entry stays behind as garbage until it reaches the head or
    /// until garbage is more than 100 entries and more than half of the heap,
    /// at which point the heap is rebuilt without it (SPEC 3.5; O(n), paid
    /// for by the cancels that made the garbage).
    ///
    /// Returns `None` if the timer already fired, was cancelled or cleared,
    /// or the id is unknown; a stale id never touches a newer timer.
    pub fn cancel(&mut self, id: TimerId) -> Option<T> {
        let slot = self.slots.get_mut(id.slot as usize)?;
        if !matches!(slot, Some(o) if o.seq == id.seq) {
            return None;
        }
        let occupied = slot.take()?;
        self.free.push(id.slot);
        self.live -= 1;
        self.maybe_compact();
        Some(occupied.value)
    }

    /// Whether `id` names a live (inserted, not yet popped, cancelled or
    /// cleared) timer.
    #[must_use]
    pub fn contains(&self, id: TimerId) -> bool {
        self.occupied(id).is_some()
    }

    /// The deadline `id` was inserted with, if it is still live.
    #[must_use]
    pub fn deadline(&self, id: TimerId) -> Option<Instant> {
        self.occupied(id).map(|o| o.deadline)
    }

    /// The earliest live deadline, or `None` if no timer is live.
    ///
    /// Cancelled entries at the head are popped first, so the answer is
    /// always a live timer's deadline (exactly as inserted).
    pub fn next_deadline(&mut self) -> Option<Instant> {
        loop {
            let top = *self.heap.first()?;
            match &self.slots[top.slot as usize] {
                Some(o) if o.seq == top.seq => return Some(o.deadline),
                _ => self.pop_top(),
            }
        }
    }

    /// Removes and returns the earliest live timer whose deadline is
    /// `<= now`, as `(id, deadline, value)`; `None` if there is none.
    ///
    /// Among equal deadlines timers come out strictly in insertion order.
    /// A timer is never returned before its deadline. Cancelled entries met
    /// at the head are discarded on the way, and the compaction rule of
    /// [`cancel`](Self::cancel) is applied here too (popping live timers
    /// raises the garbage share, as asyncio's per-iteration check sees). Call
    /// it in a loop to drain everything that is due.
    pub fn pop_expired(&mut self, now: Instant) -> Option<(TimerId, Instant, T)> {
        self.pop_expired_before(now, TimerMark(u64::MAX))
    }

    /// A mark between the timers inserted so far and those inserted later
    /// (for [`pop_expired_before`](Self::pop_expired_before)).
    #[must_use]
    pub fn mark(&self) -> TimerMark {
        TimerMark(self.next_seq)
    }

    /// Like [`pop_expired`](Self::pop_expired), but stops at the first due
    /// timer inserted at or after `mark`. An event loop uses it to run the
    /// timers that were due when a batch started, straight from the heap,
    /// while callbacks of that batch schedule new ones: those wait for the
    /// next batch (with equal deadlines, FIFO puts every older timer first).
    pub fn pop_expired_before(
        &mut self,
        now: Instant,
        mark: TimerMark,
    ) -> Option<(TimerId, Instant, T)> {
        let base = self.base?;
        // Every live deadline is >= base, so nothing can be due yet.
        if now < base {
            return None;
        }
        let now_key = nanos_saturating(now - base);
        // Popping live timers raises the garbage share too; asyncio applies
        // the rule once per iteration, we apply it here as well as in cancel.
        self.maybe_compact();
        loop {
            let top = *self.heap.first()?;
            let slot = &self.slots[top.slot as usize];
            let Some(occupied) = slot.as_ref().filter(|o| o.seq == top.seq) else {
                self.pop_top();
                continue;
            };
            // A saturated key (deadline ~584 years past base) is not exact:
            // fall back to the real instant.
            if top.key > now_key
                || (top.key == u64::MAX && occupied.deadline > now)
                || top.seq >= mark.0
            {
                return None;
            }
            self.pop_top();
            let occupied = self.slots[top.slot as usize].take()?;
            self.free.push(top.slot);
            self.live -= 1;
            let id = TimerId {
                slot: top.slot,
                seq: top.seq,
            };
            return Some((id, occupied.deadline, occupied.value));
        }
    }

    /// Number of live timers (inserted and not yet popped or cancelled).
    #[must_use]
    pub fn len(&self) -> usize {
        self.live
    }

    /// Whether no timer is live (garbage may remain; see
    /// [`garbage`](Self::garbage)).
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.live == 0
    }

    /// Cancelled entries still sitting in the heap (for tests and stats).
    #[must_use]
    pub fn garbage(&self) -> usize {
        self.heap.len() - self.live
    }

    /// Entries in the heap, garbage included.
    #[must_use]
    pub fn heap_len(&self) -> usize {
        self.heap.len()
    }

    /// Drops every value and forgets every timer; all ids become stale.
    /// Keeps the allocated capacity.
    pub fn clear(&mut self) {
        self.heap.clear();
        self.free.clear();
        self.live = 0;
        self.base = None;
        // Last, so a panicking `Drop` of a value leaves the heap consistent
        // (any values not yet dropped are leaked, never reachable).
        let mut slots = std::mem::take(&mut self.slots);
        slots.clear();
        self.slots = slots;
    }

    /// The live slab entry `id` names, if any.
    fn occupied(&self, id: TimerId) -> Option<&Occupied<T>> {
        self.slots
            .get(id.slot as usize)?
            .as_ref()
            .filter(|o| o.seq == id.seq)
    }

    /// The heap key for `deadline`, moving the base back first if needed.
    fn key_for(&mut self, deadline: Instant) -> u64 {
        let base = match self.base {
            Some(base) if deadline >= base => base,
            Some(_) => self.rebase(deadline),
            None => {
                let base = below(deadline);
                self.base = Some(base);
                base
            }
        };
        nanos_saturating(deadline - base)
    }

    /// Moves the base below `deadline`, shifting every key to match. O(n),
    /// and only for a deadline a day or more before every earlier one.
    #[cold]
    fn rebase(&mut self, deadline: Instant) -> Instant {
        let new_base = below(deadline);
        let old_base = self.base.unwrap_or(new_base);
        let shift = nanos_saturating(old_base.saturating_duration_since(new_base));
        for entry in &mut self.heap {
            entry.key = entry.key.saturating_add(shift);
        }
        self.base = Some(new_base);
        // Saturation can merge distinct keys, which changes the order.
        self.heapify();
        new_base
    }

    /// Applies the compaction rule (SPEC 3.5): rebuild when garbage is more
    /// than [`COMPACT_MIN`] entries and more than half of the heap.
    #[inline]
    fn maybe_compact(&mut self) {
        // Every live timer has exactly one heap entry; the rest is garbage.
        let garbage = self.garbage();
        if garbage > COMPACT_MIN && garbage > self.live {
            self.compact();
        }
    }

    /// Rebuilds the heap without its garbage. O(n), no allocation.
    ///
    /// The cost is paid for by the cancels that made the garbage: more than
    /// half of the entries scanned are garbage.
    #[cold]
    fn compact(&mut self) {
        if self.slots.len() <= 2 * self.heap.len() {
            // The slab is not much bigger than the heap: rebuild the entries
            // from it in one sequential pass (cache friendly) instead of
            // checking every heap entry against a random slot.
            // No base means no timer was ever inserted: nothing to compact.
            let Some(base) = self.base else { return };
            self.heap.clear();
            for (slot, occupied) in self.slots.iter().enumerate() {
                if let Some(o) = occupied {
                    self.heap.push(Entry {
                        key: nanos_saturating(o.deadline - base),
                        seq: o.seq,
                        #[allow(clippy::cast_possible_truncation)] // slots.len() <= u32::MAX
                        slot: slot as u32,
                    });
                }
            }
        } else {
            let slots = &self.slots;
            self.heap
                .retain(|e| matches!(&slots[e.slot as usize], Some(o) if o.seq == e.seq));
        }
        self.heapify();
    }

    /// Restores the heap order over the whole vector (Floyd's O(n) build).
    fn heapify(&mut self) {
        let n = self.heap.len();
        if n > 1 {
            for i in (0..=(n - 2) / ARITY).rev() {
                self.sift_down(i);
            }
        }
    }

    /// Removes the root entry (live or garbage).
    fn pop_top(&mut self) {
        if let Some(last) = self.heap.pop() {
            if !self.heap.is_empty() {
                self.heap[0] = last;
                self.sift_down(0);
            }
        }
    }

    /// Moves the entry at `i` up to its place.
    fn sift_up(&mut self, mut i: usize) {
        let heap = &mut self.heap[..];
        let moving = heap[i];
        while i > 0 {
            let parent = (i - 1) / ARITY;
            if !moving.before(&heap[parent]) {
                break;
            }
            heap[i] = heap[parent];
            i = parent;
        }
        heap[i] = moving;
    }

    /// Moves the entry at `i` down to its place.
    fn sift_down(&mut self, mut i: usize) {
        let heap = &mut self.heap[..];
        let n = heap.len();
        let moving = heap[i];
        loop {
            let first = ARITY * i + 1;
            if first >= n {
                break;
            }
            let min = if first + ARITY <= n {
                // All four children exist: the common case, written so the
                // choice compiles to conditional moves, not branches (keys
                // are unpredictable, so branches would mostly mispredict).
                let a = first + usize::from(heap[first + 1].before(&heap[first]));
                let b = first + 2 + usize::from(heap[first + 3].before(&heap[first + 2]));
                if heap[b].before(&heap[a]) {
                    b
                } else {
                    a
                }
            } else {
                let mut min = first;
                for c in first + 1..n {
                    if heap[c].before(&heap[min]) {
                        min = c;
                    }
                }
                min
            };
            if !heap[min].before(&moving) {
                break;
            }
            heap[i] = heap[min];
            i = min;
        }
        heap[i] = moving;
    }
}

/// A base instant a margin below `deadline` (or `deadline` itself if the
/// platform cannot represent anything that early).
fn below(deadline: Instant) -> Instant {
    deadline
        .checked_sub(BASE_MARGIN)
        .or_else(|| deadline.checked_sub(Duration::from_secs(1)))
        .unwrap_or(deadline)
}

/// `d` in nanoseconds, saturating at `u64::MAX` (about 584 years).
fn nanos_saturating(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}
