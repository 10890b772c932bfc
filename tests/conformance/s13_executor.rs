//! docs/behaviour.md 13.1: `run_in_executor` (the lazily created default pool with
//! threads named `evloop-executor-N`, or a given executor),
//! `set_default_executor`, `shutdown_default_executor`, and the closed-loop
//! cases, including a result that arrives after close.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};

use evloop::layers::executor::{Job, ShutDown};
use evloop::{Error, EventLoop, Executor, ExecutorFuture, ThreadPool};
use evloop_conformance::{executor_threads, new_executor_threads, Fixture, Watchdog};
use futures_lite::future::{block_on, poll_once};

/// Exactly one loop iteration with a zero poll timeout (docs/behaviour.md 1.3).
fn iterate(lp: &EventLoop) {
    lp.stop();
    lp.run_forever().expect("one iteration");
}

/// Shuts the default pool down and waits, off the loop, until its threads
/// exited, so no worker still holds the loop's waker (and with it the
/// reactor's fds, see the bug report) when the fixture counts fds.
fn join_default_pool(lp: &EventLoop) {
    block_on(lp.shutdown_default_executor(None)).expect("shutdown_default_executor");
}

fn thread_name() -> String {
    thread::current().name().unwrap_or("<unnamed>").to_owned()
}

/// An executor with one joinable thread per job, to see whether a worker
/// panicked (`join` returns `Err`).
#[derive(Debug, Default)]
struct ThreadPerJob {
    threads: Mutex<Vec<JoinHandle<()>>>,
    shut_down: AtomicBool,
}

impl ThreadPerJob {
    /// Joins every job thread; true if none panicked.
    fn join_all(&self) -> bool {
        let threads = std::mem::take(&mut *self.threads.lock().expect("lock"));
        threads.into_iter().all(|t| t.join().is_ok())
    }
}

impl Executor for ThreadPerJob {
    fn execute(&self, job: Job) -> Result<(), ShutDown> {
        if self.shut_down.load(Ordering::SeqCst) {
            return Err(ShutDown);
        }
        let thread = thread::Builder::new()
            .name("conf-job".into())
            .spawn(job)
            .expect("spawn");
        self.threads.lock().expect("lock").push(thread);
        Ok(())
    }

    fn shutdown(&self, _wait: bool) {
        self.shut_down.store(true, Ordering::SeqCst);
    }

    fn is_shutdown(&self) -> bool {
        self.shut_down.load(Ordering::SeqCst)
    }
}

/// Counts drops; `Send`, so it can be a job's result.
#[derive(Debug)]
struct Payload(Arc<AtomicUsize>);

impl Drop for Payload {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// This thread's kernel thread id (`/proc/thread-self` → `PID/task/TID`).
fn current_tid() -> String {
    let link = std::fs::read_link("/proc/thread-self").expect("/proc/thread-self");
    link.file_name()
        .expect("tid")
        .to_string_lossy()
        .into_owned()
}

/// True while thread `tid` of this process sleeps in `epoll_wait`.
fn blocked_in_poll(tid: &str) -> bool {
    let base = format!("/proc/self/task/{tid}");
    match std::fs::read_to_string(format!("{base}/wchan")) {
        Ok(wchan) if wchan.contains("poll") => true,
        Ok(wchan) if wchan != "0" && !wchan.is_empty() => false,
        // No wchan support: fall back to the scheduler state.
        _ => std::fs::read_to_string(format!("{base}/stat"))
            .ok()
            .and_then(|stat| {
                let state = stat.rsplit_once(')')?.1.split_whitespace().next()?;
                Some(state == "S")
            })
            .unwrap_or(false),
    }
}

#[test]
fn spec_13_1_run_in_executor_returns_the_result() {
    let fx = Fixture::new();
    let lp = &fx.lp;
    let fut = lp.run_in_executor(None, || 6 * 7);
    let output = lp.run_until_complete(fut).expect("run_until_complete");
    assert_eq!(output.expect("job result"), 42);
    // Awaited from a task as well.
    let fut = lp.run_in_executor(None, || String::from("from a task"));
    // The task's future is the executor future itself.
    let task = lp.create_task(fut).expect("create_task");
    let output = lp.run_until_complete(task).expect("run_until_complete");
    assert_eq!(output.expect("task").expect("job result"), "from a task");
    join_default_pool(lp);
    fx.finish();
}

#[test]
fn spec_13_1_default_pool_threads_are_named() {
    let fx = Fixture::new();
    let lp = &fx.lp;
    let fut = lp.run_in_executor(None, thread_name);
    let name = lp
        .run_until_complete(fut)
        .expect("run_until_complete")
        .expect("job result");
    assert_eq!(name, "evloop-executor-0", "the pool's first thread");
    join_default_pool(lp);
    fx.finish();
}

#[test]
fn spec_13_1_default_pool_is_created_lazily() {
    let fx = Fixture::new();
    let lp = &fx.lp;
    let before = executor_threads();
    // A new loop, callbacks, tasks and futures start no executor thread.
    let other = EventLoop::new().expect("second loop");
    other.close().expect("close");
    drop(other);
    lp.call_soon(|| ()).expect("call_soon");
    let task = lp.create_task(async { 1 }).expect("create_task");
    iterate(lp);
    drop(task);
    assert_eq!(
        new_executor_threads(&before),
        0,
        "no thread before the first job"
    );
    let fut = lp.run_in_executor(None, thread_name);
    let name = lp
        .run_until_complete(fut)
        .expect("run_until_complete")
        .expect("job result");
    assert!(name.starts_with("evloop-executor-"), "{name}");
    assert!(
        new_executor_threads(&before) >= 1,
        "the first job started the pool"
    );
    join_default_pool(lp);
    fx.finish();
}

#[test]
fn spec_13_1_given_executor_is_used_instead_of_the_default() {
    let fx = Fixture::new();
    let lp = &fx.lp;
    let before = executor_threads();
    let pool = ThreadPool::builder()
        .thread_name_prefix("conf-custom")
        .build()
        .expect("pool");
    let fut = lp.run_in_executor(Some(&pool), thread_name);
    let name = lp
        .run_until_complete(fut)
        .expect("run_until_complete")
        .expect("job result");
    assert_eq!(name, "conf-custom-0");
    assert_eq!(
        new_executor_threads(&before),
        0,
        "the default pool is not created for a given executor"
    );
    pool.shutdown(true);
    fx.finish();
}

#[test]
fn spec_13_1_panicking_call_is_error_panic() {
    let fx = Fixture::new();
    let lp = &fx.lp;
    let pool = ThreadPool::new();
    let fut = lp.run_in_executor(Some(&pool), || -> u32 { panic!("job boom") });
    let output = lp.run_until_complete(fut).expect("run_until_complete");
    assert!(
        matches!(&output, Err(Error::Panic(m)) if m == "job boom"),
        "{output:?}"
    );
    // The pool and the loop go on.
    let fut = lp.run_in_executor(Some(&pool), || 5);
    assert_eq!(lp.run_until_complete(fut).expect("run").expect("result"), 5);
    pool.shutdown(true);
    fx.finish();
}

#[test]
fn spec_13_1_after_close_is_closed() {
    let fx = Fixture::new();
    let lp = &fx.lp;
    let pool = ThreadPool::new();
    lp.close().expect("close");
    let ran = Arc::new(AtomicBool::new(false));
    let drops = Arc::new(AtomicUsize::new(0));
    let (r, payload) = (ran.clone(), Payload(drops.clone()));
    let default = block_on(lp.run_in_executor(None, move || {
        let _payload = payload;
        r.store(true, Ordering::SeqCst);
    }));
    assert!(matches!(default, Err(Error::Closed)), "{default:?}");
    let r = ran.clone();
    let given = block_on(lp.run_in_executor(Some(&pool), move || r.store(true, Ordering::SeqCst)));
    assert!(matches!(given, Err(Error::Closed)), "{given:?}");
    assert_eq!(
        drops.load(Ordering::SeqCst),
        1,
        "the refused call is dropped"
    );
    pool.shutdown(true);
    assert!(!ran.load(Ordering::SeqCst), "a refused call never runs");
    let set = lp.set_default_executor(Arc::new(ThreadPool::new()));
    assert!(matches!(set, Err(Error::Closed)), "{set:?}");
    fx.finish();
}

#[test]
fn spec_13_1_result_arriving_after_close_is_dropped_quietly() {
    let fx = Fixture::new();
    let lp = &fx.lp;
    let executor = ThreadPerJob::default();
    let (release, wait) = mpsc::channel::<()>();
    let drops = Arc::new(AtomicUsize::new(0));
    let d = drops.clone();
    let mut fut = lp.run_in_executor(Some(&executor), move || {
        wait.recv().expect("release");
        Payload(d)
    });
    // The loop polls the future (registering its waker), then stops first.
    lp.stop();
    let stopped = lp.run_until_complete(&mut fut);
    assert!(
        matches!(stopped, Err(Error::StoppedBeforeComplete)),
        "{stopped:?}"
    );
    lp.close().expect("close");
    release.send(()).expect("release the job");
    assert!(
        executor.join_all(),
        "delivering a result to a closed loop panicked the worker"
    );
    assert_eq!(
        drops.load(Ordering::SeqCst),
        0,
        "the result waits in the future"
    );
    drop(fut);
    assert_eq!(drops.load(Ordering::SeqCst), 1, "and is dropped with it");
    fx.finish();
}

#[test]
fn spec_13_1_result_arriving_after_close_for_a_task_is_dropped_quietly() {
    let fx = Fixture::new();
    let lp = &fx.lp;
    let executor = ThreadPerJob::default();
    let (release, wait) = mpsc::channel::<()>();
    let drops = Arc::new(AtomicUsize::new(0));
    let d = drops.clone();
    let fut = lp.run_in_executor(Some(&executor), move || {
        wait.recv().expect("release");
        Payload(d)
    });
    let task = lp
        .create_task(async move { fut.await.map(drop) })
        .expect("create_task");
    iterate(lp);
    assert!(!task.done(), "the task waits for the job");
    lp.close().expect("close");
    drop(task);
    release.send(()).expect("release the job");
    assert!(
        executor.join_all(),
        "delivering a result to a closed loop panicked the worker"
    );
    assert_eq!(
        drops.load(Ordering::SeqCst),
        1,
        "the late result is dropped, not leaked (with an fd inside, it would leak the fd)"
    );
    fx.finish();
}

#[test]
fn spec_13_1_result_wakes_a_loop_blocked_in_poll() {
    let fx = Fixture::new();
    let lp = &fx.lp;
    let pool = ThreadPool::new();
    let loop_thread = current_tid();
    let saw_blocked = Arc::new(AtomicBool::new(false));
    let saw = saw_blocked.clone();
    let fut = lp.run_in_executor(Some(&pool), move || {
        // Deliver the result only once the loop sleeps in poll (bounded,
        // so a platform without the /proc view still finishes).
        for _ in 0..5_000_000 {
            if blocked_in_poll(&loop_thread) {
                saw.store(true, Ordering::SeqCst);
                break;
            }
            thread::yield_now();
        }
        7
    });
    // The task's future is the executor future itself.
    let task = lp.create_task(fut).expect("create_task");
    let watchdog = Watchdog::new(lp.remote());
    let output = lp.run_until_complete(task).expect("the loop was woken");
    assert!(!watchdog.fired());
    drop(watchdog);
    assert_eq!(output.expect("task").expect("job result"), 7);
    assert!(
        saw_blocked.load(Ordering::SeqCst),
        "the loop was blocked in poll"
    );
    pool.shutdown(true);
    fx.finish();
}

#[test]
fn spec_13_1_set_default_executor_replaces_and_shuts_down_the_previous() {
    let fx = Fixture::new();
    let lp = &fx.lp;
    let first = Arc::new(ThreadPerJob::default());
    lp.set_default_executor(first.clone())
        .expect("set_default_executor");
    let fut = lp.run_in_executor(None, thread_name);
    let name = lp.run_until_complete(fut).expect("run").expect("result");
    assert_eq!(
        name, "conf-job",
        "run_in_executor(None) uses the set default"
    );
    assert!(first.join_all());
    let second = ThreadPool::builder()
        .thread_name_prefix("conf-default")
        .build()
        .expect("pool");
    lp.set_default_executor(Arc::new(second.clone()))
        .expect("set_default_executor");
    assert!(first.is_shutdown(), "the previous default is shut down");
    let fut = lp.run_in_executor(None, thread_name);
    let name = lp.run_until_complete(fut).expect("run").expect("result");
    assert_eq!(name, "conf-default-0");
    second.shutdown(true);
    fx.finish();
}

#[test]
fn spec_13_1_shutdown_default_executor_waits_for_queued_calls() {
    let fx = Fixture::new();
    let lp = &fx.lp;
    let (release, wait) = mpsc::channel::<()>();
    let finished = Arc::new(AtomicBool::new(false));
    let f = finished.clone();
    let job = lp.run_in_executor(None, move || {
        wait.recv().expect("release");
        // Make a shutdown that does not wait lose the race.
        for _ in 0..1000 {
            thread::yield_now();
        }
        f.store(true, Ordering::SeqCst);
        "late"
    });
    let shutdown = lp.shutdown_default_executor(None);
    release.send(()).expect("release the job");
    // Awaited off the loop so that no helper thread keeps the loop's waker.
    block_on(shutdown).expect("shutdown_default_executor");
    assert!(
        finished.load(Ordering::SeqCst),
        "shutdown resolved before the queued call finished"
    );
    // The queued call's result is still delivered.
    let output = lp.run_until_complete(job).expect("run_until_complete");
    assert_eq!(output.expect("job result"), "late");
    let refused = block_on(lp.run_in_executor(None, || ()));
    assert!(
        matches!(refused, Err(Error::InvalidState(_))),
        "{refused:?}"
    );
    // A given executor still works.
    let pool = ThreadPool::new();
    let fut = lp.run_in_executor(Some(&pool), || 1);
    assert_eq!(lp.run_until_complete(fut).expect("run").expect("result"), 1);
    pool.shutdown(true);
    fx.finish();
}

#[test]
fn spec_13_1_shutdown_default_executor_without_a_pool_resolves_at_once() {
    let fx = Fixture::new();
    let lp = &fx.lp;
    let before = executor_threads();
    let mut shutdown: ExecutorFuture<()> = lp.shutdown_default_executor(None);
    let ready = block_on(poll_once(&mut shutdown)).expect("no pool: ready at the first poll");
    ready.expect("shutdown_default_executor");
    assert_eq!(new_executor_threads(&before), 0);
    let refused = block_on(lp.run_in_executor(None, || ()));
    assert!(
        matches!(refused, Err(Error::InvalidState(_))),
        "{refused:?}"
    );
    // Setting a default executor again makes run_in_executor(None) work.
    let pool = ThreadPool::new();
    lp.set_default_executor(Arc::new(pool.clone()))
        .expect("set_default_executor");
    let fut = lp.run_in_executor(None, || 3);
    assert_eq!(lp.run_until_complete(fut).expect("run").expect("result"), 3);
    pool.shutdown(true);
    fx.finish();
}
