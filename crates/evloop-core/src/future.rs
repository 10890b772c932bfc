//! `LoopFuture<T>`: asyncio's `Future`, bound to a loop (docs/behaviour.md 4.1).

use std::cell::RefCell;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::rc::{Rc, Weak};
use std::task::{Context, Poll, Waker};

use crate::event_loop::Inner;
use crate::{Error, EventLoop};

type DoneCallback<T> = Box<dyn FnOnce(&LoopFuture<T>)>;

/// Identifies a done callback, for `remove_done_callback`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct CallbackId(pub(crate) u64);

struct State<T> {
    outcome: Option<Result<T, Error>>,
    wakers: Vec<Waker>,
    callbacks: Vec<(CallbackId, DoneCallback<T>)>,
    next_id: u64,
}

/// A value that will be set later, awaitable, with done callbacks run by the
/// loop (never inline). Clones share the same future.
#[doc(alias = "Future")]
pub struct LoopFuture<T> {
    state: Rc<RefCell<State<T>>>,
    event_loop: Weak<Inner>,
}

impl<T> Clone for LoopFuture<T> {
    fn clone(&self) -> Self {
        LoopFuture {
            state: self.state.clone(),
            event_loop: self.event_loop.clone(),
        }
    }
}

impl EventLoop {
    /// A new pending future attached to this loop (asyncio's `create_future`).
    pub fn create_future<T: 'static>(&self) -> LoopFuture<T> {
        LoopFuture {
            state: Rc::new(RefCell::new(State {
                outcome: None,
                wakers: Vec::new(),
                callbacks: Vec::new(),
                next_id: 0,
            })),
            event_loop: self.downgrade(),
        }
    }
}

impl<T: 'static> LoopFuture<T> {
    /// Completes the future with `value`.
    ///
    /// # Errors
    /// [`Error::InvalidState`] if it is already done (or cancelled).
    pub fn set_result(&self, value: T) -> Result<(), Error> {
        self.complete(Ok(value))
    }

    /// Completes the future with `error`.
    ///
    /// # Errors
    /// [`Error::InvalidState`] if it is already done.
    pub fn set_error(&self, error: Error) -> Result<(), Error> {
        self.complete(Err(error))
    }

    /// Cancels the future; false if it was already done.
    pub fn cancel(&self) -> bool {
        self.complete(Err(Error::Cancelled(None))).is_ok()
    }

    /// True once a result, an error or a cancellation is set.
    pub fn done(&self) -> bool {
        self.state.borrow().outcome.is_some()
    }

    /// True if cancelled.
    pub fn cancelled(&self) -> bool {
        matches!(self.state.borrow().outcome, Some(Err(Error::Cancelled(_))))
    }

    /// Runs `callback(&future)` on the loop once the future is done (at once
    /// scheduled, if it already is).
    pub fn add_done_callback(&self, callback: impl FnOnce(&LoopFuture<T>) + 'static) -> CallbackId {
        let mut state = self.state.borrow_mut();
        let id = CallbackId(state.next_id);
        state.next_id += 1;
        if state.outcome.is_some() {
            drop(state);
            self.schedule_callbacks(vec![(id, Box::new(callback))]);
        } else {
            state.callbacks.push((id, Box::new(callback)));
        }
        id
    }

    /// Removes a done callback that has not been scheduled yet; returns how
    /// many were removed (0 or 1).
    pub fn remove_done_callback(&self, id: CallbackId) -> usize {
        let mut state = self.state.borrow_mut();
        let before = state.callbacks.len();
        state.callbacks.retain(|(cid, _)| *cid != id);
        before - state.callbacks.len()
    }

    fn complete(&self, outcome: Result<T, Error>) -> Result<(), Error> {
        let mut state = self.state.borrow_mut();
        if state.outcome.is_some() {
            return Err(Error::InvalidState("future is already done"));
        }
        state.outcome = Some(outcome);
        let wakers = std::mem::take(&mut state.wakers);
        let callbacks = std::mem::take(&mut state.callbacks);
        drop(state);
        wakers.into_iter().for_each(Waker::wake);
        self.schedule_callbacks(callbacks);
        Ok(())
    }

    /// Done callbacks go through `call_soon`; on a closed loop they are dropped.
    fn schedule_callbacks(&self, callbacks: Vec<(CallbackId, DoneCallback<T>)>) {
        let Some(inner) = self.event_loop.upgrade() else {
            return;
        };
        let event_loop = EventLoop::from_inner(inner);
        for (_, callback) in callbacks {
            let future = self.clone();
            let _ = event_loop.call_soon(move || callback(&future));
        }
    }
}

impl<T: Clone + 'static> LoopFuture<T> {
    /// The result (a clone), the error, or `Error::Cancelled`.
    ///
    /// # Errors
    /// [`Error::InvalidState`] if not done yet; otherwise the stored error.
    pub fn result(&self) -> Result<T, Error> {
        match &self.state.borrow().outcome {
            None => Err(Error::InvalidState("result is not set")),
            Some(outcome) => outcome.clone(),
        }
    }
}

impl<T: Clone + 'static> Future for LoopFuture<T> {
    type Output = Result<T, Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut state = self.state.borrow_mut();
        if let Some(outcome) = &state.outcome {
            return Poll::Ready(outcome.clone());
        }
        if !state.wakers.iter().any(|w| w.will_wake(cx.waker())) {
            state.wakers.push(cx.waker().clone());
        }
        Poll::Pending
    }
}

impl<T> fmt::Debug for LoopFuture<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.state.borrow().outcome {
            None => "pending",
            Some(Ok(_)) => "finished",
            Some(Err(Error::Cancelled(_))) => "cancelled",
            Some(Err(_)) => "error",
        };
        f.debug_struct("LoopFuture").field("state", &state).finish()
    }
}
