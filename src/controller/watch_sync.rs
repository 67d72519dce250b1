//! Which controllers' caches have finished their first list: `/readyz` waits for all of them.

use std::collections::BTreeMap;
use std::sync::Mutex;

/// The caches the process expects, and which of them are synced.
#[derive(Debug, Default)]
pub struct WatchSync {
    caches: Mutex<BTreeMap<&'static str, bool>>,
}

impl WatchSync {
    /// Expects the cache `name` to sync before the process is ready.
    pub fn expect(&self, name: &'static str) {
        crate::sync::lock(&self.caches).entry(name).or_insert(false);
    }

    /// Records that the cache `name` finished its first list.
    pub fn synced(&self, name: &'static str) {
        crate::sync::lock(&self.caches).insert(name, true);
        tracing::debug!(cache = name, "cache synced");
    }

    /// The expected caches not synced yet.
    pub fn pending(&self) -> Vec<&'static str> {
        crate::sync::lock(&self.caches)
            .iter()
            .filter(|(_, synced)| !**synced)
            .map(|(name, _)| *name)
            .collect()
    }
}
