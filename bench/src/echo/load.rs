//! The load generator: C connections to one echo server, each a closed loop (send a message of
//! S bytes, read until all S are back, send the next), driven by one thread on the best
//! selector, level-triggered, so that it needs one CPU and little of it per round trip.
//!
//! Every byte that comes back is checked: connection `c` sends the bytes of a fixed pattern
//! (`offset % 251`) starting at offset `31 c`, so a byte lost, repeated, reordered or crossed
//! over from another connection shows as a mismatch, and the run stops with an error naming
//! the connection and the offset.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use tulip_sys::usage::thread_cpu_clock;
use tulip_sys::{DefaultSelector, Event, Interest, Selector, Token};

/// The pattern's period: a prime, so that it never lines up with a message or buffer size.
const PERIOD: usize = 251;

/// The most bytes written or read in one system call.
const CHUNK: usize = 64 * 1024;

/// How long the load waits for any event before calling the server stalled.
const STALL_TIMEOUT: Duration = Duration::from_secs(5);

/// What one sample of load did.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct LoadSample {
    /// Round trips completed (a message sent and all of it read back).
    pub trips: u64,
    /// From the first message sent to the last one back.
    pub wall: Duration,
    /// CPU time the load generator itself used meanwhile.
    pub cpu: Duration,
}

/// The bytes connections send: `PERIOD + CHUNK` of them, so that any run of up to `CHUNK`
/// pattern bytes is one slice.
#[derive(Debug)]
struct Pattern(Vec<u8>);

impl Pattern {
    fn new() -> Pattern {
        Pattern((0..PERIOD + CHUNK).map(|i| (i % PERIOD) as u8).collect())
    }

    /// The `len` (at most `CHUNK`) pattern bytes from stream offset `offset`.
    fn at(&self, offset: u64, len: usize) -> &[u8] {
        let start = (offset % PERIOD as u64) as usize;
        &self.0[start..start + len.min(CHUNK)]
    }
}

/// One client connection and where its byte stream is.
#[derive(Debug)]
struct Connection {
    stream: TcpStream,
    /// Stream offset of the next byte to send.
    sent: u64,
    /// Stream offset of the next byte expected back.
    received: u64,
    /// Stream offset where the message in flight ends: idle when `received == end`.
    end: u64,
    /// Whether WRITABLE is in the interest (only while part of a message is unsent).
    writing: bool,
}

/// Connections to one server, kept open for the whole run.
#[derive(Debug)]
pub struct Load {
    selector: DefaultSelector,
    connections: Vec<Connection>,
    size: usize,
    pattern: Pattern,
    scratch: Vec<u8>,
    events: Vec<Event>,
}

impl Load {
    /// Open `connections` connections with `connect` (which retries while the server starts),
    /// for messages of `size` bytes.
    ///
    /// # Errors
    /// Those of `connect` (the server exited or never listened) and of the selector.
    pub fn connect(
        mut connect: impl FnMut() -> io::Result<TcpStream>,
        connections: usize,
        size: usize,
    ) -> io::Result<Load> {
        let mut selector = DefaultSelector::new()?;
        let mut opened = Vec::with_capacity(connections);
        for c in 0..connections {
            let stream = connect()?;
            stream.set_nodelay(true)?;
            stream.set_nonblocking(true)?;
            selector.register(stream.as_raw_fd(), Interest::READABLE, Token(c))?;
            let start = c as u64 * 31;
            opened.push(Connection {
                stream,
                sent: start,
                received: start,
                end: start,
                writing: false,
            });
        }
        Ok(Load {
            selector,
            connections: opened,
            size,
            pattern: Pattern::new(),
            scratch: vec![0; CHUNK],
            events: Vec::with_capacity(connections),
        })
    }

    /// Run the closed loops for `duration`, then let every connection finish the round trip it
    /// has in flight, so that the server is idle when this returns and every byte it echoed is
    /// counted.
    ///
    /// # Errors
    /// `InvalidData` for an echo that differs from what was sent, `UnexpectedEof` if the server
    /// closed a connection, `TimedOut` if nothing came back for [`STALL_TIMEOUT`], and the
    /// kernel's.
    pub fn run(&mut self, duration: Duration) -> io::Result<LoadSample> {
        let cpu_before = thread_cpu_clock()?;
        let started = Instant::now();
        let deadline = started + duration;
        let mut events = std::mem::take(&mut self.events);
        for c in 0..self.connections.len() {
            self.start_message(c)?;
        }
        let mut in_flight = self.connections.len();
        let mut trips = 0;
        while in_flight > 0 {
            if self.selector.select(&mut events, Some(STALL_TIMEOUT))? == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!(
                        "echo server stalled: {in_flight} round trips in flight, none back \
                         in {STALL_TIMEOUT:?}"
                    ),
                ));
            }
            let more = Instant::now() < deadline;
            for event in &events {
                let c = event.token().0;
                if event.is_writable() {
                    self.flush(c)?;
                }
                if (event.is_readable() || event.is_hangup() || event.is_error())
                    && self.receive(c)?
                {
                    trips += 1;
                    if more {
                        self.start_message(c)?;
                    } else {
                        in_flight -= 1;
                    }
                }
            }
        }
        self.events = events;
        Ok(LoadSample {
            trips,
            wall: started.elapsed(),
            cpu: thread_cpu_clock()?.saturating_sub(cpu_before),
        })
    }

    /// Begin the next message of connection `c`.
    fn start_message(&mut self, c: usize) -> io::Result<()> {
        self.connections[c].end += self.size as u64;
        self.flush(c)
    }

    /// Send what is unsent of connection `c`'s message; watch WRITABLE only while some is.
    fn flush(&mut self, c: usize) -> io::Result<()> {
        let conn = &mut self.connections[c];
        while conn.sent < conn.end {
            let len = (conn.end - conn.sent).min(CHUNK as u64) as usize;
            match conn.stream.write(self.pattern.at(conn.sent, len)) {
                Ok(0) => {
                    return Err(io::Error::new(
                        io::ErrorKind::WriteZero,
                        format!("connection {c}: the socket took no bytes"),
                    ))
                }
                Ok(n) => conn.sent += n as u64,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    if !conn.writing {
                        let fd = conn.stream.as_raw_fd();
                        self.selector.modify(fd, Interest::BOTH, Token(c))?;
                        conn.writing = true;
                    }
                    return Ok(());
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    return Err(io::Error::new(
                        e.kind(),
                        format!("connection {c}: send: {e}"),
                    ))
                }
            }
        }
        if conn.writing {
            let fd = conn.stream.as_raw_fd();
            self.selector.modify(fd, Interest::READABLE, Token(c))?;
            conn.writing = false;
        }
        Ok(())
    }

    /// Read once from connection `c` and check the bytes; true if its message is all back.
    fn receive(&mut self, c: usize) -> io::Result<bool> {
        let conn = &mut self.connections[c];
        let n = match conn.stream.read(&mut self.scratch) {
            Ok(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("connection {c}: the server closed it mid-stream"),
                ))
            }
            Ok(n) => n,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                ) =>
            {
                return Ok(false)
            }
            Err(e) => {
                return Err(io::Error::new(
                    e.kind(),
                    format!("connection {c}: receive: {e}"),
                ))
            }
        };
        if conn.received + n as u64 > conn.sent {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "connection {c}: {} bytes came back but only {} were sent",
                    conn.received + n as u64,
                    conn.sent
                ),
            ));
        }
        check_echo(
            c,
            conn.received,
            &self.scratch[..n],
            self.pattern.at(conn.received, n),
        )?;
        conn.received += n as u64;
        Ok(conn.received == conn.end)
    }
}

/// `InvalidData` naming the first byte of `got` that is not the `expected` one.
fn check_echo(c: usize, offset: u64, got: &[u8], expected: &[u8]) -> io::Result<()> {
    match got.iter().zip(expected).position(|(g, e)| g != e) {
        None => Ok(()),
        Some(i) => Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "connection {c}: echoed byte at offset {} is {:#04x}, sent {:#04x}",
                offset + i as u64,
                got[i],
                expected[i]
            ),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    /// A server on a thread that echoes every connection but changes the byte at stream
    /// position `bad` (if it gets that far).
    fn corrupting_server(bad: u64) -> std::net::SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { return };
                std::thread::spawn(move || {
                    let (mut buf, mut position) = ([0u8; 4096], 0u64);
                    while let Ok(n @ 1..) = stream.read(&mut buf) {
                        if (position..position + n as u64).contains(&bad) {
                            buf[(bad - position) as usize] ^= 0xff;
                        }
                        position += n as u64;
                        if stream.write_all(&buf[..n]).is_err() {
                            return;
                        }
                    }
                });
            }
        });
        addr
    }

    #[test]
    fn a_faithful_echo_counts_round_trips_and_a_corrupted_one_stops_the_run() {
        let good = corrupting_server(u64::MAX);
        let mut load = Load::connect(|| TcpStream::connect(good), 3, 100).unwrap();
        let sample = load.run(Duration::from_millis(20)).unwrap();
        assert!(sample.trips >= 3, "{sample:?}");

        let bad = corrupting_server(250);
        let mut load = Load::connect(|| TcpStream::connect(bad), 1, 100).unwrap();
        let e = load.run(Duration::from_secs(5)).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
        assert!(e.to_string().contains("offset 250"), "{e}");
    }

    #[test]
    fn the_pattern_continues_across_any_offset() {
        let pattern = Pattern::new();
        let stream: Vec<u8> = (0..2000u64).map(|i| (i % PERIOD as u64) as u8).collect();
        for offset in [0u64, 1, 250, 251, 777] {
            assert_eq!(
                pattern.at(offset, 1000),
                &stream[offset as usize..offset as usize + 1000]
            );
        }
        assert_eq!(pattern.at(1 << 40, CHUNK).len(), CHUNK);
    }

    #[test]
    fn a_corrupted_echo_names_the_connection_and_the_offset() {
        assert!(check_echo(3, 100, b"abc", b"abc").is_ok());
        let e = check_echo(3, 100, b"abX", b"abc").unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
        let message = e.to_string();
        assert!(message.contains("connection 3"), "{message}");
        assert!(message.contains("offset 102"), "{message}");
    }
}
