//! Helpers for the datagram tests (`udp_*`, `unix_datagram_*`): a recording
//! [`DatagramProtocol`], endpoint shortcuts, scratch directories for unix
//! socket files, and the Python asyncio UDP peer.
#![allow(dead_code, unreachable_pub)]

use std::cell::{Cell, RefCell};
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use evloop_core::EventLoop;
use evloop_transports::{
    create_datagram_endpoint, Address, DatagramOptions, DatagramProtocol, DatagramTransport,
    ProtocolHandle,
};

/// What a [`DgramRecorder`] saw, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dev {
    Made,
    Datagram(Vec<u8>, Address),
    /// `error_received`: the kind and errno.
    Error(io::ErrorKind, Option<i32>),
    /// `connection_lost`: `None`, or the error's text.
    Lost(Option<String>),
    Pause,
    Resume,
    /// Pushed by a test, to order its own steps among the callbacks.
    Mark(&'static str),
}

/// The shared record of a [`DgramRecorder`].
#[derive(Clone, Debug, Default)]
pub struct DLog(pub Rc<RefCell<Vec<Dev>>>);

impl DLog {
    pub fn push(&self, event: Dev) {
        self.0.borrow_mut().push(event);
    }
    pub fn events(&self) -> Vec<Dev> {
        self.0.borrow().clone()
    }
    /// The payloads received, in order.
    pub fn datagrams(&self) -> Vec<Vec<u8>> {
        self.0
            .borrow()
            .iter()
            .filter_map(|e| match e {
                Dev::Datagram(d, _) => Some(d.clone()),
                _ => None,
            })
            .collect()
    }
    /// The senders' addresses, in order.
    pub fn senders(&self) -> Vec<Address> {
        self.0
            .borrow()
            .iter()
            .filter_map(|e| match e {
                Dev::Datagram(_, a) => Some(a.clone()),
                _ => None,
            })
            .collect()
    }
    pub fn errors(&self) -> Vec<(io::ErrorKind, Option<i32>)> {
        self.0
            .borrow()
            .iter()
            .filter_map(|e| match e {
                Dev::Error(k, n) => Some((*k, *n)),
                _ => None,
            })
            .collect()
    }
    pub fn lost(&self) -> Vec<Option<String>> {
        self.0
            .borrow()
            .iter()
            .filter_map(|e| match e {
                Dev::Lost(l) => Some(l.clone()),
                _ => None,
            })
            .collect()
    }
    pub fn count(&self, want: &Dev) -> usize {
        self.0.borrow().iter().filter(|e| *e == want).count()
    }
}

/// A datagram protocol that records every callback; it can echo what it
/// receives back to the sender and panic on a chosen payload.
#[derive(Debug, Default)]
pub struct DgramRecorder {
    pub log: DLog,
    pub transport: Option<DatagramTransport>,
    pub echo: bool,
    pub panic_on: Option<Vec<u8>>,
    /// How many times the factory ran (shared with the test).
    pub made_by_factory: Rc<Cell<usize>>,
}

impl DgramRecorder {
    /// A factory for a recorder writing into `log`.
    pub fn factory(log: &DLog) -> impl FnOnce() -> DgramRecorder + 'static {
        let log = log.clone();
        move || DgramRecorder {
            log,
            ..DgramRecorder::default()
        }
    }
    /// A factory for an echoing recorder writing into `log`.
    pub fn echo_factory(log: &DLog) -> impl FnOnce() -> DgramRecorder + 'static {
        let log = log.clone();
        move || DgramRecorder {
            log,
            echo: true,
            ..DgramRecorder::default()
        }
    }
}

impl DatagramProtocol for DgramRecorder {
    fn connection_made(&mut self, transport: DatagramTransport) {
        self.log.push(Dev::Made);
        self.transport = Some(transport);
    }
    fn datagram_received(&mut self, data: &[u8], addr: Address) {
        if self.panic_on.as_deref() == Some(data) {
            panic!("datagram_received panics on {data:?}");
        }
        self.log.push(Dev::Datagram(data.to_vec(), addr.clone()));
        if self.echo && addr != Address::UnixUnnamed {
            if let Some(t) = &self.transport {
                let to = if t.peername().is_some() {
                    None
                } else {
                    Some(addr)
                };
                t.sendto(data, to).expect("echo sendto");
            }
        }
    }
    fn error_received(&mut self, error: io::Error) {
        self.log
            .push(Dev::Error(error.kind(), error.raw_os_error()));
    }
    fn connection_lost(&mut self, error: Option<io::Error>) {
        self.log.push(Dev::Lost(error.map(|e| e.to_string())));
        self.transport = None;
    }
    fn pause_writing(&mut self) {
        self.log.push(Dev::Pause);
    }
    fn resume_writing(&mut self) {
        self.log.push(Dev::Resume);
    }
}

/// A UDP endpoint bound to `host:0` with a recorder (echoing if `echo`).
pub async fn bound_udp(
    lp: &EventLoop,
    host: &str,
    echo: bool,
) -> (
    DatagramTransport,
    ProtocolHandle<DgramRecorder>,
    DLog,
    SocketAddr,
) {
    let log = DLog::default();
    let factory = if echo {
        Box::new(DgramRecorder::echo_factory(&log)) as Box<dyn FnOnce() -> DgramRecorder>
    } else {
        Box::new(DgramRecorder::factory(&log))
    };
    let (t, p) =
        create_datagram_endpoint(lp, factory, DatagramOptions::default().local_addr(host, 0))
            .await
            .expect("bound endpoint");
    let addr = t
        .sockname()
        .and_then(|a| a.as_inet())
        .expect("inet sockname");
    (t, p, log, addr)
}

/// A fresh directory for socket files, removed on drop.
#[derive(Debug)]
pub struct ScratchDir(pub PathBuf);

impl ScratchDir {
    pub fn new(name: &str) -> ScratchDir {
        let dir = std::env::temp_dir().join(format!("evloop-dgram-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("scratch dir");
        ScratchDir(dir)
    }
    pub fn path(&self, file: &str) -> PathBuf {
        self.0.join(file)
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// An abstract unix name unique to this process and `tag`, with its NUL.
pub fn abstract_path(tag: &str) -> PathBuf {
    use std::os::unix::ffi::OsStringExt;
    let name = format!("\0evloop-dgram-{}-{tag}", std::process::id());
    PathBuf::from(std::ffi::OsString::from_vec(name.into_bytes()))
}

/// The abstract name of `path` (without its NUL), as an [`Address`].
pub fn abstract_address(path: &Path) -> Address {
    use std::os::unix::ffi::OsStrExt;
    Address::UnixAbstract(path.as_os_str().as_bytes()[1..].to_vec())
}

/// Runs `tests/peers/asyncio_udp_peer.py` under python3; returns the child
/// and the UDP port it printed. Fails with a clear message if python3 is
/// missing.
pub fn asyncio_udp_peer() -> (std::process::Child, u16) {
    use std::io::BufRead;
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/peers/asyncio_udp_peer.py"
    );
    let mut child = std::process::Command::new("python3")
        .arg(script)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "python3 (3.11+) is required for the asyncio UDP interop test and could not be \
                 run: {e}"
            )
        });
    let stdout = child.stdout.take().expect("stdout");
    let mut line = String::new();
    std::io::BufReader::new(stdout)
        .read_line(&mut line)
        .expect("read the peer's port line");
    let port = line
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("the asyncio UDP peer printed {line:?}, not a port"));
    (child, port)
}
