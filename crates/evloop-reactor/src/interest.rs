//! What a registration asks for ([`Interest`]) and what a wait reports
//! ([`Event`]).

/// The readiness a [`Registration`](crate::Registration) asks to be told
/// about.
///
/// [`Interest::NONE`] is a valid interest: the fd stays known to the
/// registration but is not watched at all (not even for errors or hang-ups).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Interest {
    /// Report the fd when a read would not block.
    pub readable: bool,
    /// Report the fd when a write would not block.
    pub writable: bool,
}

impl Interest {
    /// Watch nothing.
    pub const NONE: Interest = Interest {
        readable: false,
        writable: false,
    };
    /// Watch for readability only.
    pub const READABLE: Interest = Interest {
        readable: true,
        writable: false,
    };
    /// Watch for writability only.
    pub const WRITABLE: Interest = Interest {
        readable: false,
        writable: true,
    };
    /// Watch for readability and writability.
    pub const BOTH: Interest = Interest {
        readable: true,
        writable: true,
    };

    /// Returns `true` if neither readability nor writability is asked for.
    #[inline]
    #[must_use]
    pub fn is_none(self) -> bool {
        !self.readable && !self.writable
    }
}

/// One readiness report from [`Poller::wait`](crate::Poller::wait).
///
/// Error and hang-up conditions (`EPOLLERR`/`EPOLLHUP`) are reported as
/// *both* readable and writable, as Python's `selectors` do, so that whichever
/// callback runs next sees the error from its own syscall. The flags are not
/// masked by the registration's interest: a caller that only asked for
/// readability may see `writable: true` on an error and should ignore what it
/// did not ask for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Event {
    /// The key given to [`Poller::register`](crate::Poller::register).
    pub key: usize,
    /// The fd is readable (or in an error/hang-up state).
    pub readable: bool,
    /// The fd is writable (or in an error/hang-up state).
    pub writable: bool,
}
