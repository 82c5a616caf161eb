//! The loop's own errors: misuse of its state (closed, already running, stopped early) and the
//! outcomes of futures that are not values (cancelled, panicked, timed out), carried inside a
//! `std::io::Error` like every other error of tulip.

use std::fmt;
use std::io;

/// Why a loop refused a call, or how a future ended without a value.
///
/// Every such error is an [`io::Error`] of kind [`io::ErrorKind::Other`] (`TimedOut` for
/// [`LoopError::TimedOut`]) whose inner error is a `LoopError`; [`LoopError::of`] recognises one:
///
/// ```
/// use tulip::{EventLoop, LoopError};
///
/// let lp = EventLoop::new()?;
/// lp.close()?;
/// let err = lp.call_soon(|_| {}).unwrap_err();
/// assert_eq!(LoopError::of(&err), Some(LoopError::Closed));
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum LoopError {
    /// The loop was closed: nothing can be scheduled on it or run any more.
    Closed,
    /// The loop is running: it cannot be run again from one of its callbacks, nor closed.
    Running,
    /// [`EventLoop::stop`](crate::EventLoop::stop) ended `run_until` before its condition held.
    Stopped,
    /// No loop is running on this thread (for [`spawn`](crate::spawn) and the coroutine
    /// helpers, which use the running loop).
    NoRunningLoop,
    /// The future or task was cancelled.
    Cancelled,
    /// The future is not in a state that allows the call: its result asked for while pending
    /// (or after an awaiter took it), or set twice.
    InvalidState,
    /// The task's coroutine panicked (the panic went to the loop's exception handler).
    Panicked,
    /// [`wait_for`](crate::wait_for) gave up waiting; the error's kind is `TimedOut`.
    TimedOut,
    /// The loop was inherited through `fork(2)`: its selector, notifier, signal pipe and aio
    /// engine are shared with (or, for a kqueue, lost to) the parent process. Call
    /// [`EventLoop::after_fork`](crate::EventLoop::after_fork) in the child first.
    Forked,
    /// A future or task of one loop was awaited by a coroutine that another loop runs: it
    /// could never be woken (asyncio's "attached to a different loop"). Its kind is
    /// `InvalidInput`.
    OtherLoop,
}

impl LoopError {
    /// The `LoopError` inside `err`, if it carries one.
    pub fn of(err: &io::Error) -> Option<LoopError> {
        err.get_ref()?.downcast_ref::<LoopError>().copied()
    }
}

impl fmt::Display for LoopError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LoopError::Closed => "the event loop is closed",
            LoopError::Running => "the event loop is already running",
            LoopError::Stopped => "the event loop stopped before the condition held",
            LoopError::NoRunningLoop => "no event loop is running on this thread",
            LoopError::Cancelled => "the future was cancelled",
            LoopError::InvalidState => "invalid state: the future is pending, or already done",
            LoopError::Panicked => "the task panicked",
            LoopError::TimedOut => "timed out",
            LoopError::OtherLoop => {
                "the future belongs to another event loop than the one running on this thread"
            }
            LoopError::Forked => {
                "the event loop was inherited through fork(): call after_fork() in the child first"
            }
        })
    }
}

impl std::error::Error for LoopError {}

impl From<LoopError> for io::Error {
    fn from(err: LoopError) -> io::Error {
        let kind = match err {
            LoopError::TimedOut => io::ErrorKind::TimedOut,
            LoopError::OtherLoop => io::ErrorKind::InvalidInput,
            _ => io::ErrorKind::Other,
        };
        io::Error::new(kind, err)
    }
}
