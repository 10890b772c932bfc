//! One TLS connection: a rustls `Connection` between the raw stream
//! transport (ciphertext) and the user's protocol (plaintext).
//!
//! The session sits on the raw transport as its protocol ([`RawSide`]) and
//! is the user's transport ([`TransportImpl`]). Its rules are the stream
//! transport's: no borrow of the session's state is held across a call into
//! the user's protocol or into the raw transport, so every transport method
//! works from inside every protocol callback; `connection_lost` reaches the
//! user once, from the raw transport's own (which the loop delivers).
//!
//! Writes are encrypted at once and handed to the raw transport, whose
//! buffer and water marks are therefore the TLS transport's: flow control
//! counts bytes on the wire (plaintext plus at most 22 bytes a record).

use std::any::Any;
use std::cell::{Cell, RefCell};
use std::io::{self, Read, Write};
use std::os::fd::RawFd;
use std::rc::{Rc, Weak};
use std::time::Duration;

use evloop_core::{
    Error, ErrorContext, EventLoop, LoopFuture, TimerHandle, TlsError, TlsErrorKind,
};
use evloop_transports::layer::{guard_protocol, AnyProtocol, TransportImpl};
use evloop_transports::{Address, Protocol, Transport};
use rustls::Connection;

use crate::config::Timeouts;
use crate::error::tls_error;
use crate::info::TlsInfo;

/// Bytes of plaintext taken from rustls per delivery to the user.
const PLAINTEXT_CHUNK: usize = 64 * 1024;

/// Scratch buffers shared by every session of a loop (one connection is
/// served at a time), so an idle connection holds none.
#[derive(Default)]
struct Scratch {
    plain: RefCell<Vec<u8>>,
    wire: RefCell<Vec<u8>>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Handshaking,
    Open,
    /// Failed or lost: nothing more goes in or out.
    Done,
}

#[derive(Debug)]
struct State {
    phase: Phase,
    /// The user's protocol had `connection_made` (or came via `start_tls`).
    app_made: bool,
    /// The user wants data (not paused).
    reading: bool,
    /// `close()` or `abort()` was called.
    closing: bool,
    /// Our `close_notify` is sent (by `write_eof` or `close`).
    eof_sent: bool,
    /// The peer's `close_notify` (or a raw EOF) was seen and handled.
    peer_closed: bool,
    /// The raw transport reported EOF.
    raw_eof: bool,
    /// The raw EOF came without the peer's `close_notify`: the peer does
    /// not wait for ours (asyncio sends none either), and may be gone.
    vanished: bool,
    /// Ciphertext received while the user paused reading.
    held: Vec<u8>,
    /// Writes after the connection was lost, for asyncio's warning.
    writes_after_lost: u32,
    /// The error the user's `connection_lost` gets (else the raw one's).
    lost_error: Option<io::Error>,
    /// `abort()` came before the raw transport was attached.
    abort_pending: bool,
    /// Where the incoming bytes are relative to record boundaries.
    records: Records,
}

/// Where the incoming byte stream stands relative to TLS record
/// boundaries, so that an EOF inside a record (a truncation attack, or a
/// broken peer) is told from a clean one; rustls drops a partial record at
/// EOF without a word.
#[derive(Debug, Default)]
struct Records {
    header: [u8; 5],
    header_len: usize,
    body_left: usize,
}

impl Records {
    fn advance(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            if self.body_left > 0 {
                let n = self.body_left.min(data.len());
                self.body_left -= n;
                data = &data[n..];
                continue;
            }
            let n = (5 - self.header_len).min(data.len());
            self.header[self.header_len..self.header_len + n].copy_from_slice(&data[..n]);
            self.header_len += n;
            data = &data[n..];
            if self.header_len == 5 {
                self.body_left = usize::from(u16::from_be_bytes([self.header[3], self.header[4]]));
                self.header_len = 0;
            }
        }
    }

    fn at_boundary(&self) -> bool {
        self.header_len == 0 && self.body_left == 0
    }
}

/// A TLS connection; the user's [`Transport`] is one of these.
pub(crate) struct Session {
    me: Weak<Session>,
    event_loop: EventLoop,
    tls: RefCell<Connection>,
    raw: RefCell<Option<Transport>>,
    app: RefCell<Option<AnyProtocol>>,
    ready: RefCell<Option<LoopFuture<()>>>,
    state: RefCell<State>,
    timer: RefCell<Option<TimerHandle>>,
    on_lost: RefCell<Option<Box<dyn FnOnce()>>>,
    scratch: Rc<Scratch>,
    timeouts: Timeouts,
    /// `connection_made` is due to the user's protocol (false for `start_tls`).
    announce: bool,
    released: Cell<bool>,
    /// Set while received bytes are processed: what the user writes from
    /// its callbacks goes out in one send at the end, not one per record.
    corked: Cell<bool>,
}

/// The session as the raw transport's protocol.
pub(crate) struct RawSide(pub(crate) Rc<Session>);

impl Session {
    pub(crate) fn new(
        event_loop: &EventLoop,
        tls: Connection,
        app: AnyProtocol,
        ready: Option<LoopFuture<()>>,
        timeouts: Timeouts,
        announce: bool,
    ) -> Rc<Session> {
        let scratch = event_loop.extension(Scratch::default);
        Rc::new_cyclic(|me| Session {
            me: me.clone(),
            event_loop: event_loop.clone(),
            tls: RefCell::new(tls),
            raw: RefCell::new(None),
            app: RefCell::new(Some(app)),
            ready: RefCell::new(ready),
            state: RefCell::new(State {
                phase: Phase::Handshaking,
                app_made: !announce,
                reading: true,
                closing: false,
                eof_sent: false,
                peer_closed: false,
                raw_eof: false,
                vanished: false,
                held: Vec::new(),
                writes_after_lost: 0,
                lost_error: None,
                abort_pending: false,
                records: Records::default(),
            }),
            timer: RefCell::new(None),
            on_lost: RefCell::new(None),
            scratch,
            timeouts,
            announce,
            released: Cell::new(false),
            corked: Cell::new(false),
        })
    }

    fn rc(&self) -> Rc<Session> {
        self.me
            .upgrade()
            .expect("a session is alive while its methods run")
    }

    /// The user's transport over this session.
    pub(crate) fn transport(&self) -> Transport {
        Transport::from_impl(self.rc())
    }

    fn raw(&self) -> Option<Transport> {
        self.raw.borrow().clone()
    }

    fn app(&self) -> Option<AnyProtocol> {
        self.app.borrow().clone()
    }

    fn phase(&self) -> Phase {
        self.state.borrow().phase
    }

    /// The raw transport is up: start the handshake (a client sends its
    /// hello now) and its timeout.
    pub(crate) fn attach(&self, raw: Transport) {
        *self.raw.borrow_mut() = Some(raw.clone());
        if self.state.borrow().abort_pending {
            raw.abort();
            return;
        }
        self.arm_timer(self.timeouts.handshake, Session::handshake_timed_out);
        self.flush();
    }

    // ----- incoming ---------------------------------------------------

    /// Ciphertext from the raw transport.
    fn received(&self, data: &[u8]) {
        let hold = {
            let mut st = self.state.borrow_mut();
            st.records.advance(data);
            // After close() we read on (to see the peer's close_notify),
            // whether or not the user paused reading.
            let paused = !st.reading && !st.closing;
            let hold = st.phase == Phase::Done
                || (st.phase == Phase::Open && (paused || !st.held.is_empty()));
            if hold && st.phase != Phase::Done {
                st.held.extend_from_slice(data);
            }
            hold
        };
        if !hold {
            self.corked.set(true);
            self.consume(data);
            self.corked.set(false);
        }
        self.flush();
    }

    /// Feeds `data` to rustls record by record, delivering plaintext as it
    /// comes; what cannot go in while the user paused reading is held.
    fn consume(&self, mut data: &[u8]) {
        // rustls refuses input while its plaintext buffer is full; one
        // delivery to the user makes room, so a second refusal is fatal.
        let mut refused = false;
        while !data.is_empty() {
            match self.tls.borrow_mut().read_tls(&mut data) {
                Ok(_) => refused = false,
                Err(error) if refused => return self.fail(error),
                Err(_) => refused = true,
            }
            if !self.process() {
                return;
            }
            if !self.deliver() {
                if self.phase() != Phase::Done {
                    self.state.borrow_mut().held.extend_from_slice(data);
                }
                return;
            }
        }
    }

    /// Runs rustls over what it was fed. False once the session failed.
    fn process(&self) -> bool {
        let processed = self.tls.borrow_mut().process_new_packets();
        if let Err(error) = processed {
            self.fail(tls_error(error).into_io());
            return false;
        }
        let just_done = {
            let st = self.state.borrow();
            st.phase == Phase::Handshaking && !self.tls.borrow().is_handshaking()
        };
        if just_done {
            self.handshake_done();
        }
        self.phase() != Phase::Done
    }

    /// Hands decrypted plaintext to the user while they read. Returns false
    /// if the user paused reading (the rest waits in rustls).
    fn deliver(&self) -> bool {
        loop {
            {
                let st = self.state.borrow();
                if st.phase != Phase::Open {
                    return st.phase == Phase::Handshaking;
                }
                if !st.reading && !st.closing {
                    return false;
                }
            }
            let mut buf = std::mem::take(&mut *self.scratch.plain.borrow_mut());
            if buf.len() < PLAINTEXT_CHUNK {
                buf.resize(PLAINTEXT_CHUNK, 0);
            }
            let read = self.tls.borrow_mut().reader().read(&mut buf);
            let outcome = match read {
                Ok(0) => Outcome::PeerClosed,
                Ok(n) => {
                    // After close() data is dropped (asyncio ignores it too).
                    let closing = self.state.borrow().closing;
                    match closing {
                        true => Outcome::More,
                        false => {
                            match self.to_app("data_received", |app| app.data_received(&buf[..n])) {
                                Some(Err(error)) => Outcome::Failed(error),
                                _ => Outcome::More,
                            }
                        }
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => Outcome::Empty,
                // A TCP EOF without close_notify: an end all the same
                // (asyncio's too), but no close_notify waits for ours.
                Err(_) => Outcome::PeerVanished,
            };
            *self.scratch.plain.borrow_mut() = buf;
            match outcome {
                Outcome::More => continue,
                Outcome::Failed(error) => {
                    self.fail(io::Error::other(error.to_string()));
                    return false;
                }
                Outcome::Empty => {
                    if self.state.borrow().raw_eof {
                        self.peer_closed();
                    }
                    return true;
                }
                Outcome::PeerClosed => {
                    self.peer_closed();
                    return true;
                }
                Outcome::PeerVanished => {
                    self.state.borrow_mut().vanished = true;
                    self.peer_closed();
                    return true;
                }
            }
        }
    }

    /// The peer ended its side: the user hears `eof_received`; unless it
    /// keeps the write side open, we answer `close_notify` and close. After
    /// a raw EOF nothing is kept open: the peer can send nothing more, not
    /// even the `close_notify` that would end a half-closed session (asyncio's
    /// SSL transport ends there too); after one without `close_notify` the
    /// peer waits for none from us and may be gone (an abort), so we send
    /// none, as asyncio.
    fn peer_closed(&self) {
        let (announce_eof, nothing_to_keep, vanished) = {
            let mut st = self.state.borrow_mut();
            if st.peer_closed || st.phase == Phase::Done {
                return;
            }
            st.peer_closed = true;
            (
                st.app_made && !st.closing,
                st.eof_sent || st.raw_eof,
                st.vanished,
            )
        };
        if self.phase() == Phase::Handshaking {
            self.fail(io::Error::new(
                io::ErrorKind::ConnectionReset,
                "the peer closed the connection during the TLS handshake",
            ));
            return;
        }
        let wants_open =
            announce_eof && self.to_app("eof_received", |app| app.eof_received()) == Some(true);
        // Both directions ended, or TCP did: nothing is left to keep open.
        let keep_open = wants_open && !nothing_to_keep;
        if !keep_open {
            if !vanished {
                self.send_close_notify();
            }
            self.close_raw();
        }
    }

    /// The raw transport saw EOF: let rustls know, drain, end.
    fn raw_eof(&self) {
        let truncated = {
            let mut st = self.state.borrow_mut();
            st.raw_eof = true;
            !st.records.at_boundary()
        };
        if truncated {
            let error = TlsError::new(
                TlsErrorKind::Protocol,
                "the peer closed the connection in the middle of a TLS record (truncated)",
                None,
            );
            return self.fail(error.into_io());
        }
        let _ = self.tls.borrow_mut().read_tls(&mut io::empty());
        if self.process() && self.deliver() {
            self.peer_closed();
        }
        // The user kept the session open on the peer's `close_notify`, and
        // now the peer closed TCP too (its `close()`): end it.
        let kept_open = {
            let st = self.state.borrow();
            st.peer_closed && st.phase == Phase::Open
        } && self.raw().is_some_and(|raw| !raw.is_closing());
        if kept_open {
            self.send_close_notify();
            self.close_raw();
        }
        self.flush();
    }

    // ----- handshake ----------------------------------------------------

    fn handshake_done(&self) {
        self.cancel_timer();
        self.state.borrow_mut().phase = Phase::Open;
        if self.announce {
            let transport = self.transport();
            self.to_app("connection_made", move |app| app.connection_made(transport));
            self.state.borrow_mut().app_made = true;
        }
        let ready = self.ready.borrow_mut().take();
        if let Some(ready) = ready {
            let _ = ready.set_result(());
        }
    }

    fn handshake_timed_out(&self) {
        if self.phase() != Phase::Handshaking {
            return;
        }
        let seconds = self.timeouts.handshake.as_secs_f64();
        let error = io::Error::new(
            io::ErrorKind::TimedOut,
            format!(
                "TLS handshake is taking longer than {seconds} seconds: aborting the connection"
            ),
        );
        self.fail(error);
    }

    /// A fatal failure: during the handshake the creating call (or, on a
    /// server in debug mode, the exception handler) gets it and the user's protocol sees
    /// nothing; after it, the user's `connection_lost` does. Any alert rustls
    /// queued is sent, then the raw transport closes.
    fn fail(&self, error: io::Error) {
        let was = {
            let mut st = self.state.borrow_mut();
            let was = st.phase;
            if was == Phase::Done {
                return;
            }
            st.phase = Phase::Done;
            st.held = Vec::new();
            was
        };
        self.cancel_timer();
        if was == Phase::Handshaking {
            // A start_tls user keeps its protocol: it hears the error too.
            self.state.borrow_mut().lost_error = Some(clone_io(&error));
            self.handshake_failed(error);
        } else {
            self.state.borrow_mut().lost_error = Some(error);
        }
        self.flush();
        self.close_raw();
    }

    fn handshake_failed(&self, error: io::Error) {
        let ready = self.ready.borrow_mut().take();
        let error = Error::from(error);
        match ready {
            Some(ready) => {
                let _ = ready.set_error(error);
            }
            None if !self.announce => {}
            // A server meets scanners and broken clients all day: as in
            // asyncio, a failed handshake is news only in debug mode (asyncio
            // reports it then as "Error on transport creation for incoming
            // connection"); otherwise it is a debug-level trace.
            None if !self.event_loop.get_debug() => {
                tracing::debug!(target: "evloop::tls", %error, "TLS handshake failed");
            }
            None => {
                self.event_loop.call_exception_handler(ErrorContext {
                    message: "TLS handshake failed".to_owned(),
                    error: Some(error),
                    protocol: Some("TlsProtocol".to_owned()),
                    transport: Some(self.describe()),
                    socket: self.fd(),
                    ..ErrorContext::default()
                });
            }
        }
    }

    // ----- outgoing -----------------------------------------------------

    /// Moves what rustls has to send (records, alerts) to the raw transport.
    fn flush(&self) {
        let Some(raw) = self.raw() else {
            return;
        };
        loop {
            let mut wire = std::mem::take(&mut *self.scratch.wire.borrow_mut());
            wire.clear();
            let wrote = {
                let mut tls = self.tls.borrow_mut();
                if !tls.wants_write() {
                    None
                } else {
                    Some(tls.write_tls(&mut wire))
                }
            };
            if let Some(Ok(n)) = wrote {
                if n > 0 {
                    raw.write(&wire);
                }
            }
            *self.scratch.wire.borrow_mut() = wire;
            if !matches!(wrote, Some(Ok(n)) if n > 0) {
                return;
            }
        }
    }

    fn encrypt(&self, mut data: &[u8]) {
        let mut stalled = false;
        while !data.is_empty() {
            let taken = self.tls.borrow_mut().writer().write(data);
            match taken {
                Ok(n) if n > 0 => {
                    data = &data[n..];
                    stalled = false;
                }
                // rustls's send buffer stays full: nothing can take records.
                _ if stalled => {
                    tracing::warn!(target: "evloop::tls", dropped = data.len(), "TLS send buffer stuck: write dropped");
                    return;
                }
                // rustls's send buffer is full: empty it into the raw transport.
                _ => {
                    stalled = true;
                    self.flush();
                }
            }
        }
        if !self.corked.get() {
            self.flush();
        }
    }

    fn send_close_notify(&self) {
        {
            let mut st = self.state.borrow_mut();
            if st.eof_sent || st.phase == Phase::Done {
                return;
            }
            st.eof_sent = true;
        }
        self.tls.borrow_mut().send_close_notify();
        self.flush();
    }

    fn close_raw(&self) {
        if let Some(raw) = self.raw() {
            raw.close();
        }
    }

    // ----- the raw transport's end ----------------------------------------

    /// The raw transport is gone: the user hears `connection_lost` (if it
    /// heard `connection_made`), and everything is let go.
    fn raw_lost(&self, error: Option<io::Error>) {
        self.cancel_timer();
        let (was, lost_error) = {
            let mut st = self.state.borrow_mut();
            let was = st.phase;
            st.phase = Phase::Done;
            (was, st.lost_error.take())
        };
        let app_made = self.state.borrow().app_made;
        if was == Phase::Handshaking {
            let error = error.unwrap_or_else(|| {
                io::Error::new(
                    io::ErrorKind::ConnectionReset,
                    "the connection was lost during the TLS handshake",
                )
            });
            self.handshake_failed(error);
        } else if app_made {
            let error = lost_error.or(error);
            self.to_app("connection_lost", move |app| app.connection_lost(error));
        }
        self.release();
    }

    /// Drops the user's protocol and the raw transport (ending the cycles
    /// through them) and runs the lost hook, once.
    fn release(&self) {
        if self.released.replace(true) {
            return;
        }
        self.cancel_timer();
        self.state.borrow_mut().phase = Phase::Done;
        drop(self.app.borrow_mut().take());
        drop(self.raw.borrow_mut().take());
        drop(self.ready.borrow_mut().take());
        let hook = self.on_lost.borrow_mut().take();
        if let Some(hook) = hook {
            hook();
        }
    }

    // ----- plumbing -------------------------------------------------------

    /// Calls the user's protocol (unless it is gone). A panic is reported
    /// and aborts the connection with it.
    fn to_app<R>(&self, what: &str, f: impl FnOnce(&AnyProtocol) -> R) -> Option<R> {
        let app = self.app()?;
        let describe = || self.describe();
        match guard_protocol(&self.event_loop, &app, &describe, self.fd(), what, || {
            f(&app)
        }) {
            Ok(result) => Some(result),
            Err(error) => {
                self.state.borrow_mut().lost_error = Some(error);
                if let Some(raw) = self.raw() {
                    raw.abort();
                }
                None
            }
        }
    }

    /// Calls a flow-control method of the user's protocol now, or on the
    /// loop if the protocol is busy in one of its callbacks.
    fn flow_to_app(&self, what: &'static str, f: fn(&AnyProtocol)) {
        let Some(app) = self.app() else {
            return;
        };
        if !self.state.borrow().app_made {
            return;
        }
        if app.is_busy() {
            let me = self.rc();
            let _ = self.event_loop.call_soon(move || me.flow_to_app(what, f));
            return;
        }
        self.to_app(what, f);
    }

    fn arm_timer(&self, after: Duration, fire: fn(&Session)) {
        let me = self.me.clone();
        let timer = self.event_loop.call_later(after, move || {
            if let Some(me) = me.upgrade() {
                fire(&me);
            }
        });
        self.cancel_timer();
        *self.timer.borrow_mut() = timer.ok();
    }

    fn cancel_timer(&self) {
        if let Some(timer) = self.timer.borrow_mut().take() {
            timer.cancel();
        }
    }

    fn shutdown_timed_out(&self) {
        if self.phase() == Phase::Done {
            return;
        }
        self.state.borrow_mut().lost_error = Some(io::Error::new(
            io::ErrorKind::TimedOut,
            "TLS shutdown timed out",
        ));
        if let Some(raw) = self.raw() {
            raw.abort();
        }
    }

    /// Hands held ciphertext and buffered plaintext to a user who resumed
    /// reading.
    fn resume_delivery(&self) {
        if !self.state.borrow().reading || self.phase() != Phase::Open {
            return;
        }
        if !self.deliver() {
            return;
        }
        let held = std::mem::take(&mut self.state.borrow_mut().held);
        self.consume(&held);
        self.flush();
        let still_reading = {
            let st = self.state.borrow();
            st.reading && st.held.is_empty() && st.phase == Phase::Open
        };
        if still_reading {
            if let Some(raw) = self.raw() {
                raw.resume_reading();
            }
        }
    }

    /// TLS details for `get_extra_info`.
    pub(crate) fn info(&self) -> Option<TlsInfo> {
        if self.phase() == Phase::Handshaking {
            return None;
        }
        Some(TlsInfo::of(&self.tls.borrow()))
    }
}

enum Outcome {
    More,
    Failed(Error),
    Empty,
    /// The peer's `close_notify`.
    PeerClosed,
    /// A TCP EOF without `close_notify`.
    PeerVanished,
}

impl TransportImpl for Session {
    fn write(&self, data: &[u8]) {
        if data.is_empty() {
            return;
        }
        {
            let mut st = self.state.borrow_mut();
            if st.phase == Phase::Done || self.released.get() {
                st.writes_after_lost = st.writes_after_lost.saturating_add(1);
                if st.writes_after_lost >= 5 {
                    tracing::warn!(target: "evloop::tls", "TLS connection is closed: write ignored");
                }
                return;
            }
            if st.eof_sent || st.closing {
                tracing::warn!(target: "evloop::tls", "write() after write_eof() or close() ignored");
                return;
            }
            if st.phase == Phase::Handshaking {
                tracing::warn!(target: "evloop::tls", "write() before the TLS handshake completed ignored");
                return;
            }
        }
        self.encrypt(data);
    }

    fn write_eof(&self) {
        if self.state.borrow().closing {
            return;
        }
        self.send_close_notify();
        if self.state.borrow().peer_closed {
            self.close_raw();
        }
    }

    fn can_write_eof(&self) -> bool {
        true
    }

    fn close(&self) {
        let phase = {
            let mut st = self.state.borrow_mut();
            if st.closing {
                return;
            }
            st.closing = true;
            st.phase
        };
        match phase {
            // asyncio: closing during the handshake aborts.
            Phase::Handshaking => self.abort(),
            Phase::Done => self.close_raw(),
            Phase::Open => {
                self.send_close_notify();
                // What waited for a paused reader may hold the peer's close_notify.
                let held = std::mem::take(&mut self.state.borrow_mut().held);
                self.consume(&held);
                if self.state.borrow().peer_closed {
                    self.close_raw();
                } else {
                    // Read on until the peer's close_notify, for a while.
                    // We write nothing more: the raw EOF after our
                    // close_notify tells a peer that kept its side open
                    // on it (a half-close, see `write_eof`) that this is
                    // a close, so it answers instead of letting us wait.
                    if let Some(raw) = self.raw() {
                        raw.resume_reading();
                        if raw.can_write_eof() {
                            raw.write_eof();
                        }
                    }
                    self.arm_timer(self.timeouts.shutdown, Session::shutdown_timed_out);
                }
            }
        }
    }

    fn abort(&self) {
        self.state.borrow_mut().closing = true;
        match self.raw() {
            Some(raw) => raw.abort(),
            None => self.state.borrow_mut().abort_pending = true,
        }
    }

    fn is_closing(&self) -> bool {
        let st = self.state.borrow();
        st.closing || st.phase == Phase::Done
    }

    fn set_reading(&self, on: bool) {
        {
            let mut st = self.state.borrow_mut();
            if st.reading == on || st.closing {
                return;
            }
            st.reading = on;
        }
        if on {
            let me = self.rc();
            let _ = self.event_loop.call_soon(move || me.resume_delivery());
        } else if self.phase() == Phase::Open {
            if let Some(raw) = self.raw() {
                raw.pause_reading();
            }
        }
    }

    fn is_reading(&self) -> bool {
        let st = self.state.borrow();
        st.reading && !st.closing && st.phase != Phase::Done
    }

    fn get_write_buffer_size(&self) -> usize {
        self.raw().map_or(0, |raw| raw.get_write_buffer_size())
    }

    fn get_write_buffer_limits(&self) -> (usize, usize) {
        self.raw()
            .map_or((0, 0), |raw| raw.get_write_buffer_limits())
    }

    fn set_write_buffer_limits(
        &self,
        high: Option<usize>,
        low: Option<usize>,
    ) -> Result<(), Error> {
        match self.raw() {
            Some(raw) => raw.set_write_buffer_limits(high, low),
            None => Ok(()),
        }
    }

    fn peername(&self) -> Option<Address> {
        self.raw().and_then(|raw| raw.peername())
    }

    fn sockname(&self) -> Option<Address> {
        self.raw().and_then(|raw| raw.sockname())
    }

    fn fd(&self) -> Option<RawFd> {
        self.raw().and_then(|raw| raw.fd())
    }

    fn set_protocol(&self, protocol: AnyProtocol) {
        let mut app = self.app.borrow_mut();
        if app.is_some() {
            *app = Some(protocol);
        }
    }

    fn set_on_lost(&self, hook: Box<dyn FnOnce()>) {
        if self.released.get() {
            hook();
        } else {
            *self.on_lost.borrow_mut() = Some(hook);
        }
    }

    fn as_any(&self) -> &dyn Any {
        self
    }

    fn describe(&self) -> String {
        let side = match &*self.tls.borrow() {
            Connection::Client(_) => "client",
            Connection::Server(_) => "server",
        };
        match self.raw() {
            Some(raw) => format!("<TLS {side} transport over {raw:?}>"),
            None => format!("<TLS {side} transport (closed)>"),
        }
    }
}

impl Protocol for RawSide {
    fn connection_made(&mut self, transport: Transport) {
        self.0.attach(transport);
    }

    fn data_received(&mut self, data: &[u8]) {
        self.0.received(data);
    }

    fn eof_received(&mut self) -> bool {
        self.0.raw_eof();
        // The session closes the raw transport itself, after its close_notify.
        true
    }

    fn connection_lost(&mut self, error: Option<io::Error>) {
        self.0.raw_lost(error);
    }

    fn pause_writing(&mut self) {
        self.0
            .flow_to_app("pause_writing", AnyProtocol::pause_writing);
    }

    fn resume_writing(&mut self) {
        self.0
            .flow_to_app("resume_writing", AnyProtocol::resume_writing);
    }
}

impl Drop for RawSide {
    /// The raw transport let go of us without `connection_lost` (its loop
    /// closed): let go of the user's protocol too.
    fn drop(&mut self) {
        self.0.release();
    }
}

/// A copy of `error` keeping its kind, errno and TLS error.
fn clone_io(error: &io::Error) -> io::Error {
    if let Some(tls) = TlsError::from_io(error) {
        return io::Error::new(error.kind(), tls.clone());
    }
    match error.raw_os_error() {
        Some(errno) => io::Error::from_raw_os_error(errno),
        None => io::Error::new(error.kind(), error.to_string()),
    }
}
