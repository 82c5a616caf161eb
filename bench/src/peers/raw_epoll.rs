//! The floor for the pipe ping-pong: the same round trips as the two tasks do, written as one
//! straight loop on the best selector (epoll on Linux), with no event loop, task or waker on
//! top. Both read ends stay registered (level-triggered) for the whole run; each round trip is
//! write, `select` until the byte is reported, read, and the same on the way back.

use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};

use tulip_sys::{fd, Backend, Event, Interest, Selector, Token};

use super::sample::{check_count, measure, Sample};

const THERE: Token = Token(0);
const BACK: Token = Token(1);

/// `ops` round trips of one byte: `there` carries it out, `back` brings it back.
#[inline(never)] // a symbol of its own, for `bench/instructions.sh` (callgrind)
pub fn ping_pong(
    ops: usize,
    there: (OwnedFd, OwnedFd),
    back: (OwnedFd, OwnedFd),
) -> io::Result<Sample> {
    let mut selector = Backend::best().open()?;
    selector.register(there.0.as_raw_fd(), Interest::READABLE, THERE)?;
    selector.register(back.0.as_raw_fd(), Interest::READABLE, BACK)?;
    let mut events = Vec::with_capacity(2);
    let mut trips = 0;
    let sample = measure(ops, || {
        let mut byte = [b'x'; 1];
        for _ in 0..ops {
            fd::write(there.1.as_fd(), &byte)?;
            wait_for(selector.as_mut(), &mut events, THERE)?;
            fd::read(there.0.as_fd(), &mut byte)?;
            fd::write(back.1.as_fd(), &byte)?;
            wait_for(selector.as_mut(), &mut events, BACK)?;
            fd::read(back.0.as_fd(), &mut byte)?;
            trips += 1;
        }
        Ok(())
    })?;
    check_count("raw ping-pong", ops, trips)?;
    Ok(sample)
}

/// `select` until `token` is reported readable (the first call always reports it, as the byte
/// was written before).
fn wait_for(selector: &mut dyn Selector, events: &mut Vec<Event>, token: Token) -> io::Result<()> {
    loop {
        selector.select(events, None)?;
        if events.iter().any(|e| e.token() == token && e.is_readable()) {
            return Ok(());
        }
    }
}
