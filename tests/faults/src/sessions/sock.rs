//! `sock_*` sessions: the client is a bare non-blocking socket driven by
//! `sock_connect`, `sock_sendall` (chunk by chunk, then a write shutdown)
//! and `sock_recv` until EOF, concurrently; the server is the echo
//! `Protocol`. The client plan hits the `sock_*` calls' syscalls
//! (`EAGAIN`, `EINTR`: retried inside the call, never seen by the caller)
//! and `sock_connect`'s connect.

use std::net::SocketAddr;
use std::rc::Rc;

use evloop_transports::fault;
use evloop_transports::{create_server, sock_connect, sock_recv, sock_sendall, ServerOptions};
use rustix::net::{AddressFamily, SocketFlags, SocketType};

use super::stream::{Echo, End};
use super::{check_closed, terminal_injected, Cleanup, Env, Spec};
use crate::record::{check_prefix, stream_error_is_terminal};
use crate::Ended;

/// Runs a `sock_*` session.
pub(crate) async fn run(env: &Env, spec: &mut Spec, cleanup: &Cleanup) -> (Ended, Vec<String>) {
    let lp = env.lp.clone();
    let server_end = End::new(env, "server");
    let factory = {
        let end = server_end.clone();
        let plan = spec.server.clone();
        move || Echo {
            end: end.clone(),
            plan: plan.clone(),
        }
    };
    let options = ServerOptions::default().host(["127.0.0.1"]).port(0);
    let server = create_server(&lp, factory, options)
        .await
        .expect("the session's server");
    let listener = server.fds()[0];
    if let Some(plan) = &spec.accept {
        fault::target(listener, plan);
    }
    let listener_closed = Rc::new(std::cell::Cell::new(false));
    {
        let server = server.clone();
        let end = server_end.clone();
        let listener_closed = listener_closed.clone();
        cleanup.borrow_mut().push(Box::new(move || {
            if !listener_closed.replace(true) {
                fault::untarget(listener);
            }
            server.close();
            if let Some(t) = end.transport.borrow().clone() {
                t.abort();
            }
        }));
    }
    let addr: SocketAddr = server.sockets()[0].as_inet().expect("an inet listener");
    let sock = rustix::net::socket_with(
        AddressFamily::INET,
        SocketType::STREAM,
        SocketFlags::NONBLOCK | SocketFlags::CLOEXEC,
        None,
    )
    .expect("a socket");
    let raw = std::os::fd::AsRawFd::as_raw_fd(&sock);
    if let Some(plan) = &spec.client {
        fault::target(raw, plan);
    }
    let mut problems = Vec::new();
    let mut errors = Vec::new();
    let mut received = Vec::new();
    // Where the session is, said on a watchdog timeout.
    let stage = Rc::new(std::cell::Cell::new(("connect", 0usize, 0usize)));
    {
        let stage = stage.clone();
        let seed = spec.seed;
        cleanup.borrow_mut().push(Box::new(move || {
            let (at, sent, got) = stage.get();
            eprintln!(
                "sock session {seed:#x} timed out at {at}: {sent} bytes sent, {got} received"
            );
        }));
    }
    match sock_connect(&lp, &sock, addr).await {
        Err(error) => errors.push(error),
        Ok(()) => {
            stage.set(("transfer", 0, 0));
            let payload = spec.payload.clone();
            let chunks = spec.chunks.clone();
            let sock = &sock;
            let lp2 = lp.clone();
            let stage_w = stage.clone();
            let write = async move {
                let mut at = 0;
                for n in chunks {
                    sock_sendall(&lp2, sock, &payload[at..at + n]).await?;
                    at += n;
                    let (s, _, got) = stage_w.get();
                    stage_w.set((s, at, got));
                }
                let (_, sent, got) = stage_w.get();
                stage_w.set(("shut down", sent, got));
                let _ = rustix::net::shutdown(sock, rustix::net::Shutdown::Write);
                Ok::<(), evloop_core::Error>(())
            };
            let read = async {
                loop {
                    match sock_recv(&lp, sock, 65536).await {
                        Ok(data) if data.is_empty() => return Ok(()),
                        Ok(data) => {
                            received.extend_from_slice(&data);
                            let (s, sent, _) = stage.get();
                            stage.set((s, sent, received.len()));
                        }
                        Err(error) => return Err(error),
                    }
                }
            };
            let (wrote, read) = futures_lite::future::zip(write, read).await;
            errors.extend(wrote.err());
            errors.extend(read.err());
        }
    }
    let (_, sent, got) = stage.get();
    stage.set(("server close", sent, got));
    // The socket is ours, not a transport's: untarget it before it closes.
    fault::untarget(raw);
    drop(sock);
    let server_made = {
        if !listener_closed.replace(true) {
            fault::untarget(listener);
        }
        server.close();
        server.wait_closed().await;
        server_end.rec.borrow().made_once()
    };
    stage.set(("server lost", sent, got));
    if server_made {
        let _ = server_end.lost.clone().await;
    }
    stage.set(("closes", sent, got));
    let server_terminal = terminal_injected(server_end.token.get());
    {
        let s = server_end.rec.borrow();
        problems.extend(s.problems.iter().cloned());
        check_prefix(
            &mut problems,
            "server",
            &s.data,
            &spec.payload,
            !server_terminal,
        );
        check_prefix(
            &mut problems,
            "client",
            &received,
            &spec.payload,
            !server_terminal,
        );
        if !server_made {
            problems.push("the server never got the connection".to_owned());
        }
        if server_terminal {
            if let Some(bad) = errors.iter().find(|e| !stream_error_is_terminal(e)) {
                problems.push(format!("client: a sock_* call failed with {bad}"));
            }
        } else if !errors.is_empty() {
            problems.push(format!(
                "client: sock_* calls failed {errors:?} though only transient faults were injected"
            ));
        }
        match (&s.lost, server_terminal) {
            (Some(None), false) | (Some(Some(_)), true) => {}
            (lost, _) => problems.push(format!("server: connection_lost({lost:?})")),
        }
    }
    let tokens = [("server", server_end.token.get())];
    problems.extend(check_closed(&lp, &tokens).await);
    let ended = if server_terminal {
        Ended::ErrorOnce
    } else {
        Ended::Clean
    };
    (ended, problems)
}
