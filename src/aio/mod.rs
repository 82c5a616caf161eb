//! Asynchronous file I/O, the completion model ("tell me when the read is done"), in both of
//! Tulip's styles: futures ([`EventLoop::read_at`], [`read_at`], ...) and callbacks, as the
//! seed's `pyaio.aio_read(fd, offset, len, callback)` ([`EventLoop::aio_read`]).
//!
//! Two engines behind one interface ([`AioEngine`]): **io_uring** on Linux (tulip-sys's own
//! ring, its eventfd watched by the loop's selector), and **pool**: `pread`/`pwrite`/`fsync`
//! on the loop's thread pool, everywhere. The loop picks io_uring when the kernel allows it
//! and falls back to the pool when it refuses (`ENOSYS`, `EPERM`), saying why
//! ([`EventLoop::aio_fallback`]); `TULIP_AIO=uring|pool` or [`EventLoop::set_aio_engine`]
//! choose one.
//!
//! ```
//! use std::sync::Arc;
//!
//! let path = std::env::temp_dir().join(format!("tulip-aio-doc-{}", std::process::id()));
//! std::fs::write(&path, b"Hello, completion model")?;
//! let file = Arc::new(std::fs::File::open(&path)?);
//!
//! let lp = tulip::EventLoop::new()?;
//! let data = lp.run_until_complete(async move { tulip::aio::read_at(&file, 7, 10).await })??;
//! assert_eq!(data, b"completion");
//! println!("read by the {} engine", lp.aio_engine());
//! # std::fs::remove_file(&path)?;
//! # Ok::<(), std::io::Error>(())
//! ```

mod pool;
mod request;
#[cfg(target_os = "linux")]
mod uring;

use std::cell::{Cell, RefCell};
use std::fmt;
use std::fs::File;
use std::io;
use std::sync::Arc;

use crate::{EventLoop, Future};
use pool::PoolEngine;
use request::{Finished, Pending, Request};
#[cfg(target_os = "linux")]
use uring::UringEngine;

/// The environment variable that chooses the engine of new loops: `TULIP_AIO=uring|pool`.
pub const AIO_ENV: &str = "TULIP_AIO";

/// The io_uring depth (submission queue entries) unless [`EventLoop::set_aio_depth`] says
/// otherwise.
pub const DEFAULT_DEPTH: u32 = 256;

/// Which engine runs a loop's asynchronous file I/O.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum AioEngine {
    /// io_uring (Linux 5.6+): one ring per loop, completions through its eventfd.
    Uring,
    /// Blocking `pread`/`pwrite`/`fsync` on the loop's thread pool.
    Pool,
}

impl AioEngine {
    /// The engine `TULIP_AIO` names, or `None` if it is unset or empty.
    ///
    /// # Errors
    /// `InvalidInput` for any other value.
    pub fn from_env() -> io::Result<Option<AioEngine>> {
        match std::env::var(AIO_ENV) {
            Err(std::env::VarError::NotPresent) => Ok(None),
            Ok(v) if v.is_empty() => Ok(None),
            Ok(v) if v == "uring" => Ok(Some(AioEngine::Uring)),
            Ok(v) if v == "pool" => Ok(Some(AioEngine::Pool)),
            other => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{AIO_ENV}={other:?} is not an engine: use uring or pool"),
            )),
        }
    }

    /// `"uring"` or `"pool"`.
    pub fn name(self) -> &'static str {
        match self {
            AioEngine::Uring => "uring",
            AioEngine::Pool => "pool",
        }
    }
}

impl fmt::Display for AioEngine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A loop's engine, started at the first request (or when chosen).
enum Engine {
    /// Boxed: a ring is a few hundred bytes of pointers and tables.
    #[cfg(target_os = "linux")]
    Uring(Box<UringEngine>),
    Pool(PoolEngine),
}

/// How the next engine is made.
#[derive(Copy, Clone)]
struct Settings {
    /// `None`: `TULIP_AIO`'s, else io_uring with the pool as fallback.
    chosen: Option<AioEngine>,
    depth: u32,
    /// An errno io_uring's setup is made to fail with (a refusal, simulated for tests).
    #[cfg_attr(not(target_os = "linux"), allow(dead_code))]
    refusal: Option<i32>,
}

/// The loop's part of this module: its engine and how to make it.
pub(crate) struct AioState {
    engine: RefCell<Option<Engine>>,
    settings: Cell<Settings>,
    /// Why io_uring is not used, when the loop fell back to the pool.
    fallback: RefCell<Option<String>>,
}

impl AioState {
    pub(crate) fn new() -> AioState {
        AioState {
            engine: RefCell::new(None),
            settings: Cell::new(Settings {
                chosen: None,
                depth: DEFAULT_DEPTH,
                refusal: None,
            }),
            fallback: RefCell::new(None),
        }
    }
}

impl EventLoop {
    /// The engine that runs this loop's asynchronous file I/O, starting it if no request has
    /// yet: io_uring where the kernel allows it, else the pool (see
    /// [`aio_fallback`](Self::aio_fallback)), unless `TULIP_AIO` or
    /// [`set_aio_engine`](Self::set_aio_engine) chose.
    ///
    /// # Errors
    /// An invalid `TULIP_AIO`; the kernel's error when io_uring was chosen explicitly and
    /// refused; [`LoopError::Closed`](crate::LoopError::Closed).
    pub fn try_aio_engine(&self) -> io::Result<AioEngine> {
        self.ensure_engine()?;
        let engine = self.aio_state().engine.borrow();
        Ok(engine.as_ref().map_or(AioEngine::Pool, Engine::kind))
    }

    /// [`try_aio_engine`](Self::try_aio_engine), with [`AioEngine::Pool`] where it fails (as
    /// the requests then do, with its error).
    pub fn aio_engine(&self) -> AioEngine {
        self.try_aio_engine().unwrap_or(AioEngine::Pool)
    }

    /// Why this loop runs the pool engine although io_uring was not refused by choice: the
    /// kernel's answer to `io_uring_setup` (`ENOSYS`, `EPERM`, ...). `None` while io_uring
    /// runs, or before the engine started, or when the pool was chosen.
    pub fn aio_fallback(&self) -> Option<String> {
        self.aio_state().fallback.borrow().clone()
    }

    /// Run this loop's asynchronous file I/O on `engine` from now on.
    ///
    /// # Errors
    /// `Unsupported` for io_uring on an OS without it; the kernel's error if io_uring is
    /// refused (nothing falls back when it was asked for by name); `InvalidInput` while
    /// requests are in flight on the current engine; [`LoopError::Closed`](crate::LoopError::Closed).
    pub fn set_aio_engine(&self, engine: AioEngine) -> io::Result<()> {
        self.replace_engine(|settings| settings.chosen = Some(engine))
    }

    /// Set the io_uring depth (submission queue entries; the completion queue has twice as
    /// many, and more requests than that wait in user space, never fail). Remakes an io_uring
    /// engine already running.
    ///
    /// # Errors
    /// `InvalidInput` for 0 or above 32,768, or while requests are in flight.
    pub fn set_aio_depth(&self, depth: u32) -> io::Result<()> {
        if depth == 0 || depth > 32_768 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("an io_uring depth of {depth} is outside 1..=32768"),
            ));
        }
        self.replace_engine(|settings| settings.depth = depth)
    }

    /// The io_uring depth the engine has (or will have): see
    /// [`set_aio_depth`](Self::set_aio_depth).
    pub fn aio_depth(&self) -> u32 {
        #[cfg(target_os = "linux")]
        if let Some(Engine::Uring(uring)) = &*self.aio_state().engine.borrow() {
            return uring.depth();
        }
        self.aio_state().settings.get().depth
    }

    /// For tests of the fallback: make io_uring's setup on this loop fail with `errno`
    /// (`libc::EPERM`, `libc::ENOSYS`), as a seccomp filter or `kernel.io_uring_disabled`
    /// makes it fail; `None` stops simulating. The engine is chosen again at the next request.
    ///
    /// # Errors
    /// `InvalidInput` while requests are in flight; [`LoopError::Closed`](crate::LoopError::Closed).
    pub fn simulate_io_uring_refusal(&self, errno: Option<i32>) -> io::Result<()> {
        self.replace_engine(|settings| settings.refusal = errno)
    }

    /// Requests started and not yet completed, on whichever engine runs.
    pub fn aio_in_flight(&self) -> usize {
        let engine = self.aio_state().engine.borrow();
        engine.as_ref().map_or(0, Engine::in_flight)
    }

    /// How many `io_uring_enter` calls this loop's ring has made (0 on the pool engine).
    pub fn aio_enters(&self) -> u64 {
        #[cfg(target_os = "linux")]
        if let Some(Engine::Uring(uring)) = &*self.aio_state().engine.borrow() {
            return uring.enters();
        }
        0
    }

    /// Read up to `len` bytes of `file` at `offset`, as `pread(2)`. The future's value holds
    /// the bytes read: fewer than `len` at the end of the file, none at or past it.
    ///
    /// The request holds `file` (and its buffer) until the operation completes, even if the
    /// future is cancelled or dropped: the kernel may still write into the buffer.
    ///
    /// # Errors
    /// In the future: the kernel's (`EBADF` for a file not open for reading, `EISDIR`,
    /// `EINVAL`, ...); `InvalidInput` for an offset past `i64::MAX` or a length past
    /// 2,147,479,552 (Linux's most for one read); [`LoopError::Closed`](crate::LoopError::Closed).
    pub fn read_at(&self, file: &Arc<File>, offset: u64, len: usize) -> Future<Vec<u8>> {
        let future = self.create_future();
        let request = Request::Read {
            file: Arc::clone(file),
            offset,
            len,
            reuse: None,
        };
        self.start_aio(request, Pending::Read(future.clone()));
        future
    }

    /// [`read_at`](Self::read_at) into `buf`, a buffer of the caller's: up to
    /// `buf.capacity()` bytes are read (its length and contents do not matter), and the
    /// future's value is `buf` holding the bytes read. A loop of reads that gives each one the
    /// previous one's buffer allocates nothing per read, as a blocking `pread` loop reusing
    /// its buffer.
    ///
    /// ```
    /// # use std::sync::Arc;
    /// # let path = std::env::temp_dir().join(format!("tulip-aio-read-into-{}", std::process::id()));
    /// # std::fs::write(&path, b"0123456789")?;
    /// let file = Arc::new(std::fs::File::open(&path)?);
    /// let lp = tulip::EventLoop::new()?;
    /// let sum = lp.run_until_complete(async move {
    ///     let mut buf = Vec::with_capacity(4);
    ///     let mut sum = 0u32;
    ///     for offset in [0, 4, 8] {
    ///         buf = tulip::aio::read_into(&file, offset, buf).await?; // the same allocation
    ///         sum += buf.iter().map(|&b| u32::from(b - b'0')).sum::<u32>();
    ///     }
    ///     Ok::<u32, std::io::Error>(sum)
    /// })??;
    /// assert_eq!(sum, 45);
    /// # std::fs::remove_file(&path)?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    ///
    /// # Errors
    /// As [`read_at`](Self::read_at), the capacity being the length; on an error `buf` is
    /// dropped.
    pub fn read_into(&self, file: &Arc<File>, offset: u64, buf: Vec<u8>) -> Future<Vec<u8>> {
        let future = self.create_future();
        let request = Request::Read {
            file: Arc::clone(file),
            offset,
            len: buf.capacity(),
            reuse: Some(buf),
        };
        self.start_aio(request, Pending::Read(future.clone()));
        future
    }

    /// Write `buf` into `file` at `offset`, as `pwrite(2)`; the future's value is the count
    /// written. As [`read_at`](Self::read_at) otherwise.
    ///
    /// # Errors
    /// As [`read_at`](Self::read_at) (`EBADF` for a file not open for writing).
    pub fn write_at(&self, file: &Arc<File>, offset: u64, buf: Vec<u8>) -> Future<usize> {
        let future = self.create_future();
        let request = Request::Write {
            file: Arc::clone(file),
            offset,
            buf,
        };
        self.start_aio(request, Pending::Write(future.clone()));
        future
    }

    /// Flush `file`'s data and metadata to its device, as `fsync(2)`.
    ///
    /// # Errors
    /// The kernel's (`EINVAL` for a file that cannot be synced); [`LoopError::Closed`](crate::LoopError::Closed).
    pub fn fsync(&self, file: &Arc<File>) -> Future<()> {
        self.sync(file, false)
    }

    /// Flush `file`'s data (and the metadata needed to read it back), as `fdatasync(2)`.
    ///
    /// # Errors
    /// As [`fsync`](Self::fsync).
    pub fn fdatasync(&self, file: &Arc<File>) -> Future<()> {
        self.sync(file, true)
    }

    fn sync(&self, file: &Arc<File>, data_only: bool) -> Future<()> {
        let future = self.create_future();
        let request = Request::Sync {
            file: Arc::clone(file),
            data_only,
        };
        self.start_aio(request, Pending::Sync(future.clone()));
        future
    }

    /// The seed's `aio_read(fd, offset, len, callback)`: read up to `len` bytes of `file` at
    /// `offset` and call `callback` on the loop's thread with the bytes or the error, as
    /// [`read_at`](Self::read_at)'s future would give them.
    ///
    /// # Errors
    /// [`LoopError::Closed`](crate::LoopError::Closed); other errors go to the callback.
    pub fn aio_read(
        &self,
        file: &Arc<File>,
        offset: u64,
        len: usize,
        callback: impl FnOnce(&EventLoop, io::Result<Vec<u8>>) + 'static,
    ) -> io::Result<()> {
        self.check_open()?;
        let future = self.read_at(file, offset, len);
        future.add_done_callback(move |f| call_back(f, callback));
        Ok(())
    }

    /// The seed's `aio_write`: write `buf` into `file` at `offset` and call `callback` with
    /// the count written or the error.
    ///
    /// # Errors
    /// [`LoopError::Closed`](crate::LoopError::Closed); other errors go to the callback.
    pub fn aio_write(
        &self,
        file: &Arc<File>,
        offset: u64,
        buf: Vec<u8>,
        callback: impl FnOnce(&EventLoop, io::Result<usize>) + 'static,
    ) -> io::Result<()> {
        self.check_open()?;
        let future = self.write_at(file, offset, buf);
        future.add_done_callback(move |f| call_back(f, callback));
        Ok(())
    }

    /// Check `request` and hand it to the engine, or fail `pending` at once.
    fn start_aio(&self, request: Request, pending: Pending) {
        if let Err(e) = request.check().and_then(|()| self.ensure_engine()) {
            pending.finish(Err(e), None);
            return;
        }
        let mut engine = self.aio_state().engine.borrow_mut();
        match engine.as_mut() {
            #[cfg(target_os = "linux")]
            Some(Engine::Uring(uring)) => uring.start(request, pending),
            Some(Engine::Pool(pool)) => pool.start(self, request, pending),
            None => unreachable!("ensure_engine made an engine"),
        }
    }

    /// Start an engine if there is none.
    fn ensure_engine(&self) -> io::Result<()> {
        self.check_open()?;
        let state = self.aio_state();
        if state.engine.borrow().is_none() {
            let engine = self.make_engine()?;
            *state.engine.borrow_mut() = Some(engine);
        }
        Ok(())
    }

    fn make_engine(&self) -> io::Result<Engine> {
        let state = self.aio_state();
        let settings = state.settings.get();
        let chosen = match settings.chosen {
            Some(engine) => Some(engine),
            None => AioEngine::from_env()?,
        };
        *state.fallback.borrow_mut() = None;
        match chosen {
            Some(AioEngine::Pool) => Ok(Engine::Pool(PoolEngine::new())),
            Some(AioEngine::Uring) => self.make_uring(settings),
            None => match self.make_uring(settings) {
                Ok(engine) => Ok(engine),
                Err(e) => {
                    let why = format!("io_uring refused ({e}); running on the thread pool");
                    if self.debug() {
                        eprintln!("tulip: {why}");
                    }
                    *state.fallback.borrow_mut() = Some(why);
                    Ok(Engine::Pool(PoolEngine::new()))
                }
            },
        }
    }

    #[cfg(target_os = "linux")]
    fn make_uring(&self, settings: Settings) -> io::Result<Engine> {
        UringEngine::new(self, settings.depth, settings.refusal).map(|u| Engine::Uring(Box::new(u)))
    }

    #[cfg(not(target_os = "linux"))]
    fn make_uring(&self, _settings: Settings) -> io::Result<Engine> {
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "io_uring exists on Linux only",
        ))
    }

    /// Change the settings and drop the engine (when idle), so the next request makes one
    /// by the new settings; an explicit choice is made at once, so its error shows here.
    fn replace_engine(&self, change: impl FnOnce(&mut Settings)) -> io::Result<()> {
        self.check_open()?;
        let state = self.aio_state();
        if state
            .engine
            .borrow()
            .as_ref()
            .is_some_and(|e| e.in_flight() > 0)
        {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "asynchronous file requests are in flight: change the engine once they finish",
            ));
        }
        let mut settings = state.settings.get();
        change(&mut settings);
        state.settings.set(settings);
        let old = state.engine.borrow_mut().take();
        if let Some(old) = old {
            self.close_engine(old);
        }
        if settings.chosen.is_some() {
            self.try_aio_engine()?;
        }
        Ok(())
    }

    /// The start of each iteration: the io_uring engine submits what this iteration's
    /// predecessor queued (one `io_uring_enter`) and completes what is done.
    pub(crate) fn flush_aio(&self) -> io::Result<()> {
        #[cfg(target_os = "linux")]
        {
            let finished = match &mut *self.aio_state().engine.borrow_mut() {
                Some(Engine::Uring(uring)) => uring.flush()?,
                _ => return Ok(()),
            };
            self.finish_uring(finished);
        }
        Ok(())
    }

    #[cfg(target_os = "linux")]
    fn finish_uring(&self, mut finished: Vec<tulip_sys::uring::Completion<Pending>>) {
        if finished.is_empty() {
            return;
        }
        for done in finished.drain(..) {
            done.payload.finish(done.result, done.buf);
        }
        if let Some(Engine::Uring(uring)) = &mut *self.aio_state().engine.borrow_mut() {
            uring.recycle(finished);
        }
    }

    /// Closing the loop: io_uring cancels every request in flight (those already done keep
    /// their result) and waits for every completion; the pool waits for its jobs (a thread
    /// cannot be interrupted). Each future is completed (its done callbacks no longer run),
    /// so no completion is lost and no buffer is freed while the kernel may write into it.
    pub(crate) fn close_aio(&self) {
        let engine = self.aio_state().engine.borrow_mut().take();
        if let Some(engine) = engine {
            self.close_engine(engine);
        }
    }

    /// In a child that inherited the loop through `fork`: let go of the engine without waiting
    /// for its requests (they are the parent's: an io_uring ring is shared memory, and the
    /// pool's threads do not exist here). Its resources are leaked; a new engine is made at the
    /// next request.
    pub(crate) fn abandon_aio(&self) {
        let engine = self.aio_state().engine.borrow_mut().take();
        std::mem::forget(engine);
    }

    fn close_engine(&self, engine: Engine) {
        match engine {
            #[cfg(target_os = "linux")]
            Engine::Uring(uring) => {
                for done in (*uring).close(self) {
                    done.payload.finish(done.result, done.buf);
                }
            }
            Engine::Pool(mut pool) => {
                let mut finished = Vec::new();
                pool.wait_all(&mut finished);
                finish_all(finished);
            }
        }
    }
}

impl Engine {
    fn kind(&self) -> AioEngine {
        match self {
            #[cfg(target_os = "linux")]
            Engine::Uring(_) => AioEngine::Uring,
            Engine::Pool(_) => AioEngine::Pool,
        }
    }

    fn in_flight(&self) -> usize {
        match self {
            #[cfg(target_os = "linux")]
            Engine::Uring(uring) => uring.in_flight(),
            Engine::Pool(pool) => pool.in_flight(),
        }
    }
}

fn finish_all(finished: Vec<Finished>) {
    for (pending, result, buf) in finished {
        pending.finish(result, buf);
    }
}

/// The eventfd's reader: take the ring's completions.
#[cfg(target_os = "linux")]
fn on_completions(lp: &EventLoop) {
    let drained = match &mut *lp.aio_state().engine.borrow_mut() {
        Some(Engine::Uring(uring)) => uring.on_eventfd(),
        _ => return,
    };
    match drained {
        Ok(finished) => lp.finish_uring(finished),
        Err(e) => {
            let context = crate::ExceptionContext::from_error("the io_uring eventfd", e);
            lp.call_exception_handler(&context);
        }
    }
}

/// The pool's `call_soon_threadsafe` callback: take the outcomes its workers left.
fn collect(lp: &EventLoop) {
    let mut finished = Vec::new();
    if let Some(Engine::Pool(pool)) = &mut *lp.aio_state().engine.borrow_mut() {
        pool.collect(&mut finished);
    }
    finish_all(finished);
}

/// Hand a done future's outcome to a seed-style callback.
fn call_back<T: 'static>(future: &Future<T>, callback: impl FnOnce(&EventLoop, io::Result<T>)) {
    let outcome = future.take_result();
    match crate::get_running_loop() {
        Ok(lp) => callback(&lp, outcome),
        // Done callbacks run on the loop, so it is running; nothing to call back without it.
        Err(_) => drop(outcome),
    }
}

/// [`EventLoop::read_at`] on the running loop: for coroutines.
///
/// ```
/// # use std::sync::Arc;
/// # let path = std::env::temp_dir().join(format!("tulip-aio-read-at-{}", std::process::id()));
/// # std::fs::write(&path, b"0123456789")?;
/// let file = Arc::new(std::fs::File::open(&path)?);
/// let lp = tulip::EventLoop::new()?;
/// let tail = lp.run_until_complete(async move { tulip::aio::read_at(&file, 8, 100).await })??;
/// assert_eq!(tail, b"89"); // short at the end of the file
/// # std::fs::remove_file(&path)?;
/// # Ok::<(), std::io::Error>(())
/// ```
///
/// # Errors
/// As [`EventLoop::read_at`]; outside a running loop, a future failed with
/// [`LoopError::NoRunningLoop`](crate::LoopError::NoRunningLoop).
pub fn read_at(file: &Arc<File>, offset: u64, len: usize) -> Future<Vec<u8>> {
    on_running_loop(|lp| lp.read_at(file, offset, len))
}

/// [`EventLoop::read_into`] on the running loop: a read into the caller's buffer, given back
/// holding the bytes read.
///
/// # Errors
/// As [`read_at`].
pub fn read_into(file: &Arc<File>, offset: u64, buf: Vec<u8>) -> Future<Vec<u8>> {
    on_running_loop(|lp| lp.read_into(file, offset, buf))
}

/// [`EventLoop::write_at`] on the running loop.
///
/// # Errors
/// As [`read_at`].
pub fn write_at(file: &Arc<File>, offset: u64, buf: Vec<u8>) -> Future<usize> {
    on_running_loop(|lp| lp.write_at(file, offset, buf))
}

/// [`EventLoop::fsync`] on the running loop.
///
/// # Errors
/// As [`read_at`].
pub fn fsync(file: &Arc<File>) -> Future<()> {
    on_running_loop(|lp| lp.fsync(file))
}

/// [`EventLoop::fdatasync`] on the running loop.
///
/// # Errors
/// As [`read_at`].
pub fn fdatasync(file: &Arc<File>) -> Future<()> {
    on_running_loop(|lp| lp.fdatasync(file))
}

fn on_running_loop<T: 'static>(f: impl FnOnce(&EventLoop) -> Future<T>) -> Future<T> {
    match crate::get_running_loop() {
        Ok(lp) => f(&lp),
        Err(e) => Future::failed(e),
    }
}
