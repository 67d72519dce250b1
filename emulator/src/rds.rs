//! RDS (2014-08-15): public connection endpoints and instance status.

use axum::http::StatusCode;
use serde_json::{Map, Value, json};

use crate::error::ApiError;
use crate::state::{Connection, Instance, State, domain};
use crate::wire::Params;

/// Actions implemented for RDS.
pub const ACTIONS: &[&str] = &[
    "AllocateInstancePublicConnection",
    "ModifyDBInstanceConnectionString",
    "ReleaseInstanceConnection",
    "ReleaseInstancePublicConnection",
    "DescribeDBInstanceNetInfo",
    "DescribeDBInstanceAttribute",
];

/// Runs an RDS action; returns the response fields (without RequestId).
pub fn handle(
    state: &mut State,
    action: &str,
    p: &Params,
    now_ms: i64,
) -> Result<Map<String, Value>, ApiError> {
    match action {
        "AllocateInstancePublicConnection" => allocate(state, p, now_ms),
        "ModifyDBInstanceConnectionString" => modify(state, p, now_ms),
        "ReleaseInstanceConnection" => release(state, p, now_ms, true),
        "ReleaseInstancePublicConnection" => release(state, p, now_ms, false),
        "DescribeDBInstanceNetInfo" => net_info(state, p),
        "DescribeDBInstanceAttribute" => attribute(state, p, now_ms),
        other => Err(ApiError::bad_request(
            "InvalidAction.NotFound",
            format!("Specified api {other} is not found."),
        )),
    }
}

/// A required parameter (400 `MissingParameter`).
fn required<'a>(p: &'a Params, name: &str) -> Result<&'a str, ApiError> {
    p.get(name).ok_or_else(|| ApiError::missing(name))
}

/// Finds the instance named by `DBInstanceId` (and `RegionId` if given).
fn instance<'a>(state: &'a mut State, p: &Params) -> Result<&'a mut Instance, ApiError> {
    let id = required(p, "DBInstanceId")?;
    let region = p.get("RegionId");
    state
        .instances
        .iter_mut()
        .find(|i| i.db_instance_id == id && region.is_none_or(|r| r == i.region))
        .ok_or_else(|| {
            ApiError::bad_request(
                "InvalidDBInstanceId.NotFound",
                format!("Specified instance {id} does not exist."),
            )
        })
}

/// Whether any endpoint in `region` other than `except` uses `prefix`.
fn prefix_taken(state: &State, region: &str, prefix: &str, except: Option<&str>) -> bool {
    state
        .instances
        .iter()
        .filter(|i| i.region == region)
        .any(|i| {
            i.connections.iter().any(|c| {
                c.prefix().eq_ignore_ascii_case(prefix)
                    && Some(c.connection_string.as_str()) != except
            })
        })
}

/// True when the prefix has only letters, digits and hyphens.
fn legal_prefix(prefix: &str) -> bool {
    prefix
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

/// Parses a port in 1000..=5999.
fn port(value: &str) -> Option<u16> {
    value
        .trim()
        .parse::<u16>()
        .ok()
        .filter(|p| (1000..=5999).contains(p))
}

/// A random public IPv4 address.
fn public_ip() -> String {
    format!(
        "47.{}.{}.{}",
        rand::random_range(0..255u8),
        rand::random_range(0..255u8),
        rand::random_range(1..255u8)
    )
}

/// Fields as a JSON object map.
fn object(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

/// AllocateInstancePublicConnection.
fn allocate(state: &mut State, p: &Params, now_ms: i64) -> Result<Map<String, Value>, ApiError> {
    let prefix = required(p, "ConnectionStringPrefix")?.to_string();
    let port_raw = required(p, "Port")?.to_string();
    let busy_ms = state.settings.instance_busy_ms;
    let inst = instance(state, p)?;
    if !legal_prefix(&prefix) {
        return Err(ApiError::bad_request(
            "ConnectionStringContainIllegalCharacterFault",
            "Specified connection string contains illegal characters: only letters, digits and hyphens are allowed.",
        ));
    }
    if !(5..=40).contains(&prefix.len()) {
        return Err(ApiError::bad_request(
            "InvalidConnectionString.Format",
            "Specified connection string prefix must be 5 to 40 characters long.",
        ));
    }
    let port = port(&port_raw).ok_or_else(|| {
        ApiError::bad_request(
            "InvalidPort.Malformed",
            "Specified port is not valid: 1000-5999.",
        )
    })?;
    ensure_unlocked(inst)?;
    if inst.status(now_ms) != "Running" {
        return Err(ApiError::bad_request(
            "IncorrectDBInstanceState",
            "Current DB instance state does not support this operation.",
        ));
    }
    if inst.public().is_some() {
        return Err(ApiError::bad_request(
            "NetTypeExists",
            "Specified network type already exists.",
        ));
    }
    let (region, id, engine) = (
        inst.region.clone(),
        inst.db_instance_id.clone(),
        inst.engine.clone(),
    );
    if prefix_taken(state, &region, &prefix, None) {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "InvalidConnectionString.Duplicate",
            "Specified connection string already exists in the RDS.",
        ));
    }
    let connection_string = format!("{}.{}", prefix.to_ascii_lowercase(), domain(&engine));
    if let Some(inst) = state.instance_mut(&id) {
        inst.connections.push(Connection {
            connection_string: connection_string.clone(),
            ip_type: "Public".into(),
            port,
            ip_address: public_ip(),
        });
        inst.busy_until_ms = now_ms + busy_ms;
    }
    Ok(object(
        json!({ "DbInstanceName": id, "ConnectionString": connection_string }),
    ))
}

/// 403 `IncorrectDBInstanceLockMode` when the instance is locked (overdue payment, full
/// disk, ...).
fn ensure_unlocked(inst: &Instance) -> Result<(), ApiError> {
    match &inst.lock_mode {
        None => Ok(()),
        Some(mode) => Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "IncorrectDBInstanceLockMode",
            format!("Current DB instance lock mode {mode} does not support this operation."),
        )),
    }
}

/// 400 `OperationDenied.DBInstanceStatus` unless the instance is Running.
fn ensure_running(inst: &Instance, now_ms: i64) -> Result<(), ApiError> {
    if inst.status(now_ms) == "Running" {
        Ok(())
    } else {
        Err(ApiError::bad_request(
            "OperationDenied.DBInstanceStatus",
            "The operation is not permitted due to status of instance.",
        ))
    }
}

/// ModifyDBInstanceConnectionString (prefix 8..64, port 1000..5999).
fn modify(state: &mut State, p: &Params, now_ms: i64) -> Result<Map<String, Value>, ApiError> {
    let current = required(p, "CurrentConnectionString")?.to_string();
    let prefix = required(p, "ConnectionStringPrefix")?.to_string();
    let port_raw = required(p, "Port")?.to_string();
    let busy_ms = state.settings.instance_busy_ms;
    let inst = instance(state, p)?;
    if !inst
        .connections
        .iter()
        .any(|c| c.connection_string == current)
    {
        return Err(ApiError::bad_request(
            "InvalidConnectionString.NotFound",
            format!("Specified connection string {current} is not found."),
        ));
    }
    if !legal_prefix(&prefix) {
        return Err(ApiError::bad_request(
            "InvalidConnectionString.Malformed",
            "Specified connection string contains illegal characters: only letters, digits and hyphens are allowed.",
        ));
    }
    if !(8..=64).contains(&prefix.len()) {
        return Err(ApiError::bad_request(
            "InvalidConnectionString.Format",
            "Specified connection string prefix must be 8 to 64 characters long.",
        ));
    }
    let port = port(&port_raw).ok_or_else(|| {
        ApiError::bad_request(
            "InvalidPort.Format",
            "Specified port is not valid: 1000-5999.",
        )
    })?;
    ensure_unlocked(inst)?;
    ensure_running(inst, now_ms)?;
    let (region, id, engine) = (
        inst.region.clone(),
        inst.db_instance_id.clone(),
        inst.engine.clone(),
    );
    if prefix_taken(state, &region, &prefix, Some(&current)) {
        return Err(ApiError::bad_request(
            "InvalidConnectionString.Duplicate",
            "Specified connection string already exists in the RDS.",
        ));
    }
    if let Some(inst) = state.instance_mut(&id) {
        if let Some(conn) = inst
            .connections
            .iter_mut()
            .find(|c| c.connection_string == current)
        {
            conn.connection_string = format!("{}.{}", prefix.to_ascii_lowercase(), domain(&engine));
            conn.port = port;
        }
        inst.busy_until_ms = now_ms + busy_ms;
    }
    Ok(Map::new())
}

/// ReleaseInstanceConnection (`strict`: needs InstanceNetworkType, 404
/// `Endpoint.NotFound`) or ReleaseInstancePublicConnection.
fn release(
    state: &mut State,
    p: &Params,
    now_ms: i64,
    strict: bool,
) -> Result<Map<String, Value>, ApiError> {
    let current = required(p, "CurrentConnectionString")?.to_string();
    let busy_ms = state.settings.instance_busy_ms;
    let net_type = if strict {
        match required(p, "InstanceNetworkType")? {
            "0" => Some("VPC"),
            "1" => Some("Classic"),
            other => {
                return Err(ApiError::invalid(format!(
                    "InstanceNetworkType must be 0 (VPC) or 1 (classic network), got {other}."
                )));
            }
        }
    } else {
        None
    };
    let inst = instance(state, p)?;
    if let Some(t) = net_type
        && !inst.network_type.eq_ignore_ascii_case(t)
    {
        return Err(ApiError::invalid(format!(
            "InstanceNetworkType does not match the network type of the instance ({}).",
            inst.network_type
        )));
    }
    let Some(idx) = inst
        .connections
        .iter()
        .position(|c| c.connection_string == current)
    else {
        return Err(if strict {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "Endpoint.NotFound",
                "Specified endpoint is not existed.",
            )
        } else {
            ApiError::bad_request(
                "InvalidCurrentConnectionString.NotFound",
                "Specified current connection string is not found.",
            )
        });
    };
    if inst.connections[idx].ip_type != "Public" {
        return Err(ApiError::bad_request(
            "AtLeastOneNetTypeExists",
            "The internal endpoint cannot be released: at least one network type must exist.",
        ));
    }
    ensure_unlocked(inst)?;
    ensure_running(inst, now_ms)?;
    inst.connections.remove(idx);
    inst.busy_until_ms = now_ms + busy_ms;
    Ok(Map::new())
}

/// DescribeDBInstanceNetInfo.
fn net_info(state: &mut State, p: &Params) -> Result<Map<String, Value>, ApiError> {
    let inst = instance(state, p)?;
    let vpc = inst.network_type == "VPC";
    let infos: Vec<Value> = inst
        .connections
        .iter()
        .map(|c| {
            let private = c.ip_type != "Public";
            json!({
                "ConnectionString": c.connection_string,
                "IPAddress": c.ip_address,
                "IPType": c.ip_type,
                "Port": c.port.to_string(),
                "ConnectionStringType": "Normal",
                "VPCId": if vpc && private { "vpc-emulator0000000000" } else { "" },
                "VSwitchId": if vpc && private { "vsw-emulator0000000000" } else { "" },
                "Upgradeable": "Disabled",
                "ExpiredTime": "",
                "SecurityIPGroups": { "securityIPGroup": [] },
                "DBInstanceWeights": { "DBInstanceWeight": [] },
            })
        })
        .collect();
    Ok(object(json!({
        "InstanceNetworkType": inst.network_type,
        "SecurityIPMode": "normal",
        "DBInstanceNetInfos": { "DBInstanceNetInfo": infos },
    })))
}

/// DescribeDBInstanceAttribute (status subset).
fn attribute(state: &mut State, p: &Params, now_ms: i64) -> Result<Map<String, Value>, ApiError> {
    let inst = instance(state, p)?;
    let internal = inst.connections.iter().find(|c| c.ip_type != "Public");
    let attr = json!({
        "DBInstanceId": inst.db_instance_id,
        "DBInstanceStatus": inst.status(now_ms),
        "LockMode": inst.lock_mode.as_deref().unwrap_or("Unlock"),
        "LockReason": if inst.lock_mode.is_some() { "instance locked (emulator)" } else { "" },
        "Engine": inst.engine,
        "RegionId": inst.region,
        "DBInstanceNetType": if inst.public().is_some() { "Internet" } else { "Intranet" },
        "InstanceNetworkType": inst.network_type,
        "ConnectionString": internal.map(|c| c.connection_string.clone()).unwrap_or_default(),
        "Port": internal.map(|c| c.port.to_string()).unwrap_or_default(),
        "DBInstanceType": "Primary",
    });
    Ok(object(
        json!({ "Items": { "DBInstanceAttribute": [attr] } }),
    ))
}
