//! docs/behaviour.md 17.1, the reading half: `StreamReader`'s `read`, `read_to_end`,
//! `readline`, `readexactly` and `readuntil` over real loopback connections
//! (asyncio 3.11's rules), including data split across
//! packets, EOF, limit overruns and flow control at 2 × limit.

mod support;

use std::future::Future;
use std::io;
use std::pin::Pin;

use evloop_core::{Error, Task};
use evloop_transports::{StreamError, StreamReader, StreamWriter, DEFAULT_LIMIT};
use futures_lite::future::poll_once;
use futures_lite::AsyncBufReadExt;
use support::streams::{close_pair, pair, wait_until, Polls};
use support::*;

type ReadOp<T> = Box<dyn FnOnce(StreamReader) -> Pin<Box<dyn Future<Output = (StreamReader, T)>>>>;

/// Runs `op` on `reader` as a task and feeds it `pieces` from `writer`,
/// each written only after the reader saw the previous one (it was woken
/// and polled again): the data really arrives split.
fn split_read<T: 'static>(
    fx: &Fixture,
    reader: StreamReader,
    writer: &StreamWriter,
    pieces: &[&[u8]],
    op: ReadOp<T>,
) -> (StreamReader, T) {
    ok(fx.run(split_feed(fx, reader, writer, pieces, op)))
}

/// As [`split_read`], returning the still-running task.
fn split_feed<T: 'static>(
    fx: &Fixture,
    reader: StreamReader,
    writer: &StreamWriter,
    pieces: &[&[u8]],
    op: ReadOp<T>,
) -> Task<(StreamReader, T)> {
    let (body, polls) = Polls::new(op(reader));
    let task = ok(fx.lp.create_task(body));
    let counter = polls.clone();
    fx.run(wait_until(move || counter.get() == 1));
    for (i, piece) in pieces.iter().enumerate() {
        writer.write(piece);
        if i + 1 < pieces.len() {
            let counter = polls.clone();
            fx.run(wait_until(move || counter.get() == i + 2));
        }
    }
    task
}

#[test]
fn spec_17_1_read_returns_up_to_n_then_empty_at_eof() {
    let fx = Fixture::new();
    let mut p = pair(&fx, DEFAULT_LIMIT);
    p.sw.write(b"hello world");
    assert_eq!(ok(fx.run(p.cr.read(5))), b"hello");
    assert!(!p.cr.at_eof());
    assert_eq!(ok(fx.run(p.cr.read(100))), b" world");
    p.sw.write_eof();
    assert_eq!(ok(fx.run(p.cr.read(10))), b"");
    assert!(p.cr.at_eof());
    assert_eq!(ok(fx.run(p.cr.read(10))), b"", "EOF stays EOF");
    assert!(p.cr.exception().is_none());
    close_pair(&fx, p);
    fx.finish();
}

#[test]
fn spec_17_1_read_zero_returns_empty_at_once() {
    let fx = Fixture::new();
    let mut p = pair(&fx, DEFAULT_LIMIT);
    fx.run(async {
        let got = poll_once(p.cr.read(0)).await;
        assert!(matches!(got, Some(Ok(ref v)) if v.is_empty()), "{got:?}");
        let got = poll_once(p.cr.readexactly(0)).await;
        assert!(matches!(got, Some(Ok(ref v)) if v.is_empty()), "{got:?}");
        // With nothing buffered a real read waits.
        assert!(poll_once(p.cr.read(1)).await.is_none());
    });
    close_pair(&fx, p);
    fx.finish();
}

#[test]
fn spec_17_1_read_to_end_collects_every_chunk_until_eof() {
    let fx = Fixture::new();
    let mut p = pair(&fx, 16);
    let expected: Vec<u8> = (0..5000u32).map(|i| (i % 251) as u8).collect();
    let task = split_feed(
        &fx,
        p.cr,
        &p.sw,
        &[&expected[..1000], &expected[1000..3000], &expected[3000..]],
        Box::new(|mut r| {
            Box::pin(async move {
                let all = r.read_to_end().await;
                (r, all)
            })
        }),
    );
    // Still waiting for EOF after the last piece.
    p.sw.write_eof();
    let (cr, all) = ok(fx.run(task));
    p.cr = cr;
    assert_eq!(ok(all), expected);
    assert!(p.cr.at_eof());
    close_pair(&fx, p);
    fx.finish();
}

#[test]
fn spec_17_1_readline_split_across_packets_and_partial_at_eof() {
    let fx = Fixture::new();
    let mut p = pair(&fx, DEFAULT_LIMIT);
    let (cr, line) = split_read(
        &fx,
        p.cr,
        &p.sw,
        &[b"hel", b"lo", b" world\nnext"],
        Box::new(|mut r| {
            Box::pin(async move {
                let line = r.readline().await;
                (r, line)
            })
        }),
    );
    p.cr = cr;
    assert_eq!(line.unwrap(), b"hello world\n");
    p.sw.write_eof();
    assert_eq!(
        fx.run(p.cr.readline()).unwrap(),
        b"next",
        "the partial line at EOF"
    );
    assert_eq!(fx.run(p.cr.readline()).unwrap(), b"");
    assert!(p.cr.at_eof());
    close_pair(&fx, p);
    fx.finish();
}

#[test]
fn spec_17_1_readexactly_split_across_packets() {
    let fx = Fixture::new();
    let mut p = pair(&fx, DEFAULT_LIMIT);
    let (cr, got) = split_read(
        &fx,
        p.cr,
        &p.sw,
        &[b"0123", b"45", b"6789abc"],
        Box::new(|mut r| {
            Box::pin(async move {
                let got = r.readexactly(10).await;
                (r, got)
            })
        }),
    );
    p.cr = cr;
    assert_eq!(got.unwrap(), b"0123456789");
    assert_eq!(fx.run(p.cr.readexactly(3)).unwrap(), b"abc");
    close_pair(&fx, p);
    fx.finish();
}

#[test]
fn spec_17_1_readexactly_eof_first_is_incomplete_read_with_partial_bytes() {
    let fx = Fixture::new();
    let mut p = pair(&fx, DEFAULT_LIMIT);
    p.sw.write(b"abc");
    p.sw.write_eof();
    let err = fx.run(p.cr.readexactly(5)).unwrap_err();
    match &err {
        StreamError::IncompleteRead { partial, expected } => {
            assert_eq!(partial, b"abc");
            assert_eq!(*expected, Some(5));
        }
        other => panic!("expected IncompleteRead, got {other:?}"),
    }
    assert_eq!(
        err.to_string(),
        "3 bytes read on a total of 5 expected bytes"
    );
    assert!(err.is_incomplete_read());
    // The partial bytes were consumed: the reader is at EOF.
    assert!(p.cr.at_eof());
    // As an evloop Error: Io(UnexpectedEof), the StreamError still inside.
    let as_error = Error::from(err);
    assert_eq!(as_error.io_kind(), Some(io::ErrorKind::UnexpectedEof));
    assert!(matches!(
        StreamError::find(&as_error),
        Some(StreamError::IncompleteRead { partial, .. }) if partial == b"abc"
    ));
    close_pair(&fx, p);
    fx.finish();
}

#[test]
fn spec_17_1_readuntil_multibyte_separator_split_then_incomplete_at_eof() {
    let fx = Fixture::new();
    let mut p = pair(&fx, DEFAULT_LIMIT);
    let (cr, got) = split_read(
        &fx,
        p.cr,
        &p.sw,
        &[b"GET / HTTP/1.1\r", b"\n\r", b"\nbody"],
        Box::new(|mut r| {
            Box::pin(async move {
                let got = r.readuntil(b"\r\n\r\n").await;
                (r, got)
            })
        }),
    );
    p.cr = cr;
    assert_eq!(got.unwrap(), b"GET / HTTP/1.1\r\n\r\n");
    p.sw.write_eof();
    match fx.run(p.cr.readuntil(b"\r\n\r\n")) {
        Err(StreamError::IncompleteRead { partial, expected }) => {
            assert_eq!(partial, b"body");
            assert_eq!(expected, None);
        }
        other => panic!("expected IncompleteRead, got {other:?}"),
    }
    assert!(p.cr.at_eof());
    close_pair(&fx, p);
    fx.finish();
}

#[test]
fn spec_17_1_readuntil_empty_separator_is_invalid_argument() {
    let fx = Fixture::new();
    let mut p = pair(&fx, DEFAULT_LIMIT);
    let got = fx.run(async { poll_once(p.cr.readuntil(b"")).await });
    match got {
        Some(Err(StreamError::Other(Error::InvalidArgument(msg)))) => {
            assert!(
                msg.contains("Separator should be at least one-byte string"),
                "{msg}"
            );
        }
        other => panic!("expected InvalidArgument at once, got {other:?}"),
    }
    close_pair(&fx, p);
    fx.finish();
}

#[test]
fn spec_17_1_readuntil_limit_overrun_leaves_the_buffer() {
    let fx = Fixture::new();
    let mut p = pair(&fx, 8);
    // Found, but beyond the limit: consumed = the separator's offset.
    p.sw.write(b"0123456789abcdef\n");
    match fx.run(p.cr.readuntil(b"\n")) {
        Err(StreamError::LimitOverrun { message, consumed }) => {
            assert_eq!(
                message,
                "Separator is found, but chunk is longer than limit"
            );
            assert_eq!(consumed, 16);
        }
        other => panic!("expected LimitOverrun, got {other:?}"),
    }
    assert_eq!(
        ok(fx.run(p.cr.read(100))),
        b"0123456789abcdef\n",
        "nothing consumed"
    );
    // Not found within the limit: consumed = how far it searched.
    p.sw.write(b"0123456789");
    let err = fx.run(p.cr.readuntil(b"\n")).unwrap_err();
    match &err {
        StreamError::LimitOverrun { message, consumed } => {
            assert_eq!(
                message,
                "Separator is not found, and chunk exceed the limit"
            );
            assert_eq!(*consumed, 10);
        }
        other => panic!("expected LimitOverrun, got {other:?}"),
    }
    assert_eq!(Error::from(err).io_kind(), Some(io::ErrorKind::InvalidData));
    assert_eq!(
        ok(fx.run(p.cr.read(100))),
        b"0123456789",
        "nothing consumed"
    );
    close_pair(&fx, p);
    fx.finish();
}

#[test]
fn spec_17_1_readline_limit_overrun_consumes_through_newline_or_everything() {
    let fx = Fixture::new();
    let mut p = pair(&fx, 8);
    // The newline is buffered: the buffer is cut just after it.
    p.sw.write(b"0123456789abcdef\nnext\n");
    let err = fx.run(p.cr.readline()).unwrap_err();
    assert!(
        matches!(err, StreamError::LimitOverrun { consumed: 16, .. }),
        "{err:?}"
    );
    assert_eq!(fx.run(p.cr.readline()).unwrap(), b"next\n");
    // No newline buffered: the whole buffer is dropped.
    p.sw.write(b"0123456789");
    let err = fx.run(p.cr.readline()).unwrap_err();
    assert!(err.is_limit_overrun(), "{err:?}");
    p.sw.write(b"ok\n");
    assert_eq!(fx.run(p.cr.readline()).unwrap(), b"ok\n");
    close_pair(&fx, p);
    fx.finish();
}

#[test]
fn spec_17_1_reading_pauses_above_twice_limit_and_resumes_at_limit() {
    let fx = Fixture::new();
    let limit = 1024;
    let mut p = pair(&fx, limit);
    let data = vec![b'x'; 10 * limit];
    p.sw.write(&data);
    let transport = p.cw.transport();
    assert!(transport.is_reading());
    fx.run(wait_until(|| !transport.is_reading()));
    // Everything received so far is in the buffer: more than 2 × limit.
    let buffered = fx
        .run(async { p.cr.fill_buf().await.map(<[u8]>::len) })
        .unwrap();
    assert!(buffered > 2 * limit, "{buffered}");
    // Consume down to limit + 1: still paused.
    let mut left = buffered;
    while left > limit + 1 {
        let n = ok(fx.run(p.cr.read(left - limit - 1))).len();
        left -= n;
    }
    assert!(
        !transport.is_reading(),
        "paused while more than limit is buffered"
    );
    // One more byte: at the limit, reading resumes.
    assert_eq!(ok(fx.run(p.cr.read(1))).len(), 1);
    assert!(transport.is_reading());
    // The rest arrives.
    let rest = fx.run(p.cr.readexactly(data.len() - buffered)).unwrap();
    assert!(rest.iter().all(|&b| b == b'x'));
    assert!(transport.is_reading());
    close_pair(&fx, p);
    fx.finish();
}

#[test]
fn spec_17_1_at_eof_only_once_eof_and_empty() {
    let fx = Fixture::new();
    let mut p = pair(&fx, DEFAULT_LIMIT);
    p.sw.write(b"last");
    p.sw.write_eof();
    // Wait for the EOF to arrive while the data is still buffered.
    assert_eq!(fx.run(p.cr.readexactly(2)).unwrap(), b"la");
    assert!(!p.cr.at_eof());
    assert_eq!(ok(fx.run(p.cr.read_to_end())), b"st");
    assert!(p.cr.at_eof());
    close_pair(&fx, p);
    fx.finish();
}
