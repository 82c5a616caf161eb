//! The coroutine helpers: `sleep` and `yield_now`, `wait` (each `ReturnWhen`, timeouts),
//! `wait_for`, `gather`, and fd readiness (`wait_readable` / `wait_writable`). Everything
//! about time runs on the virtual clock, so the times asserted are exact; readiness runs on
//! every backend, ending with two tasks playing ping-pong over two pipes.

use std::future::Future as StdFuture;
use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use tulip::selectors::{fd, Backend};

#[path = "support/observe.rs"]
mod observe;
use observe::{turn, Drops, Log};
use tulip::{
    gather, sleep, wait, wait_for, wait_readable, wait_writable, yield_now, EventLoop, Future,
    LoopError, ManualClock, ReturnWhen,
};

#[macro_use]
#[path = "support/per_backend.rs"]
mod per_backend;

fn virtual_loop() -> (EventLoop, ManualClock) {
    let clock = ManualClock::new();
    let lp = EventLoop::with_clock(Backend::best(), clock.clone()).unwrap();
    (lp, clock)
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// A future of `lp` completed at `at` on its clock with `outcome` (`Err(kind)` for an error).
fn settled_at(lp: &EventLoop, at: Duration, outcome: Result<u32, io::ErrorKind>) -> Future<u32> {
    let fut = lp.create_future();
    let setter = fut.clone();
    lp.call_at(at, move |_| match outcome {
        Ok(value) => setter.set_result(value).unwrap(),
        Err(kind) => setter.set_exception(kind.into()).unwrap(),
    })
    .unwrap();
    fut
}

/// The values of done futures, in order (`None` for an error or a cancellation).
fn values(futures: &[Future<u32>]) -> Vec<Option<u32>> {
    futures.iter().map(|f| f.result().ok()).collect()
}

/// Poll `future` once, outside any loop.
fn poll_once<F: StdFuture>(future: F) -> Poll<F::Output> {
    struct NoWake;
    impl Wake for NoWake {
        fn wake(self: Arc<Self>) {}
    }
    let waker = Waker::from(Arc::new(NoWake));
    pin!(future).poll(&mut Context::from_waker(&waker))
}

#[test]
fn sleep_advances_the_virtual_clock_by_exactly_its_delay() {
    let (lp, clock) = virtual_loop();
    lp.run_until_complete(sleep(ms(1500))).unwrap().unwrap();
    assert_eq!(lp.time(), ms(1500));
    let c = clock.clone();
    let resumed_at = lp
        .run_until_complete(async move {
            sleep(ms(250)).await.unwrap();
            sleep(Duration::ZERO).await.unwrap();
            sleep(ms(250)).await.unwrap();
            c.now()
        })
        .unwrap();
    assert_eq!(resumed_at, secs(2));
    assert_eq!(clock.now(), secs(2));
}

#[test]
fn concurrent_sleeps_end_in_deadline_order_at_their_exact_deadlines() {
    let (lp, clock) = virtual_loop();
    let log = Log::default();
    let tasks: Vec<_> = [3u64, 1, 2]
        .into_iter()
        .map(|n| {
            let (log, clock) = (log.clone(), clock.clone());
            lp.create_task(async move {
                sleep(secs(n)).await.unwrap();
                log.push(format!("{n}s sleeper at {:?}", clock.now()));
            })
        })
        .collect();
    lp.run_until(|_| tasks.iter().all(|t| t.done())).unwrap();
    assert_eq!(
        log.take(),
        ["1s sleeper at 1s", "2s sleeper at 2s", "3s sleeper at 3s"]
    );
    assert_eq!(lp.time(), secs(3), "concurrent: the longest, not the sum");
}

#[test]
fn sleep_and_wait_readable_outside_a_running_loop_are_no_running_loop() {
    let (_lp, _clock) = virtual_loop();
    let Poll::Ready(Err(err)) = poll_once(sleep(secs(1))) else {
        panic!("sleep outside a loop must fail at once");
    };
    assert_eq!(LoopError::of(&err), Some(LoopError::NoRunningLoop));
    let (r, _w) = fd::pipe().unwrap();
    let Poll::Ready(Err(err)) = poll_once(wait_readable(r.as_raw_fd())) else {
        panic!("wait_readable outside a loop must fail at once");
    };
    assert_eq!(LoopError::of(&err), Some(LoopError::NoRunningLoop));
}

#[test]
fn dropping_a_sleep_before_it_fires_cancels_its_timer() {
    let (lp, _clock) = virtual_loop();
    lp.run_until_complete(async {
        let mut long = Box::pin(sleep(secs(60)));
        // Armed by a first poll, then abandoned.
        std::future::poll_fn(|cx| {
            assert!(long.as_mut().poll(cx).is_pending());
            Poll::Ready(())
        })
        .await;
    })
    .unwrap();
    assert_eq!(lp.stats().timers_cancelled, 1);
    lp.call_later(secs(1), |lp| lp.stop()).unwrap();
    lp.run_forever().unwrap();
    assert_eq!(lp.time(), secs(1));
    assert_eq!(
        lp.stats().timers_fired,
        1,
        "only the stop; the sleep's timer never fired"
    );
}

#[test]
fn yield_now_lets_every_callback_and_task_ready_now_run_before_the_task_continues() {
    let (lp, _clock) = virtual_loop();
    let log = Log::default();
    let l = log.clone();
    let task = lp.create_task(async move {
        l.push("task before yield");
        let spawned = l.clone();
        drop(tulip::spawn(async move { spawned.push("task spawned before the yield") }).unwrap());
        yield_now().await;
        l.push("task after yield");
    });
    let l = log.clone();
    lp.call_soon(move |_| l.push("callback scheduled after the task"))
        .unwrap();
    lp.run_until(|_| task.done()).unwrap();
    assert_eq!(
        log.take(),
        [
            "task before yield",
            "callback scheduled after the task",
            "task spawned before the yield",
            "task after yield"
        ]
    );
}

#[test]
fn two_tasks_that_yield_alternate() {
    let (lp, _clock) = virtual_loop();
    let log = Log::default();
    let tasks: Vec<_> = ["a", "b"]
        .into_iter()
        .map(|name| {
            let log = log.clone();
            lp.create_task(async move {
                for i in 1..=3 {
                    log.push(format!("{name}{i}"));
                    yield_now().await;
                }
            })
        })
        .collect();
    lp.run_until(|_| tasks.iter().all(|t| t.done())).unwrap();
    assert_eq!(log.take(), ["a1", "b1", "a2", "b2", "a3", "b3"]);
    assert_eq!(lp.time(), Duration::ZERO);
}

#[test]
fn wait_first_completed_returns_at_the_first_completion_split_in_the_order_given() {
    let (lp, clock) = virtual_loop();
    let tasks: Vec<_> = [3u32, 1, 2]
        .into_iter()
        .map(|n| {
            lp.create_task(async move {
                sleep(secs(u64::from(n))).await.unwrap();
                n
            })
        })
        .collect();
    let c = clock.clone();
    let (done, pending, at) = lp
        .run_until_complete(async move {
            let (done, pending) = wait(tasks, Some(secs(10)), ReturnWhen::FirstCompleted)
                .await
                .unwrap();
            (done, pending, c.now())
        })
        .unwrap();
    assert_eq!(at, secs(1));
    assert_eq!(done.len(), 1);
    assert_eq!(done[0].result().unwrap(), 1);
    assert_eq!(pending.len(), 2);
    assert!(pending.iter().all(|t| !t.done()));
    assert_eq!(lp.stats().timers_cancelled, 1, "the unused timeout's timer");
    // Nothing was cancelled or consumed: the pending ones finish, in the order given.
    lp.run_until(|_| pending.iter().all(|t| t.done())).unwrap();
    let later: Vec<_> = pending.iter().map(|t| t.result().unwrap()).collect();
    assert_eq!(later, [3, 2]);
    assert_eq!(done[0].take_result().unwrap(), 1);
}

#[test]
fn wait_first_exception_returns_at_the_first_error() {
    let (lp, clock) = virtual_loop();
    let futures = vec![
        settled_at(&lp, secs(1), Ok(1)),
        settled_at(&lp, secs(2), Err(io::ErrorKind::BrokenPipe)),
        settled_at(&lp, secs(3), Ok(3)),
    ];
    let c = clock.clone();
    let (done, pending, at) = lp
        .run_until_complete(async move {
            let (d, p) = wait(futures, None, ReturnWhen::FirstException)
                .await
                .unwrap();
            (d, p, c.now())
        })
        .unwrap();
    assert_eq!(at, secs(2));
    assert_eq!(values(&done), [Some(1), None]);
    assert_eq!(
        done[1].result().unwrap_err().kind(),
        io::ErrorKind::BrokenPipe
    );
    assert_eq!(pending.len(), 1);
    lp.run_until(|_| pending[0].done()).unwrap();
    assert_eq!(values(&pending), [Some(3)]);
}

#[test]
fn wait_first_exception_without_an_error_waits_for_all() {
    let (lp, clock) = virtual_loop();
    let futures = vec![
        settled_at(&lp, secs(2), Ok(2)),
        settled_at(&lp, secs(1), Ok(1)),
    ];
    let c = clock.clone();
    let (done, pending, at) = lp
        .run_until_complete(async move {
            let (d, p) = wait(futures, None, ReturnWhen::FirstException)
                .await
                .unwrap();
            (d, p, c.now())
        })
        .unwrap();
    assert_eq!(at, secs(2));
    assert_eq!(values(&done), [Some(2), Some(1)]);
    assert!(pending.is_empty());
}

#[test]
fn wait_all_completed_waits_for_every_future_errors_included() {
    let (lp, clock) = virtual_loop();
    let futures = vec![
        settled_at(&lp, secs(1), Err(io::ErrorKind::InvalidData)),
        settled_at(&lp, secs(3), Ok(3)),
        settled_at(&lp, secs(2), Ok(2)),
    ];
    let c = clock.clone();
    let (done, pending, at) = lp
        .run_until_complete(async move {
            let (d, p) = wait(futures, None, ReturnWhen::AllCompleted).await.unwrap();
            (d, p, c.now())
        })
        .unwrap();
    assert_eq!(at, secs(3));
    assert_eq!(values(&done), [None, Some(3), Some(2)]);
    assert!(pending.is_empty());
}

#[test]
fn wait_with_a_timeout_returns_what_is_done_by_then_and_cancels_nothing() {
    for (return_when, timeout, done_by_then) in [
        (ReturnWhen::AllCompleted, ms(1500), vec![Some(1)]),
        (ReturnWhen::FirstException, ms(1500), vec![Some(1)]),
        (ReturnWhen::FirstCompleted, ms(500), vec![]),
    ] {
        let (lp, clock) = virtual_loop();
        let futures = vec![
            settled_at(&lp, secs(3), Ok(3)),
            settled_at(&lp, secs(1), Ok(1)),
            settled_at(&lp, secs(2), Ok(2)),
        ];
        let (waited, c) = (futures.clone(), clock.clone());
        let (done, pending, at) = lp
            .run_until_complete(async move {
                let (d, p) = wait(waited, Some(timeout), return_when).await.unwrap();
                (d, p, c.now())
            })
            .unwrap();
        assert_eq!(at, timeout, "{return_when:?}");
        assert_eq!(values(&done), done_by_then, "{return_when:?}");
        assert_eq!(pending.len(), 3 - done.len(), "{return_when:?}");
        assert!(pending.iter().all(|f| !f.done()), "{return_when:?}");
        lp.run_until(|_| futures.iter().all(|f| f.done())).unwrap();
        assert_eq!(
            values(&futures),
            [Some(3), Some(1), Some(2)],
            "{return_when:?}"
        );
    }
}

#[test]
fn wait_counts_a_cancelled_future_as_completed_not_as_an_error() {
    let (lp, clock) = virtual_loop();
    let cancelled = lp.create_future::<u32>();
    let to_cancel = cancelled.clone();
    lp.call_at(secs(1), move |_| {
        to_cancel.cancel();
    })
    .unwrap();
    let later = settled_at(&lp, secs(2), Ok(2));
    for (return_when, expected_at) in [
        (ReturnWhen::FirstCompleted, secs(1)),
        (ReturnWhen::FirstException, secs(2)),
    ] {
        let futures = vec![cancelled.clone(), later.clone()];
        let c = clock.clone();
        let at = lp
            .run_until_complete(async move {
                wait(futures, None, return_when).await.unwrap();
                c.now()
            })
            .unwrap();
        assert_eq!(at, expected_at, "{return_when:?}");
    }
}

#[test]
fn wait_on_futures_already_done_returns_without_time_passing() {
    let (lp, _clock) = virtual_loop();
    let fut = lp.create_future::<u32>();
    fut.set_result(4).unwrap();
    let (done, pending) = lp
        .run_until_complete(wait(vec![fut], Some(secs(5)), ReturnWhen::AllCompleted))
        .unwrap()
        .unwrap();
    assert_eq!(values(&done), [Some(4)]);
    assert!(pending.is_empty());
    assert_eq!(lp.time(), Duration::ZERO);
}

#[test]
fn wait_on_no_futures_is_invalid_input() {
    let (lp, _clock) = virtual_loop();
    for return_when in [
        ReturnWhen::FirstCompleted,
        ReturnWhen::FirstException,
        ReturnWhen::AllCompleted,
    ] {
        let err = lp
            .run_until_complete(wait(Vec::<Future<u32>>::new(), None, return_when))
            .unwrap()
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    }
}

#[test]
fn wait_for_gives_the_output_when_it_comes_in_time_and_cancels_its_timer() {
    let (lp, clock) = virtual_loop();
    let c = clock.clone();
    let (output, at) = lp
        .run_until_complete(async move {
            let output = wait_for(
                async {
                    sleep(secs(2)).await.unwrap();
                    "in time"
                },
                secs(3),
            )
            .await;
            (output, c.now())
        })
        .unwrap();
    assert_eq!(output.unwrap(), "in time");
    assert_eq!(at, secs(2));
    assert_eq!(lp.stats().timers_cancelled, 1, "the 3 s timeout");
}

#[test]
fn wait_for_timing_out_is_timed_out_exactly_then_and_drops_the_inner_coroutine() {
    let (lp, clock) = virtual_loop();
    let drops = Drops::default();
    let log = Log::default();
    let (c, d, l, tracked) = (clock.clone(), drops.clone(), log.clone(), drops.track());
    let (outcome, at, dropped_by_then) = lp
        .run_until_complete(async move {
            let inner_log = l.clone();
            let outcome = wait_for(
                async move {
                    let _guard = tracked;
                    inner_log.push("inner started");
                    sleep(secs(10)).await.unwrap();
                    inner_log.push("inner finished");
                },
                secs(3),
            )
            .await;
            (outcome, c.now(), d.count())
        })
        .unwrap();
    let err = outcome.unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::TimedOut);
    assert_eq!(LoopError::of(&err), Some(LoopError::TimedOut));
    assert_eq!(at, secs(3));
    assert_eq!(dropped_by_then, 1, "dropped before wait_for returned");
    assert_eq!(lp.stats().timers_cancelled, 1, "the inner sleep's timer");
    lp.call_later(secs(20), |lp| lp.stop()).unwrap();
    lp.run_forever().unwrap();
    assert_eq!(log.take(), ["inner started"]);
}

#[test]
fn gather_returns_the_values_in_the_order_given_whatever_order_they_finish_in() {
    let (lp, _clock) = virtual_loop();
    let values = lp
        .run_until_complete(gather([3u64, 1, 2].map(|n| async move {
            sleep(secs(n)).await?;
            Ok(n * 10)
        })))
        .unwrap()
        .unwrap();
    assert_eq!(values, [30, 10, 20]);
    assert_eq!(lp.time(), secs(3));
}

#[test]
fn gather_of_tasks_returns_their_outputs_in_order() {
    let (lp, _clock) = virtual_loop();
    let values = lp
        .run_until_complete(async {
            let tasks: Vec<_> = [2u64, 1]
                .into_iter()
                .map(|n| {
                    tulip::spawn(async move {
                        sleep(secs(n)).await.unwrap();
                        n
                    })
                    .unwrap()
                })
                .collect();
            gather(tasks).await
        })
        .unwrap()
        .unwrap();
    assert_eq!(values, [2, 1]);
}

#[test]
fn gather_returns_the_first_error_in_time_and_drops_the_other_futures() {
    let (lp, clock) = virtual_loop();
    let drops = Drops::default();
    let log = Log::default();
    let plan: [(u64, Option<&'static str>); 3] = [
        (3, None),
        (2, Some("second error")),
        (1, Some("first error")),
    ];
    let futures = plan.map(|(n, error)| {
        let (tracked, log) = (drops.track(), log.clone());
        async move {
            let _guard = tracked;
            sleep(secs(n)).await?;
            log.push(format!("{n}s finished"));
            match error {
                Some(message) => Err(io::Error::other(message)),
                None => Ok(n),
            }
        }
    });
    let (c, d) = (clock.clone(), drops.clone());
    let (outcome, at, dropped) = lp
        .run_until_complete(async move {
            let outcome = gather(futures).await;
            (outcome, c.now(), d.count())
        })
        .unwrap();
    assert_eq!(outcome.unwrap_err().to_string(), "first error");
    assert_eq!(at, secs(1));
    assert_eq!(
        dropped, 3,
        "all three coroutines are gone when gather returns"
    );
    lp.call_later(secs(10), |lp| lp.stop()).unwrap();
    lp.run_forever().unwrap();
    assert_eq!(log.take(), ["1s finished"]);
}

#[test]
fn gather_of_nothing_is_an_empty_vec() {
    let (lp, _clock) = virtual_loop();
    let none: Vec<Future<u32>> = Vec::new();
    assert!(lp
        .run_until_complete(gather(none))
        .unwrap()
        .unwrap()
        .is_empty());
}

/// A task of `lp` that sleeps `delay`, then returns `outcome` (`Err` is a failure).
fn task_returning(
    lp: &EventLoop,
    delay: Duration,
    outcome: io::Result<u32>,
) -> tulip::Task<io::Result<u32>> {
    lp.create_task(async move {
        sleep(delay).await?;
        outcome
    })
}

#[test]
fn wait_first_exception_returns_when_a_task_returns_err() {
    let (lp, clock) = virtual_loop();
    let failing = task_returning(&lp, secs(1), Err(io::ErrorKind::InvalidData.into()));
    let slow = task_returning(&lp, secs(60), Ok(2));
    let (done, pending) = lp
        .run_until_complete(wait(vec![failing, slow], None, ReturnWhen::FirstException))
        .unwrap()
        .unwrap();
    assert_eq!(
        clock.now(),
        secs(1),
        "returned at the failure, not after the slow task"
    );
    assert_eq!((done.len(), pending.len()), (1, 1));
    let error = done[0].exception().unwrap().expect("the task failed");
    assert_eq!(error.kind(), io::ErrorKind::InvalidData);
}

#[test]
fn a_task_that_returned_ok_has_no_exception_and_a_pending_one_is_invalid_state() {
    let (lp, _clock) = virtual_loop();
    let ok = task_returning(&lp, secs(1), Ok(7));
    assert_eq!(
        LoopError::of(&ok.exception().unwrap_err()),
        Some(LoopError::InvalidState)
    );
    lp.run_until(|_| ok.done()).unwrap();
    assert!(ok.exception().unwrap().is_none());
    assert_eq!(ok.take_result().unwrap().unwrap(), 7);
}

#[test]
fn gather_reports_a_task_that_returned_err_as_its_error() {
    let (lp, clock) = virtual_loop();
    let tasks = vec![
        task_returning(&lp, secs(1), Ok(1)),
        task_returning(&lp, secs(2), Err(io::Error::from_raw_os_error(5))),
        task_returning(&lp, secs(60), Ok(3)),
    ];
    let error = lp.run_until_complete(gather(tasks)).unwrap().unwrap_err();
    assert_eq!(
        error.raw_os_error(),
        Some(5),
        "the task's own error, as it was"
    );
    assert_eq!(clock.now(), secs(2));
}

#[test]
fn wait_first_completed_reports_everything_done_by_the_time_the_waiter_resumes() {
    // CPython's test_wait_really_done: `a` finishes one iteration before `b`; the waiter
    // resumes two iterations after `a`, by when `b` is done too.
    let (lp, _clock) = virtual_loop();
    let a = lp.create_task(async {
        yield_now().await;
    });
    let b = lp.create_task(async {
        yield_now().await;
        yield_now().await;
    });
    let (done, pending) = lp
        .run_until_complete(wait(vec![b, a], None, ReturnWhen::FirstCompleted))
        .unwrap()
        .unwrap();
    assert_eq!((done.len(), pending.len()), (2, 0));
}

#[test]
fn wait_for_timing_out_on_a_task_cancels_it_and_waits_for_its_cancellation() {
    let (lp, clock) = virtual_loop();
    let drops = Drops::default();
    let tracked = drops.track();
    let task = lp.create_task(async move {
        let _tracked = tracked;
        sleep(secs(60)).await
    });
    let probe = task.as_future().clone();
    let seen = drops.clone();
    let outcome = lp
        .run_until_complete(async move {
            let outcome = wait_for(task, secs(1)).await;
            (outcome.map(|_| ()), seen.count())
        })
        .unwrap();
    assert_eq!(
        LoopError::of(&outcome.0.unwrap_err()),
        Some(LoopError::TimedOut)
    );
    assert_eq!(
        outcome.1, 1,
        "the task's destructors ran before TimedOut was reported"
    );
    assert!(probe.cancelled(), "the task ended cancelled");
    assert_eq!(clock.now(), secs(1));
}

#[test]
fn cancelling_a_task_cancels_the_task_it_awaits() {
    let (lp, _clock) = virtual_loop();
    let inner = lp.create_task(sleep(secs(60)));
    let inner_probe = inner.as_future().clone();
    let outer = lp.create_task(async move { inner.await.ok() });
    turn(&lp);
    turn(&lp);
    outer.cancel();
    lp.run_until(|_| inner_probe.done()).unwrap();
    assert!(outer.cancelled() && inner_probe.cancelled());
}

#[test]
fn wait_for_with_a_zero_timeout_never_starts_a_coroutine() {
    let (lp, _clock) = virtual_loop();
    let started = std::rc::Rc::new(std::cell::Cell::new(false));
    let flag = started.clone();
    let outcome = lp
        .run_until_complete(wait_for(
            async move {
                flag.set(true);
                1
            },
            Duration::ZERO,
        ))
        .unwrap();
    assert_eq!(
        LoopError::of(&outcome.unwrap_err()),
        Some(LoopError::TimedOut)
    );
    assert!(!started.get());
}

#[test]
fn wait_for_with_a_zero_timeout_gives_a_done_futures_result_and_cancels_a_pending_task() {
    let (lp, _clock) = virtual_loop();
    let done = lp.create_future::<u32>();
    done.set_result(4).unwrap();
    let got = lp
        .run_until_complete(wait_for(done, Duration::ZERO))
        .unwrap();
    assert_eq!(got.unwrap().unwrap(), 4);

    let finished = lp.create_task(async { 5u32 });
    lp.run_until(|_| finished.done()).unwrap();
    let got = lp
        .run_until_complete(wait_for(finished, Duration::ZERO))
        .unwrap();
    assert_eq!(got.unwrap().unwrap(), 5);

    let ran = std::rc::Rc::new(std::cell::Cell::new(false));
    let flag = ran.clone();
    let got = lp.run_until_complete(async move {
        let unstarted = tulip::spawn(async move { flag.set(true) })?;
        let probe = unstarted.as_future().clone();
        let outcome = wait_for(unstarted, Duration::ZERO).await;
        assert!(
            probe.cancelled(),
            "waited for until its cancellation was done"
        );
        outcome
    });
    assert_eq!(
        LoopError::of(&got.unwrap().unwrap_err()),
        Some(LoopError::TimedOut)
    );
    assert!(!ran.get(), "cancelled without ever being started");
}

/// A future around a task handle, as its first and only field (as `FutureExt::map` with a
/// zero-sized closure is): the handle's address and size, but not its type.
struct Doubled(tulip::Task<u32>);

impl StdFuture for Doubled {
    type Output = io::Result<u32>;
    fn poll(mut self: std::pin::Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<u32>> {
        std::pin::Pin::new(&mut self.0)
            .poll(cx)
            .map(|r| r.map(|v| v * 2))
    }
}

#[test]
fn wait_for_with_a_zero_timeout_on_a_wrapper_of_a_done_task_is_timed_out() {
    let (lp, _clock) = virtual_loop();
    let task = lp.create_task(async { 5u32 });
    lp.run_until(|_| task.done()).unwrap();
    let got = lp
        .run_until_complete(wait_for(Doubled(task), Duration::ZERO))
        .unwrap();
    assert_eq!(LoopError::of(&got.unwrap_err()), Some(LoopError::TimedOut));
}

#[test]
fn gather_retrieves_the_failures_of_the_children_it_leaves_running() {
    let (lp, _clock) = virtual_loop();
    let reports = std::rc::Rc::new(std::cell::Cell::new(0));
    let seen = reports.clone();
    lp.set_exception_handler(move |_, context| {
        if context.error().is_some() {
            seen.set(seen.get() + 1);
        }
    });
    let fail = |at| task_returning(&lp, secs(at), Err(io::ErrorKind::InvalidData.into()));
    let tasks = vec![fail(1), fail(1), fail(2)];
    assert!(lp.run_until_complete(gather(tasks)).unwrap().is_err());
    lp.run_until_complete(sleep(secs(5))).unwrap().unwrap();
    assert_eq!(
        reports.get(),
        0,
        "asyncio's gather retrieves every child's exception"
    );
}

#[test]
fn a_long_lived_future_keeps_only_the_wakers_of_waiters_still_waiting() {
    let (lp, _clock) = virtual_loop();
    let shared = lp.create_future::<u32>();
    for _ in 0..500 {
        // A new task each time, so a new waker: each wait times out and goes away.
        let f = shared.clone();
        let waiting = lp.create_task(async move {
            wait(vec![f], Some(ms(1)), ReturnWhen::FirstCompleted)
                .await
                .map(drop)
        });
        lp.run_until(|_| waiting.done()).unwrap();
        let f = shared.clone();
        let shielded =
            lp.create_task(async move { wait_for(tulip::shield(f), ms(1)).await.map(drop) });
        lp.run_until(|_| shielded.done()).unwrap();
    }
    let debug = format!("{shared:?}");
    assert!(debug.contains("waiters: 0"), "{debug}");
    assert!(
        !shared.done(),
        "never cancelled by the waits that timed out"
    );
    shared.set_result(1).unwrap();
}

fn write_byte(fd: &OwnedFd, byte: u8) {
    assert_eq!(fd::write(fd.as_fd(), &[byte]).unwrap(), 1);
}

fn read_byte(fd: &OwnedFd) -> u8 {
    let mut buf = [0u8; 1];
    assert_eq!(fd::read(fd.as_fd(), &mut buf).unwrap(), 1);
    buf[0]
}

per_backend! {
    fn wait_readable_resumes_once_a_pipe_has_data_and_leaves_no_reader(b: Backend) {
        let lp = EventLoop::with_backend(b).unwrap();
        let (r, w) = fd::pipe().unwrap();
        let log = Log::default();
        let (l, raw) = (log.clone(), r.as_raw_fd());
        let task = lp.create_task(async move {
            l.push("waiting");
            wait_readable(raw).await.unwrap();
            l.push("readable");
        });
        turn(&lp);
        turn(&lp);
        assert_eq!(log.take(), ["waiting"], "nothing to read yet");
        lp.call_soon(move |_| write_byte(&w, 7)).unwrap();
        lp.run_until(|_| task.done()).unwrap();
        assert_eq!(log.take(), ["readable"]);
        assert_eq!(read_byte(&r), 7);
        assert!(!lp.remove_reader(r.as_raw_fd()), "a one-shot: the reader is gone");
    }

    fn wait_readable_and_wait_writable_on_a_ready_socket_resume_at_once(b: Backend) {
        let lp = EventLoop::with_backend(b).unwrap();
        let (x, y) = fd::socketpair().unwrap();
        assert_eq!(fd::send(y.as_fd(), b"hi").unwrap(), 2);
        let (xr, yr) = (x.as_raw_fd(), y.as_raw_fd());
        // No timer and nothing else ready: a wait that never fired would block the loop, so
        // the run is bounded by a far-off stop.
        lp.call_later(Duration::from_secs(30), |lp| lp.stop()).unwrap();
        lp.run_until_complete(async move {
            wait_readable(xr).await.unwrap();
            wait_writable(yr).await.unwrap();
            wait_writable(xr).await.unwrap();
        })
        .unwrap();
        assert!(!lp.remove_reader(xr));
        assert!(!lp.remove_writer(xr));
        assert!(!lp.remove_writer(yr));
    }

    fn a_reader_and_a_writer_waiting_on_one_socket_each_resume_on_their_own_event(b: Backend) {
        let lp = EventLoop::with_backend(b).unwrap();
        let (x, y) = fd::socketpair().unwrap();
        let xr = x.as_raw_fd();
        let log = Log::default();
        let l = log.clone();
        let reader = lp.create_task(async move {
            wait_readable(xr).await.unwrap();
            l.push("readable");
        });
        let l = log.clone();
        let writer = lp.create_task(async move {
            wait_writable(xr).await.unwrap();
            l.push("writable");
        });
        lp.call_later(Duration::from_secs(30), |lp| lp.stop()).unwrap();
        lp.run_until(|_| writer.done()).unwrap();
        assert_eq!(log.take(), ["writable"]);
        assert!(!reader.done());
        // The writer's removal left the reader's half of the shared registration in place.
        assert_eq!(fd::send(y.as_fd(), b"x").unwrap(), 1);
        lp.run_until(|_| reader.done()).unwrap();
        assert_eq!(log.take(), ["readable"]);
        assert!(!lp.remove_reader(xr));
        assert!(!lp.remove_writer(xr));
    }

    fn dropping_a_pending_wait_readable_or_wait_writable_removes_its_reader_or_writer(b: Backend) {
        let lp = EventLoop::with_backend(b).unwrap();
        let (dropped_r, _dropped_w) = fd::pipe().unwrap();
        let (kept_r, _kept_w) = fd::pipe().unwrap();
        let (x, _y) = fd::socketpair().unwrap();
        let (a, _b) = fd::socketpair().unwrap();
        let (dr, kr, xw, aw) =
            (dropped_r.as_raw_fd(), kept_r.as_raw_fd(), x.as_raw_fd(), a.as_raw_fd());
        let kept = lp
            .run_until_complete(async move {
                let mut kept = (Box::pin(wait_readable(kr)), Box::pin(wait_writable(aw)));
                let mut dropped = (Box::pin(wait_readable(dr)), Box::pin(wait_writable(xw)));
                // Armed by one poll each (registration happens then), then the `dropped`
                // pair is abandoned.
                std::future::poll_fn(|cx| {
                    assert!(kept.0.as_mut().poll(cx).is_pending());
                    assert!(kept.1.as_mut().poll(cx).is_pending());
                    assert!(dropped.0.as_mut().poll(cx).is_pending());
                    assert!(dropped.1.as_mut().poll(cx).is_pending());
                    Poll::Ready(())
                })
                .await;
                drop(dropped);
                kept
            })
            .unwrap();
        assert!(!lp.remove_reader(dr), "the dropped wait_readable removed its reader");
        assert!(!lp.remove_writer(xw), "the dropped wait_writable removed its writer");
        // The kept ones show that polling registered them: the two checks above can fail.
        assert!(lp.remove_reader(kr));
        assert!(lp.remove_writer(aw));
        drop(kept);
    }

    fn two_tasks_play_ping_pong_over_two_pipes_for_a_hundred_rounds(b: Backend) {
        const ROUNDS: u8 = 100;
        let lp = EventLoop::with_backend(b).unwrap();
        let (ping_r, ping_w) = fd::pipe().unwrap();
        let (pong_r, pong_w) = fd::pipe().unwrap();
        let (ping_raw, pong_raw) = (ping_r.as_raw_fd(), pong_r.as_raw_fd());
        let ponger = lp.create_task(async move {
            for round in 0..ROUNDS {
                wait_readable(ping_r.as_raw_fd()).await?;
                let ball = read_byte(&ping_r);
                assert_eq!(ball, round);
                write_byte(&pong_w, ball);
            }
            io::Result::Ok(ROUNDS)
        });
        let pinger = lp.create_task(async move {
            for round in 0..ROUNDS {
                write_byte(&ping_w, round);
                wait_readable(pong_r.as_raw_fd()).await?;
                assert_eq!(read_byte(&pong_r), round);
            }
            io::Result::Ok(ROUNDS)
        });
        lp.call_later(Duration::from_secs(30), |lp| lp.stop()).unwrap();
        lp.run_until(|_| pinger.done() && ponger.done()).unwrap();
        assert_eq!(pinger.take_result().unwrap().unwrap(), ROUNDS);
        assert_eq!(ponger.take_result().unwrap().unwrap(), ROUNDS);
        assert!(!lp.remove_reader(ping_raw));
        assert!(!lp.remove_reader(pong_raw));
    }
}
