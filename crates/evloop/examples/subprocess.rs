//! `subprocess -- PROGRAM ARGS...`: runs the child through the loop's
//! subprocess API, copies its stdout and stderr to ours as they arrive and
//! our stdin to its stdin, then prints `exit status: N` (`-SIGNUM` if a
//! signal killed it) and exits 0 (README, contract example 6).
//!
//! Our stdin may be a pipe, a tty or a socket (watched by the loop as a
//! read pipe), a regular file (read on the executor) or `/dev/null`. A child
//! that exits without reading its stdin is fine: the stdin pipe reports
//! `BrokenPipe` to the protocol and we stop copying.

use std::cell::RefCell;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::process::ExitCode;
use std::rc::Rc;

use evloop::{
    Error, EventLoop, ProcessOptions, Protocol, Stdio, SubprocessProtocol, SubprocessTransport,
    Transport,
};

/// What the two protocols share: the child's stdin pipe and our stdin's
/// transport (when our stdin is watched by the loop).
#[derive(Default)]
struct Shared {
    child_stdin: Option<Transport>,
    our_stdin: Option<Transport>,
    /// The child's stdin is gone: drop what we read.
    stdin_lost: bool,
}

type SharedRef = Rc<RefCell<Shared>>;

/// The child's side: copy its output to ours, stop the loop at the end.
struct Child {
    shared: SharedRef,
    event_loop: EventLoop,
    transport: Option<SubprocessTransport>,
    returncode: Option<i32>,
}

impl SubprocessProtocol for Child {
    fn connection_made(&mut self, transport: SubprocessTransport) {
        self.shared.borrow_mut().child_stdin = transport.get_pipe_transport(0);
        self.transport = Some(transport);
    }

    fn pipe_data_received(&mut self, fd: i32, data: &[u8]) {
        // A closed stdout/stderr of ours is not the child's problem.
        if fd == 2 {
            let mut err = io::stderr().lock();
            let _ = err.write_all(data).and_then(|()| err.flush());
        } else {
            let mut out = io::stdout().lock();
            let _ = out.write_all(data).and_then(|()| out.flush());
        }
    }

    fn pipe_connection_lost(&mut self, fd: i32, _error: Option<io::Error>) {
        if fd == 0 {
            // EPIPE or a clean close: stop copying our stdin.
            let ours = {
                let mut shared = self.shared.borrow_mut();
                shared.stdin_lost = true;
                shared.our_stdin.take()
            };
            if let Some(ours) = ours {
                ours.close();
            }
        }
    }

    fn process_exited(&mut self) {
        self.returncode = self
            .transport
            .as_ref()
            .and_then(SubprocessTransport::returncode);
    }

    fn connection_lost(&mut self, _error: Option<io::Error>) {
        self.event_loop.stop();
    }

    fn pause_writing(&mut self) {
        if let Some(ours) = &self.shared.borrow().our_stdin {
            ours.pause_reading();
        }
    }

    fn resume_writing(&mut self) {
        if let Some(ours) = &self.shared.borrow().our_stdin {
            ours.resume_reading();
        }
    }
}

/// Our stdin's side: copy to the child's stdin, EOF → its EOF.
struct OurStdin {
    shared: SharedRef,
}

impl Protocol for OurStdin {
    fn data_received(&mut self, data: &[u8]) {
        let shared = self.shared.borrow();
        if let (Some(child), false) = (&shared.child_stdin, shared.stdin_lost) {
            child.write(data);
        }
    }

    fn eof_received(&mut self) -> bool {
        if let Some(child) = &self.shared.borrow().child_stdin {
            child.write_eof();
        }
        false
    }
}

/// How our stdin is read.
enum Input {
    /// A pipe, tty, socket or character device: the loop watches it.
    Watched(OwnedFd),
    /// A regular file: read on the executor.
    File(std::fs::File),
}

fn our_stdin() -> io::Result<Input> {
    let fd = io::stdin().as_fd().try_clone_to_owned()?;
    let meta = std::fs::File::from(fd.try_clone()?).metadata()?;
    Ok(if meta.is_file() {
        Input::File(std::fs::File::from(fd))
    } else {
        Input::Watched(fd)
    })
}

fn usage() -> ExitCode {
    eprintln!("usage: subprocess -- PROGRAM [ARGS...]");
    ExitCode::from(2)
}

fn main() -> ExitCode {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--") {
        args.remove(0);
    }
    if args.is_empty() {
        return usage();
    }
    match run(&args[0], &args[1..]) {
        Ok(code) => {
            println!("exit status: {code}");
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("subprocess: {}: {error}", args[0]);
            ExitCode::FAILURE
        }
    }
}

fn run(program: &str, args: &[String]) -> Result<i32, Error> {
    let lp = EventLoop::new()?;
    let shared = SharedRef::default();
    let input = our_stdin()?;
    let child = Child {
        shared: shared.clone(),
        event_loop: lp.clone(),
        transport: None,
        returncode: None,
    };
    let options = ProcessOptions::default()
        .stdin(Stdio::Pipe)
        .stdout(Stdio::Pipe)
        .stderr(Stdio::Pipe);
    let spawn = lp.subprocess_exec(move || child, program, args, options);
    let (transport, protocol) = lp.run_until_complete(spawn)??;

    match input {
        Input::Watched(fd) => {
            let reader = OurStdin {
                shared: shared.clone(),
            };
            let (ours, _) = lp.run_until_complete(lp.connect_read_pipe(move || reader, fd))??;
            let mut st = shared.borrow_mut();
            if st.stdin_lost {
                ours.close();
            } else {
                st.our_stdin = Some(ours);
            }
        }
        Input::File(mut file) => {
            let read = lp.run_in_executor(None, move || {
                let mut data = Vec::new();
                file.read_to_end(&mut data).map(|_| data)
            });
            let feeder = shared.clone();
            lp.create_task(async move {
                let data = read.await;
                if let Some(child) = &feeder.borrow().child_stdin {
                    if let Ok(Ok(data)) = data {
                        child.write(&data);
                    }
                    child.write_eof();
                }
            })?;
        }
    }

    if !transport.is_finished() {
        lp.run_forever()?;
    }
    let code = protocol
        .with(|p| p.returncode)?
        .or_else(|| transport.returncode())
        .unwrap_or(255);
    if let Some(ours) = shared.borrow_mut().our_stdin.take() {
        ours.close();
    }
    transport.close();
    lp.close()?;
    Ok(code)
}
