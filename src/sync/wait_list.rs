//! The line of coroutines waiting on one primitive, in arrival order: what asyncio's locks and
//! queues keep as a `deque` of futures, kept here as wakers with a "notified" mark.
//!
//! A waiter stays in the line from its first `Pending` until its future is polled after being
//! notified, or dropped. A waiter notified and then dropped (its coroutine cancelled before it
//! ran) is told so by [`WaitList::remove`], so that its primitive can pass the wake-up on:
//! that is how no acquisition, item or notification is ever lost to a cancellation.
//!
//! Notifying hands back the wakers instead of waking them, so that the primitive wakes them once
//! its own state is consistent and no borrow of it is held (a waker may be anyone's).

use std::collections::VecDeque;
use std::task::Waker;

/// Names one waiter of a [`WaitList`]. Ids grow with arrival, so the line is sorted by id.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct WaiterId(u64);

struct Waiter {
    id: WaiterId,
    /// `None` once notified: the waker was handed out.
    waker: Option<Waker>,
    notified: bool,
}

/// Waiters in arrival order.
#[derive(Default)]
pub(crate) struct WaitList {
    waiters: VecDeque<Waiter>,
    next_id: u64,
    /// How many waiters are not notified.
    waiting: usize,
}

impl WaitList {
    /// Join the end of the line.
    pub(crate) fn push(&mut self, waker: &Waker) -> WaiterId {
        let id = WaiterId(self.next_id);
        self.next_id += 1;
        self.waiters.push_back(Waiter {
            id,
            waker: Some(waker.clone()),
            notified: false,
        });
        self.waiting += 1;
        id
    }

    fn find(&mut self, id: WaiterId) -> Option<&mut Waiter> {
        let at = self.waiters.binary_search_by_key(&id, |w| w.id).ok()?;
        self.waiters.get_mut(at)
    }

    /// Whether `id` was notified (false for a waiter that is not in the line).
    pub(crate) fn is_notified(&mut self, id: WaiterId) -> bool {
        self.find(id).is_some_and(|w| w.notified)
    }

    /// The waiter `id`, polled again: once notified, it leaves the line and this is true (its
    /// turn has come); until then its waker is kept up to date and this is false.
    pub(crate) fn take_turn(&mut self, id: WaiterId, waker: &Waker) -> bool {
        if self.is_notified(id) {
            self.remove(id);
            return true;
        }
        self.update(id, waker);
        false
    }

    /// `id` was polled again and still waits: wake `waker` when it is notified (the newest
    /// waker counts, as for any future).
    pub(crate) fn update(&mut self, id: WaiterId, waker: &Waker) {
        if let Some(w) = self.find(id) {
            if !w.waker.as_ref().is_some_and(|old| old.will_wake(waker)) {
                w.waker = Some(waker.clone());
            }
        }
    }

    /// `id` was notified but what it waits for does not hold: it waits again, in its place.
    pub(crate) fn rearm(&mut self, id: WaiterId, waker: &Waker) {
        let mut rearmed = false;
        if let Some(w) = self.find(id) {
            rearmed = w.notified;
            w.notified = false;
            w.waker = Some(waker.clone());
        }
        if rearmed {
            self.waiting += 1;
        }
    }

    /// Leave the line: `Some(true)` if `id` had been notified (and so must pass the wake-up on
    /// if it will not use it), `Some(false)` if not, `None` if it was not in the line.
    pub(crate) fn remove(&mut self, id: WaiterId) -> Option<bool> {
        let at = self.waiters.binary_search_by_key(&id, |w| w.id).ok()?;
        let waiter = self.waiters.remove(at)?;
        if !waiter.notified {
            self.waiting -= 1;
        }
        Some(waiter.notified)
    }

    /// Notify the first waiter not notified yet; its waker, for the caller to wake, or `None`
    /// if nobody waits.
    #[inline]
    pub(crate) fn notify_one(&mut self) -> Option<Waker> {
        if self.waiting == 0 {
            return None;
        }
        self.notify_first()
    }

    fn notify_first(&mut self) -> Option<Waker> {
        let waiter = self.waiters.iter_mut().find(|w| !w.notified)?;
        waiter.notified = true;
        self.waiting -= 1;
        waiter.waker.take()
    }

    /// Notify up to `n` waiters in arrival order; their wakers.
    pub(crate) fn notify(&mut self, n: usize) -> Vec<Waker> {
        let mut wakers = Vec::new();
        for waiter in self.waiters.iter_mut().filter(|w| !w.notified).take(n) {
            waiter.notified = true;
            wakers.extend(waiter.waker.take());
        }
        self.waiting -= wakers.len();
        wakers
    }

    /// Notify every waiter; their wakers.
    pub(crate) fn notify_all(&mut self) -> Vec<Waker> {
        self.notify(usize::MAX)
    }

    /// Whether anyone waits without having been notified.
    #[cfg(test)]
    pub(crate) fn has_waiting(&self) -> bool {
        self.waiting > 0
    }

    /// How many waiters are in the line, notified or not.
    pub(crate) fn len(&self) -> usize {
        self.waiters.len()
    }
}

/// Wake every waker of `wakers` (handed out by a notify, outside the primitive's borrows).
pub(crate) fn wake_all(wakers: Vec<Waker>) {
    for waker in wakers {
        waker.wake();
    }
}

#[cfg(test)]
mod tests {
    //! The line alone, with counting wakers: no loop, so these also run under Miri.

    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::task::Wake;

    #[derive(Default)]
    struct Count(AtomicUsize);

    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn waker() -> (Arc<Count>, Waker) {
        let count = Arc::new(Count::default());
        (count.clone(), Waker::from(count))
    }

    #[test]
    fn notify_one_goes_to_the_first_waiter_not_yet_notified() {
        let mut line = WaitList::default();
        let (a_count, a) = waker();
        let (b_count, b) = waker();
        let first = line.push(&a);
        let second = line.push(&b);
        line.notify_one().unwrap().wake();
        line.notify_one().unwrap().wake();
        assert!(line.notify_one().is_none());
        assert!(line.is_notified(first) && line.is_notified(second));
        assert_eq!(a_count.0.load(Ordering::SeqCst), 1);
        assert_eq!(b_count.0.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn a_removed_waiter_says_whether_it_had_been_notified() {
        let mut line = WaitList::default();
        let (_, w) = waker();
        let first = line.push(&w);
        let second = line.push(&w);
        assert!(line.notify_one().is_some());
        assert_eq!(line.remove(second), Some(false));
        assert_eq!(line.remove(first), Some(true));
        assert_eq!(line.remove(first), None);
        assert!(!line.has_waiting() && line.len() == 0);
    }

    #[test]
    fn a_rearmed_waiter_keeps_its_place_and_can_be_notified_again() {
        let mut line = WaitList::default();
        let (_, w) = waker();
        let first = line.push(&w);
        let second = line.push(&w);
        assert_eq!(line.notify_all().len(), 2);
        line.rearm(first, &w);
        assert!(line.has_waiting());
        assert!(line.notify_one().is_some());
        assert!(line.is_notified(first));
        assert_eq!(line.remove(second), Some(true));
    }

    #[test]
    fn notify_n_wakes_at_most_n_in_arrival_order() {
        let mut line = WaitList::default();
        let (_, w) = waker();
        let ids: Vec<WaiterId> = (0..5).map(|_| line.push(&w)).collect();
        assert_eq!(line.notify(2).len(), 2);
        let notified: Vec<bool> = ids.iter().map(|&id| line.is_notified(id)).collect();
        assert_eq!(notified, [true, true, false, false, false]);
        assert_eq!(line.notify(10).len(), 3);
    }
}
