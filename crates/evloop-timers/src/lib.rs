//! Timers and clocks for evloop: asyncio's `call_at`/`call_later` heap and
//! `loop.time()`.
//!
//! This crate owns:
//!
//! * [`TimerHeap<T>`]: deadlines in a min-heap, FIFO among equal deadlines
//!   (docs/behaviour.md 3.3), O(1) cancel that frees the value at once (docs/behaviour.md 3.5), with
//!   [`TimerId`]s that go stale safely;
//! * [`Clock`]: where time comes from — [`MonotonicClock`] (real time) and
//!   [`VirtualClock`] (stands still until the loop would sleep, docs/behaviour.md 3.8).
//!
//! It does not own callbacks, handles or the run loop (evloop-core decides
//! what `T` is and when to call [`TimerHeap::pop_expired`]), nor any I/O or
//! sleeping: nothing here blocks, and it uses only `std`.
//!
//! # Implementation
//!
//! Near deadlines (up to about 4.3 s past the current position) go to a
//! hashed timer wheel of 1.05 ms buckets: an insert appends a small entry,
//! value inline, to its bucket's unsorted `Vec`; a bucket is sorted once, by
//! `(deadline, insertion number)`, when it becomes the next to fire, and pops
//! then walk it in order. Everything else — late inserts into the bucket being
//! drained or before it, far-future and far-past deadlines — goes to a 4-ary
//! heap with exact `i128` nanosecond keys; a pop takes the smaller head of the
//! two. A [`TimerId`] names where the value lives (which never changes while
//! the timer does) plus the timer's unique insertion number, so a stale id
//! never reaches a newer timer in a reused place. Cancel takes the value out
//! at once; entries left behind in the sorted bucket or the heap are garbage,
//! dropped at the head or rebuilt away when more than 100 and more than the
//! live timers (docs/behaviour.md 3.5), while a cancel in an unsorted bucket reclaims its
//! place at once. Keys are nanoseconds since a base instant a day below the
//! first deadline. [`VirtualClock`] is an atomic nanosecond offset from its
//! creation instant, so it is `Send + Sync` and lock-free. `Instant::now` is
//! called only in `clock.rs` (docs/architecture.md).
//!
//! # Examples
//!
//! The loop's use, driven by a virtual clock:
//!
//! ```
//! use std::time::Duration;
//! use evloop_timers::{Clock, TimerHeap, VirtualClock};
//!
//! let clock = VirtualClock::new();
//! let mut timers = TimerHeap::new();
//! let now = clock.now();
//! timers.insert(now + Duration::from_secs(10), "late");
//! timers.insert(now + Duration::from_secs(1), "first");
//! timers.insert(now + Duration::from_secs(1), "second"); // same deadline: FIFO
//! let doomed = timers.insert(now + Duration::from_secs(2), "cancelled");
//! assert_eq!(timers.cancel(doomed), Some("cancelled"));
//!
//! let mut ran = Vec::new();
//! while let Some(deadline) = timers.next_deadline() {
//!     // Instead of sleeping until `deadline`, a virtual clock jumps there.
//!     assert!(clock.advance_to(deadline));
//!     while let Some((_id, _deadline, value)) = timers.pop_expired(clock.now()) {
//!         ran.push(value);
//!     }
//! }
//! assert_eq!(ran, ["first", "second", "late"]);
//! assert_eq!(clock.now(), now + Duration::from_secs(10));
//! ```

#![forbid(unsafe_code)]

mod clock;
mod heap;

pub use clock::{Clock, MonotonicClock, VirtualClock};
pub use heap::{TimerHeap, TimerId, TimerMark};
