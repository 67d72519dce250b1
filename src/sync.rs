//! The one poison-tolerant lock helper of the crate, and giving back the tables of maps that
//! grew for a burst.

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasher, Hash};
use std::sync::{Mutex, MutexGuard, PoisonError};

/// Locks `m`, recovering from poisoning: every mutex of the operator guards a cache or a
/// counter that stays usable after a panic elsewhere mid-update (at worst one entry is stale).
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Capacity below which an emptied map keeps its table (not worth a reallocation).
const SPARSE_MIN_CAPACITY: usize = 1024;

/// A map or set that grows for a burst (10,000 objects created at once: their bookings, their
/// pending writes, their backoffs) and keeps that table once the burst is over unless told.
pub(crate) trait ShrinkIfSparse {
    /// Gives back the table's memory once fewer than an eighth of its slots are used; the
    /// halving-and-more keeps the reallocations amortised O(1) per removal.
    fn shrink_if_sparse(&mut self);
}

/// Whether a table of `capacity` holding `len` entries is worth shrinking.
fn sparse(len: usize, capacity: usize) -> bool {
    capacity >= SPARSE_MIN_CAPACITY && len < capacity / 8
}

impl<K: Eq + Hash, V, S: BuildHasher> ShrinkIfSparse for HashMap<K, V, S> {
    fn shrink_if_sparse(&mut self) {
        if sparse(self.len(), self.capacity()) {
            self.shrink_to_fit();
        }
    }
}

impl<T: Eq + Hash, S: BuildHasher> ShrinkIfSparse for HashSet<T, S> {
    fn shrink_if_sparse(&mut self) {
        if sparse(self.len(), self.capacity()) {
            self.shrink_to_fit();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_map_emptied_after_a_burst_gives_its_table_back() {
        let mut map: HashMap<u32, u32> = (0..10_000).map(|i| (i, i)).collect();
        let burst = map.capacity();
        let drain = |map: &mut HashMap<u32, u32>, keys: std::ops::Range<u32>| {
            for i in keys {
                map.remove(&i);
                map.shrink_if_sparse();
            }
        };
        drain(&mut map, 0..8_000);
        // (`capacity` counts the slots still free for inserts: removals leave some unusable.)
        assert!(
            map.capacity() > burst / 2,
            "an eighth or more still in use: kept"
        );
        drain(&mut map, 8_000..9_000);
        assert!(
            map.capacity() < burst / 4,
            "{} slots left for {} entries",
            map.capacity(),
            map.len()
        );
        let mut small: HashSet<u32> = (0..100).collect();
        small.clear();
        small.shrink_if_sparse();
        assert!(small.capacity() >= 100, "small tables are left alone");
    }
}
