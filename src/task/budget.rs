//! What the executor tells the code running inside a task step: the cooperative budget (how
//! many I/O operations the task may complete before it must yield, so that a task fed by a fast
//! peer cannot keep the loop, and every other connection, waiting; `net`'s sources spend it),
//! and which task the step is (for [`current_task`](crate::current_task)).
//!
//! Both live in one thread-local, set once when a step begins and restored once when it ends:
//! a step is the hot path of every task switch.

use std::cell::Cell;
use std::task::Context;

use crate::event_loop::TaskId;

/// How many I/O operations one step of a task may complete before it must yield: a task fed
/// by a fast peer would otherwise keep the loop (and every other connection) waiting.
const BUDGET: u32 = 128;

/// The step being run on this thread.
#[derive(Copy, Clone)]
struct Step {
    /// Operations left to the task being polled; unlimited outside a task step.
    remaining: u32,
    /// The task being stepped, if any.
    task: Option<TaskId>,
}

thread_local! {
    static STEP: Cell<Step> = const {
        Cell::new(Step {
            remaining: u32::MAX,
            task: None,
        })
    };
}

/// Gives the task about to be stepped its budget of operations and makes it the current task,
/// until dropped.
pub(crate) struct Budget {
    previous: Step,
}

impl Budget {
    #[inline]
    pub(crate) fn enter(task: TaskId) -> Budget {
        let step = Step {
            remaining: BUDGET,
            task: Some(task),
        };
        Budget {
            previous: STEP.with(|s| s.replace(step)),
        }
    }
}

impl Drop for Budget {
    #[inline]
    fn drop(&mut self) {
        STEP.with(|s| s.set(self.previous));
    }
}

/// The task being stepped on this thread, if any.
pub(crate) fn current_task_id() -> Option<TaskId> {
    STEP.with(|s| s.get().task)
}

/// Spend one unit of the budget; false (and the task is woken to run again later) if it is
/// exhausted.
pub(crate) fn spend(cx: &Context<'_>) -> bool {
    STEP.with(|s| {
        let mut step = s.get();
        if step.remaining == 0 {
            cx.waker().wake_by_ref();
            return false;
        }
        step.remaining -= 1;
        s.set(step);
        true
    })
}
