//! Requests: the spec (and what RDS reported) as API request values. No decisions.

use crate::cloud::rds::{
    AllocatePublicConnection, InstanceNetInfo, ModifyConnectionString, NetInfoEndpoint,
};
use crate::crd::{InstanceNetworkType, RdsConnectionSpec};

/// `AllocateInstancePublicConnection` for the spec.
pub fn allocate(spec: &RdsConnectionSpec) -> AllocatePublicConnection {
    AllocatePublicConnection {
        db_instance_id: spec.db_instance_id.clone(),
        connection_string_prefix: spec.connection_string_prefix.clone(),
        port: spec.port,
        babelfish_port: spec.babelfish_port,
        pg_bouncer_port: spec.pg_bouncer_port,
    }
}

/// `ModifyDBInstanceConnectionString` bringing `endpoint` to the spec.
pub fn modify(spec: &RdsConnectionSpec, endpoint: &NetInfoEndpoint) -> ModifyConnectionString {
    ModifyConnectionString {
        db_instance_id: spec.db_instance_id.clone(),
        current_connection_string: endpoint.connection_string.clone(),
        connection_string_prefix: spec.connection_string_prefix.clone(),
        port: spec.port,
        babelfish_port: spec.babelfish_port,
        pg_bouncer_port: spec.pg_bouncer_port,
    }
}

/// `InstanceNetworkType` of the release call: the instance's network type as
/// `DescribeDBInstanceNetInfo` reports it, else the spec's. RDS refuses a release naming the
/// wrong type, so trusting a mistaken spec would leave the endpoint behind on every deletion.
pub fn release_network_type(spec: &RdsConnectionSpec, net_info: &InstanceNetInfo) -> &'static str {
    match net_info.instance_network_type.as_deref() {
        Some(t) if t.eq_ignore_ascii_case("VPC") => InstanceNetworkType::VPC.as_api_str(),
        Some(t) if t.eq_ignore_ascii_case("Classic") => InstanceNetworkType::Classic.as_api_str(),
        _ => spec.instance_network_type.as_api_str(),
    }
}
