//! DBS rules: generic error codes, ClientToken idempotency, describe normalisation and lag.

use std::time::Duration;

use alicloud_emulator::EmulatorConfig;
use serde_json::json;

use crate::common::*;

#[tokio::test]
async fn actions_on_a_never_configured_plan_are_incorrect_status() {
    let (emu, c) = start_client().await;
    let id = create_plan(&c, &[]).await;
    let cases: [(&str, Vec<(&str, &str)>); 5] = [
        ("StartBackupPlan", vec![]),
        ("StopBackupPlan", vec![("StopMethod", "ALL")]),
        ("ModifyBackupStrategy", vec![("BackupPeriod", "Monday")]),
        (
            "ModifyStorageStrategy",
            vec![
                ("BackupRetentionPeriod", "400"),
                ("DuplicationInfrequentAccessPeriod", "100"),
                ("DuplicationArchivePeriod", "200"),
            ],
        ),
        ("ModifyBackupObjects", vec![("BackupObjects", "[]")]),
    ];
    for (action, extra) in cases {
        let mut params = vec![("BackupPlanId", id.as_str())];
        params.extend(extra);
        let r = c.dbs(action, &params).await;
        assert_eq!(r.code(), "IncorrectStatus", "{action}: {}", r.body);
    }
    let outcomes: Vec<String> = emu
        .snapshot()
        .calls
        .iter()
        .map(|call| call.outcome.clone())
        .collect();
    assert!(
        !outcomes
            .iter()
            .any(|o| o == "BackupPlanNotConfigured" || o == "BackupPlanNotReady"),
        "{outcomes:?}"
    );
    emu.shutdown().await;
}

#[tokio::test]
async fn a_client_token_reused_with_other_parameters_is_idempotent_parameter_mismatch() {
    let (emu, c) = start_client().await;
    let first = c
        .dbs(
            "CreateBackupPlan",
            &merged(POSTPAY_PLAN, &[("ClientToken", "tok-7")]),
        )
        .await;
    assert_eq!(first.body["Success"], true, "{}", first.body);
    let bigger = merged(
        POSTPAY_PLAN,
        &[("ClientToken", "tok-7"), ("InstanceClass", "large")],
    );
    let r = c.dbs("CreateBackupPlan", &bigger).await;
    assert_eq!(r.code(), "IdempotentParameterMismatch", "{}", r.body);
    let message = r.body["ErrMessage"]
        .as_str()
        .or_else(|| r.body["Message"].as_str())
        .unwrap_or("");
    assert_eq!(
        message,
        "The request uses the same client token as a previous, but non-identical request."
    );
    // Leaving out an optional parameter is a difference too.
    let r = c
        .dbs(
            "CreateBackupPlan",
            &merged(
                &without(POSTPAY_PLAN, &["InstanceType"]),
                &[("ClientToken", "tok-7")],
            ),
        )
        .await;
    assert_eq!(r.code(), "IdempotentParameterMismatch", "{}", r.body);
    // The identical request still answers the first plan; the token is per account.
    let again = c
        .dbs(
            "CreateBackupPlan",
            &merged(POSTPAY_PLAN, &[("ClientToken", "tok-7")]),
        )
        .await;
    assert_eq!(again.body["BackupPlanId"], first.body["BackupPlanId"]);
    assert_eq!(emu.snapshot().plans.len(), 1);
    emu.shutdown().await;
}

#[tokio::test]
async fn client_tokens_are_forgotten_after_their_ttl() {
    let emu = start_with(EmulatorConfig {
        client_token_ttl: Duration::from_millis(300),
        ..EmulatorConfig::default()
    })
    .await;
    let c = Client::new(&emu);
    let params = merged(POSTPAY_PLAN, &[("ClientToken", "tok-ttl")]);
    let first = c.dbs("CreateBackupPlan", &params).await;
    let replay = c.dbs("CreateBackupPlan", &params).await;
    assert_eq!(replay.body["BackupPlanId"], first.body["BackupPlanId"]);
    tokio::time::sleep(Duration::from_millis(350)).await;
    let later = c.dbs("CreateBackupPlan", &params).await;
    assert_eq!(later.body["Success"], true, "{}", later.body);
    assert_ne!(later.body["BackupPlanId"], first.body["BackupPlanId"]);
    // And the admin setting changes the lifetime.
    admin_ok(
        &emu,
        "PUT",
        "/settings",
        Some(json!({ "clientTokenTtlMs": 0 })),
    )
    .await;
    let fresh = c.dbs("CreateBackupPlan", &params).await;
    assert_ne!(fresh.body["BackupPlanId"], later.body["BackupPlanId"]);
    assert_eq!(emu.snapshot().plans.len(), 3);
    emu.shutdown().await;
}

#[tokio::test]
async fn describe_normalises_backup_objects_and_the_source_region() {
    let (emu, c) = start_client().await;
    let id = create_plan(&c, &[]).await;
    let r = c
        .dbs(
            "ConfigureBackupPlan",
            &[
                ("BackupPlanId", &id),
                ("BackupPlanName", "direct"),
                ("SourceEndpointInstanceType", "Other"),
                ("SourceEndpointIP", "10.0.0.7"),
                ("SourceEndpointPort", "3306"),
                ("SourceEndpointUserName", "backup"),
                ("SourceEndpointPassword", "pw"),
                (
                    "BackupObjects",
                    r#"[ {"TableIncludes": [{"TableName": "orders"}], "DBName": "shop"} ]"#,
                ),
            ],
        )
        .await;
    assert_eq!(r.body["Success"], true, "{}", r.body);
    let r = c.describe_plan(&id).await;
    let d = &r.body["Items"]["BackupPlanDetail"][0];
    assert_eq!(
        d["BackupObjects"],
        r#"[{"DBName":"shop","TableIncludes":[{"TableName":"orders"}],"TableExcludes":[]}]"#
    );
    assert_eq!(d["SourceEndpointRegion"], "cn-hangzhou");
    assert_eq!(d["SourceEndpointInstanceType"], "other");
    assert_eq!(d["SourceEndpointIpPort"], "10.0.0.7:3306");
    // The admin state keeps what the caller sent.
    let plan = emu.snapshot().plan(&id).cloned().expect("plan");
    assert_eq!(plan.source_endpoint_region, None);
    assert!(plan.backup_objects.unwrap_or_default().starts_with("[ {"));
    // A plan never configured has no source region to fill in.
    let unconfigured = create_plan(&c, &[]).await;
    let r = c.describe_plan(&unconfigured).await;
    assert_eq!(
        r.body["Items"]["BackupPlanDetail"][0]["SourceEndpointRegion"],
        ""
    );
    emu.shutdown().await;
}

#[tokio::test]
async fn describe_lags_behind_create_but_billing_does_not() {
    let emu = start_with(EmulatorConfig {
        describe_lag: Duration::from_millis(400),
        ..EmulatorConfig::default()
    })
    .await;
    let c = Client::new(&emu);
    let id = create_plan(&c, &[]).await;
    let r = c.describe_plan(&id).await;
    assert_eq!(r.body["Success"], true, "{}", r.body);
    assert_eq!(r.body["TotalElements"], 0, "{}", r.body);
    let r = c
        .dbs("DescribeBackupPlanBilling", &[("BackupPlanId", &id)])
        .await;
    assert_eq!(r.body["Item"]["BuyChargeType"], "POSTPAY", "{}", r.body);
    tokio::time::sleep(Duration::from_millis(450)).await;
    let r = c.describe_plan(&id).await;
    assert_eq!(r.body["TotalElements"], 1, "{}", r.body);
    // The admin setting turns it off.
    admin_ok(
        &emu,
        "PUT",
        "/settings",
        Some(json!({ "describeLagMs": 0 })),
    )
    .await;
    let second = create_plan(&c, &[]).await;
    assert_eq!(c.describe_plan(&second).await.body["TotalElements"], 1);
    emu.shutdown().await;
}

#[tokio::test]
async fn postpay_drds_plans_are_refused() {
    let (emu, c) = start_client().await;
    let r = c
        .dbs(
            "CreateBackupPlan",
            &merged(POSTPAY_PLAN, &[("DatabaseType", "DRDS")]),
        )
        .await;
    assert_eq!(r.code(), "InvalidParameter", "{}", r.body);
    let r = c
        .dbs(
            "CreateBackupPlan",
            &merged(PREPAY_PLAN, &[("DatabaseType", "DRDS")]),
        )
        .await;
    assert_eq!(r.body["Success"], true, "{}", r.body);
    assert_eq!(emu.snapshot().plans.len(), 1);
    emu.shutdown().await;
}
