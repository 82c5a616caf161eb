//! The event loop: what it holds, how it is made and closed, and the calls that schedule work
//! on it. How it runs (one iteration, the batch, stopping) is in `run.rs`.

use std::cell::{Cell, RefCell};
use std::fmt;
use std::io;
use std::ops::Deref;
use std::os::fd::RawFd;
use std::rc::{Rc, Weak};
use std::sync::Arc;
use std::time::Duration;

use tulip_sys::{Backend, Event, Selector, Token};

use crate::clock::Clock;
use crate::exception::{ExceptionContext, ExceptionHandler};
use crate::executor::ThreadPool;
use crate::handle::{new_callback, Handle, State, TimerHandle};
use crate::io::IoTable;
use crate::ready::{Direction, ReadyItem, ReadyQueue};
use crate::signals::SignalTable;
use crate::slot::{PersistentCallback, Slot};
use crate::stats::Counters;
use crate::task::TaskTable;
use crate::threadsafe::{LoopHandle, Remote};
use crate::timer::TimerHeap;
use crate::{LoopError, ManualClock, Stats};

/// The environment variable that turns debug mode on for new loops: `TULIP_DEBUG=1`.
pub const DEBUG_ENV: &str = "TULIP_DEBUG";

/// The default of [`EventLoop::slow_callback_duration`], as in asyncio.
pub const DEFAULT_SLOW_CALLBACK_DURATION: Duration = Duration::from_millis(100);

/// The token of the loop's cross-thread notifier. fds are never this large, so it cannot
/// clash with an fd's token.
pub(crate) const NOTIFIER_TOKEN: Token = Token(usize::MAX);
/// The token of the loop's signal pipe.
pub(crate) const SIGNAL_TOKEN: Token = Token(usize::MAX - 1);

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) enum RunState {
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
/// running-loop reference kept in a thread-local while it runs (see `context.rs`).
pub struct LoopInner {
    pub(crate) backend: Backend,
    /// `None` once closed.
    pub(crate) selector: RefCell<Option<Box<dyn Selector>>>,
    /// The events buffer, reused by every `select`.
    pub(crate) events: RefCell<Vec<Event>>,
    pub(crate) ready: RefCell<ReadyQueue>,
    pub(crate) timers: RefCell<TimerHeap>,
    pub(crate) io: RefCell<IoTable>,
    pub(crate) signals: RefCell<SignalTable>,
    pub(crate) remote: Arc<Remote>,
    pub(crate) clock: Clock,
    pub(crate) state: Cell<RunState>,
    pub(crate) stopping: Cell<bool>,
    /// The last generation given to a reader, writer or signal handler registration.
    generation: Cell<u64>,
    pub(crate) counters: Counters,
    pub(crate) debug: Cell<bool>,
    pub(crate) slow_callback_duration: Cell<Duration>,
    exception_handler: RefCell<Option<Rc<ExceptionHandler>>>,
    /// The tasks this loop runs (see `task.rs`).
    pub(crate) tasks: RefCell<TaskTable>,
    /// The thread pool of `run_in_executor`, made at its first use.
    pub(crate) executor: RefCell<Option<ThreadPool>>,
    pub(crate) executor_size: Cell<usize>,
}

impl Deref for EventLoop {
    type Target = LoopInner;

    fn deref(&self) -> &LoopInner {
        &self.inner
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
        let notifier = selector.notifier(NOTIFIER_TOKEN)?;
        let debug = std::env::var_os(DEBUG_ENV).is_some_and(|v| !v.is_empty() && v != "0");
        let inner = LoopInner {
            backend,
            selector: RefCell::new(Some(selector)),
            events: RefCell::new(Vec::new()),
            ready: RefCell::new(ReadyQueue::default()),
            timers: RefCell::new(TimerHeap::new()),
            io: RefCell::new(IoTable::default()),
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
            executor: RefCell::new(None),
            executor_size: Cell::new(ThreadPool::default_size()),
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

    /// A weak reference to this loop, for futures: it does not keep the loop alive.
    pub(crate) fn weak(&self) -> Weak<LoopInner> {
        Rc::downgrade(&self.inner)
    }

    /// Whether `weak` refers to this loop.
    pub(crate) fn same_loop(&self, weak: &Weak<LoopInner>) -> bool {
        std::ptr::eq(Rc::as_ptr(&self.inner), weak.as_ptr())
    }

    /// A non-owning reference to the loop behind `weak`, if it still exists.
    pub(crate) fn upgrade(weak: &Weak<LoopInner>) -> Option<EventLoop> {
        weak.upgrade().map(|inner| EventLoop {
            inner,
            owner: false,
        })
    }

    /// The selector backend this loop runs on.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The loop's time: a monotonic duration since the loop was created (or the
    /// [`ManualClock`]'s time). Timers are scheduled on this clock.
    pub fn time(&self) -> Duration {
        self.clock.now()
    }

    /// True while `run_forever`, `run_until` or `run_once` is running this loop.
    pub fn is_running(&self) -> bool {
        self.state.get() == RunState::Running
    }

    /// True once the loop was closed.
    pub fn is_closed(&self) -> bool {
        self.state.get() == RunState::Closed
    }

    /// A `Send + Sync` handle through which other threads schedule callbacks on this loop.
    pub fn handle(&self) -> LoopHandle {
        LoopHandle {
            remote: self.remote.clone(),
        }
    }

    /// The loop's counters. Cheap: a copy of a few integers.
    pub fn stats(&self) -> Stats {
        let mut stats = self.counters.snapshot();
        let timers = self.timers.borrow();
        stats.timer_heap_len = timers.len();
        stats.timer_heap_capacity = timers.capacity();
        stats.timers_cancelled = timers.book().cancelled.get();
        stats.tasks = self.tasks.borrow().len();
        stats.executor_threads = self.executor.borrow().as_ref().map_or(0, |p| p.threads());
        stats
    }

    pub(crate) fn check_open(&self) -> io::Result<()> {
        if self.is_closed() {
            return Err(LoopError::Closed.into());
        }
        Ok(())
    }

    fn next_generation(&self) -> u64 {
        let generation = self.generation.get() + 1;
        self.generation.set(generation);
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
        self.ready
            .borrow_mut()
            .push(ReadyItem::Callback(callback.clone()));
        Ok(Handle { callback })
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
        let mut timers = self.timers.borrow_mut();
        timers.push(when, callback.clone());
        Ok(TimerHandle {
            handle: Handle { callback },
            when,
            book: timers.book().clone(),
        })
    }

    /// [`LoopHandle::call_soon_threadsafe`] from the loop's own thread (for symmetry with
    /// asyncio; `call_soon` is cheaper here).
    ///
    /// # Errors
    /// As [`LoopHandle::call_soon_threadsafe`].
    pub fn call_soon_threadsafe(
        &self,
        callback: impl FnOnce(&EventLoop) + Send + 'static,
    ) -> io::Result<()> {
        self.handle().call_soon_threadsafe(callback)
    }

    /// Run `callback` each time `fd` is readable, until [`remove_reader`](Self::remove_reader).
    /// Replaces `fd`'s reader if it has one. A reader and a writer of one fd share one
    /// selector registration. The loop does not own `fd`: remove the reader before closing it.
    ///
    /// # Errors
    /// [`LoopError::Closed`]; the selector's errors (`EBADF` for a closed fd, `InvalidInput`
    /// for an fd `select(2)` cannot hold, `EPERM` from epoll for a regular file).
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
    /// already collected for that reader will not run it (nor a reader added after).
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
        let replaced = {
            let mut selector = self.selector.borrow_mut();
            let selector = selector.as_deref_mut().ok_or(LoopError::Closed)?;
            self.io.borrow_mut().add(selector, fd, direction, slot)?
        };
        drop(replaced);
        Ok(())
    }

    fn remove_io(&self, fd: RawFd, direction: Direction) -> bool {
        let (found, callback) = {
            let mut selector = self.selector.borrow_mut();
            let Some(selector) = selector.as_deref_mut() else {
                return false;
            };
            self.io.borrow_mut().remove(selector, fd, direction)
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
        let replaced = {
            let mut selector = self.selector.borrow_mut();
            let selector = selector.as_deref_mut().ok_or(LoopError::Closed)?;
            self.signals
                .borrow_mut()
                .add(selector, SIGNAL_TOKEN, signum, slot)?
        };
        drop(replaced);
        Ok(())
    }

    /// Stop handling `signum`; returns whether this loop had a handler for it. When no loop
    /// handles it any more, the signal's previous disposition is restored.
    pub fn remove_signal_handler(&self, signum: i32) -> bool {
        let (found, callback) = self.signals.borrow_mut().remove(signum);
        drop(callback);
        found
    }

    /// Whether debug mode is on: it reports callbacks slower than
    /// [`slow_callback_duration`](Self::slow_callback_duration). Off by default, on if
    /// `TULIP_DEBUG` is set (and not `0`) when the loop is made.
    pub fn debug(&self) -> bool {
        self.debug.get()
    }

    /// Turn debug mode on or off.
    pub fn set_debug(&self, enabled: bool) {
        self.debug.set(enabled);
    }

    /// How long a callback may run before debug mode reports it (on stderr, and in
    /// [`Stats::slow_callbacks`]). 100 ms by default.
    pub fn slow_callback_duration(&self) -> Duration {
        self.slow_callback_duration.get()
    }

    /// Set the threshold of [`slow_callback_duration`](Self::slow_callback_duration).
    pub fn set_slow_callback_duration(&self, threshold: Duration) {
        self.slow_callback_duration.set(threshold);
    }

    /// Give panics caught in callbacks to `handler` instead of printing them. The loop keeps
    /// running whatever the handler does; a panic in the handler itself is printed.
    pub fn set_exception_handler(&self, handler: impl Fn(&EventLoop, &ExceptionContext) + 'static) {
        let old = self.exception_handler.replace(Some(Rc::new(handler)));
        drop(old);
    }

    /// Go back to the default exception handler.
    pub fn clear_exception_handler(&self) {
        let old = self.exception_handler.replace(None);
        drop(old);
    }

    /// Hand `context` to the exception handler (the one set, or the default).
    pub fn call_exception_handler(&self, context: &ExceptionContext) {
        let handler = self.exception_handler.borrow().clone();
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
        match self.state.get() {
            RunState::Running => Err(LoopError::Running.into()),
            RunState::Closed => Ok(()),
            RunState::Idle => {
                self.state.set(RunState::Closed);
                self.release();
                Ok(())
            }
        }
    }

    /// Drop everything the loop holds. Each table is emptied under its own short borrow and the
    /// callbacks dropped afterwards, as dropping a closure runs user code.
    fn release(&self) {
        let remote = self.remote.close();
        let ready = self.ready.borrow_mut().drain();
        let timers = self.timers.borrow_mut().drain();
        let io = self.io.borrow_mut().drain();
        let signals = self.signals.borrow_mut().drain();
        let selector = self.selector.borrow_mut().take();
        let handler = self.exception_handler.borrow_mut().take();
        let tasks = self.tasks.borrow_mut().drain();
        for timer in &timers {
            timer.cancel();
        }
        // Pending tasks go last: dropping a coroutine runs its destructors, which may still
        // look at the (now empty) loop.
        drop((remote, ready, timers, io, signals, selector, handler));
        for task in tasks {
            task.discard();
        }
        // Last: waits for the jobs it runs and joins its threads.
        let executor = self.executor.borrow_mut().take();
        drop(executor);
    }
}

impl Drop for EventLoop {
    fn drop(&mut self) {
        if self.owner {
            self.state.set(RunState::Closed);
            self.release();
        }
    }
}

impl fmt::Debug for EventLoop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventLoop")
            .field("backend", &self.backend)
            .field("state", &self.state.get())
            .field("time", &self.time())
            .field("debug", &self.debug.get())
            .finish_non_exhaustive()
    }
}
