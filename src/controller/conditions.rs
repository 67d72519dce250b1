//! The phase model every kind reports: `Ready`, `Reconciling` and `Stalled` conditions per the
//! Kubernetes API conventions, each with `observedGeneration`.
//!
//! Reasons are typed per kind (an enum rendered to the CamelCase word users see) or come from
//! [`Error::reason`]; a [`Phase`] carries the rendered word.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;
use kube::runtime::events::EventType;

use super::Error;

/// Condition type: the cloud resource matches the spec.
pub const READY: &str = "Ready";
/// Condition type: the operator is working towards the spec.
pub const RECONCILING: &str = "Reconciling";
/// Condition type: progress needs a change by the user.
pub const STALLED: &str = "Stalled";

/// Declares a kind's reason enum; each variant renders as its own name, the CamelCase word
/// conditions and Events show.
macro_rules! reasons {
    ($(#[$meta:meta])* $vis:vis enum $name:ident {
        $($(#[$variant_meta:meta])* $variant:ident),+ $(,)?
    }) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        $vis enum $name {
            $($(#[$variant_meta])* $variant),+
        }

        impl $name {
            /// The CamelCase word conditions and Events show.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => stringify!($variant)),+
                }
            }
        }

        impl From<$name> for &'static str {
            fn from(reason: $name) -> Self {
                reason.as_str()
            }
        }
    };
}
pub(crate) use reasons;

/// Which of the three mutually exclusive summaries an object is in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    /// Ready=True.
    Ready,
    /// Ready=False, Reconciling=True: the operator is working towards the spec.
    Reconciling,
    /// Ready=False, Stalled=True: progress needs a change by the user.
    Stalled,
}

/// Where an object stands: a [`State`], a CamelCase reason and a message for the user.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Phase {
    /// Which summary.
    pub state: State,
    /// CamelCase reason.
    pub reason: &'static str,
    /// What the user should know (and, when stalled, change).
    pub message: String,
}

impl Phase {
    /// A phase in `state`.
    pub fn new(state: State, reason: impl Into<&'static str>, message: impl Into<String>) -> Self {
        Self {
            state,
            reason: reason.into(),
            message: message.into(),
        }
    }

    /// `Ready` with `reason`.
    pub fn ready(reason: impl Into<&'static str>, message: impl Into<String>) -> Self {
        Self::new(State::Ready, reason, message)
    }

    /// `Reconciling` with `reason`.
    pub fn reconciling(reason: impl Into<&'static str>, message: impl Into<String>) -> Self {
        Self::new(State::Reconciling, reason, message)
    }

    /// `Stalled` with `reason`.
    pub fn stalled(reason: impl Into<&'static str>, message: impl Into<String>) -> Self {
        Self::new(State::Stalled, reason, message)
    }

    /// The phase a failed reconcile leaves the object in: `Stalled` when only the user can fix
    /// it, `Reconciling` while it is retried.
    pub fn of_error(error: &Error) -> Self {
        if error.is_stalled() {
            Self::stalled(error.reason(), error.user_message())
        } else {
            Self::reconciling(
                error.reason(),
                format!("retrying: {}", error.user_message()),
            )
        }
    }

    /// The type of the Event announcing a transition to this phase.
    pub fn event_type(&self) -> EventType {
        match self.state {
            State::Stalled => EventType::Warning,
            State::Ready | State::Reconciling => EventType::Normal,
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
    let (ready, reconciling, stalled) = match phase.state {
        State::Ready => (true, false, false),
        State::Reconciling => (false, true, false),
        State::Stalled => (false, false, true),
    };
    let (reason, message) = (phase.reason, phase.message.as_str());
    let make = |type_: &str, on: bool, reason: &str, message: &str| {
        let status = if on { "True" } else { "False" };
        let last_transition_time = previous
            .iter()
            .find(|c| c.type_ == type_ && c.status == status)
            .map_or_else(|| Time(now), |c| c.last_transition_time.clone());
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

/// Whether `conditions` say Ready=True.
pub fn is_ready(conditions: &[Condition]) -> bool {
    conditions
        .iter()
        .any(|c| c.type_ == READY && c.status == "True")
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
        let phase = Phase::ready("Available", "plan running");
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
        let phase = Phase::reconciling("Creating", "");
        let first = conditions_for(&phase, Some(1), &[], ts(100));
        let second = conditions_for(&phase, Some(2), &first, ts(200));
        assert_eq!(second[0].last_transition_time, Time(ts(100)));
        let ready = Phase::ready("Available", "");
        let third = conditions_for(&ready, Some(2), &second, ts(300));
        assert_eq!(third[0].last_transition_time, Time(ts(300)));
        assert!(is_transition(&second, &third));
        assert!(!is_transition(&first, &second));
    }
}
