//! Subprocess sessions: `cat` as the echo peer. The payload goes in
//! chunks to its stdin pipe transport (then `close`), its stdout comes
//! back through `pipe_data_received`. The "client" plan hits the stdin
//! pipe's fd, the "server" plan the stdout pipe's fd.

use std::cell::RefCell;
use std::io;
use std::rc::Rc;

use evloop_core::LoopFuture;
use evloop_process::{
    subprocess_exec, ProcessOptions, Stdio, SubprocessProtocol, SubprocessTransport,
};
use evloop_transports::fault::FaultPlan;

use super::pipe::judge_one_way;
use super::{check_closed, watch_fd, Cleanup, Env, Spec};
use crate::record::Record;
use crate::Ended;

/// What the subprocess protocol saw.
struct Seen {
    /// The whole subprocess protocol (made / lost).
    process: Record,
    /// The stdin pipe's end (`pipe_connection_lost(0, …)`).
    stdin: Record,
    /// The stdout pipe's end: its data and `pipe_connection_lost(1, …)`.
    stdout: Record,
    exited: u32,
    stdin_token: Option<u64>,
    stdout_token: Option<u64>,
}

struct Cat {
    seen: Rc<RefCell<Seen>>,
    lost: LoopFuture<()>,
    payload: Rc<Vec<u8>>,
    chunks: Vec<usize>,
    stdin_plan: Option<FaultPlan>,
    stdout_plan: Option<FaultPlan>,
    transport: Rc<RefCell<Option<SubprocessTransport>>>,
}

impl SubprocessProtocol for Cat {
    fn connection_made(&mut self, transport: SubprocessTransport) {
        let mut seen = self.seen.borrow_mut();
        seen.process.made();
        let stdin = transport.get_pipe_transport(0);
        let stdout = transport.get_pipe_transport(1);
        seen.stdin.made();
        seen.stdout.made();
        seen.stdin_token = watch_fd(
            stdin.as_ref().and_then(|t| t.fd()),
            self.stdin_plan.as_ref(),
        );
        seen.stdout_token = watch_fd(
            stdout.as_ref().and_then(|t| t.fd()),
            self.stdout_plan.as_ref(),
        );
        drop(seen);
        *self.transport.borrow_mut() = Some(transport);
        let Some(stdin) = stdin else {
            self.seen
                .borrow_mut()
                .process
                .problem("no stdin pipe transport");
            return;
        };
        let mut at = 0;
        for &n in &self.chunks {
            stdin.write(&self.payload[at..at + n]);
            at += n;
        }
        stdin.close();
    }

    fn pipe_data_received(&mut self, fd: i32, data: &[u8]) {
        let mut seen = self.seen.borrow_mut();
        seen.process.callback("pipe_data_received");
        match fd {
            1 => seen.stdout.data(data),
            _ => seen.process.problem(&format!("data on fd {fd}")),
        }
    }

    fn pipe_connection_lost(&mut self, fd: i32, error: Option<io::Error>) {
        let mut seen = self.seen.borrow_mut();
        seen.process.callback("pipe_connection_lost");
        match fd {
            0 => seen.stdin.lost(error),
            1 => seen.stdout.lost(error),
            _ => seen.process.problem(&format!("pipe_connection_lost({fd})")),
        }
    }

    fn process_exited(&mut self) {
        let mut seen = self.seen.borrow_mut();
        seen.process.callback("process_exited");
        seen.exited += 1;
    }

    fn connection_lost(&mut self, error: Option<io::Error>) {
        let mut seen = self.seen.borrow_mut();
        if seen.stdin.lost.is_none() || seen.stdout.lost.is_none() || seen.exited == 0 {
            seen.process
                .problem("connection_lost before every pipe closed and the child exited");
        }
        if let Some(error) = &error {
            seen.process.problem(&format!("connection_lost({error})"));
        }
        seen.process.lost(error);
        drop(seen);
        self.transport.borrow_mut().take();
        let _ = self.lost.set_result(());
    }

    fn pause_writing(&mut self) {
        self.seen.borrow_mut().process.callback("pause_writing");
    }

    fn resume_writing(&mut self) {
        self.seen.borrow_mut().process.callback("resume_writing");
    }
}

/// Runs a subprocess session.
pub(crate) async fn run(env: &Env, spec: &mut Spec, cleanup: &Cleanup) -> (Ended, Vec<String>) {
    let lp = env.lp.clone();
    let seen = Rc::new(RefCell::new(Seen {
        process: Record::new("subprocess"),
        stdin: Record::new("stdin pipe"),
        stdout: Record::new("stdout pipe"),
        exited: 0,
        stdin_token: None,
        stdout_token: None,
    }));
    let lost = lp.create_future::<()>();
    let transport: Rc<RefCell<Option<SubprocessTransport>>> = Rc::default();
    let protocol = Cat {
        seen: seen.clone(),
        lost: lost.clone(),
        payload: spec.payload.clone(),
        chunks: spec.chunks.clone(),
        stdin_plan: spec.client.clone(),
        stdout_plan: spec.server.clone(),
        transport: transport.clone(),
    };
    {
        let transport = transport.clone();
        cleanup.borrow_mut().push(Box::new(move || {
            if let Some(t) = transport.borrow().clone() {
                let _ = t.kill();
                t.close();
            }
        }));
    }
    let options = ProcessOptions::default().stderr(Stdio::Null);
    let spawned = subprocess_exec(&lp, move || protocol, "cat", Vec::<&str>::new(), options).await;
    let mut problems = Vec::new();
    if let Err(error) = spawned {
        problems.push(format!("spawning cat failed: {error}"));
        return (Ended::ErrorOnce, problems);
    }
    drop(spawned);
    let _ = lost.await;
    let ended = {
        let s = seen.borrow();
        problems.extend(s.process.problems.iter().cloned());
        if s.exited != 1 {
            problems.push(format!("process_exited ran {} times", s.exited));
        }
        judge_one_way(
            spec,
            &s.stdin,
            &s.stdout,
            s.stdin_token,
            s.stdout_token,
            &mut problems,
        )
    };
    let tokens = {
        let s = seen.borrow();
        [
            ("stdin pipe", s.stdin_token),
            ("stdout pipe", s.stdout_token),
        ]
    };
    problems.extend(check_closed(&lp, &tokens).await);
    (ended, problems)
}
