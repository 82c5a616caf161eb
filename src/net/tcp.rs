//! TCP: [`TcpListener`] and [`TcpStream`] (with its halves), std's sockets made non-blocking
//! and awaited on the running loop.

use std::cell::Cell;
use std::io;
use std::net::{Shutdown, SocketAddr, ToSocketAddrs};
use std::os::fd::{AsFd, IntoRawFd, OwnedFd, RawFd};
use std::time::Instant;

use tulip_sys::net::{self as sys, Connect, Domain, ListenOptions, Type};

use super::accept;
use super::resolve::{ConnectOptions, Endpoint};
use super::source::FdKind;
use super::split::{self, OwnedReadHalf, OwnedWriteHalf, ReadHalf, Splittable, WriteHalf};
use super::stream::{fd_traits, read_methods, write_methods, Stream};

/// A TCP listening socket whose [`accept`](Self::accept) awaits connections on the running
/// loop.
///
/// ```
/// use tulip::net::{TcpListener, TcpStream};
///
/// let lp = tulip::EventLoop::new()?;
/// lp.run_until_complete(async {
///     let listener = TcpListener::bind("127.0.0.1:0")?;
///     let client = TcpStream::connect(listener.local_addr()?).await?;
///     let (server, _) = listener.accept().await?;
///     client.write_all(b"ping").await?;
///     let mut buf = [0; 4];
///     server.read_exact(&mut buf).await?;
///     assert_eq!(&buf, b"ping");
///     Ok::<(), std::io::Error>(())
/// })??;
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug)]
pub struct TcpListener {
    inner: Stream<std::net::TcpListener>,
    /// After a resource-exhaustion error: not before this instant.
    retry_at: Cell<Option<Instant>>,
}

impl TcpListener {
    /// Bind a listener to `addr` (std's `bind`: `SO_REUSEADDR`, a backlog of 128), the first
    /// of its addresses that works. Names are resolved by std's blocking resolver.
    ///
    /// # Errors
    /// The kernel's (`AddrInUse`, `PermissionDenied`), or the resolver's.
    pub fn bind(addr: impl ToSocketAddrs) -> io::Result<TcpListener> {
        TcpListener::from_std(std::net::TcpListener::bind(addr)?)
    }

    /// Bind a listener to `addr`, the first of its addresses that works, set up as `options`
    /// say (asyncio's `backlog`, `reuse_address` and `reuse_port`). Names are resolved by
    /// std's blocking resolver.
    ///
    /// ```
    /// use tulip::net::{ListenOptions, TcpListener};
    ///
    /// let options = ListenOptions { backlog: 1024, ..ListenOptions::default() };
    /// let listener = TcpListener::bind_with("127.0.0.1:0", options)?;
    /// assert!(listener.local_addr()?.port() != 0);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    ///
    /// # Errors
    /// The last address's error (`AddrInUse`, `PermissionDenied`, ...), the resolver's, or
    /// `InvalidInput` if `addr` resolves to no address.
    pub fn bind_with(addr: impl ToSocketAddrs, options: ListenOptions) -> io::Result<TcpListener> {
        let listener = listen_on_first(addr, &options)?;
        let listener = std::net::TcpListener::from(listener);
        Ok(TcpListener::wrap(Stream::from_nonblocking(
            listener,
            FdKind::Socket,
        )))
    }

    /// Adopt a std listener (made non-blocking).
    ///
    /// # Errors
    /// The kernel's, if its flags cannot be set.
    pub fn from_std(listener: std::net::TcpListener) -> io::Result<TcpListener> {
        Ok(TcpListener::wrap(Stream::new(listener, FdKind::Socket)?))
    }

    fn wrap(inner: Stream<std::net::TcpListener>) -> TcpListener {
        TcpListener {
            inner,
            retry_at: Cell::new(None),
        }
    }

    /// Wait for a connection: the stream (non-blocking, close-on-exec) and the peer's address.
    ///
    /// Out of fds (`EMFILE`, `ENFILE`) or kernel memory, the error is returned and the next
    /// `accept` first rests [`ACCEPT_RETRY_DELAY`](super::ACCEPT_RETRY_DELAY): a loop that
    /// logs the error and accepts again neither spins nor stops, and serves again once fds are
    /// freed. A connection reset before it was accepted (`ECONNABORTED`) is skipped.
    ///
    /// # Errors
    /// As above; [`LoopError::NoRunningLoop`](crate::LoopError::NoRunningLoop) outside a
    /// running loop.
    pub async fn accept(&self) -> io::Result<(TcpStream, SocketAddr)> {
        let (fd, peer) = accept::accept(&self.inner, &self.retry_at).await?;
        let stream = TcpStream::from_accepted(fd);
        let peer = match peer {
            Some(peer) => peer,
            None => stream.peer_addr()?,
        };
        Ok((stream, peer))
    }

    /// The address the listener is bound to (its port, if bound to port 0).
    ///
    /// # Errors
    /// The kernel's.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.get_ref().local_addr()
    }

    /// Unregister from the loop and give back the std listener (still non-blocking).
    pub fn into_std(self) -> std::net::TcpListener {
        self.inner.into_inner()
    }
}

/// A TCP connection whose reads and writes await the running loop.
///
/// All methods take `&self`: one task may read while another writes (see
/// [`split`](Self::split) and [`into_split`](Self::into_split) for halves to hand out). The
/// socket is watched by the loop only while a task waits on it, and unregistered when the
/// stream is dropped, before its fd is closed.
#[derive(Debug)]
pub struct TcpStream {
    inner: Stream<std::net::TcpStream>,
}

impl TcpStream {
    /// Connect to `addr`, trying each of its addresses in turn (non-blocking `connect`, then
    /// waiting for the socket to become writable). A host name (`"localhost:80"`,
    /// `("localhost", 80)`: see [`Endpoint`]) is resolved on the loop's blocking pool
    /// ([`EventLoop::getaddrinfo`](crate::EventLoop::getaddrinfo)), so the loop runs on
    /// meanwhile; a literal address is used as it is.
    ///
    /// # Errors
    /// The error of the address tried last (`ConnectionRefused`, ...) if all fail the same
    /// way, else one of its kind naming each address and its error; the resolver's
    /// (`NotFound`, naming the host); `InvalidInput` for a string that is not `host:port`;
    /// [`LoopError::NoRunningLoop`](crate::LoopError::NoRunningLoop) outside a running loop.
    pub async fn connect(addr: impl Into<Endpoint>) -> io::Result<TcpStream> {
        TcpStream::connect_with(addr, &ConnectOptions::default()).await
    }

    /// [`connect`](Self::connect) as `options` say: staggered attempts (happy eyeballs), the
    /// addresses interleaved by family, from a local address.
    ///
    /// ```
    /// use tulip::net::{ConnectOptions, TcpListener, TcpStream};
    ///
    /// let lp = tulip::EventLoop::new()?;
    /// lp.run_until_complete(async {
    ///     let listener = TcpListener::bind("127.0.0.1:0")?;
    ///     let options = ConnectOptions {
    ///         local_addr: Some("127.0.0.1:0".parse().unwrap()),
    ///         ..ConnectOptions::default()
    ///     };
    ///     let client = TcpStream::connect_with(listener.local_addr()?, &options).await?;
    ///     let (_server, peer) = listener.accept().await?;
    ///     assert_eq!(peer, client.local_addr()?);
    ///     Ok::<(), std::io::Error>(())
    /// })??;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    ///
    /// # Errors
    /// As [`connect`](Self::connect); with a `local_addr`, the kernel's for `bind`
    /// (`AddrInUse`, `AddrNotAvailable`) and `InvalidInput` for an address of the other
    /// family.
    pub async fn connect_with(
        addr: impl Into<Endpoint>,
        options: &ConnectOptions,
    ) -> io::Result<TcpStream> {
        let endpoint = addr.into();
        let addrs = match super::resolved(&endpoint) {
            Some(addrs) => addrs?,
            None => crate::get_running_loop()?.resolve(&endpoint).await?,
        };
        let interleaving = match (options.interleave, options.happy_eyeballs_delay) {
            (Some(n), _) => n,
            (None, Some(_)) => 1,
            (None, None) => 0,
        };
        let addrs = super::interleave(&addrs, interleaving);
        let local = options.local_addr;
        super::race(&addrs, options.happy_eyeballs_delay, |addr| {
            TcpStream::connect_one(addr, local)
        })
        .await
        .map_err(|errors| super::combine(&endpoint, errors))
    }

    async fn connect_one(addr: SocketAddr, local: Option<SocketAddr>) -> io::Result<TcpStream> {
        let fd = sys::socket(Domain::of(&addr), Type::Stream)?;
        if let Some(local) = local {
            if local.is_ipv4() != addr.is_ipv4() {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("cannot connect to {addr} from {local}: another address family"),
                ));
            }
            sys::bind(fd.as_fd(), &local)?;
        }
        let stream = TcpStream::from_accepted(fd);
        if sys::connect(stream.as_fd(), &addr)? == Connect::InProgress {
            stream.inner.finish_connect().await?;
        }
        Ok(stream)
    }

    /// A stream over an fd tulip-sys made (non-blocking, close-on-exec, SIGPIPE-free).
    fn from_accepted(fd: OwnedFd) -> TcpStream {
        TcpStream {
            inner: Stream::from_nonblocking(std::net::TcpStream::from(fd), FdKind::TcpStream),
        }
    }

    /// Adopt a connected std stream (made non-blocking and, where that is a socket option,
    /// SIGPIPE-free).
    ///
    /// # Errors
    /// The kernel's, if its flags cannot be set.
    pub fn from_std(stream: std::net::TcpStream) -> io::Result<TcpStream> {
        Ok(TcpStream {
            inner: Stream::new(stream, FdKind::Socket)?,
        })
    }

    /// Unregister from the loop and give back the std stream (still non-blocking).
    pub fn into_std(self) -> std::net::TcpStream {
        self.inner.into_inner()
    }

    read_methods!(inner);
    write_methods!(inner);

    /// Shut down reading, writing or both (`shutdown(2)`); `Shutdown::Write` sends the peer
    /// an end of stream (asyncio's `write_eof`) while reading goes on.
    ///
    /// # Errors
    /// The kernel's (`NotConnected`).
    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        self.inner.get_ref().shutdown(how)
    }

    /// The peer's address.
    ///
    /// # Errors
    /// The kernel's (`NotConnected`).
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.inner.get_ref().peer_addr()
    }

    /// This end's address.
    ///
    /// # Errors
    /// The kernel's.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.get_ref().local_addr()
    }

    /// Set `TCP_NODELAY` (no Nagle delay for small writes).
    ///
    /// # Errors
    /// The kernel's.
    pub fn set_nodelay(&self, nodelay: bool) -> io::Result<()> {
        self.inner.get_ref().set_nodelay(nodelay)
    }

    /// Whether `TCP_NODELAY` is set.
    ///
    /// # Errors
    /// The kernel's.
    pub fn nodelay(&self) -> io::Result<bool> {
        self.inner.get_ref().nodelay()
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
    pub fn split(&self) -> (ReadHalf<'_>, WriteHalf<'_>) {
        split::split(self)
    }

    /// Owned halves, for tasks that outlive this scope. Dropping the writing half shuts down
    /// writing (the peer reads an end of stream); the socket closes when both are dropped.
    pub fn into_split(self) -> (OwnedReadHalf, OwnedWriteHalf) {
        split::into_split(self)
    }
}

impl Splittable for TcpStream {
    type Io = std::net::TcpStream;

    fn stream(&self) -> &Stream<std::net::TcpStream> {
        &self.inner
    }

    fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        TcpStream::shutdown(self, how)
    }
}

fd_traits!(TcpListener, inner);
fd_traits!(TcpStream, inner);

impl From<OwnedFd> for TcpStream {
    /// Adopt a connected TCP socket's fd (made non-blocking; if its flags cannot be set,
    /// every operation fails with that error).
    fn from(fd: OwnedFd) -> TcpStream {
        TcpStream {
            inner: Stream::from_fd(std::net::TcpStream::from(fd), FdKind::Socket),
        }
    }
}

impl From<OwnedFd> for TcpListener {
    /// Adopt a listening TCP socket's fd (made non-blocking; if its flags cannot be set,
    /// every operation fails with that error).
    fn from(fd: OwnedFd) -> TcpListener {
        TcpListener::wrap(Stream::from_fd(
            std::net::TcpListener::from(fd),
            FdKind::Socket,
        ))
    }
}

impl IntoRawFd for TcpStream {
    /// Unregister from the loop and give up the fd (still non-blocking) without closing it.
    fn into_raw_fd(self) -> RawFd {
        self.into_std().into_raw_fd()
    }
}

impl IntoRawFd for TcpListener {
    /// Unregister from the loop and give up the fd (still non-blocking) without closing it.
    fn into_raw_fd(self) -> RawFd {
        self.into_std().into_raw_fd()
    }
}

impl From<TcpStream> for OwnedFd {
    fn from(stream: TcpStream) -> OwnedFd {
        stream.into_std().into()
    }
}

impl From<TcpListener> for OwnedFd {
    fn from(listener: TcpListener) -> OwnedFd {
        listener.into_std().into()
    }
}

/// A listening socket on the first of `addr`'s addresses that works.
///
/// # Errors
/// The last address's error, the resolver's, or `InvalidInput` for no address at all.
pub(crate) fn listen_on_first(
    addr: impl ToSocketAddrs,
    options: &ListenOptions,
) -> io::Result<OwnedFd> {
    let mut last = None;
    for addr in addr.to_socket_addrs()? {
        match sys::listen(&addr, options) {
            Ok(fd) => return Ok(fd),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            "the address resolved to no address to listen on",
        )
    }))
}
