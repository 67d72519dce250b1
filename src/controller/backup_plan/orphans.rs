//! The orphan report: DBS plans that look created by this operator but that no object manages,
//! so an interrupted uninstall (or finalizers removed by hand) is visible instead of billing on
//! silently.
//!
//! A plan is recognised by its name: the operator's default plan name is
//! `<namespace>-<object name>` (`requests::plan_name`). DBS keeps no tag or creator for a plan,
//! and CreateBackupPlan takes no name, so this is the one mark the operator leaves. A plan is
//! reported when, after a sweep of its account and region, it is not released, no live object
//! names it (by id in spec, annotation or status, or by plan name), and its name is
//! `<namespace>-<name>` for a namespace the controller watches and has objects in. Plans with a
//! custom `spec.planName`, plans never configured (they have no name yet) and accounts or regions
//! no live object uses any more (nothing sweeps them) are not reported: the report can miss an
//! orphan, and it never touches one.
//!
//! Each orphan is reported once per process, as a Warning Event `CloudResourceOrphaned` about
//! the object it was made for (in that object's namespace) and a `warn` log line; the gauge
//! `alicloud_db_operator_orphaned_resources{kind="BackupPlan"}` holds the current count.

use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::ObjectReference;
use kube::ResourceExt;
use kube::runtime::events::EventType;
use kube::runtime::reflector::Store;

use super::observe::{Listed, PlanInventory};
use super::requests;
use crate::controller::Context;
use crate::controller::cache::{self, Cached};
use crate::controller::events::Events;
use crate::crd::BackupPlan;

/// Reason of the Event reporting an orphan.
pub const REASON: &str = "CloudResourceOrphaned";

/// What the live objects claim, and where they live.
#[derive(Debug, Default)]
pub struct Live {
    /// Plan ids named by an object (spec, annotation or status).
    pub ids: HashSet<String>,
    /// Plan names objects use.
    pub names: HashSet<String>,
    /// Namespaces holding objects, and the watched namespace.
    pub namespaces: BTreeSet<String>,
}

impl Live {
    /// What `objects` claim; `watch_namespace` counts as a namespace of the operator's.
    pub fn of(
        objects: impl IntoIterator<Item = BackupPlan>,
        watch_namespace: Option<&str>,
    ) -> Self {
        let mut live = Live::default();
        live.namespaces.extend(watch_namespace.map(str::to_owned));
        for obj in objects {
            let namespace = obj.namespace().unwrap_or_default();
            if let Some(id) = super::backup_plan_id(&obj) {
                live.ids.insert(id);
            }
            live.names
                .insert(requests::plan_name(&obj.spec, &namespace, &obj.name_any()));
            live.namespaces.insert(namespace);
        }
        live
    }
}

/// A plan no object manages, and the object it was made for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Orphan {
    /// The plan's id.
    pub backup_plan_id: String,
    /// The plan's name at DBS.
    pub plan_name: String,
    /// Namespace of the object its name points to.
    pub namespace: String,
    /// Name of that object.
    pub object: String,
}

/// The plans among `plans` that look made by this operator and that nothing in `live` manages.
pub fn orphans<'a>(plans: impl IntoIterator<Item = &'a Listed>, live: &Live) -> Vec<Orphan> {
    let mut found: Vec<Orphan> = plans
        .into_iter()
        .filter(|p| {
            !live.ids.contains(&p.backup_plan_id) && !live.names.contains(&p.backup_plan_name)
        })
        .filter_map(|p| {
            let (namespace, object) = made_for(&p.backup_plan_name, &live.namespaces)?;
            Some(Orphan {
                backup_plan_id: p.backup_plan_id.clone(),
                plan_name: p.backup_plan_name.clone(),
                namespace,
                object,
            })
        })
        .collect();
    found.sort_by(|a, b| a.backup_plan_id.cmp(&b.backup_plan_id));
    found
}

/// `(namespace, object name)` when `plan_name` is the default plan name of an object in one of
/// `namespaces` (the longest matching namespace wins: `team-a-db` is `team-a`/`db` when both
/// `team` and `team-a` exist).
fn made_for(plan_name: &str, namespaces: &BTreeSet<String>) -> Option<(String, String)> {
    namespaces
        .iter()
        .filter_map(|ns| {
            let object = plan_name.strip_prefix(ns.as_str())?.strip_prefix('-')?;
            is_object_name(object).then(|| (ns.clone(), object.to_owned()))
        })
        .max_by_key(|(ns, _)| ns.len())
}

/// A valid Kubernetes object name (DNS subdomain): lowercase letters, digits, `-` and `.`,
/// starting and ending with a letter or digit, at most 253 characters.
fn is_object_name(name: &str) -> bool {
    let edge = |c: Option<char>| c.is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    !name.is_empty()
        && name.len() <= 253
        && edge(name.chars().next())
        && edge(name.chars().last())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
}

/// The orphans among `swept`. The objects are inflated (one at a time, about 20 µs each) only
/// when a swept plan is not claimed by any object; at steady state none is.
fn unclaimed_orphans(
    plans: &[Arc<Cached<BackupPlan>>],
    swept: &[Listed],
    ctx: &Context,
) -> Vec<Orphan> {
    let claimed: HashSet<&str> = plans
        .iter()
        .filter_map(|p| p.claim())
        .map(|c| c.key)
        .collect();
    let unclaimed: Vec<&Listed> = swept
        .iter()
        .filter(|p| !claimed.contains(p.backup_plan_id.as_str()))
        .collect();
    if unclaimed.is_empty() {
        return Vec::new();
    }
    let live = Live::of(
        cache::inflated(plans),
        ctx.config.watch_namespace.as_deref(),
    );
    orphans(unclaimed, &live)
}

/// Compares the swept plans with the live objects every `period`, once the controller's cache
/// holds every object; runs until dropped.
pub async fn report(
    ctx: Arc<Context>,
    store: Store<Cached<BackupPlan>>,
    inventory: Arc<PlanInventory>,
    period: Duration,
) {
    if !crate::controller::runtime::store_ready(&store).await {
        return;
    }
    let events = Events::new(&ctx);
    let mut reported: HashSet<String> = HashSet::new();
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let found = unclaimed_orphans(&store.state(), &inventory.swept(), &ctx);
        ctx.metrics.set_orphans("BackupPlan", found.len());
        for orphan in &found {
            if !reported.insert(orphan.backup_plan_id.clone()) {
                continue;
            }
            tracing::warn!(
                backup_plan_id = %orphan.backup_plan_id,
                plan_name = %orphan.plan_name,
                namespace = %orphan.namespace,
                object = %orphan.object,
                "DBS plan looks created by this operator, but no BackupPlan manages it"
            );
            let note = format!(
                "DBS backup plan {} ({}) looks created by this operator for BackupPlan {}/{}, but \
                 no object manages it: release it in the DBS console, or create a BackupPlan with \
                 spec.backupPlanId: {} to manage it again",
                orphan.backup_plan_id,
                orphan.plan_name,
                orphan.namespace,
                orphan.object,
                orphan.backup_plan_id
            );
            let about = ObjectReference {
                api_version: Some("db.alicloud.dev/v1alpha1".to_owned()),
                kind: Some("BackupPlan".to_owned()),
                namespace: Some(orphan.namespace.clone()),
                name: Some(orphan.object.clone()),
                ..ObjectReference::default()
            };
            events
                .publish_about(&about, EventType::Warning, REASON, &note)
                .await;
        }
        // An orphan taken over (or released) and orphaned again later is reported again.
        reported.retain(|id| found.iter().any(|o| &o.backup_plan_id == id));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(id: &str, name: &str) -> Listed {
        Listed {
            backup_plan_id: id.into(),
            backup_plan_name: name.into(),
        }
    }

    fn live(ids: &[&str], names: &[&str], namespaces: &[&str]) -> Live {
        Live {
            ids: ids.iter().map(|s| (*s).to_owned()).collect(),
            names: names.iter().map(|s| (*s).to_owned()).collect(),
            namespaces: namespaces.iter().map(|s| (*s).to_owned()).collect(),
        }
    }

    fn ids(found: &[Orphan]) -> Vec<&str> {
        found.iter().map(|o| o.backup_plan_id.as_str()).collect()
    }

    #[test]
    fn a_plan_with_a_default_name_and_no_object_is_an_orphan() {
        let plans = [
            plan("dbs1", "shop-orders"),     // its object is gone
            plan("dbs2", "shop-invoices"),   // managed, by id
            plan("dbs3", "shop-renamed"),    // managed, by its (custom) name
            plan("dbs4", "nightly-export"),  // a plan the operator did not name
            plan("dbs5", "other-ns-orders"), // a namespace the operator has no object in
            plan("dbs6", "shop-Bad_Name"),   // not an object name
            plan("dbs7", ""),                // never configured
        ];
        let live = live(&["dbs2"], &["shop-renamed", "shop-invoices"], &["shop"]);
        let found = orphans(&plans, &live);
        assert_eq!(ids(&found), ["dbs1"]);
        assert_eq!(
            (found[0].namespace.as_str(), found[0].object.as_str()),
            ("shop", "orders")
        );
    }

    #[test]
    fn the_longest_namespace_wins() {
        let live = live(&[], &[], &["team", "team-a"]);
        let found = orphans(&[plan("dbs1", "team-a-db")], &live);
        assert_eq!(
            (found[0].namespace.as_str(), found[0].object.as_str()),
            ("team-a", "db")
        );
    }

    #[test]
    fn object_names_follow_kubernetes_rules() {
        assert!(is_object_name("orders.v2-db"));
        for bad in ["", "-a", "a-", "A", "a_b", &"a".repeat(254)] {
            assert!(!is_object_name(bad), "{bad:?}");
        }
    }
}
