//! When a finalizer may go without the cloud resource being released, for every kind.
//!
//! The finalizer is removed without a release only when:
//! - the cloud resource is confirmed gone (the kind's cleanup says so);
//! - `deletionPolicy: Retain`;
//! - the user set the annotation `db.alicloud.dev/abandon: "true"`;
//! - another object manages the resource (`AlreadyManaged`: releasing it would pull it from
//!   under that object);
//! - credentials stayed unusable (Secret gone or incomplete, key rejected) through
//!   `--deletion-timeout` of the operator's own attempts, counted from its first failed attempt
//!   (not from the deletion timestamp: an operator that was down for a while does not give up
//!   at its first try), so that a namespace deleted together with its credentials Secret by
//!   other means than the operator's protection never hangs.
//!
//! Every other failure (a refused release, a missing RAM permission, an unknown error code) is
//! retried with capped backoff for as long as it lasts, shown as `Stalled` with the cloud's
//! message, a Warning Event `DeletionBlocked`, an `error` log line naming the cloud resource and
//! the metric `alicloud_db_operator_deletion_problems_total{outcome="blocked"}` (Events are
//! refused in a terminating namespace; the log line and the metric still say it).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

use crate::sync::lock;

/// Per object (UID): since when its deletion has failed for want of usable credentials, in
/// this process's own attempts.
#[derive(Debug, Default)]
pub struct CredentialsClock(Mutex<HashMap<String, Instant>>);

impl CredentialsClock {
    /// Records a failed attempt for want of credentials; returns how long they have been
    /// unusable in this process's attempts (zero at the first one). Entries of objects not seen
    /// for `forget_after` are dropped on the way (objects whose finalizer someone else removed).
    pub fn failing_for(&self, uid: &str, forget_after: Duration) -> Duration {
        let mut map = lock(&self.0);
        let now = Instant::now();
        map.retain(|_, since| now.saturating_duration_since(*since) < forget_after);
        now.saturating_duration_since(*map.entry(uid.to_owned()).or_insert(now))
    }

    /// Forgets `uid`: its deletion succeeded or failed for another reason.
    pub fn reset(&self, uid: &str) {
        lock(&self.0).remove(uid);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn the_clock_starts_at_the_first_failed_attempt() {
        let clock = CredentialsClock::default();
        let forget = Duration::from_secs(3_600);
        assert_eq!(clock.failing_for("a", forget), Duration::ZERO);
        tokio::time::advance(Duration::from_secs(30)).await;
        assert_eq!(clock.failing_for("a", forget), Duration::from_secs(30));
        assert_eq!(clock.failing_for("b", forget), Duration::ZERO, "per object");
        clock.reset("a");
        assert_eq!(
            clock.failing_for("a", forget),
            Duration::ZERO,
            "starts over"
        );
        tokio::time::advance(Duration::from_secs(7_200)).await;
        assert_eq!(
            clock.failing_for("a", forget),
            Duration::ZERO,
            "stale entries dropped"
        );
        assert_eq!(lock(&clock.0).len(), 1);
    }
}
