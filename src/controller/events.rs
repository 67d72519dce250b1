//! The one Event publisher of the controllers.
//!
//! Callers decide *when* to record (one Event per Ready transition, one per deletion outcome).
//! A repeat of the same Event (same object, type and reason) within [`SERIES_WINDOW`] folds into
//! a series of the first one (`series.count`, `series.lastObservedTime`), as kube's `Recorder`
//! and client-go's recorder do, instead of a new object. Notes are cut to what the API server
//! accepts, on a character boundary, the same way for every kind. An Event that cannot be
//! recorded (no RBAC, a namespace being deleted) is logged at `warn`, never fails the reconcile.
//!
//! Written here rather than with kube's `Recorder`, which keeps a whole copy of every Event it
//! published (with its key, another copy of the object reference) for 6 minutes: while 1,000
//! BackupPlans were created, those copies were half of the operator's heap (9 of 18 MiB in a
//! jemalloc heap profile, about 9 KiB per object). A series needs only the Event's name (the
//! object's name and the Event's creation time, of which only the time is kept), its count and
//! when it was last seen: about 50 bytes per Event, dropped once no repeat can fold into it.

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash as _, Hasher as _};
use std::sync::Mutex;
use std::time::Duration;

use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::events::v1::{Event as K8sEvent, EventSeries};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::Resource;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::events::{EventType, Reporter};
use tokio::time::Instant;

use super::Context;
use crate::sync::lock;

/// Longest Event note the API server accepts (1 kB), ellipsis included.
const MAX_NOTE: usize = 1000;
/// How long after an Event was last seen a repeat still folds into its series (kube's
/// `Recorder` uses 6 minutes too).
pub const SERIES_WINDOW: Duration = Duration::from_secs(6 * 60);
/// The `action` of every Event the controllers record.
const ACTION: &str = "Reconcile";
/// Series kept before expired ones are pruned (the bound doubles with what is live, so pruning
/// costs O(1) per Event).
const PRUNE_AT_LEAST: usize = 1024;

/// An Event recorded recently, for folding repeats into it.
struct Series {
    /// When the Event was created, in nanoseconds since the epoch: its name's suffix
    /// ([`event_name`]).
    created: u64,
    /// How many times it was recorded.
    count: i32,
    /// When it was last recorded.
    last: Instant,
}

/// Recent Events by (object, type, reason).
#[derive(Default)]
struct Recent {
    series: HashMap<u64, Series>,
    prune_at: usize,
    pruned: Option<Instant>,
}

impl Recent {
    /// Drops the series no repeat can fold into any more, once there are enough of them or a
    /// window has passed since the last pruning (objects that went quiet keep no series).
    fn prune(&mut self, now: Instant) {
        let due = self
            .pruned
            .is_none_or(|t| now.saturating_duration_since(t) >= SERIES_WINDOW);
        let piled_up = self.series.len() >= self.prune_at;
        if !piled_up && (!due || self.series.is_empty()) {
            return;
        }
        self.series
            .retain(|_, s| now.saturating_duration_since(s.last) < SERIES_WINDOW);
        self.series.shrink_to_fit();
        self.prune_at = (self.series.len() * 2).max(PRUNE_AT_LEAST);
        self.pruned = Some(now);
    }

    /// The series `key` continues, counted once more: its Event's creation time and new count.
    fn repeat(&mut self, key: u64, now: Instant) -> Option<(u64, i32)> {
        self.prune(now);
        let series = self.series.get_mut(&key)?;
        if now.saturating_duration_since(series.last) >= SERIES_WINDOW {
            self.series.remove(&key);
            return None;
        }
        series.count += 1;
        series.last = now;
        Some((series.created, series.count))
    }
}

/// Records Events about one controller's objects.
pub struct Events {
    client: kube::Client,
    reporter: Reporter,
    recent: Mutex<Recent>,
}

impl Events {
    /// A publisher reporting as the operator (`ctx.reporter`).
    pub fn new(ctx: &Context) -> Self {
        Self {
            client: ctx.client.clone(),
            reporter: ctx.reporter.clone(),
            recent: Mutex::default(),
        }
    }

    /// Drops the series no repeat can fold into any more, at most once per [`SERIES_WINDOW`]
    /// unless many have piled up: called by every reconcile, so the series of objects that went
    /// quiet go even when no Event is published.
    pub fn tidy(&self) {
        lock(&self.recent).prune(Instant::now());
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
        let key = series_key(reference, type_, reason);
        let namespace = reference.namespace.as_deref().unwrap_or("default");
        let api: Api<K8sEvent> = Api::namespaced(self.client.clone(), namespace);
        let repeat = lock(&self.recent).repeat(key, Instant::now());
        let result = match repeat {
            Some((created, count)) => {
                let name = event_name(reference, &self.reporter.controller, created);
                let series = EventSeries {
                    count,
                    last_observed_time: MicroTime(Timestamp::now()),
                };
                let patch = serde_json::json!({ "series": series });
                match api
                    .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                    .await
                {
                    // The Event is gone (the API server's Event TTL): start a new one.
                    Err(kube::Error::Api(s)) if s.code == 404 => {
                        self.create(&api, key, reference, type_, reason, note).await
                    }
                    other => other.map(drop),
                }
            }
            None => self.create(&api, key, reference, type_, reason, note).await,
        };
        if let Err(e) = result {
            tracing::warn!(error = %e, reason, "could not record an Event");
        }
    }

    /// Creates a new Event and remembers it for its repeats.
    async fn create(
        &self,
        api: &Api<K8sEvent>,
        key: u64,
        reference: &ObjectReference,
        type_: EventType,
        reason: &str,
        note: &str,
    ) -> Result<(), kube::Error> {
        let now = Timestamp::now();
        let created = u64::try_from(now.as_nanosecond()).unwrap_or_default();
        let event = self.event(reference, type_, reason, note, now, created);
        api.create(&PostParams::default(), &event).await?;
        let series = Series {
            created,
            count: 1,
            last: Instant::now(),
        };
        lock(&self.recent).series.insert(key, series);
        Ok(())
    }

    /// A new Event (`events.k8s.io/v1`) about `reference`.
    fn event(
        &self,
        reference: &ObjectReference,
        type_: EventType,
        reason: &str,
        note: &str,
        now: Timestamp,
        created: u64,
    ) -> K8sEvent {
        let controller = &self.reporter.controller;
        K8sEvent {
            metadata: ObjectMeta {
                namespace: reference.namespace.clone(),
                name: Some(event_name(reference, controller, created)),
                ..ObjectMeta::default()
            },
            action: Some(ACTION.to_owned()),
            reason: Some(reason.to_owned()),
            note: Some(truncate(note, MAX_NOTE)),
            type_: Some(
                match type_ {
                    EventType::Normal => "Normal",
                    EventType::Warning => "Warning",
                }
                .to_owned(),
            ),
            event_time: Some(MicroTime(now)),
            regarding: Some(reference.clone()),
            reporting_controller: Some(controller.clone()),
            reporting_instance: Some(
                self.reporter
                    .instance
                    .clone()
                    .unwrap_or_else(|| controller.clone()),
            ),
            ..K8sEvent::default()
        }
    }
}

/// The name of the Event about `reference` created at `created` (nanoseconds since the epoch).
fn event_name(reference: &ObjectReference, controller: &str, created: u64) -> String {
    format!(
        "{}.{created:x}",
        reference.name.as_deref().unwrap_or(controller)
    )
}

/// What makes two Events one series: the object, the type and the reason.
fn series_key(reference: &ObjectReference, type_: EventType, reason: &str) -> u64 {
    let mut hasher = DefaultHasher::new();
    (
        &reference.api_version,
        &reference.kind,
        &reference.namespace,
        &reference.name,
        &reference.uid,
        matches!(type_, EventType::Warning),
        reason,
    )
        .hash(&mut hasher);
    hasher.finish()
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

    #[test]
    fn a_repeat_within_the_window_continues_the_series() {
        let mut recent = Recent::default();
        let t0 = Instant::now();
        assert_eq!(recent.repeat(1, t0), None, "nothing recorded yet");
        recent.series.insert(
            1,
            Series {
                created: 77,
                count: 1,
                last: t0,
            },
        );
        assert_eq!(
            recent.repeat(1, t0 + Duration::from_secs(60)),
            Some((77, 2))
        );
        assert_eq!(recent.repeat(2, t0), None, "another key");
        // Counted from the last repeat, not from the first Event.
        let later = t0 + Duration::from_secs(60) + SERIES_WINDOW - Duration::from_secs(1);
        assert_eq!(recent.repeat(1, later), Some((77, 3)));
        assert_eq!(
            recent.repeat(1, later + SERIES_WINDOW),
            None,
            "too late: a new Event"
        );
        assert!(recent.series.is_empty());
    }

    #[test]
    fn expired_series_are_pruned() {
        let mut recent = Recent::default();
        let t0 = Instant::now();
        for key in 0..PRUNE_AT_LEAST as u64 {
            recent.series.insert(
                key,
                Series {
                    created: key,
                    count: 1,
                    last: t0,
                },
            );
        }
        recent.repeat(0, t0 + SERIES_WINDOW);
        assert!(recent.series.is_empty());
        assert_eq!(recent.prune_at, PRUNE_AT_LEAST);
    }

    #[test]
    fn a_few_quiet_series_are_pruned_once_a_window_has_passed() {
        let mut recent = Recent::default();
        let t0 = Instant::now();
        recent.prune(t0);
        let series = |last| Series {
            created: 1,
            count: 1,
            last,
        };
        recent.series.insert(1, series(t0));
        recent
            .series
            .insert(2, series(t0 + Duration::from_secs(300)));
        recent.prune(t0 + Duration::from_secs(60));
        assert_eq!(
            recent.series.len(),
            2,
            "few, and pruned less than a window ago"
        );
        recent.prune(t0 + SERIES_WINDOW);
        assert_eq!(recent.series.len(), 1, "the first went quiet a window ago");
        assert!(recent.series.contains_key(&2));
    }

    #[test]
    fn an_event_name_is_the_object_and_its_creation_time() {
        let reference = ObjectReference {
            name: Some("bp".into()),
            ..ObjectReference::default()
        };
        assert_eq!(event_name(&reference, "ctl", 0x1f), "bp.1f");
        assert_eq!(
            event_name(&ObjectReference::default(), "ctl", 255),
            "ctl.ff"
        );
    }

    #[test]
    fn the_series_key_is_object_type_and_reason() {
        let bp = |uid: &str| ObjectReference {
            kind: Some("BackupPlan".into()),
            namespace: Some("ns".into()),
            name: Some("bp".into()),
            uid: Some(uid.into()),
            ..ObjectReference::default()
        };
        let key = series_key(&bp("u1"), EventType::Normal, "Available");
        assert_eq!(key, series_key(&bp("u1"), EventType::Normal, "Available"));
        assert_ne!(key, series_key(&bp("u2"), EventType::Normal, "Available"));
        assert_ne!(key, series_key(&bp("u1"), EventType::Warning, "Available"));
        assert_ne!(key, series_key(&bp("u1"), EventType::Normal, "Stalled"));
    }
}
