//! The cooperative budget of a task step: how many I/O operations a task may complete before
//! it must yield, so that a task fed by a fast peer cannot keep the loop (and every other
//! connection) waiting. The task executor gives each step its budget; `net`'s sources spend
//! it.

use std::cell::Cell;
use std::task::Context;

/// How many I/O operations one step of a task may complete before it must yield: a task fed
/// by a fast peer would otherwise keep the loop (and every other connection) waiting.
const BUDGET: u32 = 128;

thread_local! {
    /// Operations left to the task being polled; unlimited outside a task step.
    static REMAINING: Cell<u32> = const { Cell::new(u32::MAX) };
}

/// Gives the task about to be polled its budget of operations, until dropped.
pub(crate) struct Budget {
    previous: u32,
}

impl Budget {
    pub(crate) fn enter() -> Budget {
        Budget {
            previous: REMAINING.with(|r| r.replace(BUDGET)),
        }
    }
}

impl Drop for Budget {
    fn drop(&mut self) {
        REMAINING.with(|r| r.set(self.previous));
    }
}

/// Spend one unit of the budget; false (and the task is woken to run again later) if it is
/// exhausted.
pub(crate) fn spend(cx: &Context<'_>) -> bool {
    REMAINING.with(|r| match r.get() {
        0 => {
            cx.waker().wake_by_ref();
            false
        }
        n => {
            r.set(n - 1);
            true
        }
    })
}
