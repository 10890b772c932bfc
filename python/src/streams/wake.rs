//! The future a stream read waits on: an `asyncio.Future` (so that the
//! awaiting task takes its fast path for exact futures), made and
//! completed the cheap way on evloop's loop.
//!
//! Completing it, asyncio's `set_result` would schedule each done callback
//! (the task's wake-up) through `loop.call_soon`, a Python call that makes
//! a `Handle`. [`wake`] instead takes the callbacks off the future, sets
//! the result, and puts each `context.run(callback, future)` on evloop's
//! ready queue itself: the same callbacks, in the same order, at the same
//! point of the loop. For a future made in debug mode (slow-callback
//! warnings time handles) or on another loop, `set_result` does it as
//! usual.
//!
//! Why, measured: the streams echo of bench/python (`echo_server.py --loop
//! evloop-native --streams`, 10 connections of 1 KiB round trips, each
//! read waiting) costs the server, under callgrind, 14,299, 14,362 and
//! 14,328 instructions per round trip with [`wake`] as it is, and 15,032,
//! 14,897 and 15,102 with [`wake`] only `future.set_result(None)` (Ir
//! with 1,200 round trips per connection less Ir with 200, over 10,000):
//! about 680 more (4.7%), what `set_result`'s `loop.call_soon(callback,
//! future, context=context)` and the `Handle` it makes and runs cost
//! beyond taking the callbacks off here.
//!
//! The price: it relies on `Future._callbacks` (a private attribute, the
//! same in the C and the Python `Future`; anything else there and
//! `set_result` does it as usual), and a callback that raises reaches the
//! exception handler without the `handle` key, there being no handle.
//!
//! Tried and dropped (2026-12-04): a waiting read yielding a Rust object
//! that asyncio's Task drives as a "Future-compatible" one instead of an
//! `asyncio.Future`. It cost more, 15.0k instructions per round trip
//! against 13.5k: the C Task's path for such objects reads and sets
//! `_asyncio_future_blocking`, calls `get_loop()`, `add_done_callback`
//! with a `context=` keyword and, to wake, `result()`, each a Python-level
//! call where an exact `asyncio.Future` takes C shortcuts.

use pyo3::intern;
use pyo3::prelude::*;
use pyo3::sync::GILOnceCell;
use pyo3::types::{PyDict, PyList, PyTuple, PyType};

use super::call_method;
use crate::errors::{leaves_loop, to_py};
use crate::handle::callback_source;
use crate::CoreLoop;

/// A pending `asyncio.Future` on `event_loop`, marked as yielded by an
/// `await` (the task checks it was not a bare `yield`).
pub(super) fn new_future<'py>(event_loop: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
    static FUTURE: GILOnceCell<Py<PyType>> = GILOnceCell::new();
    static RUNNING: GILOnceCell<Py<PyAny>> = GILOnceCell::new();
    let py = event_loop.py();
    let class = FUTURE.import(py, "asyncio", "Future")?;
    let running = RUNNING.import(py, "asyncio.events", "_get_running_loop")?;
    // Future() takes the running loop itself, without a keyword to parse.
    let future = if running.call0()?.is(event_loop) {
        class.call0()?
    } else {
        let kwargs = PyDict::new(py);
        kwargs.set_item(intern!(py, "loop"), event_loop)?;
        class.call((), Some(&kwargs))?
    };
    future.setattr(intern!(py, "_asyncio_future_blocking"), true)?;
    Ok(future)
}

/// `future.set_result(None)`, its done callbacks scheduled on evloop's
/// ready queue directly; a cancelled future is left as it is.
pub(super) fn wake(future: &Bound<'_, PyAny>, event_loop: &Bound<'_, PyAny>) -> PyResult<()> {
    let py = future.py();
    let callbacks = match event_loop.downcast::<CoreLoop>() {
        Ok(core) if !made_in_debug(future)? => take_callbacks(future)?.map(|c| (core, c)),
        _ => None,
    };
    let none = py.None().into_bound(py);
    if let Err(error) = call_method(future, intern!(py, "set_result"), &[&none]) {
        let cancelled = future.call_method0(intern!(py, "cancelled"))?.is_truthy()?;
        return if cancelled { Ok(()) } else { Err(error) };
    }
    let Some((core, callbacks)) = callbacks else {
        return Ok(());
    };
    for (callback, context) in callbacks {
        schedule(core, callback, context, future.clone().unbind())?;
    }
    Ok(())
}

/// The future was made in debug mode: asyncio's `Future` keeps its
/// creation's stack then, and only then (a slot read, where the loop's
/// `get_debug()` is a call).
fn made_in_debug(future: &Bound<'_, PyAny>) -> PyResult<bool> {
    let traceback = future.getattr(intern!(future.py(), "_source_traceback"))?;
    Ok(!traceback.is_none())
}

/// A done callback and the context it runs in.
type Callback = (Py<PyAny>, Py<PyAny>);

/// The future's done callbacks, removed from it (None: it has none).
fn take_callbacks(future: &Bound<'_, PyAny>) -> PyResult<Option<Vec<Callback>>> {
    let py = future.py();
    let listed = future.getattr(intern!(py, "_callbacks"))?;
    let Ok(listed) = listed.downcast::<PyList>() else {
        return Ok(None);
    };
    // All of them first: the pure-Python Future's list is its own, which
    // remove_done_callback rewrites.
    let mut callbacks = Vec::with_capacity(listed.len());
    for entry in listed.iter() {
        let entry = entry.downcast_into::<PyTuple>()?;
        callbacks.push((entry.get_item(0)?.unbind(), entry.get_item(1)?.unbind()));
    }
    for (i, (callback, _)) in callbacks.iter().enumerate() {
        // Removes every registration of it: once is enough.
        if !callbacks[..i].iter().any(|(c, _)| c.is(callback)) {
            call_method(
                future,
                intern!(py, "remove_done_callback"),
                &[callback.bind(py)],
            )?;
        }
    }
    Ok(Some(callbacks))
}

/// Runs `callback(future)` in `context` at the loop's next iteration.
fn schedule(
    core: &Bound<'_, CoreLoop>,
    callback: Py<PyAny>,
    context: Py<PyAny>,
    future: Py<PyAny>,
) -> PyResult<()> {
    let owner = core.clone().unbind();
    CoreLoop::on_thread(core)?
        .event_loop()
        .call_soon(move || Python::with_gil(|py| run(py, &owner, &callback, &context, future)))
        .map_err(to_py)?;
    Ok(())
}

/// A scheduled callback's run, as a handle's (`asyncio.Handle._run`): an
/// exception goes to the loop's exception handler; KeyboardInterrupt and
/// SystemExit, raised by the callback or by the handler, end the run.
fn run(
    py: Python<'_>,
    core: &Py<CoreLoop>,
    callback: &Py<PyAny>,
    context: &Py<PyAny>,
    future: Py<PyAny>,
) {
    let (context, callback, future) = (context.bind(py), callback.bind(py), future.bind(py));
    let run = call_method(context, intern!(py, "run"), &[callback, future]);
    let Err(error) = run else {
        return;
    };
    if leaves_loop(py, &error) {
        CoreLoop::fail(core.bind(py), error);
        return;
    }
    // asyncio's context for a failing callback, as its handle would give
    // it (`call_soon(callback, future, context=context)`), but for
    // `handle`: the callback was never wrapped in one. No
    // `source_traceback` either: that is debug mode's, whose futures go
    // through `set_result` (see `wake`).
    let reported = (|| -> PyResult<()> {
        let args = PyTuple::new(py, [future])?;
        let source = callback_source(py, callback, &args)?;
        let context = PyDict::new(py);
        context.set_item("message", format!("Exception in callback {source}"))?;
        context.set_item("exception", error.value(py))?;
        core.call_method1(py, intern!(py, "call_exception_handler"), (context,))?;
        Ok(())
    })();
    match reported {
        Err(failed) if leaves_loop(py, &failed) => CoreLoop::fail(core.bind(py), failed),
        // The handler itself failed: nowhere left to send it.
        Err(failed) => failed.write_unraisable(py, Some(callback)),
        Ok(()) => {}
    }
}
