//! What every byte stream of [`net`](crate::net) shares: an owned fd, its [`Source`], and the
//! operations on it, each tried first and awaited only on `WouldBlock`.

use std::future::{poll_fn, Future};
use std::io;
use std::os::fd::{AsFd, AsRawFd};
use std::task::{ready, Context, Poll};

use tulip_sys::{fd, net as sys};

use crate::event_loop::Direction;
use crate::net::source::{FdKind, Source};

/// A non-blocking fd-backed stream `S` (a std socket or an `OwnedFd`) and its registration.
/// The source is declared first, so it is dropped (and the fd unregistered) before `io`
/// closes the fd.
///
/// Nominally `pub` (this module is private, so it is not reachable from outside the crate):
/// the sealed trait of `split.rs` names it in a signature.
#[derive(Debug)]
pub struct Stream<S: AsFd> {
    source: Source,
    io: S,
    kind: FdKind,
}

impl<S: AsFd> Stream<S> {
    /// Wrap `io`, an fd of `kind` that tulip did not make (handed in by the user, or a
    /// listening or datagram socket), making it non-blocking (and, for a socket,
    /// `SIGPIPE`-free where that is a socket option).
    ///
    /// # Errors
    /// The kernel's, if the fd's flags cannot be set.
    pub(crate) fn new(io: S, kind: FdKind) -> io::Result<Stream<S>> {
        Stream::prepare(&io, kind)?;
        Ok(Stream::from_nonblocking(io, kind))
    }

    /// [`new`](Self::new) for a conversion that cannot fail (`From<OwnedFd>`): if its flags
    /// cannot be set, every operation fails with that error instead.
    pub(crate) fn from_fd(io: S, kind: FdKind) -> Stream<S> {
        let setup = Stream::prepare(&io, kind);
        let stream = Stream::from_nonblocking(io, kind);
        if let Err(e) = setup {
            stream.source.fail(e);
        }
        stream
    }

    fn prepare(io: &S, kind: FdKind) -> io::Result<()> {
        fd::set_nonblocking(io.as_fd().as_raw_fd(), true)?;
        match kind.is_socket() {
            true => sys::set_nosigpipe(io.as_fd()),
            false => Ok(()),
        }
    }

    /// Wrap `io`, an fd of `kind` already non-blocking and `SIGPIPE`-free (a socket or pipe
    /// tulip-sys made, or one `prepare`d): `kind` decides how it is watched.
    pub(crate) fn from_nonblocking(io: S, kind: FdKind) -> Stream<S> {
        Stream {
            source: Source::new(io.as_fd().as_raw_fd(), kind),
            io,
            kind,
        }
    }

    pub(crate) fn get_ref(&self) -> &S {
        &self.io
    }

    pub(crate) fn source(&self) -> &Source {
        &self.source
    }

    /// Unregister from the loop and give the inner object back (still non-blocking).
    pub(crate) fn into_inner(self) -> S {
        self.source.deregister();
        self.io
    }

    /// One read system call, noting a short read. A read that did not fill `buf` has (nearly
    /// always) drained the kernel's buffer, so the next read waits for an event instead of
    /// making a system call only to hear `WouldBlock`. If more arrived meanwhile, the selector
    /// reports it: a level-triggered one because the fd is still readable, an edge-triggered
    /// one because the arrival is a new edge. (End of stream, 0, is permanent: no note.)
    fn read_now(&self, buf: &mut [u8]) -> io::Result<usize> {
        let n = match self.kind.is_socket() {
            true => sys::recv(self.io.as_fd(), buf),
            false => fd::read(self.io.as_fd(), buf),
        }?;
        if n > 0 && n < buf.len() {
            self.source.clear_ready(Direction::Read);
        }
        Ok(n)
    }

    /// One write system call, noting a short write (the kernel's buffer is full), as
    /// `read_now` does.
    fn write_now(&self, buf: &[u8]) -> io::Result<usize> {
        let n = match self.kind.is_socket() {
            true => fd::send(self.io.as_fd(), buf),
            false => sys::write_nosigpipe(self.io.as_fd(), buf),
        }?;
        if n < buf.len() {
            self.source.clear_ready(Direction::Write);
        }
        Ok(n)
    }

    /// Run `op` on the inner object until it does not block (see `Source::poll_io`): the
    /// datagram sockets' system calls, which are not reads and writes.
    pub(crate) async fn io_with<R>(
        &self,
        direction: Direction,
        mut op: impl FnMut(&S) -> io::Result<R>,
    ) -> io::Result<R> {
        self.source.io(direction, || op(&self.io)).await
    }

    /// Run `op` on the inner object once, without waiting; a `WouldBlock` makes the next wait
    /// park (see `Source::try_io`).
    pub(crate) fn try_io_with<R>(
        &self,
        direction: Direction,
        op: impl FnOnce(&S) -> io::Result<R>,
    ) -> io::Result<R> {
        self.source.try_io(direction, || op(&self.io))
    }

    /// Read without waiting; a `WouldBlock` makes the next wait park (see `Source::try_io`).
    pub(crate) fn try_read(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.source.try_io(Direction::Read, || self.read_now(buf))
    }

    /// Write without waiting; a `WouldBlock` makes the next wait park.
    pub(crate) fn try_write(&self, buf: &[u8]) -> io::Result<usize> {
        self.source.try_io(Direction::Write, || self.write_now(buf))
    }

    pub(crate) fn poll_read(
        &self,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        self.source
            .poll_io(Direction::Read, cx, || self.read_now(buf))
    }

    pub(crate) fn poll_write(&self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        self.source
            .poll_io(Direction::Write, cx, || self.write_now(buf))
    }

    // `read`, `read_exact`, `write` and `write_all` return their `poll_fn` itself rather than
    // being `async fn`s around it, and so do the public methods that forward to them: each
    // `async` layer is one more state machine to resume on every poll (a pipe round trip's
    // reads went through three; issue #16). The futures are `Unpin` too.

    pub(crate) fn read<'a>(
        &'a self,
        buf: &'a mut [u8],
    ) -> impl Future<Output = io::Result<usize>> + 'a {
        poll_fn(move |cx| self.poll_read(cx, buf))
    }

    pub(crate) fn read_exact<'a>(
        &'a self,
        buf: &'a mut [u8],
    ) -> impl Future<Output = io::Result<()>> + 'a {
        let mut filled = 0;
        poll_fn(move |cx| {
            while filled < buf.len() {
                match ready!(self.poll_read(cx, &mut buf[filled..]))? {
                    0 => {
                        let left = buf.len() - filled;
                        return Poll::Ready(Err(io::Error::new(
                            io::ErrorKind::UnexpectedEof,
                            format!("end of stream with {left} bytes still to read"),
                        )));
                    }
                    n => filled += n,
                }
            }
            Poll::Ready(Ok(()))
        })
    }

    pub(crate) fn write<'a>(
        &'a self,
        buf: &'a [u8],
    ) -> impl Future<Output = io::Result<usize>> + 'a {
        poll_fn(move |cx| self.poll_write(cx, buf))
    }

    pub(crate) fn write_all<'a>(
        &'a self,
        buf: &'a [u8],
    ) -> impl Future<Output = io::Result<()>> + 'a {
        let mut written = 0;
        poll_fn(move |cx| {
            while written < buf.len() {
                match ready!(self.poll_write(cx, &buf[written..]))? {
                    0 => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                    n => written += n,
                }
            }
            Poll::Ready(Ok(()))
        })
    }

    /// After a non-blocking `connect` answered `InProgress`: wait until the socket is
    /// writable (the handshake is over, whatever its outcome), then return the outcome, which
    /// `SO_ERROR` holds.
    pub(crate) async fn finish_connect(&self) -> io::Result<()> {
        self.source.clear_ready(Direction::Write);
        self.source.ready(Direction::Write).await?;
        match sys::take_error(self.io.as_fd())? {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    pub(crate) async fn readable(&self) -> io::Result<()> {
        poll_fn(|cx| self.source.poll_ready(Direction::Read, cx)).await
    }

    pub(crate) async fn writable(&self) -> io::Result<()> {
        poll_fn(|cx| self.source.poll_ready(Direction::Write, cx)).await
    }
}

/// The public reading and writing methods of a stream type whose `self.$($path)+` is a
/// [`Stream`] (a field such as `inner`, or a path such as `stream.stream()`), written once for
/// TCP, Unix sockets, pipes and the halves of a split.
macro_rules! read_methods {
    ($($path:tt)+) => {
        /// Read into `buf`, waiting until at least one byte (or the end of the stream) is
        /// there: the count read, 0 at the end of the stream (or for an empty `buf`).
        ///
        /// # Errors
        /// The kernel's (`ECONNRESET` for a reset connection, as `ConnectionReset`);
        /// [`LoopError::NoRunningLoop`](crate::LoopError::NoRunningLoop) if it has to wait
        /// outside a running loop. `WouldBlock` and `EINTR` never reach the caller.
        pub fn read<'a>(
            &'a self,
            buf: &'a mut [u8],
        ) -> impl std::future::Future<Output = std::io::Result<usize>> + 'a {
            self.$($path)+.read(buf)
        }

        /// Read exactly `buf.len()` bytes.
        ///
        /// # Errors
        /// As [`read`](Self::read); `UnexpectedEof` if the stream ends first (what was read
        /// is in `buf`, but how much is not said).
        pub fn read_exact<'a>(
            &'a self,
            buf: &'a mut [u8],
        ) -> impl std::future::Future<Output = std::io::Result<()>> + 'a {
            self.$($path)+.read_exact(buf)
        }

        /// Read what is there now, without waiting: `WouldBlock` if nothing is.
        ///
        /// # Errors
        /// The kernel's, `WouldBlock` included.
        pub fn try_read(&self, buf: &mut [u8]) -> std::io::Result<usize> {
            self.$($path)+.try_read(buf)
        }

        /// Wait until a read would not block (data, the end of the stream, or an error).
        ///
        /// Readiness is remembered: until an operation in this direction has met
        /// `WouldBlock`, the socket counts as ready and this returns at once (a new socket
        /// is ready in both directions). So it pairs with `try_read`: try, and on
        /// `WouldBlock`, await this.
        ///
        /// # Errors
        /// As [`read`](Self::read).
        pub async fn readable(&self) -> std::io::Result<()> {
            self.$($path)+.readable().await
        }

        /// [`read`](Self::read) for a hand-written future: `Pending` with the waker
        /// registered until data is there.
        ///
        /// # Errors
        /// As [`read`](Self::read).
        pub fn poll_read(
            &self,
            cx: &mut std::task::Context<'_>,
            buf: &mut [u8],
        ) -> std::task::Poll<std::io::Result<usize>> {
            self.$($path)+.poll_read(cx, buf)
        }
    };
}

/// See [`read_methods`]: the writing half.
macro_rules! write_methods {
    ($($path:tt)+) => {
        /// Write some of `buf`, waiting until the kernel takes at least one byte: the count
        /// written.
        ///
        /// # Errors
        /// The kernel's (`EPIPE` as `BrokenPipe` once the peer is gone: never a `SIGPIPE`);
        /// [`LoopError::NoRunningLoop`](crate::LoopError::NoRunningLoop) if it has to wait
        /// outside a running loop. `WouldBlock` and `EINTR` never reach the caller.
        pub fn write<'a>(
            &'a self,
            buf: &'a [u8],
        ) -> impl std::future::Future<Output = std::io::Result<usize>> + 'a {
            self.$($path)+.write(buf)
        }

        /// Write all of `buf`, waiting as often as the kernel's buffer is full.
        ///
        /// # Errors
        /// As [`write`](Self::write); how much was written before an error is not said.
        pub fn write_all<'a>(
            &'a self,
            buf: &'a [u8],
        ) -> impl std::future::Future<Output = std::io::Result<()>> + 'a {
            self.$($path)+.write_all(buf)
        }

        /// Write what the kernel takes now, without waiting: `WouldBlock` if it takes
        /// nothing.
        ///
        /// # Errors
        /// The kernel's, `WouldBlock` included.
        pub fn try_write(&self, buf: &[u8]) -> std::io::Result<usize> {
            self.$($path)+.try_write(buf)
        }

        /// Wait until a write would not block.
        ///
        /// Readiness is remembered: until an operation in this direction has met
        /// `WouldBlock`, the socket counts as ready and this returns at once (a new socket
        /// is ready in both directions). So it pairs with `try_write`: try, and on
        /// `WouldBlock`, await this.
        ///
        /// # Errors
        /// As [`write`](Self::write).
        pub async fn writable(&self) -> std::io::Result<()> {
            self.$($path)+.writable().await
        }

        /// [`write`](Self::write) for a hand-written future.
        ///
        /// # Errors
        /// As [`write`](Self::write).
        pub fn poll_write(
            &self,
            cx: &mut std::task::Context<'_>,
            buf: &[u8],
        ) -> std::task::Poll<std::io::Result<usize>> {
            self.$($path)+.poll_write(cx, buf)
        }
    };
}

/// `AsFd`, `AsRawFd` for a type whose field `$field` is a [`Stream`] (or anything `AsFd`).
macro_rules! fd_traits {
    ($ty:ty, $($field:ident).+) => {
        impl std::os::fd::AsFd for $ty {
            fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
                self.$($field).+.get_ref().as_fd()
            }
        }

        impl std::os::fd::AsRawFd for $ty {
            fn as_raw_fd(&self) -> std::os::fd::RawFd {
                std::os::fd::AsFd::as_fd(self).as_raw_fd()
            }
        }
    };
}

pub(crate) use {fd_traits, read_methods, write_methods};
