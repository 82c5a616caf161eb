//! Waiting for an fd from a coroutine: [`wait_readable`] and [`wait_writable`], one-shot
//! readiness on the running loop, built on `add_reader` / `add_writer`. The non-blocking
//! socket operations are written on top of them: try the system call, and on `WouldBlock`
//! await readiness and try again.

use std::future::Future as StdFuture;
use std::io;
use std::os::fd::RawFd;
use std::pin::Pin;
use std::task::{Context, Poll};

use crate::event_loop::Direction;
use crate::event_loop::WeakLoop;
use crate::{EventLoop, Future, LoopError};

/// Suspend the calling coroutine until `fd` is readable (level-triggered: at once if it
/// already is). Uses the running loop's reader slot for `fd`, which must be free meanwhile: a
/// reader added with [`EventLoop::add_reader`] for the same fd would be replaced. Dropping the
/// future before it is ready removes the reader.
///
/// # Errors
/// [`LoopError::NoRunningLoop`] outside a running loop; the
/// selector's error for a bad fd (`EBADF`, epoll's `EPERM` for a regular file).
pub fn wait_readable(fd: RawFd) -> Readiness {
    Readiness::new(None, fd, Direction::Read)
}

/// Suspend the calling coroutine until `fd` is writable. As [`wait_readable`], with the
/// loop's writer slot.
///
/// # Errors
/// As [`wait_readable`].
pub fn wait_writable(fd: RawFd) -> Readiness {
    Readiness::new(None, fd, Direction::Write)
}

/// The future of [`wait_readable`] and [`wait_writable`].
#[derive(Debug)]
#[must_use = "readiness is not awaited unless polled"]
pub struct Readiness {
    /// The loop to wait on; `None` for the one running when first polled.
    on: Option<WeakLoop>,
    fd: RawFd,
    direction: Direction,
    /// Armed at the first poll: the loop (to remove the callback if dropped early) and the
    /// future the callback completes.
    armed: Option<(WeakLoop, Future<()>)>,
}

impl Readiness {
    fn new(on: Option<WeakLoop>, fd: RawFd, direction: Direction) -> Readiness {
        Readiness {
            on,
            fd,
            direction,
            armed: None,
        }
    }

    /// Wait for `fd` to be ready in `direction` on `lp`, which need not be the running loop
    /// (for `lp`'s own methods, as `sock_recv`).
    pub(crate) fn on_loop(lp: &EventLoop, fd: RawFd, direction: Direction) -> Readiness {
        Readiness::new(Some(lp.downgrade()), fd, direction)
    }

    /// Add the one-shot reader or writer to the given loop, or else to the running one.
    fn arm_loop(&self) -> io::Result<(WeakLoop, Future<()>)> {
        match &self.on {
            Some(lp) => {
                let lp = lp.upgrade().ok_or(LoopError::Closed)?;
                Ok((lp.downgrade(), self.arm(&lp)?))
            }
            None => crate::event_loop::with_running_loop(|lp| Ok((lp.downgrade(), self.arm(lp)?)))?,
        }
    }

    fn arm(&self, lp: &EventLoop) -> io::Result<Future<()>> {
        let ready = lp.create_future::<()>();
        let setter = ready.clone();
        let (fd, direction) = (self.fd, self.direction);
        let callback = move |lp: &EventLoop| {
            remove(lp, fd, direction);
            let _ = setter.set_result(());
        };
        match direction {
            Direction::Read => lp.add_reader(fd, callback)?,
            Direction::Write => lp.add_writer(fd, callback)?,
        }
        Ok(ready)
    }
}

fn remove(lp: &EventLoop, fd: RawFd, direction: Direction) {
    match direction {
        Direction::Read => lp.remove_reader(fd),
        Direction::Write => lp.remove_writer(fd),
    };
}

impl StdFuture for Readiness {
    type Output = io::Result<()>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.armed.is_none() {
            match self.arm_loop() {
                Ok(armed) => self.armed = Some(armed),
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
        let (_, ready) = self.armed.as_ref().expect("armed above");
        ready.poll_outcome(cx)
    }
}

impl Drop for Readiness {
    fn drop(&mut self) {
        let Some((lp, ready)) = &self.armed else {
            return;
        };
        if ready.done() {
            return;
        }
        if let Some(lp) = lp.upgrade() {
            remove(&lp, self.fd, self.direction);
        }
    }
}
