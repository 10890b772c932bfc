//! Process-wide checks, in one test so nothing else runs beside it: 200
//! children in a row leave no fd and no zombie; failed spawns leak nothing;
//! a cancelled spawn kills and reaps its child; closing the loop kills (or
//! leaves, per option) live children and reaps them.

mod support;

use std::future::Future;
use std::task::Poll;

use evloop_process::{subprocess_exec, ProcessOptions, Reaper, Stdio};
use support::*;

#[test]
fn spec_18_1_no_fd_or_zombie_left_behind() {
    // Warm up (the loop's own fds and lazily created state, such as the
    // signal layer's wake-up pipe), then count.
    let lp = new_loop();
    for reaper in [Reaper::Auto, Reaper::Sigchld] {
        let (t, p) = spawn_sh(&lp, "exit 0", opts(reaper)).unwrap();
        finish(&lp, &t, &p);
    }
    let before = open_fds();

    for i in 0..200 {
        let reaper = if i % 2 == 0 {
            Reaper::Auto
        } else {
            Reaper::Sigchld
        };
        let (t, p) = spawn_sh(&lp, "echo x", opts(reaper)).unwrap();
        assert_eq!(finish(&lp, &t, &p).0, 0);
    }
    assert!(!has_children(), "a zombie is left");
    assert_eq!(open_fds(), before, "fds leaked over 200 spawns");

    // Failed spawns leak nothing.
    for program in ["/nonexistent", ""] {
        let err = run(
            &lp,
            subprocess_exec(
                &lp,
                Recorder::default,
                program,
                [] as [&str; 0],
                ProcessOptions::default(),
            ),
        );
        assert!(err.is_err());
    }
    assert_eq!(open_fds(), before, "fds leaked by failed spawns");
    assert!(!has_children());

    // Cancelling a pending spawn: poll it once (the child is spawned, the
    // pipes are connecting), then drop it.
    let mut spawn = Box::pin(subprocess_exec(
        &lp,
        Recorder::default,
        "sleep",
        ["100"],
        ProcessOptions::default(),
    ));
    let polled = run(&lp, async {
        std::future::poll_fn(|cx| Poll::Ready(spawn.as_mut().poll(cx).is_pending())).await
    });
    assert!(polled, "the spawn completed at once");
    drop(spawn);
    run_until(&lp, || !has_children());
    assert_eq!(open_fds(), before, "fds leaked by a cancelled spawn");
    lp.close().unwrap();

    // Closing the loop with live children: killed by default …
    let lp = new_loop();
    let (t, _p) = spawn_sh(&lp, "exec sleep 100", ProcessOptions::default()).unwrap();
    let pid = t.pid();
    lp.close().unwrap();
    wait_gone(pid);
    // … or left running (here it ends when its stdin closes), still reaped.
    let lp = new_loop();
    let mark = std::env::temp_dir().join(format!("evloop-left-{}", std::process::id()));
    let script = format!("read x; echo survived > '{}'", mark.display());
    let options = ProcessOptions::default()
        .stdout(Stdio::Null)
        .kill_on_close(false);
    let (t, _p) = spawn_sh(&lp, &script, options).unwrap();
    let pid = t.pid();
    drop(t);
    lp.close().unwrap();
    wait_gone(pid);
    assert_eq!(std::fs::read_to_string(&mark).unwrap(), "survived\n");
    std::fs::remove_file(&mark).unwrap();
}

/// Waits (bounded) until `pid` is neither running nor a zombie.
fn wait_gone(pid: u32) {
    let deadline = std::time::Instant::now() + WATCHDOG;
    while std::path::Path::new(&format!("/proc/{pid}")).exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "child {pid} never reaped"
        );
        std::thread::yield_now();
    }
    assert!(!has_children());
}
