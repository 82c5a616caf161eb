//! [`FdMap`]: a map keyed by fd, looked up on every event. The selectors' registries and the
//! event loop's I/O table use it.
//!
//! File descriptors are small integers that the kernel hands out lowest-first, so a table
//! indexed by fd answers a lookup with one bounds check and one load, where a hash map hashes,
//! probes a control group and compares a key (an event's lookup in each of the selector's
//! registry and the loop's table was a tenth of the user-space instructions of a pipe round
//! trip; issue #16). A lone high fd (one `dup2`ed to 60,000, say) must not make the table that
//! long: the table grows to cover an fd only while it stays within a few times the entries
//! held (`DENSE_FLOOR`, `DENSE_SLACK`); other fds go to a hash map beside it. So the memory
//! stays proportional to what is registered, whatever the fd numbers.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::mem;
use std::os::fd::RawFd;

/// Slots the table may always reach, however few entries it holds.
const DENSE_FLOOR: usize = 1024;

/// Past `DENSE_FLOOR`, the table may be this many times longer than the entries it holds.
const DENSE_SLACK: usize = 4;

/// fd → `V` (see the module doc). Invariant: an fd below `dense.len()` is in `dense`, never in
/// `sparse`; negative fds, and fds the table could not grow to, are in `sparse`.
#[derive(Debug)]
pub struct FdMap<V> {
    dense: Vec<Option<V>>,
    sparse: HashMap<RawFd, V, BuildHasherDefault<FdHasher>>,
    len: usize,
}

impl<V> Default for FdMap<V> {
    fn default() -> Self {
        FdMap {
            dense: Vec::new(),
            sparse: HashMap::default(),
            len: 0,
        }
    }
}

impl<V> FdMap<V> {
    /// An empty map (allocates nothing).
    pub fn new() -> Self {
        FdMap::default()
    }

    /// Entries held.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True if no entry is held.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// `fd` as a table index: a negative fd becomes one above any the table has (it is
    /// never longer than `RawFd::MAX`), so one bounds check sends it to `sparse` too.
    #[inline]
    fn slot(fd: RawFd) -> usize {
        fd as u32 as usize
    }

    /// `fd`'s value.
    #[inline]
    pub fn get(&self, fd: RawFd) -> Option<&V> {
        match self.dense.get(Self::slot(fd)) {
            Some(slot) => slot.as_ref(),
            None => self.sparse_get(fd),
        }
    }

    /// `fd`'s value, to change.
    #[inline]
    pub fn get_mut(&mut self, fd: RawFd) -> Option<&mut V> {
        match self.dense.get_mut(Self::slot(fd)) {
            Some(slot) => slot.as_mut(),
            None => self.sparse.get_mut(&fd),
        }
    }

    /// Kept out of line: the usual lookup ends in the table.
    #[inline(never)]
    fn sparse_get(&self, fd: RawFd) -> Option<&V> {
        if self.sparse.is_empty() {
            return None;
        }
        self.sparse.get(&fd)
    }

    /// True if `fd` has a value.
    pub fn contains_key(&self, fd: RawFd) -> bool {
        self.get(fd).is_some()
    }

    /// Put `value` under `fd`; returns the value it replaced.
    pub fn insert(&mut self, fd: RawFd, value: V) -> Option<V> {
        let i = Self::slot(fd);
        let old = if i < self.dense.len() || self.grow_to(fd) {
            self.dense[i].replace(value)
        } else {
            self.sparse.insert(fd, value)
        };
        if old.is_none() {
            self.len += 1;
        }
        old
    }

    /// `fd`'s value, made with `make` first if there was none.
    pub fn get_or_insert_with(&mut self, fd: RawFd, make: impl FnOnce() -> V) -> &mut V {
        if !self.contains_key(fd) {
            self.insert(fd, make());
        }
        self.get_mut(fd).expect("the value was just inserted")
    }

    /// Take `fd`'s value out.
    pub fn remove(&mut self, fd: RawFd) -> Option<V> {
        let old = match self.dense.get_mut(Self::slot(fd)) {
            Some(slot) => slot.take(),
            None => self.sparse.remove(&fd),
        };
        if old.is_some() {
            self.len -= 1;
        }
        old
    }

    /// Every entry: the table's in fd order, then the others in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (RawFd, &V)> {
        let dense = self.dense.iter().enumerate();
        let dense = dense.filter_map(|(i, v)| Some((fd_of(i), v.as_ref()?)));
        dense.chain(self.sparse.iter().map(|(&fd, v)| (fd, v)))
    }

    /// Take every entry out, at once: the map is empty (and holds no allocation) even if the
    /// iterator is dropped before its end, which then drops the rest.
    pub fn drain(&mut self) -> impl Iterator<Item = (RawFd, V)> {
        self.len = 0;
        let dense = mem::take(&mut self.dense).into_iter().enumerate();
        let dense = dense.filter_map(|(i, v)| Some((fd_of(i), v?)));
        dense.chain(mem::take(&mut self.sparse))
    }

    /// Make the table cover `fd` if that keeps it within `DENSE_SLACK` times the entries
    /// (counting the one about to come), moving the entries it now covers out of `sparse`;
    /// false if `fd` stays out of the table (negative, or too far).
    fn grow_to(&mut self, fd: RawFd) -> bool {
        let Ok(i) = usize::try_from(fd) else {
            return false;
        };
        let allowed = DENSE_FLOOR.max(DENSE_SLACK.saturating_mul(self.len + 1));
        if i >= allowed {
            return false;
        }
        // At least doubling, so that fds handed out one by one grow it amortised O(1); never
        // past the last fd (see `slot`).
        let last_fd = RawFd::MAX as usize;
        let new_len = (i + 1)
            .max(self.dense.len() * 2)
            .min(allowed)
            .min(last_fd + 1);
        self.dense.resize_with(new_len, || None);
        if !self.sparse.is_empty() {
            let covered: Vec<RawFd> = (self.sparse.keys().copied())
                .filter(|&fd| Self::slot(fd) < new_len)
                .collect();
            for fd in covered {
                let value = self.sparse.remove(&fd);
                self.dense[Self::slot(fd)] = value;
            }
        }
        true
    }
}

/// The fd of a table slot (slots never exceed `RawFd::MAX`: the table covers only fds).
fn fd_of(i: usize) -> RawFd {
    RawFd::try_from(i).expect("the table covers only fds")
}

/// Hashes an fd (an `i32`) by multiplying it by an odd constant: a bijection, so no two fds
/// collide, with the high bits mixed enough for `HashMap`'s bucket choice (SipHash would only
/// cost time on keys nobody chooses to collide).
#[derive(Debug, Default)]
pub struct FdHasher(u64);

impl Hasher for FdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only reached if something other than an i32 is hashed; stay correct anyway.
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
        }
    }

    fn write_i32(&mut self, fd: i32) {
        self.0 = u64::from(fd as u32).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    #[derive(Debug, Clone)]
    enum Op {
        Insert(RawFd, u32),
        Remove(RawFd),
        GetOrInsert(RawFd, u32),
        Drain,
    }

    /// Mostly small fds, as the kernel hands them out, with some high and negative ones.
    fn fd() -> impl Strategy<Value = RawFd> {
        prop_oneof![
            8 => 0..64i32,
            3 => 0..5000i32,
            1 => 60_000..70_000i32,
            1 => -3..0i32,
        ]
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            6 => (fd(), any::<u32>()).prop_map(|(fd, v)| Op::Insert(fd, v)),
            4 => fd().prop_map(Op::Remove),
            2 => (fd(), any::<u32>()).prop_map(|(fd, v)| Op::GetOrInsert(fd, v)),
            1 => Just(Op::Drain),
        ]
    }

    /// `peak`: the most entries the map has held so far.
    fn check_same(map: &FdMap<u32>, model: &BTreeMap<RawFd, u32>, peak: usize) {
        assert_eq!(map.len(), model.len());
        assert_eq!(map.is_empty(), model.is_empty());
        let mut entries: Vec<(RawFd, u32)> = map.iter().map(|(fd, &v)| (fd, v)).collect();
        entries.sort_unstable();
        let expected: Vec<(RawFd, u32)> = model.iter().map(|(&fd, &v)| (fd, v)).collect();
        assert_eq!(entries, expected);
        for (&fd, &v) in model {
            assert_eq!(map.get(fd), Some(&v));
        }
        // The table never grew past its slack over the most it held.
        assert!(map.dense.len() <= DENSE_FLOOR.max(DENSE_SLACK * peak));
        assert!(map
            .sparse
            .keys()
            .all(|&fd| fd < 0 || fd as usize >= map.dense.len()));
    }

    proptest! {
        #[test]
        fn behaves_as_a_map(ops in proptest::collection::vec(op(), 1..200)) {
            let mut map = FdMap::new();
            let mut model = BTreeMap::new();
            let mut peak = 0;
            for op in ops {
                match op {
                    Op::Insert(fd, v) => prop_assert_eq!(map.insert(fd, v), model.insert(fd, v)),
                    Op::Remove(fd) => prop_assert_eq!(map.remove(fd), model.remove(&fd)),
                    Op::GetOrInsert(fd, v) => {
                        let got = *map.get_or_insert_with(fd, || v);
                        prop_assert_eq!(got, *model.entry(fd).or_insert(v));
                    }
                    Op::Drain => {
                        let mut drained: Vec<_> = map.drain().collect();
                        drained.sort_unstable();
                        let expected: Vec<_> = std::mem::take(&mut model).into_iter().collect();
                        prop_assert_eq!(drained, expected);
                    }
                }
                peak = peak.max(model.len());
                check_same(&map, &model, peak);
            }
        }
    }

    #[test]
    fn a_drain_dropped_early_still_empties_the_map() {
        let mut map = FdMap::new();
        for fd in [1, 2, 3, 70_000] {
            map.insert(fd, fd);
        }
        assert!(map.drain().next().is_some());
        assert!(map.is_empty());
        assert_eq!(map.iter().count(), 0);
        assert_eq!(map.get(2), None);
        assert_eq!(map.get(70_000), None);
    }

    #[test]
    fn a_lone_high_fd_does_not_stretch_the_table() {
        let mut map = FdMap::new();
        map.insert(3, 'a');
        map.insert(65_000, 'b');
        assert!(map.dense.len() <= DENSE_FLOOR);
        assert_eq!(map.get(65_000), Some(&'b'));
        assert_eq!(map.len(), 2);
    }

    #[test]
    fn fds_handed_out_in_order_all_end_in_the_table() {
        let mut map = FdMap::new();
        for fd in 0..10_000 {
            map.insert(fd, fd);
        }
        assert!(map.sparse.is_empty());
        assert!((10_000..=DENSE_SLACK * 10_000).contains(&map.dense.len()));
        assert!((0..10_000).all(|fd| map.get(fd) == Some(&fd)));
    }

    #[test]
    fn the_table_takes_over_the_high_fds_it_grows_to_cover() {
        let mut map = FdMap::new();
        map.insert(2000, "high");
        assert_eq!(
            map.sparse.len(),
            1,
            "beyond the floor with one entry: outside the table"
        );
        // Past the floor the table doubles (at fd 1024, to 2048 slots): 2000 is covered.
        for fd in 0..1100 {
            map.insert(fd, "low");
        }
        assert!(map.sparse.is_empty(), "the table covers 2000 now: moved in");
        assert_eq!(map.get(2000), Some(&"high"));
        assert_eq!(map.remove(2000), Some("high"));
        assert_eq!(map.len(), 1100);
    }
}
