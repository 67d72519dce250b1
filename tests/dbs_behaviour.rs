//! BackupPlan against DBS as it really behaves (issue "First contact with the real cloud"): the
//! asynchronous precheck after StartBackupPlan, a configuration refused without a documented
//! code, reads lagging behind writes, ClientTokens refused with other parameters, values DBS
//! normalises, billing it cannot tell, and Subscription plans never configured. Real
//! kube-apiserver, the emulator over HTTP; the crash test runs the operator binary.

#[allow(dead_code)]
mod common;

use std::time::Duration;

use alicloud_db_operator::crd::{
    BackupObject, BackupPlan, BackupPlanSpec, PayType, SourceInstanceType, SubscriptionPeriod,
};
use serde_json::json;

use common::{Controller, Setup, World, backup_plan_spec, condition, fail_always};

fn plans() -> Setup {
    Setup {
        controllers: vec![Controller::BackupPlan],
        ..Setup::default()
    }
}

async fn create(w: &World, name: &str, spec: BackupPlanSpec) -> BackupPlan {
    w.create(&BackupPlan::new(name, spec)).await
}

fn plan_id(obj: &BackupPlan) -> String {
    obj.status
        .as_ref()
        .and_then(|s| s.backup_plan_id.clone())
        .expect("status.backupPlanId")
}

/// Waits until the BackupPlan `name` records the id of the plan it created; returns the id.
async fn created_plan(w: &World, name: &str) -> String {
    let obj = w
        .wait_for(name, "a plan id", |o: &BackupPlan| {
            o.status
                .as_ref()
                .is_some_and(|s| s.backup_plan_id.is_some())
        })
        .await;
    plan_id(&obj)
}

/// The reason of the object's `Reconciling` condition when it is True.
fn reconciling_reason(obj: &BackupPlan) -> Option<String> {
    condition(obj, "Reconciling")
        .filter(|c| c.status == "True")
        .map(|c| c.reason)
}

/// The Warning Events about `name`.
async fn warnings(w: &World, name: &str) -> Vec<String> {
    w.events_about(name)
        .await
        .into_iter()
        .filter(|(type_, _)| type_ == "Warning")
        .map(|(_, reason)| reason)
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_plan_is_started_once_and_reads_prechecking_until_it_runs() {
    let w = World::start(
        "dbs-precheck",
        Setup {
            precheck: Duration::from_secs(5),
            ..plans()
        },
    )
    .await;
    create(&w, "checked", backup_plan_spec()).await;
    let during = w
        .wait_for("checked", "Reconciling with reason Prechecking", |o| {
            reconciling_reason(o).as_deref() == Some("Prechecking")
        })
        .await;
    let status = during.status.clone().unwrap_or_default();
    assert!(status.precheck_started_at.is_some(), "{status:#?}");
    let obj = w.wait_ready::<BackupPlan>("checked").await;
    let id = plan_id(&obj);
    let starts = w.calls("StartBackupPlan");
    assert_eq!(starts.len(), 1, "exactly one StartBackupPlan: {starts:?}");
    let describes_during_precheck = w
        .calls("DescribeBackupPlanList")
        .iter()
        .filter(|c| c.time_ms >= starts[0].time_ms)
        .count();
    assert!(
        (2..=8).contains(&describes_during_precheck),
        "the precheck is watched, neither blindly nor in a hot loop: \
         {describes_during_precheck} describes"
    );
    assert_eq!(w.plan_at_dbs(&id).status, "running");
    assert_eq!(obj.status.unwrap_or_default().precheck_started_at, None);
    w.wait_events(
        "checked",
        &[("Normal", "Prechecking"), ("Normal", "Available")],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_operator_restarted_during_the_precheck_does_not_start_the_plan_again() {
    let w = World::start(
        "dbs-precheck-crash",
        Setup {
            precheck: Duration::from_secs(6),
            ..Setup::default()
        },
    )
    .await;
    let mut first = w.operator("dbs-precheck-crash-1", Some("kill-after-start-backup-plan"));
    create(&w, "restarted", backup_plan_spec()).await;
    first.wait_killed_by_failpoint().await;
    let plans = w.plans_at_dbs();
    assert_eq!(plans.len(), 1, "{plans:#?}");
    assert_ne!(plans[0].status, "running", "killed during the precheck");
    let _second = w.operator("dbs-precheck-crash-2", None);
    w.wait_ready::<BackupPlan>("restarted").await;
    let starts = w.calls("StartBackupPlan");
    assert_eq!(
        starts.len(),
        1,
        "no second start after the restart: {starts:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failed_precheck_stalls_with_the_message_of_dbs() {
    let w = start_with(Setup {
        precheck: Duration::from_secs(1),
        ..plans()
    })
    .await;
    create(&w, "unreachable", backup_plan_spec()).await;
    let id = created_plan(&w, "unreachable").await;
    w.admin(
        reqwest::Method::PUT,
        &format!("/plans/{id}/precheck"),
        json!({"fail": "can not connect to source", "status": "init"}),
    )
    .await;
    let obj = w
        .wait_condition::<BackupPlan>("unreachable", "Stalled", "PrecheckFailed")
        .await;
    let message = condition(&obj, "Stalled")
        .map(|c| c.message)
        .unwrap_or_default();
    assert!(message.contains("can not connect to source"), "{message}");
    let starts = w.calls("StartBackupPlan").len();
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        w.calls("StartBackupPlan").len(),
        starts,
        "a failed precheck is not restarted"
    );
    assert_eq!(starts, 1);
}

async fn start_with(setup: Setup) -> World {
    World::start("dbs-behaviour", setup).await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_configuration_refused_soon_after_the_creation_is_retried_whatever_its_code() {
    // DBS refuses the configuration for 3 s; the controller tries after 1 s.
    let w = World::start(
        "dbs-early-configure",
        Setup {
            dbs_configure_delay: Some(Duration::from_secs(3)),
            ..plans()
        },
    )
    .await;
    create(&w, "eager", backup_plan_spec()).await;
    w.wait_ready::<BackupPlan>("eager").await;
    let outcomes = w.outcomes("ConfigureBackupPlan");
    assert!(
        outcomes.len() >= 2 && outcomes.first().is_some_and(|(o, _)| o != "Success"),
        "the first configuration was refused: {outcomes:?}"
    );
    assert!(
        warnings(&w, "eager").await.is_empty(),
        "never Stalled on the way"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_plan_dbs_does_not_list_yet_is_waited_for_not_missing() {
    let w = World::start(
        "dbs-lag",
        Setup {
            describe_lag: Duration::from_secs(3),
            configure_delay: Duration::from_millis(200),
            ..plans()
        },
    )
    .await;
    create(&w, "lagging", backup_plan_spec()).await;
    w.wait_for("lagging", "Reconciling with reason WaitingForPlan", |o| {
        reconciling_reason(o).as_deref() == Some("WaitingForPlan")
    })
    .await;
    w.wait_ready::<BackupPlan>("lagging").await;
    let warned = warnings(&w, "lagging").await;
    assert!(
        !warned.iter().any(|r| r == "CloudPlanMissing"),
        "never reported missing: {warned:?}"
    );
    assert_eq!(w.calls("CreateBackupPlan").len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_client_token_refused_with_other_parameters_stalls_without_retrying() {
    let w = World::start("dbs-token", Setup::default()).await;
    let mut first = w.operator("dbs-token-1", Some("kill-after-create-backup-plan"));
    create(&w, "changed", backup_plan_spec()).await;
    first.wait_killed_by_failpoint().await;
    // While no operator runs, a creation field changes: the repeated create carries the same
    // ClientToken with another DatabaseRegion.
    w.patch::<BackupPlan>(
        "changed",
        json!({"spec": {"source": {"region": "cn-shanghai"}}}),
    )
    .await;
    let _second = w.operator("dbs-token-2", None);
    let obj = w
        .wait_condition::<BackupPlan>("changed", "Stalled", "CreateConflict")
        .await;
    let message = condition(&obj, "Stalled")
        .map(|c| c.message)
        .unwrap_or_default();
    assert!(message.contains("IdempotentParameterMismatch"), "{message}");
    let creates = w.calls("CreateBackupPlan").len();
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(w.calls("CreateBackupPlan").len(), creates, "not retried");
    assert_eq!(creates, 2, "the lost create and one refused repeat");
    assert_eq!(w.plans_at_dbs().len(), 1, "no second plan");
}

/// A plan DBS describes in its own normal form: objects reordered with default fields, a
/// region filled in for a source that names none.
fn normalised_spec() -> BackupPlanSpec {
    let mut spec = backup_plan_spec();
    spec.source.instance_type = SourceInstanceType::Other;
    spec.source.region = None;
    spec.source.instance_id = None;
    spec.source.host = Some("10.1.2.3".into());
    spec.source.port = Some(3306);
    spec.backup_objects = vec![
        BackupObject {
            database_name: "orders".into(),
            schema_name: None,
            table_includes: vec!["lines".into(), "heads".into()],
            table_excludes: vec![],
        },
        BackupObject {
            database_name: "audit".into(),
            schema_name: None,
            table_includes: vec![],
            table_excludes: vec![],
        },
    ];
    spec
}

#[tokio::test(flavor = "multi_thread")]
async fn values_dbs_normalises_cause_no_modification() {
    let w = World::start(
        "dbs-normalised",
        Setup {
            resync: Duration::from_secs(1),
            ..plans()
        },
    )
    .await;
    create(&w, "normal", normalised_spec()).await;
    let id = plan_id(&w.wait_ready::<BackupPlan>("normal").await);
    let plan = w.plan_at_dbs(&id);
    assert_eq!(plan.source_endpoint_region, None, "the spec sent no region");
    // Several resyncs, each describing the normalised plan.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let snapshot = w.snapshot();
    let modifies: Vec<_> = snapshot
        .calls
        .iter()
        .filter(|c| c.action.starts_with("Modify"))
        .map(|c| c.action.clone())
        .collect();
    assert!(modifies.is_empty(), "no Modify call: {modifies:?}");
    assert_eq!(w.calls("StartBackupPlan").len(), 1);

    // An objects-only change goes out as ModifyBackupObjects, without the password.
    w.patch::<BackupPlan>(
        "normal",
        json!({"spec": {"backupObjects": [{"databaseName": "orders"}]}}),
    )
    .await;
    w.wait_ready::<BackupPlan>("normal").await;
    assert_eq!(w.calls("ModifyBackupObjects").len(), 1);
    assert!(w.calls("ModifyBackupSourceEndpoint").is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn an_adopted_plan_whose_billing_dbs_cannot_tell_is_still_released() {
    let w = start_with(plans()).await;
    let id = {
        let retained = BackupPlanSpec {
            deletion_policy: alicloud_db_operator::crd::DeletionPolicy::Retain,
            ..backup_plan_spec()
        };
        create(&w, "original", retained).await;
        let id = plan_id(&w.wait_ready::<BackupPlan>("original").await);
        w.delete::<BackupPlan>("original").await;
        w.wait_gone::<BackupPlan>("original").await;
        id
    };
    let adopter = BackupPlanSpec {
        backup_plan_id: Some(id.clone()),
        ..backup_plan_spec()
    };
    create(&w, "adopter", adopter).await;
    w.wait_ready::<BackupPlan>("adopter").await;
    // DescribeBackupPlanBilling's documented sample error.
    fail_always(
        &w.emulator,
        "DescribeBackupPlanBilling",
        ("InvalidParameter", 400),
    )
    .await;
    w.delete::<BackupPlan>("adopter").await;
    w.wait_gone::<BackupPlan>("adopter").await;
    assert_eq!(w.plan_at_dbs(&id).status, "released");
    w.wait_events("adopter", &[("Normal", "PlanReleased")])
        .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn deleting_a_subscription_plan_never_configured_makes_no_stop_call() {
    // DBS never accepts the configuration within the test: the plan stays `wait`.
    let w = World::start(
        "dbs-sub-wait",
        Setup {
            dbs_configure_delay: Some(Duration::from_secs(600)),
            ..plans()
        },
    )
    .await;
    let bought = BackupPlanSpec {
        pay_type: PayType::Subscription,
        period: Some(SubscriptionPeriod::Month),
        used_time: Some(1),
        ..backup_plan_spec()
    };
    create(&w, "unconfigured", bought).await;
    let id = created_plan(&w, "unconfigured").await;
    w.delete::<BackupPlan>("unconfigured").await;
    w.wait_gone::<BackupPlan>("unconfigured").await;
    assert!(
        w.calls("StopBackupPlan").is_empty(),
        "nothing runs to stop: {:?}",
        w.outcomes("StopBackupPlan")
    );
    assert!(w.calls("ReleaseBackupPlan").is_empty());
    assert_eq!(w.plan_at_dbs(&id).status, "wait");
    w.wait_events("unconfigured", &[("Warning", "SubscriptionNotReleased")])
        .await;
}
