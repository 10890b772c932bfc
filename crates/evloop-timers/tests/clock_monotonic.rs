//! `MonotonicClock`: real time, never going backwards.

use std::time::Duration;

use evloop_timers::{Clock, MonotonicClock};

#[test]
fn now_is_non_decreasing() {
    let clock = MonotonicClock;
    let mut last = clock.now();
    for _ in 0..100_000 {
        let now = clock.now();
        assert!(now >= last);
        last = now;
    }
}

#[test]
fn now_advances_on_its_own() {
    let clock = MonotonicClock;
    let start = clock.now();
    // Busy-wait (no sleeping): real time must move past 1 ms eventually.
    while clock.now() - start < Duration::from_millis(1) {
        std::hint::spin_loop();
    }
    assert!(clock.now() >= start + Duration::from_millis(1));
}

#[test]
fn is_real_and_does_not_jump() {
    let clock = MonotonicClock;
    assert!(!clock.is_virtual());
    let now = clock.now();
    let far = now + Duration::from_secs(3_600);
    assert!(!clock.advance_to(far), "a real clock cannot skip the wait");
    assert!(clock.now() < far);
}

#[test]
fn works_as_a_trait_object_shared_across_threads() {
    let clock: std::sync::Arc<dyn Clock> = std::sync::Arc::new(MonotonicClock);
    let before = clock.now();
    let other = {
        let clock = clock.clone();
        std::thread::spawn(move || clock.now()).join().unwrap()
    };
    assert!(other >= before);
    assert!(format!("{clock:?}").contains("MonotonicClock"));
}
