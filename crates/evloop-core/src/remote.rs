//! `Remote`: the only part of a loop that crosses threads.
//!
//! Other threads push onto a lock-free queue and wake the reactor; the
//! reactor's waker writes its eventfd only when the loop sleeps, so a busy
//! loop takes posts without any syscall.

use std::fmt;

use async_task::Runnable;
use concurrent_queue::ConcurrentQueue;
use evloop_reactor::Waker;

use crate::ready::RemoteItem;
use crate::sync::thread::{current_id, ThreadId};
use crate::sync::{Arc, AtomicBool, Mutex, Ordering};
use crate::Error;

/// The thread-safe half of a loop, shared by `Remote`s, task wakers and the loop.
pub(crate) struct Shared {
    pub(crate) queue: ConcurrentQueue<RemoteItem>,
    /// Task steps woken on another thread after the loop closed: they may
    /// only be dropped on the loop's thread, which empties this when it next
    /// touches the loop (a `Task` handle dropped, the loop dropped).
    graveyard: Mutex<Vec<Runnable>>,
    pub(crate) waker: Waker,
    pub(crate) closed: AtomicBool,
    pub(crate) owner: ThreadId,
}

impl Shared {
    pub(crate) fn new(waker: Waker) -> Self {
        Shared {
            queue: ConcurrentQueue::unbounded(),
            graveyard: Mutex::new(Vec::new()),
            waker,
            closed: AtomicBool::new(false),
            owner: current_id(),
        }
    }

    pub(crate) fn post(&self, item: RemoteItem) -> Result<(), Error> {
        if self.closed.load(Ordering::Acquire) {
            return Err(Error::Closed);
        }
        // The queue is unbounded and only closed in `close`, after `closed` is
        // set: a failed push means the loop closed meanwhile.
        self.queue.push(item).map_err(|_| Error::Closed)?;
        self.waker.wake();
        Ok(())
    }

    /// The schedule function of every task: a woken task goes back to its loop.
    pub(crate) fn schedule(&self, runnable: Runnable) {
        if self.closed.load(Ordering::Acquire) {
            return self.bury(runnable);
        }
        // Woken on the loop's own thread while it runs (the common case: a
        // future completed by a callback): straight onto the ready queue, as
        // asyncio's call_soon of the task step, with no queue hop or wake.
        let Err(runnable) = crate::run::schedule_on_running_loop(self, runnable) else {
            return;
        };
        match self.queue.push(RemoteItem::Task(runnable)) {
            Ok(()) => self.waker.wake(),
            Err(refused) => {
                if let RemoteItem::Task(runnable) = refused.into_inner() {
                    self.bury(runnable);
                }
            }
        }
    }

    /// A step that will never run: dropped here on the loop's thread, kept
    /// for the loop's thread otherwise (a local task's future must not be
    /// dropped elsewhere).
    fn bury(&self, runnable: Runnable) {
        if current_id() == self.owner {
            drop(runnable);
        } else if let Ok(mut graveyard) = self.graveyard.lock() {
            graveyard.push(runnable);
        } else {
            std::mem::forget(runnable);
        }
    }

    /// Drops buried steps; call on the loop's thread only.
    pub(crate) fn empty_graveyard(&self) {
        let buried = match self.graveyard.lock() {
            Ok(mut graveyard) => std::mem::take(&mut *graveyard),
            Err(_) => return,
        };
        drop(buried);
    }
}

/// Drops a task step that can no longer run. A local task's future may only
/// be dropped on its own thread; elsewhere it is leaked on purpose (the last
/// reference to a closed loop went away on another thread).
fn discard_runnable(owner: ThreadId, runnable: Runnable) {
    if current_id() == owner {
        drop(runnable);
    } else {
        std::mem::forget(runnable);
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        while let Ok(item) = self.queue.pop() {
            if let RemoteItem::Task(runnable) = item {
                discard_runnable(self.owner, runnable);
            }
        }
        let buried = self
            .graveyard
            .get_mut()
            .map(std::mem::take)
            .unwrap_or_default();
        for runnable in buried {
            discard_runnable(self.owner, runnable);
        }
    }
}

/// A `Send + Sync + Clone` handle for posting callbacks to a loop from any
/// thread (asyncio's `call_soon_threadsafe`).
#[derive(Clone)]
#[doc(alias = "call_soon_threadsafe")]
pub struct Remote {
    pub(crate) shared: Arc<Shared>,
}

impl Remote {
    /// Schedules `f` on the loop and wakes it if it is blocked in poll.
    ///
    /// From the loop's own thread, FIFO order with `call_soon` holds.
    ///
    /// # Errors
    /// [`Error::Closed`] once the loop is closed; `f` is dropped.
    pub fn call_soon_threadsafe(&self, f: impl FnOnce() + Send + 'static) -> Result<(), Error> {
        self.shared.post(RemoteItem::Call(Box::new(f)))
    }

    /// True once the loop is closed.
    pub fn is_closed(&self) -> bool {
        self.shared.closed.load(Ordering::Acquire)
    }
}

impl fmt::Debug for Remote {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Remote")
            .field("closed", &self.is_closed())
            .finish()
    }
}
