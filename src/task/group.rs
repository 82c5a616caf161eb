//! asyncio's `TaskGroup` (3.11): structured concurrency. Tasks spawned into a group are awaited
//! together; the first failure cancels the rest; no task outlives its group.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::fmt;
use std::future::Future as StdFuture;
use std::io;
use std::pin::{pin, Pin};
use std::rc::{Rc, Weak};
use std::task::{Context, Poll, Waker};

use super::output::TaskOutput;
use super::task_ref::TaskRef;
use super::wait::cancel_and_wait;
use crate::{spawn, Future, Task};

/// A group of tasks run together: asyncio's `TaskGroup`, where `async with TaskGroup() as tg:`
/// becomes [`TaskGroup::run`]`(|tg| async move { ... })`.
///
/// The body runs as part of the calling coroutine and spawns tasks into the group with
/// [`create_task`](TaskGroup::create_task) (so may those tasks, with a clone of the group).
/// `run` returns once the body and every task of the group are done:
/// - If all succeeded, with the body's value.
/// - When a task fails (it returns a failure as [`TaskOutput`] judges it, e.g. `Err`, or it
///   panics), every other task of the group is cancelled and so is the body (dropped where it
///   is suspended, as asyncio cancels the parent task's current await); `run` waits for all of
///   them to finish and returns a [`TaskGroupError`] holding every failure (asyncio's
///   `ExceptionGroup`). A body that returns `Err` does the same, its error last in the list.
///   A task that was cancelled is not a failure.
/// - If the coroutine that awaits `run` is cancelled (`run`'s future is dropped), every task
///   of the group is cancelled at once: their coroutines are dropped before the drop returns.
///
/// So no task outlives its group. Where Rust differs: asyncio's owner sees `CancelledError`
/// in the body and then the `ExceptionGroup` after `async with`; here the body is simply
/// dropped and `run` returns the error, so the owner's coroutine goes on after `run` (asyncio
/// does the same once it uncancels the owner).
///
/// ```
/// use std::io;
/// use std::time::Duration;
/// use tulip::{sleep, EventLoop, TaskGroup};
///
/// let lp = EventLoop::new()?;
/// let failure = lp.run_until_complete(TaskGroup::run(|group| async move {
///     group.create_task(async {
///         sleep(Duration::from_millis(1)).await?;
///         Err::<(), _>(io::Error::other("disk full"))
///     })?;
///     let slow = group.create_task(sleep(Duration::from_secs(60)))?;
///     slow.await?;   // cancelled with the body when the first task fails
///     Ok(())
/// }))?;
/// let errors = failure.unwrap_err().into_errors();
/// assert_eq!(errors.len(), 1);
/// assert_eq!(errors[0].to_string(), "disk full");
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Clone)]
pub struct TaskGroup {
    state: Rc<GroupState>,
}

#[derive(Default)]
struct GroupState {
    /// The tasks not done yet, by the order they were made in.
    children: RefCell<BTreeMap<u64, TaskRef>>,
    next_child: Cell<u64>,
    /// The failures so far, in the order they happened.
    errors: RefCell<Vec<io::Error>>,
    /// A failure (or the owner's cancellation) is cancelling everything.
    aborting: Cell<bool>,
    /// The body is done: the group waits for its tasks.
    exiting: Cell<bool>,
    /// `run` returned (or was dropped).
    finished: Cell<bool>,
    /// The coroutine awaiting `run`.
    owner: RefCell<Option<Waker>>,
}

impl TaskGroup {
    /// Run `body` with a new group, then wait for every task of the group (see the type's
    /// documentation).
    ///
    /// # Errors
    /// A [`TaskGroupError`] with every failure: of the tasks, in the order they failed, then
    /// of the body.
    pub async fn run<B, Fut, T>(body: B) -> Result<T, TaskGroupError>
    where
        B: FnOnce(TaskGroup) -> Fut,
        Fut: StdFuture<Output = io::Result<T>>,
        T: 'static,
    {
        let group = TaskGroup {
            state: Rc::default(),
        };
        // Declared before the body, so dropped after it.
        let _owner = Owner(group.clone());
        let mut body = pin!(Some(body(group.clone())));
        let outcome = std::future::poll_fn(|cx| group.poll_body(body.as_mut(), cx)).await;
        let (value, body_error) = match outcome {
            // A task failed: the body is cancelled where it is suspended.
            None => {
                cancel_and_wait(body.as_mut()).await;
                (None, None)
            }
            Some(Ok(value)) => (Some(value), None),
            Some(Err(error)) => {
                group.state.abort();
                (None, Some(error))
            }
        };
        body.set(None);
        group.state.exiting.set(true);
        std::future::poll_fn(|cx| group.poll_children(cx)).await;
        group.state.finished.set(true);
        let mut errors = group.state.errors.take();
        errors.extend(body_error);
        match value {
            Some(value) if errors.is_empty() => Ok(value),
            _ => Err(TaskGroupError { errors }),
        }
    }

    /// Spawn `coroutine` as a task of the group, on the running loop: asyncio's
    /// `TaskGroup.create_task`. The returned handle may be awaited, or dropped (the group
    /// still waits for the task).
    ///
    /// # Errors
    /// Kind `Other`, as asyncio's `RuntimeError`: "the TaskGroup is shutting down" once a
    /// failure is cancelling the group, "the TaskGroup is finished" once it is done;
    /// [`LoopError::NoRunningLoop`](crate::LoopError::NoRunningLoop) outside a running loop.
    pub fn create_task<F>(&self, coroutine: F) -> io::Result<Task<F::Output>>
    where
        F: StdFuture + 'static,
        F::Output: TaskOutput,
    {
        let state = &self.state;
        if state.finished.get() || (state.exiting.get() && state.children.borrow().is_empty()) {
            return Err(io::Error::other("the TaskGroup is finished"));
        }
        if state.aborting.get() {
            return Err(io::Error::other("the TaskGroup is shutting down"));
        }
        let task = spawn(coroutine)?;
        let key = state.next_child.get();
        state.next_child.set(key + 1);
        state.children.borrow_mut().insert(key, task.task_ref());
        let group: Weak<GroupState> = Rc::downgrade(state);
        task.add_done_callback(move |output| {
            if let Some(group) = group.upgrade() {
                group.child_done(key, output);
            }
        });
        Ok(task)
    }

    /// How many tasks of the group are not done yet.
    pub fn len(&self) -> usize {
        self.state.children.borrow().len()
    }

    /// True if every task of the group is done (or none was made).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Poll the body unless a failure is cancelling the group: its output, or `None` once it
    /// is to be cancelled.
    fn poll_body<Fut: StdFuture>(
        &self,
        body: Pin<&mut Option<Fut>>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Fut::Output>> {
        self.state.set_owner(cx.waker());
        if !self.state.aborting.get() {
            let body = body
                .as_pin_mut()
                .expect("the body is polled until it is done");
            if let Poll::Ready(output) = body.poll(cx) {
                return Poll::Ready(Some(output));
            }
        }
        if self.state.aborting.get() {
            Poll::Ready(None)
        } else {
            Poll::Pending
        }
    }

    fn poll_children(&self, cx: &mut Context<'_>) -> Poll<()> {
        if self.state.children.borrow().is_empty() {
            return Poll::Ready(());
        }
        self.state.set_owner(cx.waker());
        Poll::Pending
    }
}

impl fmt::Debug for TaskGroup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = &self.state;
        f.debug_struct("TaskGroup")
            .field("tasks", &state.children.borrow().len())
            .field("errors", &state.errors.borrow().len())
            .field("aborting", &state.aborting.get())
            .field("finished", &state.finished.get())
            .finish()
    }
}

impl GroupState {
    fn set_owner(&self, waker: &Waker) {
        let mut owner = self.owner.borrow_mut();
        if !owner.as_ref().is_some_and(|w| w.will_wake(waker)) {
            *owner = Some(waker.clone());
        }
    }

    fn wake_owner(&self) {
        let owner = self.owner.borrow().clone();
        if let Some(waker) = owner {
            waker.wake();
        }
    }

    /// A task of the group is done (its done callback): a failure aborts the group.
    fn child_done<T: 'static>(&self, key: u64, output: &Future<T>) {
        let removed = self.children.borrow_mut().remove(&key);
        drop(removed);
        if !output.cancelled() {
            if let Ok(Some(error)) = output.exception() {
                self.errors.borrow_mut().push(error);
                if !self.aborting.get() {
                    self.abort();
                }
            }
        }
        self.wake_owner();
    }

    /// Cancel every task of the group and, through the owner, the body.
    fn abort(&self) {
        self.aborting.set(true);
        for child in self.children_now() {
            child.cancel();
        }
        self.wake_owner();
    }

    fn children_now(&self) -> Vec<TaskRef> {
        self.children.borrow().values().cloned().collect()
    }
}

/// `run`'s future dropped before it finished (its owner was cancelled): cancel every task of
/// the group now, so that none outlives it.
struct Owner(TaskGroup);

impl Drop for Owner {
    fn drop(&mut self) {
        let state = &self.0.state;
        if state.finished.replace(true) {
            return;
        }
        state.aborting.set(true);
        for child in state.children_now() {
            child.cancel_now();
        }
    }
}

/// Every failure of a [`TaskGroup`]: asyncio's `ExceptionGroup` ("unhandled errors in a
/// TaskGroup"). Converts into an [`io::Error`] of kind `Other` that
/// [`TaskGroupError::of`] recognises.
#[derive(Debug)]
pub struct TaskGroupError {
    errors: Vec<io::Error>,
}

impl TaskGroupError {
    /// The failures: of the tasks in the order they failed, then the body's.
    pub fn errors(&self) -> &[io::Error] {
        &self.errors
    }

    /// The failures, moved out.
    pub fn into_errors(self) -> Vec<io::Error> {
        self.errors
    }

    /// The `TaskGroupError` inside `err`, if it carries one.
    pub fn of(err: &io::Error) -> Option<&TaskGroupError> {
        err.get_ref()?.downcast_ref::<TaskGroupError>()
    }
}

impl fmt::Display for TaskGroupError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.errors.len();
        let plural = if n == 1 { "" } else { "s" };
        write!(
            f,
            "unhandled errors in a TaskGroup ({n} sub-exception{plural})"
        )?;
        for (i, error) in self.errors.iter().enumerate() {
            let separator = if i == 0 { ": " } else { "; " };
            write!(f, "{separator}{error}")?;
        }
        Ok(())
    }
}

impl std::error::Error for TaskGroupError {}

impl From<TaskGroupError> for io::Error {
    fn from(err: TaskGroupError) -> io::Error {
        io::Error::other(err)
    }
}
