//! [`TimerHeap`]: a hashed timer wheel for near deadlines plus a 4-ary heap
//! for everything else, FIFO among equal deadlines, O(1) cancel.
//!
//! # Layout
//!
//! Deadlines are keyed as nanoseconds since the structure's base instant (set
//! a day below the first deadline). A key's *tick* is `key >> 20`: buckets are
//! 2^20 ns (about 1.05 ms) wide.
//!
//! * **The wheel**: [`WHEEL`] buckets (about 4.3 s of ticks), bucket `tick %
//!   WHEEL`. Each bucket owns the timers of one tick in an unsorted `Vec` of
//!   40-byte-ish [`Slot`]s (key, sequence number, value inline), appended at
//!   insert; a slot cancelled there is reclaimed at once (put on the bucket's
//!   intrusive free list and reused by the bucket's next insert). A two-level
//!   bitmap of non-empty buckets finds the next one in O(1). Bucket `Vec`s of
//!   drained buckets go to a pool (bounded by the peak number of live timers),
//!   so a warm structure does not allocate.
//! * **The run**: when the earliest non-empty bucket is needed (it may hold
//!   due timers, or `next_deadline` asks), it becomes *current*: its live slots
//!   are listed once as `offset << 32 | position` words and sorted (ties on
//!   the deadline re-sorted by sequence number). Pops walk that sorted list,
//!   touching only the current bucket's memory (a few tens of KB). The
//!   bucket's slots stay where they are, so ids stay valid; a timer cancelled
//!   while its bucket is current leaves its word in the run as garbage.
//! * **The far heap**: timers the wheel cannot hold — at or before the
//!   current tick (late inserts), beyond the wheel's horizon, or below the
//!   base — go to a 4-ary min-heap ordered by exact `(i128 nanoseconds from
//!   base, seq)`, with values in a slab (the previous design, minus
//!   saturation: i128 keys cover every `Instant`). Cancelling there leaves the
//!   heap entry as garbage.
//!
//! The next timer is the smaller (by `(deadline, seq)`) of the run's head and
//! the far heap's head; wheel buckets only ever hold ticks after the current
//! one, so they cannot hold anything earlier. While no bucket is current,
//! the wheel's window moves back for an insert below it when the buckets in
//! use still fit in it (so a burst of inserts in random order lands in the
//! wheel), and re-anchors at the first insert into an empty wheel.
//!
//! A [`TimerId`] is `(store, position, seq)`: a bucket index (or the far
//! slab) and a position there, which never move while the timer lives. The
//! sequence number never repeats, so a stale id never matches a newer timer
//! that reused the position.
//!
//! Garbage (cancelled entries in the run or the far heap) is dropped when it
//! reaches the head, when the current bucket runs out of live timers, or when
//! it is both more than [`COMPACT_MIN`] entries and more than the live timers
//! (docs/behaviour.md 3.5), in which case the run and the far heap are rebuilt without it.

use std::fmt;
use std::time::{Duration, Instant};

/// Garbage entries tolerated before a compaction is considered (docs/behaviour.md 3.5).
const COMPACT_MIN: usize = 100;

/// Far-heap arity. Four children per node keep the tree shallow and a node's
/// children within one or two cache lines.
const ARITY: usize = 4;

/// How far below the first deadline the base instant is put, so that
/// slightly earlier deadlines arriving later still get (wheel) keys.
const BASE_MARGIN: Duration = Duration::from_secs(24 * 60 * 60);

/// A tick (bucket) is `2^TICK_SHIFT` nanoseconds: about 1.05 ms.
const TICK_SHIFT: u32 = 20;

/// Number of wheel buckets (a power of two, at most 64 × 64 for the bitmap).
const WHEEL: usize = 4096;

/// `tick & WHEEL_MASK` is a tick's bucket.
const WHEEL_MASK: u64 = WHEEL as u64 - 1;

/// [`TimerId::store`] of timers in the far heap's slab.
const FAR: u32 = u32::MAX;

/// End of a bucket's free list.
const NIL: u32 = u32::MAX;

/// Low 32 bits of a run word: the slot's position in its bucket.
const POS_MASK: u64 = 0xffff_ffff;

/// Identifies one timer in a [`TimerHeap`].
///
/// It names where the timer's value lives and the timer's unique sequence
/// number; once that timer has fired, been cancelled or been cleared, the id
/// is stale for good: every method given it answers "no such timer", even
/// after the place is reused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TimerId {
    /// Wheel bucket index, or [`FAR`] for the far heap's slab.
    store: u32,
    /// Position in the bucket or slab.
    pos: u32,
    /// The timer's insertion number; unique for the heap's lifetime.
    seq: u64,
}

/// A point in a heap's insertion order (see [`TimerHeap::mark`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TimerMark(u64);

/// One timer in a wheel bucket, value inline so that popping touches one
/// place.
#[derive(Debug)]
struct Slot<T> {
    /// Deadline in nanoseconds since the base (exact). While the slot is on
    /// its bucket's free list: the next free position (or [`NIL`]).
    key: u64,
    /// Insertion number: the FIFO tie-break and the liveness check.
    seq: u64,
    /// `None` once fired or cancelled.
    value: Option<T>,
}

/// One wheel bucket: the timers of one tick.
#[derive(Debug)]
struct Bucket<T> {
    /// Unsorted; positions are stable while the bucket is in use.
    slots: Vec<Slot<T>>,
    /// Head of the free list threaded through dead slots' `key`s.
    free: u32,
    /// Live slots. A bucket that is not current and has none is empty
    /// (`slots` cleared, `free == NIL`, bitmap bit clear).
    live: u32,
}

impl<T> Bucket<T> {
    const fn new() -> Self {
        Self {
            slots: Vec::new(),
            free: NIL,
            live: 0,
        }
    }
}

/// A far-heap entry. `Copy` so sifting moves 32 bytes.
#[derive(Clone, Copy, Debug)]
struct FarEntry {
    /// Exact signed nanoseconds from the base.
    key: i128,
    /// Insertion number: the FIFO tie-break and the liveness check.
    seq: u64,
    /// Slab index of the timer's value.
    slot: u32,
}

impl FarEntry {
    /// Strict `(key, seq)` order; `seq` is unique so no two entries are equal.
    #[inline]
    fn before(&self, other: &FarEntry) -> bool {
        (self.key, self.seq) < (other.key, other.seq)
    }
}

/// A live far timer's slab contents.
#[derive(Debug)]
struct Far<T> {
    /// Must equal the heap entry's and the id's `seq` for either to be live.
    seq: u64,
    /// The exact deadline as given to `insert`.
    deadline: Instant,
    value: T,
}

/// Where the next timer is: `(key, seq, place)`.
#[derive(Clone, Copy)]
enum Head {
    /// At the run's head; the slot is at `pos` in the current bucket.
    Run(u64, u64, u32),
    /// At the far heap's root.
    Far(i128, u64, u32),
}

impl Head {
    fn key_seq(&self) -> (i128, u64) {
        match *self {
            Head::Run(key, seq, _) => (i128::from(key), seq),
            Head::Far(key, seq, _) => (key, seq),
        }
    }
}

/// A min-"heap" of timers keyed by deadline, FIFO among equal deadlines, with
/// O(1) cancellation (internally a timer wheel plus a heap; see below).
///
/// `T` is whatever the caller wants back when the timer fires (the event loop
/// stores its callback). Time is not read here: callers pass deadlines and
/// `now` as [`Instant`]s taken from their [`Clock`](crate::Clock).
///
/// # Implementation
///
/// Deadlines within about 4.3 s after the current position go to a wheel of
/// 1.05 ms buckets (unsorted until a bucket is due, then sorted once); the
/// rest (late inserts at or before the current bucket, far-future or
/// far-past deadlines) go to a 4-ary heap. The structure's "heap" is the set
/// of ordering entries: live timers, plus garbage — entries of cancelled
/// timers in the sorted current bucket or in the 4-ary heap (a timer
/// cancelled in a not-yet-sorted bucket is reclaimed at once).
///
/// # Complexity
///
/// | operation | cost |
/// |---|---|
/// | [`insert`](Self::insert) | O(1) in the wheel, O(log n) in the heap; amortised, no allocation once warm |
/// | [`cancel`](Self::cancel) | O(1) amortised (an O(garbage) compaction is paid for by the cancels before it) |
/// | [`pop_expired`](Self::pop_expired) | O(1) amortised plus O(log k) per timer for sorting its bucket of k (wheel); O(log n) (heap) |
/// | [`next_deadline`](Self::next_deadline) | O(1), plus sorting the next bucket if it is not sorted yet |
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
    /// Keys count nanoseconds from here. Set by the first insert.
    base: Option<Instant>,
    /// Next insertion number. Never reset, not even by `clear`.
    next_seq: u64,
    /// Live timers, everywhere.
    live: usize,
    /// Cancelled entries still in the run or the far heap.
    garbage: usize,
    /// Most timers ever live at once (bounds the bucket pool).
    peak_live: usize,
    /// The last `now` given to `pop_expired_before` and its key.
    now_cache: Option<(Instant, i128)>,

    /// `WHEEL` buckets, allocated by the first wheel insert.
    buckets: Vec<Bucket<T>>,
    /// Bit `i % 64` of word `i / 64`: bucket `i` is non-empty and not current.
    bits: [u64; WHEEL / 64],
    /// Bit `w`: `bits[w] != 0`.
    summary: u64,
    /// The current tick. Buckets hold only ticks in `cur + 1 .. cur + WHEEL`.
    cur: u64,
    /// Whether bucket `cur` is current (sorted into `run`).
    run_active: bool,
    /// Sorted `offset << 32 | position` words of the current bucket.
    run: Vec<u64>,
    /// Next word of `run` to look at.
    run_head: usize,
    /// Live timers in non-current buckets.
    wheel_live: usize,
    /// Upper bound of the ticks held in non-current buckets.
    hi: u64,
    /// Cleared bucket vectors for reuse.
    pool: Vec<Vec<Slot<T>>>,
    /// Total capacity in `pool`.
    pool_cap: usize,

    /// 4-ary min-heap by `(key, seq)`: live far entries and garbage.
    heap: Vec<FarEntry>,
    /// The far slab. `None` = free (its index is on `far_free`).
    far: Vec<Option<Far<T>>>,
    /// Free far slab indices, reused last-in first-out.
    far_free: Vec<u32>,
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
            .field("far_heap_len", &self.heap.len())
            .field("base", &self.base)
            .finish_non_exhaustive()
    }
}

impl<T> TimerHeap<T> {
    /// An empty heap. Does not allocate.
    #[must_use]
    pub fn new() -> Self {
        Self {
            base: None,
            next_seq: 0,
            live: 0,
            garbage: 0,
            peak_live: 0,
            now_cache: None,
            buckets: Vec::new(),
            bits: [0; WHEEL / 64],
            summary: 0,
            cur: 0,
            run_active: false,
            run: Vec::new(),
            run_head: 0,
            wheel_live: 0,
            hi: 0,
            pool: Vec::new(),
            pool_cap: 0,
            heap: Vec::new(),
            far: Vec::new(),
            far_free: Vec::new(),
        }
    }

    /// An empty heap with room for `n` timers in its 4-ary heap before it
    /// reallocates (wheel buckets grow on demand and are then reused).
    #[must_use]
    pub fn with_capacity(n: usize) -> Self {
        let mut heap = Self::new();
        heap.heap.reserve(n);
        heap.far.reserve(n);
        heap.far_free.reserve(n);
        heap
    }

    /// Schedules `value` for `deadline` and returns its id.
    ///
    /// Any `Instant` is accepted: deadlines in the past simply pop at the next
    /// [`pop_expired`](Self::pop_expired) (in deadline, then insertion,
    /// order), and deadlines centuries away neither overflow nor panic.
    /// Amortised O(1) (wheel) or O(log n) (heap); no allocation once the
    /// heap has held this many timers before.
    ///
    /// # Panics
    ///
    /// If more than `u32::MAX - 1` timers are live at once in one bucket or
    /// in the far heap.
    pub fn insert(&mut self, deadline: Instant, value: T) -> TimerId {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.live += 1;
        if self.live > self.peak_live {
            self.peak_live = self.live;
        }
        let base = *self.base.get_or_insert_with(|| below(deadline));
        if let Some(key) = deadline
            .checked_duration_since(base)
            .and_then(|d| u64::try_from(d.as_nanos()).ok())
        {
            if self.wheel_accepts(key >> TICK_SHIFT) {
                return self.wheel_insert(key, seq, value);
            }
        }
        self.far_insert(signed_nanos(deadline, base), deadline, seq, value)
    }

    /// Cancels a timer in O(1): takes its value out and returns it, so the
    /// caller drops it (and everything it captured) at once.
    ///
    /// A timer in a wheel bucket that is not yet sorted is reclaimed at once.
    /// One in the sorted current bucket or in the 4-ary heap leaves its entry
    /// behind as garbage until it reaches the head, its bucket runs out of
    /// live timers, or garbage is more than 100 entries and more than the live
    /// timers, at which point the sorted bucket and the heap are rebuilt
    /// without it (docs/behaviour.md 3.5; O(garbage), paid for by the cancels that made
    /// it).
    ///
    /// Returns `None` if the timer already fired, was cancelled or cleared,
    /// or the id is unknown; a stale id never touches a newer timer.
    pub fn cancel(&mut self, id: TimerId) -> Option<T> {
        if id.store == FAR {
            let slot = self.far.get_mut(id.pos as usize)?;
            if !matches!(slot, Some(o) if o.seq == id.seq) {
                return None;
            }
            let far = slot.take()?;
            self.far_free.push(id.pos);
            self.live -= 1;
            self.garbage += 1;
            self.maybe_compact();
            return Some(far.value);
        }
        let ring = id.store as usize;
        let current = self.run_active && ring == self.cur_ring();
        let bucket = self.buckets.get_mut(ring)?;
        let slot = bucket.slots.get_mut(id.pos as usize)?;
        if slot.seq != id.seq {
            return None;
        }
        let value = slot.value.take()?;
        bucket.live -= 1;
        self.live -= 1;
        if current {
            // Its word stays in the run as garbage.
            self.garbage += 1;
            if bucket.live == 0 {
                self.end_run();
            } else {
                self.maybe_compact();
            }
        } else {
            slot.key = u64::from(bucket.free);
            bucket.free = id.pos;
            self.wheel_live -= 1;
            if bucket.live == 0 {
                self.release_bucket(ring);
            }
        }
        Some(value)
    }

    /// Whether `id` names a live (inserted, not yet popped, cancelled or
    /// cleared) timer.
    #[must_use]
    pub fn contains(&self, id: TimerId) -> bool {
        self.deadline(id).is_some()
    }

    /// The deadline `id` was inserted with, if it is still live.
    #[must_use]
    pub fn deadline(&self, id: TimerId) -> Option<Instant> {
        if id.store == FAR {
            return match self.far.get(id.pos as usize)? {
                Some(o) if o.seq == id.seq => Some(o.deadline),
                _ => None,
            };
        }
        let slot = self
            .buckets
            .get(id.store as usize)?
            .slots
            .get(id.pos as usize)?;
        if slot.seq == id.seq && slot.value.is_some() {
            Some(self.instant_of(slot.key))
        } else {
            None
        }
    }

    /// The earliest live deadline, or `None` if no timer is live.
    ///
    /// Cancelled entries at the head are dropped first, so the answer is
    /// always a live timer's deadline (exactly as inserted). If the earliest
    /// timer is in a wheel bucket that is not sorted yet, that bucket is
    /// sorted now (it is the next to fire anyway).
    pub fn next_deadline(&mut self) -> Option<Instant> {
        let far = self.far_head();
        let run = loop {
            if let Some(run) = self.run_head() {
                break Some(run);
            }
            match self.first_bucket() {
                Some(tick)
                    if far.is_none_or(|f| f.key_seq().0 >= i128::from(tick << TICK_SHIFT)) =>
                {
                    self.make_current(tick);
                }
                _ => break None,
            }
        };
        let head = match (run, far) {
            (Some(r), Some(f)) if f.key_seq() < r.key_seq() => f,
            (Some(r), _) => r,
            (None, f) => f?,
        };
        Some(match head {
            Head::Run(key, _, _) => self.instant_of(key),
            Head::Far(_, _, slot) => {
                self.far[slot as usize]
                    .as_ref()
                    .expect("far head is live")
                    .deadline
            }
        })
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
        let now_key = match self.now_cache {
            Some((at, key)) if at == now => key,
            _ => {
                let key = signed_nanos(now, base);
                self.now_cache = Some((now, key));
                key
            }
        };
        // Popping live timers raises the garbage share too; asyncio applies
        // the rule once per iteration, we apply it here as well as in cancel.
        self.maybe_compact();
        let run = loop {
            if let Some(run) = self.run_head() {
                break Some(run);
            }
            // Only a bucket that starts by `now` can hold a due timer.
            match self.first_bucket() {
                Some(tick) if i128::from(tick << TICK_SHIFT) <= now_key => {
                    self.make_current(tick);
                }
                _ => break None,
            }
        };
        let head = match (run, self.far_head()) {
            (Some(r), Some(f)) if f.key_seq() < r.key_seq() => f,
            (Some(r), _) => r,
            (None, f) => f?,
        };
        let (key, seq) = head.key_seq();
        if key > now_key || seq >= mark.0 {
            return None;
        }
        match head {
            Head::Run(key, seq, pos) => {
                self.run_head += 1;
                let ring = self.cur_ring();
                let bucket = &mut self.buckets[ring];
                let value = bucket.slots[pos as usize].value.take()?;
                bucket.live -= 1;
                self.live -= 1;
                if bucket.live == 0 {
                    self.end_run();
                }
                let id = TimerId {
                    store: ring as u32,
                    pos,
                    seq,
                };
                Some((id, self.instant_of(key), value))
            }
            Head::Far(_, seq, slot) => {
                self.far_pop_top();
                let far = self.far[slot as usize].take()?;
                self.far_free.push(slot);
                self.live -= 1;
                let id = TimerId {
                    store: FAR,
                    pos: slot,
                    seq,
                };
                Some((id, far.deadline, far.value))
            }
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

    /// Cancelled entries still held for ordering (for tests and stats): those
    /// in the sorted current bucket and in the 4-ary heap. Timers cancelled
    /// in a bucket that is not sorted yet are reclaimed at once and never
    /// count.
    #[must_use]
    pub fn garbage(&self) -> usize {
        self.garbage
    }

    /// Ordering entries held, garbage included: always
    /// [`len`](Self::len) + [`garbage`](Self::garbage).
    #[must_use]
    pub fn heap_len(&self) -> usize {
        self.live + self.garbage
    }

    /// Drops every value and forgets every timer; all ids become stale.
    /// Keeps the allocated capacity.
    pub fn clear(&mut self) {
        self.base = None;
        self.live = 0;
        self.garbage = 0;
        self.now_cache = None;
        self.bits = [0; WHEEL / 64];
        self.summary = 0;
        self.cur = 0;
        self.run_active = false;
        self.run.clear();
        self.run_head = 0;
        self.wheel_live = 0;
        self.hi = 0;
        self.heap.clear();
        self.far_free.clear();
        // Values last, so a panicking `Drop` of a value leaves the heap
        // consistent (any values not yet dropped are leaked, never reachable).
        let mut far = std::mem::take(&mut self.far);
        let mut vecs = Vec::new();
        for bucket in &mut self.buckets {
            bucket.free = NIL;
            bucket.live = 0;
            if bucket.slots.capacity() > 0 {
                vecs.push(std::mem::take(&mut bucket.slots));
            }
        }
        far.clear();
        self.far = far;
        for mut slots in vecs {
            slots.clear();
            self.recycle(slots);
        }
    }

    /// The bucket index of the current tick.
    #[inline]
    fn cur_ring(&self) -> usize {
        (self.cur & WHEEL_MASK) as usize
    }

    /// `base + key`, exact.
    #[inline]
    fn instant_of(&self, key: u64) -> Instant {
        self.base.expect("a keyed timer implies a base") + Duration::from_nanos(key)
    }

    /// Whether a timer of `tick` goes into the wheel, moving its window (when
    /// no bucket is current) if that lets it.
    #[inline]
    fn wheel_accepts(&mut self, tick: u64) -> bool {
        let in_window = tick > self.cur && tick - self.cur < WHEEL as u64;
        if in_window && (self.run_active || self.wheel_live > 0) {
            self.hi = self.hi.max(tick);
            return true;
        }
        if self.run_active || tick == 0 {
            return false;
        }
        if self.wheel_live == 0 {
            // Empty wheel: anchor its window just below this tick.
            self.cur = tick - 1;
            self.hi = tick;
            return true;
        }
        if tick <= self.cur && self.hi - (tick - 1) < WHEEL as u64 {
            // Move the window back: every bucket in use still fits in it.
            self.cur = tick - 1;
            return true;
        }
        false
    }

    /// Appends a timer to the bucket of `key`'s tick (accepted by
    /// [`wheel_accepts`](Self::wheel_accepts)).
    fn wheel_insert(&mut self, key: u64, seq: u64, value: T) -> TimerId {
        if self.buckets.is_empty() {
            self.buckets = (0..WHEEL).map(|_| Bucket::new()).collect();
        }
        let ring = ((key >> TICK_SHIFT) & WHEEL_MASK) as usize;
        let bucket = &mut self.buckets[ring];
        if bucket.live == 0 {
            if bucket.slots.capacity() == 0 {
                if let Some(slots) = self.pool.pop() {
                    self.pool_cap -= slots.capacity();
                    bucket.slots = slots;
                }
            }
            self.bits[ring / 64] |= 1 << (ring % 64);
            self.summary |= 1 << (ring / 64);
        }
        let slot = Slot {
            key,
            seq,
            value: Some(value),
        };
        let pos = if bucket.free == NIL {
            let pos = u32::try_from(bucket.slots.len())
                .ok()
                .filter(|&p| p != NIL)
                .expect("TimerHeap: more than u32::MAX - 1 timers in one bucket");
            bucket.slots.push(slot);
            pos
        } else {
            let pos = bucket.free;
            let reused = &mut bucket.slots[pos as usize];
            bucket.free = reused.key as u32; // a free-list link
            *reused = slot;
            pos
        };
        bucket.live += 1;
        self.wheel_live += 1;
        TimerId {
            store: ring as u32, // < WHEEL
            pos,
            seq,
        }
    }

    /// Puts a timer in the far heap.
    fn far_insert(&mut self, key: i128, deadline: Instant, seq: u64, value: T) -> TimerId {
        let far = Some(Far {
            seq,
            deadline,
            value,
        });
        let slot = if let Some(slot) = self.far_free.pop() {
            self.far[slot as usize] = far;
            slot
        } else {
            let slot = u32::try_from(self.far.len())
                .ok()
                .filter(|&s| s != u32::MAX)
                .expect("TimerHeap: more than u32::MAX - 1 far timers");
            self.far.push(far);
            slot
        };
        self.heap.push(FarEntry { key, seq, slot });
        self.sift_up(self.heap.len() - 1);
        TimerId {
            store: FAR,
            pos: slot,
            seq,
        }
    }

    /// The first non-empty, non-current bucket's tick, if any.
    #[inline]
    fn first_bucket(&self) -> Option<u64> {
        if self.summary == 0 {
            return None;
        }
        let start = ((self.cur + 1) & WHEEL_MASK) as usize;
        let (w, b) = (start / 64, start % 64);
        let here = self.bits[w] & (u64::MAX << b);
        let ring = if here == 0 {
            let after = if w == 63 { 0 } else { u64::MAX << (w + 1) };
            let words = if self.summary & after == 0 {
                // Wrap around (possibly to word `w`'s lower bits).
                self.summary
            } else {
                self.summary & after
            };
            let w2 = words.trailing_zeros() as usize;
            w2 * 64 + self.bits[w2].trailing_zeros() as usize
        } else {
            w * 64 + here.trailing_zeros() as usize
        };
        Some(self.cur + 1 + ((ring as u64).wrapping_sub(start as u64) & WHEEL_MASK))
    }

    /// Makes `tick`'s (non-empty) bucket current: sorts its live slots into
    /// the run. The run must be inactive.
    fn make_current(&mut self, tick: u64) {
        debug_assert!(!self.run_active && tick > self.cur);
        self.cur = tick;
        self.run_active = true;
        let ring = self.cur_ring();
        self.bits[ring / 64] &= !(1 << (ring % 64));
        if self.bits[ring / 64] == 0 {
            self.summary &= !(1 << (ring / 64));
        }
        let bucket = &self.buckets[ring];
        self.wheel_live -= bucket.live as usize;
        let start = tick << TICK_SHIFT;
        self.run.clear();
        self.run_head = 0;
        self.run.extend(
            bucket
                .slots
                .iter()
                .enumerate()
                .filter(|(_, s)| s.value.is_some())
                .map(|(pos, s)| (s.key - start) << 32 | pos as u64),
        );
        self.run.sort_unstable();
        // Free-list reuse breaks "position order = insertion order": put
        // equal deadlines back in insertion order.
        let run = &mut self.run[..];
        let mut i = 0;
        while i + 1 < run.len() {
            if run[i] >> 32 != run[i + 1] >> 32 {
                i += 1;
                continue;
            }
            let mut j = i + 1;
            while j + 1 < run.len() && run[j + 1] >> 32 == run[i] >> 32 {
                j += 1;
            }
            let slots = &bucket.slots;
            run[i..=j].sort_unstable_by_key(|w| slots[(w & POS_MASK) as usize].seq);
            i = j + 1;
        }
    }

    /// The run's first live entry, dropping dead ones; ends an exhausted run.
    #[inline]
    fn run_head(&mut self) -> Option<Head> {
        if !self.run_active {
            return None;
        }
        let ring = self.cur_ring();
        let start = self.cur << TICK_SHIFT;
        while let Some(&word) = self.run.get(self.run_head) {
            let pos = (word & POS_MASK) as u32;
            let slot = &self.buckets[ring].slots[pos as usize];
            if slot.value.is_some() {
                return Some(Head::Run(start + (word >> 32), slot.seq, pos));
            }
            self.run_head += 1;
            self.garbage -= 1;
        }
        self.end_run();
        None
    }

    /// Ends the current bucket's run (it has no live timers left) and frees
    /// the bucket.
    fn end_run(&mut self) {
        debug_assert_eq!(self.buckets[self.cur_ring()].live, 0);
        self.garbage -= self.run.len() - self.run_head;
        self.run.clear();
        self.run_head = 0;
        self.run_active = false;
        self.release_bucket(self.cur_ring());
    }

    /// Empties bucket `ring` (no live timers) and pools its vector.
    fn release_bucket(&mut self, ring: usize) {
        self.bits[ring / 64] &= !(1 << (ring % 64));
        if self.bits[ring / 64] == 0 {
            self.summary &= !(1 << (ring / 64));
        }
        let bucket = &mut self.buckets[ring];
        bucket.free = NIL;
        let mut slots = std::mem::take(&mut bucket.slots);
        slots.clear();
        self.recycle(slots);
    }

    /// Keeps an empty bucket vector for reuse, while the pool holds no more
    /// than about twice the most timers ever live (else frees it).
    fn recycle(&mut self, slots: Vec<Slot<T>>) {
        let cap = slots.capacity();
        if cap > 0 && self.pool_cap + cap <= 2 * self.peak_live + 1024 {
            self.pool_cap += cap;
            self.pool.push(slots);
        }
    }

    /// The far heap's first live entry, popping dead ones.
    #[inline]
    fn far_head(&mut self) -> Option<Head> {
        loop {
            let top = *self.heap.first()?;
            match &self.far[top.slot as usize] {
                Some(o) if o.seq == top.seq => return Some(Head::Far(top.key, top.seq, top.slot)),
                _ => {
                    self.far_pop_top();
                    self.garbage -= 1;
                }
            }
        }
    }

    /// Applies the compaction rule (docs/behaviour.md 3.5): rebuild when garbage is more
    /// than [`COMPACT_MIN`] entries and more than the live timers.
    #[inline]
    fn maybe_compact(&mut self) {
        if self.garbage > COMPACT_MIN && self.garbage > self.live {
            self.compact();
        }
    }

    /// Rebuilds the run and the far heap without their garbage. O(size of
    /// both), no allocation; more than half of what is scanned is garbage.
    #[cold]
    fn compact(&mut self) {
        if self.run_active {
            let slots = &self.buckets[self.cur_ring()].slots;
            let mut kept = self.run_head;
            for i in self.run_head..self.run.len() {
                let word = self.run[i];
                if slots[(word & POS_MASK) as usize].value.is_some() {
                    self.run[kept] = word;
                    kept += 1;
                }
            }
            self.run.truncate(kept);
            self.run.drain(..self.run_head);
            self.run_head = 0;
        }
        let far = &self.far;
        self.heap
            .retain(|e| matches!(&far[e.slot as usize], Some(o) if o.seq == e.seq));
        let n = self.heap.len();
        if n > 1 {
            for i in (0..=(n - 2) / ARITY).rev() {
                self.sift_down(i);
            }
        }
        self.garbage = 0;
    }

    /// Removes the far heap's root entry (live or garbage).
    fn far_pop_top(&mut self) {
        if let Some(last) = self.heap.pop() {
            if !self.heap.is_empty() {
                self.heap[0] = last;
                self.sift_down(0);
            }
        }
    }

    /// Moves the far entry at `i` up to its place.
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

    /// Moves the far entry at `i` down to its place.
    fn sift_down(&mut self, mut i: usize) {
        let heap = &mut self.heap[..];
        let n = heap.len();
        let moving = heap[i];
        loop {
            let first = ARITY * i + 1;
            if first >= n {
                break;
            }
            let mut min = first;
            for c in first + 1..n.min(first + ARITY) {
                if heap[c].before(&heap[min]) {
                    min = c;
                }
            }
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

/// `t - base` in nanoseconds, exact and signed (an `Instant` spans far less
/// than 2^127 ns).
fn signed_nanos(t: Instant, base: Instant) -> i128 {
    match t.checked_duration_since(base) {
        Some(d) => d.as_nanos().try_into().unwrap_or(i128::MAX),
        None => (base - t)
            .as_nanos()
            .try_into()
            .map_or(i128::MIN, |n: i128| -n),
    }
}
