//! The RdsConnection controller against a real kube-apiserver and the Alibaba Cloud emulator,
//! over HTTP with the real client. Each test runs its own controller (watching only its own
//! namespace) and its own emulator, and asserts on what a user sees: status, the endpoint
//! Secret, Events, and the emulator's inventory and call log.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use alicloud_db_operator::cloud::limiter::Quotas;
use alicloud_db_operator::cloud::{AlibabaCloud, ClientConfig, Endpoints};
use alicloud_db_operator::controller::{self, Context, ControllerConfig};
use alicloud_db_operator::crd::RdsConnection;
use alicloud_emulator::{Emulator, EmulatorConfig};
use futures::future::join_all;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::api::events::v1::Event;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

const REGION: &str = "cn-hangzhou";
const ACCESS_KEY_ID: &str = "LTAI5trdsconnectiontest";
const ACCESS_KEY_SECRET: &str = "rds-connection-test-secret";
const CREDENTIALS: &str = "alicloud-credentials";

/// A namespace with a credentials Secret, an emulator and a controller watching that namespace.
struct Harness {
    client: kube::Client,
    ns: String,
    emulator: Emulator,
    connections: Api<RdsConnection>,
    http: reqwest::Client,
    controller: tokio::task::JoinHandle<()>,
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.controller.abort();
    }
}

/// What a test needs from the emulator and controller.
struct Setup {
    instances: Vec<String>,
    instance_busy: Duration,
    concurrency: u16,
}

impl Setup {
    fn instances(ids: &[&str]) -> Self {
        Self {
            instances: ids.iter().map(|s| (*s).to_owned()).collect(),
            instance_busy: Duration::from_millis(300),
            concurrency: 8,
        }
    }
}

async fn start(prefix: &str, setup: Setup) -> Harness {
    let plane = alicloud_testenv::shared();
    let client = plane.client().await;
    let ns = plane.create_namespace(prefix).await;
    let emulator = Emulator::start(EmulatorConfig {
        accounts: vec![(ACCESS_KEY_ID.into(), ACCESS_KEY_SECRET.into())],
        rds_instances: setup
            .instances
            .iter()
            .map(|id| (REGION.to_owned(), id.clone()))
            .collect(),
        instance_busy: setup.instance_busy,
        ..EmulatorConfig::default()
    })
    .await
    .expect("emulator starts");
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns);
    let credentials: Secret = serde_json::from_value(json!({
        "metadata": {"name": CREDENTIALS},
        "stringData": {"accessKeyId": ACCESS_KEY_ID, "accessKeySecret": ACCESS_KEY_SECRET}
    }))
    .expect("secret");
    secrets
        .create(&PostParams::default(), &credentials)
        .await
        .expect("create credentials Secret");
    let cloud = AlibabaCloud::new(ClientConfig {
        endpoints: Endpoints::all(emulator.url()),
        // The emulator's own default for undocumented actions; ReleaseInstanceConnection
        // keeps the documented 10/s of `Quotas::default()`.
        quotas: Quotas {
            default_per_second: 100,
            ..Quotas::default()
        },
        ..ClientConfig::default()
    })
    .expect("client");
    let ctx = Arc::new(Context::new(
        client.clone(),
        cloud,
        None,
        ControllerConfig {
            watch_namespace: Some(ns.clone()),
            concurrency: setup.concurrency,
            instance_poll_interval: Duration::from_millis(200),
            min_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(2),
            deletion_timeout: Duration::from_secs(3),
            ..ControllerConfig::default()
        },
        None,
    ));
    let controller = tokio::spawn(controller::rds_connection::run(ctx));
    Harness {
        connections: Api::namespaced(client.clone(), &ns),
        client,
        ns,
        emulator,
        http: reqwest::Client::new(),
        controller,
    }
}

/// An RdsConnection using the namespace's credentials and writing `<name>-endpoint`.
fn connection(name: &str, instance: &str, prefix: &str, port: i32) -> RdsConnection {
    serde_json::from_value(json!({
        "apiVersion": "db.alicloud.dev/v1alpha1",
        "kind": "RdsConnection",
        "metadata": {"name": name},
        "spec": {
            "region": REGION,
            "dbInstanceId": instance,
            "connectionStringPrefix": prefix,
            "port": port,
            "credentialsRef": {"name": CREDENTIALS},
            "writeConnectionSecretToRef": {"name": format!("{name}-endpoint")}
        }
    }))
    .expect("valid RdsConnection")
}

/// `(status, reason)` of a condition.
fn condition(obj: &RdsConnection, type_: &str) -> Option<(String, String)> {
    obj.status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == type_)
        .map(|c| (c.status.clone(), c.reason.clone()))
}

fn is(obj: &RdsConnection, type_: &str, status: &str, reason: &str) -> bool {
    condition(obj, type_) == Some((status.to_owned(), reason.to_owned()))
}

fn is_ready(obj: &RdsConnection) -> bool {
    is(obj, "Ready", "True", "Available")
        && obj.status.as_ref().and_then(|s| s.observed_generation) == obj.metadata.generation
}

/// Polls `probe` every 100 ms until it yields `Some`, failing with `what` after `timeout`.
async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        let last = match probe().await {
            Ok(v) => return v,
            Err(last) => last,
        };
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}; last seen: {last}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

impl Harness {
    async fn create(&self, obj: &RdsConnection) {
        self.connections
            .create(&PostParams::default(), obj)
            .await
            .expect("create RdsConnection");
    }

    /// Waits until `name` satisfies `check`.
    async fn wait(
        &self,
        name: &str,
        what: &str,
        timeout: Duration,
        check: impl Fn(&RdsConnection) -> bool,
    ) -> RdsConnection {
        eventually(what, timeout, || async {
            let obj = self
                .connections
                .get(name)
                .await
                .map_err(|e| e.to_string())?;
            if check(&obj) {
                Ok(obj)
            } else {
                Err(format!("{:?}", obj.status))
            }
        })
        .await
    }

    async fn wait_gone(&self, name: &str, timeout: Duration) {
        eventually("the object to be gone", timeout, || async {
            match self
                .connections
                .get_opt(name)
                .await
                .map_err(|e| e.to_string())?
            {
                None => Ok(()),
                Some(obj) => Err(format!("{:?} {:?}", obj.finalizers(), obj.status)),
            }
        })
        .await
    }

    async fn delete(&self, name: &str) {
        self.connections
            .delete(name, &DeleteParams::default())
            .await
            .expect("delete RdsConnection");
    }

    async fn secret(&self, name: &str) -> Option<Secret> {
        Api::<Secret>::namespaced(self.client.clone(), &self.ns)
            .get_opt(name)
            .await
            .expect("read Secret")
    }

    /// `reason` of every Event about `name`, oldest first.
    async fn event_reasons(&self, name: &str) -> Vec<(String, String)> {
        let events = Api::<Event>::namespaced(self.client.clone(), &self.ns)
            .list(&ListParams::default())
            .await
            .expect("list Events");
        let mut about: Vec<Event> = events
            .items
            .into_iter()
            .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name))
            .collect();
        about.sort_by_key(|e| e.event_time.as_ref().map(|t| t.0));
        about
            .into_iter()
            .map(|e| (e.type_.unwrap_or_default(), e.reason.unwrap_or_default()))
            .collect()
    }

    /// The emulator's call count once it has not changed for a second.
    async fn settled_call_count(&self) -> usize {
        eventually("the cloud calls to settle", SHORT, || async {
            let before = self.state().await["calls"].as_array().map_or(0, Vec::len);
            tokio::time::sleep(Duration::from_secs(1)).await;
            let after = self.state().await["calls"].as_array().map_or(0, Vec::len);
            if before == after {
                Ok(after)
            } else {
                Err(format!("{before} then {after}"))
            }
        })
        .await
    }

    /// Every Event about `name` once all of `expected` (type, reason) are among them. Events are
    /// published after the status write they describe, so a test that has just seen the status
    /// waits for them rather than reading once.
    async fn wait_events(&self, name: &str, expected: &[(&str, &str)]) -> Vec<(String, String)> {
        eventually(
            &format!("Events {expected:?} about {name}"),
            SHORT,
            || async {
                let events = self.event_reasons(name).await;
                if expected
                    .iter()
                    .all(|(t, r)| events.iter().any(|(et, er)| et == t && er == r))
                {
                    Ok(events)
                } else {
                    Err(format!("{events:?}"))
                }
            },
        )
        .await
    }

    async fn state(&self) -> Value {
        self.emulator.state().await
    }

    /// Public connections of `instance` in the emulator.
    async fn public_connections(&self, instance: &str) -> Vec<Value> {
        let state = self.state().await;
        state["instances"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|i| i["dbInstanceId"] == instance)
            .flat_map(|i| i["connections"].as_array().cloned().unwrap_or_default())
            .filter(|c| c["ipType"] == "Public")
            .collect()
    }

    /// Calls of `action` in the emulator's log, as `(outcome, httpStatus)`.
    async fn calls(&self, action: &str) -> Vec<(String, u64)> {
        let state = self.state().await;
        state["calls"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|c| c["action"] == action)
            .map(|c| {
                (
                    c["outcome"].as_str().unwrap_or_default().to_owned(),
                    c["httpStatus"].as_u64().unwrap_or_default(),
                )
            })
            .collect()
    }

    async fn admin(&self, method: reqwest::Method, path: &str, body: Value) {
        let url = format!("{}/_emulator{path}", self.emulator.url());
        let response = self
            .http
            .request(method, &url)
            .json(&body)
            .send()
            .await
            .expect("emulator admin API answers");
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        assert!(status.is_success(), "{path}: {status} {text}");
    }
}

fn secret_value(secret: &Secret, key: &str) -> String {
    let data = secret.data.as_ref().expect("Secret has data");
    String::from_utf8(
        data.get(key)
            .unwrap_or_else(|| panic!("key {key}"))
            .0
            .clone(),
    )
    .expect("UTF-8")
}

const SHORT: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_publishes_secret_port_and_prefix_changes_modify_and_delete_releases() {
    let h = start("rdsconn-life", Setup::instances(&["rm-lifecycle01"])).await;
    h.create(&connection("orders", "rm-lifecycle01", "orders-db", 3306))
        .await;

    let obj = h.wait("orders", "Ready", SHORT, is_ready).await;
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

    let secret = h.secret("orders-endpoint").await.expect("endpoint Secret");
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
    h.wait_events("orders", &[("Normal", "Available")]).await;

    // Ready and unchanged: no cloud call until the resync period (5 min) is due, and an endpoint
    // Secret deleted by hand comes back from the status alone. The reconcile that the endpoint
    // Secret's creation triggered may still be observing (it can read the cache from before the
    // Ready write), so the count is taken once it has settled.
    let calls_when_ready = h.settled_call_count().await;
    Api::<Secret>::namespaced(h.client.clone(), &h.ns)
        .delete("orders-endpoint", &DeleteParams::default())
        .await
        .expect("delete endpoint Secret");
    let secret = h.wait_secret("orders-endpoint", "3306").await;
    assert_eq!(
        secret_value(&secret, "host"),
        "orders-db.mysql.rds.aliyuncs.com"
    );
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        h.state().await["calls"].as_array().map_or(0, Vec::len),
        calls_when_ready,
        "a Ready object is not polled before its resync period"
    );

    // Port change: ModifyDBInstanceConnectionString, then Ready with the new port everywhere.
    h.connections
        .patch(
            "orders",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"port": 4406}})),
        )
        .await
        .expect("change port");
    let obj = h
        .wait("orders", "Ready on port 4406", SHORT, |o| {
            is_ready(o) && o.status.as_ref().and_then(|s| s.port) == Some(4406)
        })
        .await;
    assert_eq!(obj.status.as_ref().and_then(|s| s.port), Some(4406));
    let secret = h.wait_secret("orders-endpoint", "4406").await;
    assert_eq!(
        secret_value(&secret, "endpoint"),
        "orders-db.mysql.rds.aliyuncs.com:4406"
    );
    let public = h.public_connections("rm-lifecycle01").await;
    assert_eq!(public.len(), 1, "{public:?}");
    assert_eq!(public[0]["port"], 4406);
    assert_eq!(
        h.calls("ModifyDBInstanceConnectionString").await,
        vec![("Success".to_owned(), 200)]
    );

    // Prefix change: the same endpoint is renamed by Modify, never allocated anew.
    h.connections
        .patch(
            "orders",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"connectionStringPrefix": "orders-db-v2"}})),
        )
        .await
        .expect("change prefix");
    let obj = h
        .wait("orders", "Ready under the new prefix", SHORT, |o| {
            is_ready(o)
                && o.status
                    .as_ref()
                    .and_then(|s| s.connection_string.as_deref())
                    == Some("orders-db-v2.mysql.rds.aliyuncs.com")
        })
        .await;
    assert_eq!(obj.status.as_ref().and_then(|s| s.port), Some(4406));
    let secret = h.secret("orders-endpoint").await.expect("endpoint Secret");
    assert_eq!(
        secret_value(&secret, "endpoint"),
        "orders-db-v2.mysql.rds.aliyuncs.com:4406"
    );
    let public = h.public_connections("rm-lifecycle01").await;
    assert_eq!(public.len(), 1, "{public:?}");
    assert_eq!(
        public[0]["connectionString"],
        "orders-db-v2.mysql.rds.aliyuncs.com"
    );
    assert_eq!(h.calls("ModifyDBInstanceConnectionString").await.len(), 2);

    // Delete: released at the emulator, then the object goes.
    h.delete("orders").await;
    h.wait_gone("orders", SHORT).await;
    assert!(h.public_connections("rm-lifecycle01").await.is_empty());
    assert_eq!(
        h.calls("ReleaseInstanceConnection").await,
        vec![("Success".to_owned(), 200)]
    );
    assert_eq!(
        h.calls("AllocateInstancePublicConnection").await,
        vec![("Success".to_owned(), 200)],
        "exactly one allocation over the whole life"
    );
}

impl Harness {
    /// Waits until the endpoint Secret `name` has `port`.
    async fn wait_secret(&self, name: &str, port: &str) -> Secret {
        eventually(
            &format!("Secret {name} with port {port}"),
            SHORT,
            || async {
                let secret = self.secret(name).await.ok_or("no Secret")?;
                if secret_value(&secret, "port") == port {
                    Ok(secret)
                } else {
                    Err(format!("{:?}", secret.data))
                }
            },
        )
        .await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoint_created_out_of_band_is_adopted_without_allocate() {
    let h = start("rdsconn-adopt", Setup::instances(&["rm-adopt0001"])).await;
    h.admin(
        reqwest::Method::POST,
        "/instances/rm-adopt0001/connections",
        json!({"connectionStringPrefix": "legacy-app", "port": 3306}),
    )
    .await;

    h.create(&connection("legacy", "rm-adopt0001", "legacy-app", 3306))
        .await;
    let obj = h.wait("legacy", "Ready", SHORT, is_ready).await;
    assert_eq!(
        obj.status
            .as_ref()
            .and_then(|s| s.connection_string.as_deref()),
        Some("legacy-app.mysql.rds.aliyuncs.com")
    );
    let secret = h.secret("legacy-endpoint").await.expect("endpoint Secret");
    assert_eq!(
        secret_value(&secret, "endpoint"),
        "legacy-app.mysql.rds.aliyuncs.com:3306"
    );
    assert_eq!(
        h.calls("AllocateInstancePublicConnection").await.len(),
        0,
        "an existing endpoint with our prefix is adopted, never allocated again"
    );
    assert_eq!(h.public_connections("rm-adopt0001").await.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn busy_instance_is_waited_for_then_becomes_ready() {
    let h = start("rdsconn-busy", Setup::instances(&["rm-busy0001"])).await;
    h.admin(
        reqwest::Method::PUT,
        "/instances/rm-busy0001",
        json!({"status": "Rebooting"}),
    )
    .await;

    h.create(&connection("busy", "rm-busy0001", "busy-app", 3306))
        .await;
    let obj = h
        .wait("busy", "Reconciling WaitingForInstance", SHORT, |o| {
            is(o, "Reconciling", "True", "WaitingForInstance")
        })
        .await;
    assert!(is(&obj, "Ready", "False", "WaitingForInstance"));
    assert_eq!(
        obj.status
            .as_ref()
            .and_then(|s| s.instance_status.as_deref()),
        Some("Rebooting")
    );
    // Still waiting a while later, and nothing was attempted on the busy instance.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let obj = h.connections.get("busy").await.expect("get");
    assert!(
        is(&obj, "Reconciling", "True", "WaitingForInstance"),
        "{:?}",
        obj.status
    );
    assert!(h.calls("AllocateInstancePublicConnection").await.is_empty());

    h.admin(
        reqwest::Method::PUT,
        "/instances/rm-busy0001",
        json!({"status": "Running"}),
    )
    .await;
    let obj = h.wait("busy", "Ready", SHORT, is_ready).await;
    assert_eq!(
        obj.status
            .as_ref()
            .and_then(|s| s.connection_string.as_deref()),
        Some("busy-app.mysql.rds.aliyuncs.com")
    );
    assert_eq!(
        h.calls("AllocateInstancePublicConnection").await,
        vec![("Success".to_owned(), 200)]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instance_refusing_a_change_as_busy_is_waited_out_not_stalled() {
    let h = start("rdsconn-refused", Setup::instances(&["rm-refuse0001"])).await;
    h.admin(
        reqwest::Method::POST,
        "/faults/AllocateInstancePublicConnection/once",
        json!({"code": "OperationDenied.DBInstanceStatus", "httpStatus": 400, "count": 1}),
    )
    .await;
    h.create(&connection("refused", "rm-refuse0001", "refused-app", 3306))
        .await;
    h.wait("refused", "Ready", SHORT, is_ready).await;
    assert_eq!(
        h.calls("AllocateInstancePublicConnection").await,
        vec![
            ("OperationDenied.DBInstanceStatus".to_owned(), 400),
            ("Success".to_owned(), 200)
        ]
    );
    let events = h
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
    let h = start("rdsconn-missing", Setup::instances(&["rm-exists0001"])).await;
    h.create(&connection("ghost", "rm-doesnotexist", "ghost-app", 3306))
        .await;
    let obj = h
        .wait("ghost", "Stalled InstanceNotFound", SHORT, |o| {
            is(o, "Stalled", "True", "InstanceNotFound")
        })
        .await;
    assert!(is(&obj, "Ready", "False", "InstanceNotFound"));
    assert!(h.calls("AllocateInstancePublicConnection").await.is_empty());
    let events = h
        .wait_events("ghost", &[("Warning", "InstanceNotFound")])
        .await;
    assert!(
        events.contains(&("Warning".into(), "InstanceNotFound".into())),
        "{events:?}"
    );
    // Deleting a stalled object needs no release: the instance does not exist.
    h.delete("ghost").await;
    h.wait_gone("ghost", SHORT).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prefix_taken_by_another_instance_stalls_and_is_not_mistaken_for_a_missing_instance() {
    let h = start(
        "rdsconn-taken",
        Setup::instances(&["rm-owner0001", "rm-wants0001"]),
    )
    .await;
    h.admin(
        reqwest::Method::POST,
        "/instances/rm-owner0001/connections",
        json!({"connectionStringPrefix": "shared-name", "port": 3306}),
    )
    .await;

    h.create(&connection("wants", "rm-wants0001", "shared-name", 3306))
        .await;
    let obj = h
        .wait("wants", "Stalled ConnectionStringTaken", SHORT, |o| {
            is(o, "Stalled", "True", "ConnectionStringTaken")
        })
        .await;
    assert!(is(&obj, "Ready", "False", "ConnectionStringTaken"));
    let allocations = h.calls("AllocateInstancePublicConnection").await;
    assert!(
        allocations.contains(&("InvalidConnectionString.Duplicate".to_owned(), 404)),
        "the emulator answered with the 404 duplicate: {allocations:?}"
    );
    assert!(h.public_connections("rm-wants0001").await.is_empty());
    assert_eq!(
        h.public_connections("rm-owner0001").await.len(),
        1,
        "the other instance's endpoint is untouched"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_simultaneous_deletions_are_never_throttled() {
    const N: usize = 200;
    let ids: Vec<String> = (0..N).map(|i| format!("rm-bulk{i:04}")).collect();
    let id_refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    let h = start(
        "rdsconn-bulk",
        Setup {
            instance_busy: Duration::from_millis(100),
            concurrency: 100,
            ..Setup::instances(&id_refs)
        },
    )
    .await;
    let started = Instant::now();
    let h = &h;
    let ids = &ids;
    join_all((0..N).map(|i| {
        let obj = connection(
            &format!("bulk-{i:04}"),
            &ids[i],
            &format!("bulk-endpoint-{i:04}"),
            3306,
        );
        async move { h.create(&obj).await }
    }))
    .await;
    eventually("all 200 Ready", Duration::from_secs(180), || async {
        let list = h
            .connections
            .list(&ListParams::default())
            .await
            .map_err(|e| e.to_string())?;
        let ready = list.items.iter().filter(|o| is_ready(o)).count();
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
        async move { h.delete(&name).await }
    }))
    .await;
    eventually("all 200 gone", Duration::from_secs(180), || async {
        let left = h
            .connections
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

    let state = h.state().await;
    let calls = state["calls"].as_array().cloned().unwrap_or_default();
    let throttled = calls
        .iter()
        .filter(|c| c["outcome"] == "Throttling.User")
        .count();
    let released = calls
        .iter()
        .filter(|c| c["action"] == "ReleaseInstanceConnection" && c["outcome"] == "Success")
        .count();
    assert_eq!(throttled, 0, "no call was throttled by the emulator");
    assert_eq!(released, N, "one successful release per connection");
    let public_left: usize = state["instances"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|i| i["connections"].as_array().cloned().unwrap_or_default())
        .filter(|c| c["ipType"] == "Public")
        .count();
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
async fn paused_object_makes_no_cloud_calls_and_is_deleted_without_release() {
    let h = start("rdsconn-paused", Setup::instances(&["rm-paused0001"])).await;
    let mut obj = connection("paused", "rm-paused0001", "paused-app", 3306);
    obj.metadata.annotations =
        Some([("db.alicloud.dev/paused".to_owned(), "true".to_owned())].into());
    h.create(&obj).await;
    h.wait("paused", "Stalled Paused", SHORT, |o| {
        is(o, "Stalled", "True", "Paused")
    })
    .await;
    let state = h.state().await;
    assert_eq!(
        state["calls"].as_array().map(Vec::len),
        Some(0),
        "a paused object makes no cloud call at all: {}",
        state["calls"]
    );

    h.delete("paused").await;
    h.wait_gone("paused", SHORT).await;
    assert!(
        h.calls("ReleaseInstanceConnection").await.is_empty(),
        "no release while paused"
    );
    let events = h.wait_events("paused", &[("Warning", "Paused")]).await;
    assert!(
        events.contains(&("Warning".into(), "Paused".into())),
        "the Event says the finalizer went without a cloud call: {events:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retain_policy_leaves_the_endpoint_on_delete() {
    let h = start("rdsconn-retain", Setup::instances(&["rm-retain0001"])).await;
    let mut obj = connection("kept", "rm-retain0001", "kept-app", 3306);
    obj.spec.deletion_policy = alicloud_db_operator::crd::DeletionPolicy::Retain;
    h.create(&obj).await;
    h.wait("kept", "Ready", SHORT, is_ready).await;
    h.delete("kept").await;
    h.wait_gone("kept", SHORT).await;
    assert_eq!(h.public_connections("rm-retain0001").await.len(), 1);
    assert!(h.calls("ReleaseInstanceConnection").await.is_empty());
    let events = h.wait_events("kept", &[("Normal", "Retained")]).await;
    assert!(
        events.contains(&("Normal".into(), "Retained".into())),
        "{events:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deletion_without_credentials_gives_up_after_the_deletion_timeout() {
    let h = start("rdsconn-nocreds", Setup::instances(&["rm-nocreds01"])).await;
    h.create(&connection("orphan", "rm-nocreds01", "orphan-app", 3306))
        .await;
    h.wait("orphan", "Ready", SHORT, is_ready).await;
    let secrets = Api::<Secret>::namespaced(h.client.clone(), &h.ns);
    secrets
        .delete(CREDENTIALS, &DeleteParams::default())
        .await
        .expect("delete credentials");
    // The Secret is protected while in use; an administrator forces it away.
    secrets
        .patch(
            CREDENTIALS,
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"finalizers": null}})),
        )
        .await
        .expect("remove the credentials Secret's finalizers");

    h.delete("orphan").await;
    h.wait_gone("orphan", Duration::from_secs(60)).await;
    let events = h
        .wait_events("orphan", &[("Warning", "CloudResourceMayRemain")])
        .await;
    assert!(
        events.contains(&("Warning".into(), "CloudResourceMayRemain".into())),
        "{events:?}"
    );
    assert_eq!(
        h.public_connections("rm-nocreds01").await.len(),
        1,
        "without credentials nothing could be released"
    );
}

/// Every status write wakes the controller again: a condition message that differs on every
/// attempt (a request id in it) turns each write into another round of cloud calls.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_instance_or_a_failing_call_is_not_retried_in_a_hot_loop() {
    let h = start("rdsconn-quiet", Setup::instances(&["rm-quiet0001"])).await;
    h.create(&connection("ghost", "rm-notthere01", "ghost-quiet", 3306))
        .await;
    h.wait("ghost", "Stalled InstanceNotFound", SHORT, |o| {
        is(o, "Stalled", "True", "InstanceNotFound")
    })
    .await;
    let before = h.calls("DescribeDBInstanceAttribute").await.len();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let after = h.calls("DescribeDBInstanceAttribute").await.len();
    assert!(
        after - before <= 1,
        "a stalled object waits for its resync period: {} more calls in 3 s",
        after - before
    );

    // A call the cloud keeps rejecting is retried with backoff (100 ms doubling up to 2 s).
    h.admin(
        reqwest::Method::PUT,
        "/faults/DescribeDBInstanceNetInfo",
        json!({"errorRate": 1.0, "code": "InvalidParameter", "httpStatus": 400}),
    )
    .await;
    h.create(&connection(
        "rejected",
        "rm-quiet0001",
        "rejected-app",
        3306,
    ))
    .await;
    h.wait("rejected", "Stalled CloudRejected", SHORT, |o| {
        is(o, "Stalled", "True", "CloudRejected")
    })
    .await;
    let before = h.calls("DescribeDBInstanceNetInfo").await.len();
    tokio::time::sleep(Duration::from_secs(4)).await;
    let after = h.calls("DescribeDBInstanceNetInfo").await.len();
    assert!(
        after - before <= 10,
        "retries follow the backoff: {} calls in 4 s",
        after - before
    );
}

/// A wrong secret is rejected with `SignatureDoesNotMatch`, whose message echoes the server's
/// string to sign (with the request's date and nonce): the condition must still be the same on
/// every attempt, or each status write would retrigger the next attempt at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejected_credentials_are_not_retried_in_a_hot_loop() {
    let h = start("rdsconn-badkey", Setup::instances(&["rm-badkey0001"])).await;
    let secrets: Api<Secret> = Api::namespaced(h.client.clone(), &h.ns);
    let wrong: Secret = serde_json::from_value(json!({
        "metadata": {"name": "wrong-credentials"},
        "stringData": {"accessKeyId": ACCESS_KEY_ID, "accessKeySecret": "not-the-secret"}
    }))
    .expect("secret");
    secrets
        .create(&PostParams::default(), &wrong)
        .await
        .expect("create the wrong credentials Secret");
    let mut obj = connection("badkey", "rm-badkey0001", "badkey-app", 3306);
    obj.spec.credentials_ref = Some(alicloud_db_operator::crd::CredentialsRef {
        name: "wrong-credentials".into(),
    });
    h.create(&obj).await;
    h.wait("badkey", "Stalled InvalidCredentials", SHORT, |o| {
        is(o, "Stalled", "True", "InvalidCredentials")
    })
    .await;
    let rejected = |calls: Vec<(String, u64)>| {
        calls
            .iter()
            .filter(|(outcome, _)| outcome == "SignatureDoesNotMatch")
            .count()
    };
    let before = rejected(h.calls("DescribeDBInstanceAttribute").await);
    tokio::time::sleep(Duration::from_secs(4)).await;
    let after = rejected(h.calls("DescribeDBInstanceAttribute").await);
    assert!(
        after - before <= 10,
        "retries follow the backoff: {} rejected calls in 4 s",
        after - before
    );
}

/// `InstanceNetworkType` of the release is the instance's: a spec left at the default `VPC` for a
/// classic-network instance must not make every release fail and leave the endpoint behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deletion_releases_with_the_network_type_the_instance_reports() {
    let h = start("rdsconn-classic", Setup::instances(&[])).await;
    h.admin(
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
    h.create(&obj).await;
    h.wait("classic", "Ready", SHORT, is_ready).await;
    h.delete("classic").await;
    h.wait_gone("classic", SHORT).await;
    assert!(
        h.public_connections("rm-classic001").await.is_empty(),
        "released: {:?}",
        h.calls("ReleaseInstanceConnection").await
    );
    let events = h.event_reasons("classic").await;
    assert!(
        !events.contains(&("Warning".into(), "CloudResourceMayRemain".into())),
        "{events:?}"
    );
}
