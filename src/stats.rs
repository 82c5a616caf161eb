//! Per-loop counters, always on: plain integers the loop bumps as it works.

use std::time::Duration;

/// What a loop has done since it was created, from [`EventLoop::stats`](crate::EventLoop::stats).
///
/// Counting costs a few integer additions per iteration and one pair of clock reads around
/// each `select`, so it is never turned off. Times are real (monotonic) time, even on a loop
/// with a [`ManualClock`](crate::ManualClock).
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Loop iterations (`run_once` steps) completed or begun.
    pub iterations: u64,
    /// Calls to the selector's `select`.
    pub selects: u64,
    /// Real time spent inside `select` (waiting, mostly).
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
