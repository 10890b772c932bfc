//! docs/behaviour.md 10.1: `getaddrinfo`/`getnameinfo` run on the executor; numeric hosts
//! resolve inline, without the resolver or a thread hop.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use evloop::layers::executor::{Job, ShutDown};
use evloop::{AddrInfo, AddrInfoHints, Error, Executor, ExecutorFuture, Family, ThreadPool};
use evloop_conformance::{executor_threads, new_executor_threads, Fixture};
use futures_lite::future::{block_on, poll_once};

/// Polls `fut` exactly once: `Some` if it was ready at the first poll.
fn first_poll<T>(fut: &mut ExecutorFuture<T>) -> Option<Result<T, Error>> {
    block_on(poll_once(fut))
}

/// A default pool that records the name of the thread each job runs on.
#[derive(Debug)]
struct Recording {
    pool: ThreadPool,
    jobs: AtomicUsize,
    threads: Arc<Mutex<Vec<String>>>,
}

impl Recording {
    fn new() -> Arc<Recording> {
        Arc::new(Recording {
            pool: ThreadPool::new(),
            jobs: AtomicUsize::new(0),
            threads: Arc::new(Mutex::new(Vec::new())),
        })
    }

    fn jobs(&self) -> usize {
        self.jobs.load(Ordering::SeqCst)
    }

    /// Joins the workers, so none still holds the loop's waker when the
    /// fixture counts fds.
    fn join(&self) {
        self.pool.shutdown(true);
    }
}

/// Shuts the loop's default pool down and waits (off the loop) until its
/// threads exited. A worker drops the loop's waker only after it delivered
/// the result, and (see the lead's bug report: `close()` leaves the reactor
/// fds open while any waker lives) the fixture's fd count would race with it.
fn join_default_pool(lp: &evloop::EventLoop) {
    block_on(lp.shutdown_default_executor(None)).expect("shutdown_default_executor");
}

impl Executor for Recording {
    fn execute(&self, job: Job) -> Result<(), ShutDown> {
        self.jobs.fetch_add(1, Ordering::SeqCst);
        let threads = self.threads.clone();
        self.pool.execute(Box::new(move || {
            let name = std::thread::current().name().unwrap_or("").to_owned();
            threads.lock().expect("lock").push(name);
            job();
        }))
    }

    fn shutdown(&self, wait: bool) {
        self.pool.shutdown(wait);
    }

    fn is_shutdown(&self) -> bool {
        self.pool.is_shutdown()
    }
}

fn stream() -> AddrInfoHints {
    AddrInfoHints::default().socktype(libc::SOCK_STREAM)
}

#[test]
fn spec_10_1_numeric_host_resolves_inline() {
    let fx = Fixture::new();
    let lp = &fx.lp;
    let before = executor_threads();
    let mut v4 = lp.getaddrinfo(Some("127.0.0.1"), Some("8080"), stream());
    let found = first_poll(&mut v4).expect("a numeric host is ready at the first poll");
    assert_eq!(
        found.expect("numeric lookup"),
        [AddrInfo {
            family: Family::Inet,
            socktype: libc::SOCK_STREAM,
            protocol: libc::IPPROTO_TCP,
            canonname: None,
            addr: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 8080),
        }]
    );
    let dgram = AddrInfoHints::default().socktype(libc::SOCK_DGRAM);
    let mut v6 = lp.getaddrinfo(Some("::1"), Some("53"), dgram);
    let found = first_poll(&mut v6).expect("a numeric IPv6 host is ready at the first poll");
    assert_eq!(
        found.expect("numeric lookup"),
        [AddrInfo {
            family: Family::Inet6,
            socktype: libc::SOCK_DGRAM,
            protocol: libc::IPPROTO_UDP,
            canonname: None,
            addr: SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), 53),
        }]
    );
    assert_eq!(
        new_executor_threads(&before),
        0,
        "a numeric lookup must not start an executor thread"
    );
    fx.finish();
}

#[test]
fn spec_10_1_numeric_host_does_not_touch_the_executor() {
    let fx = Fixture::new();
    let lp = &fx.lp;
    let pool = Recording::new();
    lp.set_default_executor(pool.clone())
        .expect("set_default_executor");
    let mut fut = lp.getaddrinfo(Some("10.1.2.3"), Some("443"), stream());
    let found = first_poll(&mut fut).expect("ready at the first poll");
    let found = found.expect("numeric lookup");
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].addr, "10.1.2.3:443".parse().expect("addr"));
    assert_eq!(pool.jobs(), 0, "no job for a numeric host");
    pool.join();
    fx.finish();
}

#[test]
fn spec_10_1_localhost_resolves_on_the_executor() {
    let fx = Fixture::new();
    let lp = &fx.lp;
    let pool = Recording::new();
    lp.set_default_executor(pool.clone())
        .expect("set_default_executor");
    let fut = lp.getaddrinfo(Some("localhost"), Some("80"), stream());
    let found = lp
        .run_until_complete(fut)
        .expect("run_until_complete")
        .expect("localhost resolves");
    assert!(!found.is_empty());
    for info in &found {
        assert!(info.addr.ip().is_loopback(), "{info:?}");
        assert_eq!(info.addr.port(), 80);
        assert_eq!(info.socktype, libc::SOCK_STREAM);
    }
    assert_eq!(pool.jobs(), 1, "the lookup ran as one executor job");
    assert_eq!(
        *pool.threads.lock().expect("lock"),
        ["evloop-executor-0"],
        "the lookup ran on the pool's first named thread"
    );
    pool.join();
    fx.finish();
}

#[test]
fn spec_10_1_localhost_starts_the_default_pool() {
    let fx = Fixture::new();
    let lp = &fx.lp;
    let before = executor_threads();
    let fut = lp.getaddrinfo(Some("localhost"), None, stream());
    let found = lp
        .run_until_complete(fut)
        .expect("run_until_complete")
        .expect("localhost resolves");
    assert!(
        found.iter().all(|info| info.addr.ip().is_loopback()),
        "{found:?}"
    );
    // The pool keeps an idle worker for a while: it is still there.
    assert!(
        new_executor_threads(&before) >= 1,
        "a thread named evloop-executor-N appeared for the lookup"
    );
    join_default_pool(lp);
    fx.finish();
}

#[test]
fn spec_10_1_no_host_and_no_service_is_invalid_argument() {
    let fx = Fixture::new();
    let lp = &fx.lp;
    let mut fut = lp.getaddrinfo(None, None, AddrInfoHints::default());
    let result = first_poll(&mut fut).expect("ready at the first poll");
    assert!(
        matches!(result, Err(Error::InvalidArgument(_))),
        "{result:?}"
    );
    fx.finish();
}

#[test]
fn spec_10_1_unresolvable_name_is_io_error() {
    let fx = Fixture::new();
    let lp = &fx.lp;
    let pool = Recording::new();
    lp.set_default_executor(pool.clone())
        .expect("set_default_executor");
    let fut = lp.getaddrinfo(Some("nonexistent.invalid"), Some("80"), stream());
    let result = lp.run_until_complete(fut).expect("run_until_complete");
    assert!(matches!(result, Err(Error::Io(_))), "{result:?}");
    assert_eq!(pool.jobs(), 1, "the failed lookup ran on the executor");
    pool.join();
    fx.finish();
}

#[test]
fn spec_10_1_getnameinfo_numeric() {
    let fx = Fixture::new();
    let lp = &fx.lp;
    let pool = Recording::new();
    lp.set_default_executor(pool.clone())
        .expect("set_default_executor");
    let flags = libc::NI_NUMERICHOST | libc::NI_NUMERICSERV;
    let v4 = lp.getnameinfo("127.0.0.1:80".parse().expect("addr"), flags);
    let info = lp
        .run_until_complete(v4)
        .expect("run_until_complete")
        .expect("getnameinfo result");
    assert_eq!(
        (info.host.as_str(), info.service.as_str()),
        ("127.0.0.1", "80")
    );
    let v6 = lp.getnameinfo("[::1]:443".parse().expect("addr"), flags);
    let info = lp
        .run_until_complete(v6)
        .expect("run_until_complete")
        .expect("getnameinfo result");
    assert_eq!((info.host.as_str(), info.service.as_str()), ("::1", "443"));
    pool.join();
    fx.finish();
}

#[test]
fn spec_10_1_getnameinfo_runs_on_the_executor() {
    let fx = Fixture::new();
    let lp = &fx.lp;
    let pool = Recording::new();
    lp.set_default_executor(pool.clone())
        .expect("set_default_executor");
    let flags = libc::NI_NUMERICHOST | libc::NI_NUMERICSERV;
    let fut = lp.getnameinfo("127.0.0.1:8080".parse().expect("addr"), flags);
    let info = lp
        .run_until_complete(fut)
        .expect("run_until_complete")
        .expect("getnameinfo result");
    assert_eq!(info.service, "8080");
    assert_eq!(pool.jobs(), 1);
    pool.join();
    fx.finish();
}

#[test]
fn spec_10_1_after_close_is_closed() {
    let fx = Fixture::new();
    let lp = &fx.lp;
    lp.close().expect("close");
    let numeric = block_on(lp.getaddrinfo(Some("127.0.0.1"), Some("80"), stream()));
    assert!(matches!(numeric, Err(Error::Closed)), "{numeric:?}");
    let name = block_on(lp.getaddrinfo(Some("localhost"), Some("80"), stream()));
    assert!(matches!(name, Err(Error::Closed)), "{name:?}");
    let reverse = block_on(lp.getnameinfo("127.0.0.1:80".parse().expect("addr"), 0));
    assert!(matches!(reverse, Err(Error::Closed)), "{reverse:?}");
    fx.finish();
}
