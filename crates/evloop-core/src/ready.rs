//! The ready queue and the cross-thread queue that feeds it.

use std::collections::VecDeque;
use std::rc::Rc;

use async_task::Runnable;

use crate::handle::{Callback, TimerEntry};

/// One entry of the ready queue.
pub(crate) enum Entry {
    /// `call_soon`, an expired timer, or an fd watcher.
    Callback(Rc<dyn Callback>),
    /// A callback posted from another thread.
    Remote(Box<dyn FnOnce() + Send>),
    /// A task step.
    Task(Runnable),
    /// A due timer, run straight from the heap (never queued).
    Timer(TimerEntry),
}

/// What other threads (and wakers) post to the loop.
pub(crate) enum RemoteItem {
    Call(Box<dyn FnOnce() + Send>),
    Task(Runnable),
}

impl From<RemoteItem> for Entry {
    fn from(item: RemoteItem) -> Entry {
        match item {
            RemoteItem::Call(f) => Entry::Remote(f),
            RemoteItem::Task(r) => Entry::Task(r),
        }
    }
}

/// FIFO of callbacks ready to run; a plain `VecDeque` (the loop is single-threaded).
#[derive(Default)]
pub(crate) struct ReadyQueue {
    entries: VecDeque<Entry>,
}

impl ReadyQueue {
    pub(crate) fn push(&mut self, entry: Entry) {
        self.entries.push_back(entry);
    }
    pub(crate) fn pop(&mut self) -> Option<Entry> {
        self.entries.pop_front()
    }
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }
    pub(crate) fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
    /// Takes everything out (at close), so it can be dropped outside the borrow.
    pub(crate) fn take_all(&mut self) -> VecDeque<Entry> {
        std::mem::take(&mut self.entries)
    }
}
