//! `run_in_executor`: blocking closures on the loop's thread pool. Their outcome comes back on
//! the loop's thread (through the notifier that wakes a blocked loop, so that part runs on
//! every backend); a panicking closure fails its future; the pool's size is configurable and
//! its threads are joined when the loop goes.
//!
//! Every test here holds one lock: the pool's threads are counted in `/proc/self/task`, and
//! another test's pool must not be alive meanwhile.

use std::cell::{Cell, RefCell};
use std::io;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier, Mutex, MutexGuard};
use std::thread::{self, ThreadId};
use std::time::Duration;

use tulip::selectors::Backend;
use tulip::{get_running_loop, EventLoop, LoopError};

#[macro_use]
#[path = "support/per_backend.rs"]
mod per_backend;

/// Held by every test of this file (see the crate doc).
fn pool_lock() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The executor's worker threads alive in this process, by name (`tulip-executor-N`, which
/// the kernel cuts to 15 bytes).
#[cfg(target_os = "linux")]
/// [`executor_threads`] once it has settled at zero, or what it is after a second. A joined
/// thread can still be listed for a moment: `pthread_join` returns when the kernel clears the
/// thread's tid (as the thread releases its memory), a little before the thread leaves
/// `/proc/self/task`.
fn executor_threads_after_join() -> usize {
    let deadline = std::time::Instant::now() + Duration::from_secs(1);
    loop {
        let n = executor_threads();
        if n == 0 || std::time::Instant::now() >= deadline {
            return n;
        }
        thread::sleep(Duration::from_millis(1));
    }
}

fn executor_threads() -> usize {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("comm")).ok())
        .filter(|name| name.starts_with("tulip-executor"))
        .count()
}

/// Stops the loop after `secs` of real time: ends a run that a broken wake would block forever.
fn watchdog(lp: &EventLoop, secs: u64) {
    lp.call_later(Duration::from_secs(secs), |lp| lp.stop())
        .unwrap();
}

per_backend! {
    fn the_value_comes_back_on_the_loop_thread_and_wakes_the_blocked_loop(b: Backend) {
        let _pool = pool_lock();
        let lp = EventLoop::with_backend(b).unwrap();
        let loop_thread = thread::current().id();
        let fut = lp.run_in_executor(|| {
            // Long enough for the loop to be blocked in `select` when the value arrives.
            thread::sleep(Duration::from_millis(20));
            (thread::current().id(), thread::current().name().map(str::to_owned))
        });
        let completed_on = Rc::new(Cell::new(None::<ThreadId>));
        let on = completed_on.clone();
        fut.add_done_callback(move |_| on.set(Some(thread::current().id())));
        watchdog(&lp, 30);
        lp.run_until(|_| completed_on.get().is_some()).unwrap();
        let (job_thread, job_name) = fut.take_result().unwrap();
        assert_ne!(job_thread, loop_thread);
        assert!(job_name.unwrap().starts_with("tulip-executor-"));
        assert_eq!(completed_on.get(), Some(loop_thread));
    }
}

#[test]
fn a_task_awaits_executor_jobs_and_gets_their_values_in_order() {
    let _pool = pool_lock();
    let lp = EventLoop::with_backend(Backend::best()).unwrap();
    let values = lp
        .run_until_complete(async {
            let lp = get_running_loop().unwrap();
            let jobs: Vec<_> = (0..8u64)
                .map(|i| {
                    lp.run_in_executor(move || {
                        thread::sleep(Duration::from_millis(8 - i));
                        i * i
                    })
                })
                .collect();
            tulip::gather(jobs).await
        })
        .unwrap()
        .unwrap();
    assert_eq!(values, [0, 1, 4, 9, 16, 25, 36, 49]);
}

#[test]
fn a_panicking_job_fails_its_future_with_panicked_and_goes_to_the_exception_handler() {
    let _pool = pool_lock();
    let lp = EventLoop::with_backend(Backend::best()).unwrap();
    let reported = Rc::new(RefCell::new(Vec::new()));
    let r = reported.clone();
    lp.set_exception_handler(move |_, context| {
        r.borrow_mut()
            .push(context.message().unwrap_or("no message").to_owned());
    });
    let bad = lp.run_in_executor(|| -> u32 {
        if std::hint::black_box(true) {
            panic!("the job exploded");
        }
        1
    });
    let err = lp.run_until_complete(bad).unwrap().unwrap_err();
    assert_eq!(LoopError::of(&err), Some(LoopError::Panicked));
    assert_eq!(*reported.borrow(), ["the job exploded"]);
    // The pool and the loop go on.
    let good = lp.run_in_executor(|| 2u32);
    assert_eq!(lp.run_until_complete(good).unwrap().unwrap(), 2);
}

#[test]
fn the_default_size_is_cores_plus_four_capped_at_32_and_can_be_set_before_first_use() {
    let _pool = pool_lock();
    let lp = EventLoop::with_backend(Backend::best()).unwrap();
    let cores = thread::available_parallelism().map_or(1, |n| n.get());
    assert_eq!(lp.executor_size(), (cores + 4).min(32));
    assert_eq!(
        lp.set_executor_size(0).unwrap_err().kind(),
        io::ErrorKind::InvalidInput
    );
    lp.set_executor_size(3).unwrap();
    assert_eq!(lp.executor_size(), 3);
    let fut = lp.run_in_executor(|| ());
    lp.run_until_complete(fut).unwrap().unwrap();
    assert_eq!(
        lp.set_executor_size(5).unwrap_err().kind(),
        io::ErrorKind::InvalidInput,
        "too late: the pool exists"
    );
    assert_eq!(lp.executor_size(), 3);
}

#[test]
fn no_more_jobs_run_at_once_than_the_executor_size() {
    let _pool = pool_lock();
    let lp = EventLoop::with_backend(Backend::best()).unwrap();
    lp.set_executor_size(2).unwrap();
    let running = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let jobs: Vec<_> = (0..6)
        .map(|_| {
            let (running, peak) = (running.clone(), peak.clone());
            lp.run_in_executor(move || {
                let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                peak.fetch_max(now, Ordering::SeqCst);
                thread::sleep(Duration::from_millis(5));
                running.fetch_sub(1, Ordering::SeqCst);
            })
        })
        .collect();
    lp.run_until_complete(tulip::gather(jobs)).unwrap().unwrap();
    assert_eq!(peak.load(Ordering::SeqCst), 2);
    assert_eq!(lp.stats().executor_threads, 2);
}

#[cfg(target_os = "linux")]
#[test]
fn dropping_or_closing_the_loop_joins_the_pools_threads() {
    let _pool = pool_lock();
    assert_eq!(executor_threads_after_join(), 0);
    for close_first in [false, true] {
        let lp = EventLoop::with_backend(Backend::best()).unwrap();
        lp.set_executor_size(3).unwrap();
        // Three jobs that meet: all three workers exist at once.
        let barrier = Arc::new(Barrier::new(3));
        let jobs: Vec<_> = (0..3)
            .map(|_| {
                let barrier = barrier.clone();
                lp.run_in_executor(move || {
                    barrier.wait();
                })
            })
            .collect();
        lp.run_until_complete(tulip::gather(jobs)).unwrap().unwrap();
        assert_eq!(executor_threads(), 3);
        assert_eq!(lp.stats().executor_threads, 3);
        if close_first {
            lp.close().unwrap();
            assert_eq!(executor_threads_after_join(), 0, "close joined them");
        }
        drop(lp);
        assert_eq!(
            executor_threads_after_join(),
            0,
            "close_first: {close_first}"
        );
    }
}

#[test]
fn dropping_the_loop_waits_for_a_running_job() {
    let _pool = pool_lock();
    let lp = EventLoop::with_backend(Backend::best()).unwrap();
    let started = Arc::new(Barrier::new(2));
    let finished = Arc::new(AtomicBool::new(false));
    let (s, f) = (started.clone(), finished.clone());
    let _fut = lp.run_in_executor(move || {
        s.wait();
        thread::sleep(Duration::from_millis(30));
        f.store(true, Ordering::SeqCst);
    });
    started.wait();
    drop(lp);
    assert!(finished.load(Ordering::SeqCst));
}

#[test]
fn cancelling_the_future_of_a_started_job_lets_it_finish_and_drops_its_value() {
    let _pool = pool_lock();
    let lp = EventLoop::with_backend(Backend::best()).unwrap();

    struct Value(Arc<AtomicUsize>);
    impl Drop for Value {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    let drops = Arc::new(AtomicUsize::new(0));
    let started = Arc::new(Barrier::new(2));
    let release = Arc::new(Barrier::new(2));
    let (d, s, r) = (drops.clone(), started.clone(), release.clone());
    let fut = lp.run_in_executor(move || {
        s.wait();
        r.wait();
        Value(d)
    });
    started.wait();
    assert!(fut.cancel());
    release.wait();
    watchdog(&lp, 30);
    lp.run_until(|_| drops.load(Ordering::SeqCst) == 1).unwrap();
    assert!(fut.cancelled());
}

#[test]
fn run_in_executor_on_a_closed_loop_fails_with_closed_and_runs_nothing() {
    let _pool = pool_lock();
    let lp = EventLoop::with_backend(Backend::best()).unwrap();
    lp.close().unwrap();
    let ran = Arc::new(AtomicBool::new(false));
    let r = ran.clone();
    let fut = lp.run_in_executor(move || r.store(true, Ordering::SeqCst));
    assert!(fut.done());
    assert_eq!(
        LoopError::of(&fut.take_result().unwrap_err()),
        Some(LoopError::Closed)
    );
    assert!(!ran.load(Ordering::SeqCst));
    assert_eq!(lp.stats().executor_threads, 0);
}

#[test]
fn closing_the_loop_while_a_job_runs_fails_its_future_with_closed() {
    let _pool = pool_lock();
    let lp = EventLoop::with_backend(Backend::best()).unwrap();
    let started = Arc::new(Barrier::new(2));
    let s = started.clone();
    let fut = lp.run_in_executor(move || {
        s.wait();
        1
    });
    // Let the driving task take its first step (it then waits for the job), then close.
    lp.run_once(Some(Duration::ZERO)).unwrap();
    started.wait();
    lp.close().unwrap();
    assert!(fut.done());
    let err = fut.take_result().unwrap_err();
    assert_eq!(LoopError::of(&err), Some(LoopError::Closed));
}
