//! SplitMix64: the small, seeded pseudo-random generator that picks the active fds.
//!
//! The benchmark needs the same "random" sequence on every run and for every backend, not
//! cryptographic quality; SplitMix64 (Steele, Lea and Flood, 2014) is a few lines of arithmetic
//! and passes BigCrush, which is more than enough to spread writes over N fds.

/// A SplitMix64 generator: a 64-bit counter scrambled by a fixed mixing function.
#[derive(Clone, Debug)]
pub struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    /// A generator whose sequence is fully determined by `seed`.
    pub fn new(seed: u64) -> SplitMix64 {
        SplitMix64 { state: seed }
    }

    /// The next 64 pseudo-random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..bound` (multiply-and-shift: the bias is below 2^-32 for any bound a
    /// benchmark uses).
    ///
    /// # Panics
    /// If `bound` is 0: there is no number to return.
    pub fn below(&mut self, bound: usize) -> usize {
        assert!(bound > 0, "SplitMix64::below needs a positive bound");
        ((u128::from(self.next_u64()) * bound as u128) >> 64) as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_sequence() {
        let mut a = SplitMix64::new(42);
        let mut b = SplitMix64::new(42);
        for _ in 0..100 {
            assert_eq!(a.next_u64(), b.next_u64());
        }
    }

    #[test]
    fn different_seeds_give_different_sequences() {
        let a: Vec<u64> = {
            let mut g = SplitMix64::new(1);
            (0..8).map(|_| g.next_u64()).collect()
        };
        let b: Vec<u64> = {
            let mut g = SplitMix64::new(2);
            (0..8).map(|_| g.next_u64()).collect()
        };
        assert_ne!(a, b);
    }

    #[test]
    fn first_output_for_seed_zero_matches_the_reference_algorithm() {
        // The published SplitMix64 output for state 0.
        assert_eq!(SplitMix64::new(0).next_u64(), 0xE220_A839_7B1D_CDAF);
    }

    #[test]
    fn below_stays_in_range_and_reaches_both_ends() {
        let mut g = SplitMix64::new(7);
        let values: Vec<usize> = (0..10_000).map(|_| g.below(10)).collect();
        assert!(values.iter().all(|&v| v < 10));
        assert!(values.contains(&0));
        assert!(values.contains(&9));
    }
}
