//! What [`UdpSocket`](super::UdpSocket) and [`UnixDatagram`](super::UnixDatagram) share: the
//! system calls of a std datagram socket, named once ([`DatagramSocket`], which the datagram
//! endpoints of `transport/datagram.rs` use too), and the public methods that await them on
//! the running loop ([`datagram_methods`]), written once for both.

pub(crate) use sealed::DatagramSocket;

mod sealed {
    use std::io;
    use std::os::fd::AsFd;

    /// A std datagram socket: UDP's or a Unix one. Sealed: `pub` in a private module, so
    /// that public bounds may name it while nobody outside the crate can.
    pub trait DatagramSocket: AsFd + 'static {
        /// Its address type.
        type Addr;

        /// One `send(2)` to the connected peer.
        fn send(&self, buf: &[u8]) -> io::Result<usize>;

        /// One `recv(2)`.
        fn recv(&self, buf: &mut [u8]) -> io::Result<usize>;

        /// One `sendto(2)`.
        fn send_to_addr(&self, buf: &[u8], to: &Self::Addr) -> io::Result<usize>;

        /// One `recvfrom(2)`.
        fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, Self::Addr)>;
    }
}

/// [`DatagramSocket`] for a std socket type, from its inherent methods (`$send_to` takes a
/// `&$addr`).
macro_rules! datagram_socket {
    ($ty:ty, $addr:ty, $send_to:ident) => {
        impl DatagramSocket for $ty {
            type Addr = $addr;

            fn send(&self, buf: &[u8]) -> std::io::Result<usize> {
                <$ty>::send(self, buf)
            }

            fn recv(&self, buf: &mut [u8]) -> std::io::Result<usize> {
                <$ty>::recv(self, buf)
            }

            fn send_to_addr(&self, buf: &[u8], to: &$addr) -> std::io::Result<usize> {
                <$ty>::$send_to(self, buf, to)
            }

            fn recv_from(&self, buf: &mut [u8]) -> std::io::Result<(usize, $addr)> {
                <$ty>::recv_from(self, buf)
            }
        }
    };
}

datagram_socket!(std::net::UdpSocket, std::net::SocketAddr, send_to);
datagram_socket!(
    std::os::unix::net::UnixDatagram,
    std::os::unix::net::SocketAddr,
    send_to_addr
);

/// The public methods both datagram socket types have, for a type whose field `inner` is a
/// [`Stream`](super::stream::Stream) of a [`DatagramSocket`] with addresses of type `$addr`:
/// each system call tried first, and awaited on the running loop only on `WouldBlock`.
macro_rules! datagram_methods {
    ($addr:ty) => {
        /// Receive one datagram into `buf`, waiting until one arrives: its length (cut to
        /// `buf.len()`) and its sender's address (for a Unix socket, unnamed if the sender is
        /// bound to no path).
        ///
        /// # Errors
        /// The kernel's (`ConnectionRefused` on a connected UDP socket whose peer's port was
        /// closed: an ICMP error from an earlier send);
        /// [`LoopError::NoRunningLoop`](crate::LoopError::NoRunningLoop) if it has to wait
        /// outside a running loop. `WouldBlock` and `EINTR` never reach the caller.
        pub async fn recv_from(&self, buf: &mut [u8]) -> std::io::Result<(usize, $addr)> {
            self.inner
                .io_with(Direction::Read, |socket| socket.recv_from(buf))
                .await
        }

        /// Send `buf` as one datagram to the `connect`ed peer (or, for a Unix socket, the
        /// other end of a pair), waiting while the kernel has no room: the count sent (all of
        /// `buf`).
        ///
        /// # Errors
        /// `NotConnected` if there is none; `ConnectionRefused` once the peer is known gone
        /// (UDP: an ICMP error from an earlier send; Unix: the peer closed); as
        /// [`recv_from`](Self::recv_from) otherwise.
        pub async fn send(&self, buf: &[u8]) -> std::io::Result<usize> {
            self.inner
                .io_with(Direction::Write, |socket| socket.send(buf))
                .await
        }

        /// Receive one datagram (from the `connect`ed peer, if there is one) into `buf`: its
        /// length (cut to `buf.len()`).
        ///
        /// # Errors
        /// As [`recv_from`](Self::recv_from).
        pub async fn recv(&self, buf: &mut [u8]) -> std::io::Result<usize> {
            self.inner
                .io_with(Direction::Read, |socket| socket.recv(buf))
                .await
        }

        /// [`recv_from`](Self::recv_from) without waiting: `WouldBlock` if no datagram is
        /// there.
        ///
        /// # Errors
        /// The kernel's, `WouldBlock` included.
        pub fn try_recv_from(&self, buf: &mut [u8]) -> std::io::Result<(usize, $addr)> {
            self.inner
                .try_io_with(Direction::Read, |socket| socket.recv_from(buf))
        }

        /// [`send`](Self::send) without waiting: `WouldBlock` if the kernel has no room.
        ///
        /// # Errors
        /// The kernel's, `WouldBlock` included.
        pub fn try_send(&self, buf: &[u8]) -> std::io::Result<usize> {
            self.inner
                .try_io_with(Direction::Write, |socket| socket.send(buf))
        }

        /// [`recv`](Self::recv) without waiting: `WouldBlock` if no datagram is there.
        ///
        /// # Errors
        /// The kernel's, `WouldBlock` included.
        pub fn try_recv(&self, buf: &mut [u8]) -> std::io::Result<usize> {
            self.inner
                .try_io_with(Direction::Read, |socket| socket.recv(buf))
        }

        /// Wait until a datagram (or a pending error) is there to receive.
        ///
        /// Readiness is remembered: until an operation in this direction has met
        /// `WouldBlock`, the socket counts as ready and this returns at once (a new socket
        /// is ready in both directions). So it pairs with `try_recv_from`: try, and on
        /// `WouldBlock`, await this.
        ///
        /// # Errors
        /// As [`recv_from`](Self::recv_from).
        pub async fn readable(&self) -> std::io::Result<()> {
            self.inner.readable().await
        }

        /// Wait until a send would not block.
        ///
        /// Readiness is remembered: until an operation in this direction has met
        /// `WouldBlock`, the socket counts as ready and this returns at once (a new socket
        /// is ready in both directions). So it pairs with `try_send_to`: try, and on
        /// `WouldBlock`, await this.
        ///
        /// # Errors
        /// As [`send`](Self::send).
        pub async fn writable(&self) -> std::io::Result<()> {
            self.inner.writable().await
        }

        /// The address the socket is bound to (its port, if bound to port 0; for a Unix
        /// socket, its path, or unnamed).
        ///
        /// # Errors
        /// The kernel's.
        pub fn local_addr(&self) -> std::io::Result<$addr> {
            self.inner.get_ref().local_addr()
        }

        /// The `connect`ed peer's address.
        ///
        /// # Errors
        /// `NotConnected` if there is none.
        pub fn peer_addr(&self) -> std::io::Result<$addr> {
            self.inner.get_ref().peer_addr()
        }

        /// The socket's pending error (`SO_ERROR`), cleared by reading it.
        ///
        /// # Errors
        /// The kernel's.
        pub fn take_error(&self) -> std::io::Result<Option<std::io::Error>> {
            self.inner.get_ref().take_error()
        }
    };
}

pub(crate) use datagram_methods;
