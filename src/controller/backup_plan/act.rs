//! Act: the only place that changes anything at DBS for this kind: one create, configure,
//! start or modify per reconcile, and what deletion does to the plan.

use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use kube::runtime::controller::Action;

use super::decide::{self, Modification, Step, elapsed, precheck_poll, remaining};
use super::observe::{Observation, Observed, PlanInventory, describe_one};
use super::report::{self, AFTER_CHANGE, Outcome, Reason, ceil_second};
use super::requests;
use crate::cloud::dbs::{
    BackupPlanDetail, DescribeBackupPlanList, ModifyOutcome, PlanStatus, StopMethod,
};
use crate::cloud::{CloudError, DbsApi, ErrorKind, Scope};
use crate::controller::Error;
use crate::controller::claims::Claim;
use crate::controller::conditions::Phase;
use crate::controller::failpoint::{self, Failpoint};
use crate::controller::runtime::{Runtime, RuntimeReason};
use crate::crd::{BACKUP_PLAN_ID_ANNOTATION, BackupPlan, BackupPlanSpec, BackupPlanStatus};

/// Alibaba's answer to a ClientToken reused with different parameters.
const IDEMPOTENT_PARAMETER_MISMATCH: &str = "IdempotentParameterMismatch";

/// How long after the creation a refused ConfigureBackupPlan is waited out, whatever its code.
const CONFIGURE_GRACE: Duration = Duration::from_secs(60);

/// Performs `step` (at most one change at DBS) and says where it leaves the object; `status` is
/// updated with what the step sent. `plan_name` is the plan's name at DBS.
pub async fn act(
    rt: &Runtime<BackupPlan>,
    inventory: &PlanInventory,
    obj: &BackupPlan,
    plan_name: &str,
    observed: &Observed,
    step: Step,
    status: &mut BackupPlanStatus,
) -> Result<Outcome, Error> {
    let ctx = &rt.ctx;
    let spec = &obj.spec;
    let scope = &observed.scope;
    let id = status.backup_plan_id.clone().unwrap_or_default();
    let password_version = || observed.password_version().map(str::to_owned);
    let sends_password = step.sends_password();
    match step {
        Step::Create => create(rt, inventory, obj, plan_name, scope, status).await,
        Step::Configure => {
            let created = observed.created_at(status);
            if let Some(left) = remaining(created, ctx.config.configure_delay, Timestamp::now()) {
                // Back a little early (see `decide::CONFIGURE_LEAD`): the password is read and
                // the turn booked; the call goes out when DBS accepts it.
                tokio::time::sleep(left).await;
            }
            let req = requests::configure_request(spec, &id, plan_name, observed.password());
            inventory.mark_named(&*ctx.dbs, scope, plan_name).await;
            if let Err(e) = ctx.dbs.configure_backup_plan(scope, &req).await {
                return configure_refused(rt, &id, created, e);
            }
            failpoint::kill_if(
                ctx.config.failpoint,
                Failpoint::KillAfterConfigureBackupPlan,
                &id,
            );
            inventory.mark_changed(&id);
            // What DBS calls a configured plan not started yet (its documented `init`): the
            // status after the start says so until the next look.
            status.cloud_status = Some(PlanStatus::Init.to_string());
            status.source_password_version = password_version();
            status.backup_log_interval_seconds = req.backup_log_interval_seconds;
            // A new configuration needs its own start, and gets it at once: DBS documents no wait
            // between the two, and its own CreateAndStartBackupPlan (the path Terraform's
            // provider takes) configures and starts in one request. Should DBS refuse, the
            // failure is reported and the next reconcile starts the plan.
            status.precheck_started_at = None;
            start(rt, inventory, obj, scope, &id, status).await
        }
        Step::Start => start(rt, inventory, obj, scope, &id, status).await,
        Step::Prechecking(poll) => {
            let phase = report::prechecking(&id, status.cloud_status.as_deref());
            Ok(look_again(inventory, &id, phase, poll))
        }
        Step::WaitForPlan(poll) => {
            let message = format!("plan {id} was just created; waiting for DBS to list it");
            let phase = Phase::reconciling(Reason::WaitingForPlan, message);
            Ok(look_again(inventory, &id, phase, poll))
        }
        Step::Modify(m) => {
            let sent_interval = match &m {
                Modification::Strategy(req) => Some(req.backup_log_interval_seconds),
                _ => None,
            };
            let (what, outcome) = modify(&*ctx.dbs, inventory, observed, &id, spec, m).await?;
            failpoint::kill_if(
                ctx.config.failpoint,
                Failpoint::KillAfterModifyBackupPlan,
                &id,
            );
            if sends_password {
                status.source_password_version = password_version();
            }
            if let Some(interval) = sent_interval {
                status.backup_log_interval_seconds = interval;
            }
            if outcome.need_precheck {
                // DBS runs a new precheck once the plan is started again: one start, next.
                status.precheck_started_at = None;
            }
            Ok(Outcome::new(
                Phase::reconciling(Reason::Updating, format!("plan {id}: {what} updated")),
                Action::requeue(AFTER_CHANGE),
            ))
        }
        settled => {
            if settled == Step::Ready {
                status.precheck_started_at = None;
            }
            Ok(report::settle(Some(&id), &settled, &ctx.config))
        }
    }
}

/// Waiting for DBS: `Reconciling` with `reason`, and the plan read again by id (not from a
/// sweep) after `poll`.
fn look_again(inventory: &PlanInventory, id: &str, phase: Phase, poll: Duration) -> Outcome {
    inventory.mark_changed(id);
    Outcome::new(phase, Action::requeue(poll))
}

/// A refused ConfigureBackupPlan. DBS accepts the configuration only a few seconds after the
/// creation, and documents no error code for "too early": within [`CONFIGURE_GRACE`] of the
/// creation any refusal is waited out, whatever its code; later it is a failure like any other.
/// `created`: see [`Observed::created_at`].
fn configure_refused(
    rt: &Runtime<BackupPlan>,
    id: &str,
    created: Option<Timestamp>,
    e: CloudError,
) -> Result<Outcome, Error> {
    let now = Timestamp::now();
    if remaining(created, CONFIGURE_GRACE, now).is_none() {
        return Err(e.into());
    }
    let since = created.map_or(Duration::ZERO, |t| elapsed(t, now));
    tracing::info!(backup_plan_id = %id, error = %e, "ConfigureBackupPlan refused soon after the creation; trying again");
    Ok(Outcome::new(
        report::waiting_to_configure(id, rt.ctx.config.configure_delay),
        Action::requeue(precheck_poll(since).min(Duration::from_secs(5))),
    ))
}

/// StartBackupPlan, once per configuration: the start is recorded in the status before the
/// call, so a restart while DBS prechecks does not start the plan again (each start may take a
/// full backup). A start DBS answered with an error is forgotten again; one that got no answer
/// (timeout, broken connection) may have started the plan and is left to the precheck (see
/// [`super::decide::PRECHECK_TIMEOUT`]).
async fn start(
    rt: &Runtime<BackupPlan>,
    inventory: &PlanInventory,
    obj: &BackupPlan,
    scope: &Scope,
    id: &str,
    status: &mut BackupPlanStatus,
) -> Result<Outcome, Error> {
    status.precheck_started_at = Some(Time(ceil_second(Timestamp::now())));
    // The status after the start is written before it, and only once: its start time (so that
    // a start whose answer is lost is not sent again, see `decide::started`) and the phase the
    // start leads to. Should DBS refuse, the failure is written next. No Event until DBS has
    // accepted the start.
    let phase = report::prechecking(id, status.cloud_status.as_deref());
    let was_prechecking = report::ready_reason(obj) == Some(Reason::Prechecking.as_str());
    report::write(rt, obj, status.clone(), &phase, false).await?;
    failpoint::kill_if(
        rt.ctx.config.failpoint,
        Failpoint::KillBeforeStartBackupPlan,
        id,
    );
    if let Err(e) = rt.ctx.dbs.start_backup_plan(scope, id, None).await {
        // Only a call that got no answer at all may have started the plan.
        if e.http_status.is_some() {
            status.precheck_started_at = None;
        }
        return Err(e.into());
    }
    failpoint::kill_if(
        rt.ctx.config.failpoint,
        Failpoint::KillAfterStartBackupPlan,
        id,
    );
    inventory.mark_changed(id);
    if !was_prechecking {
        rt.events
            .publish(obj, phase.event_type(), phase.reason, &phase.message)
            .await;
    }
    // The same status again: nothing is written.
    Ok(Outcome::new(
        phase,
        Action::requeue(precheck_poll(Duration::ZERO)),
    ))
}

/// CreateBackupPlan with the object's ClientToken, unless DBS already holds this object's plan
/// under its plan name (a status lost to a restore or a copy into another cluster): that plan is
/// taken over instead. The id goes to the annotation, then the status, at once.
async fn create(
    rt: &Runtime<BackupPlan>,
    inventory: &PlanInventory,
    obj: &BackupPlan,
    plan_name: &str,
    scope: &Scope,
    status: &mut BackupPlanStatus,
) -> Result<Outcome, Error> {
    let ctx = &rt.ctx;
    if let Some(outcome) = take_over_by_name(rt, inventory, obj, plan_name, scope, status).await? {
        return Ok(outcome);
    }
    let token = requests::client_token(obj.uid().as_deref().unwrap_or_default());
    if status.client_token.as_deref() != Some(token.as_str()) {
        // Persisted before acting: whatever happens to the answer, deletion can find the plan.
        status.client_token = Some(token.clone());
        let phase = report::creating();
        // No Event: the outcome of the create, written next, is this transition's Event.
        report::write(rt, obj, status.clone(), &phase, false).await?;
    }
    let req = requests::create_request(&obj.spec, &token);
    let created = match ctx.dbs.create_backup_plan(scope, &req).await {
        Ok(created) => created,
        Err(e) if e.has_code(IDEMPOTENT_PARAMETER_MISMATCH) => {
            // Repeating the call cannot succeed, and a create with a new token could buy a
            // second plan: only the user can sort this out. The token stays: a plan may exist.
            let message = format!(
                "CreateBackupPlan was refused ({}): ClientToken {token} was sent before with \
                 other parameters, so the spec changed after a create whose answer was lost, and \
                 DBS may hold a plan for this object. Restore the spec's previous creation fields \
                 (source.region, instanceClass, ...) or check the DBS console",
                crate::controller::cloud_message(&e)
            );
            return Ok(Outcome::new(
                Phase::stalled(Reason::CreateConflict, message),
                Action::await_change(),
            ));
        }
        Err(e) => {
            if e.is_rejection() {
                // DBS answered no: nothing was created, and deletion has nothing to look for.
                status.client_token = None;
            }
            return Err(e.into());
        }
    };
    let id = created.backup_plan_id.clone();
    status.backup_plan_id = Some(id.clone());
    status.order_id = created.order_id;
    status.created_at = Some(Time(ceil_second(Timestamp::now())));
    status.cloud_status = Some(PlanStatus::Wait.to_string());
    failpoint::kill_if(
        ctx.config.failpoint,
        Failpoint::KillAfterCreateBackupPlan,
        &id,
    );
    inventory.mark_changed(&id);
    // Before anything else: should this write fail, the status (written with the failure)
    // still holds the id, and a repeated create with the same token answers with the same plan.
    record_plan_id(rt, obj, &id).await?;
    // Back when the configure falls due, counted from `createdAt` as every later reconcile
    // counts it (see `decide::configure_wait`). The annotation write above wakes nobody.
    let created_at = status.created_at.as_ref().map(|t| t.0);
    let wait = decide::configure_wait(created_at, ctx.config.configure_delay, Timestamp::now());
    Ok(Outcome::new(
        report::waiting_to_configure(&id, ctx.config.configure_delay),
        Action::requeue(wait.unwrap_or(Duration::from_millis(100))),
    ))
}

/// Before a create: this object's plan as DBS lists it under the object's plan name, taken over
/// (recorded in the annotation and the status) when exactly one plan of that name backs up the
/// spec's source and no other object manages it. `None` when there is none: create. The plans of
/// that name come from the inventory's sweeps when they can tell ([`PlanInventory::plans_named`]),
/// else from a `DescribeBackupPlanList` by name.
async fn take_over_by_name(
    rt: &Runtime<BackupPlan>,
    inventory: &PlanInventory,
    obj: &BackupPlan,
    plan_name: &str,
    scope: &Scope,
    status: &mut BackupPlanStatus,
) -> Result<Option<Outcome>, Error> {
    let max_age = super::observe::max_age(rt.ctx.config.resync_period);
    let listed = match inventory
        .plans_named(&rt.ctx.dbs, scope, plan_name, max_age)
        .await
    {
        Some(listed) => listed,
        None => find_by_name(&*rt.ctx.dbs, scope, plan_name).await?,
    };
    let plan = match decide::own_plan(&obj.spec, plan_name, &listed) {
        Ok(None) => return Ok(None),
        Ok(Some(plan)) => plan,
        Err(stall) => return Ok(Some(report::settle(None, &stall, &rt.ctx.config))),
    };
    let id = &plan.backup_plan_id;
    let claim = Claim {
        key: id.clone(),
        created: true,
    };
    if let Some(manager) = rt.manager_of(obj, claim) {
        let message = format!(
            "DBS plan {id} named {plan_name:?} is managed by BackupPlan {}/{}; no plan is created \
             or taken over. Set spec.planName to give this object a plan of its own",
            manager.namespace().unwrap_or_default(),
            manager.name_any()
        );
        return Ok(Some(Outcome::new(
            Phase::stalled(RuntimeReason::AlreadyManaged, message),
            Action::requeue(rt.ctx.config.resync_period),
        )));
    }
    tracing::info!(backup_plan_id = %id, plan_name, "found this object's plan at DBS by its name; taking it over");
    status.backup_plan_id = Some(id.clone());
    status.cloud_status = Some(plan.backup_plan_status.to_string());
    inventory.mark_changed(id);
    record_plan_id(rt, obj, id).await?;
    Ok(Some(Outcome::new(
        Phase::reconciling(
            Reason::FoundByName,
            format!(
                "plan {id} named {plan_name:?} was found at DBS and taken over instead of \
                 creating a second plan"
            ),
        ),
        Action::requeue(AFTER_CHANGE),
    )))
}

/// The plans DBS lists under `plan_name` in the scope's region (at most one page of 100: more
/// plans of one name is an ambiguity reported as such anyway).
async fn find_by_name(
    dbs: &dyn DbsApi,
    scope: &Scope,
    plan_name: &str,
) -> Result<Vec<BackupPlanDetail>, Error> {
    let req = DescribeBackupPlanList {
        backup_plan_name: Some(plan_name.to_owned()),
        page_num: 0,
        page_size: 100,
        ..Default::default()
    };
    Ok(dbs.describe_backup_plan_list(scope, &req).await?.items)
}

/// Records `id` as this object's plan in the annotation [`BACKUP_PLAN_ID_ANNOTATION`].
pub async fn record_plan_id(
    rt: &Runtime<BackupPlan>,
    obj: &BackupPlan,
    id: &str,
) -> Result<(), Error> {
    rt.annotate(obj, BACKUP_PLAN_ID_ANNOTATION, id).await
}

/// Performs one Modify* call; returns what changed, for the status message, and what DBS said.
async fn modify(
    dbs: &dyn DbsApi,
    inventory: &PlanInventory,
    observed: &Observed,
    id: &str,
    spec: &BackupPlanSpec,
    m: Modification,
) -> Result<(&'static str, ModifyOutcome), Error> {
    let scope = &observed.scope;
    inventory.mark_changed(id);
    Ok(match m {
        Modification::Name(name) => {
            inventory.mark_named(dbs, scope, &name).await;
            dbs.modify_backup_plan_name(scope, id, &name).await?;
            ("name", ModifyOutcome::default())
        }
        Modification::Strategy(req) => ("schedule", dbs.modify_backup_strategy(scope, &req).await?),
        Modification::Storage(req) => {
            ("retention", dbs.modify_storage_strategy(scope, &req).await?)
        }
        Modification::Objects(objects) => (
            "backup objects",
            dbs.modify_backup_objects(scope, id, &objects).await?,
        ),
        Modification::SourceEndpoint(_) => {
            let described_objects = match observed.sighting.as_ref().map(|s| &s.observation) {
                Some(Observation::Found(d)) => d.backup_objects.as_deref(),
                _ => None,
            };
            let req =
                requests::source_endpoint_request(spec, id, observed.password(), described_objects);
            (
                "source endpoint",
                dbs.modify_backup_source_endpoint(scope, &req).await?,
            )
        }
    })
}

/// How deletion left the plan.
pub enum Ended {
    /// Released, or already gone.
    Released(String),
    /// A Subscription plan, stopped: it cannot be released through the API.
    Stopped(String),
}

/// Whether a failed call means the plan is already gone.
fn is_gone(e: &CloudError) -> bool {
    e.is_not_found() || e.has_code("InvalidJobId")
}

/// `ReleaseBackupPlan`; a plan already gone counts as released.
pub async fn release(dbs: &dyn DbsApi, scope: &Scope, id: &str) -> Result<Ended, Error> {
    match dbs.release_backup_plan(scope, id).await {
        Ok(()) => Ok(Ended::Released(id.to_owned())),
        Err(e) if is_gone(&e) => {
            tracing::info!(backup_plan_id = %id, "backup plan already gone at DBS");
            Ok(Ended::Released(id.to_owned()))
        }
        Err(e) => Err(e.into()),
    }
}

/// `StopBackupPlan` ALL of a Subscription plan, unless DBS describes it as gone or as not
/// running anything (never configured, already paused or stopped).
pub async fn stop_subscription(dbs: &dyn DbsApi, scope: &Scope, id: &str) -> Result<Ended, Error> {
    let idle = match describe_one(dbs, scope, id).await? {
        Observation::Missing => true,
        Observation::Found(d) => matches!(
            d.backup_plan_status,
            PlanStatus::Wait | PlanStatus::Pause | PlanStatus::Stop
        ),
    };
    if idle {
        return Ok(Ended::Stopped(id.to_owned()));
    }
    match dbs.stop_backup_plan(scope, id, StopMethod::All).await {
        Ok(()) => Ok(Ended::Stopped(id.to_owned())),
        Err(e) if is_gone(&e) => Ok(Ended::Stopped(id.to_owned())),
        Err(e) => Err(e.into()),
    }
}

/// Releases an adopted plan as it was bought, whatever the spec says: a Subscription plan is
/// stopped (releasing one is refused), a pay-as-you-go plan released. When DBS cannot tell the
/// billing (DescribeBackupPlanBilling does not support every plan), the release is tried
/// anyway, and a refused release falls back to a stop.
pub async fn release_adopted(dbs: &dyn DbsApi, scope: &Scope, id: &str) -> Result<Ended, Error> {
    match dbs.describe_backup_plan_billing(scope, id).await {
        Ok(billing) if billing.is_subscription() => {
            tracing::info!(backup_plan_id = %id, "adopted plan is a subscription: stopping it instead of releasing it");
            stop_subscription(dbs, scope, id).await
        }
        // Pay-as-you-go, or gone (the release says so too).
        Ok(_) => release(dbs, scope, id).await,
        Err(e) if is_gone(&e) => release(dbs, scope, id).await,
        Err(e) if e.kind != ErrorKind::Terminal => Err(e.into()),
        Err(e) => {
            tracing::info!(backup_plan_id = %id, error = %e, "billing of the adopted plan unknown: trying to release it");
            match release(dbs, scope, id).await {
                Err(Error::Cloud(e)) if e.kind == ErrorKind::Terminal => {
                    tracing::info!(backup_plan_id = %id, error = %e, "release refused (a subscription plan): stopping it instead");
                    stop_subscription(dbs, scope, id).await
                }
                ended => ended,
            }
        }
    }
}

/// How far before the object's creation a plan DBS created for it may be dated (clock skew
/// between DBS and the API server).
const CLOCK_SKEW: Duration = Duration::from_secs(300);

/// No id was recorded but a CreateBackupPlan was sent with `token` and its answer was lost. The
/// plan is never created again: it is looked for by the object's plan name and released (or
/// stopped, when it is a subscription). A plan DBS created but that was never configured has no
/// name yet, so when none is named, DBS is asked for unconfigured (`wait`) plans created since
/// the object (`created`): none → `Ok(None)`, nothing is left; some → [`Error::ReleaseUnconfirmed`]
/// naming them, retried with backoff until they are gone or the user abandons the deletion.
pub async fn find_then_release(
    dbs: &dyn DbsApi,
    scope: &Scope,
    spec: &BackupPlanSpec,
    plan_name: &str,
    created: Option<Timestamp>,
    token: &str,
) -> Result<Option<Ended>, Error> {
    let listed = find_by_name(dbs, scope, plan_name).await?;
    if let Ok(Some(plan)) = decide::own_plan(spec, plan_name, &listed) {
        tracing::info!(backup_plan_id = %plan.backup_plan_id, client_token = token, "found the plan of a lost CreateBackupPlan answer by its name");
        return release_adopted(dbs, scope, &plan.backup_plan_id)
            .await
            .map(Some);
    }
    let req = DescribeBackupPlanList {
        backup_plan_status: Some(PlanStatus::Wait.to_string()),
        page_num: 0,
        page_size: 100,
        ..Default::default()
    };
    let since = created.map(|t| t.as_millisecond() - CLOCK_SKEW.as_millis() as i64);
    let candidates: Vec<String> = dbs
        .describe_backup_plan_list(scope, &req)
        .await?
        .items
        .into_iter()
        .filter(|d| d.backup_plan_status == PlanStatus::Wait)
        .filter(|d| match (since, d.backup_plan_create_time) {
            (Some(since), Some(at)) => at >= since,
            _ => true,
        })
        .map(|d| d.backup_plan_id)
        .collect();
    if candidates.is_empty() {
        return Ok(None);
    }
    Err(Error::ReleaseUnconfirmed(format!(
        "CreateBackupPlan was sent with ClientToken {token} but its answer was lost, and DBS lists \
         no plan named {plan_name:?}; a plan has no name until it is configured, and DBS holds \
         unconfigured plans created since this object was: {}. If one is this object's, release \
         it in the DBS console (the deletion then completes by itself); otherwise set the \
         annotation db.alicloud.dev/abandon: \"true\"",
        candidates.join(", ")
    )))
}
