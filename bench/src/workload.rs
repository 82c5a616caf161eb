//! The classic workload of libevent's and libev's benchmarks: N socket fds, of which A are made
//! readable each round by a one-byte write into their peers.
//!
//! Both ends of each socketpair are watched: a byte written into one end makes only the *other*
//! end readable (a socket's own writes never make it readable), so N watched fds take N/2 pairs,
//! N fds in all rather than 2N, and N = 10,000 fits the usual 20,000-fd limit without raising
//! the hard one.
//!
//! [`Workload`] owns the fds, shared by every backend; [`ActiveSets`] yields, round after round,
//! which A of them to write to, from a seed, so every backend sees the very same writes.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};

use tulip_sys::fd;

use crate::prng::SplitMix64;

/// N watched socket fds, both ends of N/2 connected socketpairs (rounded up).
#[derive(Debug)]
pub struct Workload {
    /// The socketpairs' ends, pair by pair: `ends[i]` and `ends[i ^ 1]` are connected. The
    /// first `n` are watched; index `i` is the event's token.
    ends: Vec<OwnedFd>,
    n: usize,
}

impl Workload {
    /// Create `n` watched fds from `ceil(n / 2)` non-blocking socketpairs.
    ///
    /// # Errors
    /// The kernel's: `EMFILE` when `RLIMIT_NOFILE` is too small for [`fds_for`] `n` more fds.
    pub fn new(n: usize) -> io::Result<Workload> {
        let mut ends = Vec::with_capacity(fds_for(n));
        for _ in 0..n.div_ceil(2) {
            let (a, b) = fd::socketpair()?;
            ends.push(a);
            ends.push(b);
        }
        Ok(Workload { ends, n })
    }

    /// How many fds are watched.
    pub fn len(&self) -> usize {
        self.n
    }

    /// The `i`-th watched fd.
    ///
    /// # Panics
    /// If `i >= len()`.
    pub fn watched_fd(&self, i: usize) -> RawFd {
        assert!(i < self.n, "fd {i} of {} watched", self.n);
        self.ends[i].as_raw_fd()
    }

    /// The `i`-th watched fd, borrowed (for the raw system-call runners).
    ///
    /// # Panics
    /// If `i >= len()`.
    pub fn watched(&self, i: usize) -> BorrowedFd<'_> {
        assert!(i < self.n, "fd {i} of {} watched", self.n);
        self.ends[i].as_fd()
    }

    /// The highest fd a selector watches, or -1 for none: what decides whether `select(2)` can
    /// hold them all.
    pub fn highest_watched_fd(&self) -> RawFd {
        self.ends[..self.n]
            .iter()
            .map(AsRawFd::as_raw_fd)
            .max()
            .unwrap_or(-1)
    }

    /// Make watched fd `i` readable: one byte into its peer (which stays unreadable itself).
    ///
    /// # Errors
    /// The kernel's (none expected: the peer's buffer holds far more than one round's byte).
    pub fn activate(&self, i: usize) -> io::Result<()> {
        fd::write(self.ends[i ^ 1].as_fd(), b"x").map(drop)
    }

    /// Read what `activate` wrote, so that watched fd `i` is no longer readable.
    ///
    /// # Errors
    /// The kernel's; `WouldBlock` if nothing was written.
    pub fn drain(&self, i: usize) -> io::Result<()> {
        let mut buf = [0u8; 16];
        fd::read(self.ends[i].as_fd(), &mut buf).map(drop)
    }
}

/// How many fds a workload of `n` watched fds opens: `n`, rounded up to whole pairs.
pub fn fds_for(n: usize) -> usize {
    n.div_ceil(2) * 2
}

/// The sequence of active sets: for each round, A distinct indices in `0..n`, in the order
/// they are written. Deterministic for a seed.
///
/// Each round is a partial Fisher–Yates shuffle of a permutation kept across rounds, so the A
/// indices are distinct by construction and every index is equally likely.
#[derive(Clone, Debug)]
pub struct ActiveSets {
    rng: SplitMix64,
    permutation: Vec<usize>,
    active: usize,
}

impl ActiveSets {
    /// Sets of `active` indices out of `0..n`, from `seed`.
    ///
    /// # Panics
    /// If `active > n`: there are not that many distinct indices.
    pub fn new(seed: u64, n: usize, active: usize) -> ActiveSets {
        assert!(active <= n, "cannot pick {active} distinct fds out of {n}");
        ActiveSets {
            rng: SplitMix64::new(seed),
            permutation: (0..n).collect(),
            active,
        }
    }

    /// The next round's active indices (a view valid until the next call).
    pub fn next_round(&mut self) -> &[usize] {
        let n = self.permutation.len();
        for k in 0..self.active {
            let j = k + self.rng.below(n - k);
            self.permutation.swap(k, j);
        }
        &self.permutation[..self.active]
    }

    /// The next `rounds` rounds, as owned vectors (to hand the same rounds to every backend).
    pub fn take_rounds(&mut self, rounds: usize) -> Vec<Vec<usize>> {
        (0..rounds).map(|_| self.next_round().to_vec()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn each_round_has_a_distinct_indices_below_n() {
        for (n, a) in [(10, 1), (10, 10), (100, 10), (1000, 100), (1, 1)] {
            let mut sets = ActiveSets::new(3, n, a);
            for _ in 0..50 {
                let round = sets.next_round();
                assert_eq!(round.len(), a);
                assert!(round.iter().all(|&i| i < n));
                let distinct: HashSet<_> = round.iter().collect();
                assert_eq!(distinct.len(), a, "duplicates in {round:?}");
            }
        }
    }

    #[test]
    fn the_same_seed_gives_the_same_rounds() {
        let a = ActiveSets::new(99, 1000, 100).take_rounds(20);
        let b = ActiveSets::new(99, 1000, 100).take_rounds(20);
        assert_eq!(a, b);
        let c = ActiveSets::new(100, 1000, 100).take_rounds(20);
        assert_ne!(a, c);
    }

    #[test]
    fn every_index_is_eventually_chosen() {
        for (n, a) in [(10, 1), (100, 1), (1000, 100)] {
            let mut sets = ActiveSets::new(5, n, a);
            let mut seen = vec![false; n];
            let mut rounds = 0;
            while seen.contains(&false) {
                for &i in sets.next_round() {
                    seen[i] = true;
                }
                rounds += 1;
                // Coupon collector: about n·ln(n)/a rounds on average; 20× that never fails.
                let bound = 20 * n * (n.ilog2() as usize + 1) / a;
                assert!(
                    rounds < bound,
                    "an index was never chosen in {rounds} rounds"
                );
            }
        }
    }

    #[test]
    fn zero_active_gives_empty_rounds() {
        let mut sets = ActiveSets::new(1, 10, 0);
        assert!(sets.next_round().is_empty());
    }

    #[test]
    fn activate_makes_a_pair_readable_and_drain_empties_it() {
        let w = Workload::new(3).unwrap();
        assert_eq!(w.len(), 3);
        assert!(w.highest_watched_fd() >= w.watched_fd(2));
        assert_eq!(w.drain(1).unwrap_err().kind(), io::ErrorKind::WouldBlock);
        w.activate(1).unwrap();
        w.drain(1).unwrap();
        assert_eq!(w.drain(1).unwrap_err().kind(), io::ErrorKind::WouldBlock);
    }
}
