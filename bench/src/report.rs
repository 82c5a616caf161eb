//! The Markdown report of a comparison: the machine first, then one table row per backend × N
//! × A, then what was skipped and why.

use std::fmt::Write;

use tulip_sys::Backend;

use crate::compare::Comparison;
use crate::metric::{Measurement, Metric};

/// The whole report, ready for stdout (and for the README).
pub fn markdown(c: &Comparison) -> String {
    let mut out = String::new();
    let baseline = Backend::best();
    let backends: Vec<&str> = c.backends.iter().map(|b| b.name()).collect();
    let rounds: Vec<String> = c
        .plan
        .ns
        .iter()
        .map(|&n| format!("N={n}: {}", c.plan.rounds(n)))
        .collect();
    // `write!` to a String cannot fail.
    let _ = writeln!(out, "## Backend comparison\n");
    let _ = writeln!(
        out,
        "- Machine: {}; CPU: {} × {}",
        c.machine.os, c.machine.cpu_model, c.machine.cpus
    );
    let _ = writeln!(out, "- RLIMIT_NOFILE: {}", c.limit.describe());
    let _ = writeln!(out, "- Backends found: {}", backends.join(", "));
    let _ = writeln!(
        out,
        "- Workload: N socket fds (both ends of N/2 socketpairs) registered READABLE; per round A \
         of them get a 1-byte write into their peer, \
         then one `select`, then the A are drained. Same fds, same seeded writes for every \
         backend; backends take turns block by block in a rotating order; warm-up rounds \
         discarded. Measured rounds per backend and case: {}.",
        rounds.join(", ")
    );
    let _ = writeln!(
        out,
        "- Latency: from the start of an fd's write to the return of the `select` reporting it \
         (so for A > 1 it includes the later writes of the round)."
    );
    let _ = writeln!(
        out,
        "- Raw syscall: the same rounds through the backend's bare system call (`epoll_wait`, \
         `poll`, `select` via rustix and nix, no tulip code), taking its own turn in each block; \
         \"overhead\" is the selector's median over it (– where a backend has no raw runner)."
    );
    let _ = writeln!(out, "- Wall time: {:.1} s\n", c.wall.as_secs_f64());
    let _ = writeln!(
        out,
        "| backend | N | A | select median (µs) | select p99 (µs) | × {baseline} | raw syscall median (µs) | overhead × raw | latency median (µs) | latency p99 (µs) | syscalls/select | reg+unreg (ns/fd) |"
    );
    let _ = writeln!(out, "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|");
    for m in &c.measurements {
        let base = c
            .measurements
            .iter()
            .find(|b| b.backend == baseline && b.n == m.n && b.active == m.active);
        let _ = writeln!(out, "{}", table_row(m, base));
    }
    if !c.skipped.is_empty() {
        let _ = writeln!(out, "\nSkipped:\n");
        for reason in &c.skipped {
            let _ = writeln!(out, "- {reason}");
        }
    }
    out
}

fn table_row(m: &Measurement, baseline: Option<&Measurement>) -> String {
    let us = |metric| {
        m.get(metric)
            .map_or_else(dash, |ns| three_digits(ns / 1000.0))
    };
    let ratio = match (
        m.get(Metric::SelectMedian),
        baseline.and_then(|b| b.get(Metric::SelectMedian)),
    ) {
        (Some(v), Some(b)) if b > 0.0 => format!("{:.2}", v / b),
        _ => dash(),
    };
    let overhead = m
        .get(Metric::SelectOverhead)
        .map_or_else(dash, |v| format!("{v:.2}"));
    let syscalls = m
        .get(Metric::SyscallsPerSelect)
        .map_or_else(dash, |v| format!("{v:.2}"));
    let registration = m
        .get(Metric::RegistrationPerFd)
        .map_or_else(dash, |v| format!("{v:.0}"));
    format!(
        "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
        m.backend,
        m.n,
        m.active,
        us(Metric::SelectMedian),
        us(Metric::SelectP99),
        ratio,
        us(Metric::RawSelectMedian),
        overhead,
        us(Metric::LatencyMedian),
        us(Metric::LatencyP99),
        syscalls,
        registration
    )
}

/// What a table shows for a figure it does not have.
pub fn dash() -> String {
    "–".to_string()
}

/// A positive figure (microseconds here, nanoseconds in `peers`) with three significant digits
/// or so: 1.23, 12.3, 123.
pub fn three_digits(us: f64) -> String {
    if us < 10.0 {
        format!("{us:.2}")
    } else if us < 100.0 {
        format!("{us:.1}")
    } else {
        format!("{us:.0}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn measurement(backend: Backend, select_ns: f64) -> Measurement {
        Measurement {
            backend,
            n: 100,
            active: 10,
            values: vec![
                (Metric::SelectMedian, select_ns),
                (Metric::SyscallsPerSelect, 1.0),
            ],
        }
    }

    #[test]
    fn a_row_shows_microseconds_the_ratio_and_dashes_for_missing_metrics() {
        let poll = measurement(Backend::Poll, 4000.0);
        let epoll = measurement(Backend::Epoll, 2000.0);
        let row = table_row(&poll, Some(&epoll));
        assert_eq!(
            row,
            "| poll | 100 | 10 | 4.00 | – | 2.00 | – | – | – | – | 1.00 | – |"
        );
        let mut raw = measurement(Backend::Epoll, 2100.0);
        raw.values.push((Metric::RawSelectMedian, 2000.0));
        raw.values.push((Metric::SelectOverhead, 1.05));
        assert!(
            table_row(&raw, None).starts_with("| epoll | 100 | 10 | 2.10 | – | – | 2.00 | 1.05 |")
        );
    }

    #[test]
    fn three_digits_keeps_about_three_digits() {
        assert_eq!(three_digits(1.234), "1.23");
        assert_eq!(three_digits(12.34), "12.3");
        assert_eq!(three_digits(1234.4), "1234");
    }
}
