//! UDP: [`UdpSocket`], std's socket made non-blocking, its datagrams awaited on the running
//! loop.

use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::os::fd::{IntoRawFd, OwnedFd, RawFd};

use super::datagram::datagram_methods;
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
            .io_with(Direction::Write, |socket| socket.send_to(buf, target))
            .await
    }

    datagram_methods!(SocketAddr);

    /// [`send_to`](Self::send_to) without waiting: `WouldBlock` if the send buffer is full.
    ///
    /// # Errors
    /// The kernel's, `WouldBlock` included.
    pub fn try_send_to(&self, buf: &[u8], target: SocketAddr) -> io::Result<usize> {
        self.inner
            .try_io_with(Direction::Write, |socket| socket.send_to(buf, target))
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
