//! [`World`]: one test's namespace on the shared control plane, its emulator and its operator
//! (controllers in-process, or the binary), and what tests ask of them.
//!
//! This is the one place that uses the operator library's controller API (`Context`,
//! `ControllerConfig`, each controller's `run`, the credentials finalizer name).

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::sync::Arc;
use std::time::Duration;

use alicloud_db_operator::cloud::credentials::StaticCredentials;
use alicloud_db_operator::cloud::limiter::Quotas;
use alicloud_db_operator::cloud::{AlibabaCloud, ClientConfig, Credentials, Endpoints};
use alicloud_db_operator::controller::{self, Context, ControllerConfig};
use alicloud_emulator::{CallRecord, Connection, Emulator, Plan, Snapshot};
use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Client, Resource};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use tokio::task::JoinHandle;

use super::objects::{Conditioned, is, is_ready};
use super::requests::RequestLog;
use super::{
    ACCESS_KEY_ID, ACCESS_KEY_SECRET, Operator, RDS_INSTANCE, eventually, fast_flags, sample,
    start_emulator,
};

/// Finalizer and label of a credentials Secret that objects use.
pub use alicloud_db_operator::controller::credentials::CREDENTIALS_IN_USE;

/// The credentials Secret of every world (the samples' account), as `examples/` names it.
pub const CREDENTIALS: &str = "alicloud-credentials";
/// The password Secret of every world: key `password`, value `s3cret`.
pub const PASSWORD_SECRET: &str = "db-password";
/// How long a world waits for anything before failing.
const WAIT: Duration = Duration::from_secs(90);

/// A namespaced kind the tests create and read.
pub trait Object:
    Resource<Scope = NamespaceResourceScope, DynamicType = ()>
    + Clone
    + Debug
    + Serialize
    + DeserializeOwned
{
}

impl<K> Object for K where
    K: Resource<Scope = NamespaceResourceScope, DynamicType = ()>
        + Clone
        + Debug
        + Serialize
        + DeserializeOwned
{
}

/// A controller a world runs in-process.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Controller {
    /// BackupPlans.
    BackupPlan,
    /// RdsConnections.
    RdsConnection,
    /// In-use protection of credentials Secrets.
    Credentials,
}

impl Controller {
    /// Its name in the reconcile metrics.
    fn metric_name(self) -> &'static str {
        match self {
            Self::BackupPlan => "backupplan",
            Self::RdsConnection => "rdsconnection",
            Self::Credentials => "credentialssecret",
        }
    }
}

/// What a [`World`] runs, and how fast; `Setup::default()` runs no controller (start the
/// operator binary with [`World::operator`]).
#[derive(Clone, Debug)]
pub struct Setup {
    /// Controllers run in-process, watching only the world's namespace.
    pub controllers: Vec<Controller>,
    /// The emulator's RDS instances (in [`super::REGION`]); the samples' one by default.
    pub instances: Vec<String>,
    /// How long an instance stays busy after a connection change (300 ms).
    pub instance_busy: Duration,
    /// The delay between CreateBackupPlan and ConfigureBackupPlan, at DBS and in the
    /// controller (1 s).
    pub configure_delay: Duration,
    /// How long DBS's precheck takes after StartBackupPlan (300 ms).
    pub precheck: Duration,
    /// How long a new plan stays invisible to DescribeBackupPlanList (none).
    pub describe_lag: Duration,
    /// DBS's own wait before ConfigureBackupPlan, when it differs from `configure_delay`
    /// (which the controller then still uses).
    pub dbs_configure_delay: Option<Duration>,
    /// The controllers' resync period (2 s).
    pub resync: Duration,
    /// How long a deletion may fail before the finalizer goes anyway (8 s).
    pub deletion_timeout: Duration,
    /// Reconciles at once per kind (8).
    pub concurrency: u16,
    /// Whether the operator has credentials of its own; without, only a `credentialsRef`
    /// Secret authenticates (true).
    pub operator_credentials: bool,
    /// The controllers' shortest wait after a throttled call (2 s).
    pub throttled_delay: Duration,
}

impl Default for Setup {
    fn default() -> Self {
        Self {
            controllers: Vec::new(),
            instances: vec![RDS_INSTANCE.to_owned()],
            instance_busy: Duration::from_millis(300),
            configure_delay: Duration::from_secs(1),
            precheck: Duration::from_millis(300),
            describe_lag: Duration::ZERO,
            dbs_configure_delay: None,
            resync: Duration::from_secs(2),
            deletion_timeout: Duration::from_secs(8),
            concurrency: 8,
            operator_credentials: true,
            throttled_delay: Duration::from_secs(2),
        }
    }
}

/// One test's namespace, emulator and operator; the controllers stop when it is dropped.
pub struct World {
    /// The namespace, watched by the world's operator only.
    pub ns: String,
    /// An admin client of the control plane.
    pub client: Client,
    /// The emulator the operator calls.
    pub emulator: Emulator,
    /// The in-process controllers' client, and what it asked of the API server.
    operator_client: Client,
    requests: RequestLog,
    context: Option<Arc<Context>>,
    controllers: Vec<Controller>,
    running: Vec<JoinHandle<()>>,
}

impl Drop for World {
    fn drop(&mut self) {
        for task in &self.running {
            task.abort();
        }
    }
}

/// A point in the in-process controllers' history; see [`World::reconcile_mark`].
#[derive(Clone, Copy, Debug)]
pub struct ReconcileMark(f64);

impl World {
    /// A namespace named after `prefix` holding the credentials Secret [`CREDENTIALS`] and
    /// the password Secret [`PASSWORD_SECRET`], an emulator, and the controllers of `setup`.
    pub async fn start(prefix: &str, setup: Setup) -> World {
        let plane = alicloud_testenv::shared();
        let client = plane.client().await;
        let requests = RequestLog::default();
        let operator_client = kube::client::ClientBuilder::try_from(plane.config().await)
            .expect("a client from the harness kubeconfig")
            .with_layer(&requests)
            .build();
        let ns = plane.create_namespace(prefix).await;
        let emulator = start_emulator(|c| {
            c.rds_instances = setup
                .instances
                .iter()
                .map(|id| (super::REGION.to_owned(), id.clone()))
                .collect();
            c.configure_delay = setup.dbs_configure_delay.unwrap_or(setup.configure_delay);
            c.instance_busy = setup.instance_busy;
            c.precheck = setup.precheck;
            c.describe_lag = setup.describe_lag;
        })
        .await;
        let mut world = World {
            ns,
            client,
            emulator,
            operator_client,
            requests,
            context: None,
            controllers: Vec::new(),
            running: Vec::new(),
        };
        world.create_credentials(CREDENTIALS, BTreeMap::new()).await;
        let password: Secret = serde_json::from_value(json!({
            "metadata": {"name": PASSWORD_SECRET},
            "stringData": {"password": "s3cret"}
        }))
        .expect("password Secret");
        world
            .secrets()
            .create(&PostParams::default(), &password)
            .await
            .expect("create the password Secret");
        if !setup.controllers.is_empty() {
            world.run_controllers(&setup);
        }
        world
    }

    /// Stops the in-process controllers, as an operator that is down.
    pub fn stop_controllers(&mut self) {
        for task in self.running.drain(..) {
            task.abort();
        }
    }

    /// Starts the controllers of `setup` again (after [`World::stop_controllers`]), with
    /// fresh in-memory state, as a restarted operator.
    pub fn restart_controllers(&mut self, setup: &Setup) {
        self.stop_controllers();
        self.run_controllers(setup);
    }

    fn run_controllers(&mut self, setup: &Setup) {
        let cloud = AlibabaCloud::new(ClientConfig {
            endpoints: Endpoints::all(self.emulator.url()),
            // The emulator's own default for undocumented actions; ReleaseInstanceConnection
            // keeps the documented 10/s of `Quotas::default()`.
            quotas: Quotas {
                default_per_second: 100,
                ..Quotas::default()
            },
            ..ClientConfig::default()
        })
        .expect("the cloud client builds");
        let own = setup.operator_credentials.then(|| {
            Arc::new(StaticCredentials(Credentials::new(
                ACCESS_KEY_ID,
                ACCESS_KEY_SECRET,
            ))) as _
        });
        let ctx = Arc::new(Context::new(
            self.operator_client.clone(),
            cloud,
            own,
            ControllerConfig {
                watch_namespace: Some(self.ns.clone()),
                resync_period: setup.resync,
                concurrency: setup.concurrency,
                configure_delay: setup.configure_delay,
                instance_poll_interval: Duration::from_millis(200),
                min_backoff: Duration::from_millis(100),
                max_backoff: Duration::from_secs(2),
                throttled_delay: setup.throttled_delay,
                deletion_timeout: setup.deletion_timeout,
                ..ControllerConfig::default()
            },
            None,
        ));
        for &c in &setup.controllers {
            let task = match c {
                Controller::BackupPlan => tokio::spawn(controller::backup_plan::run(ctx.clone())),
                Controller::RdsConnection => {
                    tokio::spawn(controller::rds_connection::run(ctx.clone()))
                }
                Controller::Credentials => tokio::spawn(controller::credentials::run(ctx.clone())),
            };
            self.running.push(task);
        }
        self.controllers = setup.controllers.clone();
        self.context = Some(ctx);
    }

    /// The operator binary watching this world's namespace, with `failpoint` set
    /// (`ALICLOUD_DB_OPERATOR_FAILPOINT`) when given.
    pub fn operator(&self, name: &str, failpoint: Option<&str>) -> Operator {
        let mut args = fast_flags(&self.emulator.url());
        args.extend(["--watch-namespace".to_owned(), self.ns.clone()]);
        let mut cmd = Operator::command(name, &args);
        if let Some(f) = failpoint {
            cmd.env("ALICLOUD_DB_OPERATOR_FAILPOINT", f);
        }
        Operator::spawn(name, cmd)
    }

    /// What the in-process controllers asked of the API server.
    pub fn api_requests(&self) -> &RequestLog {
        &self.requests
    }

    /// The in-process controllers' metrics, in the Prometheus text format.
    pub fn metrics(&self) -> String {
        self.context
            .as_ref()
            .expect("metrics of in-process controllers only")
            .metrics
            .encode()
    }

    // ------------------------------------------------------------ proof that a reconcile ran

    /// (completed, running) reconciles of the in-process controllers.
    fn reconciles(&self) -> (f64, f64) {
        let ctx = self
            .context
            .as_ref()
            .expect("reconciles are counted for in-process controllers only");
        let text = ctx.metrics.encode();
        let mut completed = 0.0;
        let mut running = 0.0;
        for c in &self.controllers {
            let name = c.metric_name();
            for result in ["success", "error"] {
                let series = format!(
                    r#"controller_runtime_reconcile_total{{controller="{name}",result="{result}"}}"#
                );
                completed += sample(&text, &series).unwrap_or(0.0);
            }
            let series = format!(r#"controller_runtime_active_workers{{controller="{name}"}}"#);
            running += sample(&text, &series).unwrap_or(0.0);
        }
        (completed, running)
    }

    /// Marks a moment when no reconcile is running (it waits for one): a reconcile completed
    /// after it started after it too, so it read what the cluster held at the mark or later.
    pub async fn reconcile_mark(&self) -> ReconcileMark {
        eventually("no reconcile running", WAIT, || {
            let (completed, running) = self.reconciles();
            let mark = (running == 0.0)
                .then_some(ReconcileMark(completed))
                .ok_or(format!("{running} running"));
            async move { mark }
        })
        .await
    }

    /// Waits until a reconcile that started after `mark` has completed: proof that the
    /// controllers looked at what changed since, before asserting that nothing came of it.
    pub async fn wait_reconciled_since(&self, mark: ReconcileMark, what: &str) {
        eventually(&format!("a reconcile after {what}"), WAIT, || {
            let (completed, _) = self.reconciles();
            let done = (completed > mark.0)
                .then_some(())
                .ok_or(format!("{completed} reconciles, {} at the mark", mark.0));
            async move { done }
        })
        .await;
    }

    // ------------------------------------------------------------ objects

    /// The world's namespaced API of `K`.
    pub fn api<K: Object>(&self) -> Api<K> {
        Api::namespaced(self.client.clone(), &self.ns)
    }

    /// Creates `obj` in the world's namespace.
    pub async fn create<K: Object>(&self, obj: &K) -> K {
        self.api::<K>()
            .create(&PostParams::default(), obj)
            .await
            .unwrap_or_else(|e| panic!("create {}: {e}", K::kind(&())))
    }

    /// Reads the object `name`.
    pub async fn get<K: Object>(&self, name: &str) -> K {
        self.api::<K>()
            .get(name)
            .await
            .unwrap_or_else(|e| panic!("get {} {name}: {e}", K::kind(&())))
    }

    /// Applies the JSON merge patch `patch` to the object `name`; the object after it.
    pub async fn patch<K: Object>(&self, name: &str, patch: Value) -> K {
        self.api::<K>()
            .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .unwrap_or_else(|e| panic!("patch {} {name} with {patch}: {e}", K::kind(&())))
    }

    /// Asks for the object `name` to be deleted.
    pub async fn delete<K: Object>(&self, name: &str) {
        self.api::<K>()
            .delete(name, &DeleteParams::default())
            .await
            .unwrap_or_else(|e| panic!("delete {} {name}: {e}", K::kind(&())));
    }

    /// Waits until the object `name` satisfies `done` (`what`, for the failure message).
    pub async fn wait_for<K: Object>(
        &self,
        name: &str,
        what: &str,
        done: impl Fn(&K) -> bool,
    ) -> K {
        eventually(&format!("{name} {what}"), WAIT, || async {
            let obj: K = self.get(name).await;
            if done(&obj) {
                Ok(obj)
            } else {
                Err(format!(
                    "{:#}",
                    serde_json::to_value(&obj).unwrap_or_default()["status"]
                ))
            }
        })
        .await
    }

    /// Waits until the condition `type_` of the object `name` is `True` with `reason`.
    pub async fn wait_condition<K: Object + Conditioned>(
        &self,
        name: &str,
        type_: &str,
        reason: &str,
    ) -> K {
        let what = format!("{type_} {reason}");
        self.wait_for(name, &what, |o: &K| is(o, type_, "True", reason))
            .await
    }

    /// Waits until the object `name` is Ready (`Available`) for its current generation.
    pub async fn wait_ready<K: Object + Conditioned>(&self, name: &str) -> K {
        self.wait_for(name, "Ready", is_ready).await
    }

    /// Waits until the object `name` no longer exists.
    pub async fn wait_gone<K: Object>(&self, name: &str) {
        eventually(&format!("{name} to be gone"), WAIT, || async {
            match self.api::<K>().get_opt(name).await {
                Ok(None) => Ok(()),
                Ok(Some(obj)) => Err(format!(
                    "finalizers {:?}",
                    obj.meta().finalizers.clone().unwrap_or_default()
                )),
                Err(e) => Err(e.to_string()),
            }
        })
        .await;
    }

    // ------------------------------------------------------------ Secrets

    /// The world's Secrets.
    pub fn secrets(&self) -> Api<Secret> {
        self.api()
    }

    /// The Secret `name`, if it exists.
    pub async fn secret(&self, name: &str) -> Option<Secret> {
        self.secrets().get_opt(name).await.expect("read Secret")
    }

    /// Creates a credentials Secret `name` for the samples' account, with `labels`.
    pub async fn create_credentials(&self, name: &str, labels: BTreeMap<&str, &str>) {
        self.create_key_secret(name, (ACCESS_KEY_ID, ACCESS_KEY_SECRET), labels)
            .await;
    }

    /// Creates the credentials Secret `name` holding the AccessKey pair `(id, secret)`.
    pub async fn create_key_secret(
        &self,
        name: &str,
        (id, secret): (&str, &str),
        labels: BTreeMap<&str, &str>,
    ) {
        let secret: Secret = serde_json::from_value(json!({
            "metadata": {"name": name, "labels": labels},
            "stringData": {"accessKeyId": id, "accessKeySecret": secret}
        }))
        .expect("credentials Secret");
        self.secrets()
            .create(&PostParams::default(), &secret)
            .await
            .expect("create credentials Secret");
    }

    /// Deletes the Secret `name` and, as an administrator forcing it away, removes its
    /// finalizers (the operator protects credentials in use).
    pub async fn force_delete_secret(&self, name: &str) {
        let secrets = self.secrets();
        secrets
            .delete(name, &DeleteParams::default())
            .await
            .expect("delete Secret");
        secrets
            .patch(
                name,
                &PatchParams::default(),
                &Patch::Merge(json!({"metadata": {"finalizers": null}})),
            )
            .await
            .expect("remove the Secret's finalizers");
    }

    // ------------------------------------------------------------ Events

    /// `(type, reason)` of every Event in the namespace, oldest first.
    pub async fn events(&self) -> Vec<(String, String)> {
        self.events_where(|_| true).await
    }

    /// `(type, reason)` of every Event about the object `name`, oldest first.
    pub async fn events_about(&self, name: &str) -> Vec<(String, String)> {
        self.events_where(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name))
            .await
    }

    async fn events_where(&self, about: impl Fn(&Event) -> bool) -> Vec<(String, String)> {
        let mut events: Vec<Event> = self
            .api::<Event>()
            .list(&ListParams::default())
            .await
            .expect("list Events")
            .items
            .into_iter()
            .filter(|e| about(e))
            .collect();
        events.sort_by_key(|e| e.event_time.as_ref().map(|t| t.0));
        events
            .into_iter()
            .map(|e| (e.type_.unwrap_or_default(), e.reason.unwrap_or_default()))
            .collect()
    }

    /// Every Event about `name` once all of `expected` (type, reason) are among them. Events are
    /// published after the status write they describe, so a test that has just seen the status
    /// waits for them rather than reading once.
    pub async fn wait_events(
        &self,
        name: &str,
        expected: &[(&str, &str)],
    ) -> Vec<(String, String)> {
        eventually(
            &format!("Events {expected:?} about {name}"),
            WAIT,
            || async {
                let events = self.events_about(name).await;
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

    /// Every Event about `name` once one of `type_` with `reason` is among them, which it
    /// asserts.
    pub async fn expect_event(
        &self,
        name: &str,
        type_: &str,
        reason: &str,
    ) -> Vec<(String, String)> {
        let events = self.wait_events(name, &[(type_, reason)]).await;
        assert!(
            events.contains(&(type_.into(), reason.into())),
            "{events:?}"
        );
        events
    }

    // ------------------------------------------------------------ the emulator

    /// What the emulator holds now.
    pub fn snapshot(&self) -> Snapshot {
        self.emulator.snapshot()
    }

    /// Every call of `action` the emulator logged, oldest first.
    pub fn calls(&self, action: &str) -> Vec<CallRecord> {
        super::calls(&self.emulator, action)
    }

    /// `(outcome, HTTP status)` of every call of `action`, oldest first.
    pub fn outcomes(&self, action: &str) -> Vec<(String, u16)> {
        self.snapshot()
            .calls_of(action)
            .map(|c| (c.outcome.clone(), c.http_status))
            .collect()
    }

    /// How many calls the emulator logged.
    pub fn call_count(&self) -> usize {
        self.snapshot().calls.len()
    }

    /// The emulator's call count once it has not changed for a second.
    pub async fn settled_call_count(&self) -> usize {
        eventually("the cloud calls to settle", WAIT, || async {
            let before = self.call_count();
            tokio::time::sleep(Duration::from_secs(1)).await;
            let after = self.call_count();
            if before == after {
                Ok(after)
            } else {
                Err(format!("{before} then {after}"))
            }
        })
        .await
    }

    /// Every plan DBS holds, released ones included.
    pub fn plans_at_dbs(&self) -> Vec<Plan> {
        self.snapshot().plans
    }

    /// The plan `id` at DBS; panics when DBS never had it.
    pub fn plan_at_dbs(&self, id: &str) -> Plan {
        let snapshot = self.snapshot();
        snapshot
            .plan(id)
            .cloned()
            .unwrap_or_else(|| panic!("no plan {id} at DBS: {:#?}", snapshot.plans))
    }

    /// The public endpoints of the instance `id`.
    pub fn public_connections(&self, id: &str) -> Vec<Connection> {
        let snapshot = self.snapshot();
        snapshot
            .public_connections(Some(id))
            .into_iter()
            .cloned()
            .collect()
    }

    /// `method` on the emulator's admin API at `/_emulator{path}`.
    pub async fn admin(&self, method: reqwest::Method, path: &str, body: Value) {
        super::admin(&self.emulator, method, path, body).await;
    }

    /// The emulator's instance `id` reports `status` from now on.
    pub async fn set_instance_status(&self, id: &str, status: &str) {
        let path = format!("/instances/{id}");
        self.admin(reqwest::Method::PUT, &path, json!({"status": status}))
            .await;
    }

    /// A public endpoint `prefix`, port 3306, made on the instance `id` out of band.
    pub async fn add_public_connection(&self, id: &str, prefix: &str) {
        let path = format!("/instances/{id}/connections");
        let body = json!({"connectionStringPrefix": prefix, "port": 3306});
        self.admin(reqwest::Method::POST, &path, body).await;
    }
}

/// The UTF-8 value of `key` in `secret`.
pub fn secret_value(secret: &Secret, key: &str) -> String {
    let data = secret.data.as_ref().expect("Secret has data");
    let bytes = &data.get(key).unwrap_or_else(|| panic!("key {key}")).0;
    String::from_utf8(bytes.clone()).expect("UTF-8")
}
