//! `evloop._core`: evloop's event loop as the machinery of a Python asyncio
//! loop.
//!
//! The Python package `evloop` (python/evloop/) builds `evloop.Loop` on
//! [`CoreLoop`] (`_CoreLoop`): the ready queue, the timers, the reactor and
//! `call_soon_threadsafe` are `evloop_core::EventLoop`'s; Python objects are
//! only the shells asyncio requires ([`Handle`], [`TimerHandle`]).
//!
//! Stream connections and servers are `evloop_transports`': the functions
//! in `network` start them and complete asyncio futures when they are up;
//! [`StreamTransport`] and [`PyServer`] are the transport and server under
//! `evloop.StreamTransport` and `evloop.Server`.
//!
//! Signal handlers (`signals`) are evloop-signals': evloop owns the
//! `sigaction` and runs the signal's [`Handle`] on the loop.
//!
//! Pipes (`pipes`) are evloop-transports' pipe transports; subprocesses
//! (`process`, [`ProcessCore`]) are evloop-process's, reaped by its reaper.
//!
//! # The GIL
//!
//! The loop sleeps in its reactor's poll. It does so without the GIL: the
//! core calls the poll that may block through
//! `Builder::around_blocking_poll`, and [`CoreLoop`]'s hook runs it under
//! `allow_threads`, so other Python threads run meanwhile and can post with
//! `call_soon_threadsafe` (which wakes the poll). Once it holds the GIL
//! again the hook runs Python's signal handlers (`check_signals`): an
//! exception from one (KeyboardInterrupt) stops the loop and is raised by
//! `run_forever`.
//!
//! # Threads
//!
//! evloop's loop is not `Send`; the Python objects that own some of it keep
//! it in a `ThreadBound` (module `thread_bound`): usable on the loop's
//! thread only (RuntimeError elsewhere), and dropped safely on any thread,
//! which is where Python may let go of them (the module says why that is
//! sound).

mod bridge;
mod core_loop;
mod datagram;
mod errors;
mod handle;
mod network;
mod pipes;
mod process;
mod protocol;
mod resolver;
mod sendfile;
mod signals;
mod sock;
mod streams;
mod thread_bound;
mod tls;
mod transport;

use pyo3::prelude::*;

pub use bridge::Pending;
pub use core_loop::{CoreLoop, LoopBase, RemoteLoop};
pub use datagram::PyDatagramTransport;
pub use handle::{Handle, TimerHandle};
pub use network::PyServer;
pub use process::ProcessCore;
pub use transport::StreamTransport;

/// The extension module `evloop._core`.
#[pymodule]
#[pyo3(name = "_core")]
fn core_module(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<LoopBase>()?;
    m.add_class::<CoreLoop>()?;
    m.add_class::<RemoteLoop>()?;
    m.add_class::<Handle>()?;
    m.add_class::<TimerHandle>()?;
    m.add_class::<StreamTransport>()?;
    m.add_class::<PyServer>()?;
    m.add_class::<PyDatagramTransport>()?;
    m.add_class::<Pending>()?;
    m.add_class::<ProcessCore>()?;
    m.add_function(wrap_pyfunction!(network::create_connection, m)?)?;
    m.add_function(wrap_pyfunction!(network::create_unix_connection, m)?)?;
    m.add_function(wrap_pyfunction!(network::create_server, m)?)?;
    m.add_function(wrap_pyfunction!(network::connect_accepted_socket, m)?)?;
    m.add_function(wrap_pyfunction!(network::create_unix_server, m)?)?;
    m.add_function(wrap_pyfunction!(datagram::create_datagram_endpoint, m)?)?;
    m.add_function(wrap_pyfunction!(
        datagram::create_unix_datagram_endpoint,
        m
    )?)?;
    m.add_function(wrap_pyfunction!(sock::sock_recv, m)?)?;
    m.add_function(wrap_pyfunction!(sock::sock_recvfrom, m)?)?;
    m.add_function(wrap_pyfunction!(sock::sock_sendall, m)?)?;
    m.add_function(wrap_pyfunction!(sock::sock_sendto, m)?)?;
    m.add_function(wrap_pyfunction!(sock::sock_connect, m)?)?;
    m.add_function(wrap_pyfunction!(sock::sock_accept, m)?)?;
    m.add_function(wrap_pyfunction!(sendfile::sendfile, m)?)?;
    m.add_function(wrap_pyfunction!(sendfile::sock_sendfile, m)?)?;
    m.add_function(wrap_pyfunction!(signals::add_signal_handler, m)?)?;
    m.add_function(wrap_pyfunction!(signals::remove_signal_handler, m)?)?;
    m.add_function(wrap_pyfunction!(pipes::connect_read_pipe, m)?)?;
    m.add_function(wrap_pyfunction!(pipes::connect_write_pipe, m)?)?;
    m.add_function(wrap_pyfunction!(process::subprocess_exec, m)?)?;
    tls::register(m)?;
    streams::register(m)?;
    Ok(())
}
