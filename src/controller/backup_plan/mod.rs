//! BackupPlan controller: keeps a DBS backup plan created, configured, started and in line with
//! its `BackupPlan` object, and releases (or stops, or keeps) it when the object is deleted.
//!
//! Each reconcile reads as observe → decide → act → report: `decide::decide` picks the one
//! next step from the spec, the status and the observed plan (pure, table-tested); `act`
//! performs the step's one call to DBS; `report` writes the status (server-side apply, field
//! manager `alicloud-db-operator`) plus one Event per Ready transition. Steady-state
//! observations come from the shared `observe::PlanInventory`, filled by one batched listing
//! per account, region and resync period.
//!
//! DBS as it really behaves: StartBackupPlan is sent once per configuration (recorded in the
//! status before the call) and DBS's asynchronous precheck is then watched, never restarted;
//! drift is compared by meaning, and a modification DBS does not keep is reported
//! (`DriftNotConverging`) after three reconciles instead of being sent forever.
//!
//! Never two plans for one object: the id of a created plan goes to the annotation
//! `db.alicloud.dev/backup-plan-id` before anything else (restores and copies keep annotations,
//! not status), and before any CreateBackupPlan the object's plan is looked for by its plan
//! name and taken over when DBS has it. One plan, one object: a plan another object manages is
//! left alone (`AlreadyManaged`, see the runtime).
//!
//! Deletion releases (or stops, or keeps) the plan; it never creates one. When the finalizer
//! may go without a release is the runtime's rule (`controller::deletion`).

mod act;
mod cleanup;
mod decide;
mod observe;
mod orphans;
mod report;
mod requests;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::jiff::Timestamp;
use kube::core::PartialObjectMeta;
use kube::runtime::controller::Action;
use kube::runtime::reflector::ObjectRef;
use kube::runtime::{WatchStreamExt, reflector, watcher};
use kube::{Resource as _, ResourceExt};

use self::decide::{Facts, Step};
use self::observe::PlanInventory;
use self::report::{Outcome, Reason};
use super::cache::Cached;
use super::claims::Claim;
use super::runtime::{self, Reconciler, Runtime};
use super::turns::Turns;
use super::{Context, Error};
use crate::cloud::Scope;
use crate::crd::{BACKUP_PLAN_ID_ANNOTATION, BackupPlan, BackupPlanStatus, annotation};
use crate::sync::lock;

/// Runs the BackupPlan controller until the process receives SIGTERM or SIGINT (in-flight
/// reconciles finish first) or the task is dropped.
pub async fn run(ctx: Arc<Context>) {
    // Secrets are watched for their metadata only (no Secret data flows through the operator):
    // a change is a trigger for the plans that name the Secret, and the versions kept in
    // `ctx.secrets` spare a Ready plan's resync its Secret reads (see `credentials::cache`).
    // The password itself is read by name when a plan needs it.
    let config = watcher::Config::default().any_semantic();
    let (seen, writer) = reflector::store();
    let secrets = watcher(ctx.watched::<PartialObjectMeta<Secret>>(), config.clone())
        .modify(|secret| super::status::strip(&mut secret.metadata))
        .reflect(writer)
        .touched_objects();
    let _following = ctx.secrets.follow(seen);
    let kind = BackupPlans::default();
    let inventory = kind.inventory.clone();
    let mut orphan_report = None;
    runtime::run(ctx.clone(), kind, config, |controller| {
        let plans = controller.store();
        orphan_report = Some(AbortOnDrop(tokio::spawn(orphans::report(
            ctx.clone(),
            plans.clone(),
            inventory,
            ctx.config.resync_period,
        ))));
        controller.watches_stream(secrets, move |secret| {
            referencing_plans(&plans.state(), &secret)
        })
    })
    .await;
}

/// Stops a task when the controller that started it stops (or its future is dropped).
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Where a step leaves the object.
enum Stepped {
    /// The step's outcome, for the status.
    Done(Outcome),
    /// Nothing done and nothing to report: look again after this long (the plan is not observed
    /// yet, or a call waits for its turn).
    Later(Duration),
}

/// The BackupPlan kind, as the runtime drives it.
#[derive(Default)]
struct BackupPlans {
    /// What DBS was last seen to hold, shared by every reconcile.
    inventory: Arc<PlanInventory>,
    /// The modification each drifting object needed, and in how many reconciles in a row.
    drift: DriftMemory,
    /// Turns booked under the accounts' quotas for creates and configures.
    turns: Turns,
}

/// After this many reconciles in a row needing the same modification, it is reported as
/// `DriftNotConverging` instead of being sent again: DBS does not keep what it is sent (or
/// describes it differently), and each source change would restart the precheck forever.
const DRIFT_REPEATS: u32 = 3;

/// Per object (UID): the last modification needed (with DBS's value) and how many reconciles
/// in a row needed it. Only drifting objects have an entry.
#[derive(Default)]
struct DriftMemory(Mutex<HashMap<String, (String, u32)>>);

impl DriftMemory {
    /// `step`, unless it is the same modification for the [`DRIFT_REPEATS`]th time in a row:
    /// then a `DriftNotConverging` stall naming both values.
    fn check(&self, uid: &str, step: Step, facts: &Facts<'_>) -> Step {
        let mut memory = lock(&self.0);
        let Step::Modify(m) = &step else {
            memory.remove(uid);
            return step;
        };
        let (want, have) = decide::difference(facts, m);
        let seen = format!("{m:?} {have}");
        let entry = memory
            .entry(uid.to_owned())
            .or_insert_with(|| (seen.clone(), 0));
        if entry.0 != seen {
            *entry = (seen, 0);
        }
        entry.1 += 1;
        if entry.1 < DRIFT_REPEATS {
            return step;
        }
        Step::Stalled {
            reason: Reason::DriftNotConverging,
            message: format!(
                "the same change was needed {DRIFT_REPEATS} times in a row and DBS still \
                 describes {have:?} where the spec asks for {want:?}; not sent again until the \
                 spec or the plan changes"
            ),
        }
    }

    /// Drops what is known of an object.
    fn forget(&self, uid: &str) {
        lock(&self.0).remove(uid);
    }
}

#[async_trait]
impl Reconciler for BackupPlans {
    type Object = BackupPlan;
    const CONTROLLER: &'static str = "backupplan";

    async fn apply(&self, obj: &BackupPlan, rt: &Runtime<BackupPlan>) -> Result<Action, Error> {
        let mut status = obj.status.clone().unwrap_or_default();
        let outcome = match self.step(obj, rt, &mut status).await {
            Ok(Stepped::Done(outcome)) => Ok(outcome),
            Ok(Stepped::Later(wait)) => return Ok(Action::requeue(wait)),
            Err(e) => Err(e),
        };
        report::report(rt, obj, status, outcome).await
    }

    async fn cleanup(&self, obj: &BackupPlan, rt: &Runtime<BackupPlan>) -> Result<Action, Error> {
        let uid = obj.uid().unwrap_or_default();
        self.drift.forget(&uid);
        self.turns.forget(&uid);
        cleanup::cleanup(rt, &self.inventory, obj).await
    }

    fn resource(obj: &BackupPlan) -> String {
        backup_plan_id(obj).map_or_else(
            || "the backup plan of this object".to_owned(),
            |id| format!("backup plan {id}"),
        )
    }
}

impl BackupPlans {
    /// Observe → decide → act; `status` is updated with what the step learnt and sent.
    async fn step(
        &self,
        obj: &BackupPlan,
        rt: &Runtime<BackupPlan>,
        status: &mut BackupPlanStatus,
    ) -> Result<Stepped, Error> {
        let config = &rt.ctx.config;
        let plan_name = requests::plan_name(
            &obj.spec,
            &obj.namespace().unwrap_or_default(),
            &obj.name_any(),
        );
        let id = backup_plan_id(obj);
        let mut facts = Facts {
            spec: &obj.spec,
            plan_name: &plan_name,
            backup_plan_id: id.as_deref(),
            recorded_plan_id: annotation(&obj.metadata, BACKUP_PLAN_ID_ANNOTATION),
            created_at: status.created_at.as_ref().map(|t| t.0),
            observed: None,
            applied_password_version: status.source_password_version.as_deref(),
            current_password_version: None,
            applied_backup_log_interval_seconds: status.backup_log_interval_seconds,
            configure_delay: config.configure_delay,
            precheck_started_at: status.precheck_started_at.as_ref().map(|t| t.0),
            create_conflict: create_conflict(obj),
        };
        // What needs no cloud call comes first: a bad spec makes none.
        let step = decide::decide(&facts, Timestamp::now());
        let uid = obj.uid().unwrap_or_default();
        if matches!(step, Step::Stalled { .. }) {
            return Ok(Stepped::Done(report::settle(id.as_deref(), &step, config)));
        }
        if obj.spec.backup_plan_id.is_none()
            && let Some(id) = &status.backup_plan_id
            && facts.recorded_plan_id.is_none()
        {
            // An object from before the annotation existed: record its plan where it lasts.
            act::record_plan_id(rt, obj, id).await?;
        }
        let scope = observe::scope(rt, obj).await?;
        if step == Step::Create
            && let Some(wait) = self
                .wait_for_turn(rt, &uid, "CreateBackupPlan", &scope)
                .await
        {
            // Before the password is read, which the create reads when it comes back. Nothing
            // is written: the status a create writes before the call records its ClientToken,
            // and a deletion that finds one looks for a plan that was never bought.
            return Ok(Stepped::Later(wait));
        }
        let Some(mut observed) =
            observe::observe(rt, &self.inventory, obj, scope, id.as_deref()).await?
        else {
            // Not observed yet (its account is still being listed): nothing to report.
            return Ok(Stepped::Later(observe::NOT_OBSERVED_REQUEUE));
        };
        facts.current_password_version = observed.password_version();
        facts.observed = observed.sighting.as_ref().map(|s| &s.observation);
        facts.created_at = observed.created_at(status);
        let step = decide::decide(&facts, Timestamp::now());
        let step = self.drift.check(&uid, step, &facts);
        if let (Some(id), Some(sighting)) = (id.as_deref(), &observed.sighting) {
            report::record_sighting(status, id, sighting);
        }
        if step == Step::Configure
            && let Some(wait) = self
                .wait_for_turn(rt, &uid, "ConfigureBackupPlan", &observed.scope)
                .await
        {
            // Its status says `WaitingToConfigure` already.
            return Ok(Stepped::Later(wait));
        }
        if step.sends_password() {
            observed.read_password(rt, obj).await?;
        }
        let modifies = matches!(step, Step::Modify(_));
        let acted = act::act(
            rt,
            &self.inventory,
            obj,
            &plan_name,
            &observed,
            step,
            status,
        )
        .await;
        if modifies && acted.is_err() {
            // DBS refused the call or never answered: a failed call is no sign that DBS does
            // not keep the value, so an outage never turns into `DriftNotConverging`.
            self.drift.forget(&uid);
        }
        acted.map(Stepped::Done)
    }

    /// How long a call of `action` (a create or a configure) waits for its turn under the
    /// account's quota, when that is more than [`HOLD`](super::turns::HOLD): the object is
    /// requeued for its turn (see [`super::turns`]).
    async fn wait_for_turn(
        &self,
        rt: &Runtime<BackupPlan>,
        uid: &str,
        action: &'static str,
        scope: &Scope,
    ) -> Option<Duration> {
        let wait = self
            .turns
            .wait(uid, action, || rt.ctx.dbs.turn(scope, action))
            .await?;
        tracing::debug!(
            action,
            wait_ms = wait.as_millis() as u64,
            "waiting for a turn under the account's quota"
        );
        Some(wait)
    }
}

/// The plan the object names or holds; created by it unless named by `spec.backupPlanId`.
fn claim(obj: &BackupPlan) -> Option<Claim> {
    Some(Claim {
        key: backup_plan_id(obj)?,
        created: obj.spec.backup_plan_id.is_none(),
    })
}

/// The plans whose password or credentials live in `secret`: a change of the Secret (a rotated
/// password, fixed credentials) reconciles them at once instead of at the next resync.
fn referencing_plans(
    plans: &[Arc<Cached<BackupPlan>>],
    secret: &PartialObjectMeta<Secret>,
) -> Vec<ObjectRef<Cached<BackupPlan>>> {
    let name = secret.name_any();
    plans
        .iter()
        .filter(|p| p.meta().namespace == secret.metadata.namespace)
        .filter(|p| p.reads_secret(&name))
        .map(|p| ObjectRef::from_obj(&**p))
        .collect()
}

/// The message of the `CreateConflict` stall reported for the object's current generation.
fn create_conflict(obj: &BackupPlan) -> Option<&str> {
    let status = obj.status.as_ref()?;
    let stalled = status
        .conditions
        .iter()
        .find(|c| c.type_ == super::conditions::STALLED)?;
    let current = stalled.observed_generation.is_some()
        && stalled.observed_generation == obj.metadata.generation;
    (current && stalled.status == "True" && stalled.reason == Reason::CreateConflict.as_str())
        .then_some(stalled.message.as_str())
}

/// The object's plan id: adopted (`spec.backupPlanId`), else created or found by name (the
/// annotation, then `status.backupPlanId`).
fn backup_plan_id(obj: &BackupPlan) -> Option<String> {
    obj.spec
        .backup_plan_id
        .clone()
        .or_else(|| annotation(&obj.metadata, BACKUP_PLAN_ID_ANNOTATION).map(str::to_owned))
        .or_else(|| obj.status.as_ref().and_then(|s| s.backup_plan_id.clone()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controller::backup_plan::decide::Modification;
    use crate::controller::backup_plan::observe::Observation;

    #[test]
    fn the_same_modification_three_times_in_a_row_stalls() {
        let spec: crate::crd::BackupPlanSpec = serde_json::from_value(serde_json::json!({
            "region": "cn-hangzhou", "databaseType": "MySQL", "instanceClass": "micro",
            "backupMethod": "logical", "source": {"instanceType": "Other", "host": "h", "port": 1},
        }))
        .expect("a valid spec");
        let observed = Observation::Found(Box::default());
        let facts = Facts {
            spec: &spec,
            plan_name: "ns-bp",
            backup_plan_id: Some("dbsabc123"),
            recorded_plan_id: None,
            created_at: None,
            observed: Some(&observed),
            applied_password_version: None,
            current_password_version: None,
            applied_backup_log_interval_seconds: None,
            configure_delay: std::time::Duration::from_secs(5),
            precheck_started_at: None,
            create_conflict: None,
        };
        let memory = DriftMemory::default();
        let rename = || Step::Modify(Modification::Name("ns-bp".into()));
        let other = || Step::Modify(Modification::Name("other".into()));
        assert_eq!(memory.check("u", rename(), &facts), rename());
        assert_eq!(memory.check("u", rename(), &facts), rename());
        assert!(matches!(
            memory.check("u", rename(), &facts),
            Step::Stalled { reason: Reason::DriftNotConverging, ref message } if message.contains("\"ns-bp\"")
        ));
        assert!(matches!(
            memory.check("u", rename(), &facts),
            Step::Stalled { .. }
        ));
        assert_eq!(memory.check("v", rename(), &facts), rename(), "per object");
        assert_eq!(
            memory.check("u", other(), &facts),
            other(),
            "another change starts over"
        );
        assert_eq!(memory.check("u", Step::Ready, &facts), Step::Ready);
        assert_eq!(
            memory.check("u", other(), &facts),
            other(),
            "a step in between starts over"
        );
    }
}
