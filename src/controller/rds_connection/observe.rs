//! Observe: what RDS reports about the instance, read in one go.

use crate::cloud::rds::InstanceNetInfo;
use crate::cloud::{CloudError, RdsApi, Scope};

/// What RDS reported about the instance in this reconcile.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Observed {
    /// `DBInstanceStatus` from `DescribeDBInstanceAttribute`.
    pub instance_status: String,
    /// Endpoints from `DescribeDBInstanceNetInfo`.
    pub net_info: InstanceNetInfo,
    /// `LockMode` from `DescribeDBInstanceAttribute` (`Unlock`, `ManualLock`,
    /// `LockByExpiration`, ...; empty when RDS did not say).
    pub lock_mode: String,
}

impl Observed {
    /// Only `Running` lets endpoint operations through; every other status is transitional.
    pub fn is_running(&self) -> bool {
        self.instance_status == "Running"
    }

    /// The lock mode when RDS reports the instance locked (an overdue payment, a full disk, a
    /// manual lock): it then refuses endpoint changes whatever its status.
    pub fn lock(&self) -> Option<&str> {
        let mode = self.lock_mode.as_str();
        (!mode.is_empty() && !mode.eq_ignore_ascii_case("Unlock")).then_some(mode)
    }
}

/// The calls [`observe`] makes.
pub const READS: [&str; 2] = ["DescribeDBInstanceAttribute", "DescribeDBInstanceNetInfo"];

/// How long the reads of [`observe`] would wait for their turn under the account's quota if
/// they were made now (the longer of the two).
pub async fn backlog(rds: &dyn RdsApi, scope: &Scope) -> std::time::Duration {
    let mut longest = std::time::Duration::ZERO;
    for action in READS {
        longest = longest.max(rds.backlog(scope, action).await);
    }
    longest
}

/// Reads the instance's status and endpoints (both calls at once).
pub async fn observe(
    rds: &dyn RdsApi,
    scope: &Scope,
    db_instance_id: &str,
) -> Result<Observed, CloudError> {
    let (attribute, net_info) = tokio::join!(
        rds.describe_db_instance_attribute(scope, db_instance_id),
        rds.describe_db_instance_net_info(scope, db_instance_id),
    );
    let attribute = attribute?;
    Ok(Observed {
        instance_status: attribute.db_instance_status,
        net_info: net_info?,
        lock_mode: attribute.lock_mode.unwrap_or_default(),
    })
}
