//! CPU time spent so far by the calling thread, split into user and system time, from
//! `getrusage(2)`: what a benchmark reads around a run to tell the event loop's own work (user
//! time) from the kernel's (system time).
//!
//! Linux has `RUSAGE_THREAD`, so the figures are the calling thread's alone. Elsewhere the
//! call falls back to `RUSAGE_SELF`, which sums every thread of the process: exact for a
//! single-threaded program, an upper bound otherwise. (`getrusage` comes from nix, as rustix has
//! none; the clock below from rustix, or nix on NetBSD, where rustix does not offer it.)
//!
//! Unless the kernel does fine-grained CPU accounting, `getrusage` figures move in whole clock
//! ticks (1–10 ms): the user/system split is only meaningful over runs much longer than a tick.
//! [`thread_cpu_clock`] reads the thread's total CPU time with nanosecond resolution
//! (`CLOCK_THREAD_CPUTIME_ID`), for timing shorter runs.
//!
//! ```
//! let before = tulip_sys::usage::thread_cpu_time()?;
//! let mut x = 0u64;
//! for i in 0..1_000_000u64 {
//!     x = std::hint::black_box(x.wrapping_add(i));
//! }
//! let spent = tulip_sys::usage::thread_cpu_time()?.since(before);
//! assert!(spent.total() >= spent.user);
//! # Ok::<(), std::io::Error>(())
//! ```

use std::io;
use std::time::Duration;

use nix::sys::resource::{getrusage, UsageWho};
use nix::sys::time::TimeVal;

/// CPU time of a thread: how long it ran in user mode and in the kernel on its behalf.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CpuTime {
    /// Time spent running the program's own code.
    pub user: Duration,
    /// Time the kernel spent on the program's behalf (system calls, page faults).
    pub system: Duration,
}

impl CpuTime {
    /// User plus system time.
    pub fn total(self) -> Duration {
        self.user + self.system
    }

    /// The CPU time spent between `earlier` and `self`, both read from the same thread; each
    /// part saturates at zero (the kernel's user/system split may shift a tick between reads).
    pub fn since(self, earlier: CpuTime) -> CpuTime {
        CpuTime {
            user: self.user.saturating_sub(earlier.user),
            system: self.system.saturating_sub(earlier.system),
        }
    }
}

/// Which `getrusage` target means "this thread" on this OS.
#[cfg(target_os = "linux")]
const WHO: UsageWho = UsageWho::RUSAGE_THREAD;
/// Which `getrusage` target means "this thread" on this OS: the whole process, the one target
/// every OS has (macOS has no `RUSAGE_THREAD`; tulip asks for it on Linux only).
#[cfg(not(target_os = "linux"))]
const WHO: UsageWho = UsageWho::RUSAGE_SELF;

/// The CPU time the calling thread has used since it started (the whole process's where the OS
/// has no per-thread figure; see the module docs).
///
/// # Errors
/// The kernel's; `getrusage` fails only for an invalid target, which this never passes.
pub fn thread_cpu_time() -> io::Result<CpuTime> {
    let usage = getrusage(WHO)?;
    Ok(CpuTime {
        user: duration(usage.user_time()),
        system: duration(usage.system_time()),
    })
}

/// The calling thread's total CPU time (user + system) since it started, with the resolution of
/// the scheduler's own accounting (nanoseconds), from `clock_gettime(CLOCK_THREAD_CPUTIME_ID)`.
///
/// # Errors
/// None in practice: the clock exists on every OS this builds for (Linux, macOS, the BSDs),
/// and rustix treats a failure as impossible; only NetBSD's path (through nix) reports one.
pub fn thread_cpu_clock() -> io::Result<Duration> {
    #[cfg(not(target_os = "netbsd"))]
    let (secs, nanos) = {
        let ts = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
        (ts.tv_sec, ts.tv_nsec)
    };
    #[cfg(target_os = "netbsd")]
    let (secs, nanos) = {
        use nix::time::{clock_gettime, ClockId};
        let ts = clock_gettime(ClockId::CLOCK_THREAD_CPUTIME_ID)?;
        (ts.tv_sec(), ts.tv_nsec())
    };
    let secs = u64::try_from(secs).unwrap_or(0);
    let nanos = u32::try_from(nanos).unwrap_or(0);
    Ok(Duration::new(secs, nanos))
}

/// A `timeval` the kernel returned as a `Duration`; negative fields (never seen) count as zero.
fn duration(tv: TimeVal) -> Duration {
    let secs = u64::try_from(tv.tv_sec()).unwrap_or(0);
    let micros = u32::try_from(tv.tv_usec()).unwrap_or(0);
    Duration::from_secs(secs) + Duration::from_micros(u64::from(micros))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_time_does_not_go_backwards_while_the_thread_works() {
        let before = thread_cpu_time().unwrap();
        let mut x = 0u64;
        for i in 0..5_000_000u64 {
            x = std::hint::black_box(x.wrapping_add(i));
        }
        let after = thread_cpu_time().unwrap();
        assert!(after.total() >= before.total());
    }

    #[test]
    fn the_thread_clock_sees_a_busy_loop() {
        let before = thread_cpu_clock().unwrap();
        let mut x = 0u64;
        for i in 0..5_000_000u64 {
            x = std::hint::black_box(x.wrapping_add(i));
        }
        assert!(thread_cpu_clock().unwrap() > before);
    }

    #[test]
    fn since_subtracts_each_part_and_saturates_at_zero() {
        let a = CpuTime {
            user: Duration::from_micros(5),
            system: Duration::from_micros(9),
        };
        let b = CpuTime {
            user: Duration::from_micros(7),
            system: Duration::from_micros(4),
        };
        let d = b.since(a);
        assert_eq!(d.user, Duration::from_micros(2));
        assert_eq!(d.system, Duration::ZERO);
        assert_eq!(d.total(), Duration::from_micros(2));
    }

    #[test]
    fn timeval_converts_seconds_and_microseconds() {
        let tv = TimeVal::new(3, 250_000);
        assert_eq!(duration(tv), Duration::from_millis(3250));
    }
}
