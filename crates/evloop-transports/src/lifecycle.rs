//! What happens to transports and servers still open when their loop closes.
//!
//! A transport and its protocol usually hold each other (the protocol keeps
//! the transport to write), a cycle that only `connection_lost` breaks. When
//! the loop closes first, nothing will ever deliver it, so every transport
//! and server registers here and the loop's close hook releases whatever is
//! still open: fds closed, protocols dropped. No protocol callback runs then
//! (the loop runs no more callbacks); a warning is logged for each.

use std::cell::{Cell, RefCell};
use std::rc::{Rc, Weak};

use evloop_core::EventLoop;

/// Something that owns fds on a loop.
pub(crate) trait ReleaseAtClose {
    /// Called from the loop's close hook if still alive.
    fn release_at_close(self: Rc<Self>);
}

#[derive(Default)]
struct Live {
    items: RefCell<Vec<Weak<dyn ReleaseAtClose>>>,
    prune_at: Cell<usize>,
}

/// Registers `item` to be released if the loop closes while it lives.
pub(crate) fn track(event_loop: &EventLoop, item: Weak<dyn ReleaseAtClose>) {
    let mut fresh = false;
    let live = event_loop.extension(|| {
        fresh = true;
        Live::default()
    });
    if fresh {
        let hook_live = live.clone();
        // Only fails on a closed loop, where nothing can be created anyway.
        let _ = event_loop.add_close_hook(move |_| release_all(&hook_live));
    }
    let mut items = live.items.borrow_mut();
    if items.len() >= live.prune_at.get() {
        items.retain(|item| item.strong_count() > 0);
        live.prune_at.set((items.len() * 2).max(64));
    }
    items.push(item);
}

fn release_all(live: &Live) {
    let items = std::mem::take(&mut *live.items.borrow_mut());
    for item in items.iter().filter_map(Weak::upgrade) {
        item.release_at_close();
    }
}
