//! Datagram endpoints (asyncio's `loop.create_datagram_endpoint`): a UDP or Unix datagram
//! socket driven by a task of its own, which hands each datagram to a [`DatagramProtocol`] and
//! sends what its [`DatagramTransport`] buffered.
//!
//! One implementation serves both kinds of socket: everything is generic over the address
//! type ([`DatagramAddress`]: std's `SocketAddr` for UDP, the default, or
//! `std::os::unix::net::SocketAddr` for Unix sockets), which knows the few system calls that
//! differ.
//!
//! As for stream connections, the task owns the endpoint and the transport is a weak handle.
//! `sendto` sends at once when nothing is buffered (one `sendto(2)`), and buffers the datagram
//! when the kernel has no room for it; send and receive errors (an ICMP "port unreachable"
//! coming back as `ECONNREFUSED`, a connected Unix peer gone, ...) go to `error_received` and
//! the endpoint goes on, as in asyncio.

use std::any::type_name;
use std::borrow::Cow;
use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::fmt;
use std::future::Future as StdFuture;
use std::io;
use std::net::SocketAddr;
use std::os::unix::net::{SocketAddr as UnixSocketAddr, UnixDatagram};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::rc::{Rc, Weak};
use std::task::{ready, Context, Poll, Waker};

use tulip_sys::errno::ENOBUFS;
use tulip_sys::net::{self as sys, Domain, Type};

use super::driver::{poll_protocol_free, wake_later, BUSY_RETRY};
use crate::event_loop::{Direction, WeakLoop};
use crate::net::datagram::DatagramSocket;
use crate::net::source::FdKind;
use crate::net::stream::Stream;
use crate::net::Endpoint;
use crate::EventLoop;

/// The largest datagram received whole (asyncio's `max_size`, 256 KiB): a longer one is cut.
const MAX_DATAGRAM: usize = 256 * 1024;

/// The address type of a datagram endpoint, which says what kind of socket it has: std's
/// [`SocketAddr`] for UDP ([`EventLoop::create_datagram_endpoint`]), std's
/// [`std::os::unix::net::SocketAddr`] for a Unix datagram socket
/// ([`EventLoop::create_unix_datagram_endpoint`]). Sealed: only these two.
pub trait DatagramAddress: sealed::Kind + Clone + fmt::Debug + 'static {}

impl DatagramAddress for SocketAddr {}

impl DatagramAddress for UnixSocketAddr {}

mod sealed {
    use crate::net::datagram::DatagramSocket;

    /// What differs between the kinds of datagram socket (see `DatagramAddress`), beyond
    /// the system calls of their [`DatagramSocket`]. `pub` in a private module: nobody outside
    /// the crate can name it, or implement it.
    pub trait Kind: Sized {
        /// The std socket.
        type Socket: DatagramSocket<Addr = Self>;

        /// Whether two addresses name the same socket (std's Unix address has no `Eq`).
        fn same(&self, other: &Self) -> bool;

        /// The address for an error message.
        fn show(&self) -> String;

        /// Whether the socket turning writable tells when a send the kernel refused with
        /// `EAGAIN` would go through. Not for a Unix send to a path whose receiver's queue is
        /// full: nothing wakes the sender then (it is woken only for its connected peer), and
        /// a level-triggered wait would spin.
        fn writable_tells(connected: bool) -> bool;
    }
}

impl sealed::Kind for SocketAddr {
    type Socket = std::net::UdpSocket;

    fn same(&self, other: &Self) -> bool {
        self == other
    }

    fn show(&self) -> String {
        self.to_string()
    }

    fn writable_tells(_connected: bool) -> bool {
        // UDP refuses for want of room in the sender's own buffer only.
        true
    }
}

impl sealed::Kind for UnixSocketAddr {
    type Socket = UnixDatagram;

    fn same(&self, other: &Self) -> bool {
        if self.is_unnamed() || other.is_unnamed() {
            return self.is_unnamed() && other.is_unnamed();
        }
        if let (Some(a), Some(b)) = (self.as_pathname(), other.as_pathname()) {
            return a == b;
        }
        #[cfg(target_os = "linux")]
        {
            use std::os::linux::net::SocketAddrExt;
            if let (Some(a), Some(b)) = (self.as_abstract_name(), other.as_abstract_name()) {
                return a == b;
            }
        }
        false
    }

    fn show(&self) -> String {
        super::Address::Unix(self.clone()).to_string()
    }

    fn writable_tells(connected: bool) -> bool {
        connected
    }
}

/// The callbacks of a datagram endpoint (asyncio's `DatagramProtocol`), called on the loop's
/// thread, one at a time: `connection_made` first, then `datagram_received` and
/// `error_received` in any number, and `connection_lost` last, once. A panic in one is
/// reported to the loop's exception handler and ends the endpoint (`connection_lost` with an
/// error follows).
///
/// `A` is the address type: std's [`SocketAddr`] (the default) for a UDP endpoint, std's
/// [`std::os::unix::net::SocketAddr`] for a Unix one.
pub trait DatagramProtocol<A: DatagramAddress = SocketAddr>: 'static {
    /// The endpoint is ready: called first, once. Keep `transport` (a weak handle) to send.
    fn connection_made(&mut self, transport: DatagramTransport<A>) {
        let _ = transport;
    }

    /// A datagram from `addr` (cut to 256 KiB). A Unix sender bound to no path is unnamed.
    fn datagram_received(&mut self, data: &[u8], addr: A);

    /// A send or receive failed (`ConnectionRefused` for a datagram a closed port sent back
    /// as an ICMP error, or for a send to a connected Unix peer that is gone, ...): the
    /// endpoint goes on.
    fn error_received(&mut self, error: io::Error) {
        let _ = error;
    }

    /// The endpoint closed: `None` after `close` (once the buffer was sent) or `abort`;
    /// `Some` if a protocol callback panicked. Called last, once.
    fn connection_lost(&mut self, error: Option<io::Error>) {
        let _ = error;
    }
}

/// How [`EventLoop::create_datagram_endpoint`] sets up its socket: asyncio's `local_addr`,
/// `remote_addr` and `allow_broadcast`.
#[derive(Clone, Debug, Default)]
pub struct DatagramOptions {
    /// Bind here (port 0: any free port). Without it, the socket is bound to the unspecified
    /// address of the remote address's family, any port.
    pub local_addr: Option<SocketAddr>,
    /// Connect to this address (its first of the local address's family, once resolved):
    /// `sendto` without an address goes there, and only its datagrams are received.
    pub remote_addr: Option<Endpoint>,
    /// `SO_BROADCAST`: allow sending to broadcast addresses.
    pub allow_broadcast: bool,
}

/// How [`EventLoop::create_unix_datagram_endpoint`] sets up its socket: asyncio's
/// `local_addr` and `remote_addr` with `family=AF_UNIX`, as paths.
#[derive(Clone, Debug, Default)]
pub struct UnixDatagramOptions {
    /// Bind to this path, which must not exist yet. Without it the socket is unnamed: it can
    /// send, and receive only from its connected peer.
    pub local_path: Option<PathBuf>,
    /// Connect to the socket bound at this path: `sendto` without an address goes there, and
    /// only its datagrams are received.
    pub remote_path: Option<PathBuf>,
}

/// One endpoint's state, owned by its task.
struct Datagrams<A: DatagramAddress> {
    socket: Stream<A::Socket>,
    protocol: Rc<RefCell<dyn DatagramProtocol<A>>>,
    protocol_name: &'static str,
    lp: WeakLoop,
    /// Datagrams the kernel did not take yet, and their addresses (`None`: the peer).
    buffer: RefCell<VecDeque<(Vec<u8>, Option<A>)>>,
    buffered_bytes: Cell<usize>,
    closing: Cell<bool>,
    aborting: Cell<bool>,
    closed: Cell<bool>,
    /// Errors of `sendto`'s own sends, for the task to hand to `error_received` (the protocol
    /// may be the one calling `sendto`, from a callback).
    send_errors: RefCell<VecDeque<io::Error>>,
    /// The first protocol panic, for `connection_lost`.
    error: RefCell<Option<io::Error>>,
    waker: RefCell<Option<Waker>>,
    local: Option<A>,
    peer: Option<A>,
}

impl<A: DatagramAddress> Datagrams<A> {
    /// Call the protocol, reporting a panic (which aborts the endpoint). False if it is
    /// borrowed elsewhere.
    fn call(&self, what: &'static str, f: impl FnOnce(&mut dyn DatagramProtocol<A>)) -> bool {
        let Some(lp) = self.lp.upgrade() else {
            return false;
        };
        let Ok(mut protocol) = self.protocol.try_borrow_mut() else {
            return false;
        };
        let describe = || Cow::Owned(format!("{}::{what}", self.protocol_name));
        if !lp.invoke(describe, move || f(&mut *protocol)) && !self.aborting.get() {
            *self.error.borrow_mut() =
                Some(io::Error::other(format!("the protocol panicked in {what}")));
            self.aborting.set(true);
        }
        true
    }

    fn wake(&self) {
        if let Some(waker) = &*self.waker.borrow() {
            waker.wake_by_ref();
        }
    }

    fn send_one(&self, data: &[u8], addr: Option<&A>) -> io::Result<usize> {
        let socket = self.socket.get_ref();
        match addr {
            Some(addr) => socket.send_to_addr(data, addr),
            None => socket.send(data),
        }
    }
}

/// Whether the kernel refused a send for want of room (`EAGAIN`, or `ENOBUFS`, which BSD
/// gives for a Unix receiver's full queue and Linux for a full device queue): the datagram
/// stays buffered, to be sent later.
fn no_room(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::WouldBlock || e.raw_os_error() == Some(ENOBUFS)
}

/// The handle of a datagram endpoint (asyncio's `DatagramTransport`): weak, so a protocol
/// keeps it without a cycle; once the endpoint is gone, `sendto` is refused and the rest does
/// nothing. `A` is the endpoint's address type (see [`DatagramProtocol`]).
pub struct DatagramTransport<A: DatagramAddress = SocketAddr> {
    inner: Weak<Datagrams<A>>,
}

impl<A: DatagramAddress> Clone for DatagramTransport<A> {
    fn clone(&self) -> Self {
        DatagramTransport {
            inner: Weak::clone(&self.inner),
        }
    }
}

impl<A: DatagramAddress> DatagramTransport<A> {
    /// Send `data` as one datagram to `addr`, or to the connected remote address for `None`
    /// (asyncio's `sendto`): at once if nothing is buffered and the kernel takes it, else
    /// buffered and sent by the endpoint's task. A send that fails goes to `error_received`,
    /// called by the endpoint's task (not from within `sendto`, as asyncio does: the protocol
    /// may be the caller).
    ///
    /// # Errors
    /// `BrokenPipe` once the transport is closing or gone; `InvalidInput` for `None` without a
    /// remote address, or an `addr` other than the remote address of a connected endpoint.
    pub fn sendto(&self, data: &[u8], addr: Option<A>) -> io::Result<()> {
        let Some(inner) = self.inner.upgrade() else {
            return Err(refused("the endpoint is closed"));
        };
        if inner.closing.get() || inner.aborting.get() || inner.closed.get() {
            return Err(refused("the transport is closing"));
        }
        match (&addr, &inner.peer) {
            (None, None) => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "sendto without an address needs a remote address",
                ))
            }
            (Some(addr), Some(peer)) if !addr.same(peer) => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!(
                        "the endpoint is connected to {}: cannot send to {}",
                        peer.show(),
                        addr.show()
                    ),
                ))
            }
            _ => {}
        }
        // Connected: `send`, which needs no address.
        let addr = if inner.peer.is_some() { None } else { addr };
        if inner.buffer.borrow().is_empty() {
            let sent = inner
                .socket
                .source()
                .try_io(Direction::Write, || inner.send_one(data, addr.as_ref()));
            match sent {
                Ok(_) => return Ok(()),
                Err(e) if no_room(&e) || e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    inner.send_errors.borrow_mut().push_back(e);
                    inner.wake();
                    return Ok(());
                }
            }
        }
        inner.buffer.borrow_mut().push_back((data.to_vec(), addr));
        inner
            .buffered_bytes
            .set(inner.buffered_bytes.get() + data.len());
        inner.wake();
        Ok(())
    }

    /// Close: receive no more, send what is buffered, then `connection_lost(None)`.
    pub fn close(&self) {
        if let Some(inner) = self.inner.upgrade() {
            inner.closing.set(true);
            inner.wake();
        }
    }

    /// Close now, dropping what is buffered: `connection_lost(None)` follows.
    pub fn abort(&self) {
        if let Some(inner) = self.inner.upgrade() {
            inner.aborting.set(true);
            inner.wake();
        }
    }

    /// True once `close` or `abort` was called (or the endpoint is gone).
    pub fn is_closing(&self) -> bool {
        match self.inner.upgrade() {
            None => true,
            Some(d) => d.closing.get() || d.aborting.get() || d.closed.get(),
        }
    }

    /// The bytes of the datagrams buffered, not yet taken by the kernel.
    pub fn get_write_buffer_size(&self) -> usize {
        self.inner.upgrade().map_or(0, |d| d.buffered_bytes.get())
    }

    /// The address the socket is bound to (asyncio's `sockname`; unnamed for a Unix socket
    /// bound to no path); `None` once gone.
    pub fn local_addr(&self) -> Option<A> {
        self.inner.upgrade().and_then(|d| d.local.clone())
    }

    /// The connected remote address (asyncio's `peername`); `None` if not connected, or once
    /// gone.
    pub fn peer_addr(&self) -> Option<A> {
        self.inner.upgrade().and_then(|d| d.peer.clone())
    }
}

impl DatagramTransport<UnixSocketAddr> {
    /// [`sendto`](Self::sendto) the Unix socket bound at `path`.
    ///
    /// # Errors
    /// `InvalidInput` for a path too long for a socket address; as `sendto`.
    pub fn sendto_path(&self, data: &[u8], path: impl AsRef<Path>) -> io::Result<()> {
        self.sendto(data, Some(UnixSocketAddr::from_pathname(path)?))
    }
}

impl<A: DatagramAddress> fmt::Debug for DatagramTransport<A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DatagramTransport")
            .field("local", &self.local_addr())
            .field("peer", &self.peer_addr())
            .field("closing", &self.is_closing())
            .finish()
    }
}

fn refused(why: &str) -> io::Error {
    io::Error::new(io::ErrorKind::BrokenPipe, format!("cannot sendto(): {why}"))
}

/// The task of an endpoint.
struct Driver<A: DatagramAddress> {
    inner: Rc<Datagrams<A>>,
    buf: Vec<u8>,
}

impl<A: DatagramAddress> StdFuture for Driver<A> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        let inner = &*this.inner;
        ready!(poll_protocol_free(&inner.protocol, cx));
        {
            let mut waker = inner.waker.borrow_mut();
            if !waker.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                *waker = Some(cx.waker().clone());
            }
        }
        loop {
            if inner.aborting.get() {
                return finish(inner);
            }
            let send_error = inner.send_errors.borrow_mut().pop_front();
            if let Some(e) = send_error {
                inner.call("error_received", |p| p.error_received(e));
                continue;
            }
            let blocked = poll_flush(inner, cx).is_pending();
            if inner.aborting.get() {
                continue;
            }
            if inner.closing.get() {
                if blocked {
                    return Poll::Pending;
                }
                return finish(inner);
            }
            let buf = &mut this.buf;
            let received = inner.socket.source().poll_io(Direction::Read, cx, || {
                inner.socket.get_ref().recv_from(buf)
            });
            match received {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Ok((n, from))) => {
                    let data = &this.buf[..n];
                    inner.call("datagram_received", |p| p.datagram_received(data, from));
                }
                Poll::Ready(Err(e)) => {
                    inner.call("error_received", |p| p.error_received(e));
                }
            }
        }
    }
}

/// Send what is buffered, as far as the kernel takes it: `Ready` once the buffer is empty,
/// `Pending` while the kernel has no room (the task woken when the socket turns writable,
/// or after [`BUSY_RETRY`] where that would not tell: see `no_room` and
/// `Kind::writable_tells`). A send that fails otherwise drops its datagram and goes to
/// `error_received`.
fn poll_flush<A: DatagramAddress>(inner: &Datagrams<A>, cx: &mut Context<'_>) -> Poll<()> {
    let source = inner.socket.source();
    let wait_writable = A::writable_tells(inner.peer.is_some());
    loop {
        let front = inner.buffer.borrow().front().cloned();
        let Some((data, addr)) = front else {
            return Poll::Ready(());
        };
        let send = || inner.send_one(&data, addr.as_ref());
        let sent = match wait_writable {
            true => source.poll_io(Direction::Write, cx, send),
            false => match source.try_io(Direction::Write, send) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                sent => Poll::Ready(sent),
            },
        };
        match sent {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(Err(e)) if no_room(&e) => {
                wake_later(cx, BUSY_RETRY);
                return Poll::Pending;
            }
            Poll::Ready(result) => {
                inner.buffer.borrow_mut().pop_front();
                inner
                    .buffered_bytes
                    .set(inner.buffered_bytes.get() - data.len());
                if let Err(e) = result {
                    inner.call("error_received", |p| p.error_received(e));
                }
            }
        }
    }
}

fn finish<A: DatagramAddress>(inner: &Datagrams<A>) -> Poll<()> {
    inner.closed.set(true);
    inner.buffer.borrow_mut().clear();
    inner.buffered_bytes.set(0);
    let error = inner.error.borrow_mut().take();
    inner.call("connection_lost", move |p| p.connection_lost(error));
    Poll::Ready(())
}

/// Make an endpoint of `socket` (non-blocking) with a protocol from `protocol_factory`: call
/// `connection_made`, start the endpoint's task (detached).
fn start<A: DatagramAddress, P: DatagramProtocol<A>>(
    lp: &EventLoop,
    socket: Stream<A::Socket>,
    protocol_factory: impl FnOnce() -> P,
    local: Option<A>,
    peer: Option<A>,
) -> (DatagramTransport<A>, Rc<RefCell<P>>) {
    let protocol = Rc::new(RefCell::new(protocol_factory()));
    let shared: Rc<RefCell<dyn DatagramProtocol<A>>> = protocol.clone();
    let inner = Rc::new(Datagrams {
        socket,
        protocol: shared,
        protocol_name: type_name::<P>(),
        lp: lp.downgrade(),
        buffer: RefCell::new(VecDeque::new()),
        buffered_bytes: Cell::new(0),
        closing: Cell::new(false),
        aborting: Cell::new(false),
        closed: Cell::new(false),
        send_errors: RefCell::new(VecDeque::new()),
        error: RefCell::new(None),
        waker: RefCell::new(None),
        local,
        peer,
    });
    let transport = DatagramTransport {
        inner: Rc::downgrade(&inner),
    };
    inner.call("connection_made", |p| p.connection_made(transport.clone()));
    drop(lp.create_task(Driver {
        inner,
        buf: vec![0; MAX_DATAGRAM],
    }));
    (transport, protocol)
}

impl EventLoop {
    /// A UDP endpoint with a protocol from `protocol_factory` (asyncio's
    /// `loop.create_datagram_endpoint`): the socket bound to `options.local_addr` and/or
    /// connected to `options.remote_addr` (a name resolved on the blocking pool). Returns once
    /// `connection_made` has been called: the transport, and the protocol, shared with the
    /// endpoint's task.
    ///
    /// ```
    /// use std::net::SocketAddr;
    /// use tulip::{DatagramOptions, DatagramProtocol, DatagramTransport};
    ///
    /// /// Sends every datagram back.
    /// struct Echo(Option<DatagramTransport>);
    /// impl DatagramProtocol for Echo {
    ///     fn connection_made(&mut self, transport: DatagramTransport) {
    ///         self.0 = Some(transport);
    ///     }
    ///     fn datagram_received(&mut self, data: &[u8], addr: SocketAddr) {
    ///         let _ = self.0.as_ref().map(|t| t.sendto(data, Some(addr)));
    ///     }
    /// }
    ///
    /// let lp = tulip::EventLoop::new()?;
    /// lp.run_until_complete(async {
    ///     let lp = tulip::get_running_loop()?;
    ///     let options = DatagramOptions {
    ///         local_addr: Some("127.0.0.1:0".parse().unwrap()),
    ///         ..DatagramOptions::default()
    ///     };
    ///     let (server, _) = lp.create_datagram_endpoint(|| Echo(None), options).await?;
    ///     let client = tulip::net::UdpSocket::bind("127.0.0.1:0")?;
    ///     client.send_to(b"ping", server.local_addr().unwrap()).await?;
    ///     let mut buf = [0; 8];
    ///     let (n, _) = client.recv_from(&mut buf).await?;
    ///     assert_eq!(&buf[..n], b"ping");
    ///     server.close();
    ///     Ok::<(), std::io::Error>(())
    /// })??;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    ///
    /// # Errors
    /// `InvalidInput` with neither address, or with addresses of two families; the
    /// resolver's; the kernel's (`AddrInUse`, ...);
    /// [`LoopError::Closed`](crate::LoopError::Closed) on a closed loop.
    pub async fn create_datagram_endpoint<P: DatagramProtocol>(
        &self,
        protocol_factory: impl FnOnce() -> P,
        options: DatagramOptions,
    ) -> io::Result<(DatagramTransport, Rc<RefCell<P>>)> {
        self.check_open()?;
        let remotes = match &options.remote_addr {
            Some(remote) => self.resolve(remote).await?,
            None => Vec::new(),
        };
        let remote = match options.local_addr {
            Some(local) => match remotes.iter().find(|r| r.is_ipv4() == local.is_ipv4()) {
                Some(remote) => Some(*remote),
                None if remotes.is_empty() => None,
                None => {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidInput,
                        format!("no remote address of the family of {local}"),
                    ))
                }
            },
            None => remotes.first().copied(),
        };
        let local = match (options.local_addr, remote) {
            (Some(local), _) => local,
            (None, Some(SocketAddr::V4(_))) => "0.0.0.0:0".parse().expect("a literal"),
            (None, Some(SocketAddr::V6(_))) => "[::]:0".parse().expect("a literal"),
            (None, None) => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "a datagram endpoint needs a local or a remote address",
                ))
            }
        };
        let fd = sys::socket(Domain::of(&local), Type::Datagram)?;
        let socket = std::net::UdpSocket::from(fd);
        if options.allow_broadcast {
            socket.set_broadcast(true)?;
        }
        sys::bind(std::os::fd::AsFd::as_fd(&socket), &local)?;
        if let Some(remote) = remote {
            socket.connect(remote)?;
        }
        let local = socket.local_addr().ok();
        let socket = Stream::from_nonblocking(socket, FdKind::Socket);
        Ok(start(self, socket, protocol_factory, local, remote))
    }

    /// A Unix datagram endpoint (asyncio's `loop.create_datagram_endpoint` with
    /// `family=AF_UNIX`): as [`create_datagram_endpoint`](Self::create_datagram_endpoint), with
    /// a socket bound to `options.local_path` and/or connected to `options.remote_path` (or
    /// neither: an unnamed socket that sends to paths). Its protocol's addresses are std's
    /// [`std::os::unix::net::SocketAddr`]: a sender bound to no path is unnamed (and cannot
    /// be answered). The file at `local_path` is left behind when the endpoint closes, as
    /// asyncio and std leave it: remove it when done.
    ///
    /// ```
    /// use std::os::unix::net::SocketAddr;
    /// use tulip::{DatagramProtocol, DatagramTransport, UnixDatagramOptions};
    ///
    /// /// Sends every datagram back.
    /// struct Echo(Option<DatagramTransport<SocketAddr>>);
    /// impl DatagramProtocol<SocketAddr> for Echo {
    ///     fn connection_made(&mut self, transport: DatagramTransport<SocketAddr>) {
    ///         self.0 = Some(transport);
    ///     }
    ///     fn datagram_received(&mut self, data: &[u8], addr: SocketAddr) {
    ///         let _ = self.0.as_ref().map(|t| t.sendto(data, Some(addr)));
    ///     }
    /// }
    ///
    /// let dir = std::env::temp_dir().join(format!("tulip-doc-unix-dgram-{}", std::process::id()));
    /// std::fs::create_dir_all(&dir)?;
    /// let (server_path, client_path) = (dir.join("server.sock"), dir.join("client.sock"));
    /// let lp = tulip::EventLoop::new()?;
    /// lp.run_until_complete(async move {
    ///     let lp = tulip::get_running_loop()?;
    ///     let options = UnixDatagramOptions {
    ///         local_path: Some(server_path.clone()),
    ///         ..UnixDatagramOptions::default()
    ///     };
    ///     let (server, _) = lp.create_unix_datagram_endpoint(|| Echo(None), options).await?;
    ///     let client = tulip::net::UnixDatagram::bind(&client_path)?;
    ///     client.send_to(b"ping", &server_path).await?;
    ///     let mut buf = [0; 8];
    ///     let (n, _) = client.recv_from(&mut buf).await?;
    ///     assert_eq!(&buf[..n], b"ping");
    ///     server.close();
    ///     Ok::<(), std::io::Error>(())
    /// })??;
    /// std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    ///
    /// # Errors
    /// The kernel's: `AddrInUse` if `local_path` exists (a stale socket file is not removed,
    /// as asyncio does: it may be another process's live socket), `NotFound` if nothing is
    /// bound at `remote_path`, `ConnectionRefused` if what is there is no datagram socket (the
    /// file bound at `local_path` is then removed again);
    /// `InvalidInput` for a path too long for a socket address;
    /// [`LoopError::Closed`](crate::LoopError::Closed) on a closed loop.
    pub async fn create_unix_datagram_endpoint<P: DatagramProtocol<UnixSocketAddr>>(
        &self,
        protocol_factory: impl FnOnce() -> P,
        options: UnixDatagramOptions,
    ) -> io::Result<(DatagramTransport<UnixSocketAddr>, Rc<RefCell<P>>)> {
        self.check_open()?;
        let socket = match &options.local_path {
            Some(path) => UnixDatagram::bind(path)?,
            None => UnixDatagram::unbound()?,
        };
        let connect = |socket: &UnixDatagram| match &options.remote_path {
            Some(path) => {
                socket.connect(path)?;
                Ok(Some(socket.peer_addr()?))
            }
            None => Ok(None),
        };
        let peer = match connect(&socket) {
            Ok(peer) => peer,
            Err(e) => {
                // Not left behind by a call that failed.
                if let Some(path) = &options.local_path {
                    let _ = std::fs::remove_file(path);
                }
                return Err(e);
            }
        };
        let local = socket.local_addr().ok();
        let socket = Stream::new(socket, FdKind::Socket)?;
        Ok(start(self, socket, protocol_factory, local, peer))
    }
}
