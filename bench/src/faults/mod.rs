//! `faults`: the evidence for the README's "Reliability" section. Each probe puts the loop
//! through one fault at scale (a signal storm, fds reused under a collected event, `EMFILE`,
//! resets, half-closes, a client that never reads, panics everywhere, a thousand loop
//! lifetimes, 100,000 timers and tasks, 10,000 fds, a signal shared with another library,
//! a burst of 2,000 connects, 10,000 timeouts on one future), *checks* the outcome, and gives
//! one figure. A probe that finds the loop misbehaving fails the command with a message; one
//! that hangs is stopped by a watchdog, which names it and exits with status 3.
//!
//! The `EMFILE` probe runs in a child process (this binary again, `faults-child emfile`), so
//! that the lowered fd limit stays there.

mod io_probes;
mod loop_probes;
mod procfs;

use std::fmt::Write as _;
use std::io::{self, Write};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tulip::selectors::Backend;

pub use procfs::{fd_count, rss_bytes, thread_count};

/// What a probe needs to know about the run.
#[derive(Copy, Clone, Debug)]
pub struct Ctx {
    /// The backend every loop of the run uses.
    pub backend: Backend,
    /// `--quick`: smaller scales, for CI.
    pub quick: bool,
}

impl Ctx {
    /// `full` normally, `quick` under `--quick`.
    pub fn pick<T>(&self, full: T, quick: T) -> T {
        if self.quick {
            quick
        } else {
            full
        }
    }
}

/// What a probe found when the loop behaved: what it did, and the figure.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// What the loop did, in a few words.
    pub did: String,
    /// The measured figure.
    pub figure: String,
}

/// One probe: a fault, how long it may take before the watchdog calls it a hang, and the run.
struct Probe {
    name: &'static str,
    fault: &'static str,
    limit: Duration,
    run: fn(&Ctx) -> io::Result<Outcome>,
}

/// Every probe, in the README's order.
const PROBES: &[Probe] = &[
    Probe {
        name: "eintr",
        fault: "EINTR storm: a signal to the loop's thread at full rate",
        limit: Duration::from_secs(60),
        run: io_probes::eintr_storm,
    },
    Probe {
        name: "fd-reuse",
        fault: "fd closed and its number reused after its event was collected",
        limit: Duration::from_secs(60),
        run: loop_probes::fd_reuse,
    },
    Probe {
        name: "emfile",
        fault: "EMFILE: no fd left for accept",
        limit: Duration::from_secs(60),
        run: io_probes::emfile,
    },
    Probe {
        name: "resets",
        fault: "connections reset (SO_LINGER 0) mid-stream",
        limit: Duration::from_secs(60),
        run: io_probes::resets,
    },
    Probe {
        name: "half-close",
        fault: "clients that shut down their write side",
        limit: Duration::from_secs(60),
        run: io_probes::half_close,
    },
    Probe {
        name: "slow-client",
        fault: "a client that does not read",
        limit: Duration::from_secs(60),
        run: io_probes::slow_client,
    },
    Probe {
        name: "panics",
        fault: "panics in every kind of callback",
        limit: Duration::from_secs(60),
        run: loop_probes::panics,
    },
    Probe {
        name: "leaks",
        fault: "1,000 loop lifetimes (timers, a task, sockets, executor, signal)",
        limit: Duration::from_secs(120),
        run: loop_probes::lifetimes,
    },
    Probe {
        name: "timers-tasks",
        fault: "100,000 timers and 100,000 tasks, half cancelled",
        limit: Duration::from_secs(60),
        run: loop_probes::timers_and_tasks,
    },
    Probe {
        name: "many-fds",
        fault: "10,000 registered fds",
        limit: Duration::from_secs(60),
        run: loop_probes::many_fds,
    },
    Probe {
        name: "shared-signal",
        fault: "a signal shared with another library's handler",
        limit: Duration::from_secs(60),
        run: loop_probes::shared_signal,
    },
    Probe {
        name: "backlog",
        fault: "2,000 connects, backlog 1,000 (1,000 queued before the loop runs)",
        limit: Duration::from_secs(60),
        run: io_probes::backlog,
    },
    Probe {
        name: "wakers",
        fault: "10,000 wait_for timeouts on one shared future",
        limit: Duration::from_secs(60),
        run: loop_probes::wakers,
    },
];

/// The probe names, for `--only`.
pub fn names() -> Vec<&'static str> {
    PROBES.iter().map(|p| p.name).collect()
}

/// One row of the table: the fault, and what came of it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Row {
    /// The fault.
    pub fault: String,
    /// What the loop did, or `FAILED`.
    pub did: String,
    /// The figure, or what went wrong.
    pub figure: String,
}

/// `faults`: run the probes (all, or those of `only`), print the table, fail if one failed.
///
/// # Errors
/// `InvalidInput` for an unknown probe name; `Other` naming every probe that found the loop
/// misbehaving.
pub fn run(ctx: &Ctx, only: Option<&[String]>) -> io::Result<()> {
    if let Some(only) = only {
        if let Some(unknown) = only.iter().find(|n| !names().contains(&n.as_str())) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("unknown probe {unknown:?} (known: {})", names().join(", ")),
            ));
        }
    }
    let started = Instant::now();
    let mut rows = Vec::new();
    let mut failures = Vec::new();
    for probe in PROBES {
        if only.is_some_and(|o| !o.iter().any(|n| n == probe.name)) {
            continue;
        }
        eprint!("faults: {} ...", probe.name);
        let t0 = Instant::now();
        let result = {
            let _watchdog = Watchdog::arm(probe.name, probe.limit);
            (probe.run)(ctx)
        };
        let row = match result {
            Ok(outcome) => {
                eprintln!(" ok ({:.1} s)", t0.elapsed().as_secs_f64());
                Row {
                    fault: probe.fault.to_string(),
                    did: outcome.did,
                    figure: outcome.figure,
                }
            }
            Err(e) => {
                eprintln!(" FAILED: {e}");
                failures.push(format!("{}: {e}", probe.name));
                Row {
                    fault: probe.fault.to_string(),
                    did: "FAILED".to_string(),
                    figure: e.to_string(),
                }
            }
        };
        rows.push(row);
    }
    let machine = crate::machine::Machine::detect();
    println!(
        "faults{} on {}, {} CPUs ({}), backend {}, in {:.1} s\n",
        if ctx.quick { " --quick" } else { "" },
        machine.os,
        machine.cpus,
        machine.cpu_model,
        ctx.backend,
        started.elapsed().as_secs_f64()
    );
    print!("{}", markdown(&rows));
    io::stdout().flush()?;
    if failures.is_empty() {
        Ok(())
    } else {
        Err(io::Error::other(format!(
            "the loop misbehaved in {} probe(s): {}",
            failures.len(),
            failures.join("; ")
        )))
    }
}

/// The table, Markdown: fault | what the loop did | figure.
pub fn markdown(rows: &[Row]) -> String {
    let mut out = String::from("| fault | what the loop did | figure |\n| --- | --- | --- |\n");
    for row in rows {
        let cell = |s: &str| s.replace('|', "\\|").replace('\n', " ");
        let _ = writeln!(
            out,
            "| {} | {} | {} |",
            cell(&row.fault),
            cell(&row.did),
            cell(&row.figure)
        );
    }
    out
}

/// `faults-child ROLE` (hidden): a probe's part that must run in its own process.
///
/// # Errors
/// `InvalidInput` for an unknown role; the probe's failure otherwise.
pub fn child(role: &str, ctx: &Ctx) -> io::Result<()> {
    match role {
        "emfile" => io_probes::emfile_child(ctx),
        _ => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("unknown faults-child role {role:?}"),
        )),
    }
}

/// An error for a probe whose check failed.
pub fn misbehaved(message: impl Into<String>) -> io::Error {
    io::Error::other(message.into())
}

/// Fail with `message` unless `ok`.
pub fn check(ok: bool, message: impl FnOnce() -> String) -> io::Result<()> {
    if ok {
        Ok(())
    } else {
        Err(misbehaved(message()))
    }
}

/// Run `lp` (a few ms at a time) until `done`; a misbehaviour naming `what` if that takes
/// longer than `limit`.
///
/// # Errors
/// The loop's, or `Other` after `limit`.
pub fn spin_until(
    lp: &tulip::EventLoop,
    what: &str,
    limit: Duration,
    mut done: impl FnMut() -> bool,
) -> io::Result<()> {
    let deadline = Instant::now() + limit;
    while !done() {
        if Instant::now() > deadline {
            return Err(misbehaved(format!("{what}: not done within {limit:?}")));
        }
        lp.run_once(Some(Duration::from_millis(5)))?;
    }
    Ok(())
}

/// Exits the process (status 3, naming the probe) unless dropped within its limit: a hang is
/// reported, not waited for.
pub struct Watchdog {
    disarm: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Watchdog {
    /// Start watching `what` for `limit`.
    pub fn arm(what: &str, limit: Duration) -> Watchdog {
        let (disarm, disarmed) = mpsc::channel::<()>();
        let what = what.to_string();
        let thread = std::thread::spawn(move || {
            if let Err(RecvTimeoutError::Timeout) = disarmed.recv_timeout(limit) {
                eprintln!(
                    "\ntulip-bench faults: probe {what} had no outcome within {limit:?}: \
                     the loop hung"
                );
                std::process::exit(3);
            }
        });
        Watchdog {
            disarm: Some(disarm),
            thread: Some(thread),
        }
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        drop(self.disarm.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A human figure for a duration: ns, µs, ms or s with 3 significant-ish digits.
pub fn human_time(d: Duration) -> String {
    let ns = d.as_nanos() as f64;
    if ns < 1e3 {
        format!("{ns:.0} ns")
    } else if ns < 1e6 {
        format!("{:.1} µs", ns / 1e3)
    } else if ns < 1e9 {
        format!("{:.1} ms", ns / 1e6)
    } else {
        format!("{:.2} s", ns / 1e9)
    }
}

/// A human figure for a byte count: B, KiB or MiB; signed, for growth.
pub fn human_bytes(bytes: i64) -> String {
    let b = bytes as f64;
    if bytes.unsigned_abs() < 1024 {
        format!("{bytes} B")
    } else if bytes.unsigned_abs() < 1024 * 1024 {
        format!("{:.1} KiB", b / 1024.0)
    } else {
        format!("{:.1} MiB", b / 1024.0 / 1024.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_has_one_row_per_probe_and_escapes_pipes() {
        let rows = vec![Row {
            fault: "a | b".into(),
            did: "ok".into(),
            figure: "1\n2".into(),
        }];
        assert_eq!(
            markdown(&rows),
            "| fault | what the loop did | figure |\n| --- | --- | --- |\n| a \\| b | ok | 1 2 |\n"
        );
    }

    #[test]
    fn figures_are_human() {
        assert_eq!(human_time(Duration::from_nanos(512)), "512 ns");
        assert_eq!(human_time(Duration::from_micros(1500)), "1.5 ms");
        assert_eq!(human_time(Duration::from_secs(2)), "2.00 s");
        assert_eq!(human_bytes(100), "100 B");
        assert_eq!(human_bytes(-2048), "-2.0 KiB");
        assert_eq!(human_bytes(3 * 1024 * 1024), "3.0 MiB");
    }

    #[test]
    fn probe_names_are_unique() {
        let mut names = names();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), PROBES.len());
    }

    #[test]
    fn unknown_probes_are_refused_before_anything_runs() {
        let ctx = Ctx {
            backend: Backend::best(),
            quick: true,
        };
        let err = run(&ctx, Some(&["nope".to_string()])).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    }

    #[test]
    fn a_dropped_watchdog_does_not_fire() {
        drop(Watchdog::arm("test", Duration::from_millis(10)));
        std::thread::sleep(Duration::from_millis(30));
    }
}
