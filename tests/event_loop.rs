//! The event loop's contract, on every available backend: ordering (FIFO, timer ties, batches),
//! stop and resume, cancel, readers and writers on pipes and sockets, fd reuse, wakes from
//! other threads, signals, panicking callbacks, close and drop. Time-based tests run on the
//! virtual clock.

use std::cell::{Cell, RefCell};
use std::io::ErrorKind;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tulip::selectors::{fd, Backend};
use tulip::{EventLoop, LoopError, ManualClock};

#[macro_use]
#[path = "support/per_backend.rs"]
mod per_backend;

/// A shared log of what ran, in order.
#[derive(Clone, Default)]
struct Log(Rc<RefCell<Vec<&'static str>>>);

impl Log {
    fn push(&self, entry: &'static str) {
        self.0.borrow_mut().push(entry);
    }

    fn take(&self) -> Vec<&'static str> {
        std::mem::take(&mut self.0.borrow_mut())
    }

    /// A callback that logs `entry`.
    fn cb(&self, entry: &'static str) -> impl FnOnce(&EventLoop) + 'static {
        let log = self.clone();
        move |_| log.push(entry)
    }
}

fn virtual_loop(backend: Backend) -> (EventLoop, ManualClock) {
    let clock = ManualClock::new();
    let lp = EventLoop::with_clock(backend, clock.clone()).unwrap();
    (lp, clock)
}

fn write_byte(fd: &OwnedFd) {
    assert_eq!(fd::write(fd.as_fd(), b"x").unwrap(), 1);
}

fn drain(fd: impl AsFd) {
    let mut buf = [0u8; 256];
    while matches!(fd::read(fd.as_fd(), &mut buf), Ok(n) if n > 0) {}
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// Signal tests run one at a time: a signal reaches every loop of the process that handles it.
fn signal_lock() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// Counts drops of the values it hands out.
#[derive(Clone, Default)]
struct DropCounter(Rc<Cell<usize>>);

struct Tracked(Rc<Cell<usize>>);

impl Drop for Tracked {
    fn drop(&mut self) {
        self.0.set(self.0.get() + 1);
    }
}

impl DropCounter {
    fn track(&self) -> Tracked {
        Tracked(self.0.clone())
    }

    fn dropped(&self) -> usize {
        self.0.get()
    }
}

per_backend! {
    fn call_soon_callbacks_run_in_fifo_order(backend: Backend) {
        let lp = EventLoop::with_backend(backend).unwrap();
        let log = Log::default();
        for name in ["a", "b", "c", "d"] {
            lp.call_soon(log.cb(name)).unwrap();
        }
        lp.call_soon(|lp| lp.stop()).unwrap();
        lp.run_forever().unwrap();
        assert_eq!(log.take(), ["a", "b", "c", "d"]);
    }

    fn timers_run_in_deadline_order_and_ties_in_scheduling_order(backend: Backend) {
        let (lp, clock) = virtual_loop(backend);
        let log = Log::default();
        lp.call_later(ms(30), log.cb("30")).unwrap();
        lp.call_later(ms(10), log.cb("10 first")).unwrap();
        lp.call_at(ms(20), log.cb("20")).unwrap();
        lp.call_at(ms(10), log.cb("10 second")).unwrap();
        lp.call_later(ms(10), log.cb("10 third")).unwrap();
        lp.call_later(ms(40), |lp| lp.stop()).unwrap();
        lp.run_forever().unwrap();
        assert_eq!(log.take(), ["10 first", "10 second", "10 third", "20", "30"]);
        assert_eq!(clock.now(), ms(40));
        assert_eq!(lp.time(), ms(40));

        // Many ties among other deadlines: a heap that ignored scheduling order would mix them.
        let order = Rc::new(RefCell::new(Vec::new()));
        for i in 0..200u64 {
            let order = order.clone();
            let when = ms(50 + (i * 7) % 3);
            lp.call_at(when, move |lp| order.borrow_mut().push((lp.time(), i))).unwrap();
        }
        lp.call_at(ms(60), |lp| lp.stop()).unwrap();
        lp.run_forever().unwrap();
        let order = order.borrow();
        let mut sorted = order.clone();
        sorted.sort();
        assert_eq!(*order, sorted);
        assert_eq!(order.len(), 200);
    }

    fn on_the_virtual_clock_ready_io_runs_before_time_jumps(backend: Backend) {
        let (lp, clock) = virtual_loop(backend);
        let (r, w) = fd::pipe().unwrap();
        write_byte(&w);
        let log = Log::default();
        lp.add_reader(r.as_raw_fd(), log.cb_mut("reader")).unwrap();
        lp.call_later(Duration::from_secs(3600), log.cb("timer")).unwrap();
        lp.run_once(None).unwrap();
        assert_eq!(log.take(), ["reader"]);
        assert_eq!(clock.now(), Duration::ZERO);
        assert!(lp.remove_reader(r.as_raw_fd()));
        lp.run_once(None).unwrap();
        assert_eq!(log.take(), ["timer"]);
        assert_eq!(clock.now(), Duration::from_secs(3600));
    }

    fn a_callback_scheduled_during_a_batch_runs_in_the_next_iteration(backend: Backend) {
        let lp = EventLoop::with_backend(backend).unwrap();
        let log = Log::default();
        let inner = log.clone();
        lp.call_soon(move |lp| {
            inner.push("first");
            lp.call_soon(inner.cb("scheduled by first")).unwrap();
        })
        .unwrap();
        lp.call_soon(log.cb("second")).unwrap();
        lp.run_once(Some(Duration::ZERO)).unwrap();
        assert_eq!(log.take(), ["first", "second"]);
        lp.run_once(Some(Duration::ZERO)).unwrap();
        assert_eq!(log.take(), ["scheduled by first"]);
    }

    fn a_self_rescheduling_callback_cannot_starve_io_or_timers(backend: Backend) {
        let lp = EventLoop::with_backend(backend).unwrap();
        let spins = Rc::new(Cell::new(0u32));
        fn spin(lp: &EventLoop, spins: Rc<Cell<u32>>) {
            spins.set(spins.get() + 1);
            lp.call_soon(move |lp| spin(lp, spins)).unwrap();
        }
        let s = spins.clone();
        lp.call_soon(move |lp| spin(lp, s)).unwrap();
        let (r, w) = fd::pipe().unwrap();
        write_byte(&w);
        let log = Log::default();
        let reader_log = log.clone();
        lp.add_reader(r.as_raw_fd(), move |_| reader_log.push("reader")).unwrap();
        lp.call_later(Duration::ZERO, log.cb("timer")).unwrap();
        lp.run_once(None).unwrap();
        let mut seen = log.take();
        seen.sort();
        assert_eq!(seen, ["reader", "timer"]);
        assert_eq!(spins.get(), 1);
    }

    fn stop_inside_a_callback_finishes_the_batch_and_run_forever_resumes(backend: Backend) {
        let lp = EventLoop::with_backend(backend).unwrap();
        let log = Log::default();
        let inner = log.clone();
        lp.call_soon(move |lp| {
            inner.push("stopper");
            lp.stop();
            let again = inner.clone();
            lp.call_soon(move |lp| {
                again.push("next iteration");
                lp.stop();
            })
            .unwrap();
        })
        .unwrap();
        lp.call_soon(log.cb("same batch")).unwrap();
        lp.run_forever().unwrap();
        assert_eq!(log.take(), ["stopper", "same batch"]);
        assert!(!lp.is_running());
        lp.run_forever().unwrap();
        assert_eq!(log.take(), ["next iteration"]);
    }

    fn stop_before_run_forever_runs_one_iteration_without_blocking(backend: Backend) {
        let lp = EventLoop::with_backend(backend).unwrap();
        let log = Log::default();
        lp.call_soon(log.cb("ready")).unwrap();
        // Would block for an hour if the iteration waited for the timer.
        lp.call_later(Duration::from_secs(3600), log.cb("timer")).unwrap();
        lp.stop();
        lp.run_forever().unwrap();
        assert_eq!(log.take(), ["ready"]);
        assert_eq!(lp.stats().iterations, 1);
    }

    /// A `run_until` whose condition holds from the start runs nothing, so a `stop` made
    /// before it is left for the next run (which then runs one iteration).
    fn a_run_until_already_done_leaves_a_pending_stop_for_the_next_run(backend: Backend) {
        let lp = EventLoop::with_backend(backend).unwrap();
        let log = Log::default();
        lp.call_soon(log.cb("ready")).unwrap();
        lp.call_later(Duration::from_secs(3600), log.cb("timer")).unwrap();
        lp.stop();
        lp.run_until(|_| true).unwrap();
        assert_eq!(lp.stats().iterations, 0);
        assert!(log.take().is_empty());
        lp.run_forever().unwrap();
        assert_eq!(log.take(), ["ready"]);
        assert_eq!(lp.stats().iterations, 1);
    }

    fn cancelled_handles_and_timers_never_run(backend: Backend) {
        let (lp, _clock) = virtual_loop(backend);
        let log = Log::default();
        let soon = lp.call_soon(log.cb("cancelled soon")).unwrap();
        lp.call_soon(log.cb("kept soon")).unwrap();
        let timer = lp.call_later(ms(5), log.cb("cancelled timer")).unwrap();
        // Two timers due in the same iteration: the first cancels the second, which is
        // already in the ready queue.
        let victim: Rc<RefCell<Option<tulip::TimerHandle>>> = Rc::default();
        let v = victim.clone();
        let inner = log.clone();
        lp.call_at(ms(10), move |_| {
            inner.push("canceller");
            if let Some(t) = v.borrow().as_ref() {
                t.cancel();
            }
        })
        .unwrap();
        *victim.borrow_mut() = Some(lp.call_at(ms(10), log.cb("victim")).unwrap());
        lp.call_at(ms(20), |lp| lp.stop()).unwrap();
        soon.cancel();
        soon.cancel();
        timer.cancel();
        assert!(soon.cancelled() && timer.cancelled());
        assert_eq!(timer.when(), ms(5));
        lp.run_forever().unwrap();
        assert_eq!(log.take(), ["kept soon", "canceller"]);
        assert!(victim.borrow().as_ref().unwrap().cancelled());
        assert_eq!(lp.stats().timers_cancelled, 2);
    }

    fn running_a_running_loop_or_closing_it_from_a_callback_is_an_error(backend: Backend) {
        let lp = EventLoop::with_backend(backend).unwrap();
        let errors: Rc<RefCell<Vec<Option<LoopError>>>> = Rc::default();
        let e = errors.clone();
        lp.call_soon(move |lp| {
            assert!(lp.is_running());
            let mut e = e.borrow_mut();
            e.push(LoopError::of(&lp.run_forever().unwrap_err()));
            e.push(LoopError::of(&lp.run_once(None).unwrap_err()));
            e.push(LoopError::of(&lp.run_until(|_| true).unwrap_err()));
            e.push(LoopError::of(&lp.close().unwrap_err()));
            lp.stop();
        })
        .unwrap();
        assert!(!lp.is_running());
        lp.run_forever().unwrap();
        assert_eq!(*errors.borrow(), [Some(LoopError::Running); 4]);
        assert!(!lp.is_closed());
    }

    fn close_makes_every_scheduling_call_fail_and_closing_twice_is_fine(backend: Backend) {
        let lp = EventLoop::with_backend(backend).unwrap();
        let handle = lp.handle();
        let (r, _w) = fd::pipe().unwrap();
        lp.close().unwrap();
        lp.close().unwrap();
        assert!(lp.is_closed());
        let closed = |result: std::io::Result<()>| {
            let err = result.unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Other);
            assert_eq!(LoopError::of(&err), Some(LoopError::Closed));
        };
        closed(lp.call_soon(|_| {}).map(drop));
        closed(lp.call_later(ms(1), |_| {}).map(drop));
        closed(lp.call_at(ms(1), |_| {}).map(drop));
        closed(lp.add_reader(r.as_raw_fd(), |_| {}));
        closed(lp.add_writer(r.as_raw_fd(), |_| {}));
        closed(lp.add_signal_handler(libc::SIGUSR1, |_| {}));
        closed(handle.call_soon_threadsafe(|_| {}));
        closed(lp.call_soon_threadsafe(|_| {}));
        closed(lp.run_forever());
        closed(lp.run_once(Some(Duration::ZERO)));
        closed(lp.run_until(|_| true));
        assert!(!lp.remove_reader(r.as_raw_fd()));
        assert!(!lp.remove_writer(r.as_raw_fd()));
        assert!(!lp.is_running());
        // Time goes on, as asyncio's `time()` works on a closed loop.
        let before = lp.time();
        std::thread::sleep(ms(2));
        assert!(lp.time() > before);
    }

    fn closing_or_dropping_the_loop_drops_every_pending_callback(backend: Backend) {
        for close_first in [false, true] {
            let counter = DropCounter::default();
            let remote_drops = Arc::new(AtomicUsize::new(0));
            let lp = EventLoop::with_backend(backend).unwrap();
            let (r, _w) = fd::pipe().unwrap();
            let t = counter.track();
            let kept_handle = lp.call_soon(move |_| drop(t)).unwrap();
            let t = counter.track();
            let kept_timer = lp.call_later(ms(1000), move |_| drop(t)).unwrap();
            let t = counter.track();
            lp.add_reader(r.as_raw_fd(), move |_| { let _ = &t; }).unwrap();
            let t = counter.track();
            lp.add_writer(r.as_raw_fd(), move |_| { let _ = &t; }).unwrap();
            struct RemoteTracked(Arc<AtomicUsize>);
            impl Drop for RemoteTracked {
                fn drop(&mut self) {
                    self.0.fetch_add(1, Ordering::SeqCst);
                }
            }
            let t = RemoteTracked(remote_drops.clone());
            lp.handle().call_soon_threadsafe(move |_| drop(t)).unwrap();
            assert_eq!(counter.dropped(), 0);
            if close_first {
                lp.close().unwrap();
            } else {
                drop(lp);
            }
            // Even while the user still holds the handles.
            assert_eq!(counter.dropped(), 4);
            assert_eq!(remote_drops.load(Ordering::SeqCst), 1);
            assert!(kept_handle.cancelled() && kept_timer.cancelled());
        }
    }

    fn a_reader_runs_while_its_pipe_is_readable_and_not_after_removal(backend: Backend) {
        let lp = EventLoop::with_backend(backend).unwrap();
        let (r, w) = fd::pipe().unwrap();
        let r = Rc::new(r);
        let reads = Rc::new(Cell::new(0));
        let (count, reader) = (reads.clone(), r.clone());
        lp.add_reader(r.as_raw_fd(), move |lp| {
            count.set(count.get() + 1);
            drain(&*reader);
            lp.stop();
        })
        .unwrap();
        lp.run_once(Some(Duration::ZERO)).unwrap();
        assert_eq!(reads.get(), 0, "an empty pipe is not readable");
        write_byte(&w);
        lp.run_forever().unwrap();
        assert_eq!(reads.get(), 1);
        write_byte(&w);
        assert!(lp.remove_reader(r.as_raw_fd()));
        assert!(!lp.remove_reader(r.as_raw_fd()));
        lp.run_once(Some(Duration::ZERO)).unwrap();
        assert_eq!(reads.get(), 1);
    }

    fn reader_and_writer_of_one_socket_share_a_registration_and_are_removed_separately(backend: Backend) {
        let lp = EventLoop::with_backend(backend).unwrap();
        let (a, b) = fd::socketpair().unwrap();
        let log = Log::default();
        let (rl, wl) = (log.clone(), log.clone());
        lp.add_writer(a.as_raw_fd(), move |_| wl.push("writable")).unwrap();
        lp.add_reader(a.as_raw_fd(), move |_| rl.push("readable")).unwrap();
        lp.run_once(Some(Duration::ZERO)).unwrap();
        assert_eq!(log.take(), ["writable"]);
        assert_eq!(fd::send(b.as_fd(), b"ping").unwrap(), 4);
        lp.run_once(Some(Duration::ZERO)).unwrap();
        let mut seen = log.take();
        seen.sort();
        assert_eq!(seen, ["readable", "writable"]);
        assert!(lp.remove_writer(a.as_raw_fd()));
        assert!(!lp.remove_writer(a.as_raw_fd()));
        lp.run_once(Some(Duration::ZERO)).unwrap();
        assert_eq!(log.take(), ["readable"]);
        assert!(lp.remove_reader(a.as_raw_fd()));
        lp.run_once(Some(Duration::ZERO)).unwrap();
        assert_eq!(log.take(), [] as [&str; 0]);
        // Both gone: the fd can be added again from scratch.
        lp.add_reader(a.as_raw_fd(), log.cb_mut("again")).unwrap();
        lp.run_once(Some(Duration::ZERO)).unwrap();
        assert_eq!(log.take(), ["again"]);
    }

    fn a_reader_sees_the_peer_hang_up(backend: Backend) {
        let lp = EventLoop::with_backend(backend).unwrap();
        let (a, b) = fd::socketpair().unwrap();
        let log = Log::default();
        lp.add_reader(a.as_raw_fd(), log.cb_mut("hang-up")).unwrap();
        lp.run_once(Some(Duration::ZERO)).unwrap();
        assert_eq!(log.take(), [] as [&str; 0]);
        drop(b);
        lp.run_once(None).unwrap();
        assert_eq!(log.take(), ["hang-up"]);
        let mut buf = [0u8; 4];
        assert_eq!(fd::read(a.as_fd(), &mut buf).unwrap(), 0);
    }

    fn adding_a_reader_for_a_bad_fd_fails_and_leaves_nothing_behind(backend: Backend) {
        let lp = EventLoop::with_backend(backend).unwrap();
        let err = lp.add_reader(-1, |_| {}).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
        assert!(!lp.remove_reader(-1));
        lp.run_once(Some(Duration::ZERO)).unwrap();
    }

    fn replacing_a_reader_replaces_its_callback(backend: Backend) {
        let lp = EventLoop::with_backend(backend).unwrap();
        let (r, w) = fd::pipe().unwrap();
        write_byte(&w);
        let log = Log::default();
        let counter = DropCounter::default();
        let (old, t) = (log.clone(), counter.track());
        lp.add_reader(r.as_raw_fd(), move |_| {
            let _ = &t;
            old.push("old");
        })
        .unwrap();
        lp.add_reader(r.as_raw_fd(), log.cb_mut("new")).unwrap();
        // asyncio cancels the replaced handle: the old callback is gone at once.
        assert_eq!(counter.dropped(), 1);
        lp.run_once(Some(Duration::ZERO)).unwrap();
        assert_eq!(log.take(), ["new"]);
        assert!(lp.remove_reader(r.as_raw_fd()));
    }

    fn an_event_collected_for_a_closed_and_reused_fd_runs_neither_callback(backend: Backend) {
        let lp = EventLoop::with_backend(backend).unwrap();
        let (old_r, old_w) = fd::pipe().unwrap();
        let (new_r, new_w) = fd::pipe().unwrap();
        write_byte(&old_w);
        write_byte(&new_w);
        let fd = old_r.as_raw_fd();
        let log = Log::default();
        lp.add_reader(fd, log.cb_mut("old reader")).unwrap();
        // Queued before the iteration's select, so it runs first in the batch, after the
        // old reader's event was collected.
        let swap_log = log.clone();
        lp.call_soon(move |lp| {
            swap_log.push("swap");
            assert!(lp.remove_reader(fd));
            // Close the old file and open the new one under the same number, atomically
            // (another test thread could otherwise take the number in between).
            // SAFETY: both fds are open; `old_r` owns `fd` and will close the new file.
            assert_eq!(unsafe { libc::dup2(new_r.as_raw_fd(), fd) }, fd);
            lp.add_reader(fd, swap_log.cb_mut("new reader")).unwrap();
        })
        .unwrap();
        lp.run_once(Some(Duration::ZERO)).unwrap();
        assert_eq!(log.take(), ["swap"]);
        lp.run_once(Some(Duration::ZERO)).unwrap();
        assert_eq!(log.take(), ["new reader"]);
        assert!(lp.remove_reader(fd));
        drop(old_r);
    }

    fn a_reader_may_remove_itself_and_a_later_event_of_the_batch_is_dropped(backend: Backend) {
        let lp = EventLoop::with_backend(backend).unwrap();
        let (a, b) = fd::socketpair().unwrap();
        assert_eq!(fd::send(b.as_fd(), b"x").unwrap(), 1);
        let fd = a.as_raw_fd();
        let log = Log::default();
        let (rl, wl) = (log.clone(), log.clone());
        // Whichever of the two runs first removes both: the other must not run.
        lp.add_reader(fd, move |lp| {
            rl.push("one");
            lp.remove_reader(fd);
            lp.remove_writer(fd);
        })
        .unwrap();
        lp.add_writer(fd, move |lp| {
            wl.push("one");
            lp.remove_reader(fd);
            lp.remove_writer(fd);
        })
        .unwrap();
        lp.run_once(Some(Duration::ZERO)).unwrap();
        lp.run_once(Some(Duration::ZERO)).unwrap();
        assert_eq!(log.take(), ["one"]);
    }

    fn call_soon_threadsafe_wakes_a_loop_blocked_in_select(backend: Backend) {
        let lp = EventLoop::with_backend(backend).unwrap();
        let handle = lp.handle();
        let ran_on = Arc::new(Mutex::new(None));
        let r = ran_on.clone();
        let thread = std::thread::spawn(move || {
            handle
                .call_soon_threadsafe(move |lp| {
                    *r.lock().unwrap() = Some(std::thread::current().id());
                    lp.stop();
                })
                .unwrap();
        });
        // Nothing else is scheduled: only the other thread's wake can end this.
        lp.run_forever().unwrap();
        thread.join().unwrap();
        assert_eq!(*ran_on.lock().unwrap(), Some(std::thread::current().id()));
    }

    fn many_threadsafe_callbacks_from_many_threads_all_run_in_per_thread_order(backend: Backend) {
        let lp = EventLoop::with_backend(backend).unwrap();
        let seen: Arc<Mutex<Vec<(usize, usize)>>> = Arc::default();
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let handle = lp.handle();
                let seen = seen.clone();
                std::thread::spawn(move || {
                    for i in 0..250 {
                        let seen = seen.clone();
                        handle
                            .call_soon_threadsafe(move |_| seen.lock().unwrap().push((t, i)))
                            .unwrap();
                    }
                })
            })
            .collect();
        let s = seen.clone();
        lp.run_until(move |_| s.lock().unwrap().len() == 1000).unwrap();
        for thread in threads {
            thread.join().unwrap();
        }
        let seen = seen.lock().unwrap();
        for t in 0..4 {
            let order: Vec<usize> = seen.iter().filter(|e| e.0 == t).map(|e| e.1).collect();
            assert_eq!(order, (0..250).collect::<Vec<_>>());
        }
    }

    fn threadsafe_and_plain_callbacks_on_the_loop_thread_run_in_one_fifo(backend: Backend) {
        let lp = EventLoop::with_backend(backend).unwrap();
        let seen: Arc<Mutex<Vec<&'static str>>> = Arc::default();
        let push = |entry: &'static str| {
            let seen = seen.clone();
            move |_: &EventLoop| seen.lock().unwrap().push(entry)
        };
        lp.call_soon_threadsafe(push("a")).unwrap();
        lp.call_soon(push("b")).unwrap();
        lp.handle().call_soon_threadsafe(push("c")).unwrap();
        lp.call_soon(push("d")).unwrap();
        let (e, f, g) = (push("e"), push("f"), push("g"));
        lp.call_soon(move |lp| {
            lp.handle().call_soon_threadsafe(e).unwrap();
            lp.call_soon(f).unwrap();
            lp.call_soon_threadsafe(g).unwrap();
        })
        .unwrap();
        lp.run_once(Some(Duration::ZERO)).unwrap();
        assert_eq!(*seen.lock().unwrap(), ["a", "b", "c", "d"]);
        lp.run_once(Some(Duration::ZERO)).unwrap();
        assert_eq!(*seen.lock().unwrap(), ["a", "b", "c", "d", "e", "f", "g"]);
    }

    fn a_signal_handler_runs_on_the_loop_thread_until_removed(backend: Backend) {
        let _serial = signal_lock();
        let lp = EventLoop::with_backend(backend).unwrap();
        let count = Rc::new(Cell::new(0));
        let c = count.clone();
        lp.add_signal_handler(libc::SIGUSR1, move |_| c.set(c.get() + 1)).unwrap();
        // SAFETY: raise takes no pointers; SIGUSR1 is handled.
        assert_eq!(unsafe { libc::raise(libc::SIGUSR1) }, 0);
        let c = count.clone();
        lp.run_until(move |_| c.get() == 1).unwrap();
        // Replacing the handler: the new one runs.
        let c = count.clone();
        lp.add_signal_handler(libc::SIGUSR1, move |_| c.set(c.get() + 10)).unwrap();
        // SAFETY: as above.
        assert_eq!(unsafe { libc::kill(libc::getpid(), libc::SIGUSR1) }, 0);
        let c = count.clone();
        lp.run_until(move |_| c.get() == 11).unwrap();
        assert!(lp.remove_signal_handler(libc::SIGUSR1));
        assert!(!lp.remove_signal_handler(libc::SIGUSR1));
    }

    fn a_storm_of_signals_runs_the_handler_once_per_signal_in_one_iteration(backend: Backend) {
        let _serial = signal_lock();
        let lp = EventLoop::with_backend(backend).unwrap();
        let count = Rc::new(Cell::new(0));
        let c = count.clone();
        lp.add_signal_handler(libc::SIGUSR1, move |_| c.set(c.get() + 1)).unwrap();
        // 10,000 signals before the loop looks: each raise is delivered (and counted) before
        // it returns, and none is dropped (asyncio's pipe holds a byte each, and drops them
        // once it is full).
        for _ in 0..10_000 {
            // SAFETY: raise takes no pointers; SIGUSR1 is handled.
            assert_eq!(unsafe { libc::raise(libc::SIGUSR1) }, 0);
        }
        let c = count.clone();
        lp.run_until(move |_| c.get() > 0).unwrap();
        assert_eq!(count.get(), 10_000, "all of them, in the iteration that saw them");
        for _ in 0..3 {
            lp.run_once(Some(Duration::ZERO)).unwrap();
        }
        assert_eq!(count.get(), 10_000, "and no more");
        // A signal after the loop took the count is news again.
        // SAFETY: as above.
        assert_eq!(unsafe { libc::raise(libc::SIGUSR1) }, 0);
        let c = count.clone();
        lp.run_until(move |_| c.get() > 10_000).unwrap();
        assert_eq!(count.get(), 10_001);
        // A handler that removes itself stops the runs still due to it.
        let c = count.clone();
        lp.add_signal_handler(libc::SIGUSR1, move |lp| {
            c.set(c.get() + 1);
            lp.remove_signal_handler(libc::SIGUSR1);
        })
        .unwrap();
        for _ in 0..5 {
            // SAFETY: as above.
            assert_eq!(unsafe { libc::raise(libc::SIGUSR1) }, 0);
        }
        let c = count.clone();
        lp.run_until(move |_| c.get() > 10_001).unwrap();
        for _ in 0..3 {
            lp.run_once(Some(Duration::ZERO)).unwrap();
        }
        assert_eq!(count.get(), 10_002);
        assert!(!lp.remove_signal_handler(libc::SIGUSR1));
    }

    fn removing_the_last_signal_handler_restores_the_previous_disposition(backend: Backend) {
        let _serial = signal_lock();
        // SAFETY: SIG_IGN is a valid disposition for SIGUSR2.
        let before = unsafe { libc::signal(libc::SIGUSR2, libc::SIG_IGN) };
        let first = EventLoop::with_backend(backend).unwrap();
        let second = EventLoop::with_backend(backend).unwrap();
        let hits = Rc::new(Cell::new(0));
        for lp in [&first, &second] {
            let h = hits.clone();
            lp.add_signal_handler(libc::SIGUSR2, move |_| h.set(h.get() + 1)).unwrap();
        }
        // SAFETY: raise takes no pointers; SIGUSR2 is handled.
        assert_eq!(unsafe { libc::raise(libc::SIGUSR2) }, 0);
        let h = hits.clone();
        first.run_until(move |_| h.get() == 1).unwrap();
        let h = hits.clone();
        second.run_until(move |_| h.get() == 2).unwrap();
        assert!(first.remove_signal_handler(libc::SIGUSR2));
        drop(second); // releases its subscription: the last one
        // SAFETY: SIG_IGN is valid; the call returns the disposition it replaces.
        let current = unsafe { libc::signal(libc::SIGUSR2, before) };
        assert_eq!(current, libc::SIG_IGN);
    }

    fn uncatchable_or_unknown_signals_are_invalid_input(backend: Backend) {
        let lp = EventLoop::with_backend(backend).unwrap();
        for signum in [libc::SIGKILL, libc::SIGSTOP, 0, 1000] {
            let err = lp.add_signal_handler(signum, |_| {}).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::InvalidInput, "signal {signum}");
        }
    }

    fn a_panicking_callback_goes_to_the_exception_handler_and_the_loop_keeps_running(backend: Backend) {
        let lp = EventLoop::with_backend(backend).unwrap();
        type Report = (String, Option<String>);
        let reports: Rc<RefCell<Vec<Report>>> = Rc::default();
        let r = reports.clone();
        lp.set_exception_handler(move |_, context| {
            r.borrow_mut()
                .push((context.callback().to_owned(), context.message().map(str::to_owned)));
        });
        let log = Log::default();
        lp.call_soon(|_| panic!("boom")).unwrap();
        lp.call_soon(log.cb("after the panic")).unwrap();
        let (r_fd, w) = fd::pipe().unwrap();
        write_byte(&w);
        let calls = Rc::new(Cell::new(0));
        let c = calls.clone();
        lp.add_reader(r_fd.as_raw_fd(), move |_| {
            c.set(c.get() + 1);
            panic!("reader {}", c.get());
        })
        .unwrap();
        lp.run_once(Some(Duration::ZERO)).unwrap();
        lp.run_once(Some(Duration::ZERO)).unwrap();
        assert_eq!(log.take(), ["after the panic"]);
        assert_eq!(calls.get(), 2, "the panicking reader stays registered");
        let reports = reports.borrow();
        assert_eq!(reports.len(), 3);
        assert!(reports[0].0.contains("a_panicking_callback"), "{}", reports[0].0);
        assert_eq!(reports[0].1.as_deref(), Some("boom"));
        assert_eq!(reports[1].0, format!("reader of fd {}", r_fd.as_raw_fd()));
        assert_eq!(reports[2].1.as_deref(), Some("reader 2"));
        assert_eq!(lp.stats().callbacks_panicked, 3);
        assert!(lp.remove_reader(r_fd.as_raw_fd()));
    }

    fn debug_mode_counts_callbacks_slower_than_the_threshold(backend: Backend) {
        let lp = EventLoop::with_backend(backend).unwrap();
        lp.set_debug(false);
        lp.set_slow_callback_duration(Duration::ZERO);
        lp.call_soon(|_| {}).unwrap();
        lp.run_once(Some(Duration::ZERO)).unwrap();
        assert_eq!(lp.stats().slow_callbacks, 0, "not in debug mode");
        lp.set_debug(true);
        assert!(lp.debug());
        lp.call_soon(|_| {}).unwrap();
        lp.run_once(Some(Duration::ZERO)).unwrap();
        assert_eq!(lp.stats().slow_callbacks, 1, "every callback takes at least zero");
        lp.set_slow_callback_duration(Duration::from_secs(3600));
        lp.call_soon(|_| {}).unwrap();
        lp.run_once(Some(Duration::ZERO)).unwrap();
        assert_eq!(lp.stats().slow_callbacks, 1);
    }

    fn the_virtual_clock_jumps_to_the_next_timer_instead_of_sleeping(backend: Backend) {
        let (lp, clock) = virtual_loop(backend);
        let day = Duration::from_secs(86_400);
        let at = Rc::new(Cell::new(None));
        let a = at.clone();
        lp.call_later(day, move |lp| {
            a.set(Some(lp.time()));
            lp.stop();
        })
        .unwrap();
        lp.run_forever().unwrap();
        assert_eq!(at.get(), Some(day));
        // The test may move it too; timers then due fire at the next iteration.
        let log = Log::default();
        lp.call_later(ms(5), log.cb("after advance")).unwrap();
        clock.advance(ms(5));
        lp.run_once(Some(Duration::ZERO)).unwrap();
        assert_eq!(log.take(), ["after advance"]);
        assert_eq!(lp.time(), day + ms(5));
    }

    fn run_until_returns_when_the_condition_holds_or_errs_when_stopped_first(backend: Backend) {
        let (lp, _clock) = virtual_loop(backend);
        let done = Rc::new(Cell::new(false));
        let d = done.clone();
        lp.call_later(ms(10), move |_| d.set(true)).unwrap();
        let d = done.clone();
        lp.run_until(move |_| d.get()).unwrap();
        assert_eq!(lp.time(), ms(10));
        lp.call_soon(|lp| lp.stop()).unwrap();
        let err = lp.run_until(|_| false).unwrap_err();
        assert_eq!(LoopError::of(&err), Some(LoopError::Stopped));
    }

    fn stats_count_iterations_selects_callbacks_and_timers(backend: Backend) {
        let (lp, _clock) = virtual_loop(backend);
        lp.call_soon(|_| {}).unwrap();
        lp.call_later(ms(1), |_| {}).unwrap();
        lp.call_later(ms(2), |_| {}).unwrap().cancel();
        lp.call_later(ms(3), |lp| lp.stop()).unwrap();
        lp.run_forever().unwrap();
        let stats = lp.stats();
        assert_eq!(stats.iterations, 3, "{stats:?}");
        assert_eq!(stats.selects, 3);
        assert_eq!(stats.callbacks_run, 3);
        assert_eq!(stats.timers_fired, 2);
        assert_eq!(stats.timers_cancelled, 1);
        assert_eq!(stats.timer_heap_len, 0);
    }

    fn select_time_is_measured_in_debug_mode_only(backend: Backend) {
        // The real clock: the selects below wait for a timer, about 2 ms each.
        let lp = EventLoop::with_backend(backend).unwrap();
        lp.set_debug(false);
        lp.call_later(ms(2), |lp| lp.stop()).unwrap();
        lp.run_forever().unwrap();
        let stats = lp.stats();
        assert!(stats.selects >= 1, "{stats:?}");
        assert_eq!(stats.select_time, Duration::ZERO, "no clock read per select");

        lp.set_debug(true);
        lp.call_later(ms(2), |lp| lp.stop()).unwrap();
        lp.run_forever().unwrap();
        let stats = lp.stats();
        assert!(stats.select_time > Duration::ZERO, "{stats:?}");
    }
}

per_backend! {
    fn cancelling_after_the_callback_ran_still_marks_the_handle_cancelled(backend: Backend) {
        let (lp, _clock) = virtual_loop(backend);
        let log = Log::default();
        let soon = lp.call_soon(log.cb("soon")).unwrap();
        let timer = lp.call_later(ms(1), log.cb("timer")).unwrap();
        // A callback that cancels its own handle while it runs.
        let own: Rc<RefCell<Option<tulip::Handle>>> = Rc::default();
        let o = own.clone();
        let inner = log.clone();
        *own.borrow_mut() = Some(
            lp.call_soon(move |_| {
                inner.push("self");
                o.borrow().as_ref().unwrap().cancel();
            })
            .unwrap(),
        );
        lp.call_later(ms(2), |lp| lp.stop()).unwrap();
        lp.run_forever().unwrap();
        assert_eq!(log.take(), ["soon", "self", "timer"]);
        assert!(!soon.cancelled() && !timer.cancelled(), "they ran: not cancelled");
        assert!(own.borrow().as_ref().unwrap().cancelled());
        // As asyncio's Handle.cancel: the flag says cancel() was called, even after the run.
        soon.cancel();
        timer.cancel();
        assert!(soon.cancelled() && timer.cancelled());
        assert_eq!(lp.stats().timers_cancelled, 0, "a timer that fired is not counted");
        assert_eq!(lp.stats().timer_heap_len, 0);
    }

    fn zero_and_past_deadlines_run_in_the_next_iteration_in_deadline_order(backend: Backend) {
        let (lp, clock) = virtual_loop(backend);
        clock.advance(Duration::from_secs(10));
        let log = Log::default();
        // As asyncio's call_later with negative delays: the earlier deadline runs first, and
        // due timers join the queue after what call_soon scheduled.
        let zero = lp.call_later(Duration::ZERO, log.cb("zero delay")).unwrap();
        lp.call_at(Duration::from_secs(9), log.cb("9 s")).unwrap();
        lp.call_at(Duration::from_secs(8), log.cb("8 s")).unwrap();
        lp.call_soon(log.cb("soon")).unwrap();
        let later = lp.call_later(ms(5), log.cb("in 5 ms")).unwrap();
        assert_eq!(zero.when(), Duration::from_secs(10));
        assert_eq!(later.when(), Duration::from_secs(10) + ms(5), "when() is absolute");
        lp.run_once(Some(Duration::ZERO)).unwrap();
        assert_eq!(log.take(), ["soon", "8 s", "9 s", "zero delay"]);
        assert_eq!(lp.time(), Duration::from_secs(10));
        lp.run_once(None).unwrap();
        assert_eq!(log.take(), ["in 5 ms"]);
        assert_eq!(lp.time(), later.when());
    }

    fn a_timer_with_a_huge_delay_saturates_and_the_loop_still_waits_for_wakes(backend: Backend) {
        let lp = EventLoop::with_backend(backend).unwrap();
        let log = Log::default();
        let forever = lp.call_later(Duration::MAX, log.cb("never")).unwrap();
        assert_eq!(forever.when(), Duration::MAX);
        lp.call_at(Duration::MAX, log.cb("never either")).unwrap();
        lp.run_once(Some(Duration::ZERO)).unwrap();
        // The loop then blocks with the longest timeout each backend takes (no EINVAL), until
        // another thread wakes it.
        let handle = lp.handle();
        let waker = std::thread::spawn(move || {
            std::thread::sleep(ms(20)); // a head start to block, not synchronization
            handle.call_soon_threadsafe(|lp| lp.stop()).unwrap();
        });
        lp.run_forever().unwrap();
        waker.join().unwrap();
        assert_eq!(log.take(), [] as [&str; 0]);
        assert_eq!(lp.stats().timer_heap_len, 2);
        forever.cancel();
        assert!(forever.cancelled());
    }

    fn a_panicking_exception_handler_is_reported_and_the_loop_keeps_running(backend: Backend) {
        let lp = EventLoop::with_backend(backend).unwrap();
        let calls = Rc::new(Cell::new(0));
        let c = calls.clone();
        lp.set_exception_handler(move |_, context| {
            c.set(c.get() + 1);
            panic!("the handler fails too, handling: {context}");
        });
        let log = Log::default();
        lp.call_soon(|_| panic!("boom")).unwrap();
        lp.call_soon(log.cb("after")).unwrap();
        lp.run_once(Some(Duration::ZERO)).unwrap();
        assert_eq!(log.take(), ["after"]);
        assert_eq!(calls.get(), 1);
        // call_exception_handler reaches the handler set, and the default once it is cleared.
        let context = tulip::ExceptionContext::new("a test", Box::new("by hand"));
        lp.call_exception_handler(&context);
        assert_eq!(calls.get(), 2);
        // asyncio's get_exception_handler: the one set, to call or wrap, or None by default.
        let saved = lp.exception_handler().expect("a handler is set");
        let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| saved(&lp, &context)));
        assert!(caught.is_err() && calls.get() == 3);
        lp.clear_exception_handler();
        assert!(lp.exception_handler().is_none());
        lp.call_exception_handler(&context);
        assert_eq!(calls.get(), 3);
        lp.set_exception_handler(move |lp, context| {
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| saved(lp, context)));
        });
        lp.call_exception_handler(&context);
        assert_eq!(calls.get(), 4, "the wrapped handler");
    }

    fn a_loop_may_run_inside_a_callback_of_another_and_the_running_loop_comes_back(backend: Backend) {
        let outer = EventLoop::with_backend(backend).unwrap();
        let inner = Rc::new(EventLoop::with_backend(backend).unwrap());
        let log = Log::default();
        let l = log.clone();
        inner
            .call_soon(move |lp| {
                l.push("inner callback");
                assert!(lp.is_running());
                assert!(tulip::get_running_loop().unwrap().is_running());
            })
            .unwrap();
        let (i, l) = (inner.clone(), log.clone());
        outer
            .call_soon(move |outer| {
                i.run_once(Some(Duration::ZERO)).unwrap();
                assert!(!i.is_running() && outer.is_running());
                // The outer loop is this thread's running loop again.
                let (l2, running) = (l.clone(), tulip::get_running_loop().unwrap());
                running.call_soon(move |_| l2.push("outer again")).unwrap();
                outer.stop();
            })
            .unwrap();
        outer.run_forever().unwrap();
        outer.run_once(Some(Duration::ZERO)).unwrap();
        assert_eq!(log.take(), ["inner callback", "outer again"]);
    }

    fn a_reader_or_writer_for_an_fd_a_tulip_pipe_awaits_is_already_exists(backend: Backend) {
        // asyncio's add_reader raises RuntimeError for an fd a transport uses.
        let lp = EventLoop::with_backend(backend).unwrap();
        let (reader, writer) = tulip::net::pipe().unwrap();
        let fd = reader.as_raw_fd();
        let task = lp.create_task(async move {
            let mut buf = [0u8; 8];
            reader.read(&mut buf).await
        });
        lp.run_once(Some(Duration::ZERO)).unwrap();
        assert!(!task.done(), "the read waits, its fd watched by the loop");
        let err = lp.add_reader(fd, |_| {}).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::AlreadyExists, "{err}");
        assert!(err.to_string().contains(&fd.to_string()), "{err}");
        let err = lp.add_writer(fd, |_| {}).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::AlreadyExists, "{err}");
        assert!(!lp.remove_reader(fd), "the pipe's registration is not a reader's");
        assert!(!lp.remove_writer(fd));
        // The refused calls left the pipe's registration alone.
        assert_eq!(writer.try_write(b"x").unwrap(), 1);
        lp.run_until(|_| task.done()).unwrap();
        assert_eq!(task.take_result().unwrap().unwrap(), 1);
    }

    fn a_timer_on_the_real_clock_never_fires_early(backend: Backend) {
        let lp = EventLoop::with_backend(backend).unwrap();
        let fired: Rc<RefCell<Vec<(Duration, Duration)>>> = Rc::default();
        let start = lp.time();
        for delay in [Duration::from_micros(1500), Duration::from_nanos(1), ms(20)] {
            let f = fired.clone();
            lp.call_later(delay, move |lp| f.borrow_mut().push((delay, lp.time() - start)))
                .unwrap();
        }
        lp.call_later(ms(21), |lp| lp.stop()).unwrap();
        lp.run_forever().unwrap();
        let fired = fired.borrow();
        assert_eq!(fired.len(), 3, "{fired:?}");
        for &(delay, at) in fired.iter() {
            assert!(at >= delay, "a timer due in {delay:?} fired after {at:?}");
        }
    }

    fn tiny_delays_do_not_make_the_loop_spin(backend: Backend) {
        // asyncio's test_timeout_rounding: sleeps of 10 ms down to 0.1 ns, one after the other,
        // take a handful of iterations each, not a busy loop until the deadline.
        let lp = EventLoop::with_backend(backend).unwrap();
        fn next(lp: &EventLoop, mut delays: Vec<Duration>) {
            match delays.pop() {
                Some(delay) => {
                    lp.call_later(delay, move |lp| next(lp, delays)).unwrap();
                }
                None => lp.stop(),
            }
        }
        let delays: Vec<Duration> = [1e-10, 1e-8, 1e-6, 1e-4, 1e-2]
            .into_iter()
            .map(Duration::from_secs_f64)
            .collect();
        lp.call_soon(move |lp| next(lp, delays)).unwrap();
        lp.run_forever().unwrap();
        let iterations = lp.stats().iterations;
        assert!(iterations <= 20, "{iterations} iterations for 5 timers");
    }

    exclusive fn a_reader_or_writer_for_a_closed_fd_is_ebadf_and_leaves_nothing_behind(backend: Backend) {
        let lp = EventLoop::with_backend(backend).unwrap();
        let closed = {
            let (r, _w) = fd::pipe().unwrap();
            r.as_raw_fd()
        };
        let err = lp.add_reader(closed, |_| {}).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EBADF), "{err}");
        let err = lp.add_writer(closed, |_| {}).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EBADF), "{err}");
        assert!(!lp.remove_reader(closed));
        assert!(!lp.remove_writer(closed));
        lp.run_once(Some(Duration::ZERO)).unwrap();
        // A reader, then its fd closed behind the loop's back: adding a writer is EBADF and
        // the reader stays; removing it then succeeds.
        let (r, _w) = fd::pipe().unwrap();
        let raw = r.as_raw_fd();
        lp.add_reader(raw, |_| {}).unwrap();
        drop(r);
        lp.run_once(Some(Duration::ZERO)).unwrap();
        assert!(lp.add_writer(raw, |_| {}).is_err());
        assert!(!lp.remove_writer(raw));
        assert!(lp.remove_reader(raw));
    }
}

impl Log {
    /// A reader/writer callback that logs `entry` each time.
    fn cb_mut(&self, entry: &'static str) -> impl FnMut(&EventLoop) + 'static {
        let log = self.clone();
        move |_| log.push(entry)
    }
}

#[test]
fn a_million_cancelled_timers_leave_the_heap_small_again() {
    let lp = EventLoop::with_clock(Backend::best(), ManualClock::new()).unwrap();
    let handles: Vec<_> = (0..1_000_000u64)
        .map(|i| {
            lp.call_later(Duration::from_nanos(i % 977), |_| {})
                .unwrap()
        })
        .collect();
    assert_eq!(lp.stats().timer_heap_len, 1_000_000);
    for handle in &handles {
        handle.cancel();
    }
    drop(handles);
    lp.run_once(Some(Duration::ZERO)).unwrap();
    let stats = lp.stats();
    assert_eq!(stats.timer_heap_len, 0);
    assert!(stats.timer_heap_capacity <= 64, "{stats:?}");
    assert_eq!(stats.timers_cancelled, 1_000_000);
}

#[test]
fn event_loop_new_honours_tulip_backend_and_tulip_debug() {
    // The variable is read when the loop is made; set here, in a child process, it cannot
    // race with other tests.
    if std::env::var_os("TULIP_LOOP_BACKEND_CHILD").is_some() {
        let lp = EventLoop::new().unwrap();
        assert_eq!(lp.backend(), Backend::Poll);
        assert!(lp.debug(), "TULIP_DEBUG=1 turns debug mode on");
        return;
    }
    let status = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "event_loop_new_honours_tulip_backend_and_tulip_debug",
            "--test-threads=1",
        ])
        .env("TULIP_LOOP_BACKEND_CHILD", "1")
        .env("TULIP_BACKEND", "poll")
        .env("TULIP_DEBUG", "1")
        .status()
        .unwrap();
    assert!(status.success());
}

#[test]
fn loop_handles_are_send_and_sync() {
    fn send_and_sync<T: Send + Sync>() {}
    send_and_sync::<tulip::LoopHandle>();
}
