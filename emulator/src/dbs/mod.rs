//! DBS (2019-03-06): backup plan actions and the DBS response envelope.
//!
//! Business errors come back as HTTP 200 with `Success:false` (documented
//! quirk); auth, throttling and faults are handled before this module.

mod describe;
mod lifecycle;
mod modify;
mod objects;
mod params;
mod precheck;

pub use precheck::settle as settle_precheck;

use serde_json::{Map, Value, json};

use crate::auth::Principal;
use crate::state::{Plan, State};
use crate::wire::Params;

/// Actions implemented for DBS.
pub const ACTIONS: &[&str] = &[
    "CreateBackupPlan",
    "ConfigureBackupPlan",
    "StartBackupPlan",
    "StopBackupPlan",
    "DescribeBackupPlanList",
    "ModifyBackupStrategy",
    "ModifyStorageStrategy",
    "ModifyBackupSourceEndpoint",
    "ModifyBackupObjects",
    "ModifyBackupPlanName",
    "ReleaseBackupPlan",
    "DescribeBackupPlanBilling",
];

/// Actions whose documented success sample carries `ErrCode: Param.NotFound`
/// together with `Success: true`; the emulator reproduces that quirk.
const QUIRK_ERRCODE_ON_SUCCESS: &[&str] = &[
    "StartBackupPlan",
    "StopBackupPlan",
    "ModifyBackupPlanName",
    "ReleaseBackupPlan",
];

/// A DBS business error (HTTP 200, `Success:false`).
#[derive(Debug, Clone)]
pub struct DbsError {
    /// `ErrCode`.
    pub code: &'static str,
    /// `ErrMessage`.
    pub message: String,
}

impl DbsError {
    /// `InvalidParameter` with a message.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self {
            code: "InvalidParameter",
            message: message.into(),
        }
    }

    /// `InvalidJobId`: the plan does not exist (or is released).
    pub fn no_plan(id: &str) -> Self {
        Self {
            code: "InvalidJobId",
            message: format!("findValidDBSJob error: backup plan {id} does not exist"),
        }
    }
}

/// Result of one DBS handler: extra response fields or a business error.
pub type DbsResult = Result<Map<String, Value>, DbsError>;

/// Runs a DBS action; returns the response body (without RequestId) and
/// the outcome code for the call log.
pub fn handle(
    state: &mut State,
    who: &Principal,
    action: &str,
    p: &Params,
    now_ms: i64,
) -> (Map<String, Value>, String) {
    let result = match action {
        "CreateBackupPlan" => lifecycle::create(state, who, p, now_ms),
        "ConfigureBackupPlan" => lifecycle::configure(state, who, p, now_ms),
        "StartBackupPlan" => lifecycle::start(state, who, p),
        "StopBackupPlan" => lifecycle::stop(state, who, p),
        "ReleaseBackupPlan" => lifecycle::release(state, who, p),
        "DescribeBackupPlanList" => describe::list(state, who, p),
        "DescribeBackupPlanBilling" => describe::billing(state, who, p, now_ms),
        "ModifyBackupStrategy" => modify::strategy(state, who, p),
        "ModifyStorageStrategy" => modify::storage(state, who, p),
        "ModifyBackupSourceEndpoint" => modify::source_endpoint(state, who, p),
        "ModifyBackupObjects" => modify::objects(state, who, p),
        "ModifyBackupPlanName" => modify::name(state, who, p),
        other => Err(DbsError::invalid(format!("unsupported action {other}"))),
    };
    match result {
        Ok(fields) => {
            let (code, message) = if QUIRK_ERRCODE_ON_SUCCESS.contains(&action) {
                (
                    "Param.NotFound",
                    "The specified parameter %s value is not valid.",
                )
            } else {
                ("", "")
            };
            let mut body = envelope(true, code, message, 200);
            body.extend(fields);
            (body, "Success".into())
        }
        Err(e) => (envelope(false, e.code, &e.message, 400), e.code.to_string()),
    }
}

/// The common DBS fields.
fn envelope(success: bool, code: &str, message: &str, status: u16) -> Map<String, Value> {
    let v = json!({
        "Success": success,
        "ErrCode": code,
        "ErrMessage": message,
        "HttpStatusCode": status,
    });
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

/// A live (not released) plan of the caller's account, its precheck advanced to now.
pub fn plan_mut<'a>(
    state: &'a mut State,
    who: &Principal,
    id: &str,
) -> Result<&'a mut Plan, DbsError> {
    match state.plans.get_mut(id) {
        Some(plan) if plan.account_id == who.account_id && plan.status != "released" => {
            precheck::settle(plan, crate::wire::now_ms());
            Ok(plan)
        }
        _ => Err(DbsError::no_plan(id)),
    }
}

/// Single-field response map `{"BackupPlanId": id}`.
pub fn id_only(id: &str) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("BackupPlanId".into(), Value::String(id.to_string()));
    m
}
