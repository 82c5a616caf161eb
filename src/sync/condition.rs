//! asyncio's `Condition`: wait for a notification while holding a lock.

use std::cell::RefCell;
use std::fmt;
use std::future::Future as StdFuture;
use std::io;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use super::lock::{Acquire, Lock, LockGuard};
use super::wait_list::{wake_all, WaitList, WaiterId};

/// A condition variable for coroutines: asyncio's `Condition`, over a [`Lock`].
///
/// [`wait`](Condition::wait) takes the guard of the condition's lock, releases the lock, waits
/// for a [`notify`](Condition::notify), re-acquires the lock and gives the guard back;
/// [`wait_for`](Condition::wait_for) does so until a predicate holds. Notifying requires the
/// lock to be held, as in asyncio. Waiters are notified in arrival order; one that is notified
/// and then cancelled (while it waits, or while it re-acquires the lock) passes its
/// notification to the next waiter, so none is lost.
///
/// Where Rust differs: asyncio re-acquires the lock before a cancelled `wait` raises. Here a
/// cancelled wait is a dropped future, which cannot wait for anything, so the lock is not
/// re-acquired; the coroutine that held the guard is gone anyway (or, after a timed-out
/// [`wait_for`](crate::wait_for), it got an error and no guard), so the lock cannot be used
/// by mistake without being held.
///
/// A cheap handle (clones share one condition), for one thread (`!Send`).
///
/// ```
/// use tulip::{Condition, EventLoop};
/// use std::cell::Cell;
/// use std::rc::Rc;
///
/// let lp = EventLoop::new()?;
/// let ready = Rc::new(Cell::new(false));
/// let cond = Condition::new();
/// let (c, r) = (cond.clone(), ready.clone());
/// let waiter = lp.create_task(async move {
///     let guard = c.acquire().await;
///     let _guard = c.wait_for(guard, || r.get()).await?;
///     std::io::Result::Ok("ready")
/// });
/// lp.run_until_complete(async move {
///     let _guard = cond.acquire().await;
///     ready.set(true);
///     cond.notify_all()
/// })??;
/// assert_eq!(lp.run_until_complete(waiter)???, "ready");
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Clone, Default)]
pub struct Condition {
    lock: Lock,
    waiters: Rc<RefCell<WaitList>>,
}

impl Condition {
    /// A condition over a lock of its own.
    pub fn new() -> Condition {
        Condition::default()
    }

    /// A condition over `lock` (shared with its other users).
    pub fn with_lock(lock: Lock) -> Condition {
        Condition {
            lock,
            waiters: Rc::default(),
        }
    }

    /// The condition's lock.
    pub fn lock(&self) -> &Lock {
        &self.lock
    }

    /// Acquire the condition's lock (see [`Lock::acquire`]).
    pub fn acquire(&self) -> Acquire<'_> {
        self.lock.acquire()
    }

    /// Whether the condition's lock is held.
    pub fn locked(&self) -> bool {
        self.lock.locked()
    }

    /// Release the lock `guard` holds, wait to be notified, then re-acquire the lock: the
    /// guard that holds it again.
    ///
    /// # Errors
    /// `InvalidInput` if `guard` holds another lock than the condition's (asyncio's
    /// `RuntimeError`); that guard is dropped, so its lock is released.
    pub async fn wait(&self, guard: LockGuard) -> io::Result<LockGuard> {
        self.check(&guard)?;
        let notified = Notified {
            waiters: &self.waiters,
            waiter: None,
        };
        // Nothing runs between the release and the first poll of `notified`, which joins the
        // line: no notification can fall in between.
        drop(guard);
        notified.await;
        // Cancelled while it re-acquires the lock, this waiter cannot act on its notification:
        // it passes one on (asyncio 3.13's `_notify(1)` on the way out), so none is lost.
        let pass_on = PassOn(&self.waiters);
        let guard = self.lock.acquire().await;
        std::mem::forget(pass_on);
        Ok(guard)
    }

    /// Wait (as [`wait`](Condition::wait)) until `predicate` is true; it is evaluated with
    /// the lock held, first before any wait.
    ///
    /// # Errors
    /// As [`wait`](Condition::wait).
    pub async fn wait_for(
        &self,
        guard: LockGuard,
        mut predicate: impl FnMut() -> bool,
    ) -> io::Result<LockGuard> {
        self.check(&guard)?;
        let mut guard = guard;
        while !predicate() {
            guard = self.wait(guard).await?;
        }
        Ok(guard)
    }

    /// Wake up to `n` waiters, in arrival order.
    ///
    /// # Errors
    /// `InvalidInput` if the lock is not held (asyncio's `RuntimeError`).
    pub fn notify(&self, n: usize) -> io::Result<()> {
        if !self.lock.locked() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "cannot notify on un-acquired lock",
            ));
        }
        let wakers = self.waiters.borrow_mut().notify(n);
        wake_all(wakers);
        Ok(())
    }

    /// Wake every waiter.
    ///
    /// # Errors
    /// As [`notify`](Condition::notify).
    pub fn notify_all(&self) -> io::Result<()> {
        self.notify(usize::MAX)
    }

    fn check(&self, guard: &LockGuard) -> io::Result<()> {
        if guard.lock().is(&self.lock) {
            return Ok(());
        }
        Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "the guard holds another lock than the condition's",
        ))
    }
}

impl fmt::Debug for Condition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Condition")
            .field("locked", &self.locked())
            .field("waiters", &self.waiters.borrow().len())
            .finish()
    }
}

/// Notifies the first waiter not yet notified when dropped: armed while a notified waiter
/// re-acquires the lock, and forgotten once it has.
struct PassOn<'a>(&'a RefCell<WaitList>);

impl Drop for PassOn<'_> {
    fn drop(&mut self) {
        let next = self.0.borrow_mut().notify_one();
        if let Some(waker) = next {
            waker.wake();
        }
    }
}

/// Waiting in a condition's line until notified.
struct Notified<'a> {
    waiters: &'a RefCell<WaitList>,
    waiter: Option<WaiterId>,
}

impl StdFuture for Notified<'_> {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let mut waiters = self.waiters.borrow_mut();
        let Some(id) = self.waiter else {
            let id = waiters.push(cx.waker());
            drop(waiters);
            self.waiter = Some(id);
            return Poll::Pending;
        };
        if waiters.take_turn(id, cx.waker()) {
            drop(waiters);
            self.waiter = None;
            return Poll::Ready(());
        }
        Poll::Pending
    }
}

/// A waiter notified and then cancelled passes the notification on (asyncio 3.13 does the
/// same, so that a `notify(1)` is never lost).
impl Drop for Notified<'_> {
    fn drop(&mut self) {
        let Some(id) = self.waiter.take() else {
            return;
        };
        let next = {
            let mut waiters = self.waiters.borrow_mut();
            match waiters.remove(id) {
                Some(true) => waiters.notify_one(),
                _ => None,
            }
        };
        if let Some(waker) = next {
            waker.wake();
        }
    }
}
