//! docs/behaviour.md 14: the exception handler API (14.1) and a handler that panics
//! (14.2). The default handler logs through `tracing`; a small
//! capturing subscriber, scoped to the test's thread, reads what it logged.

use std::cell::RefCell;
use std::fmt::{self, Write as _};
use std::io;
use std::rc::Rc;
use std::sync::{Arc, Mutex};

use evloop::ExceptionHandler;
use evloop::{Error, ErrorContext, EventLoop};
use evloop_conformance::Fixture;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Metadata, Subscriber};

/// Exactly one loop iteration with a zero poll timeout (docs/behaviour.md 1.3).
fn iterate(lp: &EventLoop) {
    lp.stop();
    lp.run_forever().expect("one iteration");
}

/// Records every event as `LEVEL target: message field=value…`.
#[derive(Clone, Default)]
struct Capture {
    lines: Arc<Mutex<Vec<String>>>,
}

struct Line(String);

impl Visit for Line {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.0, " {value:?}");
        } else {
            let _ = write!(self.0, " {}={value:?}", field.name());
        }
    }
}

impl Subscriber for Capture {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &Attributes<'_>) -> Id {
        Id::from_u64(1)
    }
    fn record(&self, _: &Id, _: &Record<'_>) {}
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn event(&self, event: &Event<'_>) {
        let meta = event.metadata();
        let mut line = Line(format!("{} {}:", meta.level(), meta.target()));
        event.record(&mut line);
        self.lines.lock().expect("lock").push(line.0);
    }
    fn enter(&self, _: &Id) {}
    fn exit(&self, _: &Id) {}
}

impl Capture {
    /// Runs `f` with this subscriber as the thread's default.
    fn during<R>(&self, f: impl FnOnce() -> R) -> R {
        tracing::subscriber::with_default(self.clone(), f)
    }

    /// The captured `ERROR` lines of target `evloop`.
    fn errors(&self) -> Vec<String> {
        self.lines
            .lock()
            .expect("lock")
            .iter()
            .filter(|l| l.starts_with("ERROR evloop"))
            .cloned()
            .collect()
    }
}

/// Puts the fixture's recording handler (taken with `get_exception_handler`)
/// back, so `finish` checks the rest of the test as usual.
fn restore(lp: &EventLoop, saved: ExceptionHandler) {
    lp.set_exception_handler(Some(move |l: &EventLoop, ctx: &ErrorContext| saved(l, ctx)));
}

fn econnreset() -> Error {
    Error::Io(io::Error::from_raw_os_error(
        rustix::io::Errno::CONNRESET.raw_os_error(),
    ))
}

/// A context with every key set.
fn full_context(lp: &EventLoop) -> ErrorContext {
    let handle = lp.call_soon(|| ()).expect("call_soon");
    handle.cancel();
    ErrorContext {
        message: "custom report".into(),
        error: Some(econnreset()),
        handle: Some(handle.info()),
        future: Some("<LoopFuture pending>".into()),
        task: Some("<Task created at here>".into()),
        protocol: Some("EchoProtocol".into()),
        transport: Some("<TcpTransport fd=7>".into()),
        socket: Some(7),
    }
}

fn assert_same_context(got: &ErrorContext, want: &ErrorContext) {
    assert_eq!(got.message, want.message);
    match (&got.error, &want.error) {
        (Some(Error::Io(g)), Some(Error::Io(w))) => {
            assert_eq!(g.raw_os_error(), w.raw_os_error());
            assert_eq!(g.kind(), w.kind());
        }
        (g, w) => panic!("error changed: got {g:?}, want {w:?}"),
    }
    assert_eq!(got.handle, want.handle);
    assert_eq!(got.future, want.future);
    assert_eq!(got.task, want.task);
    assert_eq!(got.protocol, want.protocol);
    assert_eq!(got.transport, want.transport);
    assert_eq!(got.socket, want.socket);
}

// ---- 14.1 -------------------------------------------------------------------

#[test]
fn spec_14_1_set_and_get_exception_handler() {
    let fx = Fixture::new();
    let lp = &fx.lp;
    let saved = lp
        .get_exception_handler()
        .expect("the fixture installed a handler");
    let seen = Rc::new(RefCell::new(Vec::new()));
    let s = seen.clone();
    lp.set_exception_handler(Some(move |on: &EventLoop, ctx: &ErrorContext| {
        // The handler is given the facade loop it was set on.
        let marked = on.as_core().get_extension::<Marker>().is_some();
        s.borrow_mut().push((ctx.message.clone(), marked));
    }));
    struct Marker;
    let _ = lp.as_core().extension(|| Marker);
    let custom = lp.get_exception_handler().expect("custom handler set");
    lp.call_exception_handler(ErrorContext::new("via the loop", None));
    custom(lp, &ErrorContext::new("via get", None));
    assert_eq!(
        *seen.borrow(),
        [
            ("via the loop".to_owned(), true),
            ("via get".to_owned(), true)
        ]
    );
    assert!(
        fx.take_errors().is_empty(),
        "the replaced handler is not called"
    );
    restore(lp, saved);
    lp.call_exception_handler(ErrorContext::new("restored", None));
    let errors = fx.take_errors();
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].message, "restored");
    fx.finish();
}

#[test]
fn spec_14_1_call_exception_handler_keeps_every_typed_field() {
    let fx = Fixture::new();
    let lp = &fx.lp;
    let ctx = full_context(lp);
    lp.call_exception_handler(ctx.clone());
    let errors = fx.take_errors();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_same_context(&errors[0], &ctx);
    fx.finish();
}

#[test]
fn spec_14_1_default_exception_handler_is_callable_and_logs() {
    let fx = Fixture::new();
    let lp = &fx.lp;
    let capture = Capture::default();
    let ctx = full_context(lp);
    capture.during(|| lp.default_exception_handler(&ctx));
    assert!(
        fx.take_errors().is_empty(),
        "default_exception_handler does not call the custom handler"
    );
    let logged = capture.errors();
    assert_eq!(
        logged.len(),
        1,
        "one error line on target evloop: {logged:?}"
    );
    for part in [
        "custom report",
        "EchoProtocol",
        "<TcpTransport fd=7>",
        "socket: 7",
    ] {
        assert!(logged[0].contains(part), "{part:?} missing from {logged:?}");
    }
    fx.finish();
}

#[test]
fn spec_14_1_none_restores_the_default_handler() {
    let fx = Fixture::new();
    let lp = &fx.lp;
    let saved = lp.get_exception_handler().expect("fixture handler");
    lp.set_exception_handler(None::<fn(&EventLoop, &ErrorContext)>);
    assert!(lp.get_exception_handler().is_none());
    let capture = Capture::default();
    capture.during(|| {
        lp.call_exception_handler(ErrorContext::new("to the default", Some(econnreset())));
        // Loop-originated reports go there too.
        lp.call_soon(|| panic!("callback boom")).expect("call_soon");
        iterate(lp);
    });
    let logged = capture.errors();
    assert_eq!(logged.len(), 2, "{logged:?}");
    assert!(logged[0].contains("to the default"), "{logged:?}");
    assert!(logged[1].contains("Exception in callback"), "{logged:?}");
    assert!(logged[1].contains("callback boom"), "{logged:?}");
    restore(lp, saved);
    assert!(fx.take_errors().is_empty());
    fx.finish();
}

#[test]
fn spec_14_1_callback_panic_context_names_the_handle() {
    let fx = Fixture::new();
    let lp = &fx.lp;
    let handle = lp.call_soon(|| panic!("typed boom")).expect("call_soon");
    iterate(lp);
    let errors = fx.take_errors();
    assert_eq!(errors.len(), 1, "{errors:?}");
    let ctx = &errors[0];
    assert_eq!(
        ctx.handle,
        Some(handle.info()),
        "the handle key is the failed callback"
    );
    assert!(
        matches!(&ctx.error, Some(Error::Panic(m)) if m == "typed boom"),
        "{ctx:?}"
    );
    assert_eq!(
        ctx.message,
        format!("Exception in callback {}", handle.info())
    );
    fx.finish();
}

// ---- 14.2 -------------------------------------------------------------------

#[test]
fn spec_14_2_panicking_handler_is_reported_and_the_loop_survives() {
    let fx = Fixture::new();
    let lp = &fx.lp;
    let saved = lp.get_exception_handler().expect("fixture handler");
    lp.set_exception_handler(Some(|_: &EventLoop, _: &ErrorContext| {
        panic!("handler boom")
    }));
    let after = Rc::new(RefCell::new(Vec::new()));
    let capture = Capture::default();
    capture.during(|| {
        let a = after.clone();
        lp.call_soon(|| panic!("callback boom")).expect("call_soon");
        lp.call_soon(move || a.borrow_mut().push("same batch"))
            .expect("call_soon");
        iterate(lp);
        // Called directly, the handler's panic does not reach the caller.
        lp.call_exception_handler(ErrorContext::new("direct report", None));
        let a = after.clone();
        lp.call_soon(move || a.borrow_mut().push("next run"))
            .expect("call_soon");
        iterate(lp);
    });
    assert_eq!(
        *after.borrow(),
        ["same batch", "next run"],
        "the loop survived"
    );
    let logged = capture.errors();
    assert_eq!(
        logged.len(),
        2,
        "one default report per failed handler call: {logged:?}"
    );
    // The default handler reports both the handler's panic and the original.
    for part in [
        "Unhandled error in exception handler",
        "handler boom",
        "callback boom",
    ] {
        assert!(logged[0].contains(part), "{part:?} missing from {logged:?}");
    }
    for part in [
        "Unhandled error in exception handler",
        "handler boom",
        "direct report",
    ] {
        assert!(logged[1].contains(part), "{part:?} missing from {logged:?}");
    }
    restore(lp, saved);
    assert!(fx.take_errors().is_empty());
    fx.finish();
}
