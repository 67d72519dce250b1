//! ModifyBackupStrategy, ModifyStorageStrategy, ModifyBackupSourceEndpoint,
//! ModifyBackupPlanName.

use serde_json::Value;

use super::lifecycle::{apply_source, not_configured};
use super::params::{self, required};
use super::{DbsError, DbsResult, id_only, plan_mut, precheck};
use crate::auth::Principal;
use crate::state::State;
use crate::wire::Params;

/// Response with `NeedPrecheck`.
fn with_precheck(id: &str, need: bool) -> DbsResult {
    let mut m = id_only(id);
    m.insert("NeedPrecheck".into(), Value::Bool(need));
    Ok(m)
}

/// ModifyBackupStrategy: schedule change, `NeedPrecheck:false`.
pub fn strategy(state: &mut State, who: &Principal, p: &Params) -> DbsResult {
    let id = required(p, "BackupPlanId")?;
    required(p, "BackupPeriod")?;
    let period = params::backup_period(p, "BackupPeriod")?;
    let start = params::start_time(p, "BackupStartTime")?;
    let strategy = params::strategy_type(p)?;
    let interval = params::int_in(p, "BackupLogIntervalSeconds", 1, i64::MAX)?;
    let plan = plan_mut(state, who, id)?;
    if plan.status == "wait" {
        return Err(not_configured(id));
    }
    plan.backup_period = period;
    if start.is_some() {
        plan.backup_start_time = start;
    }
    if strategy.is_some() {
        plan.backup_strategy_type = strategy;
    }
    if interval.is_some() {
        plan.backup_log_interval_seconds = interval;
    }
    with_precheck(id, false)
}

/// ModifyStorageStrategy: retention 0..1825 and IA < archive < retention.
pub fn storage(state: &mut State, who: &Principal, p: &Params) -> DbsResult {
    let id = required(p, "BackupPlanId")?;
    for name in [
        "BackupRetentionPeriod",
        "DuplicationInfrequentAccessPeriod",
        "DuplicationArchivePeriod",
    ] {
        required(p, name)?;
    }
    let retention = params::int_in(p, "BackupRetentionPeriod", 0, 1825)?.unwrap_or(0);
    let ia = params::int_in(p, "DuplicationInfrequentAccessPeriod", 0, i64::MAX)?.unwrap_or(0);
    let archive = params::int_in(p, "DuplicationArchivePeriod", 0, i64::MAX)?.unwrap_or(0);
    if ia >= archive || archive >= retention {
        return Err(DbsError::invalid(format!(
            "DuplicationInfrequentAccessPeriod ({ia}) must be less than DuplicationArchivePeriod ({archive}), which must be less than BackupRetentionPeriod ({retention})."
        )));
    }
    let plan = plan_mut(state, who, id)?;
    if plan.status == "wait" {
        return Err(not_configured(id));
    }
    plan.backup_retention_period = retention;
    plan.duplication_infrequent_access_period = ia;
    plan.duplication_archive_period = archive;
    with_precheck(id, false)
}

/// ModifyBackupSourceEndpoint: always `NeedPrecheck:true`; the plan goes to
/// `init` until StartBackupPlan is called again.
pub fn source_endpoint(state: &mut State, who: &Principal, p: &Params) -> DbsResult {
    let id = required(p, "BackupPlanId")?;
    let database_type = plan_mut(state, who, id)?.database_type.clone();
    let src = params::source_endpoint(p, &database_type)?;
    if !src.instance_type.eq_ignore_ascii_case("Agent") {
        required(p, "BackupObjects")?;
    }
    let objects = params::backup_objects(p)?;
    let plan = plan_mut(state, who, id)?;
    if plan.status == "wait" {
        return Err(not_configured(id));
    }
    apply_source(plan, src);
    if objects.is_some() {
        plan.backup_objects = objects;
    }
    if let Some(v) = params::opt(p, "CrossAliyunId") {
        plan.cross_aliyun_id = Some(v);
    }
    if let Some(v) = params::opt(p, "CrossRoleName") {
        plan.cross_role_name = Some(v);
    }
    needs_precheck(plan);
    with_precheck(id, true)
}

/// ModifyBackupObjects: `BackupObjects` (a JSON array string) required; like
/// ModifyBackupSourceEndpoint, `NeedPrecheck:true` and the plan waits in `init` for
/// StartBackupPlan.
pub fn objects(state: &mut State, who: &Principal, p: &Params) -> DbsResult {
    let id = required(p, "BackupPlanId")?;
    required(p, "BackupObjects")?;
    let objects = params::backup_objects(p)?;
    let plan = plan_mut(state, who, id)?;
    if plan.status == "wait" {
        return Err(not_configured(id));
    }
    plan.backup_objects = objects;
    needs_precheck(plan);
    with_precheck(id, true)
}

/// After a change that needs a new precheck: `init`, no precheck running, no old `ErrMessage`.
fn needs_precheck(plan: &mut crate::state::Plan) {
    precheck::cancel(plan);
    plan.err_message.clear();
    plan.status = "init".into();
}

/// ModifyBackupPlanName.
pub fn name(state: &mut State, who: &Principal, p: &Params) -> DbsResult {
    let id = required(p, "BackupPlanId")?;
    let name = required(p, "BackupPlanName")?.to_string();
    let plan = plan_mut(state, who, id)?;
    plan.name = name;
    Ok(id_only(id))
}
