//! The loop's one reusable read buffer (docs/behaviour.md 7.8): 256 KiB allocated once per
//! loop, so a read never allocates (a fresh 256 KiB buffer per read would
//! hit glibc's mmap threshold: mmap, mremap, munmap every time).

use std::cell::RefCell;
use std::rc::Rc;

use evloop_core::EventLoop;

/// Bytes read per readiness event, at most.
pub(crate) const READ_SIZE: usize = 256 * 1024;

#[derive(Default)]
pub(crate) struct ReadBuffer {
    spare: RefCell<Option<Box<[u8]>>>,
}

impl ReadBuffer {
    pub(crate) fn of(event_loop: &EventLoop) -> Rc<ReadBuffer> {
        event_loop.extension(ReadBuffer::default)
    }

    /// The loop's buffer, or (only if a read is somehow already using it) a
    /// fresh one.
    pub(crate) fn take(&self) -> Box<[u8]> {
        self.spare
            .borrow_mut()
            .take()
            .unwrap_or_else(|| vec![0u8; READ_SIZE].into_boxed_slice())
    }

    pub(crate) fn give_back(&self, buffer: Box<[u8]>) {
        *self.spare.borrow_mut() = Some(buffer);
    }
}
