//! [`FdMap`]: a map keyed by file descriptor, indexed rather than hashed.
//!
//! The kernel hands out the lowest free number, so the fds of a process are small and dense:
//! a table indexed by the fd finds an entry with one bounds check, where a hash map hashes,
//! probes a group of control bytes and compares keys. Every event a selector returns and every
//! event the loop dispatches goes through such a lookup, so it is on the hottest path there is.
//! An fd past [`DENSE_LIMIT`] (a process that raised `RLIMIT_NOFILE` and uses it) goes to a
//! hash map instead, so the table never grows past `DENSE_LIMIT` entries whatever the numbers.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::os::fd::RawFd;

/// The fds below this are indexed; the rest are hashed. The table grows only as far as the
/// highest fd inserted, doubling, so a process that uses fds 0–99 has a table of 128 entries.
pub const DENSE_LIMIT: usize = 1 << 16;

/// A map keyed by fd: a table indexed by the fd below [`DENSE_LIMIT`], a hash map above it
/// (and for a negative key, which no fd is, but a map must still refuse to confuse). Iteration
/// visits the indexed fds in increasing order, then the others in no particular order.
#[derive(Debug, Clone)]
pub struct FdMap<V> {
    dense: Vec<Option<V>>,
    sparse: HashMap<RawFd, V, BuildHasherDefault<FdHasher>>,
    /// Entries in `dense` that are `Some`.
    dense_len: usize,
}

impl<V> Default for FdMap<V> {
    fn default() -> Self {
        FdMap {
            dense: Vec::new(),
            sparse: HashMap::default(),
            dense_len: 0,
        }
    }
}

/// Where an fd lives: its index in the table, or `None` for the hash map.
fn index(fd: RawFd) -> Option<usize> {
    usize::try_from(fd).ok().filter(|&i| i < DENSE_LIMIT)
}

impl<V> FdMap<V> {
    /// An empty map; it allocates on its first insertion.
    pub fn new() -> Self {
        Self::default()
    }

    /// How many fds have an entry.
    pub fn len(&self) -> usize {
        self.dense_len + self.sparse.len()
    }

    /// True if no fd has an entry.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The entry of `fd`.
    #[inline]
    pub fn get(&self, fd: RawFd) -> Option<&V> {
        match index(fd) {
            Some(i) => self.dense.get(i)?.as_ref(),
            None => self.sparse.get(&fd),
        }
    }

    /// The entry of `fd`, to change it.
    #[inline]
    pub fn get_mut(&mut self, fd: RawFd) -> Option<&mut V> {
        match index(fd) {
            Some(i) => self.dense.get_mut(i)?.as_mut(),
            None => self.sparse.get_mut(&fd),
        }
    }

    /// True if `fd` has an entry.
    pub fn contains_key(&self, fd: RawFd) -> bool {
        self.get(fd).is_some()
    }

    /// Give `fd` the entry `value`; returns the one it replaces.
    pub fn insert(&mut self, fd: RawFd, value: V) -> Option<V> {
        let Some(i) = index(fd) else {
            return self.sparse.insert(fd, value);
        };
        self.grow_to(i);
        let old = self.dense[i].replace(value);
        if old.is_none() {
            self.dense_len += 1;
        }
        old
    }

    /// The entry of `fd`, made with `make` first if it has none.
    pub fn get_or_insert_with(&mut self, fd: RawFd, make: impl FnOnce() -> V) -> &mut V {
        let Some(i) = index(fd) else {
            return self.sparse.entry(fd).or_insert_with(make);
        };
        self.grow_to(i);
        let slot = &mut self.dense[i];
        if slot.is_none() {
            self.dense_len += 1;
        }
        slot.get_or_insert_with(make)
    }

    /// Make the table long enough for index `i` (below `DENSE_LIMIT`), doubling, so a run of
    /// new fds costs amortised O(1) each.
    fn grow_to(&mut self, i: usize) {
        if i >= self.dense.len() {
            let len = (i + 1).next_power_of_two().clamp(16, DENSE_LIMIT);
            self.dense.resize_with(len, || None);
        }
    }

    /// Take the entry of `fd` out.
    pub fn remove(&mut self, fd: RawFd) -> Option<V> {
        let Some(i) = index(fd) else {
            return self.sparse.remove(&fd);
        };
        let old = self.dense.get_mut(i)?.take();
        if old.is_some() {
            self.dense_len -= 1;
        }
        old
    }

    /// Every fd and its entry.
    pub fn iter(&self) -> impl Iterator<Item = (RawFd, &V)> {
        let dense = self
            .dense
            .iter()
            .enumerate()
            .filter_map(|(i, v)| Some((i as RawFd, v.as_ref()?)));
        dense.chain(self.sparse.iter().map(|(&fd, v)| (fd, v)))
    }

    /// Every fd and its entry, taken out: the map is empty afterwards (and has given back its
    /// memory).
    pub fn drain(&mut self) -> impl Iterator<Item = (RawFd, V)> {
        self.dense_len = 0;
        let dense = std::mem::take(&mut self.dense)
            .into_iter()
            .enumerate()
            .filter_map(|(i, v)| Some((i as RawFd, v?)));
        dense.chain(std::mem::take(&mut self.sparse))
    }
}

/// Hashes an fd (an `i32`) by multiplying it by an odd constant: a bijection, so no two fds
/// collide, with the high bits mixed enough for `HashMap`'s bucket choice. [`FdMap`] hashes
/// only the fds past its table.
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

    #[test]
    fn indexed_and_hashed_fds_are_one_map() {
        let mut map = FdMap::new();
        let big = DENSE_LIMIT as RawFd + 7;
        assert_eq!(map.insert(3, "three"), None);
        assert_eq!(map.insert(big, "big"), None);
        assert_eq!(map.insert(-1, "negative"), None);
        assert_eq!(map.insert(3, "three again"), Some("three"));
        assert_eq!(map.len(), 3);
        assert_eq!(map.get(3), Some(&"three again"));
        assert_eq!(map.get(big), Some(&"big"));
        assert_eq!(map.get(-1), Some(&"negative"));
        assert_eq!(map.get(4), None);
        assert_eq!(map.get(1_000), None, "past the table's end");
        assert_eq!(map.remove(big), Some("big"));
        assert_eq!(map.remove(big), None);
        assert_eq!(map.remove(70), None, "past the table's end");
        let mut all: Vec<_> = map.drain().collect();
        all.sort();
        assert_eq!(all, [(-1, "negative"), (3, "three again")]);
        assert!(map.is_empty());
        assert_eq!(map.get(3), None);
    }

    #[test]
    fn the_table_grows_only_to_the_highest_fd() {
        let mut map = FdMap::new();
        map.insert(100, ());
        assert_eq!(map.dense.len(), 128);
        map.insert(DENSE_LIMIT as RawFd - 1, ());
        assert_eq!(map.dense.len(), DENSE_LIMIT);
        map.insert(RawFd::MAX, ());
        assert_eq!(map.dense.len(), DENSE_LIMIT, "a huge fd is hashed");
        assert_eq!(map.len(), 3);
    }

    proptest! {
        /// Any sequence of inserts and removes, on fds on both sides of the limit and
        /// negative ones, leaves the map as a `BTreeMap` given the same operations.
        #[test]
        fn behaves_as_a_btreemap(ops in proptest::collection::vec(
            (any::<bool>(), prop_oneof![
                0..64i32,
                (DENSE_LIMIT as i32 - 4)..(DENSE_LIMIT as i32 + 4),
                -3..0i32,
                Just(i32::MAX),
            ], any::<u8>()),
            0..200,
        )) {
            let mut map = FdMap::new();
            let mut model = BTreeMap::new();
            for (insert, fd, value) in ops {
                if insert {
                    prop_assert_eq!(map.insert(fd, value), model.insert(fd, value));
                } else {
                    prop_assert_eq!(map.remove(fd), model.remove(&fd));
                }
                prop_assert_eq!(map.len(), model.len());
            }
            for (&fd, value) in &model {
                prop_assert_eq!(map.get(fd), Some(value));
            }
            let mut seen: Vec<_> = map.iter().map(|(fd, &v)| (fd, v)).collect();
            seen.sort();
            let expected: Vec<_> = model.into_iter().collect();
            prop_assert_eq!(seen, expected);
        }
    }
}
