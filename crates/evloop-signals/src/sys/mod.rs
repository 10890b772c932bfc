//! The platform seam: the only place this crate touches signal dispositions
//! and the only `unsafe` in it.
//!
//! # Backends
//!
//! * `unix.rs` (every Unix): `sigaction` with an `extern "C"` handler that
//!   does only async-signal-safe work (atomics and one `write`).
//!
//! Other targets are rejected with `compile_error!` (asyncio has no
//! `add_signal_handler` off Unix either, and the reactor is Unix-only).
//!
//! # Contract
//!
//! The backend provides, for signal numbers `1..NSIG`:
//!
//! * `const NSIG: i32`: one past the highest signal number accepted.
//! * `claim(signum, fd) -> Claim`: makes `fd` the signal's wake-up fd if it
//!   has none (`Claim::New`) or reports that it already is (`Claim::Already`);
//!   `Claim::Taken` if another fd holds it. Atomic, so two loops racing for
//!   one signal cannot both win.
//! * `release(signum, fd)`: forgets `fd` as the signal's wake-up fd (no-op if
//!   another fd holds it); `release_all(fd)` does so for every signal.
//! * `quiesce()`: returns once no handler can still write to an fd released
//!   before the call, so the caller may close it.
//! * `install(signum)` / `restore_default(signum)`: set the disposition to the
//!   crate's handler (`SA_RESTART`) or to `SIG_DFL`; OS errors keep errno.
//! * `clear_pending(signum)` / `take_pending(signum) -> bool`: the per-signal
//!   "arrived since last looked" flag that the handler sets before writing the
//!   signal number, as one byte, to the wake-up fd.

#[cfg(unix)]
mod unix;
#[cfg(unix)]
pub(crate) use unix::*;

#[cfg(not(unix))]
compile_error!("evloop-signals supports Unix targets only");
