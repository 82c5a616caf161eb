//! [`StreamReader`]: asyncio's `StreamReader`, over bytes its protocol feeds it.
//!
//! The bytes come in two places: `Incoming` (shared with the protocol, which appends what
//! the connection delivers) and the reader's own buffer, which it fills from `Incoming`
//! whenever it looks (so that [`AsyncBufRead`](futures_io::AsyncBufRead) can lend a slice of
//! it). Flow control counts both: past twice the limit the transport's reading is paused, and
//! it resumes once the reader has taken enough to be at the limit or below, or waits for more.

use std::cell::{Cell, RefCell};
use std::fmt;
use std::future::poll_fn;
use std::io;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

use super::error::{copy_error, IncompleteReadError, LimitOverrunError};
use super::DEFAULT_LIMIT;
use crate::Transport;

/// A drained buffer keeps at most this much capacity (or the limit's, if larger).
const KEPT_CAPACITY: usize = 64 * 1024;

/// What the protocol (or [`StreamReader::feed_data`]) hands the reader.
pub(super) struct Incoming {
    data: RefCell<Vec<u8>>,
    eof: Cell<bool>,
    exception: RefCell<Option<io::Error>>,
    /// The reading task's waker, while it waits for data.
    waker: RefCell<Option<Waker>>,
    /// Bytes in the reader's own buffer.
    held: Cell<usize>,
    limit: Cell<usize>,
    /// The transport's reading was paused by the reader's flow control.
    paused: Cell<bool>,
    /// The connection's transport, for flow control: set by `connection_made`, cleared by
    /// `connection_lost`.
    pub(super) transport: RefCell<Option<Transport>>,
}

impl Incoming {
    pub(super) fn new(limit: usize) -> Incoming {
        Incoming {
            data: RefCell::new(Vec::new()),
            eof: Cell::new(false),
            exception: RefCell::new(None),
            waker: RefCell::new(None),
            held: Cell::new(0),
            limit: Cell::new(limit),
            paused: Cell::new(false),
            transport: RefCell::new(None),
        }
    }

    fn buffered(&self) -> usize {
        self.held.get() + self.data.borrow().len()
    }

    fn wake(&self) {
        let waker = self.waker.borrow_mut().take();
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    /// asyncio's `feed_data`: buffer `data`, wake the reader, and pause the transport's
    /// reading past twice the limit. Ignored after the end of stream.
    pub(super) fn feed_data(&self, data: &[u8]) {
        if data.is_empty() || self.eof.get() {
            return;
        }
        self.data.borrow_mut().extend_from_slice(data);
        self.wake();
        self.maybe_pause();
    }

    /// Pause the transport's reading past twice the limit.
    fn maybe_pause(&self) {
        if !self.paused.get() && self.buffered() > self.limit.get().saturating_mul(2) {
            if let Some(transport) = &*self.transport.borrow() {
                transport.pause_reading();
                self.paused.set(true);
            }
        }
    }

    pub(super) fn feed_eof(&self) {
        self.eof.set(true);
        self.wake();
    }

    pub(super) fn set_exception(&self, error: io::Error) {
        *self.exception.borrow_mut() = Some(error);
        self.wake();
    }

    pub(super) fn exception(&self) -> Option<io::Error> {
        self.exception.borrow().as_ref().map(copy_error)
    }

    /// asyncio's `_maybe_resume_transport`: resume reading once at the limit or below.
    fn maybe_resume(&self) {
        if self.paused.get() && self.buffered() <= self.limit.get() {
            self.resume();
        }
    }

    fn resume(&self) {
        self.paused.set(false);
        if let Some(transport) = &*self.transport.borrow() {
            transport.resume_reading();
        }
    }

    /// asyncio's `_wait_for_data`: wake `cx` when something comes, reading again meanwhile
    /// if paused (the reader wants more than the buffer holds).
    fn wait(&self, cx: &Context<'_>) {
        let mut waker = self.waker.borrow_mut();
        if !waker.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
            *waker = Some(cx.waker().clone());
        }
        drop(waker);
        if self.paused.get() {
            self.resume();
        }
    }
}

/// The reading half of a stream connection (asyncio's `StreamReader`), from
/// [`open_connection`](super::open_connection) and its kin, or
/// [`start_server`](super::start_server)'s callback.
///
/// Its reads are `async` methods taking `&mut self`, so one task reads at a time (asyncio
/// raises `RuntimeError` when a second coroutine waits meanwhile; here it does not compile).
/// Each is cancel-safe: a read dropped before it completes takes nothing from the buffer.
///
/// Its buffer holds up to [`limit`](Self::limit) bytes for a line or a separator
/// ([`DEFAULT_LIMIT`], 64 KiB, unless set); past twice the limit the connection stops reading
/// until the buffer is back at the limit, or a read waits for more.
///
/// Once the connection failed (`connection_lost` with an error), every read returns a copy of
/// that error at once, even with bytes still buffered, as in asyncio; after a clean end, the
/// buffered bytes are read first, then the end of stream.
///
/// It can also be used on its own, fed with [`feed_data`](Self::feed_data) and
/// [`feed_eof`](Self::feed_eof), as asyncio's can.
///
/// With the `futures-io` feature it is also `futures_io::AsyncRead` and `AsyncBufRead`. The
/// inherent [`read(n)`](Self::read) then hides `AsyncReadExt::read` in method syntax: call
/// that one as `AsyncReadExt::read(&mut reader, &mut buf)`.
pub struct StreamReader {
    pub(super) incoming: Rc<Incoming>,
    /// Bytes taken from `incoming`, from `start` on not yet read.
    buffer: Vec<u8>,
    start: usize,
}

impl Default for StreamReader {
    fn default() -> StreamReader {
        StreamReader::new()
    }
}

impl fmt::Debug for StreamReader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StreamReader")
            .field("buffered", &self.incoming.buffered())
            .field("limit", &self.incoming.limit.get())
            .field("eof", &self.incoming.eof.get())
            .field("paused", &self.incoming.paused.get())
            .field("exception", &*self.incoming.exception.borrow())
            .finish()
    }
}

impl StreamReader {
    /// A reader with no connection and the default limit ([`DEFAULT_LIMIT`]), to be fed with
    /// [`feed_data`](Self::feed_data).
    pub fn new() -> StreamReader {
        StreamReader::from_incoming(Rc::new(Incoming::new(DEFAULT_LIMIT)))
    }

    /// [`new`](Self::new) with a limit of `limit` bytes.
    ///
    /// # Errors
    /// `InvalidInput` for a limit of 0 (asyncio's `ValueError('Limit cannot be <= 0')`).
    pub fn with_limit(limit: usize) -> io::Result<StreamReader> {
        check_limit(limit)?;
        Ok(StreamReader::from_incoming(Rc::new(Incoming::new(limit))))
    }

    pub(super) fn from_incoming(incoming: Rc<Incoming>) -> StreamReader {
        StreamReader {
            incoming,
            buffer: Vec::new(),
            start: 0,
        }
    }

    /// Close the transport that feeds this reader, if any (a subprocess's pipe, when its
    /// `Process` is dropped).
    pub(crate) fn close_transport(&self) {
        let transport = self.incoming.transport.borrow().clone();
        if let Some(transport) = transport {
            transport.close();
        }
    }

    /// The buffer's limit in bytes (asyncio's `limit` argument).
    pub fn limit(&self) -> usize {
        self.incoming.limit.get()
    }

    /// Change the limit (asyncio takes it only when the reader is made, as `open_connection`'s
    /// or `start_server`'s `limit`, which [`StreamOptions`](super::StreamOptions) gives here).
    /// Pauses or resumes the connection's reading as the new limit says.
    ///
    /// # Errors
    /// `InvalidInput` for a limit of 0; nothing changes then.
    pub fn set_limit(&mut self, limit: usize) -> io::Result<()> {
        check_limit(limit)?;
        self.incoming.limit.set(limit);
        self.incoming.maybe_resume();
        self.incoming.maybe_pause();
        Ok(())
    }

    /// Add `data` to the buffer and wake a waiting read (asyncio's `feed_data`; the
    /// connection's protocol calls it for a connected reader). Ignored after
    /// [`feed_eof`](Self::feed_eof) (asyncio asserts it never happens).
    pub fn feed_data(&self, data: &[u8]) {
        self.incoming.feed_data(data);
    }

    /// The stream ended: reads get the buffered bytes, then the end of stream (asyncio's
    /// `feed_eof`).
    pub fn feed_eof(&self) {
        self.incoming.feed_eof();
    }

    /// A handle that feeds this reader while one of its reads waits (the read borrows the
    /// reader itself): asyncio's `feed_data`, `feed_eof` and `set_exception`, called from
    /// another task or a callback, as a protocol of one's own would.
    ///
    /// ```
    /// # let lp = tulip::EventLoop::new()?;
    /// # lp.run_until_complete(async {
    /// let mut reader = tulip::StreamReader::new();
    /// let feeder = reader.feeder();
    /// let lp = tulip::get_running_loop()?;
    /// lp.call_soon(move |_| feeder.feed_data(b"late line\n"))?;
    /// assert_eq!(reader.readline().await?, b"late line\n"); // waits for it
    /// # Ok::<(), std::io::Error>(())
    /// # })??;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn feeder(&self) -> StreamFeeder {
        StreamFeeder {
            incoming: Rc::clone(&self.incoming),
        }
    }

    /// Fail the stream: every read from now on returns (a copy of) `error` (asyncio's
    /// `set_exception`).
    pub fn set_exception(&self, error: io::Error) {
        self.incoming.set_exception(error);
    }

    /// A copy of the error the stream failed with, if it did (asyncio's `exception()`).
    pub fn exception(&self) -> Option<io::Error> {
        self.incoming.exception()
    }

    /// How many bytes are buffered, not read yet (asyncio's `len(reader._buffer)`).
    pub fn buffered(&self) -> usize {
        self.incoming.buffered()
    }

    /// True once the stream ended and every byte was read (asyncio's `at_eof`).
    pub fn at_eof(&self) -> bool {
        self.incoming.eof.get() && self.incoming.buffered() == 0
    }

    /// Move what came in into the reader's own buffer.
    fn absorb(&mut self) {
        let mut data = self.incoming.data.borrow_mut();
        if data.is_empty() {
            return;
        }
        if self.start == self.buffer.len() {
            // Nothing unread: take the incoming bytes whole.
            self.buffer.clear();
            self.start = 0;
            std::mem::swap(&mut self.buffer, &mut *data);
        } else {
            if self.start > 0 && self.start >= self.buffer.len() / 2 {
                self.buffer.drain(..self.start);
                self.start = 0;
            }
            self.buffer.extend_from_slice(&data);
            data.clear();
        }
        drop(data);
        self.incoming.held.set(self.buffer.len() - self.start);
    }

    /// The unread bytes of the reader's own buffer.
    fn unread(&self) -> &[u8] {
        &self.buffer[self.start..]
    }

    /// Mark `n` unread bytes read, and resume the transport if that brought the buffer to the
    /// limit.
    fn consume(&mut self, n: usize) {
        self.start += n.min(self.buffer.len() - self.start);
        if self.start == self.buffer.len() {
            self.buffer.clear();
            self.start = 0;
            if self.buffer.capacity() > KEPT_CAPACITY.max(self.limit()) {
                self.buffer = Vec::new();
            }
        }
        self.incoming.held.set(self.buffer.len() - self.start);
        self.incoming.maybe_resume();
    }

    /// Take `n` unread bytes.
    fn take(&mut self, n: usize) -> Vec<u8> {
        let data = self.unread()[..n].to_vec();
        self.consume(n);
        data
    }

    fn check_exception(&self) -> io::Result<()> {
        match self.incoming.exception() {
            Some(error) => Err(error),
            None => Ok(()),
        }
    }

    /// Up to `n` bytes (asyncio's `read(n)`): what is buffered, up to `n`, or if nothing is,
    /// the next bytes that come; empty at the end of stream, and for `n == 0`.
    ///
    /// # Errors
    /// The connection's error, if it failed.
    pub async fn read(&mut self, n: usize) -> io::Result<Vec<u8>> {
        poll_fn(|cx| self.poll_read_some(cx, n)).await
    }

    fn poll_read_some(&mut self, cx: &mut Context<'_>, n: usize) -> Poll<io::Result<Vec<u8>>> {
        self.check_exception()?;
        if n == 0 {
            return Poll::Ready(Ok(Vec::new()));
        }
        self.absorb();
        let available = self.unread().len();
        if available == 0 && !self.incoming.eof.get() {
            self.incoming.wait(cx);
            return Poll::Pending;
        }
        Poll::Ready(Ok(self.take(available.min(n))))
    }

    /// Every byte until the end of stream (asyncio's `read(-1)`; empty if the stream already
    /// ended).
    ///
    /// # Errors
    /// The connection's error, if it failed (before or while reading).
    pub async fn read_to_eof(&mut self) -> io::Result<Vec<u8>> {
        poll_fn(|cx| {
            self.check_exception()?;
            self.absorb();
            if self.incoming.eof.get() {
                let n = self.unread().len();
                return Poll::Ready(Ok(self.take(n)));
            }
            self.incoming.wait(cx);
            Poll::Pending
        })
        .await
    }

    /// Exactly `n` bytes (asyncio's `readexactly(n)`; empty for `n == 0`).
    ///
    /// # Errors
    /// `UnexpectedEof` carrying an [`IncompleteReadError`] (the bytes there were, taken from
    /// the buffer, and `expected == Some(n)`) if the stream ends first; the connection's
    /// error, if it failed.
    pub async fn readexactly(&mut self, n: usize) -> io::Result<Vec<u8>> {
        poll_fn(|cx| {
            self.check_exception()?;
            if n == 0 {
                return Poll::Ready(Ok(Vec::new()));
            }
            self.absorb();
            let available = self.unread().len();
            if available >= n {
                return Poll::Ready(Ok(self.take(n)));
            }
            if self.incoming.eof.get() {
                let partial = self.take(available);
                return Poll::Ready(Err(IncompleteReadError::new(partial, Some(n)).into()));
            }
            self.incoming.wait(cx);
            Poll::Pending
        })
        .await
    }

    /// A line: the bytes up to and including the next `\n` (asyncio's `readline`). At the
    /// end of stream, what is left without a `\n` (empty once nothing is left).
    ///
    /// # Errors
    /// `InvalidData` carrying a [`LimitOverrunError`] if the line is longer than the limit
    /// (asyncio's `ValueError`): as asyncio does, the reader then drops the line through its
    /// `\n` if that is buffered, else the whole buffer, so the next read starts after it (or
    /// in the middle of the long line); the connection's error, if it failed.
    pub async fn readline(&mut self) -> io::Result<Vec<u8>> {
        match self.readuntil(b"\n").await {
            Ok(line) => Ok(line),
            Err(error) => {
                if let Some(overrun) = LimitOverrunError::of(&error) {
                    let consumed = overrun.consumed();
                    let rest = self.unread().get(consumed..).unwrap_or_default();
                    if rest.starts_with(b"\n") {
                        self.consume(consumed + 1);
                    } else {
                        let n = self.unread().len();
                        self.consume(n);
                    }
                    return Err(error);
                }
                IncompleteReadError::take(error).map(IncompleteReadError::into_partial)
            }
        }
    }

    /// The bytes up to and including the next `separator` (asyncio's `readuntil`).
    ///
    /// # Errors
    /// - `InvalidInput` for an empty separator;
    /// - `UnexpectedEof` carrying an [`IncompleteReadError`] (every buffered byte, taken, and
    ///   `expected == None`) if the stream ends without it;
    /// - `InvalidData` carrying a [`LimitOverrunError`] if the separator is found beyond the
    ///   limit (`consumed` is where it starts) or not found in more than the limit's worth of
    ///   bytes: the bytes stay in the buffer;
    /// - the connection's error, if it failed.
    pub async fn readuntil(&mut self, separator: &[u8]) -> io::Result<Vec<u8>> {
        self.readuntil_any(&[separator]).await
    }

    /// The bytes up to and including the first of `separators` to end in the stream
    /// (asyncio 3.13's `readuntil` with a tuple of separators): the shortest chunk that ends
    /// with any of them. When two end at the same byte (`b"\n"` inside `b"\r\n"`), the
    /// shorter separator is the one that matched, which is what the limit is checked against
    /// (the chunk is the same).
    ///
    /// ```
    /// # let lp = tulip::EventLoop::new()?;
    /// # lp.run_until_complete(async {
    /// let mut reader = tulip::StreamReader::new();
    /// reader.feed_data(b"one\r\ntwo\nthree");
    /// reader.feed_eof();
    /// assert_eq!(reader.readuntil_any(&[b"\r\n", b"\n"]).await?, b"one\r\n");
    /// assert_eq!(reader.readuntil_any(&[b"\r\n", b"\n"]).await?, b"two\n");
    /// # Ok::<(), std::io::Error>(())
    /// # })??;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    ///
    /// # Errors
    /// As [`readuntil`](Self::readuntil); `InvalidInput` also for no separators at all. A
    /// separator not found in more than the limit's worth of bytes is reported with
    /// `consumed` counted as asyncio does, from the longest separator.
    pub async fn readuntil_any(&mut self, separators: &[&[u8]]) -> io::Result<Vec<u8>> {
        if separators.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "readuntil_any needs at least one separator",
            ));
        }
        // Shortest first (a stable sort): among matches ending at the same byte, the first
        // found, the shortest, wins.
        let mut separators = separators.to_vec();
        separators.sort_by_key(|separator| separator.len());
        if separators[0].is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "a separator must be at least one byte",
            ));
        }
        let mut offset = 0;
        poll_fn(|cx| self.poll_readuntil(cx, &separators, &mut offset)).await
    }

    /// One look for the first of `separators` (sorted shortest first, none empty) to end,
    /// from `offset`, the first byte that may still start one (asyncio's search).
    fn poll_readuntil(
        &mut self,
        cx: &mut Context<'_>,
        separators: &[&[u8]],
        offset: &mut usize,
    ) -> Poll<io::Result<Vec<u8>>> {
        self.check_exception()?;
        self.absorb();
        let limit = self.limit();
        let len = self.unread().len();
        let shortest = separators[0].len();
        let longest = separators[separators.len() - 1].len();
        if len >= *offset + shortest {
            // The match that ends first: (start, end).
            let mut found: Option<(usize, usize)> = None;
            for separator in separators {
                if let Some(at) = find(&self.unread()[*offset..], separator) {
                    let (start, end) = (*offset + at, *offset + at + separator.len());
                    match found {
                        Some((_, best)) if best <= end => {}
                        _ => found = Some((start, end)),
                    }
                }
            }
            if let Some((start, end)) = found {
                if start > limit {
                    return Poll::Ready(Err(LimitOverrunError::new(start, true).into()));
                }
                return Poll::Ready(Ok(self.take(end)));
            }
            *offset = (len + 1).saturating_sub(longest);
            if *offset > limit {
                return Poll::Ready(Err(LimitOverrunError::new(*offset, false).into()));
            }
        }
        if self.incoming.eof.get() {
            let partial = self.take(len);
            return Poll::Ready(Err(IncompleteReadError::new(partial, None).into()));
        }
        self.incoming.wait(cx);
        Poll::Pending
    }
}

/// What feeds a [`StreamReader`] while its reads wait, from [`StreamReader::feeder`]: the
/// reader's `feed_data`, `feed_eof` and `set_exception`, on a handle that does not borrow the
/// reader. Cloning it gives another handle to the same reader.
#[derive(Clone)]
pub struct StreamFeeder {
    incoming: Rc<Incoming>,
}

impl fmt::Debug for StreamFeeder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StreamFeeder")
            .field("buffered", &self.incoming.buffered())
            .field("eof", &self.incoming.eof.get())
            .finish()
    }
}

impl StreamFeeder {
    /// [`StreamReader::feed_data`]: buffer `data` and wake a waiting read; ignored after the
    /// end of stream.
    pub fn feed_data(&self, data: &[u8]) {
        self.incoming.feed_data(data);
    }

    /// [`StreamReader::feed_eof`]: end the stream after the buffered bytes.
    pub fn feed_eof(&self) {
        self.incoming.feed_eof();
    }

    /// [`StreamReader::set_exception`]: fail the stream; a waiting read returns (a copy of)
    /// `error`, and so does every later one.
    pub fn set_exception(&self, error: io::Error) {
        self.incoming.set_exception(error);
    }
}

/// Where `needle` (not empty) first occurs in `haystack`.
fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    let (&first, rest) = needle.split_first()?;
    let mut from = 0;
    while from + needle.len() <= haystack.len() {
        let at = from
            + haystack[from..=haystack.len() - needle.len()]
                .iter()
                .position(|&b| b == first)?;
        if haystack[at + 1..at + needle.len()] == *rest {
            return Some(at);
        }
        from = at + 1;
    }
    None
}

pub(super) fn check_limit(limit: usize) -> io::Result<()> {
    if limit == 0 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "a stream's limit must be at least one byte",
        ));
    }
    Ok(())
}

#[cfg(feature = "futures-io")]
mod futures_io_impls {
    use std::io;
    use std::pin::Pin;
    use std::task::{Context, Poll};

    use super::StreamReader;

    impl futures_io::AsyncRead for StreamReader {
        /// [`read(buf.len())`](StreamReader::read), into `buf`: `Ok(0)` at the end of stream
        /// (or for an empty `buf`).
        fn poll_read(
            self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &mut [u8],
        ) -> Poll<io::Result<usize>> {
            let this = self.get_mut();
            this.check_exception()?;
            if buf.is_empty() {
                return Poll::Ready(Ok(0));
            }
            this.absorb();
            let n = this.unread().len().min(buf.len());
            if n == 0 && !this.incoming.eof.get() {
                this.incoming.wait(cx);
                return Poll::Pending;
            }
            buf[..n].copy_from_slice(&this.unread()[..n]);
            this.consume(n);
            Poll::Ready(Ok(n))
        }
    }

    impl futures_io::AsyncBufRead for StreamReader {
        /// The unread bytes of the buffer, waiting for some if there are none (empty at the
        /// end of stream).
        fn poll_fill_buf(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<&[u8]>> {
            let this = self.get_mut();
            this.check_exception()?;
            this.absorb();
            if this.unread().is_empty() && !this.incoming.eof.get() {
                this.incoming.wait(cx);
                return Poll::Pending;
            }
            Poll::Ready(Ok(this.unread()))
        }

        fn consume(self: Pin<&mut Self>, amt: usize) {
            StreamReader::consume(self.get_mut(), amt);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::find;

    #[test]
    fn find_finds_the_first_occurrence() {
        assert_eq!(find(b"abcabc", b"bc"), Some(1));
        assert_eq!(find(b"abcabc", b"cab"), Some(2));
        assert_eq!(find(b"aab", b"ab"), Some(1));
        assert_eq!(find(b"ab", b"abc"), None);
        assert_eq!(find(b"", b"a"), None);
        assert_eq!(find(b"xyz", b"z"), Some(2));
        assert_eq!(find(b"xyz", b""), None);
    }
}
