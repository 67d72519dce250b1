//! DBS parameter validation (enums, ranges, conditional source params).

use super::DbsError;
use crate::wire::Params;

/// `InstanceClass` values.
pub const INSTANCE_CLASSES: &[&str] = &["micro", "small", "medium", "large", "xlarge"];
/// `DatabaseType` values (SDK model).
pub const DATABASE_TYPES: &[&str] = &[
    "MySQL",
    "MSSQL",
    "Oracle",
    "MariaDB",
    "PostgreSQL",
    "DRDS",
    "MongoDB",
    "Redis",
];
/// `BackupMethod` values.
pub const BACKUP_METHODS: &[&str] = &["logical", "physical", "duplication"];
/// `InstanceType` values (required for postpay).
pub const INSTANCE_TYPES: &[&str] = &["RDS", "PolarDB", "DDS", "Kvstore", "Other", "dg"];
/// `SourceEndpointInstanceType` values (compared case-insensitively).
pub const SOURCE_TYPES: &[&str] = &["RDS", "ECS", "Express", "Agent", "DDS", "Other", "dg"];
/// Plan statuses usable as a Describe filter.
pub const STATUSES: &[&str] = &[
    "wait",
    "init",
    "running",
    "stop",
    "pause",
    "locked",
    "check_pass",
];
/// Weekday names accepted in `BackupPeriod` (case-insensitive).
const WEEKDAYS: &[&str] = &[
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
    "Sunday",
];

/// A required, non-blank parameter.
pub fn required<'a>(p: &'a Params, name: &str) -> Result<&'a str, DbsError> {
    p.get(name)
        .ok_or_else(|| DbsError::invalid(format!("The specified parameter {name} is required.")))
}

/// Error for a value outside its allowed set or format.
pub fn bad_value(name: &str, value: &str) -> DbsError {
    DbsError::invalid(format!(
        "The specified parameter {name} value is not valid: {value}"
    ))
}

/// An optional parameter restricted to `allowed` (exact match).
pub fn one_of(p: &Params, name: &str, allowed: &[&str]) -> Result<Option<String>, DbsError> {
    match p.get(name) {
        None => Ok(None),
        Some(v) if allowed.contains(&v) => Ok(Some(v.to_string())),
        Some(v) => Err(bad_value(name, v)),
    }
}

/// An optional integer parameter within `min..=max`.
pub fn int_in(p: &Params, name: &str, min: i64, max: i64) -> Result<Option<i64>, DbsError> {
    match p.get(name) {
        None => Ok(None),
        Some(v) => match v.trim().parse::<i64>() {
            Ok(n) if (min..=max).contains(&n) => Ok(Some(n)),
            _ => Err(bad_value(name, v)),
        },
    }
}

/// An optional boolean parameter (`true`/`false`).
pub fn boolean(p: &Params, name: &str) -> Result<Option<bool>, DbsError> {
    match p.get(name).map(str::to_ascii_lowercase).as_deref() {
        None => Ok(None),
        Some("true") => Ok(Some(true)),
        Some("false") => Ok(Some(false)),
        Some(v) => Err(bad_value(name, v)),
    }
}

/// An optional string parameter, owned.
pub fn opt(p: &Params, name: &str) -> Option<String> {
    p.get(name).map(str::to_string)
}

/// `BackupPeriod`: comma-separated weekday names.
pub fn backup_period(p: &Params, name: &str) -> Result<Option<String>, DbsError> {
    let Some(v) = p.get(name) else {
        return Ok(None);
    };
    let ok = v
        .split(',')
        .all(|d| WEEKDAYS.iter().any(|w| w.eq_ignore_ascii_case(d.trim())));
    if ok {
        Ok(Some(v.to_string()))
    } else {
        Err(bad_value(name, v))
    }
}

/// `BackupStartTime`: `HH:mm` (UTC; a trailing `Z` is tolerated).
pub fn start_time(p: &Params, name: &str) -> Result<Option<String>, DbsError> {
    let Some(v) = p.get(name) else {
        return Ok(None);
    };
    let t = v.strip_suffix('Z').unwrap_or(v);
    let valid = t.len() == 5
        && t.as_bytes()[2] == b':'
        && matches!(t[..2].parse::<u8>(), Ok(h) if h < 24 && t[..2].bytes().all(|b| b.is_ascii_digit()))
        && matches!(t[3..].parse::<u8>(), Ok(m) if m < 60 && t[3..].bytes().all(|b| b.is_ascii_digit()));
    if valid {
        Ok(Some(v.to_string()))
    } else {
        Err(bad_value(name, v))
    }
}

/// `BackupStrategyType`: `simple` | `manual` (case-insensitive, stored lower-case).
pub fn strategy_type(p: &Params) -> Result<Option<String>, DbsError> {
    match p.get("BackupStrategyType") {
        None => Ok(None),
        Some(v) if v.eq_ignore_ascii_case("simple") || v.eq_ignore_ascii_case("manual") => {
            Ok(Some(v.to_ascii_lowercase()))
        }
        Some(v) => Err(bad_value("BackupStrategyType", v)),
    }
}

/// `BackupObjects`: must be a JSON array (sent as a string).
pub fn backup_objects(p: &Params) -> Result<Option<String>, DbsError> {
    let Some(v) = p.get("BackupObjects") else {
        return Ok(None);
    };
    match serde_json::from_str::<serde_json::Value>(v) {
        Ok(serde_json::Value::Array(_)) => Ok(Some(v.to_string())),
        _ => Err(bad_value("BackupObjects", v)),
    }
}

/// Validated source endpoint parameters.
#[derive(Debug, Clone, Default)]
pub struct SourceEndpoint {
    /// Type as sent (e.g. `RDS`).
    pub instance_type: String,
    /// `SourceEndpointRegion`.
    pub region: Option<String>,
    /// `SourceEndpointInstanceID`.
    pub instance_id: Option<String>,
    /// `SourceEndpointIP`.
    pub ip: Option<String>,
    /// `SourceEndpointPort`.
    pub port: Option<i64>,
    /// `SourceEndpointDatabaseName`.
    pub database_name: Option<String>,
    /// `SourceEndpointUserName`.
    pub user_name: Option<String>,
    /// `SourceEndpointPassword`.
    pub password: Option<String>,
    /// `SourceEndpointOracleSID`.
    pub oracle_sid: Option<String>,
    /// `BackupGatewayId`.
    pub gateway_id: Option<i64>,
}

/// Validates the source endpoint parameters with their documented
/// conditions (§1.5 / §1.13) for a plan of `database_type`.
pub fn source_endpoint(p: &Params, database_type: &str) -> Result<SourceEndpoint, DbsError> {
    let kind = required(p, "SourceEndpointInstanceType")?;
    let Some(canon) = SOURCE_TYPES.iter().find(|t| t.eq_ignore_ascii_case(kind)) else {
        return Err(bad_value("SourceEndpointInstanceType", kind));
    };
    let needs = |types: &[&str]| types.contains(canon);
    let cond = |name: &str, needed: bool| -> Result<Option<String>, DbsError> {
        if needed {
            required(p, name).map(|v| Some(v.to_string()))
        } else {
            Ok(opt(p, name))
        }
    };
    let region = cond(
        "SourceEndpointRegion",
        needs(&["RDS", "ECS", "DDS", "Express", "Agent"]),
    )?;
    let instance_id = cond(
        "SourceEndpointInstanceID",
        needs(&["RDS", "ECS", "DDS", "Express"]),
    )?;
    let ip = cond("SourceEndpointIP", needs(&["Express", "Agent", "Other"]))?;
    if needs(&["Express", "Agent", "Other", "ECS"]) {
        required(p, "SourceEndpointPort")?;
    }
    let port = int_in(p, "SourceEndpointPort", 1, 65535)?;
    let database_name = cond(
        "SourceEndpointDatabaseName",
        matches!(database_type, "PostgreSQL" | "MongoDB"),
    )?;
    let no_credentials =
        database_type == "Redis" || (database_type == "MSSQL" && *canon == "Agent");
    let user_name = cond("SourceEndpointUserName", !no_credentials)?;
    let password = cond("SourceEndpointPassword", !no_credentials)?;
    let oracle_sid = cond("SourceEndpointOracleSID", database_type == "Oracle")?;
    if *canon == "Agent" {
        required(p, "BackupGatewayId")?;
    }
    let gateway_id = int_in(p, "BackupGatewayId", 0, i64::MAX)?;
    Ok(SourceEndpoint {
        instance_type: kind.to_string(),
        region,
        instance_id,
        ip,
        port,
        database_name,
        user_name,
        password,
        oracle_sid,
        gateway_id,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> Params {
        let owned: Vec<(String, String)> = pairs
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect();
        Params::from_pairs(&owned)
    }

    #[test]
    fn start_time_accepts_hh_mm_only() {
        assert!(start_time(&params(&[("T", "14:22")]), "T").is_ok());
        assert!(start_time(&params(&[("T", "00:00Z")]), "T").is_ok());
        assert!(start_time(&params(&[("T", "24:00")]), "T").is_err());
        assert!(start_time(&params(&[("T", "1:00")]), "T").is_err());
        assert!(start_time(&params(&[("T", "+1:00")]), "T").is_err());
    }

    #[test]
    fn backup_period_accepts_weekday_names() {
        assert!(backup_period(&params(&[("P", "Monday,Thursday")]), "P").is_ok());
        assert!(backup_period(&params(&[("P", "Mon")]), "P").is_err());
    }

    #[test]
    fn rds_source_requires_region_instance_and_credentials() {
        let base = [
            ("SourceEndpointInstanceType", "RDS"),
            ("SourceEndpointRegion", "cn-hangzhou"),
        ];
        assert!(source_endpoint(&params(&base), "MySQL").is_err());
        let full = [
            base[0],
            base[1],
            ("SourceEndpointInstanceID", "rm-1"),
            ("SourceEndpointUserName", "u"),
            ("SourceEndpointPassword", "p"),
        ];
        assert!(source_endpoint(&params(&full), "MySQL").is_ok());
        assert!(source_endpoint(&params(&full), "PostgreSQL").is_err());
    }
}
