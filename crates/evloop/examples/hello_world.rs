//! asyncio's "Hello World with call_soon()" (seed 18.5.1.18.1): schedule a
//! callback that prints and stops the loop.

use evloop::{Error, EventLoop};

fn main() -> Result<(), Error> {
    let lp = EventLoop::new()?;
    let stopper = lp.clone();
    lp.call_soon(move || {
        println!("Hello World");
        stopper.stop();
    })?;
    lp.run_forever()?;
    lp.close()
}
