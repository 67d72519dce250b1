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
    /// When not empty, a failing call draws one of these failures (by weight) instead of
    /// `code`/`http_status`.
    pub mix: Vec<MixedFailure>,
}

impl Default for FaultRule {
    fn default() -> Self {
        Self {
            account_id: None,
            error_rate: 0.0,
            code: "ServiceUnavailable".into(),
            http_status: 503,
            latency_ms: 0,
            mix: Vec::new(),
        }
    }
}

/// One failure of a rule's `mix`: an error answer, or (with `timeout_ms`) no timely answer.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct MixedFailure {
    /// Error code returned (ignored for a timeout).
    pub code: String,
    /// HTTP status returned (ignored for a timeout).
    pub http_status: u16,
    /// Relative weight of this failure in the draw (0 never drawn).
    pub weight: u32,
    /// A timeout: the call is held this long before the emulator answers 504 `Timeout`; set it
    /// longer than the client's deadline so the client gives up first.
    pub timeout_ms: Option<u64>,
    /// With `timeout_ms`: the action is carried out before the answer is withheld (the answer
    /// is lost, not the request).
    pub after_work: bool,
}

impl Default for MixedFailure {
    fn default() -> Self {
        Self {
            code: "ServiceUnavailable".into(),
            http_status: 503,
            weight: 1,
            timeout_ms: None,
            after_work: false,
        }
    }
}

/// A call held without a timely answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeout {
    /// How long the call is held before the 504 answer, ms.
    pub hold_ms: u64,
    /// Whether the action is carried out first.
    pub after_work: bool,
}

impl Timeout {
    /// The 504 answer sent once the hold is over (if the client still listens).
    pub fn error() -> ApiError {
        ApiError::new(
            StatusCode::GATEWAY_TIMEOUT,
            TIMEOUT_CODE,
            "The request has timed out. (injected by alicloud-emulator)",
        )
    }
}

/// The call log's outcome of an injected timeout.
pub const TIMEOUT_CODE: &str = "Timeout";

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
    /// Injected timeout, if any (then `error` is `None`).
    pub timeout: Option<Timeout>,
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
            timeout: None,
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
            match draw(&rule.mix) {
                None => decision.error = Some(injected(&rule.code, rule.http_status)),
                Some(MixedFailure {
                    timeout_ms: Some(hold_ms),
                    after_work,
                    ..
                }) => {
                    decision.timeout = Some(Timeout {
                        hold_ms: *hold_ms,
                        after_work: *after_work,
                    });
                }
                Some(f) => decision.error = Some(injected(&f.code, f.http_status)),
            }
        }
        decision
    }
}

/// One failure of `mix` drawn by weight; `None` when the mix is empty (or all weights are 0).
fn draw(mix: &[MixedFailure]) -> Option<&MixedFailure> {
    let total: u64 = mix.iter().map(|f| u64::from(f.weight)).sum();
    if total == 0 {
        return None;
    }
    let mut pick = rand::random_range(0..total);
    mix.iter().find(|f| {
        let w = u64::from(f.weight);
        if pick < w {
            true
        } else {
            pick -= w;
            false
        }
    })
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
    fn a_mixed_rule_draws_every_failure_of_its_mix_by_weight() {
        let mut faults = Faults::default();
        let failure = |code: &str, status: u16, weight: u32| MixedFailure {
            code: code.into(),
            http_status: status,
            weight,
            ..MixedFailure::default()
        };
        faults.set_rule(
            "*",
            FaultRule {
                error_rate: 1.0,
                mix: vec![
                    failure("InternalError", 500, 1),
                    failure("Throttling.User", 400, 1),
                    failure("Never", 599, 0),
                    MixedFailure {
                        timeout_ms: Some(3_000),
                        after_work: true,
                        ..MixedFailure::default()
                    },
                ],
                ..FaultRule::default()
            },
        );
        let mut seen = HashMap::<String, u32>::new();
        for _ in 0..400 {
            let d = faults.decide("Act", "a");
            let key = match (d.error, d.timeout) {
                (Some(e), None) => format!("{} {}", e.code, e.status.as_u16()),
                (None, Some(t)) => format!("timeout {} {}", t.hold_ms, t.after_work),
                other => panic!("exactly one of error and timeout: {other:?}"),
            };
            *seen.entry(key).or_default() += 1;
        }
        let mut kinds: Vec<&str> = seen.keys().map(String::as_str).collect();
        kinds.sort_unstable();
        assert_eq!(
            kinds,
            [
                "InternalError 500",
                "Throttling.User 400",
                "timeout 3000 true"
            ]
        );
        assert!(seen.values().all(|&n| n > 60), "roughly equal: {seen:?}");
    }

    #[test]
    fn a_rule_without_a_mix_keeps_its_single_code() {
        let mut faults = Faults::default();
        faults.set_rule(
            "*",
            FaultRule {
                error_rate: 1.0,
                code: "InternalError".into(),
                http_status: 500,
                ..FaultRule::default()
            },
        );
        let d = faults.decide("Act", "a");
        assert!(d.timeout.is_none());
        assert_eq!(d.error.map(|e| e.code).as_deref(), Some("InternalError"));
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
