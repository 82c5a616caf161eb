//! asyncio's `Semaphore` and `BoundedSemaphore`: a counter of free units that coroutines wait
//! on, handed over in arrival order.

use std::cell::{Cell, RefCell};
use std::fmt;
use std::future::Future as StdFuture;
use std::io;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use super::wait_list::{WaitList, WaiterId};

/// A counter of free units for coroutines: asyncio's `Semaphore`, e.g. a connection limit.
/// [`acquire`](Semaphore::acquire) waits for a unit and gives a [`SemaphorePermit`], which
/// gives the unit back when dropped; [`release`](Semaphore::release) adds one, as asyncio's
/// `release()` does (for a unit taken with [`SemaphorePermit::forget`]).
///
/// **Fair**: waiters get units in arrival order, and a newcomer waits behind them even if a
/// unit is free, also behind waiters that were handed a unit and have not run yet (as
/// asyncio's `locked()` counts them). A release hands its unit straight to the first waiter;
/// if that waiter's coroutine is cancelled before it runs, the unit passes to the next one.
///
/// A cheap handle (clones share one counter), for one thread (`!Send`).
///
/// ```
/// use tulip::{EventLoop, Semaphore};
///
/// let lp = EventLoop::new()?;
/// let connections = Semaphore::new(2);
/// lp.run_until_complete(async move {
///     let _a = connections.acquire().await;
///     let _b = connections.acquire().await;
///     assert!(connections.locked());          // a third would wait
/// })?;
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Clone)]
pub struct Semaphore {
    state: Rc<SemaphoreState>,
}

struct SemaphoreState {
    /// Free units. Positive while someone waits unhanded only when a waiter ahead of it was
    /// handed a unit and has not run yet: each waiter leaving the line hands the free units on
    /// (asyncio's `finally: while self._value > 0: self._wake_up_next()`).
    value: Cell<usize>,
    /// The initial value, for a bounded semaphore.
    bound: Option<usize>,
    waiters: RefCell<WaitList>,
}

impl Semaphore {
    /// A semaphore with `value` free units.
    pub fn new(value: usize) -> Semaphore {
        Semaphore::with_bound(value, None)
    }

    fn with_bound(value: usize, bound: Option<usize>) -> Semaphore {
        Semaphore {
            state: Rc::new(SemaphoreState {
                value: Cell::new(value),
                bound,
                waiters: RefCell::default(),
            }),
        }
    }

    /// True if an acquisition would wait: no unit is free, or others are in line already
    /// (waiting, or handed a unit they have not taken yet).
    pub fn locked(&self) -> bool {
        self.state.value.get() == 0 || self.state.waiters.borrow().len() > 0
    }

    /// Wait for a unit; the permit gives it back when dropped. Dropping the returned future
    /// gives up the place in line (and passes the unit on if it had just been handed to it).
    pub fn acquire(&self) -> SemaphoreAcquire<'_> {
        SemaphoreAcquire {
            semaphore: self,
            waiter: None,
        }
    }

    /// A unit, if one is free now and nobody waits; never waits.
    pub fn try_acquire(&self) -> Option<SemaphorePermit> {
        if self.locked() {
            return None;
        }
        self.state.value.set(self.state.value.get() - 1);
        Some(self.permit())
    }

    /// Add a unit: it goes to the first waiter, if any.
    pub fn release(&self) {
        self.give_back();
    }

    fn permit(&self) -> SemaphorePermit {
        SemaphorePermit {
            semaphore: Some(self.clone()),
        }
    }

    /// A unit comes back: count it free, then hand free units to the waiters.
    fn give_back(&self) {
        self.state.value.set(self.state.value.get() + 1);
        self.hand_on();
    }

    /// Hand free units to the first waiters not handed one yet, while both last. Called
    /// whenever a unit comes back or a waiter leaves the line, since a newcomer may have
    /// joined the line behind waiters handed a unit while another unit was free.
    fn hand_on(&self) {
        while self.state.value.get() > 0 {
            let next = self.state.waiters.borrow_mut().notify_one();
            let Some(waker) = next else { break };
            self.state.value.set(self.state.value.get() - 1);
            waker.wake();
        }
    }
}

impl fmt::Debug for Semaphore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Semaphore")
            .field("value", &self.state.value.get())
            .field("waiters", &self.state.waiters.borrow().len())
            .finish()
    }
}

/// A [`Semaphore`] that refuses to be released past its initial value: asyncio's
/// `BoundedSemaphore`, which catches a release without a matching acquire.
///
/// ```
/// use tulip::{BoundedSemaphore, EventLoop};
///
/// let lp = EventLoop::new()?;
/// let sem = BoundedSemaphore::new(1);
/// lp.run_until_complete(async move {
///     sem.acquire().await.forget();
///     sem.release()?;                          // gives the unit back
///     assert!(sem.release().is_err());         // one too many
///     std::io::Result::Ok(())
/// })??;
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Clone)]
pub struct BoundedSemaphore {
    semaphore: Semaphore,
}

impl BoundedSemaphore {
    /// A semaphore with `value` free units, and at most `value`.
    pub fn new(value: usize) -> BoundedSemaphore {
        BoundedSemaphore {
            semaphore: Semaphore::with_bound(value, Some(value)),
        }
    }

    /// As [`Semaphore::locked`].
    pub fn locked(&self) -> bool {
        self.semaphore.locked()
    }

    /// As [`Semaphore::acquire`].
    pub fn acquire(&self) -> SemaphoreAcquire<'_> {
        self.semaphore.acquire()
    }

    /// As [`Semaphore::try_acquire`].
    pub fn try_acquire(&self) -> Option<SemaphorePermit> {
        self.semaphore.try_acquire()
    }

    /// Add a unit, as [`Semaphore::release`], unless every unit is free already.
    ///
    /// # Errors
    /// `InvalidInput` ("BoundedSemaphore released too many times", asyncio's `ValueError`)
    /// if the semaphore is at its initial value.
    pub fn release(&self) -> io::Result<()> {
        let state = &self.semaphore.state;
        if state.bound.is_some_and(|bound| state.value.get() >= bound) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "BoundedSemaphore released too many times",
            ));
        }
        self.semaphore.give_back();
        Ok(())
    }
}

impl fmt::Debug for BoundedSemaphore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("BoundedSemaphore")
            .field(&self.semaphore)
            .finish()
    }
}

/// The future of [`Semaphore::acquire`] and [`BoundedSemaphore::acquire`].
#[must_use = "a unit is acquired only when the future is awaited"]
pub struct SemaphoreAcquire<'a> {
    semaphore: &'a Semaphore,
    waiter: Option<WaiterId>,
}

impl StdFuture for SemaphoreAcquire<'_> {
    type Output = SemaphorePermit;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<SemaphorePermit> {
        let Some(id) = self.waiter else {
            if let Some(permit) = self.semaphore.try_acquire() {
                return Poll::Ready(permit);
            }
            let id = self.semaphore.state.waiters.borrow_mut().push(cx.waker());
            self.waiter = Some(id);
            return Poll::Pending;
        };
        let mut waiters = self.semaphore.state.waiters.borrow_mut();
        if waiters.take_turn(id, cx.waker()) {
            // A unit was handed to us; units freed meanwhile go to those behind us.
            drop(waiters);
            self.waiter = None;
            self.semaphore.hand_on();
            return Poll::Ready(self.semaphore.permit());
        }
        Poll::Pending
    }
}

/// A cancelled acquisition leaves the line; a unit already handed to it goes to the next
/// waiter (or back to the counter).
impl Drop for SemaphoreAcquire<'_> {
    fn drop(&mut self) {
        if let Some(id) = self.waiter.take() {
            let handed = self.semaphore.state.waiters.borrow_mut().remove(id);
            if handed == Some(true) {
                self.semaphore.give_back();
            } else {
                self.semaphore.hand_on();
            }
        }
    }
}

/// One unit of a [`Semaphore`], given back when dropped.
#[must_use = "dropping the permit gives its unit back at once"]
pub struct SemaphorePermit {
    /// `None` once forgotten.
    semaphore: Option<Semaphore>,
}

impl SemaphorePermit {
    /// Keep the unit taken: it comes back only with an explicit `release()`, as after
    /// asyncio's `acquire()`.
    pub fn forget(mut self) {
        self.semaphore = None;
    }
}

impl Drop for SemaphorePermit {
    fn drop(&mut self) {
        if let Some(semaphore) = self.semaphore.take() {
            semaphore.give_back();
        }
    }
}

impl fmt::Debug for SemaphorePermit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SemaphorePermit").finish_non_exhaustive()
    }
}
