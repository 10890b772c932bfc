//! UDP sessions: a connected client sends numbered datagrams, a server
//! endpoint echoes each to its sender. The "client" and "server" plans hit
//! each endpoint's `send`/`recvfrom` (`EAGAIN`, `EINTR`: queued and
//! retried; `ENOBUFS`: that datagram is lost and reported through
//! `error_received`). Every datagram must come back at most once, intact,
//! or be accounted for by exactly one `error_received`.

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::io;
use std::rc::Rc;

use evloop_core::LoopFuture;
use evloop_transports::fault::{Fault, FaultPlan};
use evloop_transports::{
    create_datagram_endpoint, Address, DatagramOptions, DatagramProtocol, DatagramTransport,
};

use super::{check_closed, injected, watch_fd, Cleanup, Env, Spec};
use crate::record::Record;
use crate::Ended;

/// The session's bookkeeping.
struct Tally {
    sent: Vec<Vec<u8>>,
    received: BTreeSet<u32>,
    client_errors: u64,
    server_errors: u64,
    problems: Vec<String>,
    done: LoopFuture<()>,
}

impl Tally {
    fn check_done(&self) {
        let accounted = self.received.len() as u64 + self.client_errors + self.server_errors;
        if accounted >= self.sent.len() as u64 {
            let _ = self.done.set_result(());
        }
    }
}

struct Side {
    rec: Rc<RefCell<Record>>,
    lost: LoopFuture<()>,
    token: Rc<std::cell::Cell<Option<u64>>>,
    transport: Rc<RefCell<Option<DatagramTransport>>>,
}

impl Side {
    fn new(env: &Env, who: &'static str) -> Side {
        Side {
            rec: Rc::new(RefCell::new(Record::new(who))),
            lost: env.lp.create_future(),
            token: Rc::default(),
            transport: Rc::default(),
        }
    }

    fn share(&self) -> Side {
        Side {
            rec: self.rec.clone(),
            lost: self.lost.clone(),
            token: self.token.clone(),
            transport: self.transport.clone(),
        }
    }

    fn made(&self, transport: &DatagramTransport, plan: Option<&FaultPlan>) {
        self.rec.borrow_mut().made();
        self.token.set(watch_fd(transport.fd(), plan));
        *self.transport.borrow_mut() = Some(transport.clone());
    }

    fn lost(&self, error: Option<io::Error>) {
        self.rec.borrow_mut().lost(error);
        self.transport.borrow_mut().take();
        let _ = self.lost.set_result(());
    }
}

fn is_enobufs(error: &io::Error) -> bool {
    error.raw_os_error() == Some(rustix::io::Errno::NOBUFS.raw_os_error())
}

struct Server {
    side: Side,
    plan: Option<FaultPlan>,
    tally: Rc<RefCell<Tally>>,
}

impl DatagramProtocol for Server {
    fn connection_made(&mut self, transport: DatagramTransport) {
        self.side.made(&transport, self.plan.as_ref());
    }

    fn datagram_received(&mut self, data: &[u8], addr: Address) {
        self.side.rec.borrow_mut().callback("datagram_received");
        let transport = self.side.transport.borrow().clone();
        if let Some(t) = transport {
            if let Err(error) = t.sendto(data, Some(addr)) {
                self.side
                    .rec
                    .borrow_mut()
                    .problem(&format!("sendto refused: {error}"));
            }
        }
    }

    fn error_received(&mut self, error: io::Error) {
        self.side.rec.borrow_mut().callback("error_received");
        let mut tally = self.tally.borrow_mut();
        if is_enobufs(&error) {
            tally.server_errors += 1;
        } else {
            tally
                .problems
                .push(format!("server: error_received({error})"));
        }
        tally.check_done();
    }

    fn connection_lost(&mut self, error: Option<io::Error>) {
        self.side.lost(error);
    }
}

struct Client {
    side: Side,
    plan: Option<FaultPlan>,
    tally: Rc<RefCell<Tally>>,
}

impl DatagramProtocol for Client {
    fn connection_made(&mut self, transport: DatagramTransport) {
        self.side.made(&transport, self.plan.as_ref());
        let sent = self.tally.borrow().sent.clone();
        for datagram in &sent {
            if let Err(error) = transport.sendto(datagram, None) {
                self.side
                    .rec
                    .borrow_mut()
                    .problem(&format!("sendto refused: {error}"));
            }
        }
    }

    fn datagram_received(&mut self, data: &[u8], _addr: Address) {
        self.side.rec.borrow_mut().callback("datagram_received");
        let mut tally = self.tally.borrow_mut();
        let seq = data
            .get(..4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]));
        match seq {
            Some(seq) if tally.sent.get(seq as usize).is_some_and(|d| d == data) => {
                if !tally.received.insert(seq) {
                    tally.problems.push(format!("datagram {seq} echoed twice"));
                }
            }
            _ => tally.problems.push(format!(
                "a datagram of {} bytes that was never sent",
                data.len()
            )),
        }
        tally.check_done();
    }

    fn error_received(&mut self, error: io::Error) {
        self.side.rec.borrow_mut().callback("error_received");
        let mut tally = self.tally.borrow_mut();
        if is_enobufs(&error) {
            tally.client_errors += 1;
        } else {
            tally
                .problems
                .push(format!("client: error_received({error})"));
        }
        tally.check_done();
    }

    fn connection_lost(&mut self, error: Option<io::Error>) {
        self.side.lost(error);
    }
}

/// Runs a UDP session.
pub(crate) async fn run(env: &Env, spec: &mut Spec, cleanup: &Cleanup) -> (Ended, Vec<String>) {
    let lp = env.lp.clone();
    let count = 1 + spec.rng.below(48) as u32;
    let sent: Vec<Vec<u8>> = (0..count)
        .map(|seq| {
            let len = spec.rng.range(0, 1000);
            let mut datagram = seq.to_le_bytes().to_vec();
            datagram.extend(spec.rng.bytes(len));
            datagram
        })
        .collect();
    let done = lp.create_future::<()>();
    let tally = Rc::new(RefCell::new(Tally {
        sent,
        received: BTreeSet::new(),
        client_errors: 0,
        server_errors: 0,
        problems: Vec::new(),
        done: done.clone(),
    }));
    let server = Side::new(env, "udp server");
    let client = Side::new(env, "udp client");
    for side in [&server, &client] {
        let transport = side.transport.clone();
        cleanup.borrow_mut().push(Box::new(move || {
            if let Some(t) = transport.borrow().clone() {
                t.abort();
            }
        }));
    }
    let server_protocol = Server {
        side: server.share(),
        plan: spec.server.clone(),
        tally: tally.clone(),
    };
    let (server_transport, _) = create_datagram_endpoint(
        &lp,
        move || server_protocol,
        DatagramOptions::default().local_addr("127.0.0.1", 0),
    )
    .await
    .expect("the session's UDP server");
    let port = server_transport
        .sockname()
        .and_then(|a| a.as_inet())
        .map_or(0, |a| a.port());
    let client_protocol = Client {
        side: client.share(),
        plan: spec.client.clone(),
        tally: tally.clone(),
    };
    let (client_transport, _) = create_datagram_endpoint(
        &lp,
        move || client_protocol,
        DatagramOptions::default().remote_addr("127.0.0.1", port),
    )
    .await
    .expect("the session's UDP client");
    let _ = done.await;
    client_transport.close();
    server_transport.close();
    let _ = client.lost.clone().await;
    let _ = server.lost.clone().await;
    let mut problems = Vec::new();
    let ended = {
        let t = tally.borrow();
        problems.extend(t.problems.iter().cloned());
        for side in [&client, &server] {
            let rec = side.rec.borrow();
            problems.extend(rec.problems.iter().cloned());
            if !matches!(rec.lost, Some(None)) {
                problems.push(format!("{}: connection_lost({:?})", rec.who, rec.lost));
            }
        }
        let client_nobufs = injected(client.token.get(), Fault::NoBufs);
        let server_nobufs = injected(server.token.get(), Fault::NoBufs);
        if t.client_errors != client_nobufs {
            problems.push(format!(
                "client: {client_nobufs} ENOBUFS injected, {} reported through error_received",
                t.client_errors
            ));
        }
        if t.server_errors != server_nobufs {
            problems.push(format!(
                "server: {server_nobufs} ENOBUFS injected, {} reported through error_received",
                t.server_errors
            ));
        }
        let accounted = t.received.len() as u64 + t.client_errors + t.server_errors;
        if accounted != t.sent.len() as u64 {
            problems.push(format!(
                "{} datagrams sent, {} echoed + {} + {} reported lost",
                t.sent.len(),
                t.received.len(),
                t.client_errors,
                t.server_errors
            ));
        }
        if t.client_errors + t.server_errors > 0 {
            Ended::DatagramsLost
        } else {
            Ended::Clean
        }
    };
    problems.extend(
        check_closed(
            &lp,
            &[
                ("udp client", client.token.get()),
                ("udp server", server.token.get()),
            ],
        )
        .await,
    );
    (ended, problems)
}
