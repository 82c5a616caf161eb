//! Tulip's `Future`: a result that will exist later, set by whoever holds the future
//! (`set_result`, `set_exception`, `cancel`), observed through done callbacks or `.await`.
//!
//! As in asyncio, done callbacks never run inside the call that completes the future: each is
//! scheduled with `call_soon`, in registration order, so completing a future is cheap and
//! cannot re-enter its caller. Coroutines awaiting it are woken through their `Waker`.

use std::cell::RefCell;
use std::fmt;
use std::future::Future as StdFuture;
use std::io;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

use crate::event_loop::WeakLoop;
use crate::{EventLoop, LoopError};

/// A done callback, as registered.
type DoneCallback<T> = Box<dyn FnOnce(&Future<T>)>;

/// Identifies a done callback for [`Future::remove_done_callback`] (closures have no identity
/// to compare, unlike Python functions).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub struct CallbackId(u64);

/// A result that will be set later: Tulip's and asyncio's `Future`, made by
/// [`EventLoop::create_future`].
///
/// A `Future` is a cheap handle (clones share one state) and belongs to its loop's thread. Its
/// outcome is a value (`set_result`), an error (`set_exception`, any [`io::Error`]), or
/// cancellation. `.await` on it suspends the awaiting coroutine until then and gives the
/// outcome as `io::Result<T>`: the value moves out to that awaiter, so a second consumer gets
/// [`LoopError::InvalidState`] (use [`result`](Future::result) with `T: Clone` to read it more
/// than once). A cancelled future gives [`LoopError::Cancelled`].
///
/// ```
/// use tulip::EventLoop;
///
/// let lp = EventLoop::new()?;
/// let fut = lp.create_future::<u32>();
/// let setter = fut.clone();
/// lp.call_soon(move |_| setter.set_result(42).unwrap())?;
/// assert_eq!(lp.run_until_complete(fut)??, 42);
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct Future<T> {
    inner: Rc<dyn Completion<T>>,
}

/// What holds a future's state: a [`FutureCell`] of its own, or a task, which keeps its output
/// in the same allocation as its coroutine (one allocation fewer per task).
pub(crate) trait Completion<T> {
    fn cell(&self) -> &FutureCell<T>;
}

/// A future's state, and the loop its done callbacks are scheduled on.
pub(crate) struct FutureCell<T> {
    state: RefCell<State<T>>,
    /// Where done callbacks are scheduled. Weak: a future kept past its loop keeps nothing
    /// alive (its callbacks are then dropped unrun).
    lp: WeakLoop,
}

impl<T> FutureCell<T> {
    pub(crate) fn new(lp: WeakLoop) -> FutureCell<T> {
        FutureCell {
            state: RefCell::new(State {
                outcome: Outcome::Pending,
                callbacks: Vec::new(),
                next_callback: 0,
                wakers: Vec::new(),
            }),
            lp,
        }
    }
}

impl<T> Completion<T> for FutureCell<T> {
    fn cell(&self) -> &FutureCell<T> {
        self
    }
}

struct State<T> {
    outcome: Outcome<T>,
    callbacks: Vec<(CallbackId, DoneCallback<T>)>,
    next_callback: u64,
    /// The coroutines awaiting this future.
    wakers: Vec<Waker>,
}

impl<T> State<T> {
    /// Wake `waker` on completion; once, if it is already there (as far as `will_wake` tells).
    fn add_waker(&mut self, waker: &Waker) {
        if !self.wakers.iter().any(|w| w.will_wake(waker)) {
            self.wakers.push(waker.clone());
        }
    }
}

enum Outcome<T> {
    Pending,
    Done(io::Result<T>),
    Cancelled,
    /// The value or error was moved out by an awaiter or `take_result`.
    Taken,
}

impl<T> Clone for Future<T> {
    fn clone(&self) -> Self {
        Future {
            inner: Rc::clone(&self.inner),
        }
    }
}

impl<T: 'static> Future<T> {
    pub(crate) fn new(lp: &EventLoop) -> Future<T> {
        Future::from_completion(Rc::new(FutureCell::new(lp.downgrade())))
    }

    /// The future whose state `holder` keeps (a task's output).
    pub(crate) fn from_completion(holder: Rc<dyn Completion<T>>) -> Future<T> {
        Future { inner: holder }
    }

    fn state(&self) -> &RefCell<State<T>> {
        &self.inner.cell().state
    }

    /// True once the future has a result, an error, or was cancelled.
    pub fn done(&self) -> bool {
        !matches!(self.state().borrow().outcome, Outcome::Pending)
    }

    /// True if the future was cancelled.
    pub fn cancelled(&self) -> bool {
        matches!(self.state().borrow().outcome, Outcome::Cancelled)
    }

    /// Complete the future with `value`: schedules the done callbacks and wakes the awaiters.
    ///
    /// # Errors
    /// [`LoopError::InvalidState`] if it is already done (the value is dropped).
    pub fn set_result(&self, value: T) -> io::Result<()> {
        self.complete(Outcome::Done(Ok(value)))
    }

    /// Complete the future with an error: what its awaiters get instead of a value.
    ///
    /// # Errors
    /// [`LoopError::InvalidState`] if it is already done.
    pub fn set_exception(&self, error: io::Error) -> io::Result<()> {
        self.complete(Outcome::Done(Err(error)))
    }

    /// Cancel the future: if it is pending, it becomes cancelled (its awaiters get
    /// [`LoopError::Cancelled`]), its done callbacks are scheduled, and this returns true;
    /// otherwise nothing changes and this returns false.
    pub fn cancel(&self) -> bool {
        self.complete(Outcome::Cancelled).is_ok()
    }

    /// Take the outcome out: the value, the error, or [`LoopError::Cancelled`].
    ///
    /// # Errors
    /// The future's error; [`LoopError::Cancelled`]; [`LoopError::InvalidState`] while pending
    /// or once the outcome was taken.
    pub fn take_result(&self) -> io::Result<T> {
        let mut state = self.state().borrow_mut();
        match std::mem::replace(&mut state.outcome, Outcome::Taken) {
            Outcome::Done(result) => result,
            Outcome::Cancelled => {
                state.outcome = Outcome::Cancelled;
                Err(LoopError::Cancelled.into())
            }
            Outcome::Pending => {
                state.outcome = Outcome::Pending;
                Err(LoopError::InvalidState.into())
            }
            Outcome::Taken => Err(LoopError::InvalidState.into()),
        }
    }

    /// Add `callback`, to be scheduled (with `call_soon`) once the future is done, after those
    /// added before it. If the future is already done it is scheduled at once.
    pub fn add_done_callback(&self, callback: impl FnOnce(&Future<T>) + 'static) -> CallbackId {
        let mut state = self.state().borrow_mut();
        let id = CallbackId(state.next_callback);
        state.next_callback += 1;
        if matches!(state.outcome, Outcome::Pending) {
            state.callbacks.push((id, Box::new(callback)));
        } else {
            drop(state);
            self.schedule(vec![(id, Box::new(callback))]);
        }
        id
    }

    /// Remove a done callback that has not been scheduled yet; true if it was there.
    pub fn remove_done_callback(&self, id: CallbackId) -> bool {
        let removed = {
            let mut state = self.state().borrow_mut();
            let position = state.callbacks.iter().position(|(cid, _)| *cid == id);
            position.map(|i| state.callbacks.remove(i))
        };
        // Dropped outside the borrow: a closure's captures may run code in their `Drop`.
        removed.is_some()
    }

    fn complete(&self, outcome: Outcome<T>) -> io::Result<()> {
        let (callbacks, wakers) = {
            let mut state = self.state().borrow_mut();
            if !matches!(state.outcome, Outcome::Pending) {
                drop(state);
                // The refused value is dropped outside the borrow, too.
                drop(outcome);
                return Err(LoopError::InvalidState.into());
            }
            state.outcome = outcome;
            (
                std::mem::take(&mut state.callbacks),
                std::mem::take(&mut state.wakers),
            )
        };
        for waker in wakers {
            waker.wake();
        }
        if !callbacks.is_empty() {
            self.schedule(callbacks);
        }
        Ok(())
    }

    /// Schedule done callbacks on the loop, in order. A closed or dropped loop drops them.
    fn schedule(&self, callbacks: Vec<(CallbackId, DoneCallback<T>)>) {
        let Some(lp) = self.inner.cell().lp.upgrade() else {
            return;
        };
        for (_, callback) in callbacks {
            let fut = self.clone();
            // Err: the loop is closed; the callback is dropped, as asyncio drops them.
            let _ = lp.call_soon(move |_| callback(&fut));
        }
    }

    /// Poll for the outcome on behalf of an awaiter (`.await`, `wait`, `gather`).
    pub(crate) fn poll_outcome(&self, cx: &mut Context<'_>) -> Poll<io::Result<T>> {
        if self.done() {
            return Poll::Ready(self.take_result());
        }
        self.state().borrow_mut().add_waker(cx.waker());
        Poll::Pending
    }

    /// Register `waker` to be woken when the future is done, without taking its outcome.
    pub(crate) fn wake_when_done(&self, waker: &Waker) {
        let mut state = self.state().borrow_mut();
        if matches!(state.outcome, Outcome::Pending) {
            state.add_waker(waker);
        } else {
            drop(state);
            waker.wake_by_ref();
        }
    }

    /// True if the future ended with an error (not a value, not cancellation).
    pub(crate) fn is_error(&self) -> bool {
        matches!(self.state().borrow().outcome, Outcome::Done(Err(_)))
    }
}

impl<T: Clone + 'static> Future<T> {
    /// The value, leaving it in place for other readers.
    ///
    /// # Errors
    /// [`LoopError::InvalidState`] while pending (or once an awaiter took the outcome),
    /// [`LoopError::Cancelled`] once cancelled, and a copy of the future's error if it has one
    /// (the same `LoopError`, OS error code, or kind and message).
    pub fn result(&self) -> io::Result<T> {
        match &self.state().borrow().outcome {
            Outcome::Done(Ok(value)) => Ok(value.clone()),
            Outcome::Done(Err(e)) => Err(copy_error(e)),
            Outcome::Cancelled => Err(LoopError::Cancelled.into()),
            Outcome::Pending | Outcome::Taken => Err(LoopError::InvalidState.into()),
        }
    }
}

/// A copy of `e` for another reader (an `io::Error` is not `Clone`): the same `LoopError`, or the
/// same OS error code, or else the same kind and message.
fn copy_error(e: &io::Error) -> io::Error {
    if let Some(loop_error) = LoopError::of(e) {
        return loop_error.into();
    }
    match e.raw_os_error() {
        Some(code) => io::Error::from_raw_os_error(code),
        None => io::Error::new(e.kind(), e.to_string()),
    }
}

impl<T: 'static> StdFuture for Future<T> {
    type Output = io::Result<T>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<T>> {
        self.poll_outcome(cx)
    }
}

impl<T: 'static> fmt::Debug for Future<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match self.state().borrow().outcome {
            Outcome::Pending => "pending",
            Outcome::Done(Ok(_)) => "finished",
            Outcome::Done(Err(_)) => "finished with an error",
            Outcome::Cancelled => "cancelled",
            Outcome::Taken => "finished (outcome taken)",
        };
        f.debug_struct("Future").field("state", &state).finish()
    }
}

#[cfg(test)]
mod tests {
    //! The future's state machine alone, with no loop behind it (done callbacks are then
    //! dropped unrun): no system call, so these also run under Miri (`.ci/miri`).

    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::task::Wake;

    fn detached<T: 'static>() -> Future<T> {
        Future::from_completion(Rc::new(FutureCell::new(WeakLoop::default())))
    }

    #[derive(Default)]
    struct CountingWaker(AtomicUsize);

    impl Wake for CountingWaker {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn loop_error<T>(r: io::Result<T>) -> Option<LoopError> {
        r.err().as_ref().and_then(LoopError::of)
    }

    #[test]
    fn a_result_is_set_once_and_read_or_taken() {
        let fut = detached::<u32>();
        assert!(!fut.done());
        assert_eq!(loop_error(fut.result()), Some(LoopError::InvalidState));
        fut.set_result(5).unwrap();
        assert_eq!(loop_error(fut.set_result(6)), Some(LoopError::InvalidState));
        assert!(!fut.cancel());
        assert_eq!(fut.result().unwrap(), 5);
        assert_eq!(fut.take_result().unwrap(), 5);
        assert_eq!(loop_error(fut.take_result()), Some(LoopError::InvalidState));
    }

    #[test]
    fn cancelling_a_pending_future_makes_every_read_say_cancelled() {
        let fut = detached::<String>();
        assert!(fut.cancel());
        assert!(fut.cancelled() && fut.done());
        assert!(!fut.cancel());
        assert_eq!(loop_error(fut.result()), Some(LoopError::Cancelled));
        assert_eq!(loop_error(fut.take_result()), Some(LoopError::Cancelled));
        assert_eq!(loop_error(fut.take_result()), Some(LoopError::Cancelled));
    }

    #[test]
    fn an_error_keeps_its_loop_error_or_os_code_when_read() {
        let fut = detached::<()>();
        fut.set_exception(io::Error::from_raw_os_error(libc_eio()))
            .unwrap();
        assert_eq!(fut.result().unwrap_err().raw_os_error(), Some(libc_eio()));
        assert!(fut.is_error());
    }

    /// EIO is 5 on every Unix this crate builds for.
    fn libc_eio() -> i32 {
        5
    }

    #[test]
    fn every_awaiter_is_woken_on_completion_and_then_takes_the_value() {
        let fut = detached::<u8>();
        let a = Arc::new(CountingWaker::default());
        let b = Arc::new(CountingWaker::default());
        let (wa, wb) = (Waker::from(a.clone()), Waker::from(b.clone()));
        assert!(fut.poll_outcome(&mut Context::from_waker(&wa)).is_pending());
        assert!(fut.poll_outcome(&mut Context::from_waker(&wa)).is_pending());
        assert!(fut.poll_outcome(&mut Context::from_waker(&wb)).is_pending());
        fut.set_result(1).unwrap();
        // `a` polled twice: registered once where `will_wake` recognises the waker (it need
        // not: Miri makes vtable identity unreliable), so at least once. A task's `queued` flag
        // turns duplicate wakes into one poll anyway.
        assert!(a.0.load(Ordering::SeqCst) >= 1);
        assert_eq!(b.0.load(Ordering::SeqCst), 1);
        let taken = fut.poll_outcome(&mut Context::from_waker(&wa));
        assert!(matches!(taken, Poll::Ready(Ok(1))));
    }

    #[test]
    fn wake_when_done_wakes_at_once_for_a_done_future_without_taking_it() {
        let fut = detached::<u8>();
        let w = Arc::new(CountingWaker::default());
        fut.cancel();
        fut.wake_when_done(&Waker::from(w.clone()));
        assert_eq!(w.0.load(Ordering::SeqCst), 1);
        assert!(fut.cancelled());
    }

    #[test]
    fn a_done_callback_can_be_removed_once_and_without_a_loop_is_dropped_unrun() {
        let fut = detached::<u8>();
        let ran = Rc::new(std::cell::Cell::new(false));
        let r = ran.clone();
        let id = fut.add_done_callback(move |_| r.set(true));
        let kept = fut.add_done_callback(|_| {});
        assert!(fut.remove_done_callback(id));
        assert!(!fut.remove_done_callback(id));
        fut.set_result(3).unwrap();
        assert!(!fut.remove_done_callback(kept));
        assert!(!ran.get());
    }
}
