//! The datagram transport handle (UDP and unix datagram sockets).

use std::fmt;
use std::rc::Rc;

/// A datagram endpoint handle (asyncio's `DatagramTransport`).
#[derive(Clone)]
pub struct DatagramTransport {
    pub(crate) inner: Rc<DatagramInner>,
}

pub(crate) struct DatagramInner {}

impl fmt::Debug for DatagramTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DatagramTransport").finish_non_exhaustive()
    }
}
