//! The basics: results come back, every job runs exactly once, threads are
//! named and created lazily, panics are caught, the builder validates.

mod support;

use std::collections::HashSet;
use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};

use evloop_executor::{
    spawn_blocking, BlockingTask, Executor, JobError, ShutDown, ThreadPool, ThreadPoolBuilder,
};
use support::{thread_name, wait_for, TIMEOUT};

#[test]
fn result_comes_back() {
    let pool = ThreadPool::new();
    let task = spawn_blocking(&pool, || 6 * 7).unwrap();
    assert_eq!(wait_for(task), Ok(42));
    let task = spawn_blocking(&pool, || String::from("hello")).unwrap();
    assert_eq!(futures_lite::future::block_on(task).as_deref(), Ok("hello"));
}

#[test]
fn a_thousand_jobs_each_run_exactly_once() {
    const N: usize = 1000;
    let pool = ThreadPool::builder().max_workers(8).build().unwrap();
    let runs: Arc<Vec<AtomicUsize>> = Arc::new((0..N).map(|_| AtomicUsize::new(0)).collect());
    let tasks: Vec<BlockingTask<usize>> = (0..N)
        .map(|i| {
            let runs = Arc::clone(&runs);
            spawn_blocking(&pool, move || {
                runs[i].fetch_add(1, Ordering::SeqCst);
                i
            })
            .unwrap()
        })
        .collect();
    for (i, task) in tasks.into_iter().enumerate() {
        assert_eq!(wait_for(task), Ok(i));
    }
    for (i, count) in runs.iter().enumerate() {
        assert_eq!(count.load(Ordering::SeqCst), 1, "job {i}");
    }
    assert!(pool.worker_count() <= 8);
}

#[test]
fn threads_are_named_in_spawn_order() {
    let pool = ThreadPool::builder().max_workers(1).build().unwrap();
    let name = wait_for(spawn_blocking(&pool, thread_name).unwrap()).unwrap();
    assert_eq!(name.as_deref(), Some("evloop-executor-0"));

    let pool = ThreadPool::builder()
        .max_workers(3)
        .thread_name_prefix("resolver")
        .build()
        .unwrap();
    // Three jobs that wait for each other force three threads.
    let barrier = Arc::new(std::sync::Barrier::new(3));
    let tasks: Vec<_> = (0..3)
        .map(|_| {
            let barrier = Arc::clone(&barrier);
            spawn_blocking(&pool, move || {
                barrier.wait();
                thread_name().unwrap()
            })
            .unwrap()
        })
        .collect();
    let names: HashSet<String> = tasks.into_iter().map(|t| wait_for(t).unwrap()).collect();
    let expected: HashSet<String> = (0..3).map(|i| format!("resolver-{i}")).collect();
    assert_eq!(names, expected);
}

#[test]
fn no_thread_before_the_first_job() {
    let pool = ThreadPool::new();
    assert_eq!(pool.worker_count(), 0);
    let built = ThreadPool::builder().build().unwrap();
    assert_eq!(built.worker_count(), 0);
    assert_eq!(built.max_workers(), pool.max_workers());

    wait_for(spawn_blocking(&pool, || ()).unwrap()).unwrap();
    // The worker is alive until its (60 s) idle timeout.
    assert_eq!(pool.worker_count(), 1);
}

#[test]
fn default_max_workers_follows_cpython() {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    assert_eq!(ThreadPool::new().max_workers(), 32.min(cpus + 4));
    assert_eq!(ThreadPool::default().max_workers(), 32.min(cpus + 4));
}

#[test]
fn panic_becomes_an_error_and_the_worker_survives() {
    let pool = ThreadPool::builder().max_workers(1).build().unwrap();
    let task = spawn_blocking(&pool, || -> u32 { panic!("static message") }).unwrap();
    assert_eq!(
        wait_for(task),
        Err(JobError::Panicked("static message".to_owned()))
    );
    let task = spawn_blocking(&pool, || -> u32 { panic!("formatted {}", 7) }).unwrap();
    assert_eq!(
        wait_for(task),
        Err(JobError::Panicked("formatted 7".to_owned()))
    );
    let task = spawn_blocking(&pool, || -> u32 { std::panic::panic_any(5_u8) }).unwrap();
    assert!(matches!(wait_for(task), Err(JobError::Panicked(_))));

    // A raw job that panics (no BlockingTask to report to) is caught too.
    pool.execute(Box::new(|| panic!("raw job"))).unwrap();

    // Still the same single worker, still working.
    let name = wait_for(spawn_blocking(&pool, thread_name).unwrap()).unwrap();
    assert_eq!(name.as_deref(), Some("evloop-executor-0"));
    assert_eq!(pool.worker_count(), 1);
}

#[test]
fn raw_execute_runs_the_job() {
    let pool = ThreadPool::new();
    let (tx, rx) = mpsc::channel();
    pool.execute(Box::new(move || tx.send(thread_name()).unwrap()))
        .unwrap();
    let name = rx.recv_timeout(TIMEOUT).unwrap();
    assert_eq!(name.as_deref(), Some("evloop-executor-0"));
}

#[test]
fn builder_rejects_zero_workers_and_nul_names() {
    let err = ThreadPool::builder().max_workers(0).build().unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    let err = ThreadPoolBuilder::new()
        .thread_name_prefix("a\0b")
        .build()
        .unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    // A builder can be reused.
    let mut builder = ThreadPool::builder();
    builder.max_workers(2);
    assert_eq!(builder.build().unwrap().max_workers(), 2);
    assert_eq!(builder.build().unwrap().max_workers(), 2);
}

#[test]
fn errors_display() {
    assert_eq!(ShutDown.to_string(), "executor is shut down");
    assert!(JobError::Panicked("x".into()).to_string().contains('x'));
    assert!(!JobError::Dropped.to_string().is_empty());
    let _: &dyn std::error::Error = &ShutDown;
    let _: &dyn std::error::Error = &JobError::Dropped;
}

#[test]
fn send_sync_and_debug() {
    fn send_sync<T: Send + Sync>() {}
    fn send<T: Send>() {}
    send_sync::<ThreadPool>();
    send::<BlockingTask<String>>();
    send_sync::<ShutDown>();
    send_sync::<JobError>();
    let pool = ThreadPool::new();
    let exec: &dyn Executor = &pool;
    assert!(format!("{exec:?}").contains("ThreadPool"));
    let task = spawn_blocking(exec, || 1).unwrap();
    assert!(format!("{task:?}").contains("BlockingTask"));
    assert_eq!(wait_for(task), Ok(1));
    assert!(format!("{:?}", ThreadPool::builder()).contains("ThreadPoolBuilder"));
}
