//! Socket addresses in the kernel's layout: a `SocketAddr` or a filesystem path as the
//! `sockaddr_in` / `sockaddr_in6` / `sockaddr_un` that `connect(2)` takes, and the
//! `sockaddr_storage` that `accept(2)` fills back as a `SocketAddr`.
//!
//! `sin_len` / `sin6_len` / `sun_len` are set on the BSDs and macOS, which have them; ports and
//! IPv4 addresses are in network byte order, as the kernel expects.

use std::ffi::OsStr;
use std::io;
use std::mem;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// A socket address in the kernel's layout, ready for `connect(2)`.
pub(super) enum RawAddr {
    V4(libc::sockaddr_in),
    V6(libc::sockaddr_in6),
    /// The address and its length: `sun_path` up to and including the path's NUL.
    Unix(libc::sockaddr_un, libc::socklen_t),
}

impl RawAddr {
    pub(super) fn from_inet(addr: &SocketAddr) -> RawAddr {
        match addr {
            SocketAddr::V4(addr) => RawAddr::V4(sockaddr_in(addr)),
            SocketAddr::V6(addr) => RawAddr::V6(sockaddr_in6(addr)),
        }
    }

    pub(super) fn from_path(path: &Path) -> io::Result<RawAddr> {
        let (sun, len) = sockaddr_un(path.as_os_str())?;
        Ok(RawAddr::Unix(sun, len))
    }

    pub(super) fn as_ptr(&self) -> (*const libc::sockaddr, libc::socklen_t) {
        match self {
            RawAddr::V4(sin) => (
                (sin as *const libc::sockaddr_in).cast(),
                mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
            ),
            RawAddr::V6(sin6) => (
                (sin6 as *const libc::sockaddr_in6).cast(),
                mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t,
            ),
            RawAddr::Unix(sun, len) => ((sun as *const libc::sockaddr_un).cast(), *len),
        }
    }
}

fn sockaddr_in(addr: &SocketAddrV4) -> libc::sockaddr_in {
    // SAFETY: sockaddr_in is integers and byte arrays; all-zero is a valid value (and the
    // required value of sin_zero).
    let mut sin: libc::sockaddr_in = unsafe { mem::zeroed() };
    #[cfg(any(
        target_vendor = "apple",
        target_os = "freebsd",
        target_os = "netbsd",
        target_os = "openbsd",
        target_os = "dragonfly"
    ))]
    {
        sin.sin_len = mem::size_of::<libc::sockaddr_in>() as u8;
    }
    sin.sin_family = libc::AF_INET as libc::sa_family_t;
    sin.sin_port = addr.port().to_be();
    // s_addr holds the address in network byte order: the octets in memory order.
    sin.sin_addr.s_addr = u32::from_ne_bytes(addr.ip().octets());
    sin
}

fn sockaddr_in6(addr: &SocketAddrV6) -> libc::sockaddr_in6 {
    // SAFETY: sockaddr_in6 is integers and byte arrays; all-zero is a valid value.
    let mut sin6: libc::sockaddr_in6 = unsafe { mem::zeroed() };
    #[cfg(any(
        target_vendor = "apple",
        target_os = "freebsd",
        target_os = "netbsd",
        target_os = "openbsd",
        target_os = "dragonfly"
    ))]
    {
        sin6.sin6_len = mem::size_of::<libc::sockaddr_in6>() as u8;
    }
    sin6.sin6_family = libc::AF_INET6 as libc::sa_family_t;
    sin6.sin6_port = addr.port().to_be();
    // std defines `flowinfo()` as the sin6_flowinfo field itself, and std::net converts it
    // without a byte swap both ways; do the same, so that addresses agree with std's.
    sin6.sin6_flowinfo = addr.flowinfo();
    sin6.sin6_addr.s6_addr = addr.ip().octets();
    // An interface index, in host byte order.
    sin6.sin6_scope_id = addr.scope_id();
    sin6
}

/// `path` as a `sockaddr_un` and the length to pass with it.
fn sockaddr_un(path: &OsStr) -> io::Result<(libc::sockaddr_un, libc::socklen_t)> {
    // SAFETY: sockaddr_un is integers and a byte array; all-zero is a valid value, and leaves
    // sun_path NUL-terminated after any shorter path.
    let mut sun: libc::sockaddr_un = unsafe { mem::zeroed() };
    let bytes = path.as_bytes();
    // Room for the terminating NUL, which BSD kernels and the macOS one need.
    let max = sun.sun_path.len() - 1;
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
    for (dst, &src) in sun.sun_path.iter_mut().zip(bytes) {
        *dst = src as libc::c_char;
    }
    let len = mem::offset_of!(libc::sockaddr_un, sun_path) + bytes.len() + 1;
    #[cfg(any(
        target_vendor = "apple",
        target_os = "freebsd",
        target_os = "netbsd",
        target_os = "openbsd",
        target_os = "dragonfly"
    ))]
    {
        // At most the struct's size (106 bytes or so), so it fits.
        sun.sun_len = len as u8;
    }
    sun.sun_family = libc::AF_UNIX as libc::sa_family_t;
    Ok((sun, len as libc::socklen_t))
}

/// The `AF_INET` / `AF_INET6` address the kernel wrote into `storage` (`len` bytes of it);
/// `None` for any other family, or a length too short for the family's struct.
pub(super) fn decode(storage: &libc::sockaddr_storage, len: libc::socklen_t) -> Option<SocketAddr> {
    let len = len as usize;
    match libc::c_int::from(storage.ss_family) {
        libc::AF_INET if len >= mem::size_of::<libc::sockaddr_in>() => {
            // SAFETY: the kernel wrote a sockaddr_in (ss_family says so, and it is long enough);
            // sockaddr_storage is large and aligned enough for every sockaddr type.
            let sin =
                unsafe { &*(storage as *const libc::sockaddr_storage).cast::<libc::sockaddr_in>() };
            let ip = Ipv4Addr::from(sin.sin_addr.s_addr.to_ne_bytes());
            Some(SocketAddr::V4(SocketAddrV4::new(
                ip,
                u16::from_be(sin.sin_port),
            )))
        }
        libc::AF_INET6 if len >= mem::size_of::<libc::sockaddr_in6>() => {
            // SAFETY: as above, for sockaddr_in6.
            let sin6 = unsafe {
                &*(storage as *const libc::sockaddr_storage).cast::<libc::sockaddr_in6>()
            };
            Some(SocketAddr::V6(SocketAddrV6::new(
                Ipv6Addr::from(sin6.sin6_addr.s6_addr),
                u16::from_be(sin6.sin6_port),
                sin6.sin6_flowinfo,
                sin6.sin6_scope_id,
            )))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_laid_out_in_network_byte_order_and_decode_back() {
        let v4: SocketAddr = "127.1.2.3:4660".parse().unwrap(); // port 0x1234
        let sin = sockaddr_in(match &v4 {
            SocketAddr::V4(a) => a,
            SocketAddr::V6(_) => unreachable!(),
        });
        assert_eq!(libc::c_int::from(sin.sin_family), libc::AF_INET);
        assert_eq!(sin.sin_port.to_ne_bytes(), [0x12, 0x34]);
        assert_eq!(sin.sin_addr.s_addr.to_ne_bytes(), [127, 1, 2, 3]);

        let v6 = SocketAddr::V6(SocketAddrV6::new(
            "fe80::1:2".parse().unwrap(),
            0x1234,
            0x000a_bcde,
            7,
        ));
        for addr in [v4, v6] {
            let raw = RawAddr::from_inet(&addr);
            let (ptr, len) = raw.as_ptr();
            // SAFETY: sockaddr_storage is integers and byte arrays; all-zero is valid.
            let mut storage: libc::sockaddr_storage = unsafe { mem::zeroed() };
            // SAFETY: `ptr` points to `len` readable bytes inside `raw`; `storage` is larger
            // than any sockaddr_in / sockaddr_in6 and does not overlap it.
            unsafe {
                std::ptr::copy_nonoverlapping(
                    ptr.cast::<u8>(),
                    (&mut storage as *mut libc::sockaddr_storage).cast::<u8>(),
                    len as usize,
                )
            };
            assert_eq!(decode(&storage, len), Some(addr));
            assert_eq!(
                decode(&storage, len - 1),
                None,
                "a truncated address is not read"
            );
        }
    }
}
