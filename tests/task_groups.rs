//! `TaskGroup` (asyncio 3.11's structured concurrency): the behaviours CPython's
//! `test_taskgroups.py` checks. Tasks are awaited together; the first failure cancels the rest
//! and the body; every failure is reported; cancelling the group's owner cancels its tasks; no
//! task outlives its group. On the virtual clock.

use std::cell::Cell;
use std::io;
use std::rc::Rc;
use std::time::Duration;

use tulip::selectors::Backend;
use tulip::{
    sleep, wait_for, EventLoop, LoopError, ManualClock, TaskGroup, TaskGroupError, TaskRef,
};

#[path = "support/observe.rs"]
mod observe;
use observe::{turn, Drops, Log};

fn virtual_loop() -> EventLoop {
    EventLoop::with_clock(Backend::best(), ManualClock::new()).unwrap()
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

/// A coroutine that sleeps `delay`, logs `name`, and returns `outcome` (an error with that
/// message for `Err`).
async fn after(
    delay: Duration,
    log: Log,
    name: &'static str,
    outcome: Result<u32, &'static str>,
) -> io::Result<u32> {
    sleep(delay).await?;
    log.push(name);
    outcome.map_err(io::Error::other)
}

fn messages(err: &TaskGroupError) -> Vec<String> {
    err.errors().iter().map(ToString::to_string).collect()
}

#[test]
fn a_group_waits_for_every_task_and_returns_the_bodys_value() {
    let lp = virtual_loop();
    let log = Log::default();
    let l = log.clone();
    let started = lp.time();
    let value = lp
        .run_until_complete(TaskGroup::run(|group| async move {
            let a = group.create_task(after(secs(3), l.clone(), "a", Ok(1)))?;
            group.create_task(after(secs(5), l.clone(), "b", Ok(2)))?;
            let a = a.await??;
            l.push("body");
            Ok(a * 10)
        }))
        .unwrap()
        .unwrap();
    assert_eq!(value, 10);
    assert_eq!(log.take(), ["a", "body", "b"]);
    assert_eq!(
        lp.time() - started,
        secs(5),
        "run returned when the last task did"
    );
}

#[test]
fn the_first_failure_cancels_the_other_tasks_and_the_body_and_the_owner_goes_on() {
    let lp = virtual_loop();
    let log = Log::default();
    let l = log.clone();
    let slow = Rc::new(Cell::new(None::<TaskRef>));
    let s = slow.clone();
    let outcome = lp
        .run_until_complete(async move {
            let body_log = l.clone();
            let result = TaskGroup::run(|group| async move {
                let l = body_log;
                group.create_task(after(secs(1), l.clone(), "fails", Err("boom")))?;
                let long = group.create_task(after(secs(60), l.clone(), "slow", Ok(2)))?;
                s.set(Some(long.task_ref()));
                sleep(secs(30)).await?;
                l.push("body went on");
                Ok(())
            })
            .await;
            l.push("owner goes on");
            result
        })
        .unwrap();
    let err = outcome.unwrap_err();
    assert_eq!(messages(&err), ["boom"]);
    assert_eq!(log.take(), ["fails", "owner goes on"]);
    assert!(slow.take().unwrap().cancelled());
    assert_eq!(
        lp.time(),
        secs(1),
        "nothing waited for the cancelled sleeps"
    );
}

#[test]
fn failures_in_the_same_iteration_are_all_reported_in_the_order_they_happened() {
    let lp = virtual_loop();
    let log = Log::default();
    let err = lp
        .run_until_complete(TaskGroup::run(|group| async move {
            group.create_task(after(secs(1), log.clone(), "a", Err("first")))?;
            group.create_task(after(secs(1), log.clone(), "b", Err("second")))?;
            group.create_task(after(secs(2), log.clone(), "c", Err("never")))?;
            Ok(())
        }))
        .unwrap()
        .unwrap_err();
    assert_eq!(messages(&err), ["first", "second"]);
    let io_err: io::Error = err.into();
    let group_err = TaskGroupError::of(&io_err).expect("an io::Error carrying the group's");
    assert_eq!(group_err.errors().len(), 2);
    assert!(io_err
        .to_string()
        .starts_with("unhandled errors in a TaskGroup (2 sub-exceptions)"));
}

#[test]
fn a_panicking_task_is_a_failure_of_its_group() {
    let lp = virtual_loop();
    lp.set_exception_handler(|_, _| {});
    let err = lp
        .run_until_complete(TaskGroup::run(|group| async move {
            group.create_task(async {
                sleep(secs(1)).await?;
                if true {
                    panic!("task bug");
                }
                io::Result::Ok(())
            })?;
            Ok(())
        }))
        .unwrap()
        .unwrap_err();
    assert_eq!(err.errors().len(), 1);
    assert_eq!(LoopError::of(&err.errors()[0]), Some(LoopError::Panicked));
}

#[test]
fn a_cancelled_task_is_not_a_failure_of_its_group() {
    let lp = virtual_loop();
    let log = Log::default();
    let value = lp
        .run_until_complete(TaskGroup::run(|group| async move {
            let doomed = group.create_task(after(secs(5), log.clone(), "doomed", Ok(1)))?;
            group.create_task(after(secs(1), log.clone(), "fine", Ok(2)))?;
            doomed.cancel();
            Ok("done")
        }))
        .unwrap()
        .unwrap();
    assert_eq!(value, "done");
}

#[test]
fn a_failing_body_cancels_the_tasks_and_its_error_is_reported_last() {
    let lp = virtual_loop();
    let log = Log::default();
    let l = log.clone();
    let err = lp
        .run_until_complete(TaskGroup::run(|group| async move {
            group.create_task(after(secs(5), l.clone(), "cancelled", Ok(1)))?;
            sleep(secs(1)).await?;
            Err::<(), _>(io::Error::other("body failed"))
        }))
        .unwrap()
        .unwrap_err();
    assert_eq!(messages(&err), ["body failed"]);
    assert!(log.take().is_empty());
    assert_eq!(lp.time(), secs(1));
}

#[test]
fn cancelling_the_owner_cancels_every_task_of_the_group_at_once() {
    let lp = virtual_loop();
    let drops = Drops::default();
    let log = Log::default();
    let (d, l) = (drops.clone(), log.clone());
    let owner = lp.create_task(TaskGroup::run(move |group| async move {
        for name in ["a", "b"] {
            let (tracked, l) = (d.track(), l.clone());
            group.create_task(async move {
                let _tracked = tracked;
                sleep(secs(60)).await?;
                l.push(name);
                io::Result::Ok(())
            })?;
        }
        sleep(secs(60)).await?;
        Ok(())
    }));
    for _ in 0..3 {
        turn(&lp);
    }
    assert_eq!(drops.count(), 0);
    owner.cancel();
    turn(&lp);
    assert!(owner.cancelled());
    assert_eq!(
        drops.count(),
        2,
        "both tasks' coroutines were dropped with the group"
    );
    let rest = lp.run_until_complete(sleep(secs(120))).unwrap();
    assert!(rest.is_ok());
    assert!(log.take().is_empty(), "no task of the group ran on");
    assert_eq!(lp.stats().tasks, 0);
}

#[test]
fn a_group_timed_out_by_wait_for_cancels_its_tasks() {
    let lp = virtual_loop();
    let drops = Drops::default();
    let d = drops.clone();
    let outcome = lp
        .run_until_complete(wait_for(
            TaskGroup::run(move |group| async move {
                let tracked = d.track();
                group.create_task(async move {
                    let _tracked = tracked;
                    sleep(secs(60)).await
                })?;
                Ok(())
            }),
            secs(2),
        ))
        .unwrap();
    assert_eq!(
        LoopError::of(&outcome.unwrap_err()),
        Some(LoopError::TimedOut)
    );
    assert_eq!(drops.count(), 1);
    assert_eq!(lp.time(), secs(2));
}

#[test]
fn create_task_is_refused_while_the_group_aborts_and_once_it_is_finished() {
    let lp = virtual_loop();
    let log = Log::default();
    let kept = Rc::new(Cell::new(None::<TaskGroup>));
    let refused = Rc::new(Cell::new(None::<String>));
    let (k, r, l) = (kept.clone(), refused.clone(), log.clone());
    let err = lp
        .run_until_complete(TaskGroup::run(move |group| async move {
            k.set(Some(group.clone()));
            group.create_task(after(secs(1), l.clone(), "fails", Err("boom")))?;
            let sibling = group.clone();
            // A task that outlives the failure by an iteration tries to spawn once it is
            // cancelling; it is dropped before, so its drop tries instead.
            struct SpawnOnDrop(TaskGroup, Rc<Cell<Option<String>>>);
            impl Drop for SpawnOnDrop {
                fn drop(&mut self) {
                    let attempt = self.0.create_task(async {});
                    self.1.set(attempt.err().map(|e| e.to_string()));
                }
            }
            let guard = SpawnOnDrop(sibling, r);
            group.create_task(async move {
                let _guard = guard;
                sleep(secs(60)).await
            })?;
            Ok(())
        }))
        .unwrap()
        .unwrap_err();
    assert_eq!(messages(&err), ["boom"]);
    assert_eq!(
        refused.take().as_deref(),
        Some("the TaskGroup is shutting down")
    );
    let group = kept.take().unwrap();
    let late = lp
        .run_until_complete(async move { group.create_task(async {}).map(drop) })
        .unwrap();
    assert_eq!(late.unwrap_err().to_string(), "the TaskGroup is finished");
}

#[test]
fn tasks_may_spawn_siblings_into_their_group_and_the_group_waits_for_them() {
    let lp = virtual_loop();
    let log = Log::default();
    let l = log.clone();
    lp.run_until_complete(TaskGroup::run(|group| async move {
        let sibling_group = group.clone();
        let l2 = l.clone();
        group.create_task(async move {
            sleep(secs(1)).await?;
            sibling_group.create_task(after(secs(2), l2, "sibling", Ok(0)))?;
            io::Result::Ok(())
        })?;
        Ok(())
    }))
    .unwrap()
    .unwrap();
    assert_eq!(log.take(), ["sibling"]);
    assert_eq!(lp.time(), secs(3));
}

#[test]
fn a_group_with_no_task_returns_the_bodys_value_at_once() {
    let lp = virtual_loop();
    let value = lp
        .run_until_complete(TaskGroup::run(|group| async move {
            assert!(group.is_empty());
            Ok(7)
        }))
        .unwrap()
        .unwrap();
    assert_eq!(value, 7);
}

#[test]
fn a_failure_after_the_body_returned_cancels_the_other_tasks() {
    let lp = virtual_loop();
    let log = Log::default();
    let l = log.clone();
    let err = lp
        .run_until_complete(TaskGroup::run(|group| async move {
            group.create_task(after(secs(1), l.clone(), "fails", Err("boom")))?;
            group.create_task(after(secs(60), l.clone(), "slow", Ok(2)))?;
            Ok(())
        }))
        .unwrap()
        .unwrap_err();
    assert_eq!(messages(&err), ["boom"]);
    assert_eq!(log.take(), ["fails"]);
    assert_eq!(lp.time(), secs(1));
}

#[test]
fn a_failing_inner_group_fails_the_outer_body_which_cancels_the_outer_tasks() {
    let lp = virtual_loop();
    let log = Log::default();
    let l = log.clone();
    let err = lp
        .run_until_complete(TaskGroup::run(|outer| async move {
            outer.create_task(after(secs(60), l.clone(), "outer slow", Ok(1)))?;
            let inner_log = l.clone();
            TaskGroup::run(|inner| async move {
                inner.create_task(after(secs(1), inner_log, "inner fails", Err("boom")))?;
                Ok(())
            })
            .await?;
            l.push("outer body went on");
            Ok(())
        }))
        .unwrap()
        .unwrap_err();
    assert_eq!(log.take(), ["inner fails"]);
    assert_eq!(err.errors().len(), 1);
    let inner = TaskGroupError::of(&err.errors()[0]).expect("the inner group's error");
    assert_eq!(messages(inner), ["boom"]);
    assert_eq!(lp.time(), secs(1));
}

#[test]
fn a_failure_in_the_outer_group_cancels_an_inner_group_its_body_runs() {
    let lp = virtual_loop();
    let log = Log::default();
    let l = log.clone();
    let inner_task = Rc::new(Cell::new(None::<TaskRef>));
    let it = inner_task.clone();
    let err = lp
        .run_until_complete(TaskGroup::run(|outer| async move {
            outer.create_task(after(secs(1), l.clone(), "outer fails", Err("boom")))?;
            let inner_log = l.clone();
            TaskGroup::run(|inner| async move {
                let slow = inner.create_task(after(secs(60), inner_log, "inner slow", Ok(1)))?;
                it.set(Some(slow.task_ref()));
                Ok(())
            })
            .await?;
            l.push("outer body went on");
            Ok(())
        }))
        .unwrap()
        .unwrap_err();
    assert_eq!(
        messages(&err),
        ["boom"],
        "the inner group's cancellation is no failure"
    );
    assert_eq!(log.take(), ["outer fails"]);
    assert!(inner_task.take().unwrap().cancelled());
    assert_eq!(lp.time(), secs(1));
}

#[test]
fn a_task_ending_with_the_cancellation_of_what_it_awaited_is_not_a_failure_of_its_group() {
    let lp = virtual_loop();
    let fut = lp.create_future::<u32>();
    let canceller = fut.clone();
    let child = Rc::new(Cell::new(None::<TaskRef>));
    let c = child.clone();
    let value = lp
        .run_until_complete(TaskGroup::run(|group| async move {
            let waiting = group.create_task(async move {
                let value = fut.await?;
                io::Result::Ok(value)
            })?;
            c.set(Some(waiting.task_ref()));
            group.create_task(async move {
                sleep(secs(1)).await?;
                canceller.cancel();
                io::Result::Ok(())
            })?;
            Ok("done")
        }))
        .unwrap()
        .unwrap();
    assert_eq!(value, "done");
    assert!(child.take().unwrap().cancelled());
}

#[test]
fn len_counts_the_tasks_of_the_group_not_done_yet() {
    let lp = virtual_loop();
    let log = Log::default();
    lp.run_until_complete(TaskGroup::run(|group| async move {
        group.create_task(after(secs(1), log.clone(), "a", Ok(1)))?;
        group.create_task(after(secs(3), log.clone(), "b", Ok(2)))?;
        assert_eq!(group.len(), 2);
        sleep(secs(2)).await?;
        assert_eq!(group.len(), 1);
        sleep(secs(2)).await?;
        assert!(group.is_empty());
        Ok(())
    }))
    .unwrap()
    .unwrap();
}

/// Panics when dropped: a body whose clean-up fails while the group cancels it.
struct PanicsOnDrop;

impl Drop for PanicsOnDrop {
    fn drop(&mut self) {
        panic!("the body's clean-up failed");
    }
}

/// A body that panics while the group cancels it (here: a value it holds panics when dropped
/// at its await) fails the coroutine that runs the group, as a panic does anywhere in a task:
/// that task ends `Panicked`, the loop's exception handler hears of it, and still no task of
/// the group outlives it; the loop runs on.
#[test]
fn a_body_that_panics_while_cancelled_fails_its_owner_and_no_task_outlives_it() {
    let lp = virtual_loop();
    let reported = Rc::new(Cell::new(0));
    let count = reported.clone();
    lp.set_exception_handler(move |_, _| count.set(count.get() + 1));
    let drops = Drops::default();
    let (bystander_drop, log) = (drops.track(), Log::default());
    let owner = lp.create_task(TaskGroup::run(|group| async move {
        let _guard = PanicsOnDrop;
        group.create_task(after(secs(1), log.clone(), "fails", Err("boom")))?;
        group.create_task(async move {
            let _held = bystander_drop;
            sleep(secs(60)).await
        })?;
        sleep(secs(30)).await?;
        Ok(())
    }));
    lp.run_until(|_| owner.done()).unwrap();
    let err = owner.take_result().unwrap_err();
    assert_eq!(LoopError::of(&err), Some(LoopError::Panicked), "{err}");
    assert_eq!(reported.get(), 1, "the panic went to the exception handler");
    assert_eq!(
        drops.count(),
        1,
        "the other task of the group was dropped with it"
    );
    assert_eq!(lp.run_until_complete(async { 7 }).unwrap(), 7);
}
