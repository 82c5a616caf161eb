//! The rules of `tulip::Future`: its states (pending, done with a value or an error,
//! cancelled), the errors of a misuse (`InvalidState`, `Cancelled`), done callbacks (scheduled
//! with `call_soon` in registration order, never run inline) and `.await`. None of this depends
//! on the selector, so each rule runs once, on the best backend, on the virtual clock.

use std::cell::{Cell, RefCell};
use std::io;
use std::rc::Rc;
use std::time::Duration;

use tulip::selectors::Backend;

#[path = "support/observe.rs"]
mod observe;
use observe::{turn, Drops, Log, Tracked};
use tulip::{EventLoop, Future, LoopError, ManualClock};

fn virtual_loop() -> EventLoop {
    EventLoop::with_clock(Backend::best(), ManualClock::new()).unwrap()
}

/// The `LoopError` an outcome failed with (`None` for a value or another error).
fn loop_error<T>(outcome: io::Result<T>) -> Option<LoopError> {
    outcome.err().as_ref().and_then(LoopError::of)
}

#[test]
fn a_new_future_is_pending_and_its_result_is_invalid_state() {
    let lp = virtual_loop();
    let fut = lp.create_future::<u32>();
    assert!(!fut.done());
    assert!(!fut.cancelled());
    assert_eq!(loop_error(fut.result()), Some(LoopError::InvalidState));
    assert_eq!(loop_error(fut.take_result()), Some(LoopError::InvalidState));
    // Asking did not change anything: it can still be completed.
    fut.set_result(1).unwrap();
    assert_eq!(fut.result().unwrap(), 1);
}

#[test]
fn set_result_makes_it_done_and_result_reads_the_value_as_often_as_asked() {
    let lp = virtual_loop();
    let fut = lp.create_future::<String>();
    fut.set_result("value".to_owned()).unwrap();
    assert!(fut.done());
    assert!(!fut.cancelled());
    assert_eq!(fut.result().unwrap(), "value");
    assert_eq!(fut.result().unwrap(), "value");
    assert_eq!(
        fut.clone().result().unwrap(),
        "value",
        "clones share one state"
    );
}

#[test]
fn take_result_moves_the_value_out_once_then_it_is_invalid_state() {
    let lp = virtual_loop();
    let fut = lp.create_future::<Vec<u8>>();
    fut.set_result(vec![1, 2, 3]).unwrap();
    assert_eq!(fut.take_result().unwrap(), vec![1, 2, 3]);
    assert!(fut.done());
    assert_eq!(loop_error(fut.take_result()), Some(LoopError::InvalidState));
    assert_eq!(loop_error(fut.result()), Some(LoopError::InvalidState));
}

#[test]
fn setting_a_result_twice_is_invalid_state_and_keeps_the_first_dropping_the_second() {
    let lp = virtual_loop();
    let drops = Drops::default();
    let fut = lp.create_future::<(u32, Tracked)>();
    fut.set_result((1, drops.track())).unwrap();
    let second = fut.set_result((2, drops.track()));
    assert_eq!(loop_error(second), Some(LoopError::InvalidState));
    assert_eq!(drops.count(), 1, "the refused value is dropped at once");
    assert_eq!(fut.take_result().unwrap().0, 1);
    assert_eq!(drops.count(), 2);
}

#[test]
fn set_exception_after_a_result_and_set_result_after_an_exception_are_invalid_state() {
    let lp = virtual_loop();
    let with_value = lp.create_future::<u32>();
    with_value.set_result(7).unwrap();
    let late = with_value.set_exception(io::Error::other("late"));
    assert_eq!(loop_error(late), Some(LoopError::InvalidState));
    assert_eq!(with_value.result().unwrap(), 7);

    let with_error = lp.create_future::<u32>();
    with_error
        .set_exception(io::Error::new(io::ErrorKind::NotFound, "gone"))
        .unwrap();
    assert_eq!(
        loop_error(with_error.set_result(1)),
        Some(LoopError::InvalidState)
    );
    assert_eq!(
        loop_error(with_error.set_exception(io::ErrorKind::Other.into())),
        Some(LoopError::InvalidState)
    );
    assert_eq!(
        with_error.result().unwrap_err().kind(),
        io::ErrorKind::NotFound
    );
}

#[test]
fn set_exception_makes_it_done_and_result_gives_the_error_with_its_kind_and_message() {
    let lp = virtual_loop();
    let fut = lp.create_future::<u32>();
    fut.set_exception(io::Error::new(io::ErrorKind::ConnectionReset, "peer left"))
        .unwrap();
    assert!(fut.done());
    assert!(!fut.cancelled());
    for _ in 0..2 {
        let err = fut.result().unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::ConnectionReset);
        assert_eq!(err.to_string(), "peer left");
    }
    let err = fut.take_result().unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::ConnectionReset);
    assert_eq!(err.to_string(), "peer left");
}

#[test]
fn cancel_of_a_pending_future_returns_true_and_its_result_is_cancelled() {
    let lp = virtual_loop();
    let fut = lp.create_future::<u32>();
    assert!(fut.cancel());
    assert!(fut.done());
    assert!(fut.cancelled());
    assert_eq!(loop_error(fut.result()), Some(LoopError::Cancelled));
    // Cancellation is not consumed by reading it.
    assert_eq!(loop_error(fut.take_result()), Some(LoopError::Cancelled));
    assert_eq!(loop_error(fut.take_result()), Some(LoopError::Cancelled));
    assert!(fut.cancelled());
}

#[test]
fn cancel_of_a_done_future_returns_false_and_changes_nothing() {
    let lp = virtual_loop();
    let cancelled = lp.create_future::<u32>();
    assert!(cancelled.cancel());
    assert!(!cancelled.cancel(), "cancelling twice");

    let finished = lp.create_future::<u32>();
    finished.set_result(3).unwrap();
    assert!(!finished.cancel());
    assert!(!finished.cancelled());
    assert_eq!(finished.result().unwrap(), 3);

    let failed = lp.create_future::<u32>();
    failed.set_exception(io::ErrorKind::Other.into()).unwrap();
    assert!(!failed.cancel());
    assert!(!failed.cancelled());
}

#[test]
fn setting_a_result_or_an_exception_on_a_cancelled_future_is_invalid_state() {
    let lp = virtual_loop();
    let fut = lp.create_future::<u32>();
    fut.cancel();
    assert_eq!(loop_error(fut.set_result(1)), Some(LoopError::InvalidState));
    assert_eq!(
        loop_error(fut.set_exception(io::ErrorKind::Other.into())),
        Some(LoopError::InvalidState)
    );
    assert!(fut.cancelled());
}

#[test]
fn done_callbacks_run_on_the_loop_not_inside_set_result() {
    let lp = virtual_loop();
    let fut = lp.create_future::<u32>();
    let ran = Rc::new(Cell::new(false));
    let flag = ran.clone();
    fut.add_done_callback(move |_| flag.set(true));
    fut.set_result(1).unwrap();
    assert!(
        !ran.get(),
        "a done callback never runs inside the call that completes"
    );
    turn(&lp);
    assert!(ran.get());
}

#[test]
fn done_callbacks_are_scheduled_with_call_soon_at_completion_in_registration_order() {
    let lp = virtual_loop();
    let log = Log::default();
    let fut = lp.create_future::<u32>();
    for name in ["first", "second", "third"] {
        let log = log.clone();
        fut.add_done_callback(move |f| log.push(format!("{name} sees {}", f.result().unwrap())));
    }
    let before = log.clone();
    lp.call_soon(move |_| before.push("scheduled before completion"))
        .unwrap();
    fut.set_result(5).unwrap();
    let after = log.clone();
    lp.call_soon(move |_| after.push("scheduled after completion"))
        .unwrap();
    turn(&lp);
    assert_eq!(
        log.take(),
        [
            "scheduled before completion",
            "first sees 5",
            "second sees 5",
            "third sees 5",
            "scheduled after completion"
        ]
    );
}

#[test]
fn a_done_callback_added_after_completion_is_scheduled_at_once() {
    let lp = virtual_loop();
    let log = Log::default();
    let fut = lp.create_future::<u32>();
    fut.set_result(9).unwrap();
    let before = log.clone();
    lp.call_soon(move |_| before.push("before")).unwrap();
    let late = log.clone();
    fut.add_done_callback(move |f| late.push(format!("late sees {}", f.result().unwrap())));
    assert!(log.take().is_empty(), "not run inline either");
    let after = log.clone();
    lp.call_soon(move |_| after.push("after")).unwrap();
    turn(&lp);
    assert_eq!(log.take(), ["before", "late sees 9", "after"]);
}

#[test]
fn done_callbacks_run_for_an_exception_and_for_a_cancellation() {
    let lp = virtual_loop();
    let log = Log::default();
    let failed = lp.create_future::<u32>();
    let cancelled = lp.create_future::<u32>();
    let l = log.clone();
    failed.add_done_callback(move |f| {
        l.push(format!("failed: {:?}", f.result().unwrap_err().kind()))
    });
    let l = log.clone();
    cancelled.add_done_callback(move |f| l.push(format!("cancelled: {}", f.cancelled())));
    failed
        .set_exception(io::ErrorKind::BrokenPipe.into())
        .unwrap();
    assert!(cancelled.cancel());
    turn(&lp);
    assert_eq!(log.take(), ["failed: BrokenPipe", "cancelled: true"]);
}

#[test]
fn remove_done_callback_unregisters_it_once_and_it_never_runs() {
    let lp = virtual_loop();
    let log = Log::default();
    let fut = lp.create_future::<u32>();
    let ids: Vec<_> = ["a", "b", "c"]
        .into_iter()
        .map(|name| {
            let log = log.clone();
            fut.add_done_callback(move |_| log.push(name))
        })
        .collect();
    assert_eq!(fut.remove_done_callback(ids[1]), 1);
    assert_eq!(fut.remove_done_callback(ids[1]), 0, "already removed");
    fut.set_result(1).unwrap();
    assert_eq!(
        fut.remove_done_callback(ids[2]),
        0,
        "scheduled at completion: no longer removable"
    );
    turn(&lp);
    assert_eq!(log.take(), ["a", "c"]);
}

#[test]
fn remove_done_callback_drops_the_callback_and_what_it_captured() {
    let lp = virtual_loop();
    let drops = Drops::default();
    let fut = lp.create_future::<u32>();
    let tracked = drops.track();
    let id = fut.add_done_callback(move |_| drop(tracked));
    assert_eq!(drops.count(), 0);
    assert_eq!(fut.remove_done_callback(id), 1);
    assert_eq!(drops.count(), 1);
}

#[test]
fn await_suspends_until_the_result_is_set_and_gives_it() {
    let clock = ManualClock::new();
    let lp = EventLoop::with_clock(Backend::best(), clock.clone()).unwrap();
    let fut = lp.create_future::<&'static str>();
    let setter = fut.clone();
    lp.call_later(Duration::from_secs(4), move |_| {
        setter.set_result("ready").unwrap()
    })
    .unwrap();
    let log = Log::default();
    let task_log = log.clone();
    let clock_in_task = clock.clone();
    let value = lp
        .run_until_complete(async move {
            task_log.push("before await");
            let value = fut.await;
            task_log.push(format!("resumed at {:?}", clock_in_task.now()));
            value
        })
        .unwrap()
        .unwrap();
    assert_eq!(value, "ready");
    assert_eq!(log.take(), ["before await", "resumed at 4s"]);
}

#[test]
fn await_on_a_failed_future_gives_its_error_and_on_a_cancelled_one_cancelled() {
    let lp = virtual_loop();
    let failed = lp.create_future::<u32>();
    let cancelled = lp.create_future::<u32>();
    let (f, c) = (failed.clone(), cancelled.clone());
    lp.call_soon(move |_| {
        f.set_exception(io::Error::new(io::ErrorKind::InvalidData, "bad"))
            .unwrap();
        c.cancel();
    })
    .unwrap();
    let (failed_outcome, cancelled_outcome) = lp
        .run_until_complete(async move { (failed.await, cancelled.await) })
        .unwrap();
    assert_eq!(
        failed_outcome.unwrap_err().kind(),
        io::ErrorKind::InvalidData
    );
    assert_eq!(loop_error(cancelled_outcome), Some(LoopError::Cancelled));
}

#[test]
fn await_on_a_future_that_is_already_done_does_not_suspend() {
    let lp = virtual_loop();
    let fut = lp.create_future::<u32>();
    fut.set_result(11).unwrap();
    let iterations = lp.stats().iterations;
    assert_eq!(lp.run_until_complete(fut).unwrap().unwrap(), 11);
    assert_eq!(
        lp.stats().iterations - iterations,
        1,
        "one step of the task, no second one after a wake"
    );
}

#[test]
fn of_two_awaiters_the_first_takes_the_value_and_the_second_gets_invalid_state() {
    let lp = virtual_loop();
    let fut = lp.create_future::<u32>();
    let first = lp.create_task(fut.clone());
    let second = lp.create_task(fut.clone());
    turn(&lp);
    assert!(!first.done() && !second.done(), "both suspended");
    fut.set_result(3).unwrap();
    lp.run_until(|_| first.done() && second.done()).unwrap();
    assert_eq!(first.take_result().unwrap().unwrap(), 3);
    assert_eq!(
        loop_error(second.take_result().unwrap()),
        Some(LoopError::InvalidState)
    );
}

/// asyncio: `run_until_complete` of another loop's future is a ValueError, and a task awaiting
/// one a RuntimeError ("attached to a different loop"); before, tulip waited for ever for a
/// wake-up that the other loop, not running, could not give.
#[test]
fn awaiting_a_pending_future_or_task_of_another_loop_fails_instead_of_hanging() {
    let lp = virtual_loop();
    let other = virtual_loop();
    let foreign = other.create_future::<u32>();
    let err = lp.run_until_complete(foreign.clone()).unwrap().unwrap_err();
    assert_eq!(LoopError::of(&err), Some(LoopError::OtherLoop), "{err}");
    assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    assert!(!foreign.done(), "the foreign future is left as it was");

    let foreign_task = other.create_task(async { 5u32 });
    let awaiting = lp.create_task(foreign_task);
    lp.run_until(|_| awaiting.done()).unwrap();
    let err = awaiting.take_result().unwrap().unwrap_err();
    assert_eq!(LoopError::of(&err), Some(LoopError::OtherLoop), "{err}");

    // Done already, it gives its outcome to anyone, as asyncio's does.
    foreign.set_result(8).unwrap();
    assert_eq!(lp.run_until_complete(foreign).unwrap().unwrap(), 8);
    // Its own loop awaits it as ever.
    let own = other.create_future::<u32>();
    let setter = own.clone();
    other
        .call_soon(move |_| drop(setter.set_result(9)))
        .unwrap();
    assert_eq!(other.run_until_complete(own).unwrap().unwrap(), 9);
}

#[test]
fn a_future_outliving_its_loop_can_be_completed_and_drops_its_callbacks_unrun() {
    let lp = virtual_loop();
    let drops = Drops::default();
    let fut = lp.create_future::<u32>();
    let tracked = drops.track();
    let ran = Rc::new(Cell::new(false));
    let flag = ran.clone();
    fut.add_done_callback(move |_| {
        let _keep = tracked;
        flag.set(true);
    });
    drop(lp);
    fut.set_result(4).unwrap();
    assert_eq!(fut.result().unwrap(), 4);
    assert!(!ran.get());
    assert_eq!(drops.count(), 1, "the callback was dropped, not kept");
}

#[test]
fn a_done_callback_scheduled_but_unrun_when_the_loop_drops_is_dropped_with_its_future_clone() {
    let lp = virtual_loop();
    let drops = Drops::default();
    let fut = lp.create_future::<Tracked>();
    // The callback holds a clone of the future that holds it: a cycle until it is scheduled.
    let own = fut.clone();
    let tracked = drops.track();
    fut.add_done_callback(move |_| drop((own, tracked)));
    fut.set_result(drops.track()).unwrap();
    drop(fut);
    assert_eq!(drops.count(), 0, "scheduled, not run yet");
    drop(lp);
    assert_eq!(
        drops.count(),
        2,
        "the callback, its future clone and the value are gone with the loop"
    );
}

#[test]
fn a_future_holds_values_that_are_not_send() {
    let lp = virtual_loop();
    let fut: Future<Rc<Cell<u32>>> = lp.create_future();
    let shared = Rc::new(Cell::new(1));
    fut.set_result(shared.clone()).unwrap();
    shared.set(2);
    assert_eq!(fut.result().unwrap().get(), 2);
}

#[test]
fn the_debug_form_names_the_state() {
    let lp = virtual_loop();
    let fut = lp.create_future::<u32>();
    assert!(format!("{fut:?}").contains("pending"));
    fut.set_result(1).unwrap();
    assert!(format!("{fut:?}").contains("finished"));
    let cancelled = lp.create_future::<u32>();
    cancelled.cancel();
    assert!(format!("{cancelled:?}").contains("cancelled"));
}

fn count_removed(_: &Future<u32>) {}

#[test]
fn remove_done_callback_of_a_function_removes_every_registration_and_counts_them() {
    let lp = virtual_loop();
    let fut = lp.create_future::<u32>();
    let log = Log::default();
    fut.add_done_callback(count_removed);
    let kept = log.clone();
    fut.add_done_callback(move |_| kept.push("kept"));
    fut.add_done_callback(count_removed);
    let pointer: fn(&Future<u32>) = count_removed;
    fut.add_done_callback(pointer);
    assert_eq!(fut.remove_done_callback(count_removed), 2);
    assert_eq!(fut.remove_done_callback(pointer), 1);
    assert_eq!(fut.remove_done_callback(count_removed), 0);
    fut.set_result(1).unwrap();
    turn(&lp);
    assert_eq!(log.take(), ["kept"]);
}

/// A loop whose exception handler records each report's text.
fn reporting_loop() -> (EventLoop, Rc<RefCell<Vec<String>>>) {
    let lp = virtual_loop();
    let reports: Rc<RefCell<Vec<String>>> = Rc::default();
    let sink = reports.clone();
    lp.set_exception_handler(move |_, context| sink.borrow_mut().push(context.to_string()));
    (lp, reports)
}

#[test]
fn a_failed_future_dropped_unread_is_reported_as_never_retrieved() {
    let (lp, reports) = reporting_loop();
    let fut = lp.create_future::<u32>();
    fut.set_exception(io::Error::other("lost")).unwrap();
    drop(fut);
    let reports = reports.borrow();
    assert_eq!(reports.len(), 1);
    assert!(reports[0].contains("never retrieved") && reports[0].contains("lost"));
}

#[test]
fn a_failure_that_was_read_is_not_reported() {
    let (lp, reports) = reporting_loop();
    for read in 0..3 {
        let fut = lp.create_future::<u32>();
        fut.set_exception(io::Error::other("read")).unwrap();
        match read {
            0 => assert!(fut.exception().unwrap().is_some()),
            1 => assert!(fut.result().is_err()),
            _ => assert!(fut.take_result().is_err()),
        }
    }
    let cancelled = lp.create_future::<u32>();
    cancelled.cancel();
    drop(cancelled);
    assert!(reports.borrow().is_empty());
}

#[test]
fn a_task_that_returned_err_and_was_dropped_unread_is_reported() {
    let (lp, reports) = reporting_loop();
    let task = lp.create_task(async { Err::<u32, _>(io::Error::other("task failed")) });
    lp.run_until(|_| task.done()).unwrap();
    drop(task);
    let reports = reports.borrow();
    assert_eq!(reports.len(), 1, "{reports:?}");
    assert!(reports[0].contains("Task exception was never retrieved"));
    assert!(reports[0].contains("task failed"));
}

#[test]
fn reading_a_pending_future_does_not_silence_its_later_failure() {
    let (lp, reports) = reporting_loop();
    let fut = lp.create_future::<u32>();
    assert!(fut.take_result().is_err(), "pending: InvalidState");
    assert!(fut.exception().is_err(), "pending: InvalidState");
    fut.set_exception(io::ErrorKind::InvalidData.into())
        .unwrap();
    drop(fut);
    assert_eq!(
        reports.borrow().len(),
        1,
        "Future exception was never retrieved"
    );
}

#[test]
fn exception_is_none_for_a_value_the_error_for_a_failure_and_cancelled_once_cancelled() {
    let lp = virtual_loop();
    let pending = lp.create_future::<u32>();
    assert_eq!(
        loop_error(pending.exception()),
        Some(LoopError::InvalidState)
    );

    let finished = lp.create_future::<u32>();
    finished.set_result(1).unwrap();
    assert!(finished.exception().unwrap().is_none());

    let failed = lp.create_future::<u32>();
    failed
        .set_exception(io::Error::new(io::ErrorKind::BrokenPipe, "gone"))
        .unwrap();
    let error = failed.exception().unwrap().expect("it failed");
    assert_eq!(
        (error.kind(), error.to_string()),
        (io::ErrorKind::BrokenPipe, "gone".into())
    );

    let cancelled = lp.create_future::<u32>();
    cancelled.cancel();
    assert_eq!(
        loop_error(cancelled.exception()),
        Some(LoopError::Cancelled)
    );
}
