//! asyncio's locks (`Lock`, `Event`, `Condition`, `Semaphore`, `BoundedSemaphore`, `Barrier`):
//! the behaviours CPython's `test_locks.py` checks, fairness order and cancellation at every
//! waiting point above all (no wake-up, acquisition or notification lost). No I/O: each runs
//! once, on the virtual clock.

use std::cell::Cell;
use std::future::Future;
use std::io;
use std::rc::Rc;
use std::task::Poll;
use std::time::Duration;

use tulip::selectors::Backend;
use tulip::{
    sleep, wait_for, Barrier, BoundedSemaphore, BrokenBarrierError, Condition, Event, EventLoop,
    Lock, LoopError, ManualClock, Semaphore, Task,
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

/// Run iterations until nothing is ready and no timer is due without waiting.
fn settle(lp: &EventLoop) {
    for _ in 0..10 {
        turn(lp);
    }
}

/// A task that acquires `lock`, logs `name`, and holds the lock until `hold` passes.
fn locker(lp: &EventLoop, lock: &Lock, log: &Log, name: &str, hold: Duration) -> Task<()> {
    let (lock, log, name) = (lock.clone(), log.clone(), name.to_string());
    lp.create_task(async move {
        let _guard = lock.acquire().await;
        log.push(name);
        let _ = sleep(hold).await;
    })
}

#[test]
fn lock_waiters_acquire_in_arrival_order() {
    let lp = virtual_loop();
    let lock = Lock::new();
    let log = Log::default();
    let held = lock.try_acquire().unwrap();
    let tasks: Vec<Task<()>> = ["a", "b", "c", "d"]
        .iter()
        .map(|name| locker(&lp, &lock, &log, name, secs(1)))
        .collect();
    settle(&lp);
    assert!(log.take().is_empty(), "nobody acquires a held lock");
    drop(held);
    for task in tasks {
        lp.run_until_complete(task).unwrap().unwrap();
    }
    assert_eq!(log.take(), ["a", "b", "c", "d"]);
    assert!(!lock.locked());
}

#[test]
fn a_waiter_cancelled_after_the_release_handed_it_the_lock_passes_it_on() {
    // CPython's test_cancel_release_race: cancel the first waiter, then release, in one
    // callback: exactly one waiter gets the lock, and it is the second.
    let lp = virtual_loop();
    let lock = Lock::new();
    let log = Log::default();
    let held = Rc::new(Cell::new(Some(lock.try_acquire().unwrap())));
    let t1 = locker(&lp, &lock, &log, "t1", secs(10));
    let t2 = locker(&lp, &lock, &log, "t2", secs(10));
    let t3 = locker(&lp, &lock, &log, "t3", secs(10));
    settle(&lp);
    let (first, release) = (t1.task_ref(), held.clone());
    lp.call_soon(move |_| {
        first.cancel();
        drop(release.take());
    })
    .unwrap();
    settle(&lp);
    assert!(t1.cancelled());
    assert_eq!(log.take(), ["t2"], "one acquisition, by the next in line");
    assert!(!t3.done() && lock.locked());
    t3.cancel();
    lp.run_until_complete(t2).unwrap().unwrap();
    settle(&lp);
    assert!(t3.cancelled() && !lock.locked(), "t3 left the line");
}

#[test]
fn a_waiter_cancelled_before_the_release_leaves_the_line_for_the_next() {
    // CPython's test_cancel_race.
    let lp = virtual_loop();
    let lock = Lock::new();
    let log = Log::default();
    let a = locker(&lp, &lock, &log, "a", secs(1));
    settle(&lp);
    let b = locker(&lp, &lock, &log, "b", secs(1));
    let c = locker(&lp, &lock, &log, "c", secs(1));
    settle(&lp);
    b.cancel();
    lp.run_until_complete(c).unwrap().unwrap();
    assert!(a.done() && b.cancelled());
    assert_eq!(log.take(), ["a", "c"]);
}

#[test]
fn a_lock_held_by_a_cancelled_coroutine_is_released() {
    let lp = virtual_loop();
    let lock = Lock::new();
    let log = Log::default();
    let holder = locker(&lp, &lock, &log, "holder", secs(60));
    settle(&lp);
    assert!(lock.locked());
    holder.cancel();
    settle(&lp);
    assert!(holder.cancelled() && !lock.locked());
}

#[test]
fn an_acquire_that_times_out_gives_up_its_place_in_line() {
    let lp = virtual_loop();
    let lock = Lock::new();
    let log = Log::default();
    let _holder = locker(&lp, &lock, &log, "holder", secs(5));
    let (l, lg) = (lock.clone(), log.clone());
    let timed_out = lp.create_task(async move {
        let acquired = wait_for(l.acquire(), secs(1)).await;
        lg.push("gave up");
        acquired.map(drop)
    });
    let late = locker(&lp, &lock, &log, "late", secs(0));
    let outcome = lp.run_until_complete(timed_out).unwrap().unwrap();
    assert_eq!(
        LoopError::of(&outcome.unwrap_err()),
        Some(LoopError::TimedOut)
    );
    lp.run_until_complete(late).unwrap().unwrap();
    assert_eq!(log.take(), ["holder", "gave up", "late"]);
    assert!(!lock.locked());
}

#[test]
fn a_release_to_a_cancelled_waiter_reaches_the_next_one_not_a_newcomer() {
    // CPython's test_finished_waiter_cancelled: the first waiter is cancelled, a newcomer is
    // created, then the lock is released; the lock stays held, and the newcomer gets it.
    let lp = virtual_loop();
    let lock = Lock::new();
    let log = Log::default();
    let held = lock.try_acquire().unwrap();
    let first = locker(&lp, &lock, &log, "first", secs(0));
    settle(&lp);
    let newcomer = locker(&lp, &lock, &log, "newcomer", secs(0));
    first.cancel();
    drop(held);
    turn(&lp);
    assert!(lock.locked(), "nobody could take the lock in between");
    lp.run_until_complete(newcomer).unwrap().unwrap();
    assert!(first.cancelled());
    assert_eq!(log.take(), ["newcomer"]);
    assert!(!lock.locked());
}

#[test]
fn try_acquire_never_waits_and_the_guard_releases_on_drop() {
    let lock = Lock::new();
    let guard = lock.try_acquire().unwrap();
    assert!(lock.locked() && lock.try_acquire().is_none());
    guard.release();
    assert!(!lock.locked() && lock.try_acquire().is_some());
    assert!(!lock.locked(), "the temporary guard released it again");
}

/// A task that waits for `event` and logs `name`.
fn event_waiter(lp: &EventLoop, event: &Event, log: &Log, name: &str) -> Task<()> {
    let (event, log, name) = (event.clone(), log.clone(), name.to_string());
    lp.create_task(async move {
        event.wait().await;
        log.push(name);
    })
}

#[test]
fn set_wakes_every_event_waiter_and_wait_returns_at_once_while_set() {
    let lp = virtual_loop();
    let event = Event::new();
    let log = Log::default();
    let waiters: Vec<Task<()>> = ["a", "b", "c"]
        .iter()
        .map(|n| event_waiter(&lp, &event, &log, n))
        .collect();
    settle(&lp);
    assert!(log.take().is_empty() && !event.is_set());
    event.set();
    settle(&lp);
    assert_eq!(log.take(), ["a", "b", "c"]);
    assert!(waiters.iter().all(Task::done));
    let late = event_waiter(&lp, &event, &log, "late");
    turn(&lp);
    assert!(late.done(), "a set event does not make anyone wait");
}

#[test]
fn an_event_waiter_woken_by_set_returns_even_if_the_event_was_cleared_before_it_ran() {
    // CPython's test_clear_with_waiters.
    let lp = virtual_loop();
    let event = Event::new();
    let log = Log::default();
    let waiter = event_waiter(&lp, &event, &log, "woken");
    settle(&lp);
    event.set();
    event.clear();
    event.set();
    event.clear();
    assert!(!event.is_set());
    settle(&lp);
    assert!(waiter.done());
    assert_eq!(log.take(), ["woken"]);
    let next = event_waiter(&lp, &event, &log, "next");
    settle(&lp);
    assert!(!next.done(), "a cleared event makes later waiters wait");
}

#[test]
fn a_cancelled_event_waiter_is_not_woken_and_the_others_are() {
    let lp = virtual_loop();
    let event = Event::new();
    let log = Log::default();
    let cancelled = event_waiter(&lp, &event, &log, "cancelled");
    let kept = event_waiter(&lp, &event, &log, "kept");
    settle(&lp);
    cancelled.cancel();
    settle(&lp);
    event.set();
    settle(&lp);
    assert!(cancelled.cancelled() && kept.done());
    assert_eq!(log.take(), ["kept"]);
}

/// A task that waits on `cond` (lock held), then logs `name` and holds the lock a moment.
fn cond_waiter(lp: &EventLoop, cond: &Condition, log: &Log, name: &str) -> Task<io::Result<()>> {
    let (cond, log, name) = (cond.clone(), log.clone(), name.to_string());
    lp.create_task(async move {
        let guard = cond.acquire().await;
        let _guard = cond.wait(guard).await?;
        log.push(name);
        Ok(())
    })
}

/// Acquire `cond`'s lock, notify `n` (all for `None`) and release, as one task, to its end.
fn notify(lp: &EventLoop, cond: &Condition, n: Option<usize>) {
    let cond = cond.clone();
    lp.run_until_complete(async move {
        let _guard = cond.acquire().await;
        match n {
            Some(n) => cond.notify(n),
            None => cond.notify_all(),
        }
    })
    .unwrap()
    .unwrap();
}

#[test]
fn notify_wakes_condition_waiters_in_arrival_order_n_at_a_time() {
    // CPython's test_notify.
    let lp = virtual_loop();
    let cond = Condition::new();
    let log = Log::default();
    let tasks: Vec<_> = ["a", "b", "c"]
        .iter()
        .map(|n| cond_waiter(&lp, &cond, &log, n))
        .collect();
    settle(&lp);
    assert!(!cond.locked(), "waiting releases the lock");
    notify(&lp, &cond, Some(1));
    settle(&lp);
    assert_eq!(log.take(), ["a"]);
    notify(&lp, &cond, Some(2048));
    settle(&lp);
    assert_eq!(log.take(), ["b", "c"]);
    assert!(tasks.iter().all(Task::done));
    assert!(!cond.locked());
}

#[test]
fn notify_all_wakes_every_condition_waiter() {
    let lp = virtual_loop();
    let cond = Condition::new();
    let log = Log::default();
    for n in ["a", "b", "c"] {
        cond_waiter(&lp, &cond, &log, n);
    }
    settle(&lp);
    notify(&lp, &cond, None);
    settle(&lp);
    assert_eq!(log.take(), ["a", "b", "c"]);
}

#[test]
fn notifying_without_the_lock_or_waiting_with_another_locks_guard_is_invalid_input() {
    let lp = virtual_loop();
    let cond = Condition::new();
    assert_eq!(
        cond.notify(1).unwrap_err().kind(),
        io::ErrorKind::InvalidInput
    );
    assert_eq!(
        cond.notify_all().unwrap_err().kind(),
        io::ErrorKind::InvalidInput
    );
    let other = Lock::new();
    let err = lp
        .run_until_complete(async move {
            let guard = other.acquire().await;
            let outcome = cond.wait(guard).await;
            (outcome.map(drop), other.locked())
        })
        .unwrap();
    assert_eq!(err.0.unwrap_err().kind(), io::ErrorKind::InvalidInput);
    assert!(!err.1, "the other lock's guard was dropped");
}

#[test]
fn a_notified_condition_waiter_cancelled_before_it_runs_passes_the_notification_on() {
    // CPython's test_cancelled_wakeup (3.13: the notification goes to another waiter).
    let lp = virtual_loop();
    let cond = Condition::new();
    let log = Log::default();
    let first = cond_waiter(&lp, &cond, &log, "first");
    let second = cond_waiter(&lp, &cond, &log, "second");
    settle(&lp);
    let (c, victim) = (cond.clone(), first.task_ref());
    lp.run_until_complete(async move {
        let _guard = c.acquire().await;
        c.notify(1).unwrap();
        victim.cancel();
    })
    .unwrap();
    settle(&lp);
    assert!(first.cancelled());
    assert!(second.done());
    assert_eq!(log.take(), ["second"], "the one notification was not lost");
}

#[test]
fn a_condition_waiter_cancelled_while_it_re_acquires_the_lock_leaves_the_lock_free() {
    for handed_first in [false, true] {
        let lp = virtual_loop();
        let cond = Condition::new();
        let log = Log::default();
        let waiter = cond_waiter(&lp, &cond, &log, "waiter");
        settle(&lp);
        let guard = cond.lock().try_acquire().unwrap();
        cond.notify(1).unwrap();
        settle(&lp);
        assert!(!waiter.done(), "notified, it now waits for the lock");
        if handed_first {
            // The release hands the lock to the waiter, which is cancelled before it runs.
            drop(guard);
            waiter.cancel();
        } else {
            waiter.cancel();
            settle(&lp);
            drop(guard);
        }
        settle(&lp);
        assert!(waiter.cancelled());
        assert!(
            !cond.locked(),
            "the lock is free, not lost to the cancelled waiter"
        );
        assert!(log.take().is_empty());
    }
}

#[test]
fn a_notified_waiter_cancelled_while_it_re_acquires_the_lock_passes_the_notification_on() {
    // CPython's test_cancelled_wakeup_relock: one item, one notify(1); the consumer notified
    // is cancelled while it waits for the lock, and the other consumer takes the item.
    for handed_first in [false, true] {
        let lp = virtual_loop();
        let cond = Condition::new();
        let items = Rc::new(Cell::new(0i32));
        let consumer = || {
            let (cond, items) = (cond.clone(), items.clone());
            lp.create_task(async move {
                let mut guard = cond.acquire().await;
                loop {
                    guard = cond.wait_for(guard, || items.get() != 0).await?;
                    if items.get() < 0 {
                        return io::Result::Ok(());
                    }
                    items.set(items.get() - 1);
                }
            })
        };
        let (first, second) = (consumer(), consumer());
        settle(&lp);
        let guard = cond.lock().try_acquire().unwrap();
        items.set(1);
        cond.notify(1).unwrap();
        settle(&lp);
        if handed_first {
            drop(guard);
            first.cancel();
        } else {
            first.cancel();
            settle(&lp);
            drop(guard);
        }
        settle(&lp);
        assert!(first.cancelled());
        assert_eq!(items.get(), 0, "the second consumer took the item");
        let guard = cond.lock().try_acquire().unwrap();
        items.set(-1);
        cond.notify_all().unwrap();
        drop(guard);
        lp.run_until_complete(second).unwrap().unwrap().unwrap();
    }
}

#[test]
fn a_condition_over_a_shared_lock_takes_that_locks_guards() {
    // CPython's test_explicit_lock.
    let lp = virtual_loop();
    let lock = Lock::new();
    let cond = Condition::with_lock(lock.clone());
    assert!(!cond.locked());
    let guard = lock.try_acquire().unwrap();
    assert!(cond.locked() && cond.lock().locked());
    drop(guard);
    assert!(!cond.locked());
    let (c, l) = (cond.clone(), lock.clone());
    let waiter = lp.create_task(async move {
        let guard = l.acquire().await;
        let guard = c.wait(guard).await?;
        io::Result::Ok(l.locked() && guard.lock().locked())
    });
    settle(&lp);
    assert!(!lock.locked(), "waiting released the shared lock");
    let guard = lock.try_acquire().unwrap();
    cond.notify(1).unwrap();
    drop(guard);
    assert!(lp.run_until_complete(waiter).unwrap().unwrap().unwrap());
    assert!(!lock.locked());
}

#[test]
fn condition_wait_for_returns_once_the_predicate_holds_and_wait_releases_the_lock() {
    let lp = virtual_loop();
    let cond = Condition::new();
    let value = Rc::new(Cell::new(0));
    let (c, v) = (cond.clone(), value.clone());
    let waiter = lp.create_task(async move {
        let guard = c.acquire().await;
        let guard = c.wait_for(guard, || v.get() == 3).await?;
        io::Result::Ok((v.get(), guard.lock().locked()))
    });
    for n in 1..=3 {
        settle(&lp);
        assert!(!waiter.done());
        assert!(
            !cond.locked(),
            "the waiter does not hold the lock while it waits"
        );
        value.set(n);
        notify(&lp, &cond, None);
    }
    let outcome = lp.run_until_complete(waiter).unwrap().unwrap();
    assert_eq!(outcome.unwrap(), (3, true));
}

/// A task that takes a unit of `sem`, logs `name`, and holds the unit until `hold` passes.
fn sem_user(lp: &EventLoop, sem: &Semaphore, log: &Log, name: &str, hold: Duration) -> Task<()> {
    let (sem, log, name) = (sem.clone(), log.clone(), name.to_string());
    lp.create_task(async move {
        let _permit = sem.acquire().await;
        log.push(name);
        let _ = sleep(hold).await;
    })
}

#[test]
fn semaphore_waiters_get_units_in_arrival_order() {
    let lp = virtual_loop();
    let sem = Semaphore::new(2);
    let log = Log::default();
    let tasks: Vec<_> = (0..6)
        .map(|i| sem_user(&lp, &sem, &log, &i.to_string(), secs(1)))
        .collect();
    settle(&lp);
    assert_eq!(log.take(), ["0", "1"]);
    assert!(sem.locked());
    for task in tasks {
        lp.run_until_complete(task).unwrap().unwrap();
    }
    assert_eq!(log.take(), ["2", "3", "4", "5"]);
    assert!(!sem.locked());
}

#[test]
fn a_newcomer_waits_behind_the_semaphores_waiters() {
    let lp = virtual_loop();
    let sem = Semaphore::new(1);
    let log = Log::default();
    let permit = sem.try_acquire().unwrap();
    let waiter = sem_user(&lp, &sem, &log, "waiter", secs(1));
    settle(&lp);
    assert!(sem.try_acquire().is_none());
    drop(permit);
    assert!(
        sem.try_acquire().is_none(),
        "the unit went to the waiter, not the newcomer"
    );
    lp.run_until_complete(waiter).unwrap().unwrap();
    assert_eq!(log.take(), ["waiter"]);
}

#[test]
fn a_semaphore_waiter_cancelled_after_being_handed_a_unit_passes_it_on() {
    // CPython's test_acquire_cancel_before_awoken / test_acquire_hang.
    let lp = virtual_loop();
    let sem = Semaphore::new(0);
    let log = Log::default();
    let t1 = sem_user(&lp, &sem, &log, "t1", secs(1));
    let t2 = sem_user(&lp, &sem, &log, "t2", secs(1));
    let t3 = sem_user(&lp, &sem, &log, "t3", secs(1));
    settle(&lp);
    sem.release();
    t1.cancel();
    settle(&lp);
    assert!(t1.cancelled());
    assert_eq!(log.take(), ["t2"], "t1's unit went to t2");
    lp.run_until_complete(t2).unwrap().unwrap();
    sem.release();
    lp.run_until_complete(t3).unwrap().unwrap();
    assert_eq!(log.take(), ["t3"]);
    assert!(!sem.locked(), "both units free again");
    let (_a, _b) = (sem.try_acquire().unwrap(), sem.try_acquire().unwrap());
    assert!(sem.try_acquire().is_none());
}

#[test]
fn a_newcomer_waits_behind_waiters_handed_a_unit_that_have_not_run_yet() {
    // CPython's test_acquire_fifo_order_2: c2 and c3 are each handed a unit; c2 runs first,
    // gives its unit back and asks again. c3 has not run yet, so the semaphore is locked and
    // c2 waits behind it, although a unit is free.
    let lp = virtual_loop();
    let sem = Semaphore::new(1);
    let log = Log::default();
    let task = |name: &'static str, again: bool| {
        let (sem, log) = (sem.clone(), log.clone());
        lp.create_task(async move {
            let permit = sem.acquire().await;
            log.push(name);
            if again {
                drop(permit);
                assert!(sem.locked(), "c3 holds a place in line");
                sem.acquire().await.forget();
                log.push("c2 again");
            } else {
                permit.forget();
            }
        })
    };
    let tasks = [task("c1", false), task("c2", true), task("c3", false)];
    settle(&lp);
    assert_eq!(log.take(), ["c1"]);
    sem.release();
    sem.release();
    assert!(sem.locked(), "both units were handed to waiters");
    for task in tasks {
        lp.run_until_complete(task).unwrap().unwrap();
    }
    assert_eq!(log.take(), ["c2", "c3", "c2 again"]);
    assert!(sem.locked() && sem.try_acquire().is_none());
    assert!(Semaphore::new(0).locked(), "no unit: locked from the start");
}

#[test]
fn a_waiter_that_takes_its_unit_hands_the_free_ones_to_those_behind_it() {
    // CPython's test_acquire_fifo_order_4: c2 releases three units while only c1 waits; c2
    // and c3 then queue behind c1, which, taking its unit, hands them the two free ones, so
    // both run before a task c1 creates.
    let lp = virtual_loop();
    let sem = Semaphore::new(0);
    let log = Log::default();
    let (s, l) = (sem.clone(), log.clone());
    let c1 = lp.create_task(async move {
        s.acquire().await.forget();
        assert!(s.locked(), "both free units went to c2 and c3");
        let l4 = l.clone();
        let c4 = tulip::spawn(async move { l4.push("4") })?;
        l.push("1");
        c4.await
    });
    let (s, l) = (sem.clone(), log.clone());
    let c2 = lp.create_task(async move {
        for _ in 0..3 {
            s.release();
        }
        assert!(s.locked(), "c1 has not taken its unit yet");
        s.acquire().await.forget();
        l.push("2");
    });
    let (s, l) = (sem.clone(), log.clone());
    let c3 = lp.create_task(async move {
        s.acquire().await.forget();
        l.push("3");
    });
    lp.run_until_complete(c1).unwrap().unwrap().unwrap();
    lp.run_until_complete(c2).unwrap().unwrap();
    lp.run_until_complete(c3).unwrap().unwrap();
    assert_eq!(log.take(), ["1", "2", "3", "4"]);
    assert!(sem.try_acquire().is_none());
}

#[test]
fn a_unit_passed_on_by_a_cancelled_waiter_reaches_a_newcomer_behind_it() {
    // A newcomer waits behind a waiter handed a unit, although another unit is free; when
    // that waiter is dropped unrun, both units are handed on: one to the newcomer, one free.
    struct Ignore;
    impl std::task::Wake for Ignore {
        fn wake(self: std::sync::Arc<Self>) {}
    }
    let waker = std::task::Waker::from(std::sync::Arc::new(Ignore));
    let mut cx = std::task::Context::from_waker(&waker);
    let sem = Semaphore::new(0);
    let mut handed = Box::pin(sem.acquire());
    assert!(handed.as_mut().poll(&mut cx).is_pending());
    sem.release();
    sem.release();
    let mut newcomer = Box::pin(sem.acquire());
    assert!(newcomer.as_mut().poll(&mut cx).is_pending());
    assert!(sem.locked() && sem.try_acquire().is_none());
    drop(handed);
    let Poll::Ready(permit) = newcomer.as_mut().poll(&mut cx) else {
        panic!("the unit passed on went to the newcomer");
    };
    permit.forget();
    sem.try_acquire().expect("the other unit is free").forget();
    assert!(sem.try_acquire().is_none());
}

#[test]
fn a_bounded_semaphore_refuses_to_be_released_past_its_initial_value() {
    let sem = BoundedSemaphore::new(2);
    assert_eq!(
        sem.release().unwrap_err().kind(),
        io::ErrorKind::InvalidInput
    );
    let permit = sem.try_acquire().unwrap();
    sem.try_acquire().unwrap().forget();
    assert!(sem.locked());
    sem.release().unwrap();
    drop(permit);
    let err = sem.release().unwrap_err();
    assert_eq!(err.to_string(), "BoundedSemaphore released too many times");
}

#[test]
fn a_permit_gives_its_unit_back_when_dropped_and_a_forgotten_one_on_release() {
    let sem = Semaphore::new(1);
    drop(sem.try_acquire().unwrap());
    sem.try_acquire().unwrap().forget();
    assert!(sem.locked());
    sem.release();
    assert!(!sem.locked());
    sem.release();
    let (_a, _b) = (sem.try_acquire().unwrap(), sem.try_acquire().unwrap());
    assert!(
        sem.locked(),
        "a plain semaphore may grow past its initial value"
    );
}

/// A task that waits at `barrier` and returns its index (or the error).
fn barrier_waiter(lp: &EventLoop, barrier: &Barrier) -> Task<Result<usize, BrokenBarrierError>> {
    let barrier = barrier.clone();
    lp.create_task(async move { barrier.wait().await })
}

#[test]
fn a_full_round_releases_every_barrier_waiter_with_its_arrival_index() {
    let lp = virtual_loop();
    let barrier = Barrier::new(3).unwrap();
    let tasks: Vec<_> = (0..3).map(|_| barrier_waiter(&lp, &barrier)).collect();
    turn(&lp);
    assert_eq!(
        barrier.n_waiting(),
        0,
        "the third arrival released the round"
    );
    let mut indexes: Vec<usize> = tasks
        .into_iter()
        .map(|t| lp.run_until_complete(t).unwrap().unwrap().unwrap())
        .collect();
    indexes.sort_unstable();
    assert_eq!(indexes, [0, 1, 2]);
    assert_eq!(barrier.n_waiting(), 0);
    assert!(!barrier.broken());
}

#[test]
fn barrier_arrivals_wait_for_a_full_round_and_newcomers_for_the_next_one() {
    let lp = virtual_loop();
    let barrier = Barrier::new(2).unwrap();
    let first = barrier_waiter(&lp, &barrier);
    settle(&lp);
    assert_eq!(barrier.n_waiting(), 1);
    assert!(!first.done());
    let rest: Vec<_> = (0..3).map(|_| barrier_waiter(&lp, &barrier)).collect();
    settle(&lp);
    assert!(first.done() && rest[0].done(), "the first round is over");
    assert!(rest[1].done() && rest[2].done(), "the second round filled");
    for task in rest {
        assert!(lp.run_until_complete(task).unwrap().unwrap().is_ok());
    }
    let fifth = barrier_waiter(&lp, &barrier);
    settle(&lp);
    assert!(!fifth.done() && barrier.n_waiting() == 1);
}

#[test]
fn abort_fails_every_barrier_waiter_and_every_later_wait() {
    let lp = virtual_loop();
    let barrier = Barrier::new(3).unwrap();
    let tasks: Vec<_> = (0..2).map(|_| barrier_waiter(&lp, &barrier)).collect();
    settle(&lp);
    barrier.abort();
    settle(&lp);
    assert!(barrier.broken());
    for task in tasks {
        assert_eq!(
            lp.run_until_complete(task).unwrap().unwrap(),
            Err(BrokenBarrierError)
        );
    }
    let late = barrier_waiter(&lp, &barrier);
    let err = lp.run_until_complete(late).unwrap().unwrap().unwrap_err();
    assert!(BrokenBarrierError::of(&err.into()));
    barrier.reset();
    assert!(!barrier.broken(), "a reset repairs a broken barrier");
}

#[test]
fn reset_fails_the_current_barrier_waiters_and_leaves_it_usable() {
    let lp = virtual_loop();
    let barrier = Barrier::new(2).unwrap();
    let waiting = barrier_waiter(&lp, &barrier);
    settle(&lp);
    barrier.reset();
    assert_eq!(
        lp.run_until_complete(waiting).unwrap().unwrap(),
        Err(BrokenBarrierError)
    );
    assert_eq!(barrier.n_waiting(), 0);
    let pair: Vec<_> = (0..2).map(|_| barrier_waiter(&lp, &barrier)).collect();
    for task in pair {
        assert!(lp.run_until_complete(task).unwrap().unwrap().is_ok());
    }
}

#[test]
fn a_barrier_waiter_cancelled_while_it_waits_leaves_the_round_without_breaking_it() {
    let lp = virtual_loop();
    let barrier = Barrier::new(2).unwrap();
    let cancelled = barrier_waiter(&lp, &barrier);
    settle(&lp);
    cancelled.cancel();
    settle(&lp);
    assert!(cancelled.cancelled());
    assert_eq!(barrier.n_waiting(), 0);
    assert!(!barrier.broken());
    let pair: Vec<_> = (0..2).map(|_| barrier_waiter(&lp, &barrier)).collect();
    let mut indexes: Vec<usize> = pair
        .into_iter()
        .map(|t| lp.run_until_complete(t).unwrap().unwrap().unwrap())
        .collect();
    indexes.sort_unstable();
    assert_eq!(
        indexes,
        [0, 1],
        "a full round of two, not counting the cancelled one"
    );
}

#[test]
fn a_reset_while_a_round_drains_fails_those_not_yet_out() {
    // CPython's test_reset_barrier_when_tasks_half_draining: the last arrival returns at once
    // and resets; the others, released but not yet run, fail instead.
    let lp = virtual_loop();
    let barrier = Barrier::new(3).unwrap();
    let waiting: Vec<_> = (0..2).map(|_| barrier_waiter(&lp, &barrier)).collect();
    settle(&lp);
    let b = barrier.clone();
    let last = lp.create_task(async move {
        let index = b.wait().await;
        b.reset();
        index
    });
    settle(&lp);
    assert_eq!(lp.run_until_complete(last).unwrap().unwrap(), Ok(2));
    for task in waiting {
        assert_eq!(
            lp.run_until_complete(task).unwrap().unwrap(),
            Err(BrokenBarrierError)
        );
    }
    assert_eq!(barrier.n_waiting(), 0);
    assert!(!barrier.broken());
    let round: Vec<_> = (0..3).map(|_| barrier_waiter(&lp, &barrier)).collect();
    for task in round {
        assert!(lp.run_until_complete(task).unwrap().unwrap().is_ok());
    }
}

#[test]
fn an_abort_while_a_round_drains_fails_those_not_yet_out_and_those_waiting_again() {
    // CPython's test_abort_barrier_when_tasks_half_draining_half_blocking: of a round of 5,
    // the first two out wait again (blocked while the round drains), the third aborts; the
    // two still in the round and the two blocked fail.
    let lp = virtual_loop();
    let barrier = Barrier::new(5).unwrap();
    let out = Rc::new(Cell::new(0));
    let tasks: Vec<_> = (0..5)
        .map(|_| {
            let (barrier, out) = (barrier.clone(), out.clone());
            lp.create_task(async move {
                if barrier.wait().await.is_err() {
                    return "failed in the round";
                }
                out.set(out.get() + 1);
                if out.get() > 2 {
                    barrier.abort();
                    return "aborted";
                }
                match barrier.wait().await {
                    Ok(_) => "passed again",
                    Err(BrokenBarrierError) => "failed waiting again",
                }
            })
        })
        .collect();
    let mut outcomes: Vec<&str> = tasks
        .into_iter()
        .map(|t| lp.run_until_complete(t).unwrap().unwrap())
        .collect();
    outcomes.sort_unstable();
    assert_eq!(
        outcomes,
        [
            "aborted",
            "failed in the round",
            "failed in the round",
            "failed waiting again",
            "failed waiting again"
        ]
    );
    assert!(barrier.broken());
    assert_eq!(barrier.n_waiting(), 0);
}

#[test]
fn a_barrier_of_one_never_waits_and_an_idle_reset_changes_nothing() {
    // CPython's test_filling_one_task_twice and test_reset_barrier.
    let lp = virtual_loop();
    let barrier = Barrier::new(1).unwrap();
    barrier.reset();
    assert!(!barrier.broken() && barrier.n_waiting() == 0);
    let b = barrier.clone();
    let twice = lp
        .run_until_complete(async move { (b.wait().await, b.wait().await) })
        .unwrap();
    assert_eq!(twice, (Ok(0), Ok(0)));
    assert!(!barrier.broken() && barrier.n_waiting() == 0);
}

#[test]
fn a_barrier_of_zero_parties_is_invalid_input() {
    assert_eq!(
        Barrier::new(0).unwrap_err().kind(),
        io::ErrorKind::InvalidInput
    );
    assert_eq!(Barrier::new(1).unwrap().parties(), 1);
}
