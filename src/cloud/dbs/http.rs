//! [`DbsApi`] over HTTP: typed requests to RPC parameters, response JSON to typed results,
//! with DBS's case quirks normalised.

use async_trait::async_trait;
use serde_json::Value;

use crate::cloud::dbs::{
    BackupPlanBilling, BackupPlanDetail, BackupPlanPage, ConfigureBackupPlan, CreateBackupPlan,
    CreatedBackupPlan, DbsApi, DescribeBackupPlanList, ModifyBackupSourceEndpoint,
    ModifyBackupStrategy, ModifyOutcome, ModifyStorageStrategy, PlanStatus, SourceEndpoint,
    StopMethod,
};
use crate::cloud::endpoints::Product;
use crate::cloud::transport::{AlibabaCloud, Idempotency, Params};
use crate::cloud::wire::{lenient_bool, lenient_i64, text, wrapped_list};
use crate::cloud::{CloudError, Credentials, ErrorKind, Principal, Scope};

/// `SourceEndpointInstanceType` in request case; Describe returns these lower-cased.
const ENDPOINT_TYPES: &[&str] = &["RDS", "ECS", "Express", "Agent", "DDS", "Other", "dg"];

/// Maps a described `SourceEndpointInstanceType` (`rds`, `express`, ...) to request case
/// (`RDS`, `Express`, ...); unknown values pass through unchanged.
pub fn normalize_endpoint_type(value: &str) -> String {
    ENDPOINT_TYPES
        .iter()
        .find(|t| t.eq_ignore_ascii_case(value.trim()))
        .map_or_else(|| value.to_owned(), |t| (*t).to_owned())
}

/// Maps a described `BackupPeriod` (`MONDAY,THURSDAY`) to request case (`Monday,Thursday`).
pub fn normalize_backup_period(value: &str) -> String {
    value
        .split(',')
        .map(|day| {
            let day = day.trim().to_ascii_lowercase();
            let mut chars = day.chars();
            match chars.next() {
                Some(first) => first.to_ascii_uppercase().to_string() + chars.as_str(),
                None => String::new(),
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

fn int(v: &Value, key: &str) -> Option<i64> {
    v.get(key).and_then(lenient_i64)
}

fn int32(v: &Value, key: &str) -> Option<i32> {
    int(v, key).and_then(|n| i32::try_from(n).ok())
}

fn flag(v: &Value, key: &str) -> Option<bool> {
    v.get(key).and_then(lenient_bool)
}

fn source_params(p: Params, s: &SourceEndpoint) -> Params {
    p.non_empty("SourceEndpointInstanceType", &s.instance_type)
        .opt("SourceEndpointRegion", s.region.as_deref())
        .opt("SourceEndpointInstanceID", s.instance_id.as_deref())
        .opt("SourceEndpointIP", s.ip.as_deref())
        .opt("SourceEndpointPort", s.port)
        .opt("SourceEndpointDatabaseName", s.database_name.as_deref())
        .opt("SourceEndpointUserName", s.user_name.as_deref())
        .opt("SourceEndpointPassword", s.password.as_deref())
        .opt("SourceEndpointOracleSID", s.oracle_sid.as_deref())
        .opt("BackupGatewayId", s.backup_gateway_id)
}

fn idempotency(client_token: Option<&str>) -> Idempotency {
    match client_token {
        Some(t) if !t.is_empty() => Idempotency::Safe,
        _ => Idempotency::Unsafe,
    }
}

/// Reads one `BackupPlanDetail`, normalising enum case.
pub fn parse_plan_detail(v: &Value) -> BackupPlanDetail {
    BackupPlanDetail {
        backup_plan_id: text(v, "BackupPlanId").unwrap_or_default(),
        backup_plan_name: text(v, "BackupPlanName").unwrap_or_default(),
        backup_plan_status: PlanStatus::parse(&text(v, "BackupPlanStatus").unwrap_or_default()),
        backup_plan_create_time: int(v, "BackupPlanCreateTime"),
        backup_method: text(v, "BackupMethod").unwrap_or_default(),
        database_type: text(v, "DatabaseType").unwrap_or_default(),
        instance_class: text(v, "InstanceClass").unwrap_or_default(),
        backup_objects: text(v, "BackupObjects"),
        backup_period: text(v, "BackupPeriod").map(|p| normalize_backup_period(&p)),
        backup_start_time: text(v, "BackupStartTime"),
        backup_retention_period: int32(v, "BackupRetentionPeriod"),
        duplication_infrequent_access_period: int32(v, "DuplicationInfrequentAccessPeriod"),
        duplication_archive_period: int32(v, "DuplicationArchivePeriod"),
        backup_storage_type: text(v, "BackupStorageType"),
        oss_bucket_name: text(v, "OSSBucketName"),
        enable_backup_log: flag(v, "EnableBackupLog"),
        source_endpoint_instance_type: text(v, "SourceEndpointInstanceType")
            .map(|t| normalize_endpoint_type(&t)),
        source_endpoint_instance_id: text(v, "SourceEndpointInstanceID"),
        source_endpoint_region: text(v, "SourceEndpointRegion"),
        source_endpoint_ip_port: text(v, "SourceEndpointIpPort"),
        source_endpoint_database_name: text(v, "SourceEndpointDatabaseName"),
        source_endpoint_user_name: text(v, "SourceEndpointUserName"),
        source_endpoint_oracle_sid: text(v, "SourceEndpointOracleSID"),
        // DBS describes "no gateway" as 0.
        backup_gateway_id: int(v, "BackupGatewayId").filter(|id| *id != 0),
        err_message: text(v, "ErrMessage"),
    }
}

fn modify_outcome(v: &Value) -> ModifyOutcome {
    ModifyOutcome {
        need_precheck: flag(v, "NeedPrecheck").unwrap_or(false),
    }
}

#[async_trait]
impl DbsApi for AlibabaCloud {
    async fn turn(&self, scope: &Scope, action: &str) -> std::time::Duration {
        AlibabaCloud::turn(self, &scope.credentials, action).await
    }

    async fn create_backup_plan(
        &self,
        scope: &Scope,
        req: &CreateBackupPlan,
    ) -> Result<CreatedBackupPlan, CloudError> {
        let params = Params::new()
            .non_empty("InstanceClass", &req.instance_class)
            .non_empty("DatabaseType", &req.database_type)
            .non_empty("BackupMethod", &req.backup_method)
            .non_empty("PayType", &req.pay_type)
            .opt("Period", req.period.as_deref())
            .opt("UsedTime", req.used_time)
            .opt("DatabaseRegion", req.database_region.as_deref())
            .opt("StorageRegion", req.storage_region.as_deref())
            .opt("InstanceType", req.instance_type.as_deref())
            .opt("ClientToken", req.client_token.as_deref());
        let idem = idempotency(req.client_token.as_deref());
        let v = self
            .call_in_scope(Product::Dbs, scope, "CreateBackupPlan", params, idem)
            .await?;
        let backup_plan_id = text(&v, "BackupPlanId").ok_or_else(|| {
            CloudError::local(
                "CreateBackupPlan",
                ErrorKind::Retryable,
                "response without BackupPlanId",
            )
        })?;
        Ok(CreatedBackupPlan {
            backup_plan_id,
            order_id: text(&v, "OrderId"),
        })
    }

    async fn configure_backup_plan(
        &self,
        scope: &Scope,
        req: &ConfigureBackupPlan,
    ) -> Result<(), CloudError> {
        let params = Params::new()
            .set("BackupPlanId", &req.backup_plan_id)
            .set("BackupPlanName", &req.backup_plan_name);
        let params = source_params(params, &req.source)
            .opt("BackupObjects", req.backup_objects.as_deref())
            .opt("BackupPeriod", req.backup_period.as_deref())
            .opt("BackupStartTime", req.backup_start_time.as_deref())
            .opt("BackupStrategyType", req.backup_strategy_type.as_deref())
            .opt("EnableBackupLog", req.enable_backup_log)
            .opt("BackupLogIntervalSeconds", req.backup_log_interval_seconds)
            .opt("BackupRetentionPeriod", req.backup_retention_period)
            .opt(
                "DuplicationInfrequentAccessPeriod",
                req.duplication_infrequent_access_period,
            )
            .opt("DuplicationArchivePeriod", req.duplication_archive_period)
            .opt("BackupStorageType", req.backup_storage_type.as_deref())
            .opt("OSSBucketName", req.oss_bucket_name.as_deref())
            .opt("ClientToken", req.client_token.as_deref());
        let idem = idempotency(req.client_token.as_deref());
        self.call_in_scope(Product::Dbs, scope, "ConfigureBackupPlan", params, idem)
            .await?;
        Ok(())
    }

    async fn start_backup_plan(
        &self,
        scope: &Scope,
        backup_plan_id: &str,
        client_token: Option<&str>,
    ) -> Result<(), CloudError> {
        let params = Params::new()
            .set("BackupPlanId", backup_plan_id)
            .opt("ClientToken", client_token);
        self.call_in_scope(
            Product::Dbs,
            scope,
            "StartBackupPlan",
            params,
            idempotency(client_token),
        )
        .await?;
        Ok(())
    }

    async fn stop_backup_plan(
        &self,
        scope: &Scope,
        backup_plan_id: &str,
        stop_method: StopMethod,
    ) -> Result<(), CloudError> {
        let params = Params::new()
            .set("BackupPlanId", backup_plan_id)
            .set("StopMethod", stop_method.as_str());
        self.call_in_scope(
            Product::Dbs,
            scope,
            "StopBackupPlan",
            params,
            Idempotency::Unsafe,
        )
        .await?;
        Ok(())
    }

    async fn describe_backup_plan_list(
        &self,
        scope: &Scope,
        req: &DescribeBackupPlanList,
    ) -> Result<BackupPlanPage, CloudError> {
        let params = Params::new()
            .opt("BackupPlanId", req.backup_plan_id.as_deref())
            .opt("BackupPlanName", req.backup_plan_name.as_deref())
            .opt("BackupPlanStatus", req.backup_plan_status.as_deref())
            .set("PageNum", req.page_num)
            .opt("PageSize", (req.page_size > 0).then_some(req.page_size));
        let v = self
            .call_in_scope(
                Product::Dbs,
                scope,
                "DescribeBackupPlanList",
                params,
                Idempotency::Safe,
            )
            .await?;
        let items: Vec<BackupPlanDetail> = wrapped_list(&v, "Items", "BackupPlanDetail")
            .into_iter()
            .map(parse_plan_detail)
            .collect();
        let count = |key| int(&v, key).and_then(|n| u32::try_from(n).ok());
        Ok(BackupPlanPage {
            page_num: count("PageNum").unwrap_or(req.page_num),
            page_size: count("PageSize").unwrap_or(req.page_size),
            total_elements: int(&v, "TotalElements")
                .and_then(|n| u64::try_from(n).ok())
                .unwrap_or(items.len() as u64),
            total_pages: count("TotalPages").unwrap_or(1),
            items,
        })
    }

    async fn modify_backup_strategy(
        &self,
        scope: &Scope,
        req: &ModifyBackupStrategy,
    ) -> Result<ModifyOutcome, CloudError> {
        let params = Params::new()
            .set("BackupPlanId", &req.backup_plan_id)
            .set("BackupPeriod", &req.backup_period)
            .opt("BackupStartTime", req.backup_start_time.as_deref())
            .opt("BackupStrategyType", req.backup_strategy_type.as_deref())
            .opt("BackupLogIntervalSeconds", req.backup_log_interval_seconds);
        let v = self
            .call_in_scope(
                Product::Dbs,
                scope,
                "ModifyBackupStrategy",
                params,
                Idempotency::Unsafe,
            )
            .await?;
        Ok(modify_outcome(&v))
    }

    async fn modify_storage_strategy(
        &self,
        scope: &Scope,
        req: &ModifyStorageStrategy,
    ) -> Result<ModifyOutcome, CloudError> {
        let params = Params::new()
            .set("BackupPlanId", &req.backup_plan_id)
            .set("BackupRetentionPeriod", req.backup_retention_period)
            .set(
                "DuplicationInfrequentAccessPeriod",
                req.duplication_infrequent_access_period,
            )
            .set("DuplicationArchivePeriod", req.duplication_archive_period);
        let v = self
            .call_in_scope(
                Product::Dbs,
                scope,
                "ModifyStorageStrategy",
                params,
                Idempotency::Unsafe,
            )
            .await?;
        Ok(modify_outcome(&v))
    }

    async fn modify_backup_source_endpoint(
        &self,
        scope: &Scope,
        req: &ModifyBackupSourceEndpoint,
    ) -> Result<ModifyOutcome, CloudError> {
        let params = Params::new().set("BackupPlanId", &req.backup_plan_id);
        let params =
            source_params(params, &req.source).opt("BackupObjects", req.backup_objects.as_deref());
        let v = self
            .call_in_scope(
                Product::Dbs,
                scope,
                "ModifyBackupSourceEndpoint",
                params,
                Idempotency::Unsafe,
            )
            .await?;
        Ok(modify_outcome(&v))
    }

    async fn modify_backup_objects(
        &self,
        scope: &Scope,
        backup_plan_id: &str,
        backup_objects: &str,
    ) -> Result<ModifyOutcome, CloudError> {
        let params = Params::new()
            .set("BackupPlanId", backup_plan_id)
            .set("BackupObjects", backup_objects);
        let v = self
            .call_in_scope(
                Product::Dbs,
                scope,
                "ModifyBackupObjects",
                params,
                Idempotency::Unsafe,
            )
            .await?;
        Ok(modify_outcome(&v))
    }

    async fn modify_backup_plan_name(
        &self,
        scope: &Scope,
        backup_plan_id: &str,
        name: &str,
    ) -> Result<(), CloudError> {
        let params = Params::new()
            .set("BackupPlanId", backup_plan_id)
            .set("BackupPlanName", name);
        self.call_in_scope(
            Product::Dbs,
            scope,
            "ModifyBackupPlanName",
            params,
            Idempotency::Unsafe,
        )
        .await?;
        Ok(())
    }

    async fn release_backup_plan(
        &self,
        scope: &Scope,
        backup_plan_id: &str,
    ) -> Result<(), CloudError> {
        let params = Params::new().set("BackupPlanId", backup_plan_id);
        self.call_in_scope(
            Product::Dbs,
            scope,
            "ReleaseBackupPlan",
            params,
            Idempotency::Unsafe,
        )
        .await?;
        Ok(())
    }

    async fn describe_backup_plan_billing(
        &self,
        scope: &Scope,
        backup_plan_id: &str,
    ) -> Result<BackupPlanBilling, CloudError> {
        let params = Params::new().set("BackupPlanId", backup_plan_id);
        let v = self
            .call_in_scope(
                Product::Dbs,
                scope,
                "DescribeBackupPlanBilling",
                params,
                Idempotency::Safe,
            )
            .await?;
        let item = v.get("Item").cloned().unwrap_or(Value::Null);
        Ok(BackupPlanBilling {
            buy_charge_type: text(&item, "BuyChargeType")
                .unwrap_or_default()
                .to_ascii_uppercase(),
            buy_expired_timestamp: int(&item, "BuyExpiredTimestamp"),
            is_expired: flag(&item, "IsExpired"),
        })
    }

    async fn principal(&self, credentials: &Credentials) -> Principal {
        AlibabaCloud::principal(self, credentials).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_types_come_back_in_request_case() {
        for (described, want) in [
            ("rds", "RDS"),
            ("ecs", "ECS"),
            ("express", "Express"),
            ("agent", "Agent"),
            ("dds", "DDS"),
            ("other", "Other"),
            ("RDS", "RDS"),
            ("dg", "dg"),
            ("polardb", "polardb"),
        ] {
            assert_eq!(normalize_endpoint_type(described), want);
        }
    }

    #[test]
    fn weekdays_come_back_in_title_case() {
        assert_eq!(
            normalize_backup_period("MONDAY,THURSDAY"),
            "Monday,Thursday"
        );
        assert_eq!(normalize_backup_period("Monday, sunday"), "Monday,Sunday");
        assert_eq!(normalize_backup_period("FRIDAY"), "Friday");
    }

    #[test]
    fn plan_detail_is_lenient_and_normalised() {
        let v = serde_json::json!({
            "BackupPlanId": "dbs1",
            "BackupPlanStatus": "running",
            "BackupPlanCreateTime": "1700000000000",
            "BackupPeriod": "MONDAY,THURSDAY",
            "BackupRetentionPeriod": "730",
            "EnableBackupLog": "true",
            "SourceEndpointInstanceType": "rds",
            "SourceEndpointInstanceID": "rm-1",
            "SourceEndpointIpPort": "10.0.0.1:3306",
            "BackupGatewayId": 0,
            "OSSBucketName": "b"
        });
        let d = parse_plan_detail(&v);
        assert_eq!(d.backup_plan_id, "dbs1");
        assert_eq!(d.backup_plan_create_time, Some(1_700_000_000_000));
        assert_eq!(d.backup_period.as_deref(), Some("Monday,Thursday"));
        assert_eq!(d.backup_retention_period, Some(730));
        assert_eq!(d.enable_backup_log, Some(true));
        assert_eq!(d.source_endpoint_instance_type.as_deref(), Some("RDS"));
        assert_eq!(d.source_endpoint_instance_id.as_deref(), Some("rm-1"));
        assert_eq!(d.backup_gateway_id, None);
        assert_eq!(d.oss_bucket_name.as_deref(), Some("b"));
    }

    #[test]
    fn source_params_never_show_the_password_in_debug() {
        let s = SourceEndpoint {
            instance_type: "RDS".into(),
            password: Some("p4ssw0rd-secret".into()),
            port: Some(3306),
            ..Default::default()
        };
        let p = source_params(Params::new(), &s);
        assert!(p.has("SourceEndpointPassword"));
        assert!(!format!("{p:?}").contains("p4ssw0rd-secret"));
        assert!(
            p.to_pairs()
                .contains(&("SourceEndpointPort".into(), "3306".into()))
        );
    }
}
