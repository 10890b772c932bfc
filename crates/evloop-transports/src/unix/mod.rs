//! Unix-domain sockets: stream connections and servers (`stream`), and
//! datagram endpoints (`datagram`). Paths starting with `\0` are Linux
//! abstract addresses (asyncio's convention).

pub(crate) mod datagram;
pub(crate) mod stream;
