//! Tasks seen without their output type: [`TaskRef`], what [`current_task`] and [`all_tasks`]
//! give (asyncio's functions of those names), and task names.
//!
//! The executor notes which task it is stepping (its id, a copy, next to the step's budget: no
//! reference count is touched per step), and the loop's task table turns that id back into
//! the task.

use std::cell::Cell;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::io;
use std::pin::Pin;
use std::rc::Rc;

use super::budget::current_task_id;
use super::executor::TaskControl;
use crate::event_loop::with_running_loop;

thread_local! {
    /// The number of the last task made on this thread (asyncio's `Task-N` counter).
    static TASK_NUMBER: Cell<u32> = const { Cell::new(0) };
}

/// The number of a new task: 1, 2, ... on each thread (wrapping after 2^32 tasks).
pub(super) fn next_task_number() -> u32 {
    TASK_NUMBER.with(|n| {
        let number = n.get().wrapping_add(1);
        n.set(number);
        number
    })
}

/// A task, whatever its output type: asyncio's view of a task in
/// [`current_task`] and [`all_tasks`]. It can be named, compared, and cancelled.
///
/// Two `TaskRef`s are equal when they are the same task. A cheap handle; it keeps the task's
/// bookkeeping (not its loop) alive, as a [`Task`](crate::Task) does.
#[derive(Clone)]
pub struct TaskRef {
    control: Pin<Rc<dyn TaskControl>>,
}

impl TaskRef {
    pub(super) fn new(control: Pin<Rc<dyn TaskControl>>) -> TaskRef {
        TaskRef { control }
    }

    /// The task's name (see [`Task::name`](crate::Task::name)).
    pub fn name(&self) -> String {
        self.control.name()
    }

    /// Name the task.
    pub fn set_name(&self, name: impl Into<String>) {
        self.control.set_name(name.into());
    }

    /// Ask the task to stop (see [`Task::cancel`](crate::Task::cancel)); false if it is done.
    pub fn cancel(&self) -> bool {
        if self.control.is_done() {
            return false;
        }
        self.control.request_cancel();
        true
    }

    /// True once the task finished, failed or was cancelled.
    pub fn done(&self) -> bool {
        self.control.is_done()
    }

    /// True once the task completed as cancelled.
    pub fn cancelled(&self) -> bool {
        self.control.is_cancelled()
    }

    /// Cancel the task now: its coroutine is dropped before this returns.
    pub(crate) fn cancel_now(&self) {
        Pin::clone(&self.control).cancel_now();
    }

    fn address(&self) -> *const () {
        (&*self.control as *const dyn TaskControl).cast()
    }
}

impl PartialEq for TaskRef {
    fn eq(&self, other: &TaskRef) -> bool {
        self.address() == other.address()
    }
}

impl Eq for TaskRef {}

impl Hash for TaskRef {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.address().hash(state);
    }
}

impl fmt::Debug for TaskRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = if self.cancelled() {
            "cancelled"
        } else if self.done() {
            "done"
        } else {
            "pending"
        };
        f.debug_struct("TaskRef")
            .field("name", &self.name())
            .field("state", &state)
            .finish()
    }
}

/// The task running now on this thread: asyncio's `current_task()`. `None` outside a task (in
/// a plain callback, or with no loop running, where asyncio raises `RuntimeError`).
///
/// ```
/// let lp = tulip::EventLoop::new()?;
/// let task = lp.create_task(async { tulip::current_task().map(|t| t.name()) });
/// task.set_name("worker");
/// assert_eq!(lp.run_until_complete(task)??.as_deref(), Some("worker"));
/// assert!(tulip::current_task().is_none());
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn current_task() -> Option<TaskRef> {
    let id = current_task_id()?;
    with_running_loop(|lp| lp.task(id)).ok().flatten()
}

/// Every task of the running loop that is not done yet: asyncio's `all_tasks()`, in no
/// particular order.
///
/// # Errors
/// [`LoopError::NoRunningLoop`](crate::LoopError::NoRunningLoop) outside a running loop.
pub fn all_tasks() -> io::Result<Vec<TaskRef>> {
    with_running_loop(|lp| {
        let mut tasks = lp.tasks();
        tasks.retain(|t| !t.done());
        tasks
    })
}
