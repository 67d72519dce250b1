//! The status writer: server-side apply of an object's whole status, with read-your-writes.
//!
//! The next reconcile of an object (its requeue, a change of a Secret it reads, a user's edit)
//! often comes before the watch cache holds our last write of it. Read from the cache, it would
//! decide from the status as it was *before* the previous reconcile acted, and repeat a cloud
//! call (a second CreateBackupPlan with the same ClientToken, a second Modify, a fresh
//! observation of an endpoint just reported Ready). Idempotent, but a waste of the quota. (Our
//! own writes do not wake the object: a status write changes nothing the watch filter looks at,
//! and an annotation write is announced before it is sent, [`StatusWriter::expect_annotation`].)
//!
//! [`StatusWriter`] remembers, per object, the API server's answer to our last status write and
//! the resource versions it superseded. [`StatusWriter::freshest`] hands a reconcile that answer
//! instead of a cached object the write superseded. Resource versions are only compared for
//! equality (they are opaque). Any other version in the cache (a user's edit, a deletion, or our
//! write arriving) drops the entry, so entries live only until the cache catches up: when the
//! watch shows it, or when the reconcile ends if the watch showed it while the reconcile ran (it
//! may still compare a second write with the first, [`StatusWriter::written_over`]).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, ObjectMeta};
use kube::api::{Api, Patch, PatchParams};
use kube::{Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::FIELD_MANAGER;
use super::claims::Claim;
use super::conditions::Phase;
use crate::sync::{ShrinkIfSparse as _, lock};

/// Most superseded versions kept per object (a chain of writes before the cache catches up).
const MAX_SUPERSEDED: usize = 8;

/// A kind the controllers manage: a namespaced custom resource whose status carries the
/// `Ready`, `Reconciling` and `Stalled` conditions.
pub trait Managed:
    Resource<DynamicType = (), Scope = NamespaceResourceScope>
    + Clone
    + std::fmt::Debug
    + DeserializeOwned
    + Serialize
    + Send
    + Sync
    + 'static
{
    /// The kind, as in `kind:` (`BackupPlan`).
    const KIND: &'static str;

    /// The status type.
    type Status: Clone + Default + PartialEq + Serialize + Send + Sync;

    /// The object's status, if it has one.
    fn status(&self) -> Option<&Self::Status>;

    /// The conditions of a status.
    fn conditions(status: &Self::Status) -> &[Condition];

    /// The cloud resource the object claims, once it names or holds one (see
    /// [`super::claims`]).
    fn claim(&self) -> Option<Claim>;

    /// The Secrets of its namespace the object reads (credentials, a password), by name.
    fn secrets(&self) -> Vec<&str>;

    /// What the controller's cache compresses the kind's objects against: a typical object of
    /// the kind as JSON, built once ([`super::cache::dictionary`]).
    fn cache_dictionary() -> &'static [u8];

    /// `status` with `conditions` and `observedGeneration` set to `generation`.
    fn with_conditions(
        status: &Self::Status,
        conditions: Vec<Condition>,
        generation: Option<i64>,
    ) -> Self::Status;

    /// Whether `next` is worth a write over `previous` (by default: whenever it differs).
    fn worth_writing(previous: &Self::Status, next: &Self::Status, phase: &Phase) -> bool {
        let _ = phase;
        previous != next
    }
}

/// The annotation `kubectl apply` keeps the whole last applied object in.
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// Drops from an object's metadata what no controller reads and what makes up most of a cached
/// object: `managedFields` and `kubectl apply`'s copy of the object.
pub fn strip(meta: &mut ObjectMeta) {
    meta.managed_fields = None;
    if let Some(annotations) = meta.annotations.as_mut() {
        annotations.remove(LAST_APPLIED);
    }
}

/// Whether `shown` differs from `seen` in no more than the annotation `key` (and `kubectl
/// apply`'s copy, which the cache strips): the same generation, labels, finalizers, deletion
/// and other annotations.
fn only_annotation_changed(seen: &ObjectMeta, shown: &ObjectMeta, key: &str) -> bool {
    let others = |m: &ObjectMeta| {
        m.annotations
            .iter()
            .flatten()
            .filter(|(k, _)| *k != key && *k != LAST_APPLIED)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect::<Vec<_>>()
    };
    seen.generation == shown.generation
        && seen.labels == shown.labels
        && seen.finalizers == shown.finalizers
        && seen.deletion_timestamp == shown.deletion_timestamp
        && others(seen) == others(shown)
}

/// Writes statuses, and remembers the latest write of each object (by UID) until the watch
/// cache shows it.
pub struct StatusWriter<K> {
    client: kube::Client,
    map: Mutex<HashMap<String, Written<K>>>,
    /// Our annotation writes the watch has not shown yet, by UID
    /// ([`StatusWriter::expect_annotation`]).
    expected: Mutex<HashMap<String, Expected>>,
}

/// An annotation write of ours, announced before it is sent: the version that shows it wakes
/// nobody.
struct Expected {
    key: String,
    value: String,
    /// The metadata of the object the reconcile started from.
    seen: ObjectMeta,
}

struct Written<K> {
    /// Versions older than `latest` that our writes replaced.
    superseded: Vec<String>,
    latest: Arc<K>,
    /// A reconcile of the object runs: it may still compare with `latest`
    /// ([`StatusWriter::written_over`]), so the watch does not drop the entry.
    reconciling: bool,
}

impl<K: Resource> Written<K> {
    /// Whether `cached` shows our latest write, or a later version: the entry has done its job.
    fn caught_up(&self, cached: &impl Resource) -> bool {
        cached
            .resource_version()
            .is_some_and(|v| !self.superseded.contains(&v))
    }
}

impl<K: Resource> StatusWriter<K> {
    /// A writer using `client`.
    pub fn new(client: kube::Client) -> Self {
        Self {
            client,
            map: Mutex::default(),
            expected: Mutex::default(),
        }
    }

    /// Records that `written` (the API server's answer to a write) replaced `seen`, the object
    /// the reconcile started from.
    pub fn record(&self, seen: &K, mut written: K) {
        let (Some(uid), Some(seen_version)) = (seen.uid(), seen.resource_version()) else {
            return;
        };
        // Kept until the cache shows it (see `settle` and `caught_up`): without what no
        // controller reads.
        strip(written.meta_mut());
        let mut map = lock(&self.map);
        let written = Arc::new(written);
        let entry = map.entry(uid).or_insert_with(|| Written {
            superseded: Vec::new(),
            latest: written.clone(),
            reconciling: true,
        });
        entry.reconciling = true;
        let previous = entry.latest.resource_version();
        for version in [Some(seen_version), previous].into_iter().flatten() {
            if written.resource_version().as_ref() != Some(&version)
                && !entry.superseded.contains(&version)
            {
                entry.superseded.push(version);
            }
        }
        if entry.superseded.len() > MAX_SUPERSEDED {
            let excess = entry.superseded.len() - MAX_SUPERSEDED;
            entry.superseded.drain(..excess);
        }
        entry.latest = written;
    }

    /// Announces our write of `value` to the annotation `key` of `seen` (the object the
    /// reconcile started from), before it is sent. The first version the watch shows with that
    /// value and nothing else changed since `seen` (same generation, labels, finalizers,
    /// deletion and other annotations) is quiet ([`StatusWriter::is_quiet`]): the reconcile
    /// that writes it requeues itself, and waking the object again for its own write would
    /// re-read the cloud resource at once (an RdsConnection read its instance a second time
    /// right after each Allocate, while the instance was still busy with it) and drop that
    /// requeue (kube's scheduler discards the requeue of an object whose next reconcile is
    /// already pending). Announced before the write, not recorded from its answer: the watch
    /// may show the new version before the answer reaches us (CI saw that). A change of anyone
    /// else's in the same version still wakes the object.
    pub fn expect_annotation(&self, seen: &K, key: &str, value: &str) {
        let Some(uid) = seen.uid() else {
            return;
        };
        let mut meta = seen.meta().clone();
        strip(&mut meta);
        let expected = Expected {
            key: key.to_owned(),
            value: value.to_owned(),
            seen: meta,
        };
        lock(&self.expected).insert(uid, expected);
    }

    /// Forgets the annotation write announced for the object `uid` (it failed, or the object
    /// is gone).
    pub fn unexpect(&self, uid: &str) {
        let mut expected = lock(&self.expected);
        if expected.remove(uid).is_some() {
            expected.shrink_if_sparse();
        }
    }

    /// Whether `shown` (a version the watch brought) is our announced annotation write and
    /// changes nothing else ([`StatusWriter::expect_annotation`]). The first version with the
    /// written value answers for the announcement, quiet or not.
    pub fn is_quiet(&self, shown: &impl Resource) -> bool {
        let Some(uid) = shown.uid() else {
            return false;
        };
        let mut expected = lock(&self.expected);
        let Some(e) = expected.get(&uid) else {
            return false;
        };
        let meta = shown.meta();
        let value = meta.annotations.as_ref().and_then(|a| a.get(&e.key));
        if value != Some(&e.value) {
            // An older version, or a later one that someone else changed back.
            return false;
        }
        let quiet = only_annotation_changed(&e.seen, meta, &e.key);
        expected.remove(&uid);
        expected.shrink_if_sparse();
        quiet
    }

    /// `cached`, or our later write of it when the cache has not caught up with that write. Called
    /// as a reconcile starts; [`StatusWriter::settle`] as it ends.
    pub fn freshest(&self, cached: Arc<K>) -> Arc<K> {
        let Some(uid) = cached.uid() else {
            return cached;
        };
        let mut map = lock(&self.map);
        let Some(entry) = map.get_mut(&uid) else {
            return cached;
        };
        if entry.caught_up(&*cached) {
            map.remove(&uid);
            map.shrink_if_sparse();
            return cached;
        }
        entry.reconciling = true;
        entry.latest.clone()
    }

    /// The reconcile of the object `uid` ended, and the cache holds `cached` (its cached form;
    /// `None`: the object is gone): the entry goes if the cache has caught up, else when the watch shows the write
    /// ([`StatusWriter::caught_up`]). Without this, every object's last write stayed in memory
    /// until its next reconcile, a resync period later for a Ready object: a second copy of each.
    pub fn settle<C: Resource>(&self, uid: &str, cached: Option<&C>) {
        if cached.is_none() {
            self.unexpect(uid);
        }
        let mut map = lock(&self.map);
        let Some(entry) = map.get_mut(uid) else {
            return;
        };
        if cached.is_none_or(|c| entry.caught_up(c)) {
            map.remove(uid);
            map.shrink_if_sparse();
        } else {
            entry.reconciling = false;
        }
    }

    /// The watch shows `cached`: the entry of an object no reconcile is working on goes once the
    /// cache holds our write (or a later version).
    pub fn caught_up(&self, cached: &impl Resource) {
        let Some(uid) = cached.uid() else {
            return;
        };
        let mut map = lock(&self.map);
        if map
            .get(&uid)
            .is_some_and(|e| !e.reconciling && e.caught_up(cached))
        {
            map.remove(&uid);
            map.shrink_if_sparse();
        }
    }

    /// Our write that replaced `seen`, if there was one (an earlier write of the same
    /// reconcile): what the API server holds now, unlike `seen`. The entry is kept.
    pub fn written_over(&self, seen: &K) -> Option<Arc<K>> {
        let (uid, version) = (seen.uid()?, seen.resource_version()?);
        let map = lock(&self.map);
        let entry = map.get(&uid)?;
        entry
            .superseded
            .contains(&version)
            .then(|| entry.latest.clone())
    }

    /// Writes `status` as the whole status of `obj` (server-side apply, field manager
    /// [`FIELD_MANAGER`], forced) and remembers the answer for [`StatusWriter::freshest`].
    pub async fn apply(&self, obj: &K, status: &impl Serialize) -> Result<(), kube::Error>
    where
        K: Resource<DynamicType = (), Scope = NamespaceResourceScope>
            + Clone
            + DeserializeOwned
            + std::fmt::Debug,
    {
        let api: Api<K> =
            Api::namespaced(self.client.clone(), &obj.namespace().unwrap_or_default());
        let body = serde_json::json!({
            "apiVersion": K::api_version(&()),
            "kind": K::kind(&()),
            "status": status,
        });
        let written = api
            .patch_status(
                &obj.name_any(),
                &PatchParams::apply(FIELD_MANAGER).force(),
                &Patch::Apply(&body),
            )
            .await?;
        self.record(obj, written);
        Ok(())
    }

    /// Drops what is known of `obj` (it is gone).
    pub fn forget(&self, obj: &K) {
        if let Some(uid) = obj.uid() {
            let mut map = lock(&self.map);
            map.remove(&uid);
            map.shrink_if_sparse();
            drop(map);
            self.unexpect(&uid);
        }
    }

    /// Objects with a write the cache has not shown yet.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        lock(&self.map).len()
    }

    /// Whether every write has reached the cache.
    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::ConfigMap;
    use kube::api::ObjectMeta;

    use super::*;

    fn cm(version: &str, data: &str) -> ConfigMap {
        ConfigMap {
            metadata: ObjectMeta {
                name: Some("x".into()),
                uid: Some("uid-1".into()),
                resource_version: Some(version.into()),
                ..ObjectMeta::default()
            },
            data: Some([("k".to_owned(), data.to_owned())].into()),
            ..ConfigMap::default()
        }
    }

    /// A client that is never called: these tests only exercise the bookkeeping.
    fn offline_client() -> kube::Client {
        let config = kube::Config::new("http://127.0.0.1:9".parse().expect("url"));
        kube::Client::try_from(config).expect("client")
    }

    fn data(o: &ConfigMap) -> &str {
        &o.data.as_ref().expect("data")["k"]
    }

    /// `cm(version, "")` with the annotations `pairs` (and an optional generation).
    fn annotated(version: &str, generation: i64, pairs: &[(&str, &str)]) -> ConfigMap {
        let mut obj = cm(version, "");
        obj.metadata.generation = Some(generation);
        obj.metadata.annotations = Some(
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        );
        obj
    }

    #[tokio::test]
    async fn our_announced_annotation_write_is_quiet_once_even_before_its_answer() {
        let writes = StatusWriter::new(offline_client());
        let seen = annotated("10", 1, &[("user", "a"), (LAST_APPLIED, "{}")]);
        writes.expect_annotation(&seen, "ours", "p1");
        // Nothing recorded yet: the watch shows the write before its answer reaches us.
        assert!(!writes.is_quiet(&seen), "the version before it");
        let stale_status = annotated("10", 1, &[("user", "a")]);
        assert!(!writes.is_quiet(&stale_status), "an older version");
        let shown = annotated("11", 1, &[("user", "a"), ("ours", "p1")]);
        assert!(writes.is_quiet(&shown), "our own write");
        assert!(
            !writes.is_quiet(&shown),
            "once: the announcement is answered"
        );
        // The answer arriving afterwards changes nothing.
        writes.record(&seen, shown.clone());
        assert!(!writes.is_quiet(&shown));
    }

    #[tokio::test]
    async fn an_annotation_write_that_carries_another_change_wakes_the_object() {
        let seen = annotated("10", 1, &[("user", "a")]);
        let mut labelled = annotated("11", 1, &[("user", "a"), ("ours", "p")]);
        labelled.metadata.labels = Some([("l".to_owned(), "v".to_owned())].into());
        let mut finalized = annotated("11", 1, &[("user", "a"), ("ours", "p")]);
        finalized.metadata.finalizers = Some(vec!["f".to_owned()]);
        let mut deleted = annotated("11", 1, &[("user", "a"), ("ours", "p")]);
        deleted.metadata.deletion_timestamp = Some(
            k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(Default::default()),
        );
        for (shown, what) in [
            // A spec change made since the reconcile started (generation 2).
            (annotated("11", 2, &[("user", "a"), ("ours", "p")]), "spec"),
            (
                annotated("11", 1, &[("user", "b"), ("ours", "p")]),
                "annotation",
            ),
            (labelled, "labels"),
            (finalized, "finalizers"),
            (deleted, "deletion"),
        ] {
            let writes = StatusWriter::new(offline_client());
            writes.expect_annotation(&seen, "ours", "p");
            assert!(!writes.is_quiet(&shown), "{what}");
            // That version answered the announcement: a later one is not quiet either.
            let later = annotated("12", 1, &[("user", "a"), ("ours", "p")]);
            assert!(!writes.is_quiet(&later), "{what}");
        }
    }

    #[tokio::test]
    async fn a_failed_or_forgotten_announcement_quiets_nothing() {
        let seen = annotated("10", 1, &[]);
        let shown = annotated("11", 1, &[("ours", "p")]);
        let writes = StatusWriter::new(offline_client());
        writes.expect_annotation(&seen, "ours", "p");
        writes.unexpect("uid-1");
        assert!(!writes.is_quiet(&shown), "the write failed");
        writes.expect_annotation(&seen, "ours", "p");
        writes.settle("uid-1", None::<&ConfigMap>);
        assert!(!writes.is_quiet(&shown), "the object is gone");
        writes.expect_annotation(&seen, "ours", "p");
        writes.forget(&seen);
        assert!(!writes.is_quiet(&shown), "the object's cleanup is done");
        assert!(lock(&writes.expected).is_empty());
    }

    #[tokio::test]
    async fn a_stale_cache_gets_our_write_until_it_catches_up() {
        let writes = StatusWriter::new(offline_client());
        writes.record(&cm("10", "old"), cm("11", "new"));
        assert_eq!(data(&writes.freshest(Arc::new(cm("10", "old")))), "new");
        assert_eq!(writes.len(), 1);
        // The cache shows our write: the entry goes.
        assert_eq!(data(&writes.freshest(Arc::new(cm("11", "new")))), "new");
        assert!(writes.is_empty());
        // And a stale read after that is not corrected any more (nothing is remembered).
        assert_eq!(data(&writes.freshest(Arc::new(cm("10", "old")))), "old");
    }

    #[tokio::test]
    async fn two_writes_in_one_reconcile_supersede_both_earlier_versions() {
        let writes = StatusWriter::new(offline_client());
        let seen = cm("10", "none");
        writes.record(&seen, cm("11", "token"));
        writes.record(&seen, cm("12", "token+id"));
        assert_eq!(
            data(&writes.freshest(Arc::new(cm("10", "none")))),
            "token+id"
        );
        assert_eq!(
            data(&writes.freshest(Arc::new(cm("11", "token")))),
            "token+id"
        );
        assert_eq!(writes.len(), 1);
    }

    #[tokio::test]
    async fn a_second_write_of_a_reconcile_compares_with_the_first() {
        let writes = StatusWriter::new(offline_client());
        let seen = cm("10", "none");
        assert!(writes.written_over(&seen).is_none(), "nothing written yet");
        writes.record(&seen, cm("11", "token"));
        let written = writes.written_over(&seen).expect("the first write");
        assert_eq!(data(&written), "token");
        assert_eq!(writes.len(), 1, "the entry stays for `freshest`");
        assert!(writes.written_over(&cm("13", "theirs")).is_none());
    }

    #[tokio::test]
    async fn someone_elses_version_wins_and_clears_the_entry() {
        let writes = StatusWriter::new(offline_client());
        writes.record(&cm("10", "old"), cm("11", "ours"));
        // A user's edit (or a deletion) the cache saw: take it, forget ours.
        assert_eq!(
            data(&writes.freshest(Arc::new(cm("13", "theirs")))),
            "theirs"
        );
        assert!(writes.is_empty());
    }

    #[tokio::test]
    async fn the_watch_drops_the_entry_once_no_reconcile_compares_with_it() {
        let writes = StatusWriter::new(offline_client());
        let seen = cm("10", "old");
        writes.record(&seen, cm("11", "new"));
        // The watch shows the write while the reconcile that made it still runs: kept, since
        // a second write of that reconcile compares with it.
        writes.caught_up(&cm("11", "new"));
        assert_eq!(writes.len(), 1);
        // The reconcile ends before the cache catches up: kept for the next one.
        writes.settle("uid-1", Some(&cm("10", "old")));
        assert_eq!(writes.len(), 1);
        // A superseded version arriving late changes nothing; our write arriving drops it.
        writes.caught_up(&cm("10", "old"));
        assert_eq!(writes.len(), 1);
        writes.caught_up(&cm("11", "new"));
        assert!(writes.is_empty());
    }

    #[tokio::test]
    async fn the_end_of_a_reconcile_drops_the_entry_when_the_cache_has_caught_up() {
        let writes = StatusWriter::new(offline_client());
        writes.record(&cm("10", "old"), cm("11", "new"));
        writes.settle("uid-1", Some(&cm("11", "new")));
        assert!(writes.is_empty());

        // A reconcile that started from our write (the cache was behind) marks the entry busy
        // again; the object gone from the cache drops it.
        writes.record(&cm("10", "old"), cm("11", "new"));
        writes.settle("uid-1", Some(&cm("10", "old")));
        assert_eq!(data(&writes.freshest(Arc::new(cm("10", "old")))), "new");
        writes.caught_up(&cm("11", "new"));
        assert_eq!(writes.len(), 1, "a reconcile is running");
        writes.settle("uid-1", None::<&ConfigMap>);
        assert!(writes.is_empty());
    }

    #[tokio::test]
    async fn forget_drops_the_entry() {
        let writes = StatusWriter::new(offline_client());
        writes.record(&cm("10", "old"), cm("11", "new"));
        writes.forget(&cm("11", "new"));
        assert!(writes.is_empty());
        assert_eq!(data(&writes.freshest(Arc::new(cm("10", "old")))), "old");
    }

    #[tokio::test]
    async fn objects_without_uid_or_version_are_not_tracked() {
        let writes = StatusWriter::new(offline_client());
        let mut anonymous = cm("10", "old");
        anonymous.metadata.uid = None;
        writes.record(&anonymous, cm("11", "new"));
        assert!(writes.is_empty());
    }
}
