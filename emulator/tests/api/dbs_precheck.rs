//! DBS asynchronous precheck: StartBackupPlan begins it, reads advance it.

use std::time::{Duration, Instant};

use alicloud_emulator::{Emulator, EmulatorConfig};
use serde_json::json;

use crate::common::*;

/// An emulator with the default (5 s) precheck, shortened to `precheck_ms` through the admin
/// API, and a configured plan.
async fn configured_plan(precheck_ms: u64) -> (Emulator, Client, String) {
    let emu = start_with(EmulatorConfig {
        configure_delay: Duration::ZERO,
        ..EmulatorConfig::default()
    })
    .await;
    admin_ok(
        &emu,
        "PUT",
        "/settings",
        Some(json!({ "precheckMs": precheck_ms })),
    )
    .await;
    let c = Client::new(&emu);
    let id = create_plan(&c, &[]).await;
    let r = configure_plan(&c, &id, &[]).await;
    assert_eq!(r.body["Success"], true, "{}", r.body);
    (emu, c, id)
}

/// `(BackupPlanStatus, ErrMessage)` as DescribeBackupPlanList shows them.
async fn described(c: &Client, id: &str) -> (String, String) {
    let r = c.describe_plan(id).await;
    let d = &r.body["Items"]["BackupPlanDetail"][0];
    let text = |v: &serde_json::Value| v.as_str().unwrap_or("?").to_string();
    (text(&d["BackupPlanStatus"]), text(&d["ErrMessage"]))
}

/// The full backup set ids the emulator recorded for the plan.
fn backup_sets(emu: &Emulator, id: &str) -> Vec<String> {
    emu.snapshot()
        .plan(id)
        .map(|p| p.full_backup_set_ids.clone())
        .unwrap_or_default()
}

async fn sleep_until(start: Instant, after: Duration) {
    tokio::time::sleep_until((start + after).into()).await;
}

#[tokio::test]
async fn start_runs_a_precheck_from_init_through_check_pass_to_running() {
    let (emu, c, id) = configured_plan(1000).await;
    let r = c.dbs("StartBackupPlan", &[("BackupPlanId", &id)]).await;
    let started = Instant::now();
    assert_eq!(r.body["Success"], true, "{}", r.body);
    let first_set = r.body["CreatedFullBackupsetId"]
        .as_str()
        .expect("CreatedFullBackupsetId")
        .to_string();
    assert_eq!(described(&c, &id).await, ("init".into(), String::new()));
    let r = c.dbs("StartBackupPlan", &[("BackupPlanId", &id)]).await;
    assert_eq!(r.code(), "OperationConflict", "{}", r.body);

    sleep_until(started, Duration::from_millis(650)).await;
    assert_eq!(described(&c, &id).await.0, "check_pass");
    let r = c.dbs("StartBackupPlan", &[("BackupPlanId", &id)]).await;
    assert_eq!(r.code(), "OperationConflict", "{}", r.body);

    sleep_until(started, Duration::from_millis(1100)).await;
    assert_eq!(described(&c, &id).await, ("running".into(), String::new()));
    assert_eq!(backup_sets(&emu, &id), vec![first_set.clone()]);

    // Start on a running plan: accepted, a full backup, no new precheck.
    let r = c.dbs("StartBackupPlan", &[("BackupPlanId", &id)]).await;
    assert_eq!(r.body["Success"], true, "{}", r.body);
    let second_set = r.body["CreatedFullBackupsetId"].as_str().unwrap_or("");
    assert_eq!(described(&c, &id).await.0, "running");
    assert_eq!(
        backup_sets(&emu, &id),
        vec![first_set, second_set.to_string()]
    );
    emu.shutdown().await;
}

#[tokio::test]
async fn the_state_shows_the_precheck_as_describe_does() {
    let (emu, c, id) = configured_plan(60_000).await;
    c.dbs("StartBackupPlan", &[("BackupPlanId", &id)]).await;
    let state = emu.state();
    let plan = &state["plans"][0];
    assert_eq!(plan["status"], "init", "{plan}");
    assert_eq!(plan["precheck"]["durationMs"], 60_000, "{plan}");
    assert_eq!(plan["errMessage"], "", "{plan}");
    assert_eq!(
        plan["fullBackupSetIds"].as_array().map(Vec::len),
        Some(1),
        "{plan}"
    );
    // Stop ends the precheck.
    let r = c
        .dbs(
            "StopBackupPlan",
            &[("BackupPlanId", &id), ("StopMethod", "ALL")],
        )
        .await;
    assert_eq!(r.body["Success"], true, "{}", r.body);
    let state = emu.state();
    assert_eq!(state["plans"][0]["status"], "pause");
    assert_eq!(state["plans"][0]["precheck"], serde_json::Value::Null);
    emu.shutdown().await;
}

#[tokio::test]
async fn a_failed_precheck_leaves_the_plan_stopped_or_init_with_its_message() {
    let (emu, c, id) = configured_plan(300).await;
    let failure =
        json!({ "fail": "can not connect to rm-test1 with user backup", "status": "stop" });
    admin_ok(&emu, "PUT", &format!("/plans/{id}/precheck"), Some(failure)).await;
    let r = c.dbs("StartBackupPlan", &[("BackupPlanId", &id)]).await;
    assert_eq!(r.body["Success"], true, "{}", r.body);
    assert_eq!(described(&c, &id).await, ("init".into(), String::new()));
    tokio::time::sleep(Duration::from_millis(350)).await;
    let failed = (
        "stop".to_string(),
        "can not connect to rm-test1 with user backup".to_string(),
    );
    assert_eq!(described(&c, &id).await, failed);

    // The failure stays armed: the next precheck fails too, this time left in `init`.
    let failure = json!({ "fail": "access denied", "status": "init" });
    admin_ok(&emu, "PUT", &format!("/plans/{id}/precheck"), Some(failure)).await;
    c.dbs("StartBackupPlan", &[("BackupPlanId", &id)]).await;
    assert_eq!(described(&c, &id).await, ("init".into(), String::new()));
    tokio::time::sleep(Duration::from_millis(350)).await;
    assert_eq!(
        described(&c, &id).await,
        ("init".into(), "access denied".into())
    );

    // Cleared: the next start passes and the message goes.
    admin_ok(&emu, "DELETE", &format!("/plans/{id}/precheck"), None).await;
    c.dbs("StartBackupPlan", &[("BackupPlanId", &id)]).await;
    tokio::time::sleep(Duration::from_millis(350)).await;
    assert_eq!(described(&c, &id).await, ("running".into(), String::new()));
    assert_eq!(backup_sets(&emu, &id).len(), 3);

    let (status, _) = admin(
        &emu,
        "PUT",
        &format!("/plans/{id}/precheck"),
        Some(json!({ "fail": "x", "status": "running" })),
    )
    .await;
    assert_eq!(status, 400);
    let (status, _) = admin(&emu, "DELETE", "/plans/dbsnothere/precheck", None).await;
    assert_eq!(status, 404);
    emu.shutdown().await;
}

#[tokio::test]
async fn configure_with_auto_start_begins_the_precheck() {
    let (emu, c, id) = configured_plan(300).await;
    let r = configure_plan(&c, &id, &[("AutoStartBackup", "true")]).await;
    assert_eq!(r.body["Success"], true, "{}", r.body);
    assert_eq!(described(&c, &id).await.0, "init");
    tokio::time::sleep(Duration::from_millis(350)).await;
    assert_eq!(described(&c, &id).await.0, "running");
    assert_eq!(backup_sets(&emu, &id).len(), 1);
    emu.shutdown().await;
}

#[tokio::test]
async fn modifying_the_source_or_the_objects_needs_a_new_start() {
    let (emu, c, id) = configured_plan(0).await;
    c.dbs("StartBackupPlan", &[("BackupPlanId", &id)]).await;
    assert_eq!(described(&c, &id).await.0, "running");
    let r = c
        .dbs(
            "ModifyBackupObjects",
            &[
                ("BackupPlanId", &id),
                ("BackupObjects", r#"[{"DBName":"orders"}]"#),
            ],
        )
        .await;
    assert_eq!(
        (r.body["Success"].clone(), r.body["NeedPrecheck"].clone()),
        (true.into(), true.into()),
        "{}",
        r.body
    );
    assert_eq!(r.body["BackupPlanId"], id.as_str());
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(
        described(&c, &id).await.0,
        "init",
        "no precheck until Start"
    );
    let plan = emu.snapshot().plan(&id).cloned().expect("plan");
    assert_eq!(
        plan.backup_objects.as_deref(),
        Some(r#"[{"DBName":"orders"}]"#)
    );
    assert!(plan.precheck.is_none());

    c.dbs("StartBackupPlan", &[("BackupPlanId", &id)]).await;
    assert_eq!(described(&c, &id).await.0, "running");
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
                ("BackupObjects", r#"[{"DBName":"orders"}]"#),
            ],
        )
        .await;
    assert_eq!(r.body["NeedPrecheck"], true, "{}", r.body);
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(described(&c, &id).await.0, "init");

    for (params, code) in [
        (vec![("BackupPlanId", id.as_str())], "InvalidParameter"),
        (
            vec![("BackupPlanId", id.as_str()), ("BackupObjects", "{}")],
            "InvalidParameter",
        ),
        (
            vec![("BackupPlanId", "dbsnothere"), ("BackupObjects", "[]")],
            "InvalidJobId",
        ),
    ] {
        let r = c.dbs("ModifyBackupObjects", &params).await;
        assert_eq!(r.code(), code, "{params:?}: {}", r.body);
    }
    emu.shutdown().await;
}
