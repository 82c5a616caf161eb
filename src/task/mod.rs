//! Futures and tasks: Tulip's [`Future`] (a result set once, done callbacks, cancellation), the
//! task executor that drives Rust coroutines on the loop ([`Task`], [`spawn`]: a task is a
//! callback that polls its coroutine, and its `Waker` queues it again), and the coroutine
//! helpers built on them ([`sleep()`], [`yield_now`], [`wait()`], [`wait_for`], [`gather`]).

pub(crate) mod budget;
mod cancel_scope;
mod executor;
mod future;
mod output;
mod sleep;
mod wait;

pub use executor::{spawn, Task};
pub use future::{CallbackId, DoneCallbackKey, Future};
pub use output::TaskOutput;
pub use sleep::{sleep, yield_now, Sleep, YieldNow};
pub use wait::{gather, wait, wait_for, ReturnWhen, Waitable};
