//! The timer queue: callbacks keyed by (deadline, sequence), in three parts, so that most
//! timers are appended when scheduled and taken from the end of a sorted `Vec` when due.
//!
//! The key is one `u128`, the deadline in nanoseconds (saturating at `u64::MAX`, 584 years)
//! above the sequence number, so an entry is 32 bytes and a comparison is one integer compare.
//! A *horizon* key splits the timers:
//! - `later`: the timers at or past the horizon, unsorted, in scheduling order. Scheduling
//!   one is an append.
//! - `run`: timers before the horizon, sorted by descending key, so the earliest is the last
//!   and firing it is a `pop`.
//! - `heap`: a 4-ary min-heap of the timers scheduled before the horizon after `run` was
//!   sorted (typically fewer: a deadline shorter than those already pending).
//!
//! The earliest timer is the smaller of the heap's top and the run's last entry. When both
//! are empty, `later` is refilled into the run: its cancelled entries dropped in one pass
//! over them in scheduling order (which is also, mostly, the order of their callbacks in
//! memory), the rest sorted once (a cohort of 512 or more by a radix sort of their deadlines,
//! `timer_sort.rs`), and the horizon moved past its last key. A timer is thus sorted once
//! with its cohort instead of being sifted through a heap far larger than the
//! caches on the way in and again on the way out (100,000 timers are 3.2 MB). With a long
//! timer among short ones the horizon lands far ahead, and the short ones scheduled after
//! go into the heap: no worse than a heap alone. Scheduling is O(1) amortised past the
//! horizon and O(log h) into a heap of h entries; each timer is sorted once, O(log n)
//! amortised.
//!
//! Each part's allocation doubles while it is small and grows by an eighth once it holds
//! [`GROW_SLOWLY_FROM`] entries (128 KiB, where glibc's malloc hands out `mmap`ed blocks and
//! `realloc` moves their pages instead of copying them): an unused tail of at most an eighth,
//! 4 bytes per pending timer, where doubling left up to 32. With the callback's own 24 bytes
//! (`Rc` counts, state, closure), a pending timer costs at most 24 + 32 × 9/8 = 60 bytes for
//! any number of timers above that size (`tulip-bench memory --n ...`). A part emptied by
//! firing or by a refill keeps its allocation until the next [`TimerHeap::compact`], which
//! shrinks any part using less than a quarter of its capacity.
//!
//! Cancel is O(1) and happens outside the queue ([`TimerHandle::cancel`] marks the callback
//! and counts a dead entry in the shared [`TimerBook`]); dead entries are dropped when they
//! reach the front or when `later` is refilled, and [`TimerHeap::compact`] rebuilds all three
//! parts when more than half of the entries are dead, shrinking their allocations, so
//! cancelled timers cost no memory for long.
//!
//! [`TimerHandle::cancel`]: crate::TimerHandle::cancel

use std::mem;
use std::rc::Rc;
use std::time::Duration;

use super::timer_sort;
use crate::event_loop::handle::{Callback, State, TimerBook};

struct Entry {
    /// The deadline in nanoseconds in the high 64 bits, the scheduling order in the low ones:
    /// ties in the deadline fire in the order they were scheduled.
    key: u128,
    callback: Rc<dyn Callback>,
}

/// Children per node of the heap.
const ARITY: usize = 4;

/// How many pops ahead in the run a callback is prefetched.
const PREFETCH_AHEAD: usize = 16;

impl Entry {
    fn key(&self) -> u128 {
        self.key
    }

    fn is_dead(&self) -> bool {
        self.callback.state() == State::Cancelled
    }
}

fn when(key: u128) -> Duration {
    Duration::from_nanos((key >> 64) as u64)
}

/// From this capacity on (128 KiB of entries) a part grows by an eighth, not by doubling.
const GROW_SLOWLY_FROM: usize = 4096;

/// Capacity a part keeps however empty it gets, so that a steady trickle of timers does not
/// reallocate.
const MIN_CAPACITY: usize = 64;

/// Where the earliest live timer is.
#[derive(Clone, Copy)]
enum Front {
    Heap,
    Run,
}

/// The loop's pending timers. Every entry's callback is in state `Scheduled` or `Cancelled`.
///
/// Invariant: every key in `heap` and `run` is below `horizon`, every key in `later` at or
/// above it.
pub(crate) struct TimerHeap {
    heap: Vec<Entry>,
    run: Vec<Entry>,
    later: Vec<Entry>,
    horizon: u128,
    next_seq: u64,
    book: Rc<TimerBook>,
}

impl TimerHeap {
    pub(crate) fn new() -> TimerHeap {
        TimerHeap {
            heap: Vec::new(),
            run: Vec::new(),
            later: Vec::new(),
            horizon: 0,
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
        let entry = Entry {
            key: u128::from(nanos) << 64 | u128::from(seq),
            callback,
        };
        if entry.key < self.horizon {
            push_growing(&mut self.heap, entry);
            self.sift_up(self.heap.len() - 1);
        } else {
            push_growing(&mut self.later, entry);
        }
    }

    /// The earliest deadline of a live timer, dropping dead entries from the front.
    #[inline]
    pub(crate) fn next_deadline(&mut self) -> Option<Duration> {
        // No timer at all, the usual case of a loop busy with I/O: answered inline, without
        // the call to `front`.
        if self.len() == 0 {
            return None;
        }
        self.front().map(|(_, key)| when(key))
    }

    /// The earliest live timer if it is due at or before `now`, removed from the heap and
    /// marked `Ready`.
    pub(crate) fn pop_due(&mut self, now: Duration) -> Option<Rc<dyn Callback>> {
        let (front, key) = self.front()?;
        if when(key) > now {
            return None;
        }
        let entry = match front {
            Front::Heap => self.pop_top(),
            Front::Run => {
                // The run fires in deadline order, not in the callbacks' memory order: ask
                // for the callback a few pops ahead now, so that its first touch (the
                // liveness check in `front`) finds it in the cache.
                if let Some(ahead) = self.run.len().checked_sub(PREFETCH_AHEAD) {
                    tulip_sys::hint::prefetch(&*self.run[ahead].callback);
                }
                self.run.pop()
            }
        }
        .expect("the front entry is in the part front() named");
        entry.callback.set_state(State::Ready);
        Some(entry.callback)
    }

    /// Rebuild the parts without their dead entries if they are more than half of all
    /// entries, and give back memory the parts no longer need. Called every iteration: with
    /// no dead entry and no part above its minimum capacity (a loop with few or no timers)
    /// it is two tests inline.
    #[inline]
    pub(crate) fn compact(&mut self) {
        let largest = self
            .heap
            .capacity()
            .max(self.run.capacity())
            .max(self.later.capacity());
        if self.book.dead.get() > 0 || largest > MIN_CAPACITY {
            self.compact_and_shrink();
        }
    }

    #[inline(never)]
    fn compact_and_shrink(&mut self) {
        let dead = self.book.dead.get();
        if dead > 0 && dead * 2 > self.len() {
            // `retain` keeps the run sorted; the heap is rebuilt bottom-up.
            self.heap.retain(|e| !e.is_dead());
            self.run.retain(|e| !e.is_dead());
            self.later.retain(|e| !e.is_dead());
            self.book.dead.set(0);
            for i in (0..self.heap.len() / ARITY + 1).rev() {
                self.sift_down(i);
            }
        }
        for part in [&mut self.heap, &mut self.run, &mut self.later] {
            let len = part.len();
            if part.capacity() > MIN_CAPACITY && part.capacity() > 4 * len {
                part.shrink_to((2 * len).max(MIN_CAPACITY));
            }
        }
    }

    /// Entries held, dead ones included.
    pub(crate) fn len(&self) -> usize {
        self.heap.len() + self.run.len() + self.later.len()
    }

    /// Entries the allocations can hold.
    pub(crate) fn capacity(&self) -> usize {
        self.heap.capacity() + self.run.capacity() + self.later.capacity()
    }

    /// Remove every entry, marking the live ones cancelled; returns them so the caller drops
    /// the closures outside any borrow of the loop.
    pub(crate) fn drain(&mut self) -> Vec<Rc<dyn Callback>> {
        self.book.dead.set(0);
        let parts = [&mut self.heap, &mut self.run, &mut self.later];
        parts
            .into_iter()
            .flat_map(|part| part.drain(..))
            .map(|e| e.callback)
            .collect()
    }

    /// Which part holds the earliest live timer, and its key; dead entries met at the front
    /// are dropped, and `later` is refilled into the run when the run and the heap are empty.
    fn front(&mut self) -> Option<(Front, u128)> {
        loop {
            while self.heap.first().is_some_and(Entry::is_dead) {
                self.pop_top();
                self.forget_dead(1);
            }
            while self.run.last().is_some_and(Entry::is_dead) {
                self.run.pop();
                self.forget_dead(1);
            }
            match (self.heap.first(), self.run.last()) {
                (Some(top), Some(last)) if top.key < last.key => {
                    return Some((Front::Heap, top.key))
                }
                (_, Some(last)) => return Some((Front::Run, last.key)),
                (Some(top), None) => return Some((Front::Heap, top.key)),
                // No timer at all: the common case of a loop busy with I/O, every iteration.
                (None, None) if self.later.is_empty() => return None,
                (None, None) => {
                    if !self.refill() {
                        return None;
                    }
                }
            }
        }
    }

    /// With the heap and the run empty: `later`'s live entries become the run, and the
    /// horizon moves past them. False if there were none.
    fn refill(&mut self) -> bool {
        debug_assert!(self.heap.is_empty() && self.run.is_empty());
        let before = self.later.len();
        self.later.retain(|e| !e.is_dead());
        self.forget_dead(before - self.later.len());
        if self.later.is_empty() {
            return false;
        }
        // `later` is in scheduling order, as the sort needs.
        timer_sort::sort_descending(&mut self.later, Entry::key);
        self.horizon = self.later[0].key.saturating_add(1);
        mem::swap(&mut self.run, &mut self.later);
        true
    }

    fn forget_dead(&mut self, n: usize) {
        self.book.dead.set(self.book.dead.get().saturating_sub(n));
    }

    fn pop_top(&mut self) -> Option<Entry> {
        if self.heap.is_empty() {
            return None;
        }
        let entry = self.heap.swap_remove(0);
        if !self.heap.is_empty() {
            self.sift_down(0);
        }
        Some(entry)
    }

    fn sift_up(&mut self, mut i: usize) {
        let key = self.heap[i].key();
        while i > 0 {
            let parent = (i - 1) / ARITY;
            if key >= self.heap[parent].key() {
                break;
            }
            self.heap.swap(i, parent);
            i = parent;
        }
    }

    fn sift_down(&mut self, mut i: usize) {
        let len = self.heap.len();
        if i >= len {
            return;
        }
        let key = self.heap[i].key();
        loop {
            let first = ARITY * i + 1;
            if first >= len {
                break;
            }
            let children = &self.heap[first..len.min(first + ARITY)];
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
            self.heap.swap(i, first + child);
            i = first + child;
        }
    }
}

#[cfg(test)]
impl TimerHeap {
    /// Entries in the heap, the run and `later`.
    fn parts(&self) -> (usize, usize, usize) {
        (self.heap.len(), self.run.len(), self.later.len())
    }

    /// Panics unless the parts are what they claim: the heap a heap, the run sorted by
    /// descending key, both below the horizon, `later` at or past it, and the book's dead
    /// count the number of cancelled entries.
    fn check(&self) {
        for (i, entry) in self.heap.iter().enumerate().skip(1) {
            assert!(
                self.heap[(i - 1) / ARITY].key <= entry.key,
                "heap order at {i}"
            );
        }
        assert!(
            self.run.windows(2).all(|w| w[0].key > w[1].key),
            "run order"
        );
        assert!(self
            .heap
            .iter()
            .chain(&self.run)
            .all(|e| e.key < self.horizon));
        assert!(self.later.iter().all(|e| e.key >= self.horizon));
        let parts = [&self.heap, &self.run, &self.later];
        let dead = parts.iter().flat_map(|p| p.iter()).filter(|e| e.is_dead());
        assert_eq!(dead.count(), self.book.dead.get(), "dead entries");
    }
}

/// Append `entry`, making room first if needed: doubling while small (as `Vec` would), an
/// eighth more once large.
fn push_growing(part: &mut Vec<Entry>, entry: Entry) {
    if part.len() == part.capacity() {
        grow(part);
    }
    part.push(entry);
}

#[cold]
fn grow(part: &mut Vec<Entry>) {
    let capacity = part.capacity();
    let more = if capacity < GROW_SLOWLY_FROM {
        capacity.max(4)
    } else {
        capacity / 8
    };
    part.reserve_exact(more);
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
        /// Pop at most this many due timers: pushes then land between pops of one run.
        PopSome(u8, u8),
        Compact,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => any::<u8>().prop_map(Op::Push),
            2 => any::<usize>().prop_map(Op::Cancel),
            2 => any::<u8>().prop_map(Op::PopDue),
            2 => (any::<u8>(), 0..4u8).prop_map(|(ms, n)| Op::PopSome(ms, n)),
            1 => Just(Op::Compact),
        ]
    }

    proptest! {
        // Under Miri, 2 cases took 6 minutes: the fixed-sequence tests above and below cover
        // the same paths there.
        #[test]
        #[cfg_attr(miri, ignore = "minutes under Miri; the fixed-sequence tests cover it")]
        fn queue_pops_live_timers_in_deadline_then_scheduling_order_like_a_btreemap(
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
                    Op::PopDue(ms) | Op::PopSome(ms, _) => {
                        let now = Duration::from_millis(ms.into());
                        let most = match op {
                            Op::PopSome(_, n) => usize::from(n),
                            _ => usize::MAX,
                        };
                        for _ in 0..most {
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
                heap.check();
                prop_assert_eq!(heap.next_deadline(), model.first_key_value().map(|(k, _)| k.0));
                heap.check();
                let dead = heap.book().dead.get();
                prop_assert_eq!(heap.len() - dead, model.len());
            }
        }
    }

    /// Pops every due timer, returning the indices (in `handles`) of those that came out.
    fn pop_all(heap: &mut TimerHeap, now: Duration, handles: &[TimerHandle]) -> Vec<usize> {
        let mut popped = Vec::new();
        while let Some(callback) = heap.pop_due(now) {
            let i = handles
                .iter()
                .position(|h| Rc::ptr_eq(&h.handle.callback, &callback))
                .expect("a popped timer is one of ours");
            callback.set_state(State::Done);
            popped.push(i);
            heap.check();
        }
        popped
    }

    #[test]
    fn timers_scheduled_while_the_run_drains_keep_deadline_then_scheduling_order() {
        let ms = Duration::from_millis;
        let mut heap = TimerHeap::new();
        let mut handles = Vec::new();
        for when in [10, 20, 30, 30] {
            handles.push(schedule(&mut heap, ms(when))); // 0..=3, appended to `later`
        }
        assert_eq!(heap.parts(), (0, 0, 4));
        // The first pop sorts them into the run; the horizon is just past timer 3's key.
        assert_eq!(pop_all(&mut heap, ms(10), &handles), [0]);
        assert_eq!(heap.parts(), (0, 3, 0));
        // Before the horizon: into the heap (4 ties with timer 1 but comes after it; 5 is
        // already due). At the horizon's deadline but scheduled later: after it, in `later`.
        for when in [20, 5, 30, 100] {
            handles.push(schedule(&mut heap, ms(when))); // 4..=7
        }
        assert_eq!(heap.parts(), (2, 3, 2));
        heap.check();
        assert_eq!(pop_all(&mut heap, ms(20), &handles), [5, 1, 4]);
        // Cancelled in the run, in `later`, and pushed into the heap then cancelled.
        handles[2].cancel();
        handles[7].cancel();
        handles.push(schedule(&mut heap, ms(25))); // 8
        handles[8].cancel();
        heap.check();
        assert_eq!(pop_all(&mut heap, ms(29), &handles), []);
        assert_eq!(pop_all(&mut heap, ms(100), &handles), [3, 6]);
        assert_eq!(heap.next_deadline(), None);
        assert_eq!(heap.len(), 0);
        assert_eq!(heap.book().dead.get(), 0);
    }

    /// A cohort large enough for the radix sort (`timer_sort.rs`), ties and cancelled
    /// entries among it, fires in (deadline, scheduling) order.
    #[test]
    #[cfg_attr(miri, ignore = "thousands of timers take minutes under Miri")]
    fn a_large_cohort_fires_in_deadline_then_scheduling_order() {
        let mut heap = TimerHeap::new();
        let deadlines: Vec<Duration> = (0..3000u64)
            .map(|i| Duration::from_nanos(1_000_000 + i * 7919 % 4099))
            .collect();
        let handles: Vec<TimerHandle> = deadlines
            .iter()
            .map(|&when| schedule(&mut heap, when))
            .collect();
        for handle in handles.iter().step_by(3) {
            handle.cancel();
        }
        let popped = pop_all(&mut heap, Duration::from_secs(1), &handles);
        let mut expected: Vec<usize> = (0..handles.len()).filter(|i| i % 3 != 0).collect();
        expected.sort_by_key(|&i| (deadlines[i], i));
        assert_eq!(popped, expected);
        assert_eq!(heap.len(), 0);
    }

    #[test]
    fn compaction_drops_cancelled_timers_from_every_part_and_keeps_the_order() {
        let ms = Duration::from_millis;
        let mut heap = TimerHeap::new();
        let mut handles: Vec<TimerHandle> = (0..40).map(|i| schedule(&mut heap, ms(i))).collect();
        assert_eq!(pop_all(&mut heap, Duration::ZERO, &handles), [0]);
        // 39 in the run (1..=39, horizon past 39 ms), then 20 in the heap, 20 in `later`.
        for i in 0..40u64 {
            let when = if i % 2 == 0 { i / 2 } else { 100 + i };
            handles.push(schedule(&mut heap, ms(when)));
        }
        assert_eq!(heap.parts(), (20, 39, 20));
        // Cancel three in four of the pending ones: more than half are dead.
        let cancelled: Vec<usize> = (1..80).filter(|i| i % 4 != 0).collect();
        for &i in &cancelled {
            handles[i].cancel();
        }
        heap.check();
        heap.compact();
        heap.check();
        assert_eq!(heap.book().dead.get(), 0);
        assert_eq!(heap.len(), 79 - cancelled.len());
        let popped = pop_all(&mut heap, ms(1000), &handles);
        let mut expected: Vec<usize> = (1..80).filter(|i| i % 4 == 0).collect();
        expected.sort_by_key(|&i| (handles[i].when(), i));
        assert_eq!(popped, expected);
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
