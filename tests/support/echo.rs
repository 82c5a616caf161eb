//! The TCP tests' peers: a coroutine echo server ([`spawn_echo`]) that records what it saw,
//! clients of it, a flooding peer on threads ([`Flood`]), and the byte pattern they all send
//! ([`pattern`]), periodic and never zeros, so that a lost, repeated or reordered chunk shows.
//! Included with `#[path]` by the tests that need them.

#![allow(dead_code)]

use std::cell::{Cell, RefCell};
use std::future::{poll_fn, Future};
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::pin::pin;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::Poll;
use std::thread::{self, JoinHandle};

use tulip::net::{OwnedReadHalf, OwnedWriteHalf, TcpListener, TcpStream};

/// The echo server's one buffer per connection: all it ever holds of a client's bytes.
pub const ECHO_BUFFER: usize = 64 * 1024;

// ---------------------------------------------------------------------------------------------
// Two futures in one task.

/// Both futures, polled in turn by the one task awaiting this: both outputs.
pub async fn join<A: Future, B: Future>(a: A, b: B) -> (A::Output, B::Output) {
    let (mut a, mut b) = (pin!(a), pin!(b));
    let (mut a_out, mut b_out) = (None, None);
    poll_fn(|cx| {
        if a_out.is_none() {
            if let Poll::Ready(out) = a.as_mut().poll(cx) {
                a_out = Some(out);
            }
        }
        if b_out.is_none() {
            if let Poll::Ready(out) = b.as_mut().poll(cx) {
                b_out = Some(out);
            }
        }
        match (a_out.take(), b_out.take()) {
            (Some(a), Some(b)) => Poll::Ready((a, b)),
            (a, b) => {
                (a_out, b_out) = (a, b);
                Poll::Pending
            }
        }
    })
    .await
}

// ---------------------------------------------------------------------------------------------
// The bytes the tests send.

/// The period of the test streams' pattern: 251 × 241, prime to every buffer size used here, so
/// a lost, repeated or reordered chunk shows.
pub const PERIOD: usize = 251 * 241;

/// Byte `i` of a test stream: never all zeros, period [`PERIOD`].
pub fn pattern_byte(i: u64) -> u8 {
    (i % 251) as u8 ^ (i / 251 % 241) as u8
}

/// `len` (at most [`PERIOD`]) bytes of the pattern from stream offset `offset`.
pub fn pattern_chunk(offset: u64, len: usize) -> &'static [u8] {
    static TABLE: OnceLock<Vec<u8>> = OnceLock::new();
    assert!(len <= PERIOD, "a chunk of at most one period");
    let table = TABLE.get_or_init(|| (0..2 * PERIOD as u64).map(pattern_byte).collect());
    let start = (offset % PERIOD as u64) as usize;
    &table[start..start + len]
}

/// `len` bytes of the pattern from stream offset `offset`.
pub fn pattern(offset: u64, len: usize) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(len);
    while bytes.len() < len {
        let at = offset + bytes.len() as u64;
        bytes.extend_from_slice(pattern_chunk(at, (len - bytes.len()).min(PERIOD)));
    }
    bytes
}

/// `got` is the pattern from stream offset `offset`; else the first wrong byte is named.
pub fn assert_pattern(offset: u64, got: &[u8]) {
    for (i, piece) in got.chunks(PERIOD).enumerate() {
        let at = offset + (i * PERIOD) as u64;
        if piece != pattern_chunk(at, piece.len()) {
            let wrong = piece
                .iter()
                .zip(at..)
                .position(|(&byte, i)| byte != pattern_byte(i))
                .expect("a piece that differs has a differing byte");
            let i = at + wrong as u64;
            panic!(
                "byte {i} of the stream is {} instead of {}",
                piece[wrong],
                pattern_byte(i)
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The echo server, and clients of it.

/// What an echo server saw, shared with the test that runs it.
#[derive(Default)]
pub struct EchoServer {
    /// The size of each connection's one buffer.
    buffer: usize,
    pub accepted: Cell<usize>,
    /// Every error `accept` returned, in order; the server logs each and accepts again.
    pub accept_errors: RefCell<Vec<io::Error>>,
    /// How each connection ended, in order: `Ok` at the client's end of stream, or the error.
    pub ended: RefCell<Vec<io::Result<()>>>,
    /// Over all connections: bytes read from clients, and bytes written back to them.
    pub bytes_read: Cell<u64>,
    pub bytes_written: Cell<u64>,
}

impl EchoServer {
    /// Bytes read and not yet written back: what the server holds.
    pub fn held(&self) -> u64 {
        self.bytes_read.get() - self.bytes_written.get()
    }
}

/// The accept loop gives up after this many errors: a spinning accept then ends the test with
/// a failure instead of filling memory.
pub const MAX_ACCEPT_ERRORS: usize = 10_000;

/// Start a coroutine echo server on `listener` on the running loop: an accept loop that logs
/// each error and accepts again, and a task per connection that writes back what it reads,
/// through one [`ECHO_BUFFER`], until the client's end of stream (then closes).
pub fn spawn_echo(listener: TcpListener) -> io::Result<Rc<EchoServer>> {
    spawn_echo_with_buffer(listener, ECHO_BUFFER)
}

/// [`spawn_echo`] with a buffer of `buffer` bytes per connection.
pub fn spawn_echo_with_buffer(listener: TcpListener, buffer: usize) -> io::Result<Rc<EchoServer>> {
    let server = Rc::new(EchoServer {
        buffer,
        ..EchoServer::default()
    });
    tulip::spawn(accept_loop(listener, Rc::clone(&server)))?;
    Ok(server)
}

async fn accept_loop(listener: TcpListener, server: Rc<EchoServer>) {
    while server.accept_errors.borrow().len() < MAX_ACCEPT_ERRORS {
        match listener.accept().await {
            Ok((stream, _peer)) => {
                server.accepted.set(server.accepted.get() + 1);
                if let Err(e) = tulip::spawn(serve(stream, Rc::clone(&server))) {
                    server.accept_errors.borrow_mut().push(e);
                    return;
                }
            }
            Err(e) => server.accept_errors.borrow_mut().push(e),
        }
    }
}

async fn serve(stream: TcpStream, server: Rc<EchoServer>) {
    let outcome = echo(&stream, &server).await;
    server.ended.borrow_mut().push(outcome);
}

async fn echo(stream: &TcpStream, server: &EchoServer) -> io::Result<()> {
    let mut buf = vec![0; server.buffer];
    loop {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            return Ok(());
        }
        server.bytes_read.set(server.bytes_read.get() + n as u64);
        stream.write_all(&buf[..n]).await?;
        server
            .bytes_written
            .set(server.bytes_written.get() + n as u64);
    }
}

/// Send `message` and read back its echo.
pub async fn round_trip(stream: &TcpStream, message: &[u8]) -> io::Result<()> {
    stream.write_all(message).await?;
    let mut echoed = vec![0; message.len()];
    stream.read_exact(&mut echoed).await?;
    assert_eq!(
        String::from_utf8_lossy(&echoed),
        String::from_utf8_lossy(message),
        "the echo of a round trip"
    );
    Ok(())
}

/// Everything `stream` reads until the end of stream.
pub async fn read_to_end(stream: &TcpStream) -> io::Result<Vec<u8>> {
    let mut all = Vec::new();
    let mut buf = [0; 4096];
    loop {
        match stream.read(&mut buf).await? {
            0 => return Ok(all),
            n => all.extend_from_slice(&buf[..n]),
        }
    }
}

/// Write `payload` and read its echo at the same time, through the halves of `split()`: a
/// payload larger than the kernel's buffers can only get through if the client reads while it
/// writes. The writing half ends the stream once done, so the echo ends too.
pub async fn echo_through_split(stream: &TcpStream, payload: &[u8]) -> io::Result<Vec<u8>> {
    let (reader, writer) = stream.split();
    let send = async {
        writer.write_all(payload).await?;
        writer.shutdown()
    };
    let receive = async {
        let mut echoed = Vec::with_capacity(payload.len());
        let mut buf = vec![0; ECHO_BUFFER];
        loop {
            match reader.read(&mut buf).await? {
                0 => return Ok::<_, io::Error>(echoed),
                n => echoed.extend_from_slice(&buf[..n]),
            }
        }
    };
    let (sent, echoed) = join(send, receive).await;
    sent?;
    echoed
}

/// A few round trips on `stream`, each message naming its connection and trip.
pub async fn talk(id: usize, stream: TcpStream) -> io::Result<()> {
    for trip in 0..3 {
        round_trip(
            &stream,
            format!("connection {id:04}, round trip {trip}").as_bytes(),
        )
        .await?;
    }
    Ok(())
}

/// Write the pattern to `writer` until cancelled, counting in `sent` what the kernel took.
pub async fn write_pattern_forever(writer: OwnedWriteHalf, sent: Rc<Cell<u64>>) -> io::Result<()> {
    loop {
        let n = writer
            .write(pattern_chunk(sent.get(), ECHO_BUFFER / 2))
            .await?;
        sent.set(sent.get() + n as u64);
    }
}

/// Read `reader` to its end, checking every byte against the pattern: how many there were.
pub async fn read_pattern_to_end(reader: &OwnedReadHalf) -> io::Result<u64> {
    let mut received = 0;
    let mut buf = vec![0; ECHO_BUFFER];
    loop {
        match reader.read(&mut buf).await? {
            0 => return Ok(received),
            n => {
                assert_pattern(received, &buf[..n]);
                received += n as u64;
            }
        }
    }
}

/// A peer the loop does not drive: two threads on one blocking std connection, one writing
/// the pattern as fast as the server takes it until told to stop, the other reading the echo
/// and checking it.
pub struct Flood {
    pub stop: Arc<AtomicBool>,
    pub received: Arc<AtomicU64>,
    writer: JoinHandle<io::Result<u64>>,
    reader: JoinHandle<io::Result<u64>>,
}

impl Flood {
    /// Connect to `addr` (on loopback the kernel completes it in the listener's backlog, so no
    /// loop needs to run yet) and start flooding.
    pub fn start(addr: SocketAddr) -> io::Result<Flood> {
        let mut writing = std::net::TcpStream::connect(addr)?;
        let mut reading = writing.try_clone()?;
        let stop = Arc::new(AtomicBool::new(false));
        let received = Arc::new(AtomicU64::new(0));
        let writer = thread::spawn({
            let stop = Arc::clone(&stop);
            move || {
                let mut sent = 0;
                while !stop.load(Ordering::Relaxed) {
                    let chunk = pattern_chunk(sent, ECHO_BUFFER / 2);
                    writing.write_all(chunk)?;
                    sent += chunk.len() as u64;
                }
                writing.shutdown(Shutdown::Write)?;
                Ok(sent)
            }
        });
        let reader = thread::spawn({
            let received = Arc::clone(&received);
            move || {
                let mut buf = vec![0; ECHO_BUFFER];
                loop {
                    let offset = received.load(Ordering::Relaxed);
                    match reading.read(&mut buf)? {
                        0 => return Ok(offset),
                        n => {
                            assert_pattern(offset, &buf[..n]);
                            received.store(offset + n as u64, Ordering::Relaxed);
                        }
                    }
                }
            }
        });
        Ok(Flood {
            stop,
            received,
            writer,
            reader,
        })
    }

    /// Wait for both threads (after `stop` was set and the server echoed the rest): the bytes
    /// sent and the bytes received back.
    pub fn join(self) -> (u64, u64) {
        let sent = self
            .writer
            .join()
            .expect("the flood's writer does not panic");
        let received = self
            .reader
            .join()
            .expect("the flood's reader does not panic");
        (
            sent.expect("the flood's writes succeed"),
            received.expect("the flood's reads succeed"),
        )
    }
}
