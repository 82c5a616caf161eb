//! The echo server on mio (the layer under tokio): one hand-written loop, no runtime, no task.
//!
//! mio is edge-triggered, so each connection is registered once for READABLE and WRITABLE and
//! never changed; on any event the connection first sends what an earlier echo left over, then
//! reads and echoes until the socket would block. While something is left over it reads no
//! more (the back-pressure the coroutine servers get from awaiting `write_all`), and the next
//! WRITABLE edge resumes it. A short read is taken to have drained the socket (as tulip's
//! edge-triggered TCP streams do), so a round trip costs one read and one write.

use std::io::{self, Read, Write};
use std::net::SocketAddr;

use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};

const LISTENER: Token = Token(0);

/// Bytes read at once, as the coroutine servers' buffer.
const BUFFER: usize = 16 * 1024;

/// One client: its socket and what is left of an echo the kernel did not take at once.
#[derive(Debug)]
struct Connection {
    stream: TcpStream,
    pending: Vec<u8>,
}

/// Serve echo on `addr` until killed.
///
/// # Errors
/// Those of binding `addr`, of mio's poll and of `accept` (other than running out of
/// connections to accept).
pub fn serve(addr: SocketAddr) -> io::Result<()> {
    let mut poll = Poll::new()?;
    let mut listener = TcpListener::bind(addr)?;
    poll.registry()
        .register(&mut listener, LISTENER, Interest::READABLE)?;
    // Slot `i` is `Token(i + 1)`; freed slots are reused.
    let mut slots: Vec<Option<Connection>> = Vec::new();
    let mut free: Vec<usize> = Vec::new();
    let mut buffer = vec![0u8; BUFFER];
    let mut events = Events::with_capacity(1024);
    loop {
        match poll.poll(&mut events, None) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
        for event in &events {
            if event.token() == LISTENER {
                accept_all(&listener, &poll, &mut slots, &mut free)?;
                continue;
            }
            let slot = event.token().0 - 1;
            let Some(conn) = slots.get_mut(slot).and_then(Option::as_mut) else {
                continue;
            };
            // A peer that closed or reset ends its connection, not the server.
            if !serve_connection(conn, &mut buffer).unwrap_or(false) {
                if let Some(mut conn) = slots[slot].take() {
                    let _ = poll.registry().deregister(&mut conn.stream);
                    free.push(slot);
                }
            }
        }
    }
}

/// Accept every connection waiting, without Nagle, registered for both directions.
fn accept_all(
    listener: &TcpListener,
    poll: &Poll,
    slots: &mut Vec<Option<Connection>>,
    free: &mut Vec<usize>,
) -> io::Result<()> {
    loop {
        let mut stream = match listener.accept() {
            Ok((stream, _)) => stream,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) if e.kind() == io::ErrorKind::ConnectionAborted => continue,
            Err(e) => return Err(e),
        };
        stream.set_nodelay(true)?;
        let slot = free.pop().unwrap_or_else(|| {
            slots.push(None);
            slots.len() - 1
        });
        poll.registry().register(
            &mut stream,
            Token(slot + 1),
            Interest::READABLE | Interest::WRITABLE,
        )?;
        slots[slot] = Some(Connection {
            stream,
            pending: Vec::new(),
        });
    }
}

/// Send what is pending, then read and echo until the socket would block. False when the
/// connection is over (end of file).
fn serve_connection(conn: &mut Connection, buffer: &mut [u8]) -> io::Result<bool> {
    loop {
        while !conn.pending.is_empty() {
            match conn.stream.write(&conn.pending) {
                Ok(written) => {
                    conn.pending.drain(..written);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(true),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        let n = match conn.stream.read(buffer) {
            Ok(0) => return Ok(false),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(true),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        let written = match conn.stream.write(&buffer[..n]) {
            Ok(written) => written,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => 0,
            Err(e) => return Err(e),
        };
        conn.pending.extend_from_slice(&buffer[written..n]);
        // A short read drained the socket (TCP, no urgent data here), as tulip also assumes:
        // the next edge says when there is more, without a read to hear `WouldBlock`.
        if n < buffer.len() && conn.pending.is_empty() {
            return Ok(true);
        }
    }
}
