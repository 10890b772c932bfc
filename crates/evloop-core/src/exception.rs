//! The exception handler API (docs/behaviour.md 14): where panics and errors that no
//! caller can receive are reported.

use std::fmt;
use std::os::fd::RawFd;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::rc::Rc;

use crate::handle::HandleInfo;
use crate::{Error, EventLoop};

/// A custom exception handler (`set_exception_handler`).
pub type ExceptionHandler = Rc<dyn Fn(&EventLoop, &ErrorContext)>;

/// What went wrong and where (asyncio's context dict, typed).
#[derive(Clone, Debug, Default)]
pub struct ErrorContext {
    /// A human-readable description, e.g. `Exception in callback <Handle …>`.
    pub message: String,
    /// The error or caught panic.
    pub error: Option<Error>,
    /// The callback that failed.
    pub handle: Option<HandleInfo>,
    /// A description of the future involved.
    pub future: Option<String>,
    /// A description of the task involved.
    pub task: Option<String>,
    /// The protocol's type name.
    pub protocol: Option<String>,
    /// A description of the transport.
    pub transport: Option<String>,
    /// The socket's fd.
    pub socket: Option<RawFd>,
}

impl ErrorContext {
    /// A context with just a message and an error.
    pub fn new(message: impl Into<String>, error: Option<Error>) -> Self {
        ErrorContext {
            message: message.into(),
            error,
            ..ErrorContext::default()
        }
    }
}

impl fmt::Display for ErrorContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)?;
        if let Some(error) = &self.error {
            write!(f, ": {error}")?;
        }
        let fields: [(&str, Option<String>); 6] = [
            ("handle", self.handle.map(|h| h.to_string())),
            ("future", self.future.clone()),
            ("task", self.task.clone()),
            ("protocol", self.protocol.clone()),
            ("transport", self.transport.clone()),
            ("socket", self.socket.map(|fd| fd.to_string())),
        ];
        for (name, value) in fields {
            if let Some(value) = value {
                write!(f, "; {name}: {value}")?;
            }
        }
        Ok(())
    }
}

impl EventLoop {
    /// Sets the handler that [`call_exception_handler`](Self::call_exception_handler)
    /// uses; `None` restores the default (`None::<fn(&EventLoop, &ErrorContext)>`).
    pub fn set_exception_handler<H>(&self, handler: Option<H>)
    where
        H: Fn(&EventLoop, &ErrorContext) + 'static,
    {
        *self.inner.exception_handler.borrow_mut() =
            handler.map(|h| Rc::new(h) as ExceptionHandler);
    }

    /// The custom handler, if one is set.
    pub fn get_exception_handler(&self) -> Option<ExceptionHandler> {
        self.inner.exception_handler.borrow().clone()
    }

    /// The default handler: logs `ctx` through `tracing::error!` (target `evloop`).
    pub fn default_exception_handler(&self, ctx: &ErrorContext) {
        tracing::error!(target: "evloop", "{ctx}");
    }

    /// Reports `ctx` to the custom handler, or the default one. A handler that
    /// panics is reported by the default handler, with the original context;
    /// the loop goes on (docs/behaviour.md 14.2).
    pub fn call_exception_handler(&self, ctx: ErrorContext) {
        let handler = self.get_exception_handler();
        let Some(handler) = handler else {
            let _ = catch_unwind(AssertUnwindSafe(|| self.default_exception_handler(&ctx)));
            return;
        };
        if let Err(payload) = catch_unwind(AssertUnwindSafe(|| handler(self, &ctx))) {
            let report = ErrorContext {
                message: format!("Unhandled error in exception handler (while handling: {ctx})"),
                error: Some(Error::from_panic(&*payload)),
                ..ctx
            };
            let _ = catch_unwind(AssertUnwindSafe(|| self.default_exception_handler(&report)));
        }
    }
}
