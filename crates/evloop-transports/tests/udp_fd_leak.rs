//! No fd leaks from UDP endpoints (docs/behaviour.md 5.5, 7.2): `/proc/self/fd` is
//! counted around many create/close cycles, through every way an endpoint
//! ends (close, abort, failed creation, dropped creation future).

mod support;

use std::net::UdpSocket;

use evloop_transports::{create_datagram_endpoint, DatagramOptions};
use support::datagram::{DLog, DgramRecorder};
use support::{fd_count, until, Fixture};

#[test]
fn spec_5_5_no_fd_leak_over_create_close_cycles() {
    let fx = Fixture::new();
    let lp = fx.lp.clone();
    fx.run(async move {
        let busy = UdpSocket::bind("127.0.0.1:0").unwrap();
        let busy_port = busy.local_addr().unwrap().port();
        let before = fd_count();
        for round in 0..50 {
            let log = DLog::default();
            let (t, _p) = create_datagram_endpoint(
                &lp,
                DgramRecorder::echo_factory(&log),
                DatagramOptions::default().local_addr("127.0.0.1", 0),
            )
            .await
            .unwrap();
            let me = t.sockname().unwrap();
            t.sendto(b"self", Some(me)).unwrap();
            until(&lp, || !log.datagrams().is_empty()).await;
            if round % 2 == 0 {
                t.close();
            } else {
                t.abort();
            }
            until(&lp, || log.lost().len() == 1).await;
            // A failed creation (port taken) closes its socket.
            let failed = create_datagram_endpoint(
                &lp,
                DgramRecorder::factory(&DLog::default()),
                DatagramOptions::default().local_addr("127.0.0.1", busy_port),
            )
            .await;
            assert!(failed.is_err());
            // A dropped creation aborts and closes.
            let dropped_log = DLog::default();
            let mut creating = Box::pin(create_datagram_endpoint(
                &lp,
                DgramRecorder::factory(&dropped_log),
                DatagramOptions::default().remote_addr("127.0.0.1", busy_port),
            ));
            assert!(futures_lite::future::poll_once(creating.as_mut())
                .await
                .is_none());
            drop(creating);
            until(&lp, || dropped_log.lost().len() == 1).await;
            assert_eq!(fd_count(), before, "fd leaked in round {round}");
        }
        drop(busy);
    });
    fx.finish();
}
