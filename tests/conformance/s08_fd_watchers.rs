//! SPEC 8.1: fd watchers — `add_reader`/`add_writer` (one each per fd,
//! re-adding replaces), `remove_*` returning bool, argument and OS errors,
//! and `Error::FdInUse` for fds claimed by a transport.

use std::cell::{Cell, RefCell};
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::UnixStream;
use std::rc::Rc;

use evloop::{Error, EventLoop};
use evloop_conformance::Fixture;

/// Exactly one loop iteration with a zero poll timeout (SPEC 1.3): readiness
/// that already exists is seen, nothing blocks.
fn iterate(lp: &EventLoop) {
    lp.stop();
    lp.run_forever().expect("one iteration");
}

fn counter() -> Rc<Cell<usize>> {
    Rc::new(Cell::new(0))
}

fn bump(count: &Rc<Cell<usize>>) -> impl FnMut() + 'static {
    let count = count.clone();
    move || count.set(count.get() + 1)
}

/// A connected, non-blocking socket pair.
fn socketpair() -> (UnixStream, UnixStream) {
    let (a, b) = UnixStream::pair().expect("socketpair");
    a.set_nonblocking(true).expect("nonblocking");
    b.set_nonblocking(true).expect("nonblocking");
    (a, b)
}

fn assert_io_errno(result: Result<(), Error>, errno: i32, what: &str) {
    match result {
        Err(Error::Io(e)) => assert_eq!(e.raw_os_error(), Some(errno), "{what}: {e}"),
        other => panic!("{what}: expected Error::Io with errno {errno}, got {other:?}"),
    }
}

#[test]
fn spec_8_1_reader_runs_on_readiness() {
    let fx = Fixture::new();
    let lp = &fx.lp;
    let (mut a, mut b) = socketpair();
    let got = Rc::new(RefCell::new(Vec::new()));
    let sink = got.clone();
    let mut reader = a.try_clone().expect("dup");
    lp.add_reader(&a, move || {
        let mut buf = [0u8; 16];
        let n = reader.read(&mut buf).expect("read in reader callback");
        sink.borrow_mut().extend_from_slice(&buf[..n]);
    })
    .expect("add_reader");
    iterate(lp);
    assert!(
        got.borrow().is_empty(),
        "reader ran on an fd that is not readable"
    );
    b.write_all(b"ping").expect("write");
    iterate(lp);
    assert_eq!(*got.borrow(), b"ping");
    // It stays registered until removed.
    b.write_all(b"!").expect("write");
    iterate(lp);
    assert_eq!(*got.borrow(), b"ping!");
    assert!(lp.remove_reader(&a));
    b.write_all(b"?").expect("write");
    iterate(lp);
    assert_eq!(*got.borrow(), b"ping!", "a removed reader never runs");
    let mut rest = [0u8; 4];
    assert_eq!(a.read(&mut rest).expect("read"), 1);
    drop((a, b));
    fx.finish();
}

#[test]
fn spec_8_1_writer_runs_when_writable() {
    let fx = Fixture::new();
    let lp = &fx.lp;
    let (a, b) = socketpair();
    let runs = counter();
    lp.add_writer(&a, bump(&runs)).expect("add_writer");
    assert_eq!(runs.get(), 0, "the writer does not run inline");
    iterate(lp);
    assert_eq!(runs.get(), 1);
    iterate(lp);
    assert_eq!(
        runs.get(),
        2,
        "level-triggered: runs every iteration while writable"
    );
    assert!(lp.remove_writer(&a));
    iterate(lp);
    assert_eq!(runs.get(), 2);
    drop((a, b));
    fx.finish();
}

#[test]
fn spec_8_1_writer_on_a_pipe() {
    let fx = Fixture::new();
    let lp = &fx.lp;
    let (read, write) = rustix::pipe::pipe().expect("pipe");
    let (readable, writable) = (counter(), counter());
    lp.add_reader(&read, bump(&readable)).expect("add_reader");
    lp.add_writer(&write, bump(&writable)).expect("add_writer");
    iterate(lp);
    assert_eq!((readable.get(), writable.get()), (0, 1));
    rustix::io::write(&write, b"x").expect("write");
    iterate(lp);
    assert_eq!((readable.get(), writable.get()), (1, 2));
    assert!(lp.remove_reader(&read));
    assert!(lp.remove_writer(&write));
    drop((read, write));
    fx.finish();
}

#[test]
fn spec_8_1_re_adding_a_reader_replaces_it() {
    let fx = Fixture::new();
    let lp = &fx.lp;
    let (a, mut b) = socketpair();
    let (old, new) = (counter(), counter());
    let old_dropped = Rc::new(Cell::new(false));
    struct SetOnDrop(Rc<Cell<bool>>);
    impl Drop for SetOnDrop {
        fn drop(&mut self) {
            self.0.set(true);
        }
    }
    let guard = SetOnDrop(old_dropped.clone());
    let mut old_cb = bump(&old);
    lp.add_reader(&a, move || {
        let _guard = &guard;
        old_cb();
    })
    .expect("add_reader");
    b.write_all(b"x").expect("write");
    lp.add_reader(&a, bump(&new)).expect("add_reader again");
    assert!(old_dropped.get(), "the replaced reader is dropped at once");
    // Never drained, so the fd stays readable: the new reader runs each time.
    iterate(lp);
    iterate(lp);
    assert_eq!(old.get(), 0, "the replaced reader never runs");
    assert_eq!(new.get(), 2);
    assert!(lp.remove_reader(&a));
    assert!(!lp.remove_reader(&a), "only one reader per fd");
    drop((a, b));
    fx.finish();
}

#[test]
fn spec_8_1_re_adding_a_writer_replaces_it() {
    let fx = Fixture::new();
    let lp = &fx.lp;
    let (a, b) = socketpair();
    let (old, new) = (counter(), counter());
    lp.add_writer(&a, bump(&old)).expect("add_writer");
    lp.add_writer(&a, bump(&new)).expect("add_writer again");
    iterate(lp);
    assert_eq!((old.get(), new.get()), (0, 1));
    assert!(lp.remove_writer(&a));
    assert!(!lp.remove_writer(&a), "only one writer per fd");
    drop((a, b));
    fx.finish();
}

#[test]
fn spec_8_1_remove_returns_whether_something_was_removed() {
    let fx = Fixture::new();
    let lp = &fx.lp;
    let (a, b) = socketpair();
    assert!(!lp.remove_reader(&a), "nothing to remove");
    assert!(!lp.remove_writer(&a), "nothing to remove");
    assert!(
        !lp.as_core().remove_reader(-1),
        "a negative fd is simply not watched"
    );
    lp.add_reader(&a, || ()).expect("add_reader");
    assert!(!lp.remove_writer(&a), "a reader is not a writer");
    assert!(lp.remove_reader(&a));
    assert!(!lp.remove_reader(&a));
    lp.add_writer(&a, || ()).expect("add_writer");
    assert!(!lp.remove_reader(&a), "a writer is not a reader");
    assert!(lp.remove_writer(&a));
    assert!(!lp.remove_writer(&a));
    drop((a, b));
    fx.finish();
}

#[test]
fn spec_8_1_reader_and_writer_on_one_fd_coexist() {
    let fx = Fixture::new();
    let lp = &fx.lp;
    let (a, mut b) = socketpair();
    let (readable, writable) = (counter(), counter());
    lp.add_reader(&a, bump(&readable)).expect("add_reader");
    lp.add_writer(&a, bump(&writable)).expect("add_writer");
    b.write_all(b"x").expect("write");
    iterate(lp);
    assert_eq!((readable.get(), writable.get()), (1, 1));
    // Removing one keeps the other.
    assert!(lp.remove_reader(&a));
    iterate(lp);
    assert_eq!((readable.get(), writable.get()), (1, 2));
    lp.add_reader(&a, bump(&readable))
        .expect("add_reader again");
    assert!(lp.remove_writer(&a));
    iterate(lp);
    assert_eq!((readable.get(), writable.get()), (2, 2));
    assert!(lp.remove_reader(&a));
    drop((a, b));
    fx.finish();
}

#[test]
fn spec_8_1_negative_fd_is_invalid_argument() {
    let fx = Fixture::new();
    let lp = &fx.lp;
    let r = lp.as_core().add_reader(-1, || ());
    assert!(matches!(r, Err(Error::InvalidArgument(_))), "{r:?}");
    let w = lp.as_core().add_writer(-1, || ());
    assert!(matches!(w, Err(Error::InvalidArgument(_))), "{w:?}");
    let c = lp.as_core().claim_fd(-1);
    assert!(matches!(c, Err(Error::InvalidArgument(_))), "{c:?}");
    fx.finish();
}

#[test]
fn spec_8_1_closed_fd_is_ebadf() {
    let fx = Fixture::new();
    let lp = &fx.lp;
    let (read, write) = rustix::pipe::pipe().expect("pipe");
    let fd: RawFd = read.as_raw_fd();
    drop((read, write));
    assert_io_errno(
        lp.as_core().add_reader(fd, || ()),
        libc::EBADF,
        "add_reader on a closed fd",
    );
    assert_io_errno(
        lp.as_core().add_writer(fd, || ()),
        libc::EBADF,
        "add_writer on a closed fd",
    );
    assert!(
        !lp.as_core().remove_reader(fd),
        "a failed add leaves nothing behind"
    );
    assert!(!lp.as_core().remove_writer(fd));
    fx.finish();
}

/// Set in the child process that `spec_8_1_huge_fd_number_is_ebadf` runs.
const CHILD_ENV: &str = "EVLOOP_CONFORMANCE_HUGE_FD_CHILD";

#[test]
fn spec_8_1_huge_fd_number_is_ebadf() {
    if std::env::var_os(CHILD_ENV).is_some() {
        // In the child: a crash here must not take the whole binary down.
        let lp = EventLoop::new().expect("loop");
        assert_io_errno(
            lp.as_core().add_reader(i32::MAX, || ()),
            libc::EBADF,
            "add_reader(i32::MAX)",
        );
        assert_io_errno(
            lp.as_core().add_writer(i32::MAX, || ()),
            libc::EBADF,
            "add_writer(i32::MAX)",
        );
        lp.close().expect("close");
        return;
    }
    let fx = Fixture::new();
    let name = "s08_fd_watchers::spec_8_1_huge_fd_number_is_ebadf";
    let child = std::process::Command::new(std::env::current_exe().expect("test binary"))
        .args(["--exact", name, "--test-threads=1", "--nocapture"])
        .env(CHILD_ENV, "1")
        .output()
        .expect("run the child");
    let stdout = String::from_utf8_lossy(&child.stdout);
    let stderr = String::from_utf8_lossy(&child.stderr);
    assert!(
        child.status.success() && stdout.contains("1 passed"),
        "add_reader on an fd number that cannot be open must fail with EBADF, \
         not crash: {}\nstdout: {stdout}\nstderr: {stderr}",
        child.status
    );
    fx.finish();
}

#[test]
fn spec_8_1_regular_file_is_eperm() {
    let fx = Fixture::new();
    let lp = &fx.lp;
    let file = std::fs::File::open(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml"))
        .expect("open a regular file");
    assert_io_errno(
        lp.add_reader(&file, || ()),
        libc::EPERM,
        "add_reader on a regular file",
    );
    assert_io_errno(
        lp.add_writer(&file, || ()),
        libc::EPERM,
        "add_writer on a regular file",
    );
    assert!(!lp.remove_reader(&file));
    drop(file);
    fx.finish();
}

#[test]
fn spec_8_1_claimed_fd_is_fd_in_use_until_released() {
    let fx = Fixture::new();
    let lp = &fx.lp;
    let (a, mut b) = socketpair();
    let fd = a.as_raw_fd();
    let claim = lp.as_core().claim_fd(fd).expect("claim_fd");
    assert_eq!(claim.fd(), fd);
    let r = lp.add_reader(&a, || ());
    assert!(matches!(r, Err(Error::FdInUse(n)) if n == fd), "{r:?}");
    let w = lp.add_writer(&a, || ());
    assert!(matches!(w, Err(Error::FdInUse(n)) if n == fd), "{w:?}");
    let again = lp.as_core().claim_fd(fd);
    assert!(
        matches!(again, Err(Error::FdInUse(n)) if n == fd),
        "{again:?}"
    );
    // The owner watches it; a user's remove cannot take the owner's watcher.
    let owner_reads = counter();
    claim.set_reader(bump(&owner_reads)).expect("set_reader");
    assert!(
        !lp.remove_reader(&a),
        "remove_reader must not touch a claimed fd"
    );
    b.write_all(b"x").expect("write");
    iterate(lp);
    assert_eq!(owner_reads.get(), 1, "the claim's own reader still runs");
    drop(claim);
    iterate(lp);
    assert_eq!(
        owner_reads.get(),
        1,
        "releasing the claim removes its watchers"
    );
    let user_reads = counter();
    lp.add_reader(&a, bump(&user_reads))
        .expect("add_reader after the claim is released");
    iterate(lp);
    assert_eq!(user_reads.get(), 1);
    assert!(lp.remove_reader(&a));
    let claim = lp
        .as_core()
        .claim_fd(fd)
        .expect("claim again once released");
    drop(claim);
    drop((a, b));
    fx.finish();
}

#[test]
fn spec_8_1_claim_over_an_existing_watcher_is_refused_to_users() {
    let fx = Fixture::new();
    let lp = &fx.lp;
    let (a, b) = socketpair();
    let fd = a.as_raw_fd();
    let writes = counter();
    lp.add_writer(&a, bump(&writes)).expect("add_writer");
    let claim = lp.as_core().claim_fd(fd).expect("claim_fd");
    let r = lp.add_writer(&a, || ());
    assert!(matches!(r, Err(Error::FdInUse(_))), "{r:?}");
    drop(claim);
    drop((a, b));
    fx.finish();
}

#[test]
fn spec_8_1_reader_that_removes_itself() {
    let fx = Fixture::new();
    let lp = &fx.lp;
    let (a, mut b) = socketpair();
    let a = Rc::new(a);
    let runs = counter();
    let removed = Rc::new(Cell::new(None));
    let (r, rm, lp2, me) = (runs.clone(), removed.clone(), lp.clone(), a.clone());
    lp.add_reader(&a, move || {
        r.set(r.get() + 1);
        rm.set(Some(lp2.remove_reader(&me)));
    })
    .expect("add_reader");
    b.write_all(b"x").expect("write");
    iterate(lp);
    assert_eq!(runs.get(), 1);
    assert_eq!(
        removed.get(),
        Some(true),
        "remove_reader from inside the reader"
    );
    // The data is still unread, yet the reader is gone.
    iterate(lp);
    iterate(lp);
    assert_eq!(
        runs.get(),
        1,
        "a reader that removed itself never runs again"
    );
    assert!(!lp.remove_reader(&a));
    // The fd can be watched again.
    let again = counter();
    lp.add_reader(&a, bump(&again)).expect("add_reader again");
    iterate(lp);
    assert_eq!(again.get(), 1);
    assert!(lp.remove_reader(&a));
    drop((a, b));
    fx.finish();
}

#[test]
fn spec_8_1_reader_that_replaces_itself() {
    let fx = Fixture::new();
    let lp = &fx.lp;
    let (a, mut b) = socketpair();
    let a = Rc::new(a);
    let (first, second) = (counter(), counter());
    let (f, lp2, s, me) = (first.clone(), lp.clone(), second.clone(), a.clone());
    lp.add_reader(&a, move || {
        f.set(f.get() + 1);
        lp2.add_reader(&me, bump(&s))
            .expect("add_reader from a reader");
    })
    .expect("add_reader");
    b.write_all(b"x").expect("write");
    iterate(lp);
    iterate(lp);
    assert_eq!((first.get(), second.get()), (1, 1));
    assert!(lp.remove_reader(&a));
    drop((a, b));
    fx.finish();
}

#[test]
fn spec_8_1_fd_closed_without_remove_then_number_reused() {
    let fx = Fixture::new();
    let lp = &fx.lp;
    let (read, write) = rustix::pipe::pipe().expect("pipe");
    let fd = read.as_raw_fd();
    let old = counter();
    lp.add_reader(&read, bump(&old)).expect("add_reader");
    rustix::io::write(&write, b"x").expect("write");
    iterate(lp);
    assert_eq!(old.get(), 1);
    // Close both ends without remove_reader; the kernel drops its epoll entry.
    drop((read, write));
    let (read2, write2) = rustix::pipe::pipe().expect("pipe");
    assert_eq!(
        read2.as_raw_fd(),
        fd,
        "test premise: the lowest free fd number is reused"
    );
    let new = counter();
    lp.add_reader(&read2, bump(&new))
        .expect("add_reader on the reused number");
    iterate(lp);
    assert_eq!(new.get(), 0, "the new pipe is empty");
    rustix::io::write(&write2, b"y").expect("write");
    iterate(lp);
    assert_eq!(old.get(), 1, "the old reader never runs again");
    assert_eq!(new.get(), 1, "the reader on the reused number runs");
    assert!(lp.remove_reader(&read2));
    assert!(!lp.remove_reader(&read2));
    drop((read2, write2));
    fx.finish();
}

#[test]
fn spec_8_1_closed_loop_refuses_watchers_and_removes_nothing() {
    let fx = Fixture::new();
    let lp = &fx.lp;
    let (a, b) = socketpair();
    let fd = a.as_raw_fd();
    lp.add_reader(&a, || ()).expect("add_reader");
    lp.close().expect("close");
    assert!(
        !lp.remove_reader(&a),
        "remove_reader after close is false (R-11)"
    );
    assert!(!lp.remove_writer(&a));
    assert!(matches!(lp.add_reader(&a, || ()), Err(Error::Closed)));
    assert!(matches!(lp.add_writer(&a, || ()), Err(Error::Closed)));
    assert!(matches!(lp.as_core().claim_fd(fd), Err(Error::Closed)));
    drop((a, b));
    fx.finish();
}
