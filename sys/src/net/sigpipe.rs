//! Writes that never raise `SIGPIPE`, for fds where `MSG_NOSIGNAL` does not apply (pipes).
//!
//! `SIGPIPE` is blocked in the calling thread around the write, and the one a failed write
//! generated is consumed before the thread's mask is restored: with `sigtimedwait` where it
//! exists, else with `sigwait` once `sigpending` shows it (macOS, OpenBSD).

use std::io;
use std::os::fd::BorrowedFd;

use nix::sys::signal::{SigSet, SigmaskHow, Signal};

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
    without_sigpipe(|| crate::fd::write(fd, buf))
}

/// Run `op` (one system call that may raise `SIGPIPE`) with `SIGPIPE` blocked in this thread,
/// consuming the one an `EPIPE` failure generated, as [`write_nosigpipe`] does.
pub(crate) fn without_sigpipe<R>(op: impl FnOnce() -> io::Result<R>) -> io::Result<R> {
    without_sigpipe_then(
        op,
        |result| matches!(result, Err(e) if e.raw_os_error() == Some(libc::EPIPE)),
    )?
}

/// [`without_sigpipe`] for a call whose result is not an `io::Result` (the BSDs' `sendfile`
/// gives a count with its error): `epipe` says whether `op`'s result is an `EPIPE` failure.
///
/// # Errors
/// Only blocking the signal's (`pthread_sigmask`, `sigpending`); `op`'s result is returned whole.
pub(crate) fn without_sigpipe_then<R>(
    op: impl FnOnce() -> R,
    epipe: impl FnOnce(&R) -> bool,
) -> io::Result<R> {
    let blocked = SigpipeBlocked::new()?;
    let was_pending = sigpipe_pending()?;
    let result = op();
    if !was_pending && epipe(&result) {
        consume_sigpipe();
    }
    drop(blocked);
    Ok(result)
}

/// `SIGPIPE` blocked in the calling thread until drop, which restores the thread's old mask.
struct SigpipeBlocked {
    old: SigSet,
}

impl SigpipeBlocked {
    fn new() -> io::Result<SigpipeBlocked> {
        let old = sigpipe_set().thread_swap_mask(SigmaskHow::SIG_BLOCK)?;
        Ok(SigpipeBlocked { old })
    }
}

impl Drop for SigpipeBlocked {
    fn drop(&mut self) {
        // It cannot fail: pthread_sigmask's only error is EINVAL for a bad `how`.
        let _ = self.old.thread_set_mask();
    }
}

/// Remove the pending `SIGPIPE` the last write generated, without waiting if there is none.
///
/// `sigtimedwait` through libc: neither nix nor rustix wraps it (rustix's `runtime` module has
/// a kernel-level one, with the kernel's signal set rather than libc's).
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
        // SAFETY: `set` (an initialised sigset_t inside the SigSet) and `zero` outlive the call;
        // a null `info` is allowed. A zero timeout makes it return EAGAIN at once when nothing
        // is pending (a kernel that discards ignored signals even when blocked, as FreeBSD may).
        let ret = unsafe { libc::sigtimedwait(set.as_ref(), std::ptr::null_mut(), &zero) };
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
        // SIGPIPE is blocked and pending, so this returns at once.
        let _ = sigpipe_set().wait();
    }
}

/// Whether `SIGPIPE` is pending for this thread or the process (`sigpending(2)`, through libc:
/// neither nix nor rustix wraps it).
fn sigpipe_pending() -> io::Result<bool> {
    let mut pending: libc::sigset_t = *SigSet::empty().as_ref();
    // SAFETY: `pending` is an initialised sigset_t that outlives the call, which only writes it.
    cvt(unsafe { libc::sigpending(&mut pending) })?;
    // SAFETY: sigpending succeeded, so `pending` holds a valid, initialised set.
    let pending = unsafe { SigSet::from_sigset_t_unchecked(pending) };
    Ok(pending.contains(Signal::SIGPIPE))
}

/// The signal set `{SIGPIPE}`.
fn sigpipe_set() -> SigSet {
    SigSet::from(Signal::SIGPIPE)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    fn sigpipe_blocked() -> bool {
        let mask = SigSet::thread_get_mask().unwrap();
        mask.contains(Signal::SIGPIPE)
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
            // raise(3) sends it to this very thread, where it is blocked.
            nix::sys::signal::raise(Signal::SIGPIPE).unwrap();
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
