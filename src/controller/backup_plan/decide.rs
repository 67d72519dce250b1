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
use crate::crd::{BACKUP_PLAN_ID_ANNOTATION, BackupPlanSpec, DeletionPolicy, PayType};

/// Longest plan name DBS accepts.
const MAX_PLAN_NAME: usize = 64;

/// How long a plan this object created may stay invisible to DescribeBackupPlanList (DBS reads
/// may lag behind its writes) before it counts as missing.
pub const CREATE_VISIBILITY_GRACE: Duration = Duration::from_secs(60);

/// A plan still in `init` without an error this long after StartBackupPlan was sent is taken
/// to have never received it (the operator stopped between recording the start and sending
/// it): it is started again. DBS prechecks take seconds to minutes.
pub const PRECHECK_TIMEOUT: Duration = Duration::from_secs(15 * 60);

/// How long before a plan may be configured its reconcile comes back for it: the step is then
/// `Configure`, and the configure waits out the rest in its worker, its password read and its
/// turn under the quota booked, so that the call goes out when due. Configures fall due 18 in
/// each second (`createdAt` is kept to the second), and one that reaches the client's limiter
/// after its slot leaves the slot unused (see `controller::turns::LEAD`). Arriving exactly when
/// due, the configures of 1,000 plans lost 1.9 to 2.1 s of slots more than their creates
/// (`cargo xtask bench`, emulator call log); 0.1 to 1.5 s with this lead.
pub const CONFIGURE_LEAD: Duration = Duration::from_millis(500);

/// Shortest and longest wait between two looks at a plan whose precheck runs. The looks are
/// reads by id, batched with the other plans read at the same time (`observe::batch`), so a
/// 1 s start costs few calls: a precheck of a few seconds is seen within a second of its end
/// (`cargo xtask bench`, 1,000 plans: 0.44 describes per plan during the whole creation).
const PRECHECK_POLL: (Duration, Duration) = (Duration::from_secs(1), Duration::from_secs(30));

/// Everything [`decide`] looks at.
#[derive(Clone, Debug)]
pub struct Facts<'a> {
    /// The object's spec.
    pub spec: &'a BackupPlanSpec,
    /// Plan name to use at DBS (see [`plan_name`]).
    pub plan_name: &'a str,
    /// The plan this object owns: `spec.backupPlanId`, else the annotation
    /// `db.alicloud.dev/backup-plan-id`, else `status.backupPlanId`.
    pub backup_plan_id: Option<&'a str>,
    /// The plan the annotation `db.alicloud.dev/backup-plan-id` records (created or found by
    /// name by this object).
    pub recorded_plan_id: Option<&'a str>,
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
    /// When StartBackupPlan was sent for the current configuration (status), if it was.
    pub precheck_started_at: Option<Timestamp>,
    /// The message of a `CreateConflict` stall reported for this generation of the spec: the
    /// create is not repeated until the spec changes.
    pub create_conflict: Option<&'a str>,
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
    /// No plan yet: CreateBackupPlan.
    Create,
    /// A plan id is known but the plan has not been observed in this reconcile.
    Observe,
    /// DBS is not ready for ConfigureBackupPlan yet; look again after this long.
    WaitToConfigure(Duration),
    /// The plan is unconfigured (`wait`): ConfigureBackupPlan.
    Configure,
    /// The plan is configured and was not started for this configuration: StartBackupPlan.
    Start,
    /// StartBackupPlan was sent and DBS runs its precheck; look again after this long.
    Prechecking(Duration),
    /// This object created the plan moments ago and DBS does not list it yet; look again
    /// after this long.
    WaitForPlan(Duration),
    /// The plan differs from the spec: one Modify* call.
    Modify(Modification),
    /// The plan is running and matches the spec.
    Ready,
}

impl Step {
    /// Whether the step's call sends the source password (ConfigureBackupPlan, or
    /// ModifyBackupSourceEndpoint), so the password must have been read.
    pub fn sends_password(&self) -> bool {
        matches!(
            self,
            Step::Configure | Step::Modify(Modification::SourceEndpoint(_))
        )
    }
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
    /// `ModifyBackupObjects` with this `BackupObjects` JSON: only the objects differ.
    Objects(String),
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
    /// No id was recorded but a CreateBackupPlan was sent with this ClientToken and its answer
    /// was lost: find the plan by the object's plan name and release it (never a create).
    FindThenRelease(String),
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
    if let (Some(wanted), Some(recorded)) = (&facts.spec.backup_plan_id, facts.recorded_plan_id)
        && wanted != recorded
    {
        return Step::Stalled {
            reason: Reason::BackupPlanIdConflict,
            message: format!(
                "spec.backupPlanId names plan {wanted}, but this object created (or found by its \
                 name) plan {recorded}, recorded in the annotation {BACKUP_PLAN_ID_ANNOTATION}; \
                 remove spec.backupPlanId, or the annotation if plan {recorded} is not this \
                 object's"
            ),
        };
    }
    let Some(id) = facts.backup_plan_id else {
        return match facts.create_conflict {
            Some(message) => Step::Stalled {
                reason: Reason::CreateConflict,
                message: message.to_owned(),
            },
            None => Step::Create,
        };
    };
    let detail = match facts.observed {
        None => return Step::Observe,
        Some(Observation::Missing) => {
            if let Some(left) = remaining(facts.created_at, CREATE_VISIBILITY_GRACE, now) {
                return Step::WaitForPlan(left.min(PRECHECK_POLL.0));
            }
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
        PlanStatus::Wait => match configure_wait(facts.created_at, facts.configure_delay, now) {
            Some(wait) => Step::WaitToConfigure(wait),
            None => Step::Configure,
        },
        PlanStatus::Locked => Step::Stalled {
            reason: Reason::CloudPlanLocked,
            message: format!("backup plan {id} is locked at DBS (for example an overdue payment)"),
        },
        status => {
            if let Some(m) = modification(facts, id, detail) {
                return Step::Modify(m);
            }
            started(facts, id, status, detail.err_message.as_deref(), now)
        }
    }
}

/// The step for a configured plan that matches the spec: Ready when running; otherwise it is
/// started once per configuration and then left to DBS's precheck, which either runs the plan
/// or fails with a message. A plan stopped or paused at DBS is reported, never restarted
/// behind the user's back (each start may take a full backup).
fn started(
    facts: &Facts<'_>,
    id: &str,
    status: &PlanStatus,
    err_message: Option<&str>,
    now: Timestamp,
) -> Step {
    let since_start = facts.precheck_started_at.map(|t| elapsed(t, now));
    let poll = precheck_poll(since_start.unwrap_or_default());
    match (status, err_message.filter(|m| !m.trim().is_empty())) {
        (PlanStatus::Running, _) => Step::Ready,
        (PlanStatus::Init | PlanStatus::Stop, Some(err)) => Step::Stalled {
            reason: Reason::PrecheckFailed,
            message: format!("DBS precheck of plan {id} failed: {err}"),
        },
        (PlanStatus::Init, None) => match since_start {
            Some(t) if t < PRECHECK_TIMEOUT => Step::Prechecking(poll),
            _ => Step::Start,
        },
        (PlanStatus::CheckPass, _) => Step::Prechecking(poll),
        (other, _) => Step::Stalled {
            reason: Reason::PlanNotRunning,
            message: format!(
                "backup plan {id} is {other} at DBS (stopped outside the operator, or failed); \
                 it is not restarted automatically: start it in the DBS console once the cause \
                 is fixed"
            ),
        },
    }
}

/// Wait before the next look at a plan whose precheck started `since` ago: a quarter of that,
/// within [`PRECHECK_POLL`], so short prechecks are seen promptly and long ones cost few calls.
pub fn precheck_poll(since: Duration) -> Duration {
    (since / 4).clamp(PRECHECK_POLL.0, PRECHECK_POLL.1)
}

/// Time from `from` to `now`, zero if `from` is later.
pub fn elapsed(from: Timestamp, now: Timestamp) -> Duration {
    Duration::try_from(now.duration_since(from)).unwrap_or_default()
}

/// How long a plan created at `created_at` (its `createdAt`) waits before the reconcile that
/// configures it: until [`CONFIGURE_LEAD`] before `configure_delay` has passed. `None` when it
/// is due now (the configure then waits the rest of the rule, if any, in its worker).
pub fn configure_wait(
    created_at: Option<Timestamp>,
    configure_delay: Duration,
    now: Timestamp,
) -> Option<Duration> {
    match remaining(created_at, configure_delay, now) {
        Some(left) if left > CONFIGURE_LEAD => {
            Some((left - CONFIGURE_LEAD).max(Duration::from_millis(100)))
        }
        _ => None,
    }
}

/// What is left of `window` after `since`, when some is.
pub fn remaining(since: Option<Timestamp>, window: Duration, now: Timestamp) -> Option<Duration> {
    let left = window.checked_sub(elapsed(since?, now))?;
    (!left.is_zero()).then_some(left)
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
    let drift = source_drift(spec, d);
    if drift.endpoint {
        return Some(Modification::SourceEndpoint(SourceEndpointChange::Drift));
    }
    if facts.current_password_version.is_some()
        && facts.current_password_version != facts.applied_password_version
    {
        return Some(Modification::SourceEndpoint(
            SourceEndpointChange::PasswordRotated,
        ));
    }
    if drift.objects {
        return Some(Modification::Objects(
            backup_objects_value(&spec.backup_objects).to_string(),
        ));
    }
    None
}

/// Which parts of the source DBS reports differ in meaning from the spec.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct SourceDrift {
    /// A source endpoint field (sent with ModifyBackupSourceEndpoint).
    endpoint: bool,
    /// The backup objects (ModifyBackupObjects when nothing else differs).
    objects: bool,
}

/// Compares the source and the backup objects DBS reports with the spec by meaning, not bytes:
/// fields the spec leaves to DBS (a region it fills in) and fields DBS does not report are not
/// compared; case, a resolved host, field order and default fields in `BackupObjects` are no
/// difference.
fn source_drift(spec: &BackupPlanSpec, d: &BackupPlanDetail) -> SourceDrift {
    let s = &spec.source;
    // Only what the spec sets and DBS reports is compared.
    let differs = |have: &Option<String>, want: &Option<String>| match (have, want) {
        (Some(h), Some(w)) if !h.trim().is_empty() => !h.trim().eq_ignore_ascii_case(w.trim()),
        _ => false,
    };
    let type_differs = d
        .source_endpoint_instance_type
        .as_deref()
        .is_some_and(|t| !t.eq_ignore_ascii_case(s.instance_type.as_api_str()));
    let ip_port_differs = match (&s.host, s.port, d.source_endpoint_ip_port.as_deref()) {
        (Some(host), Some(port), Some(have)) if !have.trim().is_empty() => {
            !same_address(host, port, have.trim())
        }
        _ => false,
    };
    let gateway_differs = d
        .backup_gateway_id
        .filter(|g| *g != 0)
        .is_some_and(|g| Some(g) != s.backup_gateway_id);
    let endpoint = type_differs
        || ip_port_differs
        || gateway_differs
        || differs(&d.source_endpoint_instance_id, &s.instance_id)
        || differs(&d.source_endpoint_region, &s.region)
        || differs(&d.source_endpoint_database_name, &s.database_name)
        || differs(&d.source_endpoint_user_name, &s.user_name)
        || differs(&d.source_endpoint_oracle_sid, &s.oracle_sid);
    // A reported empty string is a plan without objects (every database), which differs from
    // a spec naming some.
    let objects = !spec.backup_objects.is_empty()
        && d.backup_objects.as_deref().is_some_and(|o| {
            let have = if o.trim().is_empty() {
                Some(Value::Array(Vec::new()))
            } else {
                serde_json::from_str::<Value>(o).ok()
            };
            have.map(|h| canonical(&h))
                != Some(canonical(&backup_objects_value(&spec.backup_objects)))
        });
    SourceDrift { endpoint, objects }
}

/// Whether DBS's `ip:port` names the spec's `host` and `port`. A host name DBS reports
/// resolved to an address is compared by port only.
fn same_address(host: &str, port: i32, have: &str) -> bool {
    let Some((have_host, have_port)) = have.rsplit_once(':') else {
        return have.eq_ignore_ascii_case(host);
    };
    let same_port = have_port.trim().parse::<i32>().ok() == Some(port);
    let host_is_name = host.parse::<std::net::IpAddr>().is_err();
    let have_is_address = have_host
        .trim_matches(['[', ']'])
        .parse::<std::net::IpAddr>()
        .is_ok();
    same_port && (have_host.eq_ignore_ascii_case(host) || (host_is_name && have_is_address))
}

/// `BackupObjects` in a form where meaning-preserving differences vanish: object keys sorted
/// (serde_json maps compare by content), empty values (`""`, `[]`, `null`) dropped as the
/// defaults they are, and list order ignored (databases and tables are sets).
fn canonical(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(_, v)| !is_empty_value(v))
                .map(|(k, v)| (k.clone(), canonical(v)))
                .collect(),
        ),
        Value::Array(items) => {
            let mut items: Vec<Value> = items.iter().map(canonical).collect();
            items.sort_by_cached_key(Value::to_string);
            items.dedup();
            Value::Array(items)
        }
        other => other.clone(),
    }
}

/// `null`, `""` and `[]`: what DBS fills in for a field the caller left out.
fn is_empty_value(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        _ => false,
    }
}

/// The spec's value and DBS's value for `m`, for a message when the same modification keeps
/// coming back.
pub fn difference(facts: &Facts<'_>, m: &Modification) -> (String, String) {
    let Some(Observation::Found(d)) = facts.observed else {
        return (String::new(), String::new());
    };
    let spec = facts.spec;
    let s = &spec.source;
    match m {
        Modification::Name(want) => (want.clone(), d.backup_plan_name.clone()),
        Modification::Strategy(req) => (
            format!(
                "{} {} interval {:?}",
                req.backup_period,
                req.backup_start_time.as_deref().unwrap_or_default(),
                req.backup_log_interval_seconds
            ),
            format!(
                "{} {} interval {:?}",
                d.backup_period.as_deref().unwrap_or_default(),
                d.backup_start_time.as_deref().unwrap_or_default(),
                facts.applied_backup_log_interval_seconds
            ),
        ),
        Modification::Storage(req) => (
            format!(
                "retention {} IA {} archive {}",
                req.backup_retention_period,
                req.duplication_infrequent_access_period,
                req.duplication_archive_period
            ),
            format!(
                "retention {:?} IA {:?} archive {:?}",
                d.backup_retention_period,
                d.duplication_infrequent_access_period,
                d.duplication_archive_period
            ),
        ),
        Modification::SourceEndpoint(SourceEndpointChange::PasswordRotated) => (
            format!("password version {:?}", facts.current_password_version),
            format!("password version {:?}", facts.applied_password_version),
        ),
        Modification::SourceEndpoint(SourceEndpointChange::Drift) => (
            format!(
                "{} {:?} {:?} {:?}:{:?} db {:?} user {:?}",
                s.instance_type.as_api_str(),
                s.region,
                s.instance_id,
                s.host,
                s.port,
                s.database_name,
                s.user_name
            ),
            format!(
                "{} {:?} {:?} {:?} db {:?} user {:?}",
                d.source_endpoint_instance_type
                    .as_deref()
                    .unwrap_or_default(),
                d.source_endpoint_region,
                d.source_endpoint_instance_id,
                d.source_endpoint_ip_port,
                d.source_endpoint_database_name,
                d.source_endpoint_user_name
            ),
        ),
        Modification::Objects(want) => (want.clone(), d.backup_objects.clone().unwrap_or_default()),
    }
}

/// What deletion does, before any credentials are resolved. `client_token` is the status'
/// ClientToken, present while a CreateBackupPlan was sent and no answer recorded. A paused or
/// abandoned object never gets here (the runtime handles both).
pub fn cleanup(
    spec: &BackupPlanSpec,
    backup_plan_id: Option<&str>,
    client_token: Option<&str>,
) -> Cleanup {
    if spec.deletion_policy == DeletionPolicy::Retain {
        let plan = backup_plan_id.map_or_else(
            || "any plan created for this object".to_owned(),
            |id| format!("backup plan {id}"),
        );
        return Cleanup::Forget {
            warning: false,
            reason: Reason::PlanRetained,
            message: format!("deletionPolicy Retain: {plan} is left at DBS"),
        };
    }
    match (backup_plan_id, client_token) {
        (Some(id), _) => match spec.pay_type {
            PayType::PayAsYouGo => Cleanup::Release(id.to_owned()),
            PayType::Subscription => Cleanup::StopSubscription(id.to_owned()),
        },
        (None, Some(token)) => Cleanup::FindThenRelease(token.to_owned()),
        (None, None) => Cleanup::Forget {
            warning: false,
            reason: Reason::NothingToRelease,
            message: "no backup plan was created for this object; nothing to release".into(),
        },
    }
}

/// Which of the plans DBS lists under the object's plan name is this object's, before a
/// create: `Ok(None)` when none carries the name, the one plan when it matches the spec's engine
/// and source, else the stall that explains why it cannot be taken over. Found plans are
/// compared by meaning, like drift.
pub fn own_plan<'d>(
    spec: &BackupPlanSpec,
    plan_name: &str,
    listed: &'d [BackupPlanDetail],
) -> Result<Option<&'d BackupPlanDetail>, Step> {
    let named: Vec<&BackupPlanDetail> = listed
        .iter()
        .filter(|d| d.backup_plan_name == plan_name && d.backup_plan_status != PlanStatus::Released)
        .collect();
    let plan = match named.as_slice() {
        [] => return Ok(None),
        [plan] => *plan,
        several => {
            let ids: Vec<&str> = several.iter().map(|d| d.backup_plan_id.as_str()).collect();
            return Err(Step::Stalled {
                reason: Reason::AmbiguousPlanName,
                message: format!(
                    "DBS holds {} plans named {plan_name:?} ({}); none is created or taken over. \
                     Set spec.backupPlanId to the one this object should manage",
                    ids.len(),
                    ids.join(", ")
                ),
            });
        }
    };
    let engine_differs = !plan.database_type.is_empty()
        && !plan
            .database_type
            .eq_ignore_ascii_case(spec.database_type.as_api_str());
    if engine_differs || source_drift(spec, plan).endpoint {
        return Err(Step::Stalled {
            reason: Reason::PlanNameTaken,
            message: format!(
                "DBS plan {} is named {plan_name:?} but backs up another source ({} {}); it is not \
                 taken over and no plan is created. Set spec.planName to another name, or \
                 spec.backupPlanId: {} to manage that plan",
                plan.backup_plan_id,
                plan.database_type,
                plan.source_endpoint_instance_id
                    .as_deref()
                    .or(plan.source_endpoint_ip_port.as_deref())
                    .unwrap_or("-"),
                plan.backup_plan_id
            ),
        });
    }
    Ok(Some(plan))
}

#[cfg(test)]
mod tests;
