//! Non-blocking sockets and pipes on the running loop: Tulip's coroutine style.
//!
//! Each type wraps std's (or an `OwnedFd`), made non-blocking; its operations try the system
//! call first and, only on `WouldBlock`, await the fd's readiness on the running loop.
//! `WouldBlock` and `EINTR` never reach the caller, and no write ever raises `SIGPIPE`.
//!
//! - TCP: [`TcpListener`], [`TcpStream`];
//! - Unix stream sockets: [`UnixListener`], [`UnixStream`]; Unix datagram sockets:
//!   [`UnixDatagram`];
//! - UDP: [`UdpSocket`];
//! - name resolution off the loop's thread: [`EventLoop::getaddrinfo`](crate::EventLoop::getaddrinfo),
//!   and what to connect to: an [`Endpoint`] (addresses, or a host and port), tried as
//!   [`ConnectOptions`] say (in turn, or staggered: happy eyeballs);
//! - pipes, e.g. a child's stdio: [`pipe()`], [`PipeReader`], [`PipeWriter`];
//! - the halves of a split stream (TCP or Unix): [`ReadHalf`], [`WriteHalf`],
//!   [`OwnedReadHalf`], [`OwnedWriteHalf`].
//!
//! For sockets the caller keeps owning (asyncio's `loop.sock_recv` and friends), see
//! [`EventLoop::sock_recv`](crate::EventLoop::sock_recv).

pub(crate) mod accept;
pub(crate) mod datagram;
mod pipe;
pub(crate) mod readiness;
mod resolve;
pub(crate) mod sendfile;
mod sock;
pub(crate) mod source;
mod split;
pub(crate) mod stream;
pub(crate) mod tcp;
mod udp;
mod unix;
mod unix_datagram;

pub use accept::ACCEPT_RETRY_DELAY;
pub use pipe::{pipe, PipeReader, PipeWriter};
pub(crate) use resolve::{combine, interleave, race, resolved};
pub use resolve::{ConnectOptions, Endpoint, Family, Resolver};
pub use split::{OwnedReadHalf, OwnedWriteHalf, ReadHalf, WriteHalf};
pub use tcp::{TcpListener, TcpStream};
pub use udp::UdpSocket;
pub use unix::{UnixListener, UnixStream};
pub use unix_datagram::UnixDatagram;

/// How a TCP listener is set up: asyncio's `backlog`, `reuse_address` and `reuse_port`.
pub use tulip_sys::net::ListenOptions;
