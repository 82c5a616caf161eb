//! The ready queue: what runs in the next batch, first in, first out.
//!
//! Entries are small: a shared one-shot callback, a closure handed over from another thread,
//! or a reference to a reader/writer/signal handler that stays in its table (the entry names
//! it by generation, so a handler removed or replaced since the event was collected is never
//! run for it), or a task's id, pushed by its `Waker`.

use std::os::fd::RawFd;
use std::rc::Rc;

use tulip_sys::Interest;

use super::task_table::TaskId;
use crate::event_loop::handle::{Callback, State};
use crate::EventLoop;

/// A closure scheduled from another thread with `call_soon_threadsafe`.
pub(crate) type RemoteCallback = Box<dyn FnOnce(&EventLoop) + Send>;

/// Which of an fd's two callbacks.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) enum Direction {
    Read,
    Write,
}

impl Direction {
    /// The selector interest that watches this direction.
    pub(crate) fn interest(self) -> Interest {
        match self {
            Direction::Read => Interest::READABLE,
            Direction::Write => Interest::WRITABLE,
        }
    }
}

/// One thing to run.
pub(crate) enum ReadyItem {
    /// A `call_soon` callback or a timer whose deadline passed.
    Callback(Rc<dyn Callback>),
    /// A `call_soon_threadsafe` callback.
    Remote(RemoteCallback),
    /// The reader or writer of `fd` registered as `generation`, if it still is.
    Io {
        fd: RawFd,
        direction: Direction,
        generation: u64,
    },
    /// The handler of `signum` registered as `generation`, if it still is, run `count` times
    /// (the signal arrived that many times since the loop last looked).
    Signal {
        signum: i32,
        generation: u64,
        count: u32,
    },
    /// One step of a task, if it is still alive.
    Task(TaskId),
}

/// The loop's FIFO of ready work: a ring of slots whose length is a power of two, grown by
/// doubling and never shrunk, so steady-state iterations do not allocate.
///
/// Hand-written rather than a `VecDeque` for the hot path of every task switch (issue #16):
/// a push with room is a compare, a masked index and a store, inlined where it is called
/// (`VecDeque::push_back` stayed an out-of-line call here), and a pop is one `take`. Slots are
/// `Option`s so that all of it stays safe Rust; `None` costs no space (the item's tag has room
/// for it), and an empty slot is never dropped on a push.
#[derive(Default)]
pub(crate) struct ReadyQueue {
    /// Empty, or a power-of-two number of slots; those from `head` (wrapping) for `len`
    /// are `Some`, the rest `None`.
    slots: Vec<Option<ReadyItem>>,
    head: usize,
    len: usize,
}

impl ReadyQueue {
    /// Queue `item` last.
    #[inline]
    pub(crate) fn push(&mut self, item: ReadyItem) {
        self.make_room();
        self.put(item);
    }

    /// Queue a step of task `id` last (every wake of a task comes here): the same as
    /// `push(ReadyItem::Task(id))`, but the item is made after the check for room, which the
    /// compiler turns into fewer instructions on this path (4% of a task switch's, counted).
    #[inline]
    pub(crate) fn push_task(&mut self, id: TaskId) {
        self.make_room();
        self.put(ReadyItem::Task(id));
    }

    #[inline]
    fn make_room(&mut self) {
        if self.len == self.slots.len() {
            self.grow();
        }
    }

    /// Store `item` past the last one; there is room (`make_room`).
    #[inline]
    fn put(&mut self, item: ReadyItem) {
        let mask = self.slots.len() - 1;
        let at = (self.head + self.len) & mask;
        // The slot past the last item is empty: replaced, not dropped, so that no drop of an
        // item is compiled into this path (`forget` of a `None` leaks nothing).
        let empty = self.slots[at].replace(item);
        debug_assert!(empty.is_none());
        std::mem::forget(empty);
        self.len += 1;
    }

    /// Take the first item.
    #[inline]
    pub(crate) fn pop(&mut self) -> Option<ReadyItem> {
        if self.len == 0 {
            return None;
        }
        let item = self.slots[self.head].take();
        self.head = (self.head + 1) & (self.slots.len() - 1);
        self.len -= 1;
        item
    }

    #[inline]
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    #[inline]
    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Double the ring (16 slots at first), its items moved to the front in order.
    #[cold]
    #[inline(never)]
    fn grow(&mut self) {
        let capacity = (self.slots.len() * 2).max(16);
        let mut slots: Vec<Option<ReadyItem>> = Vec::with_capacity(capacity);
        while let Some(item) = self.pop() {
            slots.push(Some(item));
        }
        self.len = slots.len();
        slots.resize_with(capacity, || None);
        self.slots = slots;
        self.head = 0;
    }

    /// Take everything out (for `close`): the one-shot callbacks are marked cancelled; the
    /// caller drops the rest outside any borrow of the loop.
    pub(crate) fn drain(&mut self) -> Vec<ReadyItem> {
        let items: Vec<ReadyItem> = std::iter::from_fn(|| self.pop()).collect();
        for item in &items {
            if let ReadyItem::Callback(callback) = item {
                if callback.state() == State::Ready {
                    callback.cancel();
                }
            }
        }
        items
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::VecDeque;

    fn task(n: u32) -> ReadyItem {
        ReadyItem::Task(TaskId::for_test(n))
    }

    fn number(item: Option<ReadyItem>) -> Option<u32> {
        match item {
            Some(ReadyItem::Task(id)) => Some(id.index_for_test()),
            Some(_) => panic!("not a task"),
            None => None,
        }
    }

    /// Pushes and pops interleaved so that the ring wraps and grows while wrapped: the order
    /// is a `VecDeque`'s, and the slots stay a power of two.
    #[test]
    fn the_ring_keeps_fifo_order_across_wraps_and_growth() {
        let mut ring = ReadyQueue::default();
        let mut model = VecDeque::new();
        let mut next = 0;
        for round in 0..200u32 {
            for _ in 0..(round % 7) + 1 {
                ring.push(task(next));
                model.push_back(next);
                next += 1;
            }
            for _ in 0..(round % 5) {
                assert_eq!(number(ring.pop()), model.pop_front());
            }
            assert_eq!(ring.len(), model.len());
            assert!(ring.slots.len().is_power_of_two());
        }
        while let Some(expected) = model.pop_front() {
            assert_eq!(number(ring.pop()), Some(expected));
        }
        assert!(ring.is_empty());
        assert_eq!(number(ring.pop()), None);
    }

    #[test]
    fn an_item_costs_no_more_space_in_its_slot() {
        assert_eq!(
            std::mem::size_of::<Option<ReadyItem>>(),
            std::mem::size_of::<ReadyItem>()
        );
    }
}
