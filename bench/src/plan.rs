//! What a `compare` run measures: which N, which A for each, how many rounds, in how many
//! interleaved blocks, and the seeds that make the active sets reproducible.

/// The N of a default run.
pub const DEFAULT_NS: [usize; 4] = [10, 100, 1_000, 10_000];
/// The N of a `--quick` run.
pub const QUICK_NS: [usize; 3] = [10, 100, 1_000];

/// The measured rounds (per backend, per case) of a default run with `n` watched fds: many for
/// small N, where one round takes a microsecond and noise dominates, fewer for large N, where
/// one round of A = N/10 writes takes milliseconds. Chosen so that a default run takes 1–3
/// minutes on a 2-core machine.
pub fn default_rounds(n: usize) -> usize {
    // A round costs roughly O(N) (poll's scan, A = N/10 writes), so rounds ∝ 1/N keeps each
    // N's share of the time alike; the cap bounds tiny N, the floor keeps p99 meaningful.
    (70_000_000 / n.max(1)).clamp(5_000, 600_000)
}

/// One (N, A) case: N fds registered, A of them written to per round.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Case {
    /// Socketpairs registered.
    pub n: usize,
    /// Active per round.
    pub active: usize,
}

impl Case {
    /// The seed of this case's active sets: the same for every backend, different per case.
    pub fn seed(self) -> u64 {
        (self.n as u64) << 32 ^ self.active as u64 ^ 0x7475_6C69_7000_0000
    }
}

/// The A values for `n`: 1 and N/10, once each (N ≤ 19 gives just A = 1).
pub fn actives(n: usize) -> Vec<usize> {
    let mut a = vec![1.min(n)];
    let tenth = n / 10;
    if tenth > 1 {
        a.push(tenth);
    }
    a
}

/// Everything a `compare` run will do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    /// The N to measure, in order.
    pub ns: Vec<usize>,
    /// Measured rounds per backend and case, if fixed by `--rounds` (else [`default_rounds`],
    /// divided by 40 for `--quick`).
    pub rounds: Option<usize>,
    /// A quick run: fewer rounds and blocks.
    pub quick: bool,
}

impl Plan {
    /// The cases of this plan, N by N.
    pub fn cases(&self) -> Vec<Case> {
        self.ns
            .iter()
            .flat_map(|&n| actives(n).into_iter().map(move |active| Case { n, active }))
            .collect()
    }

    /// Measured rounds for `n` (per backend and case).
    pub fn rounds(&self, n: usize) -> usize {
        match self.rounds {
            Some(r) => r.max(1),
            None if self.quick => (default_rounds(n) / 40).max(50),
            None => default_rounds(n),
        }
    }

    /// Blocks the rounds of a case are cut into: each backend runs one block in turn (in a
    /// rotating order), so slow drifts of the machine hit every backend alike.
    pub fn blocks(&self, n: usize) -> usize {
        let wanted = if self.quick { 4 } else { 10 };
        wanted.min(self.rounds(n))
    }

    /// Warm-up rounds run (and discarded) at the start of each block, after registering.
    pub fn warmup(&self, n: usize) -> usize {
        (self.rounds(n) / self.blocks(n) / 10).max(2)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actives_are_one_and_a_tenth_deduplicated() {
        assert_eq!(actives(10), vec![1]);
        assert_eq!(actives(19), vec![1]);
        assert_eq!(actives(100), vec![1, 10]);
        assert_eq!(actives(10_000), vec![1, 1000]);
        assert_eq!(actives(0), vec![0]);
    }

    #[test]
    fn cases_follow_the_ns_in_order() {
        let plan = Plan {
            ns: vec![10, 100],
            rounds: None,
            quick: false,
        };
        let cases: Vec<(usize, usize)> = plan.cases().iter().map(|c| (c.n, c.active)).collect();
        assert_eq!(cases, vec![(10, 1), (100, 1), (100, 10)]);
    }

    #[test]
    fn rounds_are_fewer_when_quick_and_fixed_by_the_option() {
        let normal = Plan {
            ns: vec![1000],
            rounds: None,
            quick: false,
        };
        let quick = Plan {
            quick: true,
            ..normal.clone()
        };
        let fixed = Plan {
            rounds: Some(3),
            ..normal.clone()
        };
        assert!(quick.rounds(1000) < normal.rounds(1000));
        assert_eq!(fixed.rounds(1000), 3);
        assert_eq!(fixed.blocks(1000), 3);
        assert!(normal.warmup(1000) >= 2);
    }

    #[test]
    fn seeds_differ_between_cases() {
        let a = Case { n: 100, active: 1 }.seed();
        let b = Case { n: 100, active: 10 }.seed();
        let c = Case { n: 1000, active: 1 }.seed();
        assert!(a != b && b != c && a != c);
    }
}
