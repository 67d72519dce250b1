//! In-use protection of credentials Secrets against a real kube-apiserver and the Alibaba Cloud
//! emulator over HTTP, with all three controllers in-process (watching only the test's
//! namespace): a Secret deleted together with the objects that use it stays until their
//! finalizers have released the cloud resources with it, and a Secret nothing uses is never held.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use alicloud_db_operator::cloud::limiter::Quotas;
use alicloud_db_operator::cloud::{AlibabaCloud, ClientConfig, Endpoints};
use alicloud_db_operator::controller::credentials::CREDENTIALS_IN_USE;
use alicloud_db_operator::controller::{self, Context, ControllerConfig};
use alicloud_db_operator::crd::{BackupPlan, RdsConnection};
use alicloud_emulator::{Emulator, EmulatorConfig};
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::api::events::v1::Event;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

const REGION: &str = "cn-hangzhou";
const ACCESS_KEY_ID: &str = "LTAI5tCredentialsProtection";
const ACCESS_KEY_SECRET: &str = "credentials-protection-secret";
const INSTANCE: &str = "rm-protect0001";
const READY: Duration = Duration::from_secs(60);

/// A namespace, an emulator and the three controllers watching that namespace.
struct Harness {
    client: kube::Client,
    ns: String,
    emulator: Emulator,
    controllers: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for Harness {
    fn drop(&mut self) {
        for c in &self.controllers {
            c.abort();
        }
    }
}

async fn start(prefix: &str) -> Harness {
    let plane = alicloud_testenv::shared();
    let client = plane.client().await;
    let ns = plane.create_namespace(prefix).await;
    let emulator = Emulator::start(EmulatorConfig {
        accounts: vec![(ACCESS_KEY_ID.into(), ACCESS_KEY_SECRET.into())],
        rds_instances: vec![(REGION.into(), INSTANCE.into())],
        configure_delay: Duration::from_secs(1),
        instance_busy: Duration::from_millis(300),
        ..EmulatorConfig::default()
    })
    .await
    .expect("emulator starts");
    let cloud = AlibabaCloud::new(ClientConfig {
        endpoints: Endpoints::all(emulator.url()),
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
        // Only the credentials Secret can authenticate.
        None,
        ControllerConfig {
            watch_namespace: Some(ns.clone()),
            resync_period: Duration::from_secs(2),
            configure_delay: Duration::from_secs(1),
            instance_poll_interval: Duration::from_millis(200),
            min_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(2),
            throttled_delay: Duration::from_secs(2),
            // Long: a deletion must succeed by releasing, never by giving up.
            deletion_timeout: Duration::from_secs(600),
            ..ControllerConfig::default()
        },
        None,
    ));
    let controllers = vec![
        tokio::spawn(controller::backup_plan::run(ctx.clone())),
        tokio::spawn(controller::rds_connection::run(ctx.clone())),
        tokio::spawn(controller::credentials::run(ctx)),
    ];
    let h = Harness {
        client,
        ns,
        emulator,
        controllers,
    };
    let password: Secret = serde_json::from_value(json!({
        "metadata": {"name": "db-password"},
        "stringData": {"password": "s3cret"}
    }))
    .expect("secret");
    h.secrets()
        .create(&PostParams::default(), &password)
        .await
        .expect("create password Secret");
    h
}

/// Polls `probe` every 100 ms until it yields `Ok`, failing with `what` after `timeout`.
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

/// A BackupPlan (PayAsYouGo, deletion releases it) authenticating with `credentials`.
fn backup_plan(name: &str, credentials: &str) -> BackupPlan {
    serde_json::from_value(json!({
        "apiVersion": "db.alicloud.dev/v1alpha1",
        "kind": "BackupPlan",
        "metadata": {"name": name},
        "spec": {
            "region": REGION,
            "databaseType": "MySQL",
            "instanceClass": "micro",
            "backupMethod": "logical",
            "payType": "PayAsYouGo",
            "source": {
                "instanceType": "RDS", "region": REGION, "instanceId": "rm-bp1protect01",
                "userName": "backup",
                "passwordSecretRef": {"name": "db-password", "key": "password"}
            },
            "schedule": {"weekdays": ["Monday"], "startTime": "02:00"},
            "credentialsRef": {"name": credentials}
        }
    }))
    .expect("valid BackupPlan")
}

/// An RdsConnection on the seeded instance authenticating with `credentials`.
fn rds_connection(name: &str, credentials: &str) -> RdsConnection {
    serde_json::from_value(json!({
        "apiVersion": "db.alicloud.dev/v1alpha1",
        "kind": "RdsConnection",
        "metadata": {"name": name},
        "spec": {
            "region": REGION,
            "dbInstanceId": INSTANCE,
            "connectionStringPrefix": format!("{name}-app"),
            "port": 3306,
            "credentialsRef": {"name": credentials},
            "writeConnectionSecretToRef": {"name": format!("{name}-endpoint")}
        }
    }))
    .expect("valid RdsConnection")
}

/// Whether the object's `Ready` condition is `True` with reason `Available`.
fn available(conditions: Option<&Value>) -> bool {
    conditions
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .any(|c| c["type"] == "Ready" && c["status"] == "True" && c["reason"] == "Available")
}

fn protected(secret: &Secret) -> bool {
    let finalizer = secret.finalizers().iter().any(|f| f == CREDENTIALS_IN_USE);
    let label = secret.labels().get(CREDENTIALS_IN_USE).map(String::as_str) == Some("true");
    finalizer && label
}

fn marked(secret: &Secret) -> bool {
    secret.finalizers().iter().any(|f| f == CREDENTIALS_IN_USE)
        || secret.labels().contains_key(CREDENTIALS_IN_USE)
}

impl Harness {
    fn secrets(&self) -> Api<Secret> {
        Api::namespaced(self.client.clone(), &self.ns)
    }

    fn plans(&self) -> Api<BackupPlan> {
        Api::namespaced(self.client.clone(), &self.ns)
    }

    fn connections(&self) -> Api<RdsConnection> {
        Api::namespaced(self.client.clone(), &self.ns)
    }

    async fn create_credentials(&self, name: &str, labels: BTreeMap<&str, &str>) {
        let secret: Secret = serde_json::from_value(json!({
            "metadata": {"name": name, "labels": labels},
            "stringData": {"accessKeyId": ACCESS_KEY_ID, "accessKeySecret": ACCESS_KEY_SECRET}
        }))
        .expect("secret");
        self.secrets()
            .create(&PostParams::default(), &secret)
            .await
            .expect("create credentials Secret");
    }

    async fn secret(&self, name: &str) -> Option<Secret> {
        self.secrets().get_opt(name).await.expect("read Secret")
    }

    async fn wait_secret(&self, name: &str, what: &str, check: impl Fn(&Secret) -> bool) {
        eventually(what, Duration::from_secs(30), || async {
            match self.secret(name).await {
                Some(s) if check(&s) => Ok(()),
                Some(s) => Err(format!(
                    "{:?} {:?}",
                    s.metadata.finalizers, s.metadata.labels
                )),
                None => Err("gone".into()),
            }
        })
        .await
    }

    async fn wait_secret_gone(&self, name: &str, timeout: Duration) {
        eventually("the Secret to be gone", timeout, || async {
            match self.secret(name).await {
                None => Ok(()),
                Some(s) => Err(format!("finalizers {:?}", s.metadata.finalizers)),
            }
        })
        .await
    }

    async fn wait_plan_available(&self, name: &str) -> BackupPlan {
        eventually("the BackupPlan to be Ready", READY, || async {
            let obj = self.plans().get(name).await.map_err(|e| e.to_string())?;
            let status = serde_json::to_value(&obj.status).unwrap_or_default();
            if available(status.get("conditions")) {
                Ok(obj)
            } else {
                Err(status.to_string())
            }
        })
        .await
    }

    async fn wait_connection_available(&self, name: &str) {
        eventually("the RdsConnection to be Ready", READY, || async {
            let obj = self
                .connections()
                .get(name)
                .await
                .map_err(|e| e.to_string())?;
            let status = serde_json::to_value(&obj.status).unwrap_or_default();
            if available(status.get("conditions")) {
                Ok(())
            } else {
                Err(status.to_string())
            }
        })
        .await
    }

    /// Public connections of the seeded instance in the emulator.
    async fn public_connections(&self) -> Vec<Value> {
        let state = self.emulator.state().await;
        state["instances"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|i| i["dbInstanceId"] == INSTANCE)
            .flat_map(|i| i["connections"].as_array().cloned().unwrap_or_default())
            .filter(|c| c["ipType"] == "Public")
            .collect()
    }

    async fn plan_at_dbs(&self, id: &str) -> Value {
        self.emulator.state().await["plans"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|p| p["backupPlanId"] == id)
            .cloned()
            .unwrap_or(Value::Null)
    }

    /// `(type, reason)` of every Event in the namespace.
    async fn event_reasons(&self) -> Vec<(String, String)> {
        Api::<Event>::namespaced(self.client.clone(), &self.ns)
            .list(&ListParams::default())
            .await
            .expect("list Events")
            .items
            .into_iter()
            .map(|e| (e.type_.unwrap_or_default(), e.reason.unwrap_or_default()))
            .collect()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_objects_and_their_credentials_secret_together_still_releases_the_cloud_resources()
{
    let h = start("credprot-together").await;
    h.create_credentials("alicloud", BTreeMap::new()).await;
    h.plans()
        .create(&PostParams::default(), &backup_plan("nightly", "alicloud"))
        .await
        .expect("create BackupPlan");
    h.connections()
        .create(
            &PostParams::default(),
            &rds_connection("orders", "alicloud"),
        )
        .await
        .expect("create RdsConnection");
    let plan = h.wait_plan_available("nightly").await;
    let plan_id = plan
        .status
        .as_ref()
        .and_then(|s| s.backup_plan_id.clone())
        .expect("status.backupPlanId");
    h.wait_connection_available("orders").await;
    assert_eq!(h.public_connections().await.len(), 1);
    let secret = h.secret("alicloud").await.expect("credentials Secret");
    assert!(
        protected(&secret),
        "a Secret in use carries the finalizer and label {CREDENTIALS_IN_USE}: {:?}",
        secret.metadata
    );

    // `kubectl delete -f dir/`: the Secret first, then the objects.
    let started = Instant::now();
    h.secrets()
        .delete("alicloud", &DeleteParams::default())
        .await
        .expect("delete credentials Secret");
    h.plans()
        .delete("nightly", &DeleteParams::default())
        .await
        .expect("delete BackupPlan");
    h.connections()
        .delete("orders", &DeleteParams::default())
        .await
        .expect("delete RdsConnection");

    // The Secret stays, terminating, until both objects are gone.
    eventually(
        "both objects to be gone",
        Duration::from_secs(60),
        || async {
            // The Secret is read first: objects never come back, so if either still exists
            // afterwards, the Secret was read while in use and must have been protected.
            let secret = h.secret("alicloud").await;
            let plan = h
                .plans()
                .get_opt("nightly")
                .await
                .map_err(|e| e.to_string())?;
            let conn = h
                .connections()
                .get_opt("orders")
                .await
                .map_err(|e| e.to_string())?;
            if plan.is_none() && conn.is_none() {
                return Ok(());
            }
            let secret = secret.unwrap_or_else(|| {
                panic!("the credentials Secret vanished while objects still use it")
            });
            assert!(
                secret.metadata.deletion_timestamp.is_some() && protected(&secret),
                "{:?}",
                secret.metadata
            );
            Err(format!(
                "BackupPlan {:?}, RdsConnection {:?}",
                plan.map(|p| p.status),
                conn.map(|c| c.status)
            ))
        },
    )
    .await;
    println!("objects gone after {:?}", started.elapsed());

    assert_eq!(
        h.plan_at_dbs(&plan_id).await["status"],
        "released",
        "the plan was released"
    );
    assert!(
        h.public_connections().await.is_empty(),
        "the public endpoint was released"
    );
    let events = h.event_reasons().await;
    assert!(
        !events.iter().any(|(_, r)| r == "CloudResourceMayRemain"),
        "nothing was abandoned: {events:?}"
    );
    h.wait_secret_gone("alicloud", Duration::from_secs(60))
        .await;
    println!("Secret gone after {:?}", started.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unused_credentials_secret_is_not_blocked() {
    let h = start("credprot-unused").await;

    // Referenced by nothing: deleted at once.
    h.create_credentials("spare", BTreeMap::new()).await;
    h.secrets()
        .delete("spare", &DeleteParams::default())
        .await
        .expect("delete unused Secret");
    h.wait_secret_gone("spare", Duration::from_secs(5)).await;

    // Referenced, then no longer: the last user moves to another Secret.
    h.create_credentials("first", BTreeMap::from([("team", "payments")]))
        .await;
    h.create_credentials("second", BTreeMap::new()).await;
    h.connections()
        .create(&PostParams::default(), &rds_connection("orders", "first"))
        .await
        .expect("create RdsConnection");
    h.wait_connection_available("orders").await;
    h.wait_secret("first", "the Secret in use to be protected", protected)
        .await;

    h.connections()
        .patch(
            "orders",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"credentialsRef": {"name": "second"}}})),
        )
        .await
        .expect("move to the other Secret");
    h.wait_secret("second", "the new Secret to be protected", protected)
        .await;
    h.wait_secret("first", "the old Secret to be released", |s| !marked(s))
        .await;
    let first = h.secret("first").await.expect("first Secret");
    assert_eq!(
        first.labels().get("team").map(String::as_str),
        Some("payments"),
        "the user's own labels stay"
    );
    h.secrets()
        .delete("first", &DeleteParams::default())
        .await
        .expect("delete the Secret no longer used");
    h.wait_secret_gone("first", Duration::from_secs(5)).await;
    let second = h.secret("second").await.expect("second Secret");
    assert!(protected(&second), "{:?}", second.metadata);
}
