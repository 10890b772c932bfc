//! asyncio's "Set signal handlers for SIGINT and SIGTERM" (seed
//! 18.5.1.18.4): run forever until one of them arrives.

use evloop::{signal_name, Error, EventLoop};

const SIGINT: i32 = 2;
const SIGTERM: i32 = 15;

fn main() -> Result<(), Error> {
    let lp = EventLoop::new()?;
    for signum in [SIGINT, SIGTERM] {
        let stopper = lp.clone();
        lp.add_signal_handler(signum, move || {
            println!("got signal {}: exit", signal_name(signum));
            stopper.stop();
        })?;
    }
    println!("Event loop running forever, press Ctrl+C to interrupt.");
    println!(
        "pid {}: send SIGINT or SIGTERM to exit.",
        std::process::id()
    );
    lp.run_forever()?;
    lp.close()
}
