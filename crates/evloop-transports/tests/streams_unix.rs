//! docs/behaviour.md 17.1 over unix sockets: `start_unix_server` and
//! `open_unix_connection` (asyncio's unix stream helpers).

mod support;

use evloop_core::Error;
use evloop_transports::{
    open_unix_connection, start_unix_server, Address, UnixServerOptions, DEFAULT_LIMIT,
};
use support::*;

fn scratch_path(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("evloop-streams-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir.join(name)
}

#[test]
fn spec_17_1_unix_server_and_connection_echo_lines() {
    let fx = Fixture::new();
    let path = scratch_path("echo.sock");
    let server = ok(fx.run(start_unix_server(
        &fx.lp,
        |mut reader, writer| async move {
            while let Ok(line) = reader.readline().await {
                if line.is_empty() {
                    break;
                }
                writer.write(&line);
                if writer.drain().await.is_err() {
                    break;
                }
            }
            writer.close();
        },
        Some(&path),
        UnixServerOptions::default(),
        DEFAULT_LIMIT,
    )));
    let (mut reader, writer) = ok(fx.run(open_unix_connection(
        &fx.lp,
        &path,
        Default::default(),
        DEFAULT_LIMIT,
    )));
    assert_eq!(writer.peername(), Some(Address::UnixPath(path.clone())));
    writer.write(b"one\ntwo\n");
    assert_eq!(fx.run(reader.readline()).unwrap(), b"one\n");
    assert_eq!(fx.run(reader.readline()).unwrap(), b"two\n");
    writer.write_eof();
    assert_eq!(ok(fx.run(reader.read_to_end())), b"");
    writer.close();
    ok(fx.run(writer.wait_closed()));
    server.close();
    fx.run(server.wait_closed());
    assert!(!path.exists(), "the socket file is removed on close");
    fx.finish();
}

#[test]
fn spec_17_1_unix_limit_zero_is_invalid_argument() {
    let fx = Fixture::new();
    let path = scratch_path("never.sock");
    let err = fx
        .run(open_unix_connection(&fx.lp, &path, Default::default(), 0))
        .unwrap_err();
    assert!(matches!(err, Error::InvalidArgument(_)), "{err:?}");
    let err = fx
        .run(start_unix_server(
            &fx.lp,
            |_r, _w| async {},
            Some(&path),
            UnixServerOptions::default(),
            0,
        ))
        .unwrap_err();
    assert!(matches!(err, Error::InvalidArgument(_)), "{err:?}");
    assert!(!path.exists());
    fx.finish();
}
