//! asyncio's `Barrier` (3.11): a meeting point for a fixed number of coroutines.

use std::cell::{Cell, RefCell};
use std::fmt;
use std::future::Future as StdFuture;
use std::io;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use super::wait_list::{wake_all, WaitList, WaiterId};

/// A meeting point for `parties` coroutines: asyncio's `Barrier`. Each [`wait`](Barrier::wait)
/// blocks until `parties` coroutines wait, then all of them return together, each with its
/// arrival index (`0..parties`), and the barrier can be used again. Coroutines that arrive while
/// the previous round is still leaving wait for the next round.
///
/// [`abort`](Barrier::abort) breaks the barrier: every waiter, and every later `wait`, fails
/// with [`BrokenBarrierError`]. [`reset`](Barrier::reset) fails the current waiters but leaves
/// the barrier usable. A waiter cancelled while it waits leaves the barrier (the others keep
/// waiting for a full round), as in asyncio, where cancellation does not break it.
///
/// Where Rust differs: asyncio's `reset()` and `abort()` are coroutines (they take the
/// barrier's internal lock); here they take effect at once, as nothing else runs meanwhile.
///
/// A cheap handle (clones share one barrier), for one thread (`!Send`).
///
/// ```
/// use tulip::{Barrier, EventLoop};
///
/// let lp = EventLoop::new()?;
/// let barrier = Barrier::new(2)?;
/// let other = barrier.clone();
/// let first = lp.create_task(async move { other.wait().await });
/// let second = lp.run_until_complete(async move { barrier.wait().await })??;
/// assert_eq!((lp.run_until_complete(first)???, second), (0, 1));
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Clone)]
pub struct Barrier {
    state: Rc<BarrierState>,
}

struct BarrierState {
    parties: usize,
    phase: Cell<Phase>,
    /// Coroutines in the barrier: waiting in the filling round, or leaving a released one.
    count: Cell<usize>,
    /// Everyone waiting for the phase to change; each change wakes them all to look.
    waiters: RefCell<WaitList>,
}

/// asyncio's `_BarrierState`.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
enum Phase {
    /// Coroutines arrive and wait for the round to be full.
    Filling,
    /// The round is full: its coroutines leave; newcomers wait until they all have.
    Draining,
    /// Reset: the waiting coroutines leave with an error; newcomers wait until they all have.
    Resetting,
    /// Aborted: every wait fails until a reset.
    Broken,
}

impl Barrier {
    /// A barrier for `parties` coroutines.
    ///
    /// # Errors
    /// `InvalidInput` if `parties` is 0 (asyncio's `ValueError`).
    pub fn new(parties: usize) -> io::Result<Barrier> {
        if parties == 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "parties must be >= 1",
            ));
        }
        Ok(Barrier {
            state: Rc::new(BarrierState {
                parties,
                phase: Cell::new(Phase::Filling),
                count: Cell::new(0),
                waiters: RefCell::default(),
            }),
        })
    }

    /// How many coroutines make a round.
    pub fn parties(&self) -> usize {
        self.state.parties
    }

    /// How many coroutines wait for the current round to fill.
    pub fn n_waiting(&self) -> usize {
        match self.state.phase.get() {
            Phase::Filling => self.state.count.get(),
            _ => 0,
        }
    }

    /// True once [`abort`](Barrier::abort)ed (until a [`reset`](Barrier::reset)).
    pub fn broken(&self) -> bool {
        self.state.phase.get() == Phase::Broken
    }

    /// Wait until `parties` coroutines wait, and return this one's arrival index in its round.
    ///
    /// # Errors
    /// [`BrokenBarrierError`] if the barrier is broken, or is aborted or reset while this waits.
    pub async fn wait(&self) -> Result<usize, BrokenBarrierError> {
        // Wait while the previous round leaves.
        self.phase_change(|p| !matches!(p, Phase::Draining | Phase::Resetting))
            .await;
        if self.state.phase.get() == Phase::Broken {
            return Err(BrokenBarrierError);
        }
        let index = self.state.count.get();
        self.state.count.set(index + 1);
        // Leaves the barrier however this ends: returned, failed or cancelled.
        let _seat = Seat(self);
        if index + 1 == self.state.parties {
            self.set_phase(Phase::Draining);
            return Ok(index);
        }
        self.phase_change(|p| p != Phase::Filling).await;
        match self.state.phase.get() {
            Phase::Broken | Phase::Resetting => Err(BrokenBarrierError),
            Phase::Filling | Phase::Draining => Ok(index),
        }
    }

    /// Fail the coroutines waiting now, and make the barrier usable again (also a broken one).
    pub fn reset(&self) {
        if self.state.count.get() > 0 {
            self.set_phase(Phase::Resetting);
        } else {
            self.set_phase(Phase::Filling);
        }
    }

    /// Break the barrier: every waiter and every later [`wait`](Barrier::wait) fails with
    /// [`BrokenBarrierError`], until a [`reset`](Barrier::reset).
    pub fn abort(&self) {
        self.set_phase(Phase::Broken);
    }

    /// Change the phase and wake every waiter to look at it.
    fn set_phase(&self, phase: Phase) {
        self.state.phase.set(phase);
        let wakers = self.state.waiters.borrow_mut().notify_all();
        wake_all(wakers);
    }

    /// Wait until the phase satisfies `done`.
    fn phase_change(&self, done: fn(Phase) -> bool) -> PhaseChange<'_> {
        PhaseChange {
            barrier: self,
            done,
            waiter: None,
        }
    }
}

impl fmt::Debug for Barrier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Barrier")
            .field("parties", &self.state.parties)
            .field("phase", &self.state.phase.get())
            .field("count", &self.state.count.get())
            .finish()
    }
}

/// A coroutine's place in the barrier: leaving it (asyncio's `finally: count -= 1; _exit()`)
/// lets the next round in once the last one of this round has left.
struct Seat<'a>(&'a Barrier);

impl Drop for Seat<'_> {
    fn drop(&mut self) {
        let state = &self.0.state;
        let count = state.count.get() - 1;
        state.count.set(count);
        if count == 0 {
            let phase = match state.phase.get() {
                Phase::Resetting | Phase::Draining => Phase::Filling,
                other => other,
            };
            self.0.set_phase(phase);
        }
    }
}

struct PhaseChange<'a> {
    barrier: &'a Barrier,
    done: fn(Phase) -> bool,
    waiter: Option<WaiterId>,
}

impl StdFuture for PhaseChange<'_> {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let state = &self.barrier.state;
        if (self.done)(state.phase.get()) {
            if let Some(id) = self.waiter.take() {
                state.waiters.borrow_mut().remove(id);
            }
            return Poll::Ready(());
        }
        let mut waiters = state.waiters.borrow_mut();
        match self.waiter {
            Some(id) => waiters.rearm(id, cx.waker()),
            None => {
                let id = waiters.push(cx.waker());
                drop(waiters);
                self.waiter = Some(id);
            }
        }
        Poll::Pending
    }
}

impl Drop for PhaseChange<'_> {
    fn drop(&mut self) {
        if let Some(id) = self.waiter.take() {
            self.barrier.state.waiters.borrow_mut().remove(id);
        }
    }
}

/// A [`Barrier`] was broken (aborted) or reset while waiting: asyncio's `BrokenBarrierError`.
/// Converts into an [`io::Error`] of kind `Other` that [`BrokenBarrierError::of`] recognises.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub struct BrokenBarrierError;

impl BrokenBarrierError {
    /// Whether `err` carries a `BrokenBarrierError`.
    pub fn of(err: &io::Error) -> bool {
        err.get_ref()
            .is_some_and(|e| e.downcast_ref::<BrokenBarrierError>().is_some())
    }
}

impl fmt::Display for BrokenBarrierError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the barrier was aborted or reset")
    }
}

impl std::error::Error for BrokenBarrierError {}

impl From<BrokenBarrierError> for io::Error {
    fn from(err: BrokenBarrierError) -> io::Error {
        io::Error::other(err)
    }
}
