//! Small fd helpers the selectors, the event loop and the tests share: non-blocking pipes and
//! socket pairs created close-on-exec, flag setters, `read` / `write` on borrowed fds, and the
//! `RLIMIT_NOFILE` knob.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use crate::syscall::cvt;

/// A non-blocking, close-on-exec pipe: `(read end, write end)`.
///
/// # Errors
/// The kernel's (`EMFILE`, `ENFILE`).
pub fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [-1 as RawFd; 2];
    #[cfg(not(any(target_os = "macos", target_os = "ios")))]
    {
        // SAFETY: `fds` is a writable array of two c_ints, as pipe2 requires.
        cvt(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_NONBLOCK | libc::O_CLOEXEC) })?;
        Ok(own_pair(fds))
    }
    #[cfg(any(target_os = "macos", target_os = "ios"))]
    {
        // SAFETY: `fds` is a writable array of two c_ints, as pipe requires.
        cvt(unsafe { libc::pipe(fds.as_mut_ptr()) })?;
        let (r, w) = own_pair(fds);
        for fd in [&r, &w] {
            set_nonblocking(fd.as_raw_fd(), true)?;
            set_cloexec(fd.as_raw_fd(), true)?;
        }
        Ok((r, w))
    }
}

/// A connected pair of non-blocking, close-on-exec Unix stream sockets.
///
/// # Errors
/// The kernel's (`EMFILE`, `ENFILE`).
pub fn socketpair() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [-1 as RawFd; 2];
    #[cfg(not(any(target_os = "macos", target_os = "ios")))]
    {
        let ty = libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC;
        // SAFETY: `fds` is a writable array of two c_ints, as socketpair requires.
        cvt(unsafe { libc::socketpair(libc::AF_UNIX, ty, 0, fds.as_mut_ptr()) })?;
        Ok(own_pair(fds))
    }
    #[cfg(any(target_os = "macos", target_os = "ios"))]
    {
        // SAFETY: `fds` is a writable array of two c_ints, as socketpair requires.
        cvt(unsafe { libc::socketpair(libc::AF_UNIX, libc::SOCK_STREAM, 0, fds.as_mut_ptr()) })?;
        let (a, b) = own_pair(fds);
        for fd in [&a, &b] {
            set_nonblocking(fd.as_raw_fd(), true)?;
            set_cloexec(fd.as_raw_fd(), true)?;
        }
        Ok((a, b))
    }
}

fn own_pair(fds: [RawFd; 2]) -> (OwnedFd, OwnedFd) {
    // SAFETY: the kernel just returned these two fds to us; nothing else owns them.
    unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) }
}

/// Set or clear `O_NONBLOCK` on `fd`.
///
/// # Errors
/// `EBADF` for a closed or negative fd.
pub fn set_nonblocking(fd: RawFd, nonblocking: bool) -> io::Result<()> {
    set_flag(
        fd,
        libc::F_GETFL,
        libc::F_SETFL,
        libc::O_NONBLOCK,
        nonblocking,
    )
}

/// Set or clear `FD_CLOEXEC` on `fd`.
///
/// # Errors
/// `EBADF` for a closed or negative fd.
pub fn set_cloexec(fd: RawFd, cloexec: bool) -> io::Result<()> {
    set_flag(fd, libc::F_GETFD, libc::F_SETFD, libc::FD_CLOEXEC, cloexec)
}

fn set_flag(
    fd: RawFd,
    get: libc::c_int,
    set: libc::c_int,
    flag: libc::c_int,
    on: bool,
) -> io::Result<()> {
    // SAFETY: F_GETFL / F_GETFD take no pointer argument; a bad fd is reported as EBADF.
    let flags = cvt(unsafe { libc::fcntl(fd, get) })?;
    let wanted = if on { flags | flag } else { flags & !flag };
    if wanted != flags {
        // SAFETY: F_SETFL / F_SETFD take an int argument; a bad fd is reported as EBADF.
        cvt(unsafe { libc::fcntl(fd, set, wanted) })?;
    }
    Ok(())
}

/// Whether `fd` is an open file descriptor of this process (`fcntl(F_GETFD)` succeeds).
///
/// # Errors
/// `EBADF` if it is not; never anything else in practice.
pub fn check_open(fd: RawFd) -> io::Result<()> {
    // SAFETY: F_GETFD takes no pointer argument; a bad fd is reported as EBADF.
    cvt(unsafe { libc::fcntl(fd, libc::F_GETFD) }).map(drop)
}

/// `read(2)` into `buf`; `Ok(0)` at end of file. A non-blocking fd with nothing to read gives
/// `WouldBlock`.
///
/// # Errors
/// The kernel's.
pub fn read(fd: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: `buf` is valid for writes of `buf.len()` bytes for the duration of the call, and
    // `fd` is borrowed, so it stays open.
    let n = cvt(unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) })?;
    Ok(n as usize)
}

/// `write(2)` from `buf`; how many bytes the kernel took. A full non-blocking fd gives
/// `WouldBlock`. On sockets use [`send`] instead, which cannot raise `SIGPIPE`.
///
/// # Errors
/// The kernel's (`EPIPE` once the reader is gone).
pub fn write(fd: BorrowedFd<'_>, buf: &[u8]) -> io::Result<usize> {
    // SAFETY: `buf` is valid for reads of `buf.len()` bytes for the duration of the call, and
    // `fd` is borrowed, so it stays open.
    let n = cvt(unsafe { libc::write(fd.as_raw_fd(), buf.as_ptr().cast(), buf.len()) })?;
    Ok(n as usize)
}

/// `send(2)` on a socket, without ever raising `SIGPIPE` (`MSG_NOSIGNAL`; on macOS, where that
/// flag does not exist, set `SO_NOSIGPIPE` on the socket instead).
///
/// # Errors
/// The kernel's (`EPIPE` once the peer is gone, `ENOTSOCK` for a non-socket).
pub fn send(fd: BorrowedFd<'_>, buf: &[u8]) -> io::Result<usize> {
    #[cfg(not(any(target_os = "macos", target_os = "ios")))]
    let flags = libc::MSG_NOSIGNAL;
    #[cfg(any(target_os = "macos", target_os = "ios"))]
    let flags = 0;
    // SAFETY: `buf` is valid for reads of `buf.len()` bytes for the duration of the call, and
    // `fd` is borrowed, so it stays open.
    let n = cvt(unsafe { libc::send(fd.as_raw_fd(), buf.as_ptr().cast(), buf.len(), flags) })?;
    Ok(n as usize)
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

/// Set this process's `RLIMIT_NOFILE` to `soft` (the limit in force) and `hard` (the ceiling
/// the soft limit may be raised to), as they are: either may go down. Lowering the hard limit
/// cannot be undone without privilege, so tests that provoke `EMFILE` call it in a child
/// process. See [`raise_nofile_limit`] to only ever raise it.
///
/// # Errors
/// The kernel's: `EINVAL` if `soft` exceeds `hard`, `EPERM` when raising `hard` without
/// privilege.
pub fn set_nofile_limit(soft: u64, hard: u64) -> io::Result<()> {
    let lim = libc::rlimit {
        rlim_cur: soft as libc::rlim_t,
        rlim_max: hard as libc::rlim_t,
    };
    // SAFETY: `lim` is a valid rlimit that outlives the call.
    cvt(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) }).map(drop)
}

/// The soft and hard `RLIMIT_NOFILE` of this process.
///
/// # Errors
/// The kernel's.
pub fn nofile_limit() -> io::Result<(u64, u64)> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `lim` is a valid, writable rlimit for the call's duration.
    cvt(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) })?;
    // rlim_t is u64 on Linux and macOS but i64 on FreeBSD (where RLIM_INFINITY is i64::MAX).
    #[allow(clippy::unnecessary_cast)]
    Ok((lim.rlim_cur as u64, lim.rlim_max as u64))
}

/// A map keyed by fd. File descriptors are small, unique integers, so hashing them with SipHash
/// would only cost time: [`FdHasher`] spreads them with one multiply instead. The selectors'
/// registries and the event loop's I/O table use it.
pub type FdMap<V> = HashMap<RawFd, V, BuildHasherDefault<FdHasher>>;

/// Hashes an fd (an `i32`) by multiplying it by an odd constant: a bijection, so no two fds
/// collide, with the high bits mixed enough for `HashMap`'s bucket choice.
#[derive(Debug, Default)]
pub struct FdHasher(u64);

impl Hasher for FdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only reached if something other than an i32 is hashed; stay correct anyway.
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
        }
    }

    fn write_i32(&mut self, fd: i32) {
        self.0 = u64::from(fd as u32).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
}
