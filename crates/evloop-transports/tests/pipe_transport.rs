//! docs/behaviour.md 11.1: `connect_read_pipe`/`connect_write_pipe` on pipes, FIFOs,
//! socketpairs and ptys; EOF, the reader going away, flow control, file-type
//! checks, and no leaked fds.
//!
//! Every test runs in [`run`]: one loop with a recording exception handler
//! (which must stay silent), a generous guard timer that fails a hung test
//! instead of hanging, and an fd count before and after (tests hold a lock
//! so the process-wide count is theirs alone).

mod support;

use std::cell::RefCell;
use std::ffi::CString;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::path::PathBuf;
use std::rc::Rc;

use evloop_core::{Error, EventLoop, LoopFuture};
use evloop_transports::{connect_read_pipe, connect_write_pipe, Protocol, Transport};
use rustix::fs::{FileType, Mode, OFlags, CWD};

use support::run_on_fresh_loop as run;

#[derive(Clone, Debug, PartialEq, Eq)]
enum Ev {
    Made,
    Data(Vec<u8>),
    Eof,
    PauseWriting,
    ResumeWriting,
    Lost(Option<io::ErrorKind>),
}

type DataHook = Box<dyn FnMut(&[u8])>;

/// Records every callback; consecutive data chunks are merged.
struct Rec {
    log: Rc<RefCell<Vec<Ev>>>,
    lost: LoopFuture<Option<io::ErrorKind>>,
    on_data: Option<DataHook>,
}

struct Probe {
    log: Rc<RefCell<Vec<Ev>>>,
    lost: LoopFuture<Option<io::ErrorKind>>,
}

impl Probe {
    fn events(&self) -> Vec<Ev> {
        self.log.borrow().clone()
    }
    fn data(&self) -> Vec<u8> {
        self.log
            .borrow()
            .iter()
            .filter_map(|e| match e {
                Ev::Data(d) => Some(d.clone()),
                _ => None,
            })
            .flatten()
            .collect()
    }
}

fn recorder(lp: &EventLoop) -> (impl FnOnce() -> Rec + 'static, Probe) {
    recorder_with(lp, None)
}

fn recorder_with(
    lp: &EventLoop,
    on_data: Option<DataHook>,
) -> (impl FnOnce() -> Rec + 'static, Probe) {
    let log = Rc::new(RefCell::new(Vec::new()));
    let lost = lp.create_future();
    let probe = Probe {
        log: log.clone(),
        lost: lost.clone(),
    };
    (move || Rec { log, lost, on_data }, probe)
}

impl Protocol for Rec {
    fn connection_made(&mut self, _transport: Transport) {
        self.log.borrow_mut().push(Ev::Made);
    }
    fn data_received(&mut self, data: &[u8]) {
        {
            let mut log = self.log.borrow_mut();
            if let Some(Ev::Data(prev)) = log.last_mut() {
                prev.extend_from_slice(data);
            } else {
                log.push(Ev::Data(data.to_vec()));
            }
        }
        if let Some(hook) = &mut self.on_data {
            hook(data);
        }
    }
    fn eof_received(&mut self) -> bool {
        self.log.borrow_mut().push(Ev::Eof);
        false
    }
    fn connection_lost(&mut self, error: Option<io::Error>) {
        let kind = error.map(|e| e.kind());
        self.log.borrow_mut().push(Ev::Lost(kind));
        let _ = self.lost.set_result(kind);
    }
    fn pause_writing(&mut self) {
        self.log.borrow_mut().push(Ev::PauseWriting);
    }
    fn resume_writing(&mut self) {
        self.log.borrow_mut().push(Ev::ResumeWriting);
    }
}

fn pipe() -> (OwnedFd, OwnedFd) {
    rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).expect("pipe")
}

fn write_all(fd: impl AsFd, mut data: &[u8]) {
    while !data.is_empty() {
        let n = rustix::io::write(&fd, data).expect("write");
        data = &data[n..];
    }
}

/// Completes once `fd` (a dup of a transport's fd, so unclaimed) is
/// readable, then one more loop iteration later, so every other watcher on
/// the same file has seen the same readiness.
async fn readable_then_settled(lp: &EventLoop, fd: &OwnedFd) {
    lp.readable(fd).await.expect("readable");
    let seen: LoopFuture<()> = lp.create_future();
    let done = seen.clone();
    lp.call_soon(move || {
        let _ = done.set_result(());
    })
    .expect("call_soon");
    seen.await.expect("settled");
}

fn dup(fd: &OwnedFd) -> OwnedFd {
    rustix::io::fcntl_dupfd_cloexec(fd, 0).expect("dup")
}

/// A pty pair: (master, slave), both close-on-exec.
fn pty() -> (OwnedFd, OwnedFd) {
    use rustix::pty::{grantpt, openpt, ptsname, unlockpt, OpenptFlags};
    let master =
        openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY | OpenptFlags::CLOEXEC).expect("openpt");
    grantpt(&master).expect("grantpt");
    unlockpt(&master).expect("unlockpt");
    let name: CString = ptsname(&master, Vec::new()).expect("ptsname");
    let slave = rustix::fs::open(
        name.as_c_str(),
        OFlags::RDWR | OFlags::NOCTTY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .expect("open slave");
    (master, slave)
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
fn spec_11_1_read_pipe_data_then_eof() {
    run(|lp| async move {
        let (r, w) = pipe();
        let (factory, probe) = recorder(&lp);
        let (transport, _proto) = connect_read_pipe(&lp, factory, r).await.expect("connect");
        assert_eq!(probe.events(), [Ev::Made]);
        assert!(transport.is_reading());
        assert!(!transport.can_write_eof());
        assert!(transport.fd().is_some());
        write_all(&w, b"hello pipe");
        drop(w);
        assert_eq!(probe.lost.clone().await.expect("lost"), None);
        assert_eq!(
            probe.events(),
            [
                Ev::Made,
                Ev::Data(b"hello pipe".to_vec()),
                Ev::Eof,
                Ev::Lost(None)
            ]
        );
        assert!(transport.is_closing());
        assert_eq!(transport.fd(), None);
    });
}

#[test]
fn spec_11_1_read_pipe_pause_and_resume_reading() {
    run(|lp| async move {
        let (r, w) = pipe();
        let watch = dup(&r);
        let (factory, probe) = recorder(&lp);
        let (transport, _proto) = connect_read_pipe(&lp, factory, r).await.expect("connect");
        transport.pause_reading();
        assert!(!transport.is_reading());
        write_all(&w, b"held back");
        // The data is there (our own watcher on a dup sees it), yet the
        // paused transport did not read it.
        readable_then_settled(&lp, &watch).await;
        assert_eq!(probe.events(), [Ev::Made]);
        transport.resume_reading();
        assert!(transport.is_reading());
        drop(w);
        probe.lost.clone().await.expect("lost");
        assert_eq!(
            probe.events(),
            [
                Ev::Made,
                Ev::Data(b"held back".to_vec()),
                Ev::Eof,
                Ev::Lost(None)
            ]
        );
    });
}

#[test]
fn spec_11_1_write_pipe_writes_reach_the_reader() {
    run(|lp| async move {
        let (r, w) = pipe();
        let (wf, writer) = recorder(&lp);
        let (rf, reader) = recorder(&lp);
        let (out, _) = connect_write_pipe(&lp, wf, w).await.expect("write pipe");
        let (_inp, _) = connect_read_pipe(&lp, rf, r).await.expect("read pipe");
        assert!(out.can_write_eof());
        out.write(b"one ");
        out.writelines([&b"two "[..], &b"three"[..]]);
        out.write_eof();
        assert_eq!(writer.lost.clone().await.expect("writer lost"), None);
        assert_eq!(reader.lost.clone().await.expect("reader lost"), None);
        assert_eq!(writer.events(), [Ev::Made, Ev::Lost(None)]);
        assert_eq!(reader.data(), b"one two three");
        assert_eq!(reader.events().last(), Some(&Ev::Lost(None)));
        // Writes after the end are silent no-ops.
        out.write(b"late");
    });
}

#[test]
fn spec_11_1_write_pipe_notices_reader_gone_with_nothing_buffered() {
    run(|lp| async move {
        let (r, w) = pipe();
        let (factory, probe) = recorder(&lp);
        let (out, _) = connect_write_pipe(&lp, factory, w).await.expect("connect");
        out.write(b"taken by the pipe");
        assert_eq!(out.get_write_buffer_size(), 0);
        drop(r);
        assert_eq!(probe.lost.clone().await.expect("lost"), None);
        assert_eq!(probe.events(), [Ev::Made, Ev::Lost(None)]);
        assert!(out.is_closing());
    });
}

#[test]
fn spec_11_1_write_pipe_notices_reader_gone_with_data_buffered() {
    run(|lp| async move {
        let (r, w) = pipe();
        let (factory, probe) = recorder(&lp);
        let (out, _) = connect_write_pipe(&lp, factory, w).await.expect("connect");
        out.set_write_buffer_limits(Some(usize::MAX / 2), None)
            .expect("limits");
        out.write(&vec![7u8; 1 << 20]);
        assert!(
            out.get_write_buffer_size() > 0,
            "a pipe takes less than 1 MiB"
        );
        drop(r);
        assert_eq!(
            probe.lost.clone().await.expect("lost"),
            Some(io::ErrorKind::BrokenPipe)
        );
        assert_eq!(
            probe.events(),
            [Ev::Made, Ev::Lost(Some(io::ErrorKind::BrokenPipe))]
        );
        assert_eq!(out.get_write_buffer_size(), 0);
    });
}

#[test]
fn spec_11_1_write_pipe_full_buffers_and_flow_control_pauses_and_resumes() {
    run(|lp| async move {
        const TOTAL: usize = 1 << 20;
        let (r, w) = pipe();
        let (wf, writer) = recorder(&lp);
        let (out, _) = connect_write_pipe(&lp, wf, w).await.expect("write pipe");
        assert_eq!(out.get_write_buffer_limits(), (16 * 1024, 64 * 1024));
        let payload: Vec<u8> = (0..TOTAL).map(|i| (i % 251) as u8).collect();
        out.write(&payload);
        let buffered = out.get_write_buffer_size();
        assert!(buffered > 64 * 1024, "buffered {buffered}");
        assert_eq!(writer.events(), [Ev::Made, Ev::PauseWriting]);
        // Nothing drains until a reader reads: the buffer holds.
        out.write(b"tail");
        assert_eq!(out.get_write_buffer_size(), buffered + 4);
        out.close();
        assert!(out.is_closing());
        let (rf, reader) = recorder(&lp);
        let (_inp, _) = connect_read_pipe(&lp, rf, r).await.expect("read pipe");
        assert_eq!(reader.lost.clone().await.expect("reader lost"), None);
        assert_eq!(writer.lost.clone().await.expect("writer lost"), None);
        let mut expected = payload;
        expected.extend_from_slice(b"tail");
        assert!(reader.data() == expected, "data differs");
        assert_eq!(
            writer.events(),
            [
                Ev::Made,
                Ev::PauseWriting,
                Ev::ResumeWriting,
                Ev::Lost(None)
            ]
        );
    });
}

#[test]
fn spec_11_1_fifo_read_and_write_pipes() {
    run(|lp| async move {
        let dir = TempDir::new("fifo");
        let path = dir.0.join("fifo");
        rustix::fs::mknodat(CWD, &path, FileType::Fifo, Mode::RUSR | Mode::WUSR, 0)
            .expect("mkfifo");
        let r = rustix::fs::open(
            &path,
            OFlags::RDONLY | OFlags::NONBLOCK | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .expect("open fifo for reading");
        let w = rustix::fs::open(
            &path,
            OFlags::WRONLY | OFlags::NONBLOCK | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .expect("open fifo for writing");
        let (rf, reader) = recorder(&lp);
        let (wf, writer) = recorder(&lp);
        let _inp = connect_read_pipe(&lp, rf, r).await.expect("read fifo");
        let (out, _) = connect_write_pipe(&lp, wf, w).await.expect("write fifo");
        out.write(b"through the fifo");
        out.close();
        assert_eq!(reader.lost.clone().await.expect("reader lost"), None);
        assert_eq!(writer.lost.clone().await.expect("writer lost"), None);
        assert_eq!(
            reader.events(),
            [
                Ev::Made,
                Ev::Data(b"through the fifo".to_vec()),
                Ev::Eof,
                Ev::Lost(None)
            ]
        );
    });
}

#[test]
fn spec_11_1_socketpair_as_read_and_write_pipes() {
    run(|lp| async move {
        use rustix::net::{socketpair, AddressFamily, SocketFlags, SocketType};
        let (a, b) = socketpair(
            AddressFamily::UNIX,
            SocketType::STREAM,
            SocketFlags::CLOEXEC,
            None,
        )
        .expect("socketpair");
        let (rf, reader) = recorder(&lp);
        let (wf, writer) = recorder(&lp);
        let (out, _) = connect_write_pipe(&lp, wf, a).await.expect("write side");
        let _inp = connect_read_pipe(&lp, rf, b).await.expect("read side");
        out.write(b"over a socket");
        out.close();
        assert_eq!(writer.lost.clone().await.expect("writer lost"), None);
        assert_eq!(reader.lost.clone().await.expect("reader lost"), None);
        assert_eq!(
            reader.events(),
            [
                Ev::Made,
                Ev::Data(b"over a socket".to_vec()),
                Ev::Eof,
                Ev::Lost(None)
            ]
        );
    });
}

#[test]
fn spec_11_1_socketpair_write_pipe_notices_peer_close() {
    run(|lp| async move {
        use rustix::net::{socketpair, AddressFamily, SocketFlags, SocketType};
        let (a, b) = socketpair(
            AddressFamily::UNIX,
            SocketType::STREAM,
            SocketFlags::CLOEXEC,
            None,
        )
        .expect("socketpair");
        let (wf, writer) = recorder(&lp);
        let _out = connect_write_pipe(&lp, wf, a).await.expect("write side");
        drop(b);
        assert_eq!(writer.lost.clone().await.expect("lost"), None);
        assert_eq!(writer.events(), [Ev::Made, Ev::Lost(None)]);
    });
}

#[test]
fn spec_11_1_pty_read_pipe_sees_eof_when_the_slave_closes() {
    run(|lp| async move {
        let (master, slave) = pty();
        let slave = Rc::new(RefCell::new(Some(slave)));
        write_all(slave.borrow().as_ref().expect("slave"), b"from the pty");
        // Close the slave once everything written to it has been read: EIO.
        let (closer, expected) = (slave.clone(), b"from the pty".len());
        let mut seen = 0;
        let hook: DataHook = Box::new(move |data| {
            seen += data.len();
            if seen >= expected {
                closer.borrow_mut().take();
            }
        });
        let (factory, probe) = recorder_with(&lp, Some(hook));
        let (transport, _) = connect_read_pipe(&lp, factory, master)
            .await
            .expect("pty master");
        assert_eq!(probe.lost.clone().await.expect("lost"), None);
        assert_eq!(
            probe.events(),
            [
                Ev::Made,
                Ev::Data(b"from the pty".to_vec()),
                Ev::Eof,
                Ev::Lost(None)
            ]
        );
        assert!(slave.borrow().is_none());
        assert!(transport.is_closing());
    });
}

#[test]
fn spec_11_1_pty_master_as_write_pipe_survives_echo() {
    run(|lp| async move {
        let (master, slave) = pty();
        let watch = dup(&master);
        let (wf, writer) = recorder(&lp);
        let (rf, reader) = recorder(&lp);
        let (out, _) = connect_write_pipe(&lp, wf, master)
            .await
            .expect("pty master");
        let _inp = connect_read_pipe(&lp, rf, slave).await.expect("pty slave");
        // A line written to the master is the slave's input; the terminal
        // echoes it back, so the master turns readable. That is not the
        // reader going away: the write pipe must stay open.
        out.write(b"ping\n");
        readable_then_settled(&lp, &watch).await;
        assert!(!out.is_closing(), "echo closed the write pipe");
        assert_eq!(writer.events(), [Ev::Made]);
        drop(watch);
        out.close();
        assert_eq!(writer.lost.clone().await.expect("writer lost"), None);
        // The master gone, the slave reads the line, then its end.
        reader.lost.clone().await.expect("reader lost");
        assert_eq!(reader.data(), b"ping\n");
        assert_eq!(reader.events().first(), Some(&Ev::Made));
    });
}

#[test]
fn spec_11_1_regular_files_and_directories_are_rejected() {
    run(|lp| async move {
        let dir = TempDir::new("notpipe");
        let path = dir.0.join("plain");
        std::fs::write(&path, b"x").expect("file");
        let message = "Pipe transport is only for pipes, sockets and character devices";
        let file =
            rustix::fs::open(&path, OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty()).expect("open");
        let (factory, probe) = recorder(&lp);
        match connect_read_pipe(&lp, factory, file).await {
            Err(Error::InvalidArgument(m)) => assert_eq!(m, message),
            other => panic!("regular file accepted: {other:?}"),
        }
        let directory = rustix::fs::open(
            &dir.0,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .expect("open dir");
        let (factory, _) = recorder(&lp);
        match connect_write_pipe(&lp, factory, directory).await {
            Err(Error::InvalidArgument(m)) => assert_eq!(m, message),
            other => panic!("directory accepted: {other:?}"),
        }
        // No protocol was made for a rejected fd.
        assert!(probe.events().is_empty());
    });
}

#[test]
fn spec_11_1_pipe_fds_are_closed_once_and_not_leaked() {
    // `run` checks the process fd count after each test; this one churns.
    run(|lp| async move {
        let before = support::fd_count();
        for _ in 0..20 {
            let (r, w) = pipe();
            let (rf, reader) = recorder(&lp);
            let (wf, writer) = recorder(&lp);
            let (inp, _) = connect_read_pipe(&lp, rf, r).await.expect("read");
            let (out, _) = connect_write_pipe(&lp, wf, w).await.expect("write");
            out.write(b"x");
            out.abort();
            writer.lost.clone().await.expect("writer lost");
            reader.lost.clone().await.expect("reader lost");
            inp.close();
            inp.close();
        }
        assert_eq!(support::fd_count(), before);
    });
}

#[test]
fn spec_11_1_dropping_connect_before_it_completes_closes_the_pipe() {
    run(|lp| async move {
        let (r, _w) = pipe();
        let (factory, probe) = recorder(&lp);
        let mut connecting = Box::pin(connect_read_pipe(&lp, factory, r));
        // First poll starts the transport; drop before connection_made ran.
        assert!(futures_lite::future::poll_once(&mut connecting)
            .await
            .is_none());
        drop(connecting);
        assert_eq!(probe.lost.clone().await.expect("lost"), None);
        assert_eq!(probe.events(), [Ev::Made, Ev::Lost(None)]);
    });
}
