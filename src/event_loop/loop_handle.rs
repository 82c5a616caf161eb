//! Reaching a loop from other threads: [`LoopHandle`] and its queue of `Send` callbacks, which
//! the loop moves to its ready queue when its notifier wakes it.

use std::collections::VecDeque;
use std::fmt;
use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use tulip_sys::Notifier;

use super::task_table::TaskId;
use crate::event_loop::ready_queue::{ReadyItem, RemoteCallback};
use crate::{EventLoop, LoopError};

/// The part of a loop other threads share: its thread-safe queue.
///
/// The loop's thread moves what is queued here onto its ready queue before it schedules
/// anything itself (see [`absorb`](Self::absorb)), so that the two are one FIFO, as asyncio's
/// single ready queue is: `call_soon_threadsafe(a)` then `call_soon(b)` runs `a` first.
pub(crate) struct Remote {
    queue: Mutex<RemoteQueue>,
    /// Whether `queue` holds items: read without the lock on every local scheduling call.
    pending: AtomicBool,
    /// The fork generation the notifier belongs to (see `fork.rs`): in a child that inherited
    /// the loop, waking it would wake the parent's.
    fork_generation: AtomicU64,
}

/// One item of the thread-safe queue.
enum RemoteItem {
    /// A `call_soon_threadsafe` callback.
    Callback(RemoteCallback),
    /// A task woken from another thread (or while its loop was not running).
    Task(TaskId),
}

impl From<RemoteItem> for ReadyItem {
    fn from(item: RemoteItem) -> ReadyItem {
        match item {
            RemoteItem::Callback(callback) => ReadyItem::Remote(callback),
            RemoteItem::Task(id) => ReadyItem::Task(id),
        }
    }
}

struct RemoteQueue {
    /// In the order they were queued, callbacks and task wakes alike.
    items: VecDeque<RemoteItem>,
    /// `None` once the loop is closed: the notifier's fd is released with the loop, even while
    /// other threads still hold handles.
    notifier: Option<Notifier>,
}

impl Remote {
    pub(crate) fn new(notifier: Notifier) -> Remote {
        Remote {
            queue: Mutex::new(RemoteQueue {
                items: VecDeque::new(),
                notifier: Some(notifier),
            }),
            pending: AtomicBool::new(false),
            fork_generation: AtomicU64::new(tulip_sys::fork::generation()),
        }
    }

    /// After `fork`: wake the loop through `notifier` from now on; returns the inherited one.
    pub(crate) fn replace_notifier(&self, notifier: Notifier) -> Option<Notifier> {
        self.lock().notifier.replace(notifier)
    }

    /// Take the notifier out (an inherited loop closing in the child).
    pub(crate) fn take_notifier(&self) -> Option<Notifier> {
        self.lock().notifier.take()
    }

    /// The fork generation of the notifier, after `after_fork` replaced it.
    pub(crate) fn set_fork_generation(&self, generation: u64) {
        self.fork_generation.store(generation, Ordering::Relaxed);
    }

    fn lock(&self) -> MutexGuard<'_, RemoteQueue> {
        // The queue stays consistent if a holder panicked: no user code runs under the lock.
        self.queue
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Queue `item` for the loop's thread; the notifier that wakes it, or `None` (and the item
    /// dropped) if the loop is closed.
    fn push(&self, item: RemoteItem) -> Option<Notifier> {
        let mut queue = self.lock();
        let notifier = queue.notifier.clone()?;
        queue.items.push_back(item);
        self.pending.store(true, Ordering::Release);
        Some(notifier)
    }

    /// On the loop's thread, before it schedules anything itself: move what other threads
    /// queued onto the ready queue (`push`), in the order it was queued. A single atomic load
    /// when nothing is queued.
    #[inline]
    pub(crate) fn absorb(&self, push: impl FnMut(ReadyItem)) {
        if self.pending.load(Ordering::Acquire) {
            self.move_items(&mut self.lock(), push);
        }
    }

    /// On the loop's thread, after the notifier's event: drain the notifier *first* (so a wake
    /// that comes after the look below makes a new event), then [`absorb`](Self::absorb).
    /// Queued items are moved even if draining the notifier fails; that error is returned
    /// after.
    pub(crate) fn receive(&self, push: impl FnMut(ReadyItem)) -> io::Result<()> {
        let mut queue = self.lock();
        let drained = match &queue.notifier {
            Some(notifier) => notifier.drain(),
            None => Ok(()),
        };
        self.move_items(&mut queue, push);
        drained
    }

    fn move_items(&self, queue: &mut RemoteQueue, mut push: impl FnMut(ReadyItem)) {
        queue
            .items
            .drain(..)
            .map(ReadyItem::from)
            .for_each(&mut push);
        self.pending.store(false, Ordering::Release);
    }

    /// Queue a task's wake for the loop's thread and wake the loop. Dropped if the loop is
    /// closed (its tasks are gone).
    pub(crate) fn wake_task(&self, id: TaskId) {
        let Some(notifier) = self.push(RemoteItem::Task(id)) else {
            return;
        };
        if self.fork_generation.load(Ordering::Relaxed) != tulip_sys::fork::generation() {
            // An inherited loop in a child: its notifier would wake the parent's loop.
            return;
        }
        // A failed notify means the process is out of resources; the wake stays queued for
        // the loop's next iteration, which is all a waker can do.
        let _ = notifier.notify();
    }

    /// The loop is closing: refuse what comes from now on, and hand back what is queued (for
    /// the loop to drop outside the lock: dropping a closure runs user code).
    pub(crate) fn close(&self) -> VecDeque<impl Sized> {
        let mut queue = self.lock();
        queue.notifier = None;
        self.pending.store(false, Ordering::Release);
        std::mem::take(&mut queue.items)
    }
}

/// A handle to an [`EventLoop`] that other threads can hold: `Send + Sync`, cheap to clone.
///
/// It offers only what is safe from any thread: [`call_soon_threadsafe`]. To stop a loop from
/// another thread, schedule `|lp| lp.stop()`.
///
/// [`call_soon_threadsafe`]: LoopHandle::call_soon_threadsafe
///
/// ```
/// use tulip::EventLoop;
///
/// let lp = EventLoop::new()?;
/// let handle = lp.handle();
/// std::thread::spawn(move || handle.call_soon_threadsafe(|lp| lp.stop()));
/// lp.run_forever()?; // woken by the other thread
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Clone)]
pub struct LoopHandle {
    pub(crate) remote: Arc<Remote>,
}

impl LoopHandle {
    /// Schedule `callback` to run on the loop's thread, after the callbacks already scheduled,
    /// and wake the loop if it is blocked waiting for I/O. Callbacks from one thread run in the
    /// order they were scheduled; on the loop's own thread, in one FIFO with
    /// [`EventLoop::call_soon`].
    ///
    /// # Errors
    /// [`LoopError::Forked`] in a child that inherited the loop through `fork`, until
    /// [`EventLoop::after_fork`]; [`LoopError::Closed`] if the loop was closed or dropped (the callback is dropped); the
    /// kernel's error if the wake-up cannot be sent (the callback stays queued).
    pub fn call_soon_threadsafe(
        &self,
        callback: impl FnOnce(&EventLoop) + Send + 'static,
    ) -> io::Result<()> {
        if self.remote.fork_generation.load(Ordering::Relaxed) != tulip_sys::fork::generation() {
            return Err(LoopError::Forked.into());
        }
        let Some(notifier) = self.remote.push(RemoteItem::Callback(Box::new(callback))) else {
            return Err(LoopError::Closed.into());
        };
        // Outside the lock: the loop's thread may be draining meanwhile, and will see the
        // callback either in this look or after the wake this makes.
        notifier.notify()
    }
}

impl fmt::Debug for LoopHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoopHandle")
            .field("closed", &self.remote.lock().notifier.is_none())
            .finish()
    }
}
