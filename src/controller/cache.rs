//! The controllers' cache holds each object compact: [`Cached`].
//!
//! A `BackupPlan` as kube's reflector would keep it takes about 3.7 KiB: a 1,064-byte struct
//! (most of it empty `Option`s of `ObjectMeta` and the spec), the strings of the spec and the
//! status, three conditions, the map of annotations. At 10,000 objects that was about half of
//! the operator's memory. A [`Cached`] object keeps, as plain fields, only what is read on every
//! reconcile of *another* object or by kube's machinery (name, namespace, UID, resource version,
//! generation, creation and deletion times, the claim, readiness, what calls for a reconcile),
//! and the whole object as JSON compressed with LZ4 against a dictionary: a sample object of the
//! kind, so a typical object shrinks to its own names, ids and times (1,711 bytes of JSON to 168
//! for a Ready BackupPlan). A reconcile inflates its object (about 20 µs); nothing else does
//! except the rare scans over every object (the orphan report, when DBS lists a plan no object
//! claims).
//!
//! The controller's predicate (does this watch event call for a reconcile?) is decided here too,
//! against the cached version ([`compact`]): kube's `predicate_filter` would keep one more map of
//! every object for it. The plan inventory keeps DBS's plans packed the same way ([`pack`]).

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Resource;
use kube::runtime::reflector::{ObjectRef, Store};
use serde::Serialize;
use serde::de::{Deserialize, DeserializeOwned, Deserializer};

use super::claims::{self, ClaimRef};
use super::conditions::is_ready;
use super::status::{Managed, strip};

/// What can go wrong when a cached object is inflated (only a bug can make it happen: the
/// bytes are ours).
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    /// The compressed bytes do not decompress.
    #[error("cached object does not decompress: {0}")]
    Decompress(#[from] lz4_flex::block::DecompressError),
    /// The decompressed bytes are not the kind's JSON.
    #[error("cached object does not parse: {0}")]
    Parse(#[from] serde_json::Error),
}

/// An object of kind `K` as the controller's cache keeps it; see the module documentation.
pub struct Cached<K> {
    /// Name, namespace, UID, resource version, generation, creation and deletion times.
    meta: ObjectMeta,
    /// The key of the cloud resource the object claims; `None` once its deletion is done on our
    /// side. (Key and flag apart rather than an `Option<Claim>`: the struct then fits a smaller
    /// allocation class, 64 bytes less per object.)
    claim_key: Option<Box<str>>,
    /// [`super::claims::Claim::created`].
    claim_created: bool,
    ready: bool,
    /// Whether the watch event that brought this version calls for a reconcile: the object is
    /// new to the cache, or it changed outside its status ([`compact`]).
    wakes: bool,
    /// Hash of what of the object, when it changes, calls for a reconcile (everything but the
    /// status).
    triggers: u64,
    /// Hashes of the names of the Secrets the object reads ([`Managed::secrets`]).
    secrets: Box<[u64]>,
    /// The whole object (without what [`strip`] drops), JSON compressed against
    /// [`Managed::cache_dictionary`], its length first.
    body: Box<[u8]>,
    kind: PhantomData<fn() -> K>,
}

/// `value` as JSON compressed with LZ4 against `dictionary` (a typical value of its type, as
/// JSON), its length first.
pub fn pack<T: Serialize>(value: &T, dictionary: &[u8]) -> Box<[u8]> {
    // Serializing our own types cannot fail (no map with non-string keys).
    let json = serde_json::to_vec(value).unwrap_or_default();
    lz4_flex::block::compress_prepend_size_with_dict(&json, dictionary).into_boxed_slice()
}

/// What [`pack`] packed.
pub fn unpack<T: DeserializeOwned>(packed: &[u8], dictionary: &[u8]) -> Result<T, CacheError> {
    let json = lz4_flex::block::decompress_size_prepended_with_dict(packed, dictionary)?;
    Ok(serde_json::from_slice(&json)?)
}

impl<K: Managed> Cached<K> {
    /// `obj`, compact.
    pub fn new(obj: &K) -> Self {
        let source = obj.meta();
        let meta = ObjectMeta {
            name: source.name.clone(),
            namespace: source.namespace.clone(),
            uid: source.uid.clone(),
            resource_version: source.resource_version.clone(),
            generation: source.generation,
            creation_timestamp: source.creation_timestamp.clone(),
            deletion_timestamp: source.deletion_timestamp.clone(),
            ..ObjectMeta::default()
        };
        let claim = (!claims::finished(source)).then(|| obj.claim()).flatten();
        Self {
            meta,
            claim_created: claim.as_ref().is_some_and(|c| c.created),
            claim_key: claim.map(|c| c.key.into_boxed_str()),
            ready: obj.status().is_some_and(|s| is_ready(K::conditions(s))),
            wakes: true,
            triggers: triggers(source),
            secrets: obj.secrets().into_iter().map(name_hash).collect(),
            body: pack(obj, K::cache_dictionary()),
            kind: PhantomData,
        }
    }

    /// `obj` without what the controllers never read (`managedFields`, the last-applied
    /// annotation), compact: what the cache holds.
    pub fn stripped(mut obj: K) -> Self {
        strip(obj.meta_mut());
        Self::new(&obj)
    }

    /// The whole object.
    pub fn inflate(&self) -> Result<K, CacheError> {
        unpack(&self.body, K::cache_dictionary())
    }

    /// The cloud resource the object claims, unless its deletion is done on our side.
    pub fn claim(&self) -> Option<ClaimRef<'_>> {
        Some(ClaimRef {
            key: self.claim_key.as_deref()?,
            created: self.claim_created,
        })
    }

    /// Whether the object's `Ready` condition is `True`.
    pub fn is_ready(&self) -> bool {
        self.ready
    }

    /// Whether the object may read the Secret `name` of its namespace (a hash of the name
    /// matches: a rare collision costs one needless reconcile).
    pub fn reads_secret(&self, name: &str) -> bool {
        self.secrets.contains(&name_hash(name))
    }

    /// Whether the watch event that brought this version calls for a reconcile (see
    /// [`compact`]).
    pub fn wakes(&self) -> bool {
        self.wakes
    }

    /// The cache's key for `obj`.
    pub fn key(obj: &K) -> ObjectRef<Self> {
        let meta = obj.meta();
        let key = ObjectRef::new(meta.name.as_deref().unwrap_or_default());
        match &meta.namespace {
            Some(namespace) => key.within(namespace),
            None => key,
        }
    }
}

fn name_hash(name: &str) -> u64 {
    use std::hash::{Hash as _, Hasher as _};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    name.hash(&mut hasher);
    hasher.finish()
}

/// What of an object, when it changes, calls for a reconcile: everything but the status (the
/// spec through the generation, labels, annotations, finalizers, the deletion).
fn triggers(meta: &ObjectMeta) -> u64 {
    use std::hash::{Hash as _, Hasher as _};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    meta.generation.hash(&mut hasher);
    meta.labels.hash(&mut hasher);
    meta.annotations.hash(&mut hasher);
    meta.finalizers.hash(&mut hasher);
    meta.deletion_timestamp
        .as_ref()
        .map(|t| t.0.as_second())
        .hash(&mut hasher);
    hasher.finish()
}

/// The dictionary a kind's objects are compressed against: `sample` (a typical object of the
/// kind, as JSON) as serde writes it, so its fields come in the order of every cached object's.
pub fn dictionary<K: Managed>(sample: &str) -> Vec<u8> {
    serde_json::from_str::<K>(sample)
        .ok()
        .and_then(|obj| serde_json::to_vec(&obj).ok())
        .unwrap_or_else(|| sample.as_bytes().to_vec())
}

/// The objects of a watch event, compact, each marked with whether it calls for a reconcile
/// ([`Cached::wakes`]) against the version `cache` holds (the event is not applied to it yet).
/// A version `quiet` tells apart (our own annotation write, see
/// `StatusWriter::expect_annotation`) calls for none.
///
/// This is the controller's predicate, kept here rather than in kube's `predicate_filter`,
/// which keeps its own map of every object (name, namespace and UID copied again, about 200
/// bytes per object) to compare hashes the cache already holds.
pub fn compact<K: Managed>(
    event: kube::runtime::watcher::Event<K>,
    cache: &Store<Cached<K>>,
    quiet: impl Fn(&K) -> bool,
) -> kube::runtime::watcher::Event<Cached<K>> {
    use kube::runtime::watcher::Event;
    let cached = |obj: K| {
        let quiet = quiet(&obj);
        let mut cached = Cached::stripped(obj);
        cached.wakes = !quiet
            && cache
                .get(&ObjectRef::from_obj(&cached))
                .is_none_or(|known| {
                    known.meta.uid != cached.meta.uid || known.triggers != cached.triggers
                });
        cached
    };
    match event {
        Event::Apply(obj) => Event::Apply(cached(obj)),
        Event::Delete(obj) => Event::Delete(cached(obj)),
        Event::InitApply(obj) => Event::InitApply(cached(obj)),
        Event::Init => Event::Init,
        Event::InitDone => Event::InitDone,
    }
}

/// Every object of `objects`, inflated one at a time (a scan holds one full object at once); one
/// that does not inflate (a bug) is logged and left out.
pub fn inflated<K: Managed>(objects: &[Arc<Cached<K>>]) -> impl Iterator<Item = K> + '_ {
    objects.iter().filter_map(|c| match c.inflate() {
        Ok(obj) => Some(obj),
        Err(e) => {
            tracing::error!(kind = K::KIND, namespace = ?c.meta.namespace,
                    name = ?c.meta.name, error = %e, "cached object unreadable");
            None
        }
    })
}

impl<K> Clone for Cached<K> {
    fn clone(&self) -> Self {
        Self {
            meta: self.meta.clone(),
            claim_key: self.claim_key.clone(),
            claim_created: self.claim_created,
            ready: self.ready,
            wakes: self.wakes,
            triggers: self.triggers,
            secrets: self.secrets.clone(),
            body: self.body.clone(),
            kind: PhantomData,
        }
    }
}

impl<K> fmt::Debug for Cached<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cached")
            .field("namespace", &self.meta.namespace)
            .field("name", &self.meta.name)
            .field("resource_version", &self.meta.resource_version)
            .field("claim_key", &self.claim_key)
            .field("claim_created", &self.claim_created)
            .field("ready", &self.ready)
            .field("compressed_len", &self.body.len())
            .finish()
    }
}

impl<K: Resource> Resource for Cached<K> {
    type DynamicType = K::DynamicType;
    type Scope = K::Scope;

    fn kind(dt: &Self::DynamicType) -> Cow<'_, str> {
        K::kind(dt)
    }

    fn group(dt: &Self::DynamicType) -> Cow<'_, str> {
        K::group(dt)
    }

    fn version(dt: &Self::DynamicType) -> Cow<'_, str> {
        K::version(dt)
    }

    fn api_version(dt: &Self::DynamicType) -> Cow<'_, str> {
        K::api_version(dt)
    }

    fn plural(dt: &Self::DynamicType) -> Cow<'_, str> {
        K::plural(dt)
    }

    fn meta(&self) -> &ObjectMeta {
        &self.meta
    }

    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.meta
    }
}

/// Reads the full object and keeps it compact (kube's controller asks its objects to be
/// deserializable; the runtime itself builds them with [`compact`]).
impl<'de, K: Managed> Deserialize<'de> for Cached<K> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Ok(Self::stripped(K::deserialize(deserializer)?))
    }
}

#[cfg(test)]
mod tests {
    use kube::ResourceExt;

    use super::*;
    use crate::crd::{BackupPlan, RdsConnection};

    /// A Ready BackupPlan unlike the dictionary's sample in every name, id and time.
    const PLAN: &str = r#"{"apiVersion":"db.alicloud.dev/v1alpha1","kind":"BackupPlan",
        "metadata":{"name":"orders-07777","namespace":"team-a","uid":"a9b8c7d6-9999-4e5f-8a7b-fedcba987654",
        "resourceVersion":"7654321","generation":3,"creationTimestamp":"2026-11-30T11:17:00Z",
        "finalizers":["db.alicloud.dev/finalizer"],"labels":{"team":"a"},
        "annotations":{"db.alicloud.dev/backup-plan-id":"dbsz9y8x7w6v5u4","note":"kept"}},
        "spec":{"region":"cn-shanghai","databaseType":"MySQL","instanceClass":"medium",
        "backupMethod":"logical","payType":"PayAsYouGo","source":{"instanceType":"RDS",
        "region":"cn-shanghai","instanceId":"rm-uf6orders","userName":"backup",
        "passwordSecretRef":{"name":"orders-password","key":"password"}},
        "backupObjects":[{"databaseName":"orders"},{"databaseName":"billing"}],
        "deletionPolicy":"Retain"},
        "status":{"backupPlanId":"dbsz9y8x7w6v5u4","createdAt":"2026-11-30T11:17:05Z",
        "cloudStatus":"running","observedGeneration":3,"conditions":[
        {"type":"Ready","status":"True","reason":"Available","message":"backup plan dbsz9y8x7w6v5u4 is running","observedGeneration":3,"lastTransitionTime":"2026-11-30T11:17:20Z"},
        {"type":"Reconciling","status":"False","reason":"Idle","message":"","observedGeneration":3,"lastTransitionTime":"2026-11-30T11:17:20Z"},
        {"type":"Stalled","status":"False","reason":"Progressing","message":"","observedGeneration":3,"lastTransitionTime":"2026-11-30T11:17:00Z"}]}}"#;

    fn json(obj: &BackupPlan) -> serde_json::Value {
        serde_json::to_value(obj).expect("serializes")
    }

    fn plan() -> BackupPlan {
        serde_json::from_str(PLAN).expect("a valid BackupPlan")
    }

    #[test]
    fn an_object_inflates_to_itself_and_keeps_what_others_read() {
        let obj = plan();
        let cached = Cached::new(&obj);
        assert_eq!(json(&cached.inflate().expect("inflates")), json(&obj));
        assert_eq!(cached.name_any(), "orders-07777");
        assert_eq!(cached.namespace().as_deref(), Some("team-a"));
        assert_eq!(cached.uid(), obj.uid());
        assert_eq!(cached.resource_version().as_deref(), Some("7654321"));
        assert_eq!(cached.meta().generation, Some(3));
        assert_eq!(cached.creation_timestamp(), obj.creation_timestamp());
        assert!(cached.is_ready());
        assert_eq!(
            cached.claim(),
            obj.claim()
                .as_ref()
                .map(crate::controller::claims::Claim::as_ref)
        );
        assert!(cached.claim().is_some());
        assert_eq!(Cached::key(&obj), ObjectRef::from_obj(&cached));
        // Far smaller than the JSON: the sample carries the field names and the usual values.
        let json = serde_json::to_vec(&obj).expect("serializes").len();
        assert!(
            cached.body.len() * 4 < json,
            "{} bytes compressed from {json}",
            cached.body.len()
        );
    }

    #[test]
    fn a_change_outside_the_status_changes_the_triggers_and_a_status_change_does_not() {
        let obj = plan();
        let before = Cached::new(&obj).triggers;
        let mut status_only = obj.clone();
        status_only.status.as_mut().expect("status").cloud_status = Some("pause".into());
        status_only.metadata.resource_version = Some("7654322".into());
        assert_eq!(Cached::new(&status_only).triggers, before);
        let mut annotated = obj.clone();
        annotated
            .annotations_mut()
            .insert("db.alicloud.dev/paused".into(), "true".into());
        assert_ne!(Cached::new(&annotated).triggers, before);
        let mut edited = obj;
        edited.metadata.generation = Some(4);
        assert_ne!(Cached::new(&edited).triggers, before);
    }

    #[test]
    fn every_change_outside_the_status_calls_for_a_reconcile() {
        use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
        use k8s_openapi::jiff::Timestamp;
        let before = ObjectMeta {
            generation: Some(1),
            ..ObjectMeta::default()
        };
        let changes: [fn(&mut ObjectMeta); 5] = [
            |m| m.generation = Some(2),
            |m| m.annotations = Some([("a".to_owned(), "b".to_owned())].into()),
            |m| m.labels = Some([("a".to_owned(), "b".to_owned())].into()),
            |m| m.finalizers = Some(vec!["f".to_owned()]),
            |m| m.deletion_timestamp = Some(Time(Timestamp::now())),
        ];
        for (i, change) in changes.iter().enumerate() {
            let mut changed = before.clone();
            change(&mut changed);
            assert_ne!(triggers(&before), triggers(&changed), "change {i}");
        }
    }

    #[test]
    fn an_event_wakes_the_controller_for_a_new_object_or_a_change_outside_the_status() {
        use kube::runtime::reflector;
        use kube::runtime::watcher::Event;
        let (cache, mut writer) = reflector::store::<Cached<BackupPlan>>();
        let not_ours = |_: &BackupPlan| false;
        let wakes = |event: Event<BackupPlan>, cache: &Store<Cached<BackupPlan>>| match compact(
            event, cache, not_ours,
        ) {
            Event::Apply(c) | Event::InitApply(c) => c.wakes(),
            _ => panic!("an object event"),
        };
        let obj = plan();
        assert!(wakes(Event::Apply(obj.clone()), &cache), "new to the cache");
        writer.apply_watcher_event(&compact(Event::Apply(obj.clone()), &cache, not_ours));

        let mut status_write = obj.clone();
        status_write.metadata.resource_version = Some("7654322".into());
        status_write.status.as_mut().expect("status").cloud_status = Some("pause".into());
        assert!(
            !wakes(Event::Apply(status_write.clone()), &cache),
            "our own status write"
        );
        assert!(
            !wakes(Event::InitApply(status_write), &cache),
            "a re-list, nothing changed"
        );

        let mut edited = obj.clone();
        edited.metadata.generation = Some(4);
        assert!(wakes(Event::Apply(edited), &cache), "the spec changed");

        let mut annotated = obj.clone();
        annotated
            .metadata
            .annotations
            .get_or_insert_default()
            .insert("ours".into(), "p".into());
        assert!(wakes(Event::Apply(annotated.clone()), &cache), "annotated");
        let ours = |o: &BackupPlan| o.annotations().contains_key("ours");
        match compact(Event::Apply(annotated), &cache, ours) {
            Event::Apply(c) => assert!(!c.wakes(), "our own announced annotation write"),
            _ => panic!("an object event"),
        }

        let mut recreated = obj;
        recreated.metadata.uid = Some("another-uid".into());
        assert!(
            wakes(Event::Apply(recreated), &cache),
            "same name, another object"
        );
    }

    #[test]
    fn the_secrets_an_object_reads_are_known_without_inflating_it() {
        let cached = Cached::new(&plan());
        assert!(cached.reads_secret("orders-password"));
        assert!(
            !cached.reads_secret("alicloud-credentials"),
            "the spec names none"
        );
        assert!(!cached.reads_secret("orders"));
    }

    #[test]
    fn a_finished_deletion_claims_nothing_and_an_object_without_status_is_not_ready() {
        let mut obj = plan();
        obj.metadata.deletion_timestamp = obj.metadata.creation_timestamp.clone();
        assert!(
            Cached::new(&obj).claim().is_some(),
            "our finalizer still holds it"
        );
        obj.metadata.finalizers = None;
        assert_eq!(Cached::new(&obj).claim(), None);
        obj.status = None;
        let cached = Cached::new(&obj);
        assert!(!cached.is_ready());
        assert_eq!(json(&cached.inflate().expect("inflates")), json(&obj));
    }

    #[test]
    fn the_samples_are_objects_of_their_kind() {
        for (kind, parsed) in [
            (
                "BackupPlan",
                serde_json::from_slice::<BackupPlan>(BackupPlan::cache_dictionary()).is_ok(),
            ),
            (
                "RdsConnection",
                serde_json::from_slice::<RdsConnection>(RdsConnection::cache_dictionary()).is_ok(),
            ),
        ] {
            assert!(parsed, "the {kind} sample no longer parses as a {kind}");
        }
    }

    #[test]
    fn a_cached_object_fits_the_448_byte_allocation_class() {
        // An `Arc` allocates two counters and the struct; jemalloc's classes go 384, 448, 512.
        let arc = 16 + std::mem::size_of::<Cached<BackupPlan>>();
        assert!(
            arc <= 448,
            "{arc} bytes: one class up, 64 bytes more per cached object"
        );
    }

    #[test]
    fn a_damaged_body_is_an_error_not_a_panic() {
        let mut cached = Cached::new(&plan());
        cached.body = vec![0xff; 12].into_boxed_slice();
        assert!(cached.inflate().is_err());
    }
}
