//! Noticing `fork(2)`: a process-wide fork generation, bumped in every child by a
//! `pthread_atfork` handler, so that an event loop can tell with one atomic load that it was
//! inherited from a parent process (and must not touch the kernel objects it shares with it:
//! an epoll instance, an eventfd, a signal pipe, an io_uring ring).
//!
//! Why not compare `getpid()`: on modern glibc it is a real system call, too costly for the
//! checks every scheduling call makes. The handler is installed once, by the first call to
//! [`install`], which every loop makes when it is created; a fork before any loop exists
//! needs no notice. Only `fork(2)` through libc runs the handler (a raw `clone` system call
//! does not), as for every `pthread_atfork` user.

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

/// How many forks separate this process from the one the handler was installed in.
static GENERATION: AtomicU64 = AtomicU64::new(0);

/// Whether the handler was installed (and the error, if `pthread_atfork` refused).
static INSTALLED: OnceLock<Result<(), i32>> = OnceLock::new();

/// Runs in the child, right after `fork`, on the thread that forked: only async-signal-safe
/// work is allowed there, and one atomic add is.
extern "C" fn bump_generation() {
    GENERATION.fetch_add(1, Ordering::Relaxed);
}

/// Install the child handler, once per process.
///
/// # Errors
/// `pthread_atfork`'s (`ENOMEM`).
pub fn install() -> io::Result<()> {
    let result = INSTALLED.get_or_init(|| {
        // SAFETY: `bump_generation` is an `extern "C" fn()` that lives for the whole program
        // (a plain function) and only does an atomic add, which is async-signal-safe; no
        // prepare or parent handler is given (null is allowed for each).
        let ret = unsafe { libc::pthread_atfork(None, None, Some(bump_generation)) };
        if ret == 0 {
            Ok(())
        } else {
            Err(ret)
        }
    });
    (*result).map_err(io::Error::from_raw_os_error)
}

/// The fork generation of this process: 0 in the process that installed the handler, one more
/// in each child forked since (a grandchild has 2). Call [`install`] first; one relaxed atomic
/// load, cheap enough for every call of a hot path.
#[inline]
pub fn generation() -> u64 {
    GENERATION.load(Ordering::Relaxed)
}
