//! Pure decisions of the BackupPlan controller: (spec, status, observed plan, `now`) → the next
//! step, and what deletion does. No I/O, no clock: every input is an argument.

use std::collections::BTreeSet;
use std::time::Duration;

use k8s_openapi::jiff::Timestamp;
use serde_json::Value;

use super::observe::Observation;
use super::report::Reason;
use super::requests::{self, backup_objects_value};
#[cfg(test)]
use super::requests::{client_token, configure_request, create_request, source_endpoint_request};
use crate::cloud::dbs::{
    BackupPlanDetail, ModifyBackupStrategy, ModifyStorageStrategy, PlanStatus,
};
use crate::crd::{BackupPlanSpec, DeletionPolicy, PayType};

/// Longest plan name DBS accepts.
const MAX_PLAN_NAME: usize = 64;

/// Everything [`decide`] looks at.
#[derive(Clone, Debug)]
pub struct Facts<'a> {
    /// The object's spec.
    pub spec: &'a BackupPlanSpec,
    /// Plan name to use at DBS (see [`plan_name`]).
    pub plan_name: &'a str,
    /// Whether the object carries `db.alicloud.dev/paused: "true"`.
    pub paused: bool,
    /// The plan this object owns: `spec.backupPlanId` or `status.backupPlanId`.
    pub backup_plan_id: Option<&'a str>,
    /// When CreateBackupPlan returned (rounded up to the second), from the status.
    pub created_at: Option<Timestamp>,
    /// The plan as last observed, if it has been observed in this reconcile.
    pub observed: Option<&'a Observation>,
    /// Version of the password Secret last sent to DBS (status).
    pub applied_password_version: Option<&'a str>,
    /// Version of the password Secret now (`None` when the spec names no password).
    pub current_password_version: Option<&'a str>,
    /// `BackupLogIntervalSeconds` last sent to DBS (status); DBS does not describe it.
    pub applied_backup_log_interval_seconds: Option<i32>,
    /// Wait between CreateBackupPlan and ConfigureBackupPlan.
    pub configure_delay: Duration,
}

/// The one thing the reconcile does next.
#[derive(Clone, Debug, PartialEq)]
pub enum Step {
    /// The spec cannot be acted on; no cloud call.
    Stalled {
        /// Condition reason.
        reason: Reason,
        /// What the user should know and do.
        message: String,
    },
    /// Paused by annotation; no cloud call.
    Paused,
    /// No plan yet: CreateBackupPlan.
    Create,
    /// A plan id is known but the plan has not been observed in this reconcile.
    Observe,
    /// DBS is not ready for ConfigureBackupPlan yet; look again after this long.
    WaitToConfigure(Duration),
    /// The plan is unconfigured (`wait`): ConfigureBackupPlan.
    Configure,
    /// The plan is configured but not running: StartBackupPlan.
    Start,
    /// The plan differs from the spec: one Modify* call.
    Modify(Modification),
    /// The plan is running and matches the spec.
    Ready,
}

/// One Modify* call that brings the plan closer to the spec.
#[derive(Clone, Debug, PartialEq)]
pub enum Modification {
    /// `ModifyBackupPlanName`.
    Name(String),
    /// `ModifyBackupStrategy`.
    Strategy(ModifyBackupStrategy),
    /// `ModifyStorageStrategy`.
    Storage(ModifyStorageStrategy),
    /// `ModifyBackupSourceEndpoint`; the password is filled in by the caller.
    SourceEndpoint(SourceEndpointChange),
}

/// Why the source endpoint is sent again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SourceEndpointChange {
    /// Source fields or backup objects differ from the spec.
    Drift,
    /// The password Secret changed since the password was last sent.
    PasswordRotated,
}

/// What deletion does with the plan.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Cleanup {
    /// Remove the finalizer without any cloud call; record why.
    Forget {
        /// Whether the Event is a Warning.
        warning: bool,
        /// Event reason.
        reason: Reason,
        /// Event note.
        message: String,
    },
    /// `ReleaseBackupPlan` (pay-as-you-go).
    Release(String),
    /// `StopBackupPlan` ALL: a Subscription plan cannot be released.
    StopSubscription(String),
    /// No id was recorded but a CreateBackupPlan was sent: repeat it with the same ClientToken
    /// (DBS answers with the plan it created before), then release that plan.
    RecoverThenRelease(String),
}

/// Checks the schema cannot make; a message for the user on failure.
pub fn validate(spec: &BackupPlanSpec, plan_name: &str) -> Result<(), String> {
    if plan_name.len() > MAX_PLAN_NAME {
        return Err(format!(
            "plan name {plan_name:?} is longer than {MAX_PLAN_NAME} characters; set spec.planName"
        ));
    }
    for (i, o) in spec.backup_objects.iter().enumerate() {
        let tables = o.table_includes.iter().chain(&o.table_excludes);
        if tables.into_iter().any(|t| t.trim().is_empty()) {
            return Err(format!("backupObjects[{i}] names an empty table"));
        }
    }
    Ok(())
}

/// The next step for an object that is not being deleted.
pub fn decide(facts: &Facts<'_>, now: Timestamp) -> Step {
    if let Err(message) = validate(facts.spec, facts.plan_name) {
        return Step::Stalled {
            reason: Reason::InvalidSpec,
            message,
        };
    }
    if facts.paused {
        return Step::Paused;
    }
    let Some(id) = facts.backup_plan_id else {
        return Step::Create;
    };
    let detail = match facts.observed {
        None => return Step::Observe,
        Some(Observation::Missing) => {
            return Step::Stalled {
                reason: Reason::CloudPlanMissing,
                message: format!(
                    "backup plan {id} no longer exists at DBS; it is not re-created. Delete this \
                     object, or remove the finalizer after recreating the plan and adopting it"
                ),
            };
        }
        Some(Observation::Found(d)) => d,
    };
    match &detail.backup_plan_status {
        PlanStatus::Wait => {
            let ready_at = facts.created_at.map(|t| t + facts.configure_delay);
            match ready_at.map(|t| t.duration_since(now)) {
                Some(left) if left.is_positive() => {
                    let left = Duration::try_from(left).unwrap_or(facts.configure_delay);
                    Step::WaitToConfigure(left.max(Duration::from_millis(100)))
                }
                _ => Step::Configure,
            }
        }
        PlanStatus::Locked => Step::Stalled {
            reason: Reason::CloudPlanLocked,
            message: format!("backup plan {id} is locked at DBS (for example an overdue payment)"),
        },
        status => {
            if let Some(m) = modification(facts, id, detail) {
                return Step::Modify(m);
            }
            if *status == PlanStatus::Running {
                return Step::Ready;
            }
            match detail.err_message.as_deref().filter(|m| !m.is_empty()) {
                Some(err) if matches!(status, PlanStatus::Init | PlanStatus::Stop) => {
                    Step::Stalled {
                        reason: Reason::PrecheckFailed,
                        message: format!("DBS precheck of plan {id} failed: {err}"),
                    }
                }
                _ => Step::Start,
            }
        }
    }
}

/// The first Modify* call the plan needs, in the order name, strategy, storage, source.
fn modification(facts: &Facts<'_>, id: &str, d: &BackupPlanDetail) -> Option<Modification> {
    let spec = facts.spec;
    if !d.backup_plan_name.is_empty() && d.backup_plan_name != facts.plan_name {
        return Some(Modification::Name(facts.plan_name.to_owned()));
    }
    if let Some(schedule) = &spec.schedule {
        let want: BTreeSet<String> = schedule
            .weekdays
            .iter()
            .map(|w| w.as_api_str().to_lowercase())
            .collect();
        let have: BTreeSet<String> = d
            .backup_period
            .as_deref()
            .unwrap_or_default()
            .split(',')
            .map(|s| s.trim().to_lowercase())
            .filter(|s| !s.is_empty())
            .collect();
        let start = d
            .backup_start_time
            .as_deref()
            .map(|t| t.trim_end_matches('Z'));
        let interval_changed = spec.backup_log_interval_seconds.is_some()
            && spec.backup_log_interval_seconds != facts.applied_backup_log_interval_seconds;
        if want != have || start != Some(schedule.start_time.as_str()) || interval_changed {
            return Some(Modification::Strategy(requests::modify_strategy(
                spec, id, schedule,
            )));
        }
    }
    if let Some(r) = &spec.retention {
        let differs = |have: Option<i32>, want: i32| have.is_some_and(|h| h != want);
        if differs(d.backup_retention_period, r.backup_retention_days)
            || differs(
                d.duplication_infrequent_access_period,
                r.infrequent_access_days,
            )
            || differs(d.duplication_archive_period, r.archive_days)
        {
            return Some(Modification::Storage(requests::modify_storage(id, r)));
        }
    }
    if source_differs(spec, d) {
        return Some(Modification::SourceEndpoint(SourceEndpointChange::Drift));
    }
    if facts.current_password_version.is_some()
        && facts.current_password_version != facts.applied_password_version
    {
        return Some(Modification::SourceEndpoint(
            SourceEndpointChange::PasswordRotated,
        ));
    }
    None
}

/// Whether the source endpoint or the backup objects DBS reports differ from the spec. Fields
/// DBS does not report are not compared.
fn source_differs(spec: &BackupPlanSpec, d: &BackupPlanDetail) -> bool {
    let s = &spec.source;
    let reported = |have: &Option<String>, want: &Option<String>| {
        have.as_deref()
            .filter(|h| !h.is_empty())
            .is_some_and(|h| Some(h) != want.as_deref())
    };
    let type_differs = d
        .source_endpoint_instance_type
        .as_deref()
        .is_some_and(|t| !t.eq_ignore_ascii_case(s.instance_type.as_api_str()));
    let ip_port = match (&s.host, s.port) {
        (Some(h), Some(p)) => Some(format!("{h}:{p}")),
        _ => None,
    };
    let ip_port_differs = ip_port.is_some() && reported(&d.source_endpoint_ip_port, &ip_port);
    let gateway_differs = d
        .backup_gateway_id
        .filter(|g| *g != 0)
        .is_some_and(|g| Some(g) != s.backup_gateway_id);
    // A reported empty string is a plan without objects (every database), which differs from
    // a spec naming some.
    let objects_differ = !spec.backup_objects.is_empty()
        && d.backup_objects.as_deref().is_some_and(|o| {
            let have = if o.trim().is_empty() {
                Some(Value::Array(Vec::new()))
            } else {
                serde_json::from_str::<Value>(o).ok()
            };
            have != Some(backup_objects_value(&spec.backup_objects))
        });
    type_differs
        || ip_port_differs
        || gateway_differs
        || objects_differ
        || reported(&d.source_endpoint_instance_id, &s.instance_id)
        || reported(&d.source_endpoint_region, &s.region)
        || reported(&d.source_endpoint_database_name, &s.database_name)
        || reported(&d.source_endpoint_user_name, &s.user_name)
        || reported(&d.source_endpoint_oracle_sid, &s.oracle_sid)
}

/// What deletion does, before any credentials are resolved. `client_token` is the status'
/// ClientToken, present once a CreateBackupPlan has been sent.
pub fn cleanup(
    spec: &BackupPlanSpec,
    paused: bool,
    backup_plan_id: Option<&str>,
    client_token: Option<&str>,
) -> Cleanup {
    let Some(id) = backup_plan_id else {
        return match client_token {
            None => Cleanup::Forget {
                warning: false,
                reason: Reason::NothingToRelease,
                message: "no backup plan was created for this object; nothing to release".into(),
            },
            // Repeating the create of a Subscription plan would buy one: never do that.
            Some(token) if paused || spec.pay_type == PayType::Subscription => Cleanup::Forget {
                warning: true,
                reason: Reason::PlanMayRemain,
                message: format!(
                    "CreateBackupPlan was sent with ClientToken {token} but its answer was never \
                     recorded; a plan may remain at DBS: check the DBS console"
                ),
            },
            Some(_) if spec.deletion_policy == DeletionPolicy::Retain => Cleanup::Forget {
                warning: false,
                reason: Reason::PlanRetained,
                message: "deletionPolicy Retain: any plan created for this object is left at DBS"
                    .into(),
            },
            Some(token) => Cleanup::RecoverThenRelease(token.to_owned()),
        };
    };
    if paused {
        return Cleanup::Forget {
            warning: true,
            reason: Reason::DeletedWhilePaused,
            message: format!(
                "object is paused: finalizer removed without cloud calls; backup plan {id} remains at DBS"
            ),
        };
    }
    if spec.deletion_policy == DeletionPolicy::Retain {
        return Cleanup::Forget {
            warning: false,
            reason: Reason::PlanRetained,
            message: format!("deletionPolicy Retain: backup plan {id} is left at DBS"),
        };
    }
    match spec.pay_type {
        PayType::PayAsYouGo => Cleanup::Release(id.to_owned()),
        PayType::Subscription => Cleanup::StopSubscription(id.to_owned()),
    }
}

#[cfg(test)]
mod tests;
