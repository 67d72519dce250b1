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
}

impl Default for EmulatorConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            accounts: Vec::new(),
            rds_instances: Vec::new(),
            configure_delay: Duration::from_secs(5),
            instance_busy: Duration::from_secs(3),
            quotas: HashMap::new(),
            sts_max_duration: None,
            precheck: Duration::from_secs(5),
            client_token_ttl: Duration::from_secs(60 * 60),
            describe_lag: Duration::ZERO,
        }
    }
}
