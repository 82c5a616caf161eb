//! [`Address`]: where a transport's socket is, TCP or Unix, as the kernel reports it.

use std::fmt;
use std::net::SocketAddr;
use std::os::unix::net::SocketAddr as UnixSocketAddr;
use std::path::Path;

/// The address of one end of a transport's socket, or of a server's listening socket:
/// asyncio's `get_extra_info('peername')` / `('sockname')`, typed.
///
/// It is what `getpeername(2)` / `getsockname(2)` said when the connection was made (asyncio
/// also asks once, then): an IP address and port for TCP, and for a Unix socket std's
/// [`std::os::unix::net::SocketAddr`], so nothing the kernel said is lost. A Unix socket that
/// was bound has its path ([`as_pathname`](Self::as_pathname)); one that was not (the client
/// end of most connections, as seen from either side) is *unnamed*, where asyncio gives `''`.
///
/// ```
/// use tulip::Address;
///
/// let tcp = Address::from("127.0.0.1:8080".parse::<std::net::SocketAddr>().unwrap());
/// assert_eq!(tcp.as_inet().map(|a| a.port()), Some(8080));
/// assert_eq!(tcp.as_pathname(), None);
/// assert_eq!(tcp.to_string(), "127.0.0.1:8080");
///
/// let unix = Address::from(std::os::unix::net::SocketAddr::from_pathname("/tmp/app.sock")?);
/// assert_eq!(unix.as_pathname(), Some(std::path::Path::new("/tmp/app.sock")));
/// assert_eq!(unix.to_string(), "/tmp/app.sock");
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum Address {
    /// A TCP socket's IP address and port.
    Inet(SocketAddr),
    /// A Unix stream socket's address: a path, unnamed, or (Linux) an abstract name.
    Unix(UnixSocketAddr),
}

impl Address {
    /// The IP address and port, for TCP; `None` for a Unix socket.
    pub fn as_inet(&self) -> Option<SocketAddr> {
        match self {
            Address::Inet(addr) => Some(*addr),
            Address::Unix(_) => None,
        }
    }

    /// The Unix socket address, as std has it; `None` for TCP.
    pub fn as_unix(&self) -> Option<&UnixSocketAddr> {
        match self {
            Address::Inet(_) => None,
            Address::Unix(addr) => Some(addr),
        }
    }

    /// The path of a Unix socket that was bound to one; `None` for an unnamed (or abstract)
    /// Unix socket, and for TCP.
    pub fn as_pathname(&self) -> Option<&Path> {
        self.as_unix().and_then(UnixSocketAddr::as_pathname)
    }

    /// True for a Unix socket that was bound to no name (asyncio's `''`).
    pub fn is_unnamed(&self) -> bool {
        self.as_unix().is_some_and(UnixSocketAddr::is_unnamed)
    }
}

impl From<SocketAddr> for Address {
    fn from(addr: SocketAddr) -> Address {
        Address::Inet(addr)
    }
}

impl From<UnixSocketAddr> for Address {
    fn from(addr: UnixSocketAddr) -> Address {
        Address::Unix(addr)
    }
}

impl fmt::Display for Address {
    /// `127.0.0.1:8080`, `[::1]:8080`, `/tmp/app.sock`; `(unnamed)` for an unnamed Unix
    /// socket, and std's `Debug` form for an abstract one.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Address::Inet(addr) => addr.fmt(f),
            Address::Unix(addr) => match addr.as_pathname() {
                Some(path) => path.display().fmt(f),
                None if addr.is_unnamed() => f.write_str("(unnamed)"),
                None => write!(f, "{addr:?}"),
            },
        }
    }
}
