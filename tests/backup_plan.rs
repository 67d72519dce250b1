//! BackupPlan lifecycle against a real kube-apiserver (`alicloud_testenv`) and the DBS emulator
//! over HTTP. Each test has its own namespace, emulator and controller (watching only that
//! namespace); the crash test runs the operator binary as a child process.

use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use alicloud_db_operator::cloud::credentials::StaticCredentials;
use alicloud_db_operator::cloud::{AlibabaCloud, ClientConfig, Credentials, Endpoints};
use alicloud_db_operator::controller::{self, Context, ControllerConfig};
use alicloud_db_operator::crd::{
    BackupMethod, BackupPlan, BackupPlanSpec, BackupSchedule, BackupSource, CredentialsRef,
    DatabaseType, DeletionPolicy, InstanceClass, PayType, SecretKeyRef, SourceInstanceType,
    SubscriptionPeriod, Weekday,
};
use alicloud_emulator::{Emulator, EmulatorConfig};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::api::events::v1::Event;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde_json::{Value, json};

const ACCESS_KEY_ID: &str = "LTAI5tBackupPlanTests";
const ACCESS_KEY_SECRET: &str = "backup-plan-tests-secret";
const WAIT: Duration = Duration::from_secs(90);

/// One test's world: namespace, API handles and the emulator.
struct World {
    ns: String,
    client: Client,
    plans: Api<BackupPlan>,
    emulator: Emulator,
}

/// Timing of a world.
struct Timing {
    configure_delay: Duration,
    resync: Duration,
}

impl Default for Timing {
    /// Short delays: the 5 s rule has its own test.
    fn default() -> Self {
        Self {
            configure_delay: Duration::from_secs(1),
            resync: Duration::from_secs(2),
        }
    }
}

/// A namespace, an emulator and the password Secret; no controller yet.
async fn world(prefix: &str, timing: &Timing) -> World {
    let plane = alicloud_testenv::shared();
    let client = plane.client().await;
    let ns = plane.create_namespace(prefix).await;
    let emulator = Emulator::start(EmulatorConfig {
        accounts: vec![(ACCESS_KEY_ID.into(), ACCESS_KEY_SECRET.into())],
        configure_delay: timing.configure_delay,
        ..Default::default()
    })
    .await
    .expect("emulator starts");
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns);
    let secret = Secret {
        metadata: kube::api::ObjectMeta {
            name: Some("db-password".into()),
            ..Default::default()
        },
        data: Some(BTreeMap::from([(
            "password".to_owned(),
            ByteString(b"s3cret".to_vec()),
        )])),
        ..Default::default()
    };
    secrets
        .create(&PostParams::default(), &secret)
        .await
        .expect("create password Secret");
    World {
        plans: Api::namespaced(client.clone(), &ns),
        ns,
        client,
        emulator,
    }
}

/// A world with the controller running in-process.
async fn world_with_controller(prefix: &str, timing: Timing) -> World {
    let w = world(prefix, &timing).await;
    let cloud = AlibabaCloud::new(ClientConfig {
        endpoints: Endpoints::all(w.emulator.url()),
        ..Default::default()
    })
    .expect("client builds");
    let ctx = Context::new(
        w.client.clone(),
        cloud,
        Some(Arc::new(StaticCredentials(Credentials::new(
            ACCESS_KEY_ID,
            ACCESS_KEY_SECRET,
        )))),
        ControllerConfig {
            watch_namespace: Some(w.ns.clone()),
            resync_period: timing.resync,
            configure_delay: timing.configure_delay,
            min_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(3),
            throttled_delay: Duration::from_secs(2),
            deletion_timeout: Duration::from_secs(8),
            ..Default::default()
        },
        None,
    );
    tokio::spawn(controller::backup_plan::run(Arc::new(ctx)));
    w
}

/// A MySQL plan on an RDS source, scheduled Monday and Thursday at 14:22.
fn spec() -> BackupPlanSpec {
    BackupPlanSpec {
        region: "cn-hangzhou".into(),
        database_type: DatabaseType::MySQL,
        instance_class: InstanceClass::Micro,
        backup_method: BackupMethod::Logical,
        pay_type: PayType::PayAsYouGo,
        period: None,
        used_time: None,
        source: BackupSource {
            instance_type: SourceInstanceType::RDS,
            region: Some("cn-hangzhou".into()),
            instance_id: Some("rm-bp1test0001".into()),
            host: None,
            port: None,
            database_name: None,
            user_name: Some("backup".into()),
            password_secret_ref: Some(SecretKeyRef {
                name: "db-password".into(),
                key: "password".into(),
            }),
            oracle_sid: None,
            backup_gateway_id: None,
        },
        backup_objects: vec![],
        schedule: Some(BackupSchedule {
            weekdays: vec![Weekday::Monday, Weekday::Thursday],
            start_time: "14:22".into(),
        }),
        retention: None,
        storage: None,
        enable_backup_log: false,
        backup_log_interval_seconds: None,
        plan_name: None,
        deletion_policy: DeletionPolicy::Delete,
        credentials_ref: None,
        backup_plan_id: None,
    }
}

impl World {
    async fn create(&self, name: &str, spec: BackupPlanSpec) -> BackupPlan {
        self.plans
            .create(&PostParams::default(), &BackupPlan::new(name, spec))
            .await
            .expect("create BackupPlan")
    }

    /// Polls the object until `done` holds; panics with the last state seen otherwise.
    async fn wait_for(
        &self,
        name: &str,
        what: &str,
        done: impl Fn(&BackupPlan) -> bool,
    ) -> BackupPlan {
        let start = Instant::now();
        loop {
            let obj = self.plans.get(name).await.expect("get BackupPlan");
            if done(&obj) {
                return obj;
            }
            if start.elapsed() > WAIT {
                panic!(
                    "{name}: not {what} after {WAIT:?}; status {:#?}; emulator {:#}",
                    obj.status,
                    self.emulator.state().await
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// The id of a running plan with no object: created through `name` with `spec` under
    /// `deletionPolicy: Retain`, which is then deleted. For adoption tests.
    async fn plan_left_behind(&self, name: &str, spec: BackupPlanSpec) -> String {
        self.create(
            name,
            BackupPlanSpec {
                deletion_policy: DeletionPolicy::Retain,
                ..spec
            },
        )
        .await;
        let id = plan_id(&self.wait_ready(name).await);
        self.delete(name).await;
        self.wait_gone(name).await;
        id
    }

    async fn wait_ready(&self, name: &str) -> BackupPlan {
        self.wait_for(name, "Ready", |o| {
            ready_reason(o).as_deref() == Some("Available")
        })
        .await
    }

    async fn wait_gone(&self, name: &str) {
        let start = Instant::now();
        while self
            .plans
            .get_opt(name)
            .await
            .expect("get BackupPlan")
            .is_some()
        {
            assert!(start.elapsed() < WAIT, "{name} still exists after {WAIT:?}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    async fn delete(&self, name: &str) {
        self.plans
            .delete(name, &DeleteParams::default())
            .await
            .expect("delete BackupPlan");
    }

    /// The emulator's plans and call log.
    async fn plans_at_dbs(&self) -> Vec<Value> {
        self.emulator.state().await["plans"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    async fn plan_at_dbs(&self, id: &str) -> Value {
        self.plans_at_dbs()
            .await
            .into_iter()
            .find(|p| p["backupPlanId"] == id)
            .unwrap_or(Value::Null)
    }

    async fn calls(&self, action: &str) -> Vec<Value> {
        let state = self.emulator.state().await;
        state["calls"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|c| c["action"] == action)
            .cloned()
            .collect()
    }

    async fn call_count(&self) -> usize {
        self.emulator.state().await["calls"]
            .as_array()
            .map_or(0, Vec::len)
    }

    /// Reasons of the Events recorded about `name`.
    async fn event_reasons(&self, name: &str) -> Vec<(String, String)> {
        let events: Api<Event> = Api::namespaced(self.client.clone(), &self.ns);
        let list = events
            .list(&ListParams::default())
            .await
            .expect("list Events");
        list.items
            .into_iter()
            .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name))
            .map(|e| (e.type_.unwrap_or_default(), e.reason.unwrap_or_default()))
            .collect()
    }

    /// Every Event about `name` once all of `expected` (type, reason) are among them. Events are
    /// published after the status write they describe, so a test that has just seen the status
    /// waits for them rather than reading once.
    async fn wait_events(&self, name: &str, expected: &[(&str, &str)]) -> Vec<(String, String)> {
        let start = Instant::now();
        loop {
            let events = self.event_reasons(name).await;
            let missing = expected
                .iter()
                .any(|(t, r)| !events.iter().any(|(et, er)| et == t && er == r));
            if !missing {
                return events;
            }
            assert!(
                start.elapsed() < WAIT,
                "{name}: Events {expected:?} not all recorded after {WAIT:?}; seen {events:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

fn condition(
    obj: &BackupPlan,
    type_: &str,
) -> Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition> {
    obj.status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == type_)
        .cloned()
}

fn ready_reason(obj: &BackupPlan) -> Option<String> {
    condition(obj, "Ready")
        .filter(|c| c.status == "True")
        .map(|c| c.reason)
}

fn plan_id(obj: &BackupPlan) -> String {
    obj.status
        .as_ref()
        .and_then(|s| s.backup_plan_id.clone())
        .expect("status.backupPlanId")
}

#[tokio::test(flavor = "multi_thread")]
async fn create_configures_five_seconds_after_create_then_runs() {
    let w = world_with_controller(
        "bp-create",
        Timing {
            configure_delay: Duration::from_secs(5),
            ..Default::default()
        },
    )
    .await;
    w.create("orders", spec()).await;

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

    let obj = w.wait_ready("orders").await;
    let status = obj.status.clone().expect("status");
    let id = plan_id(&obj);
    assert!(
        status.order_id.is_some() && status.created_at.is_some(),
        "{status:#?}"
    );
    assert_eq!(status.cloud_status.as_deref(), Some("running"));
    assert!(status.last_sync_time.is_some());
    assert_eq!(status.observed_generation, obj.metadata.generation);

    let create = w.calls("CreateBackupPlan").await;
    let configure = w.calls("ConfigureBackupPlan").await;
    assert_eq!(create.len(), 1, "one CreateBackupPlan: {create:?}");
    let created_ms = create[0]["timeMs"].as_i64().expect("timeMs");
    assert!(!configure.is_empty(), "ConfigureBackupPlan was called");
    for c in &configure {
        let after = c["timeMs"].as_i64().expect("timeMs") - created_ms;
        assert!(
            after >= 5000,
            "ConfigureBackupPlan only {after} ms after CreateBackupPlan"
        );
    }
    assert!(
        w.calls("StartBackupPlan")
            .await
            .iter()
            .any(|c| c["outcome"] == "Success")
    );
    let state = w.emulator.state().await;
    let not_ready = state["calls"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|c| c["outcome"] == "BackupPlanNotReady")
        .count();
    assert_eq!(not_ready, 0, "no BackupPlanNotReady outcome");
    let plan = w.plan_at_dbs(&id).await;
    assert_eq!(plan["status"], "running");
    assert_eq!(plan["name"], format!("{}-orders", w.ns));
    assert_eq!(plan["payType"], "postpay");
    assert_eq!(plan["backupPeriod"], "Monday,Thursday");
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
    let w = world_with_controller("bp-update", Timing::default()).await;
    w.create("weekly", spec()).await;
    let obj = w.wait_ready("weekly").await;
    let id = plan_id(&obj);

    let patch =
        json!({"spec": {"schedule": {"weekdays": ["Tuesday", "Saturday"], "startTime": "03:30"}}});
    let updated = w
        .plans
        .patch("weekly", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .expect("patch spec");
    let generation = updated.metadata.generation;
    let obj = w
        .wait_for("weekly", "Ready at the new generation", |o| {
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
            .await
            .iter()
            .any(|c| c["outcome"] == "Success")
    );
    let plan = w.plan_at_dbs(&id).await;
    assert_eq!(plan["backupPeriod"], "Tuesday,Saturday");
    assert_eq!(plan["backupStartTime"], "03:30");
}

#[tokio::test(flavor = "multi_thread")]
async fn log_interval_change_modifies_strategy_and_returns_ready() {
    let w = world_with_controller("bp-interval", Timing::default()).await;
    let physical = BackupPlanSpec {
        backup_method: BackupMethod::Physical,
        backup_log_interval_seconds: Some(300),
        ..spec()
    };
    w.create("logs", physical).await;
    let id = plan_id(&w.wait_ready("logs").await);
    assert_eq!(w.plan_at_dbs(&id).await["backupLogIntervalSeconds"], 300);

    let patch = json!({"spec": {"backupLogIntervalSeconds": 600}});
    let changed = w
        .plans
        .patch("logs", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .expect("patch spec");
    w.wait_for("logs", "Ready for the new generation", |o| {
        ready_reason(o).as_deref() == Some("Available")
            && o.status.as_ref().and_then(|s| s.observed_generation) == changed.metadata.generation
    })
    .await;
    assert_eq!(w.plan_at_dbs(&id).await["backupLogIntervalSeconds"], 600);
    // DBS does not report the interval, so it is compared with what the status recorded. A
    // resync whose status write lands while the spec patch is being acted upon can leave the
    // next reconcile with a cached status from before the Modify: at most one repeat.
    let modified = w.calls("ModifyBackupStrategy").await.len();
    assert!(
        (1..=2).contains(&modified),
        "{modified} ModifyBackupStrategy calls"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn out_of_band_schedule_change_is_reverted_after_resync() {
    let w = world_with_controller("bp-drift", Timing::default()).await;
    w.create("drifty", spec()).await;
    let id = plan_id(&w.wait_ready("drifty").await);

    let http = reqwest::Client::new();
    let url = format!("{}/_emulator/plans/{id}", w.emulator.url());
    let res = http
        .patch(&url)
        .json(&json!({"backupPeriod": "Friday"}))
        .send()
        .await
        .expect("PATCH emulator");
    assert!(
        res.status().is_success(),
        "emulator PATCH: {}",
        res.status()
    );

    let start = Instant::now();
    while w.plan_at_dbs(&id).await["backupPeriod"] != "Monday,Thursday" {
        assert!(
            start.elapsed() < WAIT,
            "drift not corrected: {:#}",
            w.emulator.state().await
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        w.calls("ModifyBackupStrategy")
            .await
            .iter()
            .any(|c| c["outcome"] == "Success")
    );
    w.wait_ready("drifty").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn steady_state_uses_one_sweep_per_resync_not_one_describe_per_object() {
    let w = world_with_controller(
        "bp-sweep",
        Timing {
            resync: Duration::from_secs(3),
            ..Default::default()
        },
    )
    .await;
    for name in ["a", "b", "c", "d"] {
        w.create(name, spec()).await;
    }
    for name in ["a", "b", "c", "d"] {
        w.wait_ready(name).await;
    }
    // Let in-flight provisioning settle, then count describes over three resync periods.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let before = w.calls("DescribeBackupPlanList").await.len();
    tokio::time::sleep(Duration::from_secs(9)).await;
    let describes = w.calls("DescribeBackupPlanList").await.len() - before;
    assert!(
        describes <= 5,
        "{describes} DescribeBackupPlanList calls for 4 objects over 3 resync periods"
    );
    assert!(describes >= 1, "the plans are still observed");
}

#[tokio::test(flavor = "multi_thread")]
async fn plan_deleted_out_of_band_stalls_and_is_not_recreated() {
    let w = world_with_controller("bp-missing", Timing::default()).await;
    w.create("vanished", spec()).await;
    let id = plan_id(&w.wait_ready("vanished").await);

    let res = reqwest::Client::new()
        .delete(format!("{}/_emulator/plans/{id}", w.emulator.url()))
        .send()
        .await
        .expect("DELETE emulator plan");
    assert!(
        res.status().is_success(),
        "emulator DELETE: {}",
        res.status()
    );

    let obj = w
        .wait_for("vanished", "Stalled CloudPlanMissing", |o| {
            condition(o, "Stalled")
                .is_some_and(|c| c.status == "True" && c.reason == "CloudPlanMissing")
        })
        .await;
    assert_eq!(
        condition(&obj, "Ready").map(|c| c.status).as_deref(),
        Some("False")
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        w.calls("CreateBackupPlan").await.len(),
        1,
        "no second CreateBackupPlan"
    );

    // Deleting the object of a plan already gone completes.
    w.delete("vanished").await;
    w.wait_gone("vanished").await;
    assert_eq!(w.calls("CreateBackupPlan").await.len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn deletion_releases_the_plan() {
    let w = world_with_controller("bp-delete", Timing::default()).await;
    w.create("doomed", spec()).await;
    let obj = w.wait_ready("doomed").await;
    assert!(
        obj.metadata
            .finalizers
            .iter()
            .flatten()
            .any(|f| f == "db.alicloud.dev/finalizer")
    );
    let id = plan_id(&obj);
    w.delete("doomed").await;
    w.wait_gone("doomed").await;
    assert_eq!(w.plan_at_dbs(&id).await["status"], "released");
}

#[tokio::test(flavor = "multi_thread")]
async fn deletion_with_retain_leaves_the_plan_running() {
    let w = world_with_controller("bp-retain", Timing::default()).await;
    w.create(
        "kept",
        BackupPlanSpec {
            deletion_policy: DeletionPolicy::Retain,
            ..spec()
        },
    )
    .await;
    let id = plan_id(&w.wait_ready("kept").await);
    w.delete("kept").await;
    w.wait_gone("kept").await;
    assert_eq!(w.plan_at_dbs(&id).await["status"], "running");
    assert!(w.calls("ReleaseBackupPlan").await.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn deleting_a_subscription_plan_stops_it_and_warns_billing_continues() {
    let w = world_with_controller("bp-prepay", Timing::default()).await;
    let sub = BackupPlanSpec {
        pay_type: PayType::Subscription,
        period: Some(SubscriptionPeriod::Month),
        used_time: Some(1),
        ..spec()
    };
    w.create("prepaid", sub).await;
    let id = plan_id(&w.wait_ready("prepaid").await);
    assert_eq!(w.plan_at_dbs(&id).await["payType"], "prepay");
    w.delete("prepaid").await;
    w.wait_gone("prepaid").await;
    assert_eq!(w.plan_at_dbs(&id).await["status"], "pause");
    assert!(w.calls("ReleaseBackupPlan").await.is_empty());
    let events = w
        .wait_events("prepaid", &[("Warning", "SubscriptionNotReleased")])
        .await;
    assert!(
        events.contains(&("Warning".into(), "SubscriptionNotReleased".into())),
        "{events:?}"
    );
    let about_billing = events
        .iter()
        .filter(|(_, reason)| reason == "SubscriptionNotReleased")
        .count();
    assert_eq!(about_billing, 1, "one Event for the transition: {events:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn paused_object_makes_no_cloud_calls_and_deletes_without_them() {
    let w = world_with_controller("bp-pause", Timing::default()).await;
    w.create("sleepy", spec()).await;
    let id = plan_id(&w.wait_ready("sleepy").await);

    let pause = json!({"metadata": {"annotations": {"db.alicloud.dev/paused": "true"}}});
    w.plans
        .patch("sleepy", &PatchParams::default(), &Patch::Merge(&pause))
        .await
        .expect("pause");
    w.wait_for("sleepy", "Ready with reason Paused", |o| {
        ready_reason(o).as_deref() == Some("Paused")
    })
    .await;
    let calls = w.call_count().await;

    // A spec change while paused is not acted upon.
    let patch = json!({"spec": {"schedule": {"weekdays": ["Sunday"], "startTime": "01:00"}}});
    w.plans
        .patch("sleepy", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .expect("patch spec");
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(w.call_count().await, calls, "no cloud call while paused");

    w.delete("sleepy").await;
    w.wait_gone("sleepy").await;
    assert_eq!(
        w.call_count().await,
        calls,
        "deleting a paused object makes no cloud call"
    );
    assert_eq!(w.plan_at_dbs(&id).await["status"], "running");
    let events = w
        .wait_events("sleepy", &[("Warning", "DeletedWhilePaused")])
        .await;
    assert!(
        events.contains(&("Warning".into(), "DeletedWhilePaused".into())),
        "{events:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn spec_change_while_paused_is_not_claimed_as_observed() {
    let w = world_with_controller("bp-pause-gen", Timing::default()).await;
    w.create("frozen", spec()).await;
    let ready = w.wait_ready("frozen").await;
    let acted = ready.metadata.generation;

    let pause = json!({"metadata": {"annotations": {"db.alicloud.dev/paused": "true"}}});
    w.plans
        .patch("frozen", &PatchParams::default(), &Patch::Merge(&pause))
        .await
        .expect("pause");
    w.wait_for("frozen", "Ready with reason Paused", |o| {
        ready_reason(o).as_deref() == Some("Paused")
    })
    .await;
    let patch = json!({"spec": {"schedule": {"weekdays": ["Sunday"], "startTime": "01:00"}}});
    let changed = w
        .plans
        .patch("frozen", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .expect("patch spec");
    assert!(changed.metadata.generation > acted);
    tokio::time::sleep(Duration::from_secs(3)).await;

    let obj = w.plans.get("frozen").await.expect("get");
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
    w.plans
        .patch("frozen", &PatchParams::default(), &Patch::Merge(&resume))
        .await
        .expect("resume");
    let obj = w
        .wait_for("frozen", "Ready for the new generation", |o| {
            ready_reason(o).as_deref() == Some("Available")
                && condition(o, "Ready").and_then(|c| c.observed_generation)
                    == o.metadata.generation
        })
        .await;
    assert_eq!(
        obj.status.and_then(|s| s.observed_generation),
        obj.metadata.generation
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn overlong_default_plan_name_stalls_without_cloud_calls() {
    let w = world_with_controller("bp-invalid", Timing::default()).await;
    let name = "a-very-long-backup-plan-object-name-that-makes-the-default-plan-name-too-long";
    w.create(name, spec()).await;
    let obj = w
        .wait_for(name, "Stalled InvalidSpec", |o| {
            condition(o, "Stalled").is_some_and(|c| c.status == "True" && c.reason == "InvalidSpec")
        })
        .await;
    assert!(condition(&obj, "Stalled").is_some_and(|c| c.message.contains("spec.planName")));
    assert_eq!(w.call_count().await, 0);
    w.delete(name).await;
    w.wait_gone(name).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn missing_password_secret_stalls_without_creating() {
    let w = world_with_controller("bp-secret", Timing::default()).await;
    let mut s = spec();
    s.source.password_secret_ref = Some(SecretKeyRef {
        name: "absent".into(),
        key: "password".into(),
    });
    w.create("nosecret", s).await;
    w.wait_for("nosecret", "Stalled SecretNotUsable", |o| {
        condition(o, "Stalled").is_some_and(|c| c.status == "True" && c.reason == "SecretNotUsable")
    })
    .await;
    assert!(w.calls("CreateBackupPlan").await.is_empty());
    w.delete("nosecret").await;
    w.wait_gone("nosecret").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn rotated_password_is_sent_again_promptly() {
    let w = world_with_controller(
        "bp-rotate",
        // A resync longer than the test: the Secret watch alone must notice the rotation.
        Timing {
            resync: Duration::from_secs(300),
            ..Default::default()
        },
    )
    .await;
    w.create("rotating", spec()).await;
    w.wait_ready("rotating").await;
    let secrets: Api<Secret> = Api::namespaced(w.client.clone(), &w.ns);
    let patch = json!({"data": {"password": "bmV3LXBhc3N3b3Jk"}});
    secrets
        .patch(
            "db-password",
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await
        .expect("rotate");
    let start = Instant::now();
    while !w
        .calls("ModifyBackupSourceEndpoint")
        .await
        .iter()
        .any(|c| c["outcome"] == "Success")
    {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "password not re-applied within 20 s: {:#}",
            w.emulator.state().await
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    w.wait_ready("rotating").await;
}

/// The operator binary as a child process, killed when dropped.
struct Operator(Child);

impl Operator {
    fn start(w: &World, failpoint: Option<&str>) -> Self {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_alicloud-db-operator"));
        cmd.args([
            "run",
            "--watch-namespace",
            &w.ns,
            "--dbs-endpoint",
            &w.emulator.url(),
        ])
        .args([
            "--configure-delay",
            "1s",
            "--resync-period",
            "2s",
            "--min-backoff",
            "200ms",
            // Any free port: several operator processes run at once in the test suite.
            "--metrics-addr",
            "127.0.0.1:0",
        ])
        .env("KUBECONFIG", alicloud_testenv::shared().kubeconfig_path())
        .env("ALIBABA_CLOUD_ACCESS_KEY_ID", ACCESS_KEY_ID)
        .env("ALIBABA_CLOUD_ACCESS_KEY_SECRET", ACCESS_KEY_SECRET)
        .env("RUST_LOG", "info,alicloud_db_operator=debug")
        .env_remove("ALICLOUD_DB_OPERATOR_FAILPOINT")
        .stdin(Stdio::null());
        // The log goes to a file; its path is printed, which the harness shows on failure.
        let log =
            std::env::temp_dir().join(format!("{}-operator-{}.log", w.ns, std::process::id()));
        if let Ok(file) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
        {
            cmd.stderr(file);
            eprintln!("operator log: {}", log.display());
        }
        if let Some(f) = failpoint {
            cmd.env("ALICLOUD_DB_OPERATOR_FAILPOINT", f);
        }
        Self(cmd.spawn().expect("start the operator binary"))
    }
}

impl Operator {
    /// Waits until the failpoint has SIGKILLed the process.
    async fn wait_killed_by_failpoint(&mut self) {
        use std::os::unix::process::ExitStatusExt;
        let start = Instant::now();
        let exit = loop {
            if let Some(status) = self.0.try_wait().expect("poll the operator") {
                break status;
            }
            assert!(start.elapsed() < WAIT, "the failpoint never fired");
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        assert_eq!(exit.signal(), Some(9), "killed by SIGKILL: {exit:?}");
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn restart_after_create_does_not_duplicate() {
    let w = world("bp-crash", &Timing::default()).await;
    let mut first = Operator::start(&w, Some("kill-after-create-backup-plan"));
    w.create("survivor", spec()).await;
    first.wait_killed_by_failpoint().await;
    let obj = w.plans.get("survivor").await.expect("get");
    assert!(
        obj.status
            .as_ref()
            .and_then(|s| s.backup_plan_id.as_ref())
            .is_none(),
        "the id never reached the status"
    );
    assert_eq!(w.plans_at_dbs().await.len(), 1, "the plan exists at DBS");

    let _second = Operator::start(&w, None);
    let obj = w.wait_ready("survivor").await;
    let plans = w.plans_at_dbs().await;
    assert_eq!(plans.len(), 1, "exactly one plan: {plans:#?}");
    assert_eq!(plans[0]["backupPlanId"], plan_id(&obj).as_str());
    assert_eq!(plans[0]["status"], "running");
}

#[tokio::test(flavor = "multi_thread")]
async fn deletion_after_a_lost_create_answer_releases_the_plan_created() {
    let w = world("bp-crash-delete", &Timing::default()).await;
    let mut first = Operator::start(&w, Some("kill-after-create-backup-plan"));
    w.create("orphan-candidate", spec()).await;
    first.wait_killed_by_failpoint().await;
    let obj = w.plans.get("orphan-candidate").await.expect("get");
    let status = obj.status.clone().unwrap_or_default();
    assert!(
        status.backup_plan_id.is_none(),
        "the id never reached the status"
    );
    assert!(
        status.client_token.is_some(),
        "the ClientToken was persisted before the call"
    );
    let plans = w.plans_at_dbs().await;
    assert_eq!(plans.len(), 1, "the plan exists at DBS: {plans:#?}");
    let created_id = plans[0]["backupPlanId"].as_str().expect("an id").to_owned();

    // Deleted while no operator runs; the next operator finds and releases the plan.
    w.delete("orphan-candidate").await;
    let _second = Operator::start(&w, None);
    w.wait_gone("orphan-candidate").await;
    let plans = w.plans_at_dbs().await;
    assert_eq!(plans.len(), 1, "no second plan: {plans:#?}");
    assert_eq!(plans[0]["backupPlanId"], created_id.as_str());
    assert_eq!(plans[0]["status"], "released", "{plans:#?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_adopted_subscription_plan_is_stopped_not_released_whatever_the_spec_says() {
    let w = world_with_controller("bp-adopt-prepay", Timing::default()).await;
    let id = w
        .plan_left_behind(
            "bought",
            BackupPlanSpec {
                pay_type: PayType::Subscription,
                period: Some(SubscriptionPeriod::Month),
                used_time: Some(1),
                ..spec()
            },
        )
        .await;

    // Adopted by an object that says PayAsYouGo (the default).
    w.create(
        "adopter",
        BackupPlanSpec {
            backup_plan_id: Some(id.clone()),
            ..spec()
        },
    )
    .await;
    w.wait_ready("adopter").await;
    w.delete("adopter").await;
    w.wait_gone("adopter").await;
    assert_eq!(w.plan_at_dbs(&id).await["status"], "pause");
    assert!(
        w.calls("ReleaseBackupPlan").await.is_empty(),
        "a subscription plan is never sent to ReleaseBackupPlan"
    );
    assert!(!w.calls("DescribeBackupPlanBilling").await.is_empty());
    w.wait_events("adopter", &[("Warning", "SubscriptionNotReleased")])
        .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn existing_plan_is_adopted_without_create_and_brought_in_line() {
    let w = world_with_controller("bp-adopt", Timing::default()).await;
    let id = w.plan_left_behind("original", spec()).await;

    let adopted = BackupPlanSpec {
        backup_plan_id: Some(id.clone()),
        schedule: Some(BackupSchedule {
            weekdays: vec![Weekday::Wednesday],
            start_time: "22:00".into(),
        }),
        ..spec()
    };
    w.create("adopter", adopted).await;
    let obj = w.wait_ready("adopter").await;
    assert_eq!(plan_id(&obj), id);
    assert_eq!(
        w.calls("CreateBackupPlan").await.len(),
        1,
        "adoption creates nothing"
    );
    let plan = w.plan_at_dbs(&id).await;
    assert_eq!(
        plan["name"],
        format!("{}-adopter", w.ns),
        "renamed with ModifyBackupPlanName"
    );
    assert_eq!(plan["backupPeriod"], "Wednesday");
    assert_eq!(plan["backupStartTime"], "22:00");
}

#[tokio::test(flavor = "multi_thread")]
async fn deletion_without_usable_credentials_gives_up_after_the_timeout() {
    let w = world_with_controller("bp-nocreds", Timing::default()).await;
    let secrets: Api<Secret> = Api::namespaced(w.client.clone(), &w.ns);
    let creds = Secret {
        metadata: kube::api::ObjectMeta {
            name: Some("alicloud".into()),
            ..Default::default()
        },
        string_data: Some(BTreeMap::from([
            ("accessKeyId".to_owned(), ACCESS_KEY_ID.to_owned()),
            ("accessKeySecret".to_owned(), ACCESS_KEY_SECRET.to_owned()),
        ])),
        ..Default::default()
    };
    secrets
        .create(&PostParams::default(), &creds)
        .await
        .expect("create credentials Secret");
    w.create(
        "orphan",
        BackupPlanSpec {
            credentials_ref: Some(CredentialsRef {
                name: "alicloud".into(),
            }),
            ..spec()
        },
    )
    .await;
    let id = plan_id(&w.wait_ready("orphan").await);

    secrets
        .delete("alicloud", &DeleteParams::default())
        .await
        .expect("delete credentials Secret");
    // The Secret is protected while in use; an administrator forces it away.
    secrets
        .patch(
            "alicloud",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"finalizers": null}})),
        )
        .await
        .expect("remove the credentials Secret's finalizers");
    w.delete("orphan").await;
    w.wait_gone("orphan").await;
    assert_eq!(
        w.plan_at_dbs(&id).await["status"],
        "running",
        "the plan remains"
    );
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
    let w = world_with_controller("bp-throttle", Timing::default()).await;
    let res = reqwest::Client::new()
        .post(format!(
            "{}/_emulator/faults/CreateBackupPlan/once",
            w.emulator.url()
        ))
        .json(&json!({"code": "Throttling.User", "httpStatus": 400, "count": 6}))
        .send()
        .await
        .expect("inject throttling");
    assert!(
        res.status().is_success(),
        "emulator fault: {}",
        res.status()
    );
    w.create("busy", spec()).await;
    w.wait_for("busy", "Reconciling CloudThrottled", |o| {
        condition(o, "Reconciling")
            .is_some_and(|c| c.status == "True" && c.reason == "CloudThrottled")
    })
    .await;
    w.wait_ready("busy").await;
    let creates = w.calls("CreateBackupPlan").await;
    let times: Vec<i64> = creates
        .iter()
        .filter_map(|c| c["timeMs"].as_i64())
        .collect();
    let longest_gap = times
        .windows(2)
        .map(|p| p[1] - p[0])
        .max()
        .unwrap_or_default();
    assert!(
        longest_gap >= 2000,
        "a throttled reconcile waits the throttling delay: gaps {times:?}"
    );
    assert_eq!(
        creates.iter().filter(|c| c["outcome"] == "Success").count(),
        1
    );
    assert_eq!(w.plans_at_dbs().await.len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn operator_binary_stops_cleanly_on_sigterm() {
    let w = world("bp-sigterm", &Timing::default()).await;
    let mut operator = Operator::start(&w, None);
    w.create("graceful", spec()).await;
    w.wait_ready("graceful").await;
    let pid = i32::try_from(operator.0.id()).expect("pid fits");
    // SAFETY: sending a signal to our own child process has no memory-safety preconditions.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    let start = Instant::now();
    let exit = loop {
        if let Some(status) = operator.0.try_wait().expect("poll the operator") {
            break status;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "the operator ignored SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(exit.success(), "clean exit after SIGTERM: {exit:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn ready_object_is_not_rewritten_between_resyncs() {
    let w = world_with_controller(
        "bp-quiet",
        Timing {
            resync: Duration::from_secs(300),
            ..Default::default()
        },
    )
    .await;
    w.create("quiet", spec()).await;
    let ready = w.wait_ready("quiet").await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let settled = w.plans.get("quiet").await.expect("get");
    let calls = w.call_count().await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    let later = w.plans.get("quiet").await.expect("get");
    assert_eq!(
        settled.metadata.resource_version, later.metadata.resource_version,
        "no status rewrites while nothing changes"
    );
    assert_eq!(
        w.call_count().await,
        calls,
        "no cloud calls between resyncs"
    );
    assert_eq!(ready_reason(&later).as_deref(), Some("Available"));
    assert_eq!(plan_id(&ready), plan_id(&later));
}
