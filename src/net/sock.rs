//! asyncio's low-level socket methods on the loop (`loop.sock_recv`, `sock_sendall`, ...), for
//! non-blocking sockets the caller keeps owning.
//!
//! Each method tries its system call first and, only on `WouldBlock`, waits with a one-shot
//! reader or writer on the loop ([`Readiness`]), removed as soon as it fires or the future is
//! dropped: the loop never keeps watching an fd it does not own. `WouldBlock` and `EINTR`
//! never reach the caller. The sockets of [`net`](crate::net) keep a registration instead,
//! which costs no system call per wait; these are for sockets made elsewhere.
//!
//! While a method waits, the socket's fd uses the loop's reader (or writer) slot: a reader
//! added with [`EventLoop::add_reader`] for the same fd meanwhile is replaced, and a socket of
//! [`net`](crate::net) cannot be used here (`AlreadyExists` if it is awaited on this loop).

use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};

use tulip_sys::fd;
use tulip_sys::net::{self as sys, Connect};

use crate::event_loop::Direction;
use crate::net::readiness::Readiness;
use crate::EventLoop;

impl EventLoop {
    /// Receive up to `n` bytes from the non-blocking socket `sock`, waiting until some (or the
    /// end of the stream) are there: the bytes, empty at the end of the stream (asyncio's
    /// `sock_recv`).
    ///
    /// ```
    /// use std::io::Write;
    /// use std::os::unix::net::UnixStream;
    ///
    /// let (ours, mut theirs) = UnixStream::pair()?;
    /// ours.set_nonblocking(true)?;
    /// let lp = tulip::EventLoop::new()?;
    /// let received = lp.run_until_complete(async move {
    ///     let lp = tulip::get_running_loop()?;
    ///     let _writer = tulip::spawn(async move { theirs.write_all(b"hello") })?;
    ///     lp.sock_recv(&ours, 1024).await
    /// })??;
    /// assert_eq!(received, b"hello");
    /// # Ok::<(), std::io::Error>(())
    /// ```
    ///
    /// # Errors
    /// [`LoopError::Closed`](crate::LoopError::Closed) if the loop is closed; `InvalidInput`
    /// if `sock` is blocking (waiting in the kernel would stop the loop); the kernel's
    /// (`ConnectionReset`, `ENOTSOCK` for a non-socket, ...); the selector's, if it cannot
    /// watch the fd.
    pub async fn sock_recv(&self, sock: &impl AsFd, n: usize) -> io::Result<Vec<u8>> {
        let mut buf = vec![0; n];
        let len = self.sock_recv_into(sock, &mut buf).await?;
        buf.truncate(len);
        Ok(buf)
    }

    /// Receive into `buf` from the non-blocking socket `sock`, waiting until some bytes (or
    /// the end of the stream) are there: the count, 0 at the end of the stream (asyncio's
    /// `sock_recv_into`).
    ///
    /// # Errors
    /// As [`sock_recv`](Self::sock_recv).
    pub async fn sock_recv_into(&self, sock: &impl AsFd, buf: &mut [u8]) -> io::Result<usize> {
        let sock = self.check_sock(sock.as_fd())?;
        self.sock_io(sock, Direction::Read, || sys::recv(sock, buf))
            .await
    }

    /// Send all of `data` on the non-blocking socket `sock`, waiting as often as its send
    /// buffer is full (asyncio's `sock_sendall`). Never raises `SIGPIPE` (`MSG_NOSIGNAL`;
    /// where that flag does not exist, `SO_NOSIGPIPE` is set on `sock`).
    ///
    /// # Errors
    /// As [`sock_recv`](Self::sock_recv); `BrokenPipe` once the peer is gone. How much was
    /// sent before an error is not said.
    pub async fn sock_sendall(&self, sock: &impl AsFd, data: &[u8]) -> io::Result<()> {
        let sock = self.check_sock(sock.as_fd())?;
        sys::set_nosigpipe(sock)?;
        let mut rest = data;
        while !rest.is_empty() {
            let sent = self
                .sock_io(sock, Direction::Write, || fd::send(sock, rest))
                .await?;
            if sent == 0 {
                return Err(io::ErrorKind::WriteZero.into());
            }
            rest = &rest[sent..];
        }
        Ok(())
    }

    /// Accept a connection on the non-blocking listener `sock`, waiting until one comes: the
    /// stream (non-blocking and close-on-exec, as asyncio's `sock_accept` returns it) and the
    /// peer's address. A connection reset before it was accepted (`ECONNABORTED`) is skipped.
    ///
    /// ```
    /// use std::net::{TcpListener, TcpStream};
    ///
    /// let listener = TcpListener::bind("127.0.0.1:0")?;
    /// listener.set_nonblocking(true)?;
    /// let addr = listener.local_addr()?;
    /// let lp = tulip::EventLoop::new()?;
    /// let (stream, peer) = lp.run_until_complete(async move {
    ///     let lp = tulip::get_running_loop()?;
    ///     let client = std::net::TcpStream::connect(addr)?; // the kernel completes it
    ///     let (stream, peer) = lp.sock_accept(&listener).await?;
    ///     assert_eq!(peer, client.local_addr()?);
    ///     Ok::<_, std::io::Error>((stream, peer))
    /// })??;
    /// assert_eq!(stream.peer_addr()?, peer);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    ///
    /// # Errors
    /// As [`sock_recv`](Self::sock_recv); out of fds (`EMFILE`, `ENFILE`), the error is
    /// returned as is: unlike [`TcpListener::accept`](crate::net::TcpListener::accept), the
    /// next call does not rest first.
    pub async fn sock_accept(
        &self,
        sock: &std::net::TcpListener,
    ) -> io::Result<(std::net::TcpStream, SocketAddr)> {
        let sock = self.check_sock(sock.as_fd())?;
        let (fd, peer) = self
            .sock_io(sock, Direction::Read, || sys::accept(sock))
            .await?;
        let stream = std::net::TcpStream::from(fd);
        let peer = match peer {
            Some(peer) => peer,
            None => stream.peer_addr()?,
        };
        Ok((stream, peer))
    }

    /// Connect the non-blocking socket `sock` to `addr`, waiting until the connection is set
    /// up (asyncio's `sock_connect`).
    ///
    /// # Errors
    /// As [`sock_recv`](Self::sock_recv); the connect's (`ConnectionRefused`,
    /// `EAFNOSUPPORT` for an address of the other family, `AddrNotAvailable` when no local
    /// port is free).
    pub async fn sock_connect(&self, sock: &impl AsFd, addr: SocketAddr) -> io::Result<()> {
        let sock = self.check_sock(sock.as_fd())?;
        match sys::connect(sock, &addr) {
            Ok(Connect::Done) => return Ok(()),
            Ok(Connect::InProgress) => {}
            // For AF_INET / AF_INET6, Linux's EAGAIN is a failure (no local port left), not
            // an invitation to wait: the socket stays unconnected.
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                return Err(io::Error::new(
                    io::ErrorKind::AddrNotAvailable,
                    format!("cannot connect to {addr}: no local port is free ({e})"),
                ))
            }
            Err(e) => return Err(e),
        }
        // Writable once the handshake is over, whatever its outcome (SO_ERROR says which).
        Readiness::on_loop(self, sock.as_raw_fd(), Direction::Write).await?;
        match sys::take_error(sock)? {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Receive one datagram of up to `n` bytes on the non-blocking UDP socket `sock`, waiting
    /// until one arrives: its bytes (cut to `n`) and its sender (asyncio's `sock_recvfrom`).
    ///
    /// ```
    /// let receiver = std::net::UdpSocket::bind("127.0.0.1:0")?;
    /// receiver.set_nonblocking(true)?;
    /// let sender = std::net::UdpSocket::bind("127.0.0.1:0")?;
    /// sender.set_nonblocking(true)?;
    /// let to = receiver.local_addr()?;
    /// let lp = tulip::EventLoop::new()?;
    /// let (data, from) = lp.run_until_complete(async move {
    ///     let lp = tulip::get_running_loop()?;
    ///     lp.sock_sendto(&sender, b"ping", to).await?;
    ///     lp.sock_recvfrom(&receiver, 16).await
    /// })??;
    /// assert_eq!(data, b"ping");
    /// assert_eq!(from.ip(), to.ip());
    /// # Ok::<(), std::io::Error>(())
    /// ```
    ///
    /// # Errors
    /// As [`sock_recv`](Self::sock_recv).
    pub async fn sock_recvfrom(
        &self,
        sock: &std::net::UdpSocket,
        n: usize,
    ) -> io::Result<(Vec<u8>, SocketAddr)> {
        let mut buf = vec![0; n];
        let (len, from) = self.sock_recvfrom_into(sock, &mut buf).await?;
        buf.truncate(len);
        Ok((buf, from))
    }

    /// [`sock_recvfrom`](Self::sock_recvfrom) into `buf`: the datagram's length (cut to
    /// `buf.len()`) and its sender (asyncio's `sock_recvfrom_into`).
    ///
    /// # Errors
    /// As [`sock_recv`](Self::sock_recv).
    pub async fn sock_recvfrom_into(
        &self,
        sock: &std::net::UdpSocket,
        buf: &mut [u8],
    ) -> io::Result<(usize, SocketAddr)> {
        let fd = self.check_sock(sock.as_fd())?;
        self.sock_io(fd, Direction::Read, || sock.recv_from(buf))
            .await
    }

    /// Send `data` as one datagram to `addr` on the non-blocking UDP socket `sock`, waiting
    /// while its send buffer is full: the count sent (asyncio's `sock_sendto`).
    ///
    /// # Errors
    /// As [`sock_recv`](Self::sock_recv); `EMSGSIZE` for a datagram too long.
    pub async fn sock_sendto(
        &self,
        sock: &std::net::UdpSocket,
        data: &[u8],
        addr: SocketAddr,
    ) -> io::Result<usize> {
        let fd = self.check_sock(sock.as_fd())?;
        self.sock_io(fd, Direction::Write, || sock.send_to(data, addr))
            .await
    }

    /// `sock`, once the loop is known open and `sock` non-blocking.
    fn check_sock<'a>(&self, sock: BorrowedFd<'a>) -> io::Result<BorrowedFd<'a>> {
        self.check_open()?;
        if !sys::is_nonblocking(sock)? {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("the socket must be non-blocking (fd {})", sock.as_raw_fd()),
            ));
        }
        Ok(sock)
    }

    /// Run `op` on `sock` until it does not block: try it, and on `WouldBlock` wait for
    /// `direction` with a one-shot reader or writer on this loop, and try again. `EINTR` is
    /// retried; neither ever reaches the caller.
    pub(crate) async fn sock_io<R>(
        &self,
        sock: BorrowedFd<'_>,
        direction: Direction,
        mut op: impl FnMut() -> io::Result<R>,
    ) -> io::Result<R> {
        loop {
            match op() {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    Readiness::on_loop(self, sock.as_raw_fd(), direction).await?;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                result => return result,
            }
        }
    }
}
