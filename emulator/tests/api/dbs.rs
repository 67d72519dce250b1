//! DBS behaviour: envelope, statuses, quirks.

use std::time::Duration;

use alicloud_emulator::EmulatorConfig;

use crate::common::*;

#[tokio::test]
async fn configure_sooner_than_delay_is_operation_denied() {
    let emu = start_with(EmulatorConfig {
        configure_delay: Duration::from_millis(1000),
        ..EmulatorConfig::default()
    })
    .await;
    let c = Client::new(&emu);
    let id = create_plan(&c, &[]).await;
    let r = configure_plan(&c, &id, &[]).await;
    assert_eq!(r.code(), "OperationDenied", "{}", r.body);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let r = configure_plan(&c, &id, &[]).await;
    assert_eq!(r.body["Success"], true, "{}", r.body);
    let state = emu.state();
    let outcomes: Vec<&str> = state["calls"]
        .as_array()
        .expect("calls")
        .iter()
        .filter(|c| c["action"] == "ConfigureBackupPlan")
        .map(|c| c["outcome"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(outcomes, vec!["OperationDenied", "Success"]);
    assert_eq!(state["plans"][0]["status"], "init");
    emu.shutdown().await;
}

#[tokio::test]
async fn same_client_token_returns_the_same_plan() {
    let (emu, c) = start_client().await;
    let params = merged(PREPAY_PLAN, &[("ClientToken", "tok-1")]);
    let a = c.dbs("CreateBackupPlan", &params).await;
    let b = c.dbs("CreateBackupPlan", &params).await;
    assert_eq!(a.body["Success"], true, "{}", a.body);
    assert_eq!(a.body["BackupPlanId"], b.body["BackupPlanId"]);
    assert_eq!(a.body["OrderId"], b.body["OrderId"]);
    assert!(
        a.body["BackupPlanId"]
            .as_str()
            .unwrap_or("")
            .starts_with("dbs")
    );
    assert_eq!(emu.state()["plans"].as_array().map(Vec::len), Some(1));
    emu.shutdown().await;
}

#[tokio::test]
async fn plan_status_follows_configure_start_stop_and_precheck() {
    let (emu, c) = start_client().await;
    let id = create_plan(&c, &[]).await;
    let r = c.dbs("StartBackupPlan", &[("BackupPlanId", &id)]).await;
    assert_eq!(
        (r.status, r.body["Success"].clone()),
        (400, false.into()),
        "start on wait must fail"
    );
    let r = configure_plan(&c, &id, &[]).await;
    assert_eq!(r.body["Success"], true, "{}", r.body);
    let status = |emu_state: serde_json::Value| {
        emu_state["plans"][0]["status"]
            .as_str()
            .unwrap_or("")
            .to_string()
    };
    assert_eq!(status(emu.state()), "init");
    let r = c.dbs("StartBackupPlan", &[("BackupPlanId", &id)]).await;
    assert_eq!(r.body["Success"], true);
    assert_eq!(r.body["BackupPlanId"], id.as_str());
    assert_eq!(status(emu.state()), "running");
    let r = c
        .dbs(
            "StopBackupPlan",
            &[("BackupPlanId", &id), ("StopMethod", "ALL")],
        )
        .await;
    assert_eq!(r.body["Success"], true);
    assert_eq!(status(emu.state()), "pause");
    c.dbs("StartBackupPlan", &[("BackupPlanId", &id)]).await;
    assert_eq!(status(emu.state()), "running");
    let r = c
        .dbs(
            "ModifyBackupStrategy",
            &[
                ("BackupPlanId", &id),
                ("BackupPeriod", "Friday"),
                ("BackupStartTime", "01:30"),
            ],
        )
        .await;
    assert_eq!(
        (r.body["Success"].clone(), r.body["NeedPrecheck"].clone()),
        (true.into(), false.into()),
        "{}",
        r.body
    );
    let r = c
        .dbs(
            "ModifyStorageStrategy",
            &[
                ("BackupPlanId", &id),
                ("BackupRetentionPeriod", "400"),
                ("DuplicationInfrequentAccessPeriod", "100"),
                ("DuplicationArchivePeriod", "200"),
            ],
        )
        .await;
    assert_eq!(r.body["NeedPrecheck"], false, "{}", r.body);
    assert_eq!(status(emu.state()), "running");
    let r = c
        .dbs(
            "ModifyBackupSourceEndpoint",
            &[
                ("BackupPlanId", &id),
                ("SourceEndpointInstanceType", "RDS"),
                ("SourceEndpointRegion", "cn-hangzhou"),
                ("SourceEndpointInstanceID", "rm-test2"),
                ("SourceEndpointUserName", "u"),
                ("SourceEndpointPassword", "new-pw"),
                ("BackupObjects", "[]"),
            ],
        )
        .await;
    assert_eq!(r.body["NeedPrecheck"], true, "{}", r.body);
    assert_eq!(status(emu.state()), "init");
    let r = configure_plan(&c, &id, &[("AutoStartBackup", "true")]).await;
    assert_eq!(r.body["Success"], true);
    assert_eq!(status(emu.state()), "running");
    emu.shutdown().await;
}

#[tokio::test]
async fn prepay_release_is_refused_and_released_plans_disappear() {
    let (emu, c) = start_client().await;
    let yearly = merged(PREPAY_PLAN, &[("Period", "Year")]);
    let prepay = c.dbs("CreateBackupPlan", &yearly).await;
    let prepay_id = prepay.body["BackupPlanId"]
        .as_str()
        .expect("id")
        .to_string();
    let r = c
        .dbs("ReleaseBackupPlan", &[("BackupPlanId", &prepay_id)])
        .await;
    r.assert_dbs_error("InvalidParameter");
    assert_eq!(
        r.body["ErrMessage"],
        "This backupPlan can't support this action"
    );
    let billing = c
        .dbs("DescribeBackupPlanBilling", &[("BackupPlanId", &prepay_id)])
        .await;
    assert_eq!(billing.body["Item"]["BuyChargeType"], "PREPAY");
    assert!(
        billing.body["Item"]["BuyExpiredTimestamp"]
            .as_i64()
            .unwrap_or(0)
            > billing.body["Item"]["BuyCreateTimestamp"]
                .as_i64()
                .unwrap_or(0)
    );
    assert_eq!(billing.body["Item"]["IsExpired"], false);

    let id = create_plan(&c, &[]).await;
    let billing = c
        .dbs("DescribeBackupPlanBilling", &[("BackupPlanId", &id)])
        .await;
    assert_eq!(billing.body["Item"]["BuyChargeType"], "POSTPAY");
    let r = c.dbs("ReleaseBackupPlan", &[("BackupPlanId", &id)]).await;
    assert_eq!(r.body["Success"], true, "{}", r.body);
    let r = c.dbs("ReleaseBackupPlan", &[("BackupPlanId", &id)]).await;
    r.assert_dbs_error("InvalidJobId");
    let r = c.describe_plan(&id).await;
    assert_eq!(r.body["TotalElements"], 0);
    let state = emu.state();
    let released = state["plans"]
        .as_array()
        .expect("plans")
        .iter()
        .find(|p| p["backupPlanId"] == id.as_str())
        .cloned();
    assert_eq!(
        released.map(|p| p["status"].clone()),
        Some("released".into())
    );
    emu.shutdown().await;
}

#[tokio::test]
async fn describe_pages_and_applies_case_quirks() {
    let (emu, c) = start_client().await;
    let first = create_plan(&c, &[]).await;
    create_plan(&c, &[]).await;
    create_plan(&c, &[]).await;
    let r = configure_plan(&c, &first, &[]).await;
    assert_eq!(r.body["Success"], true, "{}", r.body);
    let r = c
        .dbs(
            "DescribeBackupPlanList",
            &[
                ("Region", "cn-hangzhou"),
                ("PageSize", "2"),
                ("PageNum", "1"),
            ],
        )
        .await;
    for key in [
        "RequestId",
        "Success",
        "ErrCode",
        "ErrMessage",
        "HttpStatusCode",
    ] {
        assert!(r.body.get(key).is_some(), "missing {key}");
    }
    assert_eq!(r.body["TotalElements"], 3);
    assert_eq!(r.body["TotalPages"], 2);
    assert_eq!(r.body["PageNum"], 1);
    assert_eq!(r.body["PageSize"], 2);
    assert_eq!(
        r.body["Items"]["BackupPlanDetail"].as_array().map(Vec::len),
        Some(1)
    );
    let r = c.describe_plan(&first).await;
    let d = &r.body["Items"]["BackupPlanDetail"][0];
    assert_eq!(d["SourceEndpointInstanceType"], "rds");
    assert_eq!(d["BackupPeriod"], "MONDAY,THURSDAY");
    assert_eq!(d["BackupStartTime"], "14:22");
    assert_eq!(d["BackupPlanName"], "nightly");
    assert!(d["BackupPlanCreateTime"].as_i64().unwrap_or(0) > 1_600_000_000_000);
    assert!(!r.body.to_string().contains("s3cret-pw"), "password leaked");
    let r = c
        .dbs("DescribeBackupPlanList", &[("PageSize", "101")])
        .await;
    r.assert_dbs_error("InvalidParameter");
    let r = c
        .dbs("DescribeBackupPlanList", &[("Region", "cn-beijing")])
        .await;
    assert_eq!(r.body["TotalElements"], 0);
    // Another account sees nothing.
    let account = serde_json::json!({"accessKeyId": "other", "accessKeySecret": "o"});
    admin_ok(&emu, "POST", "/accounts", Some(account)).await;
    let r = c
        .with_key("other", "o", None)
        .dbs("DescribeBackupPlanList", &[])
        .await;
    assert_eq!(r.body["TotalElements"], 0, "{}", r.body);
    emu.shutdown().await;
}

#[tokio::test]
async fn parameter_errors_are_http_400_invalid_parameter() {
    let (emu, c) = start_client().await;
    let cases = [
        ("no region", without(PREPAY_PLAN, &["Region"])),
        (
            "bad class",
            merged(PREPAY_PLAN, &[("InstanceClass", "huge")]),
        ),
        (
            "postpay without regions",
            without(
                POSTPAY_PLAN,
                &["DatabaseRegion", "StorageRegion", "InstanceType"],
            ),
        ),
        (
            "used time out of range",
            merged(PREPAY_PLAN, &[("Period", "Year"), ("UsedTime", "6")]),
        ),
    ];
    for (name, params) in cases {
        let r = c.dbs("CreateBackupPlan", &params).await;
        assert_eq!(r.status, 400, "{name}");
        assert_eq!(
            (r.body["Success"].clone(), r.body["ErrCode"].clone()),
            (false.into(), "InvalidParameter".into()),
            "{name}: {}",
            r.body
        );
    }
    let id = create_plan(&c, &[]).await;
    let r = configure_plan(&c, &id, &[("BackupStartTime", "25:00")]).await;
    assert_eq!(r.body["ErrCode"], "InvalidParameter");
    let r = configure_plan(&c, &id, &[("BackupPeriod", "Funday")]).await;
    assert_eq!(r.body["ErrCode"], "InvalidParameter");
    let r = c
        .dbs(
            "ConfigureBackupPlan",
            &[
                ("BackupPlanId", &id),
                ("BackupPlanName", "n"),
                ("SourceEndpointInstanceType", "Other"),
            ],
        )
        .await;
    assert_eq!(
        r.body["ErrCode"], "InvalidParameter",
        "Other needs IP and port"
    );
    configure_plan(&c, &id, &[]).await;
    let r = c
        .dbs(
            "ModifyStorageStrategy",
            &[
                ("BackupPlanId", &id),
                ("BackupRetentionPeriod", "300"),
                ("DuplicationInfrequentAccessPeriod", "200"),
                ("DuplicationArchivePeriod", "100"),
            ],
        )
        .await;
    assert_eq!(r.body["ErrCode"], "InvalidParameter");
    let r = c
        .dbs("StartBackupPlan", &[("BackupPlanId", "dbsnothere")])
        .await;
    r.assert_dbs_error("InvalidJobId");
    emu.shutdown().await;
}
