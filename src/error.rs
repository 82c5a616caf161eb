//! The loop's own errors: misuse of its state (closed, already running, stopped early), carried
//! inside a `std::io::Error` like every other error of tulip.

use std::fmt;
use std::io;

/// Why a loop refused a call because of its state.
///
/// Every such refusal is an [`io::Error`] of kind [`io::ErrorKind::Other`] whose inner error is
/// a `LoopError`; [`LoopError::of`] recognises one:
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
        })
    }
}

impl std::error::Error for LoopError {}

impl From<LoopError> for io::Error {
    fn from(err: LoopError) -> io::Error {
        io::Error::other(err)
    }
}
