//! The one Event publisher of the controllers.
//!
//! Callers decide *when* to record (one Event per Ready transition, one per deletion outcome);
//! kube's [`Recorder`] folds a repeat of the same Event into a series instead of a new object.
//! Notes are cut to what the API server accepts, on a character boundary, the same way for
//! every kind. An Event that cannot be recorded (no RBAC, a namespace being deleted) is logged
//! at `warn`, never fails the reconcile.

use k8s_openapi::api::core::v1::ObjectReference;
use kube::Resource;
use kube::runtime::events::{Event, EventType, Recorder};

use super::Context;

/// Longest Event note the API server accepts (1 kB), ellipsis included.
const MAX_NOTE: usize = 1000;

/// Records Events about one controller's objects.
pub struct Events {
    recorder: Recorder,
}

impl Events {
    /// A publisher reporting as the operator (`ctx.reporter`).
    pub fn new(ctx: &Context) -> Self {
        Self {
            recorder: Recorder::new(ctx.client.clone(), ctx.reporter.clone()),
        }
    }

    /// Records an Event of `type_` with `reason` about `obj`.
    pub async fn publish<K: Resource<DynamicType = ()>>(
        &self,
        obj: &K,
        type_: EventType,
        reason: &str,
        note: &str,
    ) {
        self.publish_about(&obj.object_ref(&()), type_, reason, note)
            .await;
    }

    /// Records an Event of `type_` with `reason` about `reference`, which may name an object
    /// that no longer exists (the orphan report).
    pub async fn publish_about(
        &self,
        reference: &ObjectReference,
        type_: EventType,
        reason: &str,
        note: &str,
    ) {
        let event = Event {
            type_,
            reason: reason.to_owned(),
            note: Some(truncate(note, MAX_NOTE)),
            action: "Reconcile".to_owned(),
            secondary: None,
        };
        if let Err(e) = self.recorder.publish(&event, reference).await {
            tracing::warn!(error = %e, reason, "could not record an Event");
        }
    }
}

/// `text` cut to at most `max` bytes on a character boundary, ending in `…` when cut.
fn truncate(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut end = max - '…'.len_utf8();
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notes_are_cut_on_a_character_boundary() {
        assert_eq!(truncate("short", 10), "short");
        assert_eq!(truncate("ééé", 5), "é…");
        let long = truncate(&"x".repeat(2000), MAX_NOTE);
        assert_eq!(long.len(), MAX_NOTE);
        assert!(long.ends_with('…'));
        let accents = truncate(&"é".repeat(600), MAX_NOTE);
        assert!(accents.len() <= MAX_NOTE && accents.ends_with('…'));
    }
}
