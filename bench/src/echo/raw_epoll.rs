//! The floor: an echo server written straight on the best selector (epoll on Linux) and std's
//! non-blocking sockets, with no event loop, task or waker on top.
//!
//! Level-triggered, one read and one write per event: a connection is watched for READABLE
//! while it has nothing left to send, and for WRITABLE alone while part of an echo is pending
//! (it reads no more until that is out, which is the back-pressure the coroutine servers get
//! from awaiting `write_all`).

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;

use tulip_sys::{DefaultSelector, Event, Interest, Selector, Token};

const LISTENER: Token = Token(0);

/// Bytes read at once, as the coroutine servers' buffer.
const BUFFER: usize = 16 * 1024;

/// One client: its socket and what is left of an echo the kernel did not take at once.
#[derive(Debug)]
struct Connection {
    stream: TcpStream,
    pending: Vec<u8>,
}

/// The connections, in slots named by their token (slot `i` is `Token(i + 1)`).
#[derive(Debug, Default)]
struct Connections {
    slots: Vec<Option<Connection>>,
    free: Vec<usize>,
}

/// Serve echo on `addr` until killed.
///
/// # Errors
/// Those of binding `addr`, of the selector and of `accept` (other than running out of
/// connections to accept).
pub fn serve(addr: SocketAddr) -> io::Result<()> {
    let listener = TcpListener::bind(addr)?;
    listener.set_nonblocking(true)?;
    let mut selector = DefaultSelector::new()?;
    selector.register(listener.as_raw_fd(), Interest::READABLE, LISTENER)?;
    let mut connections = Connections::default();
    let mut buffer = vec![0u8; BUFFER];
    let mut events: Vec<Event> = Vec::with_capacity(1024);
    loop {
        selector.select(&mut events, None)?;
        for event in &events {
            if event.token() == LISTENER {
                accept_all(&listener, &mut selector, &mut connections)?;
                continue;
            }
            let slot = event.token().0 - 1;
            let Some(conn) = connections.slots.get_mut(slot).and_then(Option::as_mut) else {
                // Closed earlier in this batch of events.
                continue;
            };
            let token = event.token();
            let open = if conn.pending.is_empty() {
                echo(conn, &mut buffer, &mut selector, token)
            } else {
                send_pending(conn, &mut selector, token)
            };
            // A peer that closed or reset ends its connection, not the server.
            if !open.unwrap_or(false) {
                connections.close(slot, &mut selector);
            }
        }
    }
}

/// Accept every connection waiting, each non-blocking, without Nagle, watched for READABLE.
fn accept_all(
    listener: &TcpListener,
    selector: &mut DefaultSelector,
    connections: &mut Connections,
) -> io::Result<()> {
    loop {
        let stream = match listener.accept() {
            Ok((stream, _)) => stream,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            // The peer gave up before it was accepted.
            Err(e) if e.kind() == io::ErrorKind::ConnectionAborted => continue,
            Err(e) => return Err(e),
        };
        stream.set_nonblocking(true)?;
        stream.set_nodelay(true)?;
        let slot = connections.insert(Connection {
            stream,
            pending: Vec::new(),
        });
        let fd = connections.slots[slot]
            .as_ref()
            .map(|c| c.stream.as_raw_fd())
            .expect("insert returns the slot it filled");
        selector.register(fd, Interest::READABLE, Token(slot + 1))?;
    }
}

/// One read, and one write of what it got; what the write leaves is kept and the connection
/// switched to WRITABLE. False when the connection is over (end of file).
fn echo(
    conn: &mut Connection,
    buffer: &mut [u8],
    selector: &mut DefaultSelector,
    token: Token,
) -> io::Result<bool> {
    let n = match conn.stream.read(buffer) {
        Ok(0) => return Ok(false),
        Ok(n) => n,
        Err(e) if would_block(&e) => return Ok(true),
        Err(e) => return Err(e),
    };
    let written = match conn.stream.write(&buffer[..n]) {
        Ok(written) => written,
        Err(e) if would_block(&e) => 0,
        Err(e) => return Err(e),
    };
    if written < n {
        conn.pending.extend_from_slice(&buffer[written..n]);
        selector.modify(conn.stream.as_raw_fd(), Interest::WRITABLE, token)?;
    }
    Ok(true)
}

/// One write of the pending bytes; once they are all out, back to READABLE.
fn send_pending(
    conn: &mut Connection,
    selector: &mut DefaultSelector,
    token: Token,
) -> io::Result<bool> {
    match conn.stream.write(&conn.pending) {
        Ok(written) => {
            conn.pending.drain(..written);
        }
        Err(e) if would_block(&e) => {}
        Err(e) => return Err(e),
    }
    if conn.pending.is_empty() {
        selector.modify(conn.stream.as_raw_fd(), Interest::READABLE, token)?;
    }
    Ok(true)
}

fn would_block(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
    )
}

impl Connections {
    /// Put `conn` in a free slot and return the slot.
    fn insert(&mut self, conn: Connection) -> usize {
        match self.free.pop() {
            Some(slot) => {
                self.slots[slot] = Some(conn);
                slot
            }
            None => {
                self.slots.push(Some(conn));
                self.slots.len() - 1
            }
        }
    }

    /// Unregister and close the connection in `slot`.
    fn close(&mut self, slot: usize, selector: &mut DefaultSelector) {
        if let Some(conn) = self.slots[slot].take() {
            // The fd is still open here, so unregistering can only fail if it never was.
            let _ = selector.unregister(conn.stream.as_raw_fd());
            self.free.push(slot);
        }
    }
}
