//! The platform seam: one backend is compiled in, and everything above this
//! module is backend-agnostic.
//!
//! # Backends
//!
//! * `epoll.rs` (Linux and Android, the default there): `epoll` through
//!   `rustix::event::epoll` plus an `eventfd` for wake-ups. One
//!   `epoll_wait` per [`Selector::select`] in steady state.
//! * `polling.rs` (every other Unix, and Linux/Android when built with
//!   `--cfg evloop_polling_backend`): the `polling` crate in
//!   `PollMode::Level`, woken with `polling::Poller::notify`.
//!
//! * `loom.rs` (any target built with `--cfg loom`, for `cargo xtask loom`
//!   only): no fds; the eventfd becomes a counter and the blocking wait a
//!   loom condition variable, so loom's model checker runs the waker
//!   protocol of `waker.rs` unchanged.
//!
//! Other targets are rejected with `compile_error!`.
//!
//! # Contract
//!
//! Each backend provides:
//!
//! * `const NAME: &str`, returned by `Poller::backend_name`.
//! * `struct Selector` (`Send + Sync + Debug`) with
//!   * `new() -> io::Result<Selector>`;
//!   * `add(fd, key, interest)`, `modify(fd, key, interest)`,
//!     `delete(fd)`: level-triggered registration. The caller guarantees
//!     `fd >= 0`, `key != WAKER_KEY` and a non-empty interest (empty interest
//!     is handled above this seam by deleting the fd), and that the fd was
//!     open when `Poller::register` borrowed it (a `BorrowedFd`). It does
//!     *not* guarantee that the fd is still open at a later call: safe code
//!     can close it, and the OS reuse its number, while a `Registration`
//!     still holds the number. Each backend must stay sound with such a
//!     stale number (an OS error or a report for the key is fine; touching
//!     memory or another file's data is not) and say how in its
//!     `// SAFETY:` comments; see "After registration" on `Registration`.
//!     OS errors keep their errno.
//!   * `select(&mut Events, Option<Duration>) -> io::Result<bool>`: exactly
//!     one blocking wait, `None` meaning forever. Clears `events` first and
//!     fills it with user events only (never the wake-up source). A timeout
//!     must never end early (round up); huge timeouts are clamped, never
//!     panic. `EINTR` is `Ok` with no events. Returns `true` if a pending
//!     notification may have been consumed, so the shared `notified` flag
//!     (see `waker.rs`) must be reset. No allocation in steady state.
//!   * `notify()`: makes the current `select`, or the next one, return.
//!     Called only from the waker protocol, at most once per consumed
//!     notification, so it never overflows a counter.
//! * `struct Events` (`Debug`) with `with_capacity(n)` (`n >= 1`), `iter()`
//!   yielding [`Event`](crate::Event)s with errors/hang-ups reported as both
//!   readable and writable, `len()`, `clear()`.

/// The key reserved for the backend's own wake-up source. Never reported to
/// callers; `Poller::register` rejects it.
pub(crate) const WAKER_KEY: usize = usize::MAX;

#[cfg(all(
    any(target_os = "linux", target_os = "android"),
    not(evloop_polling_backend),
    not(loom)
))]
mod epoll;
#[cfg(all(
    any(target_os = "linux", target_os = "android"),
    not(evloop_polling_backend),
    not(loom)
))]
pub(crate) use epoll::{Events, Selector, NAME};

#[cfg(all(
    unix,
    any(
        not(any(target_os = "linux", target_os = "android")),
        evloop_polling_backend
    ),
    not(loom)
))]
mod polling;
#[cfg(all(
    unix,
    any(
        not(any(target_os = "linux", target_os = "android")),
        evloop_polling_backend
    ),
    not(loom)
))]
pub(crate) use self::polling::{Events, Selector, NAME};

#[cfg(loom)]
mod loom;
#[cfg(loom)]
pub use self::loom::Notifications;
#[cfg(loom)]
pub(crate) use self::loom::{Events, Selector, NAME};

#[cfg(not(unix))]
compile_error!("evloop-reactor supports Unix targets only (it works on raw fds)");
