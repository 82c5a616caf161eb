//! CPU hints that need `unsafe` to call and are safe to give: [`prefetch`].

/// Ask the CPU to bring the memory `value` lives in into its caches, for a read soon after:
/// a hint, with no effect on what the program computes (a prefetch never faults). On
/// x86-64 a `prefetcht0`; elsewhere, and under Miri, nothing.
#[inline(always)]
pub fn prefetch<T: ?Sized>(value: &T) {
    #[cfg(all(target_arch = "x86_64", not(miri)))]
    // SAFETY: `_mm_prefetch` is `unsafe` only for its `sse` target feature, which every
    // x86-64 CPU has; the address is that of a live reference, though a prefetch of any
    // address is harmless.
    unsafe {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        _mm_prefetch::<_MM_HINT_T0>((value as *const T).cast::<i8>());
    }
    #[cfg(not(all(target_arch = "x86_64", not(miri))))]
    let _ = value;
}

#[cfg(test)]
mod tests {
    #[test]
    fn prefetching_changes_nothing() {
        let values = vec![7u64; 1024];
        for v in &values {
            super::prefetch(v);
        }
        super::prefetch(values.as_slice());
        super::prefetch("a str");
        assert!(values.iter().all(|&v| v == 7));
    }
}
