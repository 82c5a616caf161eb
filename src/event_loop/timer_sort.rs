//! Sorting a cohort of timers by descending (deadline, scheduling order), for the timer
//! queue's refill of its run (see `timer_heap.rs`).
//!
//! A comparison sort moved the 32-byte entries and compared their 128-bit keys about
//! log₂ n times each: some 125 instructions per timer scheduled, for a cohort of 5,000 live
//! timers of 10,000 (callgrind on `tulip-bench peers --quick --only timers`), a ninth of a
//! timer's whole cost; the radix sort below takes about half of that. Here the entries
//! are not compared at all. Each becomes one `u64`: its deadline less the cohort's earliest
//! in the high bits, its index in the low ones. Those are sorted by a least-significant-digit
//! radix sort over the deadline's bits only (three passes of 8 bits for deadlines spread over
//! 10 ms), which is stable, so that timers due at the same nanosecond keep their index order;
//! the caller's entries are in scheduling order, so that is the sequence order the key would
//! have given. The sorted indices are then applied to the entries in place, one swap per
//! entry moved, following the permutation's cycles. A cohort of fewer than [`RADIX_FROM`]
//! timers, or whose deadlines and indices do not fit in 63 bits together (deadlines
//! centuries apart), is sorted by comparison of the keys instead.

use std::cmp::Reverse;
use std::mem;

/// From this many timers the radix passes' fixed cost (256 counters each, and two buffers of
/// 8 bytes per timer, freed when the sort returns) is worth paying; a smaller cohort is
/// sorted in place by comparison, without allocating (a loop re-arming a few timers
/// allocates nothing in its steady state: `tests/event_loop_alloc.rs`).
const RADIX_FROM: usize = 512;

/// Bits of the deadline sorted per radix pass.
const DIGIT_BITS: u32 = 8;
const BUCKETS: usize = 1 << DIGIT_BITS;
/// Passes at most: the deadline's bits are at most 63 (see `sort_descending_with`).
const MAX_PASSES: usize = 8;

/// Sort `items` by descending `key`, where `key` is a deadline in nanoseconds above a
/// sequence number (`deadline << 64 | seq`) and `items` are in ascending sequence order.
pub(super) fn sort_descending<T>(items: &mut [T], key: impl Fn(&T) -> u128) {
    sort_descending_with(items, key, RADIX_FROM);
}

/// As [`sort_descending`], with the size from which the radix sort is used (for tests).
fn sort_descending_with<T>(items: &mut [T], key: impl Fn(&T) -> u128, radix_from: usize) {
    let by_comparison = |items: &mut [T]| items.sort_unstable_by_key(|item| Reverse(key(item)));
    let n = items.len();
    if n < radix_from.max(2) {
        return by_comparison(items);
    }
    debug_assert!(
        items
            .windows(2)
            .all(|w| key(&w[0]) as u64 <= key(&w[1]) as u64),
        "items in scheduling order"
    );
    let deadline = |item: &T| (key(item) >> 64) as u64;
    let (earliest, latest) = items.iter().fold((u64::MAX, 0), |(lo, hi), item| {
        let d = deadline(item);
        (lo.min(d), hi.max(d))
    });
    let span_bits = u64::BITS - (latest - earliest).leading_zeros();
    let index_bits = usize::BITS - (n - 1).leading_zeros();
    if span_bits + index_bits > 63 {
        return by_comparison(items);
    }
    // Deadline offset above index: ordering these orders the items by (deadline, index).
    let mut packed: Vec<u64> = items
        .iter()
        .enumerate()
        .map(|(i, item)| (deadline(item) - earliest) << index_bits | i as u64)
        .collect();
    radix_sort(&mut packed, index_bits, span_bits);
    // Descending: position `j` takes the item now at `packed[j]`'s index.
    packed.reverse();
    let mask = (1u64 << index_bits) - 1;
    for p in &mut packed {
        *p &= mask;
    }
    permute(items, &mut packed);
}

/// Sort `keys` by their bits `shift .. shift + bits` (`shift + bits` at most 63), stably.
fn radix_sort(keys: &mut Vec<u64>, shift: u32, bits: u32) {
    let passes = bits.div_ceil(DIGIT_BITS) as usize;
    debug_assert!(shift + bits <= 63 && passes <= MAX_PASSES);
    // Every pass's histogram in one read of the keys.
    let mut counts = [[0usize; BUCKETS]; MAX_PASSES];
    for &k in keys.iter() {
        let mut digits = k >> shift;
        for count in &mut counts[..passes] {
            count[digits as usize % BUCKETS] += 1;
            digits >>= DIGIT_BITS;
        }
    }
    let mut spare = vec![0u64; keys.len()];
    for (pass, count) in counts[..passes].iter_mut().enumerate() {
        // All keys share this digit: the pass would not move any.
        if count.contains(&keys.len()) {
            continue;
        }
        // Each digit's first slot (an exclusive prefix sum).
        let mut sum = 0;
        for slot in count.iter_mut() {
            sum += mem::replace(slot, sum);
        }
        let at = shift + pass as u32 * DIGIT_BITS;
        for &k in keys.iter() {
            let slot = &mut count[(k >> at) as usize % BUCKETS];
            spare[*slot] = k;
            *slot += 1;
        }
        mem::swap(keys, &mut spare);
    }
}

/// Move `items[from[j]]` to `items[j]` for every `j`, `from` being a permutation of the
/// indices (consumed: each is overwritten once its item is in place). One swap per item that
/// moves, along each cycle of the permutation.
fn permute<T>(items: &mut [T], from: &mut [u64]) {
    const PLACED: u64 = u64::MAX;
    for start in 0..items.len() {
        let mut j = start;
        while from[j] != PLACED {
            let source = from[j] as usize;
            from[j] = PLACED;
            if source == start {
                break;
            }
            // `items[source]` has not moved yet: its position is later in this cycle.
            items.swap(j, source);
            j = source;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Keys as the timer queue makes them: `deadline << 64 | seq`, in sequence order.
    fn keys(deadlines: &[u64]) -> Vec<u128> {
        deadlines
            .iter()
            .enumerate()
            .map(|(seq, &d)| u128::from(d) << 64 | seq as u128)
            .collect()
    }

    /// Sorted through `sort_descending_with(.., radix_from)`, against a comparison sort.
    fn check(deadlines: &[u64], radix_from: usize) {
        let mut got = keys(deadlines);
        sort_descending_with(&mut got, |&k| k, radix_from);
        let mut expected = keys(deadlines);
        expected.sort_unstable_by_key(|&k| Reverse(k));
        assert_eq!(got, expected);
    }

    /// Deadlines in a window of `span` from `base`, many of them equal when `span` is small.
    fn deadlines() -> impl Strategy<Value = Vec<u64>> {
        (
            any::<u64>(),
            prop_oneof![Just(0u64), 1..64u64, 1..1u64 << 40, Just(u64::MAX)],
        )
            .prop_flat_map(|(base, span)| {
                let base = base.min(u64::MAX - span);
                proptest::collection::vec(0..=span, 0..700)
                    .prop_map(move |offsets| offsets.iter().map(|o| base + o).collect())
            })
    }

    proptest! {
        #[test]
        #[cfg_attr(miri, ignore = "minutes under Miri; the fixed cases below cover it")]
        fn the_radix_sort_orders_like_a_comparison_sort(deadlines in deadlines()) {
            check(&deadlines, 0);
        }
    }

    #[test]
    fn ties_keep_scheduling_order_in_the_radix_sort_and_its_fallback() {
        let cases: [&[u64]; 6] = [
            &[],
            &[5],
            &[7, 7, 7, 7],
            &[3, 1, 2, 1, 3, 0, 2],
            // A span that needs every pass of 8 bits, ties at both ends.
            &[1 << 50, 0, 1 << 50, 255, 256, 0, (1 << 50) - 1],
            // Deadlines too far apart to pack with their indices: the fallback.
            &[u64::MAX, 0, u64::MAX, 1, 0],
        ];
        for deadlines in cases {
            check(deadlines, 0);
        }
        // Past `RADIX_FROM`, through the public entry point (fewer under Miri, still past it).
        let n = if cfg!(miri) { 600 } else { 3000 };
        let many: Vec<u64> = (0..n).map(|i| 100_000_000 + i * 7919 % 10_007).collect();
        check(&many, RADIX_FROM);
    }

    #[test]
    fn permute_follows_every_cycle() {
        let mut items = ['a', 'b', 'c', 'd', 'e', 'f'];
        // Cycles (0 2 4), (1 5), (3).
        let mut from = [2, 5, 4, 3, 0, 1];
        permute(&mut items, &mut from);
        assert_eq!(items, ['c', 'f', 'e', 'd', 'a', 'b']);
    }
}
