//! `RdsConnection`: the public (Internet) endpoint of an ApsaraDB RDS instance.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::{CredentialsRef, DeletionPolicy, LocalSecretRef};

/// Annotation recording the prefix of the public endpoint this object allocated or renamed: it
/// is written before `AllocateInstancePublicConnection` and `ModifyDBInstanceConnectionString`,
/// so the endpoint is still known as this object's after a crash before the status write, or
/// when the object is restored without its status (a backup, `kubectl get -o yaml | kubectl
/// apply` into another cluster).
pub const CONNECTION_STRING_PREFIX_ANNOTATION: &str = "db.alicloud.dev/connection-string-prefix";

/// Desired public endpoint of an RDS instance.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "db.alicloud.dev",
    version = "v1alpha1",
    kind = "RdsConnection",
    namespaced,
    status = "RdsConnectionStatus",
    shortname = "rdsconn",
    category = "alicloud",
    doc = "The public endpoint of an ApsaraDB RDS instance on Alibaba Cloud, allocated, modified and released by the operator.",
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Reason","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].reason"}"#,
    printcolumn = r#"{"name":"Endpoint","type":"string","jsonPath":".status.connectionString"}"#,
    printcolumn = r#"{"name":"Port","type":"integer","jsonPath":".status.port"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("self.connectionStringPrefix == oldSelf.connectionStringPrefix || size(self.connectionStringPrefix) >= 8").message("a changed connectionStringPrefix must be 8..40 characters (ModifyDBInstanceConnectionString needs at least 8)"))]
pub struct RdsConnectionSpec {
    /// Region of the RDS instance (`RegionId`), e.g. `cn-hangzhou`. Immutable.
    #[x_kube(validation = Rule::new("self == oldSelf").message("region is immutable"))]
    #[schemars(regex(pattern = r"^[a-z]{2,}-[a-z0-9-]+$"), length(max = 64))]
    pub region: String,

    /// ID of the RDS instance, e.g. `rm-uf6wjk5xxxxxxx`. Immutable.
    #[x_kube(validation = Rule::new("self == oldSelf").message("dbInstanceId is immutable"))]
    #[schemars(regex(pattern = r"^[a-z]{1,8}-[a-z0-9]{4,64}$"))]
    pub db_instance_id: String,

    /// Prefix of the public endpoint: `<prefix>.<engine>.rds.aliyuncs.com`. 5..40 lowercase
    /// letters, digits and hyphens, starting with a letter; a changed prefix needs at least 8.
    #[schemars(
        length(min = 5, max = 40),
        regex(pattern = r"^[a-z][a-z0-9-]*[a-z0-9]$")
    )]
    pub connection_string_prefix: String,

    /// Port of the public endpoint, 1000..5999.
    #[schemars(range(min = 1000, max = 5999))]
    pub port: i32,

    /// Network type of the instance: `VPC` (default) or `Classic`; needed to release the endpoint.
    #[serde(default)]
    pub instance_network_type: InstanceNetworkType,

    /// Babelfish (TDS) port of a PostgreSQL instance with Babelfish, 1000..5999.
    #[schemars(range(min = 1000, max = 5999))]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub babelfish_port: Option<i32>,

    /// PgBouncer port of a PostgreSQL instance, 1000..5999.
    #[schemars(range(min = 1000, max = 5999))]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pg_bouncer_port: Option<i32>,

    /// `Delete` (default) releases the endpoint when the object is deleted; `Retain` keeps it.
    #[serde(default)]
    pub deletion_policy: DeletionPolicy,

    /// Take over the public endpoint the instance already has (default `false`). Without it,
    /// only an endpoint this object created (or already manages) is used: any other public
    /// endpoint on the instance, made by hand, by Terraform or by another tool, stalls the
    /// object with `EndpointExists` and is never renamed or released. With `adopt: true` the
    /// existing endpoint (the one with `connectionStringPrefix`, else the instance's public
    /// endpoint whatever its prefix) becomes this object's: it is modified to the spec's prefix
    /// and ports, and deleting the object with `deletionPolicy: Delete` releases it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub adopt: bool,

    /// Secret with Alibaba Cloud credentials in this namespace. Absent: the operator's own
    /// credentials (environment or RRSA).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_ref: Option<CredentialsRef>,

    /// Secret in this namespace that receives the endpoint (keys `host`, `port`, `endpoint`);
    /// created and owned by this object. An existing Secret the operator did not create is
    /// never overwritten: the object stalls with `SecretExists`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub write_connection_secret_to_ref: Option<LocalSecretRef>,
}

/// Network type of an RDS instance, as ReleaseInstanceConnection needs it.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum InstanceNetworkType {
    /// Virtual private cloud (`InstanceNetworkType=0`).
    #[default]
    VPC,
    /// Classic network (`InstanceNetworkType=1`).
    Classic,
}

impl InstanceNetworkType {
    /// The value of the `InstanceNetworkType` API parameter.
    pub fn as_api_str(self) -> &'static str {
        match self {
            Self::VPC => "0",
            Self::Classic => "1",
        }
    }
}

/// Observed state of an RDS public endpoint.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RdsConnectionStatus {
    /// Full public endpoint, e.g. `myapp-db.mysql.rds.aliyuncs.com`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection_string: Option<String>,
    /// Port of the public endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<i32>,
    /// IP address of the public endpoint, where RDS reports it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip_address: Option<String>,
    /// Status of the RDS instance (`Running`, `DBInstanceNetTypeChanging`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_status: Option<String>,
    /// Last time the endpoint was read from RDS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_sync_time: Option<Time>,
    /// Generation of the spec last acted upon.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Ready`, `Reconciling` and `Stalled`, per the Kubernetes API conventions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}
