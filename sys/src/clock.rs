//! The monotonic clock, read as a plain count of nanoseconds.
//!
//! `std::time::Instant` reads the same clock, but it keeps a `timespec` and its arithmetic
//! (`elapsed`, `duration_since`) normalises seconds and nanoseconds with checks on every use:
//! some 80 instructions per reading on x86-64 (callgrind), where the event loop reads the
//! clock for every `call_later` and after every `select` with timers pending. A `u64` of
//! nanoseconds is one multiply-add from the kernel's `timespec` and one subtraction from an
//! epoch, and it runs out after 584 years.

/// Nanoseconds on the monotonic clock (`CLOCK_MONOTONIC`, through the vDSO on Linux) since
/// an unspecified start, the same for the whole system. Never decreases.
#[inline]
pub fn monotonic_nanos() -> u64 {
    let now = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    // The kernel never gives a negative reading of this clock; were it to, zero.
    let secs = u64::try_from(now.tv_sec).unwrap_or(0);
    let nanos = u64::try_from(now.tv_nsec).unwrap_or(0);
    secs.saturating_mul(1_000_000_000).saturating_add(nanos)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    #[test]
    fn counts_nanoseconds_monotonically_at_the_pace_of_instant() {
        let outer = Instant::now();
        let first = monotonic_nanos();
        std::thread::sleep(Duration::from_millis(20));
        let second = monotonic_nanos();
        let outer = outer.elapsed();
        let counted = Duration::from_nanos(second - first);
        // The two readings are nested in `Instant`'s, of the same clock on Linux (a
        // millisecond allowed for another OS's clock running at a slewed rate).
        assert!(counted >= Duration::from_millis(20), "{counted:?}");
        assert!(
            counted <= outer + Duration::from_millis(1),
            "{counted:?} within {outer:?}"
        );
    }
}
