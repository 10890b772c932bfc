//! The fault-injection property test (issue 11): seeded echo sessions of
//! every kind through the transports' fault seam; see the crate docs for
//! what each session and the run check.
//!
//! CI runs a bounded number of sessions; `EVLOOP_FAULT_SESSIONS=N` (or
//! `cargo xtask faults --sessions N`) runs more, `EVLOOP_FAULT_SEED=<seed>`
//! reruns one failed session.

use std::sync::Mutex;

use evloop_fault_tests::{run, Config};

/// The tests of this binary run one at a time: the run's fd check looks
/// at the whole process.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[test]
fn fault_injection_seeded_sessions() {
    let _serial = serial();
    let config = Config::from_env(1000);
    let report = run(&config);
    println!("{report}");
    assert!(report.passed(), "{report}");
    assert_eq!(report.total, config.only.map_or(config.sessions, |_| 1));
}
