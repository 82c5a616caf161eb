//! The task behind each connection: a hand-written future that owns the [`Connection`] (the
//! only strong reference to it) and moves bytes between the socket and the protocol.
//!
//! Each poll, in this order, until nothing can go on:
//! 1. deliver a pause or resume the protocol was too busy to get before;
//! 2. an abort (or a fatal error) ends the connection at once;
//! 3. flush the write buffer as far as the kernel takes it, then send a requested end of
//!    stream; a closing connection whose buffer is empty ends;
//! 4. read (if reading is on), hand the bytes to `data_received`, and go round again, since
//!    the callback may have written, closed or paused. The loop's per-step budget (`task/budget.rs`)
//!    bounds how long one connection keeps reading before the others get their turn.
//!
//! When the future completes the connection is dropped, which unregisters and closes the
//! socket; if the loop closes first, the task's future is dropped unfinished, with the same
//! effect (and no `connection_lost`).

use std::cell::{Cell, RefCell};
use std::future::Future as StdFuture;
use std::ops::{Deref, DerefMut};
use std::pin::Pin;
use std::rc::Rc;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use super::connection::{Call, Connection, Phase};
use super::server::Live;
use super::socket::{Ends, Socket};
use super::{Protocol, Transport};
use crate::event_loop::Direction;
use crate::EventLoop;

/// How long a connection (or a datagram endpoint) waits before it looks again at a protocol
/// some task keeps borrowed (the `Rc<RefCell<P>>` of `create_connection`, held across an
/// await).
pub(super) const BUSY_RETRY: Duration = Duration::from_millis(1);

/// The size of the buffer connections read into: one per thread, shared by all of them (a
/// connection holds it only while its `data_received` runs).
const READ_BUFFER_SIZE: usize = 64 * 1024;

thread_local! {
    static READ_BUFFER: Cell<Option<Box<[u8]>>> = const { Cell::new(None) };
}

/// The thread's read buffer, taken out while in use (a nested use makes a second one).
struct ReadBuffer(Option<Box<[u8]>>);

impl ReadBuffer {
    fn take() -> ReadBuffer {
        let buffer = READ_BUFFER.try_with(Cell::take).ok().flatten();
        ReadBuffer(Some(
            buffer.unwrap_or_else(|| vec![0; READ_BUFFER_SIZE].into_boxed_slice()),
        ))
    }
}

impl Deref for ReadBuffer {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        self.0
            .as_deref()
            .expect("a ReadBuffer holds its buffer until dropped")
    }
}

impl DerefMut for ReadBuffer {
    fn deref_mut(&mut self) -> &mut [u8] {
        self.0
            .as_deref_mut()
            .expect("a ReadBuffer holds its buffer until dropped")
    }
}

impl Drop for ReadBuffer {
    fn drop(&mut self) {
        let buffer = self.0.take();
        let _ = READ_BUFFER.try_with(|b| b.set(buffer));
    }
}

/// Make a connection of `protocol` over `socket` on `lp`: call `connection_made`, then
/// start the connection's task (detached). Returns the protocol's transport.
pub(crate) fn start<S: Socket + 'static>(
    lp: &EventLoop,
    socket: S,
    protocol: Rc<RefCell<dyn Protocol>>,
    protocol_name: &'static str,
) -> Transport {
    start_guarded(lp, socket, protocol, protocol_name, None)
}

/// [`start`], with `guard` dropped when the connection's task ends (or is dropped unfinished):
/// how a server counts its live connections.
pub(crate) fn start_guarded<S: Socket + 'static>(
    lp: &EventLoop,
    socket: S,
    protocol: Rc<RefCell<dyn Protocol>>,
    protocol_name: &'static str,
    guard: Option<Live>,
) -> Transport {
    let conn = Connection::new(lp, socket, protocol, protocol_name);
    let transport = Transport {
        conn: Rc::downgrade(&conn),
    };
    let made = transport.clone();
    conn.callback("connection_made", move |p| p.connection_made(made));
    drop(lp.create_task(Driver {
        conn,
        _guard: guard,
    }));
    transport
}

/// `Ready` if `protocol` is free; else `Pending`, the task woken again after [`BUSY_RETRY`]:
/// some task holds the protocol across an await. Not woken at once: the loop would never sleep
/// while the borrow lasts.
pub(super) fn poll_protocol_free<T: ?Sized>(
    protocol: &RefCell<T>,
    cx: &mut Context<'_>,
) -> Poll<()> {
    if protocol.try_borrow_mut().is_ok() {
        return Poll::Ready(());
    }
    wake_later(cx, BUSY_RETRY);
    Poll::Pending
}

/// Wake the polling task after `delay`, by a timer on the running loop (at once if there is
/// none, or it is closed).
pub(super) fn wake_later(cx: &mut Context<'_>, delay: Duration) {
    let waker = cx.waker().clone();
    let retry = crate::event_loop::with_running_loop(|lp| {
        lp.call_later(delay, move |_| waker.wake()).map(drop)
    });
    if !matches!(retry, Ok(Ok(()))) {
        cx.waker().wake_by_ref();
    }
}

/// The future of a connection's task (see the module doc).
struct Driver {
    conn: Rc<Connection>,
    /// Dropped with the task's coroutine, once the connection ended.
    _guard: Option<Live>,
}

/// Marks the connection as being polled, until dropped.
struct Polling<'a>(&'a Connection);

impl Drop for Polling<'_> {
    fn drop(&mut self) {
        self.0.polling.set(false);
    }
}

impl StdFuture for Driver {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let conn = &*self.conn;
        ready!(poll_protocol_free(&conn.protocol, cx));
        {
            let mut waker = conn.waker.borrow_mut();
            if !waker.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                *waker = Some(cx.waker().clone());
            }
        }
        conn.polling.set(true);
        let _polling = Polling(conn);
        loop {
            conn.deliver_flow_control();
            if conn.phase.get() == Phase::Aborting {
                return finish(conn);
            }
            let flushed = poll_flush(conn, cx).is_ready();
            match conn.phase.get() {
                Phase::Aborting => continue,
                Phase::Closing if flushed => return finish(conn),
                _ => {}
            }
            if conn.socket.ends() == Ends::WriteOnly {
                if poll_reader_gone(conn, cx).is_pending() {
                    return Poll::Pending;
                }
                continue;
            }
            if !conn.wants_to_read() || poll_receive(conn, cx).is_pending() {
                return Poll::Pending;
            }
        }
    }
}

/// Write the buffer until it is empty (`Ready`, after sending a requested end of stream) or
/// the kernel takes no more (`Pending`, the waker registered). A write error fails the
/// connection (`Ready`).
fn poll_flush(conn: &Connection, cx: &mut Context<'_>) -> Poll<()> {
    while conn.phase.get() != Phase::Aborting {
        let buffer = conn.buffer.borrow();
        let (front, _) = buffer.as_slices();
        if front.is_empty() {
            drop(buffer);
            if conn.eof_requested.get() && !conn.eof_sent.get() {
                conn.send_eof();
            }
            break;
        }
        let wanted = front.len();
        let written = conn.socket.poll_write(cx, front);
        drop(buffer);
        match written {
            Poll::Ready(Ok(n)) => {
                if n < wanted {
                    conn.socket.clear_ready(Direction::Write);
                }
                // May resume the protocol, which may write, close or abort: checked above.
                conn.consume(n);
            }
            Poll::Ready(Err(e)) => conn.fail(e),
            Poll::Pending => return Poll::Pending,
        }
    }
    Poll::Ready(())
}

/// One read: its bytes to `data_received`, or the end of stream to `eof_received` (closing
/// unless the protocol keeps it open), or its error to fail the connection: `Ready`, the
/// state may have changed. `Pending` (the waker registered) if nothing is there.
fn poll_receive(conn: &Connection, cx: &mut Context<'_>) -> Poll<()> {
    let buffered = conn
        .protocol
        .try_borrow_mut()
        .is_ok_and(|mut p| p.as_buffered().is_some());
    if buffered {
        return poll_receive_buffered(conn, cx);
    }
    let mut buffer = ReadBuffer::take();
    let n = match conn.socket.poll_read(cx, &mut buffer) {
        Poll::Pending => return Poll::Pending,
        Poll::Ready(Err(e)) => {
            conn.fail(e);
            return Poll::Ready(());
        }
        Poll::Ready(Ok(n)) => n,
    };
    if n == 0 {
        drop(buffer);
        end_of_stream(conn);
        return Poll::Ready(());
    }
    if n < buffer.len() {
        // The kernel gave all it had.
        conn.socket.clear_ready(Direction::Read);
    }
    conn.callback("data_received", |p| p.data_received(&buffer[..n]));
    Poll::Ready(())
}

/// The peer ended its stream: `eof_received`, then the close unless the protocol keeps the
/// connection open. A read pipe closes at its end of stream whatever the protocol says, as in
/// asyncio: nothing can be written on it.
fn end_of_stream(conn: &Connection) {
    conn.eof_received.set(true);
    let mut keep_open = false;
    conn.callback("eof_received", |p| keep_open = p.eof_received());
    if !keep_open || conn.socket.ends() == Ends::ReadOnly {
        conn.close();
    }
}

/// [`poll_receive`] for a [`BufferedProtocol`](super::BufferedProtocol): read straight into
/// the buffer its `get_buffer` lends, then tell it with `buffer_updated`.
fn poll_receive_buffered(conn: &Connection, cx: &mut Context<'_>) -> Poll<()> {
    let mut read = None;
    let called = conn.call("get_buffer", |p| {
        let Some(p) = p.as_buffered() else { return };
        let buf = p.get_buffer(READ_BUFFER_SIZE);
        if buf.is_empty() {
            read = Some(Poll::Ready(Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "get_buffer() returned an empty buffer",
            ))));
            return;
        }
        let len = buf.len();
        read = Some(conn.socket.poll_read(cx, buf).map_ok(|n| (n, len)));
    });
    let read = match (called, read) {
        (Call::Returned, Some(read)) => read,
        (Call::Busy, _) => {
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        _ => return Poll::Ready(()),
    };
    let (n, len) = match read {
        Poll::Pending => return Poll::Pending,
        Poll::Ready(Err(e)) => {
            conn.fail(e);
            return Poll::Ready(());
        }
        Poll::Ready(Ok(read)) => read,
    };
    if n == 0 {
        end_of_stream(conn);
        return Poll::Ready(());
    }
    if n < len {
        conn.socket.clear_ready(Direction::Read);
    }
    conn.callback("buffer_updated", |p| {
        if let Some(p) = p.as_buffered() {
            p.buffer_updated(n);
        }
    });
    Poll::Ready(())
}

/// A write pipe's watch for its reader closing (asyncio's `_UnixWritePipeTransport` does the
/// same): the write end is watched for readability, which it gets only when the reading end
/// closes (the selectors report the pipe's error condition as readable). `Pending` until then;
/// then the connection ends: `BrokenPipe` if bytes were still buffered, cleanly otherwise.
fn poll_reader_gone(conn: &Connection, cx: &mut Context<'_>) -> Poll<()> {
    if !matches!(conn.phase.get(), Phase::Open | Phase::Closing) {
        return Poll::Ready(());
    }
    match conn.socket.poll_reader_gone(cx) {
        Poll::Pending => return Poll::Pending,
        Poll::Ready(Err(e)) => conn.fail(e),
        Poll::Ready(Ok(())) if !conn.buffer.borrow().is_empty() => conn.fail(std::io::Error::new(
            std::io::ErrorKind::BrokenPipe,
            "the pipe's reader closed",
        )),
        Poll::Ready(Ok(())) => conn.abort(),
    }
    Poll::Ready(())
}

/// End the connection: drop the buffer, call `connection_lost` with the first error (if
/// any), and complete (the socket closes as the connection is dropped).
fn finish(conn: &Connection) -> Poll<()> {
    let error = conn.error.borrow_mut().take();
    conn.phase.set(Phase::Closed);
    conn.wake_sendfile();
    let buffer = conn.buffer.take();
    drop(buffer);
    // The protocol is free: the poll checked it, and callbacks cannot keep it borrowed.
    conn.call("connection_lost", move |p| p.connection_lost(error));
    Poll::Ready(())
}
