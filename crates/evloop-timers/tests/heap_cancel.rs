//! Cancellation in `TimerHeap`: values dropped at once, stale ids, garbage
//! and compaction (docs/behaviour.md 3.5), `clear`.
//!
//! Where garbage goes depends on where a timer sits: one cancelled in a wheel
//! bucket that is not sorted yet is reclaimed at once (never garbage); one in
//! the sorted current bucket or in the 4-ary heap leaves garbage under the
//! docs/behaviour.md 3.5 rule. [`anchored`] builds a heap whose wheel is pinned 30 days
//! ahead, so every timer a test puts near `t0` lands in the 4-ary heap and the
//! rule can be checked exactly, as before the wheel existed.

use std::cell::Cell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use evloop_timers::{Clock, TimerHeap, VirtualClock};

const MS: Duration = Duration::from_millis(1);
const DAY: Duration = Duration::from_secs(86_400);

fn t0() -> Instant {
    VirtualClock::new().now()
}

/// A heap holding one live "anchor" timer 30 days after `t0` (value
/// `u32::MAX`): its base is 29 days after `t0`, so every deadline near `t0`
/// is below the base and goes to the 4-ary heap.
fn anchored<T: From<u32>>(t0: Instant) -> TimerHeap<T> {
    let mut heap = TimerHeap::new();
    heap.insert(t0 + DAY * 30, T::from(u32::MAX));
    heap
}

/// Counts its drops.
#[derive(Debug)]
struct Tracked(Rc<Cell<usize>>);

impl Drop for Tracked {
    fn drop(&mut self) {
        self.0.set(self.0.get() + 1);
    }
}

#[test]
fn cancel_returns_the_value_and_the_caller_drops_it_at_once() {
    let t0 = t0();
    let drops = Rc::new(Cell::new(0));
    let mut heap = TimerHeap::new();
    let id = heap.insert(t0 + MS, Tracked(drops.clone()));
    let keep = heap.insert(t0 + MS, Tracked(drops.clone()));
    assert!(heap.contains(id));
    assert_eq!(heap.deadline(id), Some(t0 + MS));
    let sorted = heap.insert(t0 + MS, Tracked(drops.clone()));
    drop(heap.cancel(id).expect("live timer"));
    assert_eq!(drops.get(), 1, "value dropped when cancel's result is");
    assert_eq!(Rc::strong_count(&drops), 3, "the heap kept no clone");
    assert!(!heap.contains(id));
    assert_eq!(heap.deadline(id), None);
    assert_eq!(heap.len(), 2);
    // Its bucket was not sorted yet: reclaimed at once.
    assert_eq!(heap.garbage(), 0);
    assert_eq!(heap.heap_len(), 2);
    assert!(heap.contains(keep));
    // `next_deadline` sorts the bucket; a cancel there leaves garbage.
    assert_eq!(heap.next_deadline(), Some(t0 + MS));
    drop(heap.cancel(sorted).expect("live timer"));
    assert_eq!(drops.get(), 2);
    assert_eq!(heap.len(), 1);
    assert_eq!(heap.garbage(), 1);
    assert_eq!(heap.heap_len(), 2);
    assert!(heap.contains(keep));
    assert_eq!(heap.pop_expired(t0 + MS).map(|e| e.0), Some(keep));
    assert_eq!(
        heap.heap_len(),
        0,
        "the exhausted bucket took its garbage along"
    );
}

#[test]
fn cancel_twice_returns_none() {
    let t0 = t0();
    let mut heap = TimerHeap::new();
    let id = heap.insert(t0, 7);
    assert_eq!(heap.cancel(id), Some(7));
    assert_eq!(heap.cancel(id), None);
    assert_eq!(heap.len(), 0);
}

#[test]
fn cancel_of_a_popped_timer_returns_none() {
    let t0 = t0();
    let mut heap = TimerHeap::new();
    let id = heap.insert(t0, 7);
    assert!(heap.pop_expired(t0).is_some());
    assert_eq!(heap.cancel(id), None);
}

#[test]
fn ids_from_another_heap_are_unknown() {
    let t0 = t0();
    let mut small = TimerHeap::new();
    small.insert(t0, 0);
    let mut big = TimerHeap::new();
    let mut last = None;
    for i in 0..10 {
        last = Some(big.insert(t0, i));
    }
    let foreign = last.unwrap();
    assert!(!small.contains(foreign));
    assert_eq!(small.cancel(foreign), None);
    assert_eq!(small.len(), 1);
}

#[test]
fn stale_id_after_slot_reuse_does_not_touch_the_new_timer() {
    let t0 = t0();
    let mut heap = TimerHeap::new();
    let old = heap.insert(t0 + MS, "old");
    assert_eq!(heap.cancel(old), Some("old"));
    // The free list is LIFO, so this takes the slot `old` had.
    let new = heap.insert(t0 + MS * 5, "new");
    assert_ne!(old, new);
    assert!(!heap.contains(old));
    assert_eq!(heap.deadline(old), None);
    assert_eq!(heap.cancel(old), None);
    assert!(heap.contains(new));
    // The garbage entry `old` left (deadline 1 ms) must not pop `new`.
    assert!(heap.pop_expired(t0 + MS * 2).is_none());
    assert_eq!(heap.len(), 1);
    assert_eq!(
        heap.pop_expired(t0 + MS * 5),
        Some((new, t0 + MS * 5, "new"))
    );
    assert!(heap.is_empty());
}

#[test]
fn next_deadline_skips_and_pops_cancelled_heads() {
    let t0 = t0();
    let mut heap: TimerHeap<u32> = anchored(t0);
    let a = heap.insert(t0 + MS, 1);
    let b = heap.insert(t0 + MS * 2, 2);
    heap.insert(t0 + MS * 3, 3);
    heap.cancel(a);
    heap.cancel(b);
    assert_eq!(heap.heap_len(), 4);
    assert_eq!(heap.garbage(), 2);
    assert_eq!(heap.next_deadline(), Some(t0 + MS * 3));
    assert_eq!(heap.heap_len(), 2, "cancelled heads were popped");
    assert_eq!(heap.garbage(), 0);
    let c = heap.pop_expired(t0 + MS * 3).unwrap().0;
    heap.cancel(c); // already popped: no-op
    assert_eq!(heap.next_deadline(), Some(t0 + DAY * 30));
    assert_eq!(heap.pop_expired(t0 + DAY * 30).map(|e| e.2), Some(u32::MAX));
    assert_eq!(heap.next_deadline(), None);
}

#[test]
fn pop_expired_discards_cancelled_heads() {
    let t0 = t0();
    let mut heap = TimerHeap::new();
    let ids: Vec<_> = (0..10).map(|i| heap.insert(t0 + MS * i, i)).collect();
    for id in &ids[..9] {
        heap.cancel(*id);
    }
    assert_eq!(heap.pop_expired(t0 + MS * 9).map(|e| e.2), Some(9));
    assert_eq!(heap.heap_len(), 0);
}

/// The compaction rule as docs/behaviour.md 3.5 states it, applied after each cancel.
fn expected_heap_len_after_cancel(heap_len: usize, live: usize) -> usize {
    let garbage = heap_len - live;
    if garbage > 100 && garbage > heap_len / 2 {
        live
    } else {
        heap_len
    }
}

#[test]
fn cancelling_1000_of_1010_compacts_per_the_rule() {
    let t0 = t0();
    let mut heap: TimerHeap<u32> = anchored(t0);
    let ids: Vec<_> = (0..1_010u32).map(|i| heap.insert(t0 + MS * i, i)).collect();
    let mut expected = heap.heap_len();
    assert_eq!(expected, 1_011);
    let mut compactions = 0;
    for (n, id) in ids.iter().take(1_000).enumerate() {
        assert!(heap.cancel(*id).is_some());
        let before = expected;
        expected = expected_heap_len_after_cancel(expected, 1_011 - (n + 1));
        if expected < before {
            compactions += 1;
        }
        assert_eq!(heap.heap_len(), expected, "after {} cancels", n + 1);
        assert_eq!(heap.len(), 1_011 - (n + 1));
        assert_eq!(heap.garbage(), heap.heap_len() - heap.len());
    }
    assert!(compactions >= 1);
    assert!(heap.heap_len() < 1_010 / 2);
    // The survivors still come out in order.
    let got: Vec<u32> = std::iter::from_fn(|| heap.pop_expired(t0 + MS * 2_000))
        .map(|e| e.2)
        .collect();
    assert_eq!(got, (1_000..1_010).collect::<Vec<_>>());
}

#[test]
fn cancelling_100_or_fewer_never_compacts() {
    let t0 = t0();
    let mut heap: TimerHeap<u32> = anchored(t0);
    let ids: Vec<_> = (0..101).map(|i| heap.insert(t0 + MS * i, i)).collect();
    for id in &ids[..100] {
        heap.cancel(*id);
    }
    assert_eq!(heap.garbage(), 100);
    assert_eq!(heap.heap_len(), 102);
    assert_eq!(heap.len(), 2);
    // The 101st cancel crosses both thresholds.
    heap.cancel(ids[100]);
    assert_eq!(heap.heap_len(), 1);
    assert_eq!(heap.garbage(), 0);
}

#[test]
fn garbage_at_most_half_never_compacts() {
    let t0 = t0();
    // 999 timers and the anchor: cancelling 500 leaves exactly half garbage.
    let mut heap: TimerHeap<u32> = anchored(t0);
    let ids: Vec<_> = (0..999).map(|i| heap.insert(t0 + MS * i, i)).collect();
    for id in ids.iter().step_by(2) {
        heap.cancel(*id);
    }
    assert_eq!(heap.garbage(), 500);
    assert_eq!(heap.len(), 500);
    assert_eq!(heap.heap_len(), 1_000);
}

#[test]
fn compaction_with_a_slab_much_larger_than_the_heap() {
    // A big burst leaves many free slots; a later small heap compacts by
    // checking entries (not by scanning the slab). Both must keep order.
    let t0 = t0();
    let mut heap: TimerHeap<u32> = anchored(t0);
    for i in 0..10_000 {
        heap.insert(t0 + MS * i, i);
    }
    while heap.pop_expired(t0 + MS * 10_000).is_some() {}
    let ids: Vec<_> = (0..300u32)
        .map(|i| heap.insert(t0 + MS * (300 - i), i))
        .collect();
    for id in &ids[..200] {
        heap.cancel(*id);
    }
    // The 151st cancel compacted (151 > 100 and 151 > 150 live, the anchor
    // included), leaving 150 entries; the 49 cancels after it are garbage
    // again.
    assert_eq!(heap.heap_len(), 150, "compacted");
    assert_eq!(heap.garbage(), 49);
    let got: Vec<u32> = std::iter::from_fn(|| heap.pop_expired(t0 + MS * 300))
        .map(|e| e.2)
        .collect();
    assert_eq!(got, (200..300).rev().collect::<Vec<_>>());
}

#[test]
fn popping_live_timers_also_applies_the_rule() {
    let t0 = t0();
    let mut heap: TimerHeap<u32> = anchored(t0);
    // Odd timers are cancelled: garbage is half, no compaction yet.
    let ids: Vec<_> = (0..1_000u32).map(|i| heap.insert(t0 + MS * i, i)).collect();
    for id in ids.iter().skip(1).step_by(2) {
        heap.cancel(*id);
    }
    assert_eq!(heap.heap_len(), 1_001);
    let mut got = Vec::new();
    while let Some((_, _, v)) = heap.pop_expired(t0 + MS * 1_000) {
        got.push(v);
        assert!(heap.garbage() <= 100 || heap.garbage() <= heap.len() + 1);
    }
    assert_eq!(got, (0..1_000).step_by(2).collect::<Vec<_>>());
}

#[test]
fn a_million_created_and_cancelled_timers_leave_no_garbage() {
    let t0 = t0();
    // In the wheel (reclaimed at once) and in the 4-ary heap (the rule).
    for (mut heap, anchors) in [(TimerHeap::new(), 0), (anchored(t0), 1)] {
        let mut max_heap_len = 0;
        for i in 0..1_000_000u64 {
            let id = heap.insert(t0 + Duration::from_nanos(i % 997), i);
            assert_eq!(heap.cancel(id), Some(i));
            max_heap_len = max_heap_len.max(heap.heap_len());
        }
        assert_eq!(heap.len(), anchors);
        assert!(heap.heap_len() <= 101, "heap_len {}", heap.heap_len());
        assert!(max_heap_len <= 101, "max heap_len {max_heap_len}");
        if anchors == 0 {
            assert!(heap.is_empty());
            assert_eq!(max_heap_len, 0, "wheel cancels leave no garbage");
            assert_eq!(heap.next_deadline(), None);
        } else {
            assert_eq!(heap.next_deadline(), Some(t0 + DAY * 30));
        }
        assert_eq!(heap.heap_len(), anchors);
    }
}

#[test]
fn a_million_cancelled_among_live_timers_stay_bounded_in_the_heap() {
    let t0 = t0();
    let mut heap: TimerHeap<u64> = anchored(t0);
    let mut keep = Vec::new();
    for i in 0..1_000_000u64 {
        let id = heap.insert(t0 + Duration::from_nanos(i), i);
        if i % 1_000 == 0 {
            keep.push(i);
        } else {
            heap.cancel(id);
        }
    }
    assert_eq!(heap.len(), 1_001);
    assert!(heap.heap_len() <= 2 * 1_001 + 1);
    let got: Vec<u64> = std::iter::from_fn(|| heap.pop_expired(t0 + Duration::from_secs(1)))
        .map(|e| e.2)
        .collect();
    assert_eq!(got, keep);
}

#[test]
fn cancels_in_the_sorted_current_bucket_follow_the_rule() {
    // Equal deadlines share one bucket; `next_deadline` sorts it, after
    // which cancels there leave garbage under the docs/behaviour.md 3.5 rule.
    let t0 = t0();
    let mut heap = TimerHeap::new();
    let ids: Vec<_> = (0..1_010u32).map(|i| heap.insert(t0 + MS, i)).collect();
    assert_eq!(heap.next_deadline(), Some(t0 + MS));
    let mut expected = heap.heap_len();
    let mut compactions = 0;
    for (n, id) in ids.iter().take(1_000).enumerate() {
        assert!(heap.cancel(*id).is_some());
        let before = expected;
        expected = expected_heap_len_after_cancel(expected, 1_010 - (n + 1));
        compactions += usize::from(expected < before);
        assert_eq!(heap.heap_len(), expected, "after {} cancels", n + 1);
        assert_eq!(heap.garbage(), heap.heap_len() - heap.len());
    }
    assert!(compactions >= 1);
    let got: Vec<u32> = std::iter::from_fn(|| heap.pop_expired(t0 + MS))
        .map(|e| e.2)
        .collect();
    assert_eq!(got, (1_000..1_010).collect::<Vec<_>>());
    assert_eq!(heap.heap_len(), 0);
}

#[test]
fn wheel_cancels_are_reclaimed_at_once_and_slots_reused() {
    let t0 = t0();
    let mut heap = TimerHeap::new();
    // Churn: a window of 100 live timers, the oldest cancelled each step.
    let mut live = std::collections::VecDeque::new();
    for i in 0..100_000u32 {
        live.push_back(heap.insert(t0 + MS * (i % 1_000), i));
        if live.len() > 100 {
            let id = live.pop_front().unwrap();
            assert!(heap.cancel(id).is_some());
            assert!(!heap.contains(id));
        }
        assert_eq!(heap.garbage(), 0);
        assert_eq!(heap.heap_len(), heap.len());
    }
    assert_eq!(heap.len(), 100);
    let mut got: Vec<u32> = std::iter::from_fn(|| heap.pop_expired(t0 + MS * 1_000))
        .map(|e| e.2)
        .collect();
    let want: Vec<u32> = {
        let mut w: Vec<u32> = (99_900..100_000).collect();
        w.sort_by_key(|i| (i % 1_000, *i));
        w
    };
    assert_eq!(got, want);
    got.clear();
    assert!(heap.is_empty());
}

#[test]
fn a_million_cancelled_among_live_timers_stay_bounded() {
    let t0 = t0();
    let mut heap = TimerHeap::new();
    let mut keep = Vec::new();
    for i in 0..1_000_000u64 {
        let id = heap.insert(t0 + Duration::from_nanos(i), i);
        if i % 1_000 == 0 {
            keep.push(i);
        } else {
            heap.cancel(id);
        }
    }
    assert_eq!(heap.len(), 1_000);
    assert!(heap.heap_len() <= 2 * 1_000 + 1);
    let got: Vec<u64> = std::iter::from_fn(|| heap.pop_expired(t0 + Duration::from_secs(1)))
        .map(|e| e.2)
        .collect();
    assert_eq!(got, keep);
}

#[test]
fn clear_drops_everything_and_stales_every_id() {
    let t0 = t0();
    let drops = Rc::new(Cell::new(0));
    let mut heap = TimerHeap::new();
    let ids: Vec<_> = (0..50)
        .map(|i| heap.insert(t0 + MS * i, Tracked(drops.clone())))
        .collect();
    heap.cancel(ids[0]);
    assert_eq!(drops.get(), 1);
    heap.clear();
    assert_eq!(drops.get(), 50);
    assert_eq!(Rc::strong_count(&drops), 1);
    assert!(heap.is_empty());
    assert_eq!(heap.heap_len(), 0);
    assert_eq!(heap.garbage(), 0);
    assert_eq!(heap.next_deadline(), None);
    // Old ids stay stale even when their slots are reused.
    let fresh = heap.insert(t0, Tracked(drops.clone()));
    for id in &ids {
        assert!(!heap.contains(*id));
        assert!(heap.cancel(*id).is_none());
    }
    assert!(heap.contains(fresh));
    drop(heap);
    assert_eq!(drops.get(), 51, "dropping the heap drops live values");
}

#[test]
fn debug_and_default_work_for_any_value_type() {
    let mut heap: TimerHeap<Box<dyn FnOnce()>> = TimerHeap::default();
    heap.insert(t0(), Box::new(|| {}));
    let text = format!("{heap:?}");
    assert!(
        text.contains("TimerHeap") && text.contains("len: 1"),
        "{text}"
    );
}
