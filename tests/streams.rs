//! Streams (`tulip::streams`): `StreamReader`'s reads against asyncio's rules (on a reader fed
//! by hand, and over loopback TCP and Unix connections on every backend, the peer writing in
//! 1-byte pieces and random splits), the limit and its errors, flow control both ways
//! (`drain` against a peer that does not read, the reader pausing the transport), the end of
//! stream, close, reset, and `start_server` with many clients. With the `futures-io` feature,
//! the `AsyncRead` / `AsyncBufRead` / `AsyncWrite` implementations too.
//!
//! Nothing asserts a duration: [`TIMEOUT`] only turns a hang into a failure.

use std::cell::{Cell, RefCell};
use std::io::{self, ErrorKind};
use std::net::Shutdown;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};

use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use tulip::net::{TcpListener, TcpStream, UnixListener, UnixStream};
use tulip::selectors::Backend;
use tulip::streams::{
    open_connection, open_connection_with, open_read_pipe, open_unix_connection,
    open_unix_connection_with, open_write_pipe, start_server, start_server_with, start_unix_server,
    start_unix_server_with, IncompleteReadError, LimitOverrunError, StreamFeeder, StreamOptions,
    StreamReader, StreamWriter, DEFAULT_LIMIT,
};
use tulip::{spawn, yield_now, EventLoop, Server};

#[macro_use]
#[path = "support/per_backend.rs"]
mod per_backend;

#[path = "support/loop_test.rs"]
mod loop_test;
use loop_test::*;

#[path = "support/echo.rs"]
mod echo;
use echo::join;

#[path = "support/reset.rs"]
mod reset;
use reset::reset;

// ---------------------------------------------------------------------------------------------
// The two families of connections, and a raw peer.

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
enum Family {
    Tcp,
    Unix,
}

const FAMILIES: [Family; 2] = [Family::Tcp, Family::Unix];

/// The other end of a stream connection: a plain tulip socket, written and read directly.
enum Peer {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl Peer {
    async fn write_all(&self, data: &[u8]) -> io::Result<()> {
        match self {
            Peer::Tcp(s) => s.write_all(data).await,
            Peer::Unix(s) => s.write_all(data).await,
        }
    }

    async fn read(&self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Peer::Tcp(s) => s.read(buf).await,
            Peer::Unix(s) => s.read(buf).await,
        }
    }

    fn shutdown_write(&self) -> io::Result<()> {
        match self {
            Peer::Tcp(s) => s.shutdown(Shutdown::Write),
            Peer::Unix(s) => s.shutdown(Shutdown::Write),
        }
    }

    /// Everything until the end of stream.
    async fn read_to_end(&self) -> io::Result<Vec<u8>> {
        let mut all = Vec::new();
        let mut buf = vec![0; 64 * 1024];
        loop {
            match self.read(&mut buf).await? {
                0 => return Ok(all),
                n => all.extend_from_slice(&buf[..n]),
            }
        }
    }

    /// Write `data` one byte at a time, letting the loop run between the bytes, so that the
    /// reader gets them in as many pieces as the kernel keeps apart.
    async fn trickle(&self, data: &[u8]) -> io::Result<()> {
        for byte in data {
            self.write_all(std::slice::from_ref(byte)).await?;
            yield_now().await;
            yield_now().await;
        }
        Ok(())
    }
}

/// A new path in the temporary directory for a Unix socket of `what` on backend `b`, nothing
/// there.
fn socket_path(what: &str, b: Backend) -> PathBuf {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let path = std::env::temp_dir().join(format!(
        "tulip-streams-{}-{what}-{b}-{n}.sock",
        std::process::id()
    ));
    let _ = std::fs::remove_file(&path);
    path
}

/// A stream connection of `family` (opened with `open_connection` or `open_unix_connection`)
/// and its raw peer. Run on the loop.
async fn connected(family: Family, what: &str) -> io::Result<(StreamReader, StreamWriter, Peer)> {
    connected_with(family, what, None).await
}

/// [`connected`], opened with `open_connection_with(.., options)` (or the Unix one) when
/// `options` are given.
async fn connected_with(
    family: Family,
    what: &str,
    options: Option<StreamOptions>,
) -> io::Result<(StreamReader, StreamWriter, Peer)> {
    match family {
        Family::Tcp => {
            let listener = TcpListener::bind("127.0.0.1:0")?;
            let addr = listener.local_addr()?;
            let (reader, writer) = match options {
                Some(options) => open_connection_with(addr, options).await?,
                None => open_connection(addr).await?,
            };
            let (peer, _) = listener.accept().await?;
            Ok((reader, writer, Peer::Tcp(peer)))
        }
        Family::Unix => {
            let lp = tulip::get_running_loop()?;
            let path = socket_path(what, lp.backend());
            let listener = UnixListener::bind(&path)?;
            let (reader, writer) = match options {
                Some(options) => open_unix_connection_with(&path, options).await?,
                None => open_unix_connection(&path).await?,
            };
            let (peer, _) = listener.accept().await?;
            let _ = std::fs::remove_file(&path);
            Ok((reader, writer, Peer::Unix(peer)))
        }
    }
}

/// A stream server of `family` running `client_connected` for each connection, and a way to
/// connect a raw client to it.
async fn serve<F, Fut>(family: Family, what: &str, client_connected: F) -> io::Result<Serving>
where
    F: FnMut(StreamReader, StreamWriter) -> Fut + 'static,
    Fut: std::future::Future<Output = io::Result<()>> + 'static,
{
    serve_with(family, what, None, client_connected).await
}

/// [`serve`], started with `start_server_with(.., options)` (or the Unix one) when `options`
/// are given.
async fn serve_with<F, Fut>(
    family: Family,
    what: &str,
    options: Option<StreamOptions>,
    client_connected: F,
) -> io::Result<Serving>
where
    F: FnMut(StreamReader, StreamWriter) -> Fut + 'static,
    Fut: std::future::Future<Output = io::Result<()>> + 'static,
{
    match family {
        Family::Tcp => {
            let addr = "127.0.0.1:0";
            let server = match options {
                Some(options) => start_server_with(client_connected, addr, options).await?,
                None => start_server(client_connected, addr).await?,
            };
            Ok(Serving { server, path: None })
        }
        Family::Unix => {
            let lp = tulip::get_running_loop()?;
            let path = socket_path(what, lp.backend());
            let server = match options {
                Some(options) => start_unix_server_with(client_connected, &path, options).await?,
                None => start_unix_server(client_connected, &path).await?,
            };
            Ok(Serving {
                server,
                path: Some(path),
            })
        }
    }
}

struct Serving {
    server: Server,
    path: Option<PathBuf>,
}

impl Serving {
    /// A raw client.
    async fn connect(&self) -> io::Result<Peer> {
        match &self.path {
            None => Ok(Peer::Tcp(
                TcpStream::connect(self.server.local_addr()?).await?,
            )),
            Some(path) => Ok(Peer::Unix(UnixStream::connect(path).await?)),
        }
    }

    /// A stream client.
    async fn open(&self) -> io::Result<(StreamReader, StreamWriter)> {
        match &self.path {
            None => open_connection(self.server.local_addr()?).await,
            Some(path) => open_unix_connection(path).await,
        }
    }
}

impl Drop for Serving {
    fn drop(&mut self) {
        self.server.close();
        if let Some(path) = &self.path {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// Run `test` on a loop of backend `b`, once per family.
fn on_both<F, Fut>(b: Backend, test: F)
where
    F: Fn(Family) -> Fut,
    Fut: std::future::Future<Output = io::Result<()>> + 'static,
{
    for family in FAMILIES {
        let lp = new_loop(b);
        run_test(&lp, test(family));
    }
}

fn kind_of<T: std::fmt::Debug>(result: &io::Result<T>) -> ErrorKind {
    match result {
        Ok(value) => panic!("expected an error, got {value:?}"),
        Err(e) => e.kind(),
    }
}

/// Run `f` on a fresh default loop (for the reader fed by hand: no I/O).
fn on_loop<T: 'static>(f: impl std::future::Future<Output = io::Result<T>> + 'static) -> T {
    let lp = EventLoop::new().expect("a loop");
    run_test(&lp, f)
}

// ---------------------------------------------------------------------------------------------
// A reader fed by hand: asyncio's rules, without I/O.

#[test]
fn read_takes_what_is_buffered_up_to_n_and_zero_takes_nothing() {
    on_loop(async {
        let mut reader = StreamReader::new();
        reader.feed_data(b"hello");
        reader.feed_data(b" world");
        assert_eq!(reader.read(0).await?, b"");
        assert_eq!(reader.buffered(), 11);
        assert_eq!(reader.read(3).await?, b"hel");
        assert_eq!(reader.read(100).await?, b"lo world");
        assert!(!reader.at_eof(), "no end of stream yet");
        reader.feed_data(b"tail");
        reader.feed_eof();
        assert!(!reader.at_eof(), "bytes are still buffered");
        assert_eq!(reader.read_to_eof().await?, b"tail");
        assert!(reader.at_eof());
        assert_eq!(reader.read(10).await?, b"", "read at the end of stream");
        assert_eq!(reader.read_to_eof().await?, b"");
        reader.feed_data(b"late");
        assert_eq!(
            reader.buffered(),
            0,
            "data after the end of stream is ignored"
        );
        Ok(())
    });
}

#[test]
fn readexactly_returns_n_bytes_or_the_partial_ones_at_the_end_of_stream() {
    on_loop(async {
        let mut reader = StreamReader::new();
        assert_eq!(
            reader.readexactly(0).await?,
            b"",
            "readexactly(0) waits for nothing"
        );
        reader.feed_data(b"abcdefg");
        assert_eq!(reader.readexactly(3).await?, b"abc");
        reader.feed_eof();
        let error = reader.readexactly(10).await.unwrap_err();
        assert_eq!(error.kind(), ErrorKind::UnexpectedEof);
        assert_eq!(
            error.to_string(),
            "4 bytes read on a total of 10 expected bytes"
        );
        let incomplete = IncompleteReadError::take(error).expect("an IncompleteReadError");
        assert_eq!(incomplete.partial(), b"defg");
        assert_eq!(incomplete.expected(), Some(10));
        assert!(reader.at_eof(), "the partial bytes were taken");
        let again = reader.readexactly(1).await.unwrap_err();
        assert_eq!(IncompleteReadError::of(&again).unwrap().partial(), b"");
        Ok(())
    });
}

#[test]
fn readuntil_finds_separators_and_reports_the_rest_at_the_end_of_stream() {
    on_loop(async {
        let mut reader = StreamReader::new();
        reader.feed_data(b"key=value;;other;;rest");
        assert_eq!(reader.readuntil(b";;").await?, b"key=value;;");
        assert_eq!(reader.readuntil(b";;").await?, b"other;;");
        let empty = reader.readuntil(b"").await;
        assert_eq!(kind_of(&empty), ErrorKind::InvalidInput);
        reader.feed_eof();
        let error = reader.readuntil(b";;").await.unwrap_err();
        assert_eq!(error.kind(), ErrorKind::UnexpectedEof);
        let incomplete = IncompleteReadError::of(&error).unwrap();
        assert_eq!(
            (incomplete.partial(), incomplete.expected()),
            (&b"rest"[..], None)
        );
        assert!(reader.at_eof(), "the partial bytes were taken");
        Ok(())
    });
}

#[test]
fn readline_returns_lines_then_the_unterminated_rest_then_nothing() {
    on_loop(async {
        let mut reader = StreamReader::new();
        reader.feed_data(b"one\ntwo\n\nthree");
        reader.feed_eof();
        assert_eq!(reader.readline().await?, b"one\n");
        assert_eq!(reader.readline().await?, b"two\n");
        assert_eq!(reader.readline().await?, b"\n");
        assert_eq!(
            reader.readline().await?,
            b"three",
            "the rest, without a newline"
        );
        assert_eq!(reader.readline().await?, b"", "then nothing");
        assert!(reader.at_eof());
        Ok(())
    });
}

#[test]
fn readuntil_over_the_limit_keeps_the_data_and_says_where_the_separator_is() {
    on_loop(async {
        let mut reader = StreamReader::with_limit(5)?;
        // Found beyond the limit: `consumed` is where it starts.
        reader.feed_data(b"0123456789!!tail");
        let error = reader.readuntil(b"!!").await.unwrap_err();
        assert_eq!(error.kind(), ErrorKind::InvalidData);
        let overrun = LimitOverrunError::of(&error).expect("a LimitOverrunError");
        assert_eq!((overrun.consumed(), overrun.separator_found()), (10, true));
        assert_eq!(
            error.to_string(),
            "Separator is found, but chunk is longer than limit"
        );
        assert_eq!(reader.buffered(), 16, "the data stays");
        assert_eq!(reader.readexactly(12).await?, b"0123456789!!");

        // Not found in more than the limit: `consumed` is the length searched.
        reader.feed_data(b"abcdefgh");
        let error = reader.readuntil(b"!!").await.unwrap_err();
        let overrun = LimitOverrunError::of(&error).unwrap();
        // asyncio: len(buffer) + 1 - len(separator), with "tail" + "abcdefgh" buffered.
        assert_eq!((overrun.consumed(), overrun.separator_found()), (11, false));
        assert_eq!(
            error.to_string(),
            "Separator is not found, and chunk exceed the limit"
        );
        assert_eq!(reader.read(100).await?, b"tailabcdefgh", "the data stays");

        // At the limit exactly is fine.
        reader.feed_data(b"12345!!");
        assert_eq!(reader.readuntil(b"!!").await?, b"12345!!");
        Ok(())
    });
}

#[test]
fn readline_over_the_limit_drops_the_line_or_the_whole_buffer() {
    on_loop(async {
        let mut reader = StreamReader::with_limit(4)?;
        reader.feed_data(b"too long\nok\n");
        let error = reader.readline().await.unwrap_err();
        assert_eq!(error.kind(), ErrorKind::InvalidData);
        assert_eq!(LimitOverrunError::of(&error).unwrap().consumed(), 8);
        assert_eq!(
            reader.readline().await?,
            b"ok\n",
            "dropped through the newline"
        );

        reader.feed_data(b"no newline at all");
        let error = reader.readline().await.unwrap_err();
        assert!(!LimitOverrunError::of(&error).unwrap().separator_found());
        assert_eq!(reader.buffered(), 0, "the whole buffer was dropped");
        reader.feed_data(b"end\n");
        assert_eq!(reader.readline().await?, b"end\n");
        Ok(())
    });
}

#[test]
fn a_limit_of_zero_is_refused() {
    assert_eq!(
        StreamReader::with_limit(0).unwrap_err().kind(),
        ErrorKind::InvalidInput
    );
    let mut reader = StreamReader::new();
    assert_eq!(reader.limit(), DEFAULT_LIMIT);
    assert_eq!(
        reader.set_limit(0).unwrap_err().kind(),
        ErrorKind::InvalidInput
    );
    assert_eq!(reader.limit(), DEFAULT_LIMIT, "unchanged");
}

#[test]
fn an_exception_comes_before_buffered_data_and_stays() {
    on_loop(async {
        let mut reader = StreamReader::new();
        reader.feed_data(b"buffered\n");
        reader.set_exception(io::Error::from_raw_os_error(libc::ECONNRESET));
        for _ in 0..2 {
            assert_eq!(kind_of(&reader.read(1).await), ErrorKind::ConnectionReset);
            assert_eq!(
                kind_of(&reader.readline().await),
                ErrorKind::ConnectionReset
            );
            assert_eq!(
                kind_of(&reader.readexactly(1).await),
                ErrorKind::ConnectionReset
            );
            assert_eq!(
                kind_of(&reader.read_to_eof().await),
                ErrorKind::ConnectionReset
            );
        }
        assert_eq!(
            reader.exception().map(|e| e.raw_os_error()),
            Some(Some(libc::ECONNRESET))
        );
        Ok(())
    });
}

// ---------------------------------------------------------------------------------------------
// Over connections, on every backend.

per_backend! {
    /// Streams over a pipe's two ends (asyncio's `connect_read_pipe` / `connect_write_pipe`
    /// with stream protocols): 1 MiB through, far more than the pipe holds, so `drain` waits
    /// for the reader; closing the writer is the reader's end of stream. A regular file is
    /// refused, as asyncio refuses it.
    fn streams_over_a_pipe_carry_a_mebibyte_and_its_end(b: Backend) {
        let lp = new_loop(b);
        let (read_end, write_end) = tulip::selectors::fd::pipe().unwrap();
        let mut reader = open_read_pipe(&lp, read_end, StreamOptions::new().limit(1024)).unwrap();
        let writer = open_write_pipe(&lp, write_end).unwrap();
        let sent: Vec<u8> = (0..1 << 20).map(|i: u32| (i % 251) as u8).collect();
        let expected = sent.clone();
        run_test(&lp, async move {
            let writing = async move {
                for chunk in sent.chunks(10_000) {
                    writer.write(chunk)?;
                    writer.drain().await?;
                }
                writer.close();
                writer.wait_closed().await
            };
            let reading = async {
                let got = reader.readexactly(expected.len()).await?;
                let rest = reader.read_to_eof().await?;
                Ok::<_, io::Error>((got, rest))
            };
            let (read, wrote) = join(reading, writing).await;
            wrote?;
            let (got, rest) = read?;
            assert!(got == expected, "the bytes came through intact");
            assert!(rest.is_empty() && reader.at_eof());
            Ok(())
        });
        let file = tempfile_fd();
        let err = open_read_pipe(&lp, file, StreamOptions::new()).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
        let err = open_write_pipe(&lp, tempfile_fd()).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    }
}

/// An fd of a regular file (this test binary's own file), for the refusals.
fn tempfile_fd() -> std::os::fd::OwnedFd {
    std::fs::File::open(std::env::current_exe().unwrap())
        .unwrap()
        .into()
}

per_backend! {
    /// Lines and separators that the peer writes a byte at a time come whole, across every
    /// piece; the last, unterminated piece comes at the end of stream.
    fn readline_and_readuntil_span_one_byte_pieces(b: Backend) {
        on_both(b, |family| async move {
            let (mut reader, writer, peer) = connected(family, "pieces").await?;
            let sent = b"first line\nsecond<END>third\r\nlast";
            let reading = async {
                let mut got = vec![reader.readline().await?];
                got.push(reader.readuntil(b"<END>").await?);
                got.push(reader.readuntil(b"\r\n").await?);
                got.push(reader.readline().await?);
                got.push(reader.readline().await?);
                assert!(reader.at_eof());
                Ok::<_, io::Error>(got)
            };
            let writing = async {
                peer.trickle(sent).await?;
                peer.shutdown_write()
            };
            let (got, wrote) = join(reading, writing).await;
            wrote?;
            let got = got?;
            let expected: [&[u8]; 5] =
                [b"first line\n", b"second<END>", b"third\r\n", b"last", b""];
            assert_eq!(got, expected, "on {family:?}");
            drop(writer);
            Ok(())
        });
    }

    /// Over the limit on a connection: `readuntil`'s error keeps the bytes (read on with
    /// `readexactly`), `readline`'s drops the line, and what follows reads as usual.
    fn the_limit_applies_to_lines_from_the_peer(b: Backend) {
        on_both(b, |family| async move {
            let (mut reader, _writer, peer) = connected(family, "limit").await?;
            reader.set_limit(8)?;
            peer.write_all(b"0123456789|short|").await?;
            let error = reader.readuntil(b"|").await.unwrap_err();
            let consumed = LimitOverrunError::of(&error).expect("an overrun").consumed();
            assert_eq!(consumed, 10);
            assert_eq!(reader.readexactly(consumed + 1).await?, b"0123456789|");
            assert_eq!(reader.readuntil(b"|").await?, b"short|");

            peer.write_all(b"a line too long\nfine\n").await?;
            let error = reader.readline().await.unwrap_err();
            assert_eq!(error.kind(), ErrorKind::InvalidData);
            assert_eq!(reader.readline().await?, b"fine\n");
            peer.shutdown_write()?;
            assert_eq!(reader.read_to_eof().await?, b"");
            Ok(())
        });
    }

    /// `readexactly` past the peer's end of stream returns the partial bytes in its error;
    /// `read(n)` takes what is there; `at_eof` holds only once the buffer is empty.
    fn reads_at_the_end_of_stream(b: Backend) {
        on_both(b, |family| async move {
            let (mut reader, _writer, peer) = connected(family, "eof").await?;
            peer.write_all(b"0123456789").await?;
            assert_eq!(reader.readexactly(4).await?, b"0123");
            peer.write_all(b"abc").await?;
            peer.shutdown_write()?;
            assert_eq!(reader.read(2).await?, b"45");
            let error = reader.readexactly(100).await.unwrap_err();
            let incomplete = IncompleteReadError::take(error)?;
            assert_eq!(incomplete.partial(), b"6789abc");
            assert_eq!(incomplete.expected(), Some(100));
            assert!(reader.at_eof());
            assert_eq!(reader.read(5).await?, b"");
            Ok(())
        });
    }

    /// `read_to_eof` (asyncio's `read(-1)`) gets everything, in order, across many pieces
    /// and more than the reader's limit (it reads on past the pause).
    fn read_to_eof_gets_everything(b: Backend) {
        on_both(b, |family| async move {
            let (mut reader, _writer, peer) = connected(family, "to-eof").await?;
            reader.set_limit(1000)?;
            let sent: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
            let writing = async {
                for piece in sent.chunks(7_777) {
                    peer.write_all(piece).await?;
                }
                peer.shutdown_write()
            };
            let (got, wrote) = join(reader.read_to_eof(), writing).await;
            wrote?;
            assert!(got? == sent, "the bytes, whole and in order");
            assert!(reader.at_eof());
            Ok(())
        });
    }

    /// The reader pauses the transport's reading past twice its limit, and resumes it once a
    /// read brings the buffer to the limit (not before).
    fn the_reader_pauses_reading_past_twice_its_limit(b: Backend) {
        on_both(b, |family| async move {
            let (mut reader, writer, peer) = connected(family, "pause").await?;
            const LIMIT: usize = 1000;
            reader.set_limit(LIMIT)?;
            let sent: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
            let writing = spawn({
                let sent = sent.clone();
                async move {
                    peer.write_all(&sent).await?;
                    peer.shutdown_write()?;
                    Ok::<_, io::Error>(peer)
                }
            })?;
            let transport = writer.transport().clone();
            eventually(|| !transport.is_reading()).await?;
            let buffered = reader.buffered();
            assert!(buffered > 2 * LIMIT, "paused at {buffered} bytes");
            let mut got = reader.read(buffered - LIMIT - 1).await?;
            assert_eq!(reader.buffered(), LIMIT + 1, "nothing came while paused");
            assert!(!transport.is_reading(), "still above the limit");
            got.extend(reader.read(1).await?);
            assert!(transport.is_reading(), "resumed at the limit");
            got.extend(reader.read_to_eof().await?);
            assert!(got == sent, "the bytes, whole and in order");
            writing.await??;
            Ok(())
        });
    }

    /// `drain` waits while the transport's buffer is above its high-water mark (the peer does
    /// not read), and returns once the peer read enough for it to come down to the low-water
    /// mark; below the mark it returns at once.
    fn drain_waits_for_a_peer_that_does_not_read(b: Backend) {
        on_both(b, |family| async move {
            let (_reader, writer, peer) = connected(family, "drain").await?;
            writer.drain().await?;
            writer.transport().set_write_buffer_limits(Some(16 * 1024), None)?;
            let (low, high) = writer.transport().get_write_buffer_limits();
            let chunk = vec![7u8; 64 * 1024];
            let mut written = 0;
            // Far above the mark: the kernel's buffers cannot bring it down by themselves.
            while writer.transport().get_write_buffer_size() <= high.max(4 << 20) {
                writer.write(&chunk)?;
                written += chunk.len();
            }
            let writer = Rc::new(writer);
            let buffered_after_drain = Rc::new(Cell::new(None));
            let drained = spawn({
                let (writer, after) = (writer.clone(), buffered_after_drain.clone());
                async move {
                    writer.drain().await?;
                    after.set(Some(writer.transport().get_write_buffer_size()));
                    Ok::<_, io::Error>(())
                }
            })?;
            for _ in 0..20 {
                yield_now().await;
            }
            assert!(!drained.done(), "drain waits while the peer does not read");
            assert!(writer.transport().get_write_buffer_size() > high);
            let mut buf = vec![0; 64 * 1024];
            let mut read = 0;
            while !drained.done() {
                read += peer.read(&mut buf).await?;
            }
            drained.await??;
            let left = buffered_after_drain.get().expect("drain returned");
            assert!(left <= low, "drain returned with {left} bytes buffered (low {low})");
            writer.close();
            writer.wait_closed().await?;
            read += peer.read_to_end().await?.len();
            assert_eq!(read, written, "every byte written reached the peer");
            Ok(())
        });
    }

    /// `write_eof` half-closes: the peer reads the end of stream and can still answer, which
    /// the writer's side reads; `close` then ends the connection, `wait_closed` returns, and
    /// writing and draining are refused after it.
    fn write_eof_close_and_wait_closed(b: Backend) {
        on_both(b, |family| async move {
            let (mut reader, writer, peer) = connected(family, "eof-close").await?;
            assert!(writer.can_write_eof());
            writer.write(b"request")?;
            writer.write_eof();
            assert_eq!(kind_of(&writer.write(b"more")), ErrorKind::BrokenPipe);
            assert_eq!(peer.read_to_end().await?, b"request");
            peer.write_all(b"answer").await?;
            peer.shutdown_write()?;
            assert_eq!(reader.read_to_eof().await?, b"answer");
            assert!(!writer.is_closing(), "the stream protocol keeps a half-open connection");
            writer.close();
            assert!(writer.is_closing());
            writer.wait_closed().await?;
            writer.wait_closed().await?;
            assert_eq!(kind_of(&writer.write(b"late")), ErrorKind::BrokenPipe);
            assert_eq!(kind_of(&writer.drain().await), ErrorKind::ConnectionReset);
            assert!(reader.at_eof());
            Ok(())
        });
    }

    /// Dropping the writer closes the connection: the peer reads what was written, then the
    /// end of stream.
    fn dropping_the_writer_closes_the_connection(b: Backend) {
        on_both(b, |family| async move {
            let (reader, writer, peer) = connected(family, "drop").await?;
            writer.write(b"last words")?;
            drop(writer);
            assert_eq!(peer.read_to_end().await?, b"last words");
            drop(reader);
            Ok(())
        });
    }

    /// `start_server` runs its callback's task for each of many concurrent clients, each with
    /// its own streams (a line echoed back with its client's number); a task's error is
    /// reported to the exception handler and its connection closed. Closing the server
    /// refuses new clients, while connections already made go on.
    fn start_server_serves_many_clients_until_closed(b: Backend) {
        on_both(b, |family| async move {
            const CLIENTS: usize = 40;
            let lp = tulip::get_running_loop()?;
            let reported = Rc::new(RefCell::new(Vec::new()));
            let seen = reported.clone();
            lp.set_exception_handler(move |_, context| {
                let error = context.error().map(ToString::to_string);
                seen.borrow_mut().push(error.unwrap_or_default());
            });
            let served = Rc::new(Cell::new(0));
            let count = served.clone();
            let serving = serve(family, "many", move |mut reader, writer| {
                count.set(count.get() + 1);
                async move {
                    loop {
                        let line = reader.readline().await?;
                        if line.is_empty() {
                            break;
                        }
                        if line == b"fail\n" {
                            return Err(io::Error::other("asked to fail"));
                        }
                        writer.write(b"echo: ")?;
                        writer.write(&line)?;
                        writer.drain().await?;
                    }
                    writer.close();
                    writer.wait_closed().await
                }
            })
            .await?;
            let mut clients = Vec::new();
            for i in 0..CLIENTS {
                let serving = &serving;
                clients.push(async move {
                    let (mut reader, writer) = serving.open().await?;
                    writer.write(format!("hello from {i}\n").as_bytes())?;
                    let answer = reader.readline().await?;
                    assert_eq!(answer, format!("echo: hello from {i}\n").as_bytes());
                    writer.write_eof();
                    assert_eq!(reader.read_to_eof().await?, b"");
                    // Half-open until closed: the stream protocol keeps it so.
                    assert!(!writer.is_closing());
                    writer.close();
                    writer.wait_closed().await
                });
            }
            for client in join_all(clients).await {
                client?;
            }
            assert_eq!(served.get(), CLIENTS);

            let (mut reader, writer) = serving.open().await?;
            writer.write(b"fail\n")?;
            assert_eq!(reader.read_to_eof().await?, b"", "closed by the failed task");
            eventually(|| !reported.borrow().is_empty()).await?;
            let failures = reported.borrow().clone();
            assert!(failures.iter().any(|f| f.contains("asked to fail")), "{failures:?}");

            let survivor = serving.connect().await?;
            eventually(|| served.get() == CLIENTS + 2).await?;
            serving.server.close();
            assert!(!serving.server.is_serving());
            let refused = serving.open().await;
            assert!(refused.is_err(), "a closed server takes no connection");
            survivor.write_all(b"still here\n").await?;
            let mut answer = vec![0; b"echo: still here\n".len()];
            let mut got = 0;
            while got < answer.len() {
                got += survivor.read(&mut answer[got..]).await?;
            }
            assert_eq!(answer, b"echo: still here\n");
            Ok(())
        });
    }

    /// Nothing listening: `open_connection` fails with `ConnectionRefused`,
    /// `open_unix_connection` with `NotFound` for a path with nothing there.
    fn opening_a_connection_to_nothing_fails_clearly(b: Backend) {
        let lp = new_loop(b);
        run_test(&lp, async move {
            let addr = TcpListener::bind("127.0.0.1:0")?.local_addr()?;
            assert_eq!(kind_of(&open_connection(addr).await), ErrorKind::ConnectionRefused);
            let path = socket_path("nothing", b);
            assert_eq!(kind_of(&open_unix_connection(&path).await), ErrorKind::NotFound);
            Ok(())
        });
    }

    /// A connection the peer resets: the pending read fails with `ConnectionReset`, and so do
    /// later reads, `drain` and `wait_closed`.
    fn a_reset_surfaces_as_connection_reset(b: Backend) {
        let lp = new_loop(b);
        run_test(&lp, async {
            let (mut reader, writer, peer) = connected(Family::Tcp, "reset").await?;
            let Peer::Tcp(peer) = peer else { unreachable!() };
            writer.write(b"ping")?;
            let mut buf = [0; 4];
            peer.read_exact(&mut buf).await?;
            let reading = async { reader.readline().await };
            let resetting = async {
                yield_now().await;
                reset(&peer)?;
                drop(peer);
                Ok::<_, io::Error>(())
            };
            let (line, reset) = join(reading, resetting).await;
            reset?;
            assert_eq!(kind_of(&line), ErrorKind::ConnectionReset);
            assert_eq!(kind_of(&reader.read(1).await), ErrorKind::ConnectionReset);
            assert_eq!(kind_of(&writer.drain().await), ErrorKind::ConnectionReset);
            assert_eq!(kind_of(&writer.wait_closed().await), ErrorKind::ConnectionReset);
            Ok(())
        });
    }
}

/// Every future, polled in turn by one task: their outputs, in order.
async fn join_all<F: std::future::Future>(futures: Vec<F>) -> Vec<F::Output> {
    let mut futures: Vec<_> = futures.into_iter().map(Box::pin).collect();
    let mut outputs: Vec<Option<F::Output>> = futures.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (future, output) in futures.iter_mut().zip(outputs.iter_mut()) {
            if output.is_none() {
                match future.as_mut().poll(cx) {
                    std::task::Poll::Ready(out) => *output = Some(out),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(outputs.iter_mut().map(|o| o.take().unwrap()).collect())
        }
    })
    .await
}

// ---------------------------------------------------------------------------------------------
// The model: reads of a whole stream, whatever pieces it comes in.

/// One read of the property.
#[derive(Clone, Debug)]
enum Op {
    Readline,
    Readuntil(&'static [u8]),
    Readexactly(usize),
}

/// What a read gave: its bytes, or the partial bytes of an incomplete read.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Outcome {
    Bytes(Vec<u8>),
    Incomplete(Vec<u8>),
}

/// The model: each op on the whole stream `data` from `at` on (no limit is reached).
fn model(data: &[u8], ops: &[Op]) -> Vec<Outcome> {
    let mut at = 0;
    let mut outcomes = Vec::new();
    for op in ops {
        let rest = &data[at..];
        let (taken, outcome) = match op {
            Op::Readline => {
                let end = rest
                    .iter()
                    .position(|&b| b == b'\n')
                    .map_or(rest.len(), |i| i + 1);
                (end, Outcome::Bytes(rest[..end].to_vec()))
            }
            Op::Readuntil(sep) => match rest.windows(sep.len()).position(|w| w == *sep) {
                Some(i) => (
                    i + sep.len(),
                    Outcome::Bytes(rest[..i + sep.len()].to_vec()),
                ),
                None => (rest.len(), Outcome::Incomplete(rest.to_vec())),
            },
            Op::Readexactly(n) if *n <= rest.len() => (*n, Outcome::Bytes(rest[..*n].to_vec())),
            Op::Readexactly(_) => (rest.len(), Outcome::Incomplete(rest.to_vec())),
        };
        at += taken;
        outcomes.push(outcome);
    }
    outcomes
}

async fn apply(reader: &mut StreamReader, ops: &[Op]) -> io::Result<Vec<Outcome>> {
    let mut outcomes = Vec::new();
    for op in ops {
        let result = match op {
            Op::Readline => reader.readline().await,
            Op::Readuntil(sep) => reader.readuntil(sep).await,
            Op::Readexactly(n) => reader.readexactly(*n).await,
        };
        outcomes.push(match result {
            Ok(bytes) => Outcome::Bytes(bytes),
            Err(e) => Outcome::Incomplete(IncompleteReadError::take(e)?.into_partial()),
        });
    }
    Ok(outcomes)
}

/// The stream sent over `family` on `backend` in `pieces` (the loop runs between them), read
/// with `ops`.
fn exchange(
    backend: Backend,
    family: Family,
    data: Vec<u8>,
    cuts: Vec<usize>,
    ops: Vec<Op>,
) -> Result<Vec<Outcome>, TestCaseError> {
    let lp = EventLoop::with_backend(backend).map_err(|e| TestCaseError::fail(e.to_string()))?;
    let test = async move {
        let (mut reader, _writer, peer) = connected(family, "prop").await?;
        let writing = async {
            let mut from = 0;
            for &cut in &cuts {
                let to = cut.clamp(from, data.len());
                peer.write_all(&data[from..to]).await?;
                from = to;
                yield_now().await;
                yield_now().await;
            }
            peer.write_all(&data[from..]).await?;
            peer.shutdown_write()
        };
        let (outcomes, wrote) = join(apply(&mut reader, &ops), writing).await;
        wrote?;
        outcomes
    };
    match lp.run_until_complete(tulip::wait_for(test, TIMEOUT)) {
        Ok(Ok(Ok(outcomes))) => Ok(outcomes),
        other => Err(TestCaseError::fail(format!(
            "on {family:?}/{backend}: {other:?}"
        ))),
    }
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => Just(Op::Readline),
        2 => prop_oneof![Just(&b"ab"[..]), Just(&b"\r\n"[..]), Just(&b"b"[..])].prop_map(Op::Readuntil),
        2 => (0usize..12).prop_map(Op::Readexactly),
    ]
}

fn config() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(24);
    ProptestConfig {
        cases,
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(config())]

    /// Over TCP and Unix on every backend, a stream of `a`, `b`, `\r` and `\n` written in
    /// random pieces reads as the model says it reads whole.
    #[test]
    fn reads_do_not_depend_on_how_the_stream_is_cut(
        data in proptest::collection::vec(prop_oneof![Just(b'a'), Just(b'b'), Just(b'\r'), Just(b'\n')], 0..80),
        mut cuts in proptest::collection::vec(0usize..80, 0..12),
        ops in proptest::collection::vec(op(), 1..16),
    ) {
        cuts.sort_unstable();
        let expected = model(&data, &ops);
        for family in FAMILIES {
            for &backend in Backend::available() {
                let got = exchange(backend, family, data.clone(), cuts.clone(), ops.clone())?;
                prop_assert_eq!(&got, &expected, "on {:?}/{}", family, backend);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// futures-io.

#[cfg(feature = "futures-io")]
mod futures_io_traits {
    use std::future::poll_fn;
    use std::pin::Pin;

    use futures_io::{AsyncBufRead, AsyncRead, AsyncWrite};

    use super::*;

    /// A waker that does nothing, to poll once by hand.
    struct Noop;

    impl std::task::Wake for Noop {
        fn wake(self: std::sync::Arc<Self>) {}
    }

    async fn read_some(reader: &mut StreamReader, buf: &mut [u8]) -> io::Result<usize> {
        poll_fn(|cx| Pin::new(&mut *reader).poll_read(cx, buf)).await
    }

    async fn fill(reader: &mut StreamReader) -> io::Result<Vec<u8>> {
        poll_fn(|cx| {
            Pin::new(&mut *reader)
                .poll_fill_buf(cx)
                .map_ok(<[u8]>::to_vec)
        })
        .await
    }

    async fn write_some(writer: &mut StreamWriter, data: &[u8]) -> io::Result<usize> {
        poll_fn(|cx| Pin::new(&mut *writer).poll_write(cx, data)).await
    }

    per_backend! {
        /// `AsyncRead` and `AsyncBufRead` read the stream as `read` does; the end of stream is
        /// `Ok(0)` / an empty buffer.
        fn stream_reader_is_async_read_and_async_buf_read(b: Backend) {
            on_both(b, |family| async move {
                let (mut reader, _writer, peer) = connected(family, "asyncread").await?;
                peer.write_all(b"hello world").await?;
                let mut buf = [0; 5];
                assert_eq!(read_some(&mut reader, &mut buf).await?, 5);
                assert_eq!(&buf, b"hello");
                assert_eq!(read_some(&mut reader, &mut []).await?, 0);
                let filled = fill(&mut reader).await?;
                assert_eq!(filled, b" world");
                Pin::new(&mut reader).consume(3);
                assert_eq!(reader.readexactly(3).await?, b"rld");
                peer.shutdown_write()?;
                assert_eq!(fill(&mut reader).await?, b"");
                assert_eq!(read_some(&mut reader, &mut buf).await?, 0);
                Ok(())
            });
        }

        /// `AsyncWrite`: `poll_write` takes everything until the transport's buffer is above
        /// its high-water mark, then is pending until the peer reads; `poll_flush` drains;
        /// `poll_close` sends the end of stream after the buffered bytes, and reading goes on.
        fn stream_writer_is_async_write(b: Backend) {
            on_both(b, |family| async move {
                let (mut reader, writer, peer) = connected(family, "asyncwrite").await?;
                let mut writer = writer;
                writer.transport().set_write_buffer_limits(Some(16 * 1024), None)?;
                let (_, high) = writer.transport().get_write_buffer_limits();
                let chunk = vec![9u8; 32 * 1024];
                let mut written = 0;
                while writer.transport().get_write_buffer_size() <= high {
                    written += write_some(&mut writer, &chunk).await?;
                }
                let waker = std::task::Waker::from(std::sync::Arc::new(Noop));
                let mut cx = std::task::Context::from_waker(&waker);
                assert!(Pin::new(&mut writer).poll_write(&mut cx, &chunk).is_pending());
                assert!(Pin::new(&mut writer).poll_flush(&mut cx).is_pending());
                let writing = async {
                    written += write_some(&mut writer, &chunk).await?;
                    poll_fn(|cx| Pin::new(&mut writer).poll_flush(cx)).await?;
                    poll_fn(|cx| Pin::new(&mut writer).poll_close(cx)).await?;
                    Ok::<_, io::Error>(written)
                };
                let (written, read) = join(writing, peer.read_to_end()).await;
                assert_eq!(read?.len(), written?);
                peer.write_all(b"after close").await?;
                peer.shutdown_write()?;
                assert_eq!(reader.read_to_eof().await?, b"after close");
                Ok(())
            });
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The limit given when the streams are made (asyncio's `limit=`).

per_backend! {
    /// `open_connection_with` / `open_unix_connection_with`: the reader has the limit given,
    /// and a line longer than it fails with the `LimitOverrunError`.
    fn the_limit_given_to_open_connection_reaches_the_reader(b: Backend) {
        on_both(b, |family| async move {
            let options = StreamOptions::new().limit(8);
            let (mut reader, _writer, peer) =
                connected_with(family, "limit-open", Some(options)).await?;
            assert_eq!(reader.limit(), 8, "on {family:?}");
            peer.write_all(b"0123456789|short|").await?;
            let error = reader.readuntil(b"|").await.unwrap_err();
            let overrun = LimitOverrunError::of(&error).expect("an overrun");
            assert_eq!(overrun.consumed(), 10);
            assert_eq!(reader.readexactly(11).await?, b"0123456789|");
            assert_eq!(reader.readuntil(b"|").await?, b"short|");
            Ok(())
        });
    }

    /// `start_server_with` / `start_unix_server_with`: every connection's reader has the
    /// limit given (the server says what its reader did with a line too long for it).
    fn the_limit_given_to_start_server_reaches_each_reader(b: Backend) {
        on_both(b, |family| async move {
            let options = StreamOptions::new().limit(8);
            let serving = serve_with(
                family,
                "limit-serve",
                Some(options),
                |mut reader: StreamReader, writer: StreamWriter| async move {
                    let error = reader.readline().await.unwrap_err();
                    let overrun = LimitOverrunError::of(&error).expect("an overrun");
                    let report = format!("limit {}: over at {}\n", reader.limit(), overrun.consumed());
                    writer.write(report.as_bytes())?;
                    writer.write(&reader.readline().await?)?;
                    writer.close();
                    writer.wait_closed().await
                },
            )
            .await?;
            for _ in 0..2 {
                let (mut reader, writer) = serving.open().await?;
                assert_eq!(reader.limit(), DEFAULT_LIMIT, "the client's is the default");
                writer.write(b"0123456789\nshort\n")?;
                let reply = reader.read_to_eof().await?;
                assert_eq!(reply, b"limit 8: over at 10\nshort\n", "on {family:?}");
            }
            Ok(())
        });
    }

    /// A limit of 0 is `InvalidInput` (asyncio's `ValueError`) from each of the four, before
    /// any socket is bound.
    fn a_limit_of_zero_is_refused_when_the_streams_are_made(b: Backend) {
        let lp = new_loop(b);
        run_test(&lp, async move {
            let zero = StreamOptions::new().limit(0);
            let listener = TcpListener::bind("127.0.0.1:0")?;
            let addr = listener.local_addr()?;
            let path = socket_path("limit-zero", b);
            let echo = |_: StreamReader, _: StreamWriter| std::future::ready(());
            assert_eq!(
                kind_of(&open_connection_with(addr, zero).await),
                ErrorKind::InvalidInput
            );
            assert_eq!(
                kind_of(&open_unix_connection_with(&path, zero).await),
                ErrorKind::InvalidInput
            );
            assert_eq!(
                kind_of(&start_server_with(echo, "127.0.0.1:0", zero).await),
                ErrorKind::InvalidInput
            );
            assert_eq!(
                kind_of(&start_unix_server_with(echo, &path, zero).await),
                ErrorKind::InvalidInput
            );
            assert!(!path.exists(), "nothing was bound");
            drop(listener);
            Ok(())
        });
    }
}

// ---------------------------------------------------------------------------------------------
// `readuntil_any`: asyncio 3.13's `readuntil` with a tuple of separators.

const LINE_ENDS: &[&[u8]] = &[b"\r\n", b"\n"];

#[test]
fn readuntil_any_takes_the_shortest_chunk_that_ends_with_a_separator() {
    on_loop(async {
        let mut reader = StreamReader::new();
        reader.feed_data(b"dos\r\nunix\nword<END>later|");
        assert_eq!(reader.readuntil_any(LINE_ENDS).await?, b"dos\r\n");
        assert_eq!(reader.readuntil_any(LINE_ENDS).await?, b"unix\n");
        // The first to end wins, long or short, whatever order they are given in.
        assert_eq!(reader.readuntil_any(&[b"|", b"<END>"]).await?, b"word<END>");
        assert_eq!(reader.readuntil_any(&[b"<END>", b"|"]).await?, b"later|");
        // Overlapping separators ending at the same byte: the same chunk either way.
        reader.feed_data(b"abcab");
        assert_eq!(reader.readuntil_any(&[b"cab", b"ab", b"b"]).await?, b"ab");
        assert_eq!(reader.readuntil_any(&[b"cab", b"b"]).await?, b"cab");
        // One separator is `readuntil`.
        reader.feed_data(b"k=v;;");
        assert_eq!(reader.readuntil_any(&[b";;"]).await?, b"k=v;;");
        assert_eq!(reader.buffered(), 0);
        Ok(())
    });
}

#[test]
fn readuntil_any_refuses_no_separator_and_an_empty_one() {
    on_loop(async {
        let mut reader = StreamReader::new();
        reader.feed_data(b"a\nb");
        assert_eq!(
            kind_of(&reader.readuntil_any(&[]).await),
            ErrorKind::InvalidInput
        );
        assert_eq!(
            kind_of(&reader.readuntil_any(&[b"\n", b""]).await),
            ErrorKind::InvalidInput
        );
        assert_eq!(reader.buffered(), 3, "nothing taken");
        assert_eq!(reader.readuntil_any(LINE_ENDS).await?, b"a\n");
        Ok(())
    });
}

#[test]
fn readuntil_any_over_the_limit_counts_as_asyncio_does() {
    on_loop(async {
        // Found beyond the limit: `consumed` is where the matching separator starts, and the
        // shortest of those ending at the same byte is the one that matched (asyncio's rule):
        // `\n` at 6 here, beyond a limit of 5, although `\r\n` starts at 5.
        let mut reader = StreamReader::with_limit(5)?;
        reader.feed_data(b"abcde\r\nrest");
        let error = reader.readuntil_any(LINE_ENDS).await.unwrap_err();
        assert_eq!(error.kind(), ErrorKind::InvalidData);
        let overrun = LimitOverrunError::of(&error).expect("an overrun");
        assert_eq!((overrun.consumed(), overrun.separator_found()), (6, true));
        assert_eq!(reader.buffered(), 11, "the bytes stay");
        assert_eq!(
            reader.readuntil(b"\r\n").await?,
            b"abcde\r\n",
            "\\r\\n alone starts at 5"
        );

        // Not found in more than the limit's worth: `consumed` counts from the longest
        // separator (buffered + 1 - its length).
        let mut reader = StreamReader::with_limit(4)?;
        reader.feed_data(b"0123456789");
        let error = reader.readuntil_any(&[b"\n", b"<END>"]).await.unwrap_err();
        let overrun = LimitOverrunError::of(&error).expect("an overrun");
        assert_eq!((overrun.consumed(), overrun.separator_found()), (6, false));
        assert_eq!(reader.buffered(), 10, "the bytes stay");
        Ok(())
    });
}

#[test]
fn readuntil_any_at_the_end_of_stream_gives_the_rest() {
    on_loop(async {
        let mut reader = StreamReader::new();
        reader.feed_data(b"last\r");
        reader.feed_eof();
        let error = reader.readuntil_any(LINE_ENDS).await.unwrap_err();
        assert_eq!(error.kind(), ErrorKind::UnexpectedEof);
        let incomplete = IncompleteReadError::take(error)?;
        assert_eq!(incomplete.partial(), b"last\r");
        assert_eq!(incomplete.expected(), None);
        assert!(reader.at_eof());
        Ok(())
    });
}

per_backend! {
    /// Separators the peer writes a byte at a time are found across every piece, the first
    /// to end winning; the rest comes in the `IncompleteReadError` at the end of stream.
    fn readuntil_any_spans_one_byte_pieces(b: Backend) {
        on_both(b, |family| async move {
            let (mut reader, _writer, peer) = connected(family, "any-pieces").await?;
            let separators: &[&[u8]] = &[b"\r\n", b"\n", b"<END>"];
            let reading = async {
                let mut got = Vec::new();
                for _ in 0..4 {
                    got.push(reader.readuntil_any(separators).await?);
                }
                let error = reader.readuntil_any(separators).await.unwrap_err();
                got.push(IncompleteReadError::take(error)?.into_partial());
                Ok::<_, io::Error>(got)
            };
            let writing = async {
                peer.trickle(b"one\r\ntwo\nthree<EN>D<END>four\r\ntail<EN").await?;
                peer.shutdown_write()
            };
            let (got, wrote) = join(reading, writing).await;
            wrote?;
            let expected: [&[u8]; 5] =
                [b"one\r\n", b"two\n", b"three<EN>D<END>", b"four\r\n", b"tail<EN"];
            assert_eq!(got?, expected, "on {family:?}");
            assert!(reader.at_eof());
            Ok(())
        });
    }

    /// Over the limit given to the connection: the error keeps the bytes, which read on.
    fn readuntil_any_over_the_limit_from_the_peer(b: Backend) {
        on_both(b, |family| async move {
            let options = StreamOptions::new().limit(4);
            let (mut reader, _writer, peer) =
                connected_with(family, "any-limit", Some(options)).await?;
            peer.write_all(b"0123456789\nok\r\n").await?;
            let error = reader.readuntil_any(LINE_ENDS).await.unwrap_err();
            let overrun = LimitOverrunError::of(&error).expect("an overrun");
            assert!(overrun.consumed() > 4, "{overrun:?}");
            assert_eq!(reader.readexactly(11).await?, b"0123456789\n");
            assert_eq!(reader.readuntil_any(LINE_ENDS).await?, b"ok\r\n");
            Ok(())
        });
    }
}

// ---------------------------------------------------------------------------------------------
// A reader fed while its read waits (asyncio's tests feed it from a callback), through its
// `StreamFeeder`.

/// Run `feed` on `feeder` from a callback of the running loop: the read awaited next is
/// waiting by then.
fn soon(feeder: &StreamFeeder, feed: impl FnOnce(&StreamFeeder) + 'static) -> io::Result<()> {
    let feeder = feeder.clone();
    tulip::get_running_loop()?.call_soon(move |_| feed(&feeder))?;
    Ok(())
}

#[test]
fn a_waiting_read_wakes_for_data_the_end_of_stream_and_an_exception() {
    on_loop(async {
        const DATA: &[u8] = b"line1\nline2\nline3\n";
        // read(n) waits for the next bytes, read at the end of stream gets nothing.
        let mut reader = StreamReader::new();
        let feeder = reader.feeder();
        soon(&feeder, |f| f.feed_data(DATA))?;
        assert_eq!(reader.read(30).await?, DATA);
        soon(&feeder, |f| f.feed_eof())?;
        assert_eq!(reader.read(1024).await?, b"");
        assert!(reader.at_eof());

        // readline across pieces fed while it waits; what follows the line stays.
        let mut reader = StreamReader::new();
        let feeder = reader.feeder();
        reader.feed_data(b"chunk1 ");
        soon(&feeder, |f| {
            f.feed_data(b"chunk2 ");
            f.feed_data(b"chunk3 ");
            f.feed_data(b"\n chunk4");
        })?;
        assert_eq!(reader.readline().await?, b"chunk1 chunk2 chunk3 \n");
        assert_eq!(reader.buffered(), b" chunk4".len());

        // readexactly waits for all n, and leaves the rest; the end of stream meanwhile gives
        // the partial bytes.
        let mut reader = StreamReader::new();
        let feeder = reader.feeder();
        soon(&feeder, |f| (0..3).for_each(|_| f.feed_data(DATA)))?;
        assert_eq!(reader.readexactly(2 * DATA.len()).await?, DATA.repeat(2));
        assert_eq!(reader.buffered(), DATA.len());
        soon(&feeder, |f| f.feed_eof())?;
        let error = reader.readexactly(2 * DATA.len()).await.unwrap_err();
        assert_eq!(
            error.to_string(),
            "18 bytes read on a total of 36 expected bytes"
        );
        let incomplete = IncompleteReadError::of(&error).expect("an IncompleteReadError");
        assert_eq!(
            (incomplete.partial(), incomplete.expected()),
            (DATA, Some(36))
        );

        // read_to_eof (read(-1)) takes every piece until the end.
        let mut reader = StreamReader::new();
        soon(&reader.feeder(), |f| {
            f.feed_data(b"chunk1\n");
            f.feed_data(b"chunk2");
            f.feed_eof();
        })?;
        assert_eq!(reader.read_to_eof().await?, b"chunk1\nchunk2");

        // An exception set while readline waits fails it, and stays (exception()).
        let mut reader = StreamReader::new();
        soon(&reader.feeder(), |f| {
            f.set_exception(io::Error::from_raw_os_error(libc::ECONNABORTED));
        })?;
        assert_eq!(
            kind_of(&reader.readline().await),
            ErrorKind::ConnectionAborted
        );
        assert_eq!(
            reader.exception().and_then(|e| e.raw_os_error()),
            Some(libc::ECONNABORTED)
        );
        Ok(())
    });
}

#[test]
fn readline_over_the_limit_with_data_fed_while_it_waits() {
    on_loop(async {
        // The whole long line dropped, through its newline and no further.
        const LONG_LAST: [&[u8]; 3] = [b"chunk1", b"chunk2", b"chunk3\n"];
        const LONG_FIRST: [&[u8]; 3] = [b"chunk1", b"chunk2\n", b"chunk3\n"];
        for (pieces, left) in [(LONG_LAST, &b""[..]), (LONG_FIRST, &b"chunk3\n"[..])] {
            let mut reader = StreamReader::with_limit(7)?;
            soon(&reader.feeder(), move |f| {
                pieces.iter().for_each(|piece| f.feed_data(piece));
                f.feed_eof();
            })?;
            let error = reader.readline().await.unwrap_err();
            assert_eq!(error.kind(), ErrorKind::InvalidData);
            assert_eq!(reader.read_to_eof().await?, left);
        }
        // The limit is strict: 7 bytes and the newline pass, 8 do not.
        let mut reader = StreamReader::with_limit(7)?;
        reader.feed_data(b"1234567\n");
        assert_eq!(reader.readline().await?, b"1234567\n");
        reader.feed_data(b"12345678\n");
        assert_eq!(kind_of(&reader.readline().await), ErrorKind::InvalidData);
        assert_eq!(reader.buffered(), 0);
        reader.feed_data(b"12345678");
        assert_eq!(kind_of(&reader.readline().await), ErrorKind::InvalidData);
        assert_eq!(reader.buffered(), 0);

        // readuntil: not found past the limit, then found past it; the bytes stay each time.
        let mut reader = StreamReader::with_limit(3)?;
        reader.feed_data(b"some dataAA");
        let error = reader.readuntil(b"AAA").await.unwrap_err();
        assert!(!LimitOverrunError::of(&error)
            .expect("an overrun")
            .separator_found());
        assert_eq!(reader.buffered(), 11);
        reader.feed_data(b"A");
        let error = reader.readuntil(b"AAA").await.unwrap_err();
        assert!(LimitOverrunError::of(&error)
            .expect("an overrun")
            .separator_found());
        assert_eq!(reader.read(100).await?, b"some dataAAA");
        Ok(())
    });
}

// ---------------------------------------------------------------------------------------------
// The writer against asyncio's tests: several drains, a peer gone, close.

per_backend! {
    /// Ten tasks drain at once while the peer does not read (asyncio's test_multiple_drain):
    /// all wait, and all return once it has read.
    fn several_drains_wait_together_and_all_return(b: Backend) {
        on_both(b, |family| async move {
            const DRAINERS: usize = 10;
            let (_reader, writer, peer) = connected(family, "drains").await?;
            writer.transport().set_write_buffer_limits(Some(16 * 1024), None)?;
            let chunk = vec![7u8; 64 * 1024];
            while writer.transport().get_write_buffer_size() <= 4 << 20 {
                writer.write(&chunk)?;
            }
            let writer = Rc::new(writer);
            let drained = Rc::new(Cell::new(0));
            let mut tasks = Vec::new();
            for _ in 0..DRAINERS {
                let (writer, drained) = (writer.clone(), drained.clone());
                tasks.push(spawn(async move {
                    writer.drain().await?;
                    drained.set(drained.get() + 1);
                    Ok::<_, io::Error>(())
                })?);
            }
            for _ in 0..20 {
                yield_now().await;
            }
            assert_eq!(drained.get(), 0, "every drain waits while the peer does not read");
            let mut buf = vec![0; 64 * 1024];
            while drained.get() < DRAINERS {
                peer.read(&mut buf).await?;
            }
            for task in tasks {
                task.await??;
            }
            Ok(())
        });
    }

    /// A peer that closes without reading: a loop of `write` and `drain` ends with
    /// `BrokenPipe` or `ConnectionReset` instead of spinning (asyncio's test_drain_raises),
    /// and nothing reaches the exception handler.
    fn writing_to_a_peer_that_closed_fails_instead_of_spinning(b: Backend) {
        on_both(b, |family| async move {
            let lp = tulip::get_running_loop()?;
            let reported = Rc::new(RefCell::new(Vec::new()));
            let seen = reported.clone();
            lp.set_exception_handler(move |_, context| {
                seen.borrow_mut().push(format!("{:?} {:?}", context.message(), context.error()));
            });
            let (_reader, writer, peer) = connected(family, "peer-closed").await?;
            drop(peer);
            let mut failed = None;
            for _ in 0..1_000_000 {
                let wrote = match writer.write(b"foo\n") {
                    Ok(()) => writer.drain().await,
                    Err(e) => Err(e),
                };
                if let Err(e) = wrote {
                    failed = Some(e);
                    break;
                }
            }
            let error = failed.expect("writing to a closed peer fails");
            assert!(
                matches!(error.kind(), ErrorKind::BrokenPipe | ErrorKind::ConnectionReset),
                "{family:?}: {error:?}"
            );
            for _ in 0..5 {
                yield_now().await;
            }
            assert!(reported.borrow().is_empty(), "{:?}", reported.borrow());
            Ok(())
        });
    }

    /// The writer's addresses (asyncio's `get_extra_info('peername' / 'sockname')`);
    /// `writelines` sends its pieces in order, and the buffered bytes go out on `close`; after
    /// `close`, `writelines` is refused and `drain` fails with `ConnectionReset` (asyncio's
    /// test_async_writer_api_exception_after_close), `wait_closed` returns, and the reader is
    /// at its end, reading nothing (test_eof_feed_when_closing_writer), though the peer sent
    /// no end of stream.
    fn closing_the_writer_ends_its_reader_and_fails_drain(b: Backend) {
        on_both(b, |family| async move {
            let (mut reader, writer, peer) = connected(family, "close-ends").await?;
            match &peer {
                Peer::Tcp(peer) => {
                    assert_eq!(writer.peer_addr(), Some(peer.local_addr()?));
                    assert_eq!(writer.local_addr(), Some(peer.peer_addr()?));
                    assert_eq!(writer.peername().and_then(|a| a.as_inet()), Some(peer.local_addr()?));
                }
                Peer::Unix(peer) => {
                    assert_eq!(writer.peer_addr(), None);
                    let peername = writer.peername().expect("a Unix peer's address");
                    let path = peer.local_addr()?.as_pathname().map(PathBuf::from);
                    assert_eq!(peername.as_pathname().map(PathBuf::from), path);
                    assert!(writer.sockname().expect("an address").is_unnamed());
                }
            }
            writer.writelines([&b"one\n"[..], b"two\n"])?;
            writer.writelines(vec![b"three\n".to_vec()])?;
            assert!(!writer.is_closing());
            writer.close();
            assert!(writer.is_closing());
            assert_eq!(kind_of(&writer.writelines([b"late"])), ErrorKind::BrokenPipe);
            assert_eq!(kind_of(&writer.drain().await), ErrorKind::ConnectionReset);
            writer.wait_closed().await?;
            assert!(reader.at_eof(), "{family:?}: the reader got its end");
            assert_eq!(reader.read(10).await?, b"");
            assert_eq!(peer.read_to_end().await?, b"one\ntwo\nthree\n");
            Ok(())
        });
    }
}
