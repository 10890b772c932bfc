//! Streams sessions: `start_server` with a handler that echoes through
//! `StreamReader::read` / `StreamWriter::write` + `drain`, and an
//! `open_connection` client that writes (then `write_eof`) while it reads.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use evloop_core::Error;
use evloop_transports::fault;
use evloop_transports::{
    open_connection, start_server, ConnectOptions, ServerOptions, DEFAULT_LIMIT,
};

use super::{check_closed, terminal_injected, watch_fd, Cleanup, Env, Spec};
use crate::record::{check_prefix, stream_error_is_terminal};
use crate::Ended;

/// One side's result: the bytes it read and the errors it got.
#[derive(Default)]
struct Side {
    data: Vec<u8>,
    errors: Vec<Error>,
    token: Option<u64>,
    done: bool,
}

/// Runs a streams session.
pub(crate) async fn run(env: &Env, spec: &mut Spec, cleanup: &Cleanup) -> (Ended, Vec<String>) {
    let lp = env.lp.clone();
    let server_side: Rc<RefCell<Side>> = Rc::default();
    let handled = Rc::new(Cell::new(0u32));
    let server_done = lp.create_future::<()>();
    let handler = {
        let side = server_side.clone();
        let plan = spec.server.clone();
        let handled = handled.clone();
        let done = server_done.clone();
        move |mut reader: evloop_transports::StreamReader,
              writer: evloop_transports::StreamWriter| {
            handled.set(handled.get() + 1);
            let side = side.clone();
            let done = done.clone();
            side.borrow_mut().token = watch_fd(writer.transport().fd(), plan.as_ref());
            async move {
                loop {
                    match reader.read(65536).await {
                        Ok(data) if data.is_empty() => break,
                        Ok(data) => {
                            side.borrow_mut().data.extend_from_slice(&data);
                            writer.write(&data);
                            if let Err(error) = writer.drain().await {
                                side.borrow_mut().errors.push(error);
                                break;
                            }
                        }
                        Err(error) => {
                            side.borrow_mut().errors.push(error);
                            break;
                        }
                    }
                }
                writer.close();
                if let Err(error) = writer.wait_closed().await {
                    side.borrow_mut().errors.push(error);
                }
                side.borrow_mut().done = true;
                let _ = done.set_result(());
            }
        }
    };
    let options = ServerOptions::default().host(["127.0.0.1"]).port(0);
    let server = start_server(&lp, handler, options, DEFAULT_LIMIT)
        .await
        .expect("the session's server");
    let listener = server.fds()[0];
    if let Some(plan) = &spec.accept {
        fault::target(listener, plan);
    }
    let listener_closed = Rc::new(Cell::new(false));
    {
        let server = server.clone();
        let listener_closed = listener_closed.clone();
        cleanup.borrow_mut().push(Box::new(move || {
            if !listener_closed.get() {
                fault::untarget(listener);
            }
            server.close();
            server.abort_clients();
        }));
    }
    let port = server.sockets()[0].as_inet().map_or(0, |a| a.port());
    let connect = open_connection(
        &lp,
        Some("127.0.0.1"),
        Some(port),
        ConnectOptions::default(),
        DEFAULT_LIMIT,
    );
    let (connected, adopted) = super::stream::connect_adopting(connect, spec).await;
    let mut problems = Vec::new();
    let client_side: Rc<RefCell<Side>> = Rc::default();
    match connected {
        Err(error) => {
            fault::untarget(listener);
            server.close();
            server.wait_closed().await;
            listener_closed.set(true);
            let refused = super::injected(adopted, evloop_transports::fault::Fault::Refused) > 0;
            if refused
                && evloop_transports::os_errno(&error)
                    == Some(rustix::io::Errno::CONNREFUSED.raw_os_error())
            {
                return (Ended::ConnectRefused, problems);
            }
            problems.push(format!("the connect failed: {error}"));
            return (Ended::ErrorOnce, problems);
        }
        Ok((mut reader, writer)) => {
            client_side.borrow_mut().token =
                watch_fd(writer.transport().fd(), spec.client.as_ref());
            {
                let transport = writer.transport();
                cleanup
                    .borrow_mut()
                    .push(Box::new(move || transport.abort()));
            }
            let payload = spec.payload.clone();
            let chunks = spec.chunks.clone();
            let side = client_side.clone();
            let write = {
                let side = side.clone();
                let writer = &writer;
                async move {
                    let mut at = 0;
                    for n in chunks {
                        writer.write(&payload[at..at + n]);
                        at += n;
                    }
                    match writer.drain().await {
                        Ok(()) => writer.write_eof(),
                        Err(error) => side.borrow_mut().errors.push(error),
                    }
                }
            };
            let read = async move {
                loop {
                    match reader.read(65536).await {
                        Ok(data) if data.is_empty() => break,
                        Ok(data) => side.borrow_mut().data.extend_from_slice(&data),
                        Err(error) => {
                            side.borrow_mut().errors.push(error);
                            break;
                        }
                    }
                }
            };
            futures_lite::future::zip(write, read).await;
            writer.close();
            if let Err(error) = writer.wait_closed().await {
                client_side.borrow_mut().errors.push(error);
            }
        }
    }
    let _ = server_done.await;
    let (clean, tokens) = {
        let c = client_side.borrow();
        let s = server_side.borrow();
        let client_terminal = terminal_injected(c.token);
        let server_terminal = terminal_injected(s.token);
        let clean = !client_terminal && !server_terminal;
        check_prefix(&mut problems, "server", &s.data, &spec.payload, clean);
        check_prefix(&mut problems, "client", &c.data, &spec.payload, clean);
        for (who, side, own) in [
            ("client", &*c, client_terminal),
            ("server", &*s, server_terminal),
        ] {
            if clean && !side.errors.is_empty() {
                problems.push(format!(
                    "{who}: errors {:?} though no terminal fault was injected",
                    side.errors
                ));
            }
            if own && side.errors.is_empty() {
                problems.push(format!(
                    "{who}: a terminal fault was injected on its fd but no read, drain or \
                 wait_closed failed"
                ));
            }
            if let Some(bad) = side.errors.iter().find(|e| !stream_error_is_terminal(e)) {
                problems.push(format!("{who}: failed with {bad}"));
            }
        }
        if handled.get() != 1 {
            problems.push(format!("the handler ran {} times, not once", handled.get()));
        }
        (clean, [("client", c.token), ("server", s.token)])
    };
    // The listener's number is free once it closes: untarget it before.
    listener_closed.set(true);
    fault::untarget(listener);
    server.close();
    server.wait_closed().await;
    problems.extend(check_closed(&lp, &tokens).await);
    let ended = if clean {
        Ended::Clean
    } else {
        Ended::ErrorOnce
    };
    (ended, problems)
}
