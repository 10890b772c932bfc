//! The evloop side of `cargo xtask bench sendfile`: sends a file to
//! `127.0.0.1:PORT` with `sendfile` and exits.
//!
//! `sendfile_bench native FILE PORT` takes the zero-copy path of a TCP
//! transport; `sendfile_bench fallback FILE PORT` sends through a
//! pass-through transport implemented outside the crate, which is the path
//! a TLS transport takes (16 KiB chunks through `write`, flow-controlled).

use std::any::Any;
use std::os::fd::RawFd;
use std::rc::Rc;

use evloop_core::{Error, EventLoop};
use evloop_transports::layer::{AnyProtocol, TransportImpl};
use evloop_transports::{
    create_connection, sendfile, Address, ConnectOptions, Protocol, Transport,
};

struct Quiet(Option<evloop_core::LoopFuture<()>>);

impl Protocol for Quiet {
    fn connection_lost(&mut self, _: Option<std::io::Error>) {
        if let Some(lost) = self.0.take() {
            let _ = lost.set_result(());
        }
    }
}

/// Every call passes through to a TCP transport: a transport "outside the
/// crate", so `sendfile` takes its fallback.
struct PassThrough(Transport);

impl TransportImpl for PassThrough {
    fn write(&self, data: &[u8]) {
        self.0.write(data);
    }
    fn write_eof(&self) {
        self.0.write_eof();
    }
    fn can_write_eof(&self) -> bool {
        self.0.can_write_eof()
    }
    fn close(&self) {
        self.0.close();
    }
    fn abort(&self) {
        self.0.abort();
    }
    fn is_closing(&self) -> bool {
        self.0.is_closing()
    }
    fn set_reading(&self, on: bool) {
        if on {
            self.0.resume_reading();
        } else {
            self.0.pause_reading();
        }
    }
    fn is_reading(&self) -> bool {
        self.0.is_reading()
    }
    fn get_write_buffer_size(&self) -> usize {
        self.0.get_write_buffer_size()
    }
    fn get_write_buffer_limits(&self) -> (usize, usize) {
        self.0.get_write_buffer_limits()
    }
    fn set_write_buffer_limits(
        &self,
        high: Option<usize>,
        low: Option<usize>,
    ) -> Result<(), Error> {
        self.0.set_write_buffer_limits(high, low)
    }
    fn peername(&self) -> Option<Address> {
        self.0.peername()
    }
    fn sockname(&self) -> Option<Address> {
        self.0.sockname()
    }
    fn fd(&self) -> Option<RawFd> {
        self.0.fd()
    }
    fn set_protocol(&self, protocol: AnyProtocol) {
        self.0.set_any_protocol(protocol);
    }
    fn set_on_lost(&self, _hook: Box<dyn FnOnce()>) {}
    fn as_any(&self) -> &dyn Any {
        self
    }
    fn describe(&self) -> String {
        "<PassThrough>".to_owned()
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [mode, path, port] = args.as_slice() else {
        return Err("usage: sendfile_bench native|fallback FILE PORT".into());
    };
    let port: u16 = port.parse()?;
    let file = std::fs::File::open(path)?;
    let lp = EventLoop::new()?;
    let lost = lp.create_future::<()>();
    let protocol_lost = lost.clone();
    let sent = lp.run_until_complete(async {
        let (raw, _) = create_connection(
            &lp,
            move || Quiet(Some(protocol_lost)),
            Some("127.0.0.1"),
            Some(port),
            ConnectOptions::default(),
        )
        .await?;
        let transport = match mode.as_str() {
            "native" => raw.clone(),
            _ => Transport::from_impl(Rc::new(PassThrough(raw.clone()))),
        };
        let sent = sendfile(&lp, &transport, &file, 0, None, mode == "fallback").await?;
        raw.close();
        lost.await?;
        Ok::<u64, Error>(sent)
    })??;
    lp.close()?;
    println!("sent {sent}");
    Ok(())
}
