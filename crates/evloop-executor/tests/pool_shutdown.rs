//! Shutdown: later jobs are refused, queued jobs still run, `wait` joins
//! every worker, and dropping the last handle shuts the pool down.

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};

use evloop_executor::{spawn_blocking, Executor, ShutDown, ThreadPool};
use support::{wait_for, Gate, TIMEOUT};

#[test]
fn execute_after_shutdown_is_refused() {
    let pool = ThreadPool::new();
    assert!(!pool.is_shutdown());
    pool.shutdown(false);
    assert!(pool.is_shutdown());

    let ran = Arc::new(AtomicUsize::new(0));
    let ran2 = Arc::clone(&ran);
    assert_eq!(
        pool.execute(Box::new(move || {
            ran2.fetch_add(1, Ordering::SeqCst);
        })),
        Err(ShutDown)
    );
    assert!(spawn_blocking(&pool, || ()).is_err());
    // The refused job was dropped, not run: only our handle is left.
    assert_eq!(Arc::strong_count(&ran), 1);
    assert_eq!(ran.load(Ordering::SeqCst), 0);
    assert_eq!(pool.worker_count(), 0);

    pool.shutdown(true); // again: harmless
}

#[test]
fn shutdown_keeps_queued_jobs_and_wait_joins() {
    const JOBS: usize = 8;
    let pool = ThreadPool::builder().max_workers(2).build().unwrap();
    let gate = Arc::new(Gate::new());
    let ran = Arc::new(AtomicUsize::new(0));
    let tasks: Vec<_> = (0..JOBS)
        .map(|i| {
            let gate = Arc::clone(&gate);
            let ran = Arc::clone(&ran);
            spawn_blocking(&pool, move || {
                gate.wait();
                ran.fetch_add(1, Ordering::SeqCst);
                i
            })
            .unwrap()
        })
        .collect();
    // Two jobs hold both workers; six are queued.
    pool.shutdown(false);
    assert!(spawn_blocking(&pool, || 0).is_err());
    assert_eq!(pool.worker_count(), 2);

    gate.open();
    pool.shutdown(true);
    assert_eq!(pool.worker_count(), 0);
    assert_eq!(ran.load(Ordering::SeqCst), JOBS);
    for (i, task) in tasks.into_iter().enumerate() {
        assert!(task.is_finished());
        assert_eq!(futures_lite::future::block_on(task), Ok(i));
    }
}

#[test]
fn shutdown_wait_right_after_submitting() {
    const JOBS: usize = 200;
    let pool = ThreadPool::builder().max_workers(4).build().unwrap();
    let ran = Arc::new(AtomicUsize::new(0));
    for _ in 0..JOBS {
        let ran = Arc::clone(&ran);
        pool.execute(Box::new(move || {
            ran.fetch_add(1, Ordering::SeqCst);
        }))
        .unwrap();
    }
    pool.shutdown(true);
    assert_eq!(ran.load(Ordering::SeqCst), JOBS);
    assert_eq!(pool.worker_count(), 0);
}

#[test]
fn shutdown_before_any_job_has_nothing_to_join() {
    let pool = ThreadPool::new();
    pool.shutdown(true);
    assert_eq!(pool.worker_count(), 0);
}

#[test]
fn shutdown_wait_from_inside_a_job_does_not_deadlock() {
    let pool = ThreadPool::builder().max_workers(2).build().unwrap();
    let inner = pool.clone();
    let task = spawn_blocking(&pool, move || {
        inner.shutdown(true);
        inner.is_shutdown()
    })
    .unwrap();
    assert_eq!(wait_for(task), Ok(true));
    pool.shutdown(true);
    assert_eq!(pool.worker_count(), 0);
}

#[test]
fn dropping_a_clone_keeps_the_pool() {
    let pool = ThreadPool::new();
    drop(pool.clone());
    assert!(!pool.is_shutdown());
    assert_eq!(wait_for(spawn_blocking(&pool, || 3).unwrap()), Ok(3));
}

#[test]
fn dropping_the_last_handle_shuts_down_and_queued_jobs_still_run() {
    let pool = ThreadPool::builder().max_workers(1).build().unwrap();
    let gate = Arc::new(Gate::new());
    let observer = pool.clone();
    let tasks: Vec<_> = (0..5)
        .map(|i| {
            let gate = Arc::clone(&gate);
            spawn_blocking(&pool, move || {
                gate.wait();
                i
            })
            .unwrap()
        })
        .collect();
    drop(pool);
    assert!(!observer.is_shutdown());

    // Dropping the last handle must not block, even with a job running.
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        drop(observer);
        tx.send(()).unwrap();
    });
    rx.recv_timeout(TIMEOUT).unwrap();

    gate.open();
    for (i, task) in tasks.into_iter().enumerate() {
        assert_eq!(wait_for(task), Ok(i));
    }
}
