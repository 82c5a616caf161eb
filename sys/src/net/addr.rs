//! Socket addresses between std's types and rustix's, where they cross: the `SocketAddr` or
//! filesystem path that `connect(2)` takes, and the peer address `accept(2)` fills in.
//!
//! rustix lays the kernel's `sockaddr_in` / `sockaddr_in6` / `sockaddr_un` out (network byte
//! order, `sin_len` and friends on the BSDs and macOS) on the stack, without allocating. Two
//! things are tulip's own: AF_UNIX paths are checked here, so that the errors name the limit,
//! and IPv6 flowinfo keeps std's convention (below).

use std::ffi::OsStr;
use std::io;
use std::mem;
use std::net::{SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use rustix::net::{AddressFamily, SocketAddrAny, SocketAddrUnix};

/// How many bytes `sockaddr_un.sun_path` holds (108 on Linux, 104 on macOS and the BSDs), read
/// off the field's type.
pub(super) const SUN_PATH_LEN: usize = field_len(|sun: &libc::sockaddr_un| &sun.sun_path);

const fn field_len<S, T, const N: usize>(_field: fn(&S) -> &[T; N]) -> usize {
    N
}

/// `addr` as rustix should encode it for `connect(2)` and `bind(2)`.
///
/// std defines `SocketAddrV6::flowinfo` as the `sin6_flowinfo` field itself and copies it
/// without a byte swap both ways, where rustix converts it to and from network byte order.
/// Undo rustix's swap, so that an address means here what it means to std's sockets.
pub(super) fn to_kernel(addr: &SocketAddr) -> SocketAddr {
    match addr {
        SocketAddr::V4(_) => *addr,
        SocketAddr::V6(v6) => SocketAddr::V6(SocketAddrV6::new(
            *v6.ip(),
            v6.port(),
            u32::from_be(v6.flowinfo()),
            v6.scope_id(),
        )),
    }
}

/// The `AF_INET` / `AF_INET6` address `accept(2)` returned, with std's flowinfo (see
/// [`to_kernel`]); `None` for no address, any other family, or a length too short for the
/// family's struct (rustix would panic on that one).
pub(super) fn from_kernel(peer: Option<SocketAddrAny>) -> Option<SocketAddr> {
    let peer = peer?;
    let len = peer.addr_len() as usize;
    match peer.address_family() {
        AddressFamily::INET if len >= mem::size_of::<libc::sockaddr_in>() => {
            SocketAddrV4::try_from(peer).ok().map(SocketAddr::V4)
        }
        AddressFamily::INET6 if len >= mem::size_of::<libc::sockaddr_in6>() => {
            let v6 = SocketAddrV6::try_from(peer).ok()?;
            Some(SocketAddr::V6(SocketAddrV6::new(
                *v6.ip(),
                v6.port(),
                v6.flowinfo().to_be(),
                v6.scope_id(),
            )))
        }
        _ => None,
    }
}

/// `path` as an `AF_UNIX` address for `connect(2)`, its `sun_path` NUL-terminated.
///
/// # Errors
/// `InvalidInput` for an empty path, one with a NUL byte, or one longer than `sun_path` holds
/// with its NUL; the message says which, and names the limit.
pub(super) fn unix(path: &Path) -> io::Result<SocketAddrUnix> {
    let path: &OsStr = path.as_os_str();
    let bytes = path.as_bytes();
    // Room for the terminating NUL, which BSD kernels and the macOS one need.
    let max = SUN_PATH_LEN - 1;
    if bytes.is_empty() {
        // Linux would read an empty sun_path as the abstract name "" (a connect that reaches
        // whoever listens there); std refuses it too.
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "AF_UNIX socket path is empty",
        ));
    }
    if let Some(at) = bytes.iter().position(|&b| b == 0) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "AF_UNIX socket path {path:?} has a NUL byte at offset {at}; a path is at most \
                 {max} bytes without NUL"
            ),
        ));
    }
    if bytes.len() > max {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "AF_UNIX socket path {path:?} is {} bytes; sun_path holds at most {max}",
                bytes.len()
            ),
        ));
    }
    // Checked above, so rustix copies the path and its NUL into sun_path (on the stack: it is
    // shorter than rustix's small-path buffer) and cannot refuse it.
    Ok(SocketAddrUnix::new(bytes)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inet_addresses_round_trip_with_std_flowinfo() {
        let v4: SocketAddr = "127.1.2.3:4660".parse().unwrap();
        let v6 = SocketAddr::V6(SocketAddrV6::new(
            "fe80::1:2".parse().unwrap(),
            0x1234,
            0x000a_bcde,
            7,
        ));
        for addr in [v4, v6] {
            let encoded = SocketAddrAny::from(to_kernel(&addr));
            assert_eq!(from_kernel(Some(encoded)), Some(addr));
        }
        assert_eq!(from_kernel(None), None);
    }

    #[test]
    fn unix_addresses_are_not_decoded_as_peers() {
        let unix = SocketAddrAny::from(unix(Path::new("/tmp/tulip.sock")).unwrap());
        assert_eq!(from_kernel(Some(unix)), None);
    }

    #[test]
    fn sun_path_len_matches_the_platform() {
        let expected = if cfg!(target_os = "linux") { 108 } else { 104 };
        assert_eq!(SUN_PATH_LEN, expected);
    }
}
