//! kube-apiserver restarted mid-lifecycle (same etcd, address and certificates), on a control
//! plane of this test's own so that no other test loses its API server: the operator binary sees
//! its watches fail, reconnects, and finishes everything asked before, during and after the
//! restart. At the end the emulator's inventory equals the live objects.

#[allow(dead_code)]
mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use alicloud_db_operator::crd::{BackupPlan, RdsConnection};
use alicloud_testenv::{ControlPlane, Options};
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Client, Resource, ResourceExt};
use serde_json::{Value, json};

use common::{
    ACCESS_KEY_ID, ACCESS_KEY_SECRET, CREDENTIALS, Operator, PASSWORD_SECRET, REGION,
    backup_plan_spec, eventually, fast_flags, is_ready, rds_connection, start_emulator,
};

const INSTANCES: [&str; 3] = ["rm-bp1restart001", "rm-bp1restart002", "rm-bp1restart003"];
const WAIT: Duration = Duration::from_secs(120);

/// The test's namespace on its own control plane.
struct Cluster {
    client: Client,
    ns: String,
}

impl Cluster {
    fn api<K>(&self) -> Api<K>
    where
        K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
            + Clone
            + serde::de::DeserializeOwned
            + std::fmt::Debug,
    {
        Api::namespaced(self.client.clone(), &self.ns)
    }

    async fn create_plan(&self, name: &str) {
        self.api::<BackupPlan>()
            .create(
                &PostParams::default(),
                &BackupPlan::new(name, backup_plan_spec()),
            )
            .await
            .unwrap_or_else(|e| panic!("create {name}: {e}"));
    }

    async fn create_connection(&self, name: &str, instance: &str) {
        let conn = rds_connection(name, instance, &format!("{name}-ep"), 3306, CREDENTIALS);
        self.api::<RdsConnection>()
            .create(&PostParams::default(), &conn)
            .await
            .unwrap_or_else(|e| panic!("create {name}: {e}"));
    }

    async fn delete_plan(&self, name: &str) {
        self.api::<BackupPlan>()
            .delete(name, &DeleteParams::default())
            .await
            .unwrap_or_else(|e| panic!("delete {name}: {e}"));
    }

    async fn secret(&self, body: Value) {
        let secret: Secret = serde_json::from_value(body).expect("Secret");
        self.api::<Secret>()
            .create(&PostParams::default(), &secret)
            .await
            .expect("create Secret");
    }

    /// `Ok` when every live object is Ready for its generation, none is being deleted, and none
    /// of `gone` exists; else what is not so yet. API errors count as "not yet" (the API server
    /// may be coming back).
    async fn settled(&self, gone: &[&str]) -> Result<(), String> {
        let plans = self
            .api::<BackupPlan>()
            .list(&ListParams::default())
            .await
            .map_err(|e| e.to_string())?
            .items;
        let conns = self
            .api::<RdsConnection>()
            .list(&ListParams::default())
            .await
            .map_err(|e| e.to_string())?
            .items;
        let mut pending = Vec::new();
        for p in &plans {
            if !is_ready(p) || p.metadata.deletion_timestamp.is_some() {
                pending.push(format!("{}: {:?}", p.name_any(), p.status));
            }
        }
        for c in &conns {
            if !is_ready(c) || c.metadata.deletion_timestamp.is_some() {
                pending.push(format!("{}: {:?}", c.name_any(), c.status));
            }
        }
        let names: BTreeSet<String> = plans
            .iter()
            .map(ResourceExt::name_any)
            .chain(conns.iter().map(ResourceExt::name_any))
            .collect();
        for g in gone {
            if names.contains(*g) {
                pending.push(format!("{g} still exists"));
            }
        }
        if pending.is_empty() {
            Ok(())
        } else {
            Err(pending.join("\n"))
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn after_an_apiserver_restart_the_operator_finishes_everything_and_loses_nothing() {
    let mut plane = ControlPlane::start(Options::default())
        .await
        .expect("a control plane of this test's own");
    let client = plane.client().await;
    let ns = plane.create_namespace("apiserver-restart").await;
    let cluster = Cluster { client, ns };
    cluster
        .secret(json!({
            "metadata": {"name": CREDENTIALS},
            "stringData": {"accessKeyId": ACCESS_KEY_ID, "accessKeySecret": ACCESS_KEY_SECRET}
        }))
        .await;
    cluster
        .secret(json!({
            "metadata": {"name": PASSWORD_SECRET},
            "stringData": {"password": "s3cret"}
        }))
        .await;
    let emulator = start_emulator(|c| {
        c.rds_instances = INSTANCES
            .iter()
            .map(|i| (REGION.to_owned(), (*i).to_owned()))
            .collect();
    })
    .await;
    let mut args = fast_flags(&emulator.url());
    args.extend(["--watch-namespace".to_owned(), cluster.ns.clone()]);
    let mut op = Operator::spawn(
        "restart-op",
        Operator::command_for(plane.kubeconfig_path(), "restart-op", &args),
    );

    // Before the restart: two plans and a connection Ready.
    cluster.create_plan("ready-before").await;
    cluster.create_plan("deleted-after").await;
    cluster.create_connection("conn-before", INSTANCES[0]).await;
    eventually("the first objects Ready", WAIT, || cluster.settled(&[])).await;
    let log_before = op.log().lines().count();

    // Just before it: work the operator is in the middle of when the API server goes.
    cluster.create_plan("created-before").await;
    cluster.create_plan("deleted-before").await;
    eventually("deleted-before has its plan", WAIT, || async {
        let p = cluster.api::<BackupPlan>().get("deleted-before").await;
        let id = p.ok().and_then(|p| p.status.and_then(|s| s.backup_plan_id));
        id.ok_or_else(|| "no id yet".to_owned())
    })
    .await;
    cluster.delete_plan("deleted-before").await;

    plane
        .restart_apiserver(Duration::from_secs(3))
        .await
        .expect("kube-apiserver comes back");

    // After: new objects, a spec change and a deletion, all through the new API server.
    cluster.create_plan("created-after").await;
    cluster.create_connection("conn-after", INSTANCES[1]).await;
    cluster.delete_plan("deleted-after").await;
    let schedule = json!({"weekdays": ["Friday"], "startTime": "01:15"});
    cluster
        .api::<BackupPlan>()
        .patch(
            "ready-before",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"schedule": schedule}})),
        )
        .await
        .expect("change the schedule");

    let gone = ["deleted-before", "deleted-after"];
    eventually("everything settled after the restart", WAIT, || {
        assert!(op.running(), "the operator exited:\n{}", op.log_tail(40));
        cluster.settled(&gone)
    })
    .await;

    // It saw the API server go: its watches failed (kube-runtime's "event queue error: failed to
    // start watching"). That they were re-established is shown by created-after and
    // conn-after: objects the operator could only learn of through a new watch.
    let log = op.log();
    let during: Vec<&str> = log
        .lines()
        .skip(log_before)
        .filter(|l| l.contains("\"level\":\"WARN\"") || l.contains("\"level\":\"ERROR\""))
        .collect();
    assert!(
        during
            .iter()
            .any(|l| l.contains("event queue error") && l.contains("watch")),
        "the operator logged its watches failing:\n{}",
        during.join("\n")
    );
    assert!(op.running(), "{}", op.log_tail(40));

    // Nothing lost: the plans DBS holds unreleased are exactly the live objects' plans, with
    // the current spec's schedule; the deleted objects' plans are released; one public endpoint
    // per live connection.
    let plans = cluster
        .api::<BackupPlan>()
        .list(&ListParams::default())
        .await
        .expect("list")
        .items;
    let names: BTreeSet<String> = plans.iter().map(ResourceExt::name_any).collect();
    let expected: BTreeSet<String> = ["ready-before", "created-before", "created-after"]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
    assert_eq!(names, expected);
    let snapshot = emulator.snapshot();
    let live_ids: BTreeSet<String> = plans
        .iter()
        .filter_map(|p| p.status.as_ref().and_then(|s| s.backup_plan_id.clone()))
        .collect();
    let unreleased: BTreeSet<String> = snapshot
        .plans
        .iter()
        .filter(|p| p.status != "released")
        .map(|p| p.backup_plan_id.clone())
        .collect();
    assert_eq!(unreleased, live_ids, "no leaked or missing plan");
    assert_eq!(snapshot.plans.len(), 5, "one plan per object ever created");
    let ready_before = plans
        .iter()
        .find(|p| p.name_any() == "ready-before")
        .and_then(|p| p.status.as_ref().and_then(|s| s.backup_plan_id.clone()))
        .expect("ready-before has a plan");
    let at_dbs = snapshot.plan(&ready_before).expect("at DBS");
    assert_eq!(at_dbs.backup_period.as_deref(), Some("Friday"));
    assert_eq!(at_dbs.backup_start_time.as_deref(), Some("01:15"));
    for (instance, conn) in [(INSTANCES[0], "conn-before"), (INSTANCES[1], "conn-after")] {
        let public = snapshot.public_connections(Some(instance));
        assert_eq!(public.len(), 1, "{conn}: {public:#?}");
        assert_eq!(public[0].prefix(), format!("{conn}-ep"));
    }
    assert!(snapshot.public_connections(Some(INSTANCES[2])).is_empty());
    op.kill();
}
