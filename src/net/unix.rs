//! Unix stream sockets: [`UnixListener`] and [`UnixStream`] (with the halves of `split.rs`),
//! std's sockets made non-blocking and awaited on the running loop.

use std::cell::Cell;
use std::io;
use std::net::Shutdown;
use std::os::fd::{AsFd, IntoRawFd, OwnedFd, RawFd};
use std::os::unix::net::{self as std_unix, SocketAddr};
use std::path::Path;
use std::time::{Duration, Instant};

use tulip_sys::net::{self as sys, Connect, Domain, Type};

use super::accept;
use super::source::FdKind;
use super::split::{self, OwnedReadHalf, OwnedWriteHalf, ReadHalf, Splittable, WriteHalf};
use super::stream::{fd_traits, read_methods, write_methods, Stream};
use crate::task::sleep;

/// The first rest of [`UnixStream::connect`] when the listener's backlog is full; it doubles
/// after each refusal, up to [`CONNECT_RETRY_MAX`].
const CONNECT_RETRY_FIRST: Duration = Duration::from_millis(1);
const CONNECT_RETRY_MAX: Duration = Duration::from_millis(100);

/// A Unix stream listening socket whose [`accept`](Self::accept) awaits connections on the
/// running loop.
///
/// The socket file is not removed when the listener is dropped (as with std's listener):
/// remove it yourself, or [`bind`](Self::bind) fails with `AddrInUse` next time.
///
/// ```
/// use tulip::net::{UnixListener, UnixStream};
///
/// let path = std::env::temp_dir().join(format!("tulip-doc-{}.sock", std::process::id()));
/// let listener = UnixListener::bind(&path)?;
/// let lp = tulip::EventLoop::new()?;
/// let echoed = lp.run_until_complete(async move {
///     let client = UnixStream::connect(&path).await?;
///     let (server, _) = listener.accept().await?;
///     std::fs::remove_file(&path)?;
///     client.write_all(b"ping").await?;
///     let mut buf = [0; 4];
///     server.read_exact(&mut buf).await?;
///     Ok::<_, std::io::Error>(buf)
/// })??;
/// assert_eq!(&echoed, b"ping");
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug)]
pub struct UnixListener {
    inner: Stream<std_unix::UnixListener>,
    /// After a resource-exhaustion error: not before this instant (see `accept.rs`).
    retry_at: Cell<Option<Instant>>,
}

impl UnixListener {
    /// Bind a listener to the filesystem path `path` (std's `bind` and `listen`), which must
    /// not exist yet.
    ///
    /// # Errors
    /// The kernel's (`AddrInUse` if `path` exists, `PermissionDenied`, `NotFound` for a
    /// missing directory); `InvalidInput` for a path too long for `sun_path`.
    pub fn bind(path: impl AsRef<Path>) -> io::Result<UnixListener> {
        UnixListener::from_std(std_unix::UnixListener::bind(path)?)
    }

    /// Adopt a std listener (made non-blocking).
    ///
    /// # Errors
    /// The kernel's, if its flags cannot be set.
    pub fn from_std(listener: std_unix::UnixListener) -> io::Result<UnixListener> {
        Ok(UnixListener::wrap(Stream::new(listener, FdKind::Socket)?))
    }

    fn wrap(inner: Stream<std_unix::UnixListener>) -> UnixListener {
        UnixListener {
            inner,
            retry_at: Cell::new(None),
        }
    }

    /// Wait for a connection: the stream (non-blocking, close-on-exec) and the peer's address
    /// (usually unnamed: a client seldom binds its socket).
    ///
    /// Out of fds or kernel memory, the error is returned and the next `accept` first rests
    /// [`ACCEPT_RETRY_DELAY`](super::ACCEPT_RETRY_DELAY), as
    /// [`TcpListener::accept`](super::TcpListener::accept) does.
    ///
    /// # Errors
    /// As above; [`LoopError::NoRunningLoop`](crate::LoopError::NoRunningLoop) outside a
    /// running loop.
    pub async fn accept(&self) -> io::Result<(UnixStream, SocketAddr)> {
        let (fd, _) = accept::accept(&self.inner, &self.retry_at).await?;
        let stream = UnixStream::from_socket(fd);
        let peer = stream.peer_addr()?;
        Ok((stream, peer))
    }

    /// The address the listener is bound to.
    ///
    /// # Errors
    /// The kernel's.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.get_ref().local_addr()
    }

    /// The socket's pending error (`SO_ERROR`), cleared by reading it.
    ///
    /// # Errors
    /// The kernel's.
    pub fn take_error(&self) -> io::Result<Option<io::Error>> {
        self.inner.get_ref().take_error()
    }

    /// Unregister from the loop and give back the std listener (still non-blocking).
    pub fn into_std(self) -> std_unix::UnixListener {
        self.inner.into_inner()
    }
}

/// A Unix stream socket whose reads and writes await the running loop.
///
/// As [`TcpStream`](super::TcpStream): every method takes `&self`, the halves of
/// [`split`](Self::split) and [`into_split`](Self::into_split) hand the two directions to two
/// tasks, and the socket is watched only while a task waits on it.
///
/// ```
/// use tulip::net::UnixStream;
///
/// let lp = tulip::EventLoop::new()?;
/// lp.run_until_complete(async {
///     let (a, b) = UnixStream::pair()?;
///     a.write_all(b"hello").await?;
///     drop(a);
///     let mut buf = [0; 8];
///     assert_eq!(b.read(&mut buf).await?, 5);
///     assert_eq!(b.read(&mut buf).await?, 0, "end of stream once `a` is closed");
///     Ok::<(), std::io::Error>(())
/// })??;
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug)]
pub struct UnixStream {
    inner: Stream<std_unix::UnixStream>,
}

impl UnixStream {
    /// Connect to the listener at `path` (a non-blocking `connect`).
    ///
    /// While the listener's backlog is full (Linux refuses with `EAGAIN` rather than queueing
    /// the client), the connect is tried again after a rest of 1 ms, doubling up to 100 ms, as
    /// long as it takes: bound it with [`wait_for`](crate::wait_for) if the listener may never
    /// accept. Where the kernel reports a connect in progress, it waits for the socket to be
    /// writable and reads the outcome.
    ///
    /// # Errors
    /// The kernel's: `NotFound` if nothing is at `path`, `ConnectionRefused` if nothing
    /// listens there any more, `PermissionDenied`; `InvalidInput` for a path too long for
    /// `sun_path` or holding a NUL byte;
    /// [`LoopError::NoRunningLoop`](crate::LoopError::NoRunningLoop) outside a running loop
    /// (when it has to wait).
    pub async fn connect(path: impl AsRef<Path>) -> io::Result<UnixStream> {
        let path = path.as_ref();
        let stream = UnixStream::from_socket(sys::socket(Domain::Unix, Type::Stream)?);
        let mut rest = CONNECT_RETRY_FIRST;
        loop {
            match sys::connect_unix(stream.as_fd(), path) {
                Ok(Connect::Done) => return Ok(stream),
                Ok(Connect::InProgress) => {
                    return stream.inner.finish_connect().await.map(|()| stream)
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    sleep(rest).await?;
                    rest = (rest * 2).min(CONNECT_RETRY_MAX);
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// A connected pair of streams (`socketpair(2)`): what one writes the other reads.
    ///
    /// # Errors
    /// The kernel's (`EMFILE`, `ENFILE`).
    pub fn pair() -> io::Result<(UnixStream, UnixStream)> {
        let (a, b) = tulip_sys::fd::socketpair()?;
        Ok((UnixStream::from_socket(a), UnixStream::from_socket(b)))
    }

    /// A stream over an fd tulip-sys made (non-blocking, close-on-exec, SIGPIPE-free).
    fn from_socket(fd: OwnedFd) -> UnixStream {
        UnixStream {
            inner: Stream::from_nonblocking(std_unix::UnixStream::from(fd), FdKind::UnixStream),
        }
    }

    /// Adopt a connected std stream (made non-blocking and, where that is a socket option,
    /// SIGPIPE-free).
    ///
    /// # Errors
    /// The kernel's, if its flags cannot be set.
    pub fn from_std(stream: std_unix::UnixStream) -> io::Result<UnixStream> {
        Ok(UnixStream {
            inner: Stream::new(stream, FdKind::Socket)?,
        })
    }

    /// Unregister from the loop and give back the std stream (still non-blocking).
    pub fn into_std(self) -> std_unix::UnixStream {
        self.inner.into_inner()
    }

    read_methods!(inner);
    write_methods!(inner);

    /// Shut down reading, writing or both (`shutdown(2)`); `Shutdown::Write` sends the peer
    /// an end of stream while reading goes on.
    ///
    /// # Errors
    /// The kernel's (`NotConnected`).
    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        self.inner.get_ref().shutdown(how)
    }

    /// The peer's address (unnamed unless the peer bound its socket).
    ///
    /// # Errors
    /// The kernel's (`NotConnected`).
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.inner.get_ref().peer_addr()
    }

    /// This end's address (unnamed for a client or one end of a [`pair`](Self::pair)).
    ///
    /// # Errors
    /// The kernel's.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.get_ref().local_addr()
    }

    /// The socket's pending error (`SO_ERROR`), cleared by reading it.
    ///
    /// # Errors
    /// The kernel's.
    pub fn take_error(&self) -> io::Result<Option<io::Error>> {
        self.inner.get_ref().take_error()
    }

    /// A reading and a writing half borrowing the stream, for two tasks (or two branches of
    /// one future) to use at once.
    pub fn split(&self) -> (ReadHalf<'_, UnixStream>, WriteHalf<'_, UnixStream>) {
        split::split(self)
    }

    /// Owned halves, for tasks that outlive this scope. Dropping the writing half shuts down
    /// writing (the peer reads an end of stream); the socket closes when both are dropped.
    pub fn into_split(self) -> (OwnedReadHalf<UnixStream>, OwnedWriteHalf<UnixStream>) {
        split::into_split(self)
    }
}

impl Splittable for UnixStream {
    type Io = std_unix::UnixStream;

    fn stream(&self) -> &Stream<std_unix::UnixStream> {
        &self.inner
    }

    fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        UnixStream::shutdown(self, how)
    }
}

fd_traits!(UnixListener, inner);
fd_traits!(UnixStream, inner);

impl From<OwnedFd> for UnixStream {
    /// Adopt a connected Unix stream socket's fd (made non-blocking; if its flags cannot be
    /// set, every operation fails with that error).
    fn from(fd: OwnedFd) -> UnixStream {
        UnixStream {
            inner: Stream::from_fd(std_unix::UnixStream::from(fd), FdKind::Socket),
        }
    }
}

impl From<OwnedFd> for UnixListener {
    /// Adopt a listening Unix stream socket's fd (made non-blocking; if its flags cannot be
    /// set, every operation fails with that error).
    fn from(fd: OwnedFd) -> UnixListener {
        UnixListener::wrap(Stream::from_fd(
            std_unix::UnixListener::from(fd),
            FdKind::Socket,
        ))
    }
}

impl IntoRawFd for UnixStream {
    /// Unregister from the loop and give up the fd (still non-blocking) without closing it.
    fn into_raw_fd(self) -> RawFd {
        self.into_std().into_raw_fd()
    }
}

impl IntoRawFd for UnixListener {
    /// Unregister from the loop and give up the fd (still non-blocking) without closing it.
    fn into_raw_fd(self) -> RawFd {
        self.into_std().into_raw_fd()
    }
}

impl From<UnixStream> for OwnedFd {
    fn from(stream: UnixStream) -> OwnedFd {
        stream.into_std().into()
    }
}

impl From<UnixListener> for OwnedFd {
    fn from(listener: UnixListener) -> OwnedFd {
        listener.into_std().into()
    }
}
