//! The `errno` values the event loop itself tells apart, for matching
//! [`io::Error::raw_os_error`](std::io::Error::raw_os_error) where `ErrorKind` is too coarse
//! (it has no kind for "out of fds").

/// The operation would block (a non-blocking fd not ready). `EWOULDBLOCK` is the same value
/// on every system tulip runs on.
pub const EAGAIN: i32 = libc::EAGAIN;
const _: () = assert!(libc::EAGAIN == libc::EWOULDBLOCK);
/// Too many open files in this process.
pub const EMFILE: i32 = libc::EMFILE;
/// Too many open files in the system.
pub const ENFILE: i32 = libc::ENFILE;
/// No buffer space (kernel memory for sockets).
pub const ENOBUFS: i32 = libc::ENOBUFS;
/// Out of kernel memory.
pub const ENOMEM: i32 = libc::ENOMEM;
/// The operation was cancelled (an io_uring request's completion after
/// `IORING_OP_ASYNC_CANCEL`).
pub const ECANCELED: i32 = libc::ECANCELED;
/// The address family is not supported (IPv6 compiled out of the kernel).
pub const EAFNOSUPPORT: i32 = libc::EAFNOSUPPORT;
