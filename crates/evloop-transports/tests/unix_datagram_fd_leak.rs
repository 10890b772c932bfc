//! No fd leaks from unix datagram endpoints (docs/behaviour.md 5.6, 7.2): `/proc/self/fd`
//! is counted around many create/close cycles with filesystem and abstract
//! addresses, and around failed creations.

mod support;

use evloop_transports::create_unix_datagram_endpoint;
use support::datagram::{abstract_path, DLog, DgramRecorder, ScratchDir};
use support::{fd_count, until, Fixture};

#[test]
fn spec_5_6_no_fd_leak_over_create_close_cycles() {
    let fx = Fixture::new();
    // Scratch files and sockets after the fixture, which serialises the
    // tests and counts fds.
    // (moved into the run, so removed before the final fd count).
    let dir = ScratchDir::new("fd-leak");
    let lp = fx.lp.clone();
    fx.run(async move {
        let before = fd_count();
        for round in 0..30 {
            let rpath = if round % 2 == 0 {
                dir.path("rx.sock")
            } else {
                abstract_path(&format!("fd-leak-{round}"))
            };
            let rlog = DLog::default();
            let (rx, _rp) = create_unix_datagram_endpoint(
                &lp,
                DgramRecorder::echo_factory(&rlog),
                Some(&rpath),
                None,
            )
            .await
            .unwrap();
            let slog = DLog::default();
            let spath = dir.path("tx.sock");
            let (tx, _sp) = create_unix_datagram_endpoint(
                &lp,
                DgramRecorder::factory(&slog),
                Some(&spath),
                Some(&rpath),
            )
            .await
            .unwrap();
            tx.sendto(b"ping", None).unwrap();
            until(&lp, || slog.datagrams().len() == 1).await;
            tx.close();
            rx.abort();
            until(&lp, || slog.lost().len() == 1 && rlog.lost().len() == 1).await;
            // A failed connect closes its socket.
            let missing = dir.path("missing.sock");
            let failed = create_unix_datagram_endpoint(
                &lp,
                DgramRecorder::factory(&DLog::default()),
                None,
                Some(&missing),
            )
            .await;
            assert!(failed.is_err());
            assert_eq!(fd_count(), before, "fd leaked in round {round}");
        }
    });
    fx.finish();
}
