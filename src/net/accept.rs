//! Accepting a connection on the loop, for every listener of [`net`](crate::net): one
//! `accept(2)` once the listening socket is readable, skipping connections reset before they
//! were taken, and resting after running out of fds instead of spinning.

use std::cell::Cell;
use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsFd, OwnedFd};
use std::time::{Duration, Instant};

use tulip_sys::errno::{EMFILE, ENFILE, ENOBUFS, ENOMEM};
use tulip_sys::net as sys;

use super::stream::Stream;
use crate::event_loop::Direction;
use crate::task::sleep;

/// How long `accept` rests after running out of fds (`EMFILE`, `ENFILE`) or kernel memory,
/// before it tries again. asyncio waits a second; a tenth is enough to keep the loop idle
/// while letting a server recover quickly once fds are freed.
pub const ACCEPT_RETRY_DELAY: Duration = Duration::from_millis(100);

/// Whether `accept` failed for want of resources (fds or kernel memory): retrying at once
/// would fail again, with the listening socket still readable, so the loop would spin.
pub(crate) fn is_resource_exhaustion(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(EMFILE | ENFILE | ENOBUFS | ENOMEM))
}

/// Wait for a connection on `listener`: its fd (non-blocking, close-on-exec, SIGPIPE-free)
/// and, for `AF_INET` / `AF_INET6`, the peer's address.
///
/// `retry_at` is the listener's own: after a resource-exhaustion error it holds the instant
/// before which the next call must not try (it rests until then), so that a server which logs
/// the error and accepts again neither spins nor stops.
///
/// # Errors
/// The kernel's, resource exhaustion included;
/// [`LoopError::NoRunningLoop`](crate::LoopError::NoRunningLoop) outside a running loop.
pub(crate) async fn accept<L: AsFd>(
    listener: &Stream<L>,
    retry_at: &Cell<Option<Instant>>,
) -> io::Result<(OwnedFd, Option<SocketAddr>)> {
    if let Some(at) = retry_at.get() {
        let now = Instant::now();
        if at > now {
            sleep(at - now).await?;
        }
        // Cleared only once rested: a caller that drops this future mid-rest rests next time.
        retry_at.set(None);
    }
    let accepted = listener
        .source()
        .io(Direction::Read, || sys::accept(listener.get_ref().as_fd()))
        .await;
    if let Err(e) = &accepted {
        if is_resource_exhaustion(e) {
            retry_at.set(Some(Instant::now() + ACCEPT_RETRY_DELAY));
        }
    }
    accepted
}
