//! Tasks: coroutines (Rust futures) driven by the loop, as asyncio's `Task` drives a
//! coroutine with `send()`. A task is a callback that polls its future; its `Waker` puts it
//! back on the ready queue.
//!
//! The task itself lives in the loop's task table (so a detached task keeps running), and
//! the ready queue names it by [`TaskId`] (index and generation, so a stale wake of a finished
//! task is ignored). Wakers are `Send + Sync` (`std::task::Wake` on an `Arc`): a wake on the
//! loop's own thread while it runs pushes onto the ready queue directly, with no lock; a wake
//! from anywhere else goes through the loop's thread-safe queue and its notifier. Either way an
//! atomic `queued` flag makes a task woken many times before it runs be polled once.

use std::cell::Cell;
use std::fmt;
use std::future::Future as StdFuture;
use std::io;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

use super::budget::Budget;
use super::cancel_scope;
use super::future::{take_boxed, CallbackId, Completion, DoneCallbackKey, FutureCell};
use super::output::{Judge, TaskOutput};
use super::task_ref::{next_task_number, TaskRef};
use super::wait::Waitable;
use crate::event_loop::{with_running_loop, with_this_loop, Remote, Runnable, TaskId};
use crate::{EventLoop, Future, LoopError};
use tulip_sys::pinned::{PinnedFuture, Polled};

/// A coroutine scheduled on a loop: asyncio's `Task`, made by [`EventLoop::create_task`] or
/// [`spawn`].
///
/// A task is a future too: `.await` gives its output as `io::Result<T>` (an error if it was
/// cancelled, panicked, or its loop closed first), and it has done callbacks. Dropping the
/// `Task` handle detaches it: it keeps running; but a coroutine cancelled while it awaits the
/// task (a cancelled task, a timed-out [`wait_for`](crate::wait_for)) cancels it too, as
/// asyncio's cancellation reaches the task it awaits. Tasks need not be `Send`.
///
/// An output that is a failure (`Err`, as [`TaskOutput`] judges it) makes the task failed
/// wherever asyncio distinguishes an exception: [`exception`](Task::exception),
/// [`wait`](crate::wait) with [`FirstException`](crate::ReturnWhen::FirstException),
/// [`gather`](crate::gather), and the "exception was never retrieved" report.
pub struct Task<T> {
    output: Future<T>,
    control: Pin<Rc<dyn TaskControl>>,
}

impl<T: 'static> Task<T> {
    /// Ask the task to stop: at its next turn its coroutine is dropped where it is suspended
    /// (running its destructors) and the task completes as cancelled. Returns false if the
    /// task is already done.
    pub fn cancel(&self) -> bool {
        if self.output.done() {
            return false;
        }
        self.control.request_cancel();
        true
    }

    /// True once the task finished, failed or was cancelled.
    pub fn done(&self) -> bool {
        self.output.done()
    }

    /// True once the task completed as cancelled.
    pub fn cancelled(&self) -> bool {
        self.output.cancelled()
    }

    /// Take the task's output (see [`Future::take_result`]).
    ///
    /// # Errors
    /// As [`Future::take_result`].
    pub fn take_result(&self) -> io::Result<T> {
        self.output.take_result()
    }

    /// Schedule `callback` once the task is done (see [`Future::add_done_callback`]).
    pub fn add_done_callback(&self, callback: impl FnOnce(&Future<T>) + 'static) -> CallbackId {
        self.output.add_done_callback(callback)
    }

    /// Remove done callbacks not yet scheduled; how many were removed (see
    /// [`Future::remove_done_callback`]).
    pub fn remove_done_callback(&self, which: impl DoneCallbackKey<T>) -> usize {
        self.output.remove_done_callback(which)
    }

    /// The task's failure without taking its output: `None` if it returned a value that is
    /// not a failure, a copy of the error if it returned `Err` (or panicked, or its loop closed
    /// first). Reading it counts as retrieving it (see [`Future::exception`]).
    ///
    /// # Errors
    /// [`LoopError::Cancelled`] once cancelled; [`LoopError::InvalidState`] while it runs.
    pub fn exception(&self) -> io::Result<Option<io::Error>> {
        self.output.exception()
    }

    /// The future that holds the task's outcome.
    pub fn as_future(&self) -> &Future<T> {
        &self.output
    }

    /// The task's name: the one given with [`set_name`](Task::set_name), or asyncio's
    /// default `Task-N`, N counting the tasks made on this thread from 1 (a `u32`, wrapping).
    pub fn name(&self) -> String {
        self.control.name()
    }

    /// Name the task (for [`name`](Task::name), [`TaskRef`] and reports).
    pub fn set_name(&self, name: impl Into<String>) {
        self.control.set_name(name.into());
    }

    /// The task without its output type: what [`current_task`](crate::current_task) and
    /// [`all_tasks`](crate::all_tasks) give, to compare with or to cancel.
    pub fn task_ref(&self) -> TaskRef {
        TaskRef::new(Pin::clone(&self.control))
    }
}

impl<T> From<Task<T>> for Future<T> {
    /// The future holding the task's outcome; the task is detached (it keeps running).
    fn from(task: Task<T>) -> Future<T> {
        task.output.clone()
    }
}

impl<T> From<&Task<T>> for Future<T> {
    /// The future holding the task's outcome.
    fn from(task: &Task<T>) -> Future<T> {
        task.output.clone()
    }
}

impl<T: Clone + 'static> Task<T> {
    /// The task's output, left in place (see [`Future::result`]).
    ///
    /// # Errors
    /// As [`Future::result`].
    pub fn result(&self) -> io::Result<T> {
        self.output.result()
    }
}

impl<T: 'static> StdFuture for Task<T> {
    type Output = io::Result<T>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<T>> {
        self.output.poll_awaited(cx)
    }
}

/// Dropped by a coroutine being cancelled while it awaits the task (or as the subject of a
/// timed-out [`wait_for`](crate::wait_for)): the task is cancelled too (see `cancel_scope.rs`).
impl<T> Drop for Task<T> {
    /// Inline, the usual case: no cancellation under way, nothing to do.
    #[inline]
    fn drop(&mut self) {
        if cancel_scope::is_active() {
            self.drop_cancelling();
        }
    }
}

impl<T> Task<T> {
    #[inline(never)]
    fn drop_cancelling(&mut self) {
        let awaited = self.output.take_awaiting();
        let target = cancel_scope::is_target(self);
        if self.output.done_any() {
            if target {
                cancel_scope::give(self.output.take_erased());
            }
        } else if target || awaited {
            self.control.request_cancel();
            cancel_scope::wait_until_done(Pin::clone(&self.control).watch());
        }
    }
}

impl<T: 'static> fmt::Debug for Task<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Task")
            .field("output", &self.output)
            .finish()
    }
}

/// Schedule `coroutine` as a task on the loop running on this thread (from inside one of its
/// callbacks or tasks), as asyncio's `create_task` does.
///
/// # Errors
/// [`LoopError::NoRunningLoop`] outside a running loop.
pub fn spawn<F>(coroutine: F) -> io::Result<Task<F::Output>>
where
    F: StdFuture + 'static,
    F::Output: TaskOutput,
{
    with_running_loop(|lp| lp.create_task(coroutine))
}

impl EventLoop {
    /// Wrap `coroutine` in a [`Task`] and schedule its first step with `call_soon`.
    ///
    /// On a closed loop the task is returned already failed with [`LoopError::Closed`] (its
    /// coroutine dropped unrun).
    pub fn create_task<F>(&self, coroutine: F) -> Task<F::Output>
    where
        F: StdFuture + 'static,
        F::Output: TaskOutput,
    {
        self.create_judged_task(coroutine, Some(Judge::of()))
    }

    /// [`create_task`](Self::create_task), judging the output with `judge` (`None`: never a
    /// failure, for a task whose output goes straight to its caller).
    pub(crate) fn create_judged_task<F>(
        &self,
        coroutine: F,
        judge: Option<Judge<F::Output>>,
    ) -> Task<F::Output>
    where
        F: StdFuture + 'static,
    {
        if self.is_closed() {
            drop(coroutine);
            let output = Future::new(self);
            let _ = output.set_exception(LoopError::Closed.into());
            let control: Pin<Rc<dyn TaskControl>> = Rc::pin(Detached {
                number: next_task_number(),
                given_name: Cell::new(None),
            });
            return Task { output, control };
        }
        let cell = self.add_task(|id, remote, spare| {
            let waker = TaskWaker::new(id, remote, spare);
            let header = TaskHeader {
                output: FutureCell::judged(self.downgrade(), judge),
                waker: Waker::from(Arc::clone(&waker)),
                wake_state: waker,
            };
            Rc::pin(PinnedFuture::new(header, coroutine))
        });
        let output = Future::from_completion(cell.clone());
        Task {
            output,
            control: cell,
        }
    }

    /// Make a new pending [`Future`] bound to this loop (its done callbacks run here).
    pub fn create_future<T: 'static>(&self) -> Future<T> {
        Future::new(self)
    }

    /// Run `coroutine` as a task until it completes, and return its output (asyncio's
    /// `run_until_complete`).
    ///
    /// # Errors
    /// [`LoopError::Stopped`] if [`stop`](Self::stop) ended the run first (the task stays
    /// scheduled), [`LoopError::Cancelled`] if the task was cancelled,
    /// [`LoopError::Panicked`] if it panicked (the panic also goes to the exception handler),
    /// and as [`run_forever`](Self::run_forever).
    pub fn run_until_complete<F>(&self, coroutine: F) -> io::Result<F::Output>
    where
        F: StdFuture + 'static,
    {
        let task = self.create_judged_task(coroutine, None);
        self.run_until(|_| task.done())?;
        task.take_result()
    }
}

/// What a `Task` handle (and a [`TaskRef`]) needs of its task, whatever the coroutine's type.
pub(crate) trait TaskControl {
    fn request_cancel(&self);

    /// Cancel the task now, not at its next step: its coroutine is dropped before this
    /// returns (unless it is being polled right now, which only the task itself could ask:
    /// then at its next step, as `request_cancel`). For a task group whose owner is gone.
    fn cancel_now(self: Pin<Rc<Self>>);

    /// Something to wait on until the task is done.
    fn watch(self: Pin<Rc<Self>>) -> Box<dyn Waitable>;

    fn is_done(&self) -> bool;

    fn is_cancelled(&self) -> bool;

    fn name(&self) -> String;

    fn set_name(&self, name: String);
}

/// A detached task's name: its number (asyncio's `Task-N`), and the name given to it, if any.
/// (A running task keeps its number in its `TaskWaker` and a given name with its output's
/// rarely used part, so that naming tasks costs a spawn no larger allocation.)
#[allow(clippy::box_collection)]
fn name_of(number: u32, given: &Cell<Option<Box<String>>>) -> String {
    let name = given.take();
    let text = match &name {
        Some(name) => String::clone(name),
        None => format!("Task-{number}"),
    };
    given.set(name);
    text
}

/// The control of a task that never ran (made on a closed loop): it is done already.
struct Detached {
    number: u32,
    #[allow(clippy::box_collection)]
    given_name: Cell<Option<Box<String>>>,
}

impl TaskControl for Detached {
    fn request_cancel(&self) {}

    fn cancel_now(self: Pin<Rc<Self>>) {}

    fn watch(self: Pin<Rc<Self>>) -> Box<dyn Waitable> {
        Box::new(Done)
    }

    fn is_done(&self) -> bool {
        true
    }

    fn is_cancelled(&self) -> bool {
        false
    }

    fn name(&self) -> String {
        name_of(self.number, &self.given_name)
    }

    fn set_name(&self, name: String) {
        drop(self.given_name.replace(Some(Box::new(name))));
    }
}

/// A [`Waitable`] that is done.
struct Done;

impl super::wait::sealed::Sealed for Done {
    fn on_done(&self, hook: Box<dyn FnOnce()>) -> Option<super::CallbackId> {
        hook();
        None
    }

    fn forget_on_done(&self, _id: super::CallbackId) {}

    fn watch(&self, _slot: &super::future::WakerSlot, _waker: &Waker) -> bool {
        true
    }

    fn unwatch(&self, _slot: &super::future::WakerSlot) {}
}

impl Waitable for Done {
    fn is_done(&self) -> bool {
        true
    }
    fn is_error(&self) -> bool {
        false
    }
    fn wake_when_done(&self, waker: &Waker) {
        waker.wake_by_ref();
    }
}

/// A task's state, kept beside its coroutine in the task's one allocation (see [`TaskCell`]).
struct TaskHeader<T> {
    /// The task's outcome.
    output: FutureCell<T>,
    waker: Waker,
    /// Also holds the task's cancel request and number, in what was its padding.
    wake_state: Arc<TaskWaker>,
}

/// A task: its coroutine, kept in place (pinned) beside its state in one `Rc` made with
/// `Rc::pin`, so that a spawn allocates no box for the coroutine. The coroutine is dropped as
/// soon as it completes; while it is polled the cell refuses a nested poll or drop of it
/// (`tulip_sys::pinned`, where the `unsafe` of pinning it in a shared allocation lives).
type TaskCell<F> = PinnedFuture<TaskHeader<<F as StdFuture>::Output>, F>;

impl<F: StdFuture + 'static> Runnable for TaskCell<F> {
    fn step(self: Pin<Rc<Self>>, lp: &EventLoop) -> bool {
        let header = self.header();
        // Cleared before polling: a wake during the poll queues the task again.
        header.wake_state.queued.store(false, Ordering::Release);
        // The step's budget, and the current task for `current_task`, for the whole step.
        let _step = Budget::enter(header.wake_state.id);
        if self.is_busy() {
            // Polled from inside its own poll (a nested `run_*`): not now.
            return false;
        }
        if header.wake_state.cancel_requested.load(Ordering::Relaxed) {
            finish_cancelled(&self, lp);
            return true;
        }
        if !self.has_future() {
            return true;
        }
        let mut cx = Context::from_waker(&header.waker);
        let mut outcome = Polled::Empty;
        let describe = || std::any::type_name::<F>().into();
        let completed = lp.invoke(describe, || outcome = self.as_ref().poll_future(&mut cx));
        if !completed {
            drop_finished(lp, &self);
            let _ = output(&self).set_exception(LoopError::Panicked.into());
            return true;
        }
        match outcome {
            // Cancelled from inside this very step, whether the coroutine then returned or
            // suspended: it stops here, and the task is cancelled (as asyncio marks a task that
            // cancels itself right before returning).
            _ if header.wake_state.cancel_requested.load(Ordering::Relaxed) => {
                finish_cancelled(&self, lp);
                true
            }
            Polled::Ready(value) => {
                if !drop_finished(lp, &self) {
                    // As an exception raised in a `finally` after the return: it wins.
                    drop(value);
                    let _ = output(&self).set_exception(LoopError::Panicked.into());
                } else if header.output.is_cancellation(&value) {
                    // asyncio: a `CancelledError` escaping the coroutine (here, returned by
                    // `?` from a cancelled future it awaited) cancels its task.
                    drop(value);
                    output(&self).cancel();
                } else {
                    let _ = header.output.set_result_with(value, || output(&self));
                }
                true
            }
            Polled::Pending => false,
            // Not reached: busy and empty were answered above.
            Polled::Busy => false,
            Polled::Empty => true,
        }
    }

    fn discard(self: Pin<Rc<Self>>) {
        // A task being polled right now (closing from inside it is refused) cannot be here;
        // if it were, the cell would refuse, and the coroutine would go with the cell.
        self.as_ref().drop_future();
        let _ = output(&self).set_exception(LoopError::Closed.into());
    }

    fn task_ref(self: Pin<Rc<Self>>) -> TaskRef {
        TaskRef::new(self)
    }
}

impl<F: StdFuture + 'static> Completion<F::Output> for TaskCell<F> {
    fn cell(&self) -> &FutureCell<F::Output> {
        &self.header().output
    }

    fn take_any(&self) -> Box<dyn std::any::Any> {
        take_boxed(&self.header().output)
    }

    fn cancel_erased(self: Pin<Rc<Self>>) {
        self.request_cancel();
    }
}

/// Drop a coroutine that returned or panicked, a panic in its destructors going to the
/// exception handler like any callback's; false if one panicked.
fn drop_finished<F: StdFuture>(lp: &EventLoop, task: &Pin<Rc<TaskCell<F>>>) -> bool {
    let dropped = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        task.as_ref().drop_future();
    }));
    let Err(payload) = dropped else {
        return true;
    };
    let describe = format!("dropping the finished {}", std::any::type_name::<F>());
    lp.call_exception_handler(&crate::ExceptionContext::new(describe, payload));
    false
}

/// Drop the coroutine where it is suspended (its destructors run) and complete the task as
/// cancelled; a panic in a destructor goes to the exception handler like any callback's and
/// fails the task with `Panicked` instead. The task or future it was suspended on is
/// cancelled too (see `cancel_scope.rs`); this task does not wait for that to finish.
fn finish_cancelled<F: StdFuture + 'static>(task: &Pin<Rc<TaskCell<F>>>, lp: &EventLoop) {
    let describe = || format!("dropping the cancelled {}", std::any::type_name::<F>()).into();
    let dropped = lp.invoke(describe, || {
        // No target: the coroutine itself is no handle its scope could be asked about.
        cancel_scope::cancel_by(None, || {
            task.as_ref().drop_future();
        });
    });
    if dropped {
        output(task).cancel();
    } else {
        // As a `finally` that raises: the task fails with it instead of being cancelled.
        let _ = output(task).set_exception(LoopError::Panicked.into());
    }
}

/// The task's outcome as a `Future` handle (a cheap `Rc` clone of the task).
fn output<F: StdFuture + 'static>(task: &Pin<Rc<TaskCell<F>>>) -> Future<F::Output> {
    Future::from_completion(task.clone())
}

/// The task's waker goes back to its loop for the next task when nothing else holds it: the
/// header's own two references (its `Arc` and the `Waker` made of it) are the only ones, so
/// no wake of this task can come later. (A clone kept by a future it awaited keeps it out.)
/// The coroutine, dropped before the header, has let go of any clone it held.
impl<T> Drop for TaskHeader<T> {
    fn drop(&mut self) {
        if Arc::strong_count(&self.wake_state) == 2 && Arc::weak_count(&self.wake_state) == 0 {
            if let Some(lp) = self.output.weak_loop().upgrade() {
                lp.recycle_task_waker(Arc::clone(&self.wake_state));
            }
        }
    }
}

impl<F: StdFuture + 'static> TaskControl for TaskCell<F> {
    fn request_cancel(&self) {
        let header = self.header();
        header
            .wake_state
            .cancel_requested
            .store(true, Ordering::Relaxed);
        header.waker.wake_by_ref();
    }

    fn cancel_now(self: Pin<Rc<Self>>) {
        if self.header().output.is_done() {
            return;
        }
        if self.is_busy() {
            self.request_cancel();
            return;
        }
        // Its queued step, if any, then finds it cancelled and done, and the loop forgets it.
        self.request_cancel();
        match self.header().output.weak_loop().upgrade() {
            Some(lp) => finish_cancelled(&self, &lp),
            None => {
                self.as_ref().drop_future();
                output(&self).cancel();
            }
        }
    }

    fn watch(self: Pin<Rc<Self>>) -> Box<dyn Waitable> {
        Box::new(output(&self))
    }

    fn is_done(&self) -> bool {
        self.header().output.is_done()
    }

    fn is_cancelled(&self) -> bool {
        self.header().output.is_cancelled()
    }

    fn name(&self) -> String {
        match self.header().output.given_name() {
            Some(name) => name,
            None => format!("Task-{}", self.header().wake_state.number),
        }
    }

    fn set_name(&self, name: String) {
        self.header().output.set_given_name(name);
    }
}

/// A task's `Waker`: thread-safe, so it holds only the task's id, its `queued` flag and the
/// loop's thread-safe queue. Reused by a later task of the same loop once its task is
/// dropped and no clone of it is left (see the `Drop` of `TaskHeader`).
pub(crate) struct TaskWaker {
    id: TaskId,
    /// True from a wake until the task's next step begins.
    queued: AtomicBool,
    /// Set by `cancel` (only on the loop's thread: an atomic only because this is shared
    /// with the waker; read and written `Relaxed`). Here rather than in the task's cell,
    /// with `number`, to keep the cell in a smaller malloc size class.
    cancel_requested: AtomicBool,
    /// asyncio's `Task-N` (see `name_of`).
    number: u32,
    remote: Arc<Remote>,
}

impl TaskWaker {
    /// The waker of new task `id`: `spare`, a dropped task's, if given and still unshared,
    /// else a new one.
    fn new(id: TaskId, remote: &Arc<Remote>, spare: Option<Arc<TaskWaker>>) -> Arc<TaskWaker> {
        let number = next_task_number();
        if let Some(mut spare) = spare {
            // `get_mut` checks (with the ordering a last reference needs) that no clone is
            // left anywhere: the spare was recycled with none, and none can be made since.
            if let Some(state) = Arc::get_mut(&mut spare) {
                if Arc::ptr_eq(&state.remote, remote) {
                    state.id = id;
                    *state.queued.get_mut() = true;
                    *state.cancel_requested.get_mut() = false;
                    state.number = number;
                    return spare;
                }
            }
        }
        Arc::new(TaskWaker {
            id,
            queued: AtomicBool::new(true),
            cancel_requested: AtomicBool::new(false),
            number,
            remote: Arc::clone(remote),
        })
    }
}

impl Wake for TaskWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    // Inlined into std's waker vtable entry, which calls it.
    #[inline]
    fn wake_by_ref(self: &Arc<Self>) {
        if self.queued.swap(true, Ordering::AcqRel) {
            return;
        }
        let queued_locally =
            with_this_loop(&self.remote, |lp| lp.try_queue_task(self.id).then_some(()));
        if queued_locally.is_none() {
            // Another thread, or the loop is not running: the thread-safe queue and the
            // notifier. A closed loop drops the wake (its tasks are gone).
            self.remote.wake_task(self.id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every task is this allocation, its coroutine inside: for a coroutine of a few bytes
    /// (an `async` block that holds nothing across an await), with the `Rc`'s two counts it
    /// must stay a request of at most 120 bytes, a 128-byte glibc chunk, the largest its fast
    /// bins keep (it was 168 bytes, a 192-byte chunk; one malloc size class further,
    /// spawning once measured 15-25% slower). A larger coroutine or output adds its size.
    #[test]
    #[cfg(target_pointer_width = "64")]
    fn a_task_cell_stays_within_its_allocation_size_class() {
        let small = async { 1usize };
        assert!(std::mem::size_of_val(&small) <= 2);
        fn size_of_cell<F: StdFuture>(_: &F) -> usize {
            std::mem::size_of::<TaskCell<F>>()
        }
        let size = size_of_cell(&small);
        assert!(size <= 104, "{size}");
    }
}
