//! `Task<T>`: a future driven by the loop (SPEC 4.2–4.4), over async-task.
//!
//! The user's future is wrapped in a body that catches its panics, honours
//! `cancel()` at the next poll, and stores the outcome where the `Task`
//! handle finds it. Dropping the handle detaches the task, as an asyncio
//! task runs on whether or not anyone holds it.

use std::cell::{Cell, RefCell};
use std::fmt;
use std::future::{poll_fn, Future};
use std::panic::{catch_unwind, AssertUnwindSafe, Location};
use std::pin::{pin, Pin};
use std::rc::{Rc, Weak};
use std::task::{Context, Poll, Waker};

use async_task::FallibleTask;

use crate::event_loop::Inner;
use crate::exception::ErrorContext;
use crate::ready::Entry;
use crate::{Error, EventLoop};

/// A type-erased task body, as a task factory sees it.
pub type LocalBoxFuture = Pin<Box<dyn Future<Output = ()>>>;

/// Wraps every task body `create_task` makes (asyncio's task factory): for
/// naming, spans, metrics. Must return a future that drives the body.
pub type TaskFactory = Rc<dyn Fn(&EventLoop, LocalBoxFuture) -> LocalBoxFuture>;

struct TaskState<T> {
    output: RefCell<Option<Result<T, Error>>>,
    cancel_requested: Cell<bool>,
    /// The task ended by cancellation (set when its outcome is known).
    cancelled: Cell<bool>,
    detached: Cell<bool>,
    waker: RefCell<Option<Waker>>,
    location: &'static Location<'static>,
}

impl<T> TaskState<T> {
    fn describe(&self) -> String {
        format!("<Task created at {}>", self.location)
    }

    /// A panic nobody will ever see through the handle goes to the exception
    /// handler (asyncio's "Task exception was never retrieved").
    fn report_unretrieved(&self, error: Error, event_loop: &Weak<Inner>) {
        if let Some(inner) = event_loop.upgrade() {
            EventLoop::from_inner(inner).call_exception_handler(ErrorContext {
                message: "Task exception was never retrieved".into(),
                error: Some(error),
                task: Some(self.describe()),
                ..ErrorContext::default()
            });
        }
    }
}

/// A handle to a spawned future. Awaiting it gives the future's output, or
/// `Error::Cancelled` / `Error::Panic`. Dropping it detaches the task.
pub struct Task<T> {
    raw: Option<FallibleTask<()>>,
    state: Rc<TaskState<T>>,
    event_loop: Weak<Inner>,
}

impl EventLoop {
    /// Spawns `future` on this loop; its first step is scheduled like
    /// `call_soon` (FIFO with callbacks).
    ///
    /// # Errors
    /// [`Error::Closed`] on a closed loop.
    #[track_caller]
    pub fn create_task<F>(&self, future: F) -> Result<Task<F::Output>, Error>
    where
        F: Future + 'static,
        F::Output: 'static,
    {
        if self.is_closed() {
            return Err(Error::Closed);
        }
        let state = Rc::new(TaskState {
            output: RefCell::new(None),
            cancel_requested: Cell::new(false),
            cancelled: Cell::new(false),
            detached: Cell::new(false),
            waker: RefCell::new(None),
            location: Location::caller(),
        });
        let body = task_body(future, state.clone(), self.downgrade());
        let shared = self.inner.shared.clone();
        let schedule = move |runnable| shared.schedule(runnable);
        let factory = self.inner.task_factory.borrow().clone();
        let (runnable, raw) = match factory {
            None => async_task::spawn_local(body, schedule),
            Some(factory) => async_task::spawn_local(factory(self, Box::pin(body)), schedule),
        };
        self.push_ready(Entry::Task(runnable));
        Ok(Task {
            raw: Some(raw.fallible()),
            state,
            event_loop: self.downgrade(),
        })
    }

    /// Sets the task factory; `None` restores the default
    /// (`None::<fn(&EventLoop, LocalBoxFuture) -> LocalBoxFuture>`).
    pub fn set_task_factory<F>(&self, factory: Option<F>)
    where
        F: Fn(&EventLoop, LocalBoxFuture) -> LocalBoxFuture + 'static,
    {
        *self.inner.task_factory.borrow_mut() = factory.map(|f| Rc::new(f) as TaskFactory);
    }

    /// The task factory, if one is set.
    pub fn get_task_factory(&self) -> Option<TaskFactory> {
        self.inner.task_factory.borrow().clone()
    }
}

async fn task_body<F: Future>(future: F, state: Rc<TaskState<F::Output>>, event_loop: Weak<Inner>) {
    let outcome = {
        let mut future = pin!(future);
        poll_fn(|cx| poll_guarded(future.as_mut(), &state, cx)).await
        // The user's future is dropped here, before the outcome is published.
    };
    state
        .cancelled
        .set(matches!(outcome, Err(Error::Cancelled)));
    if let Err(error @ Error::Panic(_)) = &outcome {
        if state.detached.get() {
            state.report_unretrieved(error.clone(), &event_loop);
            return;
        }
    }
    *state.output.borrow_mut() = Some(outcome);
}

fn poll_guarded<F: Future>(
    future: Pin<&mut F>,
    state: &TaskState<F::Output>,
    cx: &mut Context<'_>,
) -> Poll<Result<F::Output, Error>> {
    if state.cancel_requested.get() {
        return Poll::Ready(Err(Error::Cancelled));
    }
    {
        let mut waker = state.waker.borrow_mut();
        if !waker.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
            *waker = Some(cx.waker().clone());
        }
    }
    match catch_unwind(AssertUnwindSafe(|| future.poll(cx))) {
        Ok(Poll::Ready(value)) => Poll::Ready(Ok(value)),
        Ok(Poll::Pending) => Poll::Pending,
        Err(payload) => Poll::Ready(Err(Error::from_panic(&*payload))),
    }
}

impl<T> Task<T> {
    /// Requests cancellation: at its next step the future is dropped and the
    /// task ends with `Error::Cancelled`. False if it already finished.
    pub fn cancel(&self) -> bool {
        if self.done() {
            return false;
        }
        self.state.cancel_requested.set(true);
        // Not polled yet means its first step is already queued.
        let waker = self.state.waker.borrow_mut().take();
        if let Some(waker) = waker {
            waker.wake();
        }
        true
    }

    /// True once the task finished (completed, panicked or cancelled).
    pub fn done(&self) -> bool {
        self.raw.as_ref().is_none_or(FallibleTask::is_finished)
    }

    /// True if the task ended by cancellation (or its loop closed under it).
    pub fn cancelled(&self) -> bool {
        if self.state.cancelled.get() {
            return true;
        }
        // Finished without an outcome: its step was dropped unrun (loop closed).
        self.raw.as_ref().is_some_and(FallibleTask::is_finished)
            && self.state.output.borrow().is_none()
    }
}

impl<T> Future for Task<T> {
    type Output = Result<T, Error>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let Some(raw) = self.raw.as_mut() else {
            return Poll::Ready(Err(Error::InvalidState("task output already taken")));
        };
        match Pin::new(raw).poll(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(finished) => {
                self.raw = None;
                let output = self.state.output.borrow_mut().take();
                Poll::Ready(match (finished, output) {
                    (_, Some(output)) => output,
                    // The runnable was dropped unrun: the loop closed.
                    (_, None) => {
                        self.state.cancelled.set(true);
                        Err(Error::Cancelled)
                    }
                })
            }
        }
    }
}

impl<T> Drop for Task<T> {
    fn drop(&mut self) {
        let Some(raw) = self.raw.take() else {
            return;
        };
        let inner = self.event_loop.upgrade();
        if let Some(inner) = &inner {
            inner.shared.empty_graveyard();
        }
        if raw.is_finished() {
            let output = self.state.output.borrow_mut().take();
            if let Some(Err(error @ Error::Panic(_))) = output {
                self.state.report_unretrieved(error, &self.event_loop);
            }
            return;
        }
        self.state.detached.set(true);
        match inner {
            // The loop keeps the task and drops it (and its future, on this
            // thread) at close if it has not finished by then.
            Some(inner) if !inner.closed.get() => inner.keep_detached(raw),
            // A closed loop will never run it: drop its future now.
            _ => drop(raw),
        }
    }
}

impl<T> fmt::Debug for Task<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Task")
            .field("created_at", &self.state.location)
            .field("done", &self.done())
            .finish()
    }
}
