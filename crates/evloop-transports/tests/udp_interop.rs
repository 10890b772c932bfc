//! Interop with CPython's asyncio (docs/behaviour.md 5.5): an evloop UDP
//! endpoint talks to a stock asyncio UDP peer (tests/peers/
//! asyncio_udp_peer.py, run with python3): datagrams of many sizes come
//! back whole and in order, and asyncio sees our `sockname` as the sender.
//! Without python3 this test fails, saying so.

mod support;

use evloop_transports::{create_datagram_endpoint, Address, DatagramOptions};
use support::datagram::{asyncio_udp_peer, DLog, DgramRecorder};
use support::{until, Fixture};

#[test]
fn spec_5_5_interop_with_an_asyncio_udp_peer() {
    let (mut child, port) = asyncio_udp_peer();
    let fx = Fixture::new();
    let lp = fx.lp.clone();
    fx.run(async move {
        let log = DLog::default();
        let (t, _p) = create_datagram_endpoint(
            &lp,
            DgramRecorder::factory(&log),
            DatagramOptions::default().remote_addr("127.0.0.1", port),
        )
        .await
        .unwrap();
        let peer = t.peername().and_then(|a| a.as_inet()).unwrap();
        assert_eq!(peer.port(), port);
        t.sendto(b"whoami", None).unwrap();
        until(&lp, || log.datagrams().len() == 1).await;
        let local = t.sockname().and_then(|a| a.as_inet()).unwrap();
        assert_eq!(log.datagrams()[0], local.to_string().into_bytes());
        let payloads: Vec<Vec<u8>> = [1usize, 7, 512, 1500, 8192, 60_000]
            .iter()
            .enumerate()
            .map(|(i, n)| {
                (0..*n)
                    .map(|b| u8::try_from((b + i) % 251).unwrap())
                    .collect()
            })
            .collect();
        for p in &payloads {
            t.sendto(p, None).unwrap();
        }
        until(&lp, || log.datagrams().len() == 1 + payloads.len()).await;
        assert_eq!(log.datagrams()[1..], payloads[..]);
        assert!(log.senders().iter().all(|a| *a == Address::Inet(peer)));
        t.sendto(b"quit", None).unwrap();
        until(&lp, || log.datagrams().len() == 2 + payloads.len()).await;
        assert_eq!(log.datagrams().last().unwrap(), b"bye");
        assert!(log.errors().is_empty());
        t.close();
        until(&lp, || log.lost().len() == 1).await;
    });
    let status = child.wait().expect("wait for the asyncio peer");
    assert!(status.success(), "the asyncio peer failed: {status}");
    fx.finish();
}
