//! The running loop of this thread (asyncio's `get_running_loop`): set while `run_forever`,
//! `run_until` or `run_once` runs, so that [`spawn`](crate::spawn), the coroutine helpers
//! ([`sleep`](crate::sleep), [`wait_readable`](crate::wait_readable), ...) and same-thread task
//! wakes reach it without being handed it.
//!
//! The slot holds a non-owning [`EventLoop`] reference (dropping it does not close the loop),
//! and only while the loop runs, so it never keeps a loop alive or forms a cycle.

use std::cell::RefCell;
use std::io;
use std::sync::Arc;

use crate::event_loop::WeakLoop;
use crate::task::budget::SavedStep;

use crate::event_loop::loop_handle::Remote;
use crate::{EventLoop, LoopError};

thread_local! {
    static RUNNING: RefCell<Option<EventLoop>> = const { RefCell::new(None) };
}

/// Makes `lp` this thread's running loop until dropped, then restores the previous one (a loop
/// run from a callback of another loop).
pub(crate) struct RunningGuard {
    previous: Option<EventLoop>,
    /// The task step this run interrupted, if it was started from inside one (of another
    /// loop): the steps of this run would otherwise leave it as "no task".
    _step: SavedStep,
}

impl RunningGuard {
    pub(crate) fn enter(lp: &EventLoop) -> RunningGuard {
        let previous = RUNNING.with(|r| r.borrow_mut().replace(lp.running_ref()));
        RunningGuard {
            previous,
            _step: SavedStep::save(),
        }
    }
}

impl Drop for RunningGuard {
    fn drop(&mut self) {
        let previous = self.previous.take();
        let ours = RUNNING.with(|r| std::mem::replace(&mut *r.borrow_mut(), previous));
        drop(ours);
    }
}

/// Call `f` with the loop running on this thread.
///
/// # Errors
/// [`LoopError::NoRunningLoop`] if no loop runs on this thread.
pub(crate) fn with_running_loop<R>(f: impl FnOnce(&EventLoop) -> R) -> io::Result<R> {
    let lp = RUNNING
        .with(|r| r.borrow().as_ref().map(EventLoop::running_ref))
        .ok_or(LoopError::NoRunningLoop)?;
    Ok(f(&lp))
}

/// Whether the loop running on this thread is the one behind `weak`.
pub(crate) fn is_running_loop(weak: &WeakLoop) -> bool {
    RUNNING.with(|r| r.borrow().as_ref().is_some_and(|lp| weak.is(lp)))
}

/// Whether a loop runs on this thread and it is not the one behind `weak` (a future of
/// another loop, or of none, awaited by one of its coroutines).
pub(crate) fn runs_another_loop(weak: &WeakLoop) -> bool {
    RUNNING.with(|r| r.borrow().as_ref().is_some_and(|lp| !weak.is(lp)))
}

/// Call `f` with the running loop if it is the one whose thread-safe queue is `remote` (so a
/// task waker knows it is on its own loop's thread); `None` otherwise. Never panics, even while
/// the thread is being torn down.
#[inline]
pub(crate) fn with_this_loop<R>(
    remote: &Arc<Remote>,
    f: impl FnOnce(&EventLoop) -> Option<R>,
) -> Option<R> {
    RUNNING
        .try_with(|r| {
            let running = r.try_borrow().ok()?;
            let lp = running.as_ref()?;
            if Arc::ptr_eq(&lp.inner.remote, remote) {
                f(lp)
            } else {
                None
            }
        })
        .ok()
        .flatten()
}

/// The loop running on this thread, as asyncio's `get_running_loop`: what a done callback or a
/// coroutine uses to reach its loop. The returned `EventLoop` is a reference that does not own
/// the loop: dropping it never closes the loop, and once the loop is closed its calls return
/// [`LoopError::Closed`].
///
/// # Errors
/// [`LoopError::NoRunningLoop`] if no loop runs on this thread.
pub fn get_running_loop() -> io::Result<EventLoop> {
    with_running_loop(EventLoop::running_ref)
}
