//! asyncio's "Display the current date with call_later()" (seed 18.5.1.18.2):
//! print the date and time once a second for five seconds.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use evloop::{Error, EventLoop};

fn display_date(lp: &EventLoop, end: Instant) {
    println!("{}", utc_now());
    if lp.time() + Duration::from_secs(1) < end {
        let next = lp.clone();
        // Scheduling can only fail on a closed loop, which this one is not.
        let _ = lp.call_later(Duration::from_secs(1), move || display_date(&next, end));
    } else {
        lp.stop();
    }
}

fn main() -> Result<(), Error> {
    let lp = EventLoop::new()?;
    let end = lp.time() + Duration::from_secs(5);
    let first = lp.clone();
    lp.call_soon(move || display_date(&first, end))?;
    lp.run_forever()?;
    lp.close()
}

/// The wall-clock time as `YYYY-MM-DD HH:MM:SS.ffffff` (UTC), like Python's
/// `str(datetime.datetime.now())`.
fn utc_now() -> String {
    let since_epoch = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let secs = since_epoch.as_secs();
    let (year, month, day) = civil_from_days(secs / 86_400);
    let rem = secs % 86_400;
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}.{:06}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        since_epoch.subsec_micros()
    )
}

/// Days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's
/// `civil_from_days`).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}
