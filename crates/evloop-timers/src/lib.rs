//! Timers and clocks for evloop: asyncio's `call_at`/`call_later` heap and
//! `loop.time()`.
//!
//! This crate owns:
//!
//! * [`TimerHeap<T>`]: deadlines in a min-heap, FIFO among equal deadlines
//!   (SPEC 3.3), O(1) cancel that frees the value at once (SPEC 3.5), with
//!   [`TimerId`]s that go stale safely;
//! * [`Clock`]: where time comes from — [`MonotonicClock`] (real time) and
//!   [`VirtualClock`] (stands still until the loop would sleep, SPEC 3.8).
//!
//! It does not own callbacks, handles or the run loop (evloop-core decides
//! what `T` is and when to call [`TimerHeap::pop_expired`]), nor any I/O or
//! sleeping: nothing here blocks, and it uses only `std`.
//!
//! # Implementation
//!
//! Values live in a slab (`Vec` of slots plus a LIFO free list); the heap is a
//! 4-ary min-heap of 24-byte `Copy` entries (deadline as nanoseconds since the
//! heap's base instant, a global insertion number for FIFO, a slot index).
//! The insertion number doubles as the slot's generation, so neither a stale
//! [`TimerId`] nor a stale heap entry can reach a newer timer in a reused
//! slot. Cancel empties the slot and leaves the heap entry as garbage, which
//! is dropped when it reaches the head or when the heap is rebuilt (garbage
//! more than 100 entries and more than half of the heap). The base instant is
//! set a day below the first deadline and moved down (an O(n) rebase) if an
//! even earlier deadline arrives, so every key is exact; deadlines more than
//! ~584 years after the base saturate. [`VirtualClock`] is an atomic
//! nanosecond offset from its creation instant, so it is `Send + Sync` and
//! lock-free. `Instant::now` is called only in `clock.rs` (STYLE 3.7).
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
