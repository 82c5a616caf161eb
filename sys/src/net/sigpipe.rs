//! Writes that never raise `SIGPIPE`, for fds where `MSG_NOSIGNAL` does not apply (pipes).
//!
//! `SIGPIPE` is blocked in the calling thread around the write, and the one a failed write
//! generated is consumed before the thread's mask is restored: with `sigtimedwait` where it
//! exists, else with `sigwait` once `sigpending` shows it (macOS, OpenBSD).

use std::io;
use std::mem::MaybeUninit;
use std::os::fd::BorrowedFd;

use crate::syscall::cvt;

/// `write(2)` to a pipe (or any fd) without the process ever receiving `SIGPIPE`, for fds where
/// `MSG_NOSIGNAL` does not apply. `SIGPIPE` is blocked in this thread around the write; if the
/// write fails with `EPIPE` and `SIGPIPE` was not already pending before, the `SIGPIPE` the
/// write generated is consumed before the thread's signal mask is restored. A `SIGPIPE` that was
/// pending before the call is left pending. Only the calling thread's mask changes, so any
/// thread may call it.
///
/// # Errors
/// The write's: `BrokenPipe` (`EPIPE`) once the reader is gone, `WouldBlock` when a
/// non-blocking pipe is full, `Interrupted` (not retried), ...
pub fn write_nosigpipe(fd: BorrowedFd<'_>, buf: &[u8]) -> io::Result<usize> {
    let blocked = SigpipeBlocked::new()?;
    let was_pending = sigpipe_pending()?;
    let result = crate::fd::write(fd, buf);
    if !was_pending && matches!(&result, Err(e) if e.raw_os_error() == Some(libc::EPIPE)) {
        consume_sigpipe();
    }
    drop(blocked);
    result
}

/// `SIGPIPE` blocked in the calling thread until drop, which restores the thread's old mask.
struct SigpipeBlocked {
    old: libc::sigset_t,
}

impl SigpipeBlocked {
    fn new() -> io::Result<SigpipeBlocked> {
        let set = sigpipe_set();
        let mut old = empty_sigset();
        // SAFETY: `set` and `old` are initialised sigset_t values that outlive the call.
        let err = unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, &mut old) };
        // pthread_sigmask returns the error number rather than setting errno.
        if err != 0 {
            return Err(io::Error::from_raw_os_error(err));
        }
        Ok(SigpipeBlocked { old })
    }
}

impl Drop for SigpipeBlocked {
    fn drop(&mut self) {
        // SAFETY: `self.old` is the initialised mask pthread_sigmask gave us; a null `oldset`
        // is allowed. It cannot fail: its only error is EINVAL for a bad `how`.
        unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &self.old, std::ptr::null_mut()) };
    }
}

/// Remove the pending `SIGPIPE` the last write generated, without waiting if there is none.
#[cfg(any(
    target_os = "linux",
    target_os = "android",
    target_os = "freebsd",
    target_os = "netbsd",
    target_os = "dragonfly"
))]
fn consume_sigpipe() {
    let set = sigpipe_set();
    let zero = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    loop {
        // SAFETY: `set` and `zero` are initialised and outlive the call; a null `info` is
        // allowed. A zero timeout makes it return EAGAIN at once when nothing is pending (a
        // kernel that discards ignored signals even when blocked, as FreeBSD may).
        let ret = unsafe { libc::sigtimedwait(&set, std::ptr::null_mut(), &zero) };
        // Another signal's handler may interrupt even a zero wait: try again.
        if ret != -1 || io::Error::last_os_error().kind() != io::ErrorKind::Interrupted {
            return;
        }
    }
}

/// Remove the pending `SIGPIPE` the last write generated, without waiting if there is none.
///
/// macOS and OpenBSD have no `sigtimedwait`, and `sigwait` would wait forever where the kernel
/// discarded the signal (XNU drops ignored signals even while they are blocked), so `sigwait`
/// only once `sigpending` shows it.
#[cfg(not(any(
    target_os = "linux",
    target_os = "android",
    target_os = "freebsd",
    target_os = "netbsd",
    target_os = "dragonfly"
)))]
fn consume_sigpipe() {
    if let Ok(true) = sigpipe_pending() {
        let set = sigpipe_set();
        let mut signum: libc::c_int = 0;
        // SAFETY: `set` and `signum` are valid and outlive the call. SIGPIPE is blocked and
        // pending, so it returns at once.
        unsafe { libc::sigwait(&set, &mut signum) };
    }
}

/// Whether `SIGPIPE` is pending for this thread or the process (`sigpending(2)`).
fn sigpipe_pending() -> io::Result<bool> {
    let mut set = empty_sigset();
    // SAFETY: `set` is a writable sigset_t that outlives the call.
    cvt(unsafe { libc::sigpending(&mut set) })?;
    // SAFETY: `set` is initialised and SIGPIPE a valid signal number.
    Ok(unsafe { libc::sigismember(&set, libc::SIGPIPE) } == 1)
}

/// The signal set `{SIGPIPE}`.
fn sigpipe_set() -> libc::sigset_t {
    let mut set = empty_sigset();
    // SAFETY: `set` is an initialised sigset_t and SIGPIPE a valid signal number, so sigaddset
    // cannot fail.
    unsafe { libc::sigaddset(&mut set, libc::SIGPIPE) };
    set
}

fn empty_sigset() -> libc::sigset_t {
    let mut set = MaybeUninit::<libc::sigset_t>::uninit();
    // SAFETY: sigemptyset initialises the whole set behind a valid pointer and cannot fail.
    unsafe { libc::sigemptyset(set.as_mut_ptr()) };
    // SAFETY: initialised by sigemptyset just above.
    unsafe { set.assume_init() }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    fn sigpipe_blocked() -> bool {
        let mut mask = empty_sigset();
        // SAFETY: a null `set` only reads the mask into `mask`, which is writable.
        let err = unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, std::ptr::null(), &mut mask) };
        assert_eq!(err, 0);
        // SAFETY: `mask` is initialised and SIGPIPE a valid signal number.
        unsafe { libc::sigismember(&mask, libc::SIGPIPE) == 1 }
    }

    /// A write to a pipe whose reader is gone, from a fresh thread whose mask has `SIGPIPE`
    /// blocked or not: `BrokenPipe`, no `SIGPIPE` left pending, and the mask as it was.
    fn write_to_broken_pipe_in_thread(block: bool) {
        std::thread::spawn(move || {
            let _blocked = block.then(|| SigpipeBlocked::new().unwrap());
            let (r, w) = crate::fd::pipe().unwrap();
            drop(r);
            let err = write_nosigpipe(w.as_fd(), b"x").unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::BrokenPipe, "{err}");
            assert!(
                !sigpipe_pending().unwrap(),
                "the write's SIGPIPE was consumed"
            );
            assert_eq!(sigpipe_blocked(), block, "the thread's mask is restored");
        })
        .join()
        .unwrap();
    }

    #[test]
    fn write_nosigpipe_to_a_closed_pipe_is_broken_pipe_and_leaves_no_sigpipe_pending() {
        // Unblocked, a stray SIGPIPE would be delivered when the mask is restored (ignored by
        // the test harness, fatal in a program that keeps SIG_DFL).
        write_to_broken_pipe_in_thread(false);
        // With SIGPIPE blocked by the caller, Linux keeps the write's SIGPIPE pending even
        // though it is ignored, so only consuming it passes the pending check.
        write_to_broken_pipe_in_thread(true);
    }

    #[test]
    fn write_nosigpipe_leaves_a_sigpipe_that_was_already_pending() {
        std::thread::spawn(|| {
            let _blocked = SigpipeBlocked::new().unwrap();
            // SAFETY: sends SIGPIPE to this very thread, where it is blocked.
            assert_eq!(
                unsafe { libc::pthread_kill(libc::pthread_self(), libc::SIGPIPE) },
                0
            );
            if !sigpipe_pending().unwrap() {
                // XNU discards ignored signals even while blocked: nothing to test.
                return;
            }
            let (r, w) = crate::fd::pipe().unwrap();
            drop(r);
            let err = write_nosigpipe(w.as_fd(), b"x").unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::BrokenPipe, "{err}");
            assert!(
                sigpipe_pending().unwrap(),
                "the earlier SIGPIPE is the caller's"
            );
            consume_sigpipe();
            assert!(!sigpipe_pending().unwrap());
        })
        .join()
        .unwrap();
    }
}
