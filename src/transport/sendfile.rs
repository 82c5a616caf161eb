//! [`Transport::sendfile`]: asyncio's `loop.sendfile(transport, file, offset, count,
//! fallback=...)`.
//!
//! As asyncio's `_sendfile_native`: reading is paused, the write buffer is flushed, then the
//! file goes out with `sendfile(2)` on the transport's socket while the protocol's writes are
//! refused; reading resumes afterwards if it was on. Where the kernel refuses (see
//! `net/sendfile.rs`) or the transport is a pipe's, the fallback (asyncio's
//! `_sendfile_fallback`) reads the file in chunks and writes them through the transport's own
//! buffer, waiting while it is above its high-water mark.

use std::fs::File;
use std::future::poll_fn;
use std::io;
use std::os::fd::AsFd;
use std::rc::Rc;
use std::task::{Context, Poll};

use super::connection::{refused, Connection, Phase};
use super::socket::Ends;
use super::Transport;
use crate::net::sendfile::{
    check_count, native_end, not_available, send_native, FallbackReader, Native, FALLBACK_CHUNK,
};

/// Undoes what a sendfile changed on the connection, however it ends (a drop included).
struct Active {
    conn: Rc<Connection>,
    resume_reading: bool,
}

impl Drop for Active {
    fn drop(&mut self) {
        let conn = &self.conn;
        conn.sendfile_active.set(false);
        conn.sendfile_waker.take();
        if self.resume_reading && conn.phase.get() == Phase::Open {
            conn.reading_paused.set(false);
            conn.wake();
        }
    }
}

impl Active {
    /// `Ready(Ok)` once `done` holds; `Ready(Err)` once the connection is no longer open;
    /// otherwise the task's waker is kept for the connection to wake.
    fn poll_until(
        &self,
        cx: &mut Context<'_>,
        done: impl Fn(&Connection) -> bool,
    ) -> Poll<io::Result<()>> {
        if let Some(e) = self.check_open() {
            return Poll::Ready(Err(e));
        }
        if done(&self.conn) {
            return Poll::Ready(Ok(()));
        }
        *self.conn.sendfile_waker.borrow_mut() = Some(cx.waker().clone());
        Poll::Pending
    }

    /// Why sendfile cannot go on, if the connection is no longer open.
    fn check_open(&self) -> Option<io::Error> {
        let conn = &self.conn;
        let why = match conn.phase.get() {
            Phase::Open => return None,
            Phase::Closing => "sendfile(): the transport is closing".to_owned(),
            Phase::Aborting | Phase::Closed => match &*conn.error.borrow() {
                Some(error) => format!("sendfile(): the connection failed ({error})"),
                None => "sendfile(): the transport was aborted".to_owned(),
            },
        };
        Some(refused(why))
    }
}

impl Transport {
    /// Send `file` on this transport, from `offset`, `count` bytes (`None`: to the end of the
    /// file): the number of bytes sent (asyncio's `loop.sendfile(transport, file, offset,
    /// count, fallback=...)`).
    ///
    /// Reading is paused, and bytes already buffered are flushed first; then the file goes
    /// out with `sendfile(2)` (zero copy) on the transport's socket. Meanwhile the protocol's
    /// [`write`](Self::write)s are refused (asyncio raises `RuntimeError` then). Afterwards
    /// reading resumes if it was on, and `file`'s position is `offset` + the count sent.
    ///
    /// Where `sendfile(2)` cannot run (a file that is not regular, a pipe's transport, a
    /// kernel or OS without it), `fallback: true` reads the file in 256 KiB chunks and writes
    /// them through the transport's buffer, waiting whenever it is above its high-water mark
    /// (the protocol is told `pause_writing` / `resume_writing` as for its own writes);
    /// `fallback: false` fails with `Unsupported`.
    ///
    /// ```
    /// # use tulip::Transport;
    /// async fn serve(transport: Transport, path: &str) -> std::io::Result<u64> {
    ///     let file = std::fs::File::open(path)?;
    ///     transport.write(b"HTTP/1.0 200 OK\r\n\r\n")?;
    ///     let sent = transport.sendfile(&file, 0, None, true).await?;
    ///     transport.close();
    ///     Ok(sent)
    /// }
    /// ```
    ///
    /// # Errors
    /// `InvalidInput` for `count == Some(0)`; `BrokenPipe` (with why) if the transport takes
    /// no writes (closing, after `write_eof`, gone) or stops being open meanwhile; the
    /// kernel's (`ConnectionReset`, `BrokenPipe`), which also fail the connection, so that
    /// `connection_lost` gets them; `Unsupported` as said above; the file's read errors in the
    /// fallback; `Other` if another sendfile is running on this transport.
    pub async fn sendfile(
        &self,
        file: &File,
        offset: u64,
        count: Option<u64>,
        fallback: bool,
    ) -> io::Result<u64> {
        let conn = self
            .conn
            .upgrade()
            .ok_or_else(|| refused("cannot sendfile(): the connection is gone".into()))?;
        check_count(count)?;
        if conn.sendfile_active.get() {
            return Err(io::Error::other(
                "sendfile(): another sendfile is in progress",
            ));
        }
        if let Some(refusal) = conn.write_refusal() {
            return Err(refusal);
        }
        let lp = conn
            .lp
            .upgrade()
            .ok_or_else(|| refused("cannot sendfile(): the loop is gone".into()))?;
        let resume_reading = !conn.reading_paused.replace(true);
        conn.sendfile_active.set(true);
        let active = Active {
            conn,
            resume_reading,
        };
        let conn = &*active.conn;

        // Flush what the protocol wrote before.
        poll_fn(|cx| active.poll_until(cx, |c| c.buffer.borrow().is_empty())).await?;

        let end = match conn.socket.ends() {
            Ends::Both => native_end(file, offset, count)?,
            _ => None,
        };
        let why = match end {
            Some(end) => {
                let active = &active;
                let send = |pos, chunk| {
                    poll_fn(move |cx| {
                        if let Some(e) = active.check_open() {
                            return Poll::Ready(Err(e));
                        }
                        *conn.sendfile_waker.borrow_mut() = Some(cx.waker().clone());
                        conn.socket.poll_sendfile(cx, file.as_fd(), pos, chunk)
                    })
                };
                match send_native(file, offset, end, send).await {
                    Native::Sent(sent) => return Ok(sent),
                    Native::Unavailable(e) => format!("sendfile(2) refused: {e}"),
                    Native::Failed(e) => {
                        if e.raw_os_error().is_some() {
                            // The socket failed: so did the connection.
                            conn.fail(io::Error::new(e.kind(), e.to_string()));
                        }
                        return Err(e);
                    }
                }
            }
            None if conn.socket.ends() != Ends::Both => {
                "the transport is not a socket's".to_owned()
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
            // Wait below the high-water mark, as asyncio's fallback awaits its drain.
            poll_fn(|cx| active.poll_until(cx, |c| !c.writing_paused.get())).await?;
            let n = reader.read(&lp, &mut buf).await?;
            if n == 0 {
                return Ok(sent);
            }
            if let Some(e) = active.check_open() {
                return Err(e);
            }
            conn.write_unchecked(&buf[..n]);
            sent += n as u64;
        }
    }
}
