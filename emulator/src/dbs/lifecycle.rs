//! CreateBackupPlan, ConfigureBackupPlan, Start/Stop/ReleaseBackupPlan.

use rand::Rng as _;
use serde_json::{Map, Value};

use super::params::{self, opt, required};
use super::{DbsError, DbsResult, id_only, plan_mut, precheck};
use crate::auth::Principal;
use crate::state::{ClientTokenUse, Plan, State};
use crate::wire::{Params, now_ms, random_alphanumeric};

/// The CreateBackupPlan parameters of the SDK model, ClientToken aside: a ClientToken reused
/// with any of them different is an `IdempotentParameterMismatch`.
const CREATE_PARAMETERS: &[&str] = &[
    "BackupMethod",
    "DatabaseRegion",
    "DatabaseType",
    "FromApp",
    "InstanceClass",
    "InstanceType",
    "OwnerId",
    "PayType",
    "Period",
    "Region",
    "ResourceGroupId",
    "StorageRegion",
    "StorageType",
    "UsedTime",
];

/// The create parameters of a request that were sent (non-blank), in [`CREATE_PARAMETERS`] order.
fn create_parameters(p: &Params) -> Vec<(String, String)> {
    CREATE_PARAMETERS
        .iter()
        .filter_map(|name| p.get(name).map(|v| ((*name).to_string(), v.to_string())))
        .collect()
}

/// `IdempotentParameterMismatch`: a ClientToken reused with other parameters.
fn token_mismatch() -> DbsError {
    DbsError {
        code: "IdempotentParameterMismatch",
        message: "The request uses the same client token as a previous, but non-identical request."
            .into(),
    }
}

/// `dbs` + 10 lower-case alphanumerics.
fn new_plan_id() -> String {
    format!("dbs{}", random_alphanumeric(10).to_ascii_lowercase())
}

/// A 15-digit order number.
fn new_order_id() -> String {
    rand::rng()
        .random_range(100_000_000_000_000u64..999_999_999_999_999)
        .to_string()
}

/// Response of CreateBackupPlan.
fn created(plan_id: &str, order_id: &str) -> Map<String, Value> {
    let mut m = id_only(plan_id);
    m.insert("OrderId".into(), Value::String(order_id.to_string()));
    m
}

/// CreateBackupPlan: validates the purchase parameters and creates a `wait` plan.
pub fn create(state: &mut State, who: &Principal, p: &Params, now_ms: i64) -> DbsResult {
    let token = opt(p, "ClientToken");
    if let Some(t) = &token {
        if t.len() > 64 || !t.is_ascii() {
            return Err(params::bad_value("ClientToken", t));
        }
        let ttl = state.settings.client_token_ttl_ms;
        state
            .client_tokens
            .retain(|_, used| now_ms - used.at_ms < ttl);
        let key = (
            who.account_id.clone(),
            "CreateBackupPlan".to_string(),
            t.clone(),
        );
        if let Some(used) = state.client_tokens.get(&key) {
            if used.parameters != create_parameters(p) {
                return Err(token_mismatch());
            }
            if let Some(plan) = state.plans.get(&used.backup_plan_id) {
                return Ok(created(&plan.backup_plan_id, &plan.order_id));
            }
        }
    }
    let region = required(p, "Region")?.to_string();
    required(p, "InstanceClass")?;
    required(p, "DatabaseType")?;
    required(p, "BackupMethod")?;
    let instance_class =
        params::one_of(p, "InstanceClass", params::INSTANCE_CLASSES)?.unwrap_or_default();
    let database_type =
        params::one_of(p, "DatabaseType", params::DATABASE_TYPES)?.unwrap_or_default();
    let backup_method =
        params::one_of(p, "BackupMethod", params::BACKUP_METHODS)?.unwrap_or_default();
    let pay_type =
        params::one_of(p, "PayType", &["postpay", "prepay"])?.unwrap_or_else(|| "prepay".into());
    if pay_type == "postpay" && database_type == "DRDS" {
        return Err(DbsError::invalid(
            "The specified parameter PayType value is not valid: postpay is not supported for DatabaseType DRDS.",
        ));
    }
    let (period, used_time, database_region, storage_region, instance_type) =
        if pay_type == "postpay" {
            let database_region = Some(required(p, "DatabaseRegion")?.to_string());
            let storage_region = Some(required(p, "StorageRegion")?.to_string());
            required(p, "InstanceType")?;
            let instance_type = params::one_of(p, "InstanceType", params::INSTANCE_TYPES)?;
            (None, None, database_region, storage_region, instance_type)
        } else {
            required(p, "Period")?;
            required(p, "UsedTime")?;
            let per = params::one_of(p, "Period", &["Year", "Month"])?.unwrap_or_default();
            let max = if per == "Year" { 5 } else { 11 };
            let used_time = params::int_in(p, "UsedTime", 1, max)?;
            let instance_type = params::one_of(p, "InstanceType", params::INSTANCE_TYPES)?;
            (
                Some(per),
                used_time,
                opt(p, "DatabaseRegion"),
                opt(p, "StorageRegion"),
                instance_type,
            )
        };
    let mut id = new_plan_id();
    while state.plans.contains_key(&id) {
        id = new_plan_id();
    }
    let order_id = new_order_id();
    state.next_seq += 1;
    let plan = Plan {
        seq: state.next_seq,
        backup_plan_id: id.clone(),
        account_id: who.account_id.clone(),
        region,
        name: id.clone(),
        status: "wait".into(),
        pay_type,
        client_token: token.clone(),
        order_id: order_id.clone(),
        database_type,
        instance_class,
        backup_method,
        created_at_ms: now_ms,
        configured_at_ms: None,
        period,
        used_time,
        database_region,
        storage_region,
        instance_type,
        backup_period: None,
        backup_start_time: None,
        backup_strategy_type: None,
        backup_retention_period: 730,
        duplication_infrequent_access_period: 180,
        duplication_archive_period: 365,
        source_endpoint_instance_type: None,
        source_endpoint_instance_id: None,
        source_endpoint_region: None,
        source_endpoint_ip: None,
        source_endpoint_port: None,
        source_endpoint_database_name: None,
        source_endpoint_user_name: None,
        source_endpoint_oracle_sid: None,
        source_endpoint_password: None,
        source_endpoint_password_set: false,
        backup_gateway_id: 0,
        backup_objects: None,
        enable_backup_log: false,
        backup_log_interval_seconds: None,
        backup_storage_type: None,
        oss_bucket_name: None,
        cross_aliyun_id: None,
        cross_role_name: None,
        resource_group_id: opt(p, "ResourceGroupId"),
        err_message: String::new(),
        precheck: None,
        precheck_failure: None,
        full_backup_set_ids: Vec::new(),
    };
    state.plans.insert(id.clone(), plan);
    if let Some(t) = token {
        state.client_tokens.insert(
            (who.account_id.clone(), "CreateBackupPlan".into(), t),
            ClientTokenUse {
                backup_plan_id: id.clone(),
                parameters: create_parameters(p),
                at_ms: now_ms,
            },
        );
    }
    Ok(created(&id, &order_id))
}

/// Copies a validated source endpoint into a plan.
pub fn apply_source(plan: &mut Plan, src: params::SourceEndpoint) {
    plan.source_endpoint_instance_type = Some(src.instance_type);
    plan.source_endpoint_region = src.region;
    plan.source_endpoint_instance_id = src.instance_id;
    plan.source_endpoint_ip = src.ip;
    plan.source_endpoint_port = src.port;
    plan.source_endpoint_database_name = src.database_name;
    plan.source_endpoint_user_name = src.user_name;
    plan.source_endpoint_password_set = src.password.is_some();
    plan.source_endpoint_password = src.password;
    plan.source_endpoint_oracle_sid = src.oracle_sid;
    plan.backup_gateway_id = src.gateway_id.unwrap_or(0);
}

/// ConfigureBackupPlan: enforces the create->configure delay, validates and
/// moves the plan to `init` (or begins the precheck with `AutoStartBackup=true`).
pub fn configure(state: &mut State, who: &Principal, p: &Params, now_ms: i64) -> DbsResult {
    let id = required(p, "BackupPlanId")?;
    let delay = state.settings.configure_delay_ms;
    let precheck_ms = state.settings.precheck_ms;
    let plan = plan_mut(state, who, id)?;
    if now_ms - plan.created_at_ms < delay {
        return Err(DbsError {
            code: "OperationDenied",
            message: format!(
                "The backup plan {id} is still being created: wait a few seconds after CreateBackupPlan before calling ConfigureBackupPlan."
            ),
        });
    }
    let name = required(p, "BackupPlanName")?.to_string();
    let src = params::source_endpoint(p, &plan.database_type)?;
    let objects = params::backup_objects(p)?;
    let period = params::backup_period(p, "BackupPeriod")?;
    let start = params::start_time(p, "BackupStartTime")?;
    let strategy = params::strategy_type(p)?;
    if strategy.as_deref() == Some("simple") && (period.is_none() || start.is_none()) {
        return Err(DbsError::invalid(
            "BackupPeriod and BackupStartTime are required when BackupStrategyType is simple.",
        ));
    }
    let enable_log = params::boolean(p, "EnableBackupLog")?;
    let log_interval = params::int_in(p, "BackupLogIntervalSeconds", 1, i64::MAX)?;
    let retention = params::int_in(p, "BackupRetentionPeriod", 0, 1825)?;
    let ia = params::int_in(p, "DuplicationInfrequentAccessPeriod", 0, i64::MAX)?;
    let archive = params::int_in(p, "DuplicationArchivePeriod", 0, i64::MAX)?;
    let storage_type = match p.get("BackupStorageType") {
        None => None,
        Some("system") => Some("system".to_string()),
        Some(v) => return Err(params::bad_value("BackupStorageType", v)),
    };
    int_limits(p)?;
    let auto_start = params::boolean(p, "AutoStartBackup")?.unwrap_or(false);
    plan.name = name;
    apply_source(plan, src);
    plan.backup_objects = objects;
    plan.backup_period = period;
    plan.backup_start_time = start;
    plan.backup_strategy_type = Some(strategy.unwrap_or_else(|| "simple".into()));
    plan.enable_backup_log = enable_log.unwrap_or(false);
    plan.backup_log_interval_seconds = log_interval;
    plan.backup_retention_period = retention.unwrap_or(730);
    plan.duplication_infrequent_access_period = ia.unwrap_or(180);
    plan.duplication_archive_period = archive.unwrap_or(365);
    plan.backup_storage_type = storage_type;
    plan.oss_bucket_name = opt(p, "OSSBucketName");
    plan.cross_aliyun_id = opt(p, "CrossAliyunId");
    plan.cross_role_name = opt(p, "CrossRoleName");
    if let Some(rg) = opt(p, "ResourceGroupId") {
        plan.resource_group_id = Some(rg);
    }
    plan.configured_at_ms = Some(now_ms);
    if auto_start {
        precheck::begin(plan, now_ms, precheck_ms);
    } else {
        precheck::cancel(plan);
        plan.err_message.clear();
        plan.status = "init".into();
    }
    Ok(id_only(id))
}

/// Validates the optional KB/s limits (non-negative integers).
fn int_limits(p: &Params) -> Result<(), DbsError> {
    params::int_in(p, "BackupRateLimit", 0, i64::MAX)?;
    params::int_in(p, "BackupSpeedLimit", 0, i64::MAX)?;
    Ok(())
}

/// `IncorrectStatus`: an action that needs a configured plan, on a `wait` plan.
pub fn not_configured(id: &str) -> DbsError {
    DbsError {
        code: "IncorrectStatus",
        message: format!(
            "The backup plan {id} has not been configured: call ConfigureBackupPlan first."
        ),
    }
}

/// StartBackupPlan: `init`/`pause`/`stop` begin a precheck (`init` -> `check_pass` ->
/// `running`); refused while one runs; on `running` it only starts a full backup. Every
/// accepted start records a full backup set (`CreatedFullBackupsetId`).
pub fn start(state: &mut State, who: &Principal, p: &Params) -> DbsResult {
    let id = required(p, "BackupPlanId")?;
    let precheck_ms = state.settings.precheck_ms;
    let plan = plan_mut(state, who, id)?;
    if plan.status == "wait" {
        return Err(not_configured(id));
    }
    if plan.status == "locked" {
        return Err(DbsError::invalid(format!(
            "The backup plan {id} is locked."
        )));
    }
    if plan.precheck.is_some() {
        return Err(precheck::running_error(id));
    }
    let set_id = if plan.status == "running" {
        precheck::record_full_backup(plan)
    } else {
        precheck::begin(plan, now_ms(), precheck_ms)
    };
    let mut m = id_only(id);
    m.insert("CreatedFullBackupsetId".into(), Value::String(set_id));
    Ok(m)
}

/// StopBackupPlan: needs StopMethod ALL|PLAN; -> `pause`.
pub fn stop(state: &mut State, who: &Principal, p: &Params) -> DbsResult {
    let id = required(p, "BackupPlanId")?;
    required(p, "StopMethod")?;
    params::one_of(p, "StopMethod", &["ALL", "PLAN"])?;
    let plan = plan_mut(state, who, id)?;
    if plan.status == "wait" {
        return Err(not_configured(id));
    }
    precheck::cancel(plan);
    plan.status = "pause".into();
    Ok(id_only(id))
}

/// ReleaseBackupPlan: postpay only; the plan becomes `released`.
pub fn release(state: &mut State, who: &Principal, p: &Params) -> DbsResult {
    let id = required(p, "BackupPlanId")?;
    let plan = plan_mut(state, who, id)?;
    if plan.pay_type != "postpay" {
        return Err(DbsError::invalid(
            "This backupPlan can't support this action",
        ));
    }
    precheck::cancel(plan);
    plan.status = "released".into();
    Ok(id_only(id))
}
