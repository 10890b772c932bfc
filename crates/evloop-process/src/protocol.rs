//! [`SubprocessProtocol`] (asyncio's `SubprocessProtocol`) and the handle
//! that reaches it between callbacks.

use std::cell::RefCell;
use std::fmt;
use std::io;
use std::rc::Rc;

use evloop_core::Error;

use crate::transport::SubprocessTransport;

/// The callbacks of a subprocess transport, in asyncio's order:
/// `connection_made`; then `pipe_data_received`*, `pipe_connection_lost`
/// (once per pipe) and `process_exited` (once) as they happen; then
/// `connection_lost` once, after the child exited *and* every pipe closed.
/// Every method has a no-op default.
pub trait SubprocessProtocol: 'static {
    /// The child runs and its pipes are connected; keep `transport` to
    /// reach the pipes, signal the child and close.
    fn connection_made(&mut self, transport: SubprocessTransport) {
        let _ = transport;
    }
    /// The child wrote `data` on fd 1 (stdout) or 2 (stderr).
    fn pipe_data_received(&mut self, fd: i32, data: &[u8]) {
        let _ = (fd, data);
    }
    /// The pipe for child fd `fd` (0, 1 or 2) closed: `None` at EOF or
    /// after close, the error otherwise (`BrokenPipe` on stdin when the
    /// child stopped reading while data was buffered).
    fn pipe_connection_lost(&mut self, fd: i32, error: Option<io::Error>) {
        let _ = (fd, error);
    }
    /// The child exited; [`SubprocessTransport::returncode`] has its code.
    fn process_exited(&mut self) {}
    /// Everything is over: the child exited and every pipe closed.
    fn connection_lost(&mut self, error: Option<io::Error>) {
        let _ = error;
    }
    /// The stdin pipe's write buffer rose above its high-water mark.
    fn pause_writing(&mut self) {}
    /// The stdin pipe's write buffer drained to its low-water mark.
    fn resume_writing(&mut self) {}
}

/// The user's way to a subprocess protocol the transport owns, between
/// callbacks (the subprocess counterpart of `evloop_transports::ProtocolHandle`).
pub struct SubprocessProtocolHandle<P: ?Sized> {
    pub(crate) inner: Rc<RefCell<P>>,
}

impl<P: ?Sized> Clone for SubprocessProtocolHandle<P> {
    fn clone(&self) -> Self {
        SubprocessProtocolHandle {
            inner: self.inner.clone(),
        }
    }
}

impl<P: ?Sized> SubprocessProtocolHandle<P> {
    /// Runs `f` with the protocol.
    ///
    /// # Errors
    /// [`Error::InvalidState`] when called from inside one of this
    /// protocol's own callbacks (it is already in use there).
    pub fn with<R>(&self, f: impl FnOnce(&mut P) -> R) -> Result<R, Error> {
        let mut protocol = self
            .inner
            .try_borrow_mut()
            .map_err(|_| Error::InvalidState("protocol is in use by one of its callbacks"))?;
        Ok(f(&mut protocol))
    }
}

impl<P: ?Sized> fmt::Debug for SubprocessProtocolHandle<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SubprocessProtocolHandle")
            .field("type", &std::any::type_name::<P>())
            .finish()
    }
}
