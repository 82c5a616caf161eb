//! The timer heap: a hand-written 4-ary min-heap of callbacks keyed by (deadline, sequence).
//!
//! The key is one `u128`, the deadline in nanoseconds (saturating at `u64::MAX`, 584 years)
//! above the sequence number, so an entry is 32 bytes and a comparison is one integer compare;
//! four children per node halve the depth of a binary heap, and the four sit side by side in
//! memory, which matters once the heap outgrows the caches (100,000 timers are 3.2 MB).
//!
//! The heap's allocation doubles while it is small and grows by an eighth once it holds
//! [`GROW_SLOWLY_FROM`] entries (128 KiB, where glibc's malloc hands out `mmap`ed blocks and
//! `realloc` moves their pages instead of copying them): an unused tail of at most an eighth
//! of the heap, 4 bytes per pending timer, where doubling left up to 32. With the callback's
//! own 24 bytes (`Rc` counts, state, closure), a pending timer costs at most 24 + 32 × 9/8 = 60
//! bytes for any number of timers above that size (`tulip-bench memory --n ...`).
//!
//! Insert is O(log n) (amortised: at most 1/8 of the entries are copied per growth). Cancel is O(1) and happens outside the heap ([`TimerHandle::cancel`]
//! marks the callback and counts a dead entry in the shared [`TimerBook`]); dead entries are
//! dropped when they reach the top, and [`TimerHeap::compact`] rebuilds the heap when more than
//! half of it is dead, shrinking its allocation, so cancelled timers cost no memory for long.
//!
//! [`TimerHandle::cancel`]: crate::TimerHandle::cancel

use std::rc::Rc;
use std::time::Duration;

use crate::event_loop::handle::{Callback, State, TimerBook};

struct Entry {
    /// The deadline in nanoseconds in the high 64 bits, the scheduling order in the low ones:
    /// ties in the deadline fire in the order they were scheduled.
    key: u128,
    callback: Rc<dyn Callback>,
}

/// Children per node.
const ARITY: usize = 4;

impl Entry {
    fn key(&self) -> u128 {
        self.key
    }

    fn when(&self) -> Duration {
        Duration::from_nanos((self.key >> 64) as u64)
    }

    fn is_dead(&self) -> bool {
        self.callback.state() == State::Cancelled
    }
}

/// From this capacity on (128 KiB of entries) the heap grows by an eighth, not by doubling.
const GROW_SLOWLY_FROM: usize = 4096;

/// Capacity the heap keeps however empty it gets, so that a steady trickle of timers does not
/// reallocate.
const MIN_CAPACITY: usize = 64;

/// The loop's pending timers. Every entry's callback is in state `Scheduled` or `Cancelled`.
pub(crate) struct TimerHeap {
    entries: Vec<Entry>,
    next_seq: u64,
    book: Rc<TimerBook>,
}

impl TimerHeap {
    pub(crate) fn new() -> TimerHeap {
        TimerHeap {
            entries: Vec::new(),
            next_seq: 0,
            book: Rc::new(TimerBook::default()),
        }
    }

    /// The book every timer handle of this heap shares.
    pub(crate) fn book(&self) -> &Rc<TimerBook> {
        &self.book
    }

    /// Add `callback` (in state `Scheduled`), due at `when`.
    pub(crate) fn push(&mut self, when: Duration, callback: Rc<dyn Callback>) {
        let seq = self.next_seq;
        self.next_seq += 1;
        let nanos = u64::try_from(when.as_nanos()).unwrap_or(u64::MAX);
        if self.entries.len() == self.entries.capacity() {
            self.grow();
        }
        self.entries.push(Entry {
            key: u128::from(nanos) << 64 | u128::from(seq),
            callback,
        });
        self.sift_up(self.entries.len() - 1);
    }

    /// Room for more entries: doubling while small (as `Vec` would), an eighth more once large.
    #[cold]
    fn grow(&mut self) {
        let capacity = self.entries.capacity();
        let more = if capacity < GROW_SLOWLY_FROM {
            capacity.max(4)
        } else {
            capacity / 8
        };
        self.entries.reserve_exact(more);
    }

    /// The earliest deadline of a live timer, dropping dead entries from the top.
    pub(crate) fn next_deadline(&mut self) -> Option<Duration> {
        self.drop_dead_top();
        self.entries.first().map(Entry::when)
    }

    /// The earliest live timer if it is due at or before `now`, removed from the heap and
    /// marked `Ready`.
    pub(crate) fn pop_due(&mut self, now: Duration) -> Option<Rc<dyn Callback>> {
        if self.next_deadline()? > now {
            return None;
        }
        let entry = self.pop_top()?;
        entry.callback.set_state(State::Ready);
        Some(entry.callback)
    }

    /// Rebuild the heap without its dead entries if they are more than half of it, and give
    /// back memory the heap no longer needs.
    pub(crate) fn compact(&mut self) {
        let dead = self.book.dead.get();
        if dead > 0 && dead * 2 > self.entries.len() {
            self.entries.retain(|e| !e.is_dead());
            self.book.dead.set(0);
            for i in (0..self.entries.len() / 2).rev() {
                self.sift_down(i);
            }
        }
        let len = self.entries.len();
        if self.entries.capacity() > MIN_CAPACITY && self.entries.capacity() > 4 * len {
            self.entries.shrink_to((2 * len).max(MIN_CAPACITY));
        }
    }

    /// Entries in the heap, dead ones included.
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// Entries the heap's allocation can hold.
    pub(crate) fn capacity(&self) -> usize {
        self.entries.capacity()
    }

    /// Remove every entry, marking the live ones cancelled; returns them so the caller drops
    /// the closures outside any borrow of the loop.
    pub(crate) fn drain(&mut self) -> Vec<Rc<dyn Callback>> {
        self.book.dead.set(0);
        self.entries.drain(..).map(|e| e.callback).collect()
    }

    fn drop_dead_top(&mut self) {
        while self.entries.first().is_some_and(Entry::is_dead) {
            self.pop_top();
            self.book.dead.set(self.book.dead.get().saturating_sub(1));
        }
    }

    fn pop_top(&mut self) -> Option<Entry> {
        if self.entries.is_empty() {
            return None;
        }
        let entry = self.entries.swap_remove(0);
        if !self.entries.is_empty() {
            self.sift_down(0);
        }
        Some(entry)
    }

    fn sift_up(&mut self, mut i: usize) {
        let key = self.entries[i].key();
        while i > 0 {
            let parent = (i - 1) / ARITY;
            if key >= self.entries[parent].key() {
                break;
            }
            self.entries.swap(i, parent);
            i = parent;
        }
    }

    fn sift_down(&mut self, mut i: usize) {
        let len = self.entries.len();
        let key = self.entries[i].key();
        loop {
            let first = ARITY * i + 1;
            if first >= len {
                break;
            }
            let children = &self.entries[first..len.min(first + ARITY)];
            let mut child = 0;
            let mut least = children[0].key();
            for (c, entry) in children.iter().enumerate().skip(1) {
                if entry.key() < least {
                    least = entry.key();
                    child = c;
                }
            }
            if least >= key {
                break;
            }
            self.entries.swap(i, first + child);
            i = first + child;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event_loop::handle::{new_callback, Handle, TimerHandle};
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    fn schedule(heap: &mut TimerHeap, when: Duration) -> TimerHandle {
        let callback = new_callback(State::Scheduled, |_| {});
        heap.push(when, callback.clone());
        TimerHandle {
            handle: Handle { callback },
            when,
            book: heap.book().clone(),
        }
    }

    #[derive(Debug, Clone)]
    enum Op {
        Push(u8),
        Cancel(usize),
        PopDue(u8),
        Compact,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => any::<u8>().prop_map(Op::Push),
            2 => any::<usize>().prop_map(Op::Cancel),
            2 => any::<u8>().prop_map(Op::PopDue),
            1 => Just(Op::Compact),
        ]
    }

    proptest! {
        #[test]
        fn heap_pops_live_timers_in_deadline_then_scheduling_order_like_a_btreemap(
            ops in proptest::collection::vec(op(), 0..300)
        ) {
            let mut heap = TimerHeap::new();
            // The model: live timers by (deadline, scheduling order).
            let mut model: BTreeMap<(Duration, usize), usize> = BTreeMap::new();
            let mut handles: Vec<(TimerHandle, (Duration, usize))> = Vec::new();
            for op in ops {
                match op {
                    Op::Push(ms) => {
                        let when = Duration::from_millis(ms.into());
                        let id = handles.len();
                        handles.push((schedule(&mut heap, when), (when, id)));
                        model.insert((when, id), id);
                    }
                    Op::Cancel(i) if !handles.is_empty() => {
                        let (handle, key) = &handles[i % handles.len()];
                        handle.cancel();
                        model.remove(key);
                    }
                    Op::Cancel(_) => {}
                    Op::PopDue(ms) => {
                        let now = Duration::from_millis(ms.into());
                        loop {
                            let expected = model.first_key_value()
                                .filter(|(k, _)| k.0 <= now)
                                .map(|(k, id)| (*k, *id));
                            let got = heap.pop_due(now);
                            match (expected, got) {
                                (None, None) => break,
                                (Some((key, id)), Some(callback)) => {
                                    model.remove(&key);
                                    prop_assert!(Rc::ptr_eq(&callback, &handles[id].0.handle.callback));
                                    callback.set_state(State::Done);
                                }
                                (e, g) => prop_assert!(false, "model {:?}, heap {:?}", e, g.is_some()),
                            }
                        }
                    }
                    Op::Compact => heap.compact(),
                }
                prop_assert_eq!(heap.next_deadline(), model.first_key_value().map(|(k, _)| k.0));
                let dead = heap.book().dead.get();
                prop_assert_eq!(heap.len() - dead, model.len());
            }
        }
    }

    #[test]
    fn a_large_heap_grows_by_an_eighth_and_a_small_one_doubles() {
        let mut heap = TimerHeap::new();
        let mut handles = Vec::new();
        let mut capacities = Vec::new();
        // Under Miri (minutes for 20,000), just past two slow growths: 4,096 → 4,608 → 5,184.
        let timers = if cfg!(miri) { 4_700 } else { 20_000 };
        for i in 0..timers {
            handles.push(schedule(&mut heap, Duration::from_nanos(i % 97)));
            if capacities.last() != Some(&heap.capacity()) {
                capacities.push(heap.capacity());
            }
        }
        assert!(
            capacities.iter().filter(|&&c| c > GROW_SLOWLY_FROM).count() >= 2,
            "{capacities:?}"
        );
        for pair in capacities.windows(2) {
            let (before, after) = (pair[0], pair[1]);
            if before < GROW_SLOWLY_FROM {
                assert_eq!(after, before.max(4) * 2, "{capacities:?}");
            } else {
                assert_eq!(after, before + before / 8, "{capacities:?}");
            }
        }
        // Never more than an eighth unused once large.
        assert!(heap.capacity() * 8 <= heap.len() * 9, "{}", heap.capacity());
        for handle in &handles {
            handle.cancel();
        }
    }

    #[test]
    #[cfg_attr(miri, ignore = "a million timers take minutes under Miri")]
    fn a_million_cancelled_timers_leave_an_empty_small_heap() {
        let mut heap = TimerHeap::new();
        let handles: Vec<TimerHandle> = (0..1_000_000u64)
            .map(|i| schedule(&mut heap, Duration::from_nanos(i * 7919 % 1_000_003)))
            .collect();
        assert_eq!(heap.len(), 1_000_000);
        for handle in &handles {
            handle.cancel();
        }
        heap.compact();
        assert_eq!(heap.len(), 0);
        assert!(
            heap.capacity() <= MIN_CAPACITY,
            "capacity {}",
            heap.capacity()
        );
        assert_eq!(heap.next_deadline(), None);
    }
}
