//! DescribeBackupPlanList and DescribeBackupPlanBilling.

use chrono::{DateTime, Months};
use serde_json::{Map, Value, json};

use super::params::{self, required};
use super::{DbsResult, objects, plan_mut, precheck};
use crate::auth::Principal;
use crate::state::{Plan, State};
use crate::wire::{Params, now_ms};

/// One `BackupPlanDetail` with the documented casing quirks, normalised as DBS plausibly does:
/// `BackupObjects` re-serialised, `SourceEndpointRegion` defaulting to the plan's region.
fn detail(plan: &Plan) -> Value {
    let ip_port = match (&plan.source_endpoint_ip, plan.source_endpoint_port) {
        (Some(ip), Some(port)) => format!("{ip}:{port}"),
        (Some(ip), None) => ip.clone(),
        (None, Some(port)) => format!(":{port}"),
        (None, None) => String::new(),
    };
    let s = |v: &Option<String>| v.clone().unwrap_or_default();
    let source_region = match (
        &plan.source_endpoint_region,
        &plan.source_endpoint_instance_type,
    ) {
        (Some(region), _) => region.clone(),
        (None, Some(_)) => plan.region.clone(),
        (None, None) => String::new(),
    };
    json!({
        "BackupPlanId": plan.backup_plan_id,
        "BackupPlanName": plan.name,
        "BackupPlanStatus": plan.status,
        "BackupPlanCreateTime": plan.created_at_ms,
        "BackupMethod": plan.backup_method,
        "BackupObjects": plan.backup_objects.as_deref().map(objects::normalise).unwrap_or_default(),
        "BackupPeriod": s(&plan.backup_period).to_ascii_uppercase(),
        "BackupStartTime": s(&plan.backup_start_time),
        "BackupRetentionPeriod": plan.backup_retention_period,
        "BackupStorageType": s(&plan.backup_storage_type),
        "BackupGatewayId": plan.backup_gateway_id,
        "DatabaseType": plan.database_type,
        "InstanceClass": plan.instance_class,
        "EnableBackupLog": plan.enable_backup_log,
        "DuplicationArchivePeriod": plan.duplication_archive_period,
        "DuplicationInfrequentAccessPeriod": plan.duplication_infrequent_access_period,
        "OSSBucketName": s(&plan.oss_bucket_name),
        "OSSBucketRegion": plan.region,
        "SourceEndpointInstanceType": s(&plan.source_endpoint_instance_type).to_ascii_lowercase(),
        "SourceEndpointInstanceID": s(&plan.source_endpoint_instance_id),
        "SourceEndpointIpPort": ip_port,
        "SourceEndpointRegion": source_region,
        "SourceEndpointDatabaseName": s(&plan.source_endpoint_database_name),
        "SourceEndpointUserName": s(&plan.source_endpoint_user_name),
        "SourceEndpointOracleSID": s(&plan.source_endpoint_oracle_sid),
        "CrossAliyunId": s(&plan.cross_aliyun_id),
        "CrossRoleName": s(&plan.cross_role_name),
        "ResourceGroupId": s(&plan.resource_group_id),
        "BeginTimestampForRestore": 0,
        "EndTimestampForRestore": 0,
        "ErrMessage": plan.err_message,
    })
}

/// DescribeBackupPlanList: filters, 0-based paging, released plans hidden, and plans younger
/// than the describe lag not listed yet.
pub fn list(state: &mut State, who: &Principal, p: &Params) -> DbsResult {
    let page_num = params::int_in(p, "PageNum", 0, i64::from(i32::MAX))?.unwrap_or(0);
    let page_size = params::int_in(p, "PageSize", 1, 100)?.unwrap_or(30);
    let status = params::one_of(p, "BackupPlanStatus", params::STATUSES)?;
    let ids: Option<Vec<&str>> = p.get("BackupPlanId").map(|v| {
        v.split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .collect()
    });
    let name = p.get("BackupPlanName");
    let region = p.get("Region");
    let now = now_ms();
    let lag = state.settings.describe_lag_ms;
    for plan in state.plans.values_mut() {
        precheck::settle(plan, now);
    }
    let mut plans: Vec<&Plan> = state
        .plans
        .values()
        .filter(|pl| pl.account_id == who.account_id && pl.status != "released")
        .filter(|pl| now - pl.created_at_ms >= lag)
        .filter(|pl| region.is_none_or(|r| pl.region == r))
        .filter(|pl| {
            ids.as_ref()
                .is_none_or(|ids| ids.contains(&pl.backup_plan_id.as_str()))
        })
        .filter(|pl| name.is_none_or(|n| pl.name == n))
        .filter(|pl| status.as_ref().is_none_or(|s| &pl.status == s))
        .collect();
    plans.sort_by_key(|pl| pl.seq);
    let total = i64::try_from(plans.len()).unwrap_or(i64::MAX);
    let skip = usize::try_from(page_num.saturating_mul(page_size)).unwrap_or(usize::MAX);
    let take = usize::try_from(page_size).unwrap_or(100);
    let items: Vec<Value> = plans
        .iter()
        .skip(skip)
        .take(take)
        .map(|pl| detail(pl))
        .collect();
    let mut m = Map::new();
    m.insert("PageNum".into(), json!(page_num));
    m.insert("PageSize".into(), json!(page_size));
    m.insert("TotalElements".into(), json!(total));
    m.insert(
        "TotalPages".into(),
        json!((total + page_size - 1) / page_size),
    );
    m.insert("Items".into(), json!({ "BackupPlanDetail": items }));
    Ok(m)
}

/// End of a subscription, epoch ms.
fn expiry_ms(plan: &Plan) -> i64 {
    let months = match (plan.period.as_deref(), plan.used_time) {
        (Some("Year"), Some(n)) => n * 12,
        (_, Some(n)) => n,
        _ => 1,
    };
    DateTime::from_timestamp_millis(plan.created_at_ms)
        .and_then(|t| t.checked_add_months(Months::new(u32::try_from(months).unwrap_or(1))))
        .map_or(plan.created_at_ms, |t| t.timestamp_millis())
}

/// DescribeBackupPlanBilling: `Item{BuyChargeType, ...}`.
pub fn billing(state: &mut State, who: &Principal, p: &Params, now_ms: i64) -> DbsResult {
    let id = required(p, "BackupPlanId")?;
    params::boolean(p, "ShowStorageType")?;
    let plan = plan_mut(state, who, id)?;
    let prepay = plan.pay_type == "prepay";
    let mut item = json!({
        "BuyChargeType": if prepay { "PREPAY" } else { "POSTPAY" },
        "BuyCreateTimestamp": plan.created_at_ms,
        "BuySpec": plan.instance_class,
        "IsExpired": false,
        "IsFreeBytesUnlimited": false,
        "TotalFreeBytes": 0,
        "PaiedBytes": 0,
        "UsedFullBytes": 0,
        "UsedIncrementBytes": 0,
        "FullStorageSize": 0,
        "ContStorageSize": 0,
        "QuotaStartTimestamp": plan.created_at_ms,
        "QuotaEndTimestamp": 0,
    });
    if prepay {
        let end = expiry_ms(plan);
        item["BuyExpiredTimestamp"] = json!(end);
        item["IsExpired"] = json!(now_ms >= end);
        item["QuotaEndTimestamp"] = json!(end);
    }
    let mut m = Map::new();
    m.insert("Item".into(), item);
    Ok(m)
}
