//! What a [`Queue`](crate::Queue) refuses with: asyncio's `QueueEmpty`, `QueueFull` and
//! `QueueShutDown`, and the item a refused put gives back.

use std::fmt;
use std::io;

/// Why a queue operation failed: asyncio's queue exceptions. Converts into an [`io::Error`] of
/// kind `Other` that [`QueueError::of`] recognises.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum QueueError {
    /// [`get_nowait`](crate::Queue::get_nowait) on an empty queue: asyncio's `QueueEmpty`.
    Empty,
    /// [`put_nowait`](crate::Queue::put_nowait) on a full queue: asyncio's `QueueFull`.
    Full,
    /// The queue was [`shutdown`](crate::Queue::shutdown): asyncio's `QueueShutDown`.
    ShutDown,
}

impl QueueError {
    /// The `QueueError` inside `err`, if it carries one.
    pub fn of(err: &io::Error) -> Option<QueueError> {
        err.get_ref()?.downcast_ref::<QueueError>().copied()
    }
}

impl fmt::Display for QueueError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            QueueError::Empty => "the queue is empty",
            QueueError::Full => "the queue is full",
            QueueError::ShutDown => "the queue is shut down",
        })
    }
}

impl std::error::Error for QueueError {}

impl From<QueueError> for io::Error {
    fn from(err: QueueError) -> io::Error {
        io::Error::other(err)
    }
}

/// A refused put: why ([`QueueError::Full`] or [`QueueError::ShutDown`]), and the item, given
/// back. Converts into an [`io::Error`] (dropping the item) for `?`.
pub struct PutError<T> {
    error: QueueError,
    item: T,
}

impl<T> PutError<T> {
    pub(crate) fn new(error: QueueError, item: T) -> PutError<T> {
        PutError { error, item }
    }

    /// Why the put was refused.
    pub fn error(&self) -> QueueError {
        self.error
    }

    /// The item that was not put.
    pub fn into_item(self) -> T {
        self.item
    }
}

impl<T> fmt::Debug for PutError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PutError")
            .field("error", &self.error)
            .finish_non_exhaustive()
    }
}

impl<T> fmt::Display for PutError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "put refused: {}", self.error)
    }
}

impl<T> std::error::Error for PutError<T> {}

impl<T> From<PutError<T>> for io::Error {
    fn from(err: PutError<T>) -> io::Error {
        err.error.into()
    }
}
