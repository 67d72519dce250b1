//! The RdsConnection controller against a real kube-apiserver and the Alibaba Cloud emulator,
//! over HTTP with the real client. Each test runs its own controller (watching only its own
//! namespace) and its own emulator, and asserts on what a user sees: status, the endpoint
//! Secret, Events, and the emulator's inventory and call log.

#[allow(dead_code)]
mod common;

use std::time::{Duration, Instant};

use alicloud_db_operator::crd::RdsConnection;
use futures::future::join_all;
use k8s_openapi::api::core::v1::Secret;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use serde_json::json;

use common::{
    ACCESS_KEY_ID, CREDENTIALS, Controller, REGION, Setup, World, eventually, is, is_ready,
    rds_connection, secret_value,
};

/// What a world running the RdsConnection controller with the RDS instances `ids` needs:
/// resync every 5 minutes (the default), a deletion given up after 3 s, and only the
/// credentials Secret authenticates.
fn connections(ids: &[&str]) -> Setup {
    Setup {
        controllers: vec![Controller::RdsConnection],
        instances: ids.iter().map(|s| (*s).to_owned()).collect(),
        resync: Duration::from_secs(300),
        deletion_timeout: Duration::from_secs(3),
        operator_credentials: false,
        ..Setup::default()
    }
}

/// A world running the RdsConnection controller with the RDS instances `ids`.
async fn start(prefix: &str, ids: &[&str]) -> World {
    World::start(prefix, connections(ids)).await
}

/// An RdsConnection using the namespace's credentials and writing `<name>-endpoint`.
fn connection(name: &str, instance: &str, prefix: &str, port: i32) -> RdsConnection {
    rds_connection(name, instance, prefix, port, CREDENTIALS)
}

/// Waits until the RdsConnection `name` is Ready for its current generation.
async fn ready(w: &World, name: &str) -> RdsConnection {
    w.wait_ready(name).await
}

/// Deletes the RdsConnection `name` and waits until its finalizer has let it go.
async fn delete_and_wait(w: &World, name: &str) {
    w.delete::<RdsConnection>(name).await;
    w.wait_gone::<RdsConnection>(name).await;
}

/// How many more calls of `action` (with `outcome`, when given) the emulator logs over the
/// next `seconds`: the hot-loop tests measure a rate, so this window is their measurement.
async fn calls_within(w: &World, action: &str, outcome: Option<&str>, seconds: u64) -> usize {
    let count = |calls: Vec<(String, u16)>| {
        calls
            .iter()
            .filter(|(o, _)| outcome.is_none_or(|wanted| o == wanted))
            .count()
    };
    let before = count(w.outcomes(action));
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    count(w.outcomes(action)) - before
}

/// Waits until the endpoint Secret `name` has `port`.
async fn wait_secret(w: &World, name: &str, port: &str) -> Secret {
    eventually(
        &format!("Secret {name} with port {port}"),
        Duration::from_secs(30),
        || async {
            let secret = w.secret(name).await.ok_or("no Secret")?;
            if secret_value(&secret, "port") == port {
                Ok(secret)
            } else {
                Err(format!("{:?}", secret.data))
            }
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_publishes_secret_port_and_prefix_changes_modify_and_delete_releases() {
    let w = start("rdsconn-life", &["rm-lifecycle01"]).await;
    w.create(&connection("orders", "rm-lifecycle01", "orders-db", 3306))
        .await;

    let obj = ready(&w, "orders").await;
    let status = obj.status.as_ref().expect("status");
    assert_eq!(
        status.connection_string.as_deref(),
        Some("orders-db.mysql.rds.aliyuncs.com")
    );
    assert_eq!(status.port, Some(3306));
    assert!(
        status
            .ip_address
            .as_deref()
            .is_some_and(|ip| !ip.is_empty()),
        "{status:?}"
    );
    assert_eq!(status.instance_status.as_deref(), Some("Running"));
    assert!(status.last_sync_time.is_some());
    assert!(
        status
            .conditions
            .iter()
            .all(|c| c.observed_generation == obj.metadata.generation)
    );
    assert!(
        obj.finalizers()
            .contains(&"db.alicloud.dev/finalizer".to_owned())
    );

    let secret = w.secret("orders-endpoint").await.expect("endpoint Secret");
    assert_eq!(
        secret_value(&secret, "host"),
        "orders-db.mysql.rds.aliyuncs.com"
    );
    assert_eq!(secret_value(&secret, "port"), "3306");
    assert_eq!(
        secret_value(&secret, "endpoint"),
        "orders-db.mysql.rds.aliyuncs.com:3306"
    );
    let owner = &secret.owner_references()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.name.as_str(), owner.controller),
        ("RdsConnection", "orders", Some(true))
    );
    assert_eq!(owner.uid, obj.uid().expect("uid"));
    w.wait_events("orders", &[("Normal", "Available")]).await;

    // Ready and unchanged: no cloud call until the resync period (5 min) is due, and an endpoint
    // Secret deleted by hand comes back from the status alone. The reconcile that the endpoint
    // Secret's creation triggered may still be observing (it can read the cache from before the
    // Ready write), so the count is taken once it has settled.
    let calls_when_ready = w.settled_call_count().await;
    w.secrets()
        .delete("orders-endpoint", &DeleteParams::default())
        .await
        .expect("delete endpoint Secret");
    // Its return proves a reconcile ran; the ones its creation triggers finish too.
    let secret = wait_secret(&w, "orders-endpoint", "3306").await;
    assert_eq!(
        secret_value(&secret, "host"),
        "orders-db.mysql.rds.aliyuncs.com"
    );
    w.reconcile_mark().await;
    assert_eq!(
        w.call_count(),
        calls_when_ready,
        "a Ready object is not polled before its resync period"
    );

    // Port change: ModifyDBInstanceConnectionString, then Ready with the new port everywhere.
    w.patch::<RdsConnection>("orders", json!({"spec": {"port": 4406}}))
        .await;
    let obj = w
        .wait_for("orders", "Ready on port 4406", |o: &RdsConnection| {
            is_ready(o) && o.status.as_ref().and_then(|s| s.port) == Some(4406)
        })
        .await;
    assert_eq!(obj.status.as_ref().and_then(|s| s.port), Some(4406));
    let secret = wait_secret(&w, "orders-endpoint", "4406").await;
    assert_eq!(
        secret_value(&secret, "endpoint"),
        "orders-db.mysql.rds.aliyuncs.com:4406"
    );
    let public = w.public_connections("rm-lifecycle01");
    assert_eq!(public.len(), 1, "{public:?}");
    assert_eq!(public[0].port, 4406);
    assert_eq!(
        w.outcomes("ModifyDBInstanceConnectionString"),
        vec![("Success".to_owned(), 200)]
    );

    // Prefix change: the same endpoint is renamed by Modify, never allocated anew.
    let prefix = json!({"spec": {"connectionStringPrefix": "orders-db-v2"}});
    w.patch::<RdsConnection>("orders", prefix).await;
    let obj = w
        .wait_for(
            "orders",
            "Ready under the new prefix",
            |o: &RdsConnection| {
                is_ready(o)
                    && o.status
                        .as_ref()
                        .and_then(|s| s.connection_string.as_deref())
                        == Some("orders-db-v2.mysql.rds.aliyuncs.com")
            },
        )
        .await;
    assert_eq!(obj.status.as_ref().and_then(|s| s.port), Some(4406));
    let secret = w.secret("orders-endpoint").await.expect("endpoint Secret");
    assert_eq!(
        secret_value(&secret, "endpoint"),
        "orders-db-v2.mysql.rds.aliyuncs.com:4406"
    );
    let public = w.public_connections("rm-lifecycle01");
    assert_eq!(public.len(), 1, "{public:?}");
    assert_eq!(
        public[0].connection_string,
        "orders-db-v2.mysql.rds.aliyuncs.com"
    );
    assert_eq!(w.outcomes("ModifyDBInstanceConnectionString").len(), 2);

    // Delete: released at the emulator, then the object goes.
    delete_and_wait(&w, "orders").await;
    assert!(w.public_connections("rm-lifecycle01").is_empty());
    assert_eq!(
        w.outcomes("ReleaseInstanceConnection"),
        vec![("Success".to_owned(), 200)]
    );
    assert_eq!(
        w.outcomes("AllocateInstancePublicConnection"),
        vec![("Success".to_owned(), 200)],
        "exactly one allocation over the whole life"
    );
}

/// The calls that change anything at RDS, with their outcomes.
fn mutating_calls(w: &World) -> Vec<(String, String)> {
    let state = w.snapshot();
    MUTATING
        .iter()
        .flat_map(|action| {
            state
                .calls_of(action)
                .map(|c| (c.action.clone(), c.outcome.clone()))
                .collect::<Vec<_>>()
        })
        .collect()
}

/// The RDS actions that change an instance's endpoints.
const MUTATING: [&str; 3] = [
    "AllocateInstancePublicConnection",
    "ModifyDBInstanceConnectionString",
    "ReleaseInstanceConnection",
];

/// The message of the condition `type_` of `obj`.
fn message(obj: &RdsConnection, type_: &str) -> String {
    common::condition(obj, type_)
        .map(|c| c.message)
        .unwrap_or_default()
}

/// The value of the annotation recording the endpoint prefix of `obj`.
fn recorded_prefix(obj: &RdsConnection) -> Option<String> {
    obj.annotations()
        .get("db.alicloud.dev/connection-string-prefix")
        .cloned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoint_made_out_of_band_stalls_with_endpoint_exists_and_is_never_touched() {
    let w = start("rdsconn-foreign", &["rm-foreign001"]).await;
    // Made by hand (or Terraform), with exactly the prefix the object will ask for.
    w.add_public_connection("rm-foreign001", "legacy-app").await;

    w.create(&connection("legacy", "rm-foreign001", "legacy-app", 3306))
        .await;
    let obj = w
        .wait_condition::<RdsConnection>("legacy", "Stalled", "EndpointExists")
        .await;
    assert!(is(&obj, "Ready", "False", "EndpointExists"));
    let stalled = message(&obj, "Stalled");
    assert!(
        stalled.contains("legacy-app.mysql.rds.aliyuncs.com") && stalled.contains("adopt: true"),
        "the message names the endpoint and the way to take it over: {stalled}"
    );
    w.expect_event("legacy", "Warning", "EndpointExists").await;
    assert_eq!(mutating_calls(&w), vec![], "no mutating call");
    assert!(
        w.secret("legacy-endpoint").await.is_none(),
        "no endpoint Secret"
    );

    // Deleting the object releases nothing: the endpoint was never its.
    delete_and_wait(&w, "legacy").await;
    assert_eq!(mutating_calls(&w), vec![], "no release either");
    assert_eq!(w.public_connections("rm-foreign001").len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn adopt_takes_over_an_existing_endpoint_and_deletion_releases_it() {
    let w = start("rdsconn-adopt", &["rm-adopt0001"]).await;
    w.add_public_connection("rm-adopt0001", "legacy-app").await;

    let mut obj = connection("legacy", "rm-adopt0001", "legacy-app", 3306);
    obj.spec.adopt = true;
    w.create(&obj).await;
    let obj = ready(&w, "legacy").await;
    assert_eq!(
        obj.status
            .as_ref()
            .and_then(|s| s.connection_string.as_deref()),
        Some("legacy-app.mysql.rds.aliyuncs.com")
    );
    assert_eq!(recorded_prefix(&obj).as_deref(), Some("legacy-app"));
    let secret = w.secret("legacy-endpoint").await.expect("endpoint Secret");
    assert_eq!(
        secret_value(&secret, "endpoint"),
        "legacy-app.mysql.rds.aliyuncs.com:3306"
    );
    assert_eq!(mutating_calls(&w), vec![], "adopted as is, never allocated");

    delete_and_wait(&w, "legacy").await;
    assert!(w.public_connections("rm-adopt0001").is_empty());
    assert_eq!(
        w.outcomes("ReleaseInstanceConnection"),
        vec![("Success".to_owned(), 200)],
        "the adopted endpoint is released with the object"
    );
}

/// A backup/restore or `kubectl get -o yaml | kubectl apply` into another cluster keeps the
/// annotations but not the status (and gives a new UID): the annotation alone says the endpoint
/// is the object's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_object_recreated_from_its_exported_yaml_finds_its_endpoint_without_allocating() {
    let w = start("rdsconn-restore", &["rm-restore001"]).await;
    w.create(&connection(
        "orders",
        "rm-restore001",
        "orders-restore",
        3306,
    ))
    .await;
    let original = ready(&w, "orders").await;
    assert_eq!(
        recorded_prefix(&original).as_deref(),
        Some("orders-restore"),
        "the prefix is recorded on the object"
    );
    let exported: RdsConnection = serde_json::from_value(json!({
        "apiVersion": "db.alicloud.dev/v1alpha1",
        "kind": "RdsConnection",
        "metadata": {
            "name": original.name_any(),
            "annotations": original.annotations(),
        },
        "spec": original.spec,
    }))
    .expect("exported object");

    // The original goes without releasing anything (abandoned), as when a cluster is lost.
    w.patch::<RdsConnection>(
        "orders",
        json!({"metadata": {"annotations": {"db.alicloud.dev/abandon": "true"}}}),
    )
    .await;
    delete_and_wait(&w, "orders").await;
    assert_eq!(w.public_connections("rm-restore001").len(), 1);
    // Its endpoint Secret goes with it: the garbage collector sees to that, perhaps not yet.
    match w
        .secrets()
        .delete("orders-endpoint", &DeleteParams::default())
        .await
    {
        Ok(_) => {}
        Err(kube::Error::Api(status)) if status.code == 404 => {}
        Err(e) => panic!("delete the old endpoint Secret: {e}"),
    }
    let allocations = w.outcomes("AllocateInstancePublicConnection");
    assert_eq!(allocations, vec![("Success".to_owned(), 200)]);

    w.create(&exported).await;
    let restored = ready(&w, "orders").await;
    assert_ne!(restored.uid(), original.uid(), "a new object");
    assert_eq!(
        restored
            .status
            .as_ref()
            .and_then(|s| s.connection_string.as_deref()),
        Some("orders-restore.mysql.rds.aliyuncs.com")
    );
    assert_eq!(
        w.outcomes("AllocateInstancePublicConnection"),
        allocations,
        "no Allocate for the restored object"
    );
    assert_eq!(w.public_connections("rm-restore001").len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_existing_user_secret_is_never_overwritten_or_owned() {
    let w = start("rdsconn-usersecret", &["rm-usersec001"]).await;
    let mine: Secret = serde_json::from_value(json!({
        "metadata": {"name": "mine-endpoint", "labels": {"app": "mine"}},
        "stringData": {"password": "keep-me", "host": "db.internal"}
    }))
    .expect("secret");
    let mine = w
        .secrets()
        .create(&PostParams::default(), &mine)
        .await
        .expect("create the user's Secret");

    w.create(&connection("mine", "rm-usersec001", "mine-app", 3306))
        .await;
    let obj = w
        .wait_condition::<RdsConnection>("mine", "Stalled", "SecretExists")
        .await;
    assert!(is(&obj, "Ready", "False", "SecretExists"));
    let stalled = message(&obj, "Stalled");
    assert!(stalled.contains("mine-endpoint"), "{stalled}");
    w.expect_event("mine", "Warning", "SecretExists").await;
    let untouched = |now: &Secret, when: &str| {
        assert_eq!(now.data, mine.data, "{when}: data unchanged");
        assert_eq!(
            now.metadata.owner_references, mine.metadata.owner_references,
            "{when}: no ownerReference"
        );
        assert_eq!(now.metadata.labels, mine.metadata.labels, "{when}: labels");
    };
    untouched(
        &w.secret("mine-endpoint").await.expect("Secret"),
        "while stalled",
    );
    // Looked at again on change or at the resync (5 min), not in a loop.
    let more = calls_within(&w, "DescribeDBInstanceNetInfo", None, 3).await;
    assert!(more <= 1, "{more} more reads in 3 s");

    delete_and_wait(&w, "mine").await;
    untouched(
        &w.secret("mine-endpoint")
            .await
            .expect("the user's Secret remains"),
        "after deletion",
    );
}

/// A status write (the throttling failure reported) triggers the next reconcile at once; the
/// backoff must still hold that reconcile for the throttled delay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_throttled_call_is_retried_no_earlier_than_the_throttled_delay_then_ready() {
    let delay = Duration::from_secs(3);
    let setup = Setup {
        throttled_delay: delay,
        ..connections(&["rm-throttle01"])
    };
    let w = World::start("rdsconn-throttle", setup).await;
    // Every attempt the client makes within one call is throttled: the call fails.
    let attempts = alicloud_db_operator::cloud::ClientConfig::default().max_attempts;
    let throttled = ("Throttling.User", 400);
    common::fail_next(
        &w.emulator,
        "AllocateInstancePublicConnection",
        throttled,
        attempts,
    )
    .await;
    w.create(&connection("slow", "rm-throttle01", "slow-app", 3306))
        .await;
    ready(&w, "slow").await;
    w.expect_event("slow", "Normal", "CloudThrottled").await;

    let calls = w.snapshot().calls;
    let last_throttled = calls
        .iter()
        .rposition(|c| c.outcome == "Throttling.User")
        .expect("a throttled call");
    let next = calls
        .get(last_throttled + 1)
        .expect("a call after the throttled one");
    let gap = next.time_ms - calls[last_throttled].time_ms;
    assert!(
        gap >= i64::try_from(delay.as_millis()).expect("ms"),
        "the next call ({}) came {gap} ms after the throttled one, before the {delay:?} delay",
        next.action
    );
    assert_eq!(
        w.outcomes("AllocateInstancePublicConnection")
            .iter()
            .filter(|(o, _)| o == "Success")
            .count(),
        1
    );
    assert_eq!(w.public_connections("rm-throttle01").len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn busy_instance_is_waited_for_then_becomes_ready() {
    let w = start("rdsconn-busy", &["rm-busy0001"]).await;
    w.set_instance_status("rm-busy0001", "Rebooting").await;

    w.create(&connection("busy", "rm-busy0001", "busy-app", 3306))
        .await;
    let obj = w
        .wait_condition::<RdsConnection>("busy", "Reconciling", "WaitingForInstance")
        .await;
    assert!(is(&obj, "Ready", "False", "WaitingForInstance"));
    assert_eq!(
        obj.status
            .as_ref()
            .and_then(|s| s.instance_status.as_deref()),
        Some("Rebooting")
    );
    // Still waiting once the controller has looked at the instance twice more (each look
    // follows the previous reconcile), and nothing was attempted on the busy instance.
    let looked = w.calls("DescribeDBInstanceAttribute").len();
    eventually(
        "two more looks at the busy instance",
        Duration::from_secs(30),
        || async {
            let now = w.calls("DescribeDBInstanceAttribute").len();
            (now >= looked + 2)
                .then_some(())
                .ok_or(format!("{now} looks, {looked} before"))
        },
    )
    .await;
    let obj: RdsConnection = w.get("busy").await;
    assert!(
        is(&obj, "Reconciling", "True", "WaitingForInstance"),
        "{:?}",
        obj.status
    );
    assert!(w.outcomes("AllocateInstancePublicConnection").is_empty());

    w.set_instance_status("rm-busy0001", "Running").await;
    let obj = ready(&w, "busy").await;
    assert_eq!(
        obj.status
            .as_ref()
            .and_then(|s| s.connection_string.as_deref()),
        Some("busy-app.mysql.rds.aliyuncs.com")
    );
    assert_eq!(
        w.outcomes("AllocateInstancePublicConnection"),
        vec![("Success".to_owned(), 200)]
    );
}

/// The reconcile that allocates writes the prefix annotation first. That write of its own must
/// not wake the object at once: the instance is busy with the new endpoint, so a look right
/// after the Allocate is wasted (at 1,000 connections it made the describes, paced by the
/// quota, a third more), and kube's scheduler would drop the reconcile's own requeue for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_allocating_reconcile_is_not_woken_by_its_own_annotation() {
    let w = World::start(
        "rdsconn-quiet",
        Setup {
            instance_busy: Duration::from_secs(1),
            ..connections(&["rm-quiet0001"])
        },
    )
    .await;
    w.create(&connection("quiet", "rm-quiet0001", "quiet-app", 3306))
        .await;
    ready(&w, "quiet").await;
    let state = w.snapshot();
    let allocated = state
        .calls_of("AllocateInstancePublicConnection")
        .map(|c| c.time_ms)
        .collect::<Vec<_>>();
    assert_eq!(allocated.len(), 1, "{allocated:?}");
    let next_look = state
        .calls_of("DescribeDBInstanceNetInfo")
        .map(|c| c.time_ms)
        .find(|&t| t > allocated[0])
        .expect("a look after the Allocate");
    // The controller's instance poll interval in these tests is 200 ms.
    assert!(
        next_look - allocated[0] >= 190,
        "the instance was read again {} ms after the Allocate",
        next_look - allocated[0]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instance_refusing_a_change_as_busy_is_waited_out_not_stalled() {
    let w = start("rdsconn-refused", &["rm-refuse0001"]).await;
    let busy = ("OperationDenied.DBInstanceStatus", 400);
    common::fail_next(&w.emulator, "AllocateInstancePublicConnection", busy, 1).await;
    w.create(&connection("refused", "rm-refuse0001", "refused-app", 3306))
        .await;
    ready(&w, "refused").await;
    assert_eq!(
        w.outcomes("AllocateInstancePublicConnection"),
        vec![
            ("OperationDenied.DBInstanceStatus".to_owned(), 400),
            ("Success".to_owned(), 200)
        ]
    );
    let events = w
        .wait_events("refused", &[("Normal", "WaitingForInstance")])
        .await;
    assert!(
        events.iter().all(|(type_, _)| type_ == "Normal"),
        "a busy refusal is not a Warning: {events:?}"
    );
    assert!(
        events.contains(&("Normal".into(), "WaitingForInstance".into())),
        "{events:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_instance_stalls_with_instance_not_found() {
    let w = start("rdsconn-missing", &["rm-exists0001"]).await;
    w.create(&connection("ghost", "rm-doesnotexist", "ghost-app", 3306))
        .await;
    let obj = w
        .wait_for("ghost", "Stalled InstanceNotFound", |o: &RdsConnection| {
            is(o, "Stalled", "True", "InstanceNotFound")
        })
        .await;
    assert!(is(&obj, "Ready", "False", "InstanceNotFound"));
    assert!(w.outcomes("AllocateInstancePublicConnection").is_empty());
    w.expect_event("ghost", "Warning", "InstanceNotFound").await;
    // Deleting a stalled object needs no release: the instance does not exist.
    delete_and_wait(&w, "ghost").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prefix_taken_by_another_instance_stalls_and_is_not_mistaken_for_a_missing_instance() {
    let w = start("rdsconn-taken", &["rm-owner0001", "rm-wants0001"]).await;
    w.add_public_connection("rm-owner0001", "shared-name").await;

    w.create(&connection("wants", "rm-wants0001", "shared-name", 3306))
        .await;
    let obj = w
        .wait_condition::<RdsConnection>("wants", "Stalled", "ConnectionStringTaken")
        .await;
    assert!(is(&obj, "Ready", "False", "ConnectionStringTaken"));
    let allocations = w.outcomes("AllocateInstancePublicConnection");
    assert!(
        allocations.contains(&("InvalidConnectionString.Duplicate".to_owned(), 404)),
        "the emulator answered with the 404 duplicate: {allocations:?}"
    );
    assert!(w.public_connections("rm-wants0001").is_empty());
    assert_eq!(
        w.public_connections("rm-owner0001").len(),
        1,
        "the other instance's endpoint is untouched"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_simultaneous_deletions_are_never_throttled() {
    const N: usize = 200;
    let ids: Vec<String> = (0..N).map(|i| format!("rm-bulk{i:04}")).collect();
    let id_refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    let setup = Setup {
        instance_busy: Duration::from_millis(100),
        concurrency: 100,
        ..connections(&id_refs)
    };
    let w = World::start("rdsconn-bulk", setup).await;
    let started = Instant::now();
    let w = &w;
    let ids = &ids;
    join_all((0..N).map(|i| {
        let obj = connection(
            &format!("bulk-{i:04}"),
            &ids[i],
            &format!("bulk-endpoint-{i:04}"),
            3306,
        );
        async move { w.create(&obj).await }
    }))
    .await;
    eventually("all 200 Ready", Duration::from_secs(180), || async {
        let list = w
            .api::<RdsConnection>()
            .list(&ListParams::default())
            .await
            .map_err(|e| e.to_string())?;
        let ready = list.items.iter().filter(|o| is_ready(*o)).count();
        if ready == N {
            Ok(())
        } else {
            Err(format!("{ready}/{N} Ready"))
        }
    })
    .await;
    println!("200 Ready after {:?}", started.elapsed());

    let deleting = Instant::now();
    join_all((0..N).map(|i| {
        let name = format!("bulk-{i:04}");
        async move { w.delete::<RdsConnection>(&name).await }
    }))
    .await;
    eventually("all 200 gone", Duration::from_secs(180), || async {
        let left = w
            .api::<RdsConnection>()
            .list(&ListParams::default())
            .await
            .map_err(|e| e.to_string())?
            .items
            .len();
        if left == 0 {
            Ok(())
        } else {
            Err(format!("{left} left"))
        }
    })
    .await;
    println!("200 deleted after {:?}", deleting.elapsed());

    let state = w.snapshot();
    let throttled = state.calls_with_outcome("Throttling.User").count();
    let released = state
        .calls_of("ReleaseInstanceConnection")
        .filter(|c| c.outcome == "Success")
        .count();
    assert_eq!(throttled, 0, "no call was throttled by the emulator");
    assert_eq!(released, N, "one successful release per connection");
    let public_left = state.public_connections(None).len();
    assert_eq!(public_left, 0, "every public endpoint was released");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_prefix_and_port_are_rejected_at_admission() {
    let plane = alicloud_testenv::shared();
    let client = plane.client().await;
    let ns = plane.create_namespace("rdsconn-admission").await;
    let api: Api<RdsConnection> = Api::namespaced(client, &ns);
    let cases: &[(&str, &str, i32, &str)] = &[
        ("prefix too short", "abcd", 3306, "connectionStringPrefix"),
        (
            "prefix too long",
            &"a".repeat(41),
            3306,
            "connectionStringPrefix",
        ),
        (
            "prefix upper case",
            "OrdersDb",
            3306,
            "connectionStringPrefix",
        ),
        (
            "prefix illegal characters",
            "orders_db!",
            3306,
            "connectionStringPrefix",
        ),
        (
            "prefix leading digit",
            "1orders-db",
            3306,
            "connectionStringPrefix",
        ),
        (
            "prefix trailing hyphen",
            "orders-db-",
            3306,
            "connectionStringPrefix",
        ),
        ("port 999", "orders-db", 999, "port"),
        ("port 6000", "orders-db", 6000, "port"),
    ];
    for (i, (name, prefix, port, field)) in cases.iter().enumerate() {
        let obj = connection(&format!("bad-{i}"), "rm-admission01", prefix, *port);
        match api.create(&PostParams::default(), &obj).await {
            Err(kube::Error::Api(status)) => {
                assert_eq!(status.code, 422, "{name}: {status:?}");
                assert!(
                    status.message.contains(field),
                    "{name}: message names {field}: {}",
                    status.message
                );
            }
            other => panic!("{name}: expected a 422 rejection, got {other:?}"),
        }
    }

    // Allocate accepts 5 characters, Modify needs 8: a five-character prefix is fine on
    // create, but a change to fewer than 8 characters is refused.
    api.create(
        &PostParams::default(),
        &connection("short-ok", "rm-admission01", "abcde", 3306),
    )
    .await
    .expect("a 5-character prefix is valid on create");
    api.create(
        &PostParams::default(),
        &connection("renamed", "rm-admission01", "long-prefix", 3306),
    )
    .await
    .expect("create");
    let err = api
        .patch(
            "renamed",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"connectionStringPrefix": "short"}})),
        )
        .await
        .expect_err("a prefix change to fewer than 8 characters is rejected");
    match err {
        kube::Error::Api(status) => {
            assert_eq!(status.code, 422, "{status:?}");
            assert!(status.message.contains("8"), "{}", status.message);
        }
        other => panic!("expected a 422 rejection, got {other:?}"),
    }
    api.patch(
        "renamed",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"connectionStringPrefix": "longer-prefix"}})),
    )
    .await
    .expect("a change to 8 or more characters is accepted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paused_object_makes_no_cloud_calls_and_its_deletion_waits_for_the_user() {
    let w = start("rdsconn-paused", &["rm-paused0001"]).await;
    let mut obj = connection("paused", "rm-paused0001", "paused-app", 3306);
    obj.metadata.annotations =
        Some([("db.alicloud.dev/paused".to_owned(), "true".to_owned())].into());
    w.create(&obj).await;
    w.wait_condition::<RdsConnection>("paused", "Reconciling", "Paused")
        .await;
    let state = w.snapshot();
    assert_eq!(
        state.calls.len(),
        0,
        "a paused object makes no cloud call at all: {:?}",
        state.calls
    );

    w.delete::<RdsConnection>("paused").await;
    w.wait_condition::<RdsConnection>("paused", "Stalled", "Paused")
        .await;
    let abandon = json!({"metadata": {"annotations": {"db.alicloud.dev/abandon": "true"}}});
    w.patch::<RdsConnection>("paused", abandon).await;
    w.wait_gone::<RdsConnection>("paused").await;
    assert_eq!(w.snapshot().calls.len(), 0, "no cloud call, no release");
    w.expect_event("paused", "Warning", "Abandoned").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retain_policy_leaves_the_endpoint_on_delete() {
    let w = start("rdsconn-retain", &["rm-retain0001"]).await;
    let mut obj = connection("kept", "rm-retain0001", "kept-app", 3306);
    obj.spec.deletion_policy = alicloud_db_operator::crd::DeletionPolicy::Retain;
    w.create(&obj).await;
    ready(&w, "kept").await;
    delete_and_wait(&w, "kept").await;
    assert_eq!(w.public_connections("rm-retain0001").len(), 1);
    assert!(w.outcomes("ReleaseInstanceConnection").is_empty());
    w.expect_event("kept", "Normal", "Retained").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deletion_without_credentials_gives_up_after_the_deletion_timeout() {
    let w = start("rdsconn-nocreds", &["rm-nocreds01"]).await;
    w.create(&connection("orphan", "rm-nocreds01", "orphan-app", 3306))
        .await;
    ready(&w, "orphan").await;
    // The Secret is protected while in use; an administrator forces it away.
    w.force_delete_secret(CREDENTIALS).await;

    delete_and_wait(&w, "orphan").await;
    w.expect_event("orphan", "Warning", "CloudResourceMayRemain")
        .await;
    assert_eq!(
        w.public_connections("rm-nocreds01").len(),
        1,
        "without credentials nothing could be released"
    );
}

/// Every status write wakes the controller again: a condition message that differs on every
/// attempt (a request id in it) turns each write into another round of cloud calls.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_instance_or_a_failing_call_is_not_retried_in_a_hot_loop() {
    let w = start("rdsconn-quiet", &["rm-quiet0001"]).await;
    w.create(&connection("ghost", "rm-notthere01", "ghost-quiet", 3306))
        .await;
    w.wait_condition::<RdsConnection>("ghost", "Stalled", "InstanceNotFound")
        .await;
    let more = calls_within(&w, "DescribeDBInstanceAttribute", None, 3).await;
    assert!(
        more <= 1,
        "a stalled object waits for its resync period: {more} more calls in 3 s"
    );

    // A call the cloud keeps rejecting is retried with backoff (100 ms doubling up to 2 s).
    let rejected = ("InvalidParameter", 400);
    common::fail_always(&w.emulator, "DescribeDBInstanceNetInfo", rejected).await;
    w.create(&connection(
        "rejected",
        "rm-quiet0001",
        "rejected-app",
        3306,
    ))
    .await;
    w.wait_condition::<RdsConnection>("rejected", "Stalled", "CloudRejected")
        .await;
    let more = calls_within(&w, "DescribeDBInstanceNetInfo", None, 4).await;
    assert!(
        more <= 10,
        "retries follow the backoff: {more} calls in 4 s"
    );
}

/// A wrong secret is rejected with `SignatureDoesNotMatch`, whose message echoes the server's
/// string to sign (with the request's date and nonce): the condition must still be the same on
/// every attempt, or each status write would retrigger the next attempt at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejected_credentials_are_not_retried_in_a_hot_loop() {
    let w = start("rdsconn-badkey", &["rm-badkey0001"]).await;
    let wrong: Secret = serde_json::from_value(json!({
        "metadata": {"name": "wrong-credentials"},
        "stringData": {"accessKeyId": ACCESS_KEY_ID, "accessKeySecret": "not-the-secret"}
    }))
    .expect("secret");
    w.secrets()
        .create(&PostParams::default(), &wrong)
        .await
        .expect("create the wrong credentials Secret");
    let mut obj = connection("badkey", "rm-badkey0001", "badkey-app", 3306);
    obj.spec.credentials_ref = Some(alicloud_db_operator::crd::CredentialsRef {
        name: "wrong-credentials".into(),
    });
    w.create(&obj).await;
    w.wait_condition::<RdsConnection>("badkey", "Stalled", "InvalidCredentials")
        .await;
    let more = calls_within(
        &w,
        "DescribeDBInstanceAttribute",
        Some("SignatureDoesNotMatch"),
        4,
    )
    .await;
    assert!(
        more <= 10,
        "retries follow the backoff: {more} rejected calls in 4 s"
    );
}

/// `InstanceNetworkType` of the release is the instance's: a spec left at the default `VPC` for a
/// classic-network instance must not make every release fail and leave the endpoint behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deletion_releases_with_the_network_type_the_instance_reports() {
    let w = start("rdsconn-classic", &[]).await;
    w.admin(
        reqwest::Method::POST,
        "/instances",
        json!({"region": REGION, "dbInstanceId": "rm-classic001", "networkType": "Classic"}),
    )
    .await;
    let obj = connection("classic", "rm-classic001", "classic-app", 3306);
    assert_eq!(
        obj.spec.instance_network_type,
        alicloud_db_operator::crd::InstanceNetworkType::VPC,
        "the spec keeps the default"
    );
    w.create(&obj).await;
    ready(&w, "classic").await;
    delete_and_wait(&w, "classic").await;
    assert!(
        w.public_connections("rm-classic001").is_empty(),
        "released: {:?}",
        w.outcomes("ReleaseInstanceConnection")
    );
    let events = w.events_about("classic").await;
    assert!(
        !events.contains(&("Warning".into(), "CloudResourceMayRemain".into())),
        "{events:?}"
    );
}
