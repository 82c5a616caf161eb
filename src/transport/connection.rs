//! One connection's state ([`Connection`]) and the user's handle on it ([`Transport`]).
//!
//! The connection is owned by its driver task alone (see `driver.rs`); the protocol and the
//! user hold [`Transport`]s, weak handles, so a protocol that keeps its transport forms no
//! `Rc` cycle and a closed loop frees everything. The transport's methods change the state and
//! wake the driver, which does the waiting; only `write` does I/O itself (one `send` when
//! nothing is buffered, as asyncio does).
//!
//! Flow control is a small state machine: `writing_paused` is what the buffer's level says
//! (set above the high-water mark, cleared at the low one), `protocol_paused` what the protocol
//! was last told. [`Connection::deliver_flow_control`] brings the second in line with the first
//! whenever the protocol can be called, so each pause is followed by at most one resume even
//! when the level changes while the protocol is busy (a `write` inside `data_received`).

use std::borrow::Cow;
use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::rc::{Rc, Weak};
use std::task::Waker;

use super::socket::{Ends, Socket};
use super::{Address, Protocol};
use crate::event_loop::Direction;
use crate::event_loop::WeakLoop;
use crate::EventLoop;

/// asyncio's default high-water mark of a transport's write buffer.
pub(crate) const DEFAULT_HIGH_WATER: usize = 64 * 1024;

/// A buffer that drained keeps at most this much capacity, so that one burst does not pin
/// megabytes to an idle connection.
const KEPT_BUFFER_CAPACITY: usize = 64 * 1024;

/// Where a connection is in its life.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Reading and writing.
    Open,
    /// `close` (or an end of stream the protocol did not keep open): no more reading or
    /// writing; the buffer is flushed, then the connection ends cleanly.
    Closing,
    /// `abort`, or a fatal error (in `error`): the buffer is dropped and the connection ends.
    Aborting,
    /// `connection_lost` was called (or is being called).
    Closed,
}

/// What came of calling the protocol.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) enum Call {
    Returned,
    /// It panicked: reported, and the connection is aborting.
    Panicked,
    /// Not called: the protocol is borrowed (by its own callback further up the stack, or by
    /// a task holding it across an await).
    Busy,
}

/// A connection: its protocol, its state, and (last, so that the struct can be unsized to
/// `Connection<dyn Socket>`) its socket.
pub(crate) struct Connection<S: ?Sized = dyn Socket> {
    pub(super) protocol: Rc<RefCell<dyn Protocol>>,
    /// The protocol's type, to name its callbacks to the exception handler.
    protocol_name: &'static str,
    pub(super) lp: WeakLoop,
    pub(super) phase: Cell<Phase>,
    /// The first fatal error, for `connection_lost`.
    pub(super) error: RefCell<Option<io::Error>>,
    pub(super) reading_paused: Cell<bool>,
    /// The peer ended its stream.
    pub(super) eof_received: Cell<bool>,
    /// `write_eof` was called; `eof_sent` once the `shutdown` is done.
    pub(super) eof_requested: Cell<bool>,
    pub(super) eof_sent: Cell<bool>,
    /// Bytes the kernel has not taken yet.
    pub(super) buffer: RefCell<VecDeque<u8>>,
    high: Cell<usize>,
    low: Cell<usize>,
    pub(super) writing_paused: Cell<bool>,
    protocol_paused: Cell<bool>,
    /// The driver task's waker, to wake it when the state changes from outside.
    pub(super) waker: RefCell<Option<Waker>>,
    /// True while the driver polls: it looks at the state again after each callback, so
    /// changes made meanwhile need no wake.
    pub(super) polling: Cell<bool>,
    /// What `getpeername` and `getsockname` said when the connection was made (asyncio's
    /// `peername` and `sockname` extra info, also taken once).
    names: Names,
    /// [`Transport::sendfile`] is running: the protocol's writes are refused.
    pub(super) sendfile_active: Cell<bool>,
    /// The waker of a running [`Transport::sendfile`], woken as the buffer drains and when the
    /// connection stops being open.
    pub(super) sendfile_waker: RefCell<Option<Waker>>,
    pub(super) socket: S,
}

/// A connection's peername and sockname: IP addresses inline (64 bytes), anything else (a
/// Unix socket's address is 116 bytes each) in a box of its own, so that the many TCP
/// connections of a server do not each carry room for two Unix paths.
enum Names {
    Inet(Option<SocketAddr>, Option<SocketAddr>),
    Other(Box<(Option<Address>, Option<Address>)>),
}

impl Names {
    fn new(peer: Option<Address>, local: Option<Address>) -> Names {
        let inline = |a: &Option<Address>| !matches!(a, Some(Address::Unix(_)));
        if inline(&peer) && inline(&local) {
            Names::Inet(
                peer.and_then(|a| a.as_inet()),
                local.and_then(|a| a.as_inet()),
            )
        } else {
            Names::Other(Box::new((peer, local)))
        }
    }

    fn peer(&self) -> Option<Address> {
        match self {
            Names::Inet(peer, _) => peer.map(Address::Inet),
            Names::Other(names) => names.0.clone(),
        }
    }

    fn local(&self) -> Option<Address> {
        match self {
            Names::Inet(_, local) => local.map(Address::Inet),
            Names::Other(names) => names.1.clone(),
        }
    }
}

impl Connection {
    /// A new open connection of `protocol` (named `protocol_name`) over `socket`, on `lp`.
    pub(crate) fn new<S: Socket + 'static>(
        lp: &EventLoop,
        socket: S,
        protocol: Rc<RefCell<dyn Protocol>>,
        protocol_name: &'static str,
    ) -> Rc<Connection> {
        let names = Names::new(socket.peername(), socket.sockname());
        Rc::new(Connection {
            protocol,
            protocol_name,
            lp: lp.downgrade(),
            phase: Cell::new(Phase::Open),
            error: RefCell::new(None),
            reading_paused: Cell::new(false),
            eof_received: Cell::new(false),
            eof_requested: Cell::new(false),
            eof_sent: Cell::new(false),
            buffer: RefCell::new(VecDeque::new()),
            high: Cell::new(DEFAULT_HIGH_WATER),
            low: Cell::new(DEFAULT_HIGH_WATER / 4),
            writing_paused: Cell::new(false),
            protocol_paused: Cell::new(false),
            waker: RefCell::new(None),
            polling: Cell::new(false),
            names,
            sendfile_active: Cell::new(false),
            sendfile_waker: RefCell::new(None),
            socket,
        })
    }

    /// Call the protocol: through its `RefCell` (`Busy` if borrowed) and the loop's `invoke`,
    /// which hands a panic to the exception handler. A panic aborts the connection.
    pub(super) fn call(&self, what: &'static str, f: impl FnOnce(&mut dyn Protocol)) -> Call {
        let Some(lp) = self.lp.upgrade() else {
            // The loop is gone, and the driver with it: nobody to report to or to go on.
            return Call::Busy;
        };
        let Ok(mut protocol) = self.protocol.try_borrow_mut() else {
            return Call::Busy;
        };
        let describe = || Cow::Owned(format!("{}::{what}", self.protocol_name));
        if lp.invoke(describe, move || f(&mut *protocol)) {
            return Call::Returned;
        }
        self.fail(io::Error::other(format!("the protocol panicked in {what}")));
        Call::Panicked
    }

    /// [`call`](Self::call), then the pause or resume the callback's writes made due.
    pub(super) fn callback(&self, what: &'static str, f: impl FnOnce(&mut dyn Protocol)) -> Call {
        let called = self.call(what, f);
        self.deliver_flow_control();
        called
    }

    /// Tell the protocol to pause or resume writing if the buffer's level says so and it was
    /// told otherwise (see the module doc). If it is busy, this is done after its callback
    /// returns, or at the driver's next poll.
    pub(super) fn deliver_flow_control(&self) {
        loop {
            let paused = self.writing_paused.get();
            let open = matches!(self.phase.get(), Phase::Open | Phase::Closing);
            if !open || self.protocol_paused.get() == paused {
                return;
            }
            // Recorded first: the callback may write (or drain nothing) and come back here.
            self.protocol_paused.set(paused);
            let called = if paused {
                self.call("pause_writing", |p| p.pause_writing())
            } else {
                self.call("resume_writing", |p| p.resume_writing())
            };
            if called == Call::Busy {
                self.protocol_paused.set(!paused);
                self.wake();
                return;
            }
        }
    }

    /// Wake the driver, unless it is polling (it then sees the change by itself).
    pub(super) fn wake(&self) {
        if self.polling.get() {
            return;
        }
        if let Some(waker) = &*self.waker.borrow() {
            waker.wake_by_ref();
        }
    }

    /// Wake a running [`Transport::sendfile`], if any.
    pub(super) fn wake_sendfile(&self) {
        if let Some(waker) = self.sendfile_waker.take() {
            waker.wake();
        }
    }

    /// End the connection with `error`: the buffer is dropped and `connection_lost(Some)`
    /// follows. Only the first error counts.
    pub(super) fn fail(&self, error: io::Error) {
        if matches!(self.phase.get(), Phase::Open | Phase::Closing) {
            *self.error.borrow_mut() = Some(error);
            self.phase.set(Phase::Aborting);
            self.wake();
            self.wake_sendfile();
        }
    }

    /// Whether the driver should read: open, not paused, no end of stream yet.
    pub(super) fn wants_to_read(&self) -> bool {
        self.phase.get() == Phase::Open && !self.reading_paused.get() && !self.eof_received.get()
    }

    /// Why this connection refuses writes, if it does (see [`Transport::write`]).
    pub(super) fn write_refusal(&self) -> Option<io::Error> {
        if self.socket.ends() == Ends::ReadOnly {
            let why = "cannot write(): the transport of a read pipe takes no writes";
            return Some(io::Error::new(io::ErrorKind::Unsupported, why));
        }
        // First, as asyncio checks it: ending this side is final, whatever happened since.
        if self.eof_requested.get() {
            let why = "cannot write() after write_eof(): this side of the stream is ended";
            return Some(refused(why.into()));
        }
        let why = match self.phase.get() {
            Phase::Open if self.sendfile_active.get() => {
                // asyncio raises RuntimeError('unable to write; sendfile is in progress').
                return Some(io::Error::other(
                    "cannot write(): sendfile is in progress on this transport",
                ));
            }
            Phase::Open => return None,
            Phase::Closing => "cannot write(): the transport is closing".into(),
            Phase::Aborting => match &*self.error.borrow() {
                Some(error) => format!("cannot write(): the connection failed ({error})"),
                None => "cannot write(): the transport was aborted".into(),
            },
            Phase::Closed => "cannot write(): the connection is closed".into(),
        };
        Some(refused(why))
    }

    fn write(&self, data: &[u8]) -> io::Result<()> {
        if let Some(refusal) = self.write_refusal() {
            return Err(refusal);
        }
        self.write_unchecked(data);
        Ok(())
    }

    /// [`write`](Self::write) once it is known to be allowed (also `sendfile`'s fallback).
    pub(super) fn write_unchecked(&self, data: &[u8]) {
        if data.is_empty() {
            return;
        }
        let mut rest = data;
        if self.buffer.borrow().is_empty() {
            match self.socket.try_write(rest) {
                Ok(n) => {
                    if n < rest.len() {
                        self.socket.clear_ready(Direction::Write);
                    }
                    rest = &rest[n..];
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.socket.clear_ready(Direction::Write);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    // Taken, and lost with the connection: `connection_lost` says why.
                    self.fail(e);
                    return;
                }
            }
            if rest.is_empty() {
                return;
            }
        }
        self.buffer.borrow_mut().extend(rest);
        self.wake();
        self.check_high_water();
    }

    /// Past the high-water mark: pause the protocol.
    fn check_high_water(&self) {
        if !self.writing_paused.get() && self.buffer.borrow().len() > self.high.get() {
            self.writing_paused.set(true);
            self.deliver_flow_control();
        }
    }

    /// The driver wrote `n` bytes of the buffer.
    pub(super) fn consume(&self, n: usize) {
        let mut buffer = self.buffer.borrow_mut();
        buffer.drain(..n);
        let len = buffer.len();
        if len == 0 && buffer.capacity() > KEPT_BUFFER_CAPACITY {
            *buffer = VecDeque::new();
        }
        drop(buffer);
        self.wake_sendfile();
        if self.writing_paused.get() && len <= self.low.get() {
            self.writing_paused.set(false);
            self.deliver_flow_control();
        }
    }

    /// `shutdown(SHUT_WR)`, once.
    pub(super) fn send_eof(&self) {
        self.eof_sent.set(true);
        match self.socket.shutdown_write() {
            // The peer is already gone: it needs no end of stream, and reading says why.
            Err(e) if e.kind() != io::ErrorKind::NotConnected => self.fail(e),
            _ => {}
        }
    }

    fn write_eof(&self) {
        match self.socket.ends() {
            Ends::ReadOnly => return,
            // A pipe has no half-close: its end of stream is closing it (asyncio's write pipe
            // transport closes too).
            Ends::WriteOnly => {
                if self.phase.get() == Phase::Open {
                    // Refuses later writes as after a socket's write_eof; the close is the
                    // end of stream, there is no shutdown to send.
                    self.eof_requested.set(true);
                    self.eof_sent.set(true);
                    self.close();
                }
                return;
            }
            Ends::Both => {}
        }
        if self.phase.get() != Phase::Open || self.eof_requested.replace(true) {
            return;
        }
        if self.buffer.borrow().is_empty() {
            self.send_eof();
        }
    }

    pub(super) fn close(&self) {
        if self.phase.get() == Phase::Open {
            self.phase.set(Phase::Closing);
            self.wake();
            self.wake_sendfile();
        }
    }

    pub(super) fn abort(&self) {
        if matches!(self.phase.get(), Phase::Open | Phase::Closing) {
            self.phase.set(Phase::Aborting);
            self.wake();
            self.wake_sendfile();
        }
    }

    fn set_write_buffer_limits(&self, high: usize, low: usize) {
        self.high.set(high);
        self.low.set(low);
        self.check_high_water();
    }
}

/// A refused write: `BrokenPipe`, the kind a write to a stream whose writing side is shut gets
/// from the kernel (`EPIPE`) and std, with `why`.
pub(super) fn refused(why: String) -> io::Error {
    io::Error::new(io::ErrorKind::BrokenPipe, why)
}

/// The high- and low-water marks `set_write_buffer_limits(high, low)` means, by asyncio's
/// rules.
fn write_buffer_limits(high: Option<usize>, low: Option<usize>) -> io::Result<(usize, usize)> {
    let high = match (high, low) {
        (Some(high), _) => high,
        (None, None) => DEFAULT_HIGH_WATER,
        (None, Some(low)) => low.saturating_mul(4),
    };
    let low = low.unwrap_or(high / 4);
    if low > high {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("the low-water mark ({low}) is above the high-water mark ({high})"),
        ));
    }
    Ok((high, low))
}

/// A handle on a connection, asyncio's `Transport`: what a [`Protocol`] writes to and closes.
///
/// It is weak: it does not keep the connection alive (its driver task does), so a protocol
/// stores it without forming a cycle. Once the connection is gone (after `connection_lost`, or
/// when the loop closed) [`write`](Self::write) is refused with an error, the other methods do
/// nothing, queries answer `false`, `0` or `None`, and [`is_closing`](Self::is_closing)
/// answers `true`. Cloning is cheap. Like the loop, it is not `Send`.
#[derive(Clone)]
pub struct Transport {
    pub(super) conn: Weak<Connection>,
}

impl Transport {
    fn with<R>(&self, dead: R, f: impl FnOnce(&Connection) -> R) -> R {
        match self.conn.upgrade() {
            Some(conn) => f(&conn),
            None => dead,
        }
    }

    /// Send `data`: what the kernel takes now goes at once (if nothing is buffered before
    /// it); the rest is buffered and sent as the socket becomes writable. Never blocks. Past
    /// the high-water mark the protocol's [`pause_writing`](Protocol::pause_writing) is called
    /// (after the current callback, if it is running one).
    ///
    /// `Ok` means the bytes were taken. An I/O error while sending them (now or later) does
    /// not come back here: it ends the connection, and `connection_lost(Some(error))` says
    /// why, as in asyncio.
    ///
    /// # Errors
    /// `Unsupported` on a read pipe's transport ([`EventLoop::connect_read_pipe`]).
    ///
    /// `BrokenPipe`, and nothing is sent, once the transport takes no more writes (even of
    /// nothing), with a message that says why:
    /// - after [`write_eof`](Self::write_eof): asyncio raises `RuntimeError('Cannot call
    ///   write() after write_eof()')` here too;
    /// - after [`close`](Self::close) (or the peer's end of stream not kept open by
    ///   [`eof_received`](Protocol::eof_received)), [`abort`](Self::abort), a failure of the
    ///   connection, or once it is gone. asyncio drops these writes without raising (it
    ///   counts them, and logs a warning from the fifth on), and still sends those made after
    ///   `close` while its buffer is flushing; tulip refuses them all, alike.
    ///
    /// `BrokenPipe` is what the kernel and std give a write to a stream whose writing side is
    /// shut (`EPIPE`), so the kind says "this stream takes no more", whichever way it ended.
    /// A protocol that knows it cannot be refused (it ends nothing itself, and writes only in
    /// its callbacks before `connection_lost`) may ignore the result.
    ///
    /// ```
    /// # use tulip::Transport;
    /// fn reply(transport: &Transport, answer: &[u8]) {
    ///     if let Err(e) = transport.write(answer) {
    ///         eprintln!("not sent: {e}"); // "cannot write(): the transport is closing"
    ///     }
    /// }
    /// ```
    pub fn write(&self, data: &[u8]) -> io::Result<()> {
        match self.conn.upgrade() {
            Some(conn) => conn.write(data),
            None => Err(refused("cannot write(): the connection is gone".into())),
        }
    }

    /// End this side of the stream (`shutdown(SHUT_WR)`) once the buffer is flushed: the peer
    /// reads an end of stream, and reading goes on. Later writes are refused (see
    /// [`write`](Self::write)). Does nothing if the transport is closing, or already did it.
    ///
    /// On a write pipe ([`EventLoop::connect_write_pipe`]) it is [`close`](Self::close) (the
    /// pipe is closed once the buffer is flushed), as in asyncio; on a read pipe it does
    /// nothing.
    pub fn write_eof(&self) {
        self.with((), Connection::write_eof);
    }

    /// Whether [`write_eof`](Self::write_eof) is supported: true for TCP and Unix streams
    /// and write pipes (whose end of stream closes them), false for a read pipe (and once the
    /// connection is gone).
    pub fn can_write_eof(&self) -> bool {
        self.with(false, |c| c.socket.ends() != Ends::ReadOnly)
    }

    /// Close gracefully: stop reading, flush the buffer, then close the socket and call
    /// `connection_lost(None)`. Calling it again does nothing.
    pub fn close(&self) {
        self.with((), Connection::close);
    }

    /// Close now: drop the buffer, close the socket and call `connection_lost(None)`.
    pub fn abort(&self) {
        self.with((), Connection::abort);
    }

    /// True once the transport is closing or closed ([`close`](Self::close),
    /// [`abort`](Self::abort), an error, the peer's end of stream not kept open), and for a
    /// connection that is gone.
    pub fn is_closing(&self) -> bool {
        self.with(true, |c| c.phase.get() != Phase::Open)
    }

    /// Stop calling [`data_received`](Protocol::data_received) until
    /// [`resume_reading`](Self::resume_reading): the kernel's buffer fills, and the peer is
    /// throttled by TCP's flow control. Does nothing if not reading.
    pub fn pause_reading(&self) {
        self.with((), |c| {
            if c.phase.get() == Phase::Open {
                c.reading_paused.set(true);
            }
        });
    }

    /// Read again after [`pause_reading`](Self::pause_reading). Does nothing if not paused.
    ///
    /// After the peer's end of stream (kept open by
    /// [`eof_received`](Protocol::eof_received)) there is nothing left to read:
    /// [`is_reading`](Self::is_reading) answers true again, and no callback follows. (asyncio's
    /// selector transport watches the socket again here, and calls `eof_received` a second
    /// time; a [`Protocol`] gets it at most once.)
    pub fn resume_reading(&self) {
        self.with((), |c| {
            if c.phase.get() == Phase::Open && c.reading_paused.replace(false) {
                c.wake();
            }
        });
    }

    /// Whether the transport is reading, by asyncio's rule: not closing, and not paused by
    /// [`pause_reading`](Self::pause_reading).
    ///
    /// So it stays true after the peer's end of stream when
    /// [`eof_received`](Protocol::eof_received) kept the connection open, though nothing more
    /// can come (asyncio's `is_reading` is `not is_closing() and not _paused`, whatever the
    /// peer did); after an end of stream not kept open the transport closes, and it is false.
    pub fn is_reading(&self) -> bool {
        self.with(false, |c| {
            c.phase.get() == Phase::Open && !c.reading_paused.get()
        })
    }

    /// Set the write buffer's high- and low-water marks, by asyncio's rules: `high` defaults
    /// to 64 KiB (or to `4 * low` if only `low` is given), `low` to `high / 4`. The protocol
    /// is paused above `high` and resumed at `low` or below; a new `high` below the buffered
    /// size pauses it now. `Some(0)` for both makes every buffered write pause it.
    ///
    /// # Errors
    /// `InvalidInput` if `low` is above `high` (nothing changes then).
    pub fn set_write_buffer_limits(
        &self,
        high: Option<usize>,
        low: Option<usize>,
    ) -> io::Result<()> {
        let (high, low) = write_buffer_limits(high, low)?;
        self.with((), |c| c.set_write_buffer_limits(high, low));
        Ok(())
    }

    /// The write buffer's `(low, high)` water marks, in asyncio's order; `(0, 0)` once the
    /// connection is gone.
    pub fn get_write_buffer_limits(&self) -> (usize, usize) {
        self.with((0, 0), |c| (c.low.get(), c.high.get()))
    }

    /// How many bytes are buffered, not yet taken by the kernel.
    pub fn get_write_buffer_size(&self) -> usize {
        self.with(0, |c| c.buffer.borrow().len())
    }

    /// The peer's address, TCP or Unix (asyncio's `get_extra_info('peername')`), as the
    /// kernel reported it when the connection was made: the server's path on the client end
    /// of a Unix connection, and on the server end, the client's, which is usually unnamed
    /// ([`Address::is_unnamed`]). `None` if the kernel gave none, or once the connection is
    /// gone.
    pub fn peername(&self) -> Option<Address> {
        self.with(None, |c| c.names.peer())
    }

    /// This end's address, TCP or Unix (asyncio's `get_extra_info('sockname')`), as the
    /// kernel reported it when the connection was made: on the server end of a Unix
    /// connection, the path the server listens on; on the client end, usually unnamed.
    /// `None` if the kernel gave none, or once the connection is gone.
    pub fn sockname(&self) -> Option<Address> {
        self.with(None, |c| c.names.local())
    }

    /// The peer's IP address and port: [`peername`](Self::peername) for TCP; `None` for a
    /// Unix socket (which has no IP address), or once the connection is gone.
    pub fn peer_addr(&self) -> Option<SocketAddr> {
        self.with(None, |c| c.names.peer().as_ref().and_then(Address::as_inet))
    }

    /// This end's IP address and port: [`sockname`](Self::sockname) for TCP; `None` for a
    /// Unix socket, or once the connection is gone.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.with(None, |c| {
            c.names.local().as_ref().and_then(Address::as_inet)
        })
    }
}

impl fmt::Debug for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Some(conn) = self.conn.upgrade() else {
            return f.write_str("Transport(closed)");
        };
        let buffered = conn.buffer.borrow().len();
        f.debug_struct("Transport")
            .field("protocol", &conn.protocol_name)
            .field("phase", &conn.phase.get())
            .field("peer", &conn.names.peer().as_ref().map(ToString::to_string))
            .field("buffered", &buffered)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_buffer_limits_follow_asyncio() {
        assert_eq!(write_buffer_limits(None, None).unwrap(), (65536, 16384));
        assert_eq!(write_buffer_limits(Some(100), None).unwrap(), (100, 25));
        assert_eq!(write_buffer_limits(None, Some(10)).unwrap(), (40, 10));
        assert_eq!(write_buffer_limits(Some(0), Some(0)).unwrap(), (0, 0));
        let e = write_buffer_limits(Some(10), Some(11)).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
    }
}
