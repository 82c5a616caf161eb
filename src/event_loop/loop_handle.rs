//! Reaching a loop from other threads: [`LoopHandle`] and its queue of `Send` callbacks, which
//! the loop moves to its ready queue when its notifier wakes it.

use std::collections::VecDeque;
use std::fmt;
use std::io;
use std::sync::{Arc, Mutex, MutexGuard};

use tulip_sys::Notifier;

use super::task_table::TaskId;
use crate::event_loop::ready_queue::{ReadyItem, RemoteCallback};
use crate::{EventLoop, LoopError};

/// The part of a loop other threads share.
pub(crate) struct Remote {
    queue: Mutex<RemoteQueue>,
}

struct RemoteQueue {
    callbacks: VecDeque<RemoteCallback>,
    /// Tasks woken from other threads (or while their loop was not running).
    tasks: Vec<TaskId>,
    /// `None` once the loop is closed: the notifier's fd is released with the loop, even while
    /// other threads still hold handles.
    notifier: Option<Notifier>,
}

impl Remote {
    pub(crate) fn new(notifier: Notifier) -> Remote {
        Remote {
            queue: Mutex::new(RemoteQueue {
                callbacks: VecDeque::new(),
                tasks: Vec::new(),
                notifier: Some(notifier),
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, RemoteQueue> {
        // The queue stays consistent if a holder panicked: no user code runs under the lock.
        self.queue
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// On the loop's thread, after the notifier's event: drain the notifier *first* (so a wake
    /// that comes after the look below makes a new event), then hand every queued callback to
    /// `push`, in the order they were queued.
    pub(crate) fn receive(&self, mut push: impl FnMut(ReadyItem)) -> io::Result<()> {
        let mut queue = self.lock();
        if let Some(notifier) = &queue.notifier {
            notifier.drain()?;
        }
        while let Some(callback) = queue.callbacks.pop_front() {
            push(ReadyItem::Remote(callback));
        }
        for id in queue.tasks.drain(..) {
            push(ReadyItem::Task(id));
        }
        Ok(())
    }

    /// Queue a task's wake for the loop's thread and wake the loop. Dropped if the loop is
    /// closed (its tasks are gone).
    pub(crate) fn wake_task(&self, id: TaskId) {
        let notifier = {
            let mut queue = self.lock();
            let Some(notifier) = queue.notifier.clone() else {
                return;
            };
            queue.tasks.push(id);
            notifier
        };
        // A failed notify means the process is out of resources; the wake stays queued for
        // the loop's next iteration, which is all a waker can do.
        let _ = notifier.notify();
    }

    pub(crate) fn close(&self) -> VecDeque<RemoteCallback> {
        let mut queue = self.lock();
        queue.notifier = None;
        std::mem::take(&mut queue.callbacks)
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
    /// order they were scheduled.
    ///
    /// # Errors
    /// [`LoopError::Closed`] if the loop was closed or dropped (the callback is dropped); the
    /// kernel's error if the wake-up cannot be sent (the callback stays queued).
    pub fn call_soon_threadsafe(
        &self,
        callback: impl FnOnce(&EventLoop) + Send + 'static,
    ) -> io::Result<()> {
        let notifier = {
            let mut queue = self.remote.lock();
            let Some(notifier) = queue.notifier.clone() else {
                drop(queue);
                return Err(LoopError::Closed.into());
            };
            queue.callbacks.push_back(Box::new(callback));
            notifier
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
