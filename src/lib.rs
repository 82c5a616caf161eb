//! tulip: Python's Tulip/asyncio event loop, rebuilt in Rust from the system calls up.
//!
//! An [`EventLoop`] runs callbacks on one thread: those scheduled with
//! [`call_soon`](EventLoop::call_soon) in FIFO order, timers ([`call_later`](EventLoop::call_later),
//! [`call_at`](EventLoop::call_at)) in deadline order, and readers and writers
//! ([`add_reader`](EventLoop::add_reader)) when a level-triggered [`selectors::Selector`] says
//! their fd is ready. Other threads reach it through a [`LoopHandle`]; tests drive it on a
//! [`ManualClock`].
//!
//! ```
//! use std::time::Duration;
//! use tulip::EventLoop;
//!
//! let lp = EventLoop::new()?;
//! lp.call_soon(|_| println!("Hello"))?;
//! lp.call_later(Duration::from_millis(10), |lp| {
//!     println!("event loop");
//!     lp.stop();
//! })?;
//! lp.run_forever()?;
//! # Ok::<(), std::io::Error>(())
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod aio;
mod blocking_pool;
mod error;
mod event_loop;
pub mod net;
pub mod process;
pub mod streams;
pub mod sync;
mod task;
mod transport;

/// The readiness selectors the loop runs on (the `tulip-sys` crate), as Python's `selectors`.
pub use tulip_sys as selectors;

pub use error::LoopError;
pub use event_loop::{
    get_running_loop, EventLoop, ExceptionContext, ExceptionHandler, Handle, LoopHandle,
    ManualClock, Stats, TimerHandle, DEBUG_ENV, DEFAULT_SLOW_CALLBACK_DURATION,
};
pub use net::readiness::{wait_readable, wait_writable, Readiness};
pub use process::{create_subprocess_exec, create_subprocess_shell, Process};
pub use streams::{
    open_connection, open_connection_with, open_read_pipe, open_unix_connection,
    open_unix_connection_with, open_write_pipe, start_server, start_server_with, start_unix_server,
    start_unix_server_with, StreamOptions, StreamReader, StreamWriter,
};
pub use sync::{
    Barrier, BoundedSemaphore, BrokenBarrierError, Condition, Event, LifoQueue, Lock, LockGuard,
    PriorityQueue, PutError, Queue, QueueError, Semaphore, SemaphorePermit,
};
pub use task::{
    all_tasks, as_completed, current_task, gather, shield, sleep, spawn, wait, wait_for, yield_now,
    AsCompleted, CallbackId, DoneCallbackKey, Future, ReturnWhen, Shield, Sleep, Task, TaskGroup,
    TaskGroupError, TaskOutput, TaskRef, Waitable, YieldNow,
};
pub use transport::{
    AcceptedSocket, Address, Buffered, BufferedProtocol, DatagramAddress, DatagramOptions,
    DatagramProtocol, DatagramTransport, Protocol, Server, Transport, UnixDatagramOptions,
};

/// The README's Rust examples, compiled and run as doctests so that they cannot rot.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
