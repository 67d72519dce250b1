//! In-memory state of the emulated cloud: accounts, plans, instances, calls.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use serde::{Deserialize, Serialize};

use crate::config::{DbsErrorMode, EmulatorConfig};
use crate::faults::Faults;
use crate::quota::Quotas;
use crate::snapshot::{InstanceSnapshot, Snapshot};

/// Maximum number of call records kept (oldest are dropped).
const MAX_CALLS: usize = 10_000;

/// State shared between request handlers.
#[derive(Clone)]
pub struct Shared(Arc<Mutex<State>>);

impl Shared {
    /// Wraps a fresh state.
    pub fn new(state: State) -> Self {
        Self(Arc::new(Mutex::new(state)))
    }

    /// Locks the state; a poisoned lock is recovered (state stays usable).
    pub fn lock(&self) -> MutexGuard<'_, State> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Settings that can be changed at run time.
#[derive(Debug, Clone)]
pub struct Settings {
    /// ConfigureBackupPlan must come at least this long after CreateBackupPlan.
    pub configure_delay_ms: i64,
    /// Busy period of an RDS instance after a connection change.
    pub instance_busy_ms: i64,
    /// Cap on STS credential lifetime, seconds.
    pub sts_max_duration_s: Option<i64>,
    /// How DBS business errors are sent.
    pub dbs_errors: DbsErrorMode,
    /// Length of the precheck begun by StartBackupPlan (`init` -> `check_pass` -> `running`).
    pub precheck_ms: i64,
    /// How long a CreateBackupPlan ClientToken is remembered.
    pub client_token_ttl_ms: i64,
    /// A plan younger than this is not yet listed by DescribeBackupPlanList.
    pub describe_lag_ms: i64,
}

/// What a CreateBackupPlan ClientToken is remembered with.
#[derive(Debug, Clone)]
pub struct ClientTokenUse {
    /// The plan the first request created.
    pub backup_plan_id: String,
    /// The create parameters of the first request, to detect a reuse with other parameters.
    pub parameters: Vec<(String, String)>,
    /// When the first request was served, epoch ms (the token is forgotten `client_token_ttl_ms` later).
    pub at_ms: i64,
}

/// Temporary credentials issued by AssumeRoleWithOIDC.
#[derive(Debug, Clone)]
pub struct StsCredential {
    /// AccessKeySecret.
    pub secret: String,
    /// SecurityToken that must accompany signed requests.
    pub security_token: String,
    /// Account (uid of the assumed role).
    pub account_id: String,
    /// `acs:ram::<uid>:assumed-role/<role>/<session>` (what GetCallerIdentity names).
    pub arn: String,
    /// Expiry, epoch ms.
    pub expires_at_ms: i64,
}

/// A DBS backup plan, as the emulator keeps it and as [`crate::Snapshot`] and the admin state
/// (camelCase JSON) show it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Plan {
    /// Creation order, for stable listing.
    #[serde(skip)]
    pub(crate) seq: u64,
    /// Plan attribute `BackupPlanId`.
    pub backup_plan_id: String,
    /// Plan attribute `AccountId`.
    pub account_id: String,
    /// Plan attribute `Region`.
    pub region: String,
    /// Plan attribute `Name`.
    pub name: String,
    /// Plan attribute `Status`.
    pub status: String,
    /// Plan attribute `PayType`.
    pub pay_type: String,
    /// Plan attribute `ClientToken`.
    pub client_token: Option<String>,
    /// Plan attribute `OrderId`.
    pub order_id: String,
    /// Plan attribute `DatabaseType`.
    pub database_type: String,
    /// Plan attribute `InstanceClass`.
    pub instance_class: String,
    /// Plan attribute `BackupMethod`.
    pub backup_method: String,
    /// Plan attribute `CreatedAtMs`.
    pub created_at_ms: i64,
    /// Plan attribute `ConfiguredAtMs`.
    pub configured_at_ms: Option<i64>,
    /// Plan attribute `Period`.
    pub period: Option<String>,
    /// Plan attribute `UsedTime`.
    pub used_time: Option<i64>,
    /// Plan attribute `DatabaseRegion`.
    pub database_region: Option<String>,
    /// Plan attribute `StorageRegion`.
    pub storage_region: Option<String>,
    /// Plan attribute `InstanceType`.
    pub instance_type: Option<String>,
    /// Plan attribute `BackupPeriod`.
    pub backup_period: Option<String>,
    /// Plan attribute `BackupStartTime`.
    pub backup_start_time: Option<String>,
    /// Plan attribute `BackupStrategyType`.
    pub backup_strategy_type: Option<String>,
    /// Plan attribute `BackupRetentionPeriod`.
    pub backup_retention_period: i64,
    /// Plan attribute `DuplicationInfrequentAccessPeriod`.
    pub duplication_infrequent_access_period: i64,
    /// Plan attribute `DuplicationArchivePeriod`.
    pub duplication_archive_period: i64,
    /// Plan attribute `SourceEndpointInstanceType`.
    pub source_endpoint_instance_type: Option<String>,
    /// Plan attribute `SourceEndpointInstanceId`.
    pub source_endpoint_instance_id: Option<String>,
    /// Plan attribute `SourceEndpointRegion`.
    pub source_endpoint_region: Option<String>,
    /// Plan attribute `SourceEndpointIp`.
    pub source_endpoint_ip: Option<String>,
    /// Plan attribute `SourceEndpointPort`.
    pub source_endpoint_port: Option<i64>,
    /// Plan attribute `SourceEndpointDatabaseName`.
    pub source_endpoint_database_name: Option<String>,
    /// Plan attribute `SourceEndpointUserName`.
    pub source_endpoint_user_name: Option<String>,
    /// Plan attribute `SourceEndpointOracleSid`.
    pub source_endpoint_oracle_sid: Option<String>,
    /// Never shown: snapshots and the admin state only say whether it is set.
    #[serde(skip)]
    pub(crate) source_endpoint_password: Option<String>,
    /// Plan attribute `SourceEndpointPasswordSet`.
    pub source_endpoint_password_set: bool,
    /// Plan attribute `BackupGatewayId`.
    pub backup_gateway_id: i64,
    /// Plan attribute `BackupObjects`.
    pub backup_objects: Option<String>,
    /// Plan attribute `EnableBackupLog`.
    pub enable_backup_log: bool,
    /// Plan attribute `BackupLogIntervalSeconds`.
    pub backup_log_interval_seconds: Option<i64>,
    /// Plan attribute `BackupStorageType`.
    pub backup_storage_type: Option<String>,
    /// Plan attribute `OssBucketName`.
    pub oss_bucket_name: Option<String>,
    /// Plan attribute `CrossAliyunId`.
    pub cross_aliyun_id: Option<String>,
    /// Plan attribute `CrossRoleName`.
    pub cross_role_name: Option<String>,
    /// Plan attribute `ResourceGroupId`.
    pub resource_group_id: Option<String>,
    /// Plan attribute `ErrMessage`: why the last precheck failed, empty otherwise.
    pub err_message: String,
    /// The precheck in progress, if any.
    pub precheck: Option<Precheck>,
    /// A failure armed through the admin API: every precheck of the plan fails with it until
    /// it is cleared.
    pub precheck_failure: Option<PrecheckFailure>,
    /// The `CreatedFullBackupsetId` of every accepted start (StartBackupPlan, or
    /// ConfigureBackupPlan with `AutoStartBackup`), oldest first.
    pub full_backup_set_ids: Vec<String>,
}

/// A precheck in progress: `init` for the first half, `check_pass` for the second, then
/// `running` (or the armed failure's status).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Precheck {
    /// When it began, epoch ms.
    pub started_at_ms: i64,
    /// How long it lasts (the `precheck` setting when it began).
    pub duration_ms: i64,
}

/// How the prechecks of one plan fail (admin `PUT /_emulator/plans/{id}/precheck`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PrecheckFailure {
    /// The `ErrMessage` DescribeBackupPlanList shows once the precheck is over.
    pub message: String,
    /// The status the plan is left in: `init` or `stop`.
    pub status: String,
}

/// One endpoint of an RDS instance.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Connection {
    /// Full endpoint host name.
    pub connection_string: String,
    /// `Private`/`Inner` (internal) or `Public`.
    pub ip_type: String,
    /// TCP port.
    pub port: u16,
    /// Resolved IP address.
    pub ip_address: String,
}

impl Connection {
    /// First DNS label of the connection string.
    pub fn prefix(&self) -> &str {
        self.connection_string
            .split('.')
            .next()
            .unwrap_or(&self.connection_string)
    }
}

/// An RDS instance.
#[derive(Debug, Clone)]
pub struct Instance {
    /// Region id.
    pub region: String,
    /// Instance id.
    pub db_instance_id: String,
    /// Engine, e.g. `MySQL`.
    pub engine: String,
    /// `VPC` or `Classic`.
    pub network_type: String,
    /// Status forced through the admin API (wins over everything).
    pub forced_status: Option<String>,
    /// End of the current connection-change busy period, epoch ms.
    pub busy_until_ms: i64,
    /// `LockMode` set through the admin API (`None`: `Unlock`); a locked instance refuses
    /// endpoint changes.
    pub lock_mode: Option<String>,
    /// Endpoints, the internal one first.
    pub connections: Vec<Connection>,
}

impl Instance {
    /// Seeds a Running instance with its built-in internal endpoint.
    pub fn new(region: &str, id: &str, engine: &str, network_type: &str) -> Self {
        let internal = Connection {
            connection_string: format!("{id}-internal.{}", domain(engine)),
            ip_type: if network_type == "Classic" {
                "Inner"
            } else {
                "Private"
            }
            .into(),
            port: 3306,
            ip_address: format!(
                "172.16.{}.{}",
                rand::random::<u8>(),
                rand::random_range(1..255u8)
            ),
        };
        Self {
            region: region.to_string(),
            db_instance_id: id.to_string(),
            engine: engine.to_string(),
            network_type: network_type.to_string(),
            forced_status: None,
            busy_until_ms: 0,
            lock_mode: None,
            connections: vec![internal],
        }
    }

    /// Current status: forced, busy (`DBInstanceNetTypeChanging`) or `Running`.
    pub fn status(&self, now_ms: i64) -> String {
        if let Some(s) = &self.forced_status {
            return s.clone();
        }
        if now_ms < self.busy_until_ms {
            "DBInstanceNetTypeChanging".into()
        } else {
            "Running".into()
        }
    }

    /// The public endpoint, if any.
    pub fn public(&self) -> Option<&Connection> {
        self.connections.iter().find(|c| c.ip_type == "Public")
    }
}

/// `<engine>.rds.aliyuncs.com` with the engine in lower case.
pub fn domain(engine: &str) -> String {
    format!("{}.rds.aliyuncs.com", engine.to_ascii_lowercase())
}

/// One logged API call.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CallRecord {
    /// Action name as requested.
    pub action: String,
    /// `dbs`, `rds` or `sts`.
    pub product: String,
    /// Epoch ms.
    pub time_ms: i64,
    /// AccessKeyId that signed (empty for anonymous calls).
    pub access_key_id: String,
    /// `Success` or the error code.
    pub outcome: String,
    /// HTTP status sent.
    pub http_status: u16,
    /// The caller's `User-Agent` header (empty when it sent none).
    pub user_agent: String,
    /// The body format answered: `json` (asked by `Accept: application/json` or `Format=JSON`)
    /// or `xml` (the default).
    pub format: String,
    /// Names of the parameters sent in the query string, in order (values are never logged).
    pub query_params: Vec<String>,
    /// Names of the parameters sent in a form body, in order.
    pub body_params: Vec<String>,
}

/// The whole emulated world.
pub struct State {
    /// Run-time settings.
    pub settings: Settings,
    /// AccessKeyId -> secret for static keys.
    pub accounts: HashMap<String, String>,
    /// AccessKeyId -> owning account uid, for static keys of RAM users; a static key without an
    /// entry is its own account (the account's root key, its uid being the AccessKeyId).
    pub key_accounts: HashMap<String, String>,
    /// AccessKeyId -> issued STS credential.
    pub sts_credentials: HashMap<String, StsCredential>,
    /// Recently used signature nonces.
    pub nonces: NonceCache,
    /// Backup plans by id (released ones included).
    pub plans: BTreeMap<String, Plan>,
    /// (account, action, ClientToken) -> the request that first used it.
    pub client_tokens: HashMap<(String, String, String), ClientTokenUse>,
    /// RDS instances.
    pub instances: Vec<Instance>,
    /// Call log.
    pub calls: VecDeque<CallRecord>,
    /// Quotas.
    pub quotas: Quotas,
    /// Injected faults.
    pub faults: Faults,
    /// Last plan sequence number.
    pub next_seq: u64,
}

impl State {
    /// Builds the initial state from the configuration.
    pub fn from_config(config: &EmulatorConfig) -> Self {
        Self {
            settings: Settings {
                configure_delay_ms: duration_ms(config.configure_delay),
                instance_busy_ms: duration_ms(config.instance_busy),
                sts_max_duration_s: config
                    .sts_max_duration
                    .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX)),
                precheck_ms: duration_ms(config.precheck),
                client_token_ttl_ms: duration_ms(config.client_token_ttl),
                describe_lag_ms: duration_ms(config.describe_lag),
                dbs_errors: config.dbs_errors,
            },
            accounts: config.accounts.iter().cloned().collect(),
            key_accounts: config.key_accounts.clone(),
            sts_credentials: HashMap::new(),
            nonces: NonceCache::default(),
            plans: BTreeMap::new(),
            client_tokens: HashMap::new(),
            instances: config
                .rds_instances
                .iter()
                .map(|(region, id)| Instance::new(region, id, "MySQL", "VPC"))
                .collect(),
            calls: VecDeque::new(),
            quotas: Quotas::new(&config.quotas),
            faults: Faults::default(),
            next_seq: 0,
        }
    }

    /// Appends a call record (bounded).
    pub fn record(&mut self, call: CallRecord) {
        if self.calls.len() >= MAX_CALLS {
            self.calls.pop_front();
        }
        self.calls.push_back(call);
    }

    /// Finds an instance by id.
    pub fn instance_mut(&mut self, id: &str) -> Option<&mut Instance> {
        self.instances.iter_mut().find(|i| i.db_instance_id == id)
    }

    /// What the emulator holds at `now_ms`: plans in creation order (passwords left out, prechecks
    /// advanced to `now_ms`),
    /// instances with their current status, the call log (the body of `GET /_emulator/state`).
    pub fn snapshot(&self, now_ms: i64) -> Snapshot {
        let mut plans: Vec<Plan> = self
            .plans
            .values()
            .map(|p| {
                let mut plan = Plan {
                    source_endpoint_password: None,
                    ..p.clone()
                };
                crate::dbs::settle_precheck(&mut plan, now_ms);
                plan
            })
            .collect();
        plans.sort_by_key(|p| p.seq);
        let instances = self
            .instances
            .iter()
            .map(|i| InstanceSnapshot {
                region: i.region.clone(),
                db_instance_id: i.db_instance_id.clone(),
                engine: i.engine.clone(),
                status: i.status(now_ms),
                network_type: i.network_type.clone(),
                connections: i.connections.clone(),
            })
            .collect();
        Snapshot {
            plans,
            instances,
            calls: self.calls.iter().cloned().collect(),
        }
    }
}

/// Converts a duration to whole milliseconds (saturating).
pub fn duration_ms(d: std::time::Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// Bounded set of recently seen signature nonces.
#[derive(Debug, Default)]
pub struct NonceCache {
    order: VecDeque<(String, i64)>,
    seen: HashMap<String, i64>,
}

/// Maximum number of nonces remembered.
const MAX_NONCES: usize = 100_000;
/// Nonces older than this are forgotten (covers the 31-minute V2 window).
const NONCE_TTL_MS: i64 = 32 * 60 * 1000;

impl NonceCache {
    /// Records a nonce; returns false if it was already used.
    pub fn insert(&mut self, nonce: &str, now_ms: i64) -> bool {
        while let Some((n, t)) = self.order.front() {
            if self.order.len() >= MAX_NONCES || now_ms - *t > NONCE_TTL_MS {
                self.seen.remove(n);
                self.order.pop_front();
            } else {
                break;
            }
        }
        if self.seen.contains_key(nonce) {
            return false;
        }
        self.seen.insert(nonce.to_string(), now_ms);
        self.order.push_back((nonce.to_string(), now_ms));
        true
    }
}
