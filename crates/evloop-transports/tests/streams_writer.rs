//! docs/behaviour.md 17.1, the writing half and the servers: `StreamWriter`'s `drain`,
//! `close`/`wait_closed`, errors after the connection is lost,
//! `start_server` handlers (panics, dropped writers), the limit check
//!, and the futures-io traits carrying 1 MiB through an echo server.

mod support;

use std::io::{self, Read};
use std::pin::pin;

use evloop_core::Error;
use evloop_transports::{
    open_connection, start_server, Address, ConnectOptions, ServerOptions, StreamReader,
    StreamWriter, DEFAULT_LIMIT,
};
use futures_lite::future::{poll_once, zip};
use futures_lite::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
use support::streams::{close_pair, pair, std_peer, wait_until, Polls};
use support::*;

fn local() -> ServerOptions {
    ServerOptions::default().host(["127.0.0.1"])
}

fn connect(fx: &Fixture, port: u16) -> (StreamReader, StreamWriter) {
    ok(fx.run(open_connection(
        &fx.lp,
        Some("127.0.0.1"),
        Some(port),
        ConnectOptions::default(),
        DEFAULT_LIMIT,
    )))
}

fn close_writer(fx: &Fixture, writer: &StreamWriter) {
    writer.close();
    let _ = fx.run(writer.wait_closed());
}

#[test]
fn spec_17_1_drain_waits_while_paused_and_resumes_after_peer_reads() {
    let fx = Fixture::new();
    let mut p = pair(&fx, DEFAULT_LIMIT);
    let big = vec![7u8; 8 << 20];
    p.sw.write(&big);
    let (low, high) = p.sw.transport().get_write_buffer_limits();
    assert!(p.sw.transport().get_write_buffer_size() > high);
    let mut cr = p.cr;
    let total = big.len();
    let got = fx.run(async {
        let mut first = pin!(p.sw.drain());
        let mut second = pin!(p.sw.drain());
        assert!(
            poll_once(&mut first).await.is_none(),
            "drain waits while paused"
        );
        assert!(poll_once(&mut second).await.is_none());
        // The peer starts reading only now.
        let reading = ok(fx.lp.create_task(async move {
            let got = cr.readexactly(total).await;
            (cr, got)
        }));
        let (a, b) = zip(first, second).await;
        ok(a);
        ok(b);
        assert!(p.sw.transport().get_write_buffer_size() <= low);
        reading.await
    });
    let (cr, data) = ok(got);
    p.cr = cr;
    assert!(data.unwrap().iter().all(|&b| b == 7));
    // Not paused: drain returns at once.
    assert!(matches!(
        fx.run(async { poll_once(p.sw.drain()).await }),
        Some(Ok(()))
    ));
    close_pair(&fx, p);
    fx.finish();
}

#[test]
fn spec_17_1_drain_after_connection_lost_is_connection_reset() {
    let fx = Fixture::new();
    let p = pair(&fx, DEFAULT_LIMIT);
    p.cw.close();
    // Closing with nothing buffered: drain yields once, connection_lost runs,
    // then "Connection lost".
    let err = fx.run(p.cw.drain()).unwrap_err();
    assert_eq!(err.io_kind(), Some(io::ErrorKind::ConnectionReset), "{err}");
    assert!(err.to_string().contains("Connection lost"), "{err}");
    ok(fx.run(p.cw.wait_closed()));
    let err = fx.run(p.cw.drain()).unwrap_err();
    assert_eq!(err.io_kind(), Some(io::ErrorKind::ConnectionReset));
    close_pair(&fx, p);
    fx.finish();
}

#[test]
fn spec_17_1_connection_error_fails_pending_read_drain_and_wait_closed() {
    let fx = Fixture::new();
    let (cr, cw, peer) = std_peer(&fx, DEFAULT_LIMIT);
    let (body, polls) = Polls::new(async move {
        let mut cr = cr;
        let got = cr.read(100).await;
        (cr, got)
    });
    let pending = ok(fx.lp.create_task(body));
    let counter = polls.clone();
    fx.run(wait_until(move || counter.get() == 1));
    // Unread data in the peer's socket makes its close a reset (RST).
    cw.write(b"x");
    let mut one = [0u8; 1];
    assert_eq!(peer.peek(&mut one).unwrap(), 1);
    drop(peer);
    let (cr, got) = ok(fx.run(pending));
    let err = got.unwrap_err();
    assert_eq!(err.io_kind(), Some(io::ErrorKind::ConnectionReset), "{err}");
    assert_eq!(
        cr.exception().and_then(|e| e.io_kind()),
        Some(io::ErrorKind::ConnectionReset)
    );
    // drain raises the reader's exception; wait_closed the connection's.
    let err = fx.run(cw.drain()).unwrap_err();
    assert_eq!(err.io_kind(), Some(io::ErrorKind::ConnectionReset));
    let err = fx.run(cw.wait_closed()).unwrap_err();
    assert_eq!(err.io_kind(), Some(io::ErrorKind::ConnectionReset));
    assert!(cw.is_closing());
    drop((cr, cw));
    fx.finish();
}

#[test]
fn spec_17_1_wait_closed_completes_after_close_and_peer_sees_eof() {
    let fx = Fixture::new();
    let mut p = pair(&fx, DEFAULT_LIMIT);
    assert!(fx
        .run(async { poll_once(p.cw.wait_closed()).await })
        .is_none());
    p.cw.write(b"bye");
    p.cw.close();
    assert!(p.cw.is_closing());
    ok(fx.run(p.cw.wait_closed()));
    assert_eq!(ok(fx.run(p.sr.read_to_end())), b"bye");
    assert!(p.sr.at_eof());
    // The server side's write half stays open until its writer closes.
    assert!(!p.sw.is_closing());
    p.sw.close();
    ok(fx.run(p.sw.wait_closed()));
    close_pair(&fx, p);
    fx.finish();
}

#[test]
fn spec_17_1_writelines_write_eof_half_close_and_addresses() {
    let fx = Fixture::new();
    let mut p = pair(&fx, DEFAULT_LIMIT);
    let port = port_of(&p.server);
    match p.cw.peername() {
        Some(Address::Inet(addr)) => assert_eq!(addr.port(), port),
        other => panic!("peername: {other:?}"),
    }
    assert_eq!(p.cw.peername(), p.sw.sockname());
    assert_eq!(p.cw.sockname(), p.sw.peername());
    assert!(p.cw.can_write_eof());
    p.cw.writelines([b"ab".as_slice(), b"c", b"d\n"]);
    assert_eq!(fx.run(p.sr.readline()).unwrap(), b"abcd\n");
    p.cw.write(b"tail");
    p.cw.write_eof();
    assert_eq!(ok(fx.run(p.sr.read_to_end())), b"tail");
    // Half-closed: the server side can still answer.
    p.sw.write(b"answer");
    p.sw.write_eof();
    assert_eq!(ok(fx.run(p.cr.read_to_end())), b"answer");
    close_pair(&fx, p);
    fx.finish();
}

#[test]
fn spec_17_1_futures_io_traits_echo_1mib() {
    let fx = Fixture::new();
    // The handler uses only the futures-io traits.
    let server = ok(fx.run(start_server(
        &fx.lp,
        |reader, mut writer| async move {
            futures_lite::io::copy(reader, &mut writer)
                .await
                .expect("copy");
            AsyncWriteExt::close(&mut writer).await.expect("close");
        },
        local(),
        DEFAULT_LIMIT,
    )));
    let (mut cr, mut cw) = connect(&fx, port_of(&server));
    let mut data = Vec::new();
    let mut i = 0u32;
    while data.len() < 1 << 20 {
        data.extend_from_slice(format!("line {i}\n").as_bytes());
        i += 1;
    }
    let sent = data.clone();
    let writing = ok(fx.lp.create_task(async move {
        // In chunks: poll_write itself waits while the transport is paused.
        for chunk in sent.chunks(16 * 1024) {
            cw.write_all(chunk).await?;
        }
        cw.flush().await?;
        cw.write_eof();
        Ok::<_, io::Error>(cw)
    }));
    let got = fx.run(async {
        let mut first = String::new();
        cr.read_line(&mut first).await?;
        let mut rest = Vec::new();
        AsyncReadExt::read_to_end(&mut cr, &mut rest).await?;
        Ok::<_, io::Error>((first, rest))
    });
    let (first, rest) = got.expect("read");
    assert_eq!(first, "line 0\n");
    assert_eq!(first.len() + rest.len(), data.len());
    assert!(first.as_bytes().iter().chain(&rest).eq(data.iter()));
    let cw = ok(fx.run(writing)).expect("write");
    close_writer(&fx, &cw);
    server.close();
    fx.run(server.wait_closed());
    fx.finish();
}

#[test]
fn spec_17_1_panicking_handler_is_reported_and_server_keeps_serving() {
    let fx = Fixture::new();
    let server = ok(fx.run(start_server(
        &fx.lp,
        |mut reader, writer| async move {
            let line = reader.readline().await.expect("readline");
            assert!(line != b"panic\n", "client_connected failed on purpose");
            writer.write(&line);
            writer.close();
        },
        local(),
        DEFAULT_LIMIT,
    )));
    let port = port_of(&server);
    let (mut r1, w1) = connect(&fx, port);
    w1.write(b"panic\n");
    // The failed handler's connection is closed.
    assert_eq!(ok(fx.run(r1.read_to_end())), b"");
    let errors = fx.take_errors();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].contains("Unhandled exception in client_connected_cb")
            && errors[0].contains("client_connected failed on purpose"),
        "{errors:?}"
    );
    let (mut r2, w2) = connect(&fx, port);
    w2.write(b"still serving\n");
    assert_eq!(ok(fx.run(r2.read_to_end())), b"still serving\n");
    close_writer(&fx, &w1);
    close_writer(&fx, &w2);
    server.close();
    fx.run(server.wait_closed());
    fx.finish();
}

#[test]
fn spec_17_1_dropping_the_writer_closes_the_connection() {
    let fx = Fixture::new();
    let server = ok(fx.run(start_server(
        &fx.lp,
        |_reader, writer| {
            writer.write(b"hi");
            async {}
        },
        local(),
        DEFAULT_LIMIT,
    )));
    let (mut r, w) = connect(&fx, port_of(&server));
    assert_eq!(ok(fx.run(r.read_to_end())), b"hi");
    close_writer(&fx, &w);
    server.close();
    fx.run(server.wait_closed());
    fx.finish();
}

#[test]
fn spec_17_1_limit_zero_is_invalid_argument() {
    let fx = Fixture::new();
    let err = fx
        .run(start_server(&fx.lp, |_r, _w| async {}, local(), 0))
        .unwrap_err();
    assert!(matches!(err, Error::InvalidArgument(_)), "{err:?}");
    let err = fx
        .run(open_connection(
            &fx.lp,
            Some("127.0.0.1"),
            Some(1),
            ConnectOptions::default(),
            0,
        ))
        .unwrap_err();
    assert!(
        matches!(err, Error::InvalidArgument(ref m) if m.contains("Limit cannot be <= 0")),
        "{err:?}"
    );
    fx.finish();
}

/// A std peer's bytes reach the reader; the reader's EOF when it closes.
#[test]
fn spec_17_1_reader_sees_std_peer_data_then_eof() {
    let fx = Fixture::new();
    let (mut cr, cw, mut peer) = std_peer(&fx, DEFAULT_LIMIT);
    use std::io::Write;
    peer.write_all(b"from std\n").unwrap();
    assert_eq!(fx.run(cr.readline()).unwrap(), b"from std\n");
    cw.write(b"back");
    let mut buf = [0u8; 4];
    peer.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"back");
    drop(peer);
    assert_eq!(ok(fx.run(cr.read(10))), b"");
    assert!(cr.at_eof());
    assert!(cr.exception().is_none());
    close_writer(&fx, &cw);
    fx.finish();
}

#[test]
fn spec_17_1_closing_the_loop_drops_a_waiting_handler_and_its_connection() {
    let fx = Fixture::new();
    let started = std::rc::Rc::new(std::cell::Cell::new(false));
    let flag = started.clone();
    let server = ok(fx.run(start_server(
        &fx.lp,
        move |reader, writer| {
            flag.set(true);
            async move {
                // Holds the connection forever.
                let _keep = (reader, writer);
                futures_lite::future::pending::<()>().await;
            }
        },
        local(),
        DEFAULT_LIMIT,
    )));
    let (cr, cw) = connect(&fx, port_of(&server));
    let probe = started.clone();
    fx.run(wait_until(move || probe.get()));
    server.close();
    close_writer(&fx, &cw);
    drop((cr, cw));
    // finish() closes the loop: the handler task is dropped with its
    // writer, which releases the server side's socket (no fd leak).
    fx.finish();
}
