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
use std::cell::{Cell, RefCell};
use std::fmt;
use std::future::{poll_fn, Future as StdFuture};
use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::os::fd::AsFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

use tulip_sys::errno::EAFNOSUPPORT;
use tulip_sys::net as sys;

use super::socket::{poll_accept, Listening};
use super::{driver, Address, Protocol, Transport};
use crate::event_loop::WeakLoop;
use crate::net::accept::is_resource_exhaustion;
use crate::net::source::FdKind;
use crate::net::stream::Stream;
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

/// What a [`Server`], its accepting tasks and its connections share: whether it was closed,
/// how many of its connections are live, and who waits for that to change.
#[derive(Default)]
struct Shared {
    closed: Cell<bool>,
    /// Connections accepted whose task has not ended.
    active: Cell<usize>,
    /// `serve_forever` is running.
    serving_forever: Cell<bool>,
    /// Tasks in `wait_closed` or `serve_forever`: woken at the close and as connections end.
    waiters: RefCell<Vec<Waker>>,
    /// The transports of the connections accepted, for `close_clients` and `abort_clients`;
    /// those of ended connections are dropped as they come to outnumber the live ones.
    clients: RefCell<Vec<Transport>>,
}

impl Shared {
    fn notify(&self) {
        let waiters = std::mem::take(&mut *self.waiters.borrow_mut());
        for waker in waiters {
            waker.wake();
        }
    }

    fn wait(&self, cx: &Context<'_>) {
        let mut waiters = self.waiters.borrow_mut();
        if !waiters.iter().any(|w| w.will_wake(cx.waker())) {
            waiters.push(cx.waker().clone());
        }
    }

    fn is_done(&self) -> bool {
        self.closed.get() && self.active.get() == 0
    }

    /// Keep the transport of a connection just accepted (asyncio's `Server._attach`).
    fn attach(&self, transport: Transport) {
        let mut clients = self.clients.borrow_mut();
        // Pruned at twice the live count: a constant amortised cost per connection.
        if clients.len() >= 2 * self.active.get().max(8) {
            clients.retain(|t| t.conn.strong_count() > 0);
        }
        clients.push(transport);
    }

    fn for_each_client(&self, f: impl Fn(&Transport)) {
        // Neither `close` nor `abort` calls the protocol (the connection's task does, later),
        // so nothing re-enters the list meanwhile.
        for transport in self.clients.borrow().iter() {
            f(transport);
        }
    }
}

/// Starts a listener's accepting task: `None` if the loop is gone.
type Starter = Box<dyn FnOnce() -> Option<Task<()>>>;

/// One listening socket of a server: its slot, and its accepting task once started (until
/// then, what starts it).
struct ListeningSocket {
    slot: Rc<dyn Listener>,
    task: RefCell<Option<Task<()>>>,
    start: RefCell<Option<Starter>>,
}

impl ListeningSocket {
    fn start(&self) {
        let start = self.start.borrow_mut().take();
        if let Some(start) = start {
            *self.task.borrow_mut() = start();
        }
    }

    fn close(&self) {
        drop(self.start.borrow_mut().take());
        if self.slot.close() {
            if let Some(task) = &*self.task.borrow() {
                task.cancel();
            }
        }
    }

    fn is_serving(&self) -> bool {
        self.slot.is_open() && self.task.borrow().as_ref().is_some_and(|t| !t.done())
    }
}

/// Held by each accepted connection's task: counts it live until the task ends.
pub(super) struct Live(Rc<Shared>);

impl Live {
    fn new(shared: &Rc<Shared>) -> Live {
        shared.active.set(shared.active.get() + 1);
        Live(Rc::clone(shared))
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        self.0.active.set(self.0.active.get() - 1);
        if self.0.is_done() {
            self.0.notify();
        }
    }
}

/// A listening server (asyncio's `Server`), made by [`EventLoop::create_server`] or
/// [`EventLoop::create_unix_server`]: it accepts connections while the loop runs, each with a
/// protocol from its factory, on each of its listening sockets (one per address).
///
/// [`close`](Self::close) (or dropping the `Server`) stops accepting and closes the listening
/// sockets; connections already accepted go on, each until its own close, or until
/// [`close_clients`](Self::close_clients) or [`abort_clients`](Self::abort_clients) ends them.
/// [`wait_closed`](Self::wait_closed) waits for both; [`serve_forever`](Self::serve_forever)
/// until the server is closed.
///
/// ```
/// use std::rc::Rc;
/// # struct Nothing;
/// # impl tulip::Protocol for Nothing { fn data_received(&mut self, _: &[u8]) {} }
///
/// let lp = tulip::EventLoop::new()?;
/// let server = Rc::new(lp.create_server(|| Nothing, "127.0.0.1:0")?);
/// lp.run_until_complete(async move {
///     let closer = Rc::clone(&server);
///     // The task's first step comes after serve_forever's.
///     let _stop = tulip::spawn(async move { closer.close() })?;
///     server.serve_forever().await
/// })??;
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct Server {
    /// Each listening socket, with its accepting task.
    listeners: Vec<ListeningSocket>,
    /// Where it listens, as `getsockname` said once bound, in the order of `listeners`.
    addresses: Vec<Address>,
    shared: Rc<Shared>,
    /// A Unix server's socket file, removed at the close if it is still the one bound.
    socket_file: Option<SocketFile>,
}

/// The file a Unix server's socket was bound to, and which file it was (device and inode), so
/// that the close removes it only if nobody replaced it meanwhile (asyncio 3.13's
/// `cleanup_socket`).
struct SocketFile {
    path: PathBuf,
    dev: u64,
    ino: u64,
}

impl SocketFile {
    fn of(path: &Path) -> Option<SocketFile> {
        let meta = std::fs::symlink_metadata(path).ok()?;
        Some(SocketFile {
            path: path.to_path_buf(),
            dev: meta.dev(),
            ino: meta.ino(),
        })
    }

    /// Remove the file if it is still the socket bound; nothing if it is gone or another
    /// file (a failure to remove it is not the close's to report, as in asyncio).
    fn remove(&self) {
        let same = std::fs::symlink_metadata(&self.path)
            .is_ok_and(|meta| meta.dev() == self.dev && meta.ino() == self.ino);
        if same {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

impl Server {
    /// Stop serving: close the listening sockets now (new connections are refused) and end the
    /// accepting tasks. Connections already made are not touched (as in asyncio). Closing
    /// twice does nothing.
    pub fn close(&self) {
        for listener in &self.listeners {
            listener.close();
        }
        if !self.shared.closed.replace(true) {
            if let Some(file) = &self.socket_file {
                file.remove();
            }
            self.shared.notify();
        }
    }

    /// [`Transport::close`] every connection the server accepted that is still open
    /// (asyncio 3.13's `Server.close_clients`): each flushes its buffer and ends with
    /// `connection_lost(None)`. The server itself goes on serving; [`close`](Self::close)
    /// first to stop it too.
    pub fn close_clients(&self) {
        self.shared.for_each_client(Transport::close);
    }

    /// [`Transport::abort`] every connection the server accepted that is still open (asyncio
    /// 3.13's `Server.abort_clients`): their buffers are dropped. The server goes on serving.
    pub fn abort_clients(&self) {
        self.shared.for_each_client(Transport::abort);
    }

    /// True while the server accepts connections: from its start (at once, or at
    /// [`start_serving`](Self::start_serving) for [`EventLoop::create_server_unstarted`]'s) until
    /// [`close`](Self::close) (or until the loop closed, or the accepting tasks stopped for want
    /// of a running loop).
    pub fn is_serving(&self) -> bool {
        !self.shared.closed.get() && self.listeners.iter().any(ListeningSocket::is_serving)
    }

    /// Start accepting connections, for a server made by
    /// [`EventLoop::create_server_unstarted`] (asyncio's `start_serving`); a server already
    /// serving is left as it is. Until then its sockets listen, and the kernel queues
    /// connections up to the backlog, but none is accepted.
    ///
    /// # Errors
    /// `InvalidInput` if the server is closed.
    pub fn start_serving(&self) -> io::Result<()> {
        if self.shared.closed.get() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "cannot start serving: the server on {} is closed",
                    self.addresses[0]
                ),
            ));
        }
        for listener in &self.listeners {
            listener.start();
        }
        Ok(())
    }

    /// Wait until the server is closed and every connection it accepted has ended (its
    /// `connection_lost` called): asyncio's `Server.wait_closed` as of Python 3.12.1, which
    /// also waits when called before [`close`](Self::close).
    pub async fn wait_closed(&self) {
        poll_fn(|cx| {
            if self.shared.is_done() {
                return Poll::Ready(());
            }
            self.shared.wait(cx);
            Poll::Pending
        })
        .await;
    }

    /// Serve (starting to, if the server was made unstarted) until the server is closed (by
    /// [`close`](Self::close), from a callback or another task), then wait for its connections to end, as [`wait_closed`](Self::wait_closed)
    /// (asyncio's `Server.serve_forever`). Dropping the future before then (cancelling its
    /// task) closes the server, as asyncio does.
    ///
    /// # Errors
    /// `InvalidInput` if the server is closed already, or if another `serve_forever` is
    /// running on it.
    pub async fn serve_forever(&self) -> io::Result<()> {
        if self.shared.closed.get() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "cannot serve forever: the server on {} is closed",
                    self.addresses[0]
                ),
            ));
        }
        if self.shared.serving_forever.replace(true) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "the server on {} is already in serve_forever",
                    self.addresses[0]
                ),
            ));
        }
        self.start_serving()?;
        let serving = ServingForever(self);
        poll_fn(|cx| {
            if self.shared.closed.get() {
                return Poll::Ready(());
            }
            self.shared.wait(cx);
            Poll::Pending
        })
        .await;
        self.wait_closed().await;
        drop(serving);
        Ok(())
    }

    /// The address a TCP server was bound to (with the port the kernel picked, for port 0),
    /// also after [`close`](Self::close); its first, if it listens on several (see
    /// [`local_addrs`](Self::local_addrs)).
    ///
    /// # Errors
    /// `InvalidInput` for a Unix server, which listens on a path (see [`path`](Self::path)).
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.addresses[0].as_inet().ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "a Unix server listens on a path ({}), not an IP address",
                    self.addresses[0]
                ),
            )
        })
    }

    /// Every IP address and port a TCP server listens on, one per listening socket (empty for
    /// a Unix server).
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        self.addresses.iter().filter_map(Address::as_inet).collect()
    }

    /// The path a Unix server listens on; `None` for a TCP server.
    pub fn path(&self) -> Option<&Path> {
        self.addresses[0].as_pathname()
    }

    /// Where the server listens, TCP or Unix, as the kernel reported it once bound (asyncio's
    /// `Server.sockets[0].getsockname()`); also after [`close`](Self::close).
    pub fn sockname(&self) -> &Address {
        &self.addresses[0]
    }

    /// Where each of its listening sockets listens (asyncio's `Server.sockets`, each
    /// `getsockname()`).
    pub fn socknames(&self) -> &[Address] {
        &self.addresses
    }
}

/// Marks `serve_forever` as running; if dropped before the server closed (the future was
/// cancelled), closes it.
struct ServingForever<'a>(&'a Server);

impl Drop for ServingForever<'_> {
    fn drop(&mut self) {
        self.0.shared.serving_forever.set(false);
        self.0.close();
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
            .field("addresses", &self.addresses)
            .field("serving", &self.is_serving())
            .field("connections", &self.shared.active.get())
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
    /// As in asyncio, *every* address `addr` resolves to gets a listening socket of its own
    /// (`"localhost:8080"` may listen on both `127.0.0.1` and `::1`; a list of addresses, on
    /// each), IPv6 ones with `IPV6_V6ONLY`; an address whose family the kernel does not
    /// support is skipped. With port 0, each socket gets a port of its own. A host name is
    /// resolved by the system's resolver on the calling thread, before the server exists:
    /// pass IP addresses to avoid it.
    ///
    /// Accepted sockets get `TCP_NODELAY`, as in asyncio. Running out of fds (`EMFILE`,
    /// `ENFILE`) or socket memory is reported to the loop's exception handler ("socket.accept()
    /// out of system resource") and the server rests [`ACCEPT_RETRY_DELAY`] before accepting
    /// again: it neither spins nor stops, and recovers once fds are freed. Other `accept`
    /// errors are reported and rested on the same way. A panic of the factory is reported and
    /// that connection closed.
    ///
    /// # Errors
    /// [`LoopError::Closed`](crate::LoopError::Closed) on a closed loop; the kernel's for any
    /// of the addresses (`AddrInUse`, `PermissionDenied`: none is left listening then); the
    /// resolver's; `InvalidInput` for no address.
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
        self.listen_tcp(protocol_factory, addr, options, true)
    }

    /// [`create_server_with`](Self::create_server_with), bound and listening but not accepting
    /// until [`Server::start_serving`] or [`Server::serve_forever`] (asyncio's
    /// `start_serving=False`): the kernel queues connections meanwhile, up to the backlog.
    ///
    /// ```
    /// # struct Nothing;
    /// # impl tulip::Protocol for Nothing { fn data_received(&mut self, _: &[u8]) {} }
    /// let lp = tulip::EventLoop::new()?;
    /// let options = tulip::net::ListenOptions::default();
    /// let server = lp.create_server_unstarted(|| Nothing, "127.0.0.1:0", options)?;
    /// assert!(!server.is_serving());
    /// server.start_serving()?;
    /// assert!(server.is_serving());
    /// # Ok::<(), std::io::Error>(())
    /// ```
    ///
    /// # Errors
    /// As [`create_server`](Self::create_server).
    pub fn create_server_unstarted<P: Protocol>(
        &self,
        protocol_factory: impl FnMut() -> P + 'static,
        addr: impl ToSocketAddrs,
        options: ListenOptions,
    ) -> io::Result<Server> {
        self.listen_tcp(protocol_factory, addr, options, false)
    }

    fn listen_tcp<P: Protocol>(
        &self,
        protocol_factory: impl FnMut() -> P + 'static,
        addr: impl ToSocketAddrs,
        options: ListenOptions,
        start: bool,
    ) -> io::Result<Server> {
        self.check_open()?;
        let mut addrs: Vec<SocketAddr> = Vec::new();
        for addr in addr.to_socket_addrs()? {
            if !addrs.contains(&addr) {
                addrs.push(addr);
            }
        }
        let mut listeners = Vec::new();
        for addr in &addrs {
            match sys::listen_v6only(addr, &options) {
                Ok(fd) => listeners.push(std::net::TcpListener::from(fd)),
                // asyncio skips a family the kernel lacks, as IPv6 compiled out.
                Err(e) if e.raw_os_error() == Some(EAFNOSUPPORT) => {}
                // The sockets bound so far close as `listeners` is dropped.
                Err(e) => {
                    return Err(io::Error::new(
                        e.kind(),
                        format!("cannot listen on {addr}: {e}"),
                    ))
                }
            }
        }
        if listeners.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "no address to listen on (none given, or none of a family this kernel supports)",
            ));
        }
        let listeners = listeners
            .into_iter()
            .map(|listener| {
                let address = Address::Inet(listener.local_addr()?);
                Ok((listener, address))
            })
            .collect::<io::Result<Vec<_>>>()?;
        let factory: Rc<RefCell<dyn FnMut() -> P>> = Rc::new(RefCell::new(protocol_factory));
        self.serve(listeners, factory, start)
    }

    /// [`create_server`](Self::create_server) on a Unix stream socket bound to `path`, which
    /// must not exist yet. The server's [`close`](Server::close) (or drop) removes its socket
    /// file, unless another file has taken its place meanwhile (asyncio 3.13's
    /// `cleanup_socket`).
    ///
    /// Unlike asyncio, a socket file already at `path` is not removed first: it may be another
    /// process's live socket, whose name would be stolen silently.
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
        let path = path.as_ref();
        let listener = std::os::unix::net::UnixListener::bind(path)?;
        let address = Address::Unix(listener.local_addr()?);
        let socket_file = SocketFile::of(path);
        let factory: Rc<RefCell<dyn FnMut() -> P>> = Rc::new(RefCell::new(protocol_factory));
        match self.serve(vec![(listener, address)], factory, true) {
            Ok(mut server) => {
                server.socket_file = socket_file;
                Ok(server)
            }
            Err(e) => {
                if let Some(file) = socket_file {
                    file.remove();
                }
                Err(e)
            }
        }
    }

    fn serve<L: Listening, P: Protocol>(
        &self,
        listeners: Vec<(L, Address)>,
        factory: Rc<RefCell<dyn FnMut() -> P>>,
        start: bool,
    ) -> io::Result<Server> {
        let shared = Rc::new(Shared::default());
        let mut slots = Vec::with_capacity(listeners.len());
        let mut addresses = Vec::with_capacity(listeners.len());
        for (listener, address) in listeners {
            let slot: Rc<ListenerSlot<L>> =
                Rc::new(RefCell::new(Some(Stream::new(listener, FdKind::Socket)?)));
            slots.push((slot, address));
        }
        let mut listening = Vec::with_capacity(slots.len());
        for (slot, address) in slots {
            let acceptor = Acceptor {
                listener: Rc::clone(&slot),
                factory: Rc::clone(&factory),
                shared: Rc::clone(&shared),
                rest: None,
                lp: self.downgrade(),
                name: format!("the server on {address}").into(),
            };
            let lp = self.downgrade();
            let starter: Starter =
                Box::new(move || lp.upgrade().map(|lp| lp.create_task(acceptor)));
            let socket = ListeningSocket {
                slot,
                task: RefCell::new(None),
                start: RefCell::new(Some(starter)),
            };
            if start {
                socket.start();
            }
            listening.push(socket);
            addresses.push(address);
        }
        Ok(Server {
            listeners: listening,
            addresses,
            shared,
            socket_file: None,
        })
    }
}

/// The accepting task of a server (see the module doc).
struct Acceptor<L: Listening, P> {
    listener: Rc<ListenerSlot<L>>,
    /// Shared by the server's acceptors.
    factory: Rc<RefCell<dyn FnMut() -> P>>,
    shared: Rc<Shared>,
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
        // Never borrowed elsewhere: a factory cannot accept on another listener of the server.
        let Ok(mut factory) = self.factory.try_borrow_mut() else {
            return;
        };
        let describe = || Cow::Owned(format!("the protocol factory of {}", self.name));
        lp.invoke(describe, || protocol = Some((*factory)()));
        drop(factory);
        // A factory that panicked was reported; the socket closes as `stream` is dropped.
        if let Some(protocol) = protocol {
            let transport = driver::start_guarded(
                lp,
                stream,
                Rc::new(RefCell::new(protocol)),
                type_name::<P>(),
                Some(Live::new(&self.shared)),
            );
            self.shared.attach(transport);
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
