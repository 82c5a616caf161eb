//! asyncio's `shield`: await a future or task without letting a cancellation of the awaiter
//! reach it.

use std::fmt;
use std::future::Future as StdFuture;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use super::future::WakerSlot;
use crate::Future;

/// Await `inner` (a [`Future`] or a [`Task`](crate::Task)) so that cancelling the awaiting
/// coroutine does not cancel it: asyncio's `shield`.
///
/// Awaiting a task directly makes it part of the awaiter: a coroutine cancelled while it awaits
/// a task cancels that task too (as in asyncio). Awaiting `shield(task)` instead leaves the
/// task running when the awaiter is cancelled (or times out in [`wait_for`](crate::wait_for));
/// the awaiter then simply stops waiting. The shield's output is `inner`'s outcome, as
/// awaiting it would give: an error of kind [`LoopError::Cancelled`](crate::LoopError::Cancelled)
/// if `inner` itself was cancelled. An error `inner` ends with after its awaiter was cancelled
/// counts as retrieved (asyncio does the same), so it is not reported as never retrieved.
///
/// A coroutine is shielded by making it a task first: `shield(tulip::spawn(work())?)`.
///
/// ```
/// use std::time::Duration;
/// use tulip::{shield, sleep, wait_for, EventLoop, LoopError};
///
/// let lp = EventLoop::new()?;
/// let work = lp.create_task(async {
///     sleep(Duration::from_millis(20)).await?;
///     std::io::Result::Ok(42)
/// });
/// let probe = work.as_future().clone();
/// let timed_out = lp.run_until_complete(wait_for(shield(work), Duration::from_millis(1)))?;
/// assert_eq!(LoopError::of(&timed_out.unwrap_err()), Some(LoopError::TimedOut));
/// assert!(!probe.done(), "the shielded task still runs");
/// assert_eq!(lp.run_until_complete(probe)???, 42);
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn shield<T: 'static>(inner: impl Into<Future<T>>) -> Shield<T> {
    Shield {
        inner: inner.into(),
        finished: false,
        slot: WakerSlot::default(),
    }
}

/// The future of [`shield`].
#[must_use = "a shield does nothing unless awaited"]
pub struct Shield<T: 'static> {
    /// Watched with `wake_when_done`, never awaited directly: a handle that was awaited is
    /// cancelled when its awaiter is (see `cancel_scope.rs`), and this one must not be.
    inner: Future<T>,
    /// The outcome was taken. (A second field also keeps this future's size apart from the
    /// handle's, so a `wait_for` of the shield never takes the handle for its own target.)
    finished: bool,
    /// This shield's registration with the inner future, freed when it is dropped.
    slot: WakerSlot,
}

impl<T: 'static> StdFuture for Shield<T> {
    type Output = io::Result<T>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<T>> {
        if self.inner.done() {
            self.finished = true;
            return Poll::Ready(self.inner.take_result());
        }
        self.inner.watch(&self.slot, cx.waker());
        Poll::Pending
    }
}

impl<T: 'static> Drop for Shield<T> {
    fn drop(&mut self) {
        self.inner.unwatch(&self.slot);
        if !self.finished && !self.inner.done() {
            // Nobody awaits the inner work any more: its error, if it fails, was "retrieved"
            // by being shielded (asyncio's `_inner_done_callback` for a cancelled outer).
            self.inner.add_done_callback(|inner| {
                let _ = inner.exception();
            });
        }
    }
}

impl<T: 'static> fmt::Debug for Shield<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Shield")
            .field("inner", &self.inner)
            .finish()
    }
}
