//! Turns under the account's quota, booked ahead so that a reconcile with a long wait before its
//! call lets go of its worker.
//!
//! The cloud client paces every call at the account's quota; a caller beyond it sleeps until
//! its token is due. Inside a reconcile that sleep holds one of the controller's workers: when
//! 1,000 objects are created at once, the creates waiting for their turn (up to 55 s at 18/s)
//! fill every worker, and the configures of the plans created 5 s before wait for a worker
//! instead of for their own quota, so both actions run below it. Measured at 1,000 BackupPlans
//! (`cargo xtask bench`): with 32 workers CreateBackupPlan ran at 10 to 16 calls per second
//! instead of 18; with 256 workers the creates kept pace and the configures fell behind.
//!
//! So a reconcile about to make a paced call books its turn first ([`DbsApi::turn`], a queue of
//! bookings per account and action at the same pace as the calls). When the turn is further
//! off than [`HOLD`], the object is requeued for it and the worker serves others; when it comes
//! back, it finds its booking and goes ahead. Bookings are first come, first served, and live
//! only in memory: after a restart objects book again. The call itself still takes its token
//! when it is sent, so turns never let calls bunch above the quota, whatever the scheduler does.
//!
//! [`DbsApi::turn`]: crate::cloud::DbsApi::turn

use std::collections::HashMap;
use std::future::Future;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

use crate::sync::{ShrinkIfSparse as _, lock};

/// The longest wait for a turn a reconcile sits out in its worker; beyond it the object is
/// requeued for its turn. Above [`LEAD`], so that an object back for its turn goes ahead.
pub const HOLD: Duration = Duration::from_millis(1200);

/// How much before its turn an object is requeued: enough for the reconcile to reach its call
/// before the turn (it then waits the rest in the client's limiter, which paces the calls), so
/// that the reconcile's own time (its API reads and writes: under the load of 1,000 creations on
/// 2 cores, a metadata patch took 150 ms on average and stalls of the API server lasted up to
/// 0.8 s) does not delay the call. A call that comes late leaves its slot unused: the limiter
/// saves up no calls (burst 1), so late calls bring the rate below the quota. Measured
/// (`cargo xtask bench`, 1,000 plans, gaps between creates beyond the limiter's 56 ms): 0.3 s
/// lost 4.4 to 8.9 s over the creation; 1 s lost 0.7 to 3.3 s. Waiting in the limiter holds
/// a worker for up to a second per paced call, hence the default of 64 workers
/// (`--concurrency`): with 32, 1 s lost 10.9 s. With 64 every worker is busy throughout the
/// creation (with 128, about 80 were, and 0.7 s was lost, but at 10,000 plans the operator
/// kept 7 MiB more memory).
pub const LEAD: Duration = Duration::from_millis(1000);

/// Bookings kept past their due time (for objects that never came back for them, e.g. because
/// their step changed) are dropped after this long, once there are many.
const STALE_AFTER: Duration = Duration::from_secs(600);
/// Number of bookings above which stale ones are dropped.
const PRUNE_THRESHOLD: usize = 1024;

/// One object's booked turn.
struct Turn {
    action: &'static str,
    due: Instant,
}

/// The turns booked per object (UID).
#[derive(Default)]
pub struct Turns(Mutex<HashMap<String, Turn>>);

impl Turns {
    /// Whether object `uid` must wait for its turn for `action`: `Some(wait)` when the turn is
    /// more than [`HOLD`] away (requeue the object after `wait`, [`LEAD`] before the turn),
    /// `None` when it may go ahead now. An object without a booking for `action` books one with
    /// `book`; a booking is used up by going ahead.
    pub async fn wait<F, Fut>(&self, uid: &str, action: &'static str, book: F) -> Option<Duration>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Duration>,
    {
        {
            let mut turns = lock(&self.0);
            if let Some(turn) = turns.get(uid).filter(|t| t.action == action) {
                let left = turn.due.saturating_duration_since(Instant::now());
                if left > HOLD {
                    return Some(left - LEAD);
                }
                turns.remove(uid);
                turns.shrink_if_sparse();
                return None;
            }
        }
        let booked = Instant::now();
        let wait = book().await;
        if wait <= HOLD {
            let mut turns = lock(&self.0);
            turns.remove(uid);
            turns.shrink_if_sparse();
            return None;
        }
        let mut turns = lock(&self.0);
        if turns.len() > PRUNE_THRESHOLD {
            let now = Instant::now();
            turns.retain(|_, t| now.saturating_duration_since(t.due) < STALE_AFTER);
        }
        turns.insert(
            uid.to_owned(),
            Turn {
                action,
                due: booked + wait,
            },
        );
        Some(wait - LEAD)
    }

    /// Drops the booking of object `uid` (deleted).
    pub fn forget(&self, uid: &str) {
        let mut turns = lock(&self.0);
        turns.remove(uid);
        turns.shrink_if_sparse();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_near_turn_goes_ahead_at_once_and_books_nothing() {
        let turns = Turns::default();
        let wait = turns.wait("a", "Create", || async { HOLD }).await;
        assert_eq!(wait, None);
        assert!(lock(&turns.0).is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn a_far_turn_is_booked_once_and_used_when_due() {
        let turns = Turns::default();
        let books = AtomicU32::new(0);
        let book = || async {
            books.fetch_add(1, Ordering::SeqCst);
            Duration::from_secs(10)
        };
        // Requeued a little before its turn.
        let wait = turns.wait("a", "Create", book).await;
        assert_eq!(wait, Some(Duration::from_secs(10) - LEAD));
        // Back early (another event): the same booking, what is left of it.
        tokio::time::sleep(Duration::from_secs(4)).await;
        let wait = turns.wait("a", "Create", book).await;
        assert_eq!(wait, Some(Duration::from_secs(6) - LEAD));
        // Back when requeued: goes ahead, and the booking is used up.
        tokio::time::sleep(Duration::from_secs(6) - LEAD).await;
        assert_eq!(turns.wait("a", "Create", book).await, None);
        assert_eq!(books.load(Ordering::SeqCst), 1);
        assert!(lock(&turns.0).is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn a_booking_for_another_action_is_replaced() {
        let turns = Turns::default();
        turns
            .wait("a", "Create", || async { Duration::from_secs(10) })
            .await;
        let wait = turns
            .wait("a", "Configure", || async { Duration::from_secs(3) })
            .await;
        assert_eq!(wait, Some(Duration::from_secs(3) - LEAD));
        turns.forget("a");
        assert!(lock(&turns.0).is_empty());
    }
}
