//! One seeded session: its [`Spec`] (kind, fault plans, payload, all from
//! the seed), the watchdog around it, the per-fd close check, and the
//! kinds' drivers (`stream`, `streams`, `pipe`, `process`, `udp`).

mod pipe;
mod process;
mod sock;
mod stream;
mod streams;
mod udp;

use std::cell::RefCell;
use std::fmt;
use std::future::Future;
use std::path::PathBuf;
use std::rc::Rc;
use std::time::Duration;

use evloop_core::EventLoop;
use evloop_tls::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use evloop_tls::{ClientTls, ServerTls};
use evloop_transports::fault::{self, Fault, FaultPlan, FaultRates};

use crate::rng::Rng;
use crate::{Ended, Outcome};

/// A session's kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    /// TCP echo, the client a `Protocol`, half-closing with `write_eof`.
    Tcp,
    /// TCP echo, the client a `BufferedProtocol` with random buffer sizes.
    TcpBuffered,
    /// TCP echo through `StreamReader` / `StreamWriter` on both sides.
    Streams,
    /// TLS echo (evloop-tls) over TCP; the faults hit the TCP fds.
    Tls,
    /// Unix stream socket echo.
    Unix,
    /// TCP echo, the client sending a file with `sendfile` (sendfile(2)
    /// on the transport's fd), then `write_eof`.
    Sendfile,
    /// TCP echo, the client a bare socket driven by `sock_connect`,
    /// `sock_sendall` and `sock_recv`.
    Sock,
    /// A pipe: `connect_write_pipe` to `connect_read_pipe`.
    Pipe,
    /// A `cat` subprocess: its stdin and stdout pipes.
    Subprocess,
    /// UDP datagrams echoed, connected client.
    Udp,
}

const KINDS: [Kind; 10] = [
    Kind::Tcp,
    Kind::TcpBuffered,
    Kind::Streams,
    Kind::Tls,
    Kind::Unix,
    Kind::Sendfile,
    Kind::Sock,
    Kind::Pipe,
    Kind::Subprocess,
    Kind::Udp,
];

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Kind::Tcp => "tcp",
            Kind::TcpBuffered => "tcp-buffered",
            Kind::Streams => "streams",
            Kind::Tls => "tls",
            Kind::Unix => "unix",
            Kind::Sendfile => "sendfile",
            Kind::Sock => "sock",
            Kind::Pipe => "pipe",
            Kind::Subprocess => "subprocess",
            Kind::Udp => "udp",
        })
    }
}

/// What every session shares: the loop, the TLS configurations, a
/// scratch directory for unix sockets, the watchdog.
pub(crate) struct Env {
    pub(crate) lp: EventLoop,
    pub(crate) watchdog: Duration,
    pub(crate) server_tls: ServerTls,
    pub(crate) client_tls: ClientTls,
    pub(crate) dir: PathBuf,
    /// "TLS handshake failed" reports the sessions expect (a server whose
    /// handshake a client's terminal fault cut short).
    pub(crate) expected_handshake_reports: std::cell::Cell<u64>,
}

impl Env {
    pub(crate) fn new(lp: &EventLoop, watchdog: Duration) -> Env {
        let dir = std::env::temp_dir().join(format!("evloop-faults-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("scratch directory");
        let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()])
            .expect("self-signed certificate");
        let chain = vec![CertificateDer::from(cert.cert.der().to_vec())];
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(cert.key_pair.serialize_der()));
        let server_tls = ServerTls::builder_der(chain, key)
            .build()
            .expect("server TLS configuration");
        let client_tls = ClientTls::builder()
            .dangerous_disable_certificate_verification()
            .build()
            .expect("client TLS configuration")
            .server_hostname("localhost");
        Env {
            lp: lp.clone(),
            watchdog,
            server_tls,
            client_tls,
            dir,
            expected_handshake_reports: std::cell::Cell::new(0),
        }
    }

    /// Lets what the last sessions closed finish (a TLS transport closes
    /// its TCP transport a few iterations after its own
    /// `connection_lost`).
    pub(crate) fn settle(&self) -> impl Future<Output = ()> + 'static {
        sleep(&self.lp, Duration::from_millis(50))
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Everything a session's seed decides.
pub(crate) struct Spec {
    pub(crate) seed: u64,
    pub(crate) kind: Kind,
    pub(crate) rng: Rng,
    /// Faults on the client's fd (for pipes: the writer; subprocess: stdin).
    pub(crate) client: Option<FaultPlan>,
    /// Faults on the server's fd (pipes: the reader; subprocess: stdout).
    pub(crate) server: Option<FaultPlan>,
    /// Faults on the listener's accept.
    pub(crate) accept: Option<FaultPlan>,
    /// The client socket is adopted at creation, so its connect sees the
    /// client plan (which then has connect rates).
    pub(crate) adopt: bool,
    pub(crate) payload: Rc<Vec<u8>>,
    pub(crate) chunks: Vec<usize>,
}

impl Spec {
    pub(crate) fn new(seed: u64) -> Spec {
        let mut rng = Rng(seed);
        let kind = KINDS[rng.below(KINDS.len() as u64) as usize];
        let terminal = rng.chance(0.35);
        let plan = |rng: &mut Rng| FaultPlan {
            seed: rng.next(),
            rates: FaultRates {
                eagain: rng.unit() * 0.3,
                eintr: rng.unit() * 0.2,
                short: rng.unit() * 0.4,
                reset: if terminal {
                    0.001 + rng.unit() * 0.05
                } else {
                    0.0
                },
                epipe: if terminal {
                    0.001 + rng.unit() * 0.05
                } else {
                    0.0
                },
                enobufs: rng.unit() * 0.2,
                ..FaultRates::default()
            },
        };
        let (client, server) = match rng.below(10) {
            0 | 1 => (None, None),
            2..=4 => (Some(plan(&mut rng)), None),
            5..=7 => (None, Some(plan(&mut rng))),
            _ => (Some(plan(&mut rng)), Some(plan(&mut rng))),
        };
        let has_listener = matches!(
            kind,
            Kind::Tcp
                | Kind::TcpBuffered
                | Kind::Streams
                | Kind::Tls
                | Kind::Unix
                | Kind::Sendfile
                | Kind::Sock
        );
        let accept = (has_listener && rng.chance(0.25)).then(|| FaultPlan {
            seed: rng.next(),
            rates: FaultRates {
                eagain: 0.3,
                eintr: 0.3,
                aborted: 0.1,
                emfile: 0.05,
                ..FaultRates::default()
            },
        });
        let mut client = client;
        // sock_connect's socket is the test's own: targeted, not adopted.
        let adopt = has_listener && kind != Kind::Sock && rng.chance(0.25);
        if adopt {
            let mut connect = client.unwrap_or_else(|| FaultPlan {
                seed: rng.next(),
                rates: FaultRates::default(),
            });
            connect.rates.eagain = connect.rates.eagain.max(0.3);
            connect.rates.eintr = connect.rates.eintr.max(0.3);
            connect.rates.refused = if terminal { 0.1 } else { 0.0 };
            client = Some(connect);
        }
        let len = match rng.below(4) {
            0 => rng.range(0, 64),
            1 => rng.range(0, 4096),
            2 => rng.range(0, 65536),
            _ => rng.range(0, 262_144),
        };
        let payload = Rc::new(rng.bytes(len));
        let chunks = rng.chunks(len);
        Spec {
            seed,
            kind,
            rng,
            client,
            server,
            accept,
            adopt,
            payload,
            chunks,
        }
    }

    pub(crate) fn faulted(&self) -> bool {
        self.client.is_some() || self.server.is_some() || self.accept.is_some()
    }
}

/// A plan that injects nothing: the fd is a target only so that its
/// close is counted.
pub(crate) fn quiet_plan() -> FaultPlan {
    FaultPlan {
        seed: 0,
        rates: FaultRates::default(),
    }
}

/// Makes `fd` a target (with `plan`, or quietly), unless it is one already
/// (an adopted socket); its token.
pub(crate) fn watch_fd(fd: Option<i32>, plan: Option<&FaultPlan>) -> Option<u64> {
    let fd = fd?;
    fault::token_of(fd).or_else(|| fault::target(fd, plan.unwrap_or(&quiet_plan())))
}

/// Whether a terminal fault (`ECONNRESET`, `EPIPE`) was injected on the
/// fd of targeting `token`.
pub(crate) fn terminal_injected(token: Option<u64>) -> bool {
    token.is_some_and(|t| {
        fault::injected(t)
            .keys()
            .any(|(_, f)| matches!(f, Fault::Reset | Fault::Pipe))
    })
}

/// How many `fault` were injected on the fd of targeting `token`.
pub(crate) fn injected(token: Option<u64>, fault: Fault) -> u64 {
    token.map_or(0, |t| {
        fault::injected(t)
            .iter()
            .filter(|((_, f), _)| *f == fault)
            .map(|(_, n)| n)
            .sum()
    })
}

/// Waits (up to 2 s) for each fd of `tokens` to be closed by its
/// transport, then checks it was closed exactly once.
pub(crate) async fn check_closed(lp: &EventLoop, tokens: &[(&str, Option<u64>)]) -> Vec<String> {
    let mut problems = Vec::new();
    for &(who, token) in tokens {
        let Some(token) = token else {
            problems.push(format!(
                "{who}: its fd was never seen (no fd at connection_made)"
            ));
            continue;
        };
        for _ in 0..2000 {
            if fault::closes(token) > 0 {
                break;
            }
            sleep(lp, Duration::from_millis(1)).await;
        }
        match fault::closes(token) {
            1 => {}
            n => problems.push(format!("{who}: its fd was closed {n} times")),
        }
        fault::forget(token);
    }
    problems
}

/// Completes after `delay` on the loop.
pub(crate) fn sleep(lp: &EventLoop, delay: Duration) -> impl Future<Output = ()> + 'static {
    let done = lp.create_future::<()>();
    let signal = done.clone();
    let handle = lp.call_later(delay, move || {
        let _ = signal.set_result(());
    });
    async move {
        let _keep = handle;
        let _ = done.await;
    }
}

/// What a session does on a watchdog timeout to free what it holds.
pub(crate) type Cleanup = Rc<RefCell<Vec<Box<dyn FnOnce()>>>>;

/// Runs the session seeded `seed`, under its watchdog.
pub(crate) async fn run_one(env: &Rc<Env>, seed: u64) -> Outcome {
    let mut spec = Spec::new(seed);
    let kind = spec.kind;
    let faulted = spec.faulted();
    let cleanup: Cleanup = Rc::default();
    let session = {
        let env = env.clone();
        let cleanup = cleanup.clone();
        async move {
            match spec.kind {
                Kind::Tcp | Kind::TcpBuffered | Kind::Tls | Kind::Unix | Kind::Sendfile => {
                    stream::run(&env, &mut spec, &cleanup).await
                }
                Kind::Sock => sock::run(&env, &mut spec, &cleanup).await,
                Kind::Streams => streams::run(&env, &mut spec, &cleanup).await,
                Kind::Pipe => pipe::run(&env, &mut spec, &cleanup).await,
                Kind::Subprocess => process::run(&env, &mut spec, &cleanup).await,
                Kind::Udp => udp::run(&env, &mut spec, &cleanup).await,
            }
        }
    };
    let watchdog = {
        let lp = env.lp.clone();
        let limit = env.watchdog;
        async move {
            sleep(&lp, limit).await;
            (
                Ended::TimedOut,
                vec![format!("did not end within the {limit:?} watchdog")],
            )
        }
    };
    let (ended, problems) = futures_lite::future::or(session, watchdog).await;
    if ended == Ended::TimedOut {
        for step in cleanup.take() {
            step();
        }
        // Let the aborts finish.
        sleep(&env.lp, Duration::from_millis(20)).await;
    }
    Outcome {
        seed,
        kind,
        faulted,
        ended,
        problems,
    }
}
