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
    /// Whether handles dropped now are let go by `gather` after its first error: their
    /// failures count as retrieved, as asyncio's gather retrieves every child's exception.
    static RETRIEVING: Cell<bool> = const { Cell::new(false) };
}

/// Drop `futures` (what `gather` still awaited when one failed) so that a failure any of the
/// handles among them ends with is not reported as never retrieved.
pub(crate) fn let_go_retrieving<T>(futures: T) {
    struct Reset(bool);
    impl Drop for Reset {
        fn drop(&mut self) {
            let _ = RETRIEVING.try_with(|r| r.set(self.0));
        }
    }
    let _reset = Reset(RETRIEVING.with(|r| r.replace(true)));
    drop(futures);
}

/// Whether a handle being dropped now is let go by `gather` (see [`let_go_retrieving`]).
#[inline]
pub(crate) fn is_retrieving() -> bool {
    RETRIEVING.try_with(Cell::get).unwrap_or(false)
}

/// What one cancellation gathers.
#[derive(Default)]
struct Scope {
    /// Address, size and type name of the future being cancelled: a wrapper whose first
    /// field is a handle has the handle's address, and may have its size, but not its type.
    target: Option<(usize, usize, &'static str)>,
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
    let target = slot.as_mut().as_pin_mut().map(|f| {
        let size = std::mem::size_of::<F>();
        (&*f as *const F as usize, size, std::any::type_name::<F>())
    });
    cancel_by(target, || slot.set(None))
}

/// Run `drop_it` (which drops a future) as a cancellation whose target, if any, is the
/// future at that address, of that size and type (see [`cancel`]).
pub(crate) fn cancel_by(
    target: Option<(usize, usize, &'static str)>,
    drop_it: impl FnOnce(),
) -> Cancelled {
    let outer = SCOPE.with(|s| {
        s.borrow_mut().replace(Scope {
            target,
            ..Scope::default()
        })
    });
    let was_active = ACTIVE.with(|a| a.replace(true));
    // Closes the scope even if a destructor panics: a scope left open would judge every
    // handle dropped on this thread from then on (and its tasks would be dropped in the
    // thread's TLS destructors, with `ACTIVE` still set).
    let open = Open {
        outer: Some(outer),
        was_active,
    };
    drop_it();
    let scope = open.close().expect("the scope opened above is still there");
    Cancelled {
        taken: scope.taken,
        cancelling: scope.cancelling,
    }
}

/// An open scope; dropping it (normally or while unwinding) restores the one outside.
struct Open {
    outer: Option<Option<Scope>>,
    was_active: bool,
}

impl Open {
    fn close(mut self) -> Option<Scope> {
        self.restore()
    }

    fn restore(&mut self) -> Option<Scope> {
        let outer = self.outer.take()?;
        let _ = ACTIVE.try_with(|a| a.set(self.was_active));
        SCOPE
            .try_with(|s| std::mem::replace(&mut *s.borrow_mut(), outer))
            .ok()
            .flatten()
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        // Unwinding: what the scope gathered is dropped outside the borrow, with `ACTIVE`
        // already restored.
        drop(self.restore());
    }
}

/// Whether a handle being dropped now is inside a cancellation.
#[inline]
pub(crate) fn is_active() -> bool {
    ACTIVE.try_with(Cell::get).unwrap_or(false)
}

/// Whether `handle` is the future the open scope cancels.
pub(crate) fn is_target<H>(handle: &H) -> bool {
    let this = (
        handle as *const H as usize,
        std::mem::size_of::<H>(),
        std::any::type_name::<H>(),
    );
    SCOPE
        .try_with(|s| s.borrow().as_ref().and_then(|s| s.target) == Some(this))
        .unwrap_or(false)
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
