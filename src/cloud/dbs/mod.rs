//! DBS (Database Backup) 2019-03-06: the calls that manage backup plans.

use async_trait::async_trait;

use super::{CloudError, Credentials, Principal, Scope};

mod http;

pub use http::{normalize_backup_period, normalize_endpoint_type};

/// The DBS calls the BackupPlan controller makes. Each method is exactly one API call (plus the
/// client's own safe retries); success is decided from the DBS envelope in one place.
#[async_trait]
pub trait DbsApi: Send + Sync {
    /// Books a turn for one call of `action` in `scope` under the account's quota: how long
    /// until it is due (see [`crate::cloud::AlibabaCloud::turn`]).
    async fn turn(&self, scope: &Scope, action: &str) -> std::time::Duration;
    /// `CreateBackupPlan`: purchases an unconfigured plan.
    async fn create_backup_plan(
        &self,
        scope: &Scope,
        req: &CreateBackupPlan,
    ) -> Result<CreatedBackupPlan, CloudError>;
    /// `ConfigureBackupPlan`: sets source, objects, schedule and storage of a created plan.
    async fn configure_backup_plan(
        &self,
        scope: &Scope,
        req: &ConfigureBackupPlan,
    ) -> Result<(), CloudError>;
    /// `StartBackupPlan`.
    async fn start_backup_plan(
        &self,
        scope: &Scope,
        backup_plan_id: &str,
        client_token: Option<&str>,
    ) -> Result<(), CloudError>;
    /// `StopBackupPlan`.
    async fn stop_backup_plan(
        &self,
        scope: &Scope,
        backup_plan_id: &str,
        stop_method: StopMethod,
    ) -> Result<(), CloudError>;
    /// `DescribeBackupPlanList`: one page of plans.
    async fn describe_backup_plan_list(
        &self,
        scope: &Scope,
        req: &DescribeBackupPlanList,
    ) -> Result<BackupPlanPage, CloudError>;
    /// `ModifyBackupStrategy`.
    async fn modify_backup_strategy(
        &self,
        scope: &Scope,
        req: &ModifyBackupStrategy,
    ) -> Result<ModifyOutcome, CloudError>;
    /// `ModifyStorageStrategy`.
    async fn modify_storage_strategy(
        &self,
        scope: &Scope,
        req: &ModifyStorageStrategy,
    ) -> Result<ModifyOutcome, CloudError>;
    /// `ModifyBackupSourceEndpoint`.
    async fn modify_backup_source_endpoint(
        &self,
        scope: &Scope,
        req: &ModifyBackupSourceEndpoint,
    ) -> Result<ModifyOutcome, CloudError>;
    /// `ModifyBackupObjects`: changes what the plan backs up, nothing else.
    async fn modify_backup_objects(
        &self,
        scope: &Scope,
        backup_plan_id: &str,
        backup_objects: &str,
    ) -> Result<ModifyOutcome, CloudError>;
    /// `ModifyBackupPlanName`.
    async fn modify_backup_plan_name(
        &self,
        scope: &Scope,
        backup_plan_id: &str,
        name: &str,
    ) -> Result<(), CloudError>;
    /// `ReleaseBackupPlan` (pay-as-you-go plans only).
    async fn release_backup_plan(
        &self,
        scope: &Scope,
        backup_plan_id: &str,
    ) -> Result<(), CloudError>;
    /// `DescribeBackupPlanBilling`.
    async fn describe_backup_plan_billing(
        &self,
        scope: &Scope,
        backup_plan_id: &str,
    ) -> Result<BackupPlanBilling, CloudError>;
    /// The account `credentials` belong to (its plans, its quotas), looked up once per key
    /// (STS `GetCallerIdentity`); the key itself while that is unknown.
    async fn principal(&self, credentials: &Credentials) -> Principal;
}

/// Parameters of `CreateBackupPlan`. Values are API values (`postpay`, `MySQL`, `micro`, ...).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CreateBackupPlan {
    /// `InstanceClass`.
    pub instance_class: String,
    /// `DatabaseType`.
    pub database_type: String,
    /// `BackupMethod`.
    pub backup_method: String,
    /// `postpay` or `prepay`.
    pub pay_type: String,
    /// `Year` or `Month` (prepay).
    pub period: Option<String>,
    /// `UsedTime`.
    pub used_time: Option<i32>,
    /// Required with postpay.
    pub database_region: Option<String>,
    /// Required with postpay.
    pub storage_region: Option<String>,
    /// Source instance type for postpay: `RDS`, `PolarDB`, `DDS`, `Kvstore`, `Other`.
    pub instance_type: Option<String>,
    /// Idempotency token; the same token returns the same plan.
    pub client_token: Option<String>,
}

/// What `CreateBackupPlan` returned.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CreatedBackupPlan {
    /// `BackupPlanId`.
    pub backup_plan_id: String,
    /// `OrderId` of the purchase.
    pub order_id: Option<String>,
}

/// Where the source database is and how to log in.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct SourceEndpoint {
    /// `RDS`, `ECS`, `Express`, `Agent`, `DDS`, `Other`.
    pub instance_type: String,
    /// Source endpoint region (`SourceEndpointRegion`).
    pub region: Option<String>,
    /// Source instance id (`SourceEndpointInstanceID`).
    pub instance_id: Option<String>,
    /// Source endpoint IP (`SourceEndpointIP`).
    pub ip: Option<String>,
    /// Source endpoint port (`SourceEndpointPort`).
    pub port: Option<i32>,
    /// `SourceEndpointDatabaseName` (PostgreSQL, MongoDB).
    pub database_name: Option<String>,
    /// `SourceEndpointUserName`.
    pub user_name: Option<String>,
    /// Never logged: `Debug` prints `***`.
    pub password: Option<String>,
    /// `SourceEndpointOracleSID` (Oracle).
    pub oracle_sid: Option<String>,
    /// `BackupGatewayId` (type `Agent`).
    pub backup_gateway_id: Option<i64>,
}

impl std::fmt::Debug for SourceEndpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SourceEndpoint")
            .field("instance_type", &self.instance_type)
            .field("region", &self.region)
            .field("instance_id", &self.instance_id)
            .field("ip", &self.ip)
            .field("port", &self.port)
            .field("database_name", &self.database_name)
            .field("user_name", &self.user_name)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .field("oracle_sid", &self.oracle_sid)
            .field("backup_gateway_id", &self.backup_gateway_id)
            .finish()
    }
}

/// Parameters of `ConfigureBackupPlan`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ConfigureBackupPlan {
    /// `BackupPlanId`.
    pub backup_plan_id: String,
    /// `BackupPlanName`.
    pub backup_plan_name: String,
    /// Source database endpoint (`SourceEndpoint*` parameters).
    pub source: SourceEndpoint,
    /// JSON string, e.g. `[{"DBName":"app"}]`.
    pub backup_objects: Option<String>,
    /// Comma-separated weekdays, e.g. `Monday,Thursday`.
    pub backup_period: Option<String>,
    /// `HH:mm` UTC.
    pub backup_start_time: Option<String>,
    /// `simple` or `manual`.
    pub backup_strategy_type: Option<String>,
    /// `EnableBackupLog`.
    pub enable_backup_log: Option<bool>,
    /// `BackupLogIntervalSeconds`.
    pub backup_log_interval_seconds: Option<i32>,
    /// `BackupRetentionPeriod`.
    pub backup_retention_period: Option<i32>,
    /// `DuplicationInfrequentAccessPeriod`.
    pub duplication_infrequent_access_period: Option<i32>,
    /// `DuplicationArchivePeriod`.
    pub duplication_archive_period: Option<i32>,
    /// empty or `system`.
    pub backup_storage_type: Option<String>,
    /// `OSSBucketName`.
    pub oss_bucket_name: Option<String>,
    /// `ClientToken`.
    pub client_token: Option<String>,
}

/// `StopMethod` of `StopBackupPlan`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StopMethod {
    /// Stop the plan, full and incremental backups and restore tasks.
    All,
    /// Stop only the schedule.
    Plan,
}

impl StopMethod {
    /// API value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::All => "ALL",
            Self::Plan => "PLAN",
        }
    }
}

/// `BackupPlanStatus` as DBS describes it.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum PlanStatus {
    /// `wait`: created, not configured yet.
    #[default]
    Wait,
    /// `init`: configured; the precheck has not passed (or failed, with `ErrMessage`).
    Init,
    /// `check_pass`: the precheck passed; the plan is starting.
    CheckPass,
    /// `running`: backing up on schedule.
    Running,
    /// `stop`: stopped (`StopBackupPlan`), or a failed start.
    Stop,
    /// `pause`: paused.
    Pause,
    /// `locked`: locked by DBS, for example for an overdue payment.
    Locked,
    /// `released`: released; as good as gone.
    Released,
    /// A status this client does not know, as DBS sent it.
    Other(String),
}

impl PlanStatus {
    /// The status for a described `BackupPlanStatus` (case-insensitive).
    pub fn parse(value: &str) -> Self {
        let known = [
            Self::Wait,
            Self::Init,
            Self::CheckPass,
            Self::Running,
            Self::Stop,
            Self::Pause,
            Self::Locked,
            Self::Released,
        ];
        known
            .into_iter()
            .find(|s| s.as_str().eq_ignore_ascii_case(value.trim()))
            .unwrap_or_else(|| Self::Other(value.to_owned()))
    }

    /// The API value (`running`, `check_pass`, ...).
    pub fn as_str(&self) -> &str {
        match self {
            Self::Wait => "wait",
            Self::Init => "init",
            Self::CheckPass => "check_pass",
            Self::Running => "running",
            Self::Stop => "stop",
            Self::Pause => "pause",
            Self::Locked => "locked",
            Self::Released => "released",
            Self::Other(s) => s,
        }
    }
}

impl std::fmt::Display for PlanStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Parameters of `DescribeBackupPlanList`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DescribeBackupPlanList {
    /// Comma-separated ids, or none for all plans of the region.
    pub backup_plan_id: Option<String>,
    /// `BackupPlanName`.
    pub backup_plan_name: Option<String>,
    /// `BackupPlanStatus`.
    pub backup_plan_status: Option<String>,
    /// 0-based page number.
    pub page_num: u32,
    /// 1..100.
    pub page_size: u32,
}

/// One page of `DescribeBackupPlanList`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BackupPlanPage {
    /// 0-based page number (`PageNum`).
    pub page_num: u32,
    /// Page size (`PageSize`).
    pub page_size: u32,
    /// Plans matching the filter (`TotalElements`).
    pub total_elements: u64,
    /// Pages in total (`TotalPages`).
    pub total_pages: u32,
    /// The plans of this page.
    pub items: Vec<BackupPlanDetail>,
}

/// A plan as DBS describes it; case of enums normalised to request case where DBS differs
/// (`SourceEndpointInstanceType` upper case, `BackupPeriod` title case). Serde's form is the
/// operator's own (the plan inventory keeps plans compressed), not DBS's.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct BackupPlanDetail {
    /// `BackupPlanId`.
    pub backup_plan_id: String,
    /// `BackupPlanName`.
    pub backup_plan_name: String,
    /// `BackupPlanStatus`.
    pub backup_plan_status: PlanStatus,
    /// `BackupPlanCreateTime`, epoch milliseconds.
    pub backup_plan_create_time: Option<i64>,
    /// `BackupMethod`.
    pub backup_method: String,
    /// `DatabaseType`.
    pub database_type: String,
    /// `InstanceClass`.
    pub instance_class: String,
    /// `BackupObjects`.
    pub backup_objects: Option<String>,
    /// `BackupPeriod`.
    pub backup_period: Option<String>,
    /// `BackupStartTime`.
    pub backup_start_time: Option<String>,
    /// `BackupRetentionPeriod`.
    pub backup_retention_period: Option<i32>,
    /// `DuplicationInfrequentAccessPeriod`.
    pub duplication_infrequent_access_period: Option<i32>,
    /// `DuplicationArchivePeriod`.
    pub duplication_archive_period: Option<i32>,
    /// `BackupStorageType`.
    pub backup_storage_type: Option<String>,
    /// `OSSBucketName`.
    pub oss_bucket_name: Option<String>,
    /// `EnableBackupLog`.
    pub enable_backup_log: Option<bool>,
    /// `SourceEndpointInstanceType`.
    pub source_endpoint_instance_type: Option<String>,
    /// `SourceEndpointInstanceID`.
    pub source_endpoint_instance_id: Option<String>,
    /// `SourceEndpointRegion`.
    pub source_endpoint_region: Option<String>,
    /// `ip:port`.
    pub source_endpoint_ip_port: Option<String>,
    /// `SourceEndpointDatabaseName`.
    pub source_endpoint_database_name: Option<String>,
    /// `SourceEndpointUserName`.
    pub source_endpoint_user_name: Option<String>,
    /// `SourceEndpointOracleSID`.
    pub source_endpoint_oracle_sid: Option<String>,
    /// `BackupGatewayId` (type `Agent`).
    pub backup_gateway_id: Option<i64>,
    /// Precheck failure text.
    pub err_message: Option<String>,
}

/// Parameters of `ModifyBackupStrategy`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ModifyBackupStrategy {
    /// `BackupPlanId`.
    pub backup_plan_id: String,
    /// `BackupPeriod`.
    pub backup_period: String,
    /// `BackupStartTime`.
    pub backup_start_time: Option<String>,
    /// `BackupStrategyType`.
    pub backup_strategy_type: Option<String>,
    /// `BackupLogIntervalSeconds`.
    pub backup_log_interval_seconds: Option<i32>,
}

/// Parameters of `ModifyStorageStrategy`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ModifyStorageStrategy {
    /// `BackupPlanId`.
    pub backup_plan_id: String,
    /// `BackupRetentionPeriod`.
    pub backup_retention_period: i32,
    /// `DuplicationInfrequentAccessPeriod`.
    pub duplication_infrequent_access_period: i32,
    /// `DuplicationArchivePeriod`.
    pub duplication_archive_period: i32,
}

/// Parameters of `ModifyBackupSourceEndpoint`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ModifyBackupSourceEndpoint {
    /// `BackupPlanId`.
    pub backup_plan_id: String,
    /// Source database endpoint (`SourceEndpoint*` parameters).
    pub source: SourceEndpoint,
    /// `BackupObjects`.
    pub backup_objects: Option<String>,
}

/// What a Modify* call returned.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ModifyOutcome {
    /// `NeedPrecheck`: the plan must be started again.
    pub need_precheck: bool,
}

/// `DescribeBackupPlanBilling` item.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BackupPlanBilling {
    /// `PREPAY` or `POSTPAY`.
    pub buy_charge_type: String,
    /// `BuyExpiredTimestamp`, epoch milliseconds (prepay only).
    pub buy_expired_timestamp: Option<i64>,
    /// `IsExpired` (prepay only).
    pub is_expired: Option<bool>,
}

impl BackupPlanBilling {
    /// Whether the plan was bought as a subscription (`PREPAY`): it cannot be released.
    pub fn is_subscription(&self) -> bool {
        self.buy_charge_type.eq_ignore_ascii_case("PREPAY")
    }
}

#[cfg(test)]
mod tests {
    use super::PlanStatus;

    #[test]
    fn plan_statuses_round_trip_and_unknown_ones_are_kept() {
        for s in [
            "wait",
            "init",
            "check_pass",
            "running",
            "stop",
            "pause",
            "locked",
            "released",
        ] {
            let status = PlanStatus::parse(s);
            assert!(!matches!(status, PlanStatus::Other(_)), "{s}");
            assert_eq!(status.as_str(), s);
        }
        assert_eq!(PlanStatus::parse("RUNNING"), PlanStatus::Running);
        assert_eq!(
            PlanStatus::parse("frozen"),
            PlanStatus::Other("frozen".into())
        );
    }
}
