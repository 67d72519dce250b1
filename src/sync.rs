//! The one poison-tolerant lock helper of the crate.

use std::sync::{Mutex, MutexGuard, PoisonError};

/// Locks `m`, recovering from poisoning: every mutex of the operator guards a cache or a
/// counter that stays usable after a panic elsewhere mid-update (at worst one entry is stale).
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}
