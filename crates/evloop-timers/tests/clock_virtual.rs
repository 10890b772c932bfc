//! `VirtualClock`: stands still, moves only forward and only when told.

use std::sync::Arc;
use std::time::Duration;

use evloop_timers::{Clock, MonotonicClock, VirtualClock};

const SEC: Duration = Duration::from_secs(1);

#[test]
fn starts_at_the_real_time_of_creation() {
    let before = MonotonicClock.now();
    let clock = VirtualClock::new();
    let after = MonotonicClock.now();
    assert!(before <= clock.now() && clock.now() <= after);
}

#[test]
fn stands_still() {
    let clock = VirtualClock::default();
    let t0 = clock.now();
    let real = MonotonicClock.now();
    while MonotonicClock.now() - real < Duration::from_millis(2) {
        std::hint::spin_loop();
    }
    assert_eq!(clock.now(), t0);
    assert!(clock.is_virtual());
}

#[test]
fn advance_moves_it_by_exactly_that_much() {
    let clock = VirtualClock::new();
    let t0 = clock.now();
    clock.advance(SEC);
    assert_eq!(clock.now(), t0 + SEC);
    clock.advance(Duration::from_nanos(1));
    assert_eq!(clock.now(), t0 + SEC + Duration::from_nanos(1));
    clock.advance(Duration::ZERO);
    assert_eq!(clock.now(), t0 + SEC + Duration::from_nanos(1));
}

#[test]
fn advance_to_jumps_to_the_deadline_and_reports_it() {
    let clock = VirtualClock::new();
    let t0 = clock.now();
    assert!(clock.advance_to(t0 + SEC * 3600));
    assert_eq!(clock.now(), t0 + SEC * 3600);
}

#[test]
fn never_goes_backwards() {
    let clock = VirtualClock::new();
    let t0 = clock.now();
    clock.advance_to(t0 + SEC * 10);
    assert!(
        clock.advance_to(t0 + SEC),
        "virtual: handled, even if a no-op"
    );
    assert_eq!(clock.now(), t0 + SEC * 10);
    clock.advance_to(t0 - SEC * 10);
    assert_eq!(clock.now(), t0 + SEC * 10);
}

#[test]
fn huge_advances_saturate_instead_of_panicking() {
    let clock = VirtualClock::new();
    let t0 = clock.now();
    clock.advance(Duration::MAX);
    let far = clock.now();
    assert!(far > t0 + SEC * 86_400 * 365 * 500);
    clock.advance(Duration::MAX);
    assert!(clock.now() >= far);
    if let Some(beyond) = far.checked_add(SEC * 86_400 * 365 * 1000) {
        clock.advance_to(beyond);
        assert!(clock.now() >= far);
    }
}

#[test]
fn shared_across_threads_all_advances_count() {
    let clock = Arc::new(VirtualClock::new());
    let t0 = clock.now();
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let clock = clock.clone();
            std::thread::spawn(move || {
                for _ in 0..1_000 {
                    clock.advance(Duration::from_micros(1));
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(clock.now(), t0 + Duration::from_millis(4));
}

#[test]
fn usable_as_dyn_clock() {
    let clock: Arc<dyn Clock> = Arc::new(VirtualClock::new());
    let t0 = clock.now();
    assert!(clock.is_virtual());
    assert!(clock.advance_to(t0 + SEC));
    assert_eq!(clock.now(), t0 + SEC);
}
