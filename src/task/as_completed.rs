//! asyncio's `as_completed`: futures in the order they complete.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::fmt;
use std::future::Future as StdFuture;
use std::io;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use super::sleep::{self, Sleep};
use super::wait::Waitable;
use crate::{CallbackId, LoopError};

/// Hand back `futures` (each a [`Future`](crate::Future) or a [`Task`](crate::Task)) one by
/// one as they complete: asyncio's `as_completed`, as its `async for` form (3.13) gives them,
/// the futures themselves, done, for their outcome to be taken.
///
/// The order is that of completion, as the futures' done callbacks see it (so a future that
/// completes is handed back one loop iteration later, as in asyncio; those done already come
/// first, in the order given). Nothing is cancelled: once this is dropped, or after a time-out,
/// the futures not handed back go on as they were.
///
/// With a `timeout`, counted from the first [`next`](AsCompleted::next): once it passes, each
/// future not handed back yet gives a `TimedOut` error ([`LoopError::TimedOut`]) instead, as
/// each awaitable of asyncio's iterator raises `TimeoutError`, and futures completing later are
/// not handed back.
///
/// ```
/// use std::time::Duration;
/// use tulip::{as_completed, sleep, EventLoop};
///
/// let lp = EventLoop::new()?;
/// let order = lp.run_until_complete(async {
///     let slow = tulip::spawn(async { sleep(Duration::from_millis(20)).await.map(|()| "slow") })?;
///     let fast = tulip::spawn(async { sleep(Duration::from_millis(1)).await.map(|()| "fast") })?;
///     let mut completed = as_completed(vec![slow, fast], None);
///     let mut order = Vec::new();
///     while let Some(task) = completed.next().await {
///         order.push(task?.take_result()??);
///     }
///     std::io::Result::Ok(order)
/// })??;
/// assert_eq!(order, ["fast", "slow"]);
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn as_completed<F: Waitable>(
    futures: impl IntoIterator<Item = F>,
    timeout: Option<Duration>,
) -> AsCompleted<F> {
    let completions = Rc::new(RefCell::new(Completions::default()));
    let futures: Vec<Option<F>> = futures.into_iter().map(Some).collect();
    let hooks = futures
        .iter()
        .enumerate()
        .map(|(index, future)| {
            let future = future.as_ref().expect("just wrapped");
            let completions = Rc::clone(&completions);
            future.on_done(Box::new(move || completions.borrow_mut().complete(index)))
        })
        .collect();
    AsCompleted {
        left: futures.len(),
        futures,
        hooks,
        completions,
        timeout,
        timer: None,
        timed_out: false,
    }
}

/// The futures of [`as_completed`], handed back as they complete.
pub struct AsCompleted<F: Waitable> {
    /// `None` once handed back.
    futures: Vec<Option<F>>,
    /// The done-callback registration of each future not handed back.
    hooks: Vec<Option<CallbackId>>,
    completions: Rc<RefCell<Completions>>,
    timeout: Option<Duration>,
    /// Armed at the first `next`.
    timer: Option<Sleep>,
    timed_out: bool,
    /// Futures (or time-out errors) still to hand back.
    left: usize,
}

/// Indexes of completed futures in completion order, and who waits for the next one.
#[derive(Default)]
struct Completions {
    done: VecDeque<usize>,
    waiter: Option<Waker>,
}

impl Completions {
    fn complete(&mut self, index: usize) {
        self.done.push_back(index);
        if let Some(waker) = self.waiter.take() {
            waker.wake();
        }
    }
}

impl<F: Waitable> AsCompleted<F> {
    /// The next future to complete, done; `None` once every one was handed back.
    ///
    /// The output is `Err` with [`LoopError::TimedOut`] for each future left once the time-out
    /// passed, or with [`LoopError::NoRunningLoop`] for the timer outside a running loop.
    pub async fn next(&mut self) -> Option<io::Result<F>> {
        std::future::poll_fn(|cx| self.poll_next(cx)).await
    }

    /// How many futures (or time-out errors) are still to come.
    pub fn len(&self) -> usize {
        self.left
    }

    /// True once everything was handed back.
    pub fn is_empty(&self) -> bool {
        self.left == 0
    }

    /// The futures not handed back yet, in the order given (to cancel them after a time-out).
    pub fn remaining(&self) -> impl Iterator<Item = &F> {
        self.futures.iter().flatten()
    }

    fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<io::Result<F>>> {
        if self.left == 0 {
            return Poll::Ready(None);
        }
        if self.timed_out {
            self.left -= 1;
            return Poll::Ready(Some(Err(LoopError::TimedOut.into())));
        }
        let next = self.completions.borrow_mut().done.pop_front();
        if let Some(index) = next {
            self.left -= 1;
            self.hooks[index] = None;
            let future = self.futures[index].take().expect("each completes once");
            return Poll::Ready(Some(Ok(future)));
        }
        if let Some(timeout) = self.timeout {
            let timer = self.timer.get_or_insert_with(|| sleep::timer(timeout));
            match Pin::new(timer).poll(cx) {
                Poll::Ready(Ok(())) => {
                    self.timed_out = true;
                    self.forget_hooks();
                    self.left -= 1;
                    return Poll::Ready(Some(Err(LoopError::TimedOut.into())));
                }
                Poll::Ready(Err(e)) => return Poll::Ready(Some(Err(e))),
                Poll::Pending => {}
            }
        }
        self.completions.borrow_mut().waiter = Some(cx.waker().clone());
        Poll::Pending
    }

    /// Remove the done callbacks of the futures not handed back.
    fn forget_hooks(&mut self) {
        for (future, hook) in self.futures.iter().zip(self.hooks.iter_mut()) {
            if let (Some(future), Some(id)) = (future, hook.take()) {
                future.forget_on_done(id);
            }
        }
    }
}

impl<F: Waitable> Drop for AsCompleted<F> {
    fn drop(&mut self) {
        self.forget_hooks();
    }
}

impl<F: Waitable> fmt::Debug for AsCompleted<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AsCompleted")
            .field("left", &self.left)
            .field("timed_out", &self.timed_out)
            .finish()
    }
}
