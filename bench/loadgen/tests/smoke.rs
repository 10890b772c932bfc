//! Smoke test: the `evloop-loadgen` binary against the raw epoll echo server
//! (run in-process on a thread), over TCP and a unix socket, in well under
//! 2 s; and a loud failure when nothing listens.

use std::process::Command;
use std::thread;

use raw_epoll_echo::{Options, Server};

/// Starts a raw epoll server on `args` and returns its `listening on` line.
fn start_server(args: &[&str]) -> String {
    let args: Vec<String> = args.iter().map(|&a| a.to_owned()).collect();
    let server = Server::bind(&Options::parse(&args).unwrap()).unwrap();
    let line = server.listening_lines().unwrap().remove(0);
    // Serves until the test process exits.
    thread::spawn(move || server.run(None));
    line
}

fn loadgen(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_evloop-loadgen"))
        .args(args)
        .output()
        .unwrap()
}

fn check_report(output: &std::process::Output, size: usize) {
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "loadgen failed: {stderr}");
    let mut lines = stdout.lines();
    assert_eq!(lines.next(), Some("warmup-done"), "{stdout}");
    let report = lines.next().unwrap();
    assert!(lines.next().is_none(), "{stdout}");
    let field = |key: &str| -> f64 {
        report
            .split_whitespace()
            .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
            .unwrap_or_else(|| panic!("no {key} in {report}"))
            .parse()
            .unwrap()
    };
    assert!(field("requests") > 100.0, "size {size}: {report}");
    assert!(field("seconds") >= 0.3, "{report}");
    assert!(
        field("rps") > 0.0 && field("p99_us") >= field("p50_us"),
        "{report}"
    );
    assert!(field("client_cpu_s") >= 0.0, "{report}");
}

#[test]
fn loadgen_drives_the_raw_epoll_server_over_tcp() {
    let line = start_server(&["--tcp", "127.0.0.1:0"]);
    let addr = line.strip_prefix("listening on tcp ").unwrap().to_owned();
    for size in [1, 1024, 100 * 1024] {
        let size_arg = size.to_string();
        let out = loadgen(&[
            "--tcp",
            &addr,
            "--conns",
            "4",
            "--size",
            &size_arg,
            "--warmup",
            "0.05",
            "--duration",
            "0.3",
            "--mark",
        ]);
        check_report(&out, size);
    }
}

#[test]
fn loadgen_drives_the_raw_epoll_server_over_unix() {
    let path = std::env::temp_dir().join(format!("loadgen-smoke-{}.sock", std::process::id()));
    let line = start_server(&["--unix", path.to_str().unwrap()]);
    assert_eq!(line, format!("listening on unix {}", path.display()));
    let out = loadgen(&[
        "--unix",
        path.to_str().unwrap(),
        "--conns",
        "3",
        "--size",
        "10000",
        "--warmup",
        "0.05",
        "--duration",
        "0.3",
        "--mark",
    ]);
    check_report(&out, 10000);
    let _ = std::fs::remove_file(path);
}

#[test]
fn loadgen_discards_the_echo_over_tcp_and_unix() {
    let line = start_server(&["--tcp", "127.0.0.1:0"]);
    let addr = line.strip_prefix("listening on tcp ").unwrap().to_owned();
    let path = std::env::temp_dir().join(format!("loadgen-discard-{}.sock", std::process::id()));
    start_server(&["--unix", path.to_str().unwrap()]);
    let targets = [("--tcp", addr.as_str()), ("--unix", path.to_str().unwrap())];
    for ((flag, target), size) in targets.into_iter().zip([1024 * 1024, 100 * 1024]) {
        let size_arg = size.to_string();
        let out = loadgen(&[
            flag,
            target,
            "--conns",
            "2",
            "--size",
            &size_arg,
            "--warmup",
            "0.05",
            "--duration",
            "0.4",
            "--mark",
            "--discard",
        ]);
        check_report(&out, size);
    }
    let _ = std::fs::remove_file(path);
}

#[test]
fn loadgen_fails_loudly_when_nothing_listens() {
    let out = loadgen(&[
        "--unix",
        "/nonexistent/evloop-loadgen.sock",
        "--duration",
        "0.1",
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("error: connect 0"));
}
