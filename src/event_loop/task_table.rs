//! The loop's tasks, as the loop sees them: a slab of [`Runnable`]s named by [`TaskId`], the
//! name a task's waker puts on the ready queue. What a task is (its coroutine, its output, its
//! waker) is `task/`'s business; the loop only steps it and, when closing, discards it.

use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;

use super::Remote;
use crate::task::TaskWaker;
use crate::{EventLoop, TaskRef};

/// How many dropped tasks' wakers the loop keeps for new tasks (a 48-byte malloc chunk
/// each): enough for a burst of a thousand tasks spawned, then awaited.
const SPARE_WAKERS: usize = 1024;

/// Names a task in the loop's table: its slot and that slot's generation.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) struct TaskId {
    index: u32,
    generation: u32,
}

#[cfg(test)]
impl TaskId {
    pub(super) fn for_test(index: u32) -> TaskId {
        TaskId {
            index,
            generation: 0,
        }
    }

    pub(super) fn index_for_test(self) -> u32 {
        self.index
    }
}

/// What the loop needs of a task, whatever its output type.
pub(crate) trait Runnable {
    /// Poll the coroutine once (or drop it, if cancelled). True once the task is finished.
    fn step(self: Pin<Rc<Self>>, lp: &EventLoop) -> bool;

    /// Drop the coroutine unfinished (the loop is closing) and fail the task with
    /// [`LoopError::Closed`](crate::LoopError::Closed). The `Task` handle may outlive the loop; the coroutine does not.
    fn discard(self: Pin<Rc<Self>>);

    /// The task as its users see it (for `current_task` and `all_tasks`).
    fn task_ref(self: Pin<Rc<Self>>) -> TaskRef;
}

/// The loop's tasks: a slab of slots, each with a generation that changes when it is reused.
#[derive(Default)]
pub(super) struct TaskTable {
    slots: Vec<TaskSlot>,
    free: Vec<u32>,
    len: usize,
    /// Wakers of dropped tasks that nothing else held, for new tasks: a spawn then makes one
    /// allocation fewer (see the `Drop` of `task::executor::TaskHeader`).
    spare_wakers: Vec<Arc<TaskWaker>>,
}

#[derive(Default)]
struct TaskSlot {
    generation: u32,
    task: Option<Pin<Rc<dyn Runnable>>>,
}

impl TaskTable {
    /// A free slot for a task about to be made.
    #[inline]
    pub(super) fn reserve(&mut self) -> TaskId {
        let index = match self.free.pop() {
            Some(index) => index,
            None => {
                self.slots.push(TaskSlot::default());
                u32::try_from(self.slots.len() - 1).expect("fewer than 2^32 live tasks")
            }
        };
        TaskId {
            index,
            generation: self.slots[index as usize].generation,
        }
    }

    #[inline]
    pub(super) fn fill(&mut self, id: TaskId, task: Pin<Rc<dyn Runnable>>) {
        self.slots[id.index as usize].task = Some(task);
        self.len += 1;
    }

    pub(super) fn get(&self, id: TaskId) -> Option<Pin<Rc<dyn Runnable>>> {
        let slot = self.slots.get(id.index as usize)?;
        if slot.generation != id.generation {
            return None;
        }
        slot.task.clone()
    }

    pub(super) fn remove(&mut self, id: TaskId) -> Option<Pin<Rc<dyn Runnable>>> {
        let slot = self.slots.get_mut(id.index as usize)?;
        if slot.generation != id.generation || slot.task.is_none() {
            return None;
        }
        slot.generation = slot.generation.wrapping_add(1);
        self.free.push(id.index);
        self.len -= 1;
        slot.task.take()
    }

    /// Every task in the table, in slot order.
    pub(super) fn all(&self) -> Vec<Pin<Rc<dyn Runnable>>> {
        self.slots.iter().filter_map(|s| s.task.clone()).collect()
    }

    /// How many tasks are alive.
    pub(super) fn len(&self) -> usize {
        self.len
    }

    /// Take every task out (for `close`); the caller discards them outside any borrow.
    pub(super) fn drain(&mut self) -> Vec<Pin<Rc<dyn Runnable>>> {
        let tasks = self
            .slots
            .iter_mut()
            .filter_map(|s| s.task.take())
            .collect();
        self.slots.clear();
        self.free.clear();
        self.len = 0;
        self.spare_wakers = Vec::new();
        tasks
    }
}

impl EventLoop {
    /// Add the task `make` builds (given the id its waker will queue, and the loop's
    /// thread-safe part for wakes from elsewhere, and a spare waker if the loop has one: see
    /// [`EventLoop::recycle_task_waker`]) and schedule its first step.
    pub(crate) fn add_task<R: Runnable + 'static>(
        &self,
        make: impl FnOnce(TaskId, &Arc<Remote>, Option<Arc<TaskWaker>>) -> Pin<Rc<R>>,
    ) -> Pin<Rc<R>> {
        let (id, spare) = {
            let mut tasks = self.inner.tasks.borrow_mut();
            (tasks.reserve(), tasks.spare_wakers.pop())
        };
        let task = make(id, &self.inner.remote, spare);
        self.inner.tasks.borrow_mut().fill(id, task.clone());
        // A `call_soon` (asyncio's `create_task` is one): after what other threads queued.
        self.push_ready_with(|ready| ready.push_task(id));
        task
    }

    /// Keep `waker`, a dropped task's, for a new task, unless enough are kept already (or
    /// the table is busy: a task dropped while the loop closes).
    #[inline]
    pub(crate) fn recycle_task_waker(&self, waker: Arc<TaskWaker>) {
        if let Ok(mut tasks) = self.inner.tasks.try_borrow_mut() {
            if tasks.spare_wakers.len() < SPARE_WAKERS && !self.is_closed() {
                tasks.spare_wakers.push(waker);
            }
        }
    }

    /// Task `id`, if it is still in the table.
    pub(crate) fn task(&self, id: TaskId) -> Option<TaskRef> {
        let task = self.inner.tasks.borrow().get(id)?;
        Some(task.task_ref())
    }

    /// Every task in the table (finished ones leave it after their last step).
    pub(crate) fn tasks(&self) -> Vec<TaskRef> {
        let tasks = self.inner.tasks.borrow().all();
        tasks.into_iter().map(Runnable::task_ref).collect()
    }

    /// Queue a step of task `id` directly (a wake on the loop's own thread while it runs);
    /// false if the ready queue is busy, for the caller to go through the thread-safe queue.
    #[inline]
    pub(crate) fn try_queue_task(&self, id: TaskId) -> bool {
        match self.inner.ready.try_borrow_mut() {
            Ok(mut ready) => {
                self.inner.remote.absorb(|queued| ready.push(queued));
                ready.push_task(id);
                true
            }
            Err(_) => false,
        }
    }
}
