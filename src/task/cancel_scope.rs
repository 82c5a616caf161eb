//! Cancellation that reaches what a coroutine awaits, as asyncio's does.
//!
//! In asyncio, cancelling a task cancels the future it is suspended on (`Task.cancel` cancels
//! `_fut_waiter`), so cancelling a task that awaits another task cancels that one too, and
//! `wait_for` on a task cancels the task when it times out. In Rust a coroutine is cancelled
//! by dropping it; a [`Task`](crate::Task) handle dropped on its own only detaches its task.
//! Both hold together through a scope: while a coroutine is dropped *as a cancellation*
//! ([`cancel`]), every tulip [`Future`](crate::Future) or `Task` handle it drops that it was
//! suspended on (its last poll was `Pending`) is cancelled, and the tasks among them are
//! handed back so that the canceller can wait until their cancellation is done.
//!
//! The future being cancelled may itself be a `Task` or `Future` handle (`wait_for(task, ..)`):
//! it is the scope's *target*, recognised by its address and size, and cancelled even if it
//! was never polled; if it is already done, its outcome is handed back instead (asyncio's
//! `wait_for` with a timeout of zero returns the result of a future that is already done).

use std::any::Any;
use std::cell::{Cell, RefCell};
use std::pin::Pin;

use super::wait::Waitable;

thread_local! {
    /// Whether a scope is open on this thread: the one check a handle's `Drop` makes.
    static ACTIVE: Cell<bool> = const { Cell::new(false) };
    static SCOPE: RefCell<Option<Scope>> = const { RefCell::new(None) };
}

/// What one cancellation gathers.
#[derive(Default)]
struct Scope {
    /// Address and size of the future being cancelled.
    target: Option<(usize, usize)>,
    /// The outcome of a target handle that was already done, as `Box<io::Result<T>>`.
    taken: Option<Box<dyn Any>>,
    /// Tasks asked to cancel whose cancellation has not finished.
    cancelling: Vec<Box<dyn Waitable>>,
}

/// What [`cancel`] found: the outcome of a target that was done already, and the tasks whose
/// cancellation is under way.
pub(crate) struct Cancelled {
    pub(crate) taken: Option<Box<dyn Any>>,
    pub(crate) cancelling: Vec<Box<dyn Waitable>>,
}

/// Drop the future in `slot` as a cancellation (see the module doc). Scopes nest: a scope
/// opened inside another one (a destructor that cancels something else) is its own.
pub(crate) fn cancel<F>(mut slot: Pin<&mut Option<F>>) -> Cancelled {
    let target = slot
        .as_mut()
        .as_pin_mut()
        .map(|f| (&*f as *const F as usize, std::mem::size_of::<F>()));
    let outer = SCOPE.with(|s| {
        s.borrow_mut().replace(Scope {
            target,
            ..Scope::default()
        })
    });
    let was_active = ACTIVE.with(|a| a.replace(true));
    slot.set(None);
    ACTIVE.with(|a| a.set(was_active));
    let scope = SCOPE.with(|s| std::mem::replace(&mut *s.borrow_mut(), outer));
    let scope = scope.expect("the scope opened above is still there");
    Cancelled {
        taken: scope.taken,
        cancelling: scope.cancelling,
    }
}

/// Whether a handle being dropped now is inside a cancellation.
#[inline]
pub(crate) fn is_active() -> bool {
    ACTIVE.try_with(Cell::get).unwrap_or(false)
}

/// Whether `handle` is the future the open scope cancels.
pub(crate) fn is_target<H>(handle: &H) -> bool {
    let this = (handle as *const H as usize, std::mem::size_of::<H>());
    SCOPE.with(|s| s.borrow().as_ref().and_then(|s| s.target) == Some(this))
}

/// The target was done: hand its outcome (a `Box<io::Result<T>>`) to the canceller.
pub(crate) fn give(outcome: Box<dyn Any>) {
    SCOPE.with(|s| {
        if let Some(scope) = s.borrow_mut().as_mut() {
            scope.taken = Some(outcome);
        }
    });
}

/// A task was asked to cancel: the canceller waits until `task` is done.
pub(crate) fn wait_until_done(task: Box<dyn Waitable>) {
    SCOPE.with(|s| {
        if let Some(scope) = s.borrow_mut().as_mut() {
            scope.cancelling.push(task);
        }
    });
}
