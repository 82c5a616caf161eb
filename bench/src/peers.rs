//! `peers`: tulip's loop against tokio's current-thread runtime on the same seven workloads
//! (`call_soon`, timers, task spawn, task switch, a pipe ping-pong, a bounded queue between two
//! tasks, an uncontended lock), and the ping-pong against a raw epoll loop with nothing on top,
//! all in one run.
//!
//! For each workload the runners take turns sample by sample, the first of each round rotating,
//! so that a slow phase of a noisy machine falls on all of them alike; the first samples of
//! each are a warm-up and are thrown away, and the report shows the median of the rest. Every
//! sample builds its own loop or runtime (and pipes) first, untimed.

mod csv;
mod on_tokio;
mod on_tulip;
mod plan;
mod raw_epoll;
mod report;
mod sample;

use std::io;
use std::time::{Duration, Instant};

use tulip_sys::fd;

use crate::machine::Machine;
use crate::progress::Progress;
use crate::stats;

pub use self::csv::write as write_csv;
pub use plan::PeerPlan;
pub use report::{locked_version, markdown, ratio};

use plan::{Runner, Workload};
use sample::Sample;

/// Everything one `peers` run found.
#[derive(Clone, Debug)]
pub struct PeerRun {
    /// Where it ran.
    pub machine: Machine,
    /// What was run.
    pub plan: PeerPlan,
    /// One per workload, in report order.
    pub results: Vec<WorkloadResult>,
    /// Wall time of the whole run.
    pub wall: Duration,
}

/// The medians of one workload, per runner.
#[derive(Clone, Debug, PartialEq)]
pub struct WorkloadResult {
    /// Which workload.
    pub workload: Workload,
    /// Operations per sample.
    pub ops: usize,
    /// One per runner of the workload, in [`Workload::runners`] order.
    pub runners: Vec<(Runner, PerOp)>,
}

impl WorkloadResult {
    /// The medians of `runner`, if it ran this workload.
    pub fn of(&self, runner: Runner) -> Option<&PerOp> {
        self.runners
            .iter()
            .find(|(r, _)| *r == runner)
            .map(|(_, p)| p)
    }
}

/// Nanoseconds per op of one runner over its measured samples.
#[derive(Copy, Clone, Debug, Default, PartialEq)]
pub struct PerOp {
    /// CPU time (user + system) of the bench thread, median.
    pub cpu_ns: f64,
    /// Wall time, median.
    pub wall_ns: f64,
    /// User CPU time, pooled over the samples rather than a median (see [`sample`]).
    pub user_ns: f64,
    /// System CPU time, pooled likewise.
    pub system_ns: f64,
    /// Measured samples (warm-up excluded).
    pub samples: usize,
}

impl PerOp {
    /// The figures of `samples`; all zero for none.
    fn of_samples(samples: &[Sample]) -> PerOp {
        let median = |f: fn(&Sample) -> f64| {
            let values: Vec<f64> = samples.iter().map(f).collect();
            stats::median(&values).unwrap_or(0.0)
        };
        let (user_ns, system_ns) = sample::pooled_user_system_ns(samples);
        PerOp {
            cpu_ns: median(Sample::cpu_ns_per_op),
            wall_ns: median(Sample::wall_ns_per_op),
            user_ns,
            system_ns,
            samples: samples.len(),
        }
    }
}

/// Run every workload of `plan` on every runner.
///
/// # Errors
/// The kernel's (pipes, selectors), the runtimes' own, and `InvalidData` if a runner completed
/// fewer ops than asked (the run stops rather than report it).
pub fn run(plan: &PeerPlan, progress: &mut Progress) -> io::Result<PeerRun> {
    let started = Instant::now();
    let mut results = Vec::new();
    for &workload in &plan.workloads {
        let began = Instant::now();
        progress.start_step(workload.name());
        results.push(run_workload(plan, workload, progress)?);
        let names: Vec<&str> = workload.runners().iter().map(|r| r.name()).collect();
        progress.finish_step(workload.name(), &names.join(", "), began.elapsed());
    }
    progress.finish(started.elapsed());
    Ok(PeerRun {
        machine: Machine::detect(),
        plan: plan.clone(),
        results,
        wall: started.elapsed(),
    })
}

fn run_workload(
    plan: &PeerPlan,
    workload: Workload,
    progress: &Progress,
) -> io::Result<WorkloadResult> {
    let runners = workload.runners();
    let ops = plan.ops(workload);
    let mut samples: Vec<Vec<Sample>> = runners.iter().map(|_| Vec::new()).collect();
    for round in 0..plan.rounds() {
        for turn in 0..runners.len() {
            let r = (round + turn) % runners.len();
            let sample = take_sample(workload, runners[r], ops)?;
            if round >= plan.warmup {
                samples[r].push(sample);
            }
            progress.block_done();
        }
    }
    Ok(WorkloadResult {
        workload,
        ops,
        runners: runners
            .iter()
            .zip(&samples)
            .map(|(&runner, s)| (runner, PerOp::of_samples(s)))
            .collect(),
    })
}

/// One sample of `workload` on `runner`.
fn take_sample(workload: Workload, runner: Runner, ops: usize) -> io::Result<Sample> {
    match (workload, runner) {
        (Workload::CallSoon, Runner::Tulip) => on_tulip::call_soon(ops),
        (Workload::CallSoon, Runner::Tokio) => on_tokio::call_soon(ops),
        (Workload::Timers, Runner::Tulip) => on_tulip::timers(ops),
        (Workload::Timers, Runner::Tokio) => on_tokio::timers(ops),
        (Workload::Spawn, Runner::Tulip) => on_tulip::spawn(ops),
        (Workload::Spawn, Runner::Tokio) => on_tokio::spawn(ops),
        (Workload::Switch, Runner::Tulip) => on_tulip::switch(ops),
        (Workload::Switch, Runner::Tokio) => on_tokio::switch(ops),
        (Workload::Queue, Runner::Tulip) => on_tulip::queue(ops),
        (Workload::Queue, Runner::Tokio) => on_tokio::queue(ops),
        (Workload::Lock, Runner::Tulip) => on_tulip::lock(ops),
        (Workload::Lock, Runner::Tokio) => on_tokio::lock(ops),
        (Workload::PingPong, runner) => {
            let (there, back) = (fd::pipe()?, fd::pipe()?);
            match runner {
                Runner::Tulip => on_tulip::ping_pong(ops, there, back),
                Runner::Tokio => on_tokio::ping_pong(ops, there, back),
                Runner::Raw => raw_epoll::ping_pong(ops, there, back),
            }
        }
        (_, Runner::Raw) => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("the raw loop has no {} workload", workload.name()),
        )),
    }
}
