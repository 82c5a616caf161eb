//! `run_in_executor`: blocking closures run on a bounded pool of worker threads started on
//! demand, as Python's `concurrent.futures.ThreadPoolExecutor`, and their outcome comes back to
//! the loop's thread as a [`Future`].

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::future::Future as StdFuture;
use std::io;
use std::panic::{self, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::thread::{self, JoinHandle};

use crate::net::Resolver;
use crate::{EventLoop, ExceptionContext, Future, LoopError};

/// A blocking closure for a worker thread.
pub(crate) type Job = Box<dyn FnOnce() + Send + 'static>;

/// Starts a thread with the given name running the given body; a field so that tests can make
/// thread creation fail.
type Spawner = Box<dyn Fn(String, Job) -> io::Result<JoinHandle<()>> + Send + Sync>;

/// A bounded pool of worker threads that run [`Job`]s in the order they were submitted.
///
/// No thread exists until the first [`submit`](ThreadPool::submit). A submit starts a new
/// worker only when no idle worker is left to take the job and fewer than `max_threads` are
/// alive; idle workers sleep on a condition variable. Workers live until the pool is dropped,
/// and are named `tulip-executor-N`, `N` counting the pool's workers from 0.
///
/// A job that panics does not take its worker down: the panic is caught and dropped (after the
/// panic hook has printed it), and the worker goes on with the next job. The pool reports
/// nothing about it; a caller that wants the panic catches it inside its own job.
///
/// Dropping the pool is asyncio's `shutdown(wait=True)`: it accepts nothing more, lets every
/// job already submitted run (queued ones too, not only those that started), and joins every
/// worker, so it blocks for as long as the slowest job.
pub(crate) struct ThreadPool {
    shared: Arc<Shared>,
    max_threads: usize,
    spawner: Spawner,
}

/// What the pool and its workers share.
struct Shared {
    state: Mutex<State>,
    /// Signalled when a job is queued (one idle worker) or the pool shuts down (all of them).
    work: Condvar,
}

/// The pool's state, under one lock.
struct State {
    queue: VecDeque<Job>,
    /// Workers waiting on [`Shared::work`], including ones notified that have not woken yet:
    /// each of them will take one queued job, so a new job needs a new worker only if the queue
    /// already holds as many jobs as there are idle workers.
    idle: usize,
    /// Workers started and not yet returned.
    live: usize,
    /// Workers ever started, to name the next one.
    started: usize,
    /// Set by `Drop`: workers return once the queue is empty.
    shutdown: bool,
    handles: Vec<JoinHandle<()>>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // No job runs under the lock, so a poisoned state is still consistent.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl ThreadPool {
    /// A pool that runs at most `max_threads` jobs at once. It starts no thread yet.
    ///
    /// # Errors
    ///
    /// `InvalidInput` if `max_threads` is 0: such a pool could never run a job.
    pub(crate) fn new(max_threads: usize) -> io::Result<ThreadPool> {
        ThreadPool::with_spawner(
            max_threads,
            Box::new(|name, body| thread::Builder::new().name(name).spawn(body)),
        )
    }

    fn with_spawner(max_threads: usize, spawner: Spawner) -> io::Result<ThreadPool> {
        if max_threads == 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "an executor needs at least 1 thread, got max_threads 0",
            ));
        }
        Ok(ThreadPool {
            shared: Arc::new(Shared {
                state: Mutex::new(State {
                    queue: VecDeque::new(),
                    idle: 0,
                    live: 0,
                    started: 0,
                    shutdown: false,
                    handles: Vec::new(),
                }),
                work: Condvar::new(),
            }),
            max_threads,
            spawner,
        })
    }

    /// asyncio's default pool size: `min(32, cores + 4)`, counting 1 core if the number is
    /// unknown (as Python's `os.cpu_count() or 1`).
    pub(crate) fn default_size() -> usize {
        let cores = thread::available_parallelism().map_or(1, |n| n.get());
        (cores + 4).min(32)
    }

    /// Queue `job` to run on a worker thread, starting a worker if none is idle and the pool
    /// is below its size.
    ///
    /// # Errors
    ///
    /// The error of starting a thread, if that fails while the pool has no worker at all; the
    /// job is then dropped without running. If other workers exist, the job is queued for them
    /// instead and `submit` succeeds.
    pub(crate) fn submit(&self, job: Job) -> io::Result<()> {
        let mut state = self.shared.lock();
        if state.queue.len() >= state.idle && state.live < self.max_threads {
            // Started under the lock, so that a failure is seen before the job is queued and
            // `live` never counts a thread that does not exist.
            if let Err(error) = self.start_worker(&mut state) {
                if state.live == 0 {
                    return Err(error);
                }
            }
        }
        state.queue.push_back(job);
        drop(state);
        self.shared.work.notify_one();
        Ok(())
    }

    /// The number of worker threads alive.
    pub(crate) fn threads(&self) -> usize {
        self.shared.lock().live
    }

    fn start_worker(&self, state: &mut State) -> io::Result<()> {
        let shared = Arc::clone(&self.shared);
        let name = format!("tulip-executor-{}", state.started);
        let handle = (self.spawner)(name, Box::new(move || work(&shared)))?;
        state.started += 1;
        state.live += 1;
        state.handles.push(handle);
        Ok(())
    }
}

/// A worker's life: run queued jobs, sleep while there are none, return at shutdown once the
/// queue is empty.
fn work(shared: &Shared) {
    let mut state = shared.lock();
    loop {
        if let Some(job) = state.queue.pop_front() {
            drop(state);
            run(job);
            state = shared.lock();
        } else if state.shutdown {
            break;
        } else {
            state.idle += 1;
            state = shared
                .work
                .wait(state)
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            state.idle -= 1;
        }
    }
    state.live -= 1;
}

/// Run one job, keeping its panic from unwinding the worker.
fn run(job: Job) {
    if let Err(payload) = panic::catch_unwind(AssertUnwindSafe(job)) {
        // The payload's own destructor may panic too; that one is leaked rather than let it
        // kill the worker.
        if let Err(nested) = panic::catch_unwind(AssertUnwindSafe(move || drop(payload))) {
            std::mem::forget(nested);
        }
    }
}

impl Drop for ThreadPool {
    /// Refuse new jobs, let the queued ones run, and join every worker.
    fn drop(&mut self) {
        let handles = {
            let mut state = self.shared.lock();
            state.shutdown = true;
            std::mem::take(&mut state.handles)
        };
        self.shared.work.notify_all();
        // A job that owns the last reference to the pool drops it on a worker, which cannot
        // join itself; that worker returns on its own once the queue is empty.
        let current = thread::current().id();
        for handle in handles {
            if handle.thread().id() != current {
                // A worker never panics (jobs' panics are caught), so there is nothing to
                // report.
                let _ = handle.join();
            }
        }
    }
}

impl EventLoop {
    /// Run the blocking closure `job` on the loop's thread pool and return a [`Future`] that
    /// the loop's thread completes with its value. The pool is made at the first call (its
    /// size: [`set_executor_size`](Self::set_executor_size), by default min(32, cores + 4),
    /// as asyncio's); dropping or closing the loop waits for the jobs it has and joins its
    /// threads.
    ///
    /// A job that panics fails the future with [`LoopError::Panicked`] and its panic goes to the
    /// exception handler. Cancelling the future does not stop a job that started (no thread can
    /// be interrupted); its value is dropped.
    ///
    /// ```
    /// let lp = tulip::EventLoop::new()?;
    /// let sum = lp.run_in_executor(|| (1..=100u64).sum::<u64>());
    /// assert_eq!(lp.run_until_complete(sum)??, 5050);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    ///
    /// The future fails at once with [`LoopError::Closed`] on a closed loop, and with the
    /// kernel's error if no worker thread can be started.
    pub fn run_in_executor<T, F>(&self, job: F) -> Future<T>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let output = self.create_future();
        let slot = Arc::new(JobSlot::new());
        let sender = Arc::clone(&slot);
        let submitted = self.check_open().and_then(|()| {
            self.blocking_pool().submit(Box::new(move || {
                sender.complete(panic::catch_unwind(AssertUnwindSafe(job)));
            }))
        });
        if let Err(e) = submitted {
            let _ = output.set_exception(e);
            return output;
        }
        // Detached: it completes `output` and ends. If the loop closes first, the guard fails
        // `output` with `Closed` as the coroutine is dropped, so no awaiter waits forever.
        let guard = FailOnDrop(Some(output.clone()));
        let _task = self.create_task(async move {
            let outcome = JobOutcome(slot).await;
            let setter = guard.defuse();
            match outcome {
                Ok(value) => {
                    let _ = setter.set_result(value);
                }
                Err(payload) => {
                    if let Ok(lp) = crate::get_running_loop() {
                        let context = ExceptionContext::new("a run_in_executor job", payload);
                        lp.call_exception_handler(&context);
                    }
                    let _ = setter.set_exception(LoopError::Panicked.into());
                }
            }
        });
        output
    }

    /// Set how many threads the executor may run at once, before its first use.
    ///
    /// # Errors
    /// `InvalidInput` for 0, or once the executor has started (its threads exist).
    pub fn set_executor_size(&self, threads: usize) -> io::Result<()> {
        self.blocking_pool().set_size(threads)
    }

    /// How many threads the executor may run at once.
    pub fn executor_size(&self) -> usize {
        self.blocking_pool().size()
    }
}

/// The loop's pool: only a size until the first job, then the running [`ThreadPool`].
pub(crate) struct LazyPool {
    pool: RefCell<Option<ThreadPool>>,
    size: Cell<usize>,
    /// The resolver host names go to (`EventLoop::set_resolver`); `None`: the system's.
    resolver: RefCell<Option<Arc<Resolver>>>,
}

impl LazyPool {
    pub(crate) fn new() -> LazyPool {
        LazyPool {
            pool: RefCell::new(None),
            size: Cell::new(ThreadPool::default_size()),
            resolver: RefCell::new(None),
        }
    }

    pub(crate) fn set_resolver(&self, resolver: Option<Arc<Resolver>>) {
        *self.resolver.borrow_mut() = resolver;
    }

    pub(crate) fn resolver(&self) -> Option<Arc<Resolver>> {
        self.resolver.borrow().clone()
    }

    fn set_size(&self, threads: usize) -> io::Result<()> {
        if threads == 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "an executor of 0 threads could never run a job",
            ));
        }
        if self.pool.borrow().is_some() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "the executor has started: set its size before the first run_in_executor",
            ));
        }
        self.size.set(threads);
        Ok(())
    }

    fn size(&self) -> usize {
        self.size.get()
    }

    /// Submit `job`, starting the pool at its first use.
    pub(crate) fn submit(&self, job: Job) -> io::Result<()> {
        let mut pool = self.pool.borrow_mut();
        if pool.is_none() {
            *pool = Some(ThreadPool::new(self.size.get())?);
        }
        pool.as_ref().expect("started above").submit(job)
    }

    /// How many worker threads are alive.
    pub(crate) fn threads(&self) -> usize {
        self.pool.borrow().as_ref().map_or(0, ThreadPool::threads)
    }

    /// Take the pool out, for the closing loop to drop last: dropping it waits for its jobs
    /// and joins its threads.
    pub(crate) fn take(&self) -> Option<ThreadPool> {
        self.pool.borrow_mut().take()
    }
}

/// Where a worker leaves a job's outcome for the loop's thread, and the waker that tells it.
struct JobSlot<T> {
    state: Mutex<(Option<thread::Result<T>>, Option<Waker>)>,
}

impl<T> JobSlot<T> {
    fn new() -> JobSlot<T> {
        JobSlot {
            state: Mutex::new((None, None)),
        }
    }

    fn lock(&self) -> MutexGuard<'_, (Option<thread::Result<T>>, Option<Waker>)> {
        // Nothing panics under this lock.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn complete(&self, outcome: thread::Result<T>) {
        let waker = {
            let mut state = self.lock();
            state.0 = Some(outcome);
            state.1.take()
        };
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}

/// Fails its future with [`LoopError::Closed`] if dropped before being defused.
struct FailOnDrop<T: 'static>(Option<Future<T>>);

impl<T: 'static> FailOnDrop<T> {
    fn defuse(mut self) -> Future<T> {
        self.0
            .take()
            .expect("defused once: defuse consumes the guard")
    }
}

impl<T: 'static> Drop for FailOnDrop<T> {
    fn drop(&mut self) {
        if let Some(future) = self.0.take() {
            let _ = future.set_exception(LoopError::Closed.into());
        }
    }
}

/// Awaits a [`JobSlot`] on the loop's thread.
struct JobOutcome<T>(Arc<JobSlot<T>>);

impl<T> StdFuture for JobOutcome<T> {
    type Output = thread::Result<T>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<thread::Result<T>> {
        let mut state = self.0.lock();
        match state.0.take() {
            Some(outcome) => Poll::Ready(outcome),
            None => {
                state.1 = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::mpsc;

    /// A count that threads can wait on; a gate is a count waited on until it reaches 1.
    #[derive(Default)]
    struct Count {
        n: Mutex<usize>,
        changed: Condvar,
    }

    impl Count {
        fn add(&self) {
            *self.n.lock().unwrap() += 1;
            self.changed.notify_all();
        }

        fn wait_for(&self, target: usize) {
            let mut n = self.n.lock().unwrap();
            while *n < target {
                n = self.changed.wait(n).unwrap();
            }
        }
    }

    /// Counts concurrently running jobs and remembers the highest count.
    #[derive(Default)]
    struct Concurrency {
        now: Mutex<(usize, usize)>,
    }

    impl Concurrency {
        fn enter(&self) {
            let mut now = self.now.lock().unwrap();
            now.0 += 1;
            now.1 = now.1.max(now.0);
        }

        fn leave(&self) {
            self.now.lock().unwrap().0 -= 1;
        }

        fn peak(&self) -> usize {
            self.now.lock().unwrap().1
        }
    }

    #[test]
    fn a_pool_of_zero_threads_is_invalid_input() {
        let error = ThreadPool::new(0).err().expect("new(0) must fail");
        assert_eq!(error.kind(), io::ErrorKind::InvalidInput);
    }

    #[test]
    fn the_default_size_is_cores_plus_four_capped_at_32() {
        let cores = thread::available_parallelism().map_or(1, |n| n.get());
        let size = ThreadPool::default_size();
        assert!((5..=32).contains(&size));
        assert_eq!(size, (cores + 4).min(32));
    }

    #[test]
    fn no_thread_exists_before_the_first_submit() {
        let pool = ThreadPool::new(4).unwrap();
        assert_eq!(pool.threads(), 0);
        pool.submit(Box::new(|| {})).unwrap();
        assert_eq!(pool.threads(), 1);
    }

    #[test]
    fn every_job_runs_exactly_once() {
        let runs: Arc<Vec<AtomicUsize>> =
            Arc::new((0..1000).map(|_| AtomicUsize::new(0)).collect());
        let pool = ThreadPool::new(8).unwrap();
        for i in 0..runs.len() {
            let runs = Arc::clone(&runs);
            pool.submit(Box::new(move || {
                runs[i].fetch_add(1, Ordering::SeqCst);
            }))
            .unwrap();
        }
        drop(pool);
        assert!(runs.iter().all(|n| n.load(Ordering::SeqCst) == 1));
    }

    #[test]
    fn at_most_max_threads_workers_are_alive_however_many_jobs_block() {
        let pool = ThreadPool::new(3).unwrap();
        let gate = Arc::new(Count::default());
        let running = Arc::new(Concurrency::default());
        let started = Arc::new(Count::default());
        let done = Arc::new(Count::default());
        for _ in 0..10 {
            let (gate, running) = (gate.clone(), running.clone());
            let (started, done) = (started.clone(), done.clone());
            pool.submit(Box::new(move || {
                running.enter();
                started.add();
                gate.wait_for(1);
                running.leave();
                done.add();
            }))
            .unwrap();
            assert!(pool.threads() <= 3);
        }
        // Workers are started by `submit` itself: every one that will ever exist exists now.
        assert_eq!(pool.threads(), 3);
        // Three jobs block at once before the gate opens; a fourth worker would make four.
        started.wait_for(3);
        gate.add();
        done.wait_for(10);
        assert_eq!(pool.threads(), 3);
        assert_eq!(running.peak(), 3);
    }

    #[test]
    fn an_idle_worker_takes_the_next_job_instead_of_a_new_thread() {
        let pool = ThreadPool::new(4).unwrap();
        let (tx, rx) = mpsc::channel();
        for round in 0..5 {
            // Wait until the worker is back on the condition variable, so that it is idle.
            while round > 0 && pool.shared.lock().idle == 0 {
                thread::yield_now();
            }
            let tx = tx.clone();
            pool.submit(Box::new(move || tx.send(round).unwrap()))
                .unwrap();
            assert_eq!(rx.recv().unwrap(), round);
        }
        assert_eq!(pool.threads(), 1);
    }

    #[test]
    fn workers_are_named_tulip_executor_n() {
        let pool = ThreadPool::new(2).unwrap();
        let gate = Arc::new(Count::default());
        let (tx, rx) = mpsc::channel();
        for _ in 0..2 {
            let (gate, tx) = (gate.clone(), tx.clone());
            pool.submit(Box::new(move || {
                tx.send(thread::current().name().map(str::to_owned))
                    .unwrap();
                gate.wait_for(1);
            }))
            .unwrap();
        }
        let mut names = vec![rx.recv().unwrap(), rx.recv().unwrap()];
        names.sort();
        gate.add();
        assert_eq!(
            names,
            [
                Some("tulip-executor-0".into()),
                Some("tulip-executor-1".into())
            ]
        );
    }

    #[test]
    fn dropping_the_pool_joins_every_worker() {
        thread_local! {
            // Dropped when its thread exits, which `join` waits for.
            static HELD: RefCell<Option<Arc<()>>> = const { RefCell::new(None) };
        }
        let token = Arc::new(());
        let pool = ThreadPool::new(4).unwrap();
        let gate = Arc::new(Count::default());
        let holding = Arc::new(Count::default());
        for _ in 0..4 {
            let (token, gate, holding) = (token.clone(), gate.clone(), holding.clone());
            pool.submit(Box::new(move || {
                HELD.with(|held| *held.borrow_mut() = Some(token));
                holding.add();
                gate.wait_for(1);
            }))
            .unwrap();
        }
        // The gate keeps each job on its own worker: four threads hold a clone.
        holding.wait_for(4);
        assert_eq!(Arc::strong_count(&token), 5);
        gate.add();
        drop(pool);
        assert_eq!(Arc::strong_count(&token), 1);
    }

    #[test]
    fn queued_jobs_finish_before_drop_returns() {
        let pool = ThreadPool::new(1).unwrap();
        // The only worker is held until `drop` has begun, so the jobs below are still queued
        // then.
        let shared = Arc::clone(&pool.shared);
        pool.submit(Box::new(move || {
            let mut state = shared.lock();
            while !state.shutdown {
                state = shared.work.wait(state).unwrap();
            }
        }))
        .unwrap();
        let finished = Arc::new(AtomicUsize::new(0));
        for _ in 0..100 {
            let finished = finished.clone();
            pool.submit(Box::new(move || {
                finished.fetch_add(1, Ordering::SeqCst);
            }))
            .unwrap();
        }
        drop(pool);
        assert_eq!(finished.load(Ordering::SeqCst), 100);
    }

    #[test]
    fn a_panicking_job_leaves_its_worker_and_the_pool_usable() {
        let pool = ThreadPool::new(1).unwrap();
        pool.submit(Box::new(|| panic!("a job's panic"))).unwrap();
        let (tx, rx) = mpsc::channel();
        pool.submit(Box::new(move || tx.send(thread::current().id()).unwrap()))
            .unwrap();
        let worker = rx.recv().unwrap();
        assert_eq!(pool.threads(), 1);
        let (tx, rx) = mpsc::channel();
        pool.submit(Box::new(move || tx.send(thread::current().id()).unwrap()))
            .unwrap();
        assert_eq!(rx.recv().unwrap(), worker);
    }

    #[test]
    fn a_failed_spawn_with_no_worker_is_returned_and_the_job_dropped() {
        let pool = ThreadPool::with_spawner(
            4,
            Box::new(|_, _| Err(io::Error::from(io::ErrorKind::OutOfMemory))),
        )
        .unwrap();
        let ran = Arc::new(AtomicUsize::new(0));
        let job_ran = ran.clone();
        let error = pool
            .submit(Box::new(move || {
                job_ran.fetch_add(1, Ordering::SeqCst);
            }))
            .expect_err("submit must fail without any worker");
        assert_eq!(error.kind(), io::ErrorKind::OutOfMemory);
        assert_eq!(pool.threads(), 0);
        drop(pool);
        assert_eq!(ran.load(Ordering::SeqCst), 0);
        assert_eq!(Arc::strong_count(&ran), 1);
    }

    #[test]
    fn a_failed_spawn_with_a_worker_queues_the_job_for_it() {
        let spawned = AtomicUsize::new(0);
        let pool = ThreadPool::with_spawner(
            4,
            Box::new(move |name, body| {
                if spawned.fetch_add(1, Ordering::SeqCst) == 0 {
                    thread::Builder::new().name(name).spawn(body)
                } else {
                    Err(io::Error::from(io::ErrorKind::OutOfMemory))
                }
            }),
        )
        .unwrap();
        let gate = Arc::new(Count::default());
        let finished = Arc::new(Count::default());
        for _ in 0..3 {
            let (gate, finished) = (gate.clone(), finished.clone());
            pool.submit(Box::new(move || {
                gate.wait_for(1);
                finished.add();
            }))
            .unwrap();
        }
        assert_eq!(pool.threads(), 1);
        gate.add();
        finished.wait_for(3);
    }
}
