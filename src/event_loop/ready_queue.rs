//! The ready queue: what runs in the next batch, first in, first out.
//!
//! Entries are small: a shared one-shot callback, a closure handed over from another thread,
//! or a reference to a reader/writer/signal handler that stays in its table (the entry names
//! it by generation, so a handler removed or replaced since the event was collected is never
//! run for it), or a task's id, pushed by its `Waker`.

use std::collections::VecDeque;
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

/// The loop's FIFO of ready work. Its buffer is reused, so steady-state iterations do not
/// allocate.
#[derive(Default)]
pub(crate) struct ReadyQueue {
    items: VecDeque<ReadyItem>,
}

impl ReadyQueue {
    #[inline]
    pub(crate) fn push(&mut self, item: ReadyItem) {
        self.items.push_back(item);
    }

    #[inline]
    pub(crate) fn pop(&mut self) -> Option<ReadyItem> {
        self.items.pop_front()
    }

    #[inline]
    pub(crate) fn len(&self) -> usize {
        self.items.len()
    }

    #[inline]
    pub(crate) fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Take everything out (for `close`): the one-shot callbacks are marked cancelled; the
    /// caller drops the rest outside any borrow of the loop.
    pub(crate) fn drain(&mut self) -> Vec<ReadyItem> {
        let items: Vec<ReadyItem> = self.items.drain(..).collect();
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
