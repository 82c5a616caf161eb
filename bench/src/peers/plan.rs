//! What `peers` runs: the seven workloads, how many operations each sample does, and how many
//! samples each runtime gets.

use std::time::Duration;

use crate::prng::SplitMix64;

/// One workload of the peer comparison, in report order.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum Workload {
    /// Callbacks scheduled to run as soon as possible, in batches; one op = one callback.
    CallSoon,
    /// Timers: schedule them, cancel every other one, let the rest fire; one op = one timer
    /// scheduled.
    Timers,
    /// Tasks spawned in batches and awaited; one op = one task spawned and completed.
    Spawn,
    /// Tasks that do nothing but yield to the loop; one op = one yield.
    Switch,
    /// Two tasks bouncing one byte over two pipes; one op = one round trip.
    PingPong,
    /// A producer task passing items to a consumer task through a queue bounded to
    /// [`QUEUE_BOUND`]; one op = one item put and got.
    Queue,
    /// A task acquiring and releasing a lock nobody else wants; one op = one acquire and
    /// release.
    Lock,
}

impl Workload {
    /// Every workload, in report order.
    pub const ALL: [Workload; 7] = [
        Workload::CallSoon,
        Workload::Timers,
        Workload::Spawn,
        Workload::Switch,
        Workload::PingPong,
        Workload::Queue,
        Workload::Lock,
    ];

    /// The name the report and the CSV use.
    pub const fn name(self) -> &'static str {
        match self {
            Workload::CallSoon => "call_soon",
            Workload::Timers => "timers",
            Workload::Spawn => "spawn",
            Workload::Switch => "switch",
            Workload::PingPong => "ping_pong",
            Workload::Queue => "queue",
            Workload::Lock => "lock",
        }
    }

    /// What one op is, for the report.
    pub const fn op(self) -> &'static str {
        match self {
            Workload::CallSoon => "callback",
            Workload::Timers => "timer",
            Workload::Spawn => "task",
            Workload::Switch => "yield",
            Workload::PingPong => "round trip",
            Workload::Queue => "item",
            Workload::Lock => "acquire + release",
        }
    }

    /// The runners this workload is measured on: the raw epoll loop only has a ping-pong.
    pub fn runners(self) -> &'static [Runner] {
        match self {
            Workload::PingPong => &[Runner::Tulip, Runner::Tokio, Runner::Raw],
            _ => &[Runner::Tulip, Runner::Tokio],
        }
    }
}

/// Who runs a workload.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum Runner {
    /// tulip's `EventLoop` on the best backend.
    Tulip,
    /// tokio's current-thread runtime with a `LocalSet`.
    Tokio,
    /// A hand-written loop on the epoll selector, no event loop on top (ping-pong only).
    Raw,
}

impl Runner {
    /// The name the report and the CSV use.
    pub const fn name(self) -> &'static str {
        match self {
            Runner::Tulip => "tulip",
            Runner::Tokio => "tokio",
            Runner::Raw => "raw",
        }
    }
}

/// Callbacks or tasks scheduled at once before the loop runs them: enough to show the queue's
/// cost, few enough to stay in cache, as a busy server's ready queue would.
pub const BATCH: usize = 1_000;

/// Tasks taking turns in `switch`, so that one loop iteration (and its `select`/park with a
/// zero timeout, which both runtimes make) is shared by many switches and the switch itself is
/// what is measured.
pub const SWITCH_TASKS: usize = 100;

/// The bound of the `queue` workload's queue (and of tokio's `mpsc` channel): the producer
/// waits whenever this many items are in flight.
pub const QUEUE_BOUND: usize = 128;

/// The earliest timer deadline, from the start of a `timers` sample: late enough that every
/// timer is in the runtime's timer structure before any is due, even in tokio, which inserts a
/// sleep into its wheel only when its task is first polled (100k spawns and polls took over
/// 20 ms in one sample on a 2-CPU VM; were a timer due before the cancels, tokio's count of
/// fired timers would be off and the run would stop).
pub const TIMER_EARLIEST: Duration = Duration::from_millis(100);

/// Timer deadlines are spread over this much time after [`TIMER_EARLIEST`].
pub const TIMER_SPREAD: Duration = Duration::from_millis(10);

/// The delays of the `n` timers of a `timers` sample: pseudo-random (a fixed seed, the same for
/// both runtimes), in microseconds, within `TIMER_EARLIEST .. TIMER_EARLIEST + TIMER_SPREAD`.
pub fn timer_delays(n: usize) -> Vec<Duration> {
    let mut rng = SplitMix64::new(0x7u64 << 40 | n as u64);
    let spread = TIMER_SPREAD.as_micros() as usize;
    (0..n)
        .map(|_| TIMER_EARLIEST + Duration::from_micros(rng.below(spread) as u64))
        .collect()
}

/// The sizes and repetitions of one run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerPlan {
    /// `--quick`: smaller samples, fewer of them.
    pub quick: bool,
    /// The workloads to run, in report order (all of them unless `--only` says otherwise).
    pub workloads: Vec<Workload>,
    /// Samples per runner and workload that are thrown away first.
    pub warmup: usize,
    /// Samples per runner and workload that are kept; the report shows their median.
    pub samples: usize,
}

impl PeerPlan {
    /// The default plan (well under a minute) or the quick one (a few seconds).
    pub fn new(quick: bool) -> PeerPlan {
        PeerPlan {
            quick,
            workloads: Workload::ALL.to_vec(),
            warmup: 1,
            samples: if quick { 3 } else { 11 },
        }
    }

    /// Keep only the workloads named in `names` (report order is kept).
    ///
    /// # Errors
    /// A message naming a workload that does not exist.
    pub fn only(mut self, names: &[String]) -> Result<PeerPlan, String> {
        for name in names {
            if !Workload::ALL.iter().any(|w| w.name() == name) {
                let known: Vec<&str> = Workload::ALL.iter().map(|w| w.name()).collect();
                return Err(format!(
                    "--only: no workload {name:?} (known: {})",
                    known.join(", ")
                ));
            }
        }
        self.workloads
            .retain(|w| names.iter().any(|n| n == w.name()));
        Ok(self)
    }

    /// Operations in one sample of `workload`. The timer count is the 100k in the
    /// default plan, the queue's 1M items too; the others are sized so a sample takes
    /// 20–500 ms.
    pub fn ops(&self, workload: Workload) -> usize {
        let full = match workload {
            Workload::CallSoon => 1_000_000,
            Workload::Timers => 100_000,
            Workload::Spawn => 300_000,
            Workload::Switch => 1_000_000,
            Workload::PingPong => 200_000,
            Workload::Queue => 1_000_000,
            Workload::Lock => 10_000_000,
        };
        if self.quick {
            full / 10
        } else {
            full
        }
    }

    /// Samples taken per runner of a workload, warm-up included.
    pub fn rounds(&self) -> usize {
        self.warmup + self.samples
    }

    /// Every sample the run takes, for the progress bar.
    pub fn total_samples(&self) -> usize {
        self.workloads
            .iter()
            .map(|w| w.runners().len() * self.rounds())
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quick_is_smaller_in_size_and_in_samples() {
        let (quick, full) = (PeerPlan::new(true), PeerPlan::new(false));
        for w in Workload::ALL {
            assert!(quick.ops(w) < full.ops(w));
            assert_eq!(
                quick.ops(w) % BATCH,
                0,
                "{} ops fill whole batches",
                w.name()
            );
            assert_eq!(full.ops(w) % SWITCH_TASKS, 0);
        }
        assert!(quick.total_samples() < full.total_samples());
    }

    #[test]
    fn timer_delays_are_repeatable_and_within_the_window() {
        let delays = timer_delays(1000);
        assert_eq!(delays, timer_delays(1000));
        assert!(delays
            .iter()
            .all(|&d| d >= TIMER_EARLIEST && d < TIMER_EARLIEST + TIMER_SPREAD));
    }

    #[test]
    fn only_keeps_the_named_workloads_in_report_order_and_rejects_unknown_ones() {
        let names = vec!["ping_pong".to_string(), "call_soon".to_string()];
        let plan = PeerPlan::new(true).only(&names).unwrap();
        assert_eq!(plan.workloads, vec![Workload::CallSoon, Workload::PingPong]);
        assert!(PeerPlan::new(true).only(&["fork".to_string()]).is_err());
    }

    #[test]
    fn only_ping_pong_has_a_raw_floor() {
        for w in Workload::ALL {
            assert_eq!(
                w.runners().contains(&Runner::Raw),
                w == Workload::PingPong,
                "{}",
                w.name()
            );
        }
    }
}
