//! The link's lifecycle for real (root only, announced skip elsewhere): its
//! namespaces and TUN devices exist, addressed and up, while it runs, and
//! are gone, with whatever ran in them, once its stdin closes — which is
//! how a parent's exit, Ctrl-C included, ends it.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Prints the skip and appends it to `$EVLOOP_SKIP_LOG`, the file `cargo
/// xtask test` collects skips from.
fn announce_skip(what: &str) {
    eprintln!("skipped: {what}");
    if let Some(path) = std::env::var_os("EVLOOP_SKIP_LOG") {
        use std::io::Write;
        if let Ok(mut log) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
        {
            let _ = writeln!(log, "{what}");
        }
    }
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|l| l.split_whitespace().nth(1).map(|e| e == "0"))
        })
        .unwrap_or(false)
}

fn ip(args: &[&str]) -> String {
    let out = Command::new("ip").args(args).output().expect("ip runs");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn link_tears_down_its_namespaces_when_its_stdin_closes() {
    let name = "link_tears_down_its_namespaces_when_its_stdin_closes";
    if !is_root() {
        announce_skip(&format!("{name}: needs root (network namespaces)"));
        return;
    }
    if !std::path::Path::new("/dev/net/tun").exists()
        || Command::new("ip").arg("-V").output().is_err()
    {
        announce_skip(&format!("{name}: needs /dev/net/tun and iproute2"));
        return;
    }
    let id = format!("evt{}", std::process::id() % 1_000_000);
    let (s, c) = (format!("{id}s"), format!("{id}c"));
    let mut link = Command::new(env!("CARGO_BIN_EXE_evloop-netsoak"))
        .args(["link", "--server-ns", &s, "--client-ns", &c])
        .args(["--server-dev", &s, "--client-dev", &c])
        .args(["--server-ip", "10.214.0.1", "--client-ip", "10.214.0.2"])
        .args(["--loss", "1", "--delay-ms", "1"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("the link starts");
    let mut lines = BufReader::new(link.stdout.take().expect("piped")).lines();
    assert_eq!(lines.next().and_then(Result::ok).as_deref(), Some("ready"));

    let namespaces = ip(&["netns", "list"]);
    assert!(
        namespaces.contains(&s) && namespaces.contains(&c),
        "{namespaces}"
    );
    let server_end = ip(&["-n", &s, "addr", "show", "dev", &s]);
    assert!(server_end.contains("10.214.0.1/24"), "{server_end}");
    assert!(server_end.contains(",UP"), "{server_end}");
    let client_end = ip(&["-n", &c, "addr", "show", "dev", &c]);
    assert!(client_end.contains("10.214.0.2/24"), "{client_end}");
    // Something running in a namespace is killed at teardown.
    let mut sleeper = Command::new("ip")
        .args(["netns", "exec", &s, "sleep", "60"])
        .spawn()
        .expect("sleep starts in the namespace");
    // Only once it is inside: a teardown that looked for processes before
    // `ip netns exec` entered would leave it running (a race, not a bug).
    let entered = Instant::now() + Duration::from_secs(10);
    let sleeping = || {
        ip(&["netns", "pids", &s]).split_whitespace().any(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == "sleep")
        })
    };
    while !sleeping() {
        assert!(Instant::now() < entered, "the sleeper never entered {s}");
        std::thread::sleep(Duration::from_millis(10));
    }

    drop(link.stdin.take());
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = link.try_wait().expect("wait") {
            break status;
        }
        assert!(Instant::now() < deadline, "the link did not exit");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "{status}");
    let counters: Vec<String> = lines.map_while(Result::ok).collect();
    assert_eq!(counters.len(), 2, "{counters:?}");
    assert!(
        counters[0].starts_with("link client-to-server packets="),
        "{counters:?}"
    );
    let namespaces = ip(&["netns", "list"]);
    assert!(
        !namespaces.contains(&s) && !namespaces.contains(&c),
        "{namespaces}"
    );
    assert!(
        !ip(&["link", "show"]).contains(&id),
        "a TUN device outlived the link"
    );
    let sleeper_status = sleeper.wait().expect("wait");
    assert!(
        !sleeper_status.success(),
        "the sleeper was not killed: {sleeper_status}"
    );
}
