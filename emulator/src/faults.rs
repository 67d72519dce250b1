//! Injected faults: error rates, added latency and one-shot failures.

use std::collections::{HashMap, VecDeque};

use axum::http::StatusCode;
use serde::Deserialize;

use crate::error::ApiError;

/// A standing fault rule for an action (or `*`), for every caller or for one account.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct FaultRule {
    /// Only calls of this account (the caller's `account_id`: a static key's AccessKeyId, or
    /// the uid of STS credentials) are affected; `None` affects every account.
    pub account_id: Option<String>,
    /// Probability 0..1 that a call fails.
    pub error_rate: f64,
    /// Error code returned.
    pub code: String,
    /// HTTP status returned.
    pub http_status: u16,
    /// Latency added to every call, ms.
    pub latency_ms: u64,
}

impl Default for FaultRule {
    fn default() -> Self {
        Self {
            account_id: None,
            error_rate: 0.0,
            code: "ServiceUnavailable".into(),
            http_status: 503,
            latency_ms: 0,
        }
    }
}

/// Body of `POST /_emulator/faults/{action}/once`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct OneShot {
    /// Error code returned.
    pub code: String,
    /// HTTP status returned.
    pub http_status: u16,
    /// Number of following calls that fail.
    pub count: u32,
}

impl Default for OneShot {
    fn default() -> Self {
        Self {
            code: "InternalError".into(),
            http_status: 500,
            count: 1,
        }
    }
}

/// What to do with one call.
#[derive(Debug, Default)]
pub struct FaultDecision {
    /// Added latency, ms.
    pub latency_ms: u64,
    /// Injected error, if any.
    pub error: Option<ApiError>,
}

/// All configured faults.
#[derive(Debug, Default)]
pub struct Faults {
    /// Standing rules by (action or `*`, account or every account).
    rules: HashMap<(String, Option<String>), FaultRule>,
    once: HashMap<String, VecDeque<(String, u16)>>,
}

/// Builds the injected error.
fn injected(code: &str, status: u16) -> ApiError {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
    ApiError::new(
        status,
        code,
        "The request processing has failed due to some unknown error, exception or failure. (injected by alicloud-emulator)",
    )
}

/// The standing rule a call of `action` by `account_id` follows: the most specific one of action
/// and account, `*` and account, action, `*`.
fn rule_for<'a>(
    rules: &'a HashMap<(String, Option<String>), FaultRule>,
    action: &str,
    account_id: &str,
) -> Option<&'a FaultRule> {
    let account = Some(account_id.to_string());
    [
        (action, account.clone()),
        ("*", account),
        (action, None),
        ("*", None),
    ]
    .into_iter()
    .find_map(|(a, acc)| rules.get(&(a.to_string(), acc)))
}

impl Faults {
    /// Sets the standing rule of an action (or `*`) for the rule's account (or every account),
    /// replacing the rule of the same action and account.
    pub fn set_rule(&mut self, action: &str, rule: FaultRule) {
        let key = (action.to_string(), rule.account_id.clone());
        self.rules.insert(key, rule);
    }

    /// Queues one-shot failures for an action (or `*`).
    pub fn push_once(&mut self, action: &str, shot: &OneShot) {
        let queue = self.once.entry(action.to_string()).or_default();
        for _ in 0..shot.count {
            queue.push_back((shot.code.clone(), shot.http_status));
        }
    }

    /// Removes every rule and queued failure.
    pub fn clear(&mut self) {
        self.rules.clear();
        self.once.clear();
    }

    /// Decides the fault for one call of `action` by the account `account_id`.
    pub fn decide(&mut self, action: &str, account_id: &str) -> FaultDecision {
        let rule = rule_for(&self.rules, action, account_id);
        let mut decision = FaultDecision {
            latency_ms: rule.map_or(0, |r| r.latency_ms),
            error: None,
        };
        for key in [action, "*"] {
            if let Some(queue) = self.once.get_mut(key)
                && let Some((code, status)) = queue.pop_front()
            {
                decision.error = Some(injected(&code, status));
                return decision;
            }
        }
        if let Some(rule) = rule
            && rule.error_rate > 0.0
            && rand::random::<f64>() < rule.error_rate
        {
            decision.error = Some(injected(&rule.code, rule.http_status));
        }
        decision
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(account_id: Option<&str>, latency_ms: u64, error_rate: f64) -> FaultRule {
        FaultRule {
            account_id: account_id.map(str::to_owned),
            latency_ms,
            error_rate,
            ..FaultRule::default()
        }
    }

    #[test]
    fn an_account_rule_slows_only_that_accounts_calls() {
        let mut faults = Faults::default();
        faults.set_rule("*", rule(Some("slow"), 20_000, 0.0));
        assert_eq!(
            faults.decide("DescribeBackupPlanList", "slow").latency_ms,
            20_000
        );
        assert_eq!(faults.decide("CreateBackupPlan", "slow").latency_ms, 20_000);
        assert_eq!(
            faults.decide("DescribeBackupPlanList", "other").latency_ms,
            0
        );
    }

    #[test]
    fn an_account_rule_fails_only_that_accounts_calls() {
        let mut faults = Faults::default();
        faults.set_rule("DescribeBackupPlanList", rule(Some("bad"), 0, 1.0));
        let failed = faults.decide("DescribeBackupPlanList", "bad").error;
        assert_eq!(
            failed.map(|e| e.code).as_deref(),
            Some("ServiceUnavailable")
        );
        assert!(
            faults
                .decide("DescribeBackupPlanList", "good")
                .error
                .is_none()
        );
        assert!(faults.decide("CreateBackupPlan", "bad").error.is_none());
    }

    #[test]
    fn the_most_specific_rule_wins() {
        let mut faults = Faults::default();
        faults.set_rule("*", rule(None, 1, 0.0));
        faults.set_rule("Act", rule(None, 2, 0.0));
        faults.set_rule("*", rule(Some("a"), 3, 0.0));
        faults.set_rule("Act", rule(Some("a"), 4, 0.0));
        assert_eq!(
            faults.decide("Act", "a").latency_ms,
            4,
            "action and account"
        );
        assert_eq!(faults.decide("Other", "a").latency_ms, 3, "* and account");
        assert_eq!(faults.decide("Act", "b").latency_ms, 2, "action");
        assert_eq!(faults.decide("Other", "b").latency_ms, 1, "*");
        // An account's rule with no error rate still overrides the shared one's error rate.
        faults.set_rule("Act", rule(None, 0, 1.0));
        assert!(faults.decide("Act", "a").error.is_none());
        assert!(faults.decide("Act", "b").error.is_some());
    }

    #[test]
    fn a_rule_replaces_only_the_rule_of_its_action_and_account() {
        let mut faults = Faults::default();
        faults.set_rule("Act", rule(Some("a"), 5, 0.0));
        faults.set_rule("Act", rule(None, 7, 0.0));
        faults.set_rule("Act", rule(Some("a"), 9, 0.0));
        assert_eq!(faults.decide("Act", "a").latency_ms, 9);
        assert_eq!(faults.decide("Act", "b").latency_ms, 7);
        faults.clear();
        assert_eq!(faults.decide("Act", "a").latency_ms, 0);
    }
}
