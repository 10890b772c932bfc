//! `Task<T>`: a future driven by the loop (docs/behaviour.md 4.2–4.4), over async-task,
//! with the task API asyncio users know: names, cancellation with a message,
//! `done`/`cancelled`/`result`/`exception`, done callbacks, and the loop's
//! `current_task`/`all_tasks` through the untyped [`TaskRef`].
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
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll, Waker};

use async_task::FallibleTask;

use crate::event_loop::Inner;
use crate::exception::ErrorContext;
use crate::future::CallbackId;
use crate::ready::Entry;
use crate::{Error, EventLoop};

/// A type-erased task body, as a task factory sees it.
pub type LocalBoxFuture = Pin<Box<dyn Future<Output = ()>>>;

/// Wraps every task body `create_task` makes (asyncio's task factory): for
/// naming, spans, metrics. Must return a future that drives the body.
pub type TaskFactory = Rc<dyn Fn(&EventLoop, LocalBoxFuture) -> LocalBoxFuture>;

/// Task ids, process-wide like asyncio's name counter: the first task is
/// `Task-1`.
static NEXT_TASK_ID: AtomicU64 = AtomicU64::new(1);

crate::sync::thread_local_cell! {
    /// The task being polled on this thread, if any (`current_task`).
    static CURRENT_TASK: RefCell<Option<TaskRef>> = RefCell::new(None);
}

/// Identifies a task: unique in the process, in creation order. A task's
/// default name is `Task-<id>`, as asyncio numbers its tasks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TaskId(u64);

impl TaskId {
    /// The id as a number.
    pub fn as_u64(self) -> u64 {
        self.0
    }
}

impl fmt::Display for TaskId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Options for [`EventLoop::create_task_with`] (asyncio's `create_task`
/// keyword arguments).
///
/// # Examples
///
/// ```
/// use evloop_core::{EventLoop, TaskOptions};
///
/// let lp = EventLoop::new()?;
/// let task = lp.create_task_with(async { 1 }, TaskOptions::new().name("worker"))?;
/// assert_eq!(task.name(), "worker");
/// assert_eq!(lp.run_until_complete(task)??, 1);
/// lp.close()?;
/// # Ok::<(), evloop_core::Error>(())
/// ```
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct TaskOptions {
    /// The task's name; `None` gives the default `Task-<id>`.
    pub name: Option<String>,
}

impl TaskOptions {
    /// The defaults: no name (the task is called `Task-<id>`).
    pub fn new() -> Self {
        TaskOptions::default()
    }

    /// Names the task (asyncio's `name=`).
    #[must_use = "options do nothing unless passed to create_task_with"]
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Status {
    Pending,
    /// Completed with a value (in `TaskState::output`, until taken).
    Finished,
    /// Ended with an error other than cancellation (a panic), in `error`.
    Failed,
    /// Ended by cancellation (or its loop closed under it), in `error`.
    Cancelled,
}

type TaskCallback = Box<dyn FnOnce(&TaskRef)>;

/// The untyped part of a task, shared by `Task<T>`, every `TaskRef` and the
/// running body.
struct Header {
    id: TaskId,
    /// `None`: the default name, `Task-<id>` (formatted only when asked).
    name: RefCell<Option<String>>,
    location: &'static Location<'static>,
    status: Cell<Status>,
    cancel_requested: Cell<bool>,
    cancel_message: RefCell<Option<String>>,
    /// The outcome of a `Failed` or `Cancelled` task.
    error: RefCell<Option<Error>>,
    /// Someone saw the outcome (awaited, `result()`, `exception()`): a panic
    /// is then not reported as "never retrieved".
    retrieved: Cell<bool>,
    /// The waker of the task's last step, to wake it for a cancel.
    waker: RefCell<Option<Waker>>,
    /// The `Task` handle was dropped: nobody but the loop keeps the task.
    detached: Cell<bool>,
    callbacks: RefCell<Vec<(CallbackId, TaskCallback)>>,
    next_callback: Cell<u64>,
    event_loop: Weak<Inner>,
}

impl Header {
    fn name(&self) -> String {
        self.name
            .borrow()
            .clone()
            .unwrap_or_else(|| format!("Task-{}", self.id))
    }

    fn describe(&self) -> String {
        format!("<Task name='{}' created at {}>", self.name(), self.location)
    }

    fn cancel(&self, message: Option<String>) -> bool {
        if self.status.get() != Status::Pending {
            return false;
        }
        self.cancel_requested.set(true);
        *self.cancel_message.borrow_mut() = message;
        // Not polled yet means its first step is already queued.
        let waker = self.waker.borrow_mut().take();
        if let Some(waker) = waker {
            waker.wake();
        }
        true
    }

    /// The stored error of a failed or cancelled task.
    fn stored_error(&self) -> Error {
        self.error
            .borrow()
            .clone()
            .unwrap_or(Error::Cancelled(None))
    }

    fn exception(&self) -> Result<Option<Error>, Error> {
        match self.status.get() {
            Status::Pending => Err(Error::InvalidState("exception is not set")),
            Status::Cancelled => Err(self.stored_error()),
            Status::Failed => {
                self.retrieved.set(true);
                Ok(Some(self.stored_error()))
            }
            Status::Finished => Ok(None),
        }
    }

    fn event_loop(&self) -> Option<EventLoop> {
        self.event_loop.upgrade().map(EventLoop::from_inner)
    }
}

impl Drop for Header {
    /// A panic nobody saw goes to the exception handler when the last
    /// reference to its task goes (asyncio's "Task exception was never
    /// retrieved", logged from the task's `__del__`).
    fn drop(&mut self) {
        if self.status.get() != Status::Failed || self.retrieved.get() {
            return;
        }
        let Some(event_loop) = self.event_loop() else {
            return;
        };
        event_loop.call_exception_handler(ErrorContext {
            message: "Task exception was never retrieved".into(),
            error: self.error.get_mut().take(),
            task: Some(self.describe()),
            ..ErrorContext::default()
        });
    }
}

struct TaskState<T> {
    header: Header,
    output: RefCell<Option<T>>,
}

/// What a `TaskRef` sees of a `TaskState<T>`, whatever `T` is.
trait AnyTask {
    fn header(&self) -> &Header;
}

impl<T> AnyTask for TaskState<T> {
    fn header(&self) -> &Header {
        &self.header
    }
}

impl<T: 'static> TaskState<T> {
    fn task_ref(self: &Rc<Self>) -> TaskRef {
        TaskRef { task: self.clone() }
    }

    /// Publishes the outcome and schedules the done callbacks.
    fn finish(self: &Rc<Self>, outcome: Result<T, Error>) {
        let header = &self.header;
        match outcome {
            Ok(value) => {
                *self.output.borrow_mut() = Some(value);
                header.status.set(Status::Finished);
            }
            Err(error) => {
                let status = if error.is_cancelled() {
                    Status::Cancelled
                } else {
                    Status::Failed
                };
                *header.error.borrow_mut() = Some(error);
                header.status.set(status);
            }
        }
        header.waker.borrow_mut().take();
        let callbacks = std::mem::take(&mut *header.callbacks.borrow_mut());
        if !callbacks.is_empty() {
            schedule_callbacks(header, &self.task_ref(), callbacks);
        }
    }
}

impl<T> TaskState<T> {
    /// What awaiting the task gives: the value (moved out), or the error.
    fn take_outcome(&self) -> Result<T, Error> {
        let header = &self.header;
        header.retrieved.set(true);
        match header.status.get() {
            Status::Pending => Err(Error::InvalidState("result is not set")),
            Status::Finished => self
                .output
                .borrow_mut()
                .take()
                .ok_or(Error::InvalidState("task output already taken")),
            Status::Failed | Status::Cancelled => Err(header.stored_error()),
        }
    }
}

/// Done callbacks go through `call_soon`, in registration order; on a
/// closed loop they are dropped.
fn schedule_callbacks(header: &Header, task: &TaskRef, callbacks: Vec<(CallbackId, TaskCallback)>) {
    let Some(event_loop) = header.event_loop() else {
        return;
    };
    for (_, callback) in callbacks {
        let task = task.clone();
        let _ = event_loop.call_soon(move || callback(&task));
    }
}

fn add_done_callback(task: &TaskRef, callback: TaskCallback) -> CallbackId {
    let header = task.task.header();
    let id = CallbackId(header.next_callback.get());
    header.next_callback.set(id.0 + 1);
    if header.status.get() == Status::Pending {
        header.callbacks.borrow_mut().push((id, callback));
    } else {
        schedule_callbacks(header, task, vec![(id, callback)]);
    }
    id
}

fn remove_done_callback(header: &Header, id: CallbackId) -> usize {
    let mut callbacks = header.callbacks.borrow_mut();
    let before = callbacks.len();
    callbacks.retain(|(cid, _)| *cid != id);
    before - callbacks.len()
}

/// Marks a task cancelled if its body is dropped before it finished: the
/// loop closed with the task's step unrun (or it was never polled).
struct PendingGuard<T>(Rc<TaskState<T>>);

impl<T> Drop for PendingGuard<T> {
    fn drop(&mut self) {
        let header = &self.0.header;
        if header.status.get() == Status::Pending {
            *header.error.borrow_mut() = Some(Error::Cancelled(header.cancel_message.take()));
            header.status.set(Status::Cancelled);
            header.waker.borrow_mut().take();
            // The loop is closed: nothing would run the callbacks.
            drop(std::mem::take(&mut *header.callbacks.borrow_mut()));
        }
    }
}

/// A handle to a spawned future. Awaiting it gives the future's output, or
/// `Error::Cancelled` / `Error::Panic`. Dropping it detaches the task.
///
/// A `Task` is typed by its output; [`TaskRef`] (from
/// [`task_ref`](Self::task_ref), `current_task`, `all_tasks`) is the untyped
/// view with the same identity, state and cancellation.
pub struct Task<T> {
    raw: Option<FallibleTask<()>>,
    state: Rc<TaskState<T>>,
}

/// Registered tasks of a loop (weakly), for `all_tasks`; pruned of finished
/// ones whenever the list doubles.
#[derive(Default)]
pub(crate) struct TaskRegistry {
    tasks: Vec<Weak<dyn AnyTask>>,
    prune_at: usize,
}

impl TaskRegistry {
    fn register(&mut self, task: Weak<dyn AnyTask>) {
        if self.tasks.len() >= self.prune_at {
            self.tasks.retain(|t| {
                t.upgrade()
                    .is_some_and(|t| t.header().status.get() == Status::Pending)
            });
            self.prune_at = (self.tasks.len() * 2).max(64);
        }
        self.tasks.push(task);
    }

    /// True if a task whose handle was dropped still has its future: after
    /// `close` that means another thread is handing its step to the
    /// graveyard right now (see `Inner::settle`).
    pub(crate) fn detached_pending(&self) -> bool {
        self.tasks.iter().filter_map(Weak::upgrade).any(|task| {
            let header = task.header();
            header.detached.get() && header.status.get() == Status::Pending
        })
    }

    fn live(&self) -> Vec<TaskRef> {
        self.tasks
            .iter()
            .filter_map(Weak::upgrade)
            .filter(|t| t.header().status.get() == Status::Pending)
            .map(|task| TaskRef { task })
            .collect()
    }
}

impl EventLoop {
    /// Spawns `future` on this loop; its first step is scheduled like
    /// `call_soon` (FIFO with callbacks). The task is named `Task-<id>`.
    ///
    /// # Errors
    /// [`Error::Closed`] on a closed loop.
    #[track_caller]
    pub fn create_task<F>(&self, future: F) -> Result<Task<F::Output>, Error>
    where
        F: Future + 'static,
        F::Output: 'static,
    {
        self.create_task_with(future, TaskOptions::default())
    }

    /// [`create_task`](Self::create_task) with options: a name (asyncio's
    /// `create_task(coro, name=…)`).
    ///
    /// # Errors
    /// [`Error::Closed`] on a closed loop.
    #[track_caller]
    #[doc(alias = "create_task")]
    pub fn create_task_with<F>(
        &self,
        future: F,
        options: TaskOptions,
    ) -> Result<Task<F::Output>, Error>
    where
        F: Future + 'static,
        F::Output: 'static,
    {
        if self.is_closed() {
            return Err(Error::Closed);
        }
        let state = Rc::new(TaskState {
            header: Header {
                id: TaskId(NEXT_TASK_ID.fetch_add(1, Ordering::Relaxed)),
                name: RefCell::new(options.name),
                location: Location::caller(),
                status: Cell::new(Status::Pending),
                cancel_requested: Cell::new(false),
                cancel_message: RefCell::new(None),
                error: RefCell::new(None),
                retrieved: Cell::new(false),
                waker: RefCell::new(None),
                detached: Cell::new(false),
                callbacks: RefCell::new(Vec::new()),
                next_callback: Cell::new(0),
                event_loop: self.downgrade(),
            },
            output: RefCell::new(None),
        });
        let task_ref = state.task_ref();
        let body = task_body(future, PendingGuard(state.clone()));
        let shared = self.inner.shared.clone();
        let schedule = move |runnable| shared.schedule(runnable);
        let factory = self.inner.task_factory.borrow().clone();
        let weak = Rc::downgrade(&task_ref.task);
        let (runnable, raw) = match factory {
            None => async_task::spawn_local(scoped(task_ref, body), schedule),
            Some(factory) => {
                let body = factory(self, Box::pin(body));
                async_task::spawn_local(scoped(task_ref, body), schedule)
            }
        };
        self.inner.tasks.borrow_mut().register(weak);
        self.push_ready(Entry::Task(runnable));
        Ok(Task {
            raw: Some(raw.fallible()),
            state,
        })
    }

    /// The task whose step is running now on this loop, if any (asyncio's
    /// `asyncio.current_task()`). `None` from a plain callback and from the
    /// future given to `run_until_complete` (which is not a task).
    pub fn current_task(&self) -> Option<TaskRef> {
        let task = CURRENT_TASK
            .try_with(|current| current.borrow().clone())
            .ok()??;
        let ours = std::ptr::eq(
            task.task.header().event_loop.as_ptr(),
            Rc::as_ptr(&self.inner),
        );
        ours.then_some(task)
    }

    /// Every task of this loop that is not done yet, in creation order
    /// (asyncio's `asyncio.all_tasks()`), including the current one.
    pub fn all_tasks(&self) -> Vec<TaskRef> {
        self.inner.tasks.borrow().live()
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

/// Makes `task` the current task while `future` (the body, or the factory's
/// wrapper of it) is polled.
async fn scoped<F: Future<Output = ()>>(task: TaskRef, future: F) {
    let mut future = pin!(future);
    poll_fn(|cx| {
        let _entered = Entered::new(&task);
        future.as_mut().poll(cx)
    })
    .await;
}

/// Restores the previous current task when dropped (also on unwind).
struct Entered(Option<TaskRef>);

impl Entered {
    fn new(task: &TaskRef) -> Self {
        let previous = CURRENT_TASK
            .try_with(|current| current.replace(Some(task.clone())))
            .ok()
            .flatten();
        Entered(previous)
    }
}

impl Drop for Entered {
    fn drop(&mut self) {
        let previous = self.0.take();
        let _ = CURRENT_TASK.try_with(|current| current.replace(previous));
    }
}

async fn task_body<F: Future>(future: F, guard: PendingGuard<F::Output>)
where
    F::Output: 'static,
{
    let outcome = {
        let mut future = pin!(future);
        poll_fn(|cx| poll_guarded(future.as_mut(), &guard.0.header, cx)).await
        // The user's future is dropped here, before the outcome is published.
    };
    guard.0.finish(outcome);
}

fn poll_guarded<F: Future>(
    future: Pin<&mut F>,
    header: &Header,
    cx: &mut Context<'_>,
) -> Poll<Result<F::Output, Error>> {
    if header.cancel_requested.get() {
        return Poll::Ready(Err(Error::Cancelled(header.cancel_message.take())));
    }
    {
        let mut waker = header.waker.borrow_mut();
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

impl<T: 'static> Task<T> {
    /// The task's id.
    pub fn id(&self) -> TaskId {
        self.state.header.id
    }

    /// The task's name: the one given in [`TaskOptions`] or to
    /// [`set_name`](Self::set_name), else `Task-<id>` (asyncio's `get_name`).
    #[doc(alias = "get_name")]
    pub fn name(&self) -> String {
        self.state.header.name()
    }

    /// Renames the task.
    pub fn set_name(&self, name: impl Into<String>) {
        *self.state.header.name.borrow_mut() = Some(name.into());
    }

    /// Requests cancellation: at its next step the future is dropped and the
    /// task ends with `Error::Cancelled(None)`. False if it already finished.
    pub fn cancel(&self) -> bool {
        self.state.header.cancel(None)
    }

    /// [`cancel`](Self::cancel) with a message, which the task's outcome
    /// carries: `Error::Cancelled(Some(message))` (asyncio's
    /// `cancel(msg=…)`). A later cancel before the task's next step replaces
    /// the message.
    #[doc(alias = "cancel")]
    pub fn cancel_with(&self, message: impl Into<String>) -> bool {
        self.state.header.cancel(Some(message.into()))
    }

    /// True once the task finished (completed, panicked or cancelled).
    pub fn done(&self) -> bool {
        self.state.header.status.get() != Status::Pending
    }

    /// True if the task ended by cancellation (or its loop closed under it).
    pub fn cancelled(&self) -> bool {
        self.state.header.status.get() == Status::Cancelled
    }

    /// The task's error, if it failed (asyncio's `exception()`): `Ok(None)`
    /// if it completed, `Ok(Some(Error::Panic(..)))` if it panicked. Reading
    /// it counts as retrieving it.
    ///
    /// # Errors
    /// [`Error::InvalidState`] if the task is not done;
    /// [`Error::Cancelled`] if it was cancelled.
    pub fn exception(&self) -> Result<Option<Error>, Error> {
        self.state.header.exception()
    }

    /// Runs `callback` on the loop once the task is done (scheduled with
    /// `call_soon` in registration order, at once if it is already done).
    pub fn add_done_callback(&self, callback: impl FnOnce(&TaskRef) + 'static) -> CallbackId {
        add_done_callback(&self.task_ref(), Box::new(callback))
    }

    /// Removes a done callback that has not been scheduled yet; returns how
    /// many were removed (0 or 1).
    pub fn remove_done_callback(&self, id: CallbackId) -> usize {
        remove_done_callback(&self.state.header, id)
    }

    /// The untyped view of this task (what `all_tasks` returns).
    pub fn task_ref(&self) -> TaskRef {
        self.state.task_ref()
    }
}

impl<T: Clone + 'static> Task<T> {
    /// The task's output, cloned (asyncio's `result()`); it stays in the
    /// task for later calls and for whoever awaits it.
    ///
    /// # Errors
    /// [`Error::InvalidState`] if the task is not done (or its output was
    /// already moved out by awaiting it); otherwise the task's error
    /// (`Cancelled`, `Panic`).
    pub fn result(&self) -> Result<T, Error> {
        let header = &self.state.header;
        match header.status.get() {
            Status::Pending => Err(Error::InvalidState("result is not set")),
            Status::Finished => self
                .state
                .output
                .borrow()
                .clone()
                .ok_or(Error::InvalidState("task output already taken")),
            Status::Failed | Status::Cancelled => {
                header.retrieved.set(true);
                Err(header.stored_error())
            }
        }
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
            // `None`: the step was dropped unrun (the loop closed); the
            // body's guard recorded that as a cancellation.
            Poll::Ready(_) => {
                self.raw = None;
                Poll::Ready(self.state.take_outcome())
            }
        }
    }
}

impl<T> Drop for Task<T> {
    fn drop(&mut self) {
        let Some(raw) = self.raw.take() else {
            return;
        };
        let header = &self.state.header;
        header.detached.set(true);
        let inner = header.event_loop.upgrade();
        if let Some(inner) = &inner {
            inner.shared.empty_graveyard();
        }
        if raw.is_finished() {
            return;
        }
        match inner {
            // The loop keeps the task and drops it (and its future, on this
            // thread) at close if it has not finished by then.
            Some(inner) if !inner.closed.get() => inner.keep_detached(raw),
            // A closed loop will never run it: drop its future now. If
            // another thread is waking it at this very moment, the step it
            // hands in holds the future: wait for it to land in the
            // graveyard and drop it here. During `close`, `close` does that
            // for every task.
            Some(inner) => {
                drop(raw);
                if !inner.closing.get() {
                    inner.settle(|| header.status.get() == Status::Pending);
                }
            }
            None => drop(raw),
        }
    }
}

impl<T> fmt::Debug for Task<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        debug_header(f, "Task", &self.state.header)
    }
}

fn debug_header(f: &mut fmt::Formatter<'_>, what: &str, header: &Header) -> fmt::Result {
    f.debug_struct(what)
        .field("id", &header.id)
        .field("name", &header.name())
        .field("status", &header.status.get())
        .field("created_at", &header.location)
        .finish()
}

/// An untyped, cloneable handle to a task: its identity, name, state,
/// cancellation and done callbacks, but not its output (await the typed
/// [`Task`] for that). What [`EventLoop::current_task`],
/// [`EventLoop::all_tasks`] and done callbacks give.
///
/// Holding a `TaskRef` does not keep the task running or stop it finishing;
/// two `TaskRef`s are equal when they refer to the same task.
///
/// # Examples
///
/// ```
/// use evloop_core::EventLoop;
///
/// let lp = EventLoop::new()?;
/// let probe = lp.clone();
/// let task = lp.create_task(async move {
///     probe.current_task().expect("inside a task").name()
/// })?;
/// let id = task.id();
/// assert_eq!(lp.all_tasks().len(), 1);
/// assert_eq!(lp.run_until_complete(task)??, format!("Task-{id}"));
/// assert!(lp.all_tasks().is_empty());
/// lp.close()?;
/// # Ok::<(), evloop_core::Error>(())
/// ```
#[derive(Clone)]
pub struct TaskRef {
    task: Rc<dyn AnyTask>,
}

impl TaskRef {
    fn header(&self) -> &Header {
        self.task.header()
    }

    /// The task's id.
    pub fn id(&self) -> TaskId {
        self.header().id
    }

    /// The task's name (see [`Task::name`]).
    #[doc(alias = "get_name")]
    pub fn name(&self) -> String {
        self.header().name()
    }

    /// Renames the task.
    pub fn set_name(&self, name: impl Into<String>) {
        *self.header().name.borrow_mut() = Some(name.into());
    }

    /// As [`Task::cancel`].
    pub fn cancel(&self) -> bool {
        self.header().cancel(None)
    }

    /// As [`Task::cancel_with`].
    pub fn cancel_with(&self, message: impl Into<String>) -> bool {
        self.header().cancel(Some(message.into()))
    }

    /// True once the task finished.
    pub fn done(&self) -> bool {
        self.header().status.get() != Status::Pending
    }

    /// True if the task ended by cancellation.
    pub fn cancelled(&self) -> bool {
        self.header().status.get() == Status::Cancelled
    }

    /// As [`Task::exception`].
    ///
    /// # Errors
    /// [`Error::InvalidState`] if the task is not done;
    /// [`Error::Cancelled`] if it was cancelled.
    pub fn exception(&self) -> Result<Option<Error>, Error> {
        self.header().exception()
    }

    /// As [`Task::add_done_callback`].
    pub fn add_done_callback(&self, callback: impl FnOnce(&TaskRef) + 'static) -> CallbackId {
        add_done_callback(self, Box::new(callback))
    }

    /// As [`Task::remove_done_callback`].
    pub fn remove_done_callback(&self, id: CallbackId) -> usize {
        remove_done_callback(self.header(), id)
    }

    /// `<Task name='…' created at file:line>`, as error reports show a task.
    pub fn describe(&self) -> String {
        self.header().describe()
    }
}

impl PartialEq for TaskRef {
    fn eq(&self, other: &Self) -> bool {
        self.id() == other.id()
    }
}

impl Eq for TaskRef {}

impl std::hash::Hash for TaskRef {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.id().hash(state);
    }
}

impl fmt::Debug for TaskRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        debug_header(f, "TaskRef", self.header())
    }
}
