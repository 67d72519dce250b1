//! Never two cloud objects for one resource, never a release behind the user's back: the plan
//! id survives the loss of status, one cloud resource has one managing object, and a finalizer
//! goes without a release only when nothing is left or the user says so. Real kube-apiserver,
//! emulator over HTTP, in-process controllers.

#[allow(dead_code)]
mod common;

use std::time::Duration;

use alicloud_db_operator::crd::{
    BackupPlan, BackupPlanSpec, CredentialsRef, DeletionPolicy, RdsConnection,
};
use kube::ResourceExt;
use serde_json::json;

use common::{
    CREDENTIALS, Controller, Setup, World, backup_plan_spec, condition, eventually, rds_connection,
    ready_reason,
};

const ANNOTATION: &str = "db.alicloud.dev/backup-plan-id";

/// Actions that change something at DBS or RDS.
const MUTATING: &[&str] = &[
    "CreateBackupPlan",
    "ConfigureBackupPlan",
    "StartBackupPlan",
    "StopBackupPlan",
    "ReleaseBackupPlan",
    "ModifyBackupPlanName",
    "ModifyBackupStrategy",
    "ModifyStorageStrategy",
    "ModifyBackupSourceEndpoint",
    "ModifyBackupObjects",
    "AllocateInstancePublicConnection",
    "ModifyDBInstanceConnectionString",
    "ReleaseInstanceConnection",
];

fn plans() -> Setup {
    Setup {
        controllers: vec![Controller::BackupPlan],
        ..Setup::default()
    }
}

fn mutating_calls(w: &World) -> usize {
    MUTATING.iter().map(|a| w.calls(a).len()).sum()
}

fn retained() -> BackupPlanSpec {
    BackupPlanSpec {
        deletion_policy: DeletionPolicy::Retain,
        ..backup_plan_spec()
    }
}

fn plan_id(obj: &BackupPlan) -> String {
    obj.status
        .as_ref()
        .and_then(|s| s.backup_plan_id.clone())
        .expect("status.backupPlanId")
}

/// `obj` as `kubectl get -o yaml | kubectl apply` into another cluster would create it: spec,
/// name and annotations only (no status, no UID), under `name`, with `annotations` filtered.
fn exported(obj: &BackupPlan, name: &str, keep_annotation: bool) -> BackupPlan {
    let mut copy = BackupPlan::new(name, obj.spec.clone());
    if keep_annotation {
        copy.metadata.annotations = obj.metadata.annotations.clone();
    }
    copy
}

async fn delete_and_wait<K: common::world::Object>(w: &World, name: &str) {
    w.delete::<K>(name).await;
    w.wait_gone::<K>(name).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_plan_survives_the_loss_of_its_status() {
    let w = World::start("own-restore", plans()).await;
    w.create(&BackupPlan::new("orders", retained())).await;
    let original = w.wait_ready::<BackupPlan>("orders").await;
    let id = plan_id(&original);
    assert_eq!(
        original.annotations().get(ANNOTATION),
        Some(&id),
        "the created plan is recorded where restores keep it"
    );
    delete_and_wait::<BackupPlan>(&w, "orders").await;
    assert_eq!(w.calls("CreateBackupPlan").len(), 1);

    // Re-created from its spec alone (no status, no annotation, a new UID): found by its name.
    w.create(&exported(&original, "orders", false)).await;
    let again = w.wait_ready::<BackupPlan>("orders").await;
    assert_ne!(again.uid(), original.uid());
    assert_eq!(plan_id(&again), id, "the same plan");
    assert_eq!(again.annotations().get(ANNOTATION), Some(&id));
    w.expect_event("orders", "Normal", "FoundByName").await;
    delete_and_wait::<BackupPlan>(&w, "orders").await;

    // Under another name (its plan name is another), with the annotation kept: the annotation
    // names the plan.
    w.create(&exported(&original, "orders-copy", true)).await;
    let copy = w.wait_ready::<BackupPlan>("orders-copy").await;
    assert_eq!(plan_id(&copy), id, "the same plan");
    assert_eq!(
        w.calls("CreateBackupPlan").len(),
        1,
        "no second plan was created"
    );
    assert_eq!(
        w.plans_at_dbs()
            .iter()
            .filter(|p| p.status != "released")
            .count(),
        1
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_second_object_naming_a_managed_plan_is_stalled_and_its_deletion_releases_nothing() {
    let w = World::start("own-claim", plans()).await;
    w.create(&BackupPlan::new("first", backup_plan_spec()))
        .await;
    let id = plan_id(&w.wait_ready::<BackupPlan>("first").await);
    let before = mutating_calls(&w);

    let second = BackupPlanSpec {
        backup_plan_id: Some(id.clone()),
        plan_name: Some("another-name".into()),
        ..backup_plan_spec()
    };
    w.create(&BackupPlan::new("second", second)).await;
    let stalled = w
        .wait_condition::<BackupPlan>("second", "Stalled", "AlreadyManaged")
        .await;
    let message = condition(&stalled, "Stalled").expect("Stalled").message;
    assert!(message.contains(&format!("{}/first", w.ns)), "{message}");
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        mutating_calls(&w),
        before,
        "the second object changes nothing (no rename to its plan name)"
    );

    delete_and_wait::<BackupPlan>(&w, "second").await;
    assert_eq!(mutating_calls(&w), before, "deleting it released nothing");
    assert_eq!(w.plan_at_dbs(&id).status, "running");
    w.expect_event("second", "Normal", "AlreadyManaged").await;
    let first = w.get::<BackupPlan>("first").await;
    assert_eq!(ready_reason(&first).as_deref(), Some("Available"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_refused_release_is_retried_until_the_user_abandons_the_plan() {
    let setup = Setup {
        deletion_timeout: Duration::from_secs(2),
        ..plans()
    };
    let w = World::start("own-abandon", setup).await;
    w.create(&BackupPlan::new("kept", backup_plan_spec())).await;
    let id = plan_id(&w.wait_ready::<BackupPlan>("kept").await);
    common::fail_next(
        &w.emulator,
        "ReleaseBackupPlan",
        ("Forbidden.RAM", 403),
        1_000,
    )
    .await;
    w.delete::<BackupPlan>("kept").await;
    let stalled = w
        .wait_condition::<BackupPlan>("kept", "Stalled", "CloudRejected")
        .await;
    let message = condition(&stalled, "Stalled").expect("Stalled").message;
    assert!(message.contains("Forbidden.RAM"), "{message}");
    w.expect_event("kept", "Warning", "DeletionBlocked").await;

    // Well past the deletion timeout: a refused call is no reason to give up.
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert!(
        w.api::<BackupPlan>()
            .get_opt("kept")
            .await
            .expect("get")
            .is_some(),
        "the finalizer stays while the plan is not released"
    );
    assert!(w.calls("ReleaseBackupPlan").len() >= 2, "retried");

    w.patch::<BackupPlan>(
        "kept",
        json!({"metadata": {"annotations": {"db.alicloud.dev/abandon": "true"}}}),
    )
    .await;
    w.wait_gone::<BackupPlan>("kept").await;
    assert_eq!(
        w.plan_at_dbs(&id).status,
        "running",
        "abandoned, not released"
    );
    let events = w.wait_events("kept", &[("Warning", "Abandoned")]).await;
    assert!(
        !events.iter().any(|(_, r)| r == "CloudResourceMayRemain"),
        "{events:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn giving_up_for_want_of_credentials_counts_from_the_operators_first_attempt() {
    let setup = Setup {
        deletion_timeout: Duration::from_secs(5),
        ..plans()
    };
    let mut w = World::start("own-giveup", setup.clone()).await;
    let spec = BackupPlanSpec {
        credentials_ref: Some(CredentialsRef {
            name: CREDENTIALS.into(),
        }),
        ..backup_plan_spec()
    };
    w.create(&BackupPlan::new("orphan", spec)).await;
    let id = plan_id(&w.wait_ready::<BackupPlan>("orphan").await);

    // The operator is down while the object is deleted and its credentials go.
    w.stop_controllers();
    w.force_delete_secret(CREDENTIALS).await;
    w.delete::<BackupPlan>("orphan").await;
    tokio::time::sleep(Duration::from_secs(7)).await;

    w.restart_controllers(&setup);
    w.expect_event("orphan", "Warning", "SecretNotUsable").await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        w.api::<BackupPlan>()
            .get_opt("orphan")
            .await
            .expect("get")
            .is_some(),
        "the deletion timeout runs from the operator's first failed attempt, not from the \
         deletion timestamp"
    );
    w.wait_gone::<BackupPlan>("orphan").await;
    w.expect_event("orphan", "Warning", "CloudResourceMayRemain")
        .await;
    assert_eq!(w.plan_at_dbs(&id).status, "running", "the plan remains");
}

#[tokio::test(flavor = "multi_thread")]
async fn deleting_an_object_whose_create_was_refused_sends_no_create() {
    let w = World::start("own-refused", plans()).await;
    common::fail_next(
        &w.emulator,
        "CreateBackupPlan",
        ("InvalidParameter", 400),
        1_000,
    )
    .await;
    w.create(&BackupPlan::new("refused", backup_plan_spec()))
        .await;
    w.wait_condition::<BackupPlan>("refused", "Stalled", "CloudRejected")
        .await;
    // The refused create is retried with backoff; a pause stops the retries, so that every
    // create counted below was sent before the deletion.
    let pause = |on: bool| json!({"metadata": {"annotations": {"db.alicloud.dev/paused": on.then_some("true")}}});
    w.patch::<BackupPlan>("refused", pause(true)).await;
    let refused = w
        .wait_condition::<BackupPlan>("refused", "Reconciling", "Paused")
        .await;
    let creates = w.calls("CreateBackupPlan").len();
    assert!(creates >= 1);
    assert_eq!(
        refused.status.as_ref().and_then(|s| s.client_token.clone()),
        None,
        "a definite rejection clears the in-flight marker"
    );

    w.delete::<BackupPlan>("refused").await;
    w.wait_condition::<BackupPlan>("refused", "Stalled", "Paused")
        .await;
    w.patch::<BackupPlan>("refused", pause(false)).await;
    w.wait_gone::<BackupPlan>("refused").await;
    assert_eq!(
        w.calls("CreateBackupPlan").len(),
        creates,
        "deletion never calls CreateBackupPlan"
    );
    let events = w
        .wait_events("refused", &[("Normal", "NothingToRelease")])
        .await;
    assert!(
        !events
            .iter()
            .any(|(_, r)| r == "CloudResourceMayRemain" || r == "PlanMayRemain"),
        "{events:?}"
    );
    assert!(w.plans_at_dbs().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_paused_deletion_waits_until_the_pause_is_lifted() {
    let w = World::start("own-paused", plans()).await;
    w.create(&BackupPlan::new("sleepy", backup_plan_spec()))
        .await;
    let id = plan_id(&w.wait_ready::<BackupPlan>("sleepy").await);
    w.patch::<BackupPlan>(
        "sleepy",
        json!({"metadata": {"annotations": {"db.alicloud.dev/paused": "true"}}}),
    )
    .await;
    w.wait_for("sleepy", "Ready with reason Paused", |o: &BackupPlan| {
        ready_reason(o).as_deref() == Some("Paused")
    })
    .await;
    let calls = w.call_count();

    w.delete::<BackupPlan>("sleepy").await;
    let stalled = w
        .wait_condition::<BackupPlan>("sleepy", "Stalled", "Paused")
        .await;
    let message = condition(&stalled, "Stalled").expect("Stalled").message;
    assert!(message.contains("db.alicloud.dev/abandon"), "{message}");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(w.call_count(), calls, "no cloud call while paused");
    assert_eq!(w.plan_at_dbs(&id).status, "running");

    w.patch::<BackupPlan>(
        "sleepy",
        json!({"metadata": {"annotations": {"db.alicloud.dev/paused": null}}}),
    )
    .await;
    w.wait_gone::<BackupPlan>("sleepy").await;
    assert_eq!(w.plan_at_dbs(&id).status, "released");
}

#[tokio::test(flavor = "multi_thread")]
async fn paused_objects_of_both_kinds_report_the_same_way() {
    let setup = Setup {
        controllers: vec![Controller::BackupPlan, Controller::RdsConnection],
        ..Setup::default()
    };
    let w = World::start("own-pause-both", setup).await;
    w.create(&BackupPlan::new("plan", backup_plan_spec())).await;
    let instance = common::RDS_INSTANCE;
    w.create(&rds_connection(
        "conn",
        instance,
        "pausedapp",
        3306,
        CREDENTIALS,
    ))
    .await;
    w.wait_ready::<BackupPlan>("plan").await;
    w.wait_ready::<RdsConnection>("conn").await;
    let pause = json!({"metadata": {"annotations": {"db.alicloud.dev/paused": "true"}}});
    w.patch::<BackupPlan>("plan", pause.clone()).await;
    w.patch::<RdsConnection>("conn", pause).await;
    let plan = w
        .wait_for("plan", "Ready with reason Paused", |o: &BackupPlan| {
            ready_reason(o).as_deref() == Some("Paused")
        })
        .await;
    let conn = w
        .wait_for("conn", "Ready with reason Paused", |o: &RdsConnection| {
            ready_reason(o).as_deref() == Some("Paused")
        })
        .await;
    let shape = |c: Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition>| {
        c.map(|c| (c.status, c.reason, c.message))
    };
    assert_eq!(
        shape(condition(&plan, "Ready")),
        shape(condition(&conn, "Ready"))
    );
    assert_eq!(
        shape(condition(&plan, "Stalled")),
        shape(condition(&conn, "Stalled"))
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_second_connection_for_one_instance_is_stalled_and_its_deletion_releases_nothing() {
    let setup = Setup {
        controllers: vec![Controller::RdsConnection],
        ..Setup::default()
    };
    let w = World::start("own-rds-claim", setup).await;
    let instance = common::RDS_INSTANCE;
    w.create(&rds_connection(
        "first",
        instance,
        "firstapp",
        3306,
        CREDENTIALS,
    ))
    .await;
    w.wait_ready::<RdsConnection>("first").await;
    let before = mutating_calls(&w);

    w.create(&rds_connection(
        "second",
        instance,
        "secondapp",
        3307,
        CREDENTIALS,
    ))
    .await;
    let stalled = w
        .wait_condition::<RdsConnection>("second", "Stalled", "AlreadyManaged")
        .await;
    let message = condition(&stalled, "Stalled").expect("Stalled").message;
    assert!(message.contains(&format!("{}/first", w.ns)), "{message}");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(mutating_calls(&w), before, "no rename to the second prefix");

    delete_and_wait::<RdsConnection>(&w, "second").await;
    assert_eq!(mutating_calls(&w), before, "deleting it released nothing");
    let endpoints = w.public_connections(instance);
    assert_eq!(endpoints.len(), 1, "{endpoints:?}");
    eventually("the first stays Ready", Duration::from_secs(10), || async {
        let first = w.get::<RdsConnection>("first").await;
        (ready_reason(&first).as_deref() == Some("Available"))
            .then_some(())
            .ok_or(format!("first: {:?}", condition(&first, "Ready")))
    })
    .await;
}
