//! [`Protocol`]: what a connection tells its user, asyncio's `asyncio.Protocol`.

use std::io;

use super::Transport;

/// The callbacks of one connection (asyncio's `Protocol`): a [`Transport`] calls them as
/// bytes arrive, the peer ends its stream, the write buffer fills and drains, and the
/// connection ends.
///
/// They run on the loop's thread, one at a time and never re-entered: a callback that calls
/// the transport (a `write` in `data_received`, a `close` in `eof_received`) gets the effect
/// after it returns. The order is fixed: `connection_made` once, then any number of
/// `data_received` (and of `pause_writing` / `resume_writing`, strictly alternating and
/// starting with a pause), at most one `eof_received`, and `connection_lost` once, last.
///
/// A panic in a callback goes to the loop's exception handler (see
/// [`EventLoop::set_exception_handler`](crate::EventLoop::set_exception_handler)) and aborts
/// that connection alone: `connection_lost` follows with an error (unless it was
/// `connection_lost` that panicked).
///
/// The transport calls the protocol through a `RefCell`: a protocol borrowed elsewhere (its
/// `Rc<RefCell<P>>` held across an `.await` by a task) delays every callback until the borrow
/// ends; meanwhile the connection looks again every millisecond.
pub trait Protocol: 'static {
    /// The connection is up: called first, once. Keep `transport` (a cheap, weak handle) to
    /// write and close later.
    fn connection_made(&mut self, transport: Transport) {
        let _ = transport;
    }

    /// Bytes from the peer, as they came: how a stream is cut into calls means nothing.
    fn data_received(&mut self, data: &[u8]);

    /// The peer ended its stream (it will send nothing more). Return false (the default) to
    /// have the transport close itself (after flushing what is buffered); true to keep it
    /// half-open, so that writing goes on until the protocol calls
    /// [`Transport::close`] (or [`Transport::write_eof`] to end its side too).
    fn eof_received(&mut self) -> bool {
        false
    }

    /// The connection ended: called last, exactly once. `None` for a clean end (a `close`
    /// that flushed, an `abort`, or the peer's end of stream followed by the transport's
    /// close); `Some(error)` if it failed (`ConnectionReset`, `BrokenPipe`, or a panic of
    /// this protocol, as `Other`).
    ///
    /// Not called if the loop closes with the connection still open: the connection's task is
    /// dropped then, closing the socket and dropping the protocol (asyncio's transports are
    /// likewise just left to the garbage collector).
    fn connection_lost(&mut self, error: Option<io::Error>) {
        let _ = error;
    }

    /// The write buffer went above its high-water mark (see
    /// [`Transport::set_write_buffer_limits`]): stop writing (and, for a relay, stop reading
    /// the source of the data) until [`resume_writing`](Self::resume_writing). Writes meanwhile
    /// are still buffered, without limit.
    fn pause_writing(&mut self) {}

    /// The write buffer drained to its low-water mark after a
    /// [`pause_writing`](Self::pause_writing).
    fn resume_writing(&mut self) {}

    /// The [`BufferedProtocol`] inside, for [`Buffered`]: the transport then reads into its
    /// buffer instead of calling [`data_received`](Self::data_received). Leave it as is.
    #[doc(hidden)]
    fn as_buffered(&mut self) -> Option<&mut dyn BufferedProtocol> {
        None
    }
}

/// asyncio's `BufferedProtocol`: a protocol that lends the transport its own buffer, so that
/// bytes are read straight into it, with no copy per read. Run one by wrapping it in
/// [`Buffered`], which is a [`Protocol`]: `create_connection`, `create_server`,
/// `connect_accepted_socket` and the rest take it as any other.
///
/// For each read the transport calls [`get_buffer`](Self::get_buffer), reads into what it
/// returns, then calls [`buffer_updated`](Self::buffer_updated) with the count. The other
/// callbacks, their order and the panic rule are [`Protocol`]'s. An empty buffer from
/// `get_buffer` aborts the connection: `connection_lost` gets an `InvalidInput` error (asyncio
/// reports a `RuntimeError` and aborts too).
pub trait BufferedProtocol: 'static {
    /// As [`Protocol::connection_made`].
    fn connection_made(&mut self, transport: Transport) {
        let _ = transport;
    }

    /// The buffer the next read goes into; `sizehint` is how much the transport would like
    /// room for (its read size, 64 KiB), a hint only: any non-empty buffer will do.
    fn get_buffer(&mut self, sizehint: usize) -> &mut [u8];

    /// `nbytes` (never 0) were read into the start of the buffer the last
    /// [`get_buffer`](Self::get_buffer) returned.
    fn buffer_updated(&mut self, nbytes: usize);

    /// As [`Protocol::eof_received`].
    fn eof_received(&mut self) -> bool {
        false
    }

    /// As [`Protocol::connection_lost`].
    fn connection_lost(&mut self, error: Option<io::Error>) {
        let _ = error;
    }

    /// As [`Protocol::pause_writing`].
    fn pause_writing(&mut self) {}

    /// As [`Protocol::resume_writing`].
    fn resume_writing(&mut self) {}
}

/// A [`BufferedProtocol`] run as a [`Protocol`]: the transport reads straight into its
/// buffer. `create_connection(|| Buffered(MyProtocol::new()), addr)`.
#[derive(Debug, Default)]
pub struct Buffered<B>(pub B);

impl<B: BufferedProtocol> Protocol for Buffered<B> {
    fn connection_made(&mut self, transport: Transport) {
        self.0.connection_made(transport);
    }

    /// Not called by tulip's transports (they read into the buffer); given bytes anyway, it
    /// copies them through `get_buffer` / `buffer_updated`.
    fn data_received(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            let buf = self.0.get_buffer(data.len());
            let n = buf.len().min(data.len());
            if n == 0 {
                return;
            }
            buf[..n].copy_from_slice(&data[..n]);
            self.0.buffer_updated(n);
            data = &data[n..];
        }
    }

    fn eof_received(&mut self) -> bool {
        self.0.eof_received()
    }

    fn connection_lost(&mut self, error: Option<io::Error>) {
        self.0.connection_lost(error);
    }

    fn pause_writing(&mut self) {
        self.0.pause_writing();
    }

    fn resume_writing(&mut self) {
        self.0.resume_writing();
    }

    fn as_buffered(&mut self) -> Option<&mut dyn BufferedProtocol> {
        Some(&mut self.0)
    }
}
