//! Hello, event loop: a callback, a timer, and a reader on a pipe, on one thread.
//!
//! Run with `cargo run --example hello_loop` (add `TULIP_BACKEND=poll` to pick a backend).

use std::os::fd::{AsFd, AsRawFd};
use std::time::Duration;

use tulip::selectors::fd;
use tulip::EventLoop;

fn main() -> std::io::Result<()> {
    let lp = EventLoop::new()?;
    let (reader, writer) = fd::pipe()?;

    // Runs in the first iteration.
    lp.call_soon(|lp| println!("Hello from call_soon on the {} backend", lp.backend()))?;

    // After 50 ms, write to the pipe: that makes the reader below run.
    lp.call_later(Duration::from_millis(50), move |_| {
        println!("call_later: writing to the pipe");
        if let Err(e) = fd::write(writer.as_fd(), b"hello, event loop") {
            eprintln!("write failed: {e}");
        }
    })?;

    let fd = reader.as_raw_fd();
    lp.add_reader(fd, move |lp| {
        // One message is all we wait for: stop watching first, whatever happens next.
        lp.remove_reader(fd);
        lp.stop();
        let mut buf = [0u8; 64];
        match fd::read(reader.as_fd(), &mut buf) {
            Ok(n) => println!("add_reader: read {:?}", String::from_utf8_lossy(&buf[..n])),
            Err(e) => eprintln!("read failed: {e}"),
        }
    })?;

    lp.run_forever()?;
    println!("stopped after {:?}: {:?}", lp.time(), lp.stats());
    Ok(())
}
