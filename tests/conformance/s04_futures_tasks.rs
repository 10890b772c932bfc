//! docs/behaviour.md 4: futures and tasks — `LoopFuture` (4.1), `Task` (4.2), the task
//! factory (4.3) and where task panics go (4.4).

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Duration;

use evloop::layers::core::TaskOptions;
use evloop::{Error, EventLoop, LocalBoxFuture, LoopFuture};
use evloop_conformance::Fixture;

/// Exactly one loop iteration with a zero poll timeout (docs/behaviour.md 1.3).
fn iterate(lp: &EventLoop) {
    lp.stop();
    lp.run_forever().expect("one iteration");
}

/// Counts how many times the value holding it was dropped.
struct DropCount(Rc<Cell<usize>>);

impl Drop for DropCount {
    fn drop(&mut self) {
        self.0.set(self.0.get() + 1);
    }
}

fn counter() -> Rc<Cell<usize>> {
    Rc::new(Cell::new(0))
}

fn assert_invalid_state<T: std::fmt::Debug>(result: Result<T, Error>, what: &str) {
    assert!(
        matches!(result, Err(Error::InvalidState(_))),
        "{what}: expected InvalidState, got {result:?}"
    );
}

// ---- 4.1 LoopFuture -------------------------------------------------------

#[test]
fn spec_4_1_result_before_done_is_invalid_state() {
    let fx = Fixture::new();
    let fut = fx.lp.create_future::<u32>();
    assert!(!fut.done());
    assert!(!fut.cancelled());
    assert_invalid_state(fut.result(), "result() of a pending future");
    fx.finish();
}

#[test]
fn spec_4_1_set_result_makes_done_and_second_set_is_invalid_state() {
    let fx = Fixture::new();
    let fut = fx.lp.create_future::<u32>();
    fut.set_result(7).expect("first set_result");
    assert!(fut.done());
    assert!(!fut.cancelled());
    assert_eq!(fut.result().expect("result"), 7);
    // The result can be read again (asyncio's result() does not consume it).
    assert_eq!(fut.result().expect("result again"), 7);
    assert_invalid_state(fut.set_result(8), "second set_result");
    assert_invalid_state(fut.set_error(Error::Closed), "set_error after set_result");
    assert!(!fut.cancel(), "cancel() of a done future returns false");
    assert!(!fut.cancelled());
    assert_eq!(fut.result().expect("result unchanged"), 7);
    fx.finish();
}

#[test]
fn spec_4_1_set_error_is_returned_by_result() {
    let fx = Fixture::new();
    let fut = fx.lp.create_future::<u32>();
    let reset = rustix::io::Errno::CONNRESET.raw_os_error();
    fut.set_error(Error::Io(std::io::Error::from_raw_os_error(reset)))
        .expect("set_error");
    assert!(fut.done());
    assert!(!fut.cancelled());
    match fut.result() {
        Err(Error::Io(e)) => assert_eq!(e.raw_os_error(), Some(reset)),
        other => panic!("expected the stored Io error, got {other:?}"),
    }
    assert_invalid_state(fut.set_result(1), "set_result after set_error");
    assert_invalid_state(fut.set_error(Error::Closed), "second set_error");
    fx.finish();
}

#[test]
fn spec_4_1_cancel_marks_cancelled_and_done() {
    let fx = Fixture::new();
    let fut = fx.lp.create_future::<u32>();
    assert!(fut.cancel(), "cancel() of a pending future returns true");
    assert!(fut.done());
    assert!(fut.cancelled());
    assert!(matches!(fut.result(), Err(Error::Cancelled(_))));
    assert!(!fut.cancel(), "second cancel() returns false");
    assert_invalid_state(fut.set_result(1), "set_result after cancel");
    fx.finish();
}

#[test]
fn spec_4_1_done_callback_runs_via_the_loop_not_inline() {
    let fx = Fixture::new();
    let fut = fx.lp.create_future::<u32>();
    let seen = Rc::new(RefCell::new(Vec::new()));
    let s = seen.clone();
    fut.add_done_callback(move |f: &LoopFuture<u32>| {
        s.borrow_mut().push(f.result().expect("done"))
    });
    fut.set_result(5).expect("set_result");
    assert!(
        seen.borrow().is_empty(),
        "done callback ran inline in set_result"
    );
    iterate(&fx.lp);
    assert_eq!(
        *seen.borrow(),
        [5],
        "done callback runs once, on the next iteration"
    );
    iterate(&fx.lp);
    assert_eq!(*seen.borrow(), [5], "done callback runs exactly once");
    fx.finish();
}

#[test]
fn spec_4_1_done_callbacks_run_in_registration_order_also_on_cancel() {
    let fx = Fixture::new();
    let fut = fx.lp.create_future::<u32>();
    let seen = Rc::new(RefCell::new(Vec::new()));
    for name in ["a", "b", "c"] {
        let s = seen.clone();
        fut.add_done_callback(move |f: &LoopFuture<u32>| {
            assert!(f.cancelled());
            s.borrow_mut().push(name);
        });
    }
    assert!(fut.cancel());
    assert!(
        seen.borrow().is_empty(),
        "done callbacks ran inline in cancel"
    );
    iterate(&fx.lp);
    assert_eq!(*seen.borrow(), ["a", "b", "c"]);
    fx.finish();
}

#[test]
fn spec_4_1_done_callback_on_done_future_is_scheduled() {
    let fx = Fixture::new();
    let fut = fx.lp.create_future::<u32>();
    fut.set_result(9).expect("set_result");
    let seen = Rc::new(Cell::new(None));
    let s = seen.clone();
    fut.add_done_callback(move |f: &LoopFuture<u32>| s.set(Some(f.result().expect("done"))));
    assert_eq!(seen.get(), None, "callback on a done future ran inline");
    iterate(&fx.lp);
    assert_eq!(seen.get(), Some(9));
    fx.finish();
}

#[test]
fn spec_4_1_remove_done_callback_returns_count() {
    let fx = Fixture::new();
    let fut = fx.lp.create_future::<u32>();
    let seen = Rc::new(RefCell::new(Vec::new()));
    let (s1, s2) = (seen.clone(), seen.clone());
    let first = fut.add_done_callback(move |_: &LoopFuture<u32>| s1.borrow_mut().push("first"));
    let second = fut.add_done_callback(move |_: &LoopFuture<u32>| s2.borrow_mut().push("second"));
    assert_ne!(first, second);
    assert_eq!(fut.remove_done_callback(first), 1);
    assert_eq!(fut.remove_done_callback(first), 0, "already removed");
    fut.set_result(1).expect("set_result");
    // Once done, the remaining callback is scheduled: nothing left to remove.
    assert_eq!(fut.remove_done_callback(second), 0);
    iterate(&fx.lp);
    assert_eq!(*seen.borrow(), ["second"]);
    fx.finish();
}

#[test]
fn spec_4_1_removed_done_callback_is_dropped_and_never_runs() {
    let fx = Fixture::new();
    let fut = fx.lp.create_future::<u32>();
    let drops = counter();
    let ran = Rc::new(Cell::new(false));
    let (guard, r) = (DropCount(drops.clone()), ran.clone());
    let id = fut.add_done_callback(move |_: &LoopFuture<u32>| {
        let _guard = &guard;
        r.set(true);
    });
    assert_eq!(fut.remove_done_callback(id), 1);
    assert_eq!(drops.get(), 1, "the removed callback's captures are freed");
    fut.set_result(1).expect("set_result");
    iterate(&fx.lp);
    assert!(!ran.get());
    fx.finish();
}

#[test]
fn spec_4_1_future_is_awaitable_from_a_task() {
    let fx = Fixture::new();
    let lp = &fx.lp;
    let fut = lp.create_future::<u32>();
    let (awaited, setter) = (fut.clone(), fut.clone());
    let task = lp
        .create_task(async move { awaited.await.map(|v| v * 6) })
        .expect("create_task");
    // The task's first step runs before this callback (FIFO), so it blocks
    // on the future first and is woken by set_result.
    lp.call_soon(move || setter.set_result(7).expect("set_result"))
        .expect("call_soon");
    let output = lp.run_until_complete(task).expect("run_until_complete");
    assert_eq!(output.expect("task output").expect("future result"), 42);
    fx.finish();
}

#[test]
fn spec_4_1_awaiting_an_error_or_cancelled_future_yields_it() {
    let fx = Fixture::new();
    let lp = &fx.lp;
    let failed = lp.create_future::<u32>();
    let cancelled = lp.create_future::<u32>();
    let (f, c) = (failed.clone(), cancelled.clone());
    let task = lp
        .create_task(async move { (f.await, c.await) })
        .expect("create_task");
    failed
        .set_error(Error::invalid_argument("boom"))
        .expect("set_error");
    assert!(cancelled.cancel());
    let (first, second) = lp
        .run_until_complete(task)
        .expect("run_until_complete")
        .expect("task output");
    assert!(
        matches!(first, Err(Error::InvalidArgument(ref m)) if m == "boom"),
        "{first:?}"
    );
    assert!(matches!(second, Err(Error::Cancelled(_))), "{second:?}");
    fx.finish();
}

#[test]
fn spec_4_1_run_until_complete_accepts_a_loop_future() {
    let fx = Fixture::new();
    let lp = &fx.lp;
    let fut = lp.create_future::<&'static str>();
    let setter = fut.clone();
    lp.call_soon(move || setter.set_result("done").expect("set_result"))
        .expect("call_soon");
    let output = lp.run_until_complete(fut).expect("run_until_complete");
    assert_eq!(output.expect("result"), "done");
    fx.finish();
}

// ---- 4.2 Task --------------------------------------------------------------

#[test]
fn spec_4_2_task_output_and_done() {
    let fx = Fixture::new();
    let lp = &fx.lp;
    let mut task = lp.create_task(async { 6 * 7 }).expect("create_task");
    assert!(!task.done(), "a task does not run inside create_task");
    iterate(lp);
    assert!(
        task.done(),
        "done once its future completed, before anyone awaits it"
    );
    assert!(!task.cancelled());
    let output = lp
        .run_until_complete(&mut task)
        .expect("run_until_complete");
    assert_eq!(output.expect("task output"), 42);
    assert!(task.done());
    assert!(!task.cancel(), "cancel() of a finished task returns false");
    drop(task);
    fx.finish();
}

#[test]
fn spec_4_2_awaited_task_is_not_cancelled() {
    let fx = Fixture::new();
    let lp = &fx.lp;
    let mut task = lp.create_task(async { 6 * 7 }).expect("create_task");
    let output = lp
        .run_until_complete(&mut task)
        .expect("run_until_complete");
    assert_eq!(output.expect("task output"), 42);
    assert!(task.done());
    assert!(
        !task.cancelled(),
        "a task that completed normally reports cancelled() after its output was awaited"
    );
    drop(task);
    fx.finish();
}

#[test]
fn spec_4_2_task_handle_kept_past_close_holds_no_fd() {
    // docs/behaviour.md 1.7: close() closes the loop's internal fds. A finished task's
    // handle that outlives the loop must not keep them open.
    let fx = Fixture::new();
    let lp = &fx.lp;
    let task = lp.create_task(async { 1 }).expect("create_task");
    iterate(lp);
    assert!(task.done());
    fx.finish();
    drop(task);
}

#[test]
fn spec_4_2_cancel_ends_with_cancelled_and_drops_the_future() {
    let fx = Fixture::new();
    let lp = &fx.lp;
    let never = lp.create_future::<()>();
    let drops = counter();
    let guard = DropCount(drops.clone());
    let resumed = Rc::new(Cell::new(false));
    let r = resumed.clone();
    let mut task = lp
        .create_task(async move {
            let _guard = guard;
            let _ = never.await;
            r.set(true);
        })
        .expect("create_task");
    iterate(lp);
    assert!(!task.done(), "the task is blocked on a pending future");
    assert_eq!(drops.get(), 0);
    assert!(task.cancel(), "cancel() of a pending task returns true");
    assert!(
        !task.done(),
        "cancellation takes effect at the task's next step"
    );
    iterate(lp);
    assert!(task.done());
    assert!(
        task.cancelled(),
        "cancelled() before the outcome is awaited"
    );
    assert_eq!(drops.get(), 1, "the cancelled task's future is dropped");
    let output = lp
        .run_until_complete(&mut task)
        .expect("run_until_complete");
    assert!(matches!(output, Err(Error::Cancelled(_))), "{output:?}");
    assert_eq!(drops.get(), 1, "the cancelled task's future is dropped");
    assert!(!resumed.get(), "the cancelled future never resumed");
    assert!(task.done());
    assert!(task.cancelled());
    assert!(!task.cancel(), "second cancel() returns false");
    drop(task);
    fx.finish();
}

#[test]
fn spec_4_2_cancel_before_first_step_never_runs_the_body() {
    let fx = Fixture::new();
    let lp = &fx.lp;
    let drops = counter();
    let guard = DropCount(drops.clone());
    let ran = Rc::new(Cell::new(false));
    let r = ran.clone();
    let task = lp
        .create_task(async move {
            let _guard = guard;
            r.set(true);
        })
        .expect("create_task");
    assert!(task.cancel());
    let output = lp.run_until_complete(task).expect("run_until_complete");
    assert!(matches!(output, Err(Error::Cancelled(_))), "{output:?}");
    assert!(
        !ran.get(),
        "a task cancelled before its first step never runs"
    );
    assert_eq!(drops.get(), 1);
    fx.finish();
}

#[test]
fn spec_4_2_dropping_the_handle_detaches_and_the_task_runs_on() {
    let fx = Fixture::virtual_clock();
    let lp = &fx.lp;
    let fut = lp.create_future::<u32>();
    let seen = Rc::new(Cell::new(None));
    let (awaited, s, stopper) = (fut.clone(), seen.clone(), lp.clone());
    let task = lp
        .create_task(async move {
            let value = awaited.await.expect("result");
            s.set(Some(value));
            stopper.stop();
        })
        .expect("create_task");
    iterate(lp);
    drop(task);
    lp.call_later(Duration::from_secs(5), move || {
        fut.set_result(7).expect("set_result")
    })
    .expect("call_later");
    // Guard: if the detached task never finishes, stop instead of hanging.
    let guard_stop = lp.clone();
    lp.call_later(Duration::from_secs(3600), move || guard_stop.stop())
        .expect("call_later");
    fx.run_forever();
    assert_eq!(seen.get(), Some(7), "the detached task ran to completion");
    fx.finish();
}

#[test]
fn spec_4_2_create_task_after_close_is_closed() {
    let fx = Fixture::new();
    fx.lp.close().expect("close");
    let drops = counter();
    let guard = DropCount(drops.clone());
    let result = fx.lp.create_task(async move {
        let _guard = guard;
    });
    assert!(matches!(result, Err(Error::Closed)), "{result:?}");
    assert_eq!(drops.get(), 1, "the refused future is dropped, not leaked");
    fx.finish();
}

#[test]
fn spec_4_2_task_steps_are_fifo_with_call_soon() {
    let fx = Fixture::new();
    let lp = &fx.lp;
    let seen = Rc::new(RefCell::new(Vec::new()));
    let mut tasks = Vec::new();
    for i in 0..3 {
        let (a, b) = (seen.clone(), seen.clone());
        lp.call_soon(move || a.borrow_mut().push(format!("soon{i}")))
            .expect("call_soon");
        tasks.push(
            lp.create_task(async move { b.borrow_mut().push(format!("task{i}")) })
                .expect("create_task"),
        );
    }
    iterate(lp);
    assert_eq!(
        *seen.borrow(),
        ["soon0", "task0", "soon1", "task1", "soon2", "task2"]
    );
    assert!(tasks.iter().all(|t| t.done()));
    drop(tasks);
    fx.finish();
}

// ---- 4.3 task factory ------------------------------------------------------

type Factory = fn(&EventLoop, LocalBoxFuture) -> LocalBoxFuture;

#[test]
fn spec_4_3_task_factory_wraps_every_create_task() {
    let fx = Fixture::new();
    let lp = &fx.lp;
    assert!(lp.get_task_factory().is_none(), "default: no factory");
    let calls = counter();
    let same_loop = Rc::new(Cell::new(true));
    let log = Rc::new(RefCell::new(Vec::new()));
    // Identify the loop by an extension, not a captured clone (which would
    // make a reference cycle through the loop's factory slot).
    struct Marker;
    let _ = lp.as_core().extension(|| Marker);
    let (c, same, l) = (calls.clone(), same_loop.clone(), log.clone());
    lp.set_task_factory(Some(
        move |on: &EventLoop, body: LocalBoxFuture| -> LocalBoxFuture {
            c.set(c.get() + 1);
            same.set(same.get() && on.as_core().get_extension::<Marker>().is_some());
            let l = l.clone();
            Box::pin(async move {
                l.borrow_mut().push("enter");
                body.await;
                l.borrow_mut().push("exit");
            })
        },
    ));
    assert!(lp.get_task_factory().is_some());
    let first = lp.create_task(async { 1 }).expect("create_task");
    let second = lp.create_task(async { "two" }).expect("create_task");
    assert_eq!(
        calls.get(),
        2,
        "the factory runs inside create_task, once per task"
    );
    assert_eq!(
        lp.run_until_complete(first).expect("run").expect("output"),
        1
    );
    assert_eq!(
        lp.run_until_complete(second).expect("run").expect("output"),
        "two"
    );
    assert_eq!(*log.borrow(), ["enter", "exit", "enter", "exit"]);
    assert!(
        same_loop.get(),
        "the factory is given the loop create_task was called on"
    );
    // The loop keeps a reference to the factory it was given.
    let factory = lp.get_task_factory().expect("factory set");
    drop(factory(lp, Box::pin(async {})));
    assert_eq!(
        calls.get(),
        3,
        "get_task_factory returns the factory that was set"
    );
    fx.finish();
}

#[test]
fn spec_4_3_none_restores_the_default_factory() {
    let fx = Fixture::new();
    let lp = &fx.lp;
    let calls = counter();
    let c = calls.clone();
    lp.set_task_factory(Some(move |_: &EventLoop, body: LocalBoxFuture| {
        c.set(c.get() + 1);
        body
    }));
    let wrapped = lp.create_task(async { 1 }).expect("create_task");
    assert_eq!(calls.get(), 1);
    lp.set_task_factory(None::<Factory>);
    assert!(lp.get_task_factory().is_none());
    let plain = lp.create_task(async { 2 }).expect("create_task");
    assert_eq!(calls.get(), 1, "no factory after set_task_factory(None)");
    assert_eq!(
        lp.run_until_complete(wrapped)
            .expect("run")
            .expect("output"),
        1
    );
    assert_eq!(
        lp.run_until_complete(plain).expect("run").expect("output"),
        2
    );
    fx.finish();
}

// ---- 4.4 task panics -------------------------------------------------------

fn assert_never_retrieved(fx: &Fixture, payload: &str) {
    let errors = fx.take_errors();
    assert_eq!(errors.len(), 1, "one report expected: {errors:?}");
    let ctx = &errors[0];
    assert_eq!(ctx.message, "Task exception was never retrieved");
    assert!(
        matches!(&ctx.error, Some(Error::Panic(m)) if m == payload),
        "{:?}",
        ctx.error
    );
    assert!(ctx.task.is_some(), "the context names the task");
}

#[test]
fn spec_4_4_detached_task_panic_goes_to_the_exception_handler() {
    let fx = Fixture::new();
    let lp = &fx.lp;
    let task = lp
        .create_task(async { panic!("detached boom") })
        .expect("create_task");
    drop(task);
    assert!(
        fx.take_errors().is_empty(),
        "nothing reported before the task ran"
    );
    iterate(lp);
    assert_never_retrieved(&fx, "detached boom");
    // The loop survives.
    let ran = Rc::new(Cell::new(false));
    let r = ran.clone();
    lp.call_soon(move || r.set(true)).expect("call_soon");
    iterate(lp);
    assert!(ran.get());
    fx.finish();
}

#[test]
fn spec_4_4_finished_panicked_task_dropped_unawaited_is_reported() {
    let fx = Fixture::new();
    let lp = &fx.lp;
    let task = lp
        .create_task(async { panic!("unawaited boom") })
        .expect("create_task");
    iterate(lp);
    assert!(task.done());
    assert!(
        fx.take_errors().is_empty(),
        "the handle could still retrieve it"
    );
    drop(task);
    assert_never_retrieved(&fx, "unawaited boom");
    fx.finish();
}

#[test]
fn spec_4_4_awaited_task_panic_goes_to_the_awaiter_only() {
    let fx = Fixture::new();
    let lp = &fx.lp;
    let task = lp
        .create_task(async { panic!("awaited boom") })
        .expect("create_task");
    let output = lp.run_until_complete(task).expect("run_until_complete");
    assert!(
        matches!(&output, Err(Error::Panic(m)) if m == "awaited boom"),
        "{output:?}"
    );
    // Awaited from another task too.
    let inner = lp
        .create_task(async { panic!("inner boom") })
        .expect("create_task");
    // The outer task's future is the inner task's handle: it awaits it.
    let outer = lp.create_task(inner).expect("create_task");
    let output = lp
        .run_until_complete(outer)
        .expect("run_until_complete")
        .expect("the outer task itself did not panic");
    assert!(
        matches!(&output, Err(Error::Panic(m)) if m == "inner boom"),
        "{output:?}"
    );
    let errors = fx.take_errors();
    assert!(
        errors.is_empty(),
        "a retrieved panic is not reported: {errors:?}"
    );
    fx.finish();
}

// ---- 4.2 the task API as asyncio users know it -----------------------------

#[test]
fn spec_4_2_default_names_are_task_n_and_names_can_be_set() {
    let fx = Fixture::new();
    let lp = &fx.lp;
    let first = lp.create_task(async {}).expect("create_task");
    let second = lp.create_task(async {}).expect("create_task");
    assert_eq!(first.name(), format!("Task-{}", first.id()));
    assert_eq!(
        second.id().as_u64(),
        first.id().as_u64() + 1,
        "ids count up"
    );
    let named = lp
        .create_task_with(async {}, TaskOptions::new().name("worker"))
        .expect("create_task_with");
    assert_eq!(named.name(), "worker");
    named.set_name("renamed");
    assert_eq!(named.task_ref().name(), "renamed");
    for task in [first, second, named] {
        lp.run_until_complete(task).expect("run").expect("output");
    }
    fx.finish();
}

#[test]
fn spec_4_2_cancel_with_a_message_reaches_the_result() {
    let fx = Fixture::new();
    let lp = &fx.lp;
    let never = lp.create_future::<()>();
    let mut task = lp.create_task(never).expect("create_task");
    iterate(lp);
    assert!(task.cancel_with("shutting down"));
    let output = lp.run_until_complete(&mut task).expect("run");
    match &output {
        Err(e @ Error::Cancelled(Some(message))) => {
            assert_eq!(message, "shutting down");
            assert_eq!(e.cancel_message(), Some("shutting down"));
            assert!(e.is_cancelled());
        }
        other => panic!("expected Cancelled(Some(..)), got {other:?}"),
    }
    assert!(task.cancelled());
    assert!(matches!(task.exception(), Err(Error::Cancelled(Some(_)))));
    drop(task);
    fx.finish();
}

#[test]
fn spec_4_2_result_and_exception_accessors() {
    let fx = Fixture::new();
    let lp = &fx.lp;
    let ok = lp.create_task(async { 7 }).expect("create_task");
    let failed = lp
        .create_task(async { panic!("accessor boom") })
        .expect("create_task");
    assert_invalid_state(ok.result(), "result() of a pending task");
    assert_invalid_state(ok.exception(), "exception() of a pending task");
    iterate(lp);
    assert_eq!(ok.result().expect("result"), 7);
    assert_eq!(
        ok.result().expect("result again"),
        7,
        "result() does not consume"
    );
    assert!(matches!(ok.exception(), Ok(None)));
    assert!(matches!(failed.result(), Err(Error::Panic(ref m)) if m == "accessor boom"));
    assert!(matches!(failed.exception(), Ok(Some(Error::Panic(_)))));
    drop((ok, failed));
    assert!(
        fx.take_errors().is_empty(),
        "a panic read through result()/exception() counts as retrieved"
    );
    fx.finish();
}

#[test]
fn spec_4_2_done_callbacks_run_via_the_loop_in_order() {
    let fx = Fixture::new();
    let lp = &fx.lp;
    let seen = Rc::new(RefCell::new(Vec::new()));
    let task = lp.create_task(async { 1 }).expect("create_task");
    for name in ["a", "b", "c"] {
        let s = seen.clone();
        task.add_done_callback(move |t| {
            assert!(t.done());
            s.borrow_mut().push(name);
        });
    }
    let s = seen.clone();
    let removed = task.add_done_callback(move |_| s.borrow_mut().push("removed"));
    assert_eq!(task.remove_done_callback(removed), 1);
    iterate(lp);
    assert!(task.done());
    assert!(seen.borrow().is_empty(), "callbacks are not run inline");
    iterate(lp);
    assert_eq!(*seen.borrow(), ["a", "b", "c"]);
    // On a done task, a new callback is scheduled, not run inline.
    let s = seen.clone();
    task.add_done_callback(move |_| s.borrow_mut().push("late"));
    assert_eq!(seen.borrow().len(), 3);
    iterate(lp);
    assert_eq!(*seen.borrow(), ["a", "b", "c", "late"]);
    drop(task);
    fx.finish();
}

#[test]
fn spec_4_2_current_task_and_all_tasks() {
    let fx = Fixture::new();
    let lp = &fx.lp;
    assert!(lp.current_task().is_none(), "no task outside a task");
    let never = lp.create_future::<()>();
    let blocked = lp
        .create_task_with(never, TaskOptions::new().name("blocked"))
        .expect("create_task");
    let probe = lp.clone();
    let inner = lp
        .create_task(async move {
            let me = probe.current_task().expect("current_task inside a task");
            let all: Vec<String> = probe.all_tasks().iter().map(|t| t.name()).collect();
            (me.name(), all)
        })
        .expect("create_task");
    let inner_name = inner.name();
    let (me, all) = lp.run_until_complete(inner).expect("run").expect("output");
    assert_eq!(me, inner_name);
    assert_eq!(
        all,
        ["blocked".to_owned(), inner_name],
        "creation order, current included"
    );
    let all = lp.all_tasks();
    assert_eq!(all.len(), 1, "finished tasks are not listed");
    assert_eq!(all[0], blocked.task_ref());
    assert!(all[0].cancel());
    iterate(lp);
    assert!(blocked.cancelled());
    assert!(lp.all_tasks().is_empty());
    assert!(lp.current_task().is_none());
    drop(blocked);
    fx.finish();
}

#[test]
fn spec_4_2_run_cancels_leftover_tasks_and_waits_for_them() {
    // Holds the fixture for its serialisation and fd accounting only.
    let fx = Fixture::new();
    let cleaned = Rc::new(Cell::new(0));
    let c = cleaned.clone();
    let output = evloop::run(async move {
        let lp = EventLoop::current().expect("running loop");
        for _ in 0..3 {
            let guard = DropCount(c.clone());
            let lp2 = lp.clone();
            drop(
                lp.create_task(async move {
                    let _guard = guard;
                    lp2.sleep(Duration::from_secs(3600)).await;
                })
                .expect("create_task"),
            );
        }
        Ok::<_, evloop::Error>("main done")
    })
    .expect("run");
    assert_eq!(output, "main done");
    assert_eq!(
        cleaned.get(),
        3,
        "every leftover task was cancelled and dropped"
    );
    fx.finish();
}

#[test]
fn spec_4_2_run_shutdown_reports_a_held_panicked_task_once() {
    // Holds the fixture for its serialisation and fd accounting only.
    let fx = Fixture::new();
    let reports = Rc::new(RefCell::new(Vec::new()));
    let r = reports.clone();
    evloop::run(async move {
        let lp = EventLoop::current().expect("running loop");
        lp.set_exception_handler(Some(move |_: &EventLoop, ctx: &evloop::ErrorContext| {
            r.borrow_mut().push(ctx.message.clone());
        }));
        // Fails before shutdown but is still held, so not yet reported: the
        // handle lives in a task that shutdown cancels.
        let failing = lp
            .create_task(async { panic!("late boom") })
            .expect("create_task");
        let lp2 = lp.clone();
        drop(lp.create_task(async move {
            let _keep = failing;
            lp2.sleep(Duration::from_secs(3600)).await;
        }));
        lp.sleep(Duration::ZERO).await; // one iteration: both tasks run
        assert_eq!(lp.all_tasks().len(), 1, "only the holder is pending");
        Ok::<_, evloop::Error>(())
    })
    .expect("run");
    let reports = reports.borrow();
    assert_eq!(
        *reports,
        ["Task exception was never retrieved".to_owned()],
        "the panicked task is reported once, when its last handle goes"
    );
    drop(reports);
    fx.finish();
}
