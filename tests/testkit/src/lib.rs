//! Test support shared by evloop's crates (a dev-dependency only): this
//! process's open fds, for the leak checks every crate's tests make.
//!
//! It owns reading `/proc/self/fd` *once the reading holds still*: the test
//! harness's own threads open and close fds of their own at moments no lock
//! orders (seen as an fd that is gone before `readlink` can read it), so a
//! single reading can count one too many; a leak holds still and is still
//! counted. It deliberately owns nothing about loops, fixtures or protocols:
//! those stay in each crate's `tests/support`, next to the API they test.
//!
//! It depends on no evloop crate, so every crate can take it.
#![forbid(unsafe_code)]

use std::collections::BTreeSet;
use std::time::Duration;

/// How many equal readings in a row count as "holds still".
const STILL_READINGS: usize = 3;
/// The pause between readings.
const READING_GAP: Duration = Duration::from_millis(1);
/// The most readings taken before the last one is returned anyway.
const MAX_READINGS: usize = 100;

/// Reads `read` until it returns the same value [`STILL_READINGS`] times in
/// a row, [`READING_GAP`] apart (at most [`MAX_READINGS`] readings), and
/// returns that value.
fn settled<T: PartialEq>(read: impl Fn() -> T) -> T {
    let mut last = read();
    let mut same = 1;
    for _ in 0..MAX_READINGS {
        if same == STILL_READINGS {
            break;
        }
        std::thread::sleep(READING_GAP);
        let now = read();
        same = if now == last { same + 1 } else { 1 };
        last = now;
    }
    last
}

/// The numbers of this process's open fds, read once the set holds still
/// (empty when `/proc/self/fd` cannot be read).
pub fn fd_set() -> BTreeSet<i32> {
    settled(|| {
        std::fs::read_dir("/proc/self/fd")
            .map(|dir| {
                dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
                    .collect()
            })
            .unwrap_or_default()
    })
}

/// How many fds this process has open, read once the count holds still.
pub fn fd_count() -> usize {
    settled(|| std::fs::read_dir("/proc/self/fd").map_or(0, Iterator::count))
}

/// What `fd` points to (`socket:[123]`, a path, ...), or an empty string
/// when it is closed by the time it is read.
pub fn fd_target(fd: i32) -> String {
    std::fs::read_link(format!("/proc/self/fd/{fd}"))
        .map(|p| p.display().to_string())
        .unwrap_or_default()
}

/// This process's open fds with what each points to (`"4 -> socket:[9]"`),
/// sorted, for a leak report. Read once, not settled: it describes a leak
/// [`fd_count`] or [`fd_set`] already found.
pub fn fd_list() -> Vec<String> {
    let Ok(dir) = std::fs::read_dir("/proc/self/fd") else {
        return Vec::new();
    };
    let mut fds: Vec<String> = dir
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .map(|fd: i32| format!("{fd} -> {}", fd_target(fd)))
        .collect();
    fds.sort();
    fds
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs::File;
    use std::os::fd::AsRawFd;

    #[test]
    fn an_open_file_is_counted_listed_and_described() {
        let before = fd_set();
        let file = File::open("/proc/self/status").unwrap();
        let fd = file.as_raw_fd();
        assert_eq!(fd_count(), before.len() + 1);
        assert!(fd_set().contains(&fd));
        assert_eq!(
            fd_target(fd),
            "/proc/self/status".replace("self", &std::process::id().to_string())
        );
        assert!(fd_list().contains(&format!("{fd} -> {}", fd_target(fd))));
        drop(file);
        assert_eq!(fd_set(), before);
        assert_eq!(fd_target(fd), "");
    }

    #[test]
    fn a_reading_that_changes_is_read_again_until_it_holds_still() {
        let readings = std::cell::Cell::new(0);
        let value = settled(|| {
            readings.set(readings.get() + 1);
            readings.get().min(5)
        });
        assert_eq!(value, 5);
        assert_eq!(readings.get(), 5 + STILL_READINGS - 1);
    }
}
