//! The two errors of a [`StreamReader`](super::StreamReader) that carry data, asyncio's
//! `IncompleteReadError` and `LimitOverrunError`, as payloads of an [`io::Error`].

use std::error::Error;
use std::fmt;
use std::io;

/// The end of stream came before a read was complete (asyncio's `IncompleteReadError`):
/// [`readexactly`](super::StreamReader::readexactly) got fewer bytes than it wanted, or
/// [`readuntil`](super::StreamReader::readuntil) no separator. The bytes read are taken out
/// of the reader's buffer and kept here, in [`partial`](Self::partial).
///
/// It reaches the caller inside an [`io::Error`] of kind
/// [`UnexpectedEof`](io::ErrorKind::UnexpectedEof); [`of`](Self::of) and
/// [`take`](Self::take) get it back:
///
/// ```
/// use tulip::streams::{IncompleteReadError, StreamReader};
///
/// let lp = tulip::EventLoop::new()?;
/// let mut reader = StreamReader::new();
/// reader.feed_data(b"abc");
/// reader.feed_eof();
/// let error = lp.run_until_complete(async move { reader.readexactly(5).await })?.unwrap_err();
/// assert_eq!(error.kind(), std::io::ErrorKind::UnexpectedEof);
/// let incomplete = IncompleteReadError::of(&error).unwrap();
/// assert_eq!((incomplete.partial(), incomplete.expected()), (&b"abc"[..], Some(5)));
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IncompleteReadError {
    partial: Vec<u8>,
    expected: Option<usize>,
}

impl IncompleteReadError {
    pub(super) fn new(partial: Vec<u8>, expected: Option<usize>) -> IncompleteReadError {
        IncompleteReadError { partial, expected }
    }

    /// The bytes read before the end of stream (possibly none).
    pub fn partial(&self) -> &[u8] {
        &self.partial
    }

    /// [`partial`](Self::partial), moved out.
    pub fn into_partial(self) -> Vec<u8> {
        self.partial
    }

    /// How many bytes were wanted: `Some(n)` for `readexactly(n)`, `None` for `readuntil`
    /// (asyncio's `expected` is `None` there too).
    pub fn expected(&self) -> Option<usize> {
        self.expected
    }

    /// The `IncompleteReadError` inside `error`, if it holds one.
    pub fn of(error: &io::Error) -> Option<&IncompleteReadError> {
        error.get_ref()?.downcast_ref()
    }

    /// The `IncompleteReadError` inside `error`, moved out; `error` itself if it holds none.
    ///
    /// # Errors
    /// `error`, unchanged, if it is not an incomplete read.
    pub fn take(error: io::Error) -> Result<IncompleteReadError, io::Error> {
        if Self::of(&error).is_none() {
            return Err(error);
        }
        let inner = error.into_inner().expect("checked: it has a payload");
        Ok(*inner.downcast().expect("checked: of this type"))
    }
}

impl fmt::Display for IncompleteReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.expected {
            Some(expected) => write!(
                f,
                "{} bytes read on a total of {expected} expected bytes",
                self.partial.len()
            ),
            None => write!(
                f,
                "{} bytes read, and the stream ended before the separator",
                self.partial.len()
            ),
        }
    }
}

impl Error for IncompleteReadError {}

impl From<IncompleteReadError> for io::Error {
    /// An [`UnexpectedEof`](io::ErrorKind::UnexpectedEof) error carrying it.
    fn from(error: IncompleteReadError) -> io::Error {
        io::Error::new(io::ErrorKind::UnexpectedEof, error)
    }
}

/// [`readuntil`](super::StreamReader::readuntil) (or
/// [`readline`](super::StreamReader::readline)) would take more than the reader's limit
/// (asyncio's `LimitOverrunError`): the separator was found beyond the limit, or not found in
/// more than the limit's worth of bytes.
///
/// It reaches the caller inside an [`io::Error`] of kind
/// [`InvalidData`](io::ErrorKind::InvalidData). After `readuntil`, the data stays in the
/// reader's buffer, and [`consumed`](Self::consumed) says how much of it to take to go on
/// (e.g. with [`readexactly`](super::StreamReader::readexactly)); `readline` has already
/// dropped the line (see there).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimitOverrunError {
    consumed: usize,
    separator_found: bool,
}

impl LimitOverrunError {
    pub(super) fn new(consumed: usize, separator_found: bool) -> LimitOverrunError {
        LimitOverrunError {
            consumed,
            separator_found,
        }
    }

    /// asyncio's `consumed`: where the separator starts if it was found (beyond the limit);
    /// if not, how many bytes were searched without finding it (the buffer's length, less the
    /// separator's, plus one).
    pub fn consumed(&self) -> usize {
        self.consumed
    }

    /// Whether the separator was found (beyond the limit).
    pub fn separator_found(&self) -> bool {
        self.separator_found
    }

    /// The `LimitOverrunError` inside `error`, if it holds one.
    pub fn of(error: &io::Error) -> Option<&LimitOverrunError> {
        error.get_ref()?.downcast_ref()
    }
}

impl fmt::Display for LimitOverrunError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // asyncio's two messages.
        if self.separator_found {
            f.write_str("Separator is found, but chunk is longer than limit")
        } else {
            f.write_str("Separator is not found, and chunk exceed the limit")
        }
    }
}

impl Error for LimitOverrunError {}

impl From<LimitOverrunError> for io::Error {
    /// An [`InvalidData`](io::ErrorKind::InvalidData) error carrying it.
    fn from(error: LimitOverrunError) -> io::Error {
        io::Error::new(io::ErrorKind::InvalidData, error)
    }
}

/// A copy of `error` for another reader of it (an [`io::Error`] is not `Clone`): the same OS
/// error code if it has one, else the same kind and message.
pub(super) fn copy_error(error: &io::Error) -> io::Error {
    match error.raw_os_error() {
        Some(code) => io::Error::from_raw_os_error(code),
        None => io::Error::new(error.kind(), error.to_string()),
    }
}
