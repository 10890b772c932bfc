//! The reader's buffer: bytes received and not read yet.

use pyo3::prelude::*;
use pyo3::types::PyBytes;

/// Bytes read from `start` on: taking from the front only moves `start`;
/// the consumed head is dropped when more data comes and it has grown at
/// least as large as what is left (each byte is moved at most once on
/// average).
#[derive(Debug, Default)]
pub(super) struct Buffer {
    bytes: Vec<u8>,
    start: usize,
    /// The bytes object the unread bytes came in, while they are exactly
    /// it: a read of all of them returns it instead of a copy.
    whole: Option<Py<PyBytes>>,
}

impl Buffer {
    /// The unread bytes.
    pub(super) fn as_slice(&self) -> &[u8] {
        &self.bytes[self.start..]
    }

    /// How many bytes are unread.
    pub(super) fn len(&self) -> usize {
        self.bytes.len() - self.start
    }

    /// True when nothing is unread.
    pub(super) fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Appends the bytes of `data`, a bytes object, keeping it for a read
    /// of all of them if the buffer was empty.
    pub(super) fn extend_bytes(&mut self, data: &Bound<'_, PyBytes>) {
        let was_empty = self.is_empty();
        self.extend(data.as_bytes());
        if was_empty {
            self.whole = Some(data.clone().unbind());
        }
    }

    /// Takes the bytes object the unread bytes came in, if a read of `n`
    /// takes all of them and they are still exactly it.
    pub(super) fn take_whole(&mut self, n: usize) -> Option<Py<PyBytes>> {
        if n < self.len() {
            return None;
        }
        let whole = self.whole.take()?;
        self.clear();
        Some(whole)
    }

    /// Appends `data`.
    pub(super) fn extend(&mut self, data: &[u8]) {
        self.whole = None;
        if self.start > 0 && self.start >= self.len() {
            self.bytes.drain(..self.start);
            self.start = 0;
        }
        self.bytes.extend_from_slice(data);
    }

    /// Drops the first `n` unread bytes (at most all of them).
    pub(super) fn consume(&mut self, n: usize) {
        self.whole = None;
        self.start += n.min(self.len());
        if self.start == self.bytes.len() {
            self.clear();
        }
    }

    /// Drops every unread byte.
    pub(super) fn clear(&mut self) {
        self.whole = None;
        self.bytes.clear();
        self.start = 0;
    }

    /// Where `separator` first starts at or after `from`, if it does.
    pub(super) fn find(&self, separator: &[u8], from: usize) -> Option<usize> {
        let haystack = self.as_slice().get(from..)?;
        let found = match separator {
            [byte] => haystack.iter().position(|b| b == byte),
            _ => haystack
                .windows(separator.len())
                .position(|w| w == separator),
        };
        found.map(|i| i + from)
    }

    /// Whether the unread bytes hold `separator` at `at`.
    pub(super) fn has_at(&self, separator: &[u8], at: usize) -> bool {
        self.as_slice()
            .get(at..)
            .is_some_and(|rest| rest.starts_with(separator))
    }
}
