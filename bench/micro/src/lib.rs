//! Micro benchmarks of the evloop core against tokio's nearest equivalents.
//!
//! The measurements live in `benches/micro.rs` (run them with
//! `cargo bench -p evloop-bench --bench micro`); this library holds what they
//! share: CPU time, summaries of repeated runs, machine facts, and the plain
//! table every benchmark here prints (the Python one, `bench/python/micro.py`,
//! prints the same rows, so `bench/run-micro.sh` can merge them).
//!
//! # Table format
//!
//! One row per measurement, whitespace-separated:
//! `workload impl median min max`, all in nanoseconds per operation, where
//! `workload` is one of [`WORKLOADS`]. Lines starting with `#` are comments
//! (machine facts, notes).
#![forbid(unsafe_code)]

use std::process::Command;
use std::time::Duration;

/// The row names, in the order they are printed.
///
/// * `chain`: one callback scheduling the next, per callback.
/// * `burst`: N scheduled at once, then run, per callback.
/// * `timers.schedule`: CPU per timer scheduled (N timers, random delays in
///   `[0, 1 s)`).
/// * `timers.cancel`: CPU per timer cancelled (every other one, N/2).
/// * `timers.drain`: CPU per timer fired while running until the N/2 left
///   have fired (the wait itself is not CPU).
/// * `timers.total`: the CPU of the whole run (schedule + cancel + drain)
///   divided by N.
/// * `cross-thread`: wall time per post, 4 threads posting N in all while
///   the loop runs, until all ran.
/// * `latency.p50`, `latency.p99`: median and 99th percentile of a one-byte
///   round trip (ns) between another thread and a reader callback on the
///   loop, idle or kept busy by a `call_soon` chain.
pub const WORKLOADS: [&str; 9] = [
    "chain",
    "burst",
    "timers.schedule",
    "timers.cancel",
    "timers.drain",
    "timers.total",
    "cross-thread",
    "latency.p50",
    "latency.p99",
];

/// CPU time used so far by the whole process (all threads), as
/// `clock_gettime(CLOCK_PROCESS_CPUTIME_ID)`: nanosecond resolution, unlike
/// `/proc/self/stat`'s 100 Hz ticks.
pub fn process_cpu_time() -> Duration {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ProcessCPUTime);
    let secs = u64::try_from(t.tv_sec).unwrap_or(0);
    let nanos = u32::try_from(t.tv_nsec).unwrap_or(0);
    Duration::new(secs, nanos)
}

/// Median, minimum and maximum of repeated measurements.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Summary {
    /// The median (the mean of the two middle values for an even count).
    pub median: f64,
    /// The smallest value.
    pub min: f64,
    /// The largest value.
    pub max: f64,
}

impl Summary {
    /// Summarises `values`; `None` when there are none.
    pub fn of(values: &[f64]) -> Option<Summary> {
        if values.is_empty() {
            return None;
        }
        let mut sorted = values.to_vec();
        sorted.sort_by(f64::total_cmp);
        let mid = sorted.len() / 2;
        let median = if sorted.len() % 2 == 1 {
            sorted[mid]
        } else {
            (sorted[mid - 1] + sorted[mid]) / 2.0
        };
        Some(Summary {
            median,
            min: sorted[0],
            max: sorted[sorted.len() - 1],
        })
    }
}

/// Nanoseconds per operation: `total / ops`.
pub fn ns_per_op(total: Duration, ops: usize) -> f64 {
    total.as_secs_f64() * 1e9 / ops.max(1) as f64
}

/// The table's column header.
pub fn table_header() -> String {
    format!(
        "{:<16} {:<14} {:>10} {:>10} {:>10}",
        "workload", "impl", "median", "min", "max"
    )
}

/// One table row (values in ns/op, one decimal).
pub fn table_row(workload: &str, implementation: &str, summary: &Summary) -> String {
    format!(
        "{:<16} {:<14} {:>10.1} {:>10.1} {:>10.1}",
        workload, implementation, summary.median, summary.min, summary.max
    )
}

/// Facts about this machine worth printing with results: CPU model, logical
/// CPUs, kernel, rustc. Missing facts are left out.
pub fn machine_facts() -> Vec<(&'static str, String)> {
    let mut facts = Vec::new();
    if let Ok(cpuinfo) = std::fs::read_to_string("/proc/cpuinfo") {
        let model = cpuinfo
            .lines()
            .find(|l| l.starts_with("model name"))
            .and_then(|l| l.split_once(':'))
            .map(|(_, v)| v.trim().to_owned());
        if let Some(model) = model {
            facts.push(("cpu", model));
        }
    }
    if let Ok(n) = std::thread::available_parallelism() {
        facts.push(("logical cpus", n.to_string()));
    }
    if let Ok(release) = std::fs::read_to_string("/proc/sys/kernel/osrelease") {
        facts.push(("kernel", release.trim().to_owned()));
    }
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    if let Ok(out) = Command::new(rustc).arg("-V").output() {
        if out.status.success() {
            let version = String::from_utf8_lossy(&out.stdout).trim().to_owned();
            facts.push(("rustc", version));
        }
    }
    facts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_of_odd_and_even_counts() {
        let s = Summary::of(&[3.0, 1.0, 2.0]).unwrap();
        assert_eq!((s.median, s.min, s.max), (2.0, 1.0, 3.0));
        let s = Summary::of(&[4.0, 1.0, 3.0, 2.0]).unwrap();
        assert_eq!((s.median, s.min, s.max), (2.5, 1.0, 4.0));
        assert!(Summary::of(&[]).is_none());
    }

    #[test]
    fn rows_are_whitespace_separated() {
        let s = Summary {
            median: 12.34,
            min: 10.0,
            max: 15.0,
        };
        let row = table_row("timers.total", "evloop", &s);
        let fields: Vec<&str> = row.split_whitespace().collect();
        assert_eq!(fields, ["timers.total", "evloop", "12.3", "10.0", "15.0"]);
    }

    #[test]
    fn cpu_time_advances() {
        let a = process_cpu_time();
        let mut x = 0u64;
        for i in 0..1_000_000u64 {
            x = std::hint::black_box(x.wrapping_add(i));
        }
        assert!(process_cpu_time() >= a, "{x}");
    }
}
