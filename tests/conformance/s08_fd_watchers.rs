//! docs/behaviour.md 8.1: fd watchers — `add_reader`/`add_writer` (one each per fd,
//! re-adding replaces), `remove_*` returning bool, argument and OS errors,
//! and `Error::FdInUse` for fds claimed by a transport.

use std::cell::{Cell, RefCell};
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::rc::Rc;

use evloop::{Error, EventLoop};
use evloop_conformance::Fixture;

/// Exactly one loop iteration with a zero poll timeout (docs/behaviour.md 1.3): readiness
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

// Negative (`-1`), huge (`i32::MAX`) and closed fd numbers are no longer
// expressible: add_reader/add_writer/remove_*/claim_fd take `&impl AsFd`, so
// the type system rules out the EBADF/InvalidArgument cases. What can still
// go wrong is tested here: an fd closed while watched (and its number
// reused), a regular file (EPERM), and an fd claimed by a transport (FdInUse).

#[test]
fn spec_8_1_fd_closed_while_watched_goes_quiet() {
    let fx = Fixture::new();
    let lp = &fx.lp;
    let (read, write) = rustix::pipe::pipe().expect("pipe");
    let (reads, writes) = (counter(), counter());
    lp.add_reader(&read, bump(&reads)).expect("add_reader");
    lp.add_writer(&write, bump(&writes)).expect("add_writer");
    rustix::io::write(&write, b"x").expect("write");
    iterate(lp);
    assert_eq!((reads.get(), writes.get()), (1, 1));
    // Closed without remove_*: the kernel forgets both fds, so the watchers
    // never run again and the loop goes on (no error, no spin).
    drop((read, write));
    iterate(lp);
    iterate(lp);
    assert_eq!((reads.get(), writes.get()), (1, 1));
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
    let claim = lp.as_core().claim_fd(&a).expect("claim_fd");
    assert_eq!(claim.fd(), fd);
    let r = lp.add_reader(&a, || ());
    assert!(matches!(r, Err(Error::FdInUse(n)) if n == fd), "{r:?}");
    let w = lp.add_writer(&a, || ());
    assert!(matches!(w, Err(Error::FdInUse(n)) if n == fd), "{w:?}");
    let again = lp.as_core().claim_fd(&a);
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
        .claim_fd(&a)
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
    let writes = counter();
    lp.add_writer(&a, bump(&writes)).expect("add_writer");
    let claim = lp.as_core().claim_fd(&a).expect("claim_fd");
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
    lp.add_reader(&a, || ()).expect("add_reader");
    lp.close().expect("close");
    assert!(!lp.remove_reader(&a), "remove_reader after close is false");
    assert!(!lp.remove_writer(&a));
    assert!(matches!(lp.add_reader(&a, || ()), Err(Error::Closed)));
    assert!(matches!(lp.add_writer(&a, || ()), Err(Error::Closed)));
    assert!(matches!(lp.as_core().claim_fd(&a), Err(Error::Closed)));
    drop((a, b));
    fx.finish();
}
