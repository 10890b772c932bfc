//! Memory per idle TCP connection: a Python client opens 10,000 connections
//! to one server and holds them open; the server process's resident memory
//! grows by at most 2 KiB per connection (socket buffers are the kernel's,
//! not in RSS). Python runs the client so the 20,000 fds are split over two
//! processes' limits.

mod support;

use std::cell::Cell;
use std::io::Write;
use std::process::{Command, Stdio};
use std::rc::Rc;
use std::time::Duration;

use evloop_transports::{create_server, Protocol, ServerOptions, Transport};
use support::Fixture;

const CONNECTIONS: usize = 10_000;
const BUDGET_PER_CONNECTION: usize = 2048;

/// Keeps its transport, does nothing: an idle connection.
struct Idle {
    accepted: Rc<Cell<usize>>,
    _transport: Option<Transport>,
}

impl Protocol for Idle {
    fn connection_made(&mut self, transport: Transport) {
        self.accepted.set(self.accepted.get() + 1);
        self._transport = Some(transport);
        if self.accepted.get() == CONNECTIONS {
            if let Ok(lp) = evloop_core::EventLoop::current() {
                lp.stop();
            }
        }
    }
}

fn resident_bytes() -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: usize = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4096
}

const CLIENT: &str = r"
import socket, sys
port = int(sys.argv[1]); n = int(sys.argv[2])
conns = [socket.create_connection(('127.0.0.1', port)) for _ in range(n)]
print('connected', flush=True)
sys.stdin.read()
";

#[test]
fn ten_thousand_idle_connections_cost_at_most_2_kib_each() {
    let fx = Fixture::new();
    let accepted = Rc::new(Cell::new(0));
    let counter = accepted.clone();
    let factory = move || Idle {
        accepted: counter.clone(),
        _transport: None,
    };
    let options = ServerOptions::default().host(["127.0.0.1"]).backlog(4096);
    let server = fx.run(create_server(&fx.lp, factory, options)).unwrap();
    let port = server.sockets()[0].as_inet().unwrap().port();
    let before = resident_bytes();
    let mut client = Command::new("python3")
        .args(["-c", CLIENT, &port.to_string(), &CONNECTIONS.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("python3 is needed for this test (the client side)");
    let guard = {
        let lp = fx.lp.clone();
        fx.lp
            .call_later(Duration::from_secs(120), move || lp.stop())
            .unwrap()
    };
    fx.lp.run_forever().unwrap();
    guard.cancel();
    let after = resident_bytes();
    assert_eq!(accepted.get(), CONNECTIONS, "not every connection arrived");
    let per_connection = after.saturating_sub(before) / CONNECTIONS;
    println!("resident memory per idle connection: {per_connection} bytes");
    assert!(
        per_connection <= BUDGET_PER_CONNECTION,
        "{per_connection} bytes per idle connection (budget {BUDGET_PER_CONNECTION})"
    );
    let _ = client.stdin.take().map(|mut stdin| stdin.write_all(b""));
    client.wait().unwrap();
    server.close();
    server.abort_clients();
    fx.run(server.wait_closed());
    fx.finish();
}
