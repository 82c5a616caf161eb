//! [`StreamWriter`]: asyncio's `StreamWriter`, a transport with `drain` and `wait_closed`.

use std::cell::{Cell, RefCell};
use std::fmt;
use std::future::poll_fn;
use std::io;
use std::net::SocketAddr;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

use super::error::copy_error;
use super::reader::Incoming;
use crate::{Address, Transport};

/// What the protocol tells the writer: asyncio's `FlowControlMixin` (paused, lost, the drain
/// waiters) and the `closed` future of `wait_closed`.
#[derive(Default)]
pub(super) struct Flow {
    /// Between `pause_writing` and `resume_writing`.
    paused: Cell<bool>,
    /// `connection_lost` was called.
    lost: Cell<bool>,
    /// Its error, if any.
    error: RefCell<Option<io::Error>>,
    /// Tasks waiting in `drain` (or `poll_write`) for `resume_writing` or `connection_lost`.
    drain_waiters: RefCell<Vec<Waker>>,
    /// Tasks waiting in `wait_closed`.
    close_waiters: RefCell<Vec<Waker>>,
}

impl Flow {
    pub(super) fn pause_writing(&self) {
        self.paused.set(true);
    }

    pub(super) fn resume_writing(&self) {
        self.paused.set(false);
        wake_all(&self.drain_waiters);
    }

    pub(super) fn connection_lost(&self, error: Option<&io::Error>) {
        self.lost.set(true);
        *self.error.borrow_mut() = error.map(copy_error);
        wake_all(&self.drain_waiters);
        wake_all(&self.close_waiters);
    }

    /// How `connection_lost` ended a wait: `Ok` for a clean end, else its error.
    fn outcome(&self) -> io::Result<()> {
        match &*self.error.borrow() {
            Some(error) => Err(copy_error(error)),
            None => Ok(()),
        }
    }
}

fn wake_all(waiters: &RefCell<Vec<Waker>>) {
    let waiters = std::mem::take(&mut *waiters.borrow_mut());
    for waker in waiters {
        waker.wake();
    }
}

fn register(waiters: &RefCell<Vec<Waker>>, cx: &Context<'_>) {
    let mut waiters = waiters.borrow_mut();
    if !waiters.iter().any(|w| w.will_wake(cx.waker())) {
        waiters.push(cx.waker().clone());
    }
}

/// Where a `drain` is (asyncio's `drain` has two awaits: a `sleep(0)` if closing, then the
/// wait for `resume_writing`).
#[derive(Default)]
pub(super) struct Drain {
    yielded: bool,
    waiting: bool,
}

/// The writing half of a stream connection (asyncio's `StreamWriter`), from
/// [`open_connection`](super::open_connection) and its kin, or
/// [`start_server`](super::start_server)'s callback.
///
/// [`write`](Self::write) never blocks: bytes the kernel does not take at once are buffered by
/// the transport. Await [`drain`](Self::drain) after writing to wait while that buffer is
/// above its high-water mark (64 KiB by default; see
/// [`Transport::set_write_buffer_limits`]), so that a peer that does not read throttles the
/// writer instead of filling memory.
///
/// Dropping the writer closes the connection (as [`close`](Self::close): what is buffered is
/// still sent), as asyncio's does when collected; reading stops then too.
pub struct StreamWriter {
    transport: Transport,
    flow: Rc<Flow>,
    reader: Rc<Incoming>,
    /// The drain of `poll_flush`, between polls.
    #[cfg_attr(not(feature = "futures-io"), allow(dead_code))]
    flush: Drain,
}

impl fmt::Debug for StreamWriter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StreamWriter")
            .field("transport", &self.transport)
            .field("paused", &self.flow.paused.get())
            .field("lost", &self.flow.lost.get())
            .finish()
    }
}

impl StreamWriter {
    pub(super) fn new(transport: Transport, flow: Rc<Flow>, reader: Rc<Incoming>) -> StreamWriter {
        StreamWriter {
            transport,
            flow,
            reader,
            flush: Drain::default(),
        }
    }

    /// The connection's transport (asyncio's `transport` attribute), for its addresses,
    /// buffer limits and sizes.
    pub fn transport(&self) -> &Transport {
        &self.transport
    }

    /// Send `data`, buffering what the kernel does not take now (see
    /// [`Transport::write`]). Follow with [`drain`](Self::drain) to respect flow control.
    ///
    /// # Errors
    /// `BrokenPipe`, nothing sent, after [`write_eof`](Self::write_eof) or
    /// [`close`](Self::close) or once the connection ended (asyncio drops those writes
    /// silently, or raises after `write_eof`).
    pub fn write(&self, data: &[u8]) -> io::Result<()> {
        self.transport.write(data)
    }

    /// [`write`](Self::write) each of `pieces`, in order (asyncio's `writelines`).
    ///
    /// # Errors
    /// As [`write`](Self::write): the first refusal; the pieces before it were taken.
    pub fn writelines<I>(&self, pieces: I) -> io::Result<()>
    where
        I: IntoIterator,
        I::Item: AsRef<[u8]>,
    {
        pieces
            .into_iter()
            .try_for_each(|piece| self.write(piece.as_ref()))
    }

    /// Wait until it is right to write again (asyncio's `drain`): at once if the transport's
    /// buffer is at or below its high-water mark (or came back to the low-water mark since);
    /// otherwise once it drains to the low-water mark.
    ///
    /// # Errors
    /// - the error the connection failed with, as the reader saw it (`ConnectionReset`, ...);
    /// - `ConnectionReset` ("connection lost") once the connection is gone, even cleanly (a
    ///   closing transport is given one turn of the loop to end first, as in asyncio);
    /// - a wait that the end of the connection cuts short returns its error, or `Ok` if it
    ///   ended cleanly.
    pub async fn drain(&self) -> io::Result<()> {
        let mut state = Drain::default();
        poll_fn(|cx| self.poll_drain(cx, &mut state)).await
    }

    pub(super) fn poll_drain(
        &self,
        cx: &mut Context<'_>,
        state: &mut Drain,
    ) -> Poll<io::Result<()>> {
        let flow = &*self.flow;
        if state.waiting {
            if flow.lost.get() {
                return Poll::Ready(flow.outcome());
            }
            if !flow.paused.get() {
                return Poll::Ready(Ok(()));
            }
            register(&flow.drain_waiters, cx);
            return Poll::Pending;
        }
        if let Some(error) = self.reader.exception() {
            return Poll::Ready(Err(error));
        }
        if self.transport.is_closing() && !state.yielded && !flow.lost.get() {
            // asyncio's `sleep(0)`: let a closing connection end (and say so) first.
            state.yielded = true;
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        if flow.lost.get() {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::ConnectionReset,
                "connection lost",
            )));
        }
        if !flow.paused.get() {
            return Poll::Ready(Ok(()));
        }
        state.waiting = true;
        register(&flow.drain_waiters, cx);
        Poll::Pending
    }

    /// End this side of the stream once the buffer is flushed (`shutdown(SHUT_WR)`): the peer
    /// reads its end; reading goes on (asyncio's `write_eof`). Later writes are refused.
    pub fn write_eof(&self) {
        self.transport.write_eof();
    }

    /// Whether [`write_eof`](Self::write_eof) is supported: true for TCP and Unix streams
    /// while the connection is there.
    pub fn can_write_eof(&self) -> bool {
        self.transport.can_write_eof()
    }

    /// Close the connection: stop reading, flush what is buffered, then close the socket.
    /// Await [`wait_closed`](Self::wait_closed) to know when it is done.
    pub fn close(&self) {
        self.transport.close();
    }

    /// True once the connection is closing or closed (asyncio's `is_closing`).
    pub fn is_closing(&self) -> bool {
        self.transport.is_closing()
    }

    /// Wait until the connection has ended (its `connection_lost`), whoever ended it.
    ///
    /// # Errors
    /// The error the connection failed with, if it did (asyncio raises it here too).
    pub async fn wait_closed(&self) -> io::Result<()> {
        poll_fn(|cx| {
            if self.flow.lost.get() {
                return Poll::Ready(self.flow.outcome());
            }
            register(&self.flow.close_waiters, cx);
            Poll::Pending
        })
        .await
    }

    /// The peer's address, TCP or Unix ([`Transport::peername`]).
    pub fn peername(&self) -> Option<Address> {
        self.transport.peername()
    }

    /// This end's address, TCP or Unix ([`Transport::sockname`]).
    pub fn sockname(&self) -> Option<Address> {
        self.transport.sockname()
    }

    /// The peer's IP address and port ([`Transport::peer_addr`]); `None` for Unix.
    pub fn peer_addr(&self) -> Option<SocketAddr> {
        self.transport.peer_addr()
    }

    /// This end's IP address and port ([`Transport::local_addr`]); `None` for Unix.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.transport.local_addr()
    }
}

impl Drop for StreamWriter {
    /// [`close`](StreamWriter::close).
    fn drop(&mut self) {
        self.transport.close();
    }
}

#[cfg(feature = "futures-io")]
mod futures_io_impls {
    use std::io;
    use std::pin::Pin;
    use std::task::{Context, Poll};

    use super::{register, StreamWriter};

    impl futures_io::AsyncWrite for StreamWriter {
        /// [`write`](StreamWriter::write) all of `buf` (`Ok(buf.len())`), except while the
        /// transport's buffer is above its high-water mark: `Pending` until it drains.
        fn poll_write(
            self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<io::Result<usize>> {
            let this = self.get_mut();
            if let Some(error) = this.reader.exception() {
                return Poll::Ready(Err(error));
            }
            if this.flow.paused.get() && !this.flow.lost.get() {
                register(&this.flow.drain_waiters, cx);
                return Poll::Pending;
            }
            this.write(buf)?;
            Poll::Ready(Ok(buf.len()))
        }

        /// [`drain`](StreamWriter::drain).
        fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            let this = self.get_mut();
            let mut state = std::mem::take(&mut this.flush);
            let polled = this.poll_drain(cx, &mut state);
            if polled.is_pending() {
                this.flush = state;
            }
            polled
        }

        /// [`drain`](StreamWriter::drain), then [`write_eof`](StreamWriter::write_eof) (or
        /// [`close`](StreamWriter::close) where there is no end of stream to send): the
        /// buffered bytes go out, then the peer reads its end; reading goes on.
        fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            if self.transport.is_closing() {
                return Poll::Ready(Ok(()));
            }
            if let Err(e) = std::task::ready!(self.as_mut().poll_flush(cx)) {
                return Poll::Ready(Err(e));
            }
            if self.can_write_eof() {
                self.write_eof();
            } else {
                self.close();
            }
            Poll::Ready(Ok(()))
        }
    }
}
