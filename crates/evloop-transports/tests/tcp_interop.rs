//! Interop with CPython 3.11 asyncio (an implementation we did not write):
//! its client against our TCP echo server, and our client against its
//! echo server. python3 must be installed (CI has it); without it the
//! tests fail with a clear message.

mod support;

use evloop_transports::{create_connection, ConnectOptions};
use support::*;

#[test]
fn spec_7_8_asyncio_client_against_our_server() {
    let fx = Fixture::new();
    let server = echo_server(&fx);
    let port = port_of(&server).to_string();
    let run = std::thread::spawn(move || {
        std::process::Command::new("python3")
            .arg(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/peers/asyncio_peer.py"
            ))
            .args(["tcp-client", "127.0.0.1", &port, "1000000"])
            .output()
    });
    fx.run(until(&fx.lp, || run.is_finished()));
    let out = run.join().unwrap().unwrap_or_else(|e| {
        panic!("python3 is required for the asyncio interop tests and could not be run: {e}")
    });
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "ok 1000000");
    close_server(&fx, &server);
    fx.finish();
}

#[test]
fn spec_7_8_our_client_against_asyncio_server() {
    let fx = Fixture::new();
    let (mut child, port) = python_peer(&["tcp-echo-server"]);
    let port: u16 = port.parse().expect("a port");
    let (rec, log) = Recorder::new();
    let (t, _h) = ok(fx.run(create_connection(
        &fx.lp,
        move || rec,
        Some("127.0.0.1"),
        Some(port),
        ConnectOptions::default(),
    )));
    let payload: Vec<u8> = (0..1_000_000u32).map(|i| (i % 241) as u8).collect();
    t.write(&payload);
    fx.run(until(&fx.lp, || log.borrow().data.len() >= payload.len()));
    assert!(log.borrow().data == payload);
    t.close();
    fx.run(until(&fx.lp, || log.borrow().is_lost()));
    drop(child.stdin.take());
    assert!(child.wait().unwrap().success());
    fx.finish();
}
