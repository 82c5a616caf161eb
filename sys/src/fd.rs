//! Small fd helpers the selectors, the event loop and the tests share: non-blocking pipes and
//! socket pairs created close-on-exec, flag setters, `read` / `write` on borrowed fds, and the
//! `RLIMIT_NOFILE` knob.

use std::io;
use std::os::fd::{BorrowedFd, OwnedFd, RawFd};

use rustix::fs::OFlags;
use rustix::io::FdFlags;
use rustix::process::{Resource, Rlimit};

pub use crate::fd_map::{FdHasher, FdMap};

/// A non-blocking, close-on-exec pipe: `(read end, write end)`.
///
/// # Errors
/// The kernel's (`EMFILE`, `ENFILE`).
pub fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    #[cfg(not(target_vendor = "apple"))]
    {
        use rustix::pipe::PipeFlags;
        Ok(rustix::pipe::pipe_with(
            PipeFlags::NONBLOCK | PipeFlags::CLOEXEC,
        )?)
    }
    #[cfg(target_vendor = "apple")]
    {
        // No pipe2: the flags follow with fcntl (see `net::socket` for the fork window this
        // leaves).
        use std::os::fd::AsFd;
        let (r, w) = rustix::pipe::pipe()?;
        for fd in [&r, &w] {
            set_nonblocking_on(fd.as_fd(), true)?;
            set_cloexec_on(fd.as_fd(), true)?;
        }
        Ok((r, w))
    }
}

/// A connected pair of non-blocking, close-on-exec Unix stream sockets.
///
/// # Errors
/// The kernel's (`EMFILE`, `ENFILE`).
pub fn socketpair() -> io::Result<(OwnedFd, OwnedFd)> {
    use rustix::net::{AddressFamily, SocketFlags, SocketType};
    #[cfg(not(target_vendor = "apple"))]
    {
        let flags = SocketFlags::NONBLOCK | SocketFlags::CLOEXEC;
        Ok(rustix::net::socketpair(
            AddressFamily::UNIX,
            SocketType::STREAM,
            flags,
            None,
        )?)
    }
    #[cfg(target_vendor = "apple")]
    {
        use std::os::fd::AsFd;
        let (a, b) = rustix::net::socketpair(
            AddressFamily::UNIX,
            SocketType::STREAM,
            SocketFlags::empty(),
            None,
        )?;
        for fd in [&a, &b] {
            set_nonblocking_on(fd.as_fd(), true)?;
            set_cloexec_on(fd.as_fd(), true)?;
        }
        Ok((a, b))
    }
}

/// Run `f` on the fd a caller handed in by number: the one place this module turns a `RawFd`
/// into a `BorrowedFd`. A negative number is `EBADF` without a system call.
fn with_raw_fd<T>(fd: RawFd, f: impl FnOnce(BorrowedFd<'_>) -> io::Result<T>) -> io::Result<T> {
    if fd < 0 {
        return Err(io::Error::from_raw_os_error(libc::EBADF));
    }
    // SAFETY: `fd` is not -1 (BorrowedFd's niche), and the borrow does not outlive `f`, which
    // only makes fcntl calls on it. Keeping the number open meanwhile is the caller's side of
    // these `RawFd` functions, as with any fd a user hands in; if it is closed, those calls
    // fail with EBADF and touch nothing else.
    f(unsafe { BorrowedFd::borrow_raw(fd) })
}

/// Set or clear `O_NONBLOCK` on `fd`.
///
/// # Errors
/// `EBADF` for a closed or negative fd.
pub fn set_nonblocking(fd: RawFd, nonblocking: bool) -> io::Result<()> {
    with_raw_fd(fd, |fd| set_nonblocking_on(fd, nonblocking))
}

/// Set or clear `FD_CLOEXEC` on `fd`.
///
/// # Errors
/// `EBADF` for a closed or negative fd.
pub fn set_cloexec(fd: RawFd, cloexec: bool) -> io::Result<()> {
    with_raw_fd(fd, |fd| set_cloexec_on(fd, cloexec))
}

/// [`set_nonblocking`] for an fd this crate holds: one `F_GETFL`, and an `F_SETFL` only if the
/// flag changes.
pub(crate) fn set_nonblocking_on(fd: BorrowedFd<'_>, on: bool) -> io::Result<()> {
    let flags = rustix::fs::fcntl_getfl(fd)?;
    let wanted = if on {
        flags | OFlags::NONBLOCK
    } else {
        flags - OFlags::NONBLOCK
    };
    if wanted != flags {
        rustix::fs::fcntl_setfl(fd, wanted)?;
    }
    Ok(())
}

/// [`set_cloexec`] for an fd this crate holds: one `F_GETFD`, and an `F_SETFD` only if the
/// flag changes.
pub(crate) fn set_cloexec_on(fd: BorrowedFd<'_>, on: bool) -> io::Result<()> {
    let flags = rustix::io::fcntl_getfd(fd)?;
    let wanted = if on {
        flags | FdFlags::CLOEXEC
    } else {
        flags - FdFlags::CLOEXEC
    };
    if wanted != flags {
        rustix::io::fcntl_setfd(fd, wanted)?;
    }
    Ok(())
}

/// Whether `fd` is an open file descriptor of this process (`fcntl(F_GETFD)` succeeds).
///
/// # Errors
/// `EBADF` if it is not; never anything else in practice.
pub fn check_open(fd: RawFd) -> io::Result<()> {
    with_raw_fd(fd, |fd| Ok(rustix::io::fcntl_getfd(fd).map(drop)?))
}

/// `read(2)` into `buf`; `Ok(0)` at end of file. A non-blocking fd with nothing to read gives
/// `WouldBlock`.
///
/// # Errors
/// The kernel's.
#[inline]
pub fn read(fd: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<usize> {
    Ok(rustix::io::read(fd, buf)?)
}

/// `write(2)` from `buf`; how many bytes the kernel took. A full non-blocking fd gives
/// `WouldBlock`. On sockets use [`send`] instead, which cannot raise `SIGPIPE`.
///
/// # Errors
/// The kernel's (`EPIPE` once the reader is gone).
#[inline]
pub fn write(fd: BorrowedFd<'_>, buf: &[u8]) -> io::Result<usize> {
    Ok(rustix::io::write(fd, buf)?)
}

/// `send(2)` on a socket, without ever raising `SIGPIPE` (`MSG_NOSIGNAL`; on macOS, where that
/// flag does not exist, set `SO_NOSIGPIPE` on the socket instead).
///
/// # Errors
/// The kernel's (`EPIPE` once the peer is gone, `ENOTSOCK` for a non-socket).
#[inline]
pub fn send(fd: BorrowedFd<'_>, buf: &[u8]) -> io::Result<usize> {
    use rustix::net::SendFlags;
    #[cfg(not(target_vendor = "apple"))]
    let flags = SendFlags::NOSIGNAL;
    #[cfg(target_vendor = "apple")]
    let flags = SendFlags::empty();
    Ok(rustix::net::send(fd, buf, flags)?)
}

/// Raise this process's `RLIMIT_NOFILE` so that at least `wanted` fds can be open (never
/// lowering it). The soft limit is raised first; if the hard limit is in the way, raising it is
/// tried too (a privileged process may), and otherwise the soft limit stops at the hard one.
/// Returns the soft limit now in force, which is below `wanted` when the hard limit won.
///
/// # Errors
/// The kernel's, if the limit cannot be read or set.
pub fn raise_nofile_limit(wanted: u64) -> io::Result<u64> {
    let (soft, hard) = nofile_limit()?;
    if soft >= wanted {
        return Ok(soft);
    }
    if hard < wanted && set_nofile_limit(wanted, wanted).is_ok() {
        return Ok(wanted);
    }
    let target = wanted.min(hard);
    if target > soft {
        set_nofile_limit(target, hard)?;
    }
    Ok(target.max(soft))
}

/// `RLIM_INFINITY` as the `u64` these functions speak: `u64::MAX` on Linux and macOS,
/// `i64::MAX` on FreeBSD (whose `rlim_t` is signed).
#[allow(clippy::unnecessary_cast)]
const RLIM_INFINITY: u64 = libc::RLIM_INFINITY as u64;

/// Set this process's `RLIMIT_NOFILE` to `soft` (the limit in force) and `hard` (the ceiling
/// the soft limit may be raised to), as they are: either may go down. Lowering the hard limit
/// cannot be undone without privilege, so tests that provoke `EMFILE` call it in a child
/// process. See [`raise_nofile_limit`] to only ever raise it.
///
/// # Errors
/// The kernel's: `EINVAL` if `soft` exceeds `hard`, `EPERM` when raising `hard` without
/// privilege.
pub fn set_nofile_limit(soft: u64, hard: u64) -> io::Result<()> {
    // `Some(RLIM_INFINITY)` is the kernel's "unlimited", the same as rustix's `None`.
    let limit = Rlimit {
        current: Some(soft),
        maximum: Some(hard),
    };
    Ok(rustix::process::setrlimit(Resource::Nofile, limit)?)
}

/// The soft and hard `RLIMIT_NOFILE` of this process (`RLIM_INFINITY` for "unlimited").
///
/// # Errors
/// None today (`getrlimit` cannot fail for this resource); the signature leaves room.
pub fn nofile_limit() -> io::Result<(u64, u64)> {
    let limit = rustix::process::getrlimit(Resource::Nofile);
    Ok((
        limit.current.unwrap_or(RLIM_INFINITY),
        limit.maximum.unwrap_or(RLIM_INFINITY),
    ))
}
