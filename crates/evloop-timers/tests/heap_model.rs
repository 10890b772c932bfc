//! Property test: `TimerHeap` against a sorted-vector model.
//!
//! The model keeps live timers in a `Vec` sorted by `(deadline, insertion
//! number)`; every pop, cancel and query must agree with it exactly.
//! Deadlines range from ties within a millisecond to seconds apart (across
//! the wheel's ~4.3 s horizon, so timers land in the wheel, in the sorted
//! current bucket and in the 4-ary heap) and days (below the base, far
//! future), and marks check `pop_expired_before`.

use std::time::{Duration, Instant};

use evloop_timers::{Clock, TimerHeap, TimerId, VirtualClock};
use proptest::prelude::*;

const DAY_MS: i64 = 86_400_000;

#[derive(Clone, Debug)]
enum Op {
    /// Insert at `origin + offset` milliseconds.
    Insert(i64),
    /// Insert at `origin + offset` microseconds.
    InsertUs(i64),
    /// Take a mark (for `PopBefore`/`PopOneBefore`).
    Mark,
    /// Pop everything due at `origin + offset` ms inserted before the last
    /// mark, in order.
    PopBefore(i64),
    /// Pop at most one such timer.
    PopOneBefore(i64),
    /// Cancel the n-th id ever issued (modulo), live or not.
    Cancel(usize),
    /// Cancel the n-th live timer (modulo), if any.
    CancelLive(usize),
    /// Pop everything due at `origin + offset` ms, in order.
    PopAll(i64),
    /// Pop at most one timer due at `origin + offset` ms.
    PopOne(i64),
    NextDeadline,
    Clear,
}

/// Small ranges so ties are common, plus occasional jumps of days (which
/// move the heap's base) in both directions.
fn offset() -> impl Strategy<Value = i64> {
    prop_oneof![
        12 => 0i64..16,
        3 => 0i64..12_000,
        1 => (-3i64..=3).prop_map(|d| d * DAY_MS),
    ]
}

/// Microsecond offsets: sub-bucket ties and gaps, up to 12 s.
fn offset_us() -> impl Strategy<Value = i64> {
    prop_oneof![
        4 => 0i64..3_000,
        2 => 0i64..12_000_000,
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        20 => offset().prop_map(Op::Insert),
        6 => offset_us().prop_map(Op::InsertUs),
        2 => Just(Op::Mark),
        2 => offset().prop_map(Op::PopBefore),
        2 => offset().prop_map(Op::PopOneBefore),
        5 => any::<usize>().prop_map(Op::Cancel),
        5 => any::<usize>().prop_map(Op::CancelLive),
        3 => offset().prop_map(Op::PopAll),
        4 => offset().prop_map(Op::PopOne),
        2 => Just(Op::NextDeadline),
        1 => Just(Op::Clear),
    ]
}

fn at(origin: Instant, offset_ms: i64) -> Instant {
    let d = Duration::from_millis(offset_ms.unsigned_abs());
    if offset_ms >= 0 {
        origin + d
    } else {
        origin - d
    }
}

#[derive(Default)]
struct Model {
    /// Live timers, sorted by `(deadline, seq)`: `(deadline, seq, id, value)`.
    live: Vec<(Instant, u64, TimerId, u64)>,
    seq: u64,
}

impl Model {
    fn insert(&mut self, deadline: Instant, id: TimerId, value: u64) {
        let seq = self.seq;
        self.seq += 1;
        let at = self.live.partition_point(|e| (e.0, e.1) < (deadline, seq));
        self.live.insert(at, (deadline, seq, id, value));
    }
    fn cancel(&mut self, id: TimerId) -> Option<u64> {
        let at = self.live.iter().position(|e| e.2 == id)?;
        Some(self.live.remove(at).3)
    }
    fn pop_expired(&mut self, now: Instant) -> Option<(TimerId, Instant, u64)> {
        self.pop_expired_before(now, u64::MAX)
    }
    /// `mark` is the number of inserts made when the mark was taken.
    fn pop_expired_before(&mut self, now: Instant, mark: u64) -> Option<(TimerId, Instant, u64)> {
        let first = self.live.first()?;
        (first.0 <= now && first.1 < mark).then(|| {
            let e = self.live.remove(0);
            (e.2, e.0, e.3)
        })
    }
}

/// Runs `ops` against both; returns how many cancels compacted the heap.
fn run(ops: &[Op]) -> Result<usize, TestCaseError> {
    // An origin with room for days in both directions.
    let clock = VirtualClock::new();
    clock.advance(Duration::from_millis(5 * DAY_MS as u64));
    let origin = clock.now();

    let mut heap = TimerHeap::new();
    let mut model = Model::default();
    let mut ids: Vec<TimerId> = Vec::new();
    let mut next_value = 0u64;
    let mut compactions = 0;
    let mut mark = (heap.mark(), 0u64);

    for op in ops {
        let heap_len_before = heap.heap_len();
        match *op {
            Op::Insert(_) | Op::InsertUs(_) => {
                let deadline = match *op {
                    Op::Insert(off) => at(origin, off),
                    Op::InsertUs(off) => origin + Duration::from_micros(off.unsigned_abs()),
                    _ => unreachable!(),
                };
                let id = heap.insert(deadline, next_value);
                prop_assert!(!ids.contains(&id), "ids are never reused");
                model.insert(deadline, id, next_value);
                ids.push(id);
                next_value += 1;
            }
            Op::Cancel(n) if !ids.is_empty() => {
                let id = ids[n % ids.len()];
                prop_assert_eq!(heap.cancel(id), model.cancel(id));
                let garbage = heap.garbage();
                prop_assert!(garbage <= 100 || garbage <= heap.len(), "rule broken");
            }
            Op::Cancel(_) => {}
            Op::CancelLive(n) if !model.live.is_empty() => {
                let id = model.live[n % model.live.len()].2;
                let value = model.cancel(id);
                prop_assert!(value.is_some());
                prop_assert_eq!(heap.cancel(id), value);
                let garbage = heap.garbage();
                prop_assert!(garbage <= 100 || garbage <= heap.len(), "rule broken");
                compactions += usize::from(heap.heap_len() < heap_len_before);
            }
            Op::CancelLive(_) => {}
            Op::PopAll(off) => {
                let now = at(origin, off);
                loop {
                    let got = heap.pop_expired(now);
                    prop_assert_eq!(got, model.pop_expired(now));
                    if got.is_none() {
                        break;
                    }
                }
            }
            Op::Mark => mark = (heap.mark(), model.seq),
            Op::PopBefore(off) => {
                let now = at(origin, off);
                loop {
                    let got = heap.pop_expired_before(now, mark.0);
                    prop_assert_eq!(got, model.pop_expired_before(now, mark.1));
                    if got.is_none() {
                        break;
                    }
                }
            }
            Op::PopOneBefore(off) => {
                let now = at(origin, off);
                prop_assert_eq!(
                    heap.pop_expired_before(now, mark.0),
                    model.pop_expired_before(now, mark.1)
                );
            }
            Op::PopOne(off) => {
                let now = at(origin, off);
                prop_assert_eq!(heap.pop_expired(now), model.pop_expired(now));
            }
            Op::NextDeadline => {
                prop_assert_eq!(heap.next_deadline(), model.live.first().map(|e| e.0));
            }
            Op::Clear => {
                heap.clear();
                model.live.clear();
            }
        }
        prop_assert_eq!(heap.len(), model.live.len());
        prop_assert_eq!(heap.is_empty(), model.live.is_empty());
        prop_assert_eq!(heap.garbage(), heap.heap_len() - heap.len());
    }
    for id in &ids {
        let live = model.live.iter().find(|e| e.2 == *id);
        prop_assert_eq!(heap.contains(*id), live.is_some());
        prop_assert_eq!(heap.deadline(*id), live.map(|e| e.0));
    }
    // Finally drain everything and compare.
    let end = at(origin, 4 * DAY_MS);
    loop {
        let got = heap.pop_expired(end);
        prop_assert_eq!(got, model.pop_expired(end));
        if got.is_none() {
            break;
        }
    }
    prop_assert!(heap.is_empty());
    Ok(compactions)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn heap_matches_sorted_vector_model(ops in prop::collection::vec(op(), 0..400)) {
        run(&ops)?;
    }

}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// Mostly inserts and cancels (of recent ids), so garbage passes 100 and
    /// compaction runs.
    #[test]
    fn heap_matches_model_through_compactions(
        ops in prop::collection::vec(
            prop_oneof![
                12 => offset().prop_map(Op::Insert),
                2 => any::<usize>().prop_map(Op::Cancel),
                8 => any::<usize>().prop_map(Op::CancelLive),
                1 => offset().prop_map(Op::PopOne),
                1 => offset().prop_map(Op::PopAll),
            ],
            300..900,
        )
    ) {
        run(&ops)?;
    }
}

#[test]
fn model_agrees_on_a_fixed_tie_heavy_script() {
    let ops: Vec<Op> = (0..2_000usize)
        .zip(0i64..)
        .map(|(n, i)| match n % 7 {
            0..=2 => Op::Insert(i % 3),
            3 => Op::Cancel(n * 31),
            4 => Op::CancelLive(n * 7),
            5 => Op::PopOne(i % 4),
            _ => Op::NextDeadline,
        })
        .collect();
    run(&ops).unwrap();
}

#[test]
fn model_agrees_through_a_known_compaction() {
    // 300 inserts with tied deadlines, then cancel live timers until the
    // rule fires, then pop some and insert more.
    let mut ops: Vec<Op> = (0..300).map(|i| Op::Insert(i % 5)).collect();
    ops.extend((0..200).map(|i| Op::CancelLive(i * 13)));
    ops.extend((0..50).map(|i| Op::PopOne(i % 6)));
    ops.extend((0..50).map(|i| Op::Insert(i % 3)));
    ops.push(Op::PopAll(2));
    assert!(run(&ops).unwrap() >= 1, "the script must compact");
}

#[test]
fn model_agrees_on_a_spread_out_drain_with_marks() {
    // The event loop's pattern: a burst of inserts spread over 6 s (in
    // scrambled order, across the wheel's horizon), cancels, then
    // iterations of mark + pop-before + a few new inserts, 1 ms apart.
    let mut ops: Vec<Op> = (0..3_000i64)
        .map(|i| Op::InsertUs((i * 7_919) % 6_000_000))
        .collect();
    ops.extend((0..1_500usize).map(|i| Op::CancelLive(i * 104_729)));
    for ms in 0..6_100i64 {
        ops.push(Op::NextDeadline);
        ops.push(Op::Mark);
        if ms % 3 == 0 {
            ops.push(Op::Insert(ms + ms % 7));
            ops.push(Op::Insert(ms));
        }
        ops.push(Op::PopBefore(ms));
    }
    run(&ops).unwrap();
}
