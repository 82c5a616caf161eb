//! The socket system calls of the event loop's non-blocking sockets: `socket`, `connect`,
//! `accept`, `SO_ERROR`, `recv`, and writes that never raise `SIGPIPE`, through rustix.
//!
//! Every socket made here is non-blocking and close-on-exec from the start (atomically where the
//! OS allows: `SOCK_NONBLOCK | SOCK_CLOEXEC`), and has `SO_NOSIGPIPE` where that switch exists;
//! elsewhere [`fd::send`](crate::fd::send) passes `MSG_NOSIGNAL`. rustix lays addresses out as
//! the kernel's `sockaddr_in` / `sockaddr_in6` / `sockaddr_un`; `net/addr.rs` converts between
//! its address types and std's, where tulip's contract adds to rustix's.
//! [`write_nosigpipe`], for pipes, lives with its signal-mask handling in `net/sigpipe.rs`.
//! [`sendfile`] goes through rustix on Linux, and through nix's safe wrapper on FreeBSD and
//! macOS / iOS (rustix has none there).

mod addr;
mod sigpipe;

use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;

use rustix::io::Errno;
use rustix::net::addr::SocketAddrArg;
use rustix::net::{AddressFamily, SocketAddrAny, SocketType};

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

    fn family(self) -> AddressFamily {
        match self {
            Domain::Ipv4 => AddressFamily::INET,
            Domain::Ipv6 => AddressFamily::INET6,
            Domain::Unix => AddressFamily::UNIX,
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
    fn socket_type(self) -> SocketType {
        match self {
            Type::Stream => SocketType::STREAM,
            Type::Datagram => SocketType::DGRAM,
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
    let fd = new_socket(domain.family(), ty.socket_type())?;
    set_nosigpipe(fd.as_fd())?;
    Ok(fd)
}

#[cfg(not(target_vendor = "apple"))]
fn new_socket(family: AddressFamily, ty: SocketType) -> io::Result<OwnedFd> {
    use rustix::net::SocketFlags;
    let flags = SocketFlags::NONBLOCK | SocketFlags::CLOEXEC;
    Ok(rustix::net::socket_with(family, ty, flags, None)?)
}

#[cfg(target_vendor = "apple")]
fn new_socket(family: AddressFamily, ty: SocketType) -> io::Result<OwnedFd> {
    let fd = rustix::net::socket(family, ty, None)?;
    crate::fd::set_cloexec_on(fd.as_fd(), true)?;
    crate::fd::set_nonblocking_on(fd.as_fd(), true)?;
    Ok(fd)
}

/// How [`listen`] sets up a listening socket: asyncio's `create_server` options.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct ListenOptions {
    /// The most connections the kernel queues, established but not yet accepted (`listen(2)`'s
    /// backlog; the kernel caps it at `net.core.somaxconn`). Default 100, as asyncio's.
    pub backlog: u32,
    /// `SO_REUSEADDR`: bind even while connections of an earlier listener on the port are in
    /// `TIME_WAIT`. Default on, as asyncio's on Unix.
    pub reuse_address: bool,
    /// `SO_REUSEPORT`: let several sockets bind the same address, the kernel spreading
    /// connections among them. Default off.
    pub reuse_port: bool,
}

impl Default for ListenOptions {
    fn default() -> Self {
        ListenOptions {
            backlog: 100,
            reuse_address: true,
            reuse_port: false,
        }
    }
}

/// A non-blocking, close-on-exec TCP socket bound to `addr` and listening, set up as `options`
/// say.
///
/// # Errors
/// The kernel's: `EADDRINUSE`, `EACCES` for a privileged port, `EADDRNOTAVAIL`, ...
pub fn listen(addr: &SocketAddr, options: &ListenOptions) -> io::Result<OwnedFd> {
    listen_socket(addr, options, false)
}

/// [`listen`], with `IPV6_V6ONLY` set on an IPv6 socket: it takes no IPv4 connection, leaving
/// them to an IPv4 socket bound to the same port (asyncio's `create_server` does so for each of
/// the addresses it binds).
///
/// # Errors
/// As [`listen`].
pub fn listen_v6only(addr: &SocketAddr, options: &ListenOptions) -> io::Result<OwnedFd> {
    listen_socket(addr, options, true)
}

fn listen_socket(addr: &SocketAddr, options: &ListenOptions, v6only: bool) -> io::Result<OwnedFd> {
    use rustix::net::sockopt;
    let fd = socket(Domain::of(addr), Type::Stream)?;
    if v6only && addr.is_ipv6() {
        sockopt::set_ipv6_v6only(&fd, true)?;
    }
    if options.reuse_address {
        sockopt::set_socket_reuseaddr(&fd, true)?;
    }
    if options.reuse_port {
        sockopt::set_socket_reuseport(&fd, true)?;
    }
    rustix::net::bind(&fd, &addr::to_kernel(addr))?;
    let backlog = i32::try_from(options.backlog).unwrap_or(i32::MAX);
    rustix::net::listen(&fd, backlog)?;
    Ok(fd)
}

/// `bind(2)` the socket `fd` to `addr`: before a [`connect`], it chooses the local address
/// and port the connection comes from (asyncio's `local_addr`).
///
/// # Errors
/// The kernel's: `EADDRINUSE`, `EADDRNOTAVAIL` for an address not of this host, `EACCES` for
/// a privileged port, `EINVAL` if the socket is bound already, ...
pub fn bind(fd: BorrowedFd<'_>, addr: &SocketAddr) -> io::Result<()> {
    Ok(rustix::net::bind(fd, &addr::to_kernel(addr))?)
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
    connect_to(fd, &addr::to_kernel(addr))
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
    connect_to(fd, &addr::unix(path)?)
}

fn connect_to(fd: BorrowedFd<'_>, addr: &impl SocketAddrArg) -> io::Result<Connect> {
    match rustix::net::connect(fd, addr) {
        Ok(()) => Ok(Connect::Done),
        Err(Errno::INPROGRESS | Errno::INTR) => Ok(Connect::InProgress),
        Err(e) => Err(e.into()),
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
    let (conn, peer) = loop {
        match accept_raw(fd) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            other => break other?,
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
    Ok((conn, addr::from_kernel(peer)))
}

#[cfg(not(target_vendor = "apple"))]
fn accept_raw(fd: BorrowedFd<'_>) -> io::Result<(OwnedFd, Option<SocketAddrAny>)> {
    use rustix::net::SocketFlags;
    let flags = SocketFlags::NONBLOCK | SocketFlags::CLOEXEC;
    Ok(rustix::net::acceptfrom_with(fd, flags)?)
}

#[cfg(target_vendor = "apple")]
fn accept_raw(fd: BorrowedFd<'_>) -> io::Result<(OwnedFd, Option<SocketAddrAny>)> {
    let (conn, peer) = rustix::net::acceptfrom(fd)?;
    crate::fd::set_cloexec_on(conn.as_fd(), true)?;
    crate::fd::set_nonblocking_on(conn.as_fd(), true)?;
    Ok((conn, peer))
}

/// The pending error of a socket (`getsockopt(SO_ERROR)`), which reading clears: `None` if
/// there is none. After [`Connect::InProgress`] and writability, this is the connect's outcome.
///
/// # Errors
/// The kernel's (`ENOTSOCK` for a non-socket).
pub fn take_error(fd: BorrowedFd<'_>) -> io::Result<Option<io::Error>> {
    let pending = rustix::net::sockopt::socket_error(fd)?;
    Ok(pending.err().map(io::Error::from))
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
    rustix::net::sockopt::set_socket_nosigpipe(fd, true)?;
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
#[inline]
pub fn recv(fd: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<usize> {
    // The second count is the datagram's full length, which only MSG_TRUNC makes differ.
    let (n, _) = rustix::net::recv(fd, buf, rustix::net::RecvFlags::empty())?;
    Ok(n)
}

/// Whether `O_NONBLOCK` is set on `fd` (`fcntl(F_GETFL)`).
///
/// # Errors
/// The kernel's (`EBADF`).
pub fn is_nonblocking(fd: BorrowedFd<'_>) -> io::Result<bool> {
    let flags = rustix::fs::fcntl_getfl(fd)?;
    Ok(flags.contains(rustix::fs::OFlags::NONBLOCK))
}

/// `sendfile(2)`: send up to `count` bytes of `file`, from `offset` (the file's own position
/// is neither used nor moved), on the stream socket `sock`; the count sent, `Ok(0)` at the
/// file's end (or for `count == 0`). Never raises `SIGPIPE` (blocked around the call, as
/// [`write_nosigpipe`]).
///
/// Linux and Android: `sendfile(sock, file, &offset, count)`. FreeBSD:
/// `sendfile(file, sock, offset, count, NULL, &sbytes, 0)`; macOS and iOS:
/// `sendfile(file, sock, offset, &len, NULL, 0)`. Those two report the bytes sent even when
/// they fail with `EAGAIN` (a non-blocking socket's buffer filled up), `EINTR` or `EBUSY`:
/// such a partial send is `Ok(sent)`, as Linux reports it, and the next call gets the error
/// again if it still holds. Elsewhere it fails with `ENOSYS` (`Unsupported`), so that callers
/// fall back to reading and sending.
///
/// # Errors
/// The kernel's: `WouldBlock` when a non-blocking socket's buffer is full (nothing sent),
/// `ESPIPE` (Linux) or `EINVAL` / `ENOTSUP` (the BSDs) for a file that is not regular,
/// `EINVAL` for a file that cannot be mapped, `ENOTSOCK`, `EOPNOTSUPP` (a socket or file
/// system the kernel cannot do it for), `EPIPE` / `ECONNRESET` once the peer is gone,
/// `Interrupted` with nothing sent (not retried); `InvalidInput` for an `offset` past
/// `i64::MAX`.
#[cfg(any(target_os = "linux", target_os = "android"))]
pub fn sendfile(
    sock: BorrowedFd<'_>,
    file: BorrowedFd<'_>,
    offset: u64,
    count: usize,
) -> io::Result<usize> {
    sendfile_offset(offset)?;
    let mut offset = offset;
    sigpipe::without_sigpipe(|| Ok(rustix::fs::sendfile(sock, file, Some(&mut offset), count)?))
}

/// [`sendfile`] on FreeBSD and macOS / iOS, through nix's safe wrapper.
#[cfg(any(target_os = "freebsd", target_vendor = "apple"))]
pub fn sendfile(
    sock: BorrowedFd<'_>,
    file: BorrowedFd<'_>,
    offset: u64,
    count: usize,
) -> io::Result<usize> {
    let offset = sendfile_offset(offset)?;
    if count == 0 {
        // There a count of 0 means "to the end of the file".
        return Ok(0);
    }
    #[cfg(target_os = "freebsd")]
    let call = || {
        use nix::sys::sendfile::{sendfile, SfFlags};
        sendfile(
            file,
            sock,
            offset,
            Some(count),
            None,
            None,
            SfFlags::empty(),
            0,
        )
    };
    #[cfg(target_vendor = "apple")]
    let call = || {
        let len = i64::try_from(count).unwrap_or(i64::MAX);
        nix::sys::sendfile::sendfile(file, sock, offset, Some(len), None, None)
    };
    let (result, sent) = sigpipe::without_sigpipe_then(call, |(result, _)| {
        *result == Err(nix::errno::Errno::EPIPE)
    })?;
    sendfile_outcome(result.err().map(|errno| errno as i32), sent)
}

/// The BSDs' `sendfile` result: `error` (an errno, if it failed) and the bytes it says it sent.
/// A partial send cut short by a full buffer (`EAGAIN`), a signal (`EINTR`) or a busy page
/// (`EBUSY`) is a success of that count; any other failure is the error.
#[cfg_attr(
    not(any(target_os = "freebsd", target_vendor = "apple")),
    allow(dead_code)
)]
fn sendfile_outcome(error: Option<i32>, sent: i64) -> io::Result<usize> {
    let sent = usize::try_from(sent).unwrap_or(0);
    match error {
        None => Ok(sent),
        Some(errno)
            if sent > 0
                && [libc::EAGAIN, libc::EWOULDBLOCK, libc::EINTR, libc::EBUSY].contains(&errno) =>
        {
            Ok(sent)
        }
        Some(errno) => Err(io::Error::from_raw_os_error(errno)),
    }
}

/// `offset` as the kernel's `off_t`.
#[cfg(any(
    target_os = "linux",
    target_os = "android",
    target_os = "freebsd",
    target_vendor = "apple"
))]
fn sendfile_offset(offset: u64) -> io::Result<i64> {
    i64::try_from(offset).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("sendfile offset {offset} is past i64::MAX"),
        )
    })
}

/// `sendfile(2)` where tulip does not wrap it: always `ENOSYS` (`Unsupported`), so that
/// callers fall back to reading and sending.
///
/// # Errors
/// Always `ENOSYS`.
#[cfg(not(any(
    target_os = "linux",
    target_os = "android",
    target_os = "freebsd",
    target_vendor = "apple"
)))]
pub fn sendfile(
    sock: BorrowedFd<'_>,
    file: BorrowedFd<'_>,
    offset: u64,
    count: usize,
) -> io::Result<usize> {
    let _ = (sock, file, offset, count);
    Err(Errno::NOSYS.into())
}

/// `ENOSYS`: what [`sendfile`] fails with where it is not wrapped (and what a pipe's transport
/// answers in its place).
pub const ENOSYS: i32 = libc::ENOSYS;

/// Whether `e`, from [`sendfile`], says that the kernel cannot do it for these fds (`EINVAL`,
/// `ENOSYS`, `ENOTSOCK`, `EOPNOTSUPP` / `ENOTSUP`, `ESPIPE`), rather than that the transfer
/// failed: the caller may read and send instead.
pub fn sendfile_unavailable(e: &io::Error) -> bool {
    let Some(errno) = e.raw_os_error() else {
        return false;
    };
    [
        libc::EINVAL,
        libc::ENOSYS,
        libc::ENOTSOCK,
        libc::EOPNOTSUPP,
        libc::ENOTSUP,
        libc::ESPIPE,
    ]
    .contains(&errno)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsStr;
    use std::net::{TcpListener, TcpStream};
    use std::os::fd::AsRawFd;
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::net::UnixListener;
    use std::path::PathBuf;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Wait (up to 10 s) until `fd` is writable, as the loop does after `InProgress`.
    fn wait_writable(fd: BorrowedFd<'_>) {
        use rustix::event::{PollFd, PollFlags, Timespec};
        let mut pfd = [PollFd::new(&fd, PollFlags::OUT)];
        let ten_seconds = Timespec {
            tv_sec: 10,
            tv_nsec: 0,
        };
        let n = rustix::event::poll(&mut pfd, Some(&ten_seconds)).unwrap();
        assert_eq!(n, 1, "socket not writable within 10 s");
    }

    fn is_cloexec(fd: BorrowedFd<'_>) -> bool {
        let flags = rustix::io::fcntl_getfd(fd).unwrap();
        flags.contains(rustix::io::FdFlags::CLOEXEC)
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
        let max = addr::SUN_PATH_LEN - 1;
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

    #[test]
    #[cfg_attr(miri, ignore)]
    #[cfg(any(target_os = "linux", target_os = "android"))]
    fn sendfile_sends_a_slice_and_leaves_the_position() {
        use std::io::{Seek, Write};
        let mut file = tempfile_with(b"0123456789");
        let start = file.stream_position().unwrap();
        let (a, b) = crate::fd::socketpair().unwrap();
        assert_eq!(sendfile(a.as_fd(), file.as_fd(), 3, 4).unwrap(), 4);
        let mut buf = [0u8; 8];
        assert_eq!(recv(b.as_fd(), &mut buf).unwrap(), 4);
        assert_eq!(&buf[..4], b"3456");
        assert_eq!(sendfile(a.as_fd(), file.as_fd(), 10, 4).unwrap(), 0);
        assert_eq!(file.stream_position().unwrap(), start);
        file.flush().unwrap();
        // A pipe cannot be a sendfile source at an offset: ESPIPE.
        let (r, _w) = crate::fd::pipe().unwrap();
        let err = sendfile(a.as_fd(), r.as_fd(), 0, 4).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::ESPIPE), "{err}");
        // Shut down, not only closed: a child another test forks meanwhile may hold a copy of
        // `b` until its exec, and a socket with a copy open is not closed yet.
        rustix::net::shutdown(&b, rustix::net::Shutdown::Both).unwrap();
        drop(b);
        let err = sendfile(a.as_fd(), file.as_fd(), 0, 4).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::BrokenPipe, "{err}");
    }

    #[test]
    fn a_bsd_sendfile_cut_short_is_its_partial_count() {
        assert_eq!(sendfile_outcome(None, 7).unwrap(), 7);
        assert_eq!(sendfile_outcome(None, 0).unwrap(), 0);
        for errno in [libc::EAGAIN, libc::EINTR, libc::EBUSY] {
            assert_eq!(sendfile_outcome(Some(errno), 5).unwrap(), 5);
            let err = sendfile_outcome(Some(errno), 0).unwrap_err();
            assert_eq!(err.raw_os_error(), Some(errno));
        }
        assert_eq!(
            sendfile_outcome(Some(libc::EAGAIN), 0).unwrap_err().kind(),
            io::ErrorKind::WouldBlock
        );
        // Any other failure is the error, whatever went out before it.
        let err = sendfile_outcome(Some(libc::EPIPE), 3).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::BrokenPipe);
    }

    #[cfg(any(target_os = "linux", target_os = "android"))]
    fn tempfile_with(data: &[u8]) -> std::fs::File {
        use std::io::Write;
        let path = std::env::temp_dir().join(format!("tulip-sys-sendfile-{}", std::process::id()));
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .unwrap();
        let _ = std::fs::remove_file(&path);
        file.write_all(data).unwrap();
        file
    }
}
