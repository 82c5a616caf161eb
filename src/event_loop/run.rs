//! Running the loop: `run_forever`, `run_until`, `run_once`, `stop`, and the iteration they
//! are made of (CPython's `BaseEventLoop._run_once`).

use std::any::Any;
use std::borrow::Cow;
use std::cell::RefCell;
use std::io;
use std::panic::{self, AssertUnwindSafe};
use std::time::{Duration, Instant};

use tulip_sys::clock::monotonic_nanos;

use super::fd_table::Watcher;
use super::handle::State;
use super::ready_queue::{Direction, ReadyItem};
use super::running::RunningGuard;
use super::slot::Slot;
use super::task_table::TaskId;
use super::{RunState, NOTIFIER_TOKEN, SIGNAL_TOKEN};
use crate::{EventLoop, ExceptionContext, LoopError};

/// The loop's "running" state for the duration of a `run_*` call: sets it, makes the loop this
/// thread's running loop, and undoes both when dropped (also on an error or a panic).
struct Running<'a> {
    lp: &'a EventLoop,
    _context: RunningGuard,
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.lp.inner.state.set(RunState::Idle);
    }
}

impl EventLoop {
    fn start_running(&self) -> io::Result<Running<'_>> {
        match self.inner.state.get() {
            RunState::Closed => Err(LoopError::Closed.into()),
            RunState::Running => Err(LoopError::Running.into()),
            RunState::Idle if self.is_forked() => Err(LoopError::Forked.into()),
            RunState::Idle => {
                self.inner.state.set(RunState::Running);
                Ok(Running {
                    lp: self,
                    _context: RunningGuard::enter(self),
                })
            }
        }
    }

    /// Run iterations until [`stop`](Self::stop) is called. `stop` lets the current batch
    /// finish; calling `run_forever` again continues with what is still scheduled. If `stop`
    /// was called before, this runs one iteration that polls I/O without blocking.
    ///
    /// # Errors
    /// [`LoopError::Running`] from one of the loop's own callbacks, [`LoopError::Closed`] after
    /// `close`, and the selector's error if `select` fails (the loop can be run again).
    pub fn run_forever(&self) -> io::Result<()> {
        let _running = self.start_running()?;
        loop {
            self.iteration_or_unstop()?;
            if self.inner.stopping.replace(false) {
                return Ok(());
            }
        }
    }

    /// An iteration of `run_forever` or `run_until`. If it fails, a `stop` still pending is
    /// dropped with the run it was meant for (asyncio clears `_stopping` however
    /// `run_forever` ends), so the next run is not cut short by it.
    fn iteration_or_unstop(&self) -> io::Result<()> {
        let result = self.run_iteration(None);
        if result.is_err() {
            self.inner.stopping.set(false);
        }
        result
    }

    /// Run iterations until `done` returns true; it is asked before the first iteration and
    /// after each one. The closure form of [`run_until_complete`](Self::run_until_complete),
    /// for a condition that is not a future. A condition true from the start runs no
    /// iteration, so a [`stop`](Self::stop) made before stays pending for the next run.
    ///
    /// ```
    /// use std::cell::Cell;
    /// use std::rc::Rc;
    /// use std::time::Duration;
    ///
    /// let lp = tulip::EventLoop::new()?;
    /// let done = Rc::new(Cell::new(false));
    /// let flag = done.clone();
    /// lp.call_later(Duration::from_millis(1), move |_| flag.set(true))?;
    /// lp.run_until(|_| done.get())?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    ///
    /// # Errors
    /// [`LoopError::Stopped`] if [`stop`](Self::stop) ended the run before `done` held; and
    /// as [`run_forever`](Self::run_forever).
    pub fn run_until(&self, mut done: impl FnMut(&EventLoop) -> bool) -> io::Result<()> {
        let _running = self.start_running()?;
        loop {
            if done(self) {
                return Ok(());
            }
            self.iteration_or_unstop()?;
            if self.inner.stopping.replace(false) {
                return if done(self) {
                    Ok(())
                } else {
                    Err(LoopError::Stopped.into())
                };
            }
        }
    }

    /// Run one iteration, for a host program that drives the loop itself: wait for I/O at most
    /// `timeout` (`None`: as long as nothing is ready and no timer is due, possibly forever;
    /// `Some(Duration::ZERO)`: poll), then run the callbacks that became ready.
    ///
    /// # Errors
    /// As [`run_forever`](Self::run_forever).
    pub fn run_once(&self, timeout: Option<Duration>) -> io::Result<()> {
        let _running = self.start_running()?;
        self.run_iteration(timeout)
    }

    /// Make `run_forever` (or `run_until`) return once the current batch of callbacks is done.
    /// Before the loop runs, it makes the next `run_forever` run a single, non-blocking
    /// iteration.
    pub fn stop(&self) {
        self.inner.stopping.set(true);
    }

    /// One iteration: the four steps of DESIGN.md, "One loop iteration".
    fn run_iteration(&self, max_wait: Option<Duration>) -> io::Result<()> {
        // A fork from one of the loop's callbacks: the child must not select on the parent's
        // selector (nor reap its io_uring ring).
        if self.is_forked() {
            return Err(LoopError::Forked.into());
        }
        #[cfg(test)]
        if tests::FAIL_ITERATION.with(|fail| fail.replace(false)) {
            return Err(io::Error::from_raw_os_error(5)); // EIO
        }
        self.inner.counters.iterations.add(1);
        // Cancelled timers may be most of the heap: drop them before asking for a deadline.
        self.inner.timers.borrow_mut().compact();
        // What the previous iteration asked of io_uring goes to the kernel in one call, and
        // what is already complete readies its futures before the timeout is chosen.
        self.flush_aio()?;

        // 1. Block only if nothing is ready and no stop is pending, and not past the earliest
        //    live timer.
        let timeout = self.select_timeout(max_wait);

        // 2. Collect I/O readiness (and cross-thread wakes, and signals) as ready entries.
        let mut events = self.inner.events.take();
        let collected = self.select(&mut events, timeout).and_then(|returned| {
            self.dispatch(&events)?;
            Ok(returned)
        });
        events.clear();
        *self.inner.events.borrow_mut() = events;
        let returned = collected?;

        // 3. Timers whose deadline has passed join the queue in (deadline, scheduling) order.
        if let Some(returned) = returned {
            let now = self.inner.clock.at(returned);
            let mut fired = 0;
            {
                let mut timers = self.inner.timers.borrow_mut();
                let mut ready = self.inner.ready.borrow_mut();
                while let Some(callback) = timers.pop_due(now) {
                    ready.push(ReadyItem::Callback(callback));
                    fired += 1;
                }
            }
            self.inner.counters.timers_fired.add(fired);
        }

        // 4. Run exactly what is ready now. Callbacks scheduled meanwhile wait for the next
        //    iteration, so a callback that re-schedules itself cannot starve I/O or timers.
        let batch = self.inner.ready.borrow().len();
        for _ in 0..batch {
            let item = self.inner.ready.borrow_mut().pop();
            match item {
                Some(item) => self.run_item(item),
                None => break,
            }
        }
        Ok(())
    }

    fn select_timeout(&self, max_wait: Option<Duration>) -> Option<Duration> {
        let timeout = if !self.inner.ready.borrow().is_empty() || self.inner.stopping.get() {
            Some(Duration::ZERO)
        } else {
            let deadline = self.inner.timers.borrow_mut().next_deadline();
            deadline.map(|when| self.timer_wait(when.saturating_sub(self.time())))
        };
        match (timeout, max_wait) {
            (Some(t), Some(max)) => Some(t.min(max)),
            (t, None) => t,
            (None, max) => max,
        }
    }

    /// How long to wait for a timer due in `until`: on the real clock, rounded up to a whole
    /// millisecond. That is the resolution CPython's selectors give epoll and poll, and it lets
    /// timers due close together fire in one wake-up instead of one each (a timer is then at
    /// most 1 ms late, never early). The virtual clock jumps to the deadline exactly.
    fn timer_wait(&self, until: Duration) -> Duration {
        if self.inner.clock.as_manual().is_some() || until.is_zero() {
            return until;
        }
        let ms = until.as_nanos().div_ceil(1_000_000);
        Duration::from_millis(u64::try_from(ms).unwrap_or(u64::MAX))
    }

    /// `select` for at most `timeout`; returns when it returned (a monotonic clock reading,
    /// `tulip_sys::clock`), if timers are pending (else `None`: no timer can be due). On a
    /// virtual clock the loop does not sleep for a timer: with nothing external registered it
    /// only polls, and when nothing arrived it jumps the clock by the time it would have
    /// slept.
    ///
    /// The clock is read only when needed: after the select if timers are pending, and before
    /// it too in debug mode (for `Stats::select_time`). A clock read costs about as much user
    /// CPU as the user-side part of a system call here (a virtual machine's `rdtsc`), so two
    /// per iteration were a tenth of the loop's user CPU per pipe round trip (issue #16).
    fn select(
        &self,
        events: &mut Vec<tulip_sys::Event>,
        timeout: Option<Duration>,
    ) -> io::Result<Option<u64>> {
        let manual = self.inner.clock.as_manual();
        let nothing_external =
            self.inner.fds.borrow().is_empty() && self.inner.signals.borrow().is_empty();
        let wait = match (manual, timeout) {
            (Some(_), Some(_)) if nothing_external => Some(Duration::ZERO),
            _ => timeout,
        };
        let started = self.inner.debug.get().then(monotonic_nanos);
        let timers_pending = self.inner.timers.borrow().len() > 0;
        let count = self.with_selector(|selector| selector.select(events, wait))?;
        let returned = (timers_pending || started.is_some()).then(monotonic_nanos);
        self.inner.counters.selects.add(1);
        if let (Some(started), Some(returned)) = (started, returned) {
            let time = &self.inner.counters.select_time;
            time.set(time.get() + Duration::from_nanos(returned.saturating_sub(started)));
        }
        if let (Some(clock), Some(slept), 0) = (manual, timeout, count) {
            clock.advance(slept);
        }
        Ok(returned.filter(|_| timers_pending))
    }

    /// Turn events into ready entries. An fd's entry names its reader's or writer's current
    /// generation, so that a callback earlier in the batch that removes, replaces, or closes
    /// and reuses that fd keeps the stale event from running anything.
    ///
    /// Every event is dispatched even if one fails (draining the notifier, reading the signal
    /// pipe): an edge-triggered source whose event were skipped would never hear of its
    /// readiness again. The first error is returned once all are done.
    fn dispatch(&self, events: &[tulip_sys::Event]) -> io::Result<()> {
        // What other threads queued while the loop waited goes first, as in asyncio, where it
        // was already on the ready queue.
        {
            let mut ready = self.inner.ready.borrow_mut();
            self.inner.remote.absorb(|queued| ready.push(queued));
        }
        let mut first_error = None;
        for event in events {
            if let Err(e) = self.dispatch_one(event) {
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    fn dispatch_one(&self, event: &tulip_sys::Event) -> io::Result<()> {
        match event.token() {
            NOTIFIER_TOKEN => {
                let mut ready = self.inner.ready.borrow_mut();
                self.inner.remote.receive(|item| ready.push(item))
            }
            SIGNAL_TOKEN => self.receive_signals(),
            token => {
                let fd = token.0 as i32;
                let watcher = self.inner.fds.borrow().watcher(fd);
                match watcher {
                    Watcher::Callbacks(reader, writer) => {
                        self.queue_callbacks(fd, event, reader, writer);
                    }
                    // Woken straight from here, with no callback in between.
                    Watcher::Source(source) => source.on_event(self, event),
                }
                Ok(())
            }
        }
    }

    fn queue_callbacks(
        &self,
        fd: i32,
        event: &tulip_sys::Event,
        reader: Option<u64>,
        writer: Option<u64>,
    ) {
        let mut ready = self.inner.ready.borrow_mut();
        if let (true, Some(generation)) = (event.is_readable(), reader) {
            let direction = Direction::Read;
            ready.push(ReadyItem::Io {
                fd,
                direction,
                generation,
            });
        }
        if let (true, Some(generation)) = (event.is_writable(), writer) {
            let direction = Direction::Write;
            ready.push(ReadyItem::Io {
                fd,
                direction,
                generation,
            });
        }
    }

    fn receive_signals(&self) -> io::Result<()> {
        #[cfg(test)]
        if tests::FAIL_SIGNAL_READ.with(|fail| fail.replace(false)) {
            return Err(io::Error::from_raw_os_error(5)); // EIO
        }
        // One read of the pipe per iteration, so a storm of signals cannot hold the loop here
        // (it held it for seconds when the pipe had a byte per signal and was read until
        // empty): the handler counts signals and writes a byte per signal number and batch.
        let mut ready = self.inner.ready.borrow_mut();
        self.inner
            .signals
            .borrow()
            .receive(|signum, generation, count| {
                ready.push(ReadyItem::Signal {
                    signum,
                    generation,
                    count,
                });
            })
    }

    /// Run one ready entry, without any borrow of the loop held while user code runs.
    fn run_item(&self, item: ReadyItem) {
        match item {
            ReadyItem::Callback(callback) => {
                // A cancelled callback keeps its place in the queue but does nothing.
                if callback.state() == State::Ready {
                    self.invoke(|| callback.name().into(), || callback.run(self));
                }
            }
            ReadyItem::Remote(callback) => {
                self.invoke(
                    || "a call_soon_threadsafe callback".into(),
                    || callback(self),
                );
            }
            ReadyItem::Io {
                fd,
                direction,
                generation,
            } => {
                let describe = || match direction {
                    Direction::Read => format!("reader of fd {fd}").into(),
                    Direction::Write => format!("writer of fd {fd}").into(),
                };
                self.run_slot(
                    &self.inner.fds,
                    |fds| fds.slot(fd, direction),
                    generation,
                    describe,
                );
            }
            ReadyItem::Signal {
                signum,
                generation,
                count,
            } => {
                // Once per signal that arrived, as asyncio runs its handle once per byte of
                // its wake-up fd (a handler that removes itself stops the rest).
                for _ in 0..count {
                    let describe = || format!("handler of signal {signum}").into();
                    self.run_slot(
                        &self.inner.signals,
                        |t| t.slot(signum),
                        generation,
                        describe,
                    );
                }
            }
            ReadyItem::Task(id) => self.run_task(id),
        }
    }

    /// One step of task `id`, unless it finished (or was cancelled and dropped) since it was
    /// queued.
    fn run_task(&self, id: TaskId) {
        let Some(task) = self.inner.tasks.borrow().get(id) else {
            return;
        };
        if task.step(self) {
            let finished = self.inner.tasks.borrow_mut().remove(id);
            // The coroutine is already gone; dropped outside the borrow all the same.
            drop(finished);
        }
    }

    /// Run the persistent callback `find` locates in `table`, if it is still registration
    /// `generation`. It is taken out of its slot while it runs, so it may remove or replace
    /// itself; it goes back only if its registration is still there.
    fn run_slot<T>(
        &self,
        table: &RefCell<T>,
        find: impl Fn(&mut T) -> Option<&mut Slot>,
        generation: u64,
        describe: impl Fn() -> Cow<'static, str>,
    ) {
        let taken = find(&mut table.borrow_mut()).and_then(|slot| slot.take(generation));
        let Some(mut callback) = taken else {
            return;
        };
        self.invoke(describe, || callback(self));
        let leftover = match find(&mut table.borrow_mut()) {
            Some(slot) => slot.restore(generation, callback),
            None => Some(callback),
        };
        // Dropped outside the borrow: a closure's captures may run code in their `Drop`.
        drop(leftover);
    }

    /// Call `f`, catching a panic for the exception handler and, in debug mode, timing it.
    /// Returns false if `f` panicked.
    #[inline]
    pub(crate) fn invoke(
        &self,
        describe: impl Fn() -> Cow<'static, str>,
        f: impl FnOnce(),
    ) -> bool {
        if self.inner.debug.get() {
            return self.invoke_timed(describe, f);
        }
        let result = panic::catch_unwind(AssertUnwindSafe(f));
        self.invoked(result, describe)
    }

    /// [`invoke`](Self::invoke) in debug mode: a callback that took longer than the slow
    /// callback duration is reported (kept out of line: the common path is every step's).
    #[cold]
    #[inline(never)]
    fn invoke_timed(&self, describe: impl Fn() -> Cow<'static, str>, f: impl FnOnce()) -> bool {
        let started = Instant::now();
        let result = panic::catch_unwind(AssertUnwindSafe(f));
        let took = started.elapsed();
        if took >= self.inner.slow_callback_duration.get() {
            self.inner.counters.slow_callbacks.add(1);
            eprintln!(
                "tulip: executing {} took {:.3} seconds",
                describe(),
                took.as_secs_f64()
            );
        }
        self.invoked(result, describe)
    }

    /// Count a callback run, and report it if it panicked; false if it did.
    #[inline]
    fn invoked(
        &self,
        result: std::thread::Result<()>,
        describe: impl Fn() -> Cow<'static, str>,
    ) -> bool {
        self.inner.counters.callbacks_run.add(1);
        match result {
            Ok(()) => true,
            Err(payload) => self.report_panic(describe(), payload),
        }
    }

    /// A callback panicked: count it and hand the panic to the exception handler; false.
    #[cold]
    #[inline(never)]
    fn report_panic(&self, what: Cow<'static, str>, payload: Box<dyn Any + Send>) -> bool {
        self.inner.counters.callbacks_panicked.add(1);
        self.call_exception_handler(&ExceptionContext::new(what, payload));
        false
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;
    use std::rc::Rc;

    use tulip_sys::{Backend, Event, Ready};

    use super::*;

    thread_local! {
        /// Makes the next read of the signal pipe fail, as a kernel error would.
        pub(super) static FAIL_SIGNAL_READ: Cell<bool> = const { Cell::new(false) };
        /// Makes the next iteration fail before it does anything, as a failing `select` would.
        pub(super) static FAIL_ITERATION: Cell<bool> = const { Cell::new(false) };
    }

    #[cfg_attr(miri, ignore = "no selector opens under Miri")]
    #[test]
    fn a_stop_pending_when_a_run_fails_does_not_cut_the_next_run_short() {
        let lp = EventLoop::new().unwrap();
        lp.stop();
        FAIL_ITERATION.with(|fail| fail.set(true));
        assert_eq!(lp.run_forever().unwrap_err().raw_os_error(), Some(5));
        // A stale stop would end this run after one iteration, before the timer is due.
        let fired = Rc::new(Cell::new(false));
        let flag = fired.clone();
        lp.call_later(Duration::from_millis(5), move |lp| {
            flag.set(true);
            lp.stop();
        })
        .unwrap();
        lp.run_forever().unwrap();
        assert!(fired.get(), "the run went on until the timer stopped it");

        // The same for `run_until`.
        lp.stop();
        FAIL_ITERATION.with(|fail| fail.set(true));
        assert_eq!(lp.run_until(|_| false).unwrap_err().raw_os_error(), Some(5));
        let fired = Rc::new(Cell::new(false));
        let flag = fired.clone();
        lp.call_later(Duration::from_millis(5), move |_| flag.set(true))
            .unwrap();
        let flag = fired.clone();
        lp.run_until(move |_| flag.get()).unwrap();
    }

    #[cfg(any(target_os = "linux", target_os = "android"))]
    #[cfg_attr(miri, ignore = "no selector opens under Miri")]
    #[test]
    fn a_failure_mid_dispatch_still_wakes_an_edge_triggered_reader_behind_it() {
        let lp = EventLoop::with_backend(Backend::Epoll).unwrap();
        let (reader, writer) = crate::net::pipe().unwrap();
        let got = Rc::new(Cell::new(0));
        let seen = got.clone();
        let _task = lp.create_task(async move {
            let mut buf = [0u8; 8];
            seen.set(reader.read(&mut buf).await?);
            Ok::<_, io::Error>(())
        });
        lp.run_once(Some(Duration::ZERO)).unwrap();
        assert_eq!(got.get(), 0, "the reader waits, registered edge-triggered");
        assert_eq!(writer.try_write(b"x").unwrap(), 1);

        // The one edge of the pipe, collected from the kernel, behind a failing event.
        let mut events = vec![Event::new(SIGNAL_TOKEN, Ready::READABLE)];
        let mut collected = Vec::new();
        select_for_test(&lp, &mut collected);
        assert_eq!(collected.len(), 1, "{collected:?}");
        events.extend(collected);
        FAIL_SIGNAL_READ.with(|fail| fail.set(true));
        let running = lp.start_running().unwrap();
        let error = lp.dispatch(&events).unwrap_err();
        assert_eq!(error.raw_os_error(), Some(5), "the failure is reported");
        drop(running);
        lp.run_once(Some(Duration::ZERO)).unwrap();
        assert_eq!(
            got.get(),
            1,
            "the reader behind the failure was woken and read"
        );
    }

    fn select_for_test(lp: &EventLoop, events: &mut Vec<tulip_sys::Event>) {
        let mut selector = lp.inner.selector.borrow_mut();
        let selector = selector.as_deref_mut().expect("open");
        selector
            .select(events, Some(Duration::from_secs(5)))
            .unwrap();
    }
}
