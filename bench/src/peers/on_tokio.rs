//! The workloads on tokio's current-thread runtime (`Builder::new_current_thread().enable_all()`)
//! with a `LocalSet`, so that tasks may hold `Rc`s as tulip's do. Each function builds its
//! runtime first and measures only the `block_on`.
//!
//! tokio has no callback queue: the closest analogue of `call_soon(f)` is spawning a task whose
//! whole body is `f`, which is what [`call_soon`] does. A timer is a task that sleeps, and
//! cancelling it is aborting that task, which drops its sleep out of the timer wheel.

use std::cell::Cell;
use std::future::Future;
use std::io;
use std::os::fd::OwnedFd;
use std::rc::Rc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::unix::pipe;
use tokio::runtime::{Builder, Runtime};
use tokio::sync::{mpsc, Mutex};
use tokio::task::{self, JoinHandle, LocalSet};

use super::plan::{timer_delays, BATCH, QUEUE_BOUND, SWITCH_TASKS};
use super::sample::{check_count, measure, Sample};

/// A current-thread runtime with I/O and time enabled, and a `LocalSet` to run `!Send` tasks.
fn runtime() -> io::Result<(Runtime, LocalSet)> {
    let rt = Builder::new_current_thread().enable_all().build()?;
    Ok((rt, LocalSet::new()))
}

/// Build a runtime, then measure `ops` operations of `body` run to completion on it.
fn run<F>(ops: usize, body: F) -> io::Result<Sample>
where
    F: Future<Output = io::Result<()>>,
{
    let (rt, local) = runtime()?;
    measure(ops, || rt.block_on(local.run_until(body)))
}

/// A `JoinError` (the task panicked or was aborted) as an `io::Error`.
fn joined<T>(result: Result<T, task::JoinError>) -> io::Result<T> {
    result.map_err(|e| io::Error::other(format!("tokio task failed: {e}")))
}

/// `ops` trivial tasks (each adds one to a shared counter), spawned `BATCH` at a time; a batch
/// is over when its last task is, as tasks run in spawn order.
#[inline(never)] // a symbol of its own, for `bench/instructions.sh` (callgrind)
pub fn call_soon(ops: usize) -> io::Result<Sample> {
    let counter = Rc::new(Cell::new(0usize));
    let seen = Rc::clone(&counter);
    let sample = run(ops, async move {
        for _ in 0..ops / BATCH {
            let mut last = None;
            for _ in 0..BATCH {
                let c = Rc::clone(&counter);
                last = Some(task::spawn_local(async move { c.set(c.get() + 1) }));
            }
            if let Some(last) = last {
                joined(last.await)?;
            }
        }
        Ok(())
    })?;
    check_count("tokio call_soon", ops, seen.get())?;
    Ok(sample)
}

/// `ops` tasks that each sleep for their delay and count themselves; once all have slept into
/// the wheel, every other one is aborted, and the rest are let fire.
#[inline(never)] // a symbol of its own, for `bench/instructions.sh` (callgrind)
pub fn timers(ops: usize) -> io::Result<Sample> {
    let delays = timer_delays(ops);
    let fired = Rc::new(Cell::new(0usize));
    let seen = Rc::clone(&fired);
    // Timers of the half to cancel that fired before the cancelling (a machine so busy that
    // spawning took longer than the earliest delay): they count, as they ran.
    let early = Rc::new(Cell::new(0usize));
    let early_seen = Rc::clone(&early);
    let sample = run(ops, async move {
        let started = Rc::new(Cell::new(0usize));
        let mut handles: Vec<JoinHandle<()>> = Vec::with_capacity(ops);
        for delay in delays {
            let (started, fired) = (Rc::clone(&started), Rc::clone(&fired));
            handles.push(task::spawn_local(async move {
                started.set(started.get() + 1);
                tokio::time::sleep(delay).await;
                fired.set(fired.get() + 1);
            }));
        }
        // A sleep joins the wheel when first polled: wait until every task has been.
        while started.get() < ops {
            task::yield_now().await;
        }
        early.set(
            handles
                .iter()
                .step_by(2)
                .filter(|h| h.is_finished())
                .count(),
        );
        for handle in handles.iter().step_by(2) {
            handle.abort();
        }
        let live = ops / 2 + early.get();
        while fired.get() < live {
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
        Ok(())
    })?;
    check_count("tokio timers", ops / 2 + early_seen.get(), seen.get())?;
    Ok(sample)
}

/// `ops` tasks spawned `BATCH` at a time, each batch awaited before the next.
#[inline(never)] // a symbol of its own, for `bench/instructions.sh` (callgrind)
pub fn spawn(ops: usize) -> io::Result<Sample> {
    let total = Rc::new(Cell::new(0usize));
    let seen = Rc::clone(&total);
    let sample = run(ops, async move {
        let mut handles = Vec::with_capacity(BATCH);
        for _ in 0..ops / BATCH {
            handles.extend((0..BATCH).map(|_| task::spawn_local(async { 1 })));
            for handle in handles.drain(..) {
                total.set(total.get() + joined(handle.await)?);
            }
        }
        Ok(())
    })?;
    check_count("tokio spawn", ops, seen.get())?;
    Ok(sample)
}

/// `SWITCH_TASKS` tasks, each yielding `ops / SWITCH_TASKS` times.
#[inline(never)] // a symbol of its own, for `bench/instructions.sh` (callgrind)
pub fn switch(ops: usize) -> io::Result<Sample> {
    let yields = Rc::new(Cell::new(0usize));
    let seen = Rc::clone(&yields);
    let sample = run(ops, async move {
        let each = ops / SWITCH_TASKS;
        let handles: Vec<_> = (0..SWITCH_TASKS)
            .map(|_| {
                let yields = Rc::clone(&yields);
                task::spawn_local(async move {
                    for _ in 0..each {
                        task::yield_now().await;
                        yields.set(yields.get() + 1);
                    }
                })
            })
            .collect();
        for handle in handles {
            joined(handle.await)?;
        }
        Ok(())
    })?;
    check_count("tokio switch", ops, seen.get())?;
    Ok(sample)
}

/// Two tasks bouncing one byte `ops` times over two pipes (`ping` → `pong` and back), with
/// tokio's pipe types and its `read_exact` / `write_all`.
#[inline(never)] // a symbol of its own, for `bench/instructions.sh` (callgrind)
pub fn ping_pong(
    ops: usize,
    there: (OwnedFd, OwnedFd),
    back: (OwnedFd, OwnedFd),
) -> io::Result<Sample> {
    let (rt, local) = runtime()?;
    // Registering the pipes needs the runtime's I/O driver: enter it, untimed.
    let (mut there_rx, mut there_tx, mut back_rx, mut back_tx) = {
        let _guard = rt.enter();
        (
            pipe::Receiver::from_owned_fd(there.0)?,
            pipe::Sender::from_owned_fd(there.1)?,
            pipe::Receiver::from_owned_fd(back.0)?,
            pipe::Sender::from_owned_fd(back.1)?,
        )
    };
    let trips = Rc::new(Cell::new(0usize));
    let seen = Rc::clone(&trips);
    let body = async move {
        let pong = task::spawn_local(async move {
            let mut byte = [0u8; 1];
            for _ in 0..ops {
                there_rx.read_exact(&mut byte).await?;
                back_tx.write_all(&byte).await?;
            }
            io::Result::Ok(())
        });
        let ping = task::spawn_local(async move {
            let mut byte = [b'x'; 1];
            for _ in 0..ops {
                there_tx.write_all(&byte).await?;
                back_rx.read_exact(&mut byte).await?;
                trips.set(trips.get() + 1);
            }
            io::Result::Ok(())
        });
        joined(ping.await)??;
        joined(pong.await)?
    };
    let sample = measure(ops, || rt.block_on(local.run_until(body)))?;
    check_count("tokio ping-pong", ops, seen.get())?;
    Ok(sample)
}

/// A producer task sending `ops` numbers through a `tokio::sync::mpsc` channel bounded to
/// `QUEUE_BOUND`, and the measured coroutine receiving them; each is checked to come in order.
#[inline(never)] // a symbol of its own, for `bench/instructions.sh` (callgrind)
pub fn queue(ops: usize) -> io::Result<Sample> {
    let received = Rc::new(Cell::new(0usize));
    let counted = Rc::clone(&received);
    let sample = run(ops, async move {
        let (sender, mut receiver) = mpsc::channel(QUEUE_BOUND);
        let producing = task::spawn_local(async move {
            for n in 0..ops {
                if sender.send(n).await.is_err() {
                    return;
                }
            }
        });
        for expected in 0..ops {
            match receiver.recv().await {
                Some(n) if n == expected => counted.set(counted.get() + 1),
                Some(_) => {}
                None => break,
            }
        }
        joined(producing.await)
    })?;
    check_count("tokio queue", ops, received.get())?;
    Ok(sample)
}

/// `ops` locks and unlocks of a `tokio::sync::Mutex` by one task, nobody else wanting it; each
/// adds one to the counter it guards.
#[inline(never)] // a symbol of its own, for `bench/instructions.sh` (callgrind)
pub fn lock(ops: usize) -> io::Result<Sample> {
    let counter = Rc::new(Mutex::new(0usize));
    let seen = Rc::clone(&counter);
    let sample = run(ops, async move {
        for _ in 0..ops {
            *counter.lock().await += 1;
        }
        Ok(())
    })?;
    let count = seen.try_lock().map(|n| *n).unwrap_or(0);
    check_count("tokio lock", ops, count)?;
    Ok(sample)
}
