//! Properties of the socket layer's byte movers, each checked for every generated case on every
//! backend of this OS (a fresh loop per backend), against a small model:
//!
//! 1. a byte stream (a Unix socketpair, a TCP loopback connection, a pipe) delivers exactly the
//!    bytes written, in order, however the writes and the reads are cut;
//! 2. UDP datagrams sent on loopback are received one by one, as sent (cut to the buffer).
//!
//! The transports over these sockets have theirs in `transport_properties.rs`; the two share
//! the configuration, the loop per case and the byte pattern (`support/properties.rs`).
//!
//! Both peers run on the same loop, so nothing depends on another thread's timing, and nothing
//! asserts a duration: [`TIMEOUT`] only turns a hang into a failure.
//!
//! 32 cases per property by default; `PROPTEST_CASES=256 cargo test --test net_properties` for
//! more.

use std::io::{self, ErrorKind};
use std::net::Shutdown;

use proptest::collection::vec;
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use tulip::net::{pipe, PipeReader, PipeWriter, TcpListener, TcpStream, UdpSocket, UnixStream};
use tulip::selectors::Backend;
use tulip::{spawn, yield_now};

#[macro_use]
#[path = "support/properties.rs"]
mod properties;
use properties::*;

// ---- The bytes ----------------------------------------------------------------------------------

/// A summary of a byte-stream mismatch: lengths and the first differing offset.
fn describe_mismatch(got: &[u8], model: &[u8]) -> String {
    let first = got.iter().zip(model).position(|(a, b)| a != b);
    let first = first.unwrap_or(got.len().min(model.len()));
    format!(
        "{} bytes received, {} expected, first difference at byte {first}",
        got.len(),
        model.len()
    )
}

// ---- 1. Byte streams ----------------------------------------------------------------------------

#[derive(Copy, Clone, Debug)]
enum StreamKind {
    UnixPair,
    TcpLoopback,
    Pipe,
}

const STREAM_KINDS: [StreamKind; 3] = [
    StreamKind::UnixPair,
    StreamKind::TcpLoopback,
    StreamKind::Pipe,
];

/// How a chunk is written.
#[derive(Copy, Clone, Debug)]
enum WriteWith {
    /// `write` again and again until it has taken the chunk (an empty chunk: one `write`).
    Write,
    WriteAll,
    /// `try_write`, awaiting `writable` on `WouldBlock`.
    TryWrite,
}

/// How a read is made.
#[derive(Copy, Clone, Debug)]
enum ReadWith {
    Read,
    /// `try_read`, awaiting `readable` on `WouldBlock`.
    TryRead,
}

/// The writing end of a stream under test.
enum WritingEnd {
    Unix(UnixStream),
    Tcp(TcpStream),
    Pipe(PipeWriter),
}

/// The reading end of a stream under test.
enum ReadingEnd {
    Unix(UnixStream),
    Tcp(TcpStream),
    Pipe(PipeReader),
}

/// A new stream of `kind`: its two ends, connected.
async fn open(kind: StreamKind) -> io::Result<(WritingEnd, ReadingEnd)> {
    Ok(match kind {
        StreamKind::UnixPair => {
            let (a, b) = UnixStream::pair()?;
            (WritingEnd::Unix(a), ReadingEnd::Unix(b))
        }
        StreamKind::TcpLoopback => {
            let listener = TcpListener::bind("127.0.0.1:0")?;
            let client = TcpStream::connect(listener.local_addr()?).await?;
            let (server, _) = listener.accept().await?;
            (WritingEnd::Tcp(client), ReadingEnd::Tcp(server))
        }
        StreamKind::Pipe => {
            let (reader, writer) = pipe()?;
            (WritingEnd::Pipe(writer), ReadingEnd::Pipe(reader))
        }
    })
}

impl WritingEnd {
    async fn write_chunk(&self, chunk: &[u8], how: WriteWith) -> io::Result<()> {
        if let WriteWith::WriteAll = how {
            return on_end!(self, WritingEnd[Unix, Tcp, Pipe], s => s.write_all(chunk).await);
        }
        let mut rest = chunk;
        loop {
            let n = match how {
                WriteWith::TryWrite => {
                    match on_end!(self, WritingEnd[Unix, Tcp, Pipe], s => s.try_write(rest)) {
                        Err(e) if e.kind() == ErrorKind::WouldBlock => {
                            on_end!(self, WritingEnd[Unix, Tcp, Pipe], s => s.writable().await)?;
                            continue;
                        }
                        written => written?,
                    }
                }
                _ => on_end!(self, WritingEnd[Unix, Tcp, Pipe], s => s.write(rest).await)?,
            };
            rest = &rest[n..];
            if rest.is_empty() {
                return Ok(());
            }
            if n == 0 {
                return Err(ErrorKind::WriteZero.into());
            }
        }
    }

    /// End the stream: `shutdown(Write)` for a socket, which is handed back so that it stays
    /// open (the reader's end of stream must come from the shutdown); a pipe is closed.
    fn end_stream(self) -> io::Result<Option<WritingEnd>> {
        match &self {
            WritingEnd::Unix(s) => s.shutdown(Shutdown::Write)?,
            WritingEnd::Tcp(s) => s.shutdown(Shutdown::Write)?,
            WritingEnd::Pipe(_) => return Ok(None),
        }
        Ok(Some(self))
    }
}

impl ReadingEnd {
    async fn read_with(&self, buf: &mut [u8], how: ReadWith) -> io::Result<usize> {
        match how {
            ReadWith::Read => on_end!(self, ReadingEnd[Unix, Tcp, Pipe], s => s.read(buf).await),
            ReadWith::TryRead => loop {
                match on_end!(self, ReadingEnd[Unix, Tcp, Pipe], s => s.try_read(buf)) {
                    Err(e) if e.kind() == ErrorKind::WouldBlock => {
                        on_end!(self, ReadingEnd[Unix, Tcp, Pipe], s => s.readable().await)?;
                    }
                    read => return read,
                }
            },
        }
    }

    /// Read until the end of the stream, the `reads` (size, how) taken in turn, cycling.
    async fn read_to_end(&self, reads: &[(usize, ReadWith)]) -> io::Result<Vec<u8>> {
        let mut received = Vec::new();
        let mut buf = vec![0; reads.iter().map(|r| r.0).max().unwrap_or(0)];
        for &(size, how) in reads.iter().cycle() {
            match self.read_with(&mut buf[..size], how).await? {
                0 => return Ok(received),
                n => received.extend_from_slice(&buf[..n]),
            }
        }
        unreachable!("reads is not empty, and a cycle over it does not end")
    }
}

/// Write `chunks` into a new stream of `kind` from one task while another reads it with
/// `reads`: what the reader got before the end of the stream.
fn transfer(
    backend: Backend,
    kind: StreamKind,
    chunks: Vec<(Vec<u8>, WriteWith)>,
    reads: Vec<(usize, ReadWith)>,
) -> Result<Vec<u8>, TestCaseError> {
    run_on(backend, async move {
        let (writing, reading) = open(kind).await?;
        let writer = spawn(async move {
            for (chunk, how) in &chunks {
                writing.write_chunk(chunk, *how).await?;
            }
            writing.end_stream()
        })?;
        let received = reading.read_to_end(&reads).await?;
        let _still_open = writer.await??;
        Ok(received)
    })
}

fn chunk_len() -> impl Strategy<Value = usize> {
    prop_oneof![1 => 0..=64usize, 3 => 0..=70_000usize]
}

fn write_with() -> impl Strategy<Value = WriteWith> {
    prop_oneof![
        Just(WriteWith::Write),
        Just(WriteWith::WriteAll),
        Just(WriteWith::TryWrite)
    ]
}

fn reads() -> impl Strategy<Value = Vec<(usize, ReadWith)>> {
    let size = prop_oneof![1 => 1..=64usize, 3 => 1..=70_000usize];
    let how = prop_oneof![Just(ReadWith::Read), Just(ReadWith::TryRead)];
    vec((size, how), 1..=4)
}

// ---- 2. Datagrams -------------------------------------------------------------------------------

/// The `i`-th datagram of a case: `len` bytes of the pattern, from a phase of its own.
fn datagram(i: usize, len: usize) -> Vec<u8> {
    pattern_at(i * 97, len).to_vec()
}

/// Send datagrams of `sizes` from one bound socket to another and receive them there with
/// `recv_from` into a buffer of `buffer` bytes (after the receiver started waiting, if
/// `receiver_waits`): what it got, checked to come from the sender, with nothing left after.
fn exchange(
    backend: Backend,
    sizes: Vec<usize>,
    buffer: usize,
    receiver_waits: bool,
) -> Result<Vec<Vec<u8>>, TestCaseError> {
    run_on(backend, async move {
        let receiver = UdpSocket::bind("127.0.0.1:0")?;
        let sender = UdpSocket::bind("127.0.0.1:0")?;
        let (to, from) = (receiver.local_addr()?, sender.local_addr()?);
        let count = sizes.len();
        let receiving = spawn(async move {
            let mut got = Vec::new();
            let mut buf = vec![0; buffer];
            for _ in 0..count {
                let (n, peer) = receiver.recv_from(&mut buf).await?;
                if peer != from {
                    return Err(io::Error::other(format!(
                        "a datagram from {peer}, not {from}"
                    )));
                }
                got.push(buf[..n].to_vec());
            }
            match receiver.try_recv_from(&mut buf) {
                Err(e) if e.kind() == ErrorKind::WouldBlock => Ok(got),
                other => Err(io::Error::other(format!(
                    "after the last datagram: {other:?}"
                ))),
            }
        })?;
        if receiver_waits {
            yield_now().await;
        }
        for (i, &size) in sizes.iter().enumerate() {
            let sent = sender.send_to(&datagram(i, size), to).await?;
            if sent != size {
                return Err(io::Error::other(format!(
                    "datagram {i}: {sent} of {size} sent"
                )));
            }
        }
        receiving.await?
    })
}

// ---- The properties -----------------------------------------------------------------------------

proptest! {
    #![proptest_config(config())]

    /// Over a Unix socketpair, a TCP loopback connection and a pipe; the model is the
    /// concatenation of the chunks.
    #[test]
    fn a_stream_delivers_exactly_the_bytes_written_in_order_whatever_the_chunking(
        chunks in vec((chunk_len(), write_with()), 0..=5),
        reads in reads(),
    ) {
        let mut offset = 0;
        let chunks: Vec<(Vec<u8>, WriteWith)> = chunks
            .into_iter()
            .map(|(len, how)| {
                offset += len;
                (pattern_at(offset - len, len).to_vec(), how)
            })
            .collect();
        let model: Vec<u8> = chunks.iter().flat_map(|(chunk, _)| chunk.iter().copied()).collect();
        for kind in STREAM_KINDS {
            for &backend in Backend::available() {
                let got = transfer(backend, kind, chunks.clone(), reads.clone())?;
                prop_assert!(
                    got == model,
                    "{:?} on {}: {}", kind, backend, describe_mismatch(&got, &model)
                );
            }
        }
    }

    /// The model is the datagrams in the order sent, each cut to the receiving buffer.
    #[test]
    fn every_backend_reports_the_same_datagrams(
        sizes in vec(prop_oneof![0..=16usize, 0..=1400usize], 1..=8),
        buffer in prop_oneof![3 => Just(1500usize), 1 => 0..=1500usize],
        receiver_waits in any::<bool>(),
    ) {
        let model: Vec<Vec<u8>> = sizes
            .iter()
            .enumerate()
            .map(|(i, &size)| datagram(i, size.min(buffer)))
            .collect();
        for &backend in Backend::available() {
            let got = exchange(backend, sizes.clone(), buffer, receiver_waits)?;
            prop_assert_eq!(&got, &model, "on {}", backend);
        }
    }
}
