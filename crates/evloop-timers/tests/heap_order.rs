//! Ordering of `TimerHeap`: earliest first, FIFO among equal deadlines, never
//! before `now`, and deadlines far in the past or future.

use std::time::{Duration, Instant};

use evloop_timers::{Clock, TimerHeap, VirtualClock};

const MS: Duration = Duration::from_millis(1);
const DAY: Duration = Duration::from_secs(86_400);

fn t0() -> Instant {
    VirtualClock::new().now()
}

fn drain<T>(heap: &mut TimerHeap<T>, now: Instant) -> Vec<T> {
    std::iter::from_fn(|| heap.pop_expired(now).map(|(_, _, v)| v)).collect()
}

#[test]
fn equal_deadlines_pop_in_insertion_order() {
    let t0 = t0();
    let mut heap = TimerHeap::new();
    for i in 0..10_000u32 {
        heap.insert(t0 + MS, i);
    }
    assert_eq!(drain(&mut heap, t0 + MS), (0..10_000).collect::<Vec<_>>());
    assert!(heap.is_empty());
}

#[test]
fn equal_deadlines_interleaved_with_others_stay_fifo() {
    let t0 = t0();
    let mut heap = TimerHeap::new();
    // Deadlines 3, 1, 2, 3, 1, 2, ... ms: within each deadline, insertion order.
    for i in 0..3_000u32 {
        heap.insert(t0 + MS * (3 - i % 3), i);
    }
    let got = drain(&mut heap, t0 + MS * 3);
    let mut want: Vec<u32> = (0..3_000).collect();
    want.sort_by_key(|i| (3 - i % 3, *i));
    assert_eq!(got, want);
}

#[test]
fn earliest_deadline_first() {
    let t0 = t0();
    let mut heap = TimerHeap::new();
    for ms in [50u32, 10, 40, 20, 30, 0] {
        heap.insert(t0 + MS * ms, ms);
    }
    assert_eq!(heap.next_deadline(), Some(t0));
    assert_eq!(drain(&mut heap, t0 + MS * 100), [0, 10, 20, 30, 40, 50]);
}

#[test]
fn pop_expired_returns_id_deadline_and_value() {
    let t0 = t0();
    let mut heap = TimerHeap::new();
    let id = heap.insert(t0 + MS, "x");
    assert_eq!(heap.pop_expired(t0 + MS), Some((id, t0 + MS, "x")));
    assert!(!heap.contains(id));
    assert_eq!(heap.deadline(id), None);
    assert_eq!(heap.cancel(id), None);
}

#[test]
fn pop_expired_never_returns_a_timer_before_its_deadline() {
    let t0 = t0();
    let mut heap = TimerHeap::new();
    for i in 1..=100u32 {
        heap.insert(t0 + Duration::from_micros(u64::from(i) * 10), i);
    }
    for step in 0..=1_100u64 {
        let now = t0 + Duration::from_micros(step);
        while let Some((_, deadline, v)) = heap.pop_expired(now) {
            assert!(deadline <= now, "timer {v} popped before its deadline");
            assert_eq!(deadline, t0 + Duration::from_micros(u64::from(v) * 10));
        }
        // Everything due has been popped.
        if let Some(next) = heap.next_deadline() {
            assert!(next > now);
        }
    }
    assert!(heap.is_empty());
}

#[test]
fn one_nanosecond_early_is_too_early() {
    let t0 = t0();
    let mut heap = TimerHeap::new();
    heap.insert(t0 + MS, ());
    assert!(heap
        .pop_expired(t0 + MS - Duration::from_nanos(1))
        .is_none());
    assert!(heap.pop_expired(t0 + MS).is_some());
}

#[test]
fn now_before_every_deadline_pops_nothing() {
    let t0 = t0();
    let mut heap = TimerHeap::new();
    assert!(heap.pop_expired(t0).is_none()); // empty heap
    heap.insert(t0 + DAY, 1);
    assert!(heap.pop_expired(t0 - DAY).is_none());
    assert!(heap.pop_expired(t0).is_none());
    assert_eq!(heap.len(), 1);
}

#[test]
fn past_deadlines_pop_at_once_in_deadline_then_fifo_order() {
    let t0 = t0();
    let mut heap = TimerHeap::new();
    heap.insert(t0 + Duration::from_secs(1), "future");
    heap.insert(t0, "now");
    // Far below the base the heap chose from its first deadline: rebases.
    heap.insert(t0 - DAY * 10, "ten days ago #1");
    heap.insert(t0 - DAY * 10, "ten days ago #2");
    heap.insert(t0 - DAY * 20, "twenty days ago");
    heap.insert(t0 - MS, "just now");
    assert_eq!(
        heap.pop_expired(t0 - DAY * 15).map(|e| e.2),
        Some("twenty days ago")
    );
    assert!(heap.pop_expired(t0 - DAY * 15).is_none());
    assert_eq!(
        drain(&mut heap, t0),
        ["ten days ago #1", "ten days ago #2", "just now", "now"]
    );
    assert_eq!(heap.next_deadline(), Some(t0 + Duration::from_secs(1)));
    assert_eq!(drain(&mut heap, t0 + Duration::from_secs(1)), ["future"]);
}

#[test]
fn far_future_deadlines_saturate_without_panicking() {
    let t0 = t0();
    let year = DAY * 365;
    let mut heap = TimerHeap::new();
    heap.insert(t0 + MS, "soon");
    heap.insert(t0 + year * 100, "century");
    let far = t0.checked_add(year * 1_000);
    if let Some(far) = far {
        // Beyond the ~584 years a u64 of nanoseconds covers.
        let id = heap.insert(far, "millennium");
        assert_eq!(heap.deadline(id), Some(far));
    }
    assert_eq!(drain(&mut heap, t0 + year * 50), ["soon"]);
    assert_eq!(heap.next_deadline(), Some(t0 + year * 100));
    assert_eq!(drain(&mut heap, t0 + year * 200), ["century"]);
    if let Some(far) = far {
        assert_eq!(heap.next_deadline(), Some(far));
        // `now` itself saturates here: the real deadline decides.
        assert!(heap.pop_expired(t0 + year * 700).is_none());
        assert!(heap.pop_expired(far - Duration::from_nanos(1)).is_none());
        assert_eq!(drain(&mut heap, far), ["millennium"]);
    }
    assert!(heap.is_empty());
}

#[test]
fn reinserting_after_drain_reuses_slots_and_keeps_order() {
    let t0 = t0();
    let mut heap = TimerHeap::with_capacity(8);
    for round in 0..5u32 {
        for i in 0..8u32 {
            heap.insert(t0 + MS * (8 - i), round * 10 + i);
        }
        let want: Vec<u32> = (0..8).rev().map(|i| round * 10 + i).collect();
        assert_eq!(drain(&mut heap, t0 + MS * 8), want);
    }
}

#[test]
fn fifo_holds_between_the_sorted_bucket_and_late_inserts() {
    let t0 = t0();
    let mut heap = TimerHeap::new();
    heap.insert(t0 + MS * 5, 0);
    heap.insert(t0 + MS * 5, 1);
    // Sorts the bucket of 5 ms: later inserts into it go to the 4-ary heap.
    assert_eq!(heap.next_deadline(), Some(t0 + MS * 5));
    heap.insert(t0 + MS * 5, 2);
    heap.insert(t0 + MS * 4, 3);
    heap.insert(t0 + MS * 5, 4);
    assert_eq!(drain(&mut heap, t0 + MS * 5), [3, 0, 1, 2, 4]);
}

#[test]
fn fifo_holds_between_far_timers_and_the_wheel() {
    let t0 = t0();
    let far = t0 + Duration::from_secs(10);
    let mut heap = TimerHeap::new();
    heap.insert(t0, 0);
    // Beyond the wheel's horizon (about 4.3 s past t0): the 4-ary heap.
    heap.insert(far, 1);
    assert_eq!(drain(&mut heap, t0), [0]);
    // The wheel is empty again and re-anchors here: these are in the wheel.
    heap.insert(far, 2);
    heap.insert(far - MS, 3);
    heap.insert(far, 4);
    assert_eq!(heap.next_deadline(), Some(far - MS));
    assert_eq!(drain(&mut heap, far), [3, 1, 2, 4]);
}

#[test]
fn mark_holds_back_timers_inserted_after_it() {
    let t0 = t0();
    let mut heap = TimerHeap::new();
    heap.insert(t0 + MS, 0);
    heap.insert(t0 + MS * 2, 1);
    let mark = heap.mark();
    heap.insert(t0, 2); // due, but after the mark: stops the batch here
    heap.insert(t0 + MS, 3);
    let mut got = Vec::new();
    while let Some((_, _, v)) = heap.pop_expired_before(t0 + MS * 2, mark) {
        got.push(v);
    }
    assert!(got.is_empty(), "the earliest due timer is after the mark");
    assert_eq!(drain(&mut heap, t0), [2]);
    while let Some((_, _, v)) = heap.pop_expired_before(t0 + MS * 2, mark) {
        got.push(v);
    }
    assert_eq!(got, [0]);
    assert_eq!(drain(&mut heap, t0 + MS * 2), [3, 1]);
}

#[test]
fn deadlines_spread_over_many_seconds_pop_in_order() {
    // Scrambled deadlines over 20 s, stepping `now` by 1 ms: the wheel's
    // window moves, far timers meet wheel timers, nothing pops early.
    let t0 = t0();
    let mut heap = TimerHeap::new();
    let n = 20_000u64;
    let mut want: Vec<(Instant, u64)> = (0..n)
        .map(|i| {
            let d = t0 + Duration::from_micros((i * 7_919_993) % 20_000_000);
            heap.insert(d, i);
            (d, i)
        })
        .collect();
    want.sort();
    let mut got = Vec::new();
    let mut now = t0;
    while !heap.is_empty() {
        now += MS;
        if let Some(next) = heap.next_deadline() {
            assert!(next >= t0);
        }
        while let Some((_, d, v)) = heap.pop_expired(now) {
            assert!(d <= now);
            got.push((d, v));
        }
        if let Some(next) = heap.next_deadline() {
            assert!(next > now);
        }
    }
    assert_eq!(got, want);
}
