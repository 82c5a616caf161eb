//! Serving a protocol: [`EventLoop::create_server`] (TCP) and
//! [`EventLoop::create_unix_server`], and the [`Server`] they return.
//!
//! The listener is accepted on by a task of its own (a hand-written future), in batches of up
//! to [`ACCEPT_BATCH`] connections per wake-up, each of which gets a protocol from the factory
//! and a task of its own (`driver.rs`). The listener itself lives in a slot the [`Server`]
//! shares, so that [`Server::close`] closes it at once, as asyncio's `Server.close` does,
//! rather than at the accepting task's next turn.

use std::any::type_name;
use std::borrow::Cow;
use std::cell::RefCell;
use std::fmt;
use std::future::Future as StdFuture;
use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::os::fd::AsFd;
use std::path::Path;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use super::socket::{poll_accept, Listening};
use super::{driver, Address, Protocol};
use crate::event_loop::WeakLoop;
use crate::net::accept::is_resource_exhaustion;
use crate::net::source::FdKind;
use crate::net::stream::Stream;
use crate::net::tcp::listen_on_first;
use crate::net::{ListenOptions, ACCEPT_RETRY_DELAY};
use crate::{sleep, EventLoop, ExceptionContext, Sleep, Task};

/// How many connections a server accepts per wake-up before it lets the rest of the loop run.
pub(crate) const ACCEPT_BATCH: usize = 64;

/// The listener's slot, shared by the [`Server`] and its accepting task: `None` once closed.
type ListenerSlot<L> = RefCell<Option<Stream<L>>>;

/// What the [`Server`] does with the slot, whatever the listener's type.
trait Listener {
    /// Close the listener (now: its fd is closed); false if it already was.
    fn close(&self) -> bool;
    fn is_open(&self) -> bool;
}

impl<L: AsFd> Listener for ListenerSlot<L> {
    fn close(&self) -> bool {
        let listener = self.borrow_mut().take();
        listener.is_some()
    }

    fn is_open(&self) -> bool {
        self.borrow().is_some()
    }
}

/// A listening server (asyncio's `Server`), made by [`EventLoop::create_server`] or
/// [`EventLoop::create_unix_server`]: it accepts connections while the loop runs, each with a
/// protocol from its factory.
///
/// [`close`](Self::close) (or dropping the `Server`) stops accepting and closes the listening
/// socket; connections already accepted go on, each until its own close.
pub struct Server {
    listener: Rc<dyn Listener>,
    task: Task<()>,
    /// Where it listens, as `getsockname` said once bound.
    address: Address,
}

impl Server {
    /// Stop serving: close the listening socket now (new connections are refused) and end the
    /// accepting task. Connections already made are not touched (as in asyncio). Closing
    /// twice does nothing.
    pub fn close(&self) {
        if self.listener.close() {
            self.task.cancel();
        }
    }

    /// True until [`close`](Self::close) (or until the loop closed, or the accepting task
    /// stopped for want of a running loop).
    pub fn is_serving(&self) -> bool {
        self.listener.is_open() && !self.task.done()
    }

    /// The address a TCP server was bound to (with the port the kernel picked, for port 0),
    /// also after [`close`](Self::close).
    ///
    /// # Errors
    /// `InvalidInput` for a Unix server, which listens on a path (see [`path`](Self::path)).
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.address.as_inet().ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "a Unix server listens on a path ({}), not an IP address",
                    self.address
                ),
            )
        })
    }

    /// The path a Unix server listens on; `None` for a TCP server.
    pub fn path(&self) -> Option<&Path> {
        self.address.as_pathname()
    }

    /// Where the server listens, TCP or Unix, as the kernel reported it once bound (asyncio's
    /// `Server.sockets[0].getsockname()`); also after [`close`](Self::close).
    pub fn sockname(&self) -> &Address {
        &self.address
    }
}

impl Drop for Server {
    /// [`close`](Self::close).
    fn drop(&mut self) {
        self.close();
    }
}

impl fmt::Debug for Server {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Server")
            .field("address", &self.address)
            .field("serving", &self.is_serving())
            .finish()
    }
}

impl EventLoop {
    /// Listen on `addr` (TCP, with asyncio's defaults: a backlog of 100, `SO_REUSEADDR`; see
    /// [`create_server_with`](Self::create_server_with) for others), and give each accepted
    /// connection a protocol from `protocol_factory` (asyncio's `loop.create_server`). The
    /// server accepts while the loop runs; it returns at once, bound (bind is synchronous
    /// here), so [`Server::local_addr`] gives the port of `127.0.0.1:0`.
    ///
    /// Accepted sockets get `TCP_NODELAY`, as in asyncio. Running out of fds (`EMFILE`,
    /// `ENFILE`) or socket memory is reported to the loop's exception handler ("socket.accept()
    /// out of system resource") and the server rests [`ACCEPT_RETRY_DELAY`] before accepting
    /// again: it neither spins nor stops, and recovers once fds are freed. Other `accept`
    /// errors are reported and rested on the same way. A panic of the factory is reported and
    /// that connection closed.
    ///
    /// # Errors
    /// [`LoopError::Closed`](crate::LoopError::Closed) on a closed loop; the kernel's
    /// (`AddrInUse`, `PermissionDenied`) or the resolver's.
    pub fn create_server<P: Protocol>(
        &self,
        protocol_factory: impl FnMut() -> P + 'static,
        addr: impl ToSocketAddrs,
    ) -> io::Result<Server> {
        self.create_server_with(protocol_factory, addr, ListenOptions::default())
    }

    /// [`create_server`](Self::create_server) with the listening socket set up as `options`
    /// say: asyncio's `backlog`, `reuse_address` and `reuse_port`.
    ///
    /// ```
    /// use tulip::net::ListenOptions;
    /// # #[derive(Default)] struct Echo;
    /// # impl tulip::Protocol for Echo { fn data_received(&mut self, _: &[u8]) {} }
    ///
    /// let lp = tulip::EventLoop::new()?;
    /// let options = ListenOptions { backlog: 1024, reuse_port: true, ..Default::default() };
    /// let server = lp.create_server_with(Echo::default, "127.0.0.1:0", options)?;
    /// assert!(server.is_serving());
    /// # Ok::<(), std::io::Error>(())
    /// ```
    ///
    /// # Errors
    /// As [`create_server`](Self::create_server).
    pub fn create_server_with<P: Protocol>(
        &self,
        protocol_factory: impl FnMut() -> P + 'static,
        addr: impl ToSocketAddrs,
        options: ListenOptions,
    ) -> io::Result<Server> {
        self.check_open()?;
        let listener = std::net::TcpListener::from(listen_on_first(addr, &options)?);
        let address = Address::Inet(listener.local_addr()?);
        self.serve(listener, address, Box::new(protocol_factory))
    }

    /// [`create_server`](Self::create_server) on a Unix stream socket bound to `path`, which
    /// must not exist yet. The socket file is left behind when the server closes (as std's
    /// listener leaves it): remove it when done.
    ///
    /// # Errors
    /// [`LoopError::Closed`](crate::LoopError::Closed) on a closed loop; the kernel's
    /// (`AddrInUse` if `path` exists, `PermissionDenied`, `NotFound` for a missing
    /// directory).
    pub fn create_unix_server<P: Protocol>(
        &self,
        protocol_factory: impl FnMut() -> P + 'static,
        path: impl AsRef<Path>,
    ) -> io::Result<Server> {
        self.check_open()?;
        let listener = std::os::unix::net::UnixListener::bind(path)?;
        let address = Address::Unix(listener.local_addr()?);
        self.serve(listener, address, Box::new(protocol_factory))
    }

    fn serve<L: Listening, P: Protocol>(
        &self,
        listener: L,
        address: Address,
        factory: Box<dyn FnMut() -> P>,
    ) -> io::Result<Server> {
        let slot: Rc<ListenerSlot<L>> =
            Rc::new(RefCell::new(Some(Stream::new(listener, FdKind::Socket)?)));
        let task = self.create_task(Acceptor {
            listener: Rc::clone(&slot),
            factory,
            rest: None,
            lp: self.downgrade(),
            name: format!("the server on {address}").into(),
        });
        Ok(Server {
            listener: slot,
            task,
            address,
        })
    }
}

/// The accepting task of a server (see the module doc).
struct Acceptor<L: Listening, P> {
    listener: Rc<ListenerSlot<L>>,
    factory: Box<dyn FnMut() -> P>,
    /// After an `accept` error: the rest before the next try.
    rest: Option<Sleep>,
    lp: WeakLoop,
    /// "the server on 127.0.0.1:8080", for the exception handler.
    name: Rc<str>,
}

/// How a batch of accepts ended.
enum Batch {
    /// Nothing more to accept now: the waker is registered.
    Drained,
    /// [`ACCEPT_BATCH`] accepted: more may be waiting.
    Full,
    /// The listener was closed.
    Closed,
    /// `accept` failed (reported): rest before trying again.
    Failed,
}

impl<L: Listening, P: Protocol> StdFuture for Acceptor<L, P> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        let Some(lp) = this.lp.upgrade() else {
            return Poll::Ready(());
        };
        loop {
            if let Some(rest) = &mut this.rest {
                match Pin::new(rest).poll(cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(Ok(())) => this.rest = None,
                    // No running loop to wait on: nothing to serve either.
                    Poll::Ready(Err(_)) => return Poll::Ready(()),
                }
            }
            match this.accept_batch(&lp, cx) {
                Batch::Drained => return Poll::Pending,
                Batch::Full => {
                    cx.waker().wake_by_ref();
                    return Poll::Pending;
                }
                Batch::Closed => return Poll::Ready(()),
                Batch::Failed => this.rest = Some(sleep(ACCEPT_RETRY_DELAY)),
            }
        }
    }
}

impl<L: Listening, P: Protocol> Acceptor<L, P> {
    fn accept_batch(&mut self, lp: &EventLoop, cx: &mut Context<'_>) -> Batch {
        for _ in 0..ACCEPT_BATCH {
            // The slot is borrowed for the `accept` only: the protocol's callbacks may close
            // the server.
            let accepted = match &*self.listener.borrow() {
                Some(listener) => poll_accept(listener, cx),
                None => return Batch::Closed,
            };
            match accepted {
                Poll::Pending => return Batch::Drained,
                Poll::Ready(Ok(stream)) => self.start(lp, stream),
                Poll::Ready(Err(e)) => {
                    self.report(lp, &e);
                    return Batch::Failed;
                }
            }
        }
        Batch::Full
    }

    /// A protocol from the factory for `stream`, and the connection's task.
    fn start(&mut self, lp: &EventLoop, stream: Stream<L::Accepted>) {
        let mut protocol = None;
        let factory = &mut self.factory;
        let describe = || Cow::Owned(format!("the protocol factory of {}", self.name));
        lp.invoke(describe, || protocol = Some(factory()));
        // A factory that panicked was reported; the socket closes as `stream` is dropped.
        if let Some(protocol) = protocol {
            driver::start(
                lp,
                stream,
                Rc::new(RefCell::new(protocol)),
                type_name::<P>(),
            );
        }
    }

    fn report(&self, lp: &EventLoop, error: &io::Error) {
        let message = if is_resource_exhaustion(error) {
            format!("socket.accept() out of system resource: {error}")
        } else {
            format!("error on accepting: {error}")
        };
        let context = ExceptionContext::new(Cow::Owned(self.name.to_string()), Box::new(message));
        lp.call_exception_handler(&context);
    }
}
