//! The workloads on tulip's `EventLoop` over the best backend (epoll on Linux). Each function
//! builds its loop first and measures only the run.

use std::cell::{Cell, RefCell};
use std::io;
use std::os::fd::OwnedFd;
use std::rc::Rc;

use tulip::net::{PipeReader, PipeWriter};
use tulip::selectors::Backend;
use tulip::{EventLoop, Lock, Queue, TimerHandle};

use super::plan::{timer_delays, BATCH, QUEUE_BOUND, SWITCH_TASKS};
use super::sample::{check_count, measure, Sample};

/// A fresh loop on the best backend, as tokio's runtime uses epoll too.
fn event_loop() -> io::Result<EventLoop> {
    EventLoop::with_backend(Backend::best())
}

/// An error met inside a callback, kept to be returned once the loop has stopped.
type Failure = Rc<RefCell<Option<io::Error>>>;

/// `ops` callbacks (each adds one to a shared counter) scheduled with `call_soon`, `BATCH` at a
/// time; a last callback per batch schedules the next batch or stops the loop.
#[inline(never)] // a symbol of its own, for `bench/instructions.sh` (callgrind)
pub fn call_soon(ops: usize) -> io::Result<Sample> {
    let lp = event_loop()?;
    let counter = Rc::new(Cell::new(0usize));
    let failure: Failure = Rc::default();
    let sample = measure(ops, || {
        schedule_batch(&lp, ops, &counter, &failure)?;
        lp.run_forever()
    })?;
    if let Some(e) = failure.take() {
        return Err(e);
    }
    check_count("tulip call_soon", ops, counter.get())?;
    Ok(sample)
}

/// Schedule `min(left, BATCH)` counting callbacks, then the one that schedules the rest.
fn schedule_batch(
    lp: &EventLoop,
    left: usize,
    counter: &Rc<Cell<usize>>,
    failure: &Failure,
) -> io::Result<()> {
    let now = left.min(BATCH);
    for _ in 0..now {
        let c = Rc::clone(counter);
        lp.call_soon(move |_| c.set(c.get() + 1))?;
    }
    let rest = left - now;
    let (counter, failure) = (Rc::clone(counter), Rc::clone(failure));
    lp.call_soon(move |lp| {
        if rest == 0 {
            lp.stop();
        } else if let Err(e) = schedule_batch(lp, rest, &counter, &failure) {
            *failure.borrow_mut() = Some(e);
            lp.stop();
        }
    })?;
    Ok(())
}

/// `ops` timers scheduled with `call_later`, every other one cancelled, the rest let fire; the
/// last to fire stops the loop.
#[inline(never)] // a symbol of its own, for `bench/instructions.sh` (callgrind)
pub fn timers(ops: usize) -> io::Result<Sample> {
    let lp = event_loop()?;
    let delays = timer_delays(ops);
    let mut handles: Vec<TimerHandle> = Vec::with_capacity(ops);
    let fired = Rc::new(Cell::new(0usize));
    let live = ops / 2;
    let sample = measure(ops, || {
        for delay in delays {
            let fired = Rc::clone(&fired);
            handles.push(lp.call_later(delay, move |lp| {
                fired.set(fired.get() + 1);
                if fired.get() == live {
                    lp.stop();
                }
            })?);
        }
        for handle in handles.iter().step_by(2) {
            handle.cancel();
        }
        lp.run_forever()
    })?;
    check_count("tulip timers", live, fired.get())?;
    Ok(sample)
}

/// `ops` tasks spawned `BATCH` at a time from a coroutine, each batch awaited before the next.
#[inline(never)] // a symbol of its own, for `bench/instructions.sh` (callgrind)
pub fn spawn(ops: usize) -> io::Result<Sample> {
    let lp = event_loop()?;
    let mut total = 0;
    let sample = measure(ops, || {
        total = lp.run_until_complete(async move {
            let mut total = 0;
            let mut tasks = Vec::with_capacity(BATCH);
            for _ in 0..ops / BATCH {
                for _ in 0..BATCH {
                    tasks.push(tulip::spawn(async { 1 })?);
                }
                for task in tasks.drain(..) {
                    total += task.await?;
                }
            }
            io::Result::Ok(total)
        })??;
        Ok(())
    })?;
    check_count("tulip spawn", ops, total)?;
    Ok(sample)
}

/// `SWITCH_TASKS` tasks, each yielding `ops / SWITCH_TASKS` times.
#[inline(never)] // a symbol of its own, for `bench/instructions.sh` (callgrind)
pub fn switch(ops: usize) -> io::Result<Sample> {
    let lp = event_loop()?;
    let yields = Rc::new(Cell::new(0usize));
    let counted = Rc::clone(&yields);
    let sample = measure(ops, || {
        lp.run_until_complete(async move {
            let each = ops / SWITCH_TASKS;
            let mut tasks = Vec::with_capacity(SWITCH_TASKS);
            for _ in 0..SWITCH_TASKS {
                let yields = Rc::clone(&counted);
                tasks.push(tulip::spawn(async move {
                    for _ in 0..each {
                        tulip::yield_now().await;
                        yields.set(yields.get() + 1);
                    }
                })?);
            }
            for task in tasks {
                task.await?;
            }
            io::Result::Ok(())
        })?
    })?;
    check_count("tulip switch", ops, yields.get())?;
    Ok(sample)
}

/// Two tasks bouncing one byte `ops` times over two pipes, with tulip's pipe types and their
/// `read_exact` / `write_all`, as tokio's runner does with its own: each read is tried first
/// and, on `WouldBlock`, waits on the read end's registration; a write of one byte into an
/// empty pipe never blocks (one `pwritev2` with `RWF_NOSIGNAL` on Linux 6.18 and later).
#[inline(never)] // a symbol of its own, for `bench/instructions.sh` (callgrind)
pub fn ping_pong(
    ops: usize,
    there: (OwnedFd, OwnedFd),
    back: (OwnedFd, OwnedFd),
) -> io::Result<Sample> {
    let lp = event_loop()?;
    let trips = Rc::new(Cell::new(0usize));
    let counted = Rc::clone(&trips);
    let sample = measure(ops, || {
        lp.run_until_complete(async move {
            // The pipes' read ends stay registered while their reader lives (tulip::net),
            // as tokio's do.
            let (there_rx, there_tx) = (PipeReader::from(there.0), PipeWriter::from(there.1));
            let (back_rx, back_tx) = (PipeReader::from(back.0), PipeWriter::from(back.1));
            let pong = tulip::spawn(async move {
                let mut byte = [0u8; 1];
                for _ in 0..ops {
                    there_rx.read_exact(&mut byte).await?;
                    back_tx.write_all(&byte).await?;
                }
                io::Result::Ok(())
            })?;
            let ping = tulip::spawn(async move {
                let mut byte = [b'x'; 1];
                for _ in 0..ops {
                    there_tx.write_all(&byte).await?;
                    back_rx.read_exact(&mut byte).await?;
                    counted.set(counted.get() + 1);
                }
                io::Result::Ok(())
            })?;
            ping.await??;
            pong.await?
        })?
    })?;
    check_count("tulip ping-pong", ops, trips.get())?;
    Ok(sample)
}

/// A producer task putting `ops` numbers into a `tulip::Queue` bounded to `QUEUE_BOUND`, and
/// the measured coroutine getting them; each item is checked to come in order.
#[inline(never)] // a symbol of its own, for `bench/instructions.sh` (callgrind)
pub fn queue(ops: usize) -> io::Result<Sample> {
    let lp = event_loop()?;
    let received = Rc::new(Cell::new(0usize));
    let counted = Rc::clone(&received);
    let sample = measure(ops, || {
        lp.run_until_complete(async move {
            let queue = Queue::new(QUEUE_BOUND);
            let producer = queue.clone();
            let producing = tulip::spawn(async move {
                for n in 0..ops {
                    producer.put(n).await?;
                }
                io::Result::Ok(())
            })?;
            for expected in 0..ops {
                if queue.get().await? == expected {
                    counted.set(counted.get() + 1);
                }
            }
            producing.await?
        })?
    })?;
    check_count("tulip queue", ops, received.get())?;
    Ok(sample)
}

/// `ops` acquisitions and releases of a `tulip::Lock` by one task, nobody else wanting it;
/// each adds one to a counter while it holds the lock.
#[inline(never)] // a symbol of its own, for `bench/instructions.sh` (callgrind)
pub fn lock(ops: usize) -> io::Result<Sample> {
    let lp = event_loop()?;
    let counter = Rc::new(Cell::new(0usize));
    let counted = Rc::clone(&counter);
    let sample = measure(ops, || {
        lp.run_until_complete(async move {
            let lock = Lock::new();
            for _ in 0..ops {
                let _guard = lock.acquire().await;
                counted.set(counted.get() + 1);
            }
        })
    })?;
    check_count("tulip lock", ops, counter.get())?;
    Ok(sample)
}
