//! Human names of signal numbers (`signal_name`), for messages and examples.

/// The name of `signum`: `"SIGINT"`, `"SIGTERM"`, …, or `"SIG<n>"` for a
/// number without a standard name (real-time signals, unknown numbers).
///
/// # Examples
///
/// ```
/// use evloop_signals::signal_name;
///
/// assert_eq!(signal_name(2), "SIGINT");
/// assert_eq!(signal_name(15), "SIGTERM");
/// assert_eq!(signal_name(1000), "SIG1000");
/// ```
#[doc(alias = "Signals")]
pub fn signal_name(signum: i32) -> String {
    match known_name(signum) {
        Some(name) => name.to_owned(),
        None => format!("SIG{signum}"),
    }
}

fn known_name(signum: i32) -> Option<&'static str> {
    let name = match signum {
        libc::SIGHUP => "SIGHUP",
        libc::SIGINT => "SIGINT",
        libc::SIGQUIT => "SIGQUIT",
        libc::SIGILL => "SIGILL",
        libc::SIGTRAP => "SIGTRAP",
        libc::SIGABRT => "SIGABRT",
        libc::SIGBUS => "SIGBUS",
        libc::SIGFPE => "SIGFPE",
        libc::SIGKILL => "SIGKILL",
        libc::SIGUSR1 => "SIGUSR1",
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGUSR2 => "SIGUSR2",
        libc::SIGPIPE => "SIGPIPE",
        libc::SIGALRM => "SIGALRM",
        libc::SIGTERM => "SIGTERM",
        libc::SIGCHLD => "SIGCHLD",
        libc::SIGCONT => "SIGCONT",
        libc::SIGSTOP => "SIGSTOP",
        libc::SIGTSTP => "SIGTSTP",
        libc::SIGTTIN => "SIGTTIN",
        libc::SIGTTOU => "SIGTTOU",
        libc::SIGURG => "SIGURG",
        libc::SIGXCPU => "SIGXCPU",
        libc::SIGXFSZ => "SIGXFSZ",
        libc::SIGVTALRM => "SIGVTALRM",
        libc::SIGPROF => "SIGPROF",
        libc::SIGWINCH => "SIGWINCH",
        libc::SIGIO => "SIGIO",
        libc::SIGSYS => "SIGSYS",
        _ => return platform_name(signum),
    };
    Some(name)
}

#[cfg(any(target_os = "linux", target_os = "android"))]
fn platform_name(signum: i32) -> Option<&'static str> {
    match signum {
        libc::SIGSTKFLT => Some("SIGSTKFLT"),
        libc::SIGPWR => Some("SIGPWR"),
        _ => None,
    }
}

#[cfg(any(
    target_vendor = "apple",
    target_os = "freebsd",
    target_os = "dragonfly",
    target_os = "netbsd",
    target_os = "openbsd",
))]
fn platform_name(signum: i32) -> Option<&'static str> {
    match signum {
        libc::SIGEMT => Some("SIGEMT"),
        libc::SIGINFO => Some("SIGINFO"),
        _ => None,
    }
}

#[cfg(not(any(
    target_os = "linux",
    target_os = "android",
    target_vendor = "apple",
    target_os = "freebsd",
    target_os = "dragonfly",
    target_os = "netbsd",
    target_os = "openbsd",
)))]
fn platform_name(_signum: i32) -> Option<&'static str> {
    None
}

#[cfg(test)]
mod tests {
    use super::signal_name;

    #[test]
    fn names_standard_signals_and_falls_back_to_numbers() {
        assert_eq!(signal_name(libc::SIGINT), "SIGINT");
        assert_eq!(signal_name(libc::SIGUSR1), "SIGUSR1");
        assert_eq!(signal_name(libc::SIGKILL), "SIGKILL");
        assert_eq!(signal_name(0), "SIG0");
        assert_eq!(signal_name(-3), "SIG-3");
        #[cfg(target_os = "linux")]
        {
            assert_eq!(signal_name(libc::SIGPWR), "SIGPWR");
            assert_eq!(signal_name(40), "SIG40");
        }
    }
}
