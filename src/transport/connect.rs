//! Connecting a protocol: [`EventLoop::create_connection`] (TCP) and
//! [`EventLoop::create_unix_connection`].

use std::any::type_name;
use std::cell::RefCell;
use std::io;
use std::net::ToSocketAddrs;
use std::path::Path;
use std::rc::Rc;

use super::socket::Socket;
use super::{driver, Protocol, Transport};
use crate::net::source::FdKind;
use crate::net::stream::Stream;
use crate::net::{TcpStream, UnixStream};
use crate::EventLoop;

impl EventLoop {
    /// Connect to `addr` over TCP (each of its addresses in turn, as
    /// [`TcpStream::connect`]), make a protocol with `protocol_factory`, and start the
    /// connection (asyncio's `loop.create_connection`). Returns once `connection_made` has
    /// been called: the transport, and the protocol, shared with the connection (borrow it
    /// only briefly: the connection calls it through the same `RefCell`).
    ///
    /// The socket gets `TCP_NODELAY`, as in asyncio. Call it on the running loop (from one of
    /// its tasks).
    ///
    /// # Errors
    /// As [`TcpStream::connect`]: the last address's error (`ConnectionRefused`, ...),
    /// [`LoopError::NoRunningLoop`](crate::LoopError::NoRunningLoop) outside a running loop.
    pub async fn create_connection<P: Protocol>(
        &self,
        protocol_factory: impl FnOnce() -> P,
        addr: impl ToSocketAddrs,
    ) -> io::Result<(Transport, Rc<RefCell<P>>)> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        // `into_std` leaves it non-blocking, and tulip-sys made it SIGPIPE-free.
        let stream = Stream::from_nonblocking(stream.into_std(), FdKind::TcpStream);
        Ok(self.connect_protocol(stream, protocol_factory))
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
