//! One cloud resource, one object: which object manages a cloud resource that several objects
//! name (two BackupPlans with the same `spec.backupPlanId`, two RdsConnections for the same
//! instance). Only that object calls mutating actions on it and releases it; the others are
//! `Stalled` with reason `AlreadyManaged`, and deleting them releases nothing.
//!
//! The manager is, among the objects of the controller's cache claiming the same key: an object
//! that created the resource (or recorded it as its own) before one that merely names it in its
//! spec; then the oldest; then by namespace, name and UID, so every replica and every reconcile
//! picks the same one. An object whose deletion has finished on our side (finalizer gone) no
//! longer claims anything.

use std::cmp::Ordering;
use std::sync::Arc;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::jiff::Timestamp;
use kube::Resource;

use super::FINALIZER;

/// The cloud resource an object claims.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Claim {
    /// Identifies the cloud resource across objects of one kind (a plan id, an instance id).
    pub key: String,
    /// Whether the object created the resource or recorded it as its own (status, annotation),
    /// rather than only naming it in its spec.
    pub created: bool,
}

/// A claim as a cache holds it: borrowed from the cached object.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClaimRef<'a> {
    /// [`Claim::key`].
    pub key: &'a str,
    /// [`Claim::created`].
    pub created: bool,
}

impl Claim {
    /// The claim, borrowed.
    pub fn as_ref(&self) -> ClaimRef<'_> {
        ClaimRef {
            key: &self.key,
            created: self.created,
        }
    }
}

/// The object other than `obj` that manages the resource of `claim`, were `obj` to claim it as
/// `claim`, if another one does. `claim_of` tells what each of `objects` claims (nothing once
/// [`finished`]).
pub fn manager_among<K: Resource, C: Resource>(
    obj: &K,
    claim: Claim,
    objects: &[Arc<C>],
    claim_of: impl for<'a> Fn(&'a C) -> Option<ClaimRef<'a>>,
) -> Option<Arc<C>> {
    let uid = &obj.meta().uid;
    let claim = claim.as_ref();
    let mut best: Option<(&Arc<C>, ClaimRef<'_>)> = None;
    for other in objects {
        let Some(other_claim) = claim_of(other).filter(|c| c.key == claim.key) else {
            continue;
        };
        if &other.meta().uid == uid {
            continue;
        }
        let better = match &best {
            None => true,
            Some((b, b_claim)) => rank(other.meta(), other_claim, b.meta(), *b_claim).is_lt(),
        };
        if better {
            best = Some((other, other_claim));
        }
    }
    let (best, best_claim) = best?;
    rank(best.meta(), best_claim, obj.meta(), claim)
        .is_lt()
        .then(|| best.clone())
}

/// Whether `a` (claiming `ca`) comes before `b` (claiming `cb`) as the manager.
fn rank(a: &ObjectMeta, ca: ClaimRef<'_>, b: &ObjectMeta, cb: ClaimRef<'_>) -> Ordering {
    type Key<'a> = (
        bool,
        bool,
        Option<Timestamp>,
        Option<&'a str>,
        Option<&'a str>,
        Option<&'a str>,
    );
    fn key<'a>(o: &'a ObjectMeta, c: ClaimRef<'_>) -> Key<'a> {
        let created = o.creation_timestamp.as_ref().map(|t| t.0);
        (
            !c.created,
            created.is_none(),
            created,
            o.namespace.as_deref(),
            o.name.as_deref(),
            o.uid.as_deref(),
        )
    }
    key(a, ca).cmp(&key(b, cb))
}

/// Whether the object is being deleted and our finalizer is already gone: it claims nothing.
pub fn finished(meta: &ObjectMeta) -> bool {
    meta.deletion_timestamp.is_some() && !meta.finalizers.iter().flatten().any(|f| f == FINALIZER)
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::ConfigMap;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    use kube::ResourceExt;

    use super::*;

    /// Objects for the table: ConfigMaps whose `data.claim` is the key and `data.created`
    /// says whether they created it.
    fn object(name: &str, created_at: i64, key: &str, created: bool) -> Arc<ConfigMap> {
        Arc::new(ConfigMap {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some("ns".into()),
                uid: Some(format!("uid-{name}")),
                creation_timestamp: Some(Time(Timestamp::from_second(created_at).expect("valid"))),
                finalizers: Some(vec![FINALIZER.into()]),
                ..ObjectMeta::default()
            },
            data: Some(
                [
                    ("claim".to_owned(), key.to_owned()),
                    ("created".to_owned(), created.to_string()),
                ]
                .into(),
            ),
            ..ConfigMap::default()
        })
    }

    fn claim_of(o: &ConfigMap) -> Option<ClaimRef<'_>> {
        if finished(&o.metadata) {
            return None;
        }
        let data = o.data.as_ref()?;
        let key = data.get("claim").filter(|k| !k.is_empty())?;
        Some(ClaimRef {
            key,
            created: data.get("created").is_some_and(|c| c == "true"),
        })
    }

    fn manager_of(obj: &Arc<ConfigMap>, all: &[Arc<ConfigMap>]) -> Option<String> {
        let c = claim_of(obj)?;
        let claim = Claim {
            key: c.key.to_owned(),
            created: c.created,
        };
        manager_among(&**obj, claim, all, claim_of).map(|o| o.name_any())
    }

    #[test]
    fn the_creator_then_the_oldest_manages_a_resource() {
        let creator = object("creator", 200, "dbs1", true);
        let older_adopter = object("older", 100, "dbs1", false);
        let newer_adopter = object("newer", 300, "dbs1", false);
        let elsewhere = object("other", 50, "dbs2", true);
        let unclaimed = object("none", 10, "", false);
        let all = [
            creator.clone(),
            older_adopter.clone(),
            newer_adopter.clone(),
            elsewhere.clone(),
            unclaimed.clone(),
        ];
        assert_eq!(manager_of(&creator, &all), None, "the creator manages");
        assert_eq!(manager_of(&older_adopter, &all).as_deref(), Some("creator"));
        assert_eq!(manager_of(&newer_adopter, &all).as_deref(), Some("creator"));
        assert_eq!(manager_of(&elsewhere, &all), None, "another resource");
        assert_eq!(manager_of(&unclaimed, &all), None, "no claim, no manager");

        let adopters = [older_adopter.clone(), newer_adopter.clone()];
        assert_eq!(manager_of(&older_adopter, &adopters), None, "oldest first");
        assert_eq!(
            manager_of(&newer_adopter, &adopters).as_deref(),
            Some("older")
        );
    }

    #[test]
    fn ties_are_broken_by_name_and_a_finished_deletion_claims_nothing() {
        let a = object("a", 100, "rm-1", false);
        let b = object("b", 100, "rm-1", false);
        let all = [a.clone(), b.clone()];
        assert_eq!(manager_of(&a, &all), None);
        assert_eq!(manager_of(&b, &all).as_deref(), Some("a"));

        let mut gone = (*a).clone();
        gone.metadata.deletion_timestamp = gone.metadata.creation_timestamp.clone();
        gone.metadata.finalizers = None;
        let all = [Arc::new(gone), b.clone()];
        assert_eq!(
            manager_of(&b, &all),
            None,
            "a's release is done: b takes over"
        );
    }
}
