//! UDP: [`UdpSocket`], std's socket made non-blocking, its datagrams awaited on the running
//! loop.

use std::future::poll_fn;
use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::os::fd::{IntoRawFd, OwnedFd, RawFd};

use super::source::FdKind;
use super::stream::{fd_traits, Stream};
use crate::event_loop::Direction;

/// A UDP socket whose sends and receives await the running loop.
///
/// Every method takes `&self`, so one task may receive while another sends. Each receive
/// takes one datagram; a datagram longer than the buffer is cut to its length, the rest
/// discarded (`recvfrom(2)`). The socket is watched by the loop only while a task waits on it,
/// and unregistered when dropped, before its fd is closed.
///
/// ```
/// use tulip::net::UdpSocket;
///
/// let lp = tulip::EventLoop::new()?;
/// lp.run_until_complete(async {
///     let server = UdpSocket::bind("127.0.0.1:0")?;
///     let client = UdpSocket::bind("127.0.0.1:0")?;
///     client.send_to(b"ping", server.local_addr()?).await?;
///     let mut buf = [0; 16];
///     let (n, from) = server.recv_from(&mut buf).await?;
///     assert_eq!((&buf[..n], from), (&b"ping"[..], client.local_addr()?));
///     Ok::<(), std::io::Error>(())
/// })??;
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug)]
pub struct UdpSocket {
    /// Only its source and its socket are used: its byte-stream methods are not for datagrams.
    inner: Stream<std::net::UdpSocket>,
}

impl UdpSocket {
    /// Bind a socket to `addr`, the first of its addresses that works (port 0: any free
    /// port). Names are resolved by std's blocking resolver.
    ///
    /// # Errors
    /// The kernel's (`AddrInUse`, `PermissionDenied`), or the resolver's.
    pub fn bind(addr: impl ToSocketAddrs) -> io::Result<UdpSocket> {
        UdpSocket::from_std(std::net::UdpSocket::bind(addr)?)
    }

    /// Adopt a std socket (made non-blocking).
    ///
    /// # Errors
    /// The kernel's, if its flags cannot be set.
    pub fn from_std(socket: std::net::UdpSocket) -> io::Result<UdpSocket> {
        Ok(UdpSocket {
            inner: Stream::new(socket, FdKind::Socket)?,
        })
    }

    /// Unregister from the loop and give back the std socket (still non-blocking).
    pub fn into_std(self) -> std::net::UdpSocket {
        self.inner.into_inner()
    }

    /// Set the default peer (`connect(2)`, which for UDP sends nothing and does not block):
    /// [`send`](Self::send) goes there, and only its datagrams are received. Names are
    /// resolved by std's blocking resolver.
    ///
    /// # Errors
    /// The kernel's (`EAFNOSUPPORT` for an address of the other family), or the resolver's.
    pub fn connect(&self, addr: impl ToSocketAddrs) -> io::Result<()> {
        self.inner.get_ref().connect(addr)
    }

    /// Send `buf` as one datagram to `target`, waiting while the socket's send buffer is
    /// full: the count sent (all of `buf`).
    ///
    /// # Errors
    /// The kernel's (`EMSGSIZE` for a datagram too long for UDP, `EACCES` for a broadcast
    /// address without [`set_broadcast`](Self::set_broadcast), ...);
    /// [`LoopError::NoRunningLoop`](crate::LoopError::NoRunningLoop) if it has to wait outside
    /// a running loop. `WouldBlock` and `EINTR` never reach the caller.
    pub async fn send_to(&self, buf: &[u8], target: SocketAddr) -> io::Result<usize> {
        self.inner
            .source()
            .io(Direction::Write, || {
                self.inner.get_ref().send_to(buf, target)
            })
            .await
    }

    /// Receive one datagram into `buf`, waiting until one arrives: its length (cut to
    /// `buf.len()`) and its sender.
    ///
    /// # Errors
    /// The kernel's (`ECONNREFUSED` on a connected socket whose peer's port was closed: an
    /// ICMP error from an earlier send); as [`send_to`](Self::send_to) otherwise.
    pub async fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        self.inner
            .source()
            .io(Direction::Read, || self.inner.get_ref().recv_from(buf))
            .await
    }

    /// Send `buf` as one datagram to the [`connect`](Self::connect)ed peer.
    ///
    /// # Errors
    /// `NotConnected` if there is none; as [`send_to`](Self::send_to) otherwise.
    pub async fn send(&self, buf: &[u8]) -> io::Result<usize> {
        self.inner
            .source()
            .io(Direction::Write, || self.inner.get_ref().send(buf))
            .await
    }

    /// Receive one datagram from the [`connect`](Self::connect)ed peer into `buf`: its length
    /// (cut to `buf.len()`).
    ///
    /// # Errors
    /// As [`recv_from`](Self::recv_from).
    pub async fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.inner
            .source()
            .io(Direction::Read, || self.inner.get_ref().recv(buf))
            .await
    }

    /// [`send_to`](Self::send_to) without waiting: `WouldBlock` if the send buffer is full.
    ///
    /// # Errors
    /// The kernel's, `WouldBlock` included.
    pub fn try_send_to(&self, buf: &[u8], target: SocketAddr) -> io::Result<usize> {
        self.try_io(Direction::Write, |socket| socket.send_to(buf, target))
    }

    /// [`recv_from`](Self::recv_from) without waiting: `WouldBlock` if no datagram is there.
    ///
    /// # Errors
    /// The kernel's, `WouldBlock` included.
    pub fn try_recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        self.try_io(Direction::Read, |socket| socket.recv_from(buf))
    }

    /// [`send`](Self::send) without waiting: `WouldBlock` if the send buffer is full.
    ///
    /// # Errors
    /// The kernel's, `WouldBlock` included.
    pub fn try_send(&self, buf: &[u8]) -> io::Result<usize> {
        self.try_io(Direction::Write, |socket| socket.send(buf))
    }

    /// [`recv`](Self::recv) without waiting: `WouldBlock` if no datagram is there.
    ///
    /// # Errors
    /// The kernel's, `WouldBlock` included.
    pub fn try_recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.try_io(Direction::Read, |socket| socket.recv(buf))
    }

    /// One system call on the socket, without waiting: a `WouldBlock` makes the next wait
    /// park (see `Source::try_io`).
    fn try_io<R>(
        &self,
        direction: Direction,
        op: impl FnOnce(&std::net::UdpSocket) -> io::Result<R>,
    ) -> io::Result<R> {
        let socket = self.inner.get_ref();
        self.inner.source().try_io(direction, || op(socket))
    }

    /// Wait until a datagram (or a pending error) is there to receive.
    ///
    /// Readiness is remembered: until an operation in this direction has met
    /// `WouldBlock`, the socket counts as ready and this returns at once (a new socket
    /// is ready in both directions). So it pairs with `try_recv_from`: try, and on
    /// `WouldBlock`, await this.
    ///
    /// # Errors
    /// As [`recv_from`](Self::recv_from).
    pub async fn readable(&self) -> io::Result<()> {
        poll_fn(|cx| self.inner.source().poll_ready(Direction::Read, cx)).await
    }

    /// Wait until a send would not block.
    ///
    /// Readiness is remembered: until an operation in this direction has met
    /// `WouldBlock`, the socket counts as ready and this returns at once (a new socket
    /// is ready in both directions). So it pairs with `try_send_to`: try, and on
    /// `WouldBlock`, await this.
    ///
    /// # Errors
    /// As [`send_to`](Self::send_to).
    pub async fn writable(&self) -> io::Result<()> {
        poll_fn(|cx| self.inner.source().poll_ready(Direction::Write, cx)).await
    }

    /// The address the socket is bound to (its port, if bound to port 0).
    ///
    /// # Errors
    /// The kernel's.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.get_ref().local_addr()
    }

    /// The [`connect`](Self::connect)ed peer's address.
    ///
    /// # Errors
    /// `NotConnected` if there is none.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.inner.get_ref().peer_addr()
    }

    /// Allow sending to broadcast addresses (`SO_BROADCAST`).
    ///
    /// # Errors
    /// The kernel's.
    pub fn set_broadcast(&self, broadcast: bool) -> io::Result<()> {
        self.inner.get_ref().set_broadcast(broadcast)
    }

    /// Whether `SO_BROADCAST` is set.
    ///
    /// # Errors
    /// The kernel's.
    pub fn broadcast(&self) -> io::Result<bool> {
        self.inner.get_ref().broadcast()
    }

    /// Set the time-to-live of outgoing datagrams (`IP_TTL`).
    ///
    /// # Errors
    /// The kernel's.
    pub fn set_ttl(&self, ttl: u32) -> io::Result<()> {
        self.inner.get_ref().set_ttl(ttl)
    }

    /// The time-to-live of outgoing datagrams (`IP_TTL`).
    ///
    /// # Errors
    /// The kernel's.
    pub fn ttl(&self) -> io::Result<u32> {
        self.inner.get_ref().ttl()
    }

    /// The socket's pending error (`SO_ERROR`), cleared by reading it.
    ///
    /// # Errors
    /// The kernel's.
    pub fn take_error(&self) -> io::Result<Option<io::Error>> {
        self.inner.get_ref().take_error()
    }
}

fd_traits!(UdpSocket, inner);

impl From<OwnedFd> for UdpSocket {
    /// Adopt a UDP socket's fd (made non-blocking; if its flags cannot be set, every
    /// operation fails with that error).
    fn from(fd: OwnedFd) -> UdpSocket {
        UdpSocket {
            inner: Stream::from_fd(std::net::UdpSocket::from(fd), FdKind::Socket),
        }
    }
}

impl IntoRawFd for UdpSocket {
    /// Unregister from the loop and give up the fd (still non-blocking) without closing it.
    fn into_raw_fd(self) -> RawFd {
        self.into_std().into_raw_fd()
    }
}

impl From<UdpSocket> for OwnedFd {
    fn from(socket: UdpSocket) -> OwnedFd {
        socket.into_std().into()
    }
}
