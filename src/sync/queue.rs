//! asyncio's queues: [`Queue`] (first in, first out), [`LifoQueue`] and [`PriorityQueue`], with
//! an optional bound, `task_done` / `join`, and `shutdown` (asyncio 3.13).

use std::cell::{Cell, RefCell};
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
    items: RefCell<O::Items>,
    maxsize: usize,
    getters: RefCell<WaitList>,
    putters: RefCell<WaitList>,
    /// Items put and not yet marked done with `task_done`.
    unfinished: Cell<usize>,
    /// Set while `unfinished` is 0 (or after an immediate shutdown): what `join` waits for.
    finished: Event,
    shut_down: Cell<bool>,
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
                items: RefCell::default(),
                maxsize,
                getters: RefCell::default(),
                putters: RefCell::default(),
                unfinished: Cell::new(0),
                finished,
                shut_down: Cell::new(false),
            }),
        }
    }

    /// The bound given at creation (0: unbounded).
    pub fn maxsize(&self) -> usize {
        self.state.maxsize
    }

    /// How many items are in the queue.
    pub fn qsize(&self) -> usize {
        O::len(&self.state.items.borrow())
    }

    /// True if the queue holds no item.
    pub fn empty(&self) -> bool {
        self.qsize() == 0
    }

    /// True if the queue is bounded and holds `maxsize` items: a `put` would wait.
    pub fn full(&self) -> bool {
        self.state.maxsize > 0 && self.qsize() >= self.state.maxsize
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
    pub fn put_nowait(&self, item: T) -> Result<(), PutError<T>> {
        let state = &*self.state;
        if state.shut_down.get() {
            return Err(PutError::new(QueueError::ShutDown, item));
        }
        if self.full() {
            return Err(PutError::new(QueueError::Full, item));
        }
        O::push(&mut state.items.borrow_mut(), item);
        state.unfinished.set(state.unfinished.get() + 1);
        state.finished.clear();
        let getter = state.getters.borrow_mut().notify_one();
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
    pub fn get_nowait(&self) -> Result<T, QueueError> {
        let state = &*self.state;
        let item = O::pop(&mut state.items.borrow_mut());
        match item {
            Some(item) => {
                let putter = state.putters.borrow_mut().notify_one();
                if let Some(waker) = putter {
                    waker.wake();
                }
                Ok(item)
            }
            None if state.shut_down.get() => Err(QueueError::ShutDown),
            None => Err(QueueError::Empty),
        }
    }

    /// Mark an item taken out as processed, for [`join`](Queue::join): each `put` counts one
    /// item to process, each `task_done` one processed.
    ///
    /// # Errors
    /// `InvalidInput` ("task_done() called too many times", asyncio's `ValueError`) if no
    /// item is left to mark.
    pub fn task_done(&self) -> io::Result<()> {
        let state = &*self.state;
        let unfinished = state.unfinished.get();
        if unfinished == 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "task_done() called too many times",
            ));
        }
        state.unfinished.set(unfinished - 1);
        if unfinished == 1 {
            state.finished.set();
        }
        Ok(())
    }

    /// Wait until every item put has been marked processed with
    /// [`task_done`](Queue::task_done) (or dropped by an immediate shutdown).
    pub async fn join(&self) {
        if self.state.unfinished.get() > 0 {
            self.state.finished.wait().await;
        }
    }

    /// Shut the queue down (asyncio 3.13): every `put` fails from now on, waiting ones
    /// included, and `get` fails once the queue is empty (every waiting getter is woken to
    /// find out). With `immediate`, the items left are dropped now, each counted as processed,
    /// so [`join`](Queue::join) returns once nothing taken out is still unprocessed.
    pub fn shutdown(&self, immediate: bool) {
        let state = &*self.state;
        state.shut_down.set(true);
        let dropped = if immediate {
            let dropped = std::mem::take(&mut *state.items.borrow_mut());
            let unfinished = state.unfinished.get().saturating_sub(O::len(&dropped));
            state.unfinished.set(unfinished);
            if unfinished == 0 {
                state.finished.set();
            }
            Some(dropped)
        } else {
            None
        };
        let getters = state.getters.borrow_mut().notify_all();
        let putters = state.putters.borrow_mut().notify_all();
        wake_all(getters);
        wake_all(putters);
        // The items' destructors run once the queue is consistent again.
        drop(dropped);
    }

    /// True once [`shutdown`](Queue::shutdown) was called.
    pub fn is_shut_down(&self) -> bool {
        self.state.shut_down.get()
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
        let state = &*self.state;
        f.debug_struct("Queue")
            .field("maxsize", &state.maxsize)
            .field("qsize", &self.qsize())
            .field("getters", &state.getters.borrow().len())
            .field("putters", &state.putters.borrow().len())
            .field("unfinished", &state.unfinished.get())
            .field("shut_down", &state.shut_down.get())
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
        let state = &*this.queue.state;
        if let Some(id) = this.waiter {
            let mut putters = state.putters.borrow_mut();
            if !putters.is_notified(id) {
                putters.update(id, cx.waker());
                return Poll::Pending;
            }
            putters.remove(id);
            this.waiter = None;
        }
        let item = this
            .item
            .take()
            .expect("a put is not polled after it is done");
        if !state.shut_down.get() && this.queue.full() {
            this.item = Some(item);
            this.waiter = Some(state.putters.borrow_mut().push(cx.waker()));
            return Poll::Pending;
        }
        Poll::Ready(this.queue.put_nowait(item))
    }
}

/// A cancelled put leaves the line; woken for a free slot it will not use, it passes the
/// wake-up to the next putter.
impl<T, O: Order<T>> Drop for Put<'_, T, O> {
    fn drop(&mut self) {
        let Some(id) = self.waiter.take() else {
            return;
        };
        let state = &*self.queue.state;
        let woken = state.putters.borrow_mut().remove(id);
        if woken == Some(true) && !self.queue.full() {
            let next = state.putters.borrow_mut().notify_one();
            if let Some(waker) = next {
                waker.wake();
            }
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
        let state = &*self.queue.state;
        if let Some(id) = self.waiter {
            let mut getters = state.getters.borrow_mut();
            if !getters.is_notified(id) {
                getters.update(id, cx.waker());
                return Poll::Pending;
            }
            getters.remove(id);
            drop(getters);
            self.waiter = None;
        }
        match self.queue.get_nowait() {
            Err(QueueError::Empty) => {
                self.waiter = Some(state.getters.borrow_mut().push(cx.waker()));
                Poll::Pending
            }
            outcome => Poll::Ready(outcome),
        }
    }
}

/// A cancelled get leaves the line; woken for an item it will not take, it passes the wake-up
/// to the next getter (the item stays in the queue).
impl<T, O: Order<T>> Drop for Get<'_, T, O> {
    fn drop(&mut self) {
        let Some(id) = self.waiter.take() else {
            return;
        };
        let state = &*self.queue.state;
        let woken = state.getters.borrow_mut().remove(id);
        if woken == Some(true) && !self.queue.empty() {
            let next = state.getters.borrow_mut().notify_one();
            if let Some(waker) = next {
                waker.wake();
            }
        }
    }
}
