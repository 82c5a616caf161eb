//! What the machine lets the benchmark open: `RLIMIT_NOFILE` for the N watched fds, and
//! `FD_SETSIZE` for the `select` backend.

use std::io;
use std::os::fd::RawFd;

use tulip_sys::{fd, Backend, FD_SETSIZE};

/// Fds the process needs besides the watched ones: stdio, a selector's own fd, the output files.
pub const FD_RESERVE: u64 = 64;

/// How many fds a run with `n` watched fds needs in all.
pub fn fds_needed(n: usize) -> u64 {
    crate::workload::fds_for(n) as u64 + FD_RESERVE
}

/// What was done to `RLIMIT_NOFILE` before measuring, for the report.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NofileLimit {
    /// Soft and hard limit found at start.
    pub before: (u64, u64),
    /// Soft and hard limit in force for the measurement.
    pub after: (u64, u64),
    /// The fds the largest N needs.
    pub wanted: u64,
}

impl NofileLimit {
    /// Raise the limit (soft, and hard if privileged) so that `largest_n` watched fds fit.
    ///
    /// # Errors
    /// The kernel's, if the limit cannot even be read. A refused raise is not an error: the
    /// limit stays lower and the N that do not fit are skipped.
    pub fn raise_for(largest_n: usize) -> io::Result<NofileLimit> {
        let before = fd::nofile_limit()?;
        let wanted = fds_needed(largest_n);
        // A refusal leaves the limit as it was; `after` says what is in force either way.
        let _ = fd::raise_nofile_limit(wanted);
        let after = fd::nofile_limit()?;
        Ok(NofileLimit {
            before,
            after,
            wanted,
        })
    }

    /// Whether `n` watched fds fit under the soft limit now in force.
    pub fn fits(&self, n: usize) -> bool {
        fds_needed(n) <= self.after.0
    }

    /// The largest N whose fds fit under the soft limit now in force.
    pub fn largest_n(&self) -> u64 {
        self.after.0.saturating_sub(FD_RESERVE) / 2 * 2
    }

    /// One sentence for the report: what the limit was and what this run did to it.
    pub fn describe(&self) -> String {
        let (soft0, hard0) = self.before;
        let (soft1, hard1) = self.after;
        let now = if self.before == self.after {
            format!("{soft1} (hard {hard1}), left as is")
        } else {
            format!("raised from {soft0} (hard {hard0}) to {soft1} (hard {hard1})")
        };
        if soft1 >= self.wanted {
            format!("{now}; {} fds needed", self.wanted)
        } else {
            format!(
                "{now}; {} fds needed, but raising the hard limit was refused (it takes \
                 CAP_SYS_RESOURCE), so N above {} is skipped",
                self.wanted,
                self.largest_n()
            )
        }
    }

    /// Why `n` is skipped for every backend, if it is.
    pub fn skip_reason(&self, n: usize) -> Option<String> {
        if self.fits(n) {
            return None;
        }
        Some(format!(
            "all backends: skipped for N={n}, which needs {} fds; RLIMIT_NOFILE is {} (hard {}) \
             and could not be raised: N ≤ {} fits",
            fds_needed(n),
            self.after.0,
            self.after.1,
            self.largest_n()
        ))
    }
}

/// Why `backend` cannot watch fds up to `highest_fd`, if it cannot: only `select(2)` has a
/// ceiling, `FD_SETSIZE`.
pub fn backend_skip_reason(backend: Backend, n: usize, highest_fd: RawFd) -> Option<String> {
    if backend != Backend::Select || (highest_fd as i64) < FD_SETSIZE as i64 {
        return None;
    }
    Some(format!(
        "select: skipped for N={n}, fds ≥ FD_SETSIZE ({FD_SETSIZE}) (highest watched fd {highest_fd})"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn select_is_skipped_once_a_watched_fd_reaches_fd_setsize() {
        let last = FD_SETSIZE as RawFd - 1;
        assert_eq!(backend_skip_reason(Backend::Select, 500, last), None);
        let reason = backend_skip_reason(Backend::Select, 1000, last + 1).unwrap();
        assert!(
            reason.starts_with("select: skipped for N=1000, fds ≥ FD_SETSIZE (1024)"),
            "{reason}"
        );
    }

    #[test]
    fn other_backends_are_never_skipped_for_high_fds() {
        for backend in [Backend::Poll, Backend::Epoll, Backend::Kqueue] {
            assert_eq!(backend_skip_reason(backend, 10_000, 20_000), None);
        }
    }

    #[test]
    fn n_that_does_not_fit_the_soft_limit_is_skipped_with_the_numbers() {
        let limit = NofileLimit {
            before: (1024, 4096),
            after: (4096, 4096),
            wanted: fds_needed(10_000),
        };
        assert!(limit.fits(1000));
        assert_eq!(limit.skip_reason(1000), None);
        let reason = limit.skip_reason(20_000).unwrap();
        assert!(
            reason.contains("N=20000") && reason.contains("20064") && reason.contains("4096"),
            "{reason}"
        );
        assert!(limit.describe().contains("raised from 1024"));
        assert!(limit.describe().contains("CAP_SYS_RESOURCE"));
        assert_eq!(limit.largest_n(), 4096 - FD_RESERVE);
    }

    #[test]
    fn fds_needed_counts_whole_pairs_and_the_reserve() {
        assert_eq!(fds_needed(0), FD_RESERVE);
        assert_eq!(fds_needed(10), 10 + FD_RESERVE);
        assert_eq!(fds_needed(11), 12 + FD_RESERVE);
    }
}
