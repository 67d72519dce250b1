//! Client-side rate limiting per (account, action), so the operator stays below Alibaba's API
//! quotas instead of collecting `Throttling.User` errors. Alibaba counts a quota per operation and
//! per account, whichever key, RAM user or STS session of the account signs: the client passes
//! the account of the credentials ([`crate::cloud::accounts`]) as the key. One bucket serves every
//! region of an account (the conservative reading: if a service counted per region too, the
//! operator would only be slower, never throttled).
//!
//! Each key has a token bucket refilled at [`PACING`] × `per_second` tokens per second holding
//! at most `burst` tokens (default 1: calls are spaced evenly, so no one-second window of the
//! service sees more than the quota, even with a few milliseconds of network jitter). A caller
//! that finds no token reserves the next one and sleeps until it is due: no error, no polling.
//! The limits hold per client (process); several operator replicas share a quota only if they
//! split it in their configuration.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// Quota used for actions without an entry in [`Quotas::per_action`]: 20 calls per second.
pub const DEFAULT_PER_SECOND: u32 = 20;

/// Fraction of the quota the limiter actually uses. The 10% headroom absorbs network jitter,
/// timer rounding and scheduling delay between a caller's token and its request reaching the
/// service: at 10/s, eleven calls would have to bunch up by more than 110 ms to land in one of
/// the service's one-second counting windows (5% left 50 ms, which the scheduling delay of a
/// loaded 2-core machine can eat).
pub const PACING: f64 = 0.9;

/// Buckets idle for this long are dropped once the map grows past [`PRUNE_THRESHOLD`].
const IDLE_EVICTION: Duration = Duration::from_secs(600);
/// Map size above which idle buckets are pruned.
const PRUNE_THRESHOLD: usize = 1024;

/// Client-side quotas, in calls per second per (account, action).
#[derive(Clone, Debug, PartialEq)]
pub struct Quotas {
    /// Quota of actions not listed in `per_action`; 0 turns limiting off.
    pub default_per_second: u32,
    /// Quota per API action name, e.g. `ReleaseInstanceConnection` → 10; 0 turns it off.
    pub per_action: HashMap<String, u32>,
    /// Tokens a bucket may save up (calls that may go out back to back); at least 1.
    pub burst: u32,
}

impl Default for Quotas {
    /// Documented defaults: `ReleaseInstanceConnection` 10/s (its published quota), every
    /// other action 20/s, burst 1.
    fn default() -> Self {
        Self {
            default_per_second: DEFAULT_PER_SECOND,
            per_action: HashMap::from([("ReleaseInstanceConnection".to_owned(), 10)]),
            burst: 1,
        }
    }
}

impl Quotas {
    /// The quota of `action` in calls per second.
    pub fn per_second(&self, action: &str) -> u32 {
        self.per_action
            .get(action)
            .copied()
            .unwrap_or(self.default_per_second)
    }

    /// The same quotas with `action` set to `per_second`.
    pub fn with(mut self, action: &str, per_second: u32) -> Self {
        self.per_action.insert(action.to_owned(), per_second);
        self
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct BucketKey {
    principal: String,
    action: String,
}

#[derive(Debug)]
struct Bucket {
    /// Tokens available at `updated`; negative when callers have reserved future tokens.
    tokens: f64,
    updated: Instant,
}

/// Token-bucket rate limiter shared by every call of one client.
#[derive(Debug)]
pub struct RateLimiter {
    quotas: Quotas,
    buckets: Mutex<HashMap<BucketKey, Bucket>>,
}

impl RateLimiter {
    /// A limiter enforcing `quotas`.
    pub fn new(quotas: Quotas) -> Self {
        Self {
            quotas,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// The quotas this limiter enforces.
    pub fn quotas(&self) -> &Quotas {
        &self.quotas
    }

    /// Waits until one call of `action` counted against `principal` (an account) may go out.
    pub async fn acquire(&self, principal: &str, action: &str) {
        let wait = self.reserve(principal, action, Instant::now());
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }

    /// Takes a token (possibly one not yet refilled) without waiting for it: how long until it
    /// is due. A caller that books turns ahead uses a limiter of its own for the bookings, so
    /// that the call itself, paced by [`RateLimiter::acquire`], does not count twice.
    pub fn book(&self, principal: &str, action: &str) -> Duration {
        self.reserve(principal, action, Instant::now())
    }

    /// How long a call of `action` counted against `principal` would wait for its token if it
    /// were made now, without taking one: the calls already waiting ahead of it, at the pace.
    pub fn backlog(&self, principal: &str, action: &str) -> Duration {
        self.wait_for_token(principal, action, Instant::now(), false)
    }

    /// Takes a token (possibly one not yet refilled) and returns how long to wait for it.
    fn reserve(&self, principal: &str, action: &str, now: Instant) -> Duration {
        self.wait_for_token(principal, action, now, true)
    }

    /// How long a call made at `now` waits for its token; with `take`, it takes it (a caller
    /// beyond the quota reserves one not yet refilled, so the next waits longer).
    fn wait_for_token(&self, principal: &str, action: &str, now: Instant, take: bool) -> Duration {
        let per_second = self.quotas.per_second(action);
        if per_second == 0 {
            // A zero quota means "unlimited": the user turned the limiter off for this action.
            return Duration::ZERO;
        }
        let rate = f64::from(per_second) * PACING;
        let burst = f64::from(self.quotas.burst.max(1));
        let key = BucketKey {
            principal: principal.to_owned(),
            action: action.to_owned(),
        };
        let mut buckets = crate::sync::lock(&self.buckets);
        if take && buckets.len() > PRUNE_THRESHOLD {
            buckets.retain(|_, b| now.saturating_duration_since(b.updated) < IDLE_EVICTION);
        }
        let available = buckets.get(&key).map_or(burst, |b| {
            let elapsed = now.saturating_duration_since(b.updated).as_secs_f64();
            (b.tokens + elapsed * rate).min(burst)
        });
        let left = available - 1.0;
        if take {
            buckets.insert(
                key,
                Bucket {
                    tokens: left,
                    updated: now,
                },
            );
        }
        if left >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-left / rate)
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    fn quotas(per_second: u32) -> Quotas {
        Quotas {
            default_per_second: per_second,
            per_action: HashMap::new(),
            burst: 1,
        }
    }

    /// Spacing of calls under a quota of `per_second`.
    fn interval(per_second: u32) -> Duration {
        Duration::from_secs_f64(1.0 / (f64::from(per_second) * PACING))
    }

    /// Equal up to the timer's millisecond rounding.
    fn assert_near(actual: Duration, expected: Duration) {
        let diff = actual.abs_diff(expected);
        assert!(
            diff <= Duration::from_millis(2),
            "{actual:?} vs {expected:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn calls_beyond_the_quota_wait_instead_of_failing() {
        let limiter = Arc::new(RateLimiter::new(quotas(10)));
        let start = Instant::now();
        let mut tasks = Vec::new();
        for _ in 0..20 {
            let l = limiter.clone();
            tasks.push(tokio::spawn(async move {
                l.acquire("ak", "DescribeBackupPlanList").await;
                Instant::now()
            }));
        }
        let mut times = Vec::new();
        for t in tasks {
            times.push(t.await.unwrap() - start);
        }
        times.sort();
        // Evenly spaced at 1/(0.9 × 10) s: the 20th call goes out 19/9 s (2.111 s) after the
        // first.
        assert_eq!(times[0], Duration::ZERO);
        assert!(times[19] >= Duration::from_millis(2106), "{:?}", times[19]);
        assert!(times[19] <= Duration::from_millis(2116), "{:?}", times[19]);
        // No one-second window holds more than 10 starts.
        for (i, t) in times.iter().enumerate() {
            let in_window = times[i..]
                .iter()
                .filter(|u| **u - *t < Duration::from_secs(1))
                .count();
            assert!(in_window <= 10, "window starting at {t:?} has {in_window}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn buckets_are_per_principal_and_action() {
        let limiter = RateLimiter::new(quotas(1));
        let start = Instant::now();
        limiter.acquire("account:1", "A").await;
        limiter.acquire("account:2", "A").await;
        limiter.acquire("account:1", "B").await;
        assert_eq!(Instant::now() - start, Duration::ZERO);
        limiter.acquire("account:1", "A").await;
        assert_near(Instant::now() - start, interval(1));
    }

    #[tokio::test(start_paused = true)]
    async fn per_action_quota_overrides_the_default() {
        let limiter = RateLimiter::new(quotas(1000).with("ReleaseInstanceConnection", 10));
        let start = Instant::now();
        for _ in 0..5 {
            limiter.acquire("ak", "ReleaseInstanceConnection").await;
        }
        assert_near(Instant::now() - start, interval(10) * 4);
    }

    #[tokio::test(start_paused = true)]
    async fn burst_allows_saved_up_tokens_back_to_back() {
        let limiter = RateLimiter::new(Quotas {
            burst: 5,
            ..quotas(10)
        });
        let start = Instant::now();
        for _ in 0..5 {
            limiter.acquire("ak", "A").await;
        }
        assert_eq!(Instant::now() - start, Duration::ZERO);
        limiter.acquire("ak", "A").await;
        assert_near(Instant::now() - start, interval(10));
    }

    #[tokio::test(start_paused = true)]
    async fn the_backlog_is_the_wait_of_a_call_made_now_and_takes_no_token() {
        let limiter = RateLimiter::new(quotas(10));
        assert_eq!(limiter.backlog("ak", "A"), Duration::ZERO, "no call yet");
        // Five calls booked at once: the first goes now, the last after four intervals.
        for _ in 0..5 {
            limiter.book("ak", "A");
        }
        assert_near(limiter.backlog("ak", "A"), interval(10) * 5);
        assert_near(limiter.backlog("ak", "A"), interval(10) * 5);
        assert_eq!(limiter.backlog("ak", "B"), Duration::ZERO, "another action");
        tokio::time::advance(interval(10) * 2).await;
        assert_near(limiter.backlog("ak", "A"), interval(10) * 3);
        tokio::time::advance(interval(10) * 10).await;
        assert_eq!(limiter.backlog("ak", "A"), Duration::ZERO, "drained");
        assert_eq!(
            RateLimiter::new(quotas(0)).backlog("ak", "A"),
            Duration::ZERO
        );
    }

    #[test]
    fn documented_defaults() {
        let q = Quotas::default();
        assert_eq!(q.per_second("ReleaseInstanceConnection"), 10);
        assert_eq!(q.per_second("DescribeBackupPlanList"), 20);
        assert_eq!(q.burst, 1);
    }

    #[test]
    fn zero_quota_disables_limiting() {
        let limiter = RateLimiter::new(quotas(0));
        let now = Instant::now();
        for _ in 0..100 {
            assert_eq!(limiter.reserve("ak", "A", now), Duration::ZERO);
        }
    }

    #[test]
    fn idle_buckets_are_pruned() {
        let limiter = RateLimiter::new(quotas(10));
        let t0 = Instant::now();
        for i in 0..=PRUNE_THRESHOLD {
            limiter.reserve(&format!("ak{i}"), "A", t0);
        }
        limiter.reserve("fresh", "A", t0 + IDLE_EVICTION + Duration::from_secs(1));
        assert_eq!(limiter.buckets.lock().unwrap().len(), 1);
    }
}
