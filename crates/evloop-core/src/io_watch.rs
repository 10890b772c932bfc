//! fd watchers: `add_reader`/`add_writer` and their removal (docs/behaviour.md 8.1), and
//! fd claims, which keep user watchers off fds that a transport owns.

use std::collections::hash_map::{self, HashMap};
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::panic::Location;
use std::rc::Rc;

use evloop_reactor::{Event, Interest, Poller, Registration};

use crate::handle::{Callback, RepeatNode};
use crate::ready::{Entry, ReadyQueue};
use crate::{Error, EventLoop};

/// What the loop knows about one fd.
#[derive(Default)]
struct Watch {
    /// # Invariant
    /// `Some` whenever the fd is claimed (made from the `BorrowedFd` that
    /// `claim_fd` got, since a claim's watchers are set without one) or has
    /// a watcher.
    registration: Option<Registration>,
    reader: Option<Rc<dyn Callback>>,
    writer: Option<Rc<dyn Callback>>,
    claimed: bool,
    /// Its only watcher is a wakeup reader (`add_wakeup_reader`).
    wakeup_only: bool,
}

impl Watch {
    fn interest(&self) -> Interest {
        Interest {
            readable: self.reader.is_some(),
            writable: self.writer.is_some(),
        }
    }

    fn is_unused(&self) -> bool {
        self.reader.is_none() && self.writer.is_none() && !self.claimed
    }
}

/// fds below this live in a `Vec` indexed by fd (fds are small integers, so
/// that beats a map on the hot path); larger ones in a map, so a huge bogus
/// fd number cannot make the table allocate gigabytes.
const DENSE_FDS: usize = 1 << 16;

/// Every fd the loop watches or a transport claims.
#[derive(Default)]
pub(crate) struct IoTable {
    dense: Vec<Option<Watch>>,
    sparse: HashMap<usize, Watch>,
    /// Entries in `dense` and `sparse` together.
    len: usize,
    /// Entries of those that are `wakeup_only`.
    wakeup_only: usize,
}

impl IoTable {
    /// True when no fd is watched or claimed but by wakeup readers: a poll
    /// that may not block could then report only what exists to wake one
    /// that does (the loop's own waker, a signal wakeup fd).
    pub(crate) fn only_wakeups(&self) -> bool {
        self.len == self.wakeup_only
    }

    /// Marks `fd`'s watch as a wakeup reader's alone (if it is that).
    fn mark_wakeup_only(&mut self, fd: usize) {
        let Some(watch) = self.get_mut_index(fd) else {
            return;
        };
        if watch.writer.is_none() && !watch.claimed && !watch.wakeup_only {
            watch.wakeup_only = true;
            self.wakeup_only += 1;
        }
    }

    /// Unmarks `fd`'s watch: something else is added to it.
    fn unmark_wakeup_only(&mut self, fd: usize) {
        if let Some(watch) = self.get_mut_index(fd) {
            if std::mem::take(&mut watch.wakeup_only) {
                self.wakeup_only -= 1;
            }
        }
    }

    fn get(&self, fd: usize) -> Option<&Watch> {
        if fd < DENSE_FDS {
            self.dense.get(fd)?.as_ref()
        } else {
            self.sparse.get(&fd)
        }
    }

    fn get_mut(&mut self, fd: RawFd) -> Option<&mut Watch> {
        self.get_mut_index(usize::try_from(fd).ok()?)
    }

    fn get_mut_index(&mut self, fd: usize) -> Option<&mut Watch> {
        if fd < DENSE_FDS {
            self.dense.get_mut(fd)?.as_mut()
        } else {
            self.sparse.get_mut(&fd)
        }
    }

    fn entry(&mut self, fd: usize) -> &mut Watch {
        if fd >= DENSE_FDS {
            return match self.sparse.entry(fd) {
                hash_map::Entry::Occupied(entry) => entry.into_mut(),
                hash_map::Entry::Vacant(entry) => {
                    self.len += 1;
                    entry.insert(Watch::default())
                }
            };
        }
        if self.dense.len() <= fd {
            self.dense.resize_with(fd + 1, || None);
        }
        let slot = &mut self.dense[fd];
        if slot.is_none() {
            self.len += 1;
        }
        slot.get_or_insert_with(Watch::default)
    }

    fn remove_if_unused(&mut self, fd: RawFd) {
        let Ok(fd) = usize::try_from(fd) else {
            return;
        };
        if self.get(fd).is_some_and(Watch::is_unused) {
            self.unmark_wakeup_only(fd);
            if fd < DENSE_FDS {
                self.dense[fd] = None;
            } else {
                self.sparse.remove(&fd);
            }
            self.len -= 1;
        }
    }

    /// Queues the watchers that `event` makes runnable.
    pub(crate) fn queue_callbacks(&self, event: Event, ready: &mut ReadyQueue) {
        let Some(watch) = self.get(event.key) else {
            return;
        };
        if event.readable {
            if let Some(reader) = &watch.reader {
                ready.push(Entry::Callback(reader.clone()));
            }
        }
        if event.writable {
            if let Some(writer) = &watch.writer {
                ready.push(Entry::Callback(writer.clone()));
            }
        }
    }
}

/// Brings the kernel's interest in line with the watch's callbacks. With
/// `rearm` the kernel is told even if nothing changed: a watcher being
/// (re)added may be for an fd number that was closed and reused since.
/// `fd` (the caller's borrow) is needed only to register an fd that has no
/// registration yet; a claimed fd always has one.
fn sync_interest(
    poller: &Poller,
    fd: Option<BorrowedFd<'_>>,
    key: usize,
    watch: &mut Watch,
    rearm: bool,
) -> io::Result<()> {
    let interest = watch.interest();
    match &mut watch.registration {
        None if interest.is_none() => Ok(()),
        None => {
            let fd = fd
                .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "fd has no registration"))?;
            watch.registration = Some(poller.register(fd, key, interest)?);
            Ok(())
        }
        Some(registration) if interest.is_none() && watch.claimed => registration.modify(interest),
        Some(_) if interest.is_none() => {
            watch.registration = None;
            Ok(())
        }
        Some(registration) if rearm => registration.rearm(interest),
        Some(registration) => registration.modify(interest),
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub(crate) enum Direction {
    Read,
    Write,
}

impl Direction {
    fn slot(self, watch: &mut Watch) -> &mut Option<Rc<dyn Callback>> {
        match self {
            Direction::Read => &mut watch.reader,
            Direction::Write => &mut watch.writer,
        }
    }
}

impl EventLoop {
    /// Calls `callback` every time `fd` is readable, until `remove_reader`.
    /// One reader per fd: adding again replaces it.
    ///
    /// The fd is borrowed only for the call: the loop keeps its number, and
    /// the caller must `remove_reader` before closing it (a watcher left on
    /// a closed fd is dropped by the kernel; one added later for a reused
    /// number registers the new file).
    ///
    /// # Errors
    /// [`Error::Closed`]; [`Error::FdInUse`] if a transport owns the fd;
    /// [`Error::Io`] from the reactor (EPERM for a regular file).
    #[track_caller]
    pub fn add_reader(
        &self,
        fd: &impl AsFd,
        callback: impl FnMut() + 'static,
    ) -> Result<(), Error> {
        let fd = fd.as_fd();
        self.add_watcher(
            fd.as_raw_fd(),
            Some(fd),
            Direction::Read,
            RepeatNode::boxed(callback, Location::caller()),
            false,
        )
    }

    /// Calls `callback` every time `fd` is writable, until `remove_writer`.
    ///
    /// # Errors
    /// As [`add_reader`](Self::add_reader).
    #[track_caller]
    pub fn add_writer(
        &self,
        fd: &impl AsFd,
        callback: impl FnMut() + 'static,
    ) -> Result<(), Error> {
        let fd = fd.as_fd();
        self.add_watcher(
            fd.as_raw_fd(),
            Some(fd),
            Direction::Write,
            RepeatNode::boxed(callback, Location::caller()),
            false,
        )
    }

    /// `add_reader` for an fd whose only use is to wake the loop when it
    /// sleeps: a signal wakeup fd (`signal.set_wakeup_fd` in Python), a
    /// self-pipe. A poll that may not block (callbacks are ready) learns
    /// nothing from such an fd that the loop needs, so while every watched fd
    /// is one of these (or none is watched), that poll is skipped, and with
    /// it a syscall per iteration of a callback chain; `callback` still runs
    /// when a poll finds the fd readable. Remove it with `remove_reader`;
    /// adding another watcher to the fd makes it an ordinary one.
    ///
    /// # Errors
    /// As [`add_reader`](Self::add_reader).
    #[track_caller]
    pub fn add_wakeup_reader(
        &self,
        fd: &impl AsFd,
        callback: impl FnMut() + 'static,
    ) -> Result<(), Error> {
        self.add_reader(fd, callback)?;
        let index = fd_index(fd.as_fd().as_raw_fd())?;
        self.inner.io.borrow_mut().mark_wakeup_only(index);
        Ok(())
    }

    /// Stops watching `fd` for reading; true if a reader was removed. False
    /// after close.
    pub fn remove_reader(&self, fd: &impl AsFd) -> bool {
        self.remove_watcher(fd.as_fd().as_raw_fd(), Direction::Read, false)
    }

    /// Stops watching `fd` for writing; true if a writer was removed.
    pub fn remove_writer(&self, fd: &impl AsFd) -> bool {
        self.remove_watcher(fd.as_fd().as_raw_fd(), Direction::Write, false)
    }

    /// `remove_reader` by fd number, for a watcher's own callback, which has
    /// no borrow of the fd at hand (the `sock_*` waiter registry disarms
    /// itself this way). Removing needs no proof that the fd is open: it
    /// only drops what `add_reader`, which had one, registered under that
    /// number. Plumbing for the crates above, not part of the asyncio API.
    #[doc(hidden)]
    pub fn remove_reader_by_number(&self, fd: RawFd) -> bool {
        self.remove_watcher(fd, Direction::Read, false)
    }

    /// `remove_writer` by fd number; as
    /// [`remove_reader_by_number`](Self::remove_reader_by_number).
    #[doc(hidden)]
    pub fn remove_writer_by_number(&self, fd: RawFd) -> bool {
        self.remove_watcher(fd, Direction::Write, false)
    }

    /// Claims `fd` for a transport: until the claim is dropped, `add_reader`
    /// and `add_writer` on it fail with [`Error::FdInUse`], and only the
    /// claim can watch it. The fd is registered with the reactor (with no
    /// interest yet) while it is borrowed here, so the claim can watch it
    /// later without a borrow: the transport must drop the claim before it
    /// closes the fd.
    ///
    /// # Errors
    /// [`Error::Closed`]; [`Error::FdInUse`] if already claimed.
    pub fn claim_fd(&self, fd: &impl AsFd) -> Result<FdClaim, Error> {
        if self.is_closed() {
            return Err(Error::Closed);
        }
        let borrowed = fd.as_fd();
        let fd = borrowed.as_raw_fd();
        let index = fd_index(fd)?;
        let poller = self.inner.poller.borrow();
        let poller = poller.as_ref().ok_or(Error::Closed)?;
        let mut io = self.inner.io.borrow_mut();
        io.unmark_wakeup_only(index);
        let watch = io.entry(index);
        if watch.claimed {
            return Err(Error::FdInUse(fd));
        }
        if watch.registration.is_none() {
            match poller.register(borrowed, index, Interest::NONE) {
                Ok(registration) => watch.registration = Some(registration),
                Err(error) => {
                    io.remove_if_unused(fd);
                    return Err(Error::Io(error));
                }
            }
        }
        watch.claimed = true;
        Ok(FdClaim {
            event_loop: self.downgrade(),
            fd,
        })
    }

    /// Installs a watcher. `borrowed` is the caller's proof that `fd` is
    /// open, needed to register it; `None` only for a claim's own watchers
    /// (`owner`), whose fd was registered by `claim_fd`.
    pub(crate) fn add_watcher(
        &self,
        fd: RawFd,
        borrowed: Option<BorrowedFd<'_>>,
        direction: Direction,
        node: Rc<dyn Callback>,
        owner: bool,
    ) -> Result<(), Error> {
        if self.is_closed() {
            return Err(Error::Closed);
        }
        let index = fd_index(fd)?;
        let poller = self.inner.poller.borrow();
        let poller = poller.as_ref().ok_or(Error::Closed)?;
        let mut io = self.inner.io.borrow_mut();
        io.unmark_wakeup_only(index);
        let watch = io.entry(index);
        if watch.claimed && !owner {
            return Err(Error::FdInUse(fd));
        }
        let previous = direction.slot(watch).replace(node);
        if let Err(error) = sync_interest(poller, borrowed, index, watch, true) {
            *direction.slot(watch) = previous;
            io.remove_if_unused(fd);
            return Err(Error::Io(error));
        }
        drop(io);
        if let Some(previous) = previous {
            previous.cancel();
        }
        Ok(())
    }

    pub(crate) fn remove_watcher(&self, fd: RawFd, direction: Direction, owner: bool) -> bool {
        let poller = self.inner.poller.borrow();
        let Some(poller) = poller.as_ref() else {
            return false;
        };
        let mut io = self.inner.io.borrow_mut();
        let Some(watch) = io.get_mut(fd) else {
            return false;
        };
        if watch.claimed && !owner {
            return false;
        }
        let Some(removed) = direction.slot(watch).take() else {
            return false;
        };
        let key = usize::try_from(fd).unwrap_or_default();
        if let Err(error) = sync_interest(poller, None, key, watch, false) {
            tracing::debug!(target: "evloop", fd, %error, "updating fd interest failed");
        }
        io.remove_if_unused(fd);
        drop(io);
        removed.cancel();
        true
    }
}

/// The table index (and reactor key) of an fd number; never fails for the
/// number of a `BorrowedFd`, which is non-negative.
fn fd_index(fd: RawFd) -> Result<usize, Error> {
    usize::try_from(fd)
        .map_err(|_| Error::invalid_argument(format!("fd must be non-negative, got {fd}")))
}

/// A transport's exclusive hold on an fd (see [`EventLoop::claim_fd`]).
/// Dropping it removes its watchers and releases the fd.
#[derive(Debug)]
pub struct FdClaim {
    event_loop: std::rc::Weak<crate::event_loop::Inner>,
    fd: RawFd,
}

impl FdClaim {
    /// The claimed fd.
    pub fn fd(&self) -> RawFd {
        self.fd
    }

    fn event_loop(&self) -> Result<EventLoop, Error> {
        self.event_loop
            .upgrade()
            .map(EventLoop::from_inner)
            .ok_or(Error::Closed)
    }

    /// `add_reader` for the claimed fd.
    ///
    /// # Errors
    /// As [`EventLoop::add_reader`], without `FdInUse`.
    #[track_caller]
    pub fn set_reader(&self, callback: impl FnMut() + 'static) -> Result<(), Error> {
        let node = RepeatNode::boxed(callback, Location::caller());
        self.event_loop()?
            .add_watcher(self.fd, None, Direction::Read, node, true)
    }

    /// `add_writer` for the claimed fd.
    ///
    /// # Errors
    /// As [`EventLoop::add_writer`], without `FdInUse`.
    #[track_caller]
    pub fn set_writer(&self, callback: impl FnMut() + 'static) -> Result<(), Error> {
        let node = RepeatNode::boxed(callback, Location::caller());
        self.event_loop()?
            .add_watcher(self.fd, None, Direction::Write, node, true)
    }

    /// `remove_reader` for the claimed fd.
    pub fn clear_reader(&self) -> bool {
        self.event_loop()
            .is_ok_and(|lp| lp.remove_watcher(self.fd, Direction::Read, true))
    }

    /// `remove_writer` for the claimed fd.
    pub fn clear_writer(&self) -> bool {
        self.event_loop()
            .is_ok_and(|lp| lp.remove_watcher(self.fd, Direction::Write, true))
    }
}

impl Drop for FdClaim {
    fn drop(&mut self) {
        let Ok(event_loop) = self.event_loop() else {
            return;
        };
        self.clear_reader();
        self.clear_writer();
        let released = event_loop.inner.io.try_borrow_mut().map(|mut io| {
            if let Some(watch) = io.get_mut(self.fd) {
                watch.claimed = false;
            }
            io.remove_if_unused(self.fd);
        });
        drop(released);
    }
}
