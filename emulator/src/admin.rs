//! Admin API under `/_emulator/` (unsigned JSON, camelCase): inspect state,
//! inject faults, change quotas/settings and mutate resources out of band.

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State as AxState};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, patch, post, put};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::config::DbsErrorMode;
use crate::faults::{FaultRule, OneShot};
use crate::state::{Connection, Instance, PrecheckFailure, Shared, domain};
use crate::wire::now_ms;

/// Admin routes (mounted under `/_emulator`).
pub fn router() -> Router<Shared> {
    Router::new()
        .route("/state", get(state))
        .route("/calls", delete(clear_calls))
        .route("/faults", delete(clear_faults))
        .route("/faults/{action}", put(set_fault))
        .route("/faults/{action}/once", post(push_once))
        .route("/quotas/{action}", put(set_quota))
        .route("/settings", put(settings))
        .route("/accounts", post(add_account))
        .route("/instances", post(add_instance))
        .route(
            "/instances/{id}",
            put(set_instance_status).delete(remove_instance),
        )
        .route("/instances/{id}/connections", post(add_connection))
        .route("/plans/{id}", delete(delete_plan))
        .route("/plans/{id}", patch(patch_plan))
        .route(
            "/plans/{id}/precheck",
            put(set_precheck_failure).delete(clear_precheck_failure),
        )
}

/// JSON response with a status.
fn reply(status: StatusCode, body: Value) -> Response {
    (status, axum::Json(body)).into_response()
}

/// `{"ok":true}`.
fn ok() -> Response {
    reply(StatusCode::OK, json!({ "ok": true }))
}

/// `{"error": message}` with a status.
fn fail(status: StatusCode, message: impl Into<String>) -> Response {
    reply(status, json!({ "error": message.into() }))
}

/// A JSON body that could not be parsed.
struct BadBody(String);

impl IntoResponse for BadBody {
    fn into_response(self) -> Response {
        fail(
            StatusCode::BAD_REQUEST,
            format!("invalid JSON body: {}", self.0),
        )
    }
}

/// Parses a JSON body (an empty body counts as `{}`).
fn parse<T: DeserializeOwned>(body: &Bytes) -> Result<T, BadBody> {
    let text: &[u8] = if body.iter().all(u8::is_ascii_whitespace) {
        b"{}"
    } else {
        body
    };
    serde_json::from_slice(text).map_err(|e| BadBody(e.to_string()))
}

/// GET /state.
async fn state(AxState(shared): AxState<Shared>) -> Response {
    let snapshot = shared.lock().snapshot(now_ms());
    match serde_json::to_value(snapshot) {
        Ok(json) => reply(StatusCode::OK, json),
        Err(e) => fail(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

/// DELETE /calls.
async fn clear_calls(AxState(shared): AxState<Shared>) -> Response {
    shared.lock().calls.clear();
    ok()
}

/// DELETE /faults.
async fn clear_faults(AxState(shared): AxState<Shared>) -> Response {
    shared.lock().faults.clear();
    ok()
}

/// PUT /faults/{action}: the standing rule of the action (or `*`) for the body's `accountId`, or
/// for every account.
async fn set_fault(
    AxState(shared): AxState<Shared>,
    Path(action): Path<String>,
    body: Bytes,
) -> Response {
    let rule: FaultRule = match parse(&body) {
        Ok(r) => r,
        Err(e) => return e.into_response(),
    };
    if !(0.0..=1.0).contains(&rule.error_rate) || StatusCode::from_u16(rule.http_status).is_err() {
        return fail(
            StatusCode::BAD_REQUEST,
            "errorRate must be 0..1 and httpStatus a valid status",
        );
    }
    let bad_mix = rule
        .mix
        .iter()
        .any(|f| f.timeout_ms.is_none() && StatusCode::from_u16(f.http_status).is_err());
    if bad_mix || (!rule.mix.is_empty() && rule.mix.iter().all(|f| f.weight == 0)) {
        return fail(
            StatusCode::BAD_REQUEST,
            "every mix entry needs a valid httpStatus (or timeoutMs), and one a weight above 0",
        );
    }
    if rule.account_id.as_deref() == Some("") {
        return fail(StatusCode::BAD_REQUEST, "accountId must not be empty");
    }
    shared.lock().faults.set_rule(&action, rule);
    ok()
}

/// POST /faults/{action}/once.
async fn push_once(
    AxState(shared): AxState<Shared>,
    Path(action): Path<String>,
    body: Bytes,
) -> Response {
    let shot: OneShot = match parse(&body) {
        Ok(s) => s,
        Err(e) => return e.into_response(),
    };
    if StatusCode::from_u16(shot.http_status).is_err() {
        return fail(StatusCode::BAD_REQUEST, "httpStatus must be a valid status");
    }
    shared.lock().faults.push_once(&action, &shot);
    ok()
}

/// Body of PUT /quotas/{action}.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct QuotaBody {
    per_second: u32,
}

/// PUT /quotas/{action}.
async fn set_quota(
    AxState(shared): AxState<Shared>,
    Path(action): Path<String>,
    body: Bytes,
) -> Response {
    match parse::<QuotaBody>(&body) {
        Ok(q) => {
            shared.lock().quotas.set(&action, q.per_second);
            ok()
        }
        Err(e) => e.into_response(),
    }
}

/// Body of PUT /settings.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SettingsBody {
    configure_delay_ms: Option<i64>,
    instance_busy_ms: Option<i64>,
    /// 0 removes the cap.
    sts_max_duration_seconds: Option<i64>,
    precheck_ms: Option<i64>,
    client_token_ttl_ms: Option<i64>,
    describe_lag_ms: Option<i64>,
    /// `http-status` or `success-false`.
    dbs_errors: Option<DbsErrorMode>,
}

/// PUT /settings.
async fn settings(AxState(shared): AxState<Shared>, body: Bytes) -> Response {
    let s: SettingsBody = match parse(&body) {
        Ok(s) => s,
        Err(e) => return e.into_response(),
    };
    let mut st = shared.lock();
    if let Some(v) = s.configure_delay_ms {
        st.settings.configure_delay_ms = v.max(0);
    }
    if let Some(v) = s.instance_busy_ms {
        st.settings.instance_busy_ms = v.max(0);
    }
    if let Some(v) = s.sts_max_duration_seconds {
        st.settings.sts_max_duration_s = (v > 0).then_some(v);
    }
    if let Some(v) = s.precheck_ms {
        st.settings.precheck_ms = v.max(0);
    }
    if let Some(v) = s.client_token_ttl_ms {
        st.settings.client_token_ttl_ms = v.max(0);
    }
    if let Some(v) = s.describe_lag_ms {
        st.settings.describe_lag_ms = v.max(0);
    }
    if let Some(v) = s.dbs_errors {
        st.settings.dbs_errors = v;
    }
    ok()
}

/// Body of POST /accounts.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct AccountBody {
    access_key_id: String,
    access_key_secret: String,
    /// The account the key belongs to (a RAM user's key); absent: the key is its own account.
    account_id: Option<String>,
}

/// POST /accounts.
async fn add_account(AxState(shared): AxState<Shared>, body: Bytes) -> Response {
    match parse::<AccountBody>(&body) {
        Ok(a) if !a.access_key_id.is_empty() => {
            let mut state = shared.lock();
            match a.account_id.filter(|uid| !uid.is_empty()) {
                Some(uid) => state.key_accounts.insert(a.access_key_id.clone(), uid),
                None => state.key_accounts.remove(&a.access_key_id),
            };
            state.accounts.insert(a.access_key_id, a.access_key_secret);
            ok()
        }
        Ok(_) => fail(StatusCode::BAD_REQUEST, "accessKeyId must not be empty"),
        Err(e) => e.into_response(),
    }
}

/// Body of POST /instances.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct InstanceBody {
    region: String,
    db_instance_id: String,
    engine: Option<String>,
    network_type: Option<String>,
}

/// POST /instances: seeds a Running instance.
async fn add_instance(AxState(shared): AxState<Shared>, body: Bytes) -> Response {
    let b: InstanceBody = match parse(&body) {
        Ok(b) => b,
        Err(e) => return e.into_response(),
    };
    let network = b.network_type.unwrap_or_else(|| "VPC".into());
    if network != "VPC" && network != "Classic" {
        return fail(
            StatusCode::BAD_REQUEST,
            "networkType must be VPC or Classic",
        );
    }
    let mut st = shared.lock();
    if st.instance_mut(&b.db_instance_id).is_some() {
        return fail(
            StatusCode::CONFLICT,
            format!("instance {} already exists", b.db_instance_id),
        );
    }
    let engine = b.engine.unwrap_or_else(|| "MySQL".into());
    st.instances.push(Instance::new(
        &b.region,
        &b.db_instance_id,
        &engine,
        &network,
    ));
    ok()
}

/// Body of PUT /instances/{id}.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct StatusBody {
    status: Option<String>,
    /// `Unlock` unlocks; any other value locks the instance with that `LockMode`.
    lock_mode: Option<String>,
}

/// PUT /instances/{id}: forces a status (`Running` clears the override) and/or a lock mode.
async fn set_instance_status(
    AxState(shared): AxState<Shared>,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let b: StatusBody = match parse(&body) {
        Ok(b) => b,
        Err(e) => return e.into_response(),
    };
    let mut st = shared.lock();
    let Some(inst) = st.instance_mut(&id) else {
        return fail(StatusCode::NOT_FOUND, format!("instance {id} not found"));
    };
    match b.status.as_deref() {
        None => {}
        Some("Running") => {
            inst.forced_status = None;
            inst.busy_until_ms = 0;
        }
        Some(other) => inst.forced_status = Some(other.to_owned()),
    }
    match b.lock_mode.as_deref() {
        None => {}
        Some("Unlock" | "") => inst.lock_mode = None,
        Some(mode) => inst.lock_mode = Some(mode.to_owned()),
    }
    ok()
}

/// DELETE /instances/{id}.
async fn remove_instance(AxState(shared): AxState<Shared>, Path(id): Path<String>) -> Response {
    let mut st = shared.lock();
    let before = st.instances.len();
    st.instances.retain(|i| i.db_instance_id != id);
    if st.instances.len() == before {
        return fail(StatusCode::NOT_FOUND, format!("instance {id} not found"));
    }
    ok()
}

/// Body of POST /instances/{id}/connections.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ConnectionBody {
    connection_string_prefix: String,
    port: Option<u16>,
}

/// POST /instances/{id}/connections: adds a public endpoint, no busy period.
async fn add_connection(
    AxState(shared): AxState<Shared>,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let b: ConnectionBody = match parse(&body) {
        Ok(b) => b,
        Err(e) => return e.into_response(),
    };
    let mut st = shared.lock();
    let Some(region) = st.instance_mut(&id).map(|i| i.region.clone()) else {
        return fail(StatusCode::NOT_FOUND, format!("instance {id} not found"));
    };
    let taken = st.instances.iter().filter(|i| i.region == region).any(|i| {
        i.connections
            .iter()
            .any(|c| c.prefix().eq_ignore_ascii_case(&b.connection_string_prefix))
    });
    if taken {
        return fail(
            StatusCode::CONFLICT,
            "connection string prefix already used in this region",
        );
    }
    let Some(inst) = st.instance_mut(&id) else {
        return fail(StatusCode::NOT_FOUND, format!("instance {id} not found"));
    };
    let conn = Connection {
        connection_string: format!(
            "{}.{}",
            b.connection_string_prefix.to_ascii_lowercase(),
            domain(&inst.engine)
        ),
        ip_type: "Public".into(),
        port: b.port.unwrap_or(3306),
        ip_address: format!(
            "47.100.{}.{}",
            rand::random::<u8>(),
            rand::random_range(1..255u8)
        ),
    };
    inst.connections.push(conn.clone());
    reply(StatusCode::OK, json!(conn))
}

/// DELETE /plans/{id}: removes a plan entirely.
async fn delete_plan(AxState(shared): AxState<Shared>, Path(id): Path<String>) -> Response {
    if shared.lock().plans.remove(&id).is_some() {
        ok()
    } else {
        fail(StatusCode::NOT_FOUND, format!("plan {id} not found"))
    }
}

/// Body of PATCH /plans/{id}.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PlanPatch {
    status: Option<String>,
    name: Option<String>,
    backup_period: Option<String>,
    backup_start_time: Option<String>,
    backup_retention_period: Option<i64>,
}

/// PATCH /plans/{id}: out-of-band drift.
async fn patch_plan(
    AxState(shared): AxState<Shared>,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let b: PlanPatch = match parse(&body) {
        Ok(b) => b,
        Err(e) => return e.into_response(),
    };
    let mut st = shared.lock();
    let Some(plan) = st.plans.get_mut(&id) else {
        return fail(StatusCode::NOT_FOUND, format!("plan {id} not found"));
    };
    if let Some(v) = b.status {
        plan.status = v;
        plan.precheck = None;
    }
    if let Some(v) = b.name {
        plan.name = v;
    }
    if let Some(v) = b.backup_period {
        plan.backup_period = Some(v);
    }
    if let Some(v) = b.backup_start_time {
        plan.backup_start_time = Some(v);
    }
    if let Some(v) = b.backup_retention_period {
        plan.backup_retention_period = v;
    }
    reply(StatusCode::OK, json!(plan))
}

/// Body of PUT /plans/{id}/precheck.
#[derive(Deserialize)]
struct PrecheckFailBody {
    /// The `ErrMessage` of the failure; `null` clears an armed failure.
    fail: Option<String>,
    /// `init` (default) or `stop`.
    status: Option<String>,
}

/// PUT /plans/{id}/precheck: arms (or, with `"fail": null`, clears) the failure of the plan's
/// prechecks, the one running included.
async fn set_precheck_failure(
    AxState(shared): AxState<Shared>,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let b: PrecheckFailBody = match parse(&body) {
        Ok(b) => b,
        Err(e) => return e.into_response(),
    };
    let status = b.status.unwrap_or_else(|| "init".into());
    if status != "init" && status != "stop" {
        return fail(StatusCode::BAD_REQUEST, "status must be init or stop");
    }
    let mut st = shared.lock();
    let Some(plan) = st.plans.get_mut(&id) else {
        return fail(StatusCode::NOT_FOUND, format!("plan {id} not found"));
    };
    plan.precheck_failure = b.fail.map(|message| PrecheckFailure { message, status });
    reply(
        StatusCode::OK,
        json!({ "precheckFailure": plan.precheck_failure }),
    )
}

/// DELETE /plans/{id}/precheck: the plan's next prechecks pass again.
async fn clear_precheck_failure(
    AxState(shared): AxState<Shared>,
    Path(id): Path<String>,
) -> Response {
    let mut st = shared.lock();
    let Some(plan) = st.plans.get_mut(&id) else {
        return fail(StatusCode::NOT_FOUND, format!("plan {id} not found"));
    };
    plan.precheck_failure = None;
    ok()
}
