//! The "physical limit" echo server of `cargo xtask bench`: what one thread
//! can do with nothing between it and the kernel but an edge-triggered epoll
//! set (rustix, safe API).
//!
//! Non-blocking accept until `EAGAIN`; per connection, read into one shared
//! 64 KiB buffer and write straight back, keeping only what the socket would
//! not take (and reading no more until it has been sent). A read that returns
//! less than the buffer means the socket is drained (the next arrival raises
//! a new edge), so the steady state is one `read`, one `write` and a share of
//! one `epoll_wait` per echo: the floor the other servers are compared to.
//!
//! The command-line contract is the evloop `echo_server` example's (README,
//! contract example 5), TCP and unix only: `--tcp ADDR` (repeatable, port 0
//! picks a free port), `--unix PATH`; one flushed `listening on tcp
//! HOST:PORT` / `listening on unix PATH` line per listener; on SIGINT or
//! SIGTERM it closes the listeners, removes the socket files, prints
//! `shutdown` and exits 0.
#![forbid(unsafe_code)]

use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;

use lexopt::Arg::Long;
use rustix::buffer::spare_capacity;
use rustix::event::epoll;

/// The listeners to open (the command line).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Options {
    /// `--tcp ADDR`, in order.
    pub tcp: Vec<String>,
    /// `--unix PATH`, in order.
    pub unix: Vec<PathBuf>,
}

impl Options {
    /// Parses `--tcp ADDR` (repeatable) and `--unix PATH` (repeatable).
    ///
    /// # Errors
    ///
    /// An unknown flag, a flag without its value, or no listener at all.
    pub fn parse(args: &[String]) -> Result<Options, String> {
        let mut options = Options::default();
        let mut parser = lexopt::Parser::from_args(args);
        let text = |parser: &mut lexopt::Parser| {
            parser
                .value()
                .and_then(lexopt::ValueExt::string)
                .map_err(|e| e.to_string())
        };
        while let Some(arg) = parser.next().map_err(|e| e.to_string())? {
            match arg {
                Long("tcp") => options.tcp.push(text(&mut parser)?),
                Long("unix") => options.unix.push(PathBuf::from(text(&mut parser)?)),
                other => return Err(format!("unsupported: {}", other.unexpected())),
            }
        }
        if options.tcp.is_empty() && options.unix.is_empty() {
            return Err("give at least one --tcp ADDR or --unix PATH".to_owned());
        }
        Ok(options)
    }
}

#[derive(Debug)]
enum Listener {
    Tcp(TcpListener),
    Unix(UnixListener, PathBuf),
}

#[derive(Debug)]
enum Stream {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.read(buf),
            Stream::Unix(s) => s.read(buf),
        }
    }

    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.write(buf),
            Stream::Unix(s) => s.write(buf),
        }
    }

    fn as_fd(&self) -> BorrowedFd<'_> {
        match self {
            Stream::Tcp(s) => s.as_fd(),
            Stream::Unix(s) => s.as_fd(),
        }
    }
}

#[derive(Debug)]
struct Conn {
    stream: Stream,
    /// Bytes read but not yet written back.
    pending: Vec<u8>,
    /// The peer sent EOF: close once `pending` is flushed.
    eof: bool,
}

/// What one readiness event did to a connection.
enum Outcome {
    Open,
    Close,
}

const READ_BUF: usize = 64 * 1024;
/// epoll keys below this are listeners (index) or the stop socket; a
/// connection in slot `i` has key `CONN_BASE + i`.
const CONN_BASE: u64 = 1 << 32;
const STOP_KEY: u64 = CONN_BASE - 1;

/// A bound echo server, ready to [`run`](Server::run).
#[derive(Debug)]
pub struct Server {
    epoll: rustix::fd::OwnedFd,
    listeners: Vec<Listener>,
    conns: Vec<Option<Conn>>,
    free: Vec<usize>,
    buf: Vec<u8>,
}

fn et(flags: epoll::EventFlags) -> epoll::EventFlags {
    flags | epoll::EventFlags::ET
}

impl Server {
    /// Binds every listener of `options` (removing a stale unix socket file
    /// first) and registers it.
    ///
    /// # Errors
    ///
    /// Any bind, epoll or address error.
    pub fn bind(options: &Options) -> io::Result<Server> {
        let epoll = epoll::create(epoll::CreateFlags::CLOEXEC)?;
        let mut listeners = Vec::new();
        for addr in &options.tcp {
            let listener = TcpListener::bind(addr.as_str())?;
            listener.set_nonblocking(true)?;
            listeners.push(Listener::Tcp(listener));
        }
        for path in &options.unix {
            let _ = std::fs::remove_file(path);
            let listener = UnixListener::bind(path)?;
            listener.set_nonblocking(true)?;
            listeners.push(Listener::Unix(listener, path.clone()));
        }
        for (key, listener) in listeners.iter().enumerate() {
            let fd = match listener {
                Listener::Tcp(l) => l.as_fd(),
                Listener::Unix(l, _) => l.as_fd(),
            };
            epoll::add(
                &epoll,
                fd,
                epoll::EventData::new_u64(key as u64),
                et(epoll::EventFlags::IN),
            )?;
        }
        Ok(Server {
            epoll,
            listeners,
            conns: Vec::new(),
            free: Vec::new(),
            buf: vec![0; READ_BUF],
        })
    }

    /// The `listening on ...` lines, one per listener, in order.
    ///
    /// # Errors
    ///
    /// When a TCP listener has no local address.
    pub fn listening_lines(&self) -> io::Result<Vec<String>> {
        self.listeners
            .iter()
            .map(|listener| match listener {
                Listener::Tcp(l) => Ok(format!("listening on tcp {}", l.local_addr()?)),
                Listener::Unix(_, path) => Ok(format!("listening on unix {}", path.display())),
            })
            .collect()
    }

    /// Serves until `stop` (if any) becomes readable, then closes the
    /// listeners and removes the unix socket files.
    ///
    /// # Errors
    ///
    /// An epoll failure (errors of single connections only close them).
    pub fn run(mut self, stop: Option<UnixStream>) -> io::Result<()> {
        if let Some(stop) = &stop {
            epoll::add(
                &self.epoll,
                stop.as_fd(),
                epoll::EventData::new_u64(STOP_KEY),
                epoll::EventFlags::IN,
            )?;
        }
        let mut events: Vec<epoll::Event> = Vec::with_capacity(1024);
        loop {
            events.clear();
            match epoll::wait(&self.epoll, spare_capacity(&mut events), None) {
                Ok(_) | Err(rustix::io::Errno::INTR) => {}
                Err(e) => return Err(e.into()),
            }
            for event in &events {
                let key = event.data.u64();
                if key == STOP_KEY {
                    self.close_listeners();
                    return Ok(());
                } else if key < CONN_BASE {
                    self.accept(usize::try_from(key).unwrap_or(usize::MAX))?;
                } else {
                    let slot = usize::try_from(key - CONN_BASE).unwrap_or(usize::MAX);
                    let hangup = { event.flags }.intersects(
                        epoll::EventFlags::RDHUP | epoll::EventFlags::HUP | epoll::EventFlags::ERR,
                    );
                    self.ready(slot, hangup);
                }
            }
        }
    }

    fn close_listeners(&mut self) {
        for listener in self.listeners.drain(..) {
            if let Listener::Unix(listener, path) = listener {
                drop(listener);
                let _ = std::fs::remove_file(path);
            }
        }
    }

    fn accept(&mut self, index: usize) -> io::Result<()> {
        loop {
            let accepted = match &self.listeners[index] {
                Listener::Tcp(l) => l.accept().and_then(|(s, _)| {
                    s.set_nodelay(true)?;
                    s.set_nonblocking(true)?;
                    Ok(Stream::Tcp(s))
                }),
                Listener::Unix(l, _) => l.accept().and_then(|(s, _)| {
                    s.set_nonblocking(true)?;
                    Ok(Stream::Unix(s))
                }),
            };
            let stream = match accepted {
                Ok(stream) => stream,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                // ECONNABORTED, EMFILE, ...: skip this one, keep serving.
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => return Ok(()),
            };
            let slot = self.free.pop().unwrap_or_else(|| {
                self.conns.push(None);
                self.conns.len() - 1
            });
            epoll::add(
                &self.epoll,
                stream.as_fd(),
                epoll::EventData::new_u64(CONN_BASE + slot as u64),
                et(epoll::EventFlags::IN | epoll::EventFlags::OUT | epoll::EventFlags::RDHUP),
            )?;
            self.conns[slot] = Some(Conn {
                stream,
                pending: Vec::new(),
                eof: false,
            });
        }
    }

    fn ready(&mut self, slot: usize, hangup: bool) {
        let Some(conn) = self.conns.get_mut(slot).and_then(Option::as_mut) else {
            return;
        };
        if let Outcome::Close = serve(conn, &mut self.buf, hangup) {
            // Dropping the stream closes it, which also removes it from epoll.
            self.conns[slot] = None;
            self.free.push(slot);
        }
    }
}

/// Writes as much of `data` as the socket takes; returns how much.
fn write_some(stream: &mut Stream, data: &[u8]) -> io::Result<usize> {
    let mut written = 0;
    while written < data.len() {
        match stream.write(&data[written..]) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => written += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(written)
}

/// Echoes what `conn` has; with `hangup` (the peer shut down or failed)
/// reads on to EOF or the error, since no further edge will come.
fn serve(conn: &mut Conn, buf: &mut [u8], hangup: bool) -> Outcome {
    loop {
        if !conn.pending.is_empty() {
            match write_some(&mut conn.stream, &conn.pending) {
                Ok(n) => {
                    conn.pending.drain(..n);
                }
                Err(_) => return Outcome::Close,
            }
            if !conn.pending.is_empty() {
                return Outcome::Open; // wait for the EPOLLOUT edge
            }
        }
        if conn.eof {
            return Outcome::Close;
        }
        match conn.stream.read(buf) {
            Ok(0) => {
                conn.eof = true;
            }
            Ok(n) => {
                let written = match write_some(&mut conn.stream, &buf[..n]) {
                    Ok(written) => written,
                    Err(_) => return Outcome::Close,
                };
                conn.pending.extend_from_slice(&buf[written..n]);
                if n < buf.len() && conn.pending.is_empty() && !hangup {
                    return Outcome::Open; // drained: the next arrival is a new edge
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Outcome::Open,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return Outcome::Close,
        }
    }
}
