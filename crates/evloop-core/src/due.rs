//! The timers due in the current batch.
//!
//! asyncio moves due timers to the end of the ready queue when a batch
//! starts, and a handle cancelled after that is skipped when it comes up.
//! Here the closures live in the timer heap, so a batch takes its due timers
//! out into this list first (so timers its callbacks schedule, even with past
//! deadlines, wait for the next batch) and `TimerHandle::cancel` can still
//! reach one that is due but has not run: it drops the closure at once.

use std::collections::HashMap;

use evloop_timers::TimerId;

use crate::handle::TimerEntry;

#[derive(Default)]
pub(crate) struct DueTimers {
    entries: Vec<(TimerId, Option<TimerEntry>)>,
    next: usize,
    /// Built on the first cancel that misses the heap during a batch, so a
    /// cancel costs O(1) however many timers are due.
    index: Option<HashMap<TimerId, usize>>,
}

impl DueTimers {
    pub(crate) fn push(&mut self, id: TimerId, entry: TimerEntry) {
        self.entries.push((id, Some(entry)));
    }

    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// The next due timer still to run, if any.
    pub(crate) fn next(&mut self) -> Option<Option<TimerEntry>> {
        let (_, entry) = self.entries.get_mut(self.next)?;
        self.next += 1;
        Some(entry.take())
    }

    /// Takes out a due timer that has not run yet.
    pub(crate) fn cancel(&mut self, id: TimerId) -> Option<TimerEntry> {
        if self.next >= self.entries.len() {
            return None;
        }
        let first = self.next;
        let entries = &self.entries;
        let index = self.index.get_or_insert_with(|| {
            entries[first..]
                .iter()
                .enumerate()
                .map(|(i, (id, _))| (*id, first + i))
                .collect()
        });
        let position = *index.get(&id)?;
        self.entries[position].1.take()
    }

    /// Drops the entries that ran and keeps those still to run, for the
    /// next batch (an interrupted batch).
    pub(crate) fn keep_rest(&mut self) {
        self.entries.drain(..self.next);
        self.next = 0;
        self.index = None;
    }

    /// Ends the batch (keeping the capacity).
    pub(crate) fn clear(&mut self) {
        self.entries.clear();
        self.next = 0;
        self.index = None;
    }
}
