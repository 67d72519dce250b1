//! Per-(account, action) request quotas with a fixed one-second window.

use std::collections::HashMap;

/// Default requests per second for actions without a documented quota.
pub const DEFAULT_PER_SECOND: u32 = 100;
/// Documented quota of ReleaseInstanceConnection (10/1s).
pub const RELEASE_INSTANCE_CONNECTION_PER_SECOND: u32 = 10;

/// Quota limits and the current counting windows.
#[derive(Debug)]
pub struct Quotas {
    limits: HashMap<String, u32>,
    windows: HashMap<(String, String), (i64, u32)>,
}

impl Quotas {
    /// Builds the limits: documented defaults overlaid with `overrides`
    /// (`*` replaces the generic default).
    pub fn new(overrides: &HashMap<String, u32>) -> Self {
        let mut limits = HashMap::new();
        limits.insert(
            "ReleaseInstanceConnection".to_string(),
            RELEASE_INSTANCE_CONNECTION_PER_SECOND,
        );
        limits.insert("*".to_string(), DEFAULT_PER_SECOND);
        limits.extend(overrides.iter().map(|(k, v)| (k.clone(), *v)));
        Self {
            limits,
            windows: HashMap::new(),
        }
    }

    /// Sets the per-second limit of an action (or `*`).
    pub fn set(&mut self, action: &str, per_second: u32) {
        self.limits.insert(action.to_string(), per_second);
    }

    /// Limit that applies to `action`.
    fn limit(&self, action: &str) -> u32 {
        self.limits
            .get(action)
            .or_else(|| self.limits.get("*"))
            .copied()
            .unwrap_or(DEFAULT_PER_SECOND)
    }

    /// Counts one request; false when the quota of this second is used up.
    pub fn admit(&mut self, account: &str, action: &str, now_ms: i64) -> bool {
        let limit = self.limit(action);
        let second = now_ms.div_euclid(1000);
        if self.windows.len() > 10_000 {
            self.windows.retain(|_, (s, _)| *s == second);
        }
        let entry = self
            .windows
            .entry((account.to_string(), action.to_string()))
            .or_insert((second, 0));
        if entry.0 != second {
            *entry = (second, 0);
        }
        if entry.1 >= limit {
            return false;
        }
        entry.1 += 1;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_resets_each_second() {
        let mut q = Quotas::new(&HashMap::from([("A".to_string(), 2)]));
        assert!(q.admit("acc", "A", 1000));
        assert!(q.admit("acc", "A", 1500));
        assert!(!q.admit("acc", "A", 1999));
        assert!(q.admit("other", "A", 1999));
        assert!(q.admit("acc", "A", 2000));
    }

    #[test]
    fn release_instance_connection_defaults_to_ten() {
        let mut q = Quotas::new(&HashMap::new());
        for _ in 0..10 {
            assert!(q.admit("a", "ReleaseInstanceConnection", 0));
        }
        assert!(!q.admit("a", "ReleaseInstanceConnection", 0));
    }
}
