//! The probes of the loop itself: fd reuse, panics, loop lifetimes, timers and tasks at
//! scale, many fds, a signal shared with another library, and wakers of timed-out waits.

use std::cell::{Cell, RefCell};
use std::io::{self, Read};
use std::net::TcpStream;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use nix::sys::pthread::{pthread_kill, pthread_self};
use nix::sys::signal::{raise, Signal};
use tulip::selectors::fd;
use tulip::{shield, sleep, wait_for, yield_now, EventLoop, Protocol};

use super::{
    check, fd_count, human_bytes, human_time, misbehaved, rss_bytes, spin_until, thread_count, Ctx,
    Outcome,
};

fn bump(cell: &Cell<u64>) {
    cell.set(cell.get() + 1);
}

/// 2. A reader's fd is closed and its number reused for a new pipe with a new reader, inside a
///    callback that runs after the old fd's event was collected: neither reader may run on it.
pub fn fd_reuse(ctx: &Ctx) -> io::Result<Outcome> {
    let n: u64 = ctx.pick(10_000, 1_000);
    let lp = EventLoop::with_backend(ctx.backend)?;
    let stale = Rc::new(Cell::new(0u64));
    let served = Rc::new(Cell::new(0u64));
    let reused = Rc::new(Cell::new(0u64));
    let swapped = Rc::new(Cell::new(false));
    for _ in 0..n {
        let (r, w) = fd::pipe()?;
        fd::write(w.as_fd(), b"x")?;
        let raw = r.as_raw_fd();
        let s = stale.clone();
        // Never to run: removed by the swap, which runs first.
        lp.add_reader(raw, move |_| bump(&s))?;
        let old = RefCell::new(Some((r, w)));
        let new: Rc<RefCell<Option<(OwnedFd, OwnedFd)>>> = Rc::default();
        let error: Rc<RefCell<Option<io::Error>>> = Rc::default();
        swapped.set(false);
        {
            let (new, error, stale, served, reused, swapped) = (
                new.clone(),
                error.clone(),
                stale.clone(),
                served.clone(),
                reused.clone(),
                swapped.clone(),
            );
            // Queued before the iteration's select: it runs first in the batch, after the old
            // fd's readiness was collected.
            lp.call_soon(move |lp| {
                lp.remove_reader(raw);
                drop(old.take());
                let swap = (|| {
                    // The lowest free numbers: the pipe just closed.
                    let (r2, w2) = fd::pipe()?;
                    if r2.as_raw_fd() == raw {
                        bump(&reused);
                    }
                    fd::write(w2.as_fd(), b"y")?;
                    let done = swapped.clone();
                    lp.add_reader(r2.as_raw_fd(), move |_| {
                        // In the swap's own iteration, it could only be the old fd's event.
                        if done.get() {
                            bump(&served);
                        } else {
                            bump(&stale);
                        }
                    })?;
                    *new.borrow_mut() = Some((r2, w2));
                    Ok(())
                })();
                if let Err(e) = swap {
                    *error.borrow_mut() = Some(e);
                }
            })?;
        }
        lp.run_once(Some(Duration::ZERO))?;
        if let Some(e) = error.borrow_mut().take() {
            return Err(e);
        }
        swapped.set(true);
        let before = served.get();
        lp.run_once(Some(Duration::ZERO))?;
        check(served.get() == before + 1, || {
            "the new fd's reader did not run on its own event".into()
        })?;
        let taken = new.borrow_mut().take();
        if let Some((r2, _)) = taken {
            lp.remove_reader(r2.as_raw_fd());
        }
    }
    check(stale.get() == 0, || {
        format!("{} stale callbacks in {n} reuses", stale.get())
    })?;
    check(reused.get() > 0, || "the fd number was never reused".into())?;
    Ok(Outcome {
        did: "the event collected for the closed fd is dropped; the new fd's reader runs on \
              its own next event"
            .into(),
        figure: format!(
            "0 stale callbacks in {n} closes (number reused {} times); new readers run {}/{n}",
            reused.get(),
            served.get()
        ),
    })
}

/// A protocol that panics on its first bytes.
struct Panicky;

impl Protocol for Panicky {
    fn data_received(&mut self, _: &[u8]) {
        panic!("data_received");
    }
}

struct Quiet;

impl Protocol for Quiet {
    fn data_received(&mut self, _: &[u8]) {}
}

/// Whether the panic hook of [`SilentPanics`] is quiet now.
static SILENT: AtomicBool = AtomicBool::new(false);

/// Silence the panic hook (it prints every panic) while alive: a hook installed once forwards
/// to the one it replaced unless silenced.
struct SilentPanics;

impl SilentPanics {
    fn new() -> SilentPanics {
        static INSTALL: std::sync::Once = std::sync::Once::new();
        INSTALL.call_once(|| {
            let previous = std::panic::take_hook();
            std::panic::set_hook(Box::new(move |info| {
                if !SILENT.load(Ordering::Relaxed) {
                    previous(info);
                }
            }));
        });
        SILENT.store(true, Ordering::Relaxed);
        SilentPanics
    }
}

impl Drop for SilentPanics {
    fn drop(&mut self) {
        SILENT.store(false, Ordering::Relaxed);
    }
}

/// Connect `n` clients to `addr` from a thread, each sending a byte and reading to the end of
/// its connection (closed by the server after the panic).
fn poking_clients(addr: std::net::SocketAddr, n: u64) -> thread::JoinHandle<io::Result<()>> {
    thread::spawn(move || {
        for _ in 0..n {
            let mut stream = TcpStream::connect(addr)?;
            stream.set_read_timeout(Some(Duration::from_secs(20)))?;
            std::io::Write::write_all(&mut stream, b"!")?;
            let mut rest = Vec::new();
            match stream.read_to_end(&mut rest) {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::ConnectionReset => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    })
}

/// 7. `n` panics in each kind of callback: each must reach the exception handler, and the
///    loop go on.
pub fn panics(ctx: &Ctx) -> io::Result<Outcome> {
    let n: u64 = ctx.pick(1000, 100);
    let lp = EventLoop::with_backend(ctx.backend)?;
    let reports = Rc::new(Cell::new(0u64));
    let r = reports.clone();
    lp.set_exception_handler(move |_, _| bump(&r));
    let _silent = SilentPanics::new();
    let limit = Duration::from_secs(30);
    let mut kinds = Vec::new();
    let count = |kinds: &mut Vec<(&str, u64)>, kind, since: u64| {
        kinds.push((kind, reports.get() - since));
    };

    let since = reports.get();
    for _ in 0..n {
        lp.call_soon(|_| panic!("call_soon"))?;
    }
    spin_until(&lp, "call_soon panics", limit, || {
        reports.get() - since >= n
    })?;
    count(&mut kinds, "call_soon", since);

    let since = reports.get();
    for i in 0..n {
        lp.call_later(Duration::from_micros(i), |_| panic!("call_later"))?;
    }
    spin_until(&lp, "call_later panics", limit, || {
        reports.get() - since >= n
    })?;
    count(&mut kinds, "call_later", since);

    let since = reports.get();
    let (a, b) = fd::socketpair()?;
    fd::send(b.as_fd(), b"x")?;
    let raw = a.as_raw_fd();
    for i in 0..n {
        lp.add_reader(raw, move |lp| {
            lp.remove_reader(raw);
            panic!("reader");
        })?;
        spin_until(&lp, "reader panics", limit, || reports.get() - since > i)?;
    }
    lp.remove_reader(raw);
    count(&mut kinds, "reader", since);

    let since = reports.get();
    let tasks: Vec<_> = (0..n)
        .map(|_| {
            lp.create_task(async move {
                if n > 0 {
                    panic!("task")
                }
            })
        })
        .collect();
    spin_until(&lp, "task panics", limit, || tasks.iter().all(|t| t.done()))?;
    let failed = tasks.iter().filter(|t| t.result().is_err()).count() as u64;
    check(failed == n, || {
        format!("{failed} of {n} panicked tasks failed")
    })?;
    drop(tasks);
    lp.run_once(Some(Duration::ZERO))?;
    count(&mut kinds, "task", since);

    let since = reports.get();
    let server = lp.create_server(|| Panicky, "127.0.0.1:0")?;
    let clients = poking_clients(server.local_addr()?, n);
    let ran = spin_until(&lp, "protocol panics", limit, || clients.is_finished());
    let joined = clients
        .join()
        .map_err(|_| misbehaved("a client panicked"))?;
    ran?;
    joined?;
    spin_until(&lp, "protocol panic reports", limit, || {
        reports.get() - since >= n
    })?;
    drop(server);
    count(&mut kinds, "protocol", since);

    let since = reports.get();
    let server = lp.create_server(|| -> Quiet { panic!("protocol factory") }, "127.0.0.1:0")?;
    let clients = poking_clients(server.local_addr()?, n);
    let ran = spin_until(&lp, "factory panics", limit, || clients.is_finished());
    let joined = clients
        .join()
        .map_err(|_| misbehaved("a client panicked"))?;
    ran?;
    joined?;
    spin_until(&lp, "factory panic reports", limit, || {
        reports.get() - since >= n
    })?;
    drop(server);
    count(&mut kinds, "factory", since);

    let after = Rc::new(Cell::new(false));
    let a2 = after.clone();
    lp.call_soon(move |_| a2.set(true))?;
    lp.run_once(Some(Duration::ZERO))?;
    check(after.get(), || "the loop stopped running callbacks".into())?;
    for (kind, got) in &kinds {
        check(*got == n, || {
            format!("{got} of {n} {kind} panics reported to the exception handler")
        })?;
    }
    let total: u64 = kinds.iter().map(|(_, c)| c).sum();
    Ok(Outcome {
        did: "each panic caught and given to the exception handler; the callback's connection \
              (if any) closed; the loop goes on"
            .into(),
        figure: format!(
            "{total}/{} reported ({}); the loop still runs callbacks after",
            n * kinds.len() as u64,
            kinds
                .iter()
                .map(|(k, c)| format!("{k} {c}"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    })
}

/// One loop's life: a timer, a task that sleeps, a socket pair with a reader, an executor job
/// and a signal handler, all used, then the loop closed and dropped.
fn one_lifetime(ctx: &Ctx) -> io::Result<()> {
    let lp = EventLoop::with_backend(ctx.backend)?;
    let seen = Rc::new(Cell::new(0u64));
    let s = seen.clone();
    lp.call_later(Duration::from_micros(100), move |_| bump(&s))?;
    let (a, b) = fd::socketpair()?;
    fd::send(b.as_fd(), b"x")?;
    let raw = a.as_raw_fd();
    let s = seen.clone();
    lp.add_reader(raw, move |lp| {
        lp.remove_reader(raw);
        bump(&s);
    })?;
    let s = seen.clone();
    lp.add_signal_handler(Signal::SIGWINCH as i32, move |_| bump(&s))?;
    raise(Signal::SIGWINCH).map_err(io::Error::from)?;
    let job = lp.run_in_executor(|| 42u32);
    let answer = lp.run_until_complete(async move {
        sleep(Duration::from_micros(200)).await?;
        job.await
    })??;
    check(answer == 42, || "the executor's job answered wrong".into())?;
    spin_until(&lp, "a lifetime", Duration::from_secs(10), || {
        seen.get() == 3
    })?;
    lp.remove_signal_handler(Signal::SIGWINCH as i32);
    lp.close()?;
    drop(lp);
    drop((a, b));
    Ok(())
}

/// Wait up to a second for the thread count to come down to `target` (pool workers exit
/// asynchronously once their loop is gone).
fn settle_threads(target: usize) -> io::Result<usize> {
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        let now = thread_count()?;
        if now <= target || Instant::now() > deadline {
            return Ok(now);
        }
        thread::sleep(Duration::from_millis(10));
    }
}

/// 8. 1,000 loop lifetimes: fds, threads and memory before and after.
pub fn lifetimes(ctx: &Ctx) -> io::Result<Outcome> {
    let n = ctx.pick(1000, 100);
    for _ in 0..10 {
        one_lifetime(ctx)?;
    }
    let threads0 = settle_threads(0)?;
    let (fds0, rss0) = (fd_count()?, rss_bytes()?);
    let t0 = Instant::now();
    for _ in 0..n {
        one_lifetime(ctx)?;
    }
    let per = t0.elapsed() / n;
    let threads1 = settle_threads(threads0)?;
    let (fds1, rss1) = (fd_count()?, rss_bytes()?);
    let growth = rss1 as i64 - rss0 as i64;
    check(fds1 == fds0, || {
        format!("{fds0} fds before, {fds1} after: a leak")
    })?;
    check(threads1 <= threads0, || {
        format!("{threads0} threads before, {threads1} after: a leak")
    })?;
    check(growth < 8 << 20 || growth / (n as i64) < 4096, || {
        format!("RSS grew {} over {n} lifetimes", human_bytes(growth))
    })?;
    Ok(Outcome {
        did: "close and drop release the selector, notifier, signal pipe and disposition, \
              executor threads and every callback"
            .into(),
        figure: format!(
            "{n} lifetimes ({} each): fds {fds0} → {fds1}, threads {threads0} → {threads1}, RSS \
             {} → {} ({}); live heap not measured (a counting allocator needs unsafe, which \
             the bench forbids)",
            human_time(per),
            human_bytes(rss0 as i64),
            human_bytes(rss1 as i64),
            if growth >= 0 {
                format!("+{}", human_bytes(growth))
            } else {
                human_bytes(growth)
            }
        ),
    })
}

/// 9. 100,000 timers, half cancelled, the rest run in deadline order; then as many tasks.
pub fn timers_and_tasks(ctx: &Ctx) -> io::Result<Outcome> {
    let n: u32 = ctx.pick(100_000, 10_000);
    let lp = EventLoop::with_backend(ctx.backend)?;
    let log: Rc<RefCell<Vec<u32>>> = Rc::new(RefCell::new(Vec::with_capacity(n as usize)));
    let expected: Vec<u32> = (0..n).step_by(2).collect();

    let rss0 = rss_bytes()?;
    let t0 = Instant::now();
    let base = lp.time() + Duration::from_millis(5);
    let mut handles = Vec::with_capacity(n as usize);
    for i in 0..n {
        let log = log.clone();
        handles.push(
            lp.call_at(base + Duration::from_nanos(u64::from(i)), move |_| {
                log.borrow_mut().push(i)
            })?,
        );
    }
    let timer_bytes = (rss_bytes()? as i64 - rss0 as i64) / i64::from(n);
    for h in handles.iter().skip(1).step_by(2) {
        h.cancel();
    }
    spin_until(&lp, "the timers", Duration::from_secs(30), || {
        log.borrow().len() == expected.len()
    })?;
    let timer_time = t0.elapsed() / n;
    drop(handles);
    lp.run_once(Some(Duration::ZERO))?;
    check(*log.borrow() == expected, || {
        "the timers did not fire all, once each, in deadline order".into()
    })?;
    check(lp.stats().timer_heap_len == 0, || {
        format!("{} timers left in the heap", lp.stats().timer_heap_len)
    })?;

    log.borrow_mut().clear();
    let rss0 = rss_bytes()?;
    let t0 = Instant::now();
    let mut tasks = Vec::with_capacity(n as usize);
    for i in 0..n {
        let log = log.clone();
        tasks.push(lp.create_task(async move {
            yield_now().await;
            log.borrow_mut().push(i);
        }));
    }
    let task_bytes = (rss_bytes()? as i64 - rss0 as i64) / i64::from(n);
    for t in tasks.iter().skip(1).step_by(2) {
        t.cancel();
    }
    spin_until(&lp, "the tasks", Duration::from_secs(30), || {
        log.borrow().len() == expected.len() && lp.stats().tasks == 0
    })?;
    let task_time = t0.elapsed() / n;
    check(*log.borrow() == expected, || {
        "the tasks did not complete all, once each, in order".into()
    })?;
    let cancelled = tasks.iter().filter(|t| t.cancelled()).count();
    check(cancelled == (n / 2) as usize, || {
        format!("{cancelled} tasks cancelled of {}", n / 2)
    })?;
    Ok(Outcome {
        did: "cancelled ones dropped, the rest run once each in deadline (timers) or spawn \
              (tasks) order"
            .into(),
        figure: format!(
            "{n} timers: {} and ~{timer_bytes} B (RSS, handle kept) per timer, scheduled to \
             run; {n} tasks: {} and ~{task_bytes} B per task",
            human_time(timer_time),
            human_time(task_time),
        ),
    })
}

/// 10. 10,000 fds registered: time per registration, and one select with one of them ready.
pub fn many_fds(ctx: &Ctx) -> io::Result<Outcome> {
    let wanted: usize = ctx.pick(10_000, 1_000);
    let reserve = 256u64;
    let _ = fd::raise_nofile_limit(wanted as u64 + reserve);
    let (soft, hard) = fd::nofile_limit()?;
    let mut fds = wanted.min(soft.saturating_sub(reserve) as usize) / 2 * 2;
    // select(2) watches fds below FD_SETSIZE only.
    let on_select = ctx.backend == tulip::selectors::Backend::Select;
    if on_select {
        fds = fds.min(tulip::selectors::FD_SETSIZE - 64) / 2 * 2;
    }
    let lp = EventLoop::with_backend(ctx.backend)?;
    // Debug mode times each select (`Stats::select_time`), for the figure's share in select.
    lp.set_debug(true);
    let pairs = (0..fds / 2)
        .map(|_| fd::socketpair())
        .collect::<io::Result<Vec<_>>>()?;
    let ready = Rc::new(Cell::new(0u64));
    let t0 = Instant::now();
    for (a, b) in &pairs {
        for raw in [a.as_raw_fd(), b.as_raw_fd()] {
            let r = ready.clone();
            lp.add_reader(raw, move |_| bump(&r))?;
        }
    }
    let per_registration = t0.elapsed() / fds as u32;
    let samples = ctx.pick(500, 100);
    let mut times = Vec::with_capacity(samples);
    let mut buf = [0u8; 8];
    let stats0 = lp.stats();
    for k in 0..samples {
        let (a, b) = &pairs[(k * 7919) % pairs.len()];
        fd::send(b.as_fd(), b"x")?;
        let before = ready.get();
        let t = Instant::now();
        lp.run_once(Some(Duration::from_secs(5)))?;
        times.push(t.elapsed().as_secs_f64());
        check(ready.get() == before + 1, || {
            format!("{} readers ran for one ready fd", ready.get() - before)
        })?;
        fd::read(a.as_fd(), &mut buf)?;
    }
    let median = Duration::from_secs_f64(crate::stats::median(&times).unwrap_or(0.0));
    let max = Duration::from_secs_f64(times.iter().copied().fold(0.0, f64::max));
    let stats1 = lp.stats();
    let in_select =
        (stats1.select_time - stats0.select_time) / (stats1.selects - stats0.selects).max(1) as u32;
    for (a, b) in &pairs {
        lp.remove_reader(a.as_raw_fd());
        lp.remove_reader(b.as_raw_fd());
    }
    let fit = if fds < wanted && on_select {
        format!("; only {fds} of {wanted}: select watches fds below FD_SETSIZE")
    } else if fds < wanted {
        format!("; only {fds} of {wanted} fit: RLIMIT_NOFILE hard limit {hard}")
    } else {
        String::new()
    };
    Ok(Outcome {
        did: "registered in the backend; a select returns only the ready fd".into(),
        figure: format!(
            "{fds} fds: {} per registration; one iteration with 1 of them ready {} median, {} \
             max ({samples} samples; {} of it in select, mean){fit}",
            human_time(per_registration),
            human_time(median),
            human_time(max),
            human_time(in_select)
        ),
    })
}

/// 12. A signal whose handler another library (tokio, through signal-hook-registry) installed
///     first: both sides see every signal; then `remove_signal_handler` under a steady stream
///     of the signal from another thread must finish.
pub fn shared_signal(ctx: &Ctx) -> io::Result<Outcome> {
    let k: u64 = ctx.pick(1000, 200);
    let storm_for = ctx.pick(Duration::from_secs(1), Duration::from_millis(100));
    let signal = Signal::SIGUSR2;
    let other = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let (ready_tx, ready_rx) = std::sync::mpsc::channel::<io::Result<()>>();
    let library = {
        let (other, stop) = (other.clone(), stop.clone());
        thread::spawn(move || -> io::Result<()> {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            runtime.block_on(async move {
                let stream =
                    tokio::signal::unix::signal(tokio::signal::unix::SignalKind::user_defined2());
                let mut stream = match stream {
                    Ok(s) => {
                        let _ = ready_tx.send(Ok(()));
                        s
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(io::Error::new(e.kind(), e.to_string())));
                        return Err(e);
                    }
                };
                while !stop.load(Ordering::Relaxed) {
                    let got = tokio::time::timeout(Duration::from_millis(10), stream.recv()).await;
                    if let Ok(Some(())) = got {
                        other.fetch_add(1, Ordering::Release);
                    }
                }
                Ok(())
            })
        })
    };
    let result = (|| {
        ready_rx
            .recv()
            .map_err(|_| misbehaved("the other library's thread ended"))??;
        let lp = EventLoop::with_backend(ctx.backend)?;
        let ours = Rc::new(Cell::new(0u64));
        let o = ours.clone();
        lp.add_signal_handler(signal as i32, move |_| bump(&o))?;
        for i in 1..=k {
            raise(signal).map_err(io::Error::from)?;
            spin_until(&lp, "tulip's handler", Duration::from_secs(5), || {
                ours.get() >= i
            })?;
            let deadline = Instant::now() + Duration::from_secs(5);
            while other.load(Ordering::Acquire) < i {
                if Instant::now() > deadline {
                    return Err(misbehaved(format!(
                        "the earlier handler saw {} of {i} signals",
                        other.load(Ordering::Acquire)
                    )));
                }
                thread::sleep(Duration::from_micros(50));
            }
        }
        let (ours_n, other_n) = (ours.get(), other.load(Ordering::Acquire));
        check(ours_n == k && other_n == k, || {
            format!("of {k} signals, tulip saw {ours_n}, the earlier handler {other_n}")
        })?;

        // A steady stream at the loop's thread while the handler is added and removed.
        let target = pthread_self();
        let storm_stop = Arc::new(AtomicBool::new(false));
        let storm_sent = Arc::new(AtomicU64::new(0));
        let storm = {
            let (storm_stop, storm_sent) = (storm_stop.clone(), storm_sent.clone());
            thread::spawn(move || -> io::Result<u64> {
                let mut sent = 0;
                while !storm_stop.load(Ordering::Relaxed) {
                    pthread_kill(target, signal).map_err(io::Error::from)?;
                    sent += 1;
                    storm_sent.store(sent, Ordering::Relaxed);
                    thread::yield_now();
                }
                Ok(sent)
            })
        };
        let mut slowest = Duration::ZERO;
        let mut total = Duration::ZERO;
        let mut removals = 0u32;
        // No early return while the stream runs: it is stopped and joined below, whatever
        // happened.
        let outcome = (|| -> io::Result<()> {
            // The stream is on before the first removal.
            let deadline = Instant::now() + Duration::from_secs(5);
            while storm_sent.load(Ordering::Relaxed) < 100 && Instant::now() < deadline {
                lp.run_once(Some(Duration::from_millis(1)))?;
            }
            let storm_start = Instant::now();
            while storm_start.elapsed() < storm_for {
                removals += 1;
                lp.run_once(Some(Duration::from_millis(1)))?;
                let t = Instant::now();
                let found = lp.remove_signal_handler(signal as i32);
                let took = t.elapsed();
                slowest = slowest.max(took);
                total += took;
                check(found, || "the handler was not there to remove".into())?;
                let o = ours.clone();
                lp.add_signal_handler(signal as i32, move |_| bump(&o))?;
            }
            Ok(())
        })();
        storm_stop.store(true, Ordering::Relaxed);
        let sent = storm
            .join()
            .map_err(|_| misbehaved("the sender panicked"))??;
        outcome?;
        lp.remove_signal_handler(signal as i32);
        Ok(Outcome {
            did: "tulip's handler chains to the one installed before it; removal waits only \
                  for handlers already in flight, then restores it"
                .into(),
            figure: format!(
                "{k} signals: tulip {ours_n}, the earlier handler (tokio's) {other_n}; \
                 {removals} removals in {} under a stream of {sent} signals to the loop's \
                 thread: {} mean, {} max",
                human_time(storm_for),
                human_time(total / removals.max(1)),
                human_time(slowest)
            ),
        })
    })();
    stop.store(true, Ordering::Relaxed);
    let joined = library
        .join()
        .map_err(|_| misbehaved("the other library's thread panicked"));
    let outcome = result?;
    joined??;
    Ok(outcome)
}

/// The `waiters: N` a future's `Debug` shows (how the tests observe it too).
fn waiters_of(debug: &str) -> Option<usize> {
    let at = debug.find("waiters: ")? + "waiters: ".len();
    let digits: String = debug[at..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

/// 14. 10,000 `wait_for` timeouts on one long-lived future, 100 at a time: the wakers it
///     holds at the end.
pub fn wakers(ctx: &Ctx) -> io::Result<Outcome> {
    let n = ctx.pick(10_000, 1_000);
    let batch = 100;
    let lp = EventLoop::with_backend(ctx.backend)?;
    let shared = lp.create_future::<u32>();
    let waiters = |f: &tulip::Future<u32>| {
        waiters_of(&format!("{f:?}")).ok_or_else(|| misbehaved(format!("no waiter count in {f:?}")))
    };
    let mut peak = 0;
    let t0 = Instant::now();
    for _ in 0..n / batch {
        let tasks: Vec<_> = (0..batch)
            .map(|_| {
                let f = shared.clone();
                lp.create_task(async move {
                    wait_for(shield(f), Duration::from_millis(1))
                        .await
                        .map(drop)
                })
            })
            .collect();
        lp.run_once(Some(Duration::ZERO))?;
        peak = peak.max(waiters(&shared)?);
        spin_until(&lp, "the timeouts", Duration::from_secs(10), || {
            tasks.iter().all(|t| t.done())
        })?;
        // The task's own output is the wait's: `Err(TimedOut)`.
        let timed_out = tasks
            .iter()
            .filter(|t| matches!(t.take_result(), Ok(Err(ref e)) if e.kind() == io::ErrorKind::TimedOut))
            .count();
        check(timed_out == batch, || {
            format!("{timed_out} of {batch} waits timed out")
        })?;
    }
    let elapsed = t0.elapsed();
    let left = waiters(&shared)?;
    check(left <= batch, || {
        format!("{left} waker entries held after {n} timeouts: unbounded")
    })?;
    check(!shared.done(), || {
        "the shared future was cancelled by a timeout".into()
    })?;
    shared.set_result(1)?;
    Ok(Outcome {
        did: "a timed-out waiter's waker entry is freed and reused".into(),
        figure: format!(
            "{left} waker entries held after {n} timeouts ({batch} at a time, peak {peak}; \
             {} per timeout)",
            human_time(elapsed / n as u32)
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_waiter_count_is_read_from_debug() {
        assert_eq!(
            waiters_of("Future { state: Pending, waiters: 12, callbacks: 0 }"),
            Some(12)
        );
        assert_eq!(waiters_of("Future { waiters: 0 }"), Some(0));
        assert_eq!(waiters_of("Future { state: Pending }"), None);
    }
}
