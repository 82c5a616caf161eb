//! Datagram endpoints (asyncio's `loop.create_datagram_endpoint`): a UDP socket driven by a
//! task of its own, which hands each datagram to a [`DatagramProtocol`] and sends what its
//! [`DatagramTransport`] buffered.
//!
//! As for stream connections, the task owns the endpoint and the transport is a weak handle.
//! `sendto` sends at once when nothing is buffered (one `sendto(2)`), and buffers the datagram
//! when the kernel would block; send and receive errors (an ICMP "port unreachable" coming
//! back as `ECONNREFUSED`, ...) go to `error_received` and the endpoint goes on, as in asyncio.

use std::any::type_name;
use std::borrow::Cow;
use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::fmt;
use std::future::Future as StdFuture;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::rc::{Rc, Weak};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use tulip_sys::net::{self as sys, Domain, Type};

use crate::event_loop::{Direction, WeakLoop};
use crate::net::source::FdKind;
use crate::net::stream::Stream;
use crate::net::Endpoint;
use crate::EventLoop;

/// The largest datagram received whole (asyncio's `max_size`, 256 KiB): a longer one is cut.
const MAX_DATAGRAM: usize = 256 * 1024;

/// How long the endpoint waits before it looks again at a protocol some task keeps borrowed.
const BUSY_RETRY: Duration = Duration::from_millis(1);

/// The callbacks of a datagram endpoint (asyncio's `DatagramProtocol`), called on the loop's
/// thread, one at a time: `connection_made` first, then `datagram_received` and
/// `error_received` in any number, and `connection_lost` last, once. A panic in one is
/// reported to the loop's exception handler and ends the endpoint (`connection_lost` with an
/// error follows).
pub trait DatagramProtocol: 'static {
    /// The endpoint is ready: called first, once. Keep `transport` (a weak handle) to send.
    fn connection_made(&mut self, transport: DatagramTransport) {
        let _ = transport;
    }

    /// A datagram from `addr` (cut to 256 KiB).
    fn datagram_received(&mut self, data: &[u8], addr: SocketAddr);

    /// A send or receive failed (`ConnectionRefused` for a datagram a closed port sent back
    /// as an ICMP error, ...): the endpoint goes on.
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

/// One endpoint's state, owned by its task.
struct Datagrams {
    socket: Stream<std::net::UdpSocket>,
    protocol: Rc<RefCell<dyn DatagramProtocol>>,
    protocol_name: &'static str,
    lp: WeakLoop,
    /// Datagrams the kernel did not take yet, and their addresses (`None`: the peer).
    buffer: RefCell<VecDeque<(Vec<u8>, Option<SocketAddr>)>>,
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
    local: Option<SocketAddr>,
    peer: Option<SocketAddr>,
}

impl Datagrams {
    /// Call the protocol, reporting a panic (which aborts the endpoint). False if it is
    /// borrowed elsewhere.
    fn call(&self, what: &'static str, f: impl FnOnce(&mut dyn DatagramProtocol)) -> bool {
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

    fn send_one(&self, data: &[u8], addr: Option<SocketAddr>) -> io::Result<usize> {
        let socket = self.socket.get_ref();
        match addr {
            Some(addr) => socket.send_to(data, addr),
            None => socket.send(data),
        }
    }
}

/// The handle of a datagram endpoint (asyncio's `DatagramTransport`): weak, so a protocol
/// keeps it without a cycle; once the endpoint is gone, `sendto` is refused and the rest does
/// nothing.
#[derive(Clone)]
pub struct DatagramTransport {
    inner: Weak<Datagrams>,
}

impl DatagramTransport {
    /// Send `data` as one datagram to `addr`, or to the connected remote address for `None`
    /// (asyncio's `sendto`): at once if nothing is buffered and the kernel takes it, else
    /// buffered and sent by the endpoint's task. A send that fails goes to `error_received`,
    /// called by the endpoint's task (not from within `sendto`, as asyncio does: the protocol
    /// may be the caller).
    ///
    /// # Errors
    /// `BrokenPipe` once the transport is closing or gone; `InvalidInput` for `None` without a
    /// remote address, or an `addr` other than the remote address of a connected endpoint.
    pub fn sendto(&self, data: &[u8], addr: Option<SocketAddr>) -> io::Result<()> {
        let Some(inner) = self.inner.upgrade() else {
            return Err(refused("the endpoint is closed"));
        };
        if inner.closing.get() || inner.aborting.get() || inner.closed.get() {
            return Err(refused("the transport is closing"));
        }
        match (addr, inner.peer) {
            (None, None) => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "sendto without an address needs a remote_addr",
                ))
            }
            (Some(addr), Some(peer)) if addr != peer => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("the endpoint is connected to {peer}: cannot send to {addr}"),
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
                .try_io(Direction::Write, || inner.send_one(data, addr));
            match sent {
                Ok(_) => return Ok(()),
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                    ) => {}
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

    /// The address the socket is bound to (asyncio's `sockname`); `None` once gone.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.inner.upgrade().and_then(|d| d.local)
    }

    /// The connected remote address (asyncio's `peername`); `None` if not connected, or once
    /// gone.
    pub fn peer_addr(&self) -> Option<SocketAddr> {
        self.inner.upgrade().and_then(|d| d.peer)
    }
}

impl fmt::Debug for DatagramTransport {
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
struct Driver {
    inner: Rc<Datagrams>,
    buf: Vec<u8>,
}

impl StdFuture for Driver {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        let inner = &*this.inner;
        if inner.protocol.try_borrow_mut().is_err() {
            let waker = cx.waker().clone();
            let retry = crate::event_loop::with_running_loop(|lp| {
                lp.call_later(BUSY_RETRY, move |_| waker.wake()).map(drop)
            });
            if !matches!(retry, Ok(Ok(()))) {
                cx.waker().wake_by_ref();
            }
            return Poll::Pending;
        }
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
            // Send what is buffered, as far as the kernel takes it.
            let mut blocked = false;
            loop {
                let front = inner.buffer.borrow().front().cloned();
                let Some((data, addr)) = front else { break };
                let sent = inner
                    .socket
                    .source()
                    .poll_io(Direction::Write, cx, || inner.send_one(&data, addr));
                match sent {
                    Poll::Pending => {
                        blocked = true;
                        break;
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

fn finish(inner: &Datagrams) -> Poll<()> {
    inner.closed.set(true);
    inner.buffer.borrow_mut().clear();
    inner.buffered_bytes.set(0);
    let error = inner.error.borrow_mut().take();
    inner.call("connection_lost", move |p| p.connection_lost(error));
    Poll::Ready(())
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
        let peer = remote;
        let protocol = Rc::new(RefCell::new(protocol_factory()));
        let shared: Rc<RefCell<dyn DatagramProtocol>> = protocol.clone();
        let inner = Rc::new(Datagrams {
            socket: Stream::from_nonblocking(socket, FdKind::Socket),
            protocol: shared,
            protocol_name: type_name::<P>(),
            lp: self.downgrade(),
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
        let made = transport.clone();
        inner.call("connection_made", move |p| p.connection_made(made));
        drop(self.create_task(Driver {
            inner,
            buf: vec![0; MAX_DATAGRAM],
        }));
        Ok((transport, protocol))
    }
}
