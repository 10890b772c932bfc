//! Turning echo samples into tables (plain text for the terminal, Markdown
//! for docs/performance.md), the target checks of issue 4, and the dated
//! sections of docs/performance.md; the charts are in `chart.rs`.

use std::fmt::Write as _;

use super::run::{Sample, Transport};

/// One measured run.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub(crate) transport: Transport,
    pub(crate) size: usize,
    pub(crate) conns: usize,
    pub(crate) server: &'static str,
    pub(crate) round: usize,
    pub(crate) sample: Sample,
}

/// One run for the tables' tests: 1,000 requests in 1 s at `rps` req/s
/// (p50 50 us, p99 90 us, client CPU 0.9 s), server CPU 0.01 s, peak RSS
/// 2 MiB.
#[cfg(test)]
pub(crate) fn test_entry(
    server: &'static str,
    size: usize,
    conns: usize,
    round: usize,
    rps: f64,
) -> Entry {
    let load = super::parse::LoadReport {
        requests: 1000,
        seconds: 1.0,
        rps,
        p50_us: 50.0,
        p99_us: 90.0,
        client_cpu_s: 0.9,
    };
    let sample = Sample {
        load,
        server_cpu_s: 0.01,
        rss_kib: Some(2048),
    };
    Entry {
        transport: Transport::Tcp,
        size,
        conns,
        server,
        round,
        sample,
    }
}

/// Per-round ratios whose spread exceeds this fraction of their median are
/// flagged as unstable (docs/performance.md: gaps under 15% are noise here).
const UNSTABLE: f64 = 0.15;

/// The median of the finite `values` (NaN without any): rounds are few
/// and noisy, so medians, not means, summarize them.
pub(crate) fn median(values: &[f64]) -> f64 {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    if v.len() % 2 == 1 {
        v[mid]
    } else {
        (v[mid - 1] + v[mid]) / 2.0
    }
}

/// The smallest and largest finite `values` (NaN without any): the
/// spread the tables show beside a median.
pub(crate) fn min_max(values: &[f64]) -> (f64, f64) {
    values
        .iter()
        .filter(|x| x.is_finite())
        .fold((f64::NAN, f64::NAN), |(lo, hi), &x| (lo.min(x), hi.max(x)))
}

/// The samples of one server at one point, by round.
pub(crate) fn samples<'a>(
    entries: &'a [Entry],
    transport: Transport,
    size: usize,
    conns: usize,
    server: &str,
) -> Vec<&'a Entry> {
    entries
        .iter()
        .filter(|e| {
            e.transport == transport && e.size == size && e.conns == conns && e.server == server
        })
        .collect()
}

/// Summary statistics of one server at one point.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Summary {
    pub(crate) rps: f64,
    pub(crate) rps_min: f64,
    pub(crate) rps_max: f64,
    pub(crate) cpu_us: f64,
    pub(crate) p99_us: f64,
    pub(crate) rss_kib: Option<u64>,
    pub(crate) client_cpu: f64,
    pub(crate) runs: usize,
}

/// The medians (and req/s range) of one server's `runs`; `None` when it
/// has none, so that a table can skip the row.
pub(crate) fn summarize(runs: &[&Entry]) -> Option<Summary> {
    if runs.is_empty() {
        return None;
    }
    let rps: Vec<f64> = runs.iter().map(|e| e.sample.load.rps).collect();
    let cpu: Vec<f64> = runs.iter().map(|e| e.sample.cpu_us_per_request()).collect();
    let p99: Vec<f64> = runs.iter().map(|e| e.sample.load.p99_us).collect();
    let client: Vec<f64> = runs
        .iter()
        .map(|e| e.sample.load.client_cpu_s / e.sample.load.seconds)
        .collect();
    let (rps_min, rps_max) = min_max(&rps);
    Some(Summary {
        rps: median(&rps),
        rps_min,
        rps_max,
        cpu_us: median(&cpu),
        p99_us: median(&p99),
        rss_kib: runs.iter().filter_map(|e| e.sample.rss_kib).max(),
        client_cpu: median(&client),
        runs: runs.len(),
    })
}

/// `server / base` req/s for each round both ran.
pub(crate) fn round_ratios(a: &[&Entry], base: &[&Entry]) -> Vec<f64> {
    a.iter()
        .filter_map(|x| {
            let b = base.iter().find(|b| b.round == x.round)?;
            Some(x.sample.load.rps / b.sample.load.rps)
        })
        .collect()
}

/// Whether per-round ratios (two at least) spread more than [`UNSTABLE`]
/// of their median: too noisy for a firm ratio.
pub(crate) fn unstable(per_round: &[f64]) -> bool {
    let (lo, hi) = min_max(per_round);
    per_round.len() > 1 && hi - lo > UNSTABLE * median(per_round)
}

/// The `per-round` cell of a ratio column: `lo-hi`, flagged ` !` when
/// [`unstable`]; `-` with fewer than two rounds to compare.
pub(crate) fn ratio_spread(per_round: &[f64]) -> String {
    if per_round.len() < 2 {
        return "-".to_owned();
    }
    let (lo, hi) = min_max(per_round);
    let flag = if unstable(per_round) { " !" } else { "" };
    format!("{lo:.2}-{hi:.2}{flag}")
}

/// Whether `value` reaches `goal` (at least it, or with `at_most` at most
/// it), judged on the value as shown with two decimals, so that a shown
/// 1.00 never misses 1.0.
pub(crate) fn reaches(value: f64, goal: f64, at_most: bool) -> bool {
    let shown = (value * 100.0).round() / 100.0;
    if at_most {
        shown <= goal
    } else {
        shown >= goal
    }
}

/// The `met` cell of a target row: `yes` or `MISSED` as [`reaches`] says,
/// `n/a` when there is no number to judge (no baseline).
pub(crate) fn verdict(value: f64, goal: f64, at_most: bool) -> &'static str {
    if !value.is_finite() {
        "n/a"
    } else if reaches(value, goal, at_most) {
        "yes"
    } else {
        "MISSED"
    }
}

/// A table: a header row and rows of cells.
#[derive(Debug, Clone, Default)]
pub(crate) struct Table {
    pub(crate) title: String,
    pub(crate) header: Vec<String>,
    pub(crate) rows: Vec<Vec<String>>,
    pub(crate) notes: Vec<String>,
}

impl Table {
    /// An empty table: every table starts from its title and column names,
    /// and only the rows and notes differ.
    pub(crate) fn new(title: impl Into<String>, header: &[&str]) -> Table {
        Table {
            title: title.into(),
            header: header.iter().map(|&h| h.to_owned()).collect(),
            ..Table::default()
        }
    }

    /// Aligned plain text.
    pub(crate) fn text(&self) -> String {
        let mut widths: Vec<usize> = self.header.iter().map(|h| h.chars().count()).collect();
        for row in &self.rows {
            for (i, cell) in row.iter().enumerate() {
                widths[i] = widths[i].max(cell.chars().count());
            }
        }
        let line = |cells: &[String]| -> String {
            let mut out = String::new();
            for (i, cell) in cells.iter().enumerate() {
                let pad = widths[i] - cell.chars().count();
                if i == 0 {
                    out.push_str(cell);
                    out.push_str(&" ".repeat(pad));
                } else {
                    out.push_str("  ");
                    out.push_str(&" ".repeat(pad));
                    out.push_str(cell);
                }
            }
            out.trim_end().to_owned() + "\n"
        };
        let mut out = format!("== {}\n", self.title);
        out.push_str(&line(&self.header));
        for row in &self.rows {
            out.push_str(&line(row));
        }
        for note in &self.notes {
            let _ = writeln!(out, "   {note}");
        }
        out
    }

    /// A Markdown table under a bold title.
    pub(crate) fn markdown(&self) -> String {
        let mut out = format!("**{}**\n\n", self.title);
        let _ = writeln!(out, "| {} |", self.header.join(" | "));
        let rule: Vec<&str> = self
            .header
            .iter()
            .enumerate()
            .map(|(i, _)| if i == 0 { "---" } else { "---:" })
            .collect();
        let _ = writeln!(out, "| {} |", rule.join(" | "));
        for row in &self.rows {
            let _ = writeln!(out, "| {} |", row.join(" | "));
        }
        out.push('\n');
        for note in &self.notes {
            let _ = writeln!(out, "{note}\n");
        }
        out
    }
}

/// A message size as the tables name it: `100 B`, `10 KiB`, `1 MiB`.
pub(crate) fn size_name(size: usize) -> String {
    if size >= 1 << 20 && size % (1 << 20) == 0 {
        format!("{} MiB", size >> 20)
    } else if size >= 1024 && size % 1024 == 0 {
        format!("{} KiB", size / 1024)
    } else {
        format!("{size} B")
    }
}

/// A rate rounded to a whole number with thousands separators
/// (`183,777`), `-` when there is none.
pub(crate) fn thousands(value: f64) -> String {
    if !value.is_finite() {
        return "-".to_owned();
    }
    // Rounded, non-negative request rates.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let digits = (value.round().max(0.0) as u64).to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// `value` with `places` decimals, `-` when it is not a number (a missing
/// baseline).
pub(crate) fn fixed(value: f64, places: usize) -> String {
    if value.is_finite() {
        format!("{value:.places$}")
    } else {
        "-".to_owned()
    }
}

/// `a / b` with two decimals: the ratios every table compares by.
pub(crate) fn ratio(a: f64, b: f64) -> String {
    fixed(a / b, 2)
}

/// KiB (from `/proc`) as MiB with one decimal, `-` when unknown.
pub(crate) fn mib(kib: Option<u64>) -> String {
    #[allow(clippy::cast_precision_loss)]
    kib.map_or_else(
        || "-".to_owned(),
        |k| format!("{:.1} MiB", k as f64 / 1024.0),
    )
}

/// The main table for one transport: every server at every size.
pub(crate) fn transport_table(
    entries: &[Entry],
    transport: Transport,
    sizes: &[usize],
    conns: usize,
    servers: &[&'static str],
    rounds: usize,
) -> Table {
    let mut table = Table::new(
        format!(
            "{} echo, {conns} connections: median of {rounds} round(s), servers interleaved",
            transport.name()
        ),
        &[
            "server",
            "size",
            "req/s",
            "min-max",
            "x tokio",
            "per-round x tokio",
            "CPU us/req",
            "x raw-epoll",
            "p99 us",
            "peak RSS",
            "client CPU",
        ],
    );
    let mut unstable_rows = Vec::new();
    for &size in sizes {
        let tokio_runs = samples(entries, transport, size, conns, "tokio");
        let tokio = summarize(&tokio_runs);
        let raw = summarize(&samples(entries, transport, size, conns, "raw-epoll"));
        for &server in servers {
            let runs = samples(entries, transport, size, conns, server);
            let Some(s) = summarize(&runs) else {
                continue;
            };
            let per_round = round_ratios(&runs, &tokio_runs);
            if unstable(&per_round) {
                unstable_rows.push(format!("{server} {}", size_name(size)));
            }
            table.rows.push(vec![
                server.to_owned(),
                size_name(size),
                thousands(s.rps),
                format!("{}-{}", thousands(s.rps_min), thousands(s.rps_max)),
                tokio.map_or("-".to_owned(), |t| ratio(s.rps, t.rps)),
                ratio_spread(&per_round),
                fixed(s.cpu_us, 2),
                raw.map_or("-".to_owned(), |r| ratio(s.cpu_us, r.cpu_us)),
                fixed(s.p99_us, 0),
                mib(s.rss_kib),
                format!("{}%", fixed(s.client_cpu * 100.0, 0)),
            ]);
        }
    }
    table.notes.push(
        "CPU us/req: the server's CPU time (all threads, /proc schedstat) in the counted window \
         / requests; client CPU: the load generator's CPU / wall time (100% = its core is the \
         bottleneck)."
            .to_owned(),
    );
    if rounds < 2 {
        table.notes.push(
            "one round: no spread to judge stability by; treat gaps under 15% as noise.".to_owned(),
        );
    }
    if !unstable_rows.is_empty() {
        table.notes.push(format!(
            "UNSTABLE (!): per-round ratio to tokio spreads more than 15% for {}; \
             the machine is too noisy for a firm ratio there.",
            unstable_rows.join(", ")
        ));
    }
    table
}

/// The 10 vs 1,000 connections table at one size over TCP.
pub(crate) fn conns_table(
    entries: &[Entry],
    size: usize,
    few: usize,
    many: usize,
    servers: &[&'static str],
) -> Table {
    let mut table = Table::new(
        format!(
            "tcp echo {}: {few} vs {many} connections (target: within 15%)",
            size_name(size)
        ),
        &[
            "server",
            &format!("req/s @{few}"),
            &format!("req/s @{many}"),
            "ratio",
            "CPU us/req @few",
            "CPU us/req @many",
            &format!("p99 us @{many}"),
            "peak RSS @many",
            "within 15%",
        ],
    );
    for &server in servers {
        let a = summarize(&samples(entries, Transport::Tcp, size, few, server));
        let b = summarize(&samples(entries, Transport::Tcp, size, many, server));
        let (Some(a), Some(b)) = (a, b) else {
            continue;
        };
        let r = b.rps / a.rps;
        table.rows.push(vec![
            server.to_owned(),
            thousands(a.rps),
            thousands(b.rps),
            fixed(r, 2),
            fixed(a.cpu_us, 2),
            fixed(b.cpu_us, 2),
            fixed(b.p99_us, 0),
            mib(b.rss_kib),
            if r >= 0.85 { "yes" } else { "NO" }.to_owned(),
        ]);
    }
    table
}

/// One server's syscall count.
#[derive(Debug, Clone)]
pub(crate) struct Syscalls {
    pub(crate) server: &'static str,
    pub(crate) requests: u64,
    pub(crate) total: u64,
    pub(crate) top: Vec<(String, u64)>,
}

/// The syscalls per round trip of each server under strace, against
/// tokio's.
pub(crate) fn syscall_table(counts: &[Syscalls], size: usize, conns: usize) -> Table {
    let mut table = Table::new(
        format!(
            "syscalls per echo round trip (strace -c -f on the server; tcp, {}, {conns} connections)",
            size_name(size)
        ),
        &["server", "requests", "syscalls", "per request", "x tokio", "largest, per request"],
    );
    #[allow(clippy::cast_precision_loss)]
    let per = |calls: u64, requests: u64| calls as f64 / requests.max(1) as f64;
    let tokio = counts
        .iter()
        .find(|c| c.server == "tokio")
        .map(|c| per(c.total, c.requests));
    for c in counts {
        let top: Vec<String> = c
            .top
            .iter()
            .take(4)
            .map(|(name, calls)| format!("{name} {:.2}", per(*calls, c.requests)))
            .collect();
        table.rows.push(vec![
            c.server.to_owned(),
            c.requests.to_string(),
            c.total.to_string(),
            fixed(per(c.total, c.requests), 2),
            tokio.map_or("-".to_owned(), |t| ratio(per(c.total, c.requests), t)),
            top.join(", "),
        ]);
    }
    table.notes.push(
        "strace slows the server many times over: these runs count syscalls only, their req/s \
         mean nothing."
            .to_owned(),
    );
    table
}

/// Issues 4 and 12's targets for evloop, checked against this run.
pub(crate) fn targets_table(
    entries: &[Entry],
    transports: &[Transport],
    sizes: &[usize],
    conns: usize,
    syscalls: &[Syscalls],
) -> Table {
    let mut table = Table::new(
        "targets of issues 4 and 12 (evloop, ratios within this run)",
        &["target", "measured", "met"],
    );
    let mut push = |target: String, value: f64, goal: f64, at_most: bool| {
        let met = verdict(value, goal, at_most).to_owned();
        table.rows.push(vec![target, fixed(value, 2), met]);
    };
    let get = |t: Transport, size: usize, server: &str| {
        summarize(&samples(entries, t, size, conns, server))
    };
    for &t in transports {
        for &size in sizes {
            let (Some(tokio), evloop) = (get(t, size, "tokio"), get(t, size, "evloop")) else {
                continue;
            };
            let name = format!("{} {}", t.name(), size_name(size));
            if let Some(e) = evloop {
                push(
                    format!("{name}: evloop req/s >= 1.0x tokio"),
                    e.rps / tokio.rps,
                    1.0,
                    false,
                );
                if size == 1024 {
                    if let Some(raw) = get(t, size, "raw-epoll") {
                        push(
                            format!("{name}: evloop CPU/req <= 1.05x raw-epoll"),
                            e.cpu_us / raw.cpu_us,
                            1.05,
                            true,
                        );
                    }
                    #[allow(clippy::cast_precision_loss)]
                    if let (Some(a), Some(b)) = (e.rss_kib, tokio.rss_kib) {
                        push(
                            format!("{name}: evloop peak RSS <= tokio"),
                            a as f64 / b as f64,
                            1.0,
                            true,
                        );
                    }
                }
            }
            if let Some(s) = get(t, size, "evloop-streams") {
                push(
                    format!("{name}: evloop-streams req/s >= 0.9x tokio"),
                    s.rps / tokio.rps,
                    0.9,
                    false,
                );
            }
        }
    }
    #[allow(clippy::cast_precision_loss)]
    let per = |s: &Syscalls| s.total as f64 / s.requests.max(1) as f64;
    let find = |name: &str| syscalls.iter().find(|s| s.server == name);
    if let (Some(e), Some(t)) = (find("evloop"), find("tokio")) {
        push(
            "syscalls per round trip <= tokio's".to_owned(),
            per(e) / per(t),
            1.0,
            true,
        );
    }
    table
}

/// `YYYY-MM-DD HH:MM` (UTC) of `unix_seconds`.
pub(crate) fn utc_date_time(unix_seconds: u64) -> String {
    let days = i64::try_from(unix_seconds / 86_400).unwrap_or(0);
    let secs = unix_seconds % 86_400;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}",
        secs / 3600,
        secs % 3600 / 60
    )
}

/// The text of one dated run for docs/performance.md: its heading (date
/// and command), the machine facts, `tables` and the `- skipped:` / `- note:`
/// lines.
pub(crate) fn run_section(
    command: &str,
    machine: &str,
    tables: &[Table],
    skipped: &[String],
    notes: &[String],
) -> String {
    let mut section = format!(
        "### {} — `{}`\n\n{}\n\n",
        super::date_now(),
        command.trim_end(),
        machine.trim_end()
    );
    for table in tables {
        section.push_str(&table.markdown());
    }
    for s in skipped {
        let _ = writeln!(section, "- skipped: {s}");
    }
    for n in notes {
        let _ = writeln!(section, "- note: {n}");
    }
    section
}

/// Appends `section` to the `heading` section of the workspace's
/// docs/performance.md (see [`insert_section`]) and says so as `tool`.
///
/// # Errors
///
/// The file cannot be written.
pub(crate) fn append_section(
    root: &std::path::Path,
    tool: &str,
    heading: &str,
    intro: &str,
    section: &str,
) -> Result<(), String> {
    let path = root.join("docs/performance.md");
    let existing = std::fs::read_to_string(&path).ok();
    let text = insert_section(existing.as_deref(), heading, intro, section);
    std::fs::write(&path, text).map_err(|e| format!("{}: {e}", path.display()))?;
    println!("{tool}: appended to {}", path.display());
    Ok(())
}

/// Inserts `section` at the end of the `HEADING` section of a
/// docs/performance.md (creating the heading, with `intro`, or the whole file,
/// if missing).
pub(crate) fn insert_section(
    existing: Option<&str>,
    heading: &str,
    intro: &str,
    section: &str,
) -> String {
    let text = existing.unwrap_or("# Performance\n");
    let Some(start) = text.lines().position(|l| l.trim_end() == heading) else {
        let mut out = text.trim_end().to_owned();
        let _ = write!(out, "\n\n{heading}\n\n{intro}\n\n{section}");
        return out;
    };
    let lines: Vec<&str> = text.lines().collect();
    let end = lines[start + 1..]
        .iter()
        .position(|l| l.starts_with("## "))
        .map_or(lines.len(), |p| start + 1 + p);
    let mut out = lines[..end].join("\n").trim_end().to_owned();
    out.push_str("\n\n");
    out.push_str(section.trim_end());
    out.push('\n');
    if end < lines.len() {
        out.push('\n');
        out.push_str(&lines[end..].join("\n"));
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians_and_numbers() {
        assert!((median(&[3.0, 1.0, 2.0]) - 2.0).abs() < 1e-12);
        assert!((median(&[4.0, 1.0, 2.0, 3.0]) - 2.5).abs() < 1e-12);
        assert!(median(&[]).is_nan());
        assert_eq!(thousands(1_234_567.4), "1,234,567");
        assert_eq!(thousands(999.0), "999");
        assert_eq!(size_name(10 * 1024), "10 KiB");
        assert_eq!(size_name(1024 * 1024), "1 MiB");
        assert_eq!(size_name(100), "100 B");
    }

    #[test]
    fn a_new_table_has_its_title_and_header_only() {
        let mut t = Table::new("t", &["server", "req/s"]);
        assert_eq!(t.text(), "== t\nserver  req/s\n");
        t.rows.push(vec!["evloop".to_owned(), "1,000".to_owned()]);
        assert_eq!(
            t.markdown(),
            "**t**\n\n| server | req/s |\n| --- | ---: |\n| evloop | 1,000 |\n\n"
        );
    }

    #[test]
    fn per_round_spreads_are_flagged_past_15_percent() {
        assert_eq!(ratio_spread(&[1.0]), "-");
        assert_eq!(ratio_spread(&[1.0, 1.1]), "1.00-1.10");
        assert_eq!(ratio_spread(&[1.0, 1.2, 1.1]), "1.00-1.20 !");
        assert!(unstable(&[1.0, 1.2, 1.1]) && !unstable(&[1.0, 1.1]) && !unstable(&[2.0]));
    }

    #[test]
    fn targets_are_judged_on_the_value_as_shown() {
        assert!(reaches(0.996, 1.0, false) && !reaches(0.994, 1.0, false));
        assert!(reaches(1.054, 1.05, true) && !reaches(1.056, 1.05, true));
        assert_eq!(verdict(1.2, 1.1, false), "yes");
        assert_eq!(verdict(1.2, 1.1, true), "MISSED");
        assert_eq!(verdict(f64::NAN, 1.0, false), "n/a");
        assert_eq!(verdict(f64::INFINITY, 1.0, false), "n/a");
    }

    #[test]
    fn dates() {
        assert_eq!(utc_date_time(0), "1970-01-01 00:00");
        assert_eq!(utc_date_time(951_782_400 + 3_660), "2000-02-29 01:01");
        assert_eq!(utc_date_time(1_767_225_600), "2026-01-01 00:00");
    }

    #[test]
    fn a_section_goes_at_the_end_of_its_heading() {
        let insert_echo_section = |existing: Option<&str>, intro: &str, section: &str| {
            insert_section(existing, "## Echo benchmarks", intro, section)
        };
        let fresh = insert_echo_section(None, "intro", "### run 1\n");
        assert_eq!(
            fresh,
            "# Performance\n\n## Echo benchmarks\n\nintro\n\n### run 1\n"
        );
        let two = insert_echo_section(Some(&fresh), "intro", "### run 2\n");
        assert!(two.ends_with("### run 1\n\n### run 2\n"), "{two}");
        let with_micro = "# P\n\n## Echo benchmarks\n\n### a\n\n## Micro benchmarks\n\nm\n";
        let out = insert_echo_section(Some(with_micro), "intro", "### b\n");
        assert_eq!(
            out,
            "# P\n\n## Echo benchmarks\n\n### a\n\n### b\n\n## Micro benchmarks\n\nm\n"
        );
        let micro_only = insert_echo_section(Some("# P\n\n## Micro\n\nm\n"), "i", "### c\n");
        assert_eq!(
            micro_only,
            "# P\n\n## Micro\n\nm\n\n## Echo benchmarks\n\ni\n\n### c\n"
        );
    }
}
