//! Admin API: state shape, faults, quotas, out-of-band changes.

use serde_json::json;

use crate::common::*;

#[tokio::test]
async fn state_lists_plans_instances_and_calls_without_passwords() {
    let (emu, c) = start_client().await;
    let id = create_plan(&c, &[("ClientToken", "ct-9")]).await;
    configure_plan(&c, &id, &[]).await;
    let state = admin_ok(&emu, "GET", "/state", None).await;
    let plan = &state["plans"][0];
    for key in [
        "backupPlanId",
        "accountId",
        "region",
        "name",
        "status",
        "payType",
        "clientToken",
        "orderId",
        "databaseType",
        "instanceClass",
        "backupMethod",
        "createdAtMs",
        "configuredAtMs",
        "backupPeriod",
        "backupStartTime",
        "backupStrategyType",
        "backupRetentionPeriod",
        "duplicationInfrequentAccessPeriod",
        "duplicationArchivePeriod",
        "sourceEndpointInstanceType",
        "sourceEndpointInstanceId",
        "sourceEndpointRegion",
        "sourceEndpointIp",
        "sourceEndpointPort",
        "sourceEndpointDatabaseName",
        "sourceEndpointUserName",
        "backupObjects",
        "enableBackupLog",
        "backupStorageType",
        "ossBucketName",
        "sourceEndpointPasswordSet",
    ] {
        assert!(plan.get(key).is_some(), "plan lacks {key}: {plan}");
    }
    assert_eq!(plan["payType"], "postpay");
    assert_eq!(plan["clientToken"], "ct-9");
    assert_eq!(plan["sourceEndpointPasswordSet"], true);
    assert!(!state.to_string().contains("s3cret-pw"));
    let inst = &state["instances"][0];
    assert_eq!(inst["dbInstanceId"], "rm-test1");
    assert_eq!(inst["status"], "Running");
    assert_eq!(inst["networkType"], "VPC");
    assert_eq!(inst["connections"][0]["ipType"], "Private");
    let call = &state["calls"][0];
    assert_eq!(call["action"], "CreateBackupPlan");
    assert_eq!(call["product"], "dbs");
    assert_eq!(call["accessKeyId"], AK);
    assert_eq!(call["outcome"], "Success");
    assert_eq!(call["httpStatus"], 200);
    assert!(call["userAgent"].is_string(), "{call}");
    assert!(call["timeMs"].as_i64().unwrap_or(0) > 0);
    admin_ok(&emu, "DELETE", "/calls", None).await;
    assert_eq!(emu.state()["calls"].as_array().map(Vec::len), Some(0));
    emu.shutdown().await;
}

#[tokio::test]
async fn the_typed_snapshot_is_the_admin_state() {
    let (emu, c) = start_client().await;
    let id = create_plan(&c, &[("ClientToken", "ct-typed")]).await;
    configure_plan(&c, &id, &[]).await;
    let (_, state) = admin(&emu, "GET", "/state", None).await;
    let snapshot = emu.snapshot();
    assert_eq!(serde_json::to_value(&snapshot).ok(), Some(state));
    let plan = snapshot.plan(&id).expect("the plan is listed");
    assert_eq!(plan.client_token.as_deref(), Some("ct-typed"));
    assert!(plan.source_endpoint_password_set);
    assert_eq!(snapshot.calls_of("CreateBackupPlan").count(), 1);
    assert!(snapshot.public_connections(Some("rm-test1")).is_empty());
    emu.shutdown().await;
}

#[tokio::test]
async fn fault_rate_one_fails_every_call_and_one_shots_fail_next_n() {
    let (emu, c) = start_client().await;
    let always = json!({"errorRate": 1.0});
    admin(&emu, "PUT", "/faults/DescribeBackupPlanList", Some(always)).await;
    for _ in 0..3 {
        let r = c.dbs("DescribeBackupPlanList", &[]).await;
        r.assert_code(503, "ServiceUnavailable");
    }
    assert_eq!(c.net_info("rm-test1").await.status, 200);
    admin(&emu, "DELETE", "/faults", None).await;
    assert_eq!(c.dbs("DescribeBackupPlanList", &[]).await.status, 200);
    let twice = json!({"code": "InternalError", "httpStatus": 500, "count": 2});
    admin_ok(&emu, "POST", "/faults/*/once", Some(twice)).await;
    assert_eq!(
        c.dbs("DescribeBackupPlanList", &[]).await.code(),
        "InternalError"
    );
    assert_eq!(c.net_info("rm-test1").await.code(), "InternalError");
    assert_eq!(c.dbs("DescribeBackupPlanList", &[]).await.status, 200);
    // Faults apply only after signature verification.
    admin(
        &emu,
        "PUT",
        "/faults/*",
        Some(json!({"errorRate": 1.0, "code": "Boom", "httpStatus": 500})),
    )
    .await;
    let r = c
        .with_key("nobody", "x", None)
        .dbs("DescribeBackupPlanList", &[])
        .await;
    assert_eq!(r.code(), "InvalidAccessKeyId.NotFound");
    emu.shutdown().await;
}

#[tokio::test]
async fn a_fault_rule_with_an_account_id_affects_only_that_accounts_calls() {
    let (emu, c) = start_client().await;
    let other = json!({"accessKeyId": "ak-other", "accessKeySecret": "other-secret"});
    admin_ok(&emu, "POST", "/accounts", Some(other)).await;
    let b = c.with_key("ak-other", "other-secret", None);
    let fail_b =
        json!({"accountId": "ak-other", "errorRate": 1.0, "code": "Boom", "httpStatus": 500});
    admin_ok(&emu, "PUT", "/faults/*", Some(fail_b)).await;
    b.dbs("DescribeBackupPlanList", &[])
        .await
        .assert_code(500, "Boom");
    assert_eq!(c.dbs("DescribeBackupPlanList", &[]).await.status, 200);
    // The account's rule wins over the rule of every account, whichever came first.
    let slow_all = json!({"latencyMs": 300, "errorRate": 1.0, "code": "Everyone"});
    admin_ok(
        &emu,
        "PUT",
        "/faults/DescribeBackupPlanList",
        Some(slow_all),
    )
    .await;
    b.dbs("DescribeBackupPlanList", &[])
        .await
        .assert_code(500, "Boom");
    let started = std::time::Instant::now();
    c.dbs("DescribeBackupPlanList", &[])
        .await
        .assert_code(503, "Everyone");
    assert!(started.elapsed() >= std::time::Duration::from_millis(300));
    let (status, _) = admin(&emu, "PUT", "/faults/*", Some(json!({"accountId": ""}))).await;
    assert_eq!(status, 400, "an empty accountId is refused");
    emu.shutdown().await;
}

#[tokio::test]
async fn exceeding_a_quota_returns_throttling_user() {
    let (emu, c) = start_client().await;
    let quota = json!({"perSecond": 2});
    admin_ok(&emu, "PUT", "/quotas/DescribeBackupPlanList", Some(quota)).await;
    let mut codes = Vec::new();
    for _ in 0..6 {
        codes.push(c.dbs("DescribeBackupPlanList", &[]).await);
    }
    let throttled: Vec<&Resp> = codes
        .iter()
        .filter(|r| r.code() == "Throttling.User")
        .collect();
    assert!(!throttled.is_empty(), "no call was throttled");
    assert_eq!(throttled[0].status, 400);
    assert_eq!(
        throttled[0].body["Message"],
        "Request was denied due to user flow control."
    );
    emu.shutdown().await;
}

#[tokio::test]
async fn out_of_band_plan_changes_show_up_in_describe() {
    let (emu, c) = start_client().await;
    let id = create_plan(&c, &[]).await;
    configure_plan(&c, &id, &[]).await;
    let drift = json!({"name": "drifted", "backupPeriod": "Sunday", "status": "pause"});
    admin_ok(&emu, "PATCH", &format!("/plans/{id}"), Some(drift)).await;
    let r = c.describe_plan(&id).await;
    let d = &r.body["Items"]["BackupPlanDetail"][0];
    assert_eq!(
        (
            d["BackupPlanName"].clone(),
            d["BackupPeriod"].clone(),
            d["BackupPlanStatus"].clone()
        ),
        (json!("drifted"), json!("SUNDAY"), json!("pause"))
    );
    admin_ok(&emu, "DELETE", &format!("/plans/{id}"), None).await;
    let r = c.describe_plan(&id).await;
    assert_eq!(r.body["TotalElements"], 0);
    assert_eq!(emu.state()["plans"].as_array().map(Vec::len), Some(0));
    let instance = json!({"region": "cn-beijing", "dbInstanceId": "rm-new", "engine": "PostgreSQL", "networkType": "Classic"});
    admin_ok(&emu, "POST", "/instances", Some(instance)).await;
    let r = c.net_info("rm-new").await;
    assert_eq!(r.body["InstanceNetworkType"], "Classic");
    emu.shutdown().await;
}
