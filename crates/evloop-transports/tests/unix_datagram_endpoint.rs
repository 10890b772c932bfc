//! Unix datagram endpoints (docs/behaviour.md 5.6): filesystem and
//! abstract addresses, bound and unbound senders, the sender's address as
//! the receiver sees it, stale socket files.

mod support;

use std::io;
use std::os::unix::net::UnixDatagram;

use evloop_core::Error;
use evloop_transports::{create_unix_datagram_endpoint, Address};
use support::datagram::{abstract_address, abstract_path, DLog, DgramRecorder, ScratchDir};
use support::{until, Fixture};

#[test]
fn spec_5_6_filesystem_addresses_bound_sender_and_reply() {
    let fx = Fixture::new();
    // Scratch files and sockets after the fixture, which serialises the
    // tests and counts fds.
    let dir = ScratchDir::new("fs-bound");
    let (rpath, spath) = (dir.path("recv.sock"), dir.path("send.sock"));
    let lp = fx.lp.clone();
    fx.run(async move {
        let rlog = DLog::default();
        let (rx, _rp) = create_unix_datagram_endpoint(
            &lp,
            DgramRecorder::echo_factory(&rlog),
            Some(&rpath),
            None,
        )
        .await
        .unwrap();
        assert_eq!(rx.sockname(), Some(Address::UnixPath(rpath.clone())));
        assert_eq!(rx.peername(), None);
        let slog = DLog::default();
        let (tx, _sp) = create_unix_datagram_endpoint(
            &lp,
            DgramRecorder::factory(&slog),
            Some(&spath),
            Some(&rpath),
        )
        .await
        .unwrap();
        assert_eq!(tx.sockname(), Some(Address::UnixPath(spath.clone())));
        assert_eq!(tx.peername(), Some(Address::UnixPath(rpath.clone())));
        tx.sendto(b"first", None).unwrap();
        tx.sendto(b"", None).unwrap();
        tx.sendto(&[9u8; 4096], None).unwrap();
        until(&lp, || slog.datagrams().len() == 3).await;
        // The receiver saw the sender's path and echoed to it; boundaries kept.
        assert_eq!(rlog.senders(), vec![Address::UnixPath(spath.clone()); 3]);
        assert_eq!(
            slog.datagrams(),
            vec![b"first".to_vec(), Vec::new(), vec![9u8; 4096]]
        );
        assert_eq!(slog.senders(), vec![Address::UnixPath(rpath.clone()); 3]);
        tx.close();
        rx.close();
        until(&lp, || slog.lost().len() == 1 && rlog.lost().len() == 1).await;
        // Like asyncio, the endpoint leaves its socket file behind.
        assert!(rpath.exists());
    });
    drop(dir);
    fx.finish();
}

#[test]
fn spec_5_6_unbound_sender_is_unnamed() {
    let fx = Fixture::new();
    // Scratch files and sockets after the fixture, which serialises the
    // tests and counts fds.
    let dir = ScratchDir::new("fs-unbound");
    let rpath = dir.path("recv.sock");
    let lp = fx.lp.clone();
    fx.run(async move {
        let rlog = DLog::default();
        let (rx, _rp) =
            create_unix_datagram_endpoint(&lp, DgramRecorder::factory(&rlog), Some(&rpath), None)
                .await
                .unwrap();
        let slog = DLog::default();
        // Connected, without a local path.
        let (tx, _sp) =
            create_unix_datagram_endpoint(&lp, DgramRecorder::factory(&slog), None, Some(&rpath))
                .await
                .unwrap();
        assert_eq!(tx.sockname(), Some(Address::UnixUnnamed));
        tx.sendto(b"from nobody", None).unwrap();
        // Unconnected and unbound, with an explicit destination.
        let ulog = DLog::default();
        let (unbound, _up) =
            create_unix_datagram_endpoint(&lp, DgramRecorder::factory(&ulog), None, None)
                .await
                .unwrap();
        match unbound.sendto(b"x", None) {
            Err(Error::InvalidArgument(_)) => {}
            other => panic!("expected InvalidArgument without an address, got {other:?}"),
        }
        let inet = "127.0.0.1:9".parse().unwrap();
        assert!(matches!(
            unbound.sendto(b"x", Some(Address::Inet(inet))),
            Err(Error::InvalidArgument(_))
        ));
        unbound
            .sendto(b"addressed", Some(Address::UnixPath(rpath.clone())))
            .unwrap();
        until(&lp, || rlog.datagrams().len() == 2).await;
        assert_eq!(
            rlog.datagrams(),
            vec![b"from nobody".to_vec(), b"addressed".to_vec()]
        );
        assert_eq!(rlog.senders(), vec![Address::UnixUnnamed; 2]);
        tx.close();
        rx.close();
        unbound.close();
        until(&lp, || {
            slog.lost().len() == 1 && rlog.lost().len() == 1 && ulog.lost().len() == 1
        })
        .await;
    });
    drop(dir);
    fx.finish();
}

#[cfg(target_os = "linux")]
#[test]
fn spec_5_6_abstract_addresses() {
    let fx = Fixture::new();
    let rpath = abstract_path("abstract-recv");
    let spath = abstract_path("abstract-send");
    let lp = fx.lp.clone();
    fx.run(async move {
        let rlog = DLog::default();
        let (rx, _rp) = create_unix_datagram_endpoint(
            &lp,
            DgramRecorder::echo_factory(&rlog),
            Some(&rpath),
            None,
        )
        .await
        .unwrap();
        assert_eq!(rx.sockname(), Some(abstract_address(&rpath)));
        let slog = DLog::default();
        let (tx, _sp) = create_unix_datagram_endpoint(
            &lp,
            DgramRecorder::factory(&slog),
            Some(&spath),
            Some(&rpath),
        )
        .await
        .unwrap();
        assert_eq!(tx.peername(), Some(abstract_address(&rpath)));
        tx.sendto(b"abstract", None).unwrap();
        until(&lp, || slog.datagrams().len() == 1).await;
        assert_eq!(rlog.senders(), vec![abstract_address(&spath)]);
        assert_eq!(slog.senders(), vec![abstract_address(&rpath)]);
        // An unbound endpoint can address an abstract name too.
        let ulog = DLog::default();
        let (unbound, _up) =
            create_unix_datagram_endpoint(&lp, DgramRecorder::factory(&ulog), None, None)
                .await
                .unwrap();
        unbound
            .sendto(b"to abstract", Some(abstract_address(&rpath)))
            .unwrap();
        until(&lp, || rlog.datagrams().len() == 2).await;
        assert_eq!(rlog.senders()[1], Address::UnixUnnamed);
        tx.close();
        rx.close();
        unbound.close();
        until(&lp, || {
            slog.lost().len() == 1 && rlog.lost().len() == 1 && ulog.lost().len() == 1
        })
        .await;
    });
    fx.finish();
}

#[test]
fn spec_5_6_stale_socket_file_removed_other_files_kept() {
    let fx = Fixture::new();
    // Scratch files and sockets after the fixture, which serialises the
    // tests and counts fds.
    let dir = ScratchDir::new("stale");
    let (stale, regular) = (dir.path("stale.sock"), dir.path("regular"));
    let missing = dir.path("missing.sock");
    // A socket file left behind by a socket that is gone.
    drop(UnixDatagram::bind(&stale).unwrap());
    assert!(stale.exists());
    std::fs::write(&regular, b"keep me").unwrap();
    let lp = fx.lp.clone();
    fx.run(async move {
        let log = DLog::default();
        let (t, _p) =
            create_unix_datagram_endpoint(&lp, DgramRecorder::factory(&log), Some(&stale), None)
                .await
                .expect("a stale socket file is replaced");
        let refused =
            create_unix_datagram_endpoint(&lp, DgramRecorder::factory(&log), Some(&regular), None)
                .await;
        match refused {
            Err(Error::Io(e)) => assert_eq!(e.kind(), io::ErrorKind::AddrInUse),
            other => panic!("expected EADDRINUSE for a regular file, got {other:?}"),
        }
        assert_eq!(std::fs::read(&regular).unwrap(), b"keep me");
        // Connecting to nobody keeps its errno.
        let refused =
            create_unix_datagram_endpoint(&lp, DgramRecorder::factory(&log), None, Some(&missing))
                .await;
        match refused {
            Err(Error::Io(e)) => assert_eq!(e.kind(), io::ErrorKind::NotFound),
            other => panic!("expected ENOENT, got {other:?}"),
        }
        t.close();
        until(&lp, || log.lost().len() == 1).await;
    });
    drop(dir);
    fx.finish();
}
