//! The objects the tests create, and what they read of both kinds' status: conditions and the
//! generation acted upon.

use alicloud_db_operator::crd::{
    BackupMethod, BackupPlan, BackupPlanSpec, BackupSchedule, BackupSource, DatabaseType,
    DeletionPolicy, InstanceClass, PayType, RdsConnection, SecretKeyRef, SourceInstanceType,
    Weekday,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::Resource;
use serde_json::json;

use super::{PASSWORD_SECRET, REGION};

/// A kind whose status carries kstatus conditions and `observedGeneration`.
pub trait Conditioned: Resource {
    /// `status.conditions` (empty without a status).
    fn conditions(&self) -> &[Condition];
    /// `status.observedGeneration`.
    fn observed_generation(&self) -> Option<i64>;
}

impl Conditioned for BackupPlan {
    fn conditions(&self) -> &[Condition] {
        self.status.as_ref().map_or(&[], |s| &s.conditions)
    }
    fn observed_generation(&self) -> Option<i64> {
        self.status.as_ref().and_then(|s| s.observed_generation)
    }
}

impl Conditioned for RdsConnection {
    fn conditions(&self) -> &[Condition] {
        self.status.as_ref().map_or(&[], |s| &s.conditions)
    }
    fn observed_generation(&self) -> Option<i64> {
        self.status.as_ref().and_then(|s| s.observed_generation)
    }
}

/// The condition `type_` of `obj`.
pub fn condition<K: Conditioned>(obj: &K, type_: &str) -> Option<Condition> {
    obj.conditions().iter().find(|c| c.type_ == type_).cloned()
}

/// Whether the condition `type_` of `obj` has `status` and `reason`.
pub fn is<K: Conditioned>(obj: &K, type_: &str, status: &str, reason: &str) -> bool {
    condition(obj, type_).is_some_and(|c| c.status == status && c.reason == reason)
}

/// Whether `obj` is Ready (reason `Available`) for its current generation.
pub fn is_ready<K: Conditioned>(obj: &K) -> bool {
    is(obj, "Ready", "True", "Available") && obj.observed_generation() == obj.meta().generation
}

/// The reason of `obj`'s `Ready` condition while it is `True`.
pub fn ready_reason<K: Conditioned>(obj: &K) -> Option<String> {
    condition(obj, "Ready")
        .filter(|c| c.status == "True")
        .map(|c| c.reason)
}

/// A MySQL plan on an RDS source with the world's password Secret, scheduled Monday and
/// Thursday at 14:22, PayAsYouGo, released on delete.
pub fn backup_plan_spec() -> BackupPlanSpec {
    BackupPlanSpec {
        region: REGION.into(),
        database_type: DatabaseType::MySQL,
        instance_class: InstanceClass::Micro,
        backup_method: BackupMethod::Logical,
        pay_type: PayType::PayAsYouGo,
        period: None,
        used_time: None,
        source: BackupSource {
            instance_type: SourceInstanceType::RDS,
            region: Some(REGION.into()),
            instance_id: Some("rm-bp1test0001".into()),
            host: None,
            port: None,
            database_name: None,
            user_name: Some("backup".into()),
            password_secret_ref: Some(SecretKeyRef {
                name: PASSWORD_SECRET.into(),
                key: "password".into(),
            }),
            oracle_sid: None,
            backup_gateway_id: None,
        },
        backup_objects: vec![],
        schedule: Some(BackupSchedule {
            weekdays: vec![Weekday::Monday, Weekday::Thursday],
            start_time: "14:22".into(),
        }),
        retention: None,
        storage: None,
        enable_backup_log: false,
        backup_log_interval_seconds: None,
        plan_name: None,
        deletion_policy: DeletionPolicy::Delete,
        credentials_ref: None,
        backup_plan_id: None,
    }
}

/// An RdsConnection publishing `instance` as `<prefix>` on `port`, authenticating with the
/// Secret `credentials` and writing the endpoint Secret `<name>-endpoint`.
pub fn rds_connection(
    name: &str,
    instance: &str,
    prefix: &str,
    port: i32,
    credentials: &str,
) -> RdsConnection {
    serde_json::from_value(json!({
        "apiVersion": "db.alicloud.dev/v1alpha1",
        "kind": "RdsConnection",
        "metadata": {"name": name},
        "spec": {
            "region": REGION,
            "dbInstanceId": instance,
            "connectionStringPrefix": prefix,
            "port": port,
            "credentialsRef": {"name": credentials},
            "writeConnectionSecretToRef": {"name": format!("{name}-endpoint")}
        }
    }))
    .expect("valid RdsConnection")
}
