//! RDS 2014-08-15: the calls that manage an instance's public endpoint.

use async_trait::async_trait;

use super::{CloudError, Scope};

mod http;

/// The RDS calls the RdsConnection controller makes.
#[async_trait]
pub trait RdsApi: Send + Sync {
    /// How long a call of `action` in `scope` would wait for its turn under the account's
    /// quota if it were made now (the client paces every call); takes no turn.
    async fn backlog(&self, scope: &Scope, action: &str) -> std::time::Duration;
    /// `AllocateInstancePublicConnection`; returns the full connection string.
    async fn allocate_instance_public_connection(
        &self,
        scope: &Scope,
        req: &AllocatePublicConnection,
    ) -> Result<String, CloudError>;
    /// `ModifyDBInstanceConnectionString`.
    async fn modify_db_instance_connection_string(
        &self,
        scope: &Scope,
        req: &ModifyConnectionString,
    ) -> Result<(), CloudError>;
    /// `ReleaseInstanceConnection`.
    async fn release_instance_connection(
        &self,
        scope: &Scope,
        db_instance_id: &str,
        current_connection_string: &str,
        instance_network_type: &str,
    ) -> Result<(), CloudError>;
    /// `DescribeDBInstanceNetInfo`.
    async fn describe_db_instance_net_info(
        &self,
        scope: &Scope,
        db_instance_id: &str,
    ) -> Result<InstanceNetInfo, CloudError>;
    /// `DescribeDBInstanceAttribute`: the instance's status.
    async fn describe_db_instance_attribute(
        &self,
        scope: &Scope,
        db_instance_id: &str,
    ) -> Result<InstanceAttribute, CloudError>;
}

/// Parameters of `AllocateInstancePublicConnection`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AllocatePublicConnection {
    /// `DBInstanceId` (`rm-...`).
    pub db_instance_id: String,
    /// `ConnectionStringPrefix`: the part before the first dot.
    pub connection_string_prefix: String,
    /// `Port`.
    pub port: i32,
    /// `BabelfishPort` (PostgreSQL with Babelfish).
    pub babelfish_port: Option<i32>,
    /// `PGBouncerPort` (PostgreSQL).
    pub pg_bouncer_port: Option<i32>,
}

/// Parameters of `ModifyDBInstanceConnectionString`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ModifyConnectionString {
    /// `DBInstanceId` (`rm-...`).
    pub db_instance_id: String,
    /// The endpoint as it is now (`CurrentConnectionString`).
    pub current_connection_string: String,
    /// `ConnectionStringPrefix`: the part before the first dot.
    pub connection_string_prefix: String,
    /// `Port`.
    pub port: i32,
    /// `BabelfishPort` (PostgreSQL with Babelfish).
    pub babelfish_port: Option<i32>,
    /// `PGBouncerPort` (PostgreSQL).
    pub pg_bouncer_port: Option<i32>,
}

/// `DescribeDBInstanceNetInfo` result.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct InstanceNetInfo {
    /// `Classic` or `VPC`.
    pub instance_network_type: Option<String>,
    /// Every endpoint of the instance (`DBInstanceNetInfos.DBInstanceNetInfo`).
    pub endpoints: Vec<NetInfoEndpoint>,
}

impl InstanceNetInfo {
    /// The public endpoint whose prefix (the part before the first dot) is exactly `prefix`.
    pub fn public_endpoint(&self, prefix: &str) -> Option<&NetInfoEndpoint> {
        self.endpoints.iter().find(|e| {
            e.ip_type == "Public" && e.connection_string.split('.').next() == Some(prefix)
        })
    }
}

/// One `DBInstanceNetInfo` entry.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NetInfoEndpoint {
    /// Full connection string (`ConnectionString`).
    pub connection_string: String,
    /// `IPAddress`.
    pub ip_address: Option<String>,
    /// `Public`, `Private`, `Inner`.
    pub ip_type: String,
    /// `Port`.
    pub port: Option<i32>,
    /// `BabelfishPort` (PostgreSQL with Babelfish).
    pub babelfish_port: Option<i32>,
    /// `PGBouncerPort` (PostgreSQL).
    pub pg_bouncer_port: Option<i32>,
}

/// `DescribeDBInstanceAttribute` fields of interest.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct InstanceAttribute {
    /// `DBInstanceId` (`rm-...`).
    pub db_instance_id: String,
    /// `Running`, `DBInstanceNetTypeChanging`, ...; only `Running` is ready.
    pub db_instance_status: String,
    /// `LockMode` (`Unlock`, `ManualLock`, ...).
    pub lock_mode: Option<String>,
}

impl InstanceAttribute {
    /// Whether endpoint operations may run now.
    pub fn is_running(&self) -> bool {
        self.db_instance_status == "Running"
    }
}
