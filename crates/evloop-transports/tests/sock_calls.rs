//! docs/behaviour.md 9.1: the sock_* futures (`sock_recv`, `sock_recv_into`,
//! `sock_sendall`, `sock_connect`, `sock_accept`, `sock_sendto`,
//! `sock_recvfrom`): try first, then wait; cancellation removes the watcher
//! without disturbing another waiter on the same fd.
//!
//! Every test runs in [`run`]: one loop with a recording exception handler
//! (which must stay silent), a guard timer that fails a hung test instead of
//! hanging, and an fd count before and after (tests hold a lock so the
//! process-wide count is theirs alone).

mod support;

use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::PathBuf;
use std::rc::Rc;

use evloop_core::{Error, EventLoop};
use evloop_transports::{
    sock_accept, sock_connect, sock_recv, sock_recv_into, sock_recvfrom, sock_sendall, sock_sendto,
    Address,
};
use futures_lite::future::{poll_once, zip};
use rustix::net::{AddressFamily, SocketAddrUnix, SocketFlags, SocketType};

use support::run_on_fresh_loop as run;

const NB: SocketFlags = SocketFlags::NONBLOCK.union(SocketFlags::CLOEXEC);

fn stream_pair() -> (OwnedFd, OwnedFd) {
    rustix::net::socketpair(AddressFamily::UNIX, SocketType::STREAM, NB, None).expect("socketpair")
}

fn tcp_listener() -> (OwnedFd, SocketAddr) {
    let sock = rustix::net::socket_with(AddressFamily::INET, SocketType::STREAM, NB, None)
        .expect("socket");
    rustix::net::bind(&sock, &SocketAddr::from((Ipv4Addr::LOCALHOST, 0))).expect("bind");
    rustix::net::listen(&sock, 16).expect("listen");
    let addr = local_inet(&sock);
    (sock, addr)
}

fn local_inet(sock: &impl AsFd) -> SocketAddr {
    SocketAddr::try_from(rustix::net::getsockname(sock).expect("getsockname")).expect("inet")
}

fn tcp_socket() -> OwnedFd {
    rustix::net::socket_with(AddressFamily::INET, SocketType::STREAM, NB, None).expect("socket")
}

fn udp_socket() -> (OwnedFd, SocketAddr) {
    let sock =
        rustix::net::socket_with(AddressFamily::INET, SocketType::DGRAM, NB, None).expect("socket");
    rustix::net::bind(&sock, &SocketAddr::from((Ipv4Addr::LOCALHOST, 0))).expect("bind");
    let addr = local_inet(&sock);
    (sock, addr)
}

/// True if the loop still has a reader on `fd` (removing it as it checks).
fn has_reader(lp: &EventLoop, fd: &impl AsFd) -> bool {
    lp.remove_reader(fd)
}

fn has_writer(lp: &EventLoop, fd: &impl AsFd) -> bool {
    lp.remove_writer(fd)
}

/// Completes after the callbacks (and task steps) queued so far have run.
async fn tick(lp: &EventLoop) {
    let done = lp.create_future::<()>();
    let setter = done.clone();
    lp.call_soon(move || {
        let _ = setter.set_result(());
    })
    .expect("call_soon");
    done.await.expect("tick");
}

fn errno_of(result: Result<impl std::fmt::Debug, Error>) -> Option<i32> {
    match result {
        Err(Error::Io(e)) => e.raw_os_error(),
        other => panic!("expected an OS error, got {other:?}"),
    }
}

#[test]
fn spec_9_1_sock_recv_tries_first_then_waits() {
    run(|lp| async move {
        let (a, b) = stream_pair();
        // Data already there: the first try succeeds, no watcher is left.
        rustix::net::send(&a, b"ready", rustix::net::SendFlags::empty()).expect("send");
        assert_eq!(sock_recv(&lp, &b, 100).await.expect("recv"), b"ready");
        assert!(!has_reader(&lp, &b));
        // Nothing there: the future waits on a reader until data comes.
        let mut pending = Box::pin(sock_recv(&lp, &b, 100));
        assert!(poll_once(&mut pending).await.is_none());
        sock_sendall(&lp, &a, b"later").await.expect("sendall");
        assert_eq!(pending.await.expect("recv"), b"later");
        assert!(!has_reader(&lp, &b));
        // n == 0 reads nothing, at once.
        assert_eq!(sock_recv(&lp, &b, 0).await.expect("recv 0"), b"");
        // The peer gone: an empty read.
        drop(a);
        assert_eq!(sock_recv(&lp, &b, 100).await.expect("eof"), b"");
    });
}

#[test]
fn spec_9_1_sock_recv_into_fills_the_buffer() {
    run(|lp| async move {
        let (a, b) = stream_pair();
        let mut buf = [0u8; 8];
        let receiving = sock_recv_into(&lp, &b, &mut buf);
        let sending = async {
            sock_sendall(&lp, &a, b"abcdefghij").await.expect("sendall");
        };
        let (got, ()) = zip(receiving, sending).await;
        assert_eq!(got.expect("recv_into"), 8);
        assert_eq!(&buf, b"abcdefgh");
        let mut rest = [0u8; 8];
        assert_eq!(sock_recv_into(&lp, &b, &mut rest).await.expect("rest"), 2);
        assert_eq!(&rest[..2], b"ij");
    });
}

#[test]
fn spec_9_1_sock_sendall_sends_huge_content_in_parts() {
    run(|lp| async move {
        const TOTAL: usize = 4 << 20;
        let (a, b) = stream_pair();
        let payload: Vec<u8> = (0..TOTAL).map(|i| (i % 253) as u8).collect();
        let sending = sock_sendall(&lp, &a, &payload);
        let receiving = async {
            let mut got = Vec::with_capacity(TOTAL);
            let mut chunk = vec![0u8; 64 * 1024];
            while got.len() < TOTAL {
                let n = sock_recv_into(&lp, &b, &mut chunk)
                    .await
                    .expect("recv_into");
                assert!(n > 0, "early EOF");
                got.extend_from_slice(&chunk[..n]);
            }
            got
        };
        let (sent, got) = zip(sending, receiving).await;
        sent.expect("sendall");
        assert!(got == payload, "data differs");
        assert!(!has_writer(&lp, &a));
        assert!(!has_reader(&lp, &b));
    });
}

#[test]
fn spec_9_1_sock_connect_and_sock_accept_over_tcp() {
    run(|lp| async move {
        let (listener, addr) = tcp_listener();
        let client = tcp_socket();
        let (connected, accepted) = zip(
            sock_connect(&lp, &client, Address::Inet(addr)),
            sock_accept(&lp, &listener),
        )
        .await;
        connected.expect("connect");
        let (conn, peer) = accepted.expect("accept");
        assert_eq!(peer, Some(Address::Inet(local_inet(&client))));
        // The accepted socket is non-blocking and close-on-exec.
        assert!(rustix::fs::fcntl_getfl(&conn)
            .expect("getfl")
            .contains(rustix::fs::OFlags::NONBLOCK));
        assert!(rustix::io::fcntl_getfd(&conn)
            .expect("getfd")
            .contains(rustix::io::FdFlags::CLOEXEC));
        sock_sendall(&lp, &client, b"hi").await.expect("send");
        assert_eq!(sock_recv(&lp, &conn, 10).await.expect("recv"), b"hi");
        assert!(!has_reader(&lp, &listener));
        assert!(!has_writer(&lp, &client));
    });
}

#[test]
fn spec_9_1_sock_connect_refused_keeps_the_errno() {
    run(|lp| async move {
        let addr = {
            let (listener, addr) = tcp_listener();
            drop(listener);
            addr
        };
        let client = tcp_socket();
        let result = sock_connect(&lp, &client, Address::Inet(addr)).await;
        assert_eq!(
            errno_of(result),
            Some(rustix::io::Errno::CONNREFUSED.raw_os_error())
        );
        assert!(!has_writer(&lp, &client));
    });
}

/// A fresh temporary directory, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("evloop-{tag}-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&path).expect("temp dir");
        TempDir(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn spec_9_1_sock_connect_and_accept_over_a_unix_path() {
    run(|lp| async move {
        let dir = TempDir::new("sock");
        let path = dir.0.join("s");
        let listener = rustix::net::socket_with(AddressFamily::UNIX, SocketType::STREAM, NB, None)
            .expect("socket");
        rustix::net::bind(
            &listener,
            &SocketAddrUnix::new(path.as_path()).expect("addr"),
        )
        .expect("bind");
        rustix::net::listen(&listener, 4).expect("listen");
        let client = rustix::net::socket_with(AddressFamily::UNIX, SocketType::STREAM, NB, None)
            .expect("socket");
        let (connected, accepted) = zip(
            sock_connect(&lp, &client, Address::UnixPath(path.clone())),
            sock_accept(&lp, &listener),
        )
        .await;
        connected.expect("connect");
        let (conn, peer) = accepted.expect("accept");
        assert_eq!(peer, Some(Address::UnixUnnamed));
        sock_sendall(&lp, &conn, b"unix").await.expect("send");
        assert_eq!(sock_recv(&lp, &client, 10).await.expect("recv"), b"unix");
        // A missing path fails with its errno, an unnamed address is refused.
        let other = rustix::net::socket_with(AddressFamily::UNIX, SocketType::STREAM, NB, None)
            .expect("socket");
        let missing = sock_connect(&lp, &other, Address::UnixPath(dir.0.join("nope"))).await;
        assert_eq!(
            errno_of(missing),
            Some(rustix::io::Errno::NOENT.raw_os_error())
        );
        assert!(matches!(
            sock_connect(&lp, &other, Address::UnixUnnamed).await,
            Err(Error::InvalidArgument(_))
        ));
    });
}

#[test]
fn spec_9_1_sock_sendto_and_sock_recvfrom_over_udp() {
    run(|lp| async move {
        let (a, a_addr) = udp_socket();
        let (b, b_addr) = udp_socket();
        let receiving = sock_recvfrom(&lp, &b, 100);
        let sending = sock_sendto(&lp, &a, b"datagram", Address::Inet(b_addr));
        let (received, sent) = zip(receiving, sending).await;
        assert_eq!(sent.expect("sendto"), 8);
        let (data, from) = received.expect("recvfrom");
        assert_eq!(data, b"datagram");
        assert_eq!(from, Some(Address::Inet(a_addr)));
        // A short buffer takes the head of the datagram; the rest is dropped.
        sock_sendto(&lp, &b, b"0123456789", Address::Inet(a_addr))
            .await
            .expect("sendto");
        let (head, from) = sock_recvfrom(&lp, &a, 4).await.expect("recvfrom");
        assert_eq!(
            (head.as_slice(), from),
            (&b"0123"[..], Some(Address::Inet(b_addr)))
        );
    });
}

#[test]
fn spec_9_1_blocking_sockets_are_rejected() {
    run(|lp| async move {
        let (a, _b) = rustix::net::socketpair(
            AddressFamily::UNIX,
            SocketType::STREAM,
            SocketFlags::CLOEXEC,
            None,
        )
        .expect("socketpair");
        let message = "the socket must be non-blocking";
        for result in [
            sock_recv(&lp, &a, 1).await.map(drop),
            sock_sendall(&lp, &a, b"x").await,
            sock_accept(&lp, &a).await.map(drop),
        ] {
            match result {
                Err(Error::InvalidArgument(m)) => assert_eq!(m, message),
                other => panic!("blocking socket accepted: {other:?}"),
            }
        }
    });
}

#[test]
fn spec_9_1_an_fd_owned_by_a_transport_is_in_use() {
    run(|lp| async move {
        let (_a, b) = stream_pair();
        let claim = lp.claim_fd(&b).expect("claim");
        match sock_recv(&lp, &b, 10).await {
            Err(Error::FdInUse(fd)) => assert_eq!(fd, b.as_raw_fd()),
            other => panic!("claimed fd watched: {other:?}"),
        }
        drop(claim);
        // Released, the fd can be waited on again.
        let mut pending = Box::pin(sock_recv(&lp, &b, 10));
        assert!(poll_once(&mut pending).await.is_none());
    });
}

#[test]
fn spec_9_1_cancelling_one_waiter_leaves_the_other_working() {
    run(|lp| async move {
        let (a, b) = stream_pair();
        let b = Rc::new(b);
        // The second waiter is a task: only the fd watcher can wake it.
        let (task_lp, task_b) = (lp.clone(), b.clone());
        let second = lp
            .create_task(async move { sock_recv(&task_lp, &*task_b, 10).await })
            .expect("task");
        let mut first = Box::pin(sock_recv(&lp, &*b, 10));
        assert!(poll_once(&mut first).await.is_none());
        tick(&lp).await;
        assert!(!second.done());
        // Cancel the first waiter (dropping is cancelling).
        drop(first);
        tick(&lp).await;
        rustix::net::send(&a, b"for you", rustix::net::SendFlags::empty()).expect("send");
        assert_eq!(
            second.await.expect("task").expect("second recv"),
            b"for you"
        );
        // Both gone: no watcher is left behind.
        assert!(!has_reader(&lp, &*b));
    });
}

#[test]
fn spec_9_1_cancelling_the_last_waiter_removes_the_watcher() {
    run(|lp| async move {
        let (listener, addr) = tcp_listener();
        let mut accepting = Box::pin(sock_accept(&lp, &listener));
        assert!(poll_once(&mut accepting).await.is_none());
        drop(accepting);
        assert!(
            !has_reader(&lp, &listener),
            "cancelled sock_accept left its reader"
        );
        // A later accept on the same fd works.
        let client = tcp_socket();
        let (connected, accepted) = zip(
            sock_connect(&lp, &client, Address::Inet(addr)),
            sock_accept(&lp, &listener),
        )
        .await;
        connected.expect("connect");
        accepted.expect("accept");

        // The same for a writer: fill the socket, cancel a pending sendall.
        let (a, _b) = stream_pair();
        let big = vec![0u8; 8 << 20];
        let mut sending = Box::pin(sock_sendall(&lp, &a, &big));
        assert!(poll_once(&mut sending).await.is_none());
        drop(sending);
        assert!(
            !has_writer(&lp, &a),
            "cancelled sock_sendall left its writer"
        );
    });
}

#[test]
fn spec_9_1_concurrent_waiters_on_one_fd_all_complete() {
    run(|lp| async move {
        let (a, b) = stream_pair();
        let task_lp = lp.clone();
        let b = Rc::new(b);
        let spawn = |n| {
            let (lp, b) = (task_lp.clone(), b.clone());
            task_lp
                .create_task(async move { sock_recv(&lp, &*b, n).await })
                .expect("task")
        };
        let (one, two, three) = (spawn(1), spawn(1), spawn(1));
        // A task cancelled while it waits does not disturb the others.
        let doomed = spawn(1);
        tick(&lp).await; // every task is now waiting on `b`
        assert!(!doomed.done());
        doomed.cancel();
        assert!(matches!(doomed.await, Err(Error::Cancelled(_))));
        sock_sendall(&lp, &a, b"xyz").await.expect("send");
        let mut got: Vec<u8> = Vec::new();
        for task in [one, two, three] {
            got.extend(task.await.expect("task").expect("recv"));
        }
        got.sort_unstable();
        assert_eq!(got, b"xyz");
        assert!(!has_reader(&lp, &*b));
    });
}

#[test]
fn spec_9_1_errors_keep_their_errno() {
    run(|lp| async move {
        let (a, b) = stream_pair();
        drop(b);
        let result = sock_sendall(&lp, &a, b"nobody listens").await;
        assert_eq!(
            errno_of(result),
            Some(rustix::io::Errno::PIPE.raw_os_error())
        );
        let error = sock_sendall(&lp, &a, b"again")
            .await
            .expect_err("still broken");
        assert_eq!(error.io_kind(), Some(io::ErrorKind::BrokenPipe));
        // recv on a listening socket that is not connected: ENOTCONN.
        let (listener, _) = tcp_listener();
        let result = sock_recv(&lp, &listener, 1).await;
        assert_eq!(
            errno_of(result),
            Some(rustix::io::Errno::NOTCONN.raw_os_error())
        );
    });
}
