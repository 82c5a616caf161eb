//! The halves of a split byte stream, written once for [`TcpStream`] and
//! [`UnixStream`](super::UnixStream): borrowed ([`ReadHalf`], [`WriteHalf`]) for two tasks in one
//! scope, or owned ([`OwnedReadHalf`], [`OwnedWriteHalf`]) for tasks that outlive it.
//!
//! Every method of the stream takes `&self`, so the halves add no synchronisation: they only
//! say, in the types, which side of the stream each task uses.

use std::net::Shutdown;
use std::rc::Rc;

use super::stream::{read_methods, write_methods};
use super::TcpStream;

pub(crate) use sealed::Splittable;

mod sealed {
    use std::io;
    use std::os::fd::AsFd;

    use crate::net::stream::Stream;

    /// A stream the halves of this module can be made of ([`TcpStream`](crate::net::TcpStream)
    /// and [`UnixStream`](crate::net::UnixStream)). Sealed: `pub` in a private module, so
    /// that the halves' public bounds may name it while nobody outside the crate can.
    pub trait Splittable {
        /// The std socket inside the stream.
        type Io: AsFd;

        /// The stream the halves read and write.
        fn stream(&self) -> &Stream<Self::Io>;

        /// `shutdown(how)` on the socket.
        fn shutdown(&self, how: std::net::Shutdown) -> io::Result<()>;
    }
}

/// The halves of `stream` borrowing it (`split`).
pub(crate) fn split<T: Splittable>(stream: &T) -> (ReadHalf<'_, T>, WriteHalf<'_, T>) {
    (ReadHalf { stream }, WriteHalf { stream })
}

/// The halves of `stream` owning it together (`into_split`).
pub(crate) fn into_split<T: Splittable>(stream: T) -> (OwnedReadHalf<T>, OwnedWriteHalf<T>) {
    let stream = Rc::new(stream);
    let write = OwnedWriteHalf {
        stream: Rc::clone(&stream),
    };
    (OwnedReadHalf { stream }, write)
}

/// The reading half of [`TcpStream::split`] (or, with `T` =
/// [`UnixStream`](super::UnixStream), of [`UnixStream::split`](super::UnixStream::split)).
#[derive(Debug)]
pub struct ReadHalf<'a, T = TcpStream> {
    stream: &'a T,
}

/// The writing half of [`TcpStream::split`] (or of
/// [`UnixStream::split`](super::UnixStream::split)).
#[derive(Debug)]
pub struct WriteHalf<'a, T = TcpStream> {
    stream: &'a T,
}

/// The reading half of [`TcpStream::into_split`] (or of
/// [`UnixStream::into_split`](super::UnixStream::into_split)).
#[derive(Debug)]
pub struct OwnedReadHalf<T = TcpStream> {
    stream: Rc<T>,
}

/// The writing half of [`TcpStream::into_split`] (or of
/// [`UnixStream::into_split`](super::UnixStream::into_split)): shuts down writing when dropped.
#[derive(Debug)]
pub struct OwnedWriteHalf<T: Splittable = TcpStream> {
    stream: Rc<T>,
}

impl<T: Splittable> ReadHalf<'_, T> {
    read_methods!(stream.stream());
}

impl<T: Splittable> WriteHalf<'_, T> {
    write_methods!(stream.stream());

    /// Send the peer an end of stream (`shutdown(Write)`).
    ///
    /// # Errors
    /// The kernel's.
    pub fn shutdown(&self) -> std::io::Result<()> {
        self.stream.shutdown(Shutdown::Write)
    }
}

impl<T: Splittable> OwnedReadHalf<T> {
    read_methods!(stream.stream());
}

impl<T> AsRef<T> for OwnedReadHalf<T> {
    /// The stream both halves share.
    fn as_ref(&self) -> &T {
        &self.stream
    }
}

impl<T: Splittable> OwnedWriteHalf<T> {
    write_methods!(stream.stream());

    /// Send the peer an end of stream now (`shutdown(Write)`).
    ///
    /// # Errors
    /// The kernel's.
    pub fn shutdown(&self) -> std::io::Result<()> {
        self.stream.shutdown(Shutdown::Write)
    }
}

impl<T: Splittable> AsRef<T> for OwnedWriteHalf<T> {
    /// The stream both halves share.
    fn as_ref(&self) -> &T {
        &self.stream
    }
}

impl<T: Splittable> Drop for OwnedWriteHalf<T> {
    fn drop(&mut self) {
        // The peer may already be gone (`NotConnected`): nothing left to tell it then.
        let _ = self.stream.shutdown(Shutdown::Write);
    }
}
