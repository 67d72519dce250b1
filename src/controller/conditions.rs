//! `Ready`, `Reconciling` and `Stalled` conditions per the Kubernetes API conventions.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;

/// Condition type: the cloud resource matches the spec.
pub const READY: &str = "Ready";
/// Condition type: the operator is working towards the spec.
pub const RECONCILING: &str = "Reconciling";
/// Condition type: progress needs a change by the user.
pub const STALLED: &str = "Stalled";

/// Where an object stands, as one of three mutually exclusive summaries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Ready=True.
    Ready { reason: String, message: String },
    /// Ready=False, Reconciling=True.
    Reconciling { reason: String, message: String },
    /// Ready=False, Stalled=True.
    Stalled { reason: String, message: String },
}

impl Phase {
    /// The CamelCase reason of the phase.
    pub fn reason(&self) -> &str {
        match self {
            Self::Ready { reason, .. }
            | Self::Reconciling { reason, .. }
            | Self::Stalled { reason, .. } => reason,
        }
    }

    /// The human message of the phase.
    pub fn message(&self) -> &str {
        match self {
            Self::Ready { message, .. }
            | Self::Reconciling { message, .. }
            | Self::Stalled { message, .. } => message,
        }
    }
}

/// The three conditions for `phase`, keeping `lastTransitionTime` of conditions whose status
/// did not change. Pure: `now` is an argument.
pub fn conditions_for(
    phase: &Phase,
    generation: Option<i64>,
    previous: &[Condition],
    now: Timestamp,
) -> Vec<Condition> {
    let (ready, reconciling, stalled) = match phase {
        Phase::Ready { .. } => (true, false, false),
        Phase::Reconciling { .. } => (false, true, false),
        Phase::Stalled { .. } => (false, false, true),
    };
    let reason = phase.reason();
    let message = phase.message();
    let make = |type_: &str, on: bool, reason: &str, message: &str| {
        let status = if on { "True" } else { "False" };
        let last_transition_time = previous
            .iter()
            .find(|c| c.type_ == type_ && c.status == status)
            .map(|c| c.last_transition_time.clone())
            .unwrap_or_else(|| Time(now));
        Condition {
            type_: type_.to_owned(),
            status: status.to_owned(),
            reason: reason.to_owned(),
            message: message.to_owned(),
            observed_generation: generation,
            last_transition_time,
        }
    };
    vec![
        make(READY, ready, reason, message),
        if reconciling {
            make(RECONCILING, true, reason, message)
        } else {
            make(RECONCILING, false, "Idle", "")
        },
        if stalled {
            make(STALLED, true, reason, message)
        } else {
            make(STALLED, false, "Progressing", "")
        },
    ]
}

/// Whether the Ready condition changed status or reason between `previous` and `next`: the
/// moment to record one Event.
pub fn is_transition(previous: &[Condition], next: &[Condition]) -> bool {
    let find = |cs: &[Condition]| {
        cs.iter()
            .find(|c| c.type_ == READY)
            .map(|c| (c.status.clone(), c.reason.clone()))
    };
    find(previous) != find(next)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: i64) -> Timestamp {
        Timestamp::from_second(s).expect("valid timestamp")
    }

    #[test]
    fn ready_phase_sets_ready_true_and_others_false() {
        let phase = Phase::Ready {
            reason: "Available".into(),
            message: "plan running".into(),
        };
        let cs = conditions_for(&phase, Some(3), &[], ts(100));
        assert_eq!(cs.len(), 3);
        assert_eq!(cs[0].type_, READY);
        assert_eq!(cs[0].status, "True");
        assert_eq!(cs[1].status, "False");
        assert_eq!(cs[2].status, "False");
        assert!(cs.iter().all(|c| c.observed_generation == Some(3)));
    }

    #[test]
    fn unchanged_status_keeps_last_transition_time() {
        let phase = Phase::Reconciling {
            reason: "Creating".into(),
            message: String::new(),
        };
        let first = conditions_for(&phase, Some(1), &[], ts(100));
        let second = conditions_for(&phase, Some(2), &first, ts(200));
        assert_eq!(second[0].last_transition_time, Time(ts(100)));
        let ready = Phase::Ready {
            reason: "Available".into(),
            message: String::new(),
        };
        let third = conditions_for(&ready, Some(2), &second, ts(300));
        assert_eq!(third[0].last_transition_time, Time(ts(300)));
        assert!(is_transition(&second, &third));
        assert!(!is_transition(&first, &second));
    }
}
