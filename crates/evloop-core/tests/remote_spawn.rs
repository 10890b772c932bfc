//! `Remote::spawn` (asyncio's `run_coroutine_threadsafe`): a `Send` future
//! run on the loop from another thread, its result joined or awaited there.

use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use evloop_core::{Error, EventLoop, RemoteTask};

fn assert_send<T: Send>(_: &T) {}

#[test]
fn spawn_from_a_thread_and_join_the_result() {
    let lp = EventLoop::new().unwrap();
    let remote = lp.remote();
    let worker = thread::spawn(move || {
        let handle = remote.spawn(async {
            let lp = EventLoop::current().unwrap();
            let name = lp.current_task().map(|t| t.name());
            (6 * 7, name)
        });
        assert_send(&handle);
        let output = handle.join();
        remote
            .call_soon_threadsafe(|| EventLoop::current().unwrap().stop())
            .unwrap();
        output
    });
    lp.run_forever().unwrap();
    let (answer, name) = worker.join().unwrap().unwrap();
    assert_eq!(answer, 42);
    assert!(
        name.is_some_and(|n| n.starts_with("Task-")),
        "it runs as an ordinary task of the loop"
    );
    lp.close().unwrap();
}

#[test]
fn remote_task_is_awaitable_from_another_executor() {
    let lp = EventLoop::new().unwrap();
    let remote = lp.remote();
    let worker = thread::spawn(move || {
        let output = futures_lite::future::block_on(remote.spawn(async { "hello" }));
        remote
            .call_soon_threadsafe(|| EventLoop::current().unwrap().stop())
            .unwrap();
        output
    });
    lp.run_forever().unwrap();
    assert_eq!(worker.join().unwrap().unwrap(), "hello");
    lp.close().unwrap();
}

#[test]
fn a_panic_reaches_the_joiner() {
    let lp = EventLoop::new().unwrap();
    let remote = lp.remote();
    let worker = thread::spawn(move || {
        let output: Result<(), Error> = remote.spawn(async { panic!("remote boom") }).join();
        remote
            .call_soon_threadsafe(|| EventLoop::current().unwrap().stop())
            .unwrap();
        output
    });
    lp.run_forever().unwrap();
    let output = worker.join().unwrap();
    assert!(
        matches!(&output, Err(Error::Panic(m)) if m == "remote boom"),
        "{output:?}"
    );
    lp.close().unwrap();
}

#[test]
fn cancel_from_another_thread() {
    let lp = EventLoop::new().unwrap();
    let remote = lp.remote();
    let (started_tx, started_rx) = mpsc::channel();
    let handle: RemoteTask<()> = remote.spawn_with(move |lp: &EventLoop| {
        let lp = lp.clone();
        async move {
            started_tx.send(()).unwrap();
            lp.sleep(Duration::from_secs(3600)).await;
        }
    });
    let stopper = lp.remote();
    let worker = thread::spawn(move || {
        started_rx.recv().unwrap();
        assert!(handle.cancel());
        let output = handle.join();
        stopper
            .call_soon_threadsafe(|| EventLoop::current().unwrap().stop())
            .unwrap();
        output
    });
    lp.run_forever().unwrap();
    let output = worker.join().unwrap();
    assert!(matches!(output, Err(Error::Cancelled(None))), "{output:?}");
    assert!(lp.all_tasks().is_empty());
    lp.close().unwrap();
}

#[test]
fn join_on_the_loop_thread_is_refused_not_a_deadlock() {
    let lp = EventLoop::new().unwrap();
    let handle = lp.remote().spawn(async { 1 });
    assert!(!handle.is_finished());
    assert!(matches!(handle.join(), Err(Error::InvalidState(_))));
    lp.close().unwrap();
}

#[test]
fn spawn_on_a_closed_loop_is_closed_and_close_cancels_unrun() {
    let lp = EventLoop::new().unwrap();
    let remote = lp.remote();
    let pending = remote.spawn(async { 1 });
    lp.close().unwrap();
    assert!(matches!(pending.join(), Err(Error::Cancelled(None))));
    let refused = remote.spawn(async { 2 });
    assert!(refused.is_finished());
    assert!(matches!(refused.join(), Err(Error::Closed)));
}
