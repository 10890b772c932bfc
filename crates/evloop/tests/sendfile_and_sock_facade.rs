//! The facade's sendfile, sock_* additions and shutdown_default_executor
//! with a timeout: docs/behaviour.md 19.1, 9.1, 13.1.

use std::io::{Read, Seek};
use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use evloop::{Error, EventLoop, Protocol, SendfileNotAvailable};

struct Quiet;
impl Protocol for Quiet {}

#[test]
fn spec_19_1_facade_sendfile_and_sock_sendfile() {
    let path = std::env::temp_dir().join(format!("evloop-facade-sendfile-{}", std::process::id()));
    let data: Vec<u8> = (0..300_000u32).map(|i| (i % 253) as u8).collect();
    std::fs::write(&path, &data).expect("write");
    let mut file = std::fs::File::open(&path).expect("open");
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().unwrap().port();
    let receiver = std::thread::spawn(move || {
        let mut all = Vec::new();
        for _ in 0..2 {
            let mut got = Vec::new();
            listener.accept().unwrap().0.read_to_end(&mut got).unwrap();
            all.push(got);
        }
        all
    });
    let lp = EventLoop::new().expect("loop");
    let sent = lp
        .run_until_complete(async {
            let (transport, _) = lp
                .create_connection(|| Quiet, Some("127.0.0.1"), Some(port), Default::default())
                .await?;
            let sent = lp.sendfile(&transport, &file, 100, None, false).await?;
            transport.close();
            Ok::<u64, Error>(sent)
        })
        .expect("run")
        .expect("sendfile");
    assert_eq!(sent, 300_000 - 100);
    assert_eq!(file.stream_position().unwrap(), 300_000);
    // sock_sendfile on a socket connected with a host name (the facade's resolver).
    let sock = rustix::net::socket_with(
        rustix::net::AddressFamily::INET,
        rustix::net::SocketType::STREAM,
        rustix::net::SocketFlags::NONBLOCK | rustix::net::SocketFlags::CLOEXEC,
        None,
    )
    .expect("socket");
    let sent = lp
        .run_until_complete(async {
            lp.sock_connect(&sock, ("localhost", port)).await?;
            lp.sock_sendfile(&sock, &file, 0, Some(1000), true).await
        })
        .expect("run");
    match sent {
        Ok(sent) => assert_eq!(sent, 1000),
        // "localhost" may resolve to ::1 first on some hosts; the listener is v4.
        Err(error) => panic!("sock_connect(localhost)/sock_sendfile: {error}"),
    }
    drop(sock);
    let got = receiver.join().expect("receiver");
    assert!(got[0] == data[100..]);
    assert!(got[1] == data[..1000]);
    // A not-available error is typed.
    let zero = std::fs::File::open("/dev/zero").unwrap();
    let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
    a.set_nonblocking(true).unwrap();
    let refused = lp
        .run_until_complete(lp.sock_sendfile(&a, &zero, 0, Some(1), false))
        .expect("run");
    assert!(SendfileNotAvailable::find(&refused.expect_err("refused")).is_some());
    lp.close().expect("close");
    std::fs::remove_file(&path).unwrap();
}

#[test]
fn spec_9_1_facade_sock_recvfrom_into() {
    let lp = EventLoop::new().expect("loop");
    let a = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let b = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    b.set_nonblocking(true).unwrap();
    a.send_to(b"dgram", b.local_addr().unwrap()).unwrap();
    let mut buf = [0u8; 8];
    let (n, from) = lp
        .run_until_complete(lp.sock_recvfrom_into(&b, &mut buf))
        .expect("run")
        .expect("recvfrom_into");
    assert_eq!(&buf[..n], b"dgram");
    assert_eq!(
        from.and_then(|f| f.as_inet()),
        Some(a.local_addr().unwrap())
    );
    lp.close().expect("close");
}

/// Collects the messages of `tracing` events on this thread.
struct Capture(Arc<Mutex<Vec<String>>>);

impl tracing::Subscriber for Capture {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        struct Message<'a>(&'a mut String);
        impl tracing::field::Visit for Message<'_> {
            fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
                if field.name() == "message" {
                    *self.0 = format!("{value:?}");
                }
            }
        }
        let mut message = String::new();
        event.record(&mut Message(&mut message));
        self.0
            .lock()
            .unwrap()
            .push(format!("{} {message}", event.metadata().level()));
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

#[test]
fn spec_13_1_shutdown_default_executor_timeout_warns_and_returns() {
    let lp = EventLoop::new().expect("loop");
    let finished = Arc::new(AtomicBool::new(false));
    let f = finished.clone();
    let job = lp.run_in_executor(None, move || {
        std::thread::sleep(Duration::from_millis(1500));
        f.store(true, Ordering::SeqCst);
    });
    let messages = Arc::new(Mutex::new(Vec::new()));
    let start = Instant::now();
    tracing::subscriber::with_default(Capture(messages.clone()), || {
        lp.run_until_complete(lp.shutdown_default_executor(Some(Duration::from_millis(200))))
            .expect("run")
            .expect("shutdown");
    });
    let waited = start.elapsed();
    assert!(
        waited >= Duration::from_millis(200),
        "returned early: {waited:?}"
    );
    assert!(
        waited < Duration::from_millis(1200),
        "did not time out: {waited:?}"
    );
    assert!(
        !finished.load(Ordering::SeqCst),
        "the call is still running"
    );
    let messages = messages.lock().unwrap().clone();
    assert!(
        messages.iter().any(|m| m.starts_with("WARN")
            && m.contains(
                "The executor did not finishing joining its threads within 0.2 seconds."
            )),
        "{messages:?}"
    );
    // The call still finishes and its result still arrives.
    lp.run_until_complete(job).expect("run").expect("job");
    assert!(finished.load(Ordering::SeqCst));
    // Refused afterwards, as asyncio's "Executor shutdown has been called".
    assert!(matches!(
        futures_lite::future::block_on(lp.run_in_executor(None, || ())),
        Err(Error::InvalidState(_))
    ));
    lp.close().expect("close");
}

#[test]
fn spec_13_1_shutdown_default_executor_within_timeout_is_quiet() {
    let lp = EventLoop::new().expect("loop");
    let job = lp.run_in_executor(None, || 7);
    assert_eq!(lp.run_until_complete(job).expect("run").expect("job"), 7);
    let messages = Arc::new(Mutex::new(Vec::new()));
    let start = Instant::now();
    tracing::subscriber::with_default(Capture(messages.clone()), || {
        lp.run_until_complete(lp.shutdown_default_executor(Some(Duration::from_secs(30))))
            .expect("run")
            .expect("shutdown");
    });
    assert!(start.elapsed() < Duration::from_secs(10));
    assert!(messages
        .lock()
        .unwrap()
        .iter()
        .all(|m| !m.contains("did not finishing")));
    // No executor at all: resolves at once.
    let lp2 = EventLoop::new().expect("loop");
    lp2.run_until_complete(lp2.shutdown_default_executor(Some(Duration::ZERO)))
        .expect("run")
        .expect("shutdown");
    lp.close().expect("close");
    lp2.close().expect("close");
}
