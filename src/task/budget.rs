//! What the executor tells the code running inside a task step: the cooperative budget (how
//! many I/O operations the task may complete before it must yield, so that a task fed by a fast
//! peer cannot keep the loop, and every other connection, waiting; `net`'s sources spend it),
//! and which task the step is (for [`current_task`](crate::current_task)).
//!
//! Both live in one thread-local, set when a step begins and cleared when it ends (a step is
//! the hot path of every task switch); a loop run from inside a step saves that step once for
//! the whole run and puts it back when the run returns.

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

/// Outside any task's step.
const OUTSIDE: Step = Step {
    remaining: u32::MAX,
    task: None,
};

thread_local! {
    static STEP: Cell<Step> = const { Cell::new(OUTSIDE) };
}

/// Gives the task about to be stepped its budget of operations and makes it the current task,
/// until dropped. Steps do not nest within one run of a loop, so a step only sets the state
/// and clears it; a loop run from inside a step (of another loop) saves the step around it
/// ([`SavedStep`], kept by the running loop's guard) and puts it back when it returns.
pub(crate) struct Budget(());

impl Budget {
    #[inline]
    pub(crate) fn enter(task: TaskId) -> Budget {
        STEP.with(|s| {
            s.set(Step {
                remaining: BUDGET,
                task: Some(task),
            });
        });
        Budget(())
    }
}

impl Drop for Budget {
    #[inline]
    fn drop(&mut self) {
        STEP.with(|s| s.set(OUTSIDE));
    }
}

/// The step a run of a loop interrupted, if any (the run was started from inside a task's
/// step), put back when the run ends.
pub(crate) struct SavedStep(Step);

impl SavedStep {
    /// Save this thread's step and start outside any.
    pub(crate) fn save() -> SavedStep {
        SavedStep(STEP.with(|s| s.replace(OUTSIDE)))
    }
}

impl Drop for SavedStep {
    fn drop(&mut self) {
        STEP.with(|s| s.set(self.0));
    }
}

/// The task being stepped on this thread, if any.
pub(crate) fn current_task_id() -> Option<TaskId> {
    STEP.with(|s| s.get().task)
}

/// Spend one unit of the budget; false (and the task is woken to run again later) if it is
/// exhausted.
#[inline]
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
