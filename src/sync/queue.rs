//! asyncio's queues: [`Queue`] (first in, first out), [`LifoQueue`] and [`PriorityQueue`], with
//! an optional bound, `task_done` / `join`, and `shutdown` (asyncio 3.13).

use std::cell::RefCell;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::fmt;
use std::future::Future as StdFuture;
use std::io;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use super::event::Event;
use super::queue_error::{PutError, QueueError};
use super::wait_list::{wake_all, WaitList, WaiterId};

/// A queue between coroutines: asyncio's `Queue`. With a `maxsize` above 0,
/// [`put`](Queue::put) waits while the queue holds `maxsize` items; `maxsize` 0 is unbounded.
/// [`get`](Queue::get) waits while it is empty. [`put_nowait`](Queue::put_nowait) and
/// [`get_nowait`](Queue::get_nowait) never wait: they fail with [`QueueError::Full`] and
/// [`QueueError::Empty`].
///
/// The order items come out in is `O`'s: [`Fifo`] (this type's default), [`Lifo`]
/// ([`LifoQueue`]) or [`Priority`] ([`PriorityQueue`], smallest first).
///
/// **Cancellation loses nothing**: a `get` is woken for an item but takes it only when it runs,
/// so a `get` cancelled after its wake-up leaves the item in the queue and wakes the next
/// getter; a cancelled `put` has inserted nothing (the item is dropped with it), and one
/// woken for a free slot passes the slot on. As in asyncio, a woken waiter that finds its item
/// (or slot) taken by a `*_nowait` call meanwhile waits again, at the end of the line.
///
/// **Shutdown** ([`shutdown`](Queue::shutdown), asyncio 3.13): every `put` then fails with
/// [`QueueError::ShutDown`], waiting ones included; `get` drains what is left and then fails
/// too. An immediate shutdown empties the queue first (counting each item as done for
/// [`join`](Queue::join), which then returns).
///
/// A cheap handle (clones share one queue), for one thread (`!Send`). As in asyncio a `get` of
/// an available item does not suspend, so a consumer of a queue that is never empty never lets
/// the loop run other work: await something else now and then.
///
/// ```
/// use tulip::{EventLoop, Queue};
///
/// let lp = EventLoop::new()?;
/// let queue = Queue::new(2);                     // a bounded queue
/// let producer = queue.clone();
/// lp.create_task(async move {
///     for n in 1..=5 {
///         producer.put(n).await?;                // waits while 2 are queued
///     }
///     producer.shutdown(false);                  // no more items: getters end
///     std::io::Result::Ok(())
/// });
/// let sum = lp.run_until_complete(async move {
///     let mut sum = 0;
///     while let Ok(n) = queue.get().await {
///         sum += n;
///     }
///     sum
/// })?;
/// assert_eq!(sum, 15);
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct Queue<T, O: Order<T> = Fifo> {
    state: Rc<QueueState<T, O>>,
}

/// A queue whose most recent item comes out first: asyncio's `LifoQueue`.
pub type LifoQueue<T> = Queue<T, Lifo>;

/// A queue whose smallest item comes out first: asyncio's `PriorityQueue` (entries are often
/// `(priority, data)` tuples).
pub type PriorityQueue<T> = Queue<T, Priority>;

struct QueueState<T, O: Order<T>> {
    maxsize: usize,
    /// Everything that changes, under one borrow: a put or a get checks it once.
    inner: RefCell<QueueInner<T, O>>,
    /// Set while no item put is unprocessed (or after an immediate shutdown): what `join`
    /// waits for.
    finished: Event,
}

struct QueueInner<T, O: Order<T>> {
    items: O::Items,
    getters: WaitList,
    putters: WaitList,
    /// Items put and not yet marked done with `task_done`.
    unfinished: usize,
    shut_down: bool,
}

impl<T, O: Order<T>> QueueInner<T, O> {
    #[inline]
    fn len(&self) -> usize {
        O::len(&self.items)
    }

    #[inline]
    fn is_full(&self, maxsize: usize) -> bool {
        maxsize > 0 && self.len() >= maxsize
    }
}

/// The order a [`Queue`] gives its items back in: [`Fifo`], [`Lifo`] or [`Priority`].
pub trait Order<T>: sealed::Sealed {
    /// Where the items are kept.
    #[doc(hidden)]
    type Items: Default;
    #[doc(hidden)]
    fn push(items: &mut Self::Items, item: T);
    #[doc(hidden)]
    fn pop(items: &mut Self::Items) -> Option<T>;
    #[doc(hidden)]
    fn len(items: &Self::Items) -> usize;
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for super::Fifo {}
    impl Sealed for super::Lifo {}
    impl Sealed for super::Priority {}
}

/// First in, first out: asyncio's `Queue`.
#[derive(Debug)]
pub enum Fifo {}

/// Last in, first out: asyncio's `LifoQueue`.
#[derive(Debug)]
pub enum Lifo {}

/// Smallest first (a binary heap, as asyncio's `heapq`): asyncio's `PriorityQueue`. Equal
/// items come out in no particular order.
#[derive(Debug)]
pub enum Priority {}

impl<T> Order<T> for Fifo {
    type Items = VecDeque<T>;
    fn push(items: &mut VecDeque<T>, item: T) {
        items.push_back(item);
    }
    fn pop(items: &mut VecDeque<T>) -> Option<T> {
        items.pop_front()
    }
    fn len(items: &VecDeque<T>) -> usize {
        items.len()
    }
}

impl<T> Order<T> for Lifo {
    type Items = Vec<T>;
    fn push(items: &mut Vec<T>, item: T) {
        items.push(item);
    }
    fn pop(items: &mut Vec<T>) -> Option<T> {
        items.pop()
    }
    fn len(items: &Vec<T>) -> usize {
        items.len()
    }
}

impl<T: Ord> Order<T> for Priority {
    type Items = BinaryHeap<Reverse<T>>;
    fn push(items: &mut BinaryHeap<Reverse<T>>, item: T) {
        items.push(Reverse(item));
    }
    fn pop(items: &mut BinaryHeap<Reverse<T>>) -> Option<T> {
        items.pop().map(|Reverse(item)| item)
    }
    fn len(items: &BinaryHeap<Reverse<T>>) -> usize {
        items.len()
    }
}

impl<T> Queue<T> {
    /// A first-in first-out queue of at most `maxsize` items (0: unbounded).
    pub fn new(maxsize: usize) -> Queue<T> {
        Queue::with_order(maxsize)
    }
}

impl<T> Queue<T, Lifo> {
    /// A last-in first-out queue of at most `maxsize` items (0: unbounded).
    pub fn lifo(maxsize: usize) -> LifoQueue<T> {
        Queue::with_order(maxsize)
    }
}

impl<T: Ord> Queue<T, Priority> {
    /// A smallest-first queue of at most `maxsize` items (0: unbounded).
    pub fn priority(maxsize: usize) -> PriorityQueue<T> {
        Queue::with_order(maxsize)
    }
}

impl<T, O: Order<T>> Queue<T, O> {
    /// A queue of at most `maxsize` items (0: unbounded) in `O`'s order.
    pub fn with_order(maxsize: usize) -> Queue<T, O> {
        let finished = Event::new();
        finished.set();
        Queue {
            state: Rc::new(QueueState {
                maxsize,
                inner: RefCell::new(QueueInner {
                    items: O::Items::default(),
                    getters: WaitList::default(),
                    putters: WaitList::default(),
                    unfinished: 0,
                    shut_down: false,
                }),
                finished,
            }),
        }
    }

    /// The bound given at creation (0: unbounded).
    pub fn maxsize(&self) -> usize {
        self.state.maxsize
    }

    /// How many items are in the queue.
    pub fn qsize(&self) -> usize {
        self.state.inner.borrow().len()
    }

    /// True if the queue holds no item.
    pub fn empty(&self) -> bool {
        self.qsize() == 0
    }

    /// True if the queue is bounded and holds `maxsize` items: a `put` would wait.
    pub fn full(&self) -> bool {
        self.state.inner.borrow().is_full(self.state.maxsize)
    }

    /// Put `item` in, waiting while the queue is full. Dropping the future before it is done
    /// puts nothing (and drops the item).
    ///
    /// The future's output is `Err` with [`QueueError::ShutDown`] (and the item) if the queue
    /// is shut down, before or while this waits.
    pub fn put(&self, item: T) -> Put<'_, T, O> {
        Put {
            queue: self,
            item: Some(item),
            waiter: None,
        }
    }

    /// Put `item` in if there is room now; never waits.
    ///
    /// # Errors
    /// [`QueueError::Full`] or [`QueueError::ShutDown`], with the item given back.
    #[inline]
    pub fn put_nowait(&self, item: T) -> Result<(), PutError<T>> {
        let getter = {
            let mut inner = self.state.inner.borrow_mut();
            if inner.shut_down {
                return Err(PutError::new(QueueError::ShutDown, item));
            }
            if inner.is_full(self.state.maxsize) {
                return Err(PutError::new(QueueError::Full, item));
            }
            O::push(&mut inner.items, item);
            inner.unfinished += 1;
            inner.getters.notify_one()
        };
        self.state.finished.clear();
        if let Some(waker) = getter {
            waker.wake();
        }
        Ok(())
    }

    /// Take an item out, waiting while the queue is empty. Dropping the future before it is
    /// done takes nothing.
    ///
    /// The future's output is `Err` with [`QueueError::ShutDown`] once the queue is shut down
    /// and empty.
    pub fn get(&self) -> Get<'_, T, O> {
        Get {
            queue: self,
            waiter: None,
        }
    }

    /// Take an item out if there is one now; never waits.
    ///
    /// # Errors
    /// [`QueueError::Empty`]; [`QueueError::ShutDown`] if the queue is empty and shut down.
    #[inline]
    pub fn get_nowait(&self) -> Result<T, QueueError> {
        let (item, putter) = {
            let mut inner = self.state.inner.borrow_mut();
            match O::pop(&mut inner.items) {
                Some(item) => (item, inner.putters.notify_one()),
                None if inner.shut_down => return Err(QueueError::ShutDown),
                None => return Err(QueueError::Empty),
            }
        };
        if let Some(waker) = putter {
            waker.wake();
        }
        Ok(item)
    }

    /// Mark an item taken out as processed, for [`join`](Queue::join): each `put` counts one
    /// item to process, each `task_done` one processed.
    ///
    /// # Errors
    /// `InvalidInput` ("task_done() called too many times", asyncio's `ValueError`) if no
    /// item is left to mark.
    pub fn task_done(&self) -> io::Result<()> {
        let unfinished = {
            let mut inner = self.state.inner.borrow_mut();
            if inner.unfinished == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "task_done() called too many times",
                ));
            }
            inner.unfinished -= 1;
            inner.unfinished
        };
        if unfinished == 0 {
            self.state.finished.set();
        }
        Ok(())
    }

    /// Wait until every item put has been marked processed with
    /// [`task_done`](Queue::task_done) (or dropped by an immediate shutdown).
    pub async fn join(&self) {
        if self.state.inner.borrow().unfinished > 0 {
            self.state.finished.wait().await;
        }
    }

    /// Shut the queue down (asyncio 3.13): every `put` fails from now on, waiting ones
    /// included, and `get` fails once the queue is empty (every waiting getter is woken to
    /// find out). With `immediate`, the items left are dropped now, each counted as processed,
    /// so [`join`](Queue::join) returns once nothing taken out is still unprocessed.
    pub fn shutdown(&self, immediate: bool) {
        let (dropped, finished, getters, putters) = {
            let mut inner = self.state.inner.borrow_mut();
            inner.shut_down = true;
            let dropped = immediate.then(|| std::mem::take(&mut inner.items));
            if let Some(dropped) = &dropped {
                inner.unfinished = inner.unfinished.saturating_sub(O::len(dropped));
            }
            let finished = immediate && inner.unfinished == 0;
            (
                dropped,
                finished,
                inner.getters.notify_all(),
                inner.putters.notify_all(),
            )
        };
        if finished {
            self.state.finished.set();
        }
        wake_all(getters);
        wake_all(putters);
        // The items' destructors run once the queue is consistent again.
        drop(dropped);
    }

    /// True once [`shutdown`](Queue::shutdown) was called.
    pub fn is_shut_down(&self) -> bool {
        self.state.inner.borrow().shut_down
    }
}

impl<T, O: Order<T>> Clone for Queue<T, O> {
    fn clone(&self) -> Self {
        Queue {
            state: Rc::clone(&self.state),
        }
    }
}

impl<T, O: Order<T>> fmt::Debug for Queue<T, O> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let inner = self.state.inner.borrow();
        f.debug_struct("Queue")
            .field("maxsize", &self.state.maxsize)
            .field("qsize", &inner.len())
            .field("getters", &inner.getters.len())
            .field("putters", &inner.putters.len())
            .field("unfinished", &inner.unfinished)
            .field("shut_down", &inner.shut_down)
            .finish()
    }
}

/// The future of [`Queue::put`].
#[must_use = "an item is put only when the future is awaited"]
pub struct Put<'a, T, O: Order<T>> {
    queue: &'a Queue<T, O>,
    /// `None` once put (or given back).
    item: Option<T>,
    waiter: Option<WaiterId>,
}

// The item is never pinned: it is moved into the queue.
impl<T, O: Order<T>> Unpin for Put<'_, T, O> {}

impl<T, O: Order<T>> StdFuture for Put<'_, T, O> {
    type Output = Result<(), PutError<T>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        if let Some(id) = this.waiter {
            let mut inner = this.queue.state.inner.borrow_mut();
            if !inner.putters.take_turn(id, cx.waker()) {
                return Poll::Pending;
            }
            this.waiter = None;
        }
        let item = this
            .item
            .take()
            .expect("a put is not polled after it is done");
        match this.queue.put_nowait(item) {
            Err(refused) if refused.error() == QueueError::Full => {
                this.item = Some(refused.into_item());
                let mut inner = this.queue.state.inner.borrow_mut();
                this.waiter = Some(inner.putters.push(cx.waker()));
                Poll::Pending
            }
            outcome => Poll::Ready(outcome),
        }
    }
}

/// A cancelled put leaves the line; woken for a free slot it will not use, it passes the
/// wake-up to the next putter.
impl<T, O: Order<T>> Drop for Put<'_, T, O> {
    #[inline]
    fn drop(&mut self) {
        if let Some(id) = self.waiter.take() {
            leave(&self.queue.state, id, Line::Putters);
        }
    }
}

/// The future of [`Queue::get`].
#[must_use = "an item is taken only when the future is awaited"]
pub struct Get<'a, T, O: Order<T>> {
    queue: &'a Queue<T, O>,
    waiter: Option<WaiterId>,
}

impl<T, O: Order<T>> StdFuture for Get<'_, T, O> {
    type Output = Result<T, QueueError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        if let Some(id) = self.waiter {
            let mut inner = self.queue.state.inner.borrow_mut();
            if !inner.getters.take_turn(id, cx.waker()) {
                return Poll::Pending;
            }
            drop(inner);
            self.waiter = None;
        }
        match self.queue.get_nowait() {
            Err(QueueError::Empty) => {
                let id = self.queue.state.inner.borrow_mut().getters.push(cx.waker());
                self.waiter = Some(id);
                Poll::Pending
            }
            outcome => Poll::Ready(outcome),
        }
    }
}

/// A cancelled get leaves the line; woken for an item it will not take, it passes the wake-up
/// to the next getter (the item stays in the queue).
impl<T, O: Order<T>> Drop for Get<'_, T, O> {
    #[inline]
    fn drop(&mut self) {
        if let Some(id) = self.waiter.take() {
            leave(&self.queue.state, id, Line::Getters);
        }
    }
}

/// Which line of a queue a waiter is in.
#[derive(Copy, Clone)]
enum Line {
    Getters,
    Putters,
}

/// Waiter `id` leaves `line` unfinished (its future was dropped). If it had been woken, for an
/// item or a free slot it will not use, the next waiter of its line is woken instead, as long
/// as the item or slot is still there.
#[cold]
fn leave<T, O: Order<T>>(state: &QueueState<T, O>, id: WaiterId, line: Line) {
    let next = {
        let mut inner = state.inner.borrow_mut();
        let still_there = match line {
            Line::Getters => inner.len() > 0,
            Line::Putters => !inner.is_full(state.maxsize),
        };
        let waiters = match line {
            Line::Getters => &mut inner.getters,
            Line::Putters => &mut inner.putters,
        };
        match waiters.remove(id) {
            Some(true) if still_there => waiters.notify_one(),
            _ => None,
        }
    };
    if let Some(waker) = next {
        waker.wake();
    }
}
