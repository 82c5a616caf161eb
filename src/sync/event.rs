//! asyncio's `Event`: a flag coroutines wait for.

use std::cell::{Cell, RefCell};
use std::fmt;
use std::future::Future as StdFuture;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use super::wait_list::{wake_all, WaitList, WaiterId};

/// A flag that coroutines wait for: asyncio's `Event`. [`set`](Event::set) wakes every
/// waiter, and [`wait`](Event::wait) returns at once while it is set; [`clear`](Event::clear)
/// resets it. A waiter woken by `set` returns even if the flag was cleared again before it ran.
///
/// A cheap handle (clones share one flag), for one thread (`!Send`).
///
/// ```
/// use tulip::{Event, EventLoop};
///
/// let lp = EventLoop::new()?;
/// let stop = Event::new();
/// let setter = stop.clone();
/// lp.call_soon(move |_| setter.set())?;
/// lp.run_until_complete(async move { stop.wait().await })?;
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Clone, Default)]
pub struct Event {
    state: Rc<EventState>,
}

#[derive(Default)]
struct EventState {
    set: Cell<bool>,
    waiters: RefCell<WaitList>,
}

impl Event {
    /// A flag, not set.
    pub fn new() -> Event {
        Event::default()
    }

    /// True while the flag is set.
    pub fn is_set(&self) -> bool {
        self.state.set.get()
    }

    /// Set the flag and wake every waiter (if it was not set already).
    pub fn set(&self) {
        if self.state.set.replace(true) {
            return;
        }
        let wakers = self.state.waiters.borrow_mut().notify_all();
        wake_all(wakers);
    }

    /// Reset the flag: later waits wait for the next [`set`](Event::set).
    pub fn clear(&self) {
        self.state.set.set(false);
    }

    /// Wait until the flag is set (return at once if it is).
    pub fn wait(&self) -> EventWait<'_> {
        EventWait {
            event: self,
            waiter: None,
        }
    }
}

impl fmt::Debug for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Event")
            .field("set", &self.is_set())
            .field("waiters", &self.state.waiters.borrow().len())
            .finish()
    }
}

/// The future of [`Event::wait`].
#[must_use = "an event is waited for only when the future is awaited"]
pub struct EventWait<'a> {
    event: &'a Event,
    waiter: Option<WaiterId>,
}

impl StdFuture for EventWait<'_> {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let state = &self.event.state;
        let Some(id) = self.waiter else {
            if state.set.get() {
                return Poll::Ready(());
            }
            self.waiter = Some(state.waiters.borrow_mut().push(cx.waker()));
            return Poll::Pending;
        };
        let mut waiters = state.waiters.borrow_mut();
        if waiters.take_turn(id, cx.waker()) {
            drop(waiters);
            self.waiter = None;
            return Poll::Ready(());
        }
        Poll::Pending
    }
}

impl Drop for EventWait<'_> {
    fn drop(&mut self) {
        if let Some(id) = self.waiter.take() {
            self.event.state.waiters.borrow_mut().remove(id);
        }
    }
}
