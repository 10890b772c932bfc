//! docs/behaviour.md 5.6 and 6.5: unix stream connections and servers — filesystem and
//! abstract addresses, stale socket files, cleanup on close — plus interop
//! with a CPython asyncio unix server.

mod support;

use std::io::{Read, Write};
use std::os::unix::fs::FileTypeExt;
use std::path::PathBuf;

use evloop_core::Error;
use evloop_transports::{
    create_unix_connection, create_unix_server, Address, UnixConnectOptions, UnixServerOptions,
};
use support::*;

fn temp_path(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("evloop-unix-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    let _ = std::fs::remove_file(&path);
    path
}

fn echo_roundtrip(fx: &Fixture, path: PathBuf) {
    let (rec, log) = Recorder::new();
    let (t, _h) = ok(fx.run(create_unix_connection(
        &fx.lp,
        move || rec,
        &path,
        UnixConnectOptions::default(),
    )));
    t.write(b"unix!");
    fx.run(until(&fx.lp, || log.borrow().data == b"unix!"));
    t.close();
    fx.run(until(&fx.lp, || log.borrow().is_lost()));
}

#[test]
fn spec_5_6_filesystem_path_server_and_connection() {
    let fx = Fixture::new();
    let path = temp_path("fs.sock");
    let srv = ok(fx.run(create_unix_server(
        &fx.lp,
        Echo::default,
        Some(&path),
        UnixServerOptions::default(),
    )));
    assert_eq!(srv.sockets(), vec![Address::UnixPath(path.clone())]);
    echo_roundtrip(&fx, path.clone());
    close_server(&fx, &srv);
    // 6.5: our own socket file is removed on close.
    assert!(!path.exists());
    fx.finish();
}

#[test]
fn spec_5_6_abstract_address() {
    let fx = Fixture::new();
    let name = format!("\0evloop-abstract-{}", std::process::id());
    let path = PathBuf::from(&name);
    let srv = ok(fx.run(create_unix_server(
        &fx.lp,
        Echo::default,
        Some(&path),
        UnixServerOptions::default(),
    )));
    assert_eq!(
        srv.sockets(),
        vec![Address::UnixAbstract(name.as_bytes()[1..].to_vec())]
    );
    echo_roundtrip(&fx, path);
    close_server(&fx, &srv);
    fx.finish();
}

#[test]
fn spec_5_6_connection_errors_and_conflicts() {
    let fx = Fixture::new();
    let missing = temp_path("missing.sock");
    let err = fx
        .run(create_unix_connection(
            &fx.lp,
            Echo::default,
            &missing,
            UnixConnectOptions::default(),
        ))
        .unwrap_err();
    assert_eq!(err.io_kind(), Some(std::io::ErrorKind::NotFound), "{err}");
    let neither = fx.run(create_unix_connection(
        &fx.lp,
        Echo::default,
        "",
        UnixConnectOptions::default(),
    ));
    assert!(matches!(neither, Err(Error::InvalidArgument(_))));
    let (a, b) = std::os::unix::net::UnixStream::pair().unwrap();
    let both = fx.run(create_unix_connection(
        &fx.lp,
        Echo::default,
        &missing,
        UnixConnectOptions::default().sock(a.into()),
    ));
    assert!(matches!(both, Err(Error::InvalidArgument(_))));
    // A connected sock alone works.
    let (rec, log) = Recorder::new();
    let (t, _h) = ok(fx.run(create_unix_connection(
        &fx.lp,
        move || rec,
        "",
        UnixConnectOptions::default().sock(b.into()),
    )));
    t.close();
    fx.run(until(&fx.lp, || log.borrow().is_lost()));
    let no_path = fx.run(create_unix_server(
        &fx.lp,
        Echo::default,
        None,
        UnixServerOptions::default(),
    ));
    assert!(matches!(no_path, Err(Error::InvalidArgument(_))));
    fx.finish();
}

#[test]
fn spec_6_5_stale_socket_file_is_replaced() {
    let fx = Fixture::new();
    let path = temp_path("stale.sock");
    let stale = std::os::unix::net::UnixListener::bind(&path).unwrap();
    drop(stale); // leaves the socket file behind
    assert!(std::fs::metadata(&path).unwrap().file_type().is_socket());
    let srv = ok(fx.run(create_unix_server(
        &fx.lp,
        Echo::default,
        Some(&path),
        UnixServerOptions::default(),
    )));
    echo_roundtrip(&fx, path.clone());
    close_server(&fx, &srv);
    fx.finish();
}

#[test]
fn spec_6_5_regular_file_is_left_alone_and_bind_fails_addr_in_use() {
    let fx = Fixture::new();
    let path = temp_path("regular.file");
    std::fs::write(&path, b"precious").unwrap();
    let err = fx
        .run(create_unix_server(
            &fx.lp,
            Echo::default,
            Some(&path),
            UnixServerOptions::default(),
        ))
        .unwrap_err();
    assert_eq!(err.io_kind(), Some(std::io::ErrorKind::AddrInUse), "{err}");
    assert!(err.to_string().contains("is already in use"), "{err}");
    assert_eq!(std::fs::read(&path).unwrap(), b"precious");
    std::fs::remove_file(&path).unwrap();
    fx.finish();
}

#[test]
fn spec_6_5_cleanup_only_if_the_inode_is_still_ours() {
    let fx = Fixture::new();
    let path = temp_path("replaced.sock");
    let srv = ok(fx.run(create_unix_server(
        &fx.lp,
        Echo::default,
        Some(&path),
        UnixServerOptions::default(),
    )));
    // Someone replaced the file: close must leave the new one alone.
    std::fs::remove_file(&path).unwrap();
    std::fs::write(&path, b"other").unwrap();
    close_server(&fx, &srv);
    assert_eq!(std::fs::read(&path).unwrap(), b"other");
    std::fs::remove_file(&path).unwrap();
    // cleanup_socket false: the file stays.
    let srv = ok(fx.run(create_unix_server(
        &fx.lp,
        Echo::default,
        Some(&path),
        UnixServerOptions::default().cleanup_socket(false),
    )));
    close_server(&fx, &srv);
    assert!(path.exists());
    std::fs::remove_file(&path).unwrap();
    fx.finish();
}

#[test]
fn spec_6_5_sock_server_and_conflicts() {
    let fx = Fixture::new();
    let path = temp_path("sock.sock");
    let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
    let srv = ok(fx.run(create_unix_server(
        &fx.lp,
        Echo::default,
        None,
        UnixServerOptions::default().sock(listener.into()),
    )));
    echo_roundtrip(&fx, path.clone());
    close_server(&fx, &srv);
    assert!(!path.exists(), "a sock's file is cleaned up too (3.13)");
    let tcp = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let wrong = fx.run(create_unix_server(
        &fx.lp,
        Echo::default,
        None,
        UnixServerOptions::default().sock(tcp.into()),
    ));
    assert!(matches!(wrong, Err(Error::InvalidArgument(_))));
    fx.finish();
}

#[test]
fn spec_5_6_interop_with_asyncio_unix_echo_server() {
    let fx = Fixture::new();
    let path = temp_path("asyncio.sock");
    let (mut child, line) = python_peer(&["unix-echo-server", path.to_str().unwrap()]);
    assert_eq!(line, "ready");
    let (rec, log) = Recorder::new();
    let (t, _h) = ok(fx.run(create_unix_connection(
        &fx.lp,
        move || rec,
        &path,
        UnixConnectOptions::default(),
    )));
    let payload: Vec<u8> = (0..200_000u32).map(|i| (i % 249) as u8).collect();
    t.write(&payload);
    fx.run(until(&fx.lp, || log.borrow().data.len() >= payload.len()));
    assert!(log.borrow().data == payload);
    t.close();
    fx.run(until(&fx.lp, || log.borrow().is_lost()));
    drop(child.stdin.take());
    assert!(child.wait().unwrap().success());
    let _ = std::fs::remove_file(&path);
    fx.finish();
}

#[test]
fn spec_5_6_std_client_against_our_unix_server() {
    let fx = Fixture::new();
    let path = temp_path("std.sock");
    let srv = ok(fx.run(create_unix_server(
        &fx.lp,
        Echo::default,
        Some(&path),
        UnixServerOptions::default(),
    )));
    let p = path.clone();
    let client = std::thread::spawn(move || {
        let mut s = std::os::unix::net::UnixStream::connect(p).unwrap();
        s.write_all(b"hey").unwrap();
        let mut b = [0u8; 3];
        s.read_exact(&mut b).unwrap();
        b
    });
    fx.run(until(&fx.lp, || client.is_finished()));
    assert_eq!(&client.join().unwrap(), b"hey");
    close_server(&fx, &srv);
    fx.finish();
}
