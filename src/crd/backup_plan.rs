//! `BackupPlan`: a DBS (Database Backup) backup plan.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::{CredentialsRef, DeletionPolicy, SecretKeyRef};

/// Annotation recording the plan this object created (or found at DBS under its own name):
/// written right after the create is known to have succeeded, before anything else, so the id
/// survives what loses the status (a Velero restore, `kubectl get -o yaml | kubectl apply` into
/// another cluster).
pub const BACKUP_PLAN_ID_ANNOTATION: &str = "db.alicloud.dev/backup-plan-id";

/// Desired state of a DBS backup plan.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "db.alicloud.dev",
    version = "v1alpha1",
    kind = "BackupPlan",
    namespaced,
    status = "BackupPlanStatus",
    shortname = "bp",
    category = "alicloud",
    doc = "A Database Backup (DBS) backup plan on Alibaba Cloud, created, configured, started, kept in sync and released by the operator.",
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Reason","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].reason"}"#,
    printcolumn = r#"{"name":"Plan ID","type":"string","jsonPath":".status.backupPlanId"}"#,
    printcolumn = r#"{"name":"Cloud Status","type":"string","priority":1,"jsonPath":".status.cloudStatus"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#,
    validation = Rule::new("!has(self.spec.backupPlanId) || (has(oldSelf.spec.backupPlanId) && oldSelf.spec.backupPlanId == self.spec.backupPlanId) || !has(oldSelf.status) || !has(oldSelf.status.backupPlanId) || oldSelf.status.backupPlanId == self.spec.backupPlanId").message("spec.backupPlanId can be added only to an object that has no plan yet (status.backupPlanId empty), or naming the plan it already has: adding another id would orphan the plan this object created")
)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("self.payType != 'Subscription' || (has(self.period) && has(self.usedTime))").message("payType Subscription requires period and usedTime"))]
#[x_kube(validation = Rule::new("self.payType == 'Subscription' || (!has(self.period) && !has(self.usedTime))").message("period and usedTime apply only to payType Subscription"))]
#[x_kube(validation = Rule::new("self.payType == 'Subscription' || self.databaseType != 'DRDS'").message("DBS does not sell pay-as-you-go plans for DRDS (PolarDB-X 1.0): use payType Subscription"))]
#[x_kube(validation = Rule::new("!has(self.period) || self.period != 'Year' || self.usedTime <= 5").message("usedTime is 1..5 when period is Year"))]
#[x_kube(validation = Rule::new("!(self.databaseType in ['PostgreSQL', 'MongoDB']) || has(self.source.databaseName)").message("source.databaseName is required for PostgreSQL and MongoDB"))]
#[x_kube(validation = Rule::new("has(self.source.userName) || self.databaseType == 'Redis' || (self.databaseType == 'MSSQL' && self.source.instanceType == 'Agent')").message("source.userName and source.passwordSecretRef are required, except for Redis and for SQL Server through a backup gateway (Agent)"))]
#[x_kube(validation = Rule::new("!has(self.backupLogIntervalSeconds) || self.backupMethod == 'physical'").message("backupLogIntervalSeconds applies only to backupMethod physical"))]
#[x_kube(validation = Rule::new("!has(oldSelf.backupPlanId) || (has(self.backupPlanId) && self.backupPlanId == oldSelf.backupPlanId)").message("backupPlanId cannot be changed or removed once set"))]
#[x_kube(validation = Rule::new("self.payType == oldSelf.payType").message("payType is immutable"))]
#[x_kube(validation = Rule::new("!has(oldSelf.schedule) || has(self.schedule)").message("schedule cannot be removed once set: DBS has no call that turns a scheduled plan back to manual"))]
#[x_kube(validation = Rule::new("!has(oldSelf.backupObjects) || has(self.backupObjects)").message("backupObjects cannot be removed once set: DBS has no call that turns a plan back to backing up every database"))]
#[x_kube(validation = Rule::new("has(self.storage) == has(oldSelf.storage)").message("storage cannot be added or removed after creation: DBS has no call that changes a plan's storage"))]
pub struct BackupPlanSpec {
    /// Alibaba Cloud region of the backup plan (DBS `Region`), e.g. `cn-hangzhou`. Immutable.
    #[x_kube(validation = Rule::new("self == oldSelf").message("region is immutable"))]
    #[schemars(regex(pattern = r"^[a-z]{2,}-[a-z0-9-]+$"), length(max = 64))]
    pub region: String,

    /// Engine of the database to back up. Immutable.
    #[x_kube(validation = Rule::new("self == oldSelf").message("databaseType is immutable"))]
    pub database_type: DatabaseType,

    /// Size of the DBS backup instance; larger classes back up and restore faster. Immutable.
    #[x_kube(validation = Rule::new("self == oldSelf").message("instanceClass is immutable"))]
    pub instance_class: InstanceClass,

    /// How DBS reads the data: `logical`, `physical` or `duplication`. Immutable.
    #[x_kube(validation = Rule::new("self == oldSelf").message("backupMethod is immutable"))]
    pub backup_method: BackupMethod,

    /// Billing of the plan: `PayAsYouGo` (default) or `Subscription`. Immutable. A Subscription
    /// plan cannot be released through the API: on deletion it is stopped and billing continues
    /// until it expires.
    #[serde(default)]
    pub pay_type: PayType,

    /// Subscription unit, `Year` or `Month`; required with `payType: Subscription`. Immutable.
    #[x_kube(validation = Rule::new("self == oldSelf").message("period is immutable"))]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub period: Option<SubscriptionPeriod>,

    /// Subscription length in `period` units: 1..11 months or 1..5 years. Immutable.
    #[x_kube(validation = Rule::new("self == oldSelf").message("usedTime is immutable"))]
    #[schemars(range(min = 1, max = 11))]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub used_time: Option<i32>,

    /// The database to back up and how DBS reaches it.
    pub source: BackupSource,

    /// Databases, schemas and tables to back up. Empty backs up every database of the source.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 256))]
    pub backup_objects: Vec<BackupObject>,

    /// When full backups run. Absent: the plan only backs up on demand (`manual` strategy).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<BackupSchedule>,

    /// How long backups are kept and when they move to cheaper storage classes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention: Option<Retention>,

    /// Where backups are stored. Absent: DBS built-in storage (`System`). Immutable: DBS has no
    /// call that changes it.
    #[x_kube(validation = Rule::new("self == oldSelf").message("storage is immutable: DBS has no call that changes a plan's storage"))]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage: Option<BackupStorage>,

    /// Whether incremental log backup is on. Immutable: set when the plan is configured.
    #[x_kube(validation = Rule::new("self == oldSelf").message("enableBackupLog is immutable: it is set when the plan is configured"))]
    #[serde(default)]
    pub enable_backup_log: bool,

    /// Interval of incremental log backups in seconds; `physical` backups only.
    #[schemars(range(min = 10, max = 86400))]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup_log_interval_seconds: Option<i32>,

    /// Name of the plan at DBS. Defaults to `<namespace>-<name>`.
    #[schemars(length(min = 1, max = 64))]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan_name: Option<String>,

    /// `Delete` (default) releases the plan when the object is deleted; `Retain` keeps it.
    #[serde(default)]
    pub deletion_policy: DeletionPolicy,

    /// Secret with Alibaba Cloud credentials in this namespace. Absent: the operator's own
    /// credentials (environment or RRSA).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_ref: Option<CredentialsRef>,

    /// Adopt this existing plan (e.g. `dbs1hvb0wwweusfa`) instead of creating one. Can be set
    /// at creation, or later while the object has no plan yet (`status.backupPlanId` empty);
    /// cannot be changed or removed once set.
    #[schemars(regex(pattern = r"^dbs[a-z0-9]{4,30}$"))]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup_plan_id: Option<String>,
}

/// Database engines DBS backs up.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum DatabaseType {
    /// MySQL.
    MySQL,
    /// SQL Server.
    MSSQL,
    /// Oracle.
    Oracle,
    /// MariaDB.
    MariaDB,
    /// PostgreSQL.
    PostgreSQL,
    /// PolarDB-X (DRDS).
    DRDS,
    /// MongoDB.
    MongoDB,
    /// Redis.
    Redis,
}

/// DBS backup instance classes, smallest first.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum InstanceClass {
    /// `micro`.
    Micro,
    /// `small`.
    Small,
    /// `medium`.
    Medium,
    /// `large`.
    Large,
    /// `xlarge`.
    Xlarge,
}

/// How DBS reads data from the source.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum BackupMethod {
    /// `logical`: reads rows through SQL.
    Logical,
    /// `physical`: copies data files.
    Physical,
    /// `duplication`: storage snapshots.
    Duplication,
}

/// Billing method of a plan.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum PayType {
    /// Pay-as-you-go (`postpay`); can be released.
    #[default]
    PayAsYouGo,
    /// Subscription (`prepay`); cannot be released through the API.
    Subscription,
}

/// Subscription unit: billed by the `Year` or by the `Month`.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
// Variant docs would change the generated schema of the optional `period` field.
#[allow(missing_docs)]
pub enum SubscriptionPeriod {
    Year,
    Month,
}

/// The database DBS backs up and how it reaches it.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("!(self.instanceType in ['RDS', 'ECS', 'DDS', 'Express', 'Agent']) || has(self.region)").message("source.region is required for instanceType RDS, ECS, DDS, Express and Agent"))]
#[x_kube(validation = Rule::new("!(self.instanceType in ['RDS', 'ECS', 'DDS', 'Express']) || has(self.instanceId)").message("source.instanceId is required for instanceType RDS, ECS, DDS and Express"))]
#[x_kube(validation = Rule::new("!(self.instanceType in ['Express', 'Agent', 'Other']) || has(self.host)").message("source.host is required for instanceType Express, Agent and Other"))]
#[x_kube(validation = Rule::new("!(self.instanceType in ['Express', 'Agent', 'Other', 'ECS']) || has(self.port)").message("source.port is required for instanceType Express, Agent, Other and ECS"))]
#[x_kube(validation = Rule::new("self.instanceType != 'Agent' || has(self.backupGatewayId)").message("source.backupGatewayId is required for instanceType Agent"))]
#[x_kube(validation = Rule::new("has(self.userName) == has(self.passwordSecretRef)").message("source.userName and source.passwordSecretRef go together"))]
pub struct BackupSource {
    /// How DBS reaches the database: `RDS`, `ECS`, `Express` (Express Connect, VPN or Smart
    /// Access Gateway), `Agent` (DBS backup gateway), `DDS` (ApsaraDB for MongoDB) or `Other`
    /// (direct host and port).
    pub instance_type: SourceInstanceType,

    /// Region of the source instance.
    #[schemars(regex(pattern = r"^[a-z]{2,}-[a-z0-9-]+$"), length(max = 64))]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,

    /// ID of the source instance, e.g. an RDS instance `rm-uf6wjk5xxxxxxx`.
    #[schemars(length(min = 1, max = 128))]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_id: Option<String>,

    /// Host name or IP address of the database (`Express`, `Agent`, `Other`).
    #[schemars(length(min = 1, max = 253))]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,

    /// Port of the database.
    #[schemars(range(min = 1, max = 65535))]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<i32>,

    /// Database to connect to; required for PostgreSQL and MongoDB.
    #[schemars(length(min = 1, max = 128))]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database_name: Option<String>,

    /// Database account DBS logs in with.
    #[schemars(length(min = 1, max = 128))]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_name: Option<String>,

    /// Secret key holding the password of `userName`. The password is sent to DBS and never
    /// stored in the object's status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_secret_ref: Option<SecretKeyRef>,

    /// Oracle SID; Oracle sources only.
    #[schemars(length(min = 1, max = 128))]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oracle_sid: Option<String>,

    /// ID of the DBS backup gateway; required for instanceType `Agent`.
    #[schemars(range(min = 1))]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup_gateway_id: Option<i64>,
}

/// How DBS reaches the source database.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum SourceInstanceType {
    /// An ApsaraDB RDS instance.
    RDS,
    /// A self-managed database on ECS.
    ECS,
    /// A database reached over Express Connect.
    Express,
    /// A database reached through a backup gateway.
    Agent,
    /// An ApsaraDB for MongoDB instance.
    DDS,
    /// Any other database reachable by address.
    Other,
}

/// One database (optionally narrowed to tables) to back up.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BackupObject {
    /// Database name.
    #[schemars(length(min = 1, max = 128))]
    pub database_name: String,
    /// Schema name, for engines that have schemas.
    #[schemars(length(min = 1, max = 128))]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema_name: Option<String>,
    /// Tables to back up; empty backs up every table.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub table_includes: Vec<String>,
    /// Tables to leave out.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub table_excludes: Vec<String>,
}

/// Weekly schedule of full backups.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BackupSchedule {
    /// Days of the week on which a full backup runs.
    #[schemars(length(min = 1, max = 7))]
    #[schemars(extend("x-kubernetes-list-type" = "set"))]
    pub weekdays: Vec<Weekday>,
    /// Start time of the backup, `HH:mm` in UTC.
    #[schemars(regex(pattern = r"^([01][0-9]|2[0-3]):[0-5][0-9]$"))]
    pub start_time: String,
}

/// A day of the week.
#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, JsonSchema,
)]
pub enum Weekday {
    /// Monday.
    Monday,
    /// Tuesday.
    Tuesday,
    /// Wednesday.
    Wednesday,
    /// Thursday.
    Thursday,
    /// Friday.
    Friday,
    /// Saturday.
    Saturday,
    /// Sunday.
    Sunday,
}

/// Retention of backups in days.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("self.infrequentAccessDays < self.archiveDays").message("retention.infrequentAccessDays must be less than retention.archiveDays"))]
#[x_kube(validation = Rule::new("self.archiveDays < self.backupRetentionDays").message("retention.archiveDays must be less than retention.backupRetentionDays"))]
pub struct Retention {
    /// Days a backup is kept, 0..1825 (default 730).
    #[serde(default = "default_retention_days")]
    #[schemars(range(min = 0, max = 1825))]
    pub backup_retention_days: i32,
    /// Days until a backup moves to infrequent-access storage (default 180).
    #[serde(default = "default_infrequent_access_days")]
    #[schemars(range(min = 0, max = 1825))]
    pub infrequent_access_days: i32,
    /// Days until a backup moves to archive storage (default 365).
    #[serde(default = "default_archive_days")]
    #[schemars(range(min = 0, max = 1825))]
    pub archive_days: i32,
}

impl Default for Retention {
    fn default() -> Self {
        Self {
            backup_retention_days: default_retention_days(),
            infrequent_access_days: default_infrequent_access_days(),
            archive_days: default_archive_days(),
        }
    }
}

fn default_retention_days() -> i32 {
    730
}
fn default_infrequent_access_days() -> i32 {
    180
}
fn default_archive_days() -> i32 {
    365
}

/// Where backups are stored.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("self.type != 'System' || !has(self.ossBucketName)").message("storage.ossBucketName applies only to storage type OSS"))]
pub struct BackupStorage {
    /// `System` (DBS built-in storage) or `OSS` (a bucket of your own).
    #[serde(rename = "type")]
    pub storage_type: StorageType,
    /// Name of your OSS bucket; DBS generates one when absent.
    #[schemars(length(min = 3, max = 63))]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oss_bucket_name: Option<String>,
}

/// Backup storage kind.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum StorageType {
    /// DBS built-in storage.
    System,
    /// An OSS bucket of your own.
    OSS,
}

/// Observed state of a DBS backup plan.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BackupPlanStatus {
    /// ID of the plan at DBS, written as soon as CreateBackupPlan returns it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup_plan_id: Option<String>,
    /// ClientToken of CreateBackupPlan, written before the call: if the answer is lost (crash),
    /// the same token finds the plan again instead of creating a second one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_token: Option<String>,
    /// Order ID of the purchase, as returned by CreateBackupPlan.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order_id: Option<String>,
    /// When CreateBackupPlan returned; ConfigureBackupPlan waits 5 s after it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<Time>,
    /// Status of the plan at DBS (`wait`, `init`, `running`, `stop`, `pause`, `locked`, `check_pass`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cloud_status: Option<String>,
    /// When StartBackupPlan was sent for the current configuration, written before the call:
    /// DBS then runs its precheck (`init`, `check_pass`, `running`), and the plan is started
    /// once per configuration, not again while the precheck runs (each start may take a full
    /// backup). Cleared when a configuration change needs a new precheck.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub precheck_started_at: Option<Time>,
    /// Version (`<Secret uid>/<resourceVersion>`) of the password Secret last sent to DBS; a
    /// change of the Secret re-applies the password. Never the password itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_password_version: Option<String>,
    /// `backupLogIntervalSeconds` last sent to DBS, which does not describe it: a change of the
    /// spec field is sent again (ModifyBackupStrategy).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup_log_interval_seconds: Option<i32>,
    /// Last time the plan was read from DBS, as of the latest status write: a read that finds
    /// the plan as it was refreshes it at most every 15 minutes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_sync_time: Option<Time>,
    /// Generation of the spec last acted upon.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Ready`, `Reconciling` and `Stalled`, per the Kubernetes API conventions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}

/// `as_api_str()` for CRD enums whose API value is their name in the CRD, and (for the test
/// below) the list of their variants.
macro_rules! api_strings {
    ($($ty:ident { $($variant:ident => $value:literal),+ $(,)? })+) => {
        $(impl $ty {
            /// The value DBS expects for this choice: its name in the CRD.
            pub fn as_api_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $value),+
                }
            }

            #[cfg(test)]
            const ALL: &'static [Self] = &[$(Self::$variant),+];
        })+
    };
}

api_strings! {
    DatabaseType {
        MySQL => "MySQL", MSSQL => "MSSQL", Oracle => "Oracle", MariaDB => "MariaDB",
        PostgreSQL => "PostgreSQL", DRDS => "DRDS", MongoDB => "MongoDB", Redis => "Redis",
    }
    InstanceClass {
        Micro => "micro", Small => "small", Medium => "medium", Large => "large",
        Xlarge => "xlarge",
    }
    BackupMethod { Logical => "logical", Physical => "physical", Duplication => "duplication" }
    SubscriptionPeriod { Year => "Year", Month => "Month" }
    SourceInstanceType {
        RDS => "RDS", ECS => "ECS", Express => "Express", Agent => "Agent", DDS => "DDS",
        Other => "Other",
    }
    Weekday {
        Monday => "Monday", Tuesday => "Tuesday", Wednesday => "Wednesday",
        Thursday => "Thursday", Friday => "Friday", Saturday => "Saturday", Sunday => "Sunday",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn serialised<T: Serialize>(value: T) -> String {
        match serde_json::to_value(value) {
            Ok(serde_json::Value::String(s)) => s,
            other => panic!("not a string: {other:?}"),
        }
    }

    #[test]
    fn api_strings_are_the_crd_names() {
        fn check<T: Serialize + Copy + std::fmt::Debug>(all: &[T], api: fn(T) -> &'static str) {
            for v in all {
                assert_eq!(api(*v), serialised(*v), "{v:?}");
            }
        }
        check(DatabaseType::ALL, DatabaseType::as_api_str);
        check(InstanceClass::ALL, InstanceClass::as_api_str);
        check(BackupMethod::ALL, BackupMethod::as_api_str);
        check(SubscriptionPeriod::ALL, SubscriptionPeriod::as_api_str);
        check(SourceInstanceType::ALL, SourceInstanceType::as_api_str);
        check(Weekday::ALL, Weekday::as_api_str);
    }
}
