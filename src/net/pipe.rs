//! Pipes: [`pipe()`], [`PipeReader`] and [`PipeWriter`], e.g. for a child process's stdio,
//! read and written on the running loop. Writes never raise `SIGPIPE`: a pipe whose reader is
//! gone gives `BrokenPipe`.

use std::io;
use std::os::fd::{IntoRawFd, OwnedFd, RawFd};
use std::process::{ChildStderr, ChildStdin, ChildStdout};

use super::source::FdKind;
use super::stream::{fd_traits, read_methods, write_methods, Stream};

/// A new pipe, both ends non-blocking and close-on-exec: `(reader, writer)`.
///
/// For a child's stdio, let std make the pipe (`Stdio::piped()`) and convert the child's
/// ends with `From`: an end handed to a child should stay blocking, as programs expect.
///
/// ```
/// let lp = tulip::EventLoop::new()?;
/// lp.run_until_complete(async {
///     let (reader, writer) = tulip::net::pipe()?;
///     writer.write_all(b"through the pipe").await?;
///     drop(writer);
///     let mut buf = [0; 32];
///     let n = reader.read(&mut buf).await?;
///     assert_eq!(&buf[..n], b"through the pipe");
///     assert_eq!(reader.read(&mut buf).await?, 0, "end of file once the writer is gone");
///     Ok::<(), std::io::Error>(())
/// })??;
/// # Ok::<(), std::io::Error>(())
/// ```
///
/// # Errors
/// The kernel's (`EMFILE`, `ENFILE`).
pub fn pipe() -> io::Result<(PipeReader, PipeWriter)> {
    let (r, w) = tulip_sys::fd::pipe()?;
    let reader = PipeReader {
        inner: Stream::from_nonblocking(r, FdKind::Pipe),
    };
    let writer = PipeWriter {
        inner: Stream::from_nonblocking(w, FdKind::Pipe),
    };
    Ok((reader, writer))
}

/// The reading end of a pipe, its reads awaited on the running loop.
///
/// A child's stdout or stderr converts into one (made non-blocking):
///
/// ```
/// use std::process::{Command, Stdio};
/// use tulip::net::{PipeReader, PipeWriter};
///
/// let mut child = Command::new("cat")
///     .stdin(Stdio::piped())
///     .stdout(Stdio::piped())
///     .spawn()?;
/// let stdin = PipeWriter::from(child.stdin.take().expect("piped"));
/// let stdout = PipeReader::from(child.stdout.take().expect("piped"));
///
/// let lp = tulip::EventLoop::new()?;
/// let echoed = lp.run_until_complete(async move {
///     stdin.write_all(b"meow").await?;
///     drop(stdin); // cat sees the end of its input and exits
///     let mut echoed = Vec::new();
///     let mut buf = [0; 64];
///     loop {
///         match stdout.read(&mut buf).await? {
///             0 => return Ok::<_, std::io::Error>(echoed),
///             n => echoed.extend_from_slice(&buf[..n]),
///         }
///     }
/// })??;
/// assert_eq!(echoed, b"meow");
/// assert!(child.wait()?.success());
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug)]
pub struct PipeReader {
    inner: Stream<OwnedFd>,
}

/// The writing end of a pipe, its writes awaited on the running loop. Writing once the
/// reading end is closed gives `BrokenPipe`, never a `SIGPIPE`.
///
/// A child's stdin converts into one (made non-blocking); see [`PipeReader`] for an example.
#[derive(Debug)]
pub struct PipeWriter {
    inner: Stream<OwnedFd>,
}

impl PipeReader {
    read_methods!(inner);
}

impl PipeWriter {
    write_methods!(inner);
}

fd_traits!(PipeReader, inner);
fd_traits!(PipeWriter, inner);

impl From<OwnedFd> for PipeReader {
    /// Adopt the reading end of a pipe (or a FIFO, or a character device the selector can
    /// watch), made non-blocking; if its flags cannot be set, every operation fails with that
    /// error.
    fn from(fd: OwnedFd) -> PipeReader {
        PipeReader {
            inner: Stream::from_fd(fd, FdKind::Adopted),
        }
    }
}

impl From<OwnedFd> for PipeWriter {
    /// Adopt the writing end of a pipe (or a FIFO), made non-blocking; if its flags cannot be
    /// set, every operation fails with that error.
    fn from(fd: OwnedFd) -> PipeWriter {
        PipeWriter {
            inner: Stream::from_fd(fd, FdKind::Adopted),
        }
    }
}

impl From<ChildStdout> for PipeReader {
    /// Read a child's stdout on the loop (our end made non-blocking; the child's is not
    /// touched).
    fn from(stdout: ChildStdout) -> PipeReader {
        PipeReader::from(OwnedFd::from(stdout))
    }
}

impl From<ChildStderr> for PipeReader {
    /// Read a child's stderr on the loop (our end made non-blocking; the child's is not
    /// touched).
    fn from(stderr: ChildStderr) -> PipeReader {
        PipeReader::from(OwnedFd::from(stderr))
    }
}

impl From<ChildStdin> for PipeWriter {
    /// Write a child's stdin on the loop (our end made non-blocking; the child's is not
    /// touched). Drop it to close the child's input.
    fn from(stdin: ChildStdin) -> PipeWriter {
        PipeWriter::from(OwnedFd::from(stdin))
    }
}

impl IntoRawFd for PipeReader {
    /// Unregister from the loop and give up the fd (still non-blocking) without closing it.
    fn into_raw_fd(self) -> RawFd {
        OwnedFd::from(self).into_raw_fd()
    }
}

impl IntoRawFd for PipeWriter {
    /// Unregister from the loop and give up the fd (still non-blocking) without closing it.
    fn into_raw_fd(self) -> RawFd {
        OwnedFd::from(self).into_raw_fd()
    }
}

impl From<PipeReader> for OwnedFd {
    /// Unregister from the loop and give up the fd (still non-blocking).
    fn from(reader: PipeReader) -> OwnedFd {
        reader.inner.into_inner()
    }
}

impl From<PipeWriter> for OwnedFd {
    /// Unregister from the loop and give up the fd (still non-blocking).
    fn from(writer: PipeWriter) -> OwnedFd {
        writer.inner.into_inner()
    }
}
