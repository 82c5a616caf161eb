//! Connecting a protocol: [`EventLoop::create_connection`] (TCP) and
//! [`EventLoop::create_unix_connection`], and [`EventLoop::connect_accepted_socket`].

use std::any::type_name;
use std::cell::RefCell;
use std::io;
use std::path::Path;
use std::rc::Rc;

use super::socket::Socket;
use super::{driver, Protocol, Transport};
use crate::net::source::FdKind;
use crate::net::stream::Stream;
use crate::net::{ConnectOptions, Endpoint, TcpStream, UnixStream};
use crate::EventLoop;

impl EventLoop {
    /// Connect to `addr` over TCP, make a protocol with `protocol_factory`, and start the
    /// connection (asyncio's `loop.create_connection`). Returns once `connection_made` has
    /// been called: the transport, and the protocol, shared with the connection (borrow it
    /// only briefly: the connection calls it through the same `RefCell`).
    ///
    /// `addr` is an [`Endpoint`]: a `SocketAddr` (or a list of them), or a host and port
    /// (`"localhost:8080"`, `("localhost", 8080)`), resolved on the loop's blocking pool
    /// ([`getaddrinfo`](Self::getaddrinfo)) so that the loop runs on meanwhile. Its addresses
    /// are tried one after the other, as [`TcpStream::connect`]; see
    /// [`create_connection_with`](Self::create_connection_with) for happy eyeballs and a local
    /// address.
    ///
    /// The socket gets `TCP_NODELAY`, as in asyncio. Call it on the running loop (from one of
    /// its tasks).
    ///
    /// # Errors
    /// As [`TcpStream::connect`]: the last address's error (`ConnectionRefused`, ...), or one
    /// naming each address's if they differ; the resolver's (`NotFound`, naming the host);
    /// [`LoopError::NoRunningLoop`](crate::LoopError::NoRunningLoop) outside a running loop.
    pub async fn create_connection<P: Protocol>(
        &self,
        protocol_factory: impl FnOnce() -> P,
        addr: impl Into<Endpoint>,
    ) -> io::Result<(Transport, Rc<RefCell<P>>)> {
        self.create_connection_with(protocol_factory, addr, &ConnectOptions::default())
            .await
    }

    /// [`create_connection`](Self::create_connection) as `options` say: asyncio's
    /// `happy_eyeballs_delay` and `interleave` (staggered attempts: the first to connect wins,
    /// the others are closed) and `local_addr` (bind before connecting).
    ///
    /// ```
    /// use std::time::Duration;
    /// use tulip::net::ConnectOptions;
    /// # struct Nothing;
    /// # impl tulip::Protocol for Nothing { fn data_received(&mut self, _: &[u8]) {} }
    ///
    /// let lp = tulip::EventLoop::new()?;
    /// let server = lp.create_server(|| Nothing, "127.0.0.1:0")?;
    /// let port = server.local_addr()?.port();
    /// lp.run_until_complete(async move {
    ///     let lp = tulip::get_running_loop()?;
    ///     let options = ConnectOptions {
    ///         happy_eyeballs_delay: Some(Duration::from_millis(250)),
    ///         ..ConnectOptions::default()
    ///     };
    ///     let (transport, _) = lp.create_connection_with(|| Nothing, ("localhost", port), &options).await?;
    ///     transport.close();
    ///     Ok::<(), std::io::Error>(())
    /// })??;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    ///
    /// # Errors
    /// As [`TcpStream::connect_with`].
    pub async fn create_connection_with<P: Protocol>(
        &self,
        protocol_factory: impl FnOnce() -> P,
        addr: impl Into<Endpoint>,
        options: &ConnectOptions,
    ) -> io::Result<(Transport, Rc<RefCell<P>>)> {
        let stream = TcpStream::connect_with(addr, options).await?;
        stream.set_nodelay(true)?;
        // `into_std` leaves it non-blocking, and tulip-sys made it SIGPIPE-free.
        let stream = Stream::from_nonblocking(stream.into_std(), FdKind::TcpStream);
        Ok(self.connect_protocol(stream, protocol_factory))
    }

    /// Run a protocol on a connection made elsewhere (asyncio's
    /// `loop.connect_accepted_socket`): a TCP or Unix stream, std's or tulip's, typically one
    /// accepted by a listener of your own. It is made non-blocking (and SIGPIPE-free);
    /// `connection_made` has been called when this returns. TCP streams get `TCP_NODELAY`, as
    /// in asyncio.
    ///
    /// ```
    /// use std::os::unix::net::UnixStream;
    /// # struct Nothing;
    /// # impl tulip::Protocol for Nothing { fn data_received(&mut self, _: &[u8]) {} }
    ///
    /// let lp = tulip::EventLoop::new()?;
    /// let (ours, _theirs) = UnixStream::pair()?;
    /// let (transport, _protocol) = lp.connect_accepted_socket(|| Nothing, ours)?;
    /// assert!(transport.peername().is_some());
    /// # Ok::<(), std::io::Error>(())
    /// ```
    ///
    /// # Errors
    /// [`LoopError::Closed`](crate::LoopError::Closed) on a closed loop; the kernel's if the
    /// socket's flags cannot be set.
    pub fn connect_accepted_socket<P: Protocol>(
        &self,
        protocol_factory: impl FnOnce() -> P,
        sock: impl Into<AcceptedSocket>,
    ) -> io::Result<(Transport, Rc<RefCell<P>>)> {
        self.check_open()?;
        match sock.into() {
            AcceptedSocket::Tcp(stream) => {
                // Only fails for a connection already reset, which its first read reports.
                let _ = stream.set_nodelay(true);
                let stream = Stream::new(stream, FdKind::Socket)?;
                Ok(self.connect_protocol(stream, protocol_factory))
            }
            AcceptedSocket::Unix(stream) => {
                let stream = Stream::new(stream, FdKind::Socket)?;
                Ok(self.connect_protocol(stream, protocol_factory))
            }
        }
    }

    /// [`create_connection`](Self::create_connection) to the Unix stream socket at `path`
    /// (asyncio's `loop.create_unix_connection`).
    ///
    /// # Errors
    /// As [`UnixStream::connect`]: `NotFound` if nothing is at `path`, `ConnectionRefused` if
    /// nothing listens there;
    /// [`LoopError::NoRunningLoop`](crate::LoopError::NoRunningLoop) outside a running loop.
    pub async fn create_unix_connection<P: Protocol>(
        &self,
        protocol_factory: impl FnOnce() -> P,
        path: impl AsRef<Path>,
    ) -> io::Result<(Transport, Rc<RefCell<P>>)> {
        let stream = UnixStream::connect(path).await?;
        let stream = Stream::from_nonblocking(stream.into_std(), FdKind::UnixStream);
        Ok(self.connect_protocol(stream, protocol_factory))
    }

    fn connect_protocol<P: Protocol>(
        &self,
        socket: impl Socket + 'static,
        protocol_factory: impl FnOnce() -> P,
    ) -> (Transport, Rc<RefCell<P>>) {
        let protocol = Rc::new(RefCell::new(protocol_factory()));
        let transport = driver::start(self, socket, protocol.clone(), type_name::<P>());
        (transport, protocol)
    }
}

/// A connected stream socket for [`EventLoop::connect_accepted_socket`]: made with `From`
/// from std's or tulip's TCP and Unix streams.
#[derive(Debug)]
#[non_exhaustive]
pub enum AcceptedSocket {
    /// A TCP connection.
    Tcp(std::net::TcpStream),
    /// A Unix stream socket connection.
    Unix(std::os::unix::net::UnixStream),
}

impl From<std::net::TcpStream> for AcceptedSocket {
    fn from(stream: std::net::TcpStream) -> AcceptedSocket {
        AcceptedSocket::Tcp(stream)
    }
}

impl From<std::os::unix::net::UnixStream> for AcceptedSocket {
    fn from(stream: std::os::unix::net::UnixStream) -> AcceptedSocket {
        AcceptedSocket::Unix(stream)
    }
}

impl From<TcpStream> for AcceptedSocket {
    /// Unregistered from the loop's watch first (`into_std`).
    fn from(stream: TcpStream) -> AcceptedSocket {
        AcceptedSocket::Tcp(stream.into_std())
    }
}

impl From<UnixStream> for AcceptedSocket {
    /// Unregistered from the loop's watch first (`into_std`).
    fn from(stream: UnixStream) -> AcceptedSocket {
        AcceptedSocket::Unix(stream.into_std())
    }
}
