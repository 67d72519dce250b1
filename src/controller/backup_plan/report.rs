//! Report: the status (server-side apply, only when it changed) and Events.

use k8s_openapi::jiff::Timestamp;
use kube::Resource;
use kube::runtime::events::{Event, EventType};

use super::State;
use crate::controller::Error;
use crate::controller::conditions::{self, Phase};
use crate::crd::{BackupPlan, BackupPlanStatus};

/// The phase an error leaves the object in.
pub(super) fn error_phase(e: &Error) -> Phase {
    let (reason, message) = (e.reason().to_owned(), e.user_message());
    if e.is_stalled() {
        Phase::Stalled { reason, message }
    } else {
        Phase::Reconciling { reason, message }
    }
}

/// Reason of the conditions of a paused object.
pub(super) const PAUSED: &str = "Paused";

/// Paused keeps Ready as it was, with reason `Paused`.
pub(super) fn paused_phase(obj: &BackupPlan) -> Phase {
    let was_ready = obj
        .status
        .as_ref()
        .and_then(|s| s.conditions.iter().find(|c| c.type_ == conditions::READY))
        .is_some_and(|c| c.status == "True");
    let message = "paused by annotation db.alicloud.dev/paused; no cloud calls are made".to_owned();
    if was_ready {
        Phase::Ready {
            reason: PAUSED.into(),
            message,
        }
    } else {
        Phase::Reconciling {
            reason: PAUSED.into(),
            message,
        }
    }
}

/// Writes the status (only when it changed) and records one Event per Ready transition.
pub(super) async fn report(
    obj: &BackupPlan,
    state: &State,
    status: BackupPlanStatus,
    phase: Phase,
) -> Result<(), Error> {
    report_for(obj, state, status, phase, obj.metadata.generation, true).await
}

/// [`report`] without the transition Event, for a caller that records its own.
pub(super) async fn report_without_event(
    obj: &BackupPlan,
    state: &State,
    status: BackupPlanStatus,
    phase: Phase,
) -> Result<(), Error> {
    report_for(obj, state, status, phase, obj.metadata.generation, false).await
}

/// [`report`] for a paused object: nothing of the spec was acted upon, so the status and its
/// conditions keep the generation last acted upon (a spec change made while paused is not
/// claimed as observed).
pub(super) async fn report_paused(
    obj: &BackupPlan,
    state: &State,
    status: BackupPlanStatus,
    phase: Phase,
) -> Result<(), Error> {
    let acted = obj.status.as_ref().and_then(|s| s.observed_generation);
    report_for(obj, state, status, phase, acted, true).await
}

/// Writes the status for `generation` (only when it changed) and, with `announce`, records one
/// Event per Ready transition.
async fn report_for(
    obj: &BackupPlan,
    state: &State,
    mut status: BackupPlanStatus,
    phase: Phase,
    generation: Option<i64>,
    announce: bool,
) -> Result<(), Error> {
    let previous = obj
        .status
        .as_ref()
        .map(|s| s.conditions.clone())
        .unwrap_or_default();
    status.conditions = conditions::conditions_for(
        &phase,
        generation,
        &previous,
        whole_second(Timestamp::now()),
    );
    status.observed_generation = generation;
    if obj.status.as_ref() != Some(&status) {
        state
            .writes
            .apply_status(&state.ctx.client, obj, &status)
            .await?;
    }
    if announce && conditions::is_transition(&previous, &status.conditions) {
        let kind = match phase {
            Phase::Stalled { .. } => EventType::Warning,
            Phase::Ready { .. } | Phase::Reconciling { .. } => EventType::Normal,
        };
        publish(state, obj, kind, phase.reason(), phase.message().to_owned()).await;
    }
    Ok(())
}

/// Longest Event note the API server accepts is 1 kB.
const MAX_NOTE: usize = 1000;

/// `text` cut to at most `max` bytes on a character boundary.
fn truncate(mut text: String, max: usize) -> String {
    if text.len() > max {
        let mut end = max;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
    text
}

/// Records an Event about `obj`; a failure to record is logged, never fatal.
pub(super) async fn publish(
    state: &State,
    obj: &BackupPlan,
    type_: EventType,
    reason: &str,
    note: String,
) {
    let event = Event {
        type_,
        reason: reason.to_owned(),
        note: Some(truncate(note, MAX_NOTE)),
        action: "Reconcile".into(),
        secondary: None,
    };
    if let Err(e) = state.recorder.publish(&event, &obj.object_ref(&())).await {
        tracing::debug!(error = %e, reason, "could not record Event");
    }
}

/// `ts` truncated to the second, as the API server stores times.
pub(super) fn whole_second(ts: Timestamp) -> Timestamp {
    Timestamp::from_second(ts.as_second()).unwrap_or(ts)
}

/// `ts` rounded up to the next whole second, so a stored time is never earlier than the event.
pub(super) fn ceil_second(ts: Timestamp) -> Timestamp {
    let extra = i64::from(ts.subsec_nanosecond() > 0);
    Timestamp::from_second(ts.as_second() + extra).unwrap_or(ts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_notes_are_cut_on_a_character_boundary() {
        assert_eq!(truncate("short".into(), 10), "short");
        assert_eq!(truncate("ééé".into(), 3), "é");
        assert_eq!(truncate("x".repeat(2000), MAX_NOTE).len(), MAX_NOTE);
    }

    #[test]
    fn stored_times_round_the_right_way() {
        let t = Timestamp::from_millisecond(1_500).expect("valid");
        assert_eq!(whole_second(t).as_second(), 1);
        assert_eq!(ceil_second(t).as_second(), 2);
        let whole = Timestamp::from_second(7).expect("valid");
        assert_eq!(ceil_second(whole), whole);
    }
}
