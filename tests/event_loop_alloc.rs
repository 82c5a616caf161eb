//! Steady-state iterations do not allocate: the events buffer, the ready queue and the timer
//! heap are reused. A counting global allocator counts this thread's allocations while a loop
//! with a ready reader, a ready writer and a re-armed timer runs a thousand iterations.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::os::fd::{AsFd, AsRawFd};
use std::rc::Rc;
use std::time::Duration;

use tulip::selectors::{fd, Backend};
use tulip::{EventLoop, ManualClock};

struct CountingAllocator;

thread_local! {
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

// SAFETY: every call is forwarded unchanged to the system allocator; counting touches only a
// const-initialised thread-local `Cell`, which never allocates.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
        // SAFETY: the caller's contract for `alloc` is passed on.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller's contract for `dealloc` is passed on.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
        // SAFETY: the caller's contract for `realloc` is passed on.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

fn allocations() -> u64 {
    ALLOCATIONS.with(Cell::get)
}

#[test]
fn steady_state_iterations_allocate_nothing_on_any_backend() {
    for &backend in Backend::available() {
        let lp = EventLoop::with_clock(backend, ManualClock::new()).unwrap();
        let (a, b) = fd::socketpair().unwrap();
        // Never drained: readable every iteration (level-triggered); always writable too.
        assert_eq!(fd::send(b.as_fd(), b"x").unwrap(), 1);
        let runs = Rc::new(Cell::new(0u64));
        let (r, w) = (runs.clone(), runs.clone());
        lp.add_reader(a.as_raw_fd(), move |_| r.set(r.get() + 1))
            .unwrap();
        lp.add_writer(a.as_raw_fd(), move |_| w.set(w.get() + 1))
            .unwrap();
        // A timer far away: the heap is consulted every iteration, and never fires.
        let _timer = lp.call_later(Duration::from_secs(3600), |_| {}).unwrap();
        for _ in 0..100 {
            lp.run_once(Some(Duration::ZERO)).unwrap();
        }
        let before = allocations();
        for _ in 0..1000 {
            lp.run_once(Some(Duration::ZERO)).unwrap();
        }
        let allocated = allocations() - before;
        // The counter does count this thread's allocations.
        drop(std::hint::black_box(Box::new(allocated)));
        assert_eq!(allocations(), before + allocated + 1);
        assert_eq!(
            runs.get(),
            2 * 1100,
            "{backend}: both callbacks ran every iteration"
        );
        assert_eq!(
            allocated, 0,
            "{backend}: {allocated} allocations in 1000 iterations"
        );
    }
}

/// A spawned task costs one allocation once the loop has warmed up: its cell, which holds its
/// coroutine, its state and its output. The waker of a dropped task that nothing else held is
/// reused by the next task instead of being allocated again.
#[test]
fn a_spawned_task_is_one_allocation() {
    const TASKS: u64 = 1000;
    let lp = EventLoop::with_clock(Backend::best(), ManualClock::new()).unwrap();
    let allocated = lp
        .run_until_complete(async {
            let mut total = 0;
            // Warm up: the ready queue, the task table and the spare wakers reach their size.
            for _ in 0..10 {
                total += tulip::spawn(async { 1u64 }).unwrap().await.unwrap();
            }
            let before = allocations();
            for _ in 0..TASKS {
                total += tulip::spawn(async { 1u64 }).unwrap().await.unwrap();
            }
            let allocated = allocations() - before;
            assert_eq!(total, TASKS + 10);
            allocated
        })
        .unwrap();
    assert_eq!(
        allocated, TASKS,
        "{allocated} allocations for {TASKS} tasks"
    );
}

/// Re-armed timers cost their callbacks' allocations and nothing else: each `call_later` makes
/// one, and the timer queue's own work (sorting each cohort of due timers when it refills its
/// run, firing them) allocates nothing once warmed up.
#[test]
fn re_armed_timers_allocate_only_their_callbacks() {
    const TIMERS: u64 = 8;
    fn arm(lp: &EventLoop, period_ms: u64, fired: Rc<Cell<u64>>) {
        lp.call_later(Duration::from_millis(period_ms), move |lp| {
            fired.set(fired.get() + 1);
            arm(lp, period_ms, fired);
        })
        .unwrap();
    }
    for &backend in Backend::available() {
        let lp = EventLoop::with_clock(backend, ManualClock::new()).unwrap();
        let fired = Rc::new(Cell::new(0u64));
        // Periods of 3 to 10 ms: cohorts of every size up to all eight, with ties.
        for period in 3..3 + TIMERS {
            arm(&lp, period, fired.clone());
        }
        for _ in 0..200 {
            lp.run_once(None).unwrap();
        }
        let (before, fired_before) = (allocations(), fired.get());
        for _ in 0..1000 {
            lp.run_once(None).unwrap();
        }
        let allocated = allocations() - before;
        let rearmed = fired.get() - fired_before;
        assert!(rearmed >= 1000, "{backend}: {rearmed} timers fired");
        assert_eq!(
            allocated, rearmed,
            "{backend}: {allocated} allocations for {rearmed} re-armed timers"
        );
    }
}
