//! [`timer_queue`]: `TimerHeap` under arbitrary insert / cancel / advance /
//! pop / mark / clear sequences against a sorted-vector model.
//!
//! Deadlines are drawn at four scales (nanoseconds within a few wheel
//! buckets, milliseconds, seconds across the wheel's ~4.3 s horizon, days
//! below and above the base), relative to a moving "now", so timers land in
//! unsorted buckets, the sorted current bucket and the far heap, late
//! inserts included. Every answer — pops (id, deadline, value, order),
//! cancels, `contains`, `deadline`, `next_deadline`, `len`, the
//! `len + garbage == heap_len` identity — must match the model exactly.

use std::time::{Duration, Instant};

use arbitrary::{Arbitrary, Unstructured};
use evloop_timers::{TimerHeap, TimerId, TimerMark};

/// A signed offset at one of four scales.
#[derive(Arbitrary, Debug, Clone, Copy)]
enum Offset {
    /// Nanoseconds: sub-bucket ties (a bucket is 2^20 ns).
    Nanos(i32),
    Millis(i16),
    /// Tenths of a second, up to about ±55 min.
    Deci(i16),
    Days(i8),
}

impl Offset {
    fn apply(self, at: Instant) -> Option<Instant> {
        let (negative, magnitude) = match self {
            Offset::Nanos(n) => (n < 0, Duration::from_nanos(u64::from(n.unsigned_abs()))),
            Offset::Millis(n) => (n < 0, Duration::from_millis(u64::from(n.unsigned_abs()))),
            Offset::Deci(n) => (
                n < 0,
                Duration::from_millis(100 * u64::from(n.unsigned_abs())),
            ),
            Offset::Days(n) => (
                n < 0,
                Duration::from_secs(86_400 * u64::from(n.unsigned_abs() % 8)),
            ),
        };
        if negative {
            at.checked_sub(magnitude)
        } else {
            at.checked_add(magnitude)
        }
    }
}

#[derive(Arbitrary, Debug)]
enum Op {
    /// Insert at `now + offset`.
    Insert(Offset),
    /// Insert `n` timers at `now + offset + i × step ns` (bursts, ties).
    InsertMany(Offset, u8, u16),
    /// Cancel the n-th id ever issued (modulo): live, fired or cancelled.
    Cancel(u16),
    /// Move "now" forward (time never goes back in a loop).
    Advance(Offset),
    /// Pop at most one due timer.
    PopOne,
    /// Pop every due timer.
    PopAll,
    Mark,
    /// Pop at most one due timer inserted before the last mark.
    PopOneBefore,
    /// Pop every due timer inserted before the last mark.
    PopAllBefore,
    NextDeadline,
    /// `contains` and `deadline` of the n-th id ever issued.
    Query(u16),
    Clear,
}

/// A live timer in the model.
#[derive(Debug, Clone, Copy)]
struct Live {
    deadline: Instant,
    seq: u64,
    id: TimerId,
}

/// Live timers sorted by `(deadline, seq)`.
#[derive(Debug, Default)]
struct Model {
    live: Vec<Live>,
    next_seq: u64,
}

impl Model {
    fn insert(&mut self, timer: Live) {
        let at = self
            .live
            .partition_point(|t| (t.deadline, t.seq) < (timer.deadline, timer.seq));
        self.live.insert(at, timer);
    }

    fn remove(&mut self, id: TimerId) -> Option<Live> {
        let at = self.live.iter().position(|t| t.id == id)?;
        Some(self.live.remove(at))
    }

    /// The earliest due timer, if it was inserted before `mark` (a seq).
    fn pop(&mut self, now: Instant, mark: u64) -> Option<Live> {
        let first = self.live.first()?;
        (first.deadline <= now && first.seq < mark).then(|| self.live.remove(0))
    }
}

/// The fuzz target: see the module docs.
pub fn timer_queue(data: &[u8]) {
    let mut u = Unstructured::new(data);
    // Far enough from the process's start that days below it exist.
    let Some(origin) = Instant::now().checked_add(Duration::from_secs(30 * 86_400)) else {
        return;
    };
    let mut now = origin;
    let mut heap: TimerHeap<u64> = TimerHeap::new();
    let mut model = Model::default();
    let mut ids: Vec<TimerId> = Vec::new();
    let mut mark: (TimerMark, u64) = (heap.mark(), 0);
    let mut ops = 0;
    while !u.is_empty() {
        let Ok(op) = Op::arbitrary(&mut u) else {
            break;
        };
        ops += 1;
        if ops > 2_000 {
            break;
        }
        match op {
            Op::Insert(offset) => insert(&mut heap, &mut model, &mut ids, offset.apply(now)),
            Op::InsertMany(offset, n, step) => {
                let Some(start) = offset.apply(now) else {
                    continue;
                };
                for i in 0..u64::from(n % 64) {
                    let at = start.checked_add(Duration::from_nanos(i * u64::from(step)));
                    insert(&mut heap, &mut model, &mut ids, at);
                }
            }
            Op::Cancel(n) => {
                if ids.is_empty() {
                    continue;
                }
                let id = ids[usize::from(n) % ids.len()];
                let expected = model.remove(id).map(|t| t.seq);
                assert_eq!(heap.cancel(id), expected, "cancel({id:?})");
            }
            Op::Advance(offset) => {
                if let Some(at) = offset.apply(now) {
                    now = now.max(at);
                }
            }
            Op::PopOne => pop(&mut heap, &mut model, now, None, 1),
            Op::PopAll => pop(&mut heap, &mut model, now, None, usize::MAX),
            Op::Mark => mark = (heap.mark(), model.next_seq),
            Op::PopOneBefore => pop(&mut heap, &mut model, now, Some(mark), 1),
            Op::PopAllBefore => pop(&mut heap, &mut model, now, Some(mark), usize::MAX),
            Op::NextDeadline => {
                let expected = model.live.first().map(|t| t.deadline);
                assert_eq!(heap.next_deadline(), expected, "next_deadline()");
            }
            Op::Query(n) => {
                if ids.is_empty() {
                    continue;
                }
                let id = ids[usize::from(n) % ids.len()];
                let live = model.live.iter().find(|t| t.id == id);
                assert_eq!(heap.contains(id), live.is_some(), "contains({id:?})");
                assert_eq!(
                    heap.deadline(id),
                    live.map(|t| t.deadline),
                    "deadline({id:?})"
                );
            }
            Op::Clear => {
                heap.clear();
                model.live.clear();
            }
        }
        assert_eq!(heap.len(), model.live.len(), "len()");
        assert_eq!(heap.is_empty(), model.live.is_empty(), "is_empty()");
        assert_eq!(heap.heap_len(), heap.len() + heap.garbage(), "heap_len()");
    }
    // Everything left drains in order at the end of time.
    let end = model.live.last().map_or(now, |t| t.deadline.max(now));
    pop(&mut heap, &mut model, end, None, usize::MAX);
    assert!(heap.is_empty() && model.live.is_empty(), "drained");
    assert_eq!(heap.next_deadline(), None);
}

fn insert(
    heap: &mut TimerHeap<u64>,
    model: &mut Model,
    ids: &mut Vec<TimerId>,
    deadline: Option<Instant>,
) {
    let Some(deadline) = deadline else {
        return;
    };
    let seq = model.next_seq;
    model.next_seq += 1;
    let id = heap.insert(deadline, seq);
    assert!(!ids.contains(&id), "insert returned a reused id {id:?}");
    ids.push(id);
    model.insert(Live { deadline, seq, id });
}

/// Pops up to `count` timers at `now` (before `mark` if given), checking
/// each against the model, and that the real heap stops where the model
/// does.
fn pop(
    heap: &mut TimerHeap<u64>,
    model: &mut Model,
    now: Instant,
    mark: Option<(TimerMark, u64)>,
    count: usize,
) {
    for _ in 0..count {
        let real = match mark {
            Some((mark, _)) => heap.pop_expired_before(now, mark),
            None => heap.pop_expired(now),
        };
        let expected = model.pop(now, mark.map_or(u64::MAX, |(_, seq)| seq));
        let expected = expected.map(|t| (t.id, t.deadline, t.seq));
        assert_eq!(real, expected, "pop at now (mark {mark:?})");
        if real.is_none() {
            break;
        }
    }
}
