//! DBS (2019-03-06): backup plan actions and the DBS response envelope.
//!
//! Business errors come back with their 4xx status ([`http_status`]) and both
//! the generic (`Code`, `Message`) and the DBS (`Success:false`, `ErrCode`,
//! `ErrMessage`, `HttpStatusCode`) fields, or, in the `success-false` mode, as
//! HTTP 200 with `Success:false` (the older documented form); auth,
//! throttling and faults are handled before this module.

mod describe;
mod lifecycle;
mod modify;
mod objects;
mod params;
mod precheck;

pub use precheck::settle as settle_precheck;

use axum::http::StatusCode;
use serde_json::{Map, Value, json};

use crate::auth::Principal;
use crate::config::DbsErrorMode;
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

/// A DBS business error (`Success:false`, sent with [`http_status`] of its code).
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

/// The HTTP status real DBS answers a business error `code` with: the one
/// table of it (emulator/README.md gives the evidence for each row). The DBS
/// docs list only `403 Request.Forbidden` per action; the rest is our reading
/// of Alibaba's common error tables.
pub fn http_status(code: &str) -> u16 {
    match code {
        // The plan does not exist: `*.NotFound` codes are 404 in the ECS
        // error table; Terraform catches it as an SDK exception (so >= 400).
        "InvalidJobId" => 404,
        // Missing RAM permission: the per-action DBS error table.
        "Request.Forbidden" | "Forbidden.RAM" => 403,
        // An operation refused in the resource's current state (ECS: 403).
        c if c.starts_with("OperationDenied") => 403,
        // Bad or conflicting parameters, and every other code: 400 (the
        // documented DescribeBackupPlanBilling error sample echoes 400).
        _ => 400,
    }
}

/// Runs a DBS action; returns the response body (without RequestId), the
/// outcome code for the call log and the HTTP status to send.
pub fn handle(
    state: &mut State,
    who: &Principal,
    action: &str,
    p: &Params,
    now_ms: i64,
) -> (Map<String, Value>, String, StatusCode) {
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
            (body, "Success".into(), StatusCode::OK)
        }
        Err(e) => {
            let (body, status) = error_body(&e, state.settings.dbs_errors);
            (body, e.code.to_string(), status)
        }
    }
}

/// The body and HTTP status of a business error in `mode`. Both modes echo
/// the error's real status in `HttpStatusCode`; `http-status` also sends it,
/// with the generic `Code`/`Message`/`HostId` the official SDKs read.
fn error_body(e: &DbsError, mode: DbsErrorMode) -> (Map<String, Value>, StatusCode) {
    let status = http_status(e.code);
    let mut body = envelope(false, e.code, &e.message, status);
    match mode {
        DbsErrorMode::SuccessFalse => (body, StatusCode::OK),
        DbsErrorMode::HttpStatus => {
            body.insert("Code".into(), e.code.into());
            body.insert("Message".into(), e.message.clone().into());
            body.insert("HostId".into(), crate::wire::Product::Dbs.host().into());
            (
                body,
                StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST),
            )
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_table() {
        for (code, status) in [
            ("InvalidJobId", 404),
            ("InvalidParameter", 400),
            ("InvalidParameterValid", 400),
            ("IdempotentParameterMismatch", 400),
            ("Request.Forbidden", 403),
            ("OperationDenied", 403),
            ("OperationDenied.PlanStatus", 403),
            ("SomethingNew", 400),
        ] {
            assert_eq!(http_status(code), status, "{code}");
        }
    }

    #[test]
    fn both_modes_carry_the_dbs_fields_and_the_real_status() {
        let e = DbsError::no_plan("dbs1");
        let (body, status) = error_body(&e, DbsErrorMode::HttpStatus);
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(body["Code"], "InvalidJobId");
        assert_eq!(body["ErrCode"], "InvalidJobId");
        assert_eq!(body["Message"], body["ErrMessage"]);
        assert_eq!(body["Success"], false);
        assert_eq!(body["HttpStatusCode"], 404);
        let (body, status) = error_body(&e, DbsErrorMode::SuccessFalse);
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["ErrCode"], "InvalidJobId");
        assert_eq!(body["HttpStatusCode"], 404);
        assert!(body.get("Code").is_none());
    }
}
