//! Readiness futures on an fd (`readable`/`writable`, as tokio's `AsyncFd`):
//! wrap your own non-blocking sockets without callbacks. Built on the fd's
//! reader/writer watcher, shared by every future waiting on the same fd and
//! direction, and removed when the last of them is done or dropped.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::panic::Location;
use std::pin::Pin;
use std::rc::{Rc, Weak};
use std::task::{Context, Poll, Waker};

use crate::event_loop::Inner;
use crate::handle::Callback;
use crate::io_watch::Direction;
use crate::{Error, EventLoop};

/// The watchers these futures installed, one per fd and direction.
#[derive(Default)]
struct ReadinessTable {
    slots: RefCell<HashMap<(RawFd, Direction), Rc<Slot>>>,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum WaitState {
    Pending,
    Ready,
    /// `add_reader`/`add_writer`/`remove_*` took the fd's watcher away.
    Replaced,
}

struct Waiter {
    state: Cell<WaitState>,
    waker: RefCell<Option<Waker>>,
}

/// One installed watcher and the futures waiting on it.
struct Slot {
    fd: RawFd,
    direction: Direction,
    /// Still the fd's watcher and not yet fired.
    active: Cell<bool>,
    waiters: RefCell<Vec<Rc<Waiter>>>,
    event_loop: Weak<Inner>,
}

impl Slot {
    /// Ends this watcher's life: out of the table, every waiter settled.
    fn settle(self: &Rc<Self>, state: WaitState) {
        self.active.set(false);
        if let Some(event_loop) = self.event_loop.upgrade().map(EventLoop::from_inner) {
            if let Some(table) = event_loop.get_extension::<ReadinessTable>() {
                let mut slots = table.slots.borrow_mut();
                let key = (self.fd, self.direction);
                if slots.get(&key).is_some_and(|s| Rc::ptr_eq(s, self)) {
                    slots.remove(&key);
                }
            }
        }
        let waiters = std::mem::take(&mut *self.waiters.borrow_mut());
        for waiter in waiters {
            waiter.state.set(state);
            let waker = waiter.waker.borrow_mut().take();
            if let Some(waker) = waker {
                waker.wake();
            }
        }
    }

    /// Removes the watcher (ours: the slot is active) from the loop.
    fn uninstall(self: &Rc<Self>) {
        self.active.set(false);
        if let Some(event_loop) = self.event_loop.upgrade().map(EventLoop::from_inner) {
            event_loop.remove_watcher(self.fd, self.direction, false);
        }
        self.settle(WaitState::Ready);
    }
}

/// The watcher's callback node: fires once, then removes itself.
struct Node {
    slot: Rc<Slot>,
    location: &'static Location<'static>,
}

impl Callback for Node {
    fn call(&self) {
        if self.slot.active.get() {
            self.slot.uninstall();
        }
    }
    fn cancel(&self) {
        // Our own removal marks the slot inactive first; anything else is a
        // user's add_reader/remove_reader taking the fd's watcher.
        if self.slot.active.get() {
            self.slot.settle(WaitState::Replaced);
        }
    }
    fn is_cancelled(&self) -> bool {
        !self.slot.active.get()
    }
    fn location(&self) -> &'static Location<'static> {
        self.location
    }
}

/// A future that completes when an fd is readable (or writable): what
/// [`EventLoop::readable`] and [`EventLoop::writable`] return.
///
/// Readiness is level-triggered, as asyncio's: the future completes on the
/// first loop iteration in which the fd is ready (at once, if it already
/// is). Then do the non-blocking I/O; on `WouldBlock`, wait again.
/// Dropping the future removes its watcher (the last one waiting on the fd
/// and direction does), so it is cancel-safe. Any number of futures may wait
/// on one fd.
#[must_use = "futures do nothing unless awaited"]
pub struct Readiness<'fd> {
    fd: BorrowedFd<'fd>,
    direction: Direction,
    event_loop: Weak<Inner>,
    location: &'static Location<'static>,
    waiting: Option<(Rc<Slot>, Rc<Waiter>)>,
}

impl Readiness<'_> {
    fn register(
        &self,
        event_loop: &EventLoop,
        waker: &Waker,
    ) -> Result<(Rc<Slot>, Rc<Waiter>), Error> {
        let fd = self.fd.as_raw_fd();
        let key = (fd, self.direction);
        let table = event_loop.extension(ReadinessTable::default);
        let existing = table.slots.borrow().get(&key).cloned();
        let slot = match existing {
            Some(slot) if slot.active.get() => slot,
            _ => {
                let slot = Rc::new(Slot {
                    fd,
                    direction: self.direction,
                    active: Cell::new(true),
                    waiters: RefCell::new(Vec::new()),
                    event_loop: self.event_loop.clone(),
                });
                let node = Rc::new(Node {
                    slot: slot.clone(),
                    location: self.location,
                });
                event_loop.add_watcher(fd, Some(self.fd), self.direction, node, false)?;
                table.slots.borrow_mut().insert(key, slot.clone());
                slot
            }
        };
        let waiter = Rc::new(Waiter {
            state: Cell::new(WaitState::Pending),
            waker: RefCell::new(Some(waker.clone())),
        });
        slot.waiters.borrow_mut().push(waiter.clone());
        Ok((slot, waiter))
    }
}

impl Future for Readiness<'_> {
    type Output = Result<(), Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let Some(event_loop) = this.event_loop.upgrade().map(EventLoop::from_inner) else {
            return Poll::Ready(Err(Error::Closed));
        };
        if event_loop.is_closed() {
            return Poll::Ready(Err(Error::Closed));
        }
        let Some((_, waiter)) = &this.waiting else {
            return match this.register(&event_loop, cx.waker()) {
                Ok(waiting) => {
                    this.waiting = Some(waiting);
                    Poll::Pending
                }
                Err(error) => Poll::Ready(Err(error)),
            };
        };
        match waiter.state.get() {
            WaitState::Ready => {
                this.waiting = None;
                Poll::Ready(Ok(()))
            }
            WaitState::Replaced => {
                this.waiting = None;
                Poll::Ready(Err(Error::InvalidState(
                    "the fd's watcher was replaced or removed (add_reader/add_writer/remove_*)",
                )))
            }
            WaitState::Pending => {
                let mut waker = waiter.waker.borrow_mut();
                if !waker.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                    *waker = Some(cx.waker().clone());
                }
                Poll::Pending
            }
        }
    }
}

impl Drop for Readiness<'_> {
    fn drop(&mut self) {
        let Some((slot, waiter)) = self.waiting.take() else {
            return;
        };
        if waiter.state.get() != WaitState::Pending || !slot.active.get() {
            return;
        }
        let last = {
            let mut waiters = slot.waiters.borrow_mut();
            waiters.retain(|w| !Rc::ptr_eq(w, &waiter));
            waiters.is_empty()
        };
        if last {
            slot.uninstall();
        }
    }
}

impl fmt::Debug for Readiness<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Readiness")
            .field("fd", &self.fd.as_raw_fd())
            .field("direction", &self.direction)
            .field("waiting", &self.waiting.is_some())
            .finish()
    }
}

impl EventLoop {
    /// A future that completes when `fd` is readable (tokio's
    /// `AsyncFd::readable`; asyncio users would `add_reader` and wait on a
    /// future). Built on the fd's reader watcher: while it waits, the fd
    /// has no other reader.
    ///
    /// # Errors
    /// The future yields [`Error::FdInUse`] if a transport owns the fd,
    /// [`Error::Io`] if the fd cannot be watched (a regular file: `EPERM`),
    /// [`Error::Closed`] on a closed loop, and [`Error::InvalidState`] if
    /// `add_reader`/`remove_reader` on the same fd took its watcher away.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::io::{Read, Write};
    /// use std::os::unix::net::UnixStream;
    /// use evloop_core::EventLoop;
    ///
    /// let lp = EventLoop::new()?;
    /// let (mut a, mut b) = UnixStream::pair()?;
    /// b.set_nonblocking(true)?;
    /// let waiter = lp.clone();
    /// let received = lp.run_until_complete(async move {
    ///     a.write_all(b"ping")?;
    ///     waiter.readable(&b).await?;
    ///     let mut buf = [0; 4];
    ///     b.read_exact(&mut buf)?;
    ///     Ok::<_, evloop_core::Error>(buf)
    /// })??;
    /// assert_eq!(&received, b"ping");
    /// lp.close()?;
    /// # Ok::<(), evloop_core::Error>(())
    /// ```
    #[doc(alias = "AsyncFd")]
    #[track_caller]
    pub fn readable<'fd>(&self, fd: &'fd impl AsFd) -> Readiness<'fd> {
        self.readiness(fd.as_fd(), Direction::Read)
    }

    /// A future that completes when `fd` is writable; as
    /// [`readable`](Self::readable), with the fd's writer watcher.
    ///
    /// # Errors
    /// As [`readable`](Self::readable).
    #[track_caller]
    pub fn writable<'fd>(&self, fd: &'fd impl AsFd) -> Readiness<'fd> {
        self.readiness(fd.as_fd(), Direction::Write)
    }

    #[track_caller]
    fn readiness<'fd>(&self, fd: BorrowedFd<'fd>, direction: Direction) -> Readiness<'fd> {
        Readiness {
            fd,
            direction,
            event_loop: self.downgrade(),
            location: Location::caller(),
            waiting: None,
        }
    }
}
