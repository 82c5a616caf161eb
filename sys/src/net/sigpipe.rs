//! Writes that never raise `SIGPIPE`, for fds where `MSG_NOSIGNAL` does not apply (pipes).
//!
//! Where the kernel has `RWF_NOSIGNAL` (Linux 6.18), the write is one `pwritev2` with that
//! flag: the kernel itself does not raise the signal. Elsewhere, and for the files that refuse
//! the flag, `SIGPIPE` is blocked in the calling thread around the write, and the one a failed
//! write generated is consumed before the thread's mask is restored: with `sigtimedwait` where
//! it exists, else with `sigwait` once `sigpending` shows it (macOS, OpenBSD). That costs three
//! system calls more per write (two of `pthread_sigmask`, one of `sigpending`).

use std::io;
use std::os::fd::BorrowedFd;

use nix::sys::signal::{SigSet, SigmaskHow, Signal};

use crate::syscall::cvt;

/// `write(2)` to a pipe (or any fd) without the process ever receiving `SIGPIPE`, for fds where
/// `MSG_NOSIGNAL` does not apply.
///
/// On Linux 6.18 and later, one `pwritev2` with `RWF_NOSIGNAL` at the current position (what
/// `write` does). Otherwise, or if the file refuses the flag (one without `write_iter` in the
/// kernel), `SIGPIPE` is blocked in this thread around the write; if the write fails with
/// `EPIPE` and `SIGPIPE` was not already pending before, the `SIGPIPE` the write generated is
/// consumed before the thread's signal mask is restored. A `SIGPIPE` that was pending before
/// the call is left pending. Only the calling thread's mask changes, so any thread may call it.
///
/// # Errors
/// The write's: `BrokenPipe` (`EPIPE`) once the reader is gone, `WouldBlock` when a
/// non-blocking pipe is full, `Interrupted` (not retried), ...
#[inline]
pub fn write_nosigpipe(fd: BorrowedFd<'_>, buf: &[u8]) -> io::Result<usize> {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    if nosignal::supported() {
        match nosignal::write(fd, buf) {
            Err(e) if e.raw_os_error() == Some(libc::EOPNOTSUPP) => {}
            done => return done,
        }
    }
    write_masked(fd, buf)
}

/// [`write_nosigpipe`] with the signal mask: for kernels without `RWF_NOSIGNAL` and the files
/// that refuse it.
fn write_masked(fd: BorrowedFd<'_>, buf: &[u8]) -> io::Result<usize> {
    without_sigpipe(|| crate::fd::write(fd, buf))
}

/// `pwritev2(RWF_NOSIGNAL)`, and whether this kernel has the flag.
#[cfg(any(target_os = "linux", target_os = "android"))]
mod nosignal {
    use std::io;
    use std::io::IoSlice;
    use std::os::fd::{AsFd, BorrowedFd};
    use std::sync::atomic::{AtomicU8, Ordering};

    use rustix::io::ReadWriteFlags;

    /// `RWF_NOSIGNAL` (Linux 6.18, `include/uapi/linux/fs.h`): a write to a pipe or socket
    /// whose reader is gone fails with `EPIPE` without raising `SIGPIPE`. Neither libc nor
    /// rustix names it yet.
    const RWF_NOSIGNAL: ReadWriteFlags = ReadWriteFlags::from_bits_retain(0x100);

    /// "No offset": the kernel reads an offset of -1 (all ones, rustix takes it as a `u64`)
    /// as "at the current position, and move it", which is what a pipe needs (any other
    /// offset is `ESPIPE`) and what `write` does on any other file.
    const CURRENT_POSITION: u64 = u64::MAX;

    /// One write of `buf` with `RWF_NOSIGNAL`.
    #[inline]
    pub(super) fn write(fd: BorrowedFd<'_>, buf: &[u8]) -> io::Result<usize> {
        let bufs = [IoSlice::new(buf)];
        Ok(rustix::io::pwritev2(
            fd,
            &bufs,
            CURRENT_POSITION,
            RWF_NOSIGNAL,
        )?)
    }

    /// Whether this kernel takes the flag: asked once per process, by writing one byte into
    /// a pipe of its own (an older kernel refuses unknown flags with `EOPNOTSUPP`; a seccomp
    /// filter may refuse `pwritev2` itself with `ENOSYS` or `EPERM`). An fd's own refusal
    /// cannot be told from the kernel's, hence the pipe. If the question cannot be asked (no
    /// fd left for the pipe), the answer is "no" for this write only.
    #[inline]
    pub(super) fn supported() -> bool {
        match SUPPORTED.load(Ordering::Relaxed) {
            YES => true,
            NO => false,
            _ => probe(),
        }
    }

    const UNKNOWN: u8 = 0;
    const YES: u8 = 1;
    const NO: u8 = 2;
    static SUPPORTED: AtomicU8 = AtomicU8::new(UNKNOWN);

    /// `supported`'s question, the first time.
    #[cold]
    fn probe() -> bool {
        let Ok((_reader, writer)) = crate::fd::pipe() else {
            return false;
        };
        let answer = match write(writer.as_fd(), b"x") {
            Ok(_) => YES,
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(libc::EOPNOTSUPP | libc::EINVAL | libc::ENOSYS | libc::EPERM)
                ) =>
            {
                NO
            }
            Err(_) => return false,
        };
        SUPPORTED.store(answer, Ordering::Relaxed);
        answer == YES
    }
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

    type Write = fn(BorrowedFd<'_>, &[u8]) -> io::Result<usize>;

    /// Both ways of writing: the one this kernel takes (`RWF_NOSIGNAL` where it can) and the
    /// signal mask, which kernels before 6.18 and other systems use.
    const WRITES: [(&str, Write); 2] = [
        ("write_nosigpipe", write_nosigpipe),
        ("write_masked", write_masked),
    ];

    /// A write to a pipe whose reader is gone, from a fresh thread whose mask has `SIGPIPE`
    /// blocked or not: `BrokenPipe`, no `SIGPIPE` left pending, and the mask as it was.
    fn write_to_broken_pipe_in_thread(write: Write, block: bool) {
        std::thread::spawn(move || {
            let _blocked = block.then(|| SigpipeBlocked::new().unwrap());
            let (r, w) = crate::fd::pipe().unwrap();
            drop(r);
            let err = write(w.as_fd(), b"x").unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::BrokenPipe, "{err}");
            assert!(
                !sigpipe_pending().unwrap(),
                "the write's SIGPIPE was consumed, or never raised"
            );
            assert_eq!(sigpipe_blocked(), block, "the thread's mask is restored");
        })
        .join()
        .unwrap();
    }

    #[test]
    fn write_nosigpipe_to_a_closed_pipe_is_broken_pipe_and_leaves_no_sigpipe_pending() {
        for (name, write) in WRITES {
            eprintln!("{name}");
            // Unblocked, a stray SIGPIPE would be delivered when the mask is restored
            // (ignored by the test harness, fatal in a program that keeps SIG_DFL).
            write_to_broken_pipe_in_thread(write, false);
            // With SIGPIPE blocked by the caller, Linux keeps the write's SIGPIPE pending
            // even though it is ignored, so only consuming it (or not raising it) passes the
            // pending check.
            write_to_broken_pipe_in_thread(write, true);
        }
    }

    #[test]
    fn write_nosigpipe_writes_what_a_write_would() {
        for (name, write) in WRITES {
            let (r, w) = crate::fd::pipe().unwrap();
            assert_eq!(write(w.as_fd(), b"hello").unwrap(), 5, "{name}");
            let mut got = [0u8; 8];
            assert_eq!(crate::fd::read(r.as_fd(), &mut got).unwrap(), 5, "{name}");
            assert_eq!(&got[..5], b"hello", "{name}");
            // A full non-blocking pipe: WouldBlock, as from write(2).
            let chunk = [0u8; 4096];
            let error = loop {
                if let Err(e) = write(w.as_fd(), &chunk) {
                    break e;
                }
            };
            assert_eq!(error.kind(), io::ErrorKind::WouldBlock, "{name}: {error}");
        }
    }

    /// A kernel of 6.18 or later has the flag (unless a seccomp filter hides `pwritev2`,
    /// which the machines this runs on do not have), so its writes are one system call.
    #[test]
    #[cfg(any(target_os = "linux", target_os = "android"))]
    fn the_kernels_with_rwf_nosignal_are_found_to_have_it() {
        let release = rustix::system::uname()
            .release()
            .to_string_lossy()
            .into_owned();
        let mut numbers = release.split(|c: char| !c.is_ascii_digit());
        let major: u32 = numbers.next().and_then(|n| n.parse().ok()).unwrap();
        let minor: u32 = numbers.next().and_then(|n| n.parse().ok()).unwrap();
        assert_eq!(
            nosignal::supported(),
            (major, minor) >= (6, 18),
            "kernel {release}"
        );
    }

    #[test]
    fn write_nosigpipe_leaves_a_sigpipe_that_was_already_pending() {
        for (name, write) in WRITES {
            std::thread::spawn(move || {
                let _blocked = SigpipeBlocked::new().unwrap();
                // raise(3) sends it to this very thread, where it is blocked.
                nix::sys::signal::raise(Signal::SIGPIPE).unwrap();
                if !sigpipe_pending().unwrap() {
                    // XNU discards ignored signals even while blocked: nothing to test.
                    return;
                }
                let (r, w) = crate::fd::pipe().unwrap();
                drop(r);
                let err = write(w.as_fd(), b"x").unwrap_err();
                assert_eq!(err.kind(), io::ErrorKind::BrokenPipe, "{name}: {err}");
                assert!(
                    sigpipe_pending().unwrap(),
                    "{name}: the earlier SIGPIPE is the caller's"
                );
                consume_sigpipe();
                assert!(!sigpipe_pending().unwrap());
            })
            .join()
            .unwrap();
        }
    }
}
