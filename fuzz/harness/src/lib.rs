//! evloop's fuzz targets as plain functions of `&[u8]`, so that the same code
//! runs under cargo-fuzz (`fuzz/fuzz_targets/*.rs`, nightly, through
//! `cargo xtask fuzz`) and, on stable, in this crate's corpus replay test
//! (`tests/corpus.rs`: every file in `fuzz/corpus/<target>/` and
//! `fuzz/regressions/<target>/`).
//!
//! Each target decodes its input with [`arbitrary`] into a sequence of
//! operations, runs them against the real code and a simple model, and
//! panics on any divergence (a finding):
//!
//! | target | checks | model |
//! |---|---|---|
//! | [`streams_reader`] | `StreamReader` reads over arbitrary feeds, EOF, errors, cancellation | asyncio's reader semantics on a `Vec<u8>` |
//! | [`transport_read`] | the stream transport's read path (socketpair, real loop): `Protocol` and `BufferedProtocol`, pause/resume | bytes in = bytes out, EOF once, `connection_lost` once, fd closed |
//! | [`timer_queue`] | `TimerHeap` insert/cancel/pop/mark/clear over ns..days deadlines | a sorted vector |
//! | [`tls_server`] | a TLS server session fed arbitrary bytes or a mutated real handshake, split at arbitrary points | typed error or success, plaintext a prefix of what was sent, no hang, fd closed |
//! | [`happy_eyeballs`] | `interleave_by_family` | permutation, order within a family, `first` count, alternation |
//! | [`parsers`] | `signal_name`, numeric host resolution | round trips and std's parser |
//!
//! [`TARGETS`] lists them by name for the replay test and `cargo xtask fuzz`.

#![forbid(unsafe_code)]

mod eyeballs;
mod parsers;
mod streams;
mod timers;
mod tls;
mod transport;

pub use eyeballs::happy_eyeballs;
pub use parsers::parsers;
pub use streams::streams_reader;
pub use timers::timer_queue;
pub use tls::tls_server;
pub use transport::transport_read;

/// A fuzz target: runs one input, panics on a finding.
pub type Target = fn(&[u8]);

/// Every fuzz target: its name (the file name under `fuzz/fuzz_targets/`
/// and the directory name under `fuzz/corpus/` and `fuzz/regressions/`)
/// and its function.
pub const TARGETS: &[(&str, Target)] = &[
    ("streams_reader", streams_reader),
    ("transport_read", transport_read),
    ("timer_queue", timer_queue),
    ("tls_server", tls_server),
    ("happy_eyeballs", happy_eyeballs),
    ("parsers", parsers),
];
