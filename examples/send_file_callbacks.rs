//! The seed's story in Tulip's callback style: read a file with the seed's
//! `aio_read(fd, offset, len, callback)` (the completion model: io_uring, or the thread pool),
//! then send it over a non-blocking socket, a piece each time the socket is writable.
//! `send_file_coroutine.rs` is the same program with `async`/`.await`.
//!
//! `cargo run --example send_file_callbacks [PATH]` (default: this file).

use std::cell::Cell;
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::rc::Rc;
use std::sync::Arc;

use tulip::selectors::fd;
use tulip::EventLoop;

fn main() -> io::Result<()> {
    let path = std::env::args()
        .nth(1)
        .unwrap_or_else(|| file!().to_owned());
    let lp = EventLoop::new()?;
    let (ours, theirs) = fd::socketpair()?;
    let received = count_until_eof(&lp, theirs)?;

    // 1. Ask for the whole file; the callback runs on the loop's thread once it is read.
    let file = Arc::new(File::open(path)?);
    let len = usize::try_from(file.metadata()?.len()).unwrap_or(usize::MAX);
    lp.aio_read(&file, 0, len, move |_lp, contents| match contents {
        // 2. Once it is read, send it.
        Ok(data) => start_sending(ours, data),
        Err(e) => eprintln!("reading failed: {e}"),
    })?;

    lp.run_until(|_| received.get().is_some())?;
    println!(
        "callbacks: read by the {} engine, sent {} bytes",
        lp.aio_engine(),
        received.get().unwrap_or(0)
    );
    Ok(())
}

/// A writer callback that sends what the socket takes each time it is writable, then closes
/// the socket (the peer reads EOF).
fn start_sending(socket: OwnedFd, data: Vec<u8>) {
    let fd = socket.as_raw_fd();
    let mut socket = Some(socket);
    let mut sent = 0;
    let added = tulip::get_running_loop().and_then(|lp| {
        lp.add_writer(fd, move |lp| {
            let Some(sock) = &socket else { return };
            match fd::send(sock.as_fd(), &data[sent..]) {
                Ok(n) => sent += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) => {
                    eprintln!("send failed: {e}");
                    sent = data.len();
                }
            }
            if sent == data.len() {
                lp.remove_writer(fd);
                socket = None;
            }
        })
    });
    if let Err(e) = added {
        eprintln!("add_writer failed: {e}");
    }
}

/// Count the bytes arriving on `socket`; at EOF the returned cell gets the total.
fn count_until_eof(lp: &EventLoop, socket: OwnedFd) -> io::Result<Rc<Cell<Option<usize>>>> {
    let total = Rc::new(Cell::new(None));
    let done = total.clone();
    let mut count = 0;
    let fd = socket.as_raw_fd();
    lp.add_reader(fd, move |lp| {
        let mut buf = [0u8; 4096];
        match fd::read(socket.as_fd(), &mut buf) {
            Ok(0) => {
                lp.remove_reader(fd);
                done.set(Some(count));
            }
            Ok(n) => count += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => eprintln!("read failed: {e}"),
        }
    })?;
    Ok(total)
}
