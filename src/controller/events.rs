//! The one Event publisher of the controllers.
//!
//! Callers decide *when* to record (one Event per Ready transition, one per deletion outcome);
//! kube's [`Recorder`] folds a repeat of the same Event into a series instead of a new object.
//! Notes are cut to what the API server accepts, on a character boundary, the same way for
//! every kind. An Event that cannot be recorded (no RBAC, a namespace being deleted) is logged
//! at `warn`, never fails the reconcile.
//!
//! A `Recorder` remembers every Event it published for 6 minutes, and forgets them only when it
//! publishes again, after scanning all of them under one lock. With 10,000 objects each
//! publishing a few Events while created, one recorder would hold tens of thousands of Events
//! (tens of MiB, kept until the next publish, which may never come at steady state) and scan them
//! all for every publish, with every reconcile queued behind that lock. So an object's Events go
//! to one of [`SHARDS`] recorders (by object, so a repeat still folds into a series), and a
//! recorder that has published nothing for [`RECORDER_TTL`] (all its Events expired) is replaced
//! by an empty one.

use std::hash::{DefaultHasher, Hash as _, Hasher as _};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use k8s_openapi::api::core::v1::ObjectReference;
use kube::Resource;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use tokio::time::Instant;

use super::Context;
use crate::sync::lock;

/// Longest Event note the API server accepts (1 kB), ellipsis included.
const MAX_NOTE: usize = 1000;
/// Recorders an Events publisher spreads objects over.
pub const SHARDS: usize = 64;
/// How long kube's `Recorder` remembers an Event (its `CACHE_TTL`), plus a margin.
pub const RECORDER_TTL: Duration = Duration::from_secs(7 * 60);

/// One recorder and when it last published.
struct Shard {
    recorder: Recorder,
    last_publish: Instant,
}

/// The recorders, and how to make a new one.
struct Shards {
    client: kube::Client,
    reporter: Reporter,
    shards: Vec<Mutex<Shard>>,
}

impl Shards {
    /// Replaces every recorder idle for [`RECORDER_TTL`] by an empty one.
    fn forget_idle(&self) {
        for shard in &self.shards {
            let mut shard = lock(shard);
            if shard.last_publish.elapsed() >= RECORDER_TTL {
                shard.recorder = Recorder::new(self.client.clone(), self.reporter.clone());
                shard.last_publish = Instant::now();
            }
        }
    }
}

/// Records Events about one controller's objects.
pub struct Events {
    shards: Arc<Shards>,
}

impl Events {
    /// A publisher reporting as the operator (`ctx.reporter`). Inside a tokio runtime, a task
    /// replaces idle recorders until the publisher is dropped.
    pub fn new(ctx: &Context) -> Self {
        let now = Instant::now();
        let shards = Arc::new(Shards {
            shards: (0..SHARDS)
                .map(|_| {
                    Mutex::new(Shard {
                        recorder: Recorder::new(ctx.client.clone(), ctx.reporter.clone()),
                        last_publish: now,
                    })
                })
                .collect(),
            client: ctx.client.clone(),
            reporter: ctx.reporter.clone(),
        });
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let weak: Weak<Shards> = Arc::downgrade(&shards);
            runtime.spawn(async move {
                loop {
                    tokio::time::sleep(RECORDER_TTL / 4).await;
                    let Some(shards) = weak.upgrade() else { return };
                    shards.forget_idle();
                }
            });
        }
        Self { shards }
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
        let mut hasher = DefaultHasher::new();
        (&reference.namespace, &reference.name, &reference.uid).hash(&mut hasher);
        let index = usize::try_from(hasher.finish() % SHARDS as u64).unwrap_or_default();
        let recorder = {
            let mut shard = lock(&self.shards.shards[index]);
            shard.last_publish = Instant::now();
            shard.recorder.clone()
        };
        if let Err(e) = recorder.publish(&event, reference).await {
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
