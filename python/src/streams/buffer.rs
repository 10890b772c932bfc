//! The reader's buffer: bytes received and not read yet.

/// Bytes read from `start` on: taking from the front only moves `start`;
/// the consumed head is dropped when more data comes and it has grown at
/// least as large as what is left (each byte is moved at most once on
/// average).
#[derive(Debug, Default)]
pub(super) struct Buffer {
    bytes: Vec<u8>,
    start: usize,
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

    /// Appends `data`.
    pub(super) fn extend(&mut self, data: &[u8]) {
        if self.start > 0 && self.start >= self.len() {
            self.bytes.drain(..self.start);
            self.start = 0;
        }
        self.bytes.extend_from_slice(data);
    }

    /// Drops the first `n` unread bytes (at most all of them).
    pub(super) fn consume(&mut self, n: usize) {
        self.start += n.min(self.len());
        if self.start == self.bytes.len() {
            self.clear();
        }
    }

    /// Drops every unread byte.
    pub(super) fn clear(&mut self) {
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
