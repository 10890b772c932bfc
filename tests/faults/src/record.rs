//! What a session's protocols saw, and the checks on it: the callback
//! order (`connection_made` first and once, `connection_lost` last and
//! once, nothing after it), the bytes, the error.

use std::io;

/// The callbacks one protocol got, in order, and what they carried.
#[derive(Debug, Default)]
pub(crate) struct Record {
    /// Who this is ("client", "server", "stdout pipe", …) for messages.
    pub(crate) who: &'static str,
    made: u32,
    /// `Some` once `connection_lost` ran: its argument.
    pub(crate) lost: Option<Option<io::Error>>,
    lost_calls: u32,
    eof: u32,
    /// The bytes received, in order.
    pub(crate) data: Vec<u8>,
    /// Order violations seen.
    pub(crate) problems: Vec<String>,
}

impl Record {
    pub(crate) fn new(who: &'static str) -> Record {
        Record {
            who,
            ..Record::default()
        }
    }

    pub(crate) fn made(&mut self) {
        self.made += 1;
        if self.made > 1 {
            self.problem("connection_made twice");
        }
        if self.lost_calls > 0 || self.eof > 0 || !self.data.is_empty() {
            self.problem("connection_made after other callbacks");
        }
    }

    /// Whether `connection_made` ran (once).
    pub(crate) fn made_once(&self) -> bool {
        self.made == 1
    }

    /// Any callback other than made/lost: checks it comes between them.
    pub(crate) fn callback(&mut self, what: &str) {
        if self.made == 0 {
            self.problem(&format!("{what} before connection_made"));
        }
        if self.lost_calls > 0 {
            self.problem(&format!("{what} after connection_lost"));
        }
    }

    pub(crate) fn data(&mut self, bytes: &[u8]) {
        self.callback("data_received");
        if self.eof > 0 {
            self.problem("data_received after eof_received");
        }
        self.data.extend_from_slice(bytes);
    }

    pub(crate) fn eof(&mut self) {
        self.callback("eof_received");
        self.eof += 1;
        if self.eof > 1 {
            self.problem("eof_received twice");
        }
    }

    pub(crate) fn lost(&mut self, error: Option<io::Error>) {
        if self.made == 0 {
            self.problem("connection_lost before connection_made");
        }
        self.lost_calls += 1;
        if self.lost_calls > 1 {
            self.problem("connection_lost twice");
        } else {
            self.lost = Some(error);
        }
    }

    pub(crate) fn problem(&mut self, what: &str) {
        let line = format!("{}: {what}", self.who);
        self.problems.push(line);
    }
}

/// Whether `error` is the end of a connection a terminal fault (or the
/// peer's reaction to one) gives.
pub(crate) fn is_terminal(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::ConnectionReset
            | io::ErrorKind::BrokenPipe
            | io::ErrorKind::ConnectionAborted
    )
}

/// Whether a streams-level error is such an end.
pub(crate) fn stream_error_is_terminal(error: &evloop_core::Error) -> bool {
    matches!(
        error.io_kind(),
        Some(
            io::ErrorKind::ConnectionReset
                | io::ErrorKind::BrokenPipe
                | io::ErrorKind::ConnectionAborted
        )
    )
}

/// Checks that `got` is `sent` (`complete`) or a prefix of it.
pub(crate) fn check_prefix(
    problems: &mut Vec<String>,
    who: &str,
    got: &[u8],
    sent: &[u8],
    complete: bool,
) {
    if got.len() > sent.len() || got != &sent[..got.len()] {
        let at = got
            .iter()
            .zip(sent)
            .position(|(a, b)| a != b)
            .unwrap_or(sent.len().min(got.len()));
        problems.push(format!(
            "{who}: received {} bytes that are not a prefix of the {} sent (first difference at {at}): \
             a byte lost, duplicated or reordered",
            got.len(),
            sent.len()
        ));
    } else if complete && got.len() != sent.len() {
        problems.push(format!(
            "{who}: received {} of {} bytes without any error reported",
            got.len(),
            sent.len()
        ));
    }
}
