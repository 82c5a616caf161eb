//! Unix datagram sockets: [`UnixDatagram`], std's socket made non-blocking, its datagrams
//! awaited on the running loop (as [`UdpSocket`](super::UdpSocket) for UDP).

use std::io;
use std::os::fd::{IntoRawFd, OwnedFd, RawFd};
use std::os::unix::net::{self as std_unix, SocketAddr};
use std::path::Path;

use super::datagram::datagram_methods;
use super::source::FdKind;
use super::stream::{fd_traits, Stream};
use crate::event_loop::Direction;

/// A Unix datagram socket whose sends and receives await the running loop.
///
/// Every method takes `&self`, so one task may receive while another sends. Each receive
/// takes one datagram; a datagram longer than the buffer is cut to its length, the rest
/// discarded. The socket is watched by the loop only while a task waits on it, and
/// unregistered when dropped, before its fd is closed. A bound socket's file is not removed
/// when it is dropped (as with std's): remove it yourself.
///
/// ```
/// use tulip::net::UnixDatagram;
///
/// let lp = tulip::EventLoop::new()?;
/// lp.run_until_complete(async {
///     let (a, b) = UnixDatagram::pair()?;
///     a.send(b"ping").await?;
///     let mut buf = [0; 16];
///     let n = b.recv(&mut buf).await?;
///     assert_eq!(&buf[..n], b"ping");
///     Ok::<(), std::io::Error>(())
/// })??;
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug)]
pub struct UnixDatagram {
    /// Only its source and its socket are used: its byte-stream methods are not for datagrams.
    inner: Stream<std_unix::UnixDatagram>,
}

impl UnixDatagram {
    /// A socket bound to `path`, which must not exist yet.
    ///
    /// # Errors
    /// The kernel's (`AddrInUse` if `path` exists, `PermissionDenied`, `NotFound` for a
    /// missing directory); `InvalidInput` for a path too long for a socket address.
    pub fn bind(path: impl AsRef<Path>) -> io::Result<UnixDatagram> {
        UnixDatagram::from_std(std_unix::UnixDatagram::bind(path)?)
    }

    /// A socket bound to no name: it can send (to a path, or to its
    /// [`connect`](Self::connect)ed peer), and receive only from a peer that knows it (a
    /// connected one, or the other end of a [`pair`](Self::pair)).
    ///
    /// # Errors
    /// The kernel's (`EMFILE`, ...).
    pub fn unbound() -> io::Result<UnixDatagram> {
        UnixDatagram::from_std(std_unix::UnixDatagram::unbound()?)
    }

    /// Two sockets connected to each other (`socketpair(2)`).
    ///
    /// # Errors
    /// The kernel's (`EMFILE`, ...).
    pub fn pair() -> io::Result<(UnixDatagram, UnixDatagram)> {
        let (a, b) = std_unix::UnixDatagram::pair()?;
        Ok((UnixDatagram::from_std(a)?, UnixDatagram::from_std(b)?))
    }

    /// Adopt a std socket (made non-blocking).
    ///
    /// # Errors
    /// The kernel's, if its flags cannot be set.
    pub fn from_std(socket: std_unix::UnixDatagram) -> io::Result<UnixDatagram> {
        Ok(UnixDatagram {
            inner: Stream::new(socket, FdKind::Socket)?,
        })
    }

    /// Unregister from the loop and give back the std socket (still non-blocking).
    pub fn into_std(self) -> std_unix::UnixDatagram {
        self.inner.into_inner()
    }

    /// Set the default peer, the socket bound at `path` (`connect(2)`, which sends nothing and
    /// does not block): [`send`](Self::send) goes there, and only its datagrams are received.
    ///
    /// # Errors
    /// The kernel's (`NotFound` if nothing is at `path`, `ConnectionRefused` if what is there
    /// is no datagram socket).
    pub fn connect(&self, path: impl AsRef<Path>) -> io::Result<()> {
        self.inner.get_ref().connect(path)
    }

    /// Send `buf` as one datagram to the socket bound at `path`, waiting while the receiver's
    /// queue is full: the count sent (all of `buf`).
    ///
    /// # Errors
    /// The kernel's (`NotFound`, `ConnectionRefused`, `EMSGSIZE` for a datagram too long);
    /// [`LoopError::NoRunningLoop`](crate::LoopError::NoRunningLoop) if it has to wait outside
    /// a running loop. `WouldBlock` and `EINTR` never reach the caller.
    pub async fn send_to(&self, buf: &[u8], path: impl AsRef<Path>) -> io::Result<usize> {
        let path = path.as_ref();
        self.inner
            .io_with(Direction::Write, |socket| socket.send_to(buf, path))
            .await
    }

    datagram_methods!(SocketAddr);

    /// [`send_to`](Self::send_to) without waiting: `WouldBlock` if the receiver's queue is
    /// full.
    ///
    /// # Errors
    /// The kernel's, `WouldBlock` included.
    pub fn try_send_to(&self, buf: &[u8], path: impl AsRef<Path>) -> io::Result<usize> {
        let path = path.as_ref();
        self.inner
            .try_io_with(Direction::Write, |socket| socket.send_to(buf, path))
    }
}

fd_traits!(UnixDatagram, inner);

impl From<OwnedFd> for UnixDatagram {
    /// Adopt a Unix datagram socket's fd (made non-blocking; if its flags cannot be set,
    /// every operation fails with that error).
    fn from(fd: OwnedFd) -> UnixDatagram {
        UnixDatagram {
            inner: Stream::from_fd(std_unix::UnixDatagram::from(fd), FdKind::Socket),
        }
    }
}

impl IntoRawFd for UnixDatagram {
    /// Unregister from the loop and give up the fd (still non-blocking) without closing it.
    fn into_raw_fd(self) -> RawFd {
        self.into_std().into_raw_fd()
    }
}

impl From<UnixDatagram> for OwnedFd {
    fn from(socket: UnixDatagram) -> OwnedFd {
        socket.into_std().into()
    }
}
