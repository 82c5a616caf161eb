//! The sockets transports run on, written once over [`Stream<S>`] for every std stream type
//! (TCP, Unix): [`Socket`] is what a connection needs of its stream, [`Listening`] what a
//! server needs of its listener.

use std::io;
use std::net::Shutdown;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::task::{Context, Poll};

use tulip_sys::net as sys;

use super::Address;
use crate::event_loop::Direction;
use crate::net::source::FdKind;
use crate::net::stream::Stream;

/// What a connection does with its stream, whatever the socket type: the connection holds it
/// as `dyn Socket`, so that one non-generic driver serves them all.
pub(crate) trait Socket {
    /// One `send` now: `WouldBlock` if the kernel takes nothing.
    fn try_write(&self, buf: &[u8]) -> io::Result<usize>;

    /// Read into `buf`, or register the task's waker for readability.
    fn poll_read(&self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>>;

    /// Write some of `buf`, or register the task's waker for writability.
    fn poll_write(&self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>>;

    /// Forget that `direction` is ready: the kernel's buffer was found empty (or full) without
    /// a `WouldBlock` to say so (a short read or write), or a `try_write` blocked. If it is
    /// ready after all, the next wait hears so: at once where the fd is level-triggered, at the
    /// next change where it is edge-triggered (only for the kinds of fd whose short counts mean
    /// drained or full: see `FdKind::trigger`).
    fn clear_ready(&self, direction: Direction);

    /// One `sendfile(2)` of `count` bytes of `file` from `offset`, or register the task's
    /// waker for writability. `ENOSYS` where the stream is not a socket (a pipe).
    fn poll_sendfile(
        &self,
        cx: &mut Context<'_>,
        file: BorrowedFd<'_>,
        offset: u64,
        count: usize,
    ) -> Poll<io::Result<usize>> {
        let _ = (cx, file, offset, count);
        Poll::Ready(Err(io::Error::from_raw_os_error(sys::ENOSYS)))
    }

    /// `shutdown(SHUT_WR)`: the peer reads an end of stream.
    fn shutdown_write(&self) -> io::Result<()>;

    /// The peer's address (`getpeername(2)`); `None` if the kernel gave none (the peer is
    /// gone already).
    fn peername(&self) -> Option<Address>;

    /// This end's address (`getsockname(2)`); `None` if the kernel gave none.
    fn sockname(&self) -> Option<Address>;

    /// Which ways bytes go: both for a socket, one for a pipe end.
    fn ends(&self) -> Ends {
        Ends::Both
    }

    /// For a write pipe ([`Ends::WriteOnly`]): `Ready` once the reading end is closed,
    /// otherwise the task's waker is registered. Sockets never call it.
    fn poll_reader_gone(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let _ = cx;
        Poll::Pending
    }
}

/// Which ways a connection's bytes go.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) enum Ends {
    /// A socket: read and written.
    Both,
    /// A read pipe (asyncio's `_UnixReadPipeTransport`): read only; writes are refused, and
    /// its end of stream closes it.
    ReadOnly,
    /// A write pipe (asyncio's `_UnixWritePipeTransport`): written only; `write_eof` closes
    /// it, and its readability means that the reading end closed.
    WriteOnly,
}

/// A std stream socket a transport can run on (`Stream<S>` is then a [`Socket`]).
pub(crate) trait StreamSocket: AsFd + 'static {
    /// `shutdown(2)`.
    fn shutdown(&self, how: Shutdown) -> io::Result<()>;

    /// The peer's address, as the kernel reports it.
    fn peername(&self) -> Option<Address>;

    /// This end's address, as the kernel reports it.
    fn sockname(&self) -> Option<Address>;
}

impl StreamSocket for std::net::TcpStream {
    fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        std::net::TcpStream::shutdown(self, how)
    }

    fn peername(&self) -> Option<Address> {
        self.peer_addr().ok().map(Address::Inet)
    }

    fn sockname(&self) -> Option<Address> {
        self.local_addr().ok().map(Address::Inet)
    }
}

impl StreamSocket for UnixStream {
    fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        UnixStream::shutdown(self, how)
    }

    fn peername(&self) -> Option<Address> {
        self.peer_addr().ok().map(Address::Unix)
    }

    fn sockname(&self) -> Option<Address> {
        self.local_addr().ok().map(Address::Unix)
    }
}

impl<S: StreamSocket> Socket for Stream<S> {
    fn try_write(&self, buf: &[u8]) -> io::Result<usize> {
        Stream::try_write(self, buf)
    }

    fn poll_read(&self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        Stream::poll_read(self, cx, buf)
    }

    fn poll_write(&self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Stream::poll_write(self, cx, buf)
    }

    fn clear_ready(&self, direction: Direction) {
        self.source().clear_ready(direction);
    }

    fn poll_sendfile(
        &self,
        cx: &mut Context<'_>,
        file: BorrowedFd<'_>,
        offset: u64,
        count: usize,
    ) -> Poll<io::Result<usize>> {
        let sock = self.get_ref().as_fd();
        self.source().poll_io(Direction::Write, cx, || {
            sys::sendfile(sock, file, offset, count)
        })
    }

    fn shutdown_write(&self) -> io::Result<()> {
        self.get_ref().shutdown(Shutdown::Write)
    }

    fn peername(&self) -> Option<Address> {
        self.get_ref().peername()
    }

    fn sockname(&self) -> Option<Address> {
        self.get_ref().sockname()
    }
}

/// A std listening socket a server can accept on.
pub(crate) trait Listening: AsFd + 'static {
    /// The sockets it accepts.
    type Accepted: StreamSocket;

    /// What its accepted sockets are (which decides how they are watched).
    const KIND: FdKind;

    /// Wrap an accepted fd (non-blocking, close-on-exec, SIGPIPE-free: made so by
    /// `sys::accept`) as that socket type, with the options asyncio sets (`TCP_NODELAY`).
    fn adopt(fd: OwnedFd) -> Self::Accepted;
}

impl Listening for std::net::TcpListener {
    type Accepted = std::net::TcpStream;
    const KIND: FdKind = FdKind::TcpStream;

    fn adopt(fd: OwnedFd) -> std::net::TcpStream {
        let stream = std::net::TcpStream::from(fd);
        // Only fails for a connection already reset, which its first read then reports.
        let _ = stream.set_nodelay(true);
        stream
    }
}

impl Listening for UnixListener {
    type Accepted = UnixStream;
    const KIND: FdKind = FdKind::UnixStream;

    fn adopt(fd: OwnedFd) -> UnixStream {
        UnixStream::from(fd)
    }
}

/// Accept one connection on `listener`, or register the task's waker for the next one.
///
/// # Errors
/// The kernel's (`EMFILE`, `ENFILE`, ...): the caller decides whether to rest.
pub(crate) fn poll_accept<L: Listening>(
    listener: &Stream<L>,
    cx: &mut Context<'_>,
) -> Poll<io::Result<Stream<L::Accepted>>> {
    let accepted = listener.source().poll_io(Direction::Read, cx, || {
        sys::accept(listener.get_ref().as_fd())
    });
    accepted.map_ok(|(fd, _peer)| Stream::from_nonblocking(L::adopt(fd), L::KIND))
}
