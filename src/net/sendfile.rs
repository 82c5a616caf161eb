//! asyncio's `loop.sock_sendfile`, and what it shares with
//! [`Transport::sendfile`](crate::Transport::sendfile): checking the arguments, deciding when
//! the kernel's `sendfile(2)` refused (so that the read-and-send fallback runs), and reading
//! the file for that fallback.

use std::fs::File;
use std::future::Future;
use std::io::{self, Read, Seek, SeekFrom};
use std::os::fd::{AsFd, AsRawFd};

use tulip_sys::net as sys;

use crate::event_loop::Direction;
use crate::net::readiness::Readiness;
use crate::EventLoop;

/// How much the fallback reads (and sends) at a time: asyncio's
/// `SENDFILE_FALLBACK_READBUFFER_SIZE`.
pub(crate) const FALLBACK_CHUNK: usize = 256 * 1024;

/// The most one `sendfile(2)` is asked for (asyncio's `min(blocksize, 2**30)`).
const NATIVE_CHUNK: u64 = 1 << 30;

/// `count` checked by asyncio's rule: `None` (to the end of the file) or positive.
pub(crate) fn check_count(count: Option<u64>) -> io::Result<()> {
    if count == Some(0) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "sendfile: count must be a positive integer (got 0), or None for the whole file",
        ));
    }
    Ok(())
}

/// What the native path will do with `file`: `Some(end)` (where to stop, the file's size or
/// `offset + count`, whichever comes first) for a regular file; `None` for anything else, which
/// `sendfile(2)` cannot take.
pub(crate) fn native_end(file: &File, offset: u64, count: Option<u64>) -> io::Result<Option<u64>> {
    let meta = file.metadata()?;
    if !meta.file_type().is_file() {
        return Ok(None);
    }
    let size = meta.len();
    Ok(Some(match count {
        Some(count) => size.min(offset.saturating_add(count)),
        None => size,
    }))
}

/// How much to ask one `sendfile(2)` for, from `pos` to `end`.
fn native_chunk(pos: u64, end: u64) -> usize {
    usize::try_from((end - pos).min(NATIVE_CHUNK)).unwrap_or(usize::MAX)
}

/// Whether `e`, from the first `sendfile(2)`, means the kernel cannot do it for this pair of
/// fds (so the fallback may run), rather than that the transfer failed.
fn native_unavailable(e: &io::Error) -> bool {
    sys::sendfile_unavailable(e)
}

/// How [`send_native`] ended.
pub(crate) enum Native {
    /// This many bytes went out (fewer than asked if the file shrank meanwhile); the file's
    /// position is after them.
    Sent(u64),
    /// The first `sendfile(2)` said the kernel cannot do it for these fds: nothing was sent,
    /// and the fallback may run.
    Unavailable(io::Error),
    /// The transfer failed (the file's position is after what went out).
    Failed(io::Error),
}

/// The native path, shared by `sock_sendfile` and `Transport::sendfile`: `file` from `offset`
/// to `end` in `sendfile(2)` calls of at most 1 GiB, `send(pos, chunk)` making each (and
/// waiting for writability while the socket's buffer is full, as its caller knows how), the
/// position moved on by what each sent. Afterwards the file's position is left where the
/// transfer stopped, as asyncio leaves it.
pub(crate) async fn send_native<F, Fut>(file: &File, offset: u64, end: u64, mut send: F) -> Native
where
    F: FnMut(u64, usize) -> Fut,
    Fut: Future<Output = io::Result<usize>>,
{
    let mut pos = offset;
    while pos < end {
        match send(pos, native_chunk(pos, end)).await {
            Ok(0) => break, // the file shrank meanwhile
            Ok(n) => pos += n as u64,
            Err(e) if pos == offset && native_unavailable(&e) => return Native::Unavailable(e),
            Err(e) => {
                set_position(file, pos);
                return Native::Failed(e);
            }
        }
    }
    if pos > offset {
        set_position(file, pos);
    }
    Native::Sent(pos - offset)
}

/// The error of `fallback: false` when the native path cannot run (asyncio's
/// `SendfileNotAvailableError`): kind `Unsupported`.
pub(crate) fn not_available(why: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::Unsupported,
        format!("sendfile is not available here ({why}), and fallback is off"),
    )
}

/// Leave `file`'s position at `pos` (as asyncio does after a transfer), where it has one.
fn set_position(mut file: &File, pos: u64) {
    // A pipe has no position (ESPIPE): nothing to update.
    let _ = file.seek(SeekFrom::Start(pos));
}

/// The fallback's reader: `file` from `offset`, at most `count` bytes, by `read(2)` from the
/// file's position (moved to `offset` first, where the file has one, as asyncio's fallback
/// does with `file.seek(offset)`).
pub(crate) struct FallbackReader<'a> {
    file: &'a File,
    left: Option<u64>,
}

impl<'a> FallbackReader<'a> {
    /// # Errors
    /// `ESPIPE` for a non-zero `offset` in a file without a position (a pipe).
    pub(crate) fn new(
        file: &'a File,
        offset: u64,
        count: Option<u64>,
    ) -> io::Result<FallbackReader<'a>> {
        let mut f = file;
        if offset > 0 || file.metadata()?.file_type().is_file() {
            f.seek(SeekFrom::Start(offset))?;
        }
        Ok(FallbackReader { file, left: count })
    }

    /// The next bytes into `buf` (0 at the end): a non-blocking file (a pipe) that has none
    /// yet is waited for with a one-shot reader on `lp`; a blocking one blocks the loop.
    pub(crate) async fn read(&mut self, lp: &EventLoop, buf: &mut [u8]) -> io::Result<usize> {
        let want = match self.left {
            Some(0) => return Ok(0),
            Some(left) => usize::try_from(left).unwrap_or(usize::MAX).min(buf.len()),
            None => buf.len(),
        };
        loop {
            let mut f = self.file;
            match f.read(&mut buf[..want]) {
                Ok(n) => {
                    if let Some(left) = &mut self.left {
                        *left -= n as u64;
                    }
                    return Ok(n);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    Readiness::on_loop(lp, self.file.as_fd().as_raw_fd(), Direction::Read).await?;
                }
                Err(e) => return Err(e),
            }
        }
    }
}

impl EventLoop {
    /// Send `file` on the non-blocking stream socket `sock`, from `offset`, `count` bytes
    /// (`None`: to the end of the file), with `sendfile(2)` (zero copy) where the kernel can:
    /// the number of bytes sent (asyncio's `loop.sock_sendfile(sock, file, offset, count,
    /// fallback=...)`). `count` past the end of the file sends to the end.
    ///
    /// Where `sendfile(2)` cannot run (a file that is not regular, such as a pipe; a kernel
    /// or OS without it, `EINVAL`, `ENOSYS`, `ENOTSOCK`, `EOPNOTSUPP`, `ESPIPE` on the first
    /// call), `fallback: true` reads the file and sends it with
    /// [`sock_sendall`](Self::sock_sendall) in chunks of 256 KiB instead; `fallback: false`
    /// fails with `Unsupported`.
    ///
    /// Afterwards `file`'s position is `offset` + the count sent (asyncio moves it so too),
    /// where it has one; before, it is not used.
    ///
    /// ```
    /// use std::io::{Read, Write};
    /// use std::os::unix::net::UnixStream;
    ///
    /// let mut file = std::fs::File::create(std::env::temp_dir().join("tulip-doc-sendfile"))?;
    /// file.write_all(b"hello, sendfile")?;
    /// let file = std::fs::File::open(std::env::temp_dir().join("tulip-doc-sendfile"))?;
    /// let (ours, mut theirs) = UnixStream::pair()?;
    /// ours.set_nonblocking(true)?;
    /// let lp = tulip::EventLoop::new()?;
    /// let sent = lp.run_until_complete(async move {
    ///     let lp = tulip::get_running_loop()?;
    ///     lp.sock_sendfile(&ours, &file, 7, None, true).await
    /// })??;
    /// assert_eq!(sent, 8);
    /// let mut got = [0; 8];
    /// theirs.read_exact(&mut got)?;
    /// assert_eq!(&got, b"sendfile");
    /// # Ok::<(), std::io::Error>(())
    /// ```
    ///
    /// # Errors
    /// As [`sock_sendall`](Self::sock_sendall); `InvalidInput` for `count == Some(0)`;
    /// `Unsupported` as said above; the file's read errors in the fallback. How much was
    /// sent before an error is not said (the file's position tells, as far as it was read).
    pub async fn sock_sendfile(
        &self,
        sock: &impl AsFd,
        file: &File,
        offset: u64,
        count: Option<u64>,
        fallback: bool,
    ) -> io::Result<u64> {
        let sock_fd = sock.as_fd();
        self.check_open()?;
        if !sys::is_nonblocking(sock_fd)? {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "the socket must be non-blocking (fd {})",
                    sock_fd.as_raw_fd()
                ),
            ));
        }
        check_count(count)?;
        sys::set_nosigpipe(sock_fd)?;
        let why = match native_end(file, offset, count)? {
            Some(end) => {
                let send = |pos, chunk| {
                    self.sock_io(sock_fd, Direction::Write, move || {
                        sys::sendfile(sock_fd, file.as_fd(), pos, chunk)
                    })
                };
                match send_native(file, offset, end, send).await {
                    Native::Sent(sent) => return Ok(sent),
                    Native::Failed(e) => return Err(e),
                    Native::Unavailable(e) => format!("sendfile(2) refused: {e}"),
                }
            }
            None => "not a regular file".to_owned(),
        };
        if !fallback {
            return Err(not_available(&why));
        }
        let mut reader = FallbackReader::new(file, offset, count)?;
        let mut buf = vec![0; FALLBACK_CHUNK];
        let mut sent = 0u64;
        loop {
            let n = reader.read(self, &mut buf).await?;
            if n == 0 {
                return Ok(sent);
            }
            self.sock_sendall(&sock_fd, &buf[..n]).await?;
            sent += n as u64;
        }
    }
}
