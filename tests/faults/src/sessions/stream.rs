//! Stream sessions over a `Protocol` / `BufferedProtocol`: TCP (both
//! kinds of protocol), TLS over TCP, unix stream sockets. The server
//! echoes and closes at EOF; the client writes the payload in chunks and
//! half-closes (TLS, which cannot half-close, closes once it has the echo
//! back).

use std::cell::{Cell, RefCell};
use std::io;
use std::pin::pin;
use std::rc::Rc;

use evloop_core::{Error, LoopFuture};
use evloop_transports::fault::{self, Fault, FaultPlan};
use evloop_transports::{
    create_connection, create_connection_buffered, create_server, create_unix_connection,
    create_unix_server, os_errno, sendfile, BufferedProtocol, ConnectOptions, Protocol, Server,
    ServerOptions, Transport, UnixConnectOptions, UnixServerOptions,
};

use super::{
    check_closed, injected, quiet_plan, terminal_injected, watch_fd, Cleanup, Env, Kind, Spec,
};
use crate::record::{check_prefix, is_terminal, Record};
use crate::rng::Rng;
use crate::Ended;

/// The shared side of one end: what it saw, when it ended, its fd token.
#[derive(Clone)]
pub(crate) struct End {
    pub(crate) rec: Rc<RefCell<Record>>,
    pub(crate) lost: LoopFuture<()>,
    pub(crate) token: Rc<Cell<Option<u64>>>,
    pub(crate) transport: Rc<RefCell<Option<Transport>>>,
}

impl End {
    pub(crate) fn new(env: &Env, who: &'static str) -> End {
        End {
            rec: Rc::new(RefCell::new(Record::new(who))),
            lost: env.lp.create_future(),
            token: Rc::default(),
            transport: Rc::default(),
        }
    }

    pub(crate) fn made_with(&self, transport: &Transport, plan: Option<&FaultPlan>) {
        self.rec.borrow_mut().made();
        self.token.set(watch_fd(transport.fd(), plan));
        *self.transport.borrow_mut() = Some(transport.clone());
    }

    pub(crate) fn lost_with(&self, error: Option<io::Error>) {
        self.rec.borrow_mut().lost(error);
        self.transport.borrow_mut().take();
        let _ = self.lost.set_result(());
    }

    fn transport(&self) -> Option<Transport> {
        self.transport.borrow().clone()
    }
}

/// The echo server's protocol: echoes, closes at EOF.
pub(crate) struct Echo {
    pub(crate) end: End,
    pub(crate) plan: Option<FaultPlan>,
}

impl Protocol for Echo {
    fn connection_made(&mut self, transport: Transport) {
        self.end.made_with(&transport, self.plan.as_ref());
    }

    fn data_received(&mut self, data: &[u8]) {
        self.end.rec.borrow_mut().data(data);
        if let Some(t) = self.end.transport() {
            t.write(data);
        }
    }

    fn eof_received(&mut self) -> bool {
        self.end.rec.borrow_mut().eof();
        false
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

/// What the client sends and how it ends.
#[derive(Clone)]
struct Send {
    payload: Rc<Vec<u8>>,
    chunks: Vec<usize>,
    /// `write_eof` after the payload; else close once the echo is back.
    half_close: bool,
    /// The session sends the payload with `sendfile` instead.
    by_sendfile: bool,
}

impl Send {
    fn start(&self, transport: &Transport) {
        if self.by_sendfile {
            return;
        }
        let mut at = 0;
        for &n in &self.chunks {
            transport.write(&self.payload[at..at + n]);
            at += n;
        }
        if self.half_close {
            transport.write_eof();
        } else if self.payload.is_empty() {
            transport.close();
        }
    }

    fn received(&self, end: &End) {
        if !self.half_close && end.rec.borrow().data.len() >= self.payload.len() {
            if let Some(t) = end.transport() {
                t.close();
            }
        }
    }
}

/// The client as a `Protocol`.
struct Client {
    end: End,
    plan: Option<FaultPlan>,
    send: Send,
}

impl Protocol for Client {
    fn connection_made(&mut self, transport: Transport) {
        self.end.made_with(&transport, self.plan.as_ref());
        self.send.start(&transport);
    }

    fn data_received(&mut self, data: &[u8]) {
        self.end.rec.borrow_mut().data(data);
        self.send.received(&self.end);
    }

    fn eof_received(&mut self) -> bool {
        self.end.rec.borrow_mut().eof();
        false
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

/// The client as a `BufferedProtocol` whose buffers have random sizes.
struct BufferedClient {
    end: End,
    plan: Option<FaultPlan>,
    send: Send,
    rng: Rng,
    buf: Vec<u8>,
}

impl BufferedProtocol for BufferedClient {
    fn connection_made(&mut self, transport: Transport) {
        self.end.made_with(&transport, self.plan.as_ref());
        self.send.start(&transport);
    }

    fn get_buffer(&mut self, size_hint: usize) -> &mut [u8] {
        self.end.rec.borrow_mut().callback("get_buffer");
        let size = self.rng.range(1, size_hint.clamp(1, 70_000));
        self.buf.resize(size, 0);
        &mut self.buf
    }

    fn buffer_updated(&mut self, nbytes: usize) {
        if nbytes > self.buf.len() {
            self.end
                .rec
                .borrow_mut()
                .problem("buffer_updated with more bytes than the buffer holds");
            return;
        }
        self.end.rec.borrow_mut().data(&self.buf[..nbytes]);
        self.send.received(&self.end);
    }

    fn eof_received(&mut self) -> bool {
        self.end.rec.borrow_mut().eof();
        false
    }

    fn connection_lost(&mut self, error: Option<io::Error>) {
        self.end.lost_with(error);
    }
}

/// Runs a TCP, buffered TCP, TLS or unix session.
pub(crate) async fn run(env: &Env, spec: &mut Spec, cleanup: &Cleanup) -> (Ended, Vec<String>) {
    let lp = env.lp.clone();
    let server_end = End::new(env, "server");
    let accepted = Rc::new(Cell::new(0u32));
    let factory = {
        let end = server_end.clone();
        let plan = spec.server.clone();
        let accepted = accepted.clone();
        move || {
            accepted.set(accepted.get() + 1);
            Echo {
                end: end.clone(),
                plan: plan.clone(),
            }
        }
    };
    let path = env.dir.join(format!("{:x}.sock", spec.seed));
    let server: Server = match spec.kind {
        Kind::Unix => {
            create_unix_server(
                &lp,
                factory,
                Some(path.as_path()),
                UnixServerOptions::default(),
            )
            .await
        }
        Kind::Tls => {
            let options = ServerOptions::default()
                .host(["127.0.0.1"])
                .port(0)
                .tls(env.server_tls.clone());
            create_server(&lp, factory, options).await
        }
        _ => {
            let options = ServerOptions::default().host(["127.0.0.1"]).port(0);
            create_server(&lp, factory, options).await
        }
    }
    .expect("the session's server");
    let listener = server.fds()[0];
    // The accepted socket is a target from its accept on (a TLS server's
    // handshake sees the server plan's faults too).
    let listener_token = match (&spec.accept, &spec.server) {
        (None, None) => None,
        (accept, server) => fault::target_listener(
            listener,
            accept.as_ref().unwrap_or(&quiet_plan()),
            server.clone().unwrap_or_else(quiet_plan),
        ),
    };
    // The listener's number is free once it closes: it is untargeted
    // before, once.
    let listener_closed = Rc::new(Cell::new(false));
    {
        let server = server.clone();
        let end = server_end.clone();
        let listener_closed = listener_closed.clone();
        cleanup.borrow_mut().push(Box::new(move || {
            if !listener_closed.replace(true) {
                fault::untarget(listener);
            }
            server.close();
            if let Some(t) = end.transport() {
                t.abort();
            }
        }));
    }
    let client_end = End::new(env, "client");
    let send = Send {
        payload: spec.payload.clone(),
        chunks: spec.chunks.clone(),
        half_close: spec.kind != Kind::Tls,
        by_sendfile: spec.kind == Kind::Sendfile,
    };
    let port = server.sockets()[0].as_inet().map_or(0, |a| a.port());
    let connect: std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), Error>>>> =
        match spec.kind {
            Kind::TcpBuffered => {
                let protocol = BufferedClient {
                    end: client_end.clone(),
                    plan: spec.client.clone(),
                    send,
                    rng: Rng(spec.rng.next()),
                    buf: Vec::new(),
                };
                let connect = create_connection_buffered(
                    &lp,
                    move || protocol,
                    Some("127.0.0.1"),
                    Some(port),
                    ConnectOptions::default(),
                );
                Box::pin(async move { connect.await.map(drop) })
            }
            Kind::Unix => {
                let protocol = Client {
                    end: client_end.clone(),
                    plan: spec.client.clone(),
                    send,
                };
                let connect = create_unix_connection(
                    &lp,
                    move || protocol,
                    &path,
                    UnixConnectOptions::default(),
                );
                Box::pin(async move { connect.await.map(drop) })
            }
            _ => {
                let protocol = Client {
                    end: client_end.clone(),
                    plan: spec.client.clone(),
                    send,
                };
                let options = if spec.kind == Kind::Tls {
                    ConnectOptions::default().tls(env.client_tls.clone())
                } else {
                    ConnectOptions::default()
                };
                let connect = create_connection(
                    &lp,
                    move || protocol,
                    Some("127.0.0.1"),
                    Some(port),
                    options,
                );
                Box::pin(async move { connect.await.map(drop) })
            }
        };
    {
        let end = client_end.clone();
        cleanup.borrow_mut().push(Box::new(move || {
            if let Some(t) = end.transport() {
                t.abort();
            }
        }));
    }
    let (connected, adopted) = connect_adopting(connect, spec).await;
    crate::debug(|| {
        format!(
            "connected: {:?} adopted {adopted:?}",
            connected.as_ref().err()
        )
    });
    let mut problems = Vec::new();
    let mut handshake_cut: Option<String> = None;
    let ended = match connected {
        Err(error) => {
            let refused = injected(adopted, Fault::Refused) > 0;
            if refused && os_errno(&error) == Some(rustix::io::Errno::CONNREFUSED.raw_os_error()) {
                if client_end.rec.borrow().lost.is_some() || accepted.get() > 1 {
                    problems.push("callbacks ran for a connection that was refused".to_owned());
                }
                Ended::ConnectRefused
            } else if spec.kind == Kind::Tls {
                // A terminal fault on either side during the TLS handshake:
                // the creating call reports it, once (checked below, once
                // the server is done, that there was such a fault).
                if client_end.rec.borrow().lost.is_some() {
                    problems.push("client: callbacks for a failed handshake".to_owned());
                }
                handshake_cut = Some(error.to_string());
                client_end.token.set(None);
                Ended::ErrorOnce
            } else {
                problems.push(format!("the connect failed: {error}"));
                Ended::ErrorOnce
            }
        }
        Ok(()) => {
            if spec.kind == Kind::Sendfile {
                send_file(env, spec, &client_end, &server_end, &mut problems).await;
            }
            let _ = client_end.lost.clone().await;
            crate::debug(|| "client lost".to_owned());
            // The server ends once its one connection does (whether or not
            // its handshake completed, for TLS).
            if !listener_closed.replace(true) {
                fault::untarget(listener);
            }
            server.close();
            server.wait_closed().await;
            crate::debug(|| "server closed".to_owned());
            let server_made = server_end.rec.borrow().made_once();
            if !server_made && accepted.get() == 0 {
                // The client's terminal fault ended it before the server
                // accepted the connection, and the server closed since.
                if !terminal_injected(client_end.token.get()) {
                    problems.push("the server never accepted the connection".to_owned());
                }
                let c = client_end.rec.borrow();
                problems.extend(c.problems.iter().cloned());
                check_prefix(&mut problems, "client", &c.data, &[], false);
                Ended::ErrorOnce
            } else if spec.kind == Kind::Tls && !server_made && accepted.get() == 1 {
                // A terminal fault cut the handshake short on the server's
                // side: the server reports it ("TLS handshake failed", as
                // asyncio) and its protocol never hears of it.
                let server_terminal = listener_token
                    .map(fault::accepted_from)
                    .unwrap_or_default()
                    .into_iter()
                    .any(|t| terminal_injected(Some(t)));
                if terminal_injected(client_end.token.get()) || server_terminal {
                    env.expected_handshake_reports
                        .set(env.expected_handshake_reports.get() + 1);
                } else {
                    problems.push(
                        "the server's TLS handshake failed without a terminal fault".to_owned(),
                    );
                }
                server_end.token.set(None);
                let c = client_end.rec.borrow();
                problems.extend(c.problems.iter().cloned());
                check_prefix(&mut problems, "client", &c.data, &[], false);
                Ended::ErrorOnce
            } else {
                let _ = server_end.lost.clone().await;
                judge(spec, &client_end, &server_end, &mut problems)
            }
        }
    };
    if accepted.get() > 1 {
        problems.push(format!(
            "the server accepted {} connections, not 1",
            accepted.get()
        ));
    }
    if !listener_closed.replace(true) {
        fault::untarget(listener);
    }
    server.close();
    server.wait_closed().await;
    let accepted_tokens = listener_token.map(fault::accepted_from).unwrap_or_default();
    if let Some(error) = &handshake_cut {
        let server_terminal = accepted_tokens.iter().any(|t| terminal_injected(Some(*t)));
        if !terminal_injected(adopted) && !server_terminal {
            problems.push(format!(
                "the TLS handshake failed without a terminal fault: {error}"
            ));
        }
        if accepted.get() == 1 && !server_end.rec.borrow().made_once() {
            env.expected_handshake_reports
                .set(env.expected_handshake_reports.get() + 1);
        }
    }
    if let Some(token) = listener_token {
        fault::forget(token);
    }
    let mut closes = Vec::new();
    if !server_end.rec.borrow().made_once() {
        // A server side whose protocol never heard of the connection (its
        // TLS handshake failed): its socket is closed all the same.
        closes.extend(
            accepted_tokens
                .iter()
                .map(|t| ("accepted socket", Some(*t))),
        );
    }
    if ended != Ended::ConnectRefused && handshake_cut.is_none() {
        closes.push(("client", client_end.token.get()));
        if server_end.rec.borrow().made_once() {
            closes.push(("server", server_end.token.get()));
        }
    }
    problems.extend(check_closed(&lp, &closes).await);
    (ended, problems)
}

/// Sends the payload with `sendfile` from a file, then `write_eof`.
async fn send_file(env: &Env, spec: &Spec, client: &End, server: &End, problems: &mut Vec<String>) {
    let path = env.dir.join(format!("{:x}.payload", spec.seed));
    std::fs::write(&path, &*spec.payload).expect("the sendfile session's file");
    let file = std::fs::File::open(&path).expect("the sendfile session's file");
    let _ = std::fs::remove_file(&path);
    let Some(transport) = client.transport() else {
        // Lost already (a terminal fault in connection_made's time).
        return;
    };
    match sendfile(&env.lp, &transport, &file, 0, None, true).await {
        Ok(sent) if sent == spec.payload.len() as u64 => transport.write_eof(),
        Ok(sent) => problems.push(format!(
            "sendfile sent {sent} of {} bytes without an error",
            spec.payload.len()
        )),
        Err(error) => {
            let terminal =
                terminal_injected(client.token.get()) || terminal_injected(server.token.get());
            if !terminal
                || !error.io_kind().is_some_and(|k| {
                    matches!(
                        k,
                        io::ErrorKind::ConnectionReset
                            | io::ErrorKind::BrokenPipe
                            | io::ErrorKind::NotConnected
                            | io::ErrorKind::ConnectionAborted
                    )
                })
            {
                problems.push(format!("sendfile failed: {error}"));
            }
        }
    }
}

/// Starts `connect` with the client socket adopted by the seam if the
/// spec asks (so its `connect` sees faults); the adopted socket's token.
pub(crate) async fn connect_adopting<T>(
    connect: impl std::future::Future<Output = T>,
    spec: &Spec,
) -> (T, Option<u64>) {
    let mut connect = pin!(connect);
    let plan = if spec.adopt {
        spec.client.clone()
    } else {
        None
    };
    let Some(plan) = plan else {
        return (connect.await, None);
    };
    let before = fault::last_adopted();
    fault::adopt_next_sockets(vec![plan]);
    // The socket is made in the first poll (numeric address): nothing else
    // runs in between, so no other session's socket takes the adoption.
    let first = futures_lite::future::poll_once(connect.as_mut()).await;
    let left = fault::adoptions_left();
    fault::adopt_next_sockets(Vec::new());
    let adopted = fault::last_adopted().filter(|t| left == 0 && Some(*t) != before);
    let out = match first {
        Some(out) => out,
        None => connect.await,
    };
    (out, adopted)
}

/// Over TLS, the end of a peer cut short by a terminal fault may show as a
/// truncated record or an EOF without `close_notify`.
fn tls_peer_end(spec: &Spec, error: &io::Error, own_terminal: bool) -> bool {
    spec.kind == Kind::Tls
        && !own_terminal
        && matches!(
            error.kind(),
            io::ErrorKind::UnexpectedEof | io::ErrorKind::InvalidData
        )
}

/// The checks of a stream session that connected; how it ended.
fn judge(spec: &Spec, client: &End, server: &End, problems: &mut Vec<String>) -> Ended {
    let c = client.rec.borrow();
    let s = server.rec.borrow();
    problems.extend(c.problems.iter().cloned());
    problems.extend(s.problems.iter().cloned());
    let client_terminal = terminal_injected(client.token.get());
    let server_terminal = terminal_injected(server.token.get());
    let clean = !client_terminal && !server_terminal;
    check_prefix(problems, "server", &s.data, &spec.payload, clean);
    check_prefix(problems, "client", &c.data, &spec.payload, clean);
    if c.data.len() > s.data.len() {
        problems.push("client: got more echo than the server received".to_owned());
    }
    for (rec, own_terminal) in [(&*c, client_terminal), (&*s, server_terminal)] {
        match (&rec.lost, own_terminal, clean) {
            (None, ..) => problems.push(format!("{}: connection_lost never ran", rec.who)),
            (Some(None), _, true) => {}
            (Some(Some(e)), _, true) => problems.push(format!(
                "{}: connection_lost({e}) though no terminal fault was injected",
                rec.who
            )),
            (Some(None), true, false) => problems.push(format!(
                "{}: a terminal fault was injected on its fd but connection_lost(None)",
                rec.who
            )),
            (Some(Some(e)), _, false)
                if !is_terminal(e) && !tls_peer_end(spec, e, own_terminal) =>
            {
                problems.push(format!("{}: connection_lost with {e}", rec.who));
            }
            // Its peer's terminal fault: EOF (None) or a reset are both honest.
            (Some(_), _, false) => {}
        }
    }
    if clean {
        Ended::Clean
    } else {
        Ended::ErrorOnce
    }
}
