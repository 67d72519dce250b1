//! Injected faults: error rates, added latency and one-shot failures.

use std::collections::{HashMap, VecDeque};

use axum::http::StatusCode;
use serde::Deserialize;

use crate::error::ApiError;

/// A standing fault rule for an action (or `*`).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct FaultRule {
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
    rules: HashMap<String, FaultRule>,
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

impl Faults {
    /// Sets the standing rule of an action (or `*`).
    pub fn set_rule(&mut self, action: &str, rule: FaultRule) {
        self.rules.insert(action.to_string(), rule);
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

    /// Decides the fault for one call of `action`.
    pub fn decide(&mut self, action: &str) -> FaultDecision {
        let rule = self.rules.get(action).or_else(|| self.rules.get("*"));
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
