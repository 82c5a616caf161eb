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
/// (PEP 475): a signal never surfaces as an error, and never makes the wait end early.
///
/// `wait` gets the timeout for this attempt and returns the kernel's answer. Once the time is
/// up after an interruption, the call is made one last time with a zero timeout, so that fds
/// that became ready meanwhile are still reported.
///
/// The time spent is measured on the monotonic clock, read at the start of every wait with a
/// positive timeout (about 30 ns through the vDSO, before a call that is about to block). The
/// coarse clock (`CLOCK_MONOTONIC_COARSE`, 8 ns) would be cheaper but gives no bound: on a
/// tickless kernel it was measured lagging 7.1 ms behind with a 4 ms resolution, which made a
/// retried wait end early.
#[inline]
pub(crate) fn retry_eintr<T>(
    timeout: Option<Duration>,
    mut wait: impl FnMut(Option<Duration>) -> io::Result<T>,
) -> io::Result<T> {
    let start = match timeout {
        Some(t) if !t.is_zero() => Some(Instant::now()),
        _ => None,
    };
    let mut this_wait = timeout;
    loop {
        match wait(this_wait) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {
                if let (Some(start), Some(t)) = (start, timeout) {
                    this_wait = Some(t.saturating_sub(start.elapsed()));
                }
            }
            other => return other,
        }
    }
}

/// The longest single wait handed to the kernel, in seconds (about 3.2 years): macOS before
/// 10.15 and older OpenBSD refuse more than 10^8 s with `EINVAL` (`itimerfix`), later macOS more
/// than `INT32_MAX`. A longer timeout returns after this with no events, which a caller that
/// loops cannot tell from a spurious wake.
const MAX_WAIT_SECS: u64 = 100_000_000;

/// `t` as a `timespec` for `epoll_pwait2` / `kevent` (nanosecond precision, no rounding).
#[cfg(any(tulip_epoll, tulip_kqueue))]
pub(crate) fn timespec(t: Duration) -> libc::timespec {
    libc::timespec {
        // Within 10^8, so it fits every time_t.
        tv_sec: t.as_secs().min(MAX_WAIT_SECS) as libc::time_t,
        tv_nsec: t.subsec_nanos() as _,
    }
}

/// `t` as a `timeval` for `select(2)`, rounded **up** to whole microseconds so that a positive
/// timeout never returns early.
pub(crate) fn timeval(t: Duration) -> libc::timeval {
    let micros = t.subsec_nanos().div_ceil(1_000);
    let (secs, micros) = if micros == 1_000_000 {
        (t.as_secs().saturating_add(1), 0)
    } else {
        (t.as_secs(), micros)
    };
    libc::timeval {
        // Within 10^8, so it fits every time_t.
        tv_sec: secs.min(MAX_WAIT_SECS) as libc::time_t,
        tv_usec: micros as libc::suseconds_t,
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

/// `timeout` in milliseconds if that says it exactly: `-1` for "forever", whole milliseconds
/// within `c_int`; `None` for a timeout that needs a finer unit (or a larger one).
#[cfg_attr(not(tulip_epoll), allow(dead_code))] // the epoll backend's choice of call
pub(crate) fn exact_ms(timeout: Option<Duration>) -> Option<libc::c_int> {
    match timeout {
        None => Some(-1),
        Some(t) if t.subsec_nanos() % 1_000_000 == 0 => libc::c_int::try_from(t.as_millis()).ok(),
        Some(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_ms_only_for_what_milliseconds_say_exactly() {
        assert_eq!(exact_ms(None), Some(-1));
        assert_eq!(exact_ms(Some(Duration::ZERO)), Some(0));
        assert_eq!(exact_ms(Some(Duration::from_millis(5000))), Some(5000));
        assert_eq!(exact_ms(Some(Duration::from_micros(1500))), None);
        assert_eq!(exact_ms(Some(Duration::from_nanos(1))), None);
        let max = Duration::from_millis(libc::c_int::MAX as u64);
        assert_eq!(exact_ms(Some(max)), Some(libc::c_int::MAX));
        assert_eq!(exact_ms(Some(max + Duration::from_millis(1))), None);
    }

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
    fn timeval_rounds_up_to_whole_microseconds_and_caps_huge_waits() {
        let tv = timeval(Duration::from_nanos(1));
        assert_eq!((tv.tv_sec, tv.tv_usec), (0, 1));
        let tv = timeval(Duration::new(2, 999_999_001));
        assert_eq!((tv.tv_sec, tv.tv_usec), (3, 0));
        let tv = timeval(Duration::MAX);
        assert_eq!(tv.tv_sec as u64, MAX_WAIT_SECS);
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

    /// After an interruption the retry gets at least the time that truly remains (never
    /// early), and not much more (25 ms leaves room for a descheduled test thread).
    #[test]
    fn an_interrupted_wait_is_retried_never_early() {
        let timeout = Duration::from_millis(300);
        let begun = std::time::Instant::now();
        let mut attempts = 0;
        retry_eintr(Some(timeout), |t| {
            attempts += 1;
            if attempts == 1 {
                // The first attempt waits 50 ms before a signal interrupts it.
                std::thread::sleep(Duration::from_millis(50));
                return Err(io::Error::from_raw_os_error(libc::EINTR));
            }
            let left = timeout.saturating_sub(begun.elapsed());
            let t = t.unwrap();
            assert!(t >= left, "{t:?} given, {left:?} left");
            assert!(
                t <= left + Duration::from_millis(25),
                "{t:?} given, {left:?} left"
            );
            Ok(())
        })
        .unwrap();
        assert_eq!(attempts, 2);
    }

    #[test]
    fn other_errors_are_returned() {
        let err = retry_eintr(None, |_| {
            Err::<(), _>(io::Error::from_raw_os_error(libc::EBADF))
        });
        assert_eq!(err.unwrap_err().raw_os_error(), Some(libc::EBADF));
    }
}
