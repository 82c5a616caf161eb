//! Coordination between coroutines of one loop: asyncio's `locks.py` ([`Lock`], [`Event`],
//! [`Condition`], [`Semaphore`], [`BoundedSemaphore`], [`Barrier`]) and `queues.py`
//! ([`Queue`], [`LifoQueue`], [`PriorityQueue`]).
//!
//! Built on the loop's wakers alone: every wait is a place in a line of waiters
//! (`wait_list.rs`) whose waker the releasing side wakes; nothing polls or spins, and nothing is
//! atomic, since the primitives belong to the loop's thread (`!Send`), as asyncio's are not
//! thread-safe. From another thread, reach them through
//! [`LoopHandle::call_soon_threadsafe`](crate::LoopHandle::call_soon_threadsafe).
//!
//! Cancelling a coroutine drops the future it awaits; each wait future's `Drop` keeps asyncio's
//! guarantees: a lock, a semaphore unit, a notification or a queue's wake-up handed to a waiter
//! that is cancelled before it runs goes to the next waiter, and guards release on drop.

mod barrier;
mod condition;
mod event;
mod lock;
mod queue;
mod queue_error;
mod semaphore;
mod wait_list;

pub use barrier::{Barrier, BrokenBarrierError};
pub use condition::Condition;
pub use event::{Event, EventWait};
pub use lock::{Acquire, Lock, LockGuard};
pub use queue::{Fifo, Get, Lifo, LifoQueue, Order, Priority, PriorityQueue, Put, Queue};
pub use queue_error::{PutError, QueueError};
pub use semaphore::{BoundedSemaphore, Semaphore, SemaphoreAcquire, SemaphorePermit};
