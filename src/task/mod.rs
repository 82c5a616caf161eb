//! Futures and tasks: Tulip's [`Future`] (a result set once, done callbacks, cancellation), the
//! task executor that drives Rust coroutines on the loop ([`Task`], [`spawn`]: a task is a
//! callback that polls its coroutine, and its `Waker` queues it again), and the coroutine
//! helpers built on them ([`sleep()`], [`yield_now`], [`wait()`], [`wait_for`], [`gather`],
//! [`as_completed`], [`shield`]), [`TaskGroup`] (structured concurrency), and the tasks seen
//! without their output type ([`TaskRef`], [`current_task`], [`all_tasks`]).

mod as_completed;
pub(crate) mod budget;
mod cancel_scope;
mod executor;
mod future;
mod group;
mod output;
mod shield;
mod sleep;
mod task_ref;
mod wait;

pub use as_completed::{as_completed, AsCompleted};
pub(crate) use executor::TaskWaker;
pub use executor::{spawn, Task};
#[cfg(target_os = "linux")]
pub(crate) use future::cancellations;
pub use future::{CallbackId, DoneCallbackKey, Future};
pub use group::{TaskGroup, TaskGroupError};
pub use output::TaskOutput;
pub use shield::{shield, Shield};
pub use sleep::{sleep, yield_now, Sleep, YieldNow};
pub use task_ref::{all_tasks, current_task, TaskRef};
pub use wait::{gather, wait, wait_for, ReturnWhen, Waitable};
