//! Helpers for the stream tests (`streams_*`): both ends of a loopback
//! connection as reader/writer pairs, a blocking std peer, waiting on the
//! loop without sleeping, and a poll counter that shows when a pending read
//! was woken by new data.
#![allow(dead_code, unreachable_pub)]

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::net::{TcpListener, TcpStream};
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use evloop_transports::{
    open_connection, start_server, ConnectOptions, Server, ServerOptions, StreamReader,
    StreamWriter,
};

use super::{ok, port_of, Fixture};

/// Both ends of one loopback connection made by `start_server` and
/// `open_connection`.
#[derive(Debug)]
pub struct Pair {
    /// The client's reader (from `open_connection`).
    pub cr: StreamReader,
    /// The client's writer.
    pub cw: StreamWriter,
    /// The server side's reader (given to `client_connected`).
    pub sr: StreamReader,
    /// The server side's writer.
    pub sw: StreamWriter,
    pub server: Server,
}

/// A connected [`Pair`] whose readers both use `limit`.
pub fn pair(fx: &Fixture, limit: usize) -> Pair {
    let slot: Rc<RefCell<Vec<(StreamReader, StreamWriter)>>> = Rc::default();
    let sink = slot.clone();
    let server = ok(fx.run(start_server(
        &fx.lp,
        move |r, w| {
            sink.borrow_mut().push((r, w));
            async {}
        },
        ServerOptions::default().host(["127.0.0.1"]),
        limit,
    )));
    let (cr, cw) = ok(fx.run(open_connection(
        &fx.lp,
        Some("127.0.0.1"),
        Some(port_of(&server)),
        ConnectOptions::default(),
        limit,
    )));
    let probe = slot.clone();
    fx.run(wait_until(move || !probe.borrow().is_empty()));
    let (sr, sw) = slot.borrow_mut().pop().expect("the server side");
    Pair {
        cr,
        cw,
        sr,
        sw,
        server,
    }
}

/// Closes both writers and the server, and waits for all of them.
pub fn close_pair(fx: &Fixture, pair: Pair) {
    pair.cw.close();
    pair.sw.close();
    fx.run(async {
        let _ = pair.cw.wait_closed().await;
        let _ = pair.sw.wait_closed().await;
    });
    pair.server.close();
    fx.run(pair.server.wait_closed());
}

/// A client reader/writer connected to a blocking std socket (accepted
/// from a std listener), for peers the loop must not drive.
pub fn std_peer(fx: &Fixture, limit: usize) -> (StreamReader, StreamWriter, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let (reader, writer) = ok(fx.run(open_connection(
        &fx.lp,
        Some("127.0.0.1"),
        Some(port),
        ConnectOptions::default(),
        limit,
    )));
    // The handshake is complete: accept returns at once.
    let (peer, _) = listener.accept().expect("accept");
    (reader, writer, peer)
}

/// Yields to the loop until `cond` holds (each turn polls for I/O without
/// sleeping); the fixture's guard timer fails a test that would hang.
pub async fn wait_until(mut cond: impl FnMut() -> bool) {
    while !cond() {
        futures_lite::future::yield_now().await;
    }
}

/// Counts how often the wrapped future is polled: a read future is polled
/// again only when the reader was fed (or at EOF/error), so a count of 2
/// shows that the bytes written so far reached it.
pub struct Polls<F> {
    inner: Pin<Box<F>>,
    pub count: Rc<Cell<usize>>,
}

impl<F: Future> Polls<F> {
    pub fn new(inner: F) -> (Polls<F>, Rc<Cell<usize>>) {
        let count = Rc::new(Cell::new(0));
        (
            Polls {
                inner: Box::pin(inner),
                count: count.clone(),
            },
            count,
        )
    }
}

impl<F: Future> Future for Polls<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        self.count.set(self.count.get() + 1);
        self.inner.as_mut().poll(cx)
    }
}
