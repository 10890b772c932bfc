//! Parsers for what the echo benchmark reads: the servers' `listening on`
//! lines, the load generator's result line, `/proc/PID/{stat,schedstat,
//! status}`, and `strace -c` summaries. Pure functions, tested below.

/// Where a server said it listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Listening {
    /// `listening on tcp HOST:PORT` (HOST may be `[v6]`).
    Tcp(String),
    /// `listening on unix PATH`.
    Unix(String),
    /// `listening on tls HOST:PORT` (a TCP listener speaking TLS).
    Tls(String),
    /// `listening on udp HOST:PORT`.
    Udp(String),
}

/// Parses one `listening on tcp HOST:PORT` / `listening on unix PATH` /
/// `listening on tls HOST:PORT` / `listening on udp HOST:PORT` line;
/// `None` for any other line (or a TCP address without a port).
pub(crate) fn listening_line(line: &str) -> Option<Listening> {
    let rest = line.trim_end().strip_prefix("listening on ")?;
    let (kind, addr) = rest.split_once(' ')?;
    let addr = addr.trim();
    match kind {
        "tcp" | "tls" | "udp" => {
            let (host, port) = addr.rsplit_once(':')?;
            (!host.is_empty() && port.parse::<u16>().is_ok()).then(|| match kind {
                "tls" => Listening::Tls(addr.into()),
                "udp" => Listening::Udp(addr.into()),
                _ => Listening::Tcp(addr.into()),
            })
        }
        "unix" if !addr.is_empty() => Some(Listening::Unix(addr.into())),
        _ => None,
    }
}

/// The load generator's result line.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct LoadReport {
    pub(crate) requests: u64,
    pub(crate) seconds: f64,
    pub(crate) rps: f64,
    pub(crate) p50_us: f64,
    pub(crate) p99_us: f64,
    pub(crate) client_cpu_s: f64,
}

/// Parses `requests=N seconds=D rps=X p50_us=A p99_us=B client_cpu_s=C`
/// (fields in any order; unknown fields ignored; all six required).
pub(crate) fn loadgen_line(line: &str) -> Option<LoadReport> {
    let field = |key: &str| -> Option<&str> {
        line.split_whitespace()
            .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
    };
    let num =
        |key: &str| -> Option<f64> { field(key)?.parse().ok().filter(|v: &f64| v.is_finite()) };
    Some(LoadReport {
        requests: field("requests")?.parse().ok()?,
        seconds: num("seconds")?,
        rps: num("rps")?,
        p50_us: num("p50_us")?,
        p99_us: num("p99_us")?,
        client_cpu_s: num("client_cpu_s")?,
    })
}

/// `utime + stime` in clock ticks from the text of `/proc/PID/stat` (fields
/// 14 and 15; the command name in parentheses may contain spaces).
pub(crate) fn stat_cpu_ticks(stat: &str) -> Option<u64> {
    let after_comm = &stat[stat.rfind(')')? + 1..];
    // After the comm, field 3 (state) is the first: utime is field 14.
    let mut fields = after_comm.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

/// The time on CPU in nanoseconds: the first field of `/proc/.../schedstat`.
pub(crate) fn schedstat_ns(schedstat: &str) -> Option<u64> {
    schedstat.split_whitespace().next()?.parse().ok()
}

/// Peak resident set size in KiB: the `VmHWM:` line of `/proc/PID/status`.
pub(crate) fn vm_hwm_kib(status: &str) -> Option<u64> {
    status.lines().find_map(|line| {
        let rest = line.strip_prefix("VmHWM:")?;
        rest.split_whitespace().next()?.parse().ok()
    })
}

/// Resident set size in KiB: the `VmRSS:` line of `/proc/PID/status`.
pub(crate) fn vm_rss_kib(status: &str) -> Option<u64> {
    status.lines().find_map(|line| {
        let rest = line.strip_prefix("VmRSS:")?;
        rest.split_whitespace().next()?.parse().ok()
    })
}

/// A `key=value` field of a load generator line (`resumed`, `tls`, `suite`).
pub(crate) fn line_field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    line.split_whitespace()
        .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
}

/// An `strace -c` summary: total calls and the calls per syscall, largest
/// first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StraceSummary {
    pub(crate) total: u64,
    pub(crate) by_call: Vec<(String, u64)>,
}

/// Parses the table `strace -c` writes: `% time seconds usecs/call calls
/// [errors] syscall` rows, dashed rules, and a `total` row.
pub(crate) fn strace_summary(text: &str) -> Option<StraceSummary> {
    let mut total = None;
    let mut by_call = Vec::new();
    for line in text.lines() {
        let cols: Vec<&str> = line.split_whitespace().collect();
        // At least: %time seconds usecs/call calls name.
        if cols.len() < 5 || cols[0].parse::<f64>().is_err() {
            continue;
        }
        let Ok(calls) = cols[3].parse::<u64>() else {
            continue;
        };
        let name = cols[cols.len() - 1];
        if name == "total" {
            total = Some(calls);
        } else {
            by_call.push((name.to_owned(), calls));
        }
    }
    by_call.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    Some(StraceSummary {
        total: total?,
        by_call,
    })
}

/// `kernel.osrelease`-style machine facts: the first `model name` of
/// `/proc/cpuinfo`.
pub(crate) fn cpu_model(cpuinfo: &str) -> Option<String> {
    cpuinfo.lines().find_map(|line| {
        let (key, value) = line.split_once(':')?;
        (key.trim() == "model name").then(|| value.trim().to_owned())
    })
}

/// The version of `package` in a Cargo.lock (the first one listed).
pub(crate) fn lock_version(lock: &str, package: &str) -> Option<String> {
    let wanted = format!("name = \"{package}\"");
    let mut lines = lock.lines();
    while let Some(line) = lines.next() {
        if line.trim() == wanted {
            let version = lines.next()?.trim().strip_prefix("version = ")?;
            return Some(version.trim_matches('"').to_owned());
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listening_lines() {
        assert_eq!(
            listening_line("listening on tcp 127.0.0.1:8080\n"),
            Some(Listening::Tcp("127.0.0.1:8080".into()))
        );
        assert_eq!(
            listening_line("listening on tcp [::1]:443"),
            Some(Listening::Tcp("[::1]:443".into()))
        );
        assert_eq!(
            listening_line("listening on unix /tmp/a b.sock"),
            Some(Listening::Unix("/tmp/a b.sock".into()))
        );
        assert_eq!(listening_line("listening on tcp 127.0.0.1"), None);
        assert_eq!(listening_line("listening on tcp :80"), None);
        assert_eq!(
            listening_line("listening on udp 127.0.0.1:9"),
            Some(Listening::Udp("127.0.0.1:9".into()))
        );
        assert_eq!(listening_line("listening on sctp 127.0.0.1:9"), None);
        assert_eq!(listening_line("shutdown"), None);
        assert_eq!(
            listening_line("listening on tls 127.0.0.1:4433"),
            Some(Listening::Tls("127.0.0.1:4433".into()))
        );
        assert_eq!(listening_line("listening on tls 127.0.0.1"), None);
    }

    #[test]
    fn loadgen_lines() {
        let r = loadgen_line(
            "requests=367557 seconds=2.000 rps=183777.4 p50_us=52.7 p99_us=93.2 client_cpu_s=1.962",
        )
        .unwrap();
        assert_eq!(r.requests, 367_557);
        assert!((r.rps - 183_777.4).abs() < 1e-9 && (r.p99_us - 93.2).abs() < 1e-9);
        assert!((r.client_cpu_s - 1.962).abs() < 1e-9 && (r.seconds - 2.0).abs() < 1e-9);
        assert_eq!(loadgen_line("warmup-done"), None);
        assert_eq!(
            loadgen_line("requests=1 seconds=1 rps=1 p50_us=1 p99_us=1"),
            None
        );
        assert_eq!(
            loadgen_line("requests=x seconds=1 rps=1 p50_us=1 p99_us=1 client_cpu_s=0"),
            None
        );
    }

    #[test]
    fn proc_files() {
        let stat = "4242 (tokio echo) S 1 4242 1 0 -1 4194560 300 0 0 0 \
                    123 45 0 0 20 0 1 0 100 4722688 530 18446744073709551615";
        assert_eq!(stat_cpu_ticks(stat), Some(168));
        assert_eq!(stat_cpu_ticks("garbage"), None);
        assert_eq!(schedstat_ns("370852 388485 6\n"), Some(370_852));
        let status =
            "Name:\techo_server\nVmPeak:\t  10000 kB\nVmHWM:\t    2120 kB\nVmRSS:\t 2000 kB\n";
        assert_eq!(vm_hwm_kib(status), Some(2120));
        assert_eq!(vm_hwm_kib("Name:\tx\n"), None);
        assert_eq!(vm_rss_kib(status), Some(2000));
        let line = "requests=5 rps=1 resumed=4 tls=TLSv1_3 suite=TLS13_AES_256_GCM_SHA384";
        assert_eq!(line_field(line, "resumed"), Some("4"));
        assert_eq!(line_field(line, "suite"), Some("TLS13_AES_256_GCM_SHA384"));
        assert_eq!(line_field(line, "rps"), Some("1"));
        assert_eq!(line_field(line, "nope"), None);
    }

    #[test]
    fn strace_summaries() {
        let text = "\
% time     seconds  usecs/call     calls    errors syscall
------ ----------- ----------- --------- --------- ----------------
 45.10    0.101000           1     90117           write
 40.00    0.090000           1     90120      4501 read
 14.90    0.030000           2     15000           epoll_wait
  0.00    0.000000           0        10           accept4
------ ----------- ----------- --------- --------- ----------------
100.00    0.221000           1    195247      4501 total
";
        let s = strace_summary(text).unwrap();
        assert_eq!(s.total, 195_247);
        assert_eq!(s.by_call[0], ("read".to_owned(), 90_120));
        assert_eq!(s.by_call[1], ("write".to_owned(), 90_117));
        assert_eq!(s.by_call.len(), 4);
        assert_eq!(
            strace_summary("strace: attach: ptrace(PTRACE_SEIZE): EPERM"),
            None
        );
    }

    #[test]
    fn machine_facts() {
        assert_eq!(
            cpu_model("processor\t: 0\nmodel name\t: AMD EPYC 7B13\n").as_deref(),
            Some("AMD EPYC 7B13")
        );
        let lock = "[[package]]\nname = \"tokio\"\nversion = \"1.54.1\"\nsource = \"x\"\n";
        assert_eq!(lock_version(lock, "tokio").as_deref(), Some("1.54.1"));
        assert_eq!(lock_version(lock, "mio"), None);
    }
}
