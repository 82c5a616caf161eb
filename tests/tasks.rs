//! Tasks: coroutines driven by the loop. A task is a future (await, cancel, done callbacks);
//! its waker coalesces wakes, works from any thread and outlives the loop harmlessly;
//! cancellation drops the coroutine at its suspension point; panics reach the exception
//! handler; nothing leaks (coroutines are freed when they finish or the loop goes, and no
//! `Rc` cycle survives). Wakes that cross threads go through the loop's notifier, so those
//! tests run on every backend; the rest run once, on the best backend.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::{Cell, RefCell};
use std::future::Future as StdFuture;
use std::io;
use std::pin::Pin;
use std::rc::{Rc, Weak};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use tulip::selectors::Backend;

#[path = "support/observe.rs"]
mod observe;
use observe::{turn, Drops, Log};
use tulip::{
    get_running_loop, sleep, wait_for, yield_now, EventLoop, LoopError, ManualClock, Task,
};

#[macro_use]
#[path = "support/per_backend.rs"]
mod per_backend;

/// Counts the bytes this thread has allocated and not yet freed, for the leak test.
struct LiveBytes;

thread_local! {
    static LIVE_BYTES: Cell<isize> = const { Cell::new(0) };
}

fn count_live(delta: isize) {
    let _ = LIVE_BYTES.try_with(|n| n.set(n.get() + delta));
}

// SAFETY: every call is forwarded unchanged to the system allocator; counting touches only a
// const-initialised thread-local `Cell`, which never allocates.
unsafe impl GlobalAlloc for LiveBytes {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count_live(layout.size() as isize);
        // SAFETY: the caller's contract for `alloc` is passed on.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        count_live(-(layout.size() as isize));
        // SAFETY: the caller's contract for `dealloc` is passed on.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count_live(new_size as isize - layout.size() as isize);
        // SAFETY: the caller's contract for `realloc` is passed on.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: LiveBytes = LiveBytes;

fn live_bytes() -> isize {
    LIVE_BYTES.with(Cell::get)
}

fn virtual_loop() -> EventLoop {
    EventLoop::with_clock(Backend::best(), ManualClock::new()).unwrap()
}

/// The `LoopError` an outcome failed with (`None` for a value or another error).
fn loop_error<T>(outcome: io::Result<T>) -> Option<LoopError> {
    outcome.err().as_ref().and_then(LoopError::of)
}

/// Stops the loop an hour from now: on the virtual clock a run that would otherwise block
/// forever (the feature under test is broken) ends at once with `Stopped` instead.
fn watchdog(lp: &EventLoop) {
    lp.call_later(Duration::from_secs(3600), |lp| lp.stop())
        .unwrap();
}

/// What a [`Counted`] future shares with the test: how often it was polled, its last waker,
/// and whether it may complete.
#[derive(Default)]
struct Probe {
    polls: Cell<usize>,
    waker: RefCell<Option<Waker>>,
    ready: Cell<bool>,
}

impl Probe {
    fn polls(&self) -> usize {
        self.polls.get()
    }

    fn waker(&self) -> Waker {
        self.waker.borrow().clone().expect("polled at least once")
    }
}

/// A hand-written future: counts its polls, keeps the waker, completes once `ready` is set.
struct Counted(Rc<Probe>);

impl StdFuture for Counted {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let probe = &self.0;
        probe.polls.set(probe.polls.get() + 1);
        *probe.waker.borrow_mut() = Some(cx.waker().clone());
        if probe.ready.get() {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }
}

#[test]
fn run_until_complete_returns_the_coroutines_output() {
    let lp = virtual_loop();
    assert_eq!(lp.run_until_complete(async { 6 * 7 }).unwrap(), 42);
    let text = lp
        .run_until_complete(async {
            yield_now().await;
            String::from("after a suspension")
        })
        .unwrap();
    assert_eq!(text, "after a suspension");
}

#[test]
fn tasks_take_their_first_step_in_creation_order_among_callbacks() {
    let lp = virtual_loop();
    let log = Log::default();
    let l = log.clone();
    lp.call_soon(move |_| l.push("callback 1")).unwrap();
    let l = log.clone();
    let _a = lp.create_task(async move { l.push("task a") });
    let l = log.clone();
    lp.call_soon(move |_| l.push("callback 2")).unwrap();
    let l = log.clone();
    let _b = lp.create_task(async move { l.push("task b") });
    turn(&lp);
    assert_eq!(log.take(), ["callback 1", "task a", "callback 2", "task b"]);
}

#[test]
fn a_task_is_a_future_that_another_task_awaits() {
    let lp = virtual_loop();
    let inner = lp.create_task(async {
        sleep(Duration::from_secs(2)).await.unwrap();
        String::from("inner done")
    });
    let outer = lp.create_task(async move { format!("outer saw: {}", inner.await.unwrap()) });
    lp.run_until(|_| outer.done()).unwrap();
    assert_eq!(outer.result().unwrap(), "outer saw: inner done");
    assert_eq!(lp.time(), Duration::from_secs(2));
}

#[test]
fn a_tasks_done_callbacks_run_after_it_finishes_in_registration_order() {
    let lp = virtual_loop();
    let log = Log::default();
    let task = lp.create_task(async {
        yield_now().await;
        5u32
    });
    for name in ["first", "removed", "second"] {
        let l = log.clone();
        let id =
            task.add_done_callback(move |f| l.push(format!("{name}: {}", f.result().unwrap())));
        if name == "removed" {
            assert_eq!(task.remove_done_callback(id), 1);
        }
    }
    turn(&lp);
    assert!(log.take().is_empty(), "still running");
    lp.run_until(|_| task.done()).unwrap();
    turn(&lp);
    assert_eq!(log.take(), ["first: 5", "second: 5"]);
    assert_eq!(task.result().unwrap(), 5);
    assert_eq!(task.as_future().result().unwrap(), 5);
}

#[test]
fn a_task_woken_many_times_on_its_loop_before_it_runs_is_polled_once() {
    let lp = virtual_loop();
    let probe = Rc::new(Probe::default());
    let task = lp.create_task(Counted(probe.clone()));
    turn(&lp);
    assert_eq!(probe.polls(), 1);
    let waker = probe.waker();
    lp.call_soon(move |_| {
        for _ in 0..100 {
            waker.wake_by_ref();
        }
        let clone = waker.clone();
        clone.wake();
        waker.wake();
    })
    .unwrap();
    for _ in 0..3 {
        turn(&lp);
    }
    assert_eq!(probe.polls(), 2, "102 wakes in one batch, one poll");
    assert!(!task.done());
}

#[test]
fn a_wake_during_the_tasks_own_poll_polls_it_again_in_the_next_iteration() {
    let lp = virtual_loop();
    let log = Log::default();
    let spins = Rc::new(Cell::new(0));
    let stop = Rc::new(Cell::new(false));
    let (s, st, l) = (spins.clone(), stop.clone(), log.clone());
    let task = lp.create_task(std::future::poll_fn(move |cx| {
        if st.get() {
            l.push(format!("task done after {} polls", s.get()));
            return Poll::Ready(());
        }
        s.set(s.get() + 1);
        l.push(format!("poll {}", s.get()));
        cx.waker().wake_by_ref();
        Poll::Pending
    }));
    // A task that keeps waking itself must not starve callbacks: it waits for the next batch.
    let (l, st) = (log.clone(), stop.clone());
    lp.call_soon(move |lp| {
        l.push("callback 1");
        let (l, st) = (l.clone(), st.clone());
        lp.call_soon(move |_| {
            l.push("callback 2 stops it");
            st.set(true);
        })
        .unwrap();
    })
    .unwrap();
    watchdog(&lp);
    lp.run_until(|_| task.done()).unwrap();
    assert_eq!(
        log.take(),
        [
            "poll 1",
            "callback 1",
            "poll 2",
            "callback 2 stops it",
            "task done after 2 polls"
        ]
    );
}

#[test]
fn a_stale_waker_of_a_finished_task_does_not_poll_the_task_that_reuses_its_slot() {
    let lp = virtual_loop();
    let first = Rc::new(Probe::default());
    first.ready.set(true);
    let finished = lp.create_task(Counted(first.clone()));
    lp.run_until(|_| finished.done()).unwrap();
    let stale = first.waker();
    drop(finished);

    let second = Rc::new(Probe::default());
    let task = lp.create_task(Counted(second.clone()));
    turn(&lp);
    assert_eq!(second.polls(), 1);
    // From the loop (the same-thread path) and from outside it (the queue and notifier).
    let on_loop = stale.clone();
    lp.call_soon(move |_| on_loop.wake()).unwrap();
    turn(&lp);
    stale.wake_by_ref();
    for _ in 0..3 {
        turn(&lp);
    }
    assert_eq!(first.polls(), 1, "the finished task is never polled again");
    assert_eq!(second.polls(), 1, "nor the task in its place");
    assert!(!task.done());
}

/// A dropped task's waker is reused by the next task (once nothing else holds it): the new
/// task starts with none of the old one's state (its cancel request, its queued flag) and its
/// wakes poll it.
#[test]
fn a_task_after_a_cancelled_and_dropped_one_runs_and_is_woken_as_a_new_task() {
    let lp = virtual_loop();
    for _ in 0..3 {
        let cancelled = lp.create_task(std::future::pending::<()>());
        turn(&lp);
        assert!(cancelled.cancel());
        lp.run_until(|_| cancelled.done()).unwrap();
        assert!(cancelled.cancelled());
        drop(cancelled);

        let probe = Rc::new(Probe::default());
        let task = lp.create_task(Counted(probe.clone()));
        turn(&lp);
        assert_eq!(probe.polls(), 1);
        assert!(!task.done(), "not cancelled by the old task's request");
        probe.ready.set(true);
        probe.waker().wake();
        watchdog(&lp);
        lp.run_until(|_| task.done()).unwrap();
        assert_eq!(probe.polls(), 2);
        assert!(!task.cancelled());
        assert!(task.take_result().is_ok());
        // Its waker is still held by the probe: this one is not reused.
    }
}

#[test]
fn a_task_woken_while_its_loop_is_not_running_is_polled_at_the_next_run() {
    let lp = virtual_loop();
    let probe = Rc::new(Probe::default());
    let task = lp.create_task(Counted(probe.clone()));
    turn(&lp);
    probe.ready.set(true);
    probe.waker().wake();
    assert_eq!(probe.polls(), 1, "not polled inside wake");
    watchdog(&lp);
    lp.run_until(|_| task.done()).unwrap();
    assert_eq!(probe.polls(), 2);
}

#[test]
fn a_waker_outliving_its_loop_does_nothing_and_keeps_no_coroutine_alive() {
    let lp = virtual_loop();
    let drops = Drops::default();
    let probe = Rc::new(Probe::default());
    let tracked = drops.track();
    let counted = Counted(probe.clone());
    let task = lp.create_task(async move {
        let _guard = tracked;
        counted.await;
    });
    turn(&lp);
    let waker = probe.waker();
    drop(lp);
    assert_eq!(drops.count(), 1, "the coroutine went with the loop");
    assert_eq!(loop_error(task.take_result()), Some(LoopError::Closed));
    waker.wake_by_ref();
    let remote = waker.clone();
    std::thread::spawn(move || {
        remote.wake_by_ref();
        remote.wake();
    })
    .join()
    .unwrap();
    waker.wake();
    assert_eq!(probe.polls(), 1);
}

#[test]
fn a_wake_while_another_loop_runs_nested_on_the_thread_reaches_the_tasks_own_loop() {
    let outer = virtual_loop();
    let outer_probe = Rc::new(Probe::default());
    let outer_task = outer.create_task(Counted(outer_probe.clone()));
    turn(&outer);
    // Each loop's first task sits in slot 0, generation 0: a wake pushed to the wrong loop
    // would poll the other loop's task.
    let inner = virtual_loop();
    let inner_probe = Rc::new(Probe::default());
    let inner_task = inner.create_task(Counted(inner_probe.clone()));
    let outer_waker = outer_probe.waker();
    outer
        .call_soon(move |_| {
            inner
                .run_until_complete(async move {
                    outer_waker.wake();
                    for _ in 0..3 {
                        yield_now().await;
                    }
                })
                .unwrap();
            drop((inner_task, inner));
        })
        .unwrap();
    for _ in 0..3 {
        turn(&outer);
    }
    assert_eq!(inner_probe.polls(), 1, "only its own first step");
    assert_eq!(outer_probe.polls(), 2, "the wake went to the outer loop");
    assert!(!outer_task.done());
}

per_backend! {
    fn a_wake_from_another_thread_wakes_the_blocked_loop_and_polls_the_task(b: Backend) {
        let lp = EventLoop::with_backend(b).unwrap();
        let (send_waker, receive_waker) = mpsc::channel::<Waker>();
        let released = Arc::new(AtomicBool::new(false));
        let release = released.clone();
        let waker_thread = std::thread::spawn(move || {
            let waker = receive_waker.recv().unwrap();
            release.store(true, Ordering::SeqCst);
            waker.wake();
        });
        let polls = Rc::new(Cell::new(0));
        let counted = polls.clone();
        let task = lp.create_task(std::future::poll_fn(move |cx| {
            counted.set(counted.get() + 1);
            if released.load(Ordering::SeqCst) {
                return Poll::Ready(());
            }
            if counted.get() == 1 {
                send_waker.send(cx.waker().clone()).unwrap();
            }
            Poll::Pending
        }));
        // Real time: the loop blocks in `select` with no timer until the other thread's wake
        // (the far-off stop only ends a broken run).
        lp.call_later(Duration::from_secs(30), |lp| lp.stop()).unwrap();
        lp.run_until(|_| task.done()).unwrap();
        waker_thread.join().unwrap();
        assert_eq!(polls.get(), 2);
    }

    fn a_task_woken_many_times_from_other_threads_before_it_runs_is_polled_once(b: Backend) {
        let lp = EventLoop::with_clock(b, ManualClock::new()).unwrap();
        let probe = Rc::new(Probe::default());
        let task = lp.create_task(Counted(probe.clone()));
        turn(&lp);
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let waker = probe.waker();
                std::thread::spawn(move || {
                    for _ in 0..250 {
                        waker.wake_by_ref();
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        for _ in 0..3 {
            turn(&lp);
        }
        assert_eq!(probe.polls(), 2, "1000 wakes, one poll");
        probe.ready.set(true);
        let waker = probe.waker();
        std::thread::spawn(move || waker.wake()).join().unwrap();
        watchdog(&lp);
        lp.run_until(|_| task.done()).unwrap();
        assert_eq!(probe.polls(), 3);
    }
}

#[test]
fn cancel_drops_the_coroutine_at_its_await_point_running_destructors_and_completes_cancelled() {
    let lp = virtual_loop();
    let drops = Drops::default();
    let log = Log::default();
    let never = lp.create_future::<()>();
    let (l, tracked) = (log.clone(), drops.track());
    let task = lp.create_task(async move {
        let _guard = tracked;
        l.push("started");
        let _ = never.await;
        l.push("resumed after cancel");
    });
    turn(&lp);
    assert_eq!(log.take(), ["started"]);
    assert!(task.cancel());
    assert!(!task.done(), "cancellation happens at the task's next step");
    assert_eq!(drops.count(), 0);
    turn(&lp);
    assert_eq!(drops.count(), 1, "the coroutine's locals were dropped");
    assert!(task.done());
    assert!(task.cancelled());
    assert!(!task.cancel(), "a done task cannot be cancelled");
    assert_eq!(loop_error(task.take_result()), Some(LoopError::Cancelled));
    turn(&lp);
    assert!(log.take().is_empty(), "the coroutine never resumed");
}

#[test]
fn cancel_before_the_first_step_drops_the_coroutine_unpolled() {
    let lp = virtual_loop();
    let drops = Drops::default();
    let polled = Rc::new(Cell::new(false));
    let (p, tracked) = (polled.clone(), drops.track());
    let task = lp.create_task(async move {
        let _guard = tracked;
        p.set(true);
    });
    assert!(task.cancel());
    turn(&lp);
    assert!(!polled.get());
    assert_eq!(drops.count(), 1);
    assert!(task.cancelled());
}

#[test]
fn cancel_of_a_finished_task_returns_false_and_keeps_its_output() {
    let lp = virtual_loop();
    let task = lp.create_task(async { 3u8 });
    lp.run_until(|_| task.done()).unwrap();
    assert!(!task.cancel());
    assert!(!task.cancelled());
    assert_eq!(task.result().unwrap(), 3);
}

#[test]
fn a_task_that_cancels_itself_runs_on_to_its_next_suspension_point_and_stops_there() {
    let lp = virtual_loop();
    let log = Log::default();
    let drops = Drops::default();
    let me: Rc<RefCell<Option<Task<()>>>> = Rc::default();
    let (l, own, tracked) = (log.clone(), me.clone(), drops.track());
    let task = lp.create_task(async move {
        let _guard = tracked;
        l.push("cancelling myself");
        assert!(own
            .borrow()
            .as_ref()
            .expect("set before the first step")
            .cancel());
        l.push("still running until the next await");
        yield_now().await;
        l.push("resumed after cancel");
    });
    let weak = Rc::downgrade(&me);
    *me.borrow_mut() = Some(task);
    watchdog(&lp);
    lp.run_until(|_| me.borrow().as_ref().unwrap().done())
        .unwrap();
    turn(&lp);
    assert_eq!(
        log.take(),
        ["cancelling myself", "still running until the next await"]
    );
    assert_eq!(drops.count(), 1);
    assert!(me.borrow().as_ref().unwrap().cancelled());
    drop(me);
    assert!(
        weak.upgrade().is_none(),
        "the coroutine held its own task: that cycle is gone with the coroutine"
    );
}

#[test]
fn an_awaiter_of_a_cancelled_task_gets_cancelled() {
    let lp = virtual_loop();
    let inner = lp.create_task(async {
        sleep(Duration::from_secs(10)).await.unwrap();
        1u32
    });
    let outer = lp.create_task(async move {
        inner.cancel();
        inner.await
    });
    lp.run_until(|_| outer.done()).unwrap();
    // It returned that cancellation, so it is cancelled too (asyncio's CancelledError
    // escaping the awaiter).
    assert!(outer.cancelled());
    assert_eq!(loop_error(outer.take_result()), Some(LoopError::Cancelled));
    assert!(
        lp.time() < Duration::from_secs(10),
        "the sleep never finished"
    );
}

#[test]
fn dropping_the_task_handle_detaches_the_task_and_it_keeps_running() {
    let lp = virtual_loop();
    let finished = Rc::new(Cell::new(false));
    let f = finished.clone();
    drop(lp.create_task(async move {
        sleep(Duration::from_secs(5)).await.unwrap();
        f.set(true);
    }));
    watchdog(&lp);
    lp.run_until(|_| finished.get()).unwrap();
    assert_eq!(lp.time(), Duration::from_secs(5));
}

#[test]
fn tasks_need_not_be_send() {
    let lp = virtual_loop();
    let shared = Rc::new(RefCell::new(Vec::new()));
    let held = shared.clone();
    let task = lp.create_task(async move {
        // An `Rc` held across suspension points makes the coroutine `!Send`.
        for i in 0..3 {
            held.borrow_mut().push(i);
            yield_now().await;
        }
        Rc::clone(&held)
    });
    lp.run_until(|_| task.done()).unwrap();
    let output = task.take_result().unwrap();
    assert!(Rc::ptr_eq(&output, &shared));
    assert_eq!(*shared.borrow(), [0, 1, 2]);
}

#[test]
fn a_finished_task_frees_its_coroutine_before_its_done_callbacks_run() {
    let lp = virtual_loop();
    let drops = Drops::default();
    let tracked = drops.track();
    let task = lp.create_task(async move {
        let _guard = tracked;
        yield_now().await;
    });
    let seen_by_callback = Rc::new(Cell::new(None));
    let (seen, d) = (seen_by_callback.clone(), drops.clone());
    task.add_done_callback(move |_| seen.set(Some(d.count())));
    lp.run_until(|_| task.done()).unwrap();
    assert_eq!(
        drops.count(),
        1,
        "freed when it finished, while the handle lives"
    );
    turn(&lp);
    assert_eq!(seen_by_callback.get(), Some(1));
    drop(task);
}

#[test]
fn dropping_the_loop_drops_pending_and_unstarted_tasks_and_fails_them_with_closed() {
    let lp = virtual_loop();
    let drops = Drops::default();
    let never = lp.create_future::<()>();
    let suspended: Vec<_> = (0..3)
        .map(|_| {
            let (tracked, never) = (drops.track(), never.clone());
            lp.create_task(async move {
                let _guard = tracked;
                let _ = never.await;
            })
        })
        .collect();
    let sleeping = {
        let tracked = drops.track();
        lp.create_task(async move {
            let _guard = tracked;
            sleep(Duration::from_secs(60)).await.unwrap();
        })
    };
    turn(&lp);
    let unstarted = {
        let tracked = drops.track();
        lp.create_task(async move { drop(tracked) })
    };
    // Detached: no handle keeps it, the loop alone holds it.
    {
        let tracked = drops.track();
        drop(lp.create_task(async move {
            let _guard = tracked;
            std::future::pending::<()>().await;
        }));
    }
    assert_eq!(drops.count(), 0);
    drop(lp);
    assert_eq!(drops.count(), 6);
    for task in suspended.iter().chain([&sleeping, &unstarted]) {
        assert!(task.done());
        assert_eq!(loop_error(task.take_result()), Some(LoopError::Closed));
    }
}

#[test]
fn no_rc_cycle_through_a_pending_task_survives_the_loop() {
    let lp = virtual_loop();
    let drops = Drops::default();
    // The coroutine holds its own handle, and so does a done callback on the task: two
    // cycles through the task, broken only if the loop drops the coroutine and the callbacks.
    let me: Rc<RefCell<Option<Task<()>>>> = Rc::default();
    let (own, tracked) = (me.clone(), drops.track());
    let never = lp.create_future::<()>();
    let waiting = never.clone();
    let task = lp.create_task(async move {
        let _guard = tracked;
        let _own = own;
        let _ = waiting.await;
    });
    let (own, tracked) = (me.clone(), drops.track());
    task.add_done_callback(move |_| drop((own, tracked)));
    *me.borrow_mut() = Some(task);
    turn(&lp);
    let weak_task: Weak<RefCell<Option<Task<()>>>> = Rc::downgrade(&me);
    drop((me, never));
    assert!(weak_task.upgrade().is_some(), "alive while the loop is");
    drop(lp);
    assert_eq!(
        drops.count(),
        2,
        "the coroutine and the task's done callback"
    );
    assert!(weak_task.upgrade().is_none());
}

/// Tasks in every state, several holding references to themselves or to the loop, then the
/// loop dropped.
fn tasks_of_every_kind_then_drop_the_loop() {
    let lp = virtual_loop();
    lp.run_until_complete(async {
        yield_now().await;
        String::from("finished")
    })
    .unwrap();
    let me: Rc<RefCell<Option<Task<()>>>> = Rc::default();
    let own = me.clone();
    let pending = lp.create_task(async move {
        let lp = get_running_loop().unwrap();
        let _own = own;
        let never = lp.create_future::<()>();
        let _ = never.await;
    });
    let own = me.clone();
    pending.add_done_callback(move |_| drop(own));
    *me.borrow_mut() = Some(pending);
    let cancelled = lp.create_task(std::future::pending::<()>());
    drop(lp.create_task(async {
        let _ = wait_for(sleep(Duration::from_secs(60)), Duration::from_secs(30)).await;
    }));
    turn(&lp);
    cancelled.cancel();
    turn(&lp);
    drop((me, cancelled));
    drop(lp);
}

#[test]
fn no_rc_cycle_survives_the_loop_every_byte_is_freed() {
    // Once to make what a thread makes once (thread-locals, lazily made statics).
    tasks_of_every_kind_then_drop_the_loop();
    let before = live_bytes();
    tasks_of_every_kind_then_drop_the_loop();
    assert_eq!(live_bytes() - before, 0, "bytes left allocated");
    // The count does see this thread's allocations.
    let probe = std::hint::black_box(vec![0u8; 100]);
    assert_eq!(live_bytes() - before, 100);
    drop(probe);
}

#[test]
fn spawn_outside_a_running_loop_is_no_running_loop() {
    let lp = virtual_loop();
    let err = tulip::spawn(async {}).unwrap_err();
    assert_eq!(LoopError::of(&err), Some(LoopError::NoRunningLoop));
    // Neither after a run.
    lp.run_until_complete(async {}).unwrap();
    let err = tulip::spawn(async {}).unwrap_err();
    assert_eq!(LoopError::of(&err), Some(LoopError::NoRunningLoop));
}

#[test]
fn spawn_from_a_callback_or_a_task_schedules_on_the_running_loop() {
    let lp = virtual_loop();
    let from_callback = Rc::new(RefCell::new(None));
    let slot = from_callback.clone();
    lp.call_soon(move |_| {
        *slot.borrow_mut() = Some(tulip::spawn(async { "from a callback" }).unwrap());
    })
    .unwrap();
    let from_task = lp
        .run_until_complete(async {
            let child = tulip::spawn(async {
                yield_now().await;
                "from a task"
            })
            .unwrap();
            child.await.unwrap()
        })
        .unwrap();
    assert_eq!(from_task, "from a task");
    let spawned = from_callback.borrow_mut().take().unwrap();
    lp.run_until(|_| spawned.done()).unwrap();
    assert_eq!(spawned.result().unwrap(), "from a callback");
}

#[test]
fn create_task_on_a_closed_loop_gives_a_task_failed_with_closed_and_drops_the_coroutine() {
    let lp = virtual_loop();
    lp.close().unwrap();
    let drops = Drops::default();
    let polled = Rc::new(Cell::new(false));
    let (p, tracked) = (polled.clone(), drops.track());
    let task = lp.create_task(async move {
        let _guard = tracked;
        p.set(true);
    });
    assert!(task.done());
    assert!(!task.cancelled());
    assert!(!task.cancel());
    assert_eq!(drops.count(), 1);
    assert_eq!(loop_error(task.take_result()), Some(LoopError::Closed));
    let err = lp.run_until_complete(async {}).unwrap_err();
    assert_eq!(LoopError::of(&err), Some(LoopError::Closed));
    assert!(!polled.get());
}

#[test]
fn a_panicking_task_goes_to_the_exception_handler_and_its_awaiter_gets_panicked() {
    let lp = virtual_loop();
    let reported = Log::default();
    let r = reported.clone();
    lp.set_exception_handler(move |_, context| {
        r.push(context.message().unwrap_or("no message"));
    });
    let drops = Drops::default();
    let tracked = drops.track();
    let bad = lp.create_task(async move {
        let _guard = tracked;
        yield_now().await;
        if drops_never_zero() {
            panic!("the task exploded");
        }
        1u32
    });
    let awaiter = lp.create_task(async move {
        yield_now().await;
        bad.await
    });
    let good = lp.create_task(async {
        for _ in 0..3 {
            yield_now().await;
        }
        "the loop went on"
    });
    lp.run_until(|_| awaiter.done() && good.done()).unwrap();
    assert_eq!(reported.take(), ["the task exploded"]);
    assert_eq!(drops.count(), 1, "the panicked coroutine was dropped");
    assert_eq!(
        loop_error(awaiter.take_result().unwrap()),
        Some(LoopError::Panicked)
    );
    assert_eq!(good.result().unwrap(), "the loop went on");
    assert_eq!(lp.stats().callbacks_panicked, 1);
}

#[test]
fn result_of_a_panicked_or_closed_task_keeps_its_loop_error() {
    let lp = virtual_loop();
    lp.set_exception_handler(|_, _| {});
    let panicked = lp.create_task(async {
        if drops_never_zero() {
            panic!("for result()");
        }
        1u32
    });
    lp.run_until(|_| panicked.done()).unwrap();
    assert_eq!(loop_error(panicked.result()), Some(LoopError::Panicked));
    let pending = lp.create_task(std::future::pending::<u32>());
    drop(lp);
    assert_eq!(loop_error(pending.result()), Some(LoopError::Closed));
    assert_eq!(loop_error(pending.take_result()), Some(LoopError::Closed));
}

/// True, in a way the compiler cannot see (so the code after a `panic!` is not dead).
fn drops_never_zero() -> bool {
    std::hint::black_box(true)
}

#[test]
fn run_until_complete_of_a_panicking_coroutine_is_panicked() {
    let lp = virtual_loop();
    let reported = Log::default();
    let r = reported.clone();
    lp.set_exception_handler(move |_, context| {
        r.push(context.message().unwrap_or("no message"));
    });
    let err = lp
        .run_until_complete(async {
            if drops_never_zero() {
                panic!("boom");
            }
        })
        .unwrap_err();
    assert_eq!(LoopError::of(&err), Some(LoopError::Panicked));
    assert_eq!(reported.take(), ["boom"]);
    // The loop is still usable.
    assert_eq!(lp.run_until_complete(async { 1 }).unwrap(), 1);
}

#[test]
fn run_until_complete_stopped_early_is_stopped_and_its_task_keeps_running() {
    let lp = virtual_loop();
    let finished = Rc::new(Cell::new(false));
    let f = finished.clone();
    lp.call_later(Duration::from_secs(1), |lp| lp.stop())
        .unwrap();
    let err = lp
        .run_until_complete(async move {
            sleep(Duration::from_secs(2)).await.unwrap();
            f.set(true);
        })
        .unwrap_err();
    assert_eq!(LoopError::of(&err), Some(LoopError::Stopped));
    assert_eq!(lp.time(), Duration::from_secs(1));
    assert!(!finished.get());
    watchdog(&lp);
    lp.run_until(|_| finished.get()).unwrap();
    assert_eq!(lp.time(), Duration::from_secs(2));
}

#[test]
fn run_until_complete_from_inside_a_task_is_running() {
    let lp = Rc::new(virtual_loop());
    let inner = lp.clone();
    let nested = lp
        .run_until_complete(async move { inner.run_until_complete(async {}).map(|_| ()) })
        .unwrap();
    assert_eq!(loop_error(nested), Some(LoopError::Running));
}

#[test]
fn a_task_that_cancels_itself_and_then_returns_completes_as_cancelled() {
    let lp = virtual_loop();
    // The coroutine reaches its own `Task` through this slot, filled before its first step.
    let own: Rc<RefCell<Option<Task<u32>>>> = Rc::default();
    let handle = own.clone();
    let task = lp.create_task(async move {
        let cancelled = handle.borrow().as_ref().map(|me| me.cancel());
        assert_eq!(cancelled, Some(true));
        7
    });
    let output = task.as_future().clone();
    *own.borrow_mut() = Some(task);
    turn(&lp);
    assert!(output.cancelled(), "{output:?}");
    assert_eq!(loop_error(output.take_result()), Some(LoopError::Cancelled));
}

/// Panics when dropped: a destructor that fails.
struct PanicsOnDrop;

impl Drop for PanicsOnDrop {
    fn drop(&mut self) {
        panic!("a destructor panicked");
    }
}

#[test]
fn a_panic_in_a_destructor_run_by_cancellation_fails_the_task_with_panicked() {
    let lp = virtual_loop();
    let reports = Rc::new(Cell::new(0));
    let seen = reports.clone();
    lp.set_exception_handler(move |_, _| seen.set(seen.get() + 1));
    let task = lp.create_task(async {
        let _guard = PanicsOnDrop;
        std::future::pending::<()>().await;
    });
    turn(&lp);
    assert!(task.cancel());
    turn(&lp);
    assert!(task.done() && !task.cancelled());
    assert_eq!(reports.get(), 1);
    assert_eq!(loop_error(task.take_result()), Some(LoopError::Panicked));
}

#[test]
fn a_panic_dropping_a_finished_coroutine_goes_to_the_exception_handler_and_fails_the_task() {
    struct ReadyThenPanics(#[allow(dead_code)] PanicsOnDrop);
    impl StdFuture for ReadyThenPanics {
        type Output = u32;
        fn poll(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<u32> {
            Poll::Ready(1)
        }
    }
    let lp = virtual_loop();
    let reports = Rc::new(Cell::new(0));
    let seen = reports.clone();
    lp.set_exception_handler(move |_, _| seen.set(seen.get() + 1));
    let task = lp.create_task(ReadyThenPanics(PanicsOnDrop));
    lp.run_until(|_| task.done()).unwrap();
    assert_eq!(reports.get(), 1);
    assert_eq!(loop_error(task.take_result()), Some(LoopError::Panicked));
}

#[test]
fn a_panic_while_cancelling_leaves_no_cancellation_in_force_for_later_drops() {
    let lp = virtual_loop();
    lp.set_exception_handler(|_, _| {});
    let victim = lp.create_task(async {
        let _guard = PanicsOnDrop;
        sleep(Duration::from_secs(60)).await
    });
    turn(&lp);
    victim.cancel();
    turn(&lp);
    assert!(victim.done());
    // gather's first error leaves `survivor` detached: nothing may cancel it now.
    let survivor = lp.create_task(async { sleep(Duration::from_secs(5)).await.map(|()| 1u32) });
    let probe = survivor.as_future().clone();
    let failing = lp.create_task(async {
        sleep(Duration::from_secs(1)).await?;
        Err::<u32, io::Error>(io::Error::other("first"))
    });
    let outcome = lp
        .run_until_complete(tulip::gather(vec![failing, survivor]))
        .unwrap();
    assert!(outcome.is_err());
    lp.run_until(|_| probe.done()).unwrap();
    assert!(
        !probe.cancelled(),
        "gather detached it; nothing cancelled it"
    );
}

#[test]
fn create_task_after_call_soon_threadsafe_runs_after_it() {
    let lp = virtual_loop();
    let log = Arc::new(std::sync::Mutex::new(Vec::new()));
    let l = log.clone();
    lp.handle()
        .call_soon_threadsafe(move |_| l.lock().unwrap().push("threadsafe"))
        .unwrap();
    let l = log.clone();
    let task = lp.create_task(async move { l.lock().unwrap().push("task") });
    lp.run_until_complete(task).unwrap().unwrap();
    assert_eq!(*log.lock().unwrap(), ["threadsafe", "task"]);
}

#[test]
fn cancelling_a_task_cancels_the_future_it_awaits() {
    let lp = virtual_loop();
    let fut = lp.create_future::<u32>();
    let probe = fut.clone();
    // A coroutine suspended on the future, as asyncio's `await fut`.
    #[allow(clippy::redundant_async_block)]
    let task = lp.create_task(async move { fut.await });
    turn(&lp);
    assert!(task.cancel());
    assert!(
        task.cancel(),
        "still pending: a second request is accepted too"
    );
    turn(&lp);
    assert!(task.cancelled());
    assert!(
        probe.cancelled(),
        "the future it was suspended on is cancelled"
    );
    assert_eq!(loop_error(task.exception()), Some(LoopError::Cancelled));
}

#[test]
fn cancelling_a_task_whose_awaited_future_is_done_but_not_yet_seen_still_cancels_it() {
    let lp = virtual_loop();
    let fut = lp.create_future::<u32>();
    let probe = fut.clone();
    // A coroutine suspended on the future, as asyncio's `await fut`.
    #[allow(clippy::redundant_async_block)]
    let task = lp.create_task(async move { fut.await });
    turn(&lp);
    probe.set_result(7).unwrap();
    assert!(task.cancel(), "the task has not resumed yet");
    turn(&lp);
    assert!(task.cancelled());
    assert_eq!(probe.result().unwrap(), 7, "a done future is left as it is");
}

#[test]
fn a_task_whose_coroutine_returns_the_cancellation_of_what_it_awaited_is_cancelled() {
    let lp = virtual_loop();
    let fut = lp.create_future::<u32>();
    let probe = fut.clone();
    let task = lp.create_task(async move {
        let value = fut.await?;
        io::Result::Ok(value)
    });
    let failing = lp.create_task(async { io::Result::<u32>::Err(io::ErrorKind::TimedOut.into()) });
    turn(&lp);
    probe.cancel();
    lp.run_until(|_| task.done() && failing.done()).unwrap();
    // As a CancelledError escaping an asyncio coroutine cancels its task.
    assert!(task.cancelled());
    assert_eq!(loop_error(task.exception()), Some(LoopError::Cancelled));
    assert!(!failing.cancelled(), "any other error is a failure");
    assert!(failing.exception().unwrap().is_some());
}
