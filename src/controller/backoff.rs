//! Per-object exponential backoff with jitter for failed reconciles.
//!
//! Each object (keyed by UID) counts its consecutive failures; the delay before the next
//! attempt doubles per failure from `min` up to `max`, and is drawn uniformly from the upper
//! half of that value so that many objects failing together (a throttled burst, an outage) do
//! not retry in lockstep. Throttling waits longer: at least `throttled_delay`, and never less
//! than the service asked for.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use super::Error;
use crate::cloud::ErrorKind;

/// Consecutive-failure counts per object, shared by every reconcile of one controller.
#[derive(Debug)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    throttled: Duration,
    failures: Mutex<HashMap<String, u32>>,
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
    /// Backoff from `min` doubling up to `max`; after throttling at least `throttled`.
    pub fn new(min: Duration, max: Duration, throttled: Duration) -> Self {
        Self {
            min,
            max: max.max(min),
            throttled,
            failures: Mutex::new(HashMap::new()),
        }
    }

    /// Records one more failure of `key` and returns how long to wait before the next attempt.
    pub fn record_failure(&self, key: &str, kind: FailureKind) -> Duration {
        let failures = {
            let mut map = self.lock();
            let n = map.entry(key.to_owned()).or_insert(0);
            *n = n.saturating_add(1);
            *n
        };
        let schedule = Schedule {
            min: self.min,
            max: self.max,
            throttled: self.throttled,
        };
        delay(failures, schedule, kind, rand::random::<f64>())
    }

    /// Consecutive failures of `key` so far.
    #[cfg(test)]
    pub fn failures(&self, key: &str) -> u32 {
        self.lock().get(key).copied().unwrap_or(0)
    }

    /// Forgets `key`'s failures after a successful reconcile (or once the object is gone).
    pub fn reset(&self, key: &str) {
        self.lock().remove(key);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, u32>> {
        // A poisoned lock only means a panic elsewhere mid-update of a counter; the counts are
        // still usable.
        self.failures
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
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

    #[test]
    fn failures_count_per_object_and_reset() {
        let b = Backoff::new(MS(100), MS(10_000), MS(1_000));
        let first = b.record_failure("uid-a", FailureKind::default());
        assert!(first >= MS(50) && first <= MS(100), "{first:?}");
        b.record_failure("uid-a", FailureKind::default());
        let third = b.record_failure("uid-a", FailureKind::default());
        assert!(third >= MS(200) && third <= MS(400), "{third:?}");
        assert_eq!(b.failures("uid-a"), 3);
        assert_eq!(b.failures("uid-b"), 0, "other objects are not affected");
        b.reset("uid-a");
        assert_eq!(b.failures("uid-a"), 0);
    }
}
