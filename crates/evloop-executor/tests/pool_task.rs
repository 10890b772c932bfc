//! The `BlockingTask` future: woken from the worker thread, safe to drop
//! early, and `Dropped` when its job never runs.

mod support;

use std::future::Future;
use std::pin::pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};

use evloop_executor::{spawn_blocking, Executor, Job, JobError, ShutDown, ThreadPool};
use support::{wait_for, Gate, TIMEOUT};

/// Counts wake-ups and reports the name of the waking thread.
struct CountingWaker {
    count: AtomicUsize,
    woken_on: Mutex<mpsc::Sender<Option<String>>>,
}

impl CountingWaker {
    fn new() -> (Arc<CountingWaker>, mpsc::Receiver<Option<String>>) {
        let (tx, rx) = mpsc::channel();
        let waker = Arc::new(CountingWaker {
            count: AtomicUsize::new(0),
            woken_on: Mutex::new(tx),
        });
        (waker, rx)
    }
}

impl Wake for CountingWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.count.fetch_add(1, Ordering::SeqCst);
        let name = std::thread::current().name().map(str::to_owned);
        let _ = self.woken_on.lock().unwrap().send(name);
    }
}

#[test]
fn the_worker_thread_wakes_the_last_waker() {
    let pool = ThreadPool::new();
    let gate = Arc::new(Gate::new());
    let job_gate = Arc::clone(&gate);
    let mut task = pin!(spawn_blocking(&pool, move || {
        job_gate.wait();
        "done"
    })
    .unwrap());

    let (first, first_rx) = CountingWaker::new();
    let (second, second_rx) = CountingWaker::new();
    let first_waker = Waker::from(Arc::clone(&first));
    let second_waker = Waker::from(Arc::clone(&second));

    assert!(task
        .as_mut()
        .poll(&mut Context::from_waker(&first_waker))
        .is_pending());
    // Polling again with the same waker keeps it; with another, replaces it.
    assert!(task
        .as_mut()
        .poll(&mut Context::from_waker(&first_waker))
        .is_pending());
    assert!(task
        .as_mut()
        .poll(&mut Context::from_waker(&second_waker))
        .is_pending());
    assert!(!task.is_finished());

    gate.open();
    let woken_on = second_rx.recv_timeout(TIMEOUT).unwrap();
    assert_eq!(woken_on.as_deref(), Some("evloop-executor-0"));
    assert_eq!(second.count.load(Ordering::SeqCst), 1);
    assert_eq!(first.count.load(Ordering::SeqCst), 0);
    assert!(first_rx.try_recv().is_err());

    assert!(task.is_finished());
    assert_eq!(
        task.as_mut().poll(&mut Context::from_waker(&second_waker)),
        Poll::Ready(Ok("done"))
    );
    assert!(task.is_finished());
    assert_eq!(second.count.load(Ordering::SeqCst), 1);
}

#[test]
fn a_result_that_arrives_first_is_ready_without_a_wake() {
    let pool = ThreadPool::new();
    let (tx, rx) = mpsc::channel();
    let task = spawn_blocking(&pool, move || {
        tx.send(()).unwrap();
        5
    })
    .unwrap();
    rx.recv_timeout(TIMEOUT).unwrap();
    // The slot is filled right after `f` returns; wait for that without
    // polling by awaiting on another thread.
    assert_eq!(wait_for(task), Ok(5));
}

/// Reports its drop, and on which thread.
struct Loud(mpsc::Sender<Option<String>>);

impl Drop for Loud {
    fn drop(&mut self) {
        let _ = self
            .0
            .send(std::thread::current().name().map(str::to_owned));
    }
}

#[test]
fn dropping_the_task_early_drops_the_result_quietly() {
    let pool = ThreadPool::builder().max_workers(1).build().unwrap();
    let gate = Arc::new(Gate::new());
    let job_gate = Arc::clone(&gate);
    let (dropped_tx, dropped_rx) = mpsc::channel();
    let task = spawn_blocking(&pool, move || {
        job_gate.wait();
        Loud(dropped_tx)
    })
    .unwrap();
    drop(task);
    gate.open();
    // The result is dropped on the worker when it arrives, exactly once.
    let dropped_on = dropped_rx.recv_timeout(TIMEOUT).unwrap();
    assert_eq!(dropped_on.as_deref(), Some("evloop-executor-0"));
    assert!(dropped_rx.recv_timeout(TIMEOUT).is_err());

    // And the worker carries on.
    assert_eq!(wait_for(spawn_blocking(&pool, || 9).unwrap()), Ok(9));
    assert_eq!(pool.worker_count(), 1);
}

#[test]
fn a_finished_unpolled_task_drops_its_result() {
    let pool = ThreadPool::builder().max_workers(1).build().unwrap();
    let (dropped_tx, dropped_rx) = mpsc::channel();
    let (done_tx, done_rx) = mpsc::channel();
    let task = spawn_blocking(&pool, move || Loud(dropped_tx)).unwrap();
    // Learn that the job ran without taking the result: the one worker
    // runs this after the first job (which fills the slot) has finished.
    pool.execute(Box::new(move || done_tx.send(()).unwrap()))
        .unwrap();
    done_rx.recv_timeout(TIMEOUT).unwrap();
    assert!(task.is_finished());
    drop(task);
    // Dropped here, by the task's drop, exactly once.
    let here = std::thread::current().name().map(str::to_owned);
    assert_eq!(dropped_rx.recv_timeout(TIMEOUT).unwrap(), here);
    assert!(dropped_rx.try_recv().is_err());
}

/// An executor that drops every job without running it.
#[derive(Debug)]
struct Discard;

impl Executor for Discard {
    fn execute(&self, job: Job) -> Result<(), ShutDown> {
        drop(job);
        Ok(())
    }
    fn shutdown(&self, _wait: bool) {}
    fn is_shutdown(&self) -> bool {
        false
    }
}

/// An executor that keeps jobs for the test to run or drop.
#[derive(Default)]
struct Hold(Mutex<Vec<Job>>);

impl std::fmt::Debug for Hold {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hold").finish_non_exhaustive()
    }
}

impl Executor for Hold {
    fn execute(&self, job: Job) -> Result<(), ShutDown> {
        self.0.lock().unwrap().push(job);
        Ok(())
    }
    fn shutdown(&self, _wait: bool) {}
    fn is_shutdown(&self) -> bool {
        false
    }
}

#[test]
fn a_job_dropped_unrun_resolves_to_dropped() {
    let task = spawn_blocking(&Discard, || 1).unwrap();
    assert!(task.is_finished());
    assert_eq!(futures_lite::future::block_on(task), Err(JobError::Dropped));

    let dyn_exec: &dyn Executor = &Discard;
    let task = spawn_blocking(dyn_exec, || 1).unwrap();
    assert_eq!(futures_lite::future::block_on(task), Err(JobError::Dropped));
}

#[test]
fn a_held_job_dropped_later_wakes_the_task() {
    let hold = Hold::default();
    let mut task = pin!(spawn_blocking(&hold, || 1).unwrap());
    let (counter, rx) = CountingWaker::new();
    let waker = Waker::from(Arc::clone(&counter));
    assert!(task
        .as_mut()
        .poll(&mut Context::from_waker(&waker))
        .is_pending());
    // Drop the job on another thread.
    let jobs = std::mem::take(&mut *hold.0.lock().unwrap());
    std::thread::Builder::new()
        .name("dropper".into())
        .spawn(move || drop(jobs))
        .unwrap()
        .join()
        .unwrap();
    assert_eq!(
        rx.recv_timeout(TIMEOUT).unwrap().as_deref(),
        Some("dropper")
    );
    assert_eq!(
        task.as_mut().poll(&mut Context::from_waker(&waker)),
        Poll::Ready(Err(JobError::Dropped))
    );
}

#[test]
fn a_held_job_run_elsewhere_delivers_its_result() {
    let hold = Hold::default();
    let task = spawn_blocking(&hold, || String::from("ran")).unwrap();
    let job = hold.0.lock().unwrap().pop().unwrap();
    std::thread::spawn(job).join().unwrap();
    assert_eq!(futures_lite::future::block_on(task).as_deref(), Ok("ran"));
}
