//! Per-object exponential backoff with jitter for failed reconciles.
//!
//! Each object (keyed by UID) counts its consecutive failures; the delay before the next
//! attempt doubles per failure from `min` up to `max`, and is drawn uniformly from the upper
//! half of that value so that many objects failing together (a throttled burst, an outage) do
//! not retry in lockstep. Throttling waits longer: at least `throttled_delay`, and never less
//! than the service asked for.
//!
//! A failed reconcile records its failure in the status, and that write triggers the next
//! reconcile at once: [`Backoff::holding`] keeps such a trigger from cutting the wait short.
//! Only a change of the spec (a new generation) or a deletion does.
//!
//! Entries are keyed by UID and dropped on success. An object that never reconciles again (deleted
//! while failing, its finalizer removed by someone else) would keep its entry forever, so each
//! recorded failure also prunes the entries whose retry time is more than the longest wait
//! ([`Schedule::max`] or [`Schedule::throttled`]) plus [`STALE_MARGIN`] in the past: a live
//! failing object is retried at its retry time and records a new one. One that ran that late
//! anyway (a long queue) merely starts counting again from the shortest delay.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use kube::{Resource, ResourceExt};
use tokio::time::Instant;

use super::{ControllerConfig, Error};
use crate::cloud::ErrorKind;
use crate::sync::{ShrinkIfSparse as _, lock};

/// How long past its retry time, beyond the longest wait, a failure entry is kept.
pub const STALE_MARGIN: Duration = Duration::from_secs(60);

/// Consecutive failures per object, shared by every reconcile of one controller.
#[derive(Debug)]
pub struct Backoff {
    schedule: Schedule,
    failures: Mutex<HashMap<String, Failures>>,
}

/// One object's consecutive failed reconciles, and when it may be tried again.
#[derive(Debug)]
struct Failures {
    count: u32,
    retry_at: Instant,
    generation: Option<i64>,
}

/// How a failure should be waited out.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FailureKind {
    /// The cloud throttled the call.
    pub throttled: bool,
    /// How long the service asked the caller to wait, if it said.
    pub retry_after: Option<Duration>,
}

impl From<&Error> for FailureKind {
    fn from(error: &Error) -> Self {
        match error {
            Error::Cloud(e) => Self {
                throttled: e.kind == ErrorKind::Throttled,
                retry_after: e.retry_after,
            },
            _ => Self::default(),
        }
    }
}

impl Backoff {
    /// Backoff with the controllers' configured delays.
    pub fn new(config: &ControllerConfig) -> Self {
        Self {
            schedule: Schedule {
                min: config.min_backoff,
                max: config.max_backoff.max(config.min_backoff),
                throttled: config.throttled_delay,
            },
            failures: Mutex::default(),
        }
    }

    /// Records one more failure of `obj` and returns how long to wait before the next attempt;
    /// drops the entries of objects that stopped reconciling (see the module documentation).
    pub fn record_failure(&self, obj: &impl Resource, kind: FailureKind) -> Duration {
        let mut map = lock(&self.failures);
        let now = Instant::now();
        let stale_after = self.schedule.max.max(self.schedule.throttled) + STALE_MARGIN;
        map.retain(|_, f| now.saturating_duration_since(f.retry_at) <= stale_after);
        let entry = map.entry(key(obj)).or_insert(Failures {
            count: 0,
            retry_at: Instant::now(),
            generation: None,
        });
        entry.count = entry.count.saturating_add(1);
        let wait = delay(entry.count, self.schedule, kind, rand::random::<f64>());
        entry.retry_at = Instant::now() + wait;
        entry.generation = obj.meta().generation;
        wait
    }

    /// How long `obj` must still wait after its last failure; `None` when it may run now (no
    /// failure, wait over, spec changed since, or deletion requested).
    pub fn holding(&self, obj: &impl Resource) -> Option<Duration> {
        let map = lock(&self.failures);
        let f = map.get(&key(obj))?;
        let meta = obj.meta();
        if f.generation != meta.generation || meta.deletion_timestamp.is_some() {
            return None;
        }
        Some(f.retry_at.saturating_duration_since(Instant::now())).filter(|d| !d.is_zero())
    }

    /// Forgets `obj`'s failures after a successful reconcile (or once the object is gone).
    pub fn reset(&self, obj: &impl Resource) {
        let mut failures = lock(&self.failures);
        failures.remove(&key(obj));
        failures.shrink_if_sparse();
    }

    /// Objects with failures on record.
    #[cfg(test)]
    fn len(&self) -> usize {
        lock(&self.failures).len()
    }

    /// Consecutive failures of `obj` so far.
    #[cfg(test)]
    fn failures(&self, obj: &impl Resource) -> u32 {
        lock(&self.failures).get(&key(obj)).map_or(0, |f| f.count)
    }
}

/// Per-object key: the UID, so a re-created object starts with a clean slate.
fn key(obj: &impl Resource) -> String {
    obj.uid().unwrap_or_else(|| obj.name_any())
}

/// The delays a [`Backoff`] works with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Schedule {
    /// Delay after the first failure.
    pub min: Duration,
    /// Cap of the doubling delay.
    pub max: Duration,
    /// Shortest wait after a `Throttling*` error.
    pub throttled: Duration,
}

/// The wait after the `failures`-th consecutive failure; `jitter` in `[0, 1]` picks a point in
/// the upper half of the exponential delay. Pure, so the schedule is table-tested.
pub fn delay(failures: u32, schedule: Schedule, kind: FailureKind, jitter: f64) -> Duration {
    let doublings = failures.saturating_sub(1).min(31);
    let base = schedule
        .min
        .saturating_mul(1u32 << doublings)
        .min(schedule.max);
    let jittered = base / 2 + base.mul_f64(jitter.clamp(0.0, 1.0) / 2.0);
    let floor = if kind.throttled {
        schedule.throttled
    } else {
        Duration::ZERO
    };
    jittered
        .max(floor)
        .max(kind.retry_after.unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: fn(u64) -> Duration = Duration::from_millis;

    #[test]
    fn delay_table() {
        let schedule = Schedule {
            min: MS(1_000),
            max: MS(300_000),
            throttled: MS(30_000),
        };
        let plain = FailureKind::default();
        let throttled = FailureKind {
            throttled: true,
            retry_after: None,
        };
        let cases = [
            ("first failure, no jitter", 1, plain, 0.0, MS(500)),
            ("first failure, full jitter", 1, plain, 1.0, MS(1_000)),
            ("second failure doubles", 2, plain, 1.0, MS(2_000)),
            ("fifth failure", 5, plain, 1.0, MS(16_000)),
            ("capped at max", 20, plain, 1.0, MS(300_000)),
            (
                "huge counts do not overflow",
                u32::MAX,
                plain,
                1.0,
                MS(300_000),
            ),
            (
                "throttled waits at least the throttled delay",
                1,
                throttled,
                0.0,
                MS(30_000),
            ),
            (
                "throttled after many failures keeps the longer backoff",
                10,
                throttled,
                1.0,
                MS(300_000),
            ),
            (
                "retry-after wins when longer",
                1,
                FailureKind {
                    throttled: true,
                    retry_after: Some(MS(45_000)),
                },
                0.0,
                MS(45_000),
            ),
        ];
        for (name, failures, kind, jitter, want) in cases {
            assert_eq!(delay(failures, schedule, kind, jitter), want, "{name}");
        }
    }

    fn object(uid: &str, generation: i64) -> k8s_openapi::api::core::v1::ConfigMap {
        let mut o = k8s_openapi::api::core::v1::ConfigMap::default();
        o.metadata.uid = Some(uid.into());
        o.metadata.generation = Some(generation);
        o
    }

    #[tokio::test(start_paused = true)]
    async fn failures_count_per_object_hold_until_due_and_reset() {
        let b = Backoff::new(&ControllerConfig {
            min_backoff: MS(100),
            max_backoff: MS(10_000),
            throttled_delay: MS(1_000),
            ..ControllerConfig::default()
        });
        let a = object("uid-a", 1);
        let first = b.record_failure(&a, FailureKind::default());
        assert!(first >= MS(50) && first <= MS(100), "{first:?}");
        b.record_failure(&a, FailureKind::default());
        let third = b.record_failure(&a, FailureKind::default());
        assert!(third >= MS(200) && third <= MS(400), "{third:?}");
        assert_eq!(b.failures(&a), 3);
        assert_eq!(
            b.failures(&object("uid-b", 1)),
            0,
            "other objects are not affected"
        );
        assert_eq!(
            b.holding(&a),
            Some(third),
            "a trigger before the wait is over waits"
        );
        assert_eq!(
            b.holding(&object("uid-a", 2)),
            None,
            "a spec change runs at once"
        );
        tokio::time::advance(third).await;
        assert_eq!(b.holding(&a), None, "due");
        b.reset(&a);
        assert_eq!(b.failures(&a), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn entries_of_objects_that_stopped_reconciling_are_pruned() {
        let b = Backoff::new(&ControllerConfig {
            min_backoff: MS(100),
            max_backoff: MS(10_000),
            throttled_delay: MS(30_000),
            ..ControllerConfig::default()
        });
        let gone = object("uid-gone", 1);
        let failing = object("uid-failing", 1);
        b.record_failure(&gone, FailureKind::default());
        b.record_failure(&failing, FailureKind::default());
        // The longest wait (the throttled delay, 30 s) plus the margin: still kept.
        tokio::time::advance(MS(30_000) + STALE_MARGIN).await;
        b.record_failure(&failing, FailureKind::default());
        assert_eq!(b.failures(&gone), 1, "not long enough past its retry time");
        assert_eq!(b.failures(&failing), 2);
        // Past it: the object that never came back is forgotten, the failing one is kept.
        tokio::time::advance(MS(1_000)).await;
        b.record_failure(&failing, FailureKind::default());
        assert_eq!(b.failures(&gone), 0, "pruned");
        assert_eq!(
            b.failures(&failing),
            3,
            "a live failing object keeps counting"
        );
        assert_eq!(b.len(), 1);
    }
}
