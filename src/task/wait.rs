//! Waiting for several futures, or for one with a deadline: [`wait`] (the seed's
//! `futures.wait`), [`wait_for`] and [`gather`].

use std::future::Future as StdFuture;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use super::cancel_scope::{self, Cancelled};
use super::future::WakerSlot;
use super::output::TaskOutput;
use crate::task::sleep::{self, sleep, Sleep};
use crate::{Future, LoopError, Task};

/// When [`wait`] returns.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum ReturnWhen {
    /// As soon as any future is done (or cancelled).
    FirstCompleted,
    /// As soon as any future ends with an error; otherwise when all are done.
    FirstException,
    /// When every future is done.
    AllCompleted,
}

/// Something [`wait`] can watch without consuming its outcome: a [`Future`] or a [`Task`].
pub trait Waitable: sealed::Sealed {
    /// True once it has an outcome.
    fn is_done(&self) -> bool;
    /// True if that outcome is an error (not a value, not cancellation).
    fn is_error(&self) -> bool;
    /// Wake `waker` when it is done (at once if it is).
    fn wake_when_done(&self, waker: &Waker);
}

pub(crate) mod sealed {
    use std::task::Waker;

    use crate::task::future::WakerSlot;
    use crate::CallbackId;

    /// What the crate itself needs of a [`Waitable`](super::Waitable) besides its public
    /// methods.
    pub trait Sealed {
        /// Run `hook` once it is done, from a done callback (so one loop iteration after the
        /// completion, as asyncio's callbacks run); the registration, to remove it.
        fn on_done(&self, hook: Box<dyn FnOnce()>) -> Option<CallbackId>;

        /// Remove a registration of [`on_done`](Sealed::on_done) that has not run.
        fn forget_on_done(&self, id: CallbackId);

        /// True once it is done; until then `waker` is kept in `slot`, a registration that
        /// the caller frees with [`unwatch`](Sealed::unwatch) when it stops waiting.
        fn watch(&self, slot: &WakerSlot, waker: &Waker) -> bool;

        /// Free `slot`.
        fn unwatch(&self, slot: &WakerSlot);
    }

    impl<T: 'static> Sealed for crate::Future<T> {
        fn watch(&self, slot: &WakerSlot, waker: &Waker) -> bool {
            crate::Future::watch(self, slot, waker)
        }

        fn unwatch(&self, slot: &WakerSlot) {
            crate::Future::unwatch(self, slot);
        }

        fn on_done(&self, hook: Box<dyn FnOnce()>) -> Option<CallbackId> {
            Some(self.add_done_callback(move |_| hook()))
        }

        fn forget_on_done(&self, id: CallbackId) {
            self.remove_done_callback(id);
        }
    }

    impl<T: 'static> Sealed for crate::Task<T> {
        fn watch(&self, slot: &WakerSlot, waker: &Waker) -> bool {
            self.as_future().watch(slot, waker)
        }

        fn unwatch(&self, slot: &WakerSlot) {
            self.as_future().unwatch(slot);
        }

        fn on_done(&self, hook: Box<dyn FnOnce()>) -> Option<CallbackId> {
            self.as_future().on_done(hook)
        }

        fn forget_on_done(&self, id: CallbackId) {
            self.as_future().forget_on_done(id);
        }
    }
}

impl<T: 'static> Waitable for Future<T> {
    fn is_done(&self) -> bool {
        self.done()
    }
    fn is_error(&self) -> bool {
        Future::is_error(self)
    }
    fn wake_when_done(&self, waker: &Waker) {
        Future::wake_when_done(self, waker)
    }
}

impl<T: 'static> Waitable for Task<T> {
    fn is_done(&self) -> bool {
        self.done()
    }
    fn is_error(&self) -> bool {
        self.as_future().is_error()
    }
    fn wake_when_done(&self, waker: &Waker) {
        self.as_future().wake_when_done(waker)
    }
}

/// Wait until `return_when` holds for `futures`, or `timeout` passes, and split them into
/// `(done, pending)`, each in the order given. Nothing is cancelled or consumed: read the done
/// ones' outcomes with `take_result`, keep waiting for the pending ones.
///
/// As in asyncio, the waiter resumes one loop iteration after the condition came to hold
/// (there, a done callback runs, then the waiting task is woken), so every future that
/// completed in the same iteration is in `done`. A task counts as failed for
/// [`ReturnWhen::FirstException`] if it returned a failure (`Err`; see
/// [`TaskOutput`](crate::TaskOutput)).
///
/// ```
/// use std::time::Duration;
/// use tulip::{sleep, wait, EventLoop, ReturnWhen};
///
/// let lp = EventLoop::new()?;
/// let (done, pending) = lp.run_until_complete(async {
///     let fast = tulip::spawn(async { sleep(Duration::from_millis(1)).await.map(|()| 1) })?;
///     let slow = tulip::spawn(async { sleep(Duration::from_secs(60)).await.map(|()| 2) })?;
///     wait(vec![fast, slow], None, ReturnWhen::FirstCompleted).await
/// })??;
/// assert_eq!((done.len(), pending.len()), (1, 1));
/// assert_eq!(done[0].take_result()??, 1);
/// # Ok::<(), std::io::Error>(())
/// ```
///
/// # Errors
/// `InvalidInput` if `futures` is empty (as asyncio); the running loop's errors for the timer
/// ([`LoopError::NoRunningLoop`]).
pub async fn wait<F: Waitable>(
    futures: Vec<F>,
    timeout: Option<Duration>,
    return_when: ReturnWhen,
) -> io::Result<(Vec<F>, Vec<F>)> {
    if futures.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "wait() needs at least one future",
        ));
    }
    Wait {
        futures: &futures,
        slots: futures.iter().map(|_| WakerSlot::default()).collect(),
        return_when,
        timer: timeout.map(sleep::timer),
        hop: Hop::Watching,
    }
    .await?;
    Ok(futures.into_iter().partition(|f| f.is_done()))
}

struct Wait<'a, F: Waitable> {
    futures: &'a [F],
    /// This wait's registration with each future, freed when it ends (a wait that timed out
    /// leaves nothing behind in a future that lives on).
    slots: Vec<WakerSlot>,
    return_when: ReturnWhen,
    timer: Option<Sleep>,
    hop: Hop,
}

/// Where a [`Wait`] is in asyncio's two hops from a completion to the waiter's resumption.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
enum Hop {
    /// First poll: what is done already gets its done callback in the next iteration.
    Watching,
    /// Woken by completions, or by the first poll's own hop.
    Waiting,
    /// The condition held at the last poll: return at the next one.
    Resuming,
}

impl<F: Waitable> Wait<'_, F> {
    fn condition_holds(&self) -> bool {
        let mut done = self.futures.iter().filter(|f| f.is_done());
        match self.return_when {
            ReturnWhen::FirstCompleted => done.next().is_some(),
            ReturnWhen::FirstException => {
                self.futures.iter().any(|f| f.is_error()) || done.count() == self.futures.len()
            }
            ReturnWhen::AllCompleted => done.count() == self.futures.len(),
        }
    }
}

impl<F: Waitable> StdFuture for Wait<'_, F> {
    type Output = io::Result<()>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // asyncio's `_wait`: a completion schedules a done callback (one iteration), which
        // wakes the waiter (another one); futures done before the wait began get their done
        // callback in the first of those.
        match self.hop {
            Hop::Resuming => return Poll::Ready(Ok(())),
            Hop::Watching => {
                self.hop = Hop::Waiting;
                if self.futures.iter().any(|f| f.is_done()) {
                    cx.waker().wake_by_ref();
                    return Poll::Pending;
                }
            }
            Hop::Waiting if self.condition_holds() => {
                self.hop = Hop::Resuming;
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            Hop::Waiting => {}
        }
        if let Some(timer) = self.timer.as_mut() {
            if let Poll::Ready(fired) = Pin::new(timer).poll(cx) {
                return Poll::Ready(fired);
            }
        }
        for (f, slot) in self.futures.iter().zip(&self.slots) {
            f.watch(slot, cx.waker());
        }
        Poll::Pending
    }
}

impl<F: Waitable> Drop for Wait<'_, F> {
    fn drop(&mut self) {
        for (f, slot) in self.futures.iter().zip(&self.slots) {
            f.unwatch(slot);
        }
    }
}

/// Await `future` for at most `timeout`, as asyncio's `wait_for`. On time-out `future` is
/// cancelled: dropped where it is suspended (its destructors run), and a [`Task`] or
/// [`Future`] it was awaiting (or that it is) is cancelled too; this waits until every such
/// task has finished cancelling, then returns a `TimedOut` error ([`LoopError::TimedOut`]).
///
/// With a timeout of zero, `future` is never polled: a coroutine never starts. If it is a
/// `Task` or `Future` that is already done, its outcome is returned; anything else is
/// cancelled (a task before it ever runs, if it has not yet) and the result is `TimedOut`.
///
/// ```
/// use std::time::Duration;
/// use tulip::{sleep, wait_for, EventLoop, LoopError};
///
/// let lp = EventLoop::new()?;
/// let task = lp.create_task(sleep(Duration::from_secs(60)));
/// let probe = task.as_future().clone();
/// let timed_out = lp.run_until_complete(wait_for(task, Duration::from_millis(5)))?;
/// assert_eq!(LoopError::of(&timed_out.unwrap_err()), Some(LoopError::TimedOut));
/// assert!(probe.cancelled(), "the task was cancelled, and its cancellation waited for");
/// # Ok::<(), std::io::Error>(())
/// ```
///
/// # Errors
/// `TimedOut`; [`LoopError::NoRunningLoop`] outside a running loop.
pub async fn wait_for<F>(future: F, timeout: Duration) -> io::Result<F::Output>
where
    F: StdFuture,
    F::Output: 'static,
{
    let mut slot = std::pin::pin!(Some(future));
    if timeout.is_zero() {
        return match cancel_and_wait::<F>(slot.as_mut()).await {
            Some(outcome) => Ok(outcome),
            None => Err(LoopError::TimedOut.into()),
        };
    }
    let mut timer = std::pin::pin!(sleep(timeout));
    let finished = std::future::poll_fn(|cx| {
        let future = slot
            .as_mut()
            .as_pin_mut()
            .expect("polled until it is ready, not after");
        if let Poll::Ready(output) = future.poll(cx) {
            return Poll::Ready(Some(Ok(output)));
        }
        match timer.as_mut().poll(cx) {
            Poll::Ready(Ok(())) => Poll::Ready(None),
            Poll::Ready(Err(e)) => Poll::Ready(Some(Err(e))),
            Poll::Pending => Poll::Pending,
        }
    })
    .await;
    match finished {
        Some(outcome) => outcome,
        None => {
            cancel_and_wait::<F>(slot).await;
            Err(LoopError::TimedOut.into())
        }
    }
}

/// Cancel the future in `slot` (see `cancel_scope.rs`) and wait until every task that
/// cancellation reached is done. The outcome, if the future was a `Task` or `Future` handle
/// that was done already.
pub(crate) async fn cancel_and_wait<F>(slot: Pin<&mut Option<F>>) -> Option<F::Output>
where
    F: StdFuture,
    F::Output: 'static,
{
    let Cancelled {
        taken,
        mut cancelling,
    } = cancel_scope::cancel(slot);
    std::future::poll_fn(|cx| {
        cancelling.retain(|task| !task.is_done());
        match cancelling.first() {
            None => Poll::Ready(()),
            Some(task) => {
                task.wake_when_done(cx.waker());
                Poll::Pending
            }
        }
    })
    .await;
    taken?.downcast::<F::Output>().ok().map(|outcome| *outcome)
}

/// Await every future concurrently and return their values in order; the first error ends the
/// wait (the other futures are dropped: coroutines are cancelled, tasks detached and left
/// running, as asyncio's `gather` leaves them). An error is a future's own (a cancelled or
/// failed task, ...) or a value that is a failure (a task that returned `Err`; see
/// [`TaskOutput`](crate::TaskOutput)).
///
/// # Errors
/// The first error any of the futures returns.
pub async fn gather<F, T>(futures: impl IntoIterator<Item = F>) -> io::Result<Vec<T>>
where
    F: StdFuture<Output = io::Result<T>>,
    T: TaskOutput,
{
    let mut pending: Vec<Option<Pin<Box<F>>>> =
        futures.into_iter().map(|f| Some(Box::pin(f))).collect();
    let mut values: Vec<Option<T>> = pending.iter().map(|_| None).collect();
    let outcome = std::future::poll_fn(|cx| {
        let mut all_done = true;
        for (slot, value) in pending.iter_mut().zip(values.iter_mut()) {
            let Some(future) = slot.as_mut() else {
                continue;
            };
            match future
                .as_mut()
                .poll(cx)
                .map(|r| r.and_then(T::into_failure))
            {
                Poll::Ready(Ok(v)) => {
                    *value = Some(v);
                    *slot = None;
                }
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => all_done = false,
            }
        }
        if all_done {
            Poll::Ready(Ok(()))
        } else {
            Poll::Pending
        }
    })
    .await;
    if outcome.is_err() {
        // Left running, as asyncio's gather leaves them; their failures count as retrieved
        // (asyncio's gather calls `exception()` on every child that finishes).
        cancel_scope::let_go_retrieving(pending);
    }
    outcome?;
    Ok(values.into_iter().flatten().collect())
}
