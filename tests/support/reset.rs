//! A connection reset on demand, as a crashing peer causes one (shared by the transport and
//! stream tests).

use std::io;
use std::os::fd::AsRawFd;

/// Make the close of `stream` reset its connection (`SO_LINGER` on with 0 s): the peer gets
/// `ECONNRESET` instead of an end of stream.
pub fn reset(stream: &impl AsRawFd) -> io::Result<()> {
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: `linger` is a valid struct that outlives the call and its size is passed; the fd
    // is `stream`'s, open while it is borrowed.
    let rc = unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&linger as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}
