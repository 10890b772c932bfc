//! Limits: never more than `max_workers` threads, idle workers exit after
//! the idle timeout, and a thread spawn failure fails jobs instead of
//! panicking.

mod support;

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use evloop_executor::{spawn_blocking, Executor, JobError, ThreadPool};
use support::{eventually, thread_name, wait_for, Gate, TIMEOUT};

#[test]
fn never_more_than_max_workers() {
    const MAX: usize = 3;
    const JOBS: usize = 10;
    let pool = ThreadPool::builder().max_workers(MAX).build().unwrap();
    let gate = Arc::new(Gate::new());
    let running = Arc::new(AtomicUsize::new(0));
    let high_water = Arc::new(AtomicUsize::new(0));
    let (started_tx, started_rx) = mpsc::channel();
    let tasks: Vec<_> = (0..JOBS)
        .map(|_| {
            let gate = Arc::clone(&gate);
            let running = Arc::clone(&running);
            let high_water = Arc::clone(&high_water);
            let started_tx = started_tx.clone();
            spawn_blocking(&pool, move || {
                let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                high_water.fetch_max(now, Ordering::SeqCst);
                started_tx.send(()).unwrap();
                gate.wait();
                running.fetch_sub(1, Ordering::SeqCst);
                thread_name().unwrap()
            })
            .unwrap()
        })
        .collect();
    // Threads are spawned inside `execute`, so the count is already final.
    assert_eq!(pool.worker_count(), MAX);
    for _ in 0..MAX {
        started_rx.recv_timeout(TIMEOUT).unwrap();
    }
    assert_eq!(running.load(Ordering::SeqCst), MAX);
    assert_eq!(pool.worker_count(), MAX);

    gate.open();
    let names: HashSet<String> = tasks.into_iter().map(|t| wait_for(t).unwrap()).collect();
    let allowed: HashSet<String> = (0..MAX).map(|i| format!("evloop-executor-{i}")).collect();
    assert!(names.is_subset(&allowed), "{names:?}");
    assert_eq!(high_water.load(Ordering::SeqCst), MAX);
    assert_eq!(pool.worker_count(), MAX);
}

#[test]
fn one_worker_runs_jobs_in_order() {
    let pool = ThreadPool::builder().max_workers(1).build().unwrap();
    let gate = Arc::new(Gate::new());
    let (tx, rx) = mpsc::channel();
    {
        let gate = Arc::clone(&gate);
        pool.execute(Box::new(move || gate.wait())).unwrap();
    }
    for i in 0..20 {
        let tx = tx.clone();
        pool.execute(Box::new(move || tx.send(i).unwrap())).unwrap();
    }
    assert_eq!(pool.worker_count(), 1);
    gate.open();
    let order: Vec<i32> = (0..20).map(|_| rx.recv_timeout(TIMEOUT).unwrap()).collect();
    assert_eq!(order, (0..20).collect::<Vec<_>>());
}

#[test]
fn idle_workers_exit_after_the_idle_timeout() {
    let pool = ThreadPool::builder()
        .max_workers(4)
        .idle_timeout(Duration::from_millis(50))
        .build()
        .unwrap();
    let barrier = Arc::new(std::sync::Barrier::new(2));
    let tasks: Vec<_> = (0..2)
        .map(|_| {
            let barrier = Arc::clone(&barrier);
            spawn_blocking(&pool, move || {
                barrier.wait();
            })
            .unwrap()
        })
        .collect();
    assert_eq!(pool.worker_count(), 2);
    for task in tasks {
        wait_for(task).unwrap();
    }
    eventually("idle workers to exit", || pool.worker_count() == 0);

    // The pool still works, with a fresh thread.
    let name = wait_for(spawn_blocking(&pool, thread_name).unwrap()).unwrap();
    assert_eq!(name.as_deref(), Some("evloop-executor-2"));
    eventually("the new worker to exit", || pool.worker_count() == 0);
}

#[test]
fn zero_idle_timeout_exits_when_the_queue_is_empty() {
    let pool = ThreadPool::builder()
        .idle_timeout(Duration::ZERO)
        .build()
        .unwrap();
    for i in 0..50 {
        assert_eq!(wait_for(spawn_blocking(&pool, move || i).unwrap()), Ok(i));
    }
    eventually("workers to exit", || pool.worker_count() == 0);
}

/// A stack no system can map makes `thread::Builder::spawn` fail.
const IMPOSSIBLE_STACK: usize = 1 << 60;

fn spawn_fails_here() -> bool {
    std::thread::Builder::new()
        .stack_size(IMPOSSIBLE_STACK)
        .spawn(|| ())
        .is_err()
}

#[test]
fn spawn_failure_without_workers_drops_the_job() {
    if !spawn_fails_here() {
        announce_skip(&format!(
            "pool_limits::spawn_failure_without_workers_drops_the_job: this platform spawned \
             a thread with a {IMPOSSIBLE_STACK}-byte stack"
        ));
        return;
    }
    let pool = ThreadPool::builder()
        .stack_size(IMPOSSIBLE_STACK)
        .build()
        .unwrap();
    for _ in 0..3 {
        let task = spawn_blocking(&pool, || 1).unwrap();
        assert_eq!(wait_for(task), Err(JobError::Dropped));
        assert_eq!(pool.worker_count(), 0);
    }
    assert!(!pool.is_shutdown());
    pool.shutdown(true);
}

/// Says that part of this test was skipped, and why: on stderr, and in the
/// file `cargo xtask test` collects skips from (`$EVLOOP_SKIP_LOG`).
fn announce_skip(what: &str) {
    eprintln!("skipped: {what}");
    if let Some(path) = std::env::var_os("EVLOOP_SKIP_LOG") {
        use std::io::Write;
        if let Ok(mut log) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
        {
            let _ = writeln!(log, "{what}");
        }
    }
}
