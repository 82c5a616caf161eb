//! The event loop: what it holds, how it is made and closed, and the calls that schedule work
//! on it. How it runs (one iteration, the batch, stopping) is in `run.rs`; the parts it is made
//! of each have a file here: the ready queue, the timer heap, the fd table, the signal table,
//! the tasks it steps, the thread-safe handle, the running-loop slot of the thread.
//!
//! The rest of the crate reaches the loop through [`EventLoop`]'s methods and a few small
//! named types ([`WeakLoop`], [`IoSource`], [`Runnable`], [`Direction`]), never through the
//! state it holds.

mod clock;
mod exception;
mod fd_table;
mod fork;
mod handle;
mod loop_handle;
mod ready_queue;
mod run;
mod running;
mod signals;
mod slot;
mod stats;
mod task_table;
mod timer_heap;
mod timer_sort;

pub use clock::ManualClock;
pub use exception::{ExceptionContext, ExceptionHandler};
pub use handle::{Handle, TimerHandle};
pub use loop_handle::LoopHandle;
pub use running::get_running_loop;
pub use stats::Stats;

pub(crate) use fd_table::IoSource;
pub(crate) use loop_handle::Remote;
pub(crate) use ready_queue::Direction;
pub(crate) use running::{is_running_loop, runs_another_loop, with_running_loop, with_this_loop};
pub(crate) use task_table::{Runnable, TaskId};

use std::cell::{Cell, RefCell};
use std::fmt;
use std::io;
use std::os::fd::RawFd;
use std::rc::{Rc, Weak};
use std::sync::Arc;
use std::time::Duration;

use tulip_sys::{Backend, Event, Selector, Token};

use crate::aio::AioState;
use crate::blocking_pool::LazyPool;
use crate::process::ChildTable;
use crate::LoopError;
use clock::Clock;
use fd_table::FdTable;
use handle::{new_callback, State};
use ready_queue::{ReadyItem, ReadyQueue};
use signals::SignalTable;
use slot::{PersistentCallback, Slot};
use stats::Counters;
use task_table::TaskTable;
use timer_heap::TimerHeap;

/// The environment variable that turns debug mode on for new loops: `TULIP_DEBUG=1`.
pub const DEBUG_ENV: &str = "TULIP_DEBUG";

/// The default of [`EventLoop::slow_callback_duration`], as in asyncio.
pub const DEFAULT_SLOW_CALLBACK_DURATION: Duration = Duration::from_millis(100);

/// The token of the loop's cross-thread notifier. fds are never this large, so it cannot
/// clash with an fd's token.
const NOTIFIER_TOKEN: Token = Token(usize::MAX);
/// The token of the loop's signal pipe.
const SIGNAL_TOKEN: Token = Token(usize::MAX - 1);

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
enum RunState {
    Idle,
    Running,
    Closed,
}

/// An asyncio-style event loop: a ready queue of callbacks, a timer heap and a [`Selector`],
/// run on one thread.
///
/// Callbacks receive the loop (`|lp: &EventLoop| ...`), so they can schedule more work without
/// holding a reference to it. The loop is not `Send`: its non-thread-safe methods cannot be
/// called from another thread; a [`LoopHandle`] ([`EventLoop::handle`]) reaches it from there.
///
/// ```compile_fail
/// let lp = tulip::EventLoop::new().unwrap();
/// std::thread::spawn(move || lp.stop()); // EventLoop is !Send
/// ```
///
/// Dropping the loop drops every pending callback and releases its selector, its notifier and
/// its signal subscriptions, as [`close`](EventLoop::close) does.
pub struct EventLoop {
    inner: Rc<LoopInner>,
    /// The loop the user made closes when dropped; the running-loop references that
    /// [`spawn`](crate::spawn) and the coroutine helpers use ([`EventLoop::running_ref`]) do not.
    owner: bool,
}

/// Everything a loop holds. Shared, through an `Rc`, by the user's [`EventLoop`] and the
/// running-loop reference kept in a thread-local while it runs (see `running.rs`). Private to
/// this folder: the rest of the crate goes through `EventLoop`'s methods.
struct LoopInner {
    backend: Backend,
    /// `None` once closed.
    selector: RefCell<Option<Box<dyn Selector>>>,
    /// The events buffer, reused by every `select`.
    events: RefCell<Vec<Event>>,
    ready: RefCell<ReadyQueue>,
    timers: RefCell<TimerHeap>,
    fds: RefCell<FdTable>,
    signals: RefCell<SignalTable>,
    remote: Arc<Remote>,
    clock: Clock,
    state: Cell<RunState>,
    stopping: Cell<bool>,
    /// The last generation given to a reader, writer or signal handler registration.
    generation: Cell<u64>,
    counters: Counters,
    debug: Cell<bool>,
    slow_callback_duration: Cell<Duration>,
    exception_handler: RefCell<Option<Rc<ExceptionHandler>>>,
    /// The tasks this loop runs.
    tasks: RefCell<TaskTable>,
    /// The thread pool of `run_in_executor`, started at its first use.
    blocking_pool: LazyPool,
    /// Asynchronous file I/O: its engine, started at the first request.
    aio: AioState,
    /// The process fork generation (`tulip_sys::fork`) the kernel objects above belong to:
    /// another one means this process is a child that inherited the loop (see `fork.rs`).
    fork_generation: Cell<u64>,
    /// The children the SIGCHLD child watcher looks after (`process/`), made at first use.
    children: RefCell<Option<Rc<ChildTable>>>,
}

/// A reference to a loop that does not keep it alive (nor closes it): what futures, sources,
/// servers and transports hold.
#[derive(Clone, Default)]
pub(crate) struct WeakLoop(Weak<LoopInner>);

impl fmt::Debug for WeakLoop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let alive = self.0.strong_count() > 0;
        f.debug_struct("WeakLoop").field("alive", &alive).finish()
    }
}

impl WeakLoop {
    /// A non-owning [`EventLoop`] reference, if the loop still exists.
    #[inline]
    pub(crate) fn upgrade(&self) -> Option<EventLoop> {
        self.0.upgrade().map(|inner| EventLoop {
            inner,
            owner: false,
        })
    }

    /// Whether this refers to `lp`.
    pub(crate) fn is(&self, lp: &EventLoop) -> bool {
        std::ptr::eq(Rc::as_ptr(&lp.inner), self.0.as_ptr())
    }
}

impl EventLoop {
    /// A loop on the backend `TULIP_BACKEND` names, or the best one of this OS.
    ///
    /// # Errors
    /// An invalid `TULIP_BACKEND` (see [`Backend::from_env`]); the kernel's error if the
    /// selector or its notifier cannot be created.
    pub fn new() -> io::Result<EventLoop> {
        EventLoop::with_backend(Backend::from_env()?)
    }

    /// A loop on `backend`, with the monotonic clock.
    ///
    /// # Errors
    /// `Unsupported` if this OS lacks the backend; the kernel's error if the selector or its
    /// notifier cannot be created.
    pub fn with_backend(backend: Backend) -> io::Result<EventLoop> {
        EventLoop::build(backend, Clock::monotonic())
    }

    /// A loop on `backend` whose time is `clock`, a virtual clock: when the loop would sleep
    /// until a timer, it jumps the clock to it instead (if readers, writers or signal handlers
    /// are registered, it first waits that long in real time for them). See [`ManualClock`].
    ///
    /// # Errors
    /// As [`EventLoop::with_backend`].
    pub fn with_clock(backend: Backend, clock: ManualClock) -> io::Result<EventLoop> {
        EventLoop::build(backend, Clock::Manual(clock))
    }

    fn build(backend: Backend, clock: Clock) -> io::Result<EventLoop> {
        let mut selector = backend.open()?;
        // Before the loop's first kernel object can be inherited by a child: see `fork.rs`.
        tulip_sys::fork::install()?;
        let fork_generation = tulip_sys::fork::generation();
        let notifier = selector.notifier(NOTIFIER_TOKEN)?;
        let debug = std::env::var_os(DEBUG_ENV).is_some_and(|v| !v.is_empty() && v != "0");
        let inner = LoopInner {
            backend,
            selector: RefCell::new(Some(selector)),
            events: RefCell::new(Vec::new()),
            ready: RefCell::new(ReadyQueue::default()),
            timers: RefCell::new(TimerHeap::new()),
            fds: RefCell::new(FdTable::default()),
            signals: RefCell::new(SignalTable::default()),
            remote: Arc::new(Remote::new(notifier)),
            clock,
            state: Cell::new(RunState::Idle),
            stopping: Cell::new(false),
            generation: Cell::new(0),
            counters: Counters::default(),
            debug: Cell::new(debug),
            slow_callback_duration: Cell::new(DEFAULT_SLOW_CALLBACK_DURATION),
            exception_handler: RefCell::new(None),
            tasks: RefCell::new(TaskTable::default()),
            blocking_pool: LazyPool::new(),
            aio: AioState::new(),
            fork_generation: Cell::new(fork_generation),
            children: RefCell::new(None),
        };
        Ok(EventLoop {
            inner: Rc::new(inner),
            owner: true,
        })
    }

    /// Another reference to this loop that does not close it when dropped: what the
    /// thread-local running loop holds.
    pub(crate) fn running_ref(&self) -> EventLoop {
        EventLoop {
            inner: Rc::clone(&self.inner),
            owner: false,
        }
    }

    /// A weak reference to this loop, for futures, sources and transports: it does not keep
    /// the loop alive.
    #[inline]
    pub(crate) fn downgrade(&self) -> WeakLoop {
        WeakLoop(Rc::downgrade(&self.inner))
    }

    /// The pool `run_in_executor` runs its jobs on.
    pub(crate) fn blocking_pool(&self) -> &LazyPool {
        &self.inner.blocking_pool
    }

    /// The children the SIGCHLD watcher looks after on this loop (`process/`).
    pub(crate) fn child_table(&self) -> Rc<ChildTable> {
        let mut children = self.inner.children.borrow_mut();
        Rc::clone(children.get_or_insert_with(Rc::default))
    }

    /// The state of asynchronous file I/O (`aio/`).
    pub(crate) fn aio_state(&self) -> &AioState {
        &self.inner.aio
    }

    /// The selector backend this loop runs on.
    pub fn backend(&self) -> Backend {
        self.inner.backend
    }

    /// The loop's time: a monotonic duration since the loop was created (or the
    /// [`ManualClock`]'s time). Timers are scheduled on this clock.
    #[inline]
    pub fn time(&self) -> Duration {
        self.inner.clock.now()
    }

    /// True while `run_forever`, `run_until` or `run_once` is running this loop.
    pub fn is_running(&self) -> bool {
        self.inner.state.get() == RunState::Running
    }

    /// True once the loop was closed.
    pub fn is_closed(&self) -> bool {
        self.inner.state.get() == RunState::Closed
    }

    /// A `Send + Sync` handle through which other threads schedule callbacks on this loop.
    pub fn handle(&self) -> LoopHandle {
        LoopHandle {
            remote: self.inner.remote.clone(),
        }
    }

    /// The loop's counters. Cheap: a copy of a few integers.
    pub fn stats(&self) -> Stats {
        let mut stats = self.inner.counters.snapshot();
        let timers = self.inner.timers.borrow();
        stats.timer_heap_len = timers.len();
        stats.timer_heap_capacity = timers.capacity();
        stats.timers_cancelled = timers.book().cancelled.get();
        stats.tasks = self.inner.tasks.borrow().len();
        stats.executor_threads = self.inner.blocking_pool.threads();
        stats
    }

    /// `Closed` once closed; `Forked` in a child process until [`after_fork`](Self::after_fork).
    /// One load of a `Cell` and one relaxed atomic load: cheap on every hot path.
    #[inline]
    pub(crate) fn check_open(&self) -> io::Result<()> {
        if self.is_closed() {
            return Err(LoopError::Closed.into());
        }
        if self.is_forked() {
            return Err(LoopError::Forked.into());
        }
        Ok(())
    }

    fn next_generation(&self) -> u64 {
        let generation = self.inner.generation.get() + 1;
        self.inner.generation.set(generation);
        generation
    }

    /// Schedule `callback` to run in the next batch, after those already scheduled (FIFO).
    /// A callback scheduled while a batch runs waits for the next iteration.
    ///
    /// # Errors
    /// [`LoopError::Closed`] if the loop is closed.
    pub fn call_soon(&self, callback: impl FnOnce(&EventLoop) + 'static) -> io::Result<Handle> {
        self.check_open()?;
        let callback = new_callback(State::Ready, callback);
        self.push_ready(ReadyItem::Callback(callback.clone()));
        Ok(Handle { callback })
    }

    /// Put `item` at the end of the ready queue, after what other threads queued before it:
    /// the loop's thread and the thread-safe queue make one FIFO.
    #[inline]
    fn push_ready(&self, item: ReadyItem) {
        self.push_ready_with(|ready| ready.push(item));
    }

    /// Push onto the ready queue with `push`, once what other threads queued is on it (see
    /// [`push_ready`](Self::push_ready)).
    #[inline]
    fn push_ready_with(&self, push: impl FnOnce(&mut ReadyQueue)) {
        let mut ready = self.inner.ready.borrow_mut();
        self.inner.remote.absorb(|queued| ready.push(queued));
        push(&mut ready);
    }

    /// Schedule `callback` to run once `delay` has passed on the loop's clock. Timers run in
    /// deadline order, ties in the order they were scheduled.
    ///
    /// # Errors
    /// [`LoopError::Closed`] if the loop is closed.
    pub fn call_later(
        &self,
        delay: Duration,
        callback: impl FnOnce(&EventLoop) + 'static,
    ) -> io::Result<TimerHandle> {
        self.call_at(self.time().saturating_add(delay), callback)
    }

    /// Schedule `callback` to run once the loop's clock reaches `when` (see
    /// [`EventLoop::time`]); a time in the past runs it in the next iteration.
    ///
    /// # Errors
    /// [`LoopError::Closed`] if the loop is closed.
    pub fn call_at(
        &self,
        when: Duration,
        callback: impl FnOnce(&EventLoop) + 'static,
    ) -> io::Result<TimerHandle> {
        self.check_open()?;
        let callback = new_callback(State::Scheduled, callback);
        let mut timers = self.inner.timers.borrow_mut();
        timers.push(when, callback.clone());
        Ok(TimerHandle {
            handle: Handle { callback },
            when,
            book: timers.book().clone(),
        })
    }

    /// [`LoopHandle::call_soon_threadsafe`] from the loop's own thread (for symmetry with
    /// asyncio): `callback` joins the one FIFO that `call_soon` and other threads' callbacks
    /// share. No wake-up is needed: this thread is the loop's.
    ///
    /// # Errors
    /// [`LoopError::Closed`] if the loop is closed.
    pub fn call_soon_threadsafe(
        &self,
        callback: impl FnOnce(&EventLoop) + Send + 'static,
    ) -> io::Result<()> {
        self.check_open()?;
        self.push_ready(ReadyItem::Remote(Box::new(callback)));
        Ok(())
    }

    /// Run `callback` each time `fd` is readable, until [`remove_reader`](Self::remove_reader).
    /// Replaces `fd`'s reader if it has one. A reader and a writer of one fd share one
    /// selector registration. The loop does not own `fd`: remove the reader before closing it.
    ///
    /// # Errors
    /// [`LoopError::Closed`]; the selector's errors (`EBADF` for a closed fd, `InvalidInput`
    /// for a negative fd or one `select(2)` cannot hold, `EPERM` from epoll for a regular
    /// file).
    pub fn add_reader(
        &self,
        fd: RawFd,
        callback: impl FnMut(&EventLoop) + 'static,
    ) -> io::Result<()> {
        self.add_io(fd, Direction::Read, Box::new(callback))
    }

    /// Run `callback` each time `fd` is writable, until [`remove_writer`](Self::remove_writer).
    /// As [`add_reader`](Self::add_reader) otherwise.
    ///
    /// # Errors
    /// As [`add_reader`](Self::add_reader).
    pub fn add_writer(
        &self,
        fd: RawFd,
        callback: impl FnMut(&EventLoop) + 'static,
    ) -> io::Result<()> {
        self.add_io(fd, Direction::Write, Box::new(callback))
    }

    /// Stop watching `fd` for reading; returns whether it had a reader. A readiness event
    /// already collected for that reader will not run it (nor a reader added after). In a
    /// child that inherited the loop through `fork`, before [`after_fork`](Self::after_fork),
    /// only the loop forgets the reader: the selector, shared with the parent, is left alone.
    pub fn remove_reader(&self, fd: RawFd) -> bool {
        self.remove_io(fd, Direction::Read)
    }

    /// Stop watching `fd` for writing; returns whether it had a writer. As
    /// [`remove_reader`](Self::remove_reader) otherwise.
    pub fn remove_writer(&self, fd: RawFd) -> bool {
        self.remove_io(fd, Direction::Write)
    }

    fn add_io(
        &self,
        fd: RawFd,
        direction: Direction,
        callback: PersistentCallback,
    ) -> io::Result<()> {
        self.check_open()?;
        let slot = Slot::new(self.next_generation(), callback);
        let replaced = self.with_selector(|selector| {
            self.inner
                .fds
                .borrow_mut()
                .add(selector, fd, direction, slot)
        })?;
        // Dropped outside the borrows: a closure's captures may run code in their `Drop`.
        drop(replaced);
        Ok(())
    }

    /// Call `f` with the selector, borrowed for the call.
    ///
    /// # Errors
    /// [`LoopError::Closed`] once the loop has released its selector; `f`'s error.
    fn with_selector<R>(
        &self,
        f: impl FnOnce(&mut dyn Selector) -> io::Result<R>,
    ) -> io::Result<R> {
        let mut selector = self.inner.selector.borrow_mut();
        f(selector.as_deref_mut().ok_or(LoopError::Closed)?)
    }

    fn remove_io(&self, fd: RawFd, direction: Direction) -> bool {
        let (found, callback) = {
            let mut selector = self.inner.selector.borrow_mut();
            let Some(selector) = selector.as_deref_mut() else {
                return false;
            };
            // In a child that inherited the loop, the selector is the parent's: only the table
            // forgets the fd (and `after_fork` will not carry it over).
            let selector: Option<&mut dyn Selector> = if self.is_forked() {
                None
            } else {
                Some(selector)
            };
            self.inner.fds.borrow_mut().remove(selector, fd, direction)
        };
        drop(callback);
        found
    }

    /// Run `callback` on the loop's thread each time signal `signum` arrives, until
    /// [`remove_signal_handler`](Self::remove_signal_handler). Replaces the signal's handler
    /// if this loop has one. Several loops may handle one signal: each is told.
    ///
    /// # Errors
    /// [`LoopError::Closed`]; `InvalidInput` for a signal that cannot be caught (`SIGKILL`,
    /// `SIGSTOP`) or does not exist; the kernel's error if the wake-up pipe cannot be made.
    pub fn add_signal_handler(
        &self,
        signum: i32,
        callback: impl FnMut(&EventLoop) + 'static,
    ) -> io::Result<()> {
        self.check_open()?;
        let slot = Slot::new(self.next_generation(), Box::new(callback));
        let replaced = self.with_selector(|selector| {
            let mut signals = self.inner.signals.borrow_mut();
            signals.add(selector, SIGNAL_TOKEN, signum, slot)
        })?;
        drop(replaced);
        Ok(())
    }

    /// Stop handling `signum`; returns whether this loop had a handler for it. When no loop
    /// handles it any more, the signal's previous disposition is restored.
    pub fn remove_signal_handler(&self, signum: i32) -> bool {
        let (found, callback) = self.inner.signals.borrow_mut().remove(signum);
        drop(callback);
        found
    }

    /// Whether debug mode is on: it reports callbacks slower than
    /// [`slow_callback_duration`](Self::slow_callback_duration) and times each `select`
    /// ([`Stats::select_time`](crate::Stats::select_time)). Off by default, on if
    /// `TULIP_DEBUG` is set (and not `0`) when the loop is made.
    pub fn debug(&self) -> bool {
        self.inner.debug.get()
    }

    /// Turn debug mode on or off.
    pub fn set_debug(&self, enabled: bool) {
        self.inner.debug.set(enabled);
    }

    /// How long a callback may run before debug mode reports it (on stderr, and in
    /// [`Stats::slow_callbacks`]). 100 ms by default.
    pub fn slow_callback_duration(&self) -> Duration {
        self.inner.slow_callback_duration.get()
    }

    /// Set the threshold of [`slow_callback_duration`](Self::slow_callback_duration).
    pub fn set_slow_callback_duration(&self, threshold: Duration) {
        self.inner.slow_callback_duration.set(threshold);
    }

    /// Give panics caught in callbacks to `handler` instead of printing them. The loop keeps
    /// running whatever the handler does; a panic in the handler itself is printed.
    pub fn set_exception_handler(&self, handler: impl Fn(&EventLoop, &ExceptionContext) + 'static) {
        let old = self.inner.exception_handler.replace(Some(Rc::new(handler)));
        drop(old);
    }

    /// The exception handler set with [`set_exception_handler`](Self::set_exception_handler),
    /// or `None` for the default (asyncio's `get_exception_handler`): to call it, or to wrap it
    /// and set it again later.
    pub fn exception_handler(&self) -> Option<Rc<ExceptionHandler>> {
        self.inner.exception_handler.borrow().clone()
    }

    /// Go back to the default exception handler.
    pub fn clear_exception_handler(&self) {
        let old = self.inner.exception_handler.replace(None);
        drop(old);
    }

    /// Hand `context` to the exception handler (the one set, or the default).
    pub fn call_exception_handler(&self, context: &ExceptionContext) {
        let handler = self.inner.exception_handler.borrow().clone();
        let Some(handler) = handler else {
            self.default_exception_handler(context);
            return;
        };
        let call = std::panic::AssertUnwindSafe(|| handler(self, context));
        if std::panic::catch_unwind(call).is_err() {
            eprintln!("tulip: the exception handler panicked while handling: {context}");
        }
    }

    /// The default exception handler: print `context` to stderr.
    pub fn default_exception_handler(&self, context: &ExceptionContext) {
        eprintln!("tulip: {context}");
    }

    /// Close the loop: drop every pending callback, reader, writer and signal handler (the
    /// previous signal dispositions come back), and release the selector. Afterwards every
    /// scheduling call and every `run_*` returns [`LoopError::Closed`], and so does
    /// [`LoopHandle::call_soon_threadsafe`]. Closing twice is fine.
    ///
    /// # Errors
    /// [`LoopError::Running`] if the loop is running (from one of its callbacks).
    pub fn close(&self) -> io::Result<()> {
        match self.inner.state.get() {
            RunState::Running => Err(LoopError::Running.into()),
            RunState::Closed => Ok(()),
            RunState::Idle => {
                self.inner.state.set(RunState::Closed);
                self.release();
                Ok(())
            }
        }
    }

    /// Drop everything the loop holds. Each table is emptied under its own short borrow and the
    /// callbacks dropped afterwards, as dropping a closure runs user code.
    fn release(&self) {
        if self.is_forked() {
            // A child that inherited the loop: what the kernel objects hold is the parent's.
            self.abandon_inherited();
        }
        // First, while the selector is there: requests in flight complete (their buffers may
        // be written into until then), and the wakes they make are dropped with the queue.
        self.close_aio();
        let remote = self.inner.remote.close();
        let ready = self.inner.ready.borrow_mut().drain();
        let timers = self.inner.timers.borrow_mut().drain();
        let fds = self.inner.fds.borrow_mut().drain();
        let signals = self.inner.signals.borrow_mut().drain();
        let selector = self.inner.selector.borrow_mut().take();
        let handler = self.inner.exception_handler.borrow_mut().take();
        let tasks = self.inner.tasks.borrow_mut().drain();
        let children = self.inner.children.borrow_mut().take();
        for timer in &timers {
            timer.cancel();
        }
        // Pending tasks go last: dropping a coroutine runs its destructors, which may still
        // look at the (now empty) loop.
        drop((
            remote, ready, timers, fds, signals, selector, handler, children,
        ));
        for task in tasks {
            task.discard();
        }
        // Last: waits for the jobs it runs and joins its threads.
        let pool = self.inner.blocking_pool.take();
        drop(pool);
    }
}

impl Drop for EventLoop {
    #[inline]
    fn drop(&mut self) {
        if self.owner {
            self.inner.state.set(RunState::Closed);
            self.release();
        }
    }
}

impl fmt::Debug for EventLoop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventLoop")
            .field("backend", &self.inner.backend)
            .field("state", &self.inner.state.get())
            .field("time", &self.time())
            .field("debug", &self.inner.debug.get())
            .finish_non_exhaustive()
    }
}
