//! Write buffering with water marks (docs/behaviour.md 7.4): what the kernel did not take
//! waits here; above `high` the protocol is paused, at `low` resumed.

use evloop_core::Error;

/// asyncio's default high-water mark (64 KiB); low defaults to a quarter.
pub const DEFAULT_HIGH_WATER: usize = 64 * 1024;

/// Bytes waiting to be written, consumed from the front.
#[derive(Debug, Default)]
pub(crate) struct WriteBuffer {
    bytes: Vec<u8>,
    start: usize,
}

impl WriteBuffer {
    pub(crate) fn len(&self) -> usize {
        self.bytes.len() - self.start
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub(crate) fn push(&mut self, data: &[u8]) {
        self.bytes.extend_from_slice(data);
    }

    pub(crate) fn pending(&self) -> &[u8] {
        &self.bytes[self.start..]
    }

    /// Drops `n` written bytes from the front; memory is reclaimed when empty
    /// or when the dead prefix outgrows the live part.
    pub(crate) fn consume(&mut self, n: usize) {
        self.start += n;
        if self.start == self.bytes.len() {
            self.bytes.clear();
            self.start = 0;
            if self.bytes.capacity() > 4 * DEFAULT_HIGH_WATER {
                self.bytes.shrink_to(DEFAULT_HIGH_WATER);
            }
        } else if self.start > self.len() {
            self.bytes.drain(..self.start);
            self.start = 0;
        }
    }

    pub(crate) fn clear(&mut self) {
        self.bytes = Vec::new();
        self.start = 0;
    }
}

/// High and low water marks with asyncio's rules.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WaterMarks {
    /// Resume writing at or below this many buffered bytes.
    pub low: usize,
    /// Pause writing above this many buffered bytes.
    pub high: usize,
}

impl Default for WaterMarks {
    fn default() -> Self {
        WaterMarks {
            low: DEFAULT_HIGH_WATER / 4,
            high: DEFAULT_HIGH_WATER,
        }
    }
}

impl WaterMarks {
    /// asyncio's `set_write_buffer_limits(high, low)`: a missing high is 4×low
    /// (or 64 KiB), a missing low is high/4.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] unless `high >= low`.
    pub fn new(high: Option<usize>, low: Option<usize>) -> Result<Self, Error> {
        let high =
            high.unwrap_or_else(|| low.map_or(DEFAULT_HIGH_WATER, |low| low.saturating_mul(4)));
        let low = low.unwrap_or(high / 4);
        if high < low {
            return Err(Error::invalid_argument(format!(
                "high ({high}) must be >= low ({low}) must be >= 0"
            )));
        }
        Ok(WaterMarks { low, high })
    }
}

/// The protocol's side of flow control: the water marks, whether the
/// buffer is past a crossing (`paused`), and what the protocol was last told
/// (`told`). The two differ while a call is deferred (the protocol was busy):
/// the call delivered later is whatever then makes them agree, so a pause
/// overtaken by the drain it waited for is never delivered after it.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Flow {
    pub(crate) marks: WaterMarks,
    paused: bool,
    told: bool,
}

impl Flow {
    /// True when `buffered` has just risen above high: pause the protocol.
    pub(crate) fn should_pause(&mut self, buffered: usize) -> bool {
        let pause = !self.paused && buffered > self.marks.high;
        self.paused |= pause;
        pause
    }

    /// True when `buffered` has just fallen to low: resume the protocol.
    pub(crate) fn should_resume(&mut self, buffered: usize) -> bool {
        let resume = self.paused && buffered <= self.marks.low;
        self.paused &= !resume;
        resume
    }

    /// The call that brings the protocol in line with the buffer, now:
    /// `Some(true)` pause, `Some(false)` resume, `None` it already is.
    pub(crate) fn take_call(&mut self) -> Option<bool> {
        (self.told != self.paused).then(|| {
            self.told = self.paused;
            self.paused
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pause_overtaken_by_the_drain_is_never_delivered() {
        let mut flow = Flow::default();
        // Above high while the protocol is busy: the call is deferred...
        assert!(flow.should_pause(DEFAULT_HIGH_WATER + 1));
        // ...and the buffer drains before it runs.
        assert!(flow.should_resume(0));
        assert_eq!(flow.take_call(), None);
        // In order, each crossing is one call.
        assert!(flow.should_pause(DEFAULT_HIGH_WATER + 1));
        assert_eq!(flow.take_call(), Some(true));
        assert_eq!(flow.take_call(), None);
        assert!(flow.should_resume(0));
        assert_eq!(flow.take_call(), Some(false));
        assert_eq!(flow.take_call(), None);
    }
}
