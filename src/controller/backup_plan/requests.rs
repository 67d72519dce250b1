//! Requests: the spec as DBS request values, and the identity of an object's plan (ClientToken,
//! plan name). No decisions.

use std::collections::BTreeSet;

use serde_json::{Value, json};

use crate::cloud::dbs::{
    ConfigureBackupPlan, CreateBackupPlan, ModifyBackupSourceEndpoint, ModifyBackupStrategy,
    ModifyStorageStrategy, SourceEndpoint,
};
use crate::crd::{
    BackupObject, BackupPlanSpec, BackupSchedule, PayType, Retention, SourceInstanceType,
    StorageType,
};

/// The deterministic `ClientToken` of CreateBackupPlan for an object: the same object always
/// sends the same token, so a repeated create returns the plan created before. ASCII, ≤ 64.
pub fn client_token(uid: &str) -> String {
    let clean: String = uid
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
        .collect();
    let mut token = format!("bp-{clean}");
    token.truncate(64);
    token
}

/// The plan name at DBS: `spec.planName`, else `<namespace>-<name>`.
pub fn plan_name(spec: &BackupPlanSpec, namespace: &str, name: &str) -> String {
    spec.plan_name
        .clone()
        .unwrap_or_else(|| format!("{namespace}-{name}"))
}

/// `CreateBackupPlan` parameters for the spec.
pub fn create_request(spec: &BackupPlanSpec, client_token: &str) -> CreateBackupPlan {
    let mut req = CreateBackupPlan {
        instance_class: spec.instance_class.as_api_str().to_owned(),
        database_type: spec.database_type.as_api_str().to_owned(),
        backup_method: spec.backup_method.as_api_str().to_owned(),
        client_token: Some(client_token.to_owned()),
        ..Default::default()
    };
    match spec.pay_type {
        PayType::PayAsYouGo => {
            req.pay_type = "postpay".into();
            req.database_region = Some(
                spec.source
                    .region
                    .clone()
                    .unwrap_or_else(|| spec.region.clone()),
            );
            req.storage_region = Some(spec.region.clone());
            req.instance_type = Some(
                match spec.source.instance_type {
                    SourceInstanceType::RDS => "RDS",
                    SourceInstanceType::DDS => "DDS",
                    _ => "Other",
                }
                .into(),
            );
        }
        PayType::Subscription => {
            req.pay_type = "prepay".into();
            req.period = spec.period.map(|p| p.as_api_str().to_owned());
            req.used_time = spec.used_time;
        }
    }
    req
}

/// The source endpoint of the spec, with `password` when the spec names one.
pub fn source_endpoint(spec: &BackupPlanSpec, password: Option<String>) -> SourceEndpoint {
    let s = &spec.source;
    SourceEndpoint {
        instance_type: s.instance_type.as_api_str().to_owned(),
        region: s.region.clone(),
        instance_id: s.instance_id.clone(),
        ip: s.host.clone(),
        port: s.port,
        database_name: s.database_name.clone(),
        user_name: s.user_name.clone(),
        password,
        oracle_sid: s.oracle_sid.clone(),
        backup_gateway_id: s.backup_gateway_id,
    }
}

/// `BackupObjects` as DBS wants it: a JSON string, `None` for "every database".
pub fn backup_objects_json(objects: &[BackupObject]) -> Option<String> {
    if objects.is_empty() {
        return None;
    }
    Some(backup_objects_value(objects).to_string())
}

pub fn backup_objects_value(objects: &[BackupObject]) -> Value {
    let tables = |names: &[String]| {
        names
            .iter()
            .map(|n| json!({ "TableName": n }))
            .collect::<Vec<_>>()
    };
    Value::Array(
        objects
            .iter()
            .map(|o| {
                let mut m = serde_json::Map::new();
                m.insert("DBName".into(), json!(o.database_name));
                if let Some(schema) = &o.schema_name {
                    m.insert("SchemaName".into(), json!(schema));
                }
                if !o.table_includes.is_empty() {
                    m.insert(
                        "TableIncludes".into(),
                        Value::Array(tables(&o.table_includes)),
                    );
                }
                if !o.table_excludes.is_empty() {
                    m.insert(
                        "TableExcludes".into(),
                        Value::Array(tables(&o.table_excludes)),
                    );
                }
                Value::Object(m)
            })
            .collect(),
    )
}

/// `BackupPeriod` of a schedule: weekdays Monday first, comma-separated.
pub fn backup_period(spec: &BackupPlanSpec) -> Option<String> {
    spec.schedule.as_ref().map(|s| {
        let days: BTreeSet<_> = s.weekdays.iter().collect();
        days.into_iter()
            .map(|d| d.as_api_str())
            .collect::<Vec<_>>()
            .join(",")
    })
}

/// `ConfigureBackupPlan` parameters for the spec.
pub fn configure_request(
    spec: &BackupPlanSpec,
    backup_plan_id: &str,
    plan_name: &str,
    password: Option<String>,
) -> ConfigureBackupPlan {
    let retention = spec.retention.as_ref();
    let storage_type = spec
        .storage
        .as_ref()
        .map_or(StorageType::System, |s| s.storage_type);
    ConfigureBackupPlan {
        backup_plan_id: backup_plan_id.to_owned(),
        backup_plan_name: plan_name.to_owned(),
        source: source_endpoint(spec, password),
        backup_objects: backup_objects_json(&spec.backup_objects),
        backup_period: backup_period(spec),
        backup_start_time: spec.schedule.as_ref().map(|s| s.start_time.clone()),
        backup_strategy_type: Some(
            if spec.schedule.is_some() {
                "simple"
            } else {
                "manual"
            }
            .into(),
        ),
        enable_backup_log: Some(spec.enable_backup_log),
        backup_log_interval_seconds: spec.backup_log_interval_seconds,
        backup_retention_period: retention.map(|r| r.backup_retention_days),
        duplication_infrequent_access_period: retention.map(|r| r.infrequent_access_days),
        duplication_archive_period: retention.map(|r| r.archive_days),
        backup_storage_type: (storage_type == StorageType::System).then(|| "system".into()),
        oss_bucket_name: spec
            .storage
            .as_ref()
            .and_then(|s| s.oss_bucket_name.clone()),
        client_token: None,
    }
}

/// `ModifyBackupSourceEndpoint` parameters for the spec. `BackupObjects` is required (except
/// for `Agent` sources): a spec without objects sends back what DBS described, so the call
/// changes the endpoint only.
pub fn source_endpoint_request(
    spec: &BackupPlanSpec,
    backup_plan_id: &str,
    password: Option<String>,
    described_objects: Option<&str>,
) -> ModifyBackupSourceEndpoint {
    let objects = backup_objects_json(&spec.backup_objects).or_else(|| {
        if spec.source.instance_type == SourceInstanceType::Agent {
            return None;
        }
        let described = described_objects.map(str::trim).filter(|o| !o.is_empty());
        Some(described.unwrap_or("[]").to_owned())
    });
    ModifyBackupSourceEndpoint {
        backup_plan_id: backup_plan_id.to_owned(),
        source: source_endpoint(spec, password),
        backup_objects: objects,
    }
}

/// `ModifyBackupStrategy` for the spec's schedule.
pub fn modify_strategy(
    spec: &BackupPlanSpec,
    backup_plan_id: &str,
    schedule: &BackupSchedule,
) -> ModifyBackupStrategy {
    ModifyBackupStrategy {
        backup_plan_id: backup_plan_id.to_owned(),
        backup_period: backup_period(spec).unwrap_or_default(),
        backup_start_time: Some(schedule.start_time.clone()),
        backup_strategy_type: Some("simple".into()),
        backup_log_interval_seconds: spec.backup_log_interval_seconds,
    }
}

/// `ModifyStorageStrategy` for the spec's retention.
pub fn modify_storage(backup_plan_id: &str, r: &Retention) -> ModifyStorageStrategy {
    ModifyStorageStrategy {
        backup_plan_id: backup_plan_id.to_owned(),
        backup_retention_period: r.backup_retention_days,
        duplication_infrequent_access_period: r.infrequent_access_days,
        duplication_archive_period: r.archive_days,
    }
}
