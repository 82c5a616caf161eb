//! The loop's notion of time: the monotonic clock, or a [`ManualClock`] for deterministic tests.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tulip_sys::clock::monotonic_nanos;

/// A virtual clock that moves only when told to, for deterministic tests of time-based code.
///
/// A loop made with [`EventLoop::with_clock`](crate::EventLoop::with_clock) reads its time from
/// this clock, and whenever it would sleep until a timer it *jumps* the clock instead: a test of
/// an hour of timers runs in microseconds, and always in the same order. The test may also
/// [`advance`](ManualClock::advance) it itself. Clones share one time; it is `Send + Sync`.
///
/// ```
/// use std::time::Duration;
/// use tulip::{EventLoop, ManualClock};
/// use tulip::selectors::Backend;
///
/// let clock = ManualClock::new();
/// let lp = EventLoop::with_clock(Backend::best(), clock.clone())?;
/// lp.call_later(Duration::from_secs(3600), |lp| lp.stop())?;
/// lp.run_forever()?; // returns at once: the loop jumped an hour ahead
/// assert_eq!(clock.now(), Duration::from_secs(3600));
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Clone, Debug, Default)]
pub struct ManualClock {
    nanos: Arc<AtomicU64>,
}

impl ManualClock {
    /// A clock at time zero.
    pub fn new() -> ManualClock {
        ManualClock::default()
    }

    /// The current time (since the clock's zero).
    pub fn now(&self) -> Duration {
        Duration::from_nanos(self.nanos.load(Ordering::SeqCst))
    }

    /// Move the clock forward by `by` (saturating after some 584 years).
    pub fn advance(&self, by: Duration) {
        let by = u64::try_from(by.as_nanos()).unwrap_or(u64::MAX);
        let _ = self
            .nanos
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                Some(n.saturating_add(by))
            });
    }

    /// Move the clock forward to `when`; a time in the past leaves it where it is (the clock is
    /// monotonic).
    pub fn advance_to(&self, when: Duration) {
        let when = u64::try_from(when.as_nanos()).unwrap_or(u64::MAX);
        self.nanos.fetch_max(when, Ordering::SeqCst);
    }
}

/// Where a loop reads its time.
#[derive(Debug)]
pub(crate) enum Clock {
    /// Real time, counted from the loop's creation: the monotonic clock's reading then, in
    /// nanoseconds (see `tulip_sys::clock`).
    Monotonic(u64),
    /// Virtual time: the loop jumps it instead of sleeping.
    Manual(ManualClock),
}

impl Clock {
    pub(crate) fn monotonic() -> Clock {
        Clock::Monotonic(monotonic_nanos())
    }

    #[inline]
    pub(crate) fn now(&self) -> Duration {
        match self {
            Clock::Monotonic(epoch) => since(*epoch, monotonic_nanos()),
            Clock::Manual(clock) => clock.now(),
        }
    }

    /// The loop's time at `reading`, a reading of the monotonic clock the caller already made
    /// (so the loop reads the clock once per `select`, not again for its timers). A manual
    /// clock ignores it.
    pub(crate) fn at(&self, reading: u64) -> Duration {
        match self {
            Clock::Monotonic(epoch) => since(*epoch, reading),
            Clock::Manual(clock) => clock.now(),
        }
    }

    pub(crate) fn as_manual(&self) -> Option<&ManualClock> {
        match self {
            Clock::Monotonic(_) => None,
            Clock::Manual(clock) => Some(clock),
        }
    }
}

/// The time from `epoch` to `reading`, both in monotonic nanoseconds.
#[inline]
fn since(epoch: u64, reading: u64) -> Duration {
    Duration::from_nanos(reading.saturating_sub(epoch))
}
