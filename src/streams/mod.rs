//! Streams (asyncio's `asyncio.streams`): a connection as a [`StreamReader`] and a
//! [`StreamWriter`], read and written with `async` methods rather than protocol callbacks.
//!
//! [`open_connection`] connects and returns both; [`start_server`] listens and runs its
//! `client_connected` callback's future as a task of its own for each connection. The Unix
//! socket variants are [`open_unix_connection`] and [`start_unix_server`]. They are built on
//! the loop's transports and protocols: the protocol between them (asyncio's
//! `StreamReaderProtocol`) feeds the reader, which pauses the transport's reading when its
//! buffer passes twice its limit, and tells the writer when the transport's buffer crosses its
//! water marks, which is what [`StreamWriter::drain`] waits for.
//!
//! An echo server for lines, and a client of it:
//!
//! ```
//! use tulip::streams::{open_connection, start_server, StreamReader, StreamWriter};
//!
//! async fn echo(mut reader: StreamReader, writer: StreamWriter) -> std::io::Result<()> {
//!     loop {
//!         let line = reader.readline().await?;
//!         if line.is_empty() {
//!             writer.close();
//!             return writer.wait_closed().await;
//!         }
//!         writer.write(&line)?;
//!         writer.drain().await?;
//!     }
//! }
//!
//! let lp = tulip::EventLoop::new()?;
//! lp.run_until_complete(async {
//!     let server = start_server(echo, "127.0.0.1:0").await?;
//!     let (mut reader, writer) = open_connection(server.local_addr()?).await?;
//!     writer.write(b"hello\n")?;
//!     assert_eq!(reader.readline().await?, b"hello\n");
//!     writer.write_eof();
//!     assert_eq!(reader.read_to_eof().await?, b"");
//!     server.close();
//!     Ok::<(), std::io::Error>(())
//! })??;
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! Errors are [`io::Error`]s; the two that carry data, asyncio's `IncompleteReadError` and
//! `LimitOverrunError`, are [`IncompleteReadError`] and [`LimitOverrunError`], inside errors of
//! kind `UnexpectedEof` and `InvalidData`.
//!
//! With the `futures-io` feature, [`StreamReader`] implements `futures_io::AsyncRead` and
//! `AsyncBufRead`, and [`StreamWriter`] `AsyncWrite`.

mod error;
mod protocol;
mod reader;
mod writer;

use std::cell::RefCell;
use std::future::Future as StdFuture;
use std::io;
use std::net::ToSocketAddrs;
use std::os::fd::OwnedFd;
use std::path::Path;
use std::rc::Rc;

pub use error::{IncompleteReadError, LimitOverrunError};
pub use reader::{StreamFeeder, StreamReader};
pub use writer::StreamWriter;

use protocol::StreamProtocol;

use crate::{get_running_loop, EventLoop, Server, TaskOutput};

/// A reader's default limit: 64 KiB (asyncio's `_DEFAULT_LIMIT`).
pub const DEFAULT_LIMIT: usize = 64 * 1024;

/// How the streams of a connection are made: the reader's [`limit`](Self::limit) (asyncio's
/// `limit=` argument of `open_connection`, `start_server` and their Unix variants).
///
/// ```
/// use tulip::streams::StreamOptions;
///
/// let options = StreamOptions::new().limit(1024);
/// assert_eq!(options.get_limit(), 1024);
/// assert_eq!(StreamOptions::default().get_limit(), tulip::streams::DEFAULT_LIMIT);
/// ```
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct StreamOptions {
    limit: usize,
}

impl Default for StreamOptions {
    fn default() -> StreamOptions {
        StreamOptions {
            limit: DEFAULT_LIMIT,
        }
    }
}

impl StreamOptions {
    /// The defaults: a limit of [`DEFAULT_LIMIT`] (64 KiB).
    pub fn new() -> StreamOptions {
        StreamOptions::default()
    }

    /// The reader's buffer limit in bytes (see [`StreamReader`]); 0 is refused with
    /// `InvalidInput` by the function that takes these options (asyncio's `ValueError`).
    pub fn limit(mut self, limit: usize) -> StreamOptions {
        self.limit = limit;
        self
    }

    /// The limit set (or the default).
    pub fn get_limit(&self) -> usize {
        self.limit
    }

    /// The options checked: `InvalidInput` for a limit of 0.
    pub(crate) fn check(&self) -> io::Result<()> {
        reader::check_limit(self.limit)
    }
}

/// Connect to `addr` over TCP and return the connection's reader and writer (asyncio's
/// `open_connection`), with the default limit ([`open_connection_with`] takes another). Call
/// it from a task of the running loop. A host name is resolved on the loop's blocking pool
/// (see [`Endpoint`](crate::net::Endpoint)).
///
/// # Errors
/// As [`EventLoop::create_connection`]: the connection's (`ConnectionRefused`, ...), the
/// resolver's, [`LoopError::NoRunningLoop`](crate::LoopError::NoRunningLoop).
pub async fn open_connection(
    addr: impl Into<crate::net::Endpoint>,
) -> io::Result<(StreamReader, StreamWriter)> {
    open_connection_with(addr, StreamOptions::new()).await
}

/// [`open_connection`] with `options` (asyncio's `open_connection(host, port, limit=...)`).
///
/// # Errors
/// As [`open_connection`]; `InvalidInput` for a limit of 0, before connecting.
pub async fn open_connection_with(
    addr: impl Into<crate::net::Endpoint>,
    options: StreamOptions,
) -> io::Result<(StreamReader, StreamWriter)> {
    options.check()?;
    let lp = get_running_loop()?;
    let (transport, protocol) = lp.create_connection(client(options), addr).await?;
    let streams = protocol.borrow().streams(transport);
    Ok(streams)
}

/// [`open_connection`] to the Unix stream socket at `path` (asyncio's
/// `open_unix_connection`).
///
/// # Errors
/// As [`EventLoop::create_unix_connection`]: `NotFound`, `ConnectionRefused`,
/// [`LoopError::NoRunningLoop`](crate::LoopError::NoRunningLoop).
pub async fn open_unix_connection(
    path: impl AsRef<Path>,
) -> io::Result<(StreamReader, StreamWriter)> {
    open_unix_connection_with(path, StreamOptions::new()).await
}

/// [`open_unix_connection`] with `options` (asyncio's `open_unix_connection(path,
/// limit=...)`).
///
/// # Errors
/// As [`open_unix_connection`]; `InvalidInput` for a limit of 0, before connecting.
pub async fn open_unix_connection_with(
    path: impl AsRef<Path>,
    options: StreamOptions,
) -> io::Result<(StreamReader, StreamWriter)> {
    options.check()?;
    let lp = get_running_loop()?;
    let (transport, protocol) = lp.create_unix_connection(client(options), path).await?;
    let streams = protocol.borrow().streams(transport);
    Ok(streams)
}

/// A [`StreamReader`] over the reading end of a pipe (or a FIFO, or a character device such
/// as a terminal), on `lp`: asyncio's `connect_read_pipe` with a `StreamReaderProtocol`. The
/// reader owns the fd from now on (it is made non-blocking) and reads until the writing end
/// closes, which is its end of stream.
///
/// ```
/// use tulip::streams::{open_read_pipe, open_write_pipe, StreamOptions};
///
/// let lp = tulip::EventLoop::new()?;
/// let (read_end, write_end) = tulip::selectors::fd::pipe()?;
/// let mut reader = open_read_pipe(&lp, read_end, StreamOptions::new())?;
/// let writer = open_write_pipe(&lp, write_end)?;
/// let line = lp.run_until_complete(async move {
///     writer.write(b"through the pipe\n")?;
///     writer.drain().await?;
///     drop(writer); // the end of stream, for the reader
///     let line = reader.readline().await?;
///     assert!(reader.read_to_eof().await?.is_empty());
///     Ok::<_, std::io::Error>(line)
/// })??;
/// assert_eq!(line, b"through the pipe\n");
/// # Ok::<(), std::io::Error>(())
/// ```
///
/// # Errors
/// `InvalidInput` for a bad [`StreamOptions::limit`], or for a regular file or a directory
/// (asyncio's `ValueError`); [`LoopError::Closed`](crate::LoopError::Closed); the kernel's if
/// the fd cannot be made non-blocking or registered.
pub fn open_read_pipe(
    lp: &EventLoop,
    pipe: OwnedFd,
    options: StreamOptions,
) -> io::Result<StreamReader> {
    options.check()?;
    let (_transport, protocol) = lp.connect_read_pipe(client(options), pipe)?;
    let reader = protocol.borrow().reader();
    Ok(reader)
}

/// A [`StreamWriter`] over the writing end of a pipe (or a FIFO, or a character device), on
/// `lp`: asyncio's `connect_write_pipe` with a `StreamReaderProtocol`. The writer owns the fd
/// from now on; dropping or closing it closes the fd, which the reading end sees as its end of
/// stream. See [`open_read_pipe`] for an example.
///
/// # Errors
/// As [`open_read_pipe`].
pub fn open_write_pipe(lp: &EventLoop, pipe: OwnedFd) -> io::Result<StreamWriter> {
    let (transport, protocol) = lp.connect_write_pipe(client(StreamOptions::new()), pipe)?;
    let (_reader, writer) = protocol.borrow().streams(transport);
    Ok(writer)
}

/// [`open_read_pipe`] for a child's stdout or stderr, with `limit`.
pub(crate) fn pipe_reader(lp: &EventLoop, pipe: OwnedFd, limit: usize) -> io::Result<StreamReader> {
    open_read_pipe(lp, pipe, StreamOptions::new().limit(limit))
}

/// [`open_write_pipe`] for a child's stdin.
pub(crate) fn pipe_writer(lp: &EventLoop, pipe: OwnedFd) -> io::Result<StreamWriter> {
    open_write_pipe(lp, pipe)
}

/// The protocol factory of a client's streams.
fn client(options: StreamOptions) -> impl FnMut() -> StreamProtocol {
    move || StreamProtocol::new(options.limit, None)
}

/// Listen on `addr` over TCP (as [`EventLoop::create_server`]) and, for each connection, run
/// `client_connected(reader, writer)`'s future as a task of its own (asyncio's
/// `start_server`), the readers with the default limit ([`start_server_with`] takes another).
/// Call it from a task of the running loop; the server serves while the loop runs, until
/// [`Server::close`] (connections already made go on).
///
/// A task that ends in a failure (an `Err`, or a panic) is reported to the loop's exception
/// handler; its writer, dropped, closes the connection. The connection closes too when the
/// task ends well, unless the task handed its writer on.
///
/// # Errors
/// As [`EventLoop::create_server`]: `AddrInUse`, ...,
/// [`LoopError::NoRunningLoop`](crate::LoopError::NoRunningLoop).
pub async fn start_server<F, Fut>(
    client_connected: F,
    addr: impl ToSocketAddrs,
) -> io::Result<Server>
where
    F: FnMut(StreamReader, StreamWriter) -> Fut + 'static,
    Fut: StdFuture + 'static,
    Fut::Output: TaskOutput,
{
    start_server_with(client_connected, addr, StreamOptions::new()).await
}

/// [`start_server`] with `options` for every connection's streams (asyncio's
/// `start_server(client_connected_cb, host, port, limit=...)`).
///
/// # Errors
/// As [`start_server`]; `InvalidInput` for a limit of 0, before listening.
pub async fn start_server_with<F, Fut>(
    client_connected: F,
    addr: impl ToSocketAddrs,
    options: StreamOptions,
) -> io::Result<Server>
where
    F: FnMut(StreamReader, StreamWriter) -> Fut + 'static,
    Fut: StdFuture + 'static,
    Fut::Output: TaskOutput,
{
    options.check()?;
    let lp = get_running_loop()?;
    lp.create_server(server_protocols(&lp, client_connected, options), addr)
}

/// [`start_server`] on a Unix stream socket bound to `path`, which must not exist yet
/// (asyncio's `start_unix_server`); as with [`EventLoop::create_unix_server`], the server's
/// close removes its socket file.
///
/// # Errors
/// As [`EventLoop::create_unix_server`]: `AddrInUse` if `path` exists, ...,
/// [`LoopError::NoRunningLoop`](crate::LoopError::NoRunningLoop).
pub async fn start_unix_server<F, Fut>(
    client_connected: F,
    path: impl AsRef<Path>,
) -> io::Result<Server>
where
    F: FnMut(StreamReader, StreamWriter) -> Fut + 'static,
    Fut: StdFuture + 'static,
    Fut::Output: TaskOutput,
{
    start_unix_server_with(client_connected, path, StreamOptions::new()).await
}

/// [`start_unix_server`] with `options` for every connection's streams (asyncio's
/// `start_unix_server(client_connected_cb, path, limit=...)`).
///
/// # Errors
/// As [`start_unix_server`]; `InvalidInput` for a limit of 0, before binding.
pub async fn start_unix_server_with<F, Fut>(
    client_connected: F,
    path: impl AsRef<Path>,
    options: StreamOptions,
) -> io::Result<Server>
where
    F: FnMut(StreamReader, StreamWriter) -> Fut + 'static,
    Fut: StdFuture + 'static,
    Fut::Output: TaskOutput,
{
    options.check()?;
    let lp = get_running_loop()?;
    lp.create_unix_server(server_protocols(&lp, client_connected, options), path)
}

/// The protocol factory of a stream server: each protocol starts `client_connected`'s task
/// once its connection is made.
fn server_protocols<F, Fut>(
    lp: &EventLoop,
    client_connected: F,
    options: StreamOptions,
) -> impl FnMut() -> StreamProtocol
where
    F: FnMut(StreamReader, StreamWriter) -> Fut + 'static,
    Fut: StdFuture + 'static,
    Fut::Output: TaskOutput,
{
    let client_connected = Rc::new(RefCell::new(client_connected));
    let lp = lp.downgrade();
    move || {
        let client_connected = Rc::clone(&client_connected);
        let lp = lp.clone();
        let on_connected = move |reader: StreamReader, writer: StreamWriter| {
            let Some(lp) = lp.upgrade() else {
                return;
            };
            // Never borrowed elsewhere: the callback is called here alone, and it cannot make
            // a connection synchronously. If it were, the streams are dropped, closing it.
            let Ok(mut client_connected) = client_connected.try_borrow_mut() else {
                return;
            };
            let task = lp.create_task((*client_connected)(reader, writer));
            // Detached: it runs on, and a failure is reported when it ends.
            drop(task);
        };
        StreamProtocol::new(options.limit, Some(Box::new(on_connected)))
    }
}
