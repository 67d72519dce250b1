//! [`RdsApi`] over HTTP: typed requests to RPC parameters, response JSON to typed results.

use async_trait::async_trait;
use serde_json::Value;

use crate::cloud::endpoints::Product;
use crate::cloud::rds::{
    AllocatePublicConnection, InstanceAttribute, InstanceNetInfo, ModifyConnectionString,
    NetInfoEndpoint, RdsApi,
};
use crate::cloud::transport::{AlibabaCloud, Idempotency, Params};
use crate::cloud::wire::{lenient_i64, text, wrapped_list};
use crate::cloud::{CloudError, ErrorKind, Scope};

fn port(v: &Value, key: &str) -> Option<i32> {
    v.get(key)
        .and_then(lenient_i64)
        .and_then(|n| i32::try_from(n).ok())
}

/// Reads one `DBInstanceNetInfo` entry.
pub fn parse_net_info_endpoint(v: &Value) -> NetInfoEndpoint {
    NetInfoEndpoint {
        connection_string: text(v, "ConnectionString").unwrap_or_default(),
        ip_address: text(v, "IPAddress"),
        ip_type: text(v, "IPType").unwrap_or_default(),
        port: port(v, "Port"),
        babelfish_port: port(v, "BabelfishPort"),
        pg_bouncer_port: port(v, "PGBouncerPort"),
    }
}

#[async_trait]
impl RdsApi for AlibabaCloud {
    async fn backlog(&self, scope: &Scope, action: &str) -> std::time::Duration {
        AlibabaCloud::backlog(self, &scope.credentials, action).await
    }

    async fn allocate_instance_public_connection(
        &self,
        scope: &Scope,
        req: &AllocatePublicConnection,
    ) -> Result<String, CloudError> {
        let params = Params::new()
            .set("DBInstanceId", &req.db_instance_id)
            .set("ConnectionStringPrefix", &req.connection_string_prefix)
            .set("Port", req.port)
            .opt("BabelfishPort", req.babelfish_port)
            .opt("PGBouncerPort", req.pg_bouncer_port);
        let v = self
            .call_in_scope(
                Product::Rds,
                scope,
                "AllocateInstancePublicConnection",
                params,
                Idempotency::Unsafe,
            )
            .await?;
        // Without the string the caller cannot tell what was allocated; it looks again
        // (DescribeDBInstanceNetInfo) on its next pass.
        text(&v, "ConnectionString").ok_or_else(|| {
            CloudError::local(
                "AllocateInstancePublicConnection",
                ErrorKind::Retryable,
                "response without ConnectionString",
            )
        })
    }

    async fn modify_db_instance_connection_string(
        &self,
        scope: &Scope,
        req: &ModifyConnectionString,
    ) -> Result<(), CloudError> {
        let params = Params::new()
            .set("DBInstanceId", &req.db_instance_id)
            .set("CurrentConnectionString", &req.current_connection_string)
            .set("ConnectionStringPrefix", &req.connection_string_prefix)
            .set("Port", req.port)
            .opt("BabelfishPort", req.babelfish_port)
            .opt("PGBouncerPort", req.pg_bouncer_port);
        self.call_in_scope(
            Product::Rds,
            scope,
            "ModifyDBInstanceConnectionString",
            params,
            Idempotency::Unsafe,
        )
        .await?;
        Ok(())
    }

    async fn release_instance_connection(
        &self,
        scope: &Scope,
        db_instance_id: &str,
        current_connection_string: &str,
        instance_network_type: &str,
    ) -> Result<(), CloudError> {
        let params = Params::new()
            .set("DBInstanceId", db_instance_id)
            .set("CurrentConnectionString", current_connection_string)
            .set("InstanceNetworkType", instance_network_type);
        self.call_in_scope(
            Product::Rds,
            scope,
            "ReleaseInstanceConnection",
            params,
            Idempotency::Unsafe,
        )
        .await?;
        Ok(())
    }

    async fn describe_db_instance_net_info(
        &self,
        scope: &Scope,
        db_instance_id: &str,
    ) -> Result<InstanceNetInfo, CloudError> {
        let params = Params::new().set("DBInstanceId", db_instance_id);
        let v = self
            .call_in_scope(
                Product::Rds,
                scope,
                "DescribeDBInstanceNetInfo",
                params,
                Idempotency::Safe,
            )
            .await?;
        Ok(InstanceNetInfo {
            instance_network_type: text(&v, "InstanceNetworkType"),
            endpoints: wrapped_list(&v, "DBInstanceNetInfos", "DBInstanceNetInfo")
                .into_iter()
                .map(parse_net_info_endpoint)
                .collect(),
        })
    }

    async fn describe_db_instance_attribute(
        &self,
        scope: &Scope,
        db_instance_id: &str,
    ) -> Result<InstanceAttribute, CloudError> {
        let params = Params::new().set("DBInstanceId", db_instance_id);
        let v = self
            .call_in_scope(
                Product::Rds,
                scope,
                "DescribeDBInstanceAttribute",
                params,
                Idempotency::Safe,
            )
            .await?;
        let items = wrapped_list(&v, "Items", "DBInstanceAttribute");
        let Some(item) = items.first() else {
            return Err(CloudError::local(
                "DescribeDBInstanceAttribute",
                ErrorKind::NotFound,
                format!("instance {db_instance_id} is not in the response"),
            ));
        };
        Ok(InstanceAttribute {
            db_instance_id: text(item, "DBInstanceId").unwrap_or_else(|| db_instance_id.to_owned()),
            db_instance_status: text(item, "DBInstanceStatus").unwrap_or_default(),
            lock_mode: text(item, "LockMode"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn net_info_ports_may_be_strings_or_numbers() {
        let v = serde_json::json!({
            "ConnectionString": "pfx.mysql.rds.aliyuncs.com",
            "IPAddress": "1.2.3.4",
            "IPType": "Public",
            "Port": "3306",
            "BabelfishPort": 1433
        });
        let e = parse_net_info_endpoint(&v);
        assert_eq!(e.port, Some(3306));
        assert_eq!(e.babelfish_port, Some(1433));
        assert_eq!(e.pg_bouncer_port, None);
        assert_eq!(e.ip_type, "Public");
    }
}
