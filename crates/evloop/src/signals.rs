//! Unix signal handlers (docs/behaviour.md 12): the facade's face of `evloop-signals`.

use evloop_core::Error;

use crate::EventLoop;

pub use evloop_signals::signal_name;

impl EventLoop {
    /// Calls `callback` on the loop each time `signum` arrives (even while the
    /// loop blocks in poll). Re-adding replaces the callback.
    ///
    /// # Errors
    /// [`Error::Closed`]; [`Error::InvalidArgument`] for an invalid number or
    /// a signal another loop handles; [`Error::UncatchableSignal`] for
    /// `SIGKILL`/`SIGSTOP`.
    pub fn add_signal_handler(
        &self,
        signum: i32,
        callback: impl FnMut() + 'static,
    ) -> Result<(), Error> {
        evloop_signals::add_signal_handler(self.as_core(), signum, callback)
    }

    /// Removes the handler and restores the default disposition; `Ok(false)`
    /// if there was none.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for an invalid number.
    pub fn remove_signal_handler(&self, signum: i32) -> Result<bool, Error> {
        evloop_signals::remove_signal_handler(self.as_core(), signum)
    }
}
