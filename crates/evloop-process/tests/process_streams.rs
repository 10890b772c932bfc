//! The streams-level API (asyncio's `create_subprocess_exec`): `Process`
//! with `communicate`, `wait`, readers and writer; and two loops on two
//! threads spawning children at once.

mod support;

use std::io::ErrorKind;

use evloop_core::Error;
use evloop_process::{
    create_subprocess_exec, create_subprocess_shell, ProcessOptions, Stdio, StreamReader,
    StreamWriter, DEFAULT_LIMIT,
};
use futures_io::AsyncRead;
use support::*;

#[test]
fn spec_18_1_communicate_echoes_large_input() {
    let lp = new_loop();
    for len in [0, 8192, 8193, 219_263, 1_000_000] {
        let data = payload(len);
        let spawn = create_subprocess_exec(
            &lp,
            "cat",
            [] as [&str; 0],
            ProcessOptions::default(),
            DEFAULT_LIMIT,
        );
        let (out, err, code) = run(&lp, async {
            let mut child = spawn.await.unwrap();
            let (out, err) = child.communicate(Some(&data)).await.unwrap();
            (out, err, child.wait().await)
        });
        assert_eq!(code, 0);
        assert!(out.unwrap() == data, "{len} bytes");
        assert_eq!(err.unwrap(), b"");
    }
    lp.close().unwrap();
}

#[test]
fn spec_18_1_communicate_ignores_broken_stdin() {
    let lp = new_loop();
    let spawn = create_subprocess_shell(&lp, "exit 2", ProcessOptions::default(), DEFAULT_LIMIT);
    let code = run(&lp, async {
        let mut child = spawn.await.unwrap();
        child.communicate(Some(&payload(4 << 20))).await.unwrap();
        child.returncode()
    });
    assert_eq!(code, Some(2));
    lp.close().unwrap();
}

#[test]
fn spec_18_1_process_readers_and_writer() {
    let lp = new_loop();
    let options = ProcessOptions::default().stderr(Stdio::Null);
    let spawn = create_subprocess_exec(&lp, "cat", [] as [&str; 0], options, 16);
    run(&lp, async {
        let mut child = spawn.await.unwrap();
        assert!(child.stderr.is_none());
        let stdin = child.stdin.take().unwrap();
        let mut stdout = child.stdout.take().unwrap();
        stdin.write(b"one\ntwo\n");
        stdin.drain().await.unwrap();
        assert_eq!(stdout.readline().await.unwrap(), b"one\n");
        assert_eq!(stdout.readline().await.unwrap(), b"two\n");
        // More than 2 × limit buffered pauses the pipe; reading resumes it.
        let big = payload(100_000);
        stdin.write(&big);
        stdin.close();
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            let n =
                std::future::poll_fn(|cx| std::pin::Pin::new(&mut stdout).poll_read(cx, &mut buf))
                    .await
                    .unwrap();
            if n == 0 {
                break;
            }
            got.extend_from_slice(&buf[..n]);
        }
        assert!(got == big);
        assert!(stdout.at_eof());
        assert_eq!(child.wait().await, 0);
        assert!(child.kill().is_err());
    });
    lp.close().unwrap();
}

#[test]
fn spec_18_1_two_loops_on_two_threads() {
    let threads: Vec<_> = (0..2)
        .map(|n| {
            std::thread::spawn(move || {
                let lp = new_loop();
                for i in 0..20 {
                    let code = 10 * n + i % 10;
                    let spawn = create_subprocess_shell(
                        &lp,
                        format!("echo {code}; exit {code}"),
                        ProcessOptions::default(),
                        DEFAULT_LIMIT,
                    );
                    let (out, rc) = run(&lp, async {
                        let mut child = spawn.await.unwrap();
                        let (out, _) = child.communicate(None).await.unwrap();
                        (out.unwrap(), child.wait().await)
                    });
                    assert_eq!(rc, code);
                    assert_eq!(out, format!("{code}\n").into_bytes());
                }
                lp.close().unwrap();
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
}

#[test]
fn spec_18_1_process_pipes_are_stream_reader_and_writer() {
    let lp = new_loop();
    let spawn = create_subprocess_exec(
        &lp,
        "cat",
        [] as [&str; 0],
        ProcessOptions::default(),
        DEFAULT_LIMIT,
    );
    run(&lp, async {
        let mut child = spawn.await.unwrap();
        let stdin: StreamWriter = child.stdin.take().unwrap();
        let mut stdout: StreamReader = child.stdout.take().unwrap();
        assert_eq!(stdout.limit(), DEFAULT_LIMIT);
        stdin.write(b"abc\nrest");
        // Dropping the writer flushes, then closes the pipe: cat reads EOF.
        drop(stdin);
        assert_eq!(stdout.readuntil(b"\n").await.unwrap(), b"abc\n");
        assert_eq!(stdout.read_to_end().await.unwrap(), b"rest");
        assert!(stdout.at_eof());
        assert_eq!(child.wait().await, 0);
        let mut stderr = child.stderr.take().unwrap();
        assert_eq!(stderr.read_to_end().await.unwrap(), b"");
    });
    lp.close().unwrap();
}

#[test]
fn spec_18_1_stdin_writer_reports_a_child_that_stopped_reading() {
    let lp = new_loop();
    // Reads one byte, then exits with the rest of 4 MiB unread.
    let spawn = create_subprocess_shell(
        &lp,
        "head -c 1 >/dev/null",
        ProcessOptions::default(),
        DEFAULT_LIMIT,
    );
    run(&lp, async {
        let mut child = spawn.await.unwrap();
        let stdin = child.stdin.take().unwrap();
        stdin.write(&payload(4 << 20));
        let waited = stdin.drain().await.unwrap_err();
        assert!(
            matches!(&waited, Error::Io(e) if e.kind() == ErrorKind::BrokenPipe),
            "{waited:?}"
        );
        let closed = stdin.wait_closed().await.unwrap_err();
        assert!(
            matches!(&closed, Error::Io(e) if e.kind() == ErrorKind::BrokenPipe),
            "{closed:?}"
        );
        assert!(stdin.is_closing());
        let again = stdin.drain().await.unwrap_err();
        assert!(
            matches!(&again, Error::Io(e) if e.kind() == ErrorKind::ConnectionReset),
            "{again:?}"
        );
        assert_eq!(child.wait().await, 0);
    });

    // A child that exits without reading an idle stdin: the pipe closes
    // cleanly and wait_closed completes.
    let spawn = create_subprocess_shell(&lp, "exit 0", ProcessOptions::default(), DEFAULT_LIMIT);
    run(&lp, async {
        let mut child = spawn.await.unwrap();
        let stdin = child.stdin.take().unwrap();
        assert_eq!(child.wait().await, 0);
        stdin.wait_closed().await.unwrap();
    });
    lp.close().unwrap();
}
