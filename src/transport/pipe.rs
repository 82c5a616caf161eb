//! Pipe transports (asyncio's `loop.connect_read_pipe` / `loop.connect_write_pipe`): a
//! protocol over one end of a pipe (or any fd the selector can watch: a FIFO, a terminal),
//! driven by the same connection machinery as the sockets, one way only.

use std::any::type_name;
use std::cell::{Cell, RefCell};
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::fs::FileTypeExt;
use std::rc::Rc;
use std::task::{Context, Poll};

use super::socket::{Ends, Socket};
use super::{driver, Address, Protocol, Transport};
use crate::event_loop::Direction;
use crate::net::source::FdKind;
use crate::net::stream::Stream;
use crate::EventLoop;

/// One end of a pipe, as a connection's [`Socket`].
struct PipeEnd {
    stream: Stream<OwnedFd>,
    ends: Ends,
    /// A write end: whether it can be watched for its reader closing (a pipe, a FIFO or a
    /// socket, not a terminal: it is readable when typed into), as asyncio decides.
    can_watch_reader: bool,
    /// A write end: whether its watch for the reader closing has started (see
    /// [`Socket::poll_reader_gone`]).
    watching: Cell<bool>,
}

impl Socket for PipeEnd {
    fn try_write(&self, buf: &[u8]) -> io::Result<usize> {
        self.stream.try_write(buf)
    }

    fn poll_read(&self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        self.stream.poll_read(cx, buf)
    }

    fn poll_write(&self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        self.stream.poll_write(cx, buf)
    }

    fn clear_ready(&self, direction: Direction) {
        self.stream.source().clear_ready(direction);
    }

    fn shutdown_write(&self) -> io::Result<()> {
        // Never called: `write_eof` closes a write pipe, and does nothing on a read pipe.
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "a pipe has no half-close",
        ))
    }

    fn peername(&self) -> Option<Address> {
        None
    }

    fn sockname(&self) -> Option<Address> {
        None
    }

    fn ends(&self) -> Ends {
        self.ends
    }

    fn poll_reader_gone(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if !self.can_watch_reader {
            // Never woken for this: writes still fail with EPIPE if the reader goes.
            return Poll::Pending;
        }
        if !self.watching.replace(true) {
            // A source starts out believed ready both ways; this direction is only ever
            // ready when the selector says so.
            self.stream.source().clear_ready(Direction::Read);
        }
        self.stream.source().poll_ready(Direction::Read, cx)
    }
}

impl EventLoop {
    /// Read `pipe` with a protocol made by `protocol_factory` (asyncio's
    /// `loop.connect_read_pipe`): `pipe` is the reading end of a pipe, a FIFO, a terminal or
    /// any fd the selector can watch (not a regular file), made non-blocking here.
    ///
    /// The protocol gets `connection_made`, `data_received`, then `eof_received` at the end
    /// of the stream, after which the transport closes whatever `eof_received` returns (as
    /// in asyncio: nothing can be written on it) and `connection_lost(None)` follows. Its
    /// [`Transport`] refuses writes (`Unsupported`); `pause_reading`, `resume_reading` and
    /// `close` work as on a socket. Returns once `connection_made` has been called: the
    /// transport, and the protocol (borrow it only briefly).
    ///
    /// A child's stdout converts into an `OwnedFd` (`OwnedFd::from(child.stdout.take()?)`).
    ///
    /// # Errors
    /// `InvalidInput` for a regular file or a directory (asyncio's `ValueError`);
    /// [`LoopError::Closed`](crate::LoopError::Closed); the kernel's if the fd cannot be
    /// examined or its flags set.
    pub fn connect_read_pipe<P: Protocol>(
        &self,
        protocol_factory: impl FnOnce() -> P,
        pipe: impl Into<OwnedFd>,
    ) -> io::Result<(Transport, Rc<RefCell<P>>)> {
        self.connect_pipe(protocol_factory, pipe.into(), Ends::ReadOnly)
    }

    /// Write `pipe` with a protocol made by `protocol_factory` (asyncio's
    /// `loop.connect_write_pipe`): `pipe` is the writing end of a pipe, a FIFO or a terminal,
    /// made non-blocking here.
    ///
    /// The [`Transport`] buffers writes as a socket's does, with the same water marks and
    /// `pause_writing` / `resume_writing`; [`Transport::write_eof`] closes it once the buffer
    /// is flushed, as [`Transport::close`] does. When the reading end closes,
    /// `connection_lost` says `BrokenPipe` if bytes were still waiting (or a write got
    /// `EPIPE`), `None` if nothing was: the write end of a pipe, FIFO or socket is watched for
    /// readability, which it gets only then, as asyncio does (not a terminal's, which is
    /// readable when typed into: there only a write's `EPIPE` tells). Writes never raise
    /// `SIGPIPE`.
    ///
    /// # Errors
    /// `InvalidInput` for a regular file or a directory (asyncio's `ValueError`);
    /// [`LoopError::Closed`](crate::LoopError::Closed); the kernel's if the fd cannot be
    /// examined or its flags set.
    pub fn connect_write_pipe<P: Protocol>(
        &self,
        protocol_factory: impl FnOnce() -> P,
        pipe: impl Into<OwnedFd>,
    ) -> io::Result<(Transport, Rc<RefCell<P>>)> {
        self.connect_pipe(protocol_factory, pipe.into(), Ends::WriteOnly)
    }

    fn connect_pipe<P: Protocol>(
        &self,
        protocol_factory: impl FnOnce() -> P,
        pipe: OwnedFd,
        ends: Ends,
    ) -> io::Result<(Transport, Rc<RefCell<P>>)> {
        self.check_open()?;
        // What the fd is: only a pipe's (or a socket's) write end is readable just when its
        // reader is gone.
        let file = std::fs::File::from(pipe);
        let file_type = file.metadata()?.file_type();
        let can_watch_reader = file_type.is_fifo() || file_type.is_socket();
        if !can_watch_reader && !file_type.is_char_device() {
            // asyncio's ValueError: a regular file or a directory is always "ready".
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "a pipe transport is for pipes, sockets and character devices only",
            ));
        }
        let pipe = OwnedFd::from(file);
        // Level-triggered: the fd may be of any type (a terminal stops a read at a line).
        let stream = Stream::new(pipe, FdKind::Adopted)?;
        let end = PipeEnd {
            stream,
            ends,
            can_watch_reader,
            watching: Cell::new(false),
        };
        let protocol = Rc::new(RefCell::new(protocol_factory()));
        let transport = driver::start(self, end, protocol.clone(), type_name::<P>());
        Ok((transport, protocol))
    }
}
