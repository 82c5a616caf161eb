//! The measurement loop of `compare`: every available backend on the same socket fds and the
//! same writes, interleaved block by block.
//!
//! For each case (N, A), each backend gets a fresh selector. The rounds are cut into blocks;
//! in block k the backends run one after the other, starting with backend k mod B, so that a
//! slow phase of a noisy machine falls on all of them alike. A backend's block is:
//!
//! 1. register the N watched fds (READABLE, token = index), timed;
//! 2. warm-up rounds, then measured rounds, each: write one byte into the peers of the round's
//!    A active pairs, `select`, check it reported exactly those A, drain them;
//! 3. unregister the N fds, timed.
//!
//! Each backend with a raw runner ([`crate::raw_syscall`]) also takes a turn per block with its
//! bare system call on the same rounds, timed the same way, so that its overhead (selector
//! median over raw median) is measured side by side.
//!
//! Only one backend has the fds registered at a time. Were they registered with all backends
//! at once, every write would also queue a wake-up on epoll's ready list while poll or select
//! is being measured, and epoll would pay for it in its next call.

use std::io;
use std::time::{Duration, Instant};

use tulip_sys::{Backend, Event, Interest, Ready, Selector, Token};

use crate::limits::{backend_skip_reason, NofileLimit};
use crate::machine::Machine;
use crate::metric::{Measurement, Metric};
use crate::plan::{Case, Plan};
use crate::progress::Progress;
use crate::raw_syscall::RawRunner;
use crate::stats;
use crate::workload::{ActiveSets, Workload};

/// How long one `select` may wait. Every round's writes are done before it is called, so it
/// never waits; a timeout (rather than a poll with zero) makes the kernel take the path of an
/// event loop that waits, which for `select`/`poll` includes queueing on each fd scanned.
const SELECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Everything one `compare` run found.
#[derive(Clone, Debug)]
pub struct Comparison {
    /// Where it ran.
    pub machine: Machine,
    /// What was done to `RLIMIT_NOFILE`.
    pub limit: NofileLimit,
    /// The backends this OS has, all of them measured where they can be.
    pub backends: Vec<Backend>,
    /// What was run.
    pub plan: Plan,
    /// One per backend × case measured.
    pub measurements: Vec<Measurement>,
    /// One sentence per backend × N (or N) that could not be measured, and why.
    pub skipped: Vec<String>,
    /// Wall time of the whole run.
    pub wall: Duration,
}

/// Run `plan` on every available backend.
///
/// # Errors
/// The kernel's, from creating fds or selectors, and `InvalidData` if a backend reports other
/// events than the fds written to (a bug in that backend: the run stops rather than report it).
pub fn run(plan: &Plan, progress: &mut Progress) -> io::Result<Comparison> {
    let started = Instant::now();
    let largest = plan.ns.iter().copied().max().unwrap_or(0);
    let limit = NofileLimit::raise_for(largest)?;
    let backends = Backend::available().to_vec();
    let mut measurements = Vec::new();
    let mut skipped = Vec::new();
    for &n in &plan.ns {
        let cases: Vec<Case> = plan.cases().into_iter().filter(|c| c.n == n).collect();
        if let Some(reason) = limit.skip_reason(n) {
            progress.skip(&reason, cases.len() * plan.blocks(n));
            skipped.push(reason);
            continue;
        }
        let workload = match Workload::new(n) {
            Ok(w) => w,
            Err(e) => {
                let reason =
                    format!("all backends: skipped for N={n}: creating {n} socket fds failed: {e}");
                progress.skip(&reason, cases.len() * plan.blocks(n));
                skipped.push(reason);
                continue;
            }
        };
        let mut usable = Vec::new();
        for &backend in &backends {
            match backend_skip_reason(backend, n, workload.highest_watched_fd()) {
                Some(reason) => {
                    progress.skip(&reason, 0);
                    skipped.push(reason);
                }
                None => usable.push(backend),
            }
        }
        for case in cases {
            measurements.extend(run_case(plan, case, &workload, &usable, progress)?);
        }
    }
    progress.finish(started.elapsed());
    Ok(Comparison {
        machine: Machine::detect(),
        limit,
        backends,
        plan: plan.clone(),
        measurements,
        skipped,
        wall: started.elapsed(),
    })
}

/// The raw samples of one backend on one case.
#[derive(Debug, Default)]
struct Samples {
    select_ns: Vec<f64>,
    raw_select_ns: Vec<f64>,
    latency_ns: Vec<f64>,
    select_syscalls: u64,
    registration_ns_per_fd: Vec<f64>,
    registration_syscalls: u64,
    registrations: u64,
}

impl Samples {
    fn into_measurement(self, backend: Backend, case: Case) -> Measurement {
        let rounds = self.select_ns.len() as f64;
        let select = stats::median(&self.select_ns);
        let raw = stats::median(&self.raw_select_ns);
        let overhead = match (select, raw) {
            (Some(s), Some(r)) if r > 0.0 => Some(s / r),
            _ => None,
        };
        let candidates = [
            (Metric::SelectMedian, select),
            (Metric::SelectP99, stats::p99(&self.select_ns)),
            (Metric::RawSelectMedian, raw),
            (Metric::SelectOverhead, overhead),
            (Metric::LatencyMedian, stats::median(&self.latency_ns)),
            (Metric::LatencyP99, stats::p99(&self.latency_ns)),
            (
                Metric::SyscallsPerSelect,
                ratio(self.select_syscalls, rounds),
            ),
            (
                Metric::RegistrationPerFd,
                stats::median(&self.registration_ns_per_fd),
            ),
            (
                Metric::RegistrationSyscallsPerFd,
                ratio(self.registration_syscalls, self.registrations as f64),
            ),
            (Metric::Rounds, Some(rounds)),
        ];
        Measurement {
            backend,
            n: case.n,
            active: case.active,
            values: candidates
                .into_iter()
                .filter_map(|(m, v)| Some((m, v?)))
                .collect(),
        }
    }
}

fn ratio(count: u64, of: f64) -> Option<f64> {
    (of > 0.0).then(|| count as f64 / of)
}

fn run_case(
    plan: &Plan,
    case: Case,
    workload: &Workload,
    backends: &[Backend],
    progress: &mut Progress,
) -> io::Result<Vec<Measurement>> {
    let started = Instant::now();
    progress.start_case(case);
    let mut selectors = backends
        .iter()
        .map(|b| b.open())
        .collect::<io::Result<Vec<_>>>()?;
    let mut raws = backends
        .iter()
        .map(|&b| RawRunner::new(b, workload))
        .collect::<io::Result<Vec<_>>>()?;
    // Every turn of a block: each selector, then each raw runner (an index into `backends`).
    let turns: Vec<Turn> = (0..backends.len())
        .map(Turn::Selector)
        .chain(
            (0..backends.len())
                .filter(|&b| raws[b].is_some())
                .map(Turn::Raw),
        )
        .collect();
    let mut samples: Vec<Samples> = backends.iter().map(|_| Samples::default()).collect();
    let mut sets = ActiveSets::new(case.seed(), case.n, case.active);
    let blocks = plan.blocks(case.n);
    let rounds = plan.rounds(case.n);
    let warmup = plan.warmup(case.n);
    let mut scratch = Scratch::new(case.n);
    for block in 0..blocks {
        // Spread the rounds evenly: the first `rounds % blocks` blocks get one more.
        let measured = rounds / blocks + usize::from(block < rounds % blocks);
        let round_sets = sets.take_rounds(warmup + measured);
        for turn in 0..turns.len() {
            let block_run = BlockRun {
                workload,
                rounds: &round_sets,
                warmup,
            };
            match turns[(block + turn) % turns.len()] {
                Turn::Selector(b) => {
                    block_run.run(selectors[b].as_mut(), &mut samples[b], &mut scratch)?;
                }
                Turn::Raw(b) => {
                    if let Some(raw) = raws[b].as_mut() {
                        block_run.run_raw(backends[b], raw, &mut samples[b], &mut scratch)?;
                    }
                }
            }
        }
        progress.block_done();
    }
    progress.finish_case(case, backends, started.elapsed());
    Ok(backends
        .iter()
        .zip(samples)
        .map(|(&backend, s)| s.into_measurement(backend, case))
        .collect())
}

/// One turn in a block: a backend's selector, or its bare system call.
#[derive(Copy, Clone, Debug)]
enum Turn {
    Selector(usize),
    Raw(usize),
}

/// Buffers reused across rounds, so a round allocates nothing.
struct Scratch {
    events: Vec<Event>,
    /// The indices a raw runner reported.
    ready: Vec<usize>,
    /// When each pair's write started (valid for the pairs of the current round).
    written_at: Vec<Instant>,
    /// Which pairs were written to and not yet reported in this round.
    pending: Vec<bool>,
}

impl Scratch {
    fn new(n: usize) -> Scratch {
        Scratch {
            events: Vec::with_capacity(n),
            ready: Vec::with_capacity(n),
            written_at: vec![Instant::now(); n],
            pending: vec![false; n],
        }
    }
}

/// One backend's block of rounds on a workload.
struct BlockRun<'a> {
    workload: &'a Workload,
    rounds: &'a [Vec<usize>],
    warmup: usize,
}

impl BlockRun<'_> {
    fn run(
        &self,
        selector: &mut dyn Selector,
        samples: &mut Samples,
        scratch: &mut Scratch,
    ) -> io::Result<()> {
        let n = self.workload.len();
        let syscalls = selector.syscalls();
        let t0 = Instant::now();
        for i in 0..n {
            selector.register(self.workload.watched_fd(i), Interest::READABLE, Token(i))?;
        }
        let registering = t0.elapsed();
        let mut registration_syscalls = selector.syscalls() - syscalls;

        for (r, active) in self.rounds.iter().enumerate() {
            let measured = r >= self.warmup;
            self.round(selector, active, scratch, measured.then_some(&mut *samples))?;
        }

        let syscalls = selector.syscalls();
        let t1 = Instant::now();
        for i in 0..n {
            selector.unregister(self.workload.watched_fd(i))?;
        }
        let unregistering = t1.elapsed();
        registration_syscalls += selector.syscalls() - syscalls;

        if n > 0 {
            let per_fd = (registering + unregistering).as_nanos() as f64 / n as f64;
            samples.registration_ns_per_fd.push(per_fd);
            samples.registrations += n as u64;
            samples.registration_syscalls += registration_syscalls;
        }
        Ok(())
    }

    /// The same block through `backend`'s bare system call: only the wait is recorded.
    fn run_raw(
        &self,
        backend: Backend,
        raw: &mut RawRunner<'_>,
        samples: &mut Samples,
        scratch: &mut Scratch,
    ) -> io::Result<()> {
        raw.register()?;
        for (r, active) in self.rounds.iter().enumerate() {
            for &i in active {
                scratch.pending[i] = true;
                self.workload.activate(i)?;
            }
            let t0 = Instant::now();
            raw.wait(&mut scratch.ready, SELECT_TIMEOUT)?;
            let elapsed = t0.elapsed();
            scratch.events.clear();
            scratch.events.extend(
                scratch
                    .ready
                    .iter()
                    .map(|&i| Event::new(Token(i), Ready::READABLE)),
            );
            check_events(backend, &scratch.events, active, &mut scratch.pending)
                .map_err(|e| io::Error::new(e.kind(), format!("raw {e}")))?;
            for &i in &scratch.ready {
                self.workload.drain(i)?;
            }
            if r >= self.warmup {
                samples.raw_select_ns.push(elapsed.as_nanos() as f64);
            }
        }
        raw.unregister()
    }

    /// One round: write to the active pairs, select, check and drain. Recorded into `samples`
    /// unless it is a warm-up round.
    fn round(
        &self,
        selector: &mut dyn Selector,
        active: &[usize],
        scratch: &mut Scratch,
        samples: Option<&mut Samples>,
    ) -> io::Result<()> {
        for &i in active {
            scratch.written_at[i] = Instant::now();
            scratch.pending[i] = true;
            self.workload.activate(i)?;
        }
        let syscalls = selector.syscalls();
        let t0 = Instant::now();
        selector.select(&mut scratch.events, Some(SELECT_TIMEOUT))?;
        let returned = Instant::now();
        let select_syscalls = selector.syscalls() - syscalls;

        check_events(
            selector.backend(),
            &scratch.events,
            active,
            &mut scratch.pending,
        )?;
        for event in &scratch.events {
            self.workload.drain(event.token().0)?;
        }
        if let Some(samples) = samples {
            samples.select_ns.push((returned - t0).as_nanos() as f64);
            samples.select_syscalls += select_syscalls;
            for event in &scratch.events {
                let written = scratch.written_at[event.token().0];
                samples
                    .latency_ns
                    .push((returned - written).as_nanos() as f64);
            }
        }
        Ok(())
    }
}

/// A level-triggered selector must report exactly the pairs written to, each once and
/// readable. `pending` marks the `active` pairs written to; this clears it for the next round.
fn check_events(
    backend: Backend,
    events: &[Event],
    active: &[usize],
    pending: &mut [bool],
) -> io::Result<()> {
    let mut stray = None;
    for event in events {
        let i = event.token().0;
        match pending.get_mut(i) {
            Some(p) if *p && event.is_readable() => *p = false,
            _ => stray = stray.or(Some(*event)),
        }
    }
    let missed = active.iter().filter(|&&i| pending[i]).count();
    active.iter().for_each(|&i| pending[i] = false);
    let written = active.len();
    if stray.is_none() && missed == 0 && events.len() == written {
        return Ok(());
    }
    Err(io::Error::new(
        io::ErrorKind::InvalidData,
        format!(
            "{backend} returned {} events for {written} fds written to: {missed} missed, first unexpected {stray:?}",
            events.len()
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_for_exactly_the_written_fds_pass_the_check() {
        let mut pending = vec![false, true, false, true];
        let events = [
            Event::new(Token(3), Ready::READABLE),
            Event::new(Token(1), Ready::READABLE),
        ];
        check_events(Backend::Poll, &events, &[1, 3], &mut pending).unwrap();
        assert!(pending.iter().all(|p| !p));
    }

    #[test]
    fn a_missed_or_stray_event_fails_the_check_and_still_resets() {
        let mut pending = vec![true, true, false];
        let events = [Event::new(Token(0), Ready::READABLE)];
        let err = check_events(Backend::Poll, &events, &[0, 1], &mut pending).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        assert!(pending.iter().all(|p| !p));

        let mut pending = vec![true, false];
        let events = [
            Event::new(Token(0), Ready::READABLE),
            Event::new(Token(1), Ready::READABLE),
        ];
        assert!(check_events(Backend::Epoll, &events, &[0], &mut pending).is_err());
    }
}
