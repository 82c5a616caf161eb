//! One measured run of a workload: how many ops it did, the wall time and the bench thread's
//! CPU time around the part being measured, setup excluded. The total CPU time comes from the
//! thread's CPU clock (nanoseconds); its user/system split from `getrusage`, which on most
//! kernels moves in whole clock ticks, so the split is only read over many samples pooled.

use std::io;
use std::time::{Duration, Instant};

use tulip_sys::usage::{thread_cpu_clock, thread_cpu_time, CpuTime};

/// What one run of a workload cost.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct Sample {
    /// Operations done (callbacks, timers, tasks, yields, round trips).
    pub ops: usize,
    /// Wall time.
    pub wall: Duration,
    /// CPU time of the bench thread, which is the only thread either runtime uses here
    /// (precise).
    pub cpu_total: Duration,
    /// The same split into user and system time (in clock ticks, usually).
    pub cpu: CpuTime,
}

impl Sample {
    /// Wall nanoseconds per op.
    pub fn wall_ns_per_op(&self) -> f64 {
        per_op(self.wall, self.ops)
    }

    /// CPU (user + system) nanoseconds per op.
    pub fn cpu_ns_per_op(&self) -> f64 {
        per_op(self.cpu_total, self.ops)
    }
}

/// User and system CPU nanoseconds per op over all of `samples` together: pooling makes the
/// tick-sized steps of `getrusage` small against the whole.
pub fn pooled_user_system_ns(samples: &[Sample]) -> (f64, f64) {
    let ops = samples.iter().map(|s| s.ops).sum();
    let user = samples.iter().map(|s| s.cpu.user).sum();
    let system = samples.iter().map(|s| s.cpu.system).sum();
    (per_op(user, ops), per_op(system, ops))
}

fn per_op(d: Duration, ops: usize) -> f64 {
    d.as_nanos() as f64 / ops.max(1) as f64
}

/// Run `work`, which does `ops` operations, and measure it. Everything `work` needs should be
/// built before: only the call is timed.
///
/// # Errors
/// Those of `work`, and of `getrusage` (never seen).
pub fn measure(ops: usize, work: impl FnOnce() -> io::Result<()>) -> io::Result<Sample> {
    let split_before = thread_cpu_time()?;
    let cpu_before = thread_cpu_clock()?;
    let started = Instant::now();
    work()?;
    let wall = started.elapsed();
    let cpu_total = thread_cpu_clock()?.saturating_sub(cpu_before);
    let cpu = thread_cpu_time()?.since(split_before);
    Ok(Sample {
        ops,
        wall,
        cpu_total,
        cpu,
    })
}

/// `InvalidData` for a workload whose count of completed ops is not what was asked: a run that
/// did less work than it claims must not be reported.
pub fn check_count(what: &str, expected: usize, got: usize) -> io::Result<()> {
    if expected == got {
        Ok(())
    } else {
        Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{what}: {got} ops completed, expected {expected}"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_op_figures_divide_by_the_op_count() {
        let s = Sample {
            ops: 1000,
            wall: Duration::from_micros(50),
            cpu_total: Duration::from_micros(40),
            cpu: CpuTime::default(),
        };
        assert_eq!(s.wall_ns_per_op(), 50.0);
        assert_eq!(s.cpu_ns_per_op(), 40.0);
    }

    #[test]
    fn user_and_system_are_pooled_over_all_samples() {
        let sample = |user_us, system_us| Sample {
            ops: 1000,
            cpu: CpuTime {
                user: Duration::from_micros(user_us),
                system: Duration::from_micros(system_us),
            },
            ..Sample::default()
        };
        let samples = [sample(4000, 0), sample(0, 4000), sample(4000, 4000)];
        let (user, system) = pooled_user_system_ns(&samples);
        assert!((user - 8000.0 / 3.0).abs() < 1e-9);
        assert!((system - 8000.0 / 3.0).abs() < 1e-9);
    }

    #[test]
    fn a_short_count_is_an_error() {
        assert!(check_count("spawn", 10, 10).is_ok());
        assert!(check_count("spawn", 10, 9).is_err());
    }
}
