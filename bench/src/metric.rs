//! What is reported for each backend × N × A: the metrics, their names and units, and the
//! record that holds their values.

use tulip_sys::Backend;

/// One reported quantity. The CSV names it by [`Metric::name`] in [`Metric::unit`].
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum Metric {
    /// Wall time of one `select` call, median over the measured rounds.
    SelectMedian,
    /// Wall time of one `select` call, 99th percentile.
    SelectP99,
    /// The same rounds through the backend's bare system call (no tulip code): wall time of
    /// one wait and reading out its result, median over the measured rounds.
    RawSelectMedian,
    /// [`Metric::SelectMedian`] over [`Metric::RawSelectMedian`]: what the selector adds.
    SelectOverhead,
    /// From the start of an fd's write to the return of the `select` that reported it, median
    /// over every event.
    LatencyMedian,
    /// Write-to-event latency, 99th percentile.
    LatencyP99,
    /// System calls the selector made per `select` (the call itself plus any retry).
    SyscallsPerSelect,
    /// Register + unregister of all N fds, divided by N; median over the blocks.
    RegistrationPerFd,
    /// System calls the selector made per fd for register + unregister.
    RegistrationSyscallsPerFd,
    /// How many rounds were measured (warm-up excluded).
    Rounds,
}

impl Metric {
    /// Every metric, in report order.
    pub const ALL: [Metric; 10] = [
        Metric::SelectMedian,
        Metric::SelectP99,
        Metric::RawSelectMedian,
        Metric::SelectOverhead,
        Metric::LatencyMedian,
        Metric::LatencyP99,
        Metric::SyscallsPerSelect,
        Metric::RegistrationPerFd,
        Metric::RegistrationSyscallsPerFd,
        Metric::Rounds,
    ];

    /// The CSV name.
    pub const fn name(self) -> &'static str {
        match self {
            Metric::SelectMedian => "select_median",
            Metric::SelectP99 => "select_p99",
            Metric::RawSelectMedian => "raw_select_median",
            Metric::SelectOverhead => "select_overhead",
            Metric::LatencyMedian => "latency_median",
            Metric::LatencyP99 => "latency_p99",
            Metric::SyscallsPerSelect => "syscalls_per_select",
            Metric::RegistrationPerFd => "register_unregister_per_fd",
            Metric::RegistrationSyscallsPerFd => "register_unregister_syscalls_per_fd",
            Metric::Rounds => "rounds",
        }
    }

    /// The CSV unit.
    pub const fn unit(self) -> &'static str {
        match self {
            Metric::SelectMedian
            | Metric::SelectP99
            | Metric::RawSelectMedian
            | Metric::LatencyMedian
            | Metric::LatencyP99
            | Metric::RegistrationPerFd => "ns",
            Metric::SyscallsPerSelect | Metric::RegistrationSyscallsPerFd => "syscalls",
            Metric::Rounds => "count",
            Metric::SelectOverhead => "ratio",
        }
    }
}

/// The measured values of one backend on one (N, A) case.
#[derive(Clone, Debug, PartialEq)]
pub struct Measurement {
    /// The backend measured.
    pub backend: Backend,
    /// Number of fds registered.
    pub n: usize,
    /// Number of them made active per round.
    pub active: usize,
    /// One value per metric that could be computed, in [`Metric::ALL`] order.
    pub values: Vec<(Metric, f64)>,
}

impl Measurement {
    /// The value of `metric`, if it was computed.
    pub fn get(&self, metric: Metric) -> Option<f64> {
        self.values
            .iter()
            .find(|(m, _)| *m == metric)
            .map(|&(_, v)| v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn metric_names_are_unique_csv_safe_identifiers() {
        let names: HashSet<_> = Metric::ALL.iter().map(|m| m.name()).collect();
        assert_eq!(names.len(), Metric::ALL.len());
        for name in names {
            assert!(
                name.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'),
                "{name}"
            );
        }
    }

    #[test]
    fn get_finds_a_value_by_metric() {
        let m = Measurement {
            backend: Backend::Poll,
            n: 10,
            active: 1,
            values: vec![(Metric::SelectMedian, 1.5)],
        };
        assert_eq!(m.get(Metric::SelectMedian), Some(1.5));
        assert_eq!(m.get(Metric::SelectP99), None);
    }
}
