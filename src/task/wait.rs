//! Waiting for several futures, or for one with a deadline: [`wait`] (the seed's
//! `futures.wait`), [`wait_for`] and [`gather`].

use std::future::Future as StdFuture;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use crate::task::sleep::{sleep, Sleep};
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

mod sealed {
    pub trait Sealed {}
    impl<T> Sealed for crate::Future<T> {}
    impl<T> Sealed for crate::Task<T> {}
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
        return_when,
        timer: timeout.map(sleep),
    }
    .await?;
    Ok(futures.into_iter().partition(|f| f.is_done()))
}

struct Wait<'a, F> {
    futures: &'a [F],
    return_when: ReturnWhen,
    timer: Option<Sleep>,
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
        if self.condition_holds() {
            return Poll::Ready(Ok(()));
        }
        if let Some(timer) = self.timer.as_mut() {
            if let Poll::Ready(fired) = Pin::new(timer).poll(cx) {
                return Poll::Ready(fired);
            }
        }
        for f in self.futures.iter().filter(|f| !f.is_done()) {
            f.wake_when_done(cx.waker());
        }
        Poll::Pending
    }
}

/// Await `future` for at most `timeout`. On time-out the future is dropped, which cancels a
/// coroutine at its suspension point (its destructors run), and this returns a `TimedOut`
/// error ([`LoopError::TimedOut`]).
///
/// Unlike asyncio, a [`Task`] handle passed here is only detached on time-out, as dropping a
/// `Task` always is: cancel the task yourself (`task.cancel()`) if it must stop.
///
/// # Errors
/// `TimedOut`; [`LoopError::NoRunningLoop`] outside a running loop.
pub async fn wait_for<F: StdFuture>(future: F, timeout: Duration) -> io::Result<F::Output> {
    let mut future = std::pin::pin!(future);
    let mut timer = std::pin::pin!(sleep(timeout));
    std::future::poll_fn(move |cx| {
        if let Poll::Ready(output) = future.as_mut().poll(cx) {
            return Poll::Ready(Ok(output));
        }
        match timer.as_mut().poll(cx) {
            Poll::Ready(Ok(())) => Poll::Ready(Err(LoopError::TimedOut.into())),
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => Poll::Pending,
        }
    })
    .await
}

/// Await every future concurrently and return their values in order; the first error ends the
/// wait (the other futures are dropped: coroutines are cancelled, tasks detached and left
/// running, as asyncio's `gather` leaves them).
///
/// # Errors
/// The first error any of the futures returns.
pub async fn gather<F, T>(futures: impl IntoIterator<Item = F>) -> io::Result<Vec<T>>
where
    F: StdFuture<Output = io::Result<T>>,
{
    let mut pending: Vec<Option<Pin<Box<F>>>> =
        futures.into_iter().map(|f| Some(Box::pin(f))).collect();
    let mut values: Vec<Option<T>> = pending.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut all_done = true;
        for (slot, value) in pending.iter_mut().zip(values.iter_mut()) {
            let Some(future) = slot.as_mut() else {
                continue;
            };
            match future.as_mut().poll(cx) {
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
    .await?;
    Ok(values.into_iter().flatten().collect())
}
