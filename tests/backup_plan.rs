//! BackupPlan lifecycle against a real kube-apiserver (`alicloud_testenv`) and the DBS emulator
//! over HTTP. Each test has its own namespace, emulator and controller (watching only that
//! namespace); the crash tests run the operator binary as a child process.

#[allow(dead_code)]
mod common;

use std::time::Duration;

use alicloud_db_operator::crd::{
    BackupMethod, BackupPlan, BackupPlanSpec, BackupSchedule, CredentialsRef, DeletionPolicy,
    PayType, SecretKeyRef, SubscriptionPeriod, Weekday,
};
use k8s_openapi::api::core::v1::Secret;
use serde_json::json;

use common::{
    CREDENTIALS, Controller, PASSWORD_SECRET, Setup, World, backup_plan_spec, condition,
    eventually, ready_reason,
};

/// What a world running the BackupPlan controller needs.
fn plans() -> Setup {
    Setup {
        controllers: vec![Controller::BackupPlan],
        ..Setup::default()
    }
}

/// A world running the BackupPlan controller.
async fn start(prefix: &str) -> World {
    World::start(prefix, plans()).await
}

/// A world running the BackupPlan controller with the resync period `resync`.
async fn start_resyncing(prefix: &str, resync: Duration) -> World {
    let setup = Setup { resync, ..plans() };
    World::start(prefix, setup).await
}

/// The common plan of these tests.
fn spec() -> BackupPlanSpec {
    backup_plan_spec()
}

/// Creates the BackupPlan `name` with `spec`.
async fn create(w: &World, name: &str, spec: BackupPlanSpec) -> BackupPlan {
    w.create(&BackupPlan::new(name, spec)).await
}

/// Waits until the BackupPlan `name` is Ready at its current generation.
async fn ready(w: &World, name: &str) -> BackupPlan {
    w.wait_ready(name).await
}

/// Deletes the BackupPlan `name` and waits until its finalizer has let it go.
async fn delete_and_wait(w: &World, name: &str) {
    w.delete::<BackupPlan>(name).await;
    w.wait_gone::<BackupPlan>(name).await;
}

/// The id of a running plan with no object: created through `name` with `spec` under
/// `deletionPolicy: Retain`, which is then deleted. For adoption tests.
async fn plan_left_behind(w: &World, name: &str, spec: BackupPlanSpec) -> String {
    let retained = BackupPlanSpec {
        deletion_policy: DeletionPolicy::Retain,
        ..spec
    };
    create(w, name, retained).await;
    let id = plan_id(&ready(w, name).await);
    delete_and_wait(w, name).await;
    id
}

fn plan_id(obj: &BackupPlan) -> String {
    obj.status
        .as_ref()
        .and_then(|s| s.backup_plan_id.clone())
        .expect("status.backupPlanId")
}

/// Pauses the BackupPlan `name` and waits until its status says so.
async fn pause(w: &World, name: &str) {
    let pause = json!({"metadata": {"annotations": {"db.alicloud.dev/paused": "true"}}});
    w.patch::<BackupPlan>(name, pause).await;
    w.wait_for(name, "Ready with reason Paused", |o: &BackupPlan| {
        ready_reason(o).as_deref() == Some("Paused")
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn create_configures_five_seconds_after_create_then_runs() {
    let w = World::start(
        "bp-create",
        Setup {
            configure_delay: Duration::from_secs(5),
            ..plans()
        },
    )
    .await;
    create(&w, "orders", spec()).await;

    let wait = alicloud_testenv::shared()
        .kubectl()
        .args([
            "wait",
            "--for=condition=Ready",
            "bp/orders",
            "-n",
            &w.ns,
            "--timeout=60s",
        ])
        .output()
        .expect("run kubectl wait");
    assert!(
        wait.status.success(),
        "kubectl wait: {}",
        String::from_utf8_lossy(&wait.stderr)
    );

    let obj = ready(&w, "orders").await;
    let status = obj.status.clone().expect("status");
    let id = plan_id(&obj);
    assert!(
        status.order_id.is_some() && status.created_at.is_some(),
        "{status:#?}"
    );
    assert_eq!(status.cloud_status.as_deref(), Some("running"));
    assert!(status.last_sync_time.is_some());
    assert_eq!(status.observed_generation, obj.metadata.generation);

    let create = w.calls("CreateBackupPlan");
    let configure = w.calls("ConfigureBackupPlan");
    assert_eq!(create.len(), 1, "one CreateBackupPlan: {create:?}");
    let created_ms = create[0].time_ms;
    assert!(!configure.is_empty(), "ConfigureBackupPlan was called");
    for c in &configure {
        let after = c.time_ms - created_ms;
        assert!(
            after >= 5000,
            "ConfigureBackupPlan only {after} ms after CreateBackupPlan"
        );
    }
    assert!(
        w.calls("StartBackupPlan")
            .iter()
            .any(|c| c.outcome == "Success")
    );
    assert!(
        configure.iter().all(|c| c.outcome == "Success"),
        "no ConfigureBackupPlan was sent too early: {configure:?}"
    );
    let plan = w.plan_at_dbs(&id);
    assert_eq!(plan.status, "running");
    assert_eq!(plan.name, format!("{}-orders", w.ns));
    assert_eq!(plan.pay_type, "postpay");
    assert_eq!(plan.backup_period.as_deref(), Some("Monday,Thursday"));
    w.wait_events("orders", &[("Normal", "Available")]).await;

    let out = alicloud_testenv::shared()
        .kubectl()
        .args(["get", "bp", "orders", "-n", &w.ns])
        .output()
        .expect("run kubectl get");
    let table = String::from_utf8_lossy(&out.stdout);
    let mut lines = table.lines();
    let header = lines.next().unwrap_or_default();
    for column in ["NAME", "READY", "REASON", "PLAN ID", "AGE"] {
        assert!(header.contains(column), "column {column} in {table}");
    }
    let row = lines.next().unwrap_or_default();
    assert!(
        row.contains("True") && row.contains("Available") && row.contains(&id),
        "{table}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn schedule_change_modifies_strategy_and_returns_ready() {
    let w = start("bp-update").await;
    create(&w, "weekly", spec()).await;
    let obj = ready(&w, "weekly").await;
    let id = plan_id(&obj);

    let patch =
        json!({"spec": {"schedule": {"weekdays": ["Tuesday", "Saturday"], "startTime": "03:30"}}});
    let updated: BackupPlan = w.patch("weekly", patch).await;
    let generation = updated.metadata.generation;
    let obj = w
        .wait_for("weekly", "Ready at the new generation", |o: &BackupPlan| {
            ready_reason(o).as_deref() == Some("Available")
                && o.status.as_ref().and_then(|s| s.observed_generation) == generation
                && condition(o, "Ready").and_then(|c| c.observed_generation) == generation
        })
        .await;
    assert!(obj.status.as_ref().is_some_and(|s| {
        s.conditions
            .iter()
            .all(|c| c.observed_generation == generation)
    }));
    assert!(
        w.calls("ModifyBackupStrategy")
            .iter()
            .any(|c| c.outcome == "Success")
    );
    let plan = w.plan_at_dbs(&id);
    assert_eq!(plan.backup_period.as_deref(), Some("Tuesday,Saturday"));
    assert_eq!(plan.backup_start_time.as_deref(), Some("03:30"));
}

#[tokio::test(flavor = "multi_thread")]
async fn log_interval_change_modifies_strategy_and_returns_ready() {
    let w = start("bp-interval").await;
    let physical = BackupPlanSpec {
        backup_method: BackupMethod::Physical,
        backup_log_interval_seconds: Some(300),
        ..spec()
    };
    create(&w, "logs", physical).await;
    let id = plan_id(&ready(&w, "logs").await);
    assert_eq!(w.plan_at_dbs(&id).backup_log_interval_seconds, Some(300));

    let patch = json!({"spec": {"backupLogIntervalSeconds": 600}});
    let changed: BackupPlan = w.patch("logs", patch).await;
    w.wait_for("logs", "Ready for the new generation", |o: &BackupPlan| {
        ready_reason(o).as_deref() == Some("Available")
            && o.status.as_ref().and_then(|s| s.observed_generation) == changed.metadata.generation
    })
    .await;
    assert_eq!(w.plan_at_dbs(&id).backup_log_interval_seconds, Some(600));
    // DBS does not report the interval, so it is compared with what the status recorded. A
    // resync whose status write lands while the spec patch is being acted upon can leave the
    // next reconcile with a cached status from before the Modify: at most one repeat.
    let modified = w.calls("ModifyBackupStrategy").len();
    assert!(
        (1..=2).contains(&modified),
        "{modified} ModifyBackupStrategy calls"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn out_of_band_schedule_change_is_reverted_after_resync() {
    let w = start("bp-drift").await;
    create(&w, "drifty", spec()).await;
    let id = plan_id(&ready(&w, "drifty").await);

    w.admin(
        reqwest::Method::PATCH,
        &format!("/plans/{id}"),
        json!({"backupPeriod": "Friday"}),
    )
    .await;

    eventually(
        "the drift to be corrected",
        Duration::from_secs(90),
        || async {
            let period = w.plan_at_dbs(&id).backup_period;
            (period.as_deref() == Some("Monday,Thursday"))
                .then_some(())
                .ok_or(format!("backupPeriod {period:?}"))
        },
    )
    .await;
    assert!(
        w.calls("ModifyBackupStrategy")
            .iter()
            .any(|c| c.outcome == "Success")
    );
    ready(&w, "drifty").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn steady_state_uses_one_sweep_per_resync_not_one_describe_per_object() {
    let w = start_resyncing("bp-sweep", Duration::from_secs(3)).await;
    for name in ["a", "b", "c", "d"] {
        create(&w, name, spec()).await;
    }
    for name in ["a", "b", "c", "d"] {
        ready(&w, name).await;
    }
    // Provisioning has settled once a reconcile that started after every object was Ready has
    // completed; then count describes over three resync periods.
    let mark = w.reconcile_mark().await;
    w.wait_reconciled_since(mark, "every plan Ready").await;
    let before = w.calls("DescribeBackupPlanList").len();
    tokio::time::sleep(Duration::from_secs(9)).await;
    let describes = w.calls("DescribeBackupPlanList").len() - before;
    assert!(
        describes <= 5,
        "{describes} DescribeBackupPlanList calls for 4 objects over 3 resync periods"
    );
    assert!(describes >= 1, "the plans are still observed");
}

#[tokio::test(flavor = "multi_thread")]
async fn plan_deleted_out_of_band_stalls_and_is_not_recreated() {
    let w = start("bp-missing").await;
    create(&w, "vanished", spec()).await;
    let id = plan_id(&ready(&w, "vanished").await);

    w.admin(reqwest::Method::DELETE, &format!("/plans/{id}"), json!({}))
        .await;

    let obj = w
        .wait_condition::<BackupPlan>("vanished", "Stalled", "CloudPlanMissing")
        .await;
    assert_eq!(
        condition(&obj, "Ready").map(|c| c.status).as_deref(),
        Some("False")
    );
    // Proof that the controller looked at the stalled object again (its own status write and
    // the resync both reconcile it) before asserting that it created nothing.
    let mark = w.reconcile_mark().await;
    w.wait_reconciled_since(mark, "the plan was found missing")
        .await;
    assert_eq!(
        w.calls("CreateBackupPlan").len(),
        1,
        "no second CreateBackupPlan"
    );

    // Deleting the object of a plan already gone completes.
    delete_and_wait(&w, "vanished").await;
    assert_eq!(w.calls("CreateBackupPlan").len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn deletion_releases_the_plan() {
    let w = start("bp-delete").await;
    create(&w, "doomed", spec()).await;
    let obj = ready(&w, "doomed").await;
    assert!(
        obj.metadata
            .finalizers
            .iter()
            .flatten()
            .any(|f| f == "db.alicloud.dev/finalizer")
    );
    let id = plan_id(&obj);
    delete_and_wait(&w, "doomed").await;
    assert_eq!(w.plan_at_dbs(&id).status, "released");
}

#[tokio::test(flavor = "multi_thread")]
async fn deletion_with_retain_leaves_the_plan_running() {
    let w = start("bp-retain").await;
    let retained = BackupPlanSpec {
        deletion_policy: DeletionPolicy::Retain,
        ..spec()
    };
    create(&w, "kept", retained).await;
    let id = plan_id(&ready(&w, "kept").await);
    delete_and_wait(&w, "kept").await;
    assert_eq!(w.plan_at_dbs(&id).status, "running");
    assert!(w.calls("ReleaseBackupPlan").is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn deleting_a_subscription_plan_stops_it_and_warns_billing_continues() {
    let w = start("bp-prepay").await;
    let sub = BackupPlanSpec {
        pay_type: PayType::Subscription,
        period: Some(SubscriptionPeriod::Month),
        used_time: Some(1),
        ..spec()
    };
    create(&w, "prepaid", sub).await;
    let id = plan_id(&ready(&w, "prepaid").await);
    assert_eq!(w.plan_at_dbs(&id).pay_type, "prepay");
    delete_and_wait(&w, "prepaid").await;
    assert_eq!(w.plan_at_dbs(&id).status, "pause");
    assert!(w.calls("ReleaseBackupPlan").is_empty());
    let events = w
        .expect_event("prepaid", "Warning", "SubscriptionNotReleased")
        .await;
    let about_billing = events
        .iter()
        .filter(|(_, reason)| reason == "SubscriptionNotReleased")
        .count();
    assert_eq!(about_billing, 1, "one Event for the transition: {events:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn paused_object_makes_no_cloud_calls_and_its_deletion_waits_for_the_user() {
    let w = start("bp-pause").await;
    create(&w, "sleepy", spec()).await;
    let id = plan_id(&ready(&w, "sleepy").await);

    pause(&w, "sleepy").await;
    let calls = w.call_count();

    // A spec change while paused is not acted upon: once a reconcile that started after the
    // change has completed (and a short margin), no call was made.
    let mark = w.reconcile_mark().await;
    let patch = json!({"spec": {"schedule": {"weekdays": ["Sunday"], "startTime": "01:00"}}});
    w.patch::<BackupPlan>("sleepy", patch).await;
    w.wait_reconciled_since(mark, "the spec change").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(w.call_count(), calls, "no cloud call while paused");

    // Deleting it makes no call either: the deletion waits, and the user finishes it by hand.
    w.delete::<BackupPlan>("sleepy").await;
    w.wait_condition::<BackupPlan>("sleepy", "Stalled", "Paused")
        .await;
    assert_eq!(
        w.call_count(),
        calls,
        "deleting a paused object makes no cloud call"
    );
    let abandon = json!({"metadata": {"annotations": {"db.alicloud.dev/abandon": "true"}}});
    w.patch::<BackupPlan>("sleepy", abandon).await;
    w.wait_gone::<BackupPlan>("sleepy").await;
    assert_eq!(w.call_count(), calls, "abandoning makes no cloud call");
    assert_eq!(w.plan_at_dbs(&id).status, "running");
    w.expect_event("sleepy", "Warning", "Abandoned").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn spec_change_while_paused_is_not_claimed_as_observed() {
    let w = start("bp-pause-gen").await;
    create(&w, "frozen", spec()).await;
    let acted = ready(&w, "frozen").await.metadata.generation;

    pause(&w, "frozen").await;
    let mark = w.reconcile_mark().await;
    let patch = json!({"spec": {"schedule": {"weekdays": ["Sunday"], "startTime": "01:00"}}});
    let changed: BackupPlan = w.patch("frozen", patch).await;
    assert!(changed.metadata.generation > acted);
    // The status is read once a reconcile that started after the change has completed (and a
    // short margin).
    w.wait_reconciled_since(mark, "the spec change").await;
    tokio::time::sleep(Duration::from_millis(500)).await;

    let obj: BackupPlan = w.get("frozen").await;
    let status = obj.status.clone().expect("status");
    assert_eq!(
        status.observed_generation, acted,
        "the spec change made while paused was never acted upon"
    );
    for type_ in ["Ready", "Reconciling", "Stalled"] {
        let c = condition(&obj, type_).expect("condition");
        assert_eq!(c.observed_generation, acted, "{type_}: {c:?}");
    }

    let resume = json!({"metadata": {"annotations": {"db.alicloud.dev/paused": null}}});
    w.patch::<BackupPlan>("frozen", resume).await;
    let obj = w
        .wait_for(
            "frozen",
            "Ready for the new generation",
            |o: &BackupPlan| {
                ready_reason(o).as_deref() == Some("Available")
                    && condition(o, "Ready").and_then(|c| c.observed_generation)
                        == o.metadata.generation
            },
        )
        .await;
    assert_eq!(
        obj.status.and_then(|s| s.observed_generation),
        obj.metadata.generation
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn overlong_default_plan_name_stalls_without_cloud_calls() {
    let w = start("bp-invalid").await;
    let name = "a-very-long-backup-plan-object-name-that-makes-the-default-plan-name-too-long";
    create(&w, name, spec()).await;
    let obj = w
        .wait_for(name, "Stalled InvalidSpec", |o: &BackupPlan| {
            condition(o, "Stalled").is_some_and(|c| c.status == "True" && c.reason == "InvalidSpec")
        })
        .await;
    assert!(condition(&obj, "Stalled").is_some_and(|c| c.message.contains("spec.planName")));
    assert_eq!(w.call_count(), 0);
    delete_and_wait(&w, name).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn missing_password_secret_stalls_without_creating() {
    let w = start("bp-secret").await;
    let mut s = spec();
    s.source.password_secret_ref = Some(SecretKeyRef {
        name: "absent".into(),
        key: "password".into(),
    });
    create(&w, "nosecret", s).await;
    w.wait_condition::<BackupPlan>("nosecret", "Stalled", "SecretNotUsable")
        .await;
    assert!(w.calls("CreateBackupPlan").is_empty());
    delete_and_wait(&w, "nosecret").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn rotated_password_is_sent_again_promptly() {
    // A resync longer than the test: the Secret watch alone must notice the rotation.
    let w = start_resyncing("bp-rotate", Duration::from_secs(300)).await;
    create(&w, "rotating", spec()).await;
    ready(&w, "rotating").await;
    let patch = json!({"data": {"password": "bmV3LXBhc3N3b3Jk"}});
    w.patch::<Secret>(PASSWORD_SECRET, patch).await;
    eventually(
        "the password to be re-applied",
        Duration::from_secs(20),
        || async {
            let calls = w.calls("ModifyBackupSourceEndpoint");
            calls
                .iter()
                .any(|c| c.outcome == "Success")
                .then_some(())
                .ok_or(format!("{calls:?}"))
        },
    )
    .await;
    ready(&w, "rotating").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn restart_after_create_does_not_duplicate() {
    let w = World::start("bp-crash", Setup::default()).await;
    let mut first = w.operator("bp-crash-1", Some("kill-after-create-backup-plan"));
    create(&w, "survivor", spec()).await;
    first.wait_killed_by_failpoint().await;
    let obj: BackupPlan = w.get("survivor").await;
    assert!(
        obj.status
            .as_ref()
            .and_then(|s| s.backup_plan_id.as_ref())
            .is_none(),
        "the id never reached the status"
    );
    assert_eq!(w.plans_at_dbs().len(), 1, "the plan exists at DBS");

    let _second = w.operator("bp-crash-2", None);
    let obj = ready(&w, "survivor").await;
    let plans = w.plans_at_dbs();
    assert_eq!(plans.len(), 1, "exactly one plan: {plans:#?}");
    assert_eq!(plans[0].backup_plan_id, plan_id(&obj).as_str());
    assert_eq!(plans[0].status, "running");
}

#[tokio::test(flavor = "multi_thread")]
async fn deletion_after_a_lost_create_answer_never_creates_and_waits_until_the_plan_is_gone() {
    let w = World::start("bp-crash-delete", Setup::default()).await;
    let mut first = w.operator("bp-crash-delete-1", Some("kill-after-create-backup-plan"));
    create(&w, "orphan-candidate", spec()).await;
    first.wait_killed_by_failpoint().await;
    let obj: BackupPlan = w.get("orphan-candidate").await;
    let status = obj.status.clone().unwrap_or_default();
    assert!(
        status.backup_plan_id.is_none(),
        "the id never reached the status"
    );
    assert!(
        status.client_token.is_some(),
        "the ClientToken was persisted before the call"
    );
    let plans = w.plans_at_dbs();
    assert_eq!(plans.len(), 1, "the plan exists at DBS: {plans:#?}");
    let created_id = plans[0].backup_plan_id.clone();

    // Deleted while no operator runs. The next operator does not create again (that could
    // create a plan just to release it): the plan, never configured, has no name, so it names
    // the unconfigured plans DBS holds and waits.
    w.delete::<BackupPlan>("orphan-candidate").await;
    let _second = w.operator("bp-crash-delete-2", None);
    let stalled = w
        .wait_condition::<BackupPlan>("orphan-candidate", "Stalled", "ReleaseUnconfirmed")
        .await;
    let message = condition(&stalled, "Stalled").expect("Stalled").message;
    assert!(message.contains(&created_id), "{message}");
    assert_eq!(
        w.calls("CreateBackupPlan").len(),
        1,
        "no create during deletion"
    );

    // Released in the console: the deletion then completes by itself.
    w.admin(
        reqwest::Method::DELETE,
        &format!("/plans/{created_id}"),
        json!({}),
    )
    .await;
    w.wait_gone::<BackupPlan>("orphan-candidate").await;
    assert_eq!(w.calls("CreateBackupPlan").len(), 1);
    assert!(w.plans_at_dbs().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn an_adopted_subscription_plan_is_stopped_not_released_whatever_the_spec_says() {
    let w = start("bp-adopt-prepay").await;
    let bought = BackupPlanSpec {
        pay_type: PayType::Subscription,
        period: Some(SubscriptionPeriod::Month),
        used_time: Some(1),
        ..spec()
    };
    let id = plan_left_behind(&w, "bought", bought).await;

    // Adopted by an object that says PayAsYouGo (the default).
    let adopter = BackupPlanSpec {
        backup_plan_id: Some(id.clone()),
        ..spec()
    };
    create(&w, "adopter", adopter).await;
    ready(&w, "adopter").await;
    delete_and_wait(&w, "adopter").await;
    assert_eq!(w.plan_at_dbs(&id).status, "pause");
    assert!(
        w.calls("ReleaseBackupPlan").is_empty(),
        "a subscription plan is never sent to ReleaseBackupPlan"
    );
    assert!(!w.calls("DescribeBackupPlanBilling").is_empty());
    w.wait_events("adopter", &[("Warning", "SubscriptionNotReleased")])
        .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn existing_plan_is_adopted_without_create_and_brought_in_line() {
    let w = start("bp-adopt").await;
    let id = plan_left_behind(&w, "original", spec()).await;

    let adopted = BackupPlanSpec {
        backup_plan_id: Some(id.clone()),
        schedule: Some(BackupSchedule {
            weekdays: vec![Weekday::Wednesday],
            start_time: "22:00".into(),
        }),
        ..spec()
    };
    create(&w, "adopter", adopted).await;
    let obj = ready(&w, "adopter").await;
    assert_eq!(plan_id(&obj), id);
    assert_eq!(
        w.calls("CreateBackupPlan").len(),
        1,
        "adoption creates nothing"
    );
    let plan = w.plan_at_dbs(&id);
    assert_eq!(
        plan.name,
        format!("{}-adopter", w.ns),
        "renamed with ModifyBackupPlanName"
    );
    assert_eq!(plan.backup_period.as_deref(), Some("Wednesday"));
    assert_eq!(plan.backup_start_time.as_deref(), Some("22:00"));
}

#[tokio::test(flavor = "multi_thread")]
async fn deletion_without_usable_credentials_gives_up_after_the_timeout() {
    let w = start("bp-nocreds").await;
    let with_credentials = BackupPlanSpec {
        credentials_ref: Some(CredentialsRef {
            name: CREDENTIALS.into(),
        }),
        ..spec()
    };
    create(&w, "orphan", with_credentials).await;
    let id = plan_id(&ready(&w, "orphan").await);

    // The Secret is protected while in use; an administrator forces it away.
    w.force_delete_secret(CREDENTIALS).await;
    delete_and_wait(&w, "orphan").await;
    assert_eq!(w.plan_at_dbs(&id).status, "running", "the plan remains");
    let events = w
        .wait_events(
            "orphan",
            &[
                ("Warning", "SecretNotUsable"),
                ("Warning", "CloudResourceMayRemain"),
            ],
        )
        .await;
    assert!(
        events.contains(&("Warning".into(), "SecretNotUsable".into())),
        "{events:?}"
    );
    assert!(
        events.contains(&("Warning".into(), "CloudResourceMayRemain".into())),
        "{events:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn throttled_create_backs_off_then_creates_exactly_one_plan() {
    let w = start("bp-throttle").await;
    common::fail_next(&w.emulator, "CreateBackupPlan", ("Throttling.User", 400), 6).await;
    create(&w, "busy", spec()).await;
    w.wait_condition::<BackupPlan>("busy", "Reconciling", "CloudThrottled")
        .await;
    ready(&w, "busy").await;
    let creates = w.calls("CreateBackupPlan");
    let times: Vec<i64> = creates.iter().map(|c| c.time_ms).collect();
    let longest_gap = times
        .windows(2)
        .map(|p| p[1] - p[0])
        .max()
        .unwrap_or_default();
    assert!(
        longest_gap >= 2000,
        "a throttled reconcile waits the throttling delay: gaps {times:?}"
    );
    assert_eq!(creates.iter().filter(|c| c.outcome == "Success").count(), 1);
    assert_eq!(w.plans_at_dbs().len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn operator_binary_stops_cleanly_on_sigterm() {
    let w = World::start("bp-sigterm", Setup::default()).await;
    let mut operator = w.operator("bp-sigterm", None);
    create(&w, "graceful", spec()).await;
    ready(&w, "graceful").await;
    let exit = operator.terminate(Duration::from_secs(20)).await;
    let exit = exit.expect("the operator ignored SIGTERM");
    assert!(exit.success(), "clean exit after SIGTERM: {exit:?}");
}

/// A resync that finds the plan as it was reads no Secret and writes nothing: the Secrets'
/// versions come from the watch, and `lastSyncTime` alone is not worth a write. At 10,000 Ready
/// plans those reads and writes were most of the API server's load.
#[tokio::test(flavor = "multi_thread")]
async fn a_resync_that_finds_the_plan_unchanged_reads_no_secret_and_writes_nothing() {
    let w = start_resyncing("bp-steady", Duration::from_secs(2)).await;
    let mut with_credentials = spec();
    with_credentials.credentials_ref = Some(CredentialsRef {
        name: CREDENTIALS.into(),
    });
    create(&w, "steady", with_credentials).await;
    ready(&w, "steady").await;
    // The object's own Ready write and the in-use mark on the credentials Secret are done by
    // the next resync.
    let mark = w.reconcile_mark().await;
    w.wait_reconciled_since(mark, "Ready").await;
    let settled: BackupPlan = w.get("steady").await;
    let requests = w.api_requests().len();
    let sweeps = w.calls("DescribeBackupPlanList").len();
    // Three more resyncs, each with its sweep.
    for round in 1..=3 {
        let mark = w.reconcile_mark().await;
        eventually("the next sweep", Duration::from_secs(30), || async {
            let now = w.calls("DescribeBackupPlanList").len();
            (now >= sweeps + round)
                .then_some(())
                .ok_or(format!("{now} sweeps"))
        })
        .await;
        w.wait_reconciled_since(mark, "a resync").await;
    }
    let later: BackupPlan = w.get("steady").await;
    assert_eq!(
        settled.metadata.resource_version, later.metadata.resource_version,
        "no status write while the plan is as it was"
    );
    let reads_or_writes: Vec<_> = w
        .api_requests()
        .since(requests)
        .into_iter()
        .filter(|(method, path)| {
            path.contains("/secrets/") || (method != "GET" && path.contains("/backupplans/"))
        })
        .collect();
    assert_eq!(
        reads_or_writes,
        [],
        "no Secret read, no write of the object"
    );
    assert_eq!(ready_reason(&later).as_deref(), Some("Available"));
}

#[tokio::test(flavor = "multi_thread")]
async fn ready_object_is_not_rewritten_between_resyncs() {
    let w = start_resyncing("bp-quiet", Duration::from_secs(300)).await;
    create(&w, "quiet", spec()).await;
    let ready = ready(&w, "quiet").await;
    let mark = w.reconcile_mark().await;
    let calls = w.call_count();
    // An annotation of no meaning to the operator reconciles the object; nothing changed, so
    // that reconcile must neither write the status nor call the cloud.
    let touch = json!({"metadata": {"annotations": {"example.com/touched": "true"}}});
    let settled: BackupPlan = w.patch("quiet", touch).await;
    w.wait_reconciled_since(mark, "the object was touched")
        .await;
    let later: BackupPlan = w.get("quiet").await;
    assert_eq!(
        settled.metadata.resource_version, later.metadata.resource_version,
        "no status rewrites while nothing changes"
    );
    assert_eq!(w.call_count(), calls, "no cloud calls between resyncs");
    assert_eq!(ready_reason(&later).as_deref(), Some("Available"));
    assert_eq!(plan_id(&ready), plan_id(&later));
}
