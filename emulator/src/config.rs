//! Start-up configuration of the emulator.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

/// Configuration used by [`crate::Emulator::start`].
#[derive(Debug, Clone)]
pub struct EmulatorConfig {
    /// Address to bind (port 0 picks a free port).
    pub listen: SocketAddr,
    /// Static AccessKey pairs `(AccessKeyId, AccessKeySecret)`.
    pub accounts: Vec<(String, String)>,
    /// AccessKeyId -> account uid for static keys of RAM users (several keys, one account and
    /// one quota); keys without an entry are accounts of their own.
    pub key_accounts: HashMap<String, String>,
    /// Seeded RDS instances `(region, instance id)`: Running MySQL, VPC.
    pub rds_instances: Vec<(String, String)>,
    /// Minimum time between CreateBackupPlan and ConfigureBackupPlan.
    pub configure_delay: Duration,
    /// How long an RDS instance stays in `DBInstanceNetTypeChanging`.
    pub instance_busy: Duration,
    /// Requests per second per (account, action); `*` sets the default.
    pub quotas: HashMap<String, u32>,
    /// Upper bound for the lifetime of credentials issued by STS.
    pub sts_max_duration: Option<Duration>,
    /// How long the precheck begun by StartBackupPlan lasts (`init` -> `check_pass` -> `running`).
    pub precheck: Duration,
    /// How long a CreateBackupPlan ClientToken is remembered.
    pub client_token_ttl: Duration,
    /// How long a new plan stays invisible to DescribeBackupPlanList (read-after-create lag).
    pub describe_lag: Duration,
    /// How DBS business errors travel: a 4xx status (default) or HTTP 200 `Success:false`.
    pub dbs_errors: DbsErrorMode,
}

/// How DBS business errors are sent (`--dbs-errors`, admin setting `dbsErrors`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DbsErrorMode {
    /// The error's 4xx HTTP status, with `Code`/`Message` and the DBS fields in the body: what
    /// the official SDKs turn into an exception.
    #[default]
    HttpStatus,
    /// HTTP 200 with `Success:false` and `ErrCode`/`ErrMessage` (the older documented form).
    SuccessFalse,
}

impl DbsErrorMode {
    /// The flag value: `http-status` or `success-false`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::HttpStatus => "http-status",
            Self::SuccessFalse => "success-false",
        }
    }
}

impl std::str::FromStr for DbsErrorMode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim() {
            "http-status" => Ok(Self::HttpStatus),
            "success-false" => Ok(Self::SuccessFalse),
            other => Err(format!(
                "expected http-status or success-false, got {other:?}"
            )),
        }
    }
}

impl Default for EmulatorConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            accounts: Vec::new(),
            key_accounts: HashMap::new(),
            rds_instances: Vec::new(),
            configure_delay: Duration::from_secs(5),
            instance_busy: Duration::from_secs(3),
            quotas: HashMap::new(),
            sts_max_duration: None,
            precheck: Duration::from_secs(5),
            client_token_ttl: Duration::from_secs(60 * 60),
            describe_lag: Duration::ZERO,
            dbs_errors: DbsErrorMode::default(),
        }
    }
}
