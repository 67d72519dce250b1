//! Apply: observe → decide → act for an object that is not being deleted.

use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use kube::runtime::controller::Action;

use super::decide::{self, Facts, Modification, Observation, Step};
use super::report::{
    PAUSED, ceil_second, error_phase, paused_phase, report, report_paused, whole_second,
};
use super::sweep::Sighting;
use super::{State, backup_plan_id};
use crate::cloud::Scope;
use crate::controller::conditions::Phase;
use crate::controller::{Error, Failpoint};
use crate::crd::{BackupPlan, BackupPlanSpec, BackupPlanStatus, is_paused};

/// How soon to look again after a call that changes the plan.
const AFTER_CHANGE: Duration = Duration::from_secs(1);
/// How soon to look again after StartBackupPlan (DBS runs a precheck first).
const AFTER_START: Duration = Duration::from_secs(2);

/// Brings the plan one step closer to the spec and reports where it stands.
pub(super) async fn apply(obj: &BackupPlan, state: &State) -> Result<Action, Error> {
    let mut status = obj.status.clone().unwrap_or_default();
    match step_once(obj, state, &mut status).await {
        // Paused: nothing of the spec was acted upon.
        Ok((phase, action)) if phase.reason() == PAUSED => {
            report_paused(obj, state, status, phase).await?;
            Ok(action)
        }
        Ok((phase, action)) => {
            report(obj, state, status, phase).await?;
            Ok(action)
        }
        Err(e) => {
            let phase = error_phase(&e);
            if let Err(report_error) = report(obj, state, status, phase).await {
                tracing::warn!(error = %report_error, "could not record the failure in the status");
            }
            Err(e)
        }
    }
}

/// observe → decide → act; `status` is updated with what the step learnt.
async fn step_once(
    obj: &BackupPlan,
    state: &State,
    status: &mut BackupPlanStatus,
) -> Result<(Phase, Action), Error> {
    let ctx = &state.ctx;
    let spec = &obj.spec;
    let ns = obj.namespace().unwrap_or_default();
    let plan_name = decide::plan_name(spec, &ns, &obj.name_any());
    let id = backup_plan_id(obj);
    let mut facts = Facts {
        spec,
        plan_name: &plan_name,
        paused: is_paused(&obj.metadata),
        backup_plan_id: id.as_deref(),
        created_at: status.created_at.as_ref().map(|t| t.0),
        observed: None,
        applied_password_version: status.source_password_version.as_deref(),
        current_password_version: None,
        applied_backup_log_interval_seconds: status.backup_log_interval_seconds,
        configure_delay: ctx.config.configure_delay,
    };
    let step = decide::decide(&facts, Timestamp::now());
    match step {
        Step::Stalled { reason, message } => {
            let action = if reason == "InvalidSpec" {
                Action::await_change()
            } else {
                Action::requeue(ctx.config.resync_period)
            };
            return Ok((
                Phase::Stalled {
                    reason: reason.into(),
                    message,
                },
                action,
            ));
        }
        Step::Paused => return Ok((paused_phase(obj), Action::await_change())),
        _ => {}
    }

    let scope = ctx
        .scope_protecting_credentials(&ns, spec.credentials_ref.as_ref(), &spec.region)
        .await?;
    let password = match &spec.source.password_secret_ref {
        Some(r) => Some(ctx.secret_value_versioned(&ns, r).await?),
        None => None,
    };
    let password_version = password.as_ref().map(|(_, v)| v.clone());
    facts.current_password_version = password_version.as_deref();

    let Some(id) = id.as_deref() else {
        return create(obj, state, &scope, status).await;
    };
    let max_age = ctx.config.resync_period.mul_f64(0.9);
    let sighting: Sighting = state
        .inventory
        .observe(&*ctx.dbs, &scope, id, max_age)
        .await?;
    status.backup_plan_id = Some(id.to_owned());
    status.last_sync_time = Some(Time(whole_second(sighting.observed_at)));
    status.cloud_status = match &sighting.observation {
        Observation::Found(d) => Some(d.backup_plan_status.clone()),
        Observation::Missing => None,
    };
    facts.observed = Some(&sighting.observation);
    let step = decide::decide(&facts, Timestamp::now());
    let password = password.map(|(p, _)| p);
    let reconciling = |reason: &str, message: String| Phase::Reconciling {
        reason: reason.into(),
        message,
    };
    Ok(match step {
        Step::Stalled { reason, message } => (
            Phase::Stalled {
                reason: reason.into(),
                message,
            },
            Action::requeue(ctx.config.resync_period),
        ),
        Step::Paused => (paused_phase(obj), Action::await_change()),
        Step::Create | Step::Observe => (
            reconciling("Creating", "waiting for the plan to be observed".into()),
            Action::requeue(AFTER_CHANGE),
        ),
        Step::WaitToConfigure(left) => (
            reconciling(
                "WaitingToConfigure",
                format!(
                    "plan {id} created; DBS accepts its configuration {:?} after creation",
                    ctx.config.configure_delay
                ),
            ),
            Action::requeue(left),
        ),
        Step::Configure => {
            let req = decide::configure_request(spec, id, &plan_name, password);
            ctx.dbs.configure_backup_plan(&scope, &req).await?;
            state.inventory.mark_changed(id);
            status.source_password_version = password_version;
            status.backup_log_interval_seconds = req.backup_log_interval_seconds;
            (
                reconciling("Configuring", format!("plan {id} configured; starting it")),
                Action::requeue(AFTER_CHANGE),
            )
        }
        Step::Start => {
            ctx.dbs.start_backup_plan(&scope, id, None).await?;
            state.inventory.mark_changed(id);
            (
                reconciling(
                    "Starting",
                    format!("plan {id} started; waiting for it to run"),
                ),
                Action::requeue(AFTER_START),
            )
        }
        Step::Modify(m) => {
            let described_objects = match &sighting.observation {
                Observation::Found(d) => d.backup_objects.as_deref(),
                Observation::Missing => None,
            };
            let sends_password = matches!(m, Modification::SourceEndpoint(_));
            let sent_interval = match &m {
                Modification::Strategy(req) => Some(req.backup_log_interval_seconds),
                _ => None,
            };
            let what = modify(state, &scope, id, spec, m, password, described_objects).await?;
            if sends_password {
                status.source_password_version = password_version;
            }
            if let Some(interval) = sent_interval {
                status.backup_log_interval_seconds = interval;
            }
            (
                reconciling("Updating", format!("plan {id}: {what} updated")),
                Action::requeue(AFTER_CHANGE),
            )
        }
        Step::Ready => (
            Phase::Ready {
                reason: "Available".into(),
                message: format!("backup plan {id} is running"),
            },
            Action::requeue(ctx.config.resync_period),
        ),
    })
}

/// CreateBackupPlan with the object's ClientToken; the id goes to the status at once.
async fn create(
    obj: &BackupPlan,
    state: &State,
    scope: &Scope,
    status: &mut BackupPlanStatus,
) -> Result<(Phase, Action), Error> {
    let ctx = &state.ctx;
    let token = decide::client_token(obj.uid().as_deref().unwrap_or_default());
    if status.client_token.as_deref() != Some(token.as_str()) {
        // Persisted before acting: whatever happens to the answer, deletion can find the plan.
        status.client_token = Some(token.clone());
        let phase = Phase::Reconciling {
            reason: "Creating".into(),
            message: "creating the backup plan at DBS".into(),
        };
        report(obj, state, status.clone(), phase).await?;
    }
    let req = decide::create_request(&obj.spec, &token);
    let created = ctx.dbs.create_backup_plan(scope, &req).await?;
    if ctx.config.failpoint == Some(Failpoint::KillAfterCreateBackupPlan) {
        tracing::error!(backup_plan_id = %created.backup_plan_id, "failpoint kill-after-create-backup-plan: SIGKILL");
        // SAFETY: getpid and kill have no memory-safety preconditions; SIGKILL ends the process.
        unsafe {
            libc::kill(libc::getpid(), libc::SIGKILL);
        }
    }
    state.inventory.mark_changed(&created.backup_plan_id);
    status.backup_plan_id = Some(created.backup_plan_id.clone());
    status.order_id = created.order_id;
    status.created_at = Some(Time(ceil_second(Timestamp::now())));
    status.cloud_status = Some("wait".into());
    let phase = Phase::Reconciling {
        reason: "WaitingToConfigure".into(),
        message: format!(
            "plan {} created; DBS accepts its configuration {:?} after creation",
            created.backup_plan_id, ctx.config.configure_delay
        ),
    };
    // One extra second covers the rounding of `createdAt` up to a whole second.
    Ok((
        phase,
        Action::requeue(ctx.config.configure_delay + Duration::from_secs(1)),
    ))
}

/// Performs one Modify* call (and StartBackupPlan when DBS asks for a new precheck); returns what
/// changed, for the status message.
async fn modify(
    state: &State,
    scope: &Scope,
    id: &str,
    spec: &BackupPlanSpec,
    m: Modification,
    password: Option<String>,
    described_objects: Option<&str>,
) -> Result<&'static str, Error> {
    let dbs = &*state.ctx.dbs;
    state.inventory.mark_changed(id);
    let (what, outcome) = match m {
        Modification::Name(name) => {
            dbs.modify_backup_plan_name(scope, id, &name).await?;
            return Ok("name");
        }
        Modification::Strategy(req) => ("schedule", dbs.modify_backup_strategy(scope, &req).await?),
        Modification::Storage(req) => {
            ("retention", dbs.modify_storage_strategy(scope, &req).await?)
        }
        Modification::SourceEndpoint(_) => {
            let req = decide::source_endpoint_request(spec, id, password, described_objects);
            (
                "source endpoint",
                dbs.modify_backup_source_endpoint(scope, &req).await?,
            )
        }
    };
    if outcome.need_precheck {
        dbs.start_backup_plan(scope, id, None).await?;
    }
    Ok(what)
}
