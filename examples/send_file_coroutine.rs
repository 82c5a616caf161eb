//! The seed's story with coroutines: the same program as `send_file_callbacks.rs`, where
//! `.await` plays `yield from` and the code reads top to bottom like blocking code.
//!
//! `cargo run --example send_file_coroutine [PATH]` (default: this file).

use std::fs::File;
use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::sync::Arc;

use tulip::selectors::fd;
use tulip::{wait_readable, wait_writable, EventLoop};

fn main() -> io::Result<()> {
    let path = std::env::args()
        .nth(1)
        .unwrap_or_else(|| file!().to_owned());
    let lp = EventLoop::new()?;
    let (ours, theirs) = fd::socketpair()?;
    let received = lp.run_until_complete(async move {
        let receiver = tulip::spawn(count_until_eof(theirs))?;
        send_file(path, ours).await?;
        receiver.await?
    })??;
    println!("coroutines: sent {received} bytes");
    Ok(())
}

/// Read the file (the completion model: `aio::read_at`), then send it; the socket closes when
/// this returns.
async fn send_file(path: String, socket: OwnedFd) -> io::Result<()> {
    let file = Arc::new(File::open(path)?);
    let len = usize::try_from(file.metadata()?.len()).unwrap_or(usize::MAX);
    let data = tulip::aio::read_at(&file, 0, len).await?;
    let mut sent = 0;
    while sent < data.len() {
        match fd::send(socket.as_fd(), &data[sent..]) {
            Ok(n) => sent += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                wait_writable(socket.as_raw_fd()).await?;
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Count the bytes arriving on `socket` until EOF.
async fn count_until_eof(socket: OwnedFd) -> io::Result<usize> {
    let mut count = 0;
    let mut buf = [0u8; 4096];
    loop {
        match fd::read(socket.as_fd(), &mut buf) {
            Ok(0) => return Ok(count),
            Ok(n) => count += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                wait_readable(socket.as_raw_fd()).await?;
            }
            Err(e) => return Err(e),
        }
    }
}
