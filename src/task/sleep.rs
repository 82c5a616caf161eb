//! Suspending a coroutine for a while: [`sleep`] (a timer on the running loop) and
//! [`yield_now`] (asyncio's `sleep(0)`: let every other ready callback run first).

use std::future::Future as StdFuture;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use crate::{Future, TimerHandle};

/// Suspend the calling coroutine for `delay` on the running loop's clock (so on a
/// [`ManualClock`](crate::ManualClock) it takes no real time). Dropping the returned future
/// before it fires cancels its timer.
///
/// A zero `delay` arms no timer: as asyncio's `sleep(0)`, the coroutine yields for exactly
/// one loop iteration (see [`yield_now`]), where a timer would take two (one for the timer to
/// fire, one for the woken task to run).
///
/// Resolves to [`LoopError::NoRunningLoop`](crate::LoopError::NoRunningLoop) outside a
/// running loop, or [`LoopError::Closed`](crate::LoopError::Closed) if the loop closed.
pub fn sleep(delay: Duration) -> Sleep {
    Sleep {
        delay,
        timer: None,
        bare_yield: delay.is_zero().then_some(false),
    }
}

/// A timer of `delay`, even a zero one: what asyncio's `call_later(delay, ...)` gives (the
/// time-outs of `wait` and `as_completed`), where [`sleep`] would yield once for zero.
pub(crate) fn timer(delay: Duration) -> Sleep {
    Sleep {
        delay,
        timer: None,
        bare_yield: None,
    }
}

/// The future of [`sleep`].
#[derive(Debug)]
#[must_use = "a sleep does nothing unless awaited"]
pub struct Sleep {
    delay: Duration,
    /// Armed at the first poll: the timer, and the future it completes.
    timer: Option<(TimerHandle, Future<()>)>,
    /// asyncio's `sleep(0)`: no timer, one bare yield (`Some(true)` once it yielded).
    bare_yield: Option<bool>,
}

impl StdFuture for Sleep {
    type Output = io::Result<()>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.bare_yield {
            Some(true) => return Poll::Ready(Ok(())),
            Some(false) => {
                if let Err(e) = crate::event_loop::with_running_loop(|_| ()) {
                    return Poll::Ready(Err(e));
                }
                self.bare_yield = Some(true);
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            None => {}
        }
        if self.timer.is_none() {
            let delay = self.delay;
            let armed = crate::event_loop::with_running_loop(|lp| {
                let fired = lp.create_future::<()>();
                let setter = fired.clone();
                let handle = lp.call_later(delay, move |_| {
                    let _ = setter.set_result(());
                })?;
                Ok((handle, fired))
            });
            match armed.and_then(|armed| armed) {
                Ok(timer) => self.timer = Some(timer),
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
        let (_, fired) = self.timer.as_ref().expect("armed above");
        fired.poll_outcome(cx)
    }
}

impl Drop for Sleep {
    fn drop(&mut self) {
        if let Some((handle, _)) = &self.timer {
            handle.cancel();
        }
    }
}

/// Let every callback and task that is ready now run before the calling coroutine continues:
/// asyncio's `await asyncio.sleep(0)`. The task is re-queued behind them (next iteration, as
/// batch semantics put anything scheduled during a batch).
pub fn yield_now() -> YieldNow {
    YieldNow { yielded: false }
}

/// The future of [`yield_now`].
#[derive(Debug)]
#[must_use = "yield_now does nothing unless awaited"]
pub struct YieldNow {
    yielded: bool,
}

impl StdFuture for YieldNow {
    type Output = ();

    // Inline across crates: a `yield_now().await` in a coroutine is then a flag test and a
    // wake, with no call (it was a tenth of a task switch's instructions).
    #[inline]
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.yielded {
            return Poll::Ready(());
        }
        self.yielded = true;
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}
