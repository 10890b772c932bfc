//! asyncio's "Watch a file descriptor for read events" (seed 18.5.1.18.3):
//! a socket pair, a reader on one end, data sent on the other.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::rc::Rc;

use evloop::{Error, EventLoop};

fn main() -> Result<(), Error> {
    let lp = EventLoop::new()?;
    let (rsock, mut wsock) = UnixStream::pair()?;
    // The loop watches the socket while the callback reads it: both hold it.
    let rsock = Rc::new(rsock);
    let (reader_loop, reader_sock) = (lp.clone(), rsock.clone());
    lp.add_reader(&*rsock, move || {
        let mut buf = [0u8; 100];
        match (&*reader_sock).read(&mut buf) {
            Ok(n) => println!("Received: {}", String::from_utf8_lossy(&buf[..n])),
            Err(e) => eprintln!("read failed: {e}"),
        }
        // We are done: unregister the file descriptor and stop the loop.
        reader_loop.remove_reader(&*reader_sock);
        reader_loop.stop();
    })?;
    // Simulate the reception of data from the network.
    lp.call_soon(move || {
        if let Err(e) = wsock.write_all(b"abc") {
            eprintln!("send failed: {e}");
        }
    })?;
    lp.run_forever()?;
    lp.close()
}
