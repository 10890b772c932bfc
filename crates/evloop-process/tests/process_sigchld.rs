//! The SIGCHLD fallback alone: one test in its own binary, so this loop is
//! the only one handling `SIGCHLD` and the handler path (not the per-child
//! thread) is what runs. Exit codes, −signum, event order, a child reaped
//! elsewhere, and a child another library spawned with std::process.

mod support;

use evloop_process::Reaper;
use support::*;

#[test]
fn spec_18_1_sigchld_reaper() {
    let lp = new_loop();
    let o = || opts(Reaper::Sigchld);
    let mut theirs = std::process::Command::new("sh")
        .args(["-c", "exit 4"])
        .spawn()
        .unwrap();

    let (t, p) = spawn_sh(&lp, "echo out; echo err >&2; exit 3", o()).unwrap();
    let (code, events) = finish(&lp, &t, &p);
    assert_eq!(code, 3);
    assert_order(&events, &[0, 1, 2]);

    let (t, p) = spawn_sh(&lp, "exec sleep 100", o()).unwrap();
    t.terminate().unwrap();
    assert_eq!(finish(&lp, &t, &p).0, -15);

    // Several children at once, exiting in any order.
    let children: Vec<_> = (0..10)
        .map(|i| spawn_sh(&lp, &format!("exit {i}"), o()).unwrap())
        .collect();
    for (i, (t, p)) in children.iter().enumerate() {
        assert_eq!(finish(&lp, t, p).0, i as i32);
    }

    // The other library's child was not reaped by our handler.
    assert_eq!(theirs.wait().unwrap().code(), Some(4));

    // The handler is removed once no child is left: a user may take SIGCHLD.
    let got = std::rc::Rc::new(std::cell::Cell::new(false));
    let flag = got.clone();
    evloop_signals::add_signal_handler(&lp, 17, move || flag.set(true)).unwrap();
    assert!(evloop_signals::remove_signal_handler(&lp, 17).unwrap());
    lp.close().unwrap();
}
