//! Per-loop counters, always on: plain integers the loop bumps as it works.

use std::cell::Cell;
use std::time::Duration;

/// What a loop has done since it was created, from [`EventLoop::stats`](crate::EventLoop::stats).
///
/// Counting costs a few integer additions per iteration, so it is never turned off. Times are
/// real (monotonic) time, even on a loop with a [`ManualClock`](crate::ManualClock).
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Loop iterations (`run_once` steps) completed or begun.
    pub iterations: u64,
    /// Calls to the selector's `select`.
    pub selects: u64,
    /// Real time spent inside `select` (waiting, mostly), while in
    /// [debug mode](crate::EventLoop::set_debug) only: timing it takes a pair of clock reads
    /// per `select`, as much user CPU as a tenth of a pipe round trip's (as libuv's idle time,
    /// which a loop must be configured to measure).
    pub select_time: Duration,
    /// Callbacks run: `call_soon`, timers, readers, writers, signal handlers, threadsafe ones,
    /// and task steps.
    pub callbacks_run: u64,
    /// Callbacks that panicked (and were given to the exception handler).
    pub callbacks_panicked: u64,
    /// Callbacks slower than the slow-callback threshold, counted in debug mode only.
    pub slow_callbacks: u64,
    /// Timers whose deadline passed and that moved to the ready queue.
    pub timers_fired: u64,
    /// Timers cancelled before they fired.
    pub timers_cancelled: u64,
    /// Entries in the timer heap now, cancelled ones not yet dropped included.
    pub timer_heap_len: usize,
    /// Entries the timer heap's allocation can hold now (it shrinks when mostly empty).
    pub timer_heap_capacity: usize,
    /// Tasks alive now (scheduled or suspended; a finished task is freed at once).
    pub tasks: usize,
    /// Worker threads of the `run_in_executor` pool alive now.
    pub executor_threads: usize,
}

/// The loop's running counts: one cell each, so bumping one is a single add in place (the loop
/// bumps them for every callback). [`EventLoop::stats`](crate::EventLoop::stats) copies them
/// into a [`Stats`] with the gauges it reads from the tables.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) iterations: Counter,
    pub(crate) selects: Counter,
    pub(crate) select_time: Cell<Duration>,
    pub(crate) callbacks_run: Counter,
    pub(crate) callbacks_panicked: Counter,
    pub(crate) slow_callbacks: Counter,
    pub(crate) timers_fired: Counter,
}

/// One running count.
#[derive(Debug, Default)]
pub(crate) struct Counter(Cell<u64>);

impl Counter {
    pub(crate) fn add(&self, n: u64) {
        self.0.set(self.0.get() + n);
    }

    pub(crate) fn get(&self) -> u64 {
        self.0.get()
    }
}

impl Counters {
    /// The counts as a `Stats`, gauges left at zero for the caller to fill.
    pub(crate) fn snapshot(&self) -> Stats {
        Stats {
            iterations: self.iterations.get(),
            selects: self.selects.get(),
            select_time: self.select_time.get(),
            callbacks_run: self.callbacks_run.get(),
            callbacks_panicked: self.callbacks_panicked.get(),
            slow_callbacks: self.slow_callbacks.get(),
            timers_fired: self.timers_fired.get(),
            ..Stats::default()
        }
    }
}
