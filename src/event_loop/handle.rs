//! Scheduled callbacks and the handles that cancel them: [`Handle`] (from `call_soon`) and
//! [`TimerHandle`] (from `call_later` / `call_at`), as asyncio's `Handle` and `TimerHandle`.

use std::cell::Cell;
use std::fmt;
use std::rc::Rc;
use std::time::Duration;

use crate::EventLoop;

/// Where a scheduled callback is in its life.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) enum State {
    /// In the timer heap, waiting for its deadline.
    Scheduled,
    /// In the ready queue, waiting for its turn.
    Ready,
    /// Cancelled (or discarded by `close`): its closure is already dropped. Also a callback
    /// cancelled after it ran, as asyncio's `cancelled()` says once `cancel()` was called.
    Cancelled,
    /// Run (or running): its closure is consumed.
    Done,
}

/// A one-shot callback as the ready queue and the timer heap hold it: the closure and its
/// state in one allocation, shared with the user's handle.
pub(crate) trait Callback {
    /// Run the closure if it is still there (not cancelled, not run).
    fn run(&self, lp: &EventLoop);
    fn state(&self) -> State;
    fn set_state(&self, state: State);
    /// Drop the closure (if it has not run) and mark the callback cancelled; returns the state
    /// it was in.
    fn cancel(&self) -> State;
    /// The closure's type name, to say which callback failed.
    fn name(&self) -> &'static str;
}

struct CallbackCell<F> {
    state: Cell<State>,
    closure: Cell<Option<F>>,
}

impl<F: FnOnce(&EventLoop) + 'static> Callback for CallbackCell<F> {
    fn run(&self, lp: &EventLoop) {
        if let Some(closure) = self.closure.take() {
            self.state.set(State::Done);
            closure(lp);
        }
    }

    fn state(&self) -> State {
        self.state.get()
    }

    fn set_state(&self, state: State) {
        self.state.set(state);
    }

    fn cancel(&self) -> State {
        let previous = self.state.get();
        match previous {
            State::Scheduled | State::Ready => {
                self.state.set(State::Cancelled);
                // Dropping the closure may run user code (its captures' `Drop`): the state is
                // already final, so that code sees a consistent handle.
                drop(self.closure.take());
            }
            // Run (or running): nothing to stop, but `cancelled()` now says it was called, as
            // asyncio's `Handle.cancel` sets its flag whatever the handle's state.
            State::Done => self.state.set(State::Cancelled),
            State::Cancelled => {}
        }
        previous
    }

    fn name(&self) -> &'static str {
        std::any::type_name::<F>()
    }
}

/// Box `f` as a callback in state `state`: the only allocation of scheduling a callback.
pub(crate) fn new_callback(state: State, f: impl FnOnce(&EventLoop) + 'static) -> Rc<dyn Callback> {
    Rc::new(CallbackCell {
        state: Cell::new(state),
        closure: Cell::new(Some(f)),
    })
}

/// A callback scheduled with [`EventLoop::call_soon`]: cancel it before it runs.
///
/// Cloning gives another handle to the same callback. Not `Send`: it belongs to the loop's
/// thread, like the loop.
#[derive(Clone)]
pub struct Handle {
    pub(crate) callback: Rc<dyn Callback>,
}

impl Handle {
    /// Make sure the callback will not run, and drop it now. If it already ran (or is
    /// running) there is nothing to stop, but [`cancelled`](Self::cancelled) says true from
    /// now on, as asyncio's does; cancelling twice is fine.
    pub fn cancel(&self) {
        self.callback.cancel();
    }

    /// True once [`cancel`](Self::cancel) was called (before or after the callback ran, as in
    /// asyncio), or if closing the loop discarded the callback before it ran.
    pub fn cancelled(&self) -> bool {
        self.callback.state() == State::Cancelled
    }
}

impl fmt::Debug for Handle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Handle")
            .field("callback", &self.callback.name())
            .field("state", &self.callback.state())
            .finish()
    }
}

/// The timer heap's count of what cancelling did, shared with every [`TimerHandle`]: a cancel
/// never touches the heap itself (it is O(1)), it only counts the dead entry it leaves there.
#[derive(Debug, Default)]
pub(crate) struct TimerBook {
    /// Cancelled entries still in the heap.
    pub(crate) dead: Cell<usize>,
    /// Timers ever cancelled before firing.
    pub(crate) cancelled: Cell<u64>,
}

/// A callback scheduled with [`EventLoop::call_later`] or [`EventLoop::call_at`].
#[derive(Clone)]
pub struct TimerHandle {
    pub(crate) handle: Handle,
    pub(crate) when: Duration,
    pub(crate) book: Rc<TimerBook>,
}

impl TimerHandle {
    /// Make sure the callback will not run, and drop it now: O(1), the heap entry is dropped
    /// later. If it already ran, only [`cancelled`](Self::cancelled) changes (as in asyncio);
    /// cancelling twice is fine.
    pub fn cancel(&self) {
        match self.handle.callback.cancel() {
            State::Scheduled => {
                self.book.dead.set(self.book.dead.get() + 1);
                self.book.cancelled.set(self.book.cancelled.get() + 1);
            }
            State::Ready => self.book.cancelled.set(self.book.cancelled.get() + 1),
            State::Cancelled | State::Done => {}
        }
    }

    /// True once [`cancel`](Self::cancel) was called (before or after the callback ran, as in
    /// asyncio), or if closing the loop discarded the callback before it ran.
    pub fn cancelled(&self) -> bool {
        self.handle.cancelled()
    }

    /// When the callback is due, on the loop's clock ([`EventLoop::time`]).
    pub fn when(&self) -> Duration {
        self.when
    }
}

impl fmt::Debug for TimerHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TimerHandle")
            .field("when", &self.when)
            .field("callback", &self.handle.callback.name())
            .field("state", &self.handle.callback.state())
            .finish()
    }
}
