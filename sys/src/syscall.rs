//! How this crate calls the kernel: `cvt` turns the C convention (`-1` and `errno`) into
//! `io::Result`, and `retry_eintr` implements PEP 475 for the waiting calls.

use std::io;
use std::time::{Duration, Instant};

/// Return values that signal failure with `-1`.
pub(crate) trait MinusOne: Copy + PartialEq {
    const MINUS_ONE: Self;
}

macro_rules! impl_minus_one {
    ($($t:ty)*) => { $(impl MinusOne for $t { const MINUS_ONE: Self = -1; })* };
}
impl_minus_one! { i32 i64 isize }

/// `Err(last_os_error())` if the call returned `-1`, its value otherwise.
pub(crate) fn cvt<T: MinusOne>(ret: T) -> io::Result<T> {
    if ret == T::MINUS_ONE {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// Run a waiting system call, retrying on `EINTR` with the time that remains of `timeout`
/// (PEP 475): a signal never surfaces as an error, and never stretches the wait.
///
/// `wait` gets the timeout for this attempt and returns the kernel's answer. Once the time is
/// up after an interruption, the call is made one last time with a zero timeout, so that fds
/// that became ready meanwhile are still reported.
pub(crate) fn retry_eintr<T>(
    timeout: Option<Duration>,
    mut wait: impl FnMut(Option<Duration>) -> io::Result<T>,
) -> io::Result<T> {
    let deadline = match timeout {
        // `checked_add` fails only for absurd timeouts (centuries): treat those as "forever".
        Some(t) if !t.is_zero() => Instant::now().checked_add(t),
        _ => None,
    };
    let mut this_wait = timeout;
    loop {
        match wait(this_wait) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {
                if let Some(deadline) = deadline {
                    this_wait = Some(deadline.saturating_duration_since(Instant::now()));
                }
            }
            other => return other,
        }
    }
}

/// `timeout` in whole milliseconds for `poll(2)` / `epoll_wait(2)`, rounded **up** so that a
/// positive timeout never returns early, and clamped to `c_int::MAX`; `-1` for "forever".
pub(crate) fn timeout_ms(timeout: Option<Duration>) -> libc::c_int {
    match timeout {
        None => -1,
        Some(t) => {
            let ms = t.as_nanos().div_ceil(1_000_000);
            libc::c_int::try_from(ms).unwrap_or(libc::c_int::MAX)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeout_ms_rounds_up_and_clamps() {
        assert_eq!(timeout_ms(None), -1);
        assert_eq!(timeout_ms(Some(Duration::ZERO)), 0);
        assert_eq!(timeout_ms(Some(Duration::from_nanos(1))), 1);
        assert_eq!(timeout_ms(Some(Duration::from_micros(1500))), 2);
        assert_eq!(timeout_ms(Some(Duration::from_millis(7))), 7);
        assert_eq!(
            timeout_ms(Some(Duration::from_secs(u64::MAX))),
            libc::c_int::MAX
        );
    }

    #[test]
    fn eintr_is_retried_with_the_remaining_time() {
        let mut seen = Vec::new();
        let result = retry_eintr(Some(Duration::from_secs(10)), |t| {
            seen.push(t);
            if seen.len() < 3 {
                Err(io::Error::from_raw_os_error(libc::EINTR))
            } else {
                Ok(7)
            }
        });
        assert_eq!(result.unwrap(), 7);
        assert_eq!(seen[0], Some(Duration::from_secs(10)));
        assert!(seen[1].unwrap() <= Duration::from_secs(10));
        assert!(seen[2].unwrap() <= seen[1].unwrap());
    }

    #[test]
    fn other_errors_are_returned() {
        let err = retry_eintr(None, |_| {
            Err::<(), _>(io::Error::from_raw_os_error(libc::EBADF))
        });
        assert_eq!(err.unwrap_err().raw_os_error(), Some(libc::EBADF));
    }
}
