//! What every transport does with its fd and its protocol, whatever its
//! kind: hold the fd's claim on the loop and arm or disarm its reader and
//! writer only when that changes, and run protocol callbacks so that a panic
//! is reported with the transport's context instead of unwinding.

use std::cell::{Cell, RefCell};
use std::io;
use std::os::fd::RawFd;
use std::panic::{catch_unwind, AssertUnwindSafe};

use evloop_core::{Error, ErrorContext, EventLoop, FdClaim};

/// A transport's claim on its fd and which watchers are armed.
#[derive(Debug)]
pub(crate) struct FdWatch {
    claim: RefCell<Option<FdClaim>>,
    reader: Cell<bool>,
    writer: Cell<bool>,
}

impl FdWatch {
    pub(crate) fn new(claim: FdClaim) -> Self {
        FdWatch {
            claim: RefCell::new(Some(claim)),
            reader: Cell::new(false),
            writer: Cell::new(false),
        }
    }

    /// Arms the reader with the callback `make` builds (only when arming),
    /// or disarms it; nothing happens if it is already so.
    pub(crate) fn set_reader<F: FnMut() + 'static>(&self, on: bool, make: impl FnOnce() -> F) {
        if self.reader.get() == on {
            return;
        }
        let claim = self.claim.borrow();
        let Some(claim) = claim.as_ref() else {
            return;
        };
        let armed = on
            && claim
                .set_reader(make())
                .inspect_err(|error| {
                    tracing::debug!(target: "evloop::transports", %error, "arming reader failed");
                })
                .is_ok();
        if !on {
            claim.clear_reader();
        }
        self.reader.set(armed);
    }

    /// As [`set_reader`](Self::set_reader), for the writer.
    pub(crate) fn set_writer<F: FnMut() + 'static>(&self, on: bool, make: impl FnOnce() -> F) {
        if self.writer.get() == on {
            return;
        }
        let claim = self.claim.borrow();
        let Some(claim) = claim.as_ref() else {
            return;
        };
        let armed = on && claim.set_writer(make()).is_ok();
        if !on {
            claim.clear_writer();
        }
        self.writer.set(armed);
    }

    /// Disarms both and gives the fd back to the loop; call before closing it.
    pub(crate) fn release(&self) {
        self.reader.set(false);
        self.writer.set(false);
        drop(self.claim.borrow_mut().take());
    }
}

/// Sends a transport's failure to the loop's exception handler with the
/// transport's context.
pub(crate) fn report(
    event_loop: &EventLoop,
    protocol: &str,
    transport: String,
    fd: RawFd,
    message: &str,
    error: Error,
) {
    event_loop.call_exception_handler(ErrorContext {
        message: message.to_owned(),
        error: Some(error),
        protocol: Some(protocol.to_owned()),
        transport: Some(transport),
        socket: Some(fd),
        ..ErrorContext::default()
    });
}

/// Runs protocol method `what`; a panic is caught and handed to `report`
/// with asyncio's `_fatal_error` message, and comes back as the error the
/// transport then closes with.
pub(crate) fn guarded<R>(
    what: &str,
    report: impl FnOnce(&str, Error),
    f: impl FnOnce() -> R,
) -> Result<R, io::Error> {
    catch_unwind(AssertUnwindSafe(f)).map_err(|payload| {
        let error = Error::from_panic(&*payload);
        report(
            &format!("Fatal error: protocol.{what}() call failed."),
            error.clone(),
        );
        io::Error::other(error.to_string())
    })
}
