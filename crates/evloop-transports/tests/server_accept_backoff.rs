//! docs/behaviour.md 6.2 for real: the accept loop runs out of fds (EMFILE), reports it,
//! stops accepting for 1 s, then resumes and serves. Runs in a child
//! process (this test binary re-executed with `EVLOOP_BACKOFF_CHILD=1`)
//! because it lowers `RLIMIT_NOFILE` for the whole process.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::fd::OwnedFd;
use std::time::{Duration, Instant};

use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
use support::*;

#[test]
fn spec_6_2_accept_backs_off_on_emfile_and_recovers() {
    if std::env::var_os("EVLOOP_BACKOFF_CHILD").is_some() {
        return child();
    }
    let exe = std::env::current_exe().unwrap();
    let out = std::process::Command::new(exe)
        .args([
            "--exact",
            "spec_6_2_accept_backs_off_on_emfile_and_recovers",
            "--nocapture",
        ])
        .env("EVLOOP_BACKOFF_CHILD", "1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "child failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("BACKOFF-OK"), "{stdout}");
}

fn child() {
    let fx = Fixture::new();
    let server = echo_server(&fx);
    let addr = server.sockets()[0].as_inet().unwrap();
    // Lower the limit, then fill every free fd slot.
    let old = getrlimit(Resource::Nofile);
    let limit = (fd_count() + 64) as u64;
    setrlimit(
        Resource::Nofile,
        Rlimit {
            current: Some(limit),
            maximum: old.maximum,
        },
    )
    .unwrap();
    let mut hogs: Vec<OwnedFd> = Vec::new();
    // The client connects before the fds run out (it needs one itself).
    let mut client = TcpStream::connect(addr).unwrap();
    while let Ok(f) = std::fs::File::open("/dev/null") {
        hogs.push(f.into());
    }
    let started = Instant::now();
    // The server cannot accept: it must report and back off, not spin.
    let lp = fx.lp.clone();
    fx.run(until(&lp, || !fx.errors.borrow().is_empty()));
    let reported = fx.take_errors();
    assert!(
        reported
            .iter()
            .any(|e| e.contains("out of system resource")),
        "{reported:?}"
    );
    // Free the fds; within the retry delay the connection gets served.
    hogs.clear();
    let served = std::thread::spawn(move || {
        client.write_all(b"back").unwrap();
        let mut b = [0u8; 4];
        client.read_exact(&mut b).unwrap();
        b
    });
    fx.run(until(&fx.lp, || served.is_finished()));
    assert_eq!(&served.join().unwrap(), b"back");
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_millis(900),
        "resumed too early: {elapsed:?}"
    );
    assert!(elapsed < Duration::from_secs(10), "{elapsed:?}");
    // Only one report: no busy loop while backing off.
    assert!(fx.take_errors().is_empty());
    setrlimit(Resource::Nofile, old).unwrap();
    let fresh = TcpStream::connect(addr).unwrap();
    drop(fresh);
    close_server(&fx, &server);
    fx.finish();
    println!("BACKOFF-OK");
}
