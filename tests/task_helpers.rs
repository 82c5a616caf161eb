//! asyncio's task helpers: `shield`, `as_completed`, what cancelling the awaiter of `gather`,
//! `wait`, `wait_for` or `as_completed` does to what it awaits, `current_task`, `all_tasks` and task
//! names (the behaviours CPython's `test_tasks.py` checks for them). On the virtual clock.

use std::io;
use std::time::Duration;

use tulip::selectors::Backend;
use tulip::{
    all_tasks, as_completed, current_task, gather, shield, sleep, wait, wait_for, EventLoop,
    Future, LoopError, ManualClock, ReturnWhen, Task,
};

#[path = "support/observe.rs"]
mod observe;
use observe::{turn, Log};

fn virtual_loop() -> EventLoop {
    EventLoop::with_clock(Backend::best(), ManualClock::new()).unwrap()
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

/// A task that sleeps `delay` and returns `value`.
fn sleeper(lp: &EventLoop, delay: Duration, value: u32) -> Task<io::Result<u32>> {
    lp.create_task(async move {
        sleep(delay).await?;
        Ok(value)
    })
}

fn loop_error<T>(r: io::Result<T>) -> Option<LoopError> {
    r.err().as_ref().and_then(LoopError::of)
}

#[test]
fn cancelling_the_awaiter_of_a_shield_leaves_the_inner_task_running() {
    let lp = virtual_loop();
    let inner = sleeper(&lp, secs(5), 42);
    let probe = inner.as_future().clone();
    let awaiter = lp.create_task(async move { shield(inner).await });
    turn(&lp);
    awaiter.cancel();
    turn(&lp);
    assert!(awaiter.cancelled());
    assert!(!probe.done(), "the shielded task was not cancelled");
    assert_eq!(lp.run_until_complete(probe).unwrap().unwrap().unwrap(), 42);
    assert_eq!(lp.time(), secs(5));
}

#[test]
fn awaiting_a_task_without_a_shield_cancels_it_with_its_awaiter() {
    let lp = virtual_loop();
    let inner = sleeper(&lp, secs(5), 42);
    let probe = inner.as_future().clone();
    // A coroutine that awaits the task, as `shield`'s awaiter above does.
    #[allow(clippy::redundant_async_block)]
    let awaiter = lp.create_task(async move { inner.await });
    turn(&lp);
    awaiter.cancel();
    for _ in 0..3 {
        turn(&lp);
    }
    assert!(
        probe.cancelled(),
        "the contrast: cancellation reaches an awaited task"
    );
}

#[test]
fn a_shield_gives_the_inner_outcome_and_survives_a_timed_out_wait_for() {
    let lp = virtual_loop();
    let inner = sleeper(&lp, secs(5), 7);
    let probe = inner.as_future().clone();
    let timed_out = lp
        .run_until_complete(wait_for(shield(&inner), secs(1)))
        .unwrap();
    assert_eq!(loop_error(timed_out), Some(LoopError::TimedOut));
    assert!(!probe.done());
    let value = lp.run_until_complete(shield(inner)).unwrap().unwrap();
    assert_eq!(value.unwrap(), 7);
    let cancelled: Future<u32> = lp.create_future();
    cancelled.cancel();
    let outcome = lp.run_until_complete(shield(cancelled)).unwrap();
    assert_eq!(loop_error(outcome), Some(LoopError::Cancelled));
}

#[test]
fn as_completed_hands_back_futures_in_completion_order() {
    let lp = virtual_loop();
    let tasks = vec![
        sleeper(&lp, secs(3), 3),
        sleeper(&lp, secs(1), 1),
        sleeper(&lp, secs(2), 2),
    ];
    let (order, times) = lp
        .run_until_complete(async move {
            let lp = tulip::get_running_loop()?;
            let mut completed = as_completed(tasks, None);
            assert_eq!(completed.len(), 3);
            let (mut order, mut times) = (Vec::new(), Vec::new());
            while let Some(task) = completed.next().await {
                order.push(task?.take_result()??);
                times.push(lp.time());
            }
            assert!(completed.is_empty());
            io::Result::Ok((order, times))
        })
        .unwrap()
        .unwrap();
    assert_eq!(order, [1, 2, 3]);
    assert_eq!(times, [secs(1), secs(2), secs(3)]);
}

#[test]
fn as_completed_hands_back_futures_done_already_first_in_the_order_given() {
    let lp = virtual_loop();
    let a: Future<u32> = lp.create_future();
    let b: Future<u32> = lp.create_future();
    let c: Future<u32> = lp.create_future();
    c.set_result(3).unwrap();
    a.set_result(1).unwrap();
    let setter = b.clone();
    lp.call_later(secs(1), move |_| setter.set_result(2).unwrap())
        .unwrap();
    let order = lp
        .run_until_complete(async move {
            let mut completed = as_completed(vec![a, b, c], None);
            let mut order = Vec::new();
            while let Some(future) = completed.next().await {
                order.push(future?.take_result()?);
            }
            io::Result::Ok(order)
        })
        .unwrap()
        .unwrap();
    assert_eq!(order, [1, 3, 2]);
}

#[test]
fn as_completed_with_a_timeout_gives_timed_out_for_each_future_left_and_cancels_none() {
    let lp = virtual_loop();
    let tasks = vec![
        sleeper(&lp, secs(1), 1),
        sleeper(&lp, secs(10), 10),
        sleeper(&lp, secs(20), 20),
    ];
    let (outcomes, left) = lp
        .run_until_complete(async move {
            let mut completed = as_completed(tasks, Some(secs(5)));
            let mut outcomes = Vec::new();
            while let Some(next) = completed.next().await {
                outcomes.push(next.map(|t| t.take_result().ok()));
            }
            let left: Vec<Future<io::Result<u32>>> = completed
                .remaining()
                .map(|t| t.as_future().clone())
                .collect();
            (outcomes, left)
        })
        .unwrap();
    assert_eq!(outcomes.len(), 3);
    assert_eq!(
        outcomes[0]
            .as_ref()
            .unwrap()
            .as_ref()
            .unwrap()
            .as_ref()
            .unwrap(),
        &1
    );
    for outcome in &outcomes[1..] {
        let err = outcome.as_ref().unwrap_err();
        assert_eq!(LoopError::of(err), Some(LoopError::TimedOut));
    }
    assert_eq!(lp.time(), secs(5));
    assert_eq!(left.len(), 2);
    assert!(left.iter().all(|f| !f.done()), "nothing was cancelled");
    let last = left[1].clone();
    assert_eq!(lp.run_until_complete(last).unwrap().unwrap().unwrap(), 20);
}

#[test]
fn current_task_is_the_task_being_stepped_and_none_outside_one() {
    let lp = virtual_loop();
    assert!(current_task().is_none(), "no loop runs");
    let task = lp.create_task(async {
        let me = current_task().expect("inside a task");
        sleep(secs(1)).await?;
        let still_me = current_task().expect("inside a task");
        io::Result::Ok(me == still_me)
    });
    let id = task.task_ref();
    assert!(lp.run_until_complete(async {}).is_ok());
    assert!(lp.run_until_complete(task).unwrap().unwrap().unwrap());
    assert!(id.done());
    let in_callback = std::rc::Rc::new(std::cell::Cell::new(true));
    let flag = in_callback.clone();
    lp.call_soon(move |_| flag.set(current_task().is_some()))
        .unwrap();
    turn(&lp);
    assert!(!in_callback.get(), "a plain callback is not a task");
}

/// A loop run from inside a task's step of another loop: inside it, `current_task` is the
/// inner loop's task (or none in a plain callback); once it returns, the outer task is the
/// current task again, as before the inner run.
#[test]
fn a_loop_run_from_inside_a_task_gives_the_current_task_back_when_it_returns() {
    let outer = virtual_loop();
    let seen = outer
        .run_until_complete(async {
            let me = current_task().expect("the outer task");
            let inner = virtual_loop();
            let inner_task = inner.create_task(async { current_task().map(|t| t.name()) });
            inner_task.set_name("inner");
            let (tx, rx) = std::sync::mpsc::channel();
            inner.call_soon(move |_| tx.send(current_task().is_none()).unwrap())?;
            let inner_seen = inner.run_until_complete(inner_task)??;
            let callback_saw_none = rx.recv().unwrap();
            let after = current_task().expect("the outer task again");
            io::Result::Ok((inner_seen, callback_saw_none, me == after))
        })
        .unwrap()
        .unwrap();
    assert_eq!(seen, (Some("inner".to_string()), true, true));
    assert!(current_task().is_none(), "no loop runs");
}

#[test]
fn tasks_are_named_task_n_by_default_and_can_be_renamed() {
    let lp = virtual_loop();
    let first = lp.create_task(async {});
    let second = lp.create_task(async {});
    let n: u64 = first.name().strip_prefix("Task-").unwrap().parse().unwrap();
    assert_eq!(second.name(), format!("Task-{}", n + 1));
    second.set_name("worker");
    assert_eq!(second.name(), "worker");
    assert_eq!(second.task_ref().name(), "worker");
    let seen = lp
        .run_until_complete(async {
            let me = current_task().unwrap();
            me.set_name("main");
            current_task().unwrap().name()
        })
        .unwrap();
    assert_eq!(seen, "main");
}

#[test]
fn all_tasks_lists_the_running_loops_tasks_that_are_not_done() {
    let lp = virtual_loop();
    let sleeping = sleeper(&lp, secs(5), 0);
    sleeping.set_name("sleeping");
    let quick = lp.create_task(async {});
    quick.set_name("quick");
    turn(&lp);
    assert!(quick.done());
    let names = lp
        .run_until_complete(async {
            let mut names: Vec<String> = all_tasks()?.iter().map(|t| t.name()).collect();
            names.sort();
            io::Result::Ok(names)
        })
        .unwrap()
        .unwrap();
    assert_eq!(
        names.len(),
        2,
        "the sleeping task and the one asking: {names:?}"
    );
    assert!(names.contains(&"sleeping".to_string()));
    let err = all_tasks().unwrap_err();
    assert_eq!(LoopError::of(&err), Some(LoopError::NoRunningLoop));
    let cancelled = lp
        .run_until_complete(async {
            let others: Vec<_> = all_tasks()?
                .into_iter()
                .filter(|t| Some(t) != current_task().as_ref())
                .collect();
            io::Result::Ok(others.iter().filter(|t| t.cancel()).count())
        })
        .unwrap()
        .unwrap();
    assert_eq!(cancelled, 1);
    turn(&lp);
    assert!(sleeping.cancelled());
}

#[test]
fn a_shield_whose_inner_task_is_cancelled_gives_cancelled() {
    let lp = virtual_loop();
    let inner = sleeper(&lp, secs(5), 1);
    let inner_ref = inner.task_ref();
    let awaiter = lp.create_task(async move { shield(inner).await.map(|_| ()) });
    let awaiter_ref = awaiter.task_ref();
    turn(&lp);
    assert!(inner_ref.cancel());
    let outcome = lp.run_until_complete(awaiter).unwrap();
    assert_eq!(loop_error(outcome), Some(LoopError::Cancelled));
    assert!(
        awaiter_ref.cancelled(),
        "the cancellation it returned cancels the awaiter's task"
    );
}

#[test]
fn a_shield_of_a_done_future_gives_its_value() {
    let lp = virtual_loop();
    let fut = lp.create_future::<u32>();
    fut.set_result(9).unwrap();
    assert_eq!(lp.run_until_complete(shield(fut)).unwrap().unwrap(), 9);
}

#[test]
fn cancelling_the_awaiter_of_gather_cancels_every_task_it_gathers() {
    let lp = virtual_loop();
    let a = sleeper(&lp, secs(5), 1);
    let b = sleeper(&lp, secs(10), 2);
    let (probe_a, probe_b) = (a.as_future().clone(), b.as_future().clone());
    let outer = lp.create_task(async move { gather([a, b]).await.map(|_| ()) });
    turn(&lp);
    turn(&lp);
    assert!(outer.cancel());
    lp.run_until(|_| probe_a.done() && probe_b.done()).unwrap();
    assert!(outer.cancelled());
    assert!(probe_a.cancelled() && probe_b.cancelled());
    assert_eq!(lp.time(), Duration::ZERO);
}

#[test]
fn a_cancelled_child_fails_gather_with_cancelled_and_the_other_children_run_on() {
    let lp = virtual_loop();
    let a = sleeper(&lp, secs(5), 1);
    let b = sleeper(&lp, secs(10), 2);
    let probe_a = a.as_future().clone();
    let b_ref = b.task_ref();
    let outer = lp.create_task(async move { gather([a, b]).await.map(|_| ()) });
    turn(&lp);
    assert!(b_ref.cancel());
    let outcome = lp.run_until_complete(outer).unwrap();
    assert_eq!(loop_error(outcome), Some(LoopError::Cancelled));
    assert!(
        !probe_a.done(),
        "gather is not cancelled by its child, nor are the others"
    );
    assert_eq!(lp.run_until_complete(probe_a).unwrap().unwrap().unwrap(), 1);
}

#[test]
fn cancelling_the_awaiter_of_wait_for_cancels_the_task_it_waits_for() {
    let lp = virtual_loop();
    let inner = sleeper(&lp, secs(5), 1);
    let probe = inner.as_future().clone();
    let outer = lp.create_task(async move { wait_for(inner, secs(60)).await.map(|_| ()) });
    turn(&lp);
    turn(&lp);
    assert!(outer.cancel());
    lp.run_until(|_| probe.done()).unwrap();
    assert!(outer.cancelled() && probe.cancelled());
    assert_eq!(lp.time(), Duration::ZERO);
}

#[test]
fn wait_for_of_a_done_future_gives_its_value_without_waiting() {
    let lp = virtual_loop();
    let fut = lp.create_future::<u32>();
    fut.set_result(4).unwrap();
    assert_eq!(
        lp.run_until_complete(wait_for(fut, secs(1)))
            .unwrap()
            .unwrap()
            .unwrap(),
        4
    );
    assert_eq!(lp.time(), Duration::ZERO);
}

#[test]
fn wait_for_gives_the_inner_error_not_a_time_out() {
    let lp = virtual_loop();
    let task = lp.create_task(async {
        sleep(secs(1)).await?;
        io::Result::<u32>::Err(io::Error::other("inner failed"))
    });
    let outcome = lp.run_until_complete(wait_for(task, secs(5))).unwrap();
    let error = outcome.unwrap().unwrap().unwrap_err();
    assert_eq!(error.to_string(), "inner failed");
    assert_eq!(lp.time(), secs(1));
}

#[test]
fn cancelling_the_awaiter_of_wait_leaves_the_tasks_it_waits_on_running() {
    let lp = virtual_loop();
    let a = sleeper(&lp, secs(5), 1);
    let probe = a.as_future().clone();
    let outer = lp.create_task(async move {
        wait(vec![a], None, ReturnWhen::AllCompleted)
            .await
            .map(|_| ())
    });
    turn(&lp);
    turn(&lp);
    assert!(outer.cancel());
    turn(&lp);
    assert!(outer.cancelled());
    assert!(!probe.done(), "wait only watches its futures");
    assert_eq!(lp.run_until_complete(probe).unwrap().unwrap().unwrap(), 1);
}

#[test]
fn cancelling_the_consumer_of_as_completed_leaves_the_tasks_running() {
    let lp = virtual_loop();
    let a = sleeper(&lp, secs(5), 1);
    let probe = a.as_future().clone();
    let outer = lp.create_task(async move {
        let mut each = as_completed(vec![a], None);
        each.next().await.map(|_| ())
    });
    turn(&lp);
    turn(&lp);
    assert!(outer.cancel());
    turn(&lp);
    assert!(outer.cancelled());
    assert!(!probe.done(), "as_completed only watches its futures");
    assert_eq!(lp.run_until_complete(probe).unwrap().unwrap().unwrap(), 1);
}

/// A chain of callbacks, each scheduling the next with `call_soon`: one per loop iteration.
fn chain(lp: &EventLoop, log: Log, left: u32) {
    lp.call_soon(move |lp| {
        log.push(format!("c{left}"));
        if left > 1 {
            chain(lp, log, left - 1);
        }
    })
    .unwrap();
}

#[test]
fn sleep_of_zero_yields_for_exactly_one_iteration_as_asyncio_sleep_0() {
    let lp = virtual_loop();
    let log = Log::default();
    let l = log.clone();
    let task = lp.create_task(async move {
        l.push("a1");
        sleep(Duration::ZERO).await?;
        l.push("a2");
        sleep(Duration::ZERO).await?;
        l.push("a3");
        io::Result::Ok(())
    });
    chain(&lp, log.clone(), 4);
    lp.run_until(|_| task.done()).unwrap();
    turn(&lp);
    turn(&lp);
    assert_eq!(log.take(), ["a1", "c4", "a2", "c3", "a3", "c2", "c1"]);
    assert_eq!(lp.time(), Duration::ZERO);
}

#[test]
fn sleep_of_zero_outside_a_running_loop_is_no_running_loop() {
    struct Noop;
    impl std::task::Wake for Noop {
        fn wake(self: std::sync::Arc<Self>) {}
    }
    let waker = std::task::Waker::from(std::sync::Arc::new(Noop));
    let mut cx = std::task::Context::from_waker(&waker);
    let mut zero = std::pin::pin!(sleep(Duration::ZERO));
    match std::future::Future::poll(zero.as_mut(), &mut cx) {
        std::task::Poll::Ready(r) => assert_eq!(loop_error(r), Some(LoopError::NoRunningLoop)),
        std::task::Poll::Pending => panic!("outside a loop it must not wait"),
    }
}

#[test]
fn wait_with_a_zero_timeout_arms_a_timer_as_asyncio_call_later_0_does() {
    let lp = virtual_loop();
    let log = Log::default();
    let l = log.clone();
    let never = lp.create_future::<u32>();
    let task = lp.create_task(async move {
        l.push("before");
        let (done, pending) = wait(vec![never], Some(Duration::ZERO), ReturnWhen::AllCompleted)
            .await
            .unwrap();
        assert_eq!((done.len(), pending.len()), (0, 1));
        l.push("after");
    });
    chain(&lp, log.clone(), 4);
    lp.run_until(|_| task.done()).unwrap();
    turn(&lp);
    // The timer fires an iteration later, and the waiter resumes in the one after.
    assert_eq!(log.take(), ["before", "c4", "c3", "c2", "after", "c1"]);
}

#[test]
fn wait_for_timing_out_on_a_future_cancels_that_future() {
    let lp = virtual_loop();
    let fut = lp.create_future::<u32>();
    let probe = fut.clone();
    let outcome = lp.run_until_complete(wait_for(fut, secs(1))).unwrap();
    assert_eq!(loop_error(outcome), Some(LoopError::TimedOut));
    assert!(probe.cancelled());
    assert_eq!(lp.time(), secs(1));
}

#[test]
fn cancelling_the_awaiter_of_a_gather_of_shields_leaves_the_tasks_running() {
    let lp = virtual_loop();
    let a = sleeper(&lp, secs(5), 1);
    let b = sleeper(&lp, secs(10), 2);
    let (probe_a, probe_b) = (a.as_future().clone(), b.as_future().clone());
    let outer = lp.create_task(async move { gather([shield(a), shield(b)]).await.map(|_| ()) });
    turn(&lp);
    turn(&lp);
    assert!(outer.cancel());
    turn(&lp);
    assert!(outer.cancelled());
    assert!(!probe_a.done() && !probe_b.done());
    lp.run_until(|_| probe_a.done() && probe_b.done()).unwrap();
    assert_eq!(probe_a.take_result().unwrap().unwrap(), 1);
    assert_eq!(probe_b.take_result().unwrap().unwrap(), 2);
}

#[test]
fn current_task_in_a_tasks_done_callback_is_none() {
    let lp = virtual_loop();
    let seen = std::rc::Rc::new(std::cell::Cell::new(None::<bool>));
    let s = seen.clone();
    let task = lp.create_task(async {});
    task.add_done_callback(move |_| s.set(Some(current_task().is_some())));
    lp.run_until(|_| seen.get().is_some()).unwrap();
    assert_eq!(
        seen.get(),
        Some(false),
        "done callbacks run outside the task"
    );
}
