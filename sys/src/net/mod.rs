//! The socket system calls of the event loop's non-blocking sockets: `socket`, `connect`,
//! `accept`, `SO_ERROR`, `recv`, and writes that never raise `SIGPIPE`.
//!
//! Every socket made here is non-blocking and close-on-exec from the start (atomically where the
//! OS allows: `SOCK_NONBLOCK | SOCK_CLOEXEC`), and has `SO_NOSIGPIPE` where that switch exists;
//! elsewhere [`fd::send`](crate::fd::send) passes `MSG_NOSIGNAL`. Addresses are converted to and
//! from the kernel's `sockaddr_in` / `sockaddr_in6` / `sockaddr_un` in `net/addr.rs` only;
//! [`write_nosigpipe`], for pipes, lives with its signal-mask handling in `net/sigpipe.rs`.

mod addr;
mod sigpipe;

use std::io;
use std::mem;
use std::net::SocketAddr;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::path::Path;

use crate::syscall::cvt;

use addr::{decode, RawAddr};
pub use sigpipe::write_nosigpipe;

/// Address family of a new socket.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Domain {
    /// `AF_INET`.
    Ipv4,
    /// `AF_INET6`.
    Ipv6,
    /// `AF_UNIX`, addressed by a filesystem path (see [`connect_unix`]).
    Unix,
}

impl Domain {
    /// The family a socket needs to reach `addr`: [`Domain::Ipv4`] or [`Domain::Ipv6`].
    pub fn of(addr: &SocketAddr) -> Domain {
        match addr {
            SocketAddr::V4(_) => Domain::Ipv4,
            SocketAddr::V6(_) => Domain::Ipv6,
        }
    }

    fn raw(self) -> libc::c_int {
        match self {
            Domain::Ipv4 => libc::AF_INET,
            Domain::Ipv6 => libc::AF_INET6,
            Domain::Unix => libc::AF_UNIX,
        }
    }
}

/// Socket type.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Type {
    /// `SOCK_STREAM`: TCP, or a Unix stream socket.
    Stream,
    /// `SOCK_DGRAM`: UDP, or a Unix datagram socket.
    Datagram,
}

impl Type {
    fn raw(self) -> libc::c_int {
        match self {
            Type::Stream => libc::SOCK_STREAM,
            Type::Datagram => libc::SOCK_DGRAM,
        }
    }
}

/// A new non-blocking, close-on-exec socket; on macOS, iOS, FreeBSD, NetBSD and DragonFly also
/// with `SO_NOSIGPIPE` (see [`set_nosigpipe`]).
///
/// On Linux and the BSDs the flags are set atomically with `SOCK_NONBLOCK | SOCK_CLOEXEC`; on
/// macOS, which lacks them, with `fcntl` right after `socket(2)`, so a `fork` + `exec` in
/// another thread in between can inherit the fd.
///
/// # Errors
/// The kernel's (`EMFILE`, `ENFILE`, `EAFNOSUPPORT` when IPv6 is compiled out, ...).
pub fn socket(domain: Domain, ty: Type) -> io::Result<OwnedFd> {
    let fd = new_socket(domain.raw(), ty.raw())?;
    set_nosigpipe(fd.as_fd())?;
    Ok(fd)
}

#[cfg(any(
    target_os = "linux",
    target_os = "android",
    target_os = "freebsd",
    target_os = "netbsd",
    target_os = "openbsd",
    target_os = "dragonfly"
))]
fn new_socket(domain: libc::c_int, ty: libc::c_int) -> io::Result<OwnedFd> {
    let ty = ty | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC;
    // SAFETY: socket takes no pointers; failure is reported as -1.
    let raw = cvt(unsafe { libc::socket(domain, ty, 0) })?;
    // SAFETY: the kernel just returned this fd to us; nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(raw) })
}

#[cfg(not(any(
    target_os = "linux",
    target_os = "android",
    target_os = "freebsd",
    target_os = "netbsd",
    target_os = "openbsd",
    target_os = "dragonfly"
)))]
fn new_socket(domain: libc::c_int, ty: libc::c_int) -> io::Result<OwnedFd> {
    // SAFETY: socket takes no pointers; failure is reported as -1.
    let raw = cvt(unsafe { libc::socket(domain, ty, 0) })?;
    // SAFETY: the kernel just returned this fd to us; nothing else owns it.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    crate::fd::set_cloexec(raw, true)?;
    crate::fd::set_nonblocking(raw, true)?;
    Ok(fd)
}

/// Outcome of a non-blocking connect.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Connect {
    /// The connection is established.
    Done,
    /// The connection is being set up: wait until the socket is writable, then read its outcome
    /// with [`take_error`].
    InProgress,
}

/// `connect(2)` on a non-blocking socket: `Ok(Done)` if it connected at once, `Ok(InProgress)`
/// for `EINPROGRESS`, and also for `EINTR` (POSIX: an interrupted connect proceeds
/// asynchronously, and calling it again would give `EALREADY`).
///
/// # Errors
/// The kernel's: `ECONNREFUSED`, `ENETUNREACH`, `EAFNOSUPPORT` for an address of the other
/// family than the socket, ...
pub fn connect(fd: BorrowedFd<'_>, addr: &SocketAddr) -> io::Result<Connect> {
    connect_raw(fd, &RawAddr::from_inet(addr))
}

/// [`connect`] for an `AF_UNIX` socket and a filesystem path.
///
/// # Errors
/// - `InvalidInput` if `path` is empty, contains a NUL byte or is too long for `sun_path` (the
///   message names the limit: 107 bytes on Linux, 103 on macOS and the BSDs).
/// - `WouldBlock` (`EAGAIN`) when the listener's backlog is full (Linux): retry later.
/// - The kernel's otherwise (`ENOENT`, `ECONNREFUSED` when nothing listens, `EACCES`, ...).
pub fn connect_unix(fd: BorrowedFd<'_>, path: &Path) -> io::Result<Connect> {
    // EAGAIN needs no mapping: io::Error already gives it the kind WouldBlock.
    connect_raw(fd, &RawAddr::from_path(path)?)
}

fn connect_raw(fd: BorrowedFd<'_>, addr: &RawAddr) -> io::Result<Connect> {
    let (ptr, len) = addr.as_ptr();
    // SAFETY: `ptr` points to a sockaddr of `len` bytes inside `addr`, which outlives the call;
    // `fd` is borrowed, so it stays open.
    match cvt(unsafe { libc::connect(fd.as_raw_fd(), ptr, len) }) {
        Ok(_) => Ok(Connect::Done),
        Err(e) if matches!(e.raw_os_error(), Some(libc::EINPROGRESS | libc::EINTR)) => {
            Ok(Connect::InProgress)
        }
        Err(e) => Err(e),
    }
}

/// `accept(2)` one connection. The new fd is non-blocking and close-on-exec (atomically with
/// `accept4` on Linux and the BSDs; on macOS with `fcntl` right after `accept`), with
/// `SO_NOSIGPIPE` where it exists. The peer address is decoded for `AF_INET` / `AF_INET6`, and
/// `None` for other families (`AF_UNIX`). `EINTR` is retried, and a connection reset before it
/// was accepted (`ECONNABORTED`; on macOS also one reset between `accept` and `SO_NOSIGPIPE`)
/// is skipped for the next one.
///
/// # Errors
/// - `WouldBlock` when no connection is waiting (the listener is non-blocking).
/// - The kernel's otherwise (`EMFILE`, `ENFILE`, `EINVAL` if `fd` is not listening, ...).
pub fn accept(fd: BorrowedFd<'_>) -> io::Result<(OwnedFd, Option<SocketAddr>)> {
    loop {
        match accept_one(fd) {
            Err(e) if e.raw_os_error() == Some(libc::ECONNABORTED) => continue,
            other => return other,
        }
    }
}

/// [`accept`] once: `ECONNABORTED` is returned as is.
fn accept_one(fd: BorrowedFd<'_>) -> io::Result<(OwnedFd, Option<SocketAddr>)> {
    // SAFETY: sockaddr_storage is integers and byte arrays; all-zero is a valid value.
    let mut storage: libc::sockaddr_storage = unsafe { mem::zeroed() };
    let (conn, len) = loop {
        let mut len = mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
        match accept_raw(fd, &mut storage, &mut len) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
            Ok(conn) => break (conn, len),
        }
    };
    match set_nosigpipe(conn.as_fd()) {
        // XNU refuses socket options once a socket is shut down both ways, which is what a
        // connection reset before we got here looks like: report it as the abort it is.
        #[cfg(target_vendor = "apple")]
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
            return Err(io::Error::from_raw_os_error(libc::ECONNABORTED))
        }
        result => result?,
    }
    Ok((conn, decode(&storage, len)))
}

#[cfg(any(
    target_os = "linux",
    target_os = "android",
    target_os = "freebsd",
    target_os = "netbsd",
    target_os = "openbsd",
    target_os = "dragonfly"
))]
fn accept_raw(
    fd: BorrowedFd<'_>,
    storage: &mut libc::sockaddr_storage,
    len: &mut libc::socklen_t,
) -> io::Result<OwnedFd> {
    let addr = (storage as *mut libc::sockaddr_storage).cast::<libc::sockaddr>();
    let flags = libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC;
    // SAFETY: `addr` points to a writable sockaddr_storage of `*len` bytes (the kernel writes
    // at most that many), `len` is writable, both outlive the call; `fd` is borrowed.
    let raw = cvt(unsafe { libc::accept4(fd.as_raw_fd(), addr, len, flags) })?;
    // SAFETY: the kernel just returned this fd to us; nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(raw) })
}

#[cfg(not(any(
    target_os = "linux",
    target_os = "android",
    target_os = "freebsd",
    target_os = "netbsd",
    target_os = "openbsd",
    target_os = "dragonfly"
)))]
fn accept_raw(
    fd: BorrowedFd<'_>,
    storage: &mut libc::sockaddr_storage,
    len: &mut libc::socklen_t,
) -> io::Result<OwnedFd> {
    let addr = (storage as *mut libc::sockaddr_storage).cast::<libc::sockaddr>();
    // SAFETY: `addr` points to a writable sockaddr_storage of `*len` bytes (the kernel writes
    // at most that many), `len` is writable, both outlive the call; `fd` is borrowed.
    let raw = cvt(unsafe { libc::accept(fd.as_raw_fd(), addr, len) })?;
    // SAFETY: the kernel just returned this fd to us; nothing else owns it.
    let conn = unsafe { OwnedFd::from_raw_fd(raw) };
    crate::fd::set_cloexec(raw, true)?;
    crate::fd::set_nonblocking(raw, true)?;
    Ok(conn)
}

/// The pending error of a socket (`getsockopt(SO_ERROR)`), which reading clears: `None` if
/// there is none. After [`Connect::InProgress`] and writability, this is the connect's outcome.
///
/// # Errors
/// The kernel's (`ENOTSOCK` for a non-socket).
pub fn take_error(fd: BorrowedFd<'_>) -> io::Result<Option<io::Error>> {
    let mut err: libc::c_int = 0;
    let mut len = mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: `err` is a writable c_int and `len` its size, both outliving the call; `fd` is
    // borrowed, so it stays open.
    cvt(unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_ERROR,
            (&mut err as *mut libc::c_int).cast(),
            &mut len,
        )
    })?;
    Ok((err != 0).then(|| io::Error::from_raw_os_error(err)))
}

/// Make writes on this socket never raise `SIGPIPE` where the OS has a per-socket switch
/// (`SO_NOSIGPIPE`: macOS, iOS, FreeBSD, NetBSD, DragonFly); a no-op elsewhere, where
/// [`fd::send`](crate::fd::send) passes `MSG_NOSIGNAL` instead. [`socket`] and [`accept`]
/// already do this: call it for sockets tulip did not create.
///
/// # Errors
/// The kernel's (`ENOTSOCK` for a non-socket) where the switch exists.
pub fn set_nosigpipe(fd: BorrowedFd<'_>) -> io::Result<()> {
    #[cfg(any(
        target_vendor = "apple",
        target_os = "freebsd",
        target_os = "netbsd",
        target_os = "dragonfly"
    ))]
    {
        let on: libc::c_int = 1;
        // SAFETY: `on` is a c_int that outlives the call and its size is passed; `fd` is
        // borrowed, so it stays open.
        cvt(unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_NOSIGPIPE,
                (&on as *const libc::c_int).cast(),
                mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        })?;
    }
    #[cfg(not(any(
        target_vendor = "apple",
        target_os = "freebsd",
        target_os = "netbsd",
        target_os = "dragonfly"
    )))]
    let _ = fd;
    Ok(())
}

/// `recv(2)` with flags 0; `Ok(0)` at end of stream. `EINTR` is not retried here (the caller's
/// loop does), and a non-blocking socket with nothing to read gives `WouldBlock`.
///
/// # Errors
/// The kernel's (`ECONNRESET`, `ENOTSOCK` for a non-socket, ...).
pub fn recv(fd: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: `buf` is valid for writes of `buf.len()` bytes for the duration of the call, and
    // `fd` is borrowed, so it stays open.
    let n = cvt(unsafe { libc::recv(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) })?;
    Ok(n as usize)
}

/// Whether `O_NONBLOCK` is set on `fd` (`fcntl(F_GETFL)`).
///
/// # Errors
/// The kernel's (`EBADF`).
pub fn is_nonblocking(fd: BorrowedFd<'_>) -> io::Result<bool> {
    // SAFETY: F_GETFL takes no pointer argument; `fd` is borrowed, so it stays open.
    let flags = cvt(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETFL) })?;
    Ok(flags & libc::O_NONBLOCK != 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsStr;
    use std::net::{TcpListener, TcpStream};
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::net::UnixListener;
    use std::path::PathBuf;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Wait (up to 10 s) until `fd` is writable, as the loop does after `InProgress`.
    fn wait_writable(fd: BorrowedFd<'_>) {
        let mut pfd = libc::pollfd {
            fd: fd.as_raw_fd(),
            events: libc::POLLOUT,
            revents: 0,
        };
        // SAFETY: `pfd` is one valid, writable pollfd for the call.
        let n = unsafe { libc::poll(&mut pfd, 1, 10_000) };
        assert_eq!(n, 1, "socket not writable within 10 s");
    }

    fn is_cloexec(fd: BorrowedFd<'_>) -> bool {
        // SAFETY: F_GETFD takes no pointer argument; `fd` is borrowed, so it stays open.
        let flags = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETFD) };
        assert_ne!(flags, -1);
        flags & libc::FD_CLOEXEC != 0
    }

    /// A socket path in the temp dir, unique to this process and call.
    fn temp_socket_path() -> PathBuf {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        std::env::temp_dir().join(format!("tulip-net-{}-{n}.sock", std::process::id()))
    }

    #[test]
    fn new_sockets_are_nonblocking_and_close_on_exec() {
        for (domain, ty) in [
            (Domain::Ipv4, Type::Stream),
            (Domain::Ipv4, Type::Datagram),
            (Domain::Unix, Type::Stream),
            (Domain::Unix, Type::Datagram),
        ] {
            let fd = socket(domain, ty).unwrap();
            assert!(is_nonblocking(fd.as_fd()).unwrap(), "{domain:?} {ty:?}");
            assert!(is_cloexec(fd.as_fd()), "{domain:?} {ty:?}");
            assert!(take_error(fd.as_fd()).unwrap().is_none());
        }
    }

    /// Our `connect` to a std listener at `listener`'s address, then a std client to our
    /// `accept`: both ends agree on the addresses, and our fds are non-blocking, close-on-exec.
    fn connect_and_accept_agree_with_std(listener: TcpListener) {
        let addr = listener.local_addr().unwrap();

        let client = socket(Domain::of(&addr), Type::Stream).unwrap();
        if connect(client.as_fd(), &addr).unwrap() == Connect::InProgress {
            wait_writable(client.as_fd());
        }
        assert!(take_error(client.as_fd()).unwrap().is_none());
        let (server_side, _) = listener.accept().unwrap();
        assert_eq!(server_side.local_addr().unwrap(), addr);

        listener.set_nonblocking(true).unwrap();
        let err = accept(listener.as_fd()).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::WouldBlock, "{err}");
        let std_client = TcpStream::connect(addr).unwrap();
        // The handshake is done once connect returns, but the listener's queue may lag.
        let (conn, peer) = loop {
            match accept(listener.as_fd()) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    std::thread::sleep(std::time::Duration::from_millis(1))
                }
                other => break other.unwrap(),
            }
        };
        assert_eq!(peer, Some(std_client.local_addr().unwrap()));
        assert!(is_nonblocking(conn.as_fd()).unwrap());
        assert!(is_cloexec(conn.as_fd()));
    }

    #[test]
    fn connect_and_accept_work_over_ipv4() {
        connect_and_accept_agree_with_std(TcpListener::bind("127.0.0.1:0").unwrap());
    }

    #[test]
    fn connect_and_accept_work_over_ipv6_where_available() {
        match TcpListener::bind("[::1]:0") {
            Ok(listener) => connect_and_accept_agree_with_std(listener),
            Err(e) => eprintln!("skipped: cannot bind [::1]: {e}"),
        }
    }

    #[test]
    fn connect_to_a_closed_port_is_refused() {
        // A port that was just free; nothing listens on it once the listener is gone.
        let addr = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let fd = socket(Domain::Ipv4, Type::Stream).unwrap();
        let err = match connect(fd.as_fd(), &addr) {
            Err(e) => e,
            Ok(Connect::InProgress) => {
                wait_writable(fd.as_fd());
                take_error(fd.as_fd())
                    .unwrap()
                    .expect("a refused connect leaves SO_ERROR")
            }
            Ok(Connect::Done) => panic!("connected to a closed port"),
        };
        assert_eq!(err.raw_os_error(), Some(libc::ECONNREFUSED), "{err}");
        assert!(
            take_error(fd.as_fd()).unwrap().is_none(),
            "reading SO_ERROR clears it"
        );
    }

    #[test]
    fn connect_unix_reaches_a_listener_and_accept_gives_no_peer_address() {
        let path = temp_socket_path();
        let listener = UnixListener::bind(&path).unwrap();
        let fd = socket(Domain::Unix, Type::Stream).unwrap();
        let outcome = connect_unix(fd.as_fd(), &path);
        let accepted = accept(listener.as_fd());
        std::fs::remove_file(&path).unwrap();

        if outcome.unwrap() == Connect::InProgress {
            wait_writable(fd.as_fd());
        }
        assert!(take_error(fd.as_fd()).unwrap().is_none());
        let (conn, peer) = accepted.unwrap();
        assert_eq!(peer, None);
        assert!(is_nonblocking(conn.as_fd()).unwrap());
        assert!(is_cloexec(conn.as_fd()));
    }

    #[test]
    fn connect_unix_rejects_paths_sun_path_cannot_hold() {
        let fd = socket(Domain::Unix, Type::Stream).unwrap();
        let long = PathBuf::from(format!("/tmp/{}", "a".repeat(200)));
        let err = connect_unix(fd.as_fd(), &long).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        // SAFETY: sockaddr_un is integers and a byte array; all-zero is a valid value.
        let max = unsafe { mem::zeroed::<libc::sockaddr_un>() }.sun_path.len() - 1;
        assert!(err.to_string().contains(&format!("at most {max}")), "{err}");

        let nul = Path::new(OsStr::from_bytes(b"/tmp/a\0b"));
        let err = connect_unix(fd.as_fd(), nul).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        assert!(err.to_string().contains("NUL"), "{err}");

        // Not the abstract name "" that Linux would read an empty sun_path as.
        let err = connect_unix(fd.as_fd(), Path::new("")).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "{err}");

        // The longest path that fits is passed to the kernel, which finds nothing there.
        let longest = PathBuf::from(format!("/{}", "a".repeat(max - 1)));
        let err = connect_unix(fd.as_fd(), &longest).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound, "{err}");
    }

    #[test]
    fn recv_would_block_when_empty_and_returns_zero_at_eof() {
        let (a, b) = crate::fd::socketpair().unwrap();
        let mut buf = [0u8; 8];
        let err = recv(a.as_fd(), &mut buf).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::WouldBlock, "{err}");
        assert_eq!(crate::fd::send(b.as_fd(), b"hi").unwrap(), 2);
        assert_eq!(recv(a.as_fd(), &mut buf).unwrap(), 2);
        assert_eq!(&buf[..2], b"hi");
        drop(b);
        assert_eq!(recv(a.as_fd(), &mut buf).unwrap(), 0);
    }

    #[test]
    fn is_nonblocking_follows_o_nonblock() {
        let (r, _w) = crate::fd::pipe().unwrap();
        assert!(is_nonblocking(r.as_fd()).unwrap());
        crate::fd::set_nonblocking(r.as_raw_fd(), false).unwrap();
        assert!(!is_nonblocking(r.as_fd()).unwrap());
    }
}
