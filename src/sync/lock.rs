//! asyncio's `Lock`: mutual exclusion between coroutines of one loop, handed over in arrival
//! order.

use std::cell::{Cell, RefCell};
use std::fmt;
use std::future::Future as StdFuture;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use super::wait_list::{WaitList, WaiterId};

/// A lock for coroutines: asyncio's `Lock`. [`acquire`](Lock::acquire) waits until the lock is
/// free and gives a [`LockGuard`]; dropping the guard releases it (so does an early return or a
/// cancelled coroutine: the lock is never left held).
///
/// `Lock` is a cheap handle: clones share one lock. Like the loop it belongs to one thread
/// (`!Send`), as asyncio's locks are not thread-safe.
///
/// **Fair**: waiters acquire in arrival order. A release hands the lock straight to the first
/// waiter; if that waiter's coroutine is cancelled before it runs, the lock passes to the next
/// one, so no acquisition is lost. Where Rust differs: in asyncio `locked()` is false between
/// the release and the waiter's resumption (and nobody can take the lock meanwhile); here the
/// lock is the waiter's from the release on, so `locked()` stays true.
///
/// ```
/// use tulip::{EventLoop, Lock};
///
/// let lp = EventLoop::new()?;
/// let lock = Lock::new();
/// lp.run_until_complete(async move {
///     let guard = lock.acquire().await;
///     assert!(lock.locked());
///     drop(guard);
///     assert!(!lock.locked());
/// })?;
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Clone, Default)]
pub struct Lock {
    state: Rc<LockState>,
}

#[derive(Default)]
struct LockState {
    locked: Cell<bool>,
    waiters: RefCell<WaitList>,
}

impl Lock {
    /// A lock, not held.
    pub fn new() -> Lock {
        Lock::default()
    }

    /// True while someone holds the lock (or it was handed to a waiter that has not run yet).
    pub fn locked(&self) -> bool {
        self.state.locked.get()
    }

    /// Wait until the lock is ours; the guard releases it when dropped. Dropping the returned
    /// future gives up the place in line (and passes the lock on if it had just been handed
    /// to it).
    pub fn acquire(&self) -> Acquire<'_> {
        Acquire {
            lock: self,
            waiter: None,
        }
    }

    /// The lock, if it is free now and nobody waits for it; never waits.
    pub fn try_acquire(&self) -> Option<LockGuard> {
        if self.state.locked.get() {
            return None;
        }
        self.state.locked.set(true);
        Some(self.guard())
    }

    fn guard(&self) -> LockGuard {
        LockGuard { lock: self.clone() }
    }

    /// Whether `self` and `other` are the same lock.
    pub(crate) fn is(&self, other: &Lock) -> bool {
        Rc::ptr_eq(&self.state, &other.state)
    }

    /// Hand the lock to the first waiter, or free it if nobody waits.
    fn release(&self) {
        let next = self.state.waiters.borrow_mut().notify_one();
        match next {
            Some(waker) => waker.wake(),
            None => self.state.locked.set(false),
        }
    }
}

impl fmt::Debug for Lock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Lock")
            .field("locked", &self.locked())
            .field("waiters", &self.state.waiters.borrow().len())
            .finish()
    }
}

/// The future of [`Lock::acquire`].
#[must_use = "a lock is acquired only when the future is awaited"]
pub struct Acquire<'a> {
    lock: &'a Lock,
    /// Our place in line, once we wait.
    waiter: Option<WaiterId>,
}

impl StdFuture for Acquire<'_> {
    type Output = LockGuard;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<LockGuard> {
        let state = &self.lock.state;
        let Some(id) = self.waiter else {
            if !state.locked.get() {
                state.locked.set(true);
                return Poll::Ready(self.lock.guard());
            }
            self.waiter = Some(state.waiters.borrow_mut().push(cx.waker()));
            return Poll::Pending;
        };
        let mut waiters = state.waiters.borrow_mut();
        if waiters.take_turn(id, cx.waker()) {
            // Handed to us by a release: `locked` stayed true.
            drop(waiters);
            self.waiter = None;
            return Poll::Ready(self.lock.guard());
        }
        Poll::Pending
    }
}

/// A cancelled acquisition leaves the line; if the lock had already been handed to it, it
/// passes the lock on to the next waiter (or frees it).
impl Drop for Acquire<'_> {
    fn drop(&mut self) {
        if let Some(id) = self.waiter.take() {
            let handed = self.lock.state.waiters.borrow_mut().remove(id);
            if handed == Some(true) {
                self.lock.release();
            }
        }
    }
}

/// The proof that a [`Lock`] is held; dropping it releases the lock (handing it to the first
/// waiter, if any).
#[must_use = "dropping the guard releases the lock at once"]
pub struct LockGuard {
    lock: Lock,
}

impl LockGuard {
    /// The lock this guard holds.
    pub fn lock(&self) -> &Lock {
        &self.lock
    }

    /// Release the lock now: asyncio's `release()`, the same as dropping the guard.
    pub fn release(self) {
        drop(self);
    }
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        self.lock.release();
    }
}

impl fmt::Debug for LockGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LockGuard").finish_non_exhaustive()
    }
}
