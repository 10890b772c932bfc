//! Shared test fixtures: a loop with a watchdog, a protocol that records
//! every event in order, and helpers to run children.

#![allow(dead_code, unreachable_pub)]

use std::future::Future;
use std::io;
use std::time::Duration;

use evloop_core::{Error, EventLoop};
use evloop_process::{
    subprocess_exec, ProcessOptions, Reaper, SubprocessProtocol, SubprocessProtocolHandle,
    SubprocessTransport,
};

/// How long any one test may run before the watchdog stops it.
pub const WATCHDOG: Duration = Duration::from_secs(60);

/// One recorded protocol event (data is merged into the buffers instead).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ev {
    Made,
    Data(i32),
    PipeLost(i32, Option<io::ErrorKind>),
    Exited,
    Lost,
}

/// A hook run on `process_exited`.
pub type OnExit = Box<dyn FnMut(&SubprocessTransport)>;

/// Records events; `stdout`/`stderr` collect the data.
#[derive(Default)]
pub struct Recorder {
    pub events: Vec<Ev>,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    pub transport: Option<SubprocessTransport>,
    /// Called on process_exited (e.g. to write to stdin then).
    pub on_exit: Option<OnExit>,
}

impl SubprocessProtocol for Recorder {
    fn connection_made(&mut self, transport: SubprocessTransport) {
        self.events.push(Ev::Made);
        self.transport = Some(transport);
    }
    fn pipe_data_received(&mut self, fd: i32, data: &[u8]) {
        if self.events.last() != Some(&Ev::Data(fd)) {
            self.events.push(Ev::Data(fd));
        }
        match fd {
            1 => self.stdout.extend_from_slice(data),
            _ => self.stderr.extend_from_slice(data),
        }
    }
    fn pipe_connection_lost(&mut self, fd: i32, error: Option<io::Error>) {
        self.events.push(Ev::PipeLost(fd, error.map(|e| e.kind())));
    }
    fn process_exited(&mut self) {
        self.events.push(Ev::Exited);
        if let (Some(mut f), Some(t)) = (self.on_exit.take(), self.transport.clone()) {
            f(&t);
        }
    }
    fn connection_lost(&mut self, _error: Option<io::Error>) {
        self.events.push(Ev::Lost);
    }
}

/// A new loop whose exception handler panics the test on any report.
pub fn new_loop() -> EventLoop {
    let lp = EventLoop::new().expect("loop");
    lp.set_exception_handler(Some(|_: &EventLoop, ctx: &evloop_core::ErrorContext| {
        panic!("unexpected exception handler call: {ctx}");
    }));
    lp
}

/// `run_until_complete` under the watchdog.
pub fn run<T>(lp: &EventLoop, future: impl Future<Output = T>) -> T {
    let stopper = lp.clone();
    let watchdog = lp.call_later(WATCHDOG, move || stopper.stop()).unwrap();
    let out = lp
        .run_until_complete(future)
        .expect("watchdog: the loop stopped before the future completed");
    watchdog.cancel();
    out
}

/// Options with the given reaper.
pub fn opts(reaper: Reaper) -> ProcessOptions {
    ProcessOptions::default().reaper(reaper)
}

/// Spawns `sh -c script` with a [`Recorder`].
pub fn spawn_sh(
    lp: &EventLoop,
    script: &str,
    options: ProcessOptions,
) -> Result<(SubprocessTransport, SubprocessProtocolHandle<Recorder>), Error> {
    run(
        lp,
        subprocess_exec(lp, Recorder::default, "sh", ["-c", script], options),
    )
}

/// Waits for `connection_lost` and returns the return code and events.
pub fn finish(
    lp: &EventLoop,
    transport: &SubprocessTransport,
    protocol: &SubprocessProtocolHandle<Recorder>,
) -> (i32, Vec<Ev>) {
    let code = run(lp, transport.wait());
    (code, protocol.with(|p| p.events.clone()).unwrap())
}

/// Asserts asyncio's ordering rules on a trace: `Made` first, `Lost` last
/// and once, `Exited` once, one `PipeLost` per pipe, data of a pipe before
/// its loss.
pub fn assert_order(events: &[Ev], pipes: &[i32]) {
    assert_eq!(events.first(), Some(&Ev::Made), "{events:?}");
    assert_eq!(events.last(), Some(&Ev::Lost), "{events:?}");
    assert_eq!(
        events.iter().filter(|e| **e == Ev::Lost).count(),
        1,
        "{events:?}"
    );
    assert_eq!(
        events.iter().filter(|e| **e == Ev::Exited).count(),
        1,
        "{events:?}"
    );
    for &fd in pipes {
        let lost: Vec<usize> = events
            .iter()
            .enumerate()
            .filter(|(_, e)| matches!(e, Ev::PipeLost(f, _) if *f == fd))
            .map(|(i, _)| i)
            .collect();
        assert_eq!(lost.len(), 1, "pipe {fd} lost once: {events:?}");
        if let Some(data) = events.iter().rposition(|e| *e == Ev::Data(fd)) {
            assert!(data < lost[0], "data of {fd} after its loss: {events:?}");
        }
    }
}

/// A deterministic payload.
pub fn payload(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

// Not every test binary that includes this module counts fds.
#[allow(unused_imports)]
pub use evloop_testkit::fd_count as open_fds;

/// True while this process has any child at all (zombies included).
pub fn has_children() -> bool {
    use rustix::process::{waitid, WaitId, WaitIdOptions};
    let options = WaitIdOptions::EXITED | WaitIdOptions::NOHANG | WaitIdOptions::NOWAIT;
    !matches!(waitid(WaitId::All, options), Err(rustix::io::Errno::CHILD))
}

/// Runs the loop until `done()` holds (checked every few ms on the loop's
/// timer), within the watchdog.
pub fn run_until(lp: &EventLoop, mut done: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + WATCHDOG;
    while !done() {
        assert!(
            std::time::Instant::now() < deadline,
            "watchdog: condition never held"
        );
        let stopper = lp.clone();
        lp.call_later(Duration::from_millis(5), move || stopper.stop())
            .unwrap();
        lp.run_forever().unwrap();
    }
}
