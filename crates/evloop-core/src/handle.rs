//! `Handle` and `TimerHandle`: cancellable callbacks, one allocation each.
//!
//! A scheduled callback lives in one `Rc<Node<F>>` shared by the ready queue
//! (or the timer heap) and the user's handle. Cancelling takes the closure out
//! of the node, so its captures are freed at once, and the queue skips the
//! empty node when it comes up.

use std::cell::{Cell, RefCell};
use std::fmt;
use std::panic::Location;
use std::rc::{Rc, Weak};
use std::time::Instant;

use evloop_timers::TimerId;

use crate::event_loop::Inner;

/// A callback the ready queue can run: a scheduled `FnOnce` or an fd watcher.
pub(crate) trait Callback {
    /// Runs the callback unless it was cancelled.
    fn call(&self);
    /// Marks it cancelled and drops the closure (for `FnOnce` nodes).
    fn cancel(&self);
    fn is_cancelled(&self) -> bool;
    fn location(&self) -> &'static Location<'static>;
}

/// A one-shot callback: `call_soon`, `call_later`, `call_at`.
pub(crate) struct OnceNode<F> {
    f: Cell<Option<F>>,
    cancelled: Cell<bool>,
    location: &'static Location<'static>,
}

impl<F: FnOnce() + 'static> OnceNode<F> {
    pub(crate) fn boxed(f: F, location: &'static Location<'static>) -> Rc<dyn Callback> {
        Rc::new(OnceNode {
            f: Cell::new(Some(f)),
            cancelled: Cell::new(false),
            location,
        })
    }
}

impl<F: FnOnce()> Callback for OnceNode<F> {
    fn call(&self) {
        if let Some(f) = self.f.take() {
            f();
        }
    }
    fn cancel(&self) {
        self.cancelled.set(true);
        drop(self.f.take());
    }
    fn is_cancelled(&self) -> bool {
        self.cancelled.get()
    }
    fn location(&self) -> &'static Location<'static> {
        self.location
    }
}

/// A repeating callback: `add_reader`/`add_writer` watchers.
pub(crate) struct RepeatNode<F> {
    f: RefCell<Option<F>>,
    cancelled: Cell<bool>,
    location: &'static Location<'static>,
}

impl<F: FnMut() + 'static> RepeatNode<F> {
    pub(crate) fn boxed(f: F, location: &'static Location<'static>) -> Rc<dyn Callback> {
        Rc::new(RepeatNode {
            f: RefCell::new(Some(f)),
            cancelled: Cell::new(false),
            location,
        })
    }
}

impl<F: FnMut()> Callback for RepeatNode<F> {
    fn call(&self) {
        if self.cancelled.get() {
            return;
        }
        // Callbacks never run re-entrantly, so the borrow cannot fail; if it
        // ever did, skipping one readiness report is the safe choice.
        if let Ok(mut slot) = self.f.try_borrow_mut() {
            if let Some(f) = slot.as_mut() {
                f();
            }
        }
    }
    fn cancel(&self) {
        self.cancelled.set(true);
        // Dropping the closure while it runs (a watcher removing itself)
        // would be unsound in spirit and impossible through RefCell: defer.
        if let Ok(mut slot) = self.f.try_borrow_mut() {
            drop(slot.take());
        }
    }
    fn is_cancelled(&self) -> bool {
        self.cancelled.get()
    }
    fn location(&self) -> &'static Location<'static> {
        self.location
    }
}

/// Where a callback was scheduled: what error reports and slow-callback logs
/// show for it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HandleInfo {
    /// The source location of the `call_soon`/`call_later`/`add_reader` call.
    pub location: &'static Location<'static>,
}

impl fmt::Display for HandleInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<Handle scheduled at {}>", self.location)
    }
}

/// A callback scheduled with `call_soon` (asyncio's `Handle`).
///
/// Dropping a handle does not cancel the callback.
pub struct Handle {
    pub(crate) node: Rc<dyn Callback>,
}

impl Handle {
    /// Cancels the callback: it will not run, and its closure (with
    /// everything it captured) is dropped now. Idempotent.
    pub fn cancel(&self) {
        self.node.cancel();
    }

    /// True once [`cancel`](Self::cancel) was called.
    pub fn cancelled(&self) -> bool {
        self.node.is_cancelled()
    }

    /// Where the callback was scheduled.
    pub fn info(&self) -> HandleInfo {
        HandleInfo {
            location: self.node.location(),
        }
    }
}

impl fmt::Debug for Handle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Handle")
            .field("location", &self.node.location())
            .field("cancelled", &self.cancelled())
            .finish()
    }
}

/// A callback scheduled with `call_later`/`call_at` (asyncio's `TimerHandle`).
///
/// The closure lives in the loop's timer heap, not behind the handle, so a
/// timer costs no allocation beyond its boxed closure (none for a closure
/// that captures nothing). Dropping the handle does not cancel the timer.
pub struct TimerHandle {
    pub(crate) id: TimerId,
    pub(crate) when: Instant,
    pub(crate) location: &'static Location<'static>,
    pub(crate) cancelled: Cell<bool>,
    pub(crate) event_loop: Weak<Inner>,
}

impl TimerHandle {
    /// The deadline on the loop's clock; unchanged by cancel or firing.
    pub fn when(&self) -> Instant {
        self.when
    }

    /// Cancels the timer: it will not run (even if it is already due in the
    /// current batch), its closure is dropped now, and its heap slot is
    /// released in O(1). Idempotent.
    pub fn cancel(&self) {
        if self.cancelled.replace(true) {
            return;
        }
        if let Some(inner) = self.event_loop.upgrade() {
            inner.forget_timer(self.id);
        }
    }

    /// True once [`cancel`](Self::cancel) was called.
    pub fn cancelled(&self) -> bool {
        self.cancelled.get()
    }

    /// Where the timer was scheduled.
    pub fn info(&self) -> HandleInfo {
        HandleInfo {
            location: self.location,
        }
    }
}

impl fmt::Debug for TimerHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TimerHandle")
            .field("when", &self.when)
            .field("location", &self.location)
            .field("cancelled", &self.cancelled())
            .finish()
    }
}

/// A timer's closure and where it was scheduled, as the heap stores it.
pub(crate) struct TimerEntry {
    pub(crate) f: Box<dyn FnOnce()>,
    pub(crate) location: &'static Location<'static>,
}
