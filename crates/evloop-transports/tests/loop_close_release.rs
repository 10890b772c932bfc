//! Transports, servers and datagram endpoints still open when their loop
//! closes are released then: every fd they own is closed, although their
//! protocols hold them in a cycle.

mod support;

use std::net::TcpStream;

use evloop_core::EventLoop;
use evloop_transports::{
    create_connection, create_datagram_endpoint, create_server, ConnectOptions, DatagramOptions,
    DatagramProtocol, DatagramTransport, ServerOptions,
};
use support::{fd_count, serial, Echo};

#[derive(Default)]
struct HoldsEndpoint(Option<DatagramTransport>);

impl DatagramProtocol for HoldsEndpoint {
    fn connection_made(&mut self, transport: DatagramTransport) {
        self.0 = Some(transport);
    }
}

#[test]
fn closing_the_loop_releases_what_is_still_open() {
    let _serial = serial();
    let before = fd_count();
    let lp = EventLoop::new().unwrap();
    let options = ServerOptions::default().host(["127.0.0.1"]);
    let server = lp
        .run_until_complete(create_server(&lp, Echo::default, options))
        .unwrap()
        .unwrap();
    let port = server.sockets()[0].as_inet().unwrap().port();
    // A client transport whose protocol keeps it (the cycle), and the
    // server side of that connection.
    let connect = create_connection(
        &lp,
        Echo::default,
        Some("127.0.0.1"),
        Some(port),
        ConnectOptions::default(),
    );
    let (client, _protocol) = lp.run_until_complete(connect).unwrap().unwrap();
    let udp = DatagramOptions::default().local_addr("127.0.0.1", 0);
    let (endpoint, _) = lp
        .run_until_complete(create_datagram_endpoint(&lp, HoldsEndpoint::default, udp))
        .unwrap()
        .unwrap();
    // Let the server accept its side.
    let stopper = lp.clone();
    lp.call_later(std::time::Duration::from_millis(50), move || stopper.stop())
        .unwrap();
    lp.run_forever().unwrap();
    assert!(
        fd_count() >= before + 5,
        "listener, two connection ends, endpoint, loop fds"
    );
    drop((client, endpoint, server));
    lp.close().unwrap();
    drop(lp);
    assert_eq!(fd_count(), before, "fds left open after the loop closed");
    // The listener is gone: nobody accepts on its port any more.
    assert!(TcpStream::connect(("127.0.0.1", port)).is_err());
}
