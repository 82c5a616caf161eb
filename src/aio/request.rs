//! What one asynchronous file operation is, before and after an engine runs it: checked
//! arguments ([`Request`]) and the future it completes ([`Pending`]).

use std::fs::File;
use std::io;
use std::sync::Arc;

use crate::Future;

/// The most one `read` or `write` moves on Linux (`MAX_RW_COUNT`): a larger length would only
/// come back short, after allocating a buffer that large.
pub(crate) const MAX_LEN: usize = 0x7fff_f000;

/// One operation, its arguments checked: the offset fits an `off_t`, the length `MAX_LEN`.
pub(crate) enum Request {
    Read {
        file: Arc<File>,
        offset: u64,
        len: usize,
        /// The caller's buffer to read into ([`EventLoop::read_into`](crate::EventLoop::read_into)),
        /// `len` being its capacity; `None`: a new one of `len` bytes.
        reuse: Option<Vec<u8>>,
    },
    Write {
        file: Arc<File>,
        offset: u64,
        buf: Vec<u8>,
    },
    Sync {
        file: Arc<File>,
        data_only: bool,
    },
}

impl Request {
    /// `InvalidInput` for an offset past `i64::MAX` (io_uring reads `-1` as "the file
    /// position") or a length past [`MAX_LEN`].
    pub(crate) fn check(&self) -> io::Result<()> {
        let (offset, len) = match self {
            Request::Read { offset, len, .. } => (*offset, *len),
            Request::Write { offset, buf, .. } => (*offset, buf.len()),
            Request::Sync { .. } => return Ok(()),
        };
        if i64::try_from(offset).is_err() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "offset {offset} is past the largest file offset ({})",
                    i64::MAX
                ),
            ));
        }
        if len > MAX_LEN {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("length {len} is past the {MAX_LEN} bytes one read or write can move"),
            ));
        }
        Ok(())
    }
}

/// An empty buffer of `len` bytes' capacity for a read: `reuse` emptied (its capacity is
/// `len`), else a new one, or `OutOfMemory` (rather than the abort of a failed allocation)
/// when the memory cannot be had.
pub(crate) fn read_buffer(len: usize, reuse: Option<Vec<u8>>) -> io::Result<Vec<u8>> {
    if let Some(mut buf) = reuse {
        buf.clear();
        return Ok(buf);
    }
    let mut buf = Vec::new();
    buf.try_reserve_exact(len).map_err(|_| {
        io::Error::new(
            io::ErrorKind::OutOfMemory,
            format!("no memory for a {len}-byte read buffer"),
        )
    })?;
    Ok(buf)
}

/// A finished request taken out of an engine, to complete outside its borrow: its future, the
/// byte count or error, a read's bytes.
pub(crate) type Finished = (Pending, io::Result<usize>, Option<Vec<u8>>);

/// The future a request completes, by kind.
pub(crate) enum Pending {
    Read(Future<Vec<u8>>),
    Write(Future<usize>),
    Sync(Future<()>),
}

impl Pending {
    /// Whether whoever waits has given up (cancelled the future, or dropped the task that
    /// awaited it): the engine may then cancel the operation (io_uring's can; a pool thread
    /// cannot be interrupted).
    #[cfg_attr(not(target_os = "linux"), allow(dead_code))]
    pub(crate) fn cancelled(&self) -> bool {
        match self {
            Pending::Read(f) => f.cancelled(),
            Pending::Write(f) => f.cancelled(),
            Pending::Sync(f) => f.cancelled(),
        }
    }

    /// Complete the future with the engine's `result` (a byte count) and a read's bytes. A
    /// future cancelled meanwhile stays cancelled; the outcome is dropped.
    pub(crate) fn finish(self, result: io::Result<usize>, buf: Option<Vec<u8>>) {
        let _ = match (self, result) {
            (Pending::Read(f), Ok(_)) => f.set_result(buf.unwrap_or_default()),
            (Pending::Write(f), Ok(n)) => f.set_result(n),
            (Pending::Sync(f), Ok(_)) => f.set_result(()),
            (Pending::Read(f), Err(e)) => fail(&f, e),
            (Pending::Write(f), Err(e)) => fail(&f, e),
            (Pending::Sync(f), Err(e)) => fail(&f, e),
        };
    }
}

/// Fail `future` with `error`; a cancelled request (`ECANCELED`) cancels it, so awaiting it
/// says [`LoopError::Cancelled`](crate::LoopError::Cancelled) as for any cancelled future.
fn fail<T: 'static>(future: &Future<T>, error: io::Error) -> io::Result<()> {
    if future.cancelled() {
        return Ok(());
    }
    if error.raw_os_error() == Some(tulip_sys::errno::ECANCELED) {
        future.cancel();
        return Ok(());
    }
    future.set_exception(error)
}
