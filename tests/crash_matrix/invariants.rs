//! What must hold once the operator has settled after any number of SIGKILLs, checked against
//! the live objects of the world's namespace and the emulator's inventory:
//!
//! 1. **No stuck object**: no BackupPlan or RdsConnection carries a deletion timestamp (every
//!    deletion asked for has completed, its finalizer removed), and every object the test
//!    deleted is gone.
//! 2. **Settled**: every live object is Ready (`Available`) for its current generation, with one
//!    exception the design implies and the test names: a plan whose StartBackupPlan was lost to
//!    the kill (the start is recorded in the status before the call, so that a restart during
//!    the precheck does not start, and back up, twice; a kill after that record and before DBS
//!    got the call leaves DBS's plan `init` with no precheck). The operator takes such a plan for
//!    one whose precheck runs and starts it again only after `PRECHECK_TIMEOUT` (15 min), so it
//!    is accepted here as `Reconciling`/`Prechecking` of its current generation, with DBS's plan
//!    `init`, configured with the spec's schedule, and no precheck running, for
//!    [`LOST_START_HOLDS`] (a start on its way looks the same until it reaches DBS; see
//!    [`lost_start`]).
//! 3. **Plans = objects**: the ids of the live BackupPlans are distinct, and the plans DBS holds
//!    unreleased are exactly those ids: no leak (an unreleased plan nobody manages) and nothing
//!    missing. Each is `running` with the schedule its object's spec says now.
//! 4. **No duplicate create**: every plan DBS ever created (released ones included) has its own
//!    ClientToken, and there are at most as many as BackupPlan objects were created: a repeated
//!    CreateBackupPlan after a crash only ever got the same plan back (the ClientToken's
//!    idempotency), never a second one.
//! 5. **Endpoints = objects**: an RDS instance a live RdsConnection names has exactly one public
//!    endpoint, with the spec's prefix and port, and it is the one the status shows; every other
//!    instance has none (released when its object was deleted).
//! 6. **No duplicate allocate**: at most one successful AllocateInstancePublicConnection per
//!    RdsConnection object created.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use alicloud_db_operator::crd::{BackupPlan, RdsConnection};
use kube::ResourceExt;
use kube::api::ListParams;

use crate::common::{World, is, is_ready};

/// How many objects of each kind the test created in the world, over its whole run.
#[derive(Clone, Copy, Debug, Default)]
pub struct Created {
    /// BackupPlan objects created.
    pub plans: usize,
    /// RdsConnection objects created.
    pub connections: usize,
}

/// The API form of a schedule's weekdays (`Monday,Thursday`), as DBS stores `BackupPeriod`.
fn backup_period(plan: &BackupPlan) -> Option<String> {
    let schedule = plan.spec.schedule.as_ref()?;
    let days: Vec<String> = schedule
        .weekdays
        .iter()
        .map(|d| {
            serde_json::to_value(d)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default()
        })
        .collect();
    Some(days.join(","))
}

/// The live objects of `K` in the world's namespace.
async fn live<K: crate::common::world::Object>(w: &World) -> Vec<K> {
    w.api::<K>()
        .list(&ListParams::default())
        .await
        .expect("list objects")
        .items
}

/// Whether `plan` is waiting out a StartBackupPlan lost to a kill (invariant 2's exception):
/// it says it prechecks (its current generation, the start recorded), while DBS holds its plan
/// `init` with no precheck running, so DBS never got the start.
pub fn lost_start(w: &World, plan: &BackupPlan) -> bool {
    let Some(status) = plan.status.as_ref() else {
        return false;
    };
    let Some(id) = status.backup_plan_id.as_deref() else {
        return false;
    };
    let prechecking = is(plan, "Reconciling", "True", "Prechecking")
        && status.observed_generation == plan.metadata.generation
        && status.precheck_started_at.is_some();
    let snapshot = w.snapshot();
    prechecking
        && snapshot
            .plan(id)
            .is_some_and(|p| p.status == "init" && p.precheck.is_none())
}

/// How long a plan must keep looking like a lost start before [`settled`] believes it: the
/// operator records a start in the status before it sends StartBackupPlan, so until the call
/// reaches DBS a start on its way looks exactly like a lost one. With the faults cleared the
/// call arrives within milliseconds; a lost start looks the same for 15 minutes.
const LOST_START_HOLDS: Duration = Duration::from_secs(2);

/// Whether the world has settled: `Ok` when every object is Ready for its generation (or waits
/// out a lost start, see [`lost_start`], for [`LOST_START_HOLDS`]) and none is being deleted,
/// else what is not yet so (for [`crate::common::eventually`]).
pub async fn settled(w: &World) -> Result<(), String> {
    let lost = unsettled(w).await?;
    if lost == 0 {
        return Ok(());
    }
    tokio::time::sleep(LOST_START_HOLDS).await;
    unsettled(w).await.map(|_| ())
}

/// The objects not yet settled, or how many plans were taken for lost starts.
async fn unsettled(w: &World) -> Result<usize, String> {
    let mut pending = Vec::new();
    let mut lost = 0;
    for p in live::<BackupPlan>(w).await {
        let ready = is_ready(&p);
        let waits = !ready && lost_start(w, &p);
        lost += usize::from(waits);
        if p.metadata.deletion_timestamp.is_some() || !(ready || waits) {
            pending.push(format!("BackupPlan {}: {}", p.name_any(), summary(&p)));
        }
    }
    for c in live::<RdsConnection>(w).await {
        if c.metadata.deletion_timestamp.is_some() || !is_ready(&c) {
            pending.push(format!("RdsConnection {}: {}", c.name_any(), summary(&c)));
        }
    }
    if pending.is_empty() {
        Ok(lost)
    } else {
        Err(pending.join("\n"))
    }
}

/// The object's generation, annotations and status, for failure messages.
fn summary<K: serde::Serialize>(obj: &K) -> String {
    let v = serde_json::to_value(obj).unwrap_or_default();
    format!(
        "generation {}, annotations {}, status {}",
        v["metadata"]["generation"], v["metadata"]["annotations"], v["status"]
    )
}

/// Asserts invariants 1 to 6 (see the module documentation); `deleted` names the objects the
/// test deleted, which must be gone.
pub async fn assert_inventory_matches(w: &World, created: Created, deleted: &[String]) {
    let plans: Vec<BackupPlan> = live(w).await;
    let connections: Vec<RdsConnection> = live(w).await;
    let snapshot = w.snapshot();

    // 1 and 2.
    settled(w).await.expect("every live object settled");
    let names: BTreeSet<String> = plans
        .iter()
        .map(ResourceExt::name_any)
        .chain(connections.iter().map(ResourceExt::name_any))
        .collect();
    for name in deleted {
        assert!(!names.contains(name), "{name} was deleted but still exists");
    }

    // 3.
    let mut live_ids = BTreeSet::new();
    for p in &plans {
        let id = p
            .status
            .as_ref()
            .and_then(|s| s.backup_plan_id.clone())
            .unwrap_or_else(|| panic!("{} is Ready without a plan id", p.name_any()));
        assert!(
            live_ids.insert(id.clone()),
            "two objects manage plan {id} (a duplicate adoption)"
        );
        let at_dbs = snapshot
            .plan(&id)
            .unwrap_or_else(|| panic!("{}: plan {id} unknown at DBS", p.name_any()));
        if lost_start(w, p) {
            eprintln!(
                "{}: plan {id} waits out a StartBackupPlan lost to the kill (DBS: init, no \
                 precheck); started again after PRECHECK_TIMEOUT",
                p.name_any()
            );
        } else {
            assert_eq!(at_dbs.status, "running", "{}: {at_dbs:#?}", p.name_any());
        }
        assert_eq!(
            at_dbs.backup_period,
            backup_period(p),
            "{}: DBS runs the schedule of the spec",
            p.name_any()
        );
        assert_eq!(
            at_dbs.backup_start_time.as_deref(),
            p.spec.schedule.as_ref().map(|s| s.start_time.as_str()),
            "{}: DBS runs the start time of the spec",
            p.name_any()
        );
    }
    let unreleased: BTreeSet<String> = snapshot
        .plans
        .iter()
        .filter(|p| p.status != "released")
        .map(|p| p.backup_plan_id.clone())
        .collect();
    assert_eq!(
        unreleased, live_ids,
        "the plans DBS holds unreleased are exactly those of the live objects (a leak, or a plan \
         missing)"
    );

    // 4.
    let mut tokens: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for p in &snapshot.plans {
        let token = p.client_token.clone().unwrap_or_default();
        tokens
            .entry(token)
            .or_default()
            .push(p.backup_plan_id.clone());
    }
    for (token, ids) in &tokens {
        assert_eq!(ids.len(), 1, "ClientToken {token:?} bought plans {ids:?}");
    }
    assert!(
        snapshot.plans.len() <= created.plans,
        "{} plans at DBS for {} BackupPlan objects: a duplicate create\n{:#?}",
        snapshot.plans.len(),
        created.plans,
        snapshot.plans
    );

    // 5.
    let mut claimed: BTreeMap<&str, &RdsConnection> = BTreeMap::new();
    for c in &connections {
        let before = claimed.insert(c.spec.db_instance_id.as_str(), c);
        assert!(
            before.is_none(),
            "two live objects on {}",
            c.spec.db_instance_id
        );
    }
    for instance in &snapshot.instances {
        let public = snapshot.public_connections(Some(&instance.db_instance_id));
        match claimed.get(instance.db_instance_id.as_str()) {
            Some(c) => {
                assert_eq!(
                    public.len(),
                    1,
                    "{}: exactly its one public endpoint on {}: {public:#?}",
                    c.name_any(),
                    instance.db_instance_id
                );
                let endpoint = public[0];
                assert_eq!(endpoint.prefix(), c.spec.connection_string_prefix);
                assert_eq!(i32::from(endpoint.port), c.spec.port);
                let status = c.status.as_ref().and_then(|s| s.connection_string.clone());
                assert_eq!(
                    status.as_deref(),
                    Some(endpoint.connection_string.as_str()),
                    "{}: the status shows the endpoint",
                    c.name_any()
                );
            }
            None => assert!(
                public.is_empty(),
                "{} has public endpoints no live object manages (a leak): {public:#?}",
                instance.db_instance_id
            ),
        }
    }

    // 6.
    let allocated = snapshot
        .calls_of("AllocateInstancePublicConnection")
        .filter(|c| c.outcome == "Success")
        .count();
    assert!(
        allocated <= created.connections,
        "{allocated} endpoints allocated for {} RdsConnection objects",
        created.connections
    );
}
