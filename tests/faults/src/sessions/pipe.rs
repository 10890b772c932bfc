//! Pipe sessions: the payload written in chunks through
//! `connect_write_pipe` (then `close`), read through `connect_read_pipe`
//! until EOF. The "client" plan hits the writer, the "server" plan the
//! reader.

use std::io;

use evloop_transports::{connect_read_pipe, connect_write_pipe, Protocol, Transport};

use super::stream::End;
use super::{check_closed, terminal_injected, Cleanup, Env, Spec};
use crate::record::{check_prefix, is_terminal, Record};
use crate::Ended;

struct Writer {
    end: End,
    spec: (std::rc::Rc<Vec<u8>>, Vec<usize>),
    plan: Option<evloop_transports::fault::FaultPlan>,
}

impl Protocol for Writer {
    fn connection_made(&mut self, transport: Transport) {
        self.end.made_with(&transport, self.plan.as_ref());
        let (payload, chunks) = &self.spec;
        let mut at = 0;
        for &n in chunks {
            transport.write(&payload[at..at + n]);
            at += n;
        }
        transport.close();
    }

    fn data_received(&mut self, data: &[u8]) {
        self.end.rec.borrow_mut().data(data);
        self.end
            .rec
            .borrow_mut()
            .problem("data_received on a write pipe");
    }

    fn connection_lost(&mut self, error: Option<io::Error>) {
        self.end.lost_with(error);
    }

    fn pause_writing(&mut self) {
        self.end.rec.borrow_mut().callback("pause_writing");
    }

    fn resume_writing(&mut self) {
        self.end.rec.borrow_mut().callback("resume_writing");
    }
}

struct Reader {
    end: End,
    plan: Option<evloop_transports::fault::FaultPlan>,
}

impl Protocol for Reader {
    fn connection_made(&mut self, transport: Transport) {
        self.end.made_with(&transport, self.plan.as_ref());
    }

    fn data_received(&mut self, data: &[u8]) {
        self.end.rec.borrow_mut().data(data);
    }

    fn eof_received(&mut self) -> bool {
        self.end.rec.borrow_mut().eof();
        false
    }

    fn connection_lost(&mut self, error: Option<io::Error>) {
        self.end.lost_with(error);
    }
}

/// Runs a pipe session.
pub(crate) async fn run(env: &Env, spec: &mut Spec, cleanup: &Cleanup) -> (Ended, Vec<String>) {
    let lp = env.lp.clone();
    let (r, w) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).expect("pipe");
    let reader = End::new(env, "reader");
    let writer = End::new(env, "writer");
    let reader_protocol = Reader {
        end: reader.clone(),
        plan: spec.server.clone(),
    };
    connect_read_pipe(&lp, move || reader_protocol, r)
        .await
        .expect("connect_read_pipe");
    for end in [&reader, &writer] {
        let end = end.clone();
        cleanup.borrow_mut().push(Box::new(move || {
            if let Some(t) = end.transport.borrow().clone() {
                t.abort();
            }
        }));
    }
    let writer_protocol = Writer {
        end: writer.clone(),
        spec: (spec.payload.clone(), spec.chunks.clone()),
        plan: spec.client.clone(),
    };
    connect_write_pipe(&lp, move || writer_protocol, w)
        .await
        .expect("connect_write_pipe");
    let _ = writer.lost.clone().await;
    let _ = reader.lost.clone().await;
    let mut problems = Vec::new();
    let ended = {
        let w = writer.rec.borrow();
        let r = reader.rec.borrow();
        judge_one_way(
            spec,
            &w,
            &r,
            writer.token.get(),
            reader.token.get(),
            &mut problems,
        )
    };
    problems.extend(
        check_closed(
            &lp,
            &[
                ("writer", writer.token.get()),
                ("reader", reader.token.get()),
            ],
        )
        .await,
    );
    (ended, problems)
}

/// The checks of a one-way session (a pipe, a subprocess's stdin to its
/// stdout): what the reader got is the payload (or a prefix after a
/// terminal fault), each side lost once, with an error iff it (or,
/// possibly, its peer) got a terminal fault.
pub(crate) fn judge_one_way(
    spec: &Spec,
    writer: &Record,
    reader: &Record,
    writer_token: Option<u64>,
    reader_token: Option<u64>,
    problems: &mut Vec<String>,
) -> Ended {
    problems.extend(writer.problems.iter().cloned());
    problems.extend(reader.problems.iter().cloned());
    let writer_terminal = terminal_injected(writer_token);
    let reader_terminal = terminal_injected(reader_token);
    let clean = !writer_terminal && !reader_terminal;
    check_prefix(problems, reader.who, &reader.data, &spec.payload, clean);
    for (rec, own) in [(writer, writer_terminal), (reader, reader_terminal)] {
        match (&rec.lost, clean) {
            (None, _) => problems.push(format!("{}: connection_lost never ran", rec.who)),
            (Some(None), true) => {}
            (Some(Some(e)), true) => problems.push(format!(
                "{}: lost with {e} though no terminal fault was injected",
                rec.who
            )),
            (Some(None), false) if own => problems.push(format!(
                "{}: a terminal fault was injected on its fd but connection_lost(None)",
                rec.who
            )),
            (Some(Some(e)), false) if !is_terminal(e) => {
                problems.push(format!("{}: lost with {e}", rec.who));
            }
            (Some(_), false) => {}
        }
    }
    if clean {
        Ended::Clean
    } else {
        Ended::ErrorOnce
    }
}
