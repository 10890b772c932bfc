//! docs/behaviour.md 18.1 through `subprocess_exec` and a recording
//! protocol: exit codes, −signum, event order, close, signalling after exit,
//! pipes, options. Each behaviour runs with both reapers (`_pidfd`,
//! `_sigchld`; in this multi-threaded binary the SIGCHLD path may fall back
//! to its per-child thread, see process_sigchld.rs for the handler alone).

mod support;

use std::io::ErrorKind;

use evloop_core::{Error, ErrorContext, EventLoop};
use evloop_process::{subprocess_exec, subprocess_shell, ProcessOptions, Reaper, Stdio};
use support::*;

macro_rules! both_reapers {
    ($($name:ident => $body:ident;)*) => {
        mod pidfd {
            $( #[test] fn $name() { super::$body(evloop_process::Reaper::Auto) } )*
        }
        mod sigchld {
            $( #[test] fn $name() { super::$body(evloop_process::Reaper::Sigchld) } )*
        }
    };
}

both_reapers! {
    spec_18_1_exit_codes => exit_codes;
    spec_18_1_kill_terminate_send_signal_give_minus_signum => minus_signum;
    spec_18_1_event_order => event_order;
    spec_18_1_connection_lost_waits_for_a_grandchild_holding_the_pipe => grandchild;
    spec_18_1_close_kills_a_running_child => close_kills_running;
    spec_18_1_close_does_not_signal_a_finished_child => close_dont_kill_finished;
    spec_18_1_signal_after_exit_is_process_lookup_error => signal_after_exit;
    spec_18_1_broken_stdin_pipe_reported_once => broken_stdin;
    spec_18_1_child_reaped_elsewhere_reports_255 => reaped_elsewhere;
    spec_18_1_other_librarys_child_is_not_reaped => foreign_child;
}

fn exit_codes(reaper: Reaper) {
    let lp = new_loop();
    for code in [0, 3, 255] {
        let (t, p) = spawn_sh(&lp, &format!("exit {code}"), opts(reaper)).unwrap();
        assert_eq!(finish(&lp, &t, &p).0, code);
        assert_eq!(t.returncode(), Some(code));
    }
    lp.close().unwrap();
}

fn minus_signum(reaper: Reaper) {
    let lp = new_loop();
    // SIGUSR1 for send_signal, not SIGHUP: under `nohup` (or any parent
    // that ignores SIGHUP) the child inherits the ignored disposition
    // across exec and would never die of it.
    for (signum, how) in [(9, "kill"), (15, "terminate"), (10, "usr1")] {
        let (t, p) = spawn_sh(&lp, "exec sleep 100", opts(reaper)).unwrap();
        assert_eq!(t.returncode(), None);
        match how {
            "kill" => t.kill().unwrap(),
            "terminate" => t.terminate().unwrap(),
            _ => t.send_signal(SIGUSR1).unwrap(),
        }
        assert_eq!(finish(&lp, &t, &p).0, -signum, "{how}");
    }
    lp.close().unwrap();
}

/// SIGUSR1 on Linux.
const SIGUSR1: i32 = 10;

fn event_order(reaper: Reaper) {
    let lp = new_loop();
    let script = "echo out; echo err >&2; exit 3";
    let (t, p) = spawn_sh(&lp, script, opts(reaper)).unwrap();
    let (code, events) = finish(&lp, &t, &p);
    assert_eq!(code, 3);
    assert_order(&events, &[0, 1, 2]);
    let (out, err) = p.with(|p| (p.stdout.clone(), p.stderr.clone())).unwrap();
    assert_eq!(out, b"out\n");
    assert_eq!(err, b"err\n");
    assert!(t.is_finished());
    lp.close().unwrap();
}

fn grandchild(reaper: Reaper) {
    let lp = new_loop();
    // The shell exits at once; its background child keeps stdin and stdout
    // open until we write a line, which we do on process_exited.
    let script = "exec 3<&0; (read x <&3; echo late $x) & exit 0";
    let spawn = subprocess_exec(
        &lp,
        || Recorder {
            on_exit: Some(Box::new(|t| {
                let stdin = t.get_pipe_transport(0).unwrap();
                stdin.write(b"go\n");
                stdin.write_eof();
            })),
            ..Recorder::default()
        },
        "sh",
        ["-c", script],
        opts(reaper),
    );
    let (t, p) = run(&lp, spawn).unwrap();
    let (code, events) = finish(&lp, &t, &p);
    assert_eq!(code, 0);
    assert_order(&events, &[0, 1, 2]);
    let exited = events.iter().position(|e| *e == Ev::Exited).unwrap();
    let out_lost = events
        .iter()
        .position(|e| matches!(e, Ev::PipeLost(1, _)))
        .unwrap();
    assert!(
        exited < out_lost,
        "process_exited before stdout closed: {events:?}"
    );
    assert_eq!(p.with(|p| p.stdout.clone()).unwrap(), b"late go\n");
    lp.close().unwrap();
}

fn close_kills_running(reaper: Reaper) {
    let lp = new_loop();
    let (t, p) = spawn_sh(&lp, "exec sleep 100", opts(reaper)).unwrap();
    t.close();
    t.close(); // idempotent
    assert!(t.is_closing());
    let (code, events) = finish(&lp, &t, &p);
    assert_eq!(code, -9);
    assert_order(&events, &[0, 1, 2]);
    lp.close().unwrap();
}

fn close_dont_kill_finished(reaper: Reaper) {
    let lp = new_loop();
    let (t, p) = spawn_sh(&lp, "exit 7", opts(reaper)).unwrap();
    // Wait until stdout closed: the child has exited (maybe not reaped yet).
    run_until(&lp, || {
        p.with(|p| p.events.iter().any(|e| matches!(e, Ev::PipeLost(1, _))))
            .unwrap()
    });
    t.close();
    assert_eq!(finish(&lp, &t, &p).0, 7);
    lp.close().unwrap();
}

fn signal_after_exit(reaper: Reaper) {
    let lp = new_loop();
    let (t, p) = spawn_sh(&lp, "exit 0", opts(reaper)).unwrap();
    finish(&lp, &t, &p);
    for _ in 0..2 {
        for result in [t.kill(), t.terminate(), t.send_signal(1)] {
            let err = result.unwrap_err();
            assert!(
                matches!(&err, Error::Io(e) if e.raw_os_error() == Some(rustix::io::Errno::SRCH.raw_os_error())),
                "ESRCH expected: {err:?}"
            );
        }
    }
    t.close();
    lp.close().unwrap();
}

fn broken_stdin(reaper: Reaper) {
    let lp = new_loop();
    // The child reads one byte (so it cannot exit before we write), then
    // exits with most of the 4 MiB still buffered on our side.
    let (t, p) = spawn_sh(&lp, "head -c 1 >/dev/null", opts(reaper)).unwrap();
    let stdin = t.get_pipe_transport(0).unwrap();
    stdin.write(&payload(4 * 1024 * 1024));
    let (code, events) = finish(&lp, &t, &p);
    assert_eq!(code, 0);
    assert_order(&events, &[0, 1, 2]);
    let lost: Vec<_> = events
        .iter()
        .filter(|e| matches!(e, Ev::PipeLost(0, _)))
        .collect();
    assert_eq!(lost, [&Ev::PipeLost(0, Some(ErrorKind::BrokenPipe))]);
    lp.close().unwrap();
}

fn reaped_elsewhere(reaper: Reaper) {
    let lp = new_loop();
    let options = opts(reaper)
        .stdin(Stdio::Null)
        .stdout(Stdio::Null)
        .stderr(Stdio::Null);
    let (t, p) = spawn_sh(&lp, "exit 5", options).unwrap();
    // Someone else reaps it first (a blocking waitpid for this pid only).
    let pid = rustix::process::Pid::from_raw(t.pid() as i32).unwrap();
    let status = rustix::process::waitpid(Some(pid), rustix::process::WaitOptions::empty())
        .unwrap()
        .unwrap()
        .1;
    assert_eq!(status.exit_status(), Some(5));
    if reaper == Reaper::Sigchld {
        // No SIGCHLD will come for a child that is already gone; the check
        // right after registering ran before we reaped, so nudge with a
        // second child of ours.
        let (t2, p2) = spawn_sh(&lp, "exit 0", opts(reaper)).unwrap();
        finish(&lp, &t2, &p2);
    }
    let (code, events) = finish(&lp, &t, &p);
    assert_eq!(code, 255);
    assert_order(&events, &[]);
    lp.close().unwrap();
}

fn foreign_child(reaper: Reaper) {
    let lp = new_loop();
    let mut theirs = std::process::Command::new("sh")
        .args(["-c", "exit 4"])
        .spawn()
        .unwrap();
    for _ in 0..5 {
        let (t, p) = spawn_sh(&lp, "exit 1", opts(reaper)).unwrap();
        assert_eq!(finish(&lp, &t, &p).0, 1);
    }
    assert_eq!(theirs.wait().unwrap().code(), Some(4));
    lp.close().unwrap();
}

#[test]
fn spec_18_1_stderr_to_stdout_and_devnull() {
    let lp = new_loop();
    let options = ProcessOptions::default()
        .stdin(Stdio::Null)
        .stderr(Stdio::Stdout);
    let (t, p) = spawn_sh(&lp, "echo a; echo b >&2; cat", options).unwrap();
    assert!(t.get_pipe_transport(0).is_none());
    assert!(t.get_pipe_transport(2).is_none());
    let (code, events) = finish(&lp, &t, &p);
    assert_eq!(code, 0);
    assert_order(&events, &[1]);
    assert_eq!(p.with(|p| p.stdout.clone()).unwrap(), b"a\nb\n");

    let options = ProcessOptions::default()
        .stdout(Stdio::Null)
        .stderr(Stdio::Null);
    let (t, p) = spawn_sh(&lp, "echo lost; echo lost >&2", options).unwrap();
    assert!(t.get_pipe_transport(1).is_none());
    assert_eq!(finish(&lp, &t, &p).0, 0);
    assert!(p
        .with(|p| p.stdout.is_empty() && p.stderr.is_empty())
        .unwrap());
    lp.close().unwrap();
}

#[test]
fn spec_18_1_cwd_and_env() {
    let lp = new_loop();
    let options = ProcessOptions::default()
        .cwd("/")
        .env("EVLOOP_TEST_FOO", "bar")
        .env_remove("HOME");
    let (t, p) = spawn_sh(
        &lp,
        "pwd; echo $EVLOOP_TEST_FOO; echo ${HOME-unset}",
        options,
    )
    .unwrap();
    finish(&lp, &t, &p);
    assert_eq!(p.with(|p| p.stdout.clone()).unwrap(), b"/\nbar\nunset\n");

    let options = ProcessOptions::default().env_clear(true).env("ONLY", "1");
    let (t, p) = run(
        &lp,
        subprocess_exec(
            &lp,
            Recorder::default,
            "/usr/bin/env",
            [] as [&str; 0],
            options,
        ),
    )
    .unwrap();
    finish(&lp, &t, &p);
    assert_eq!(p.with(|p| p.stdout.clone()).unwrap(), b"ONLY=1\n");
    lp.close().unwrap();
}

#[test]
fn spec_18_1_bad_programs_give_typed_errors() {
    let lp = new_loop();
    let missing = run(
        &lp,
        subprocess_exec(
            &lp,
            Recorder::default,
            "/nonexistent/program",
            ["x"],
            ProcessOptions::default(),
        ),
    )
    .unwrap_err();
    assert_eq!(missing.io_kind(), Some(ErrorKind::NotFound), "{missing:?}");
    let file = std::env::temp_dir().join(format!("evloop-noexec-{}", std::process::id()));
    std::fs::write(&file, "#!/bin/sh\n").unwrap();
    let not_exec = run(
        &lp,
        subprocess_exec(
            &lp,
            Recorder::default,
            &file,
            [] as [&str; 0],
            ProcessOptions::default(),
        ),
    )
    .unwrap_err();
    std::fs::remove_file(&file).unwrap();
    assert_eq!(
        not_exec.io_kind(),
        Some(ErrorKind::PermissionDenied),
        "{not_exec:?}"
    );
    let empty = run(
        &lp,
        subprocess_exec(
            &lp,
            Recorder::default,
            "",
            [] as [&str; 0],
            ProcessOptions::default(),
        ),
    )
    .unwrap_err();
    assert!(matches!(empty, Error::InvalidArgument(_)), "{empty:?}");
    let empty_shell = run(
        &lp,
        subprocess_shell(&lp, Recorder::default, "", ProcessOptions::default()),
    )
    .unwrap_err();
    assert!(matches!(empty_shell, Error::InvalidArgument(_)));
    let stdout_on_stdin = run(
        &lp,
        subprocess_exec(
            &lp,
            Recorder::default,
            "true",
            [] as [&str; 0],
            ProcessOptions::default().stdin(Stdio::Stdout),
        ),
    )
    .unwrap_err();
    assert!(matches!(stdout_on_stdin, Error::InvalidArgument(_)));
    lp.close().unwrap();
}

#[test]
fn spec_18_1_large_transfers_are_byte_exact() {
    let lp = new_loop();
    for len in [65_535, 65_536, 65_537, 1_000_000] {
        let data = payload(len);
        let (t, p) = run(
            &lp,
            subprocess_exec(
                &lp,
                Recorder::default,
                "cat",
                [] as [&str; 0],
                ProcessOptions::default(),
            ),
        )
        .unwrap();
        let stdin = t.get_pipe_transport(0).unwrap();
        stdin.write(&data);
        stdin.write_eof();
        let (code, events) = finish(&lp, &t, &p);
        assert_eq!(code, 0);
        assert_order(&events, &[0, 1, 2]);
        assert!(
            p.with(|p| p.stdout == data).unwrap(),
            "{len} bytes echoed exactly"
        );
    }
    lp.close().unwrap();
}

#[test]
fn spec_18_1_four_mib_on_stdout_and_stderr_interleaved() {
    let dir = std::env::temp_dir().join(format!("evloop-process-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (a, b) = (dir.join("a"), dir.join("b"));
    let (da, mut db) = (payload(4 << 20), payload(4 << 20));
    db.reverse();
    std::fs::write(&a, &da).unwrap();
    std::fs::write(&b, &db).unwrap();
    let lp = new_loop();
    let script = format!("cat '{}' & cat '{}' >&2; wait", a.display(), b.display());
    let (t, p) = spawn_sh(&lp, &script, ProcessOptions::default()).unwrap();
    let (code, events) = finish(&lp, &t, &p);
    assert_eq!(code, 0);
    assert_order(&events, &[0, 1, 2]);
    assert!(p.with(|p| p.stdout == da && p.stderr == db).unwrap());
    std::fs::remove_dir_all(&dir).unwrap();
    lp.close().unwrap();
}

#[test]
fn spec_18_1_panic_in_protocol_goes_to_the_exception_handler() {
    use std::cell::RefCell;
    use std::rc::Rc;
    struct Panics;
    impl evloop_process::SubprocessProtocol for Panics {
        fn pipe_data_received(&mut self, _fd: i32, _data: &[u8]) {
            panic!("boom in pipe_data_received");
        }
    }
    let lp = EventLoop::new().unwrap();
    let seen = Rc::new(RefCell::new(Vec::new()));
    let sink = seen.clone();
    lp.set_exception_handler(Some(move |_: &EventLoop, ctx: &ErrorContext| {
        sink.borrow_mut().push(ctx.to_string());
    }));
    let (t, _p) = run(
        &lp,
        subprocess_shell(&lp, || Panics, "echo hi", ProcessOptions::default()),
    )
    .unwrap();
    assert_eq!(run(&lp, t.wait()), 0);
    let seen = seen.borrow();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert!(
        seen[0].contains("pipe_data_received") && seen[0].contains("boom"),
        "{seen:?}"
    );
    lp.close().unwrap();
}

#[test]
fn spec_18_1_pass_fds_reach_the_child_and_nothing_else_does() {
    let lp = new_loop();
    let (r, w) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).unwrap();
    let fd = std::os::fd::AsRawFd::as_raw_fd(&w);
    let options = ProcessOptions::default()
        .stdin(Stdio::Null)
        .stderr(Stdio::Null)
        .pass_fds(vec![w]);
    // dash takes one-digit fds only in redirections; reopen through /proc.
    let script = format!("echo passed > /proc/self/fd/{fd}; ls /proc/self/fd");
    let (t, p) = spawn_sh(&lp, &script, options).unwrap();
    finish(&lp, &t, &p);
    let mut got = String::new();
    std::io::Read::read_to_string(&mut std::fs::File::from(r), &mut got).unwrap();
    assert_eq!(got, "passed\n");
    let listed = String::from_utf8(p.with(|p| p.stdout.clone()).unwrap()).unwrap();
    let mut fds: Vec<i32> = listed
        .split_whitespace()
        .map(|s| s.parse().unwrap())
        .collect();
    fds.sort_unstable();
    // 0, 1, 2, the passed fd, and the one `ls` opens for the directory.
    assert_eq!(fds.len(), 5, "child fds: {fds:?}");
    assert_eq!(&fds[..3], [0, 1, 2]);
    assert!(fds.contains(&fd), "{fds:?}");
    lp.close().unwrap();
}

#[test]
fn spec_18_1_inherit_fds_reach_the_child_and_stay_open_in_the_parent() {
    let lp = new_loop();
    let (r, w) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).unwrap();
    let fd = std::os::fd::AsRawFd::as_raw_fd(&w);
    let options = ProcessOptions::default()
        .stdin(Stdio::Null)
        .stderr(Stdio::Null)
        .inherit_fds([fd]);
    let script = format!("echo child > /proc/self/fd/{fd}");
    let (t, p) = spawn_sh(&lp, &script, options).unwrap();
    finish(&lp, &t, &p);
    // Still ours: the parent writes after the child, then closes it once.
    rustix::io::write(&w, b"parent\n").unwrap();
    drop(w);
    let mut got = String::new();
    std::io::Read::read_to_string(&mut std::fs::File::from(r), &mut got).unwrap();
    assert_eq!(got, "child\nparent\n");
    lp.close().unwrap();
}
