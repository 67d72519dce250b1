//! Deleting a namespace, and ownerReference garbage collection, against a real kube-apiserver
//! with the real kube-controller-manager beside it (namespace and garbage-collector
//! controllers) and the Alibaba Cloud emulator over HTTP, with all three controllers
//! in-process (watching only the test's namespace). What a user sees: whether the namespace
//! goes away, and what the emulator still holds and was asked to do.

#[allow(dead_code)]
mod common;

use std::time::{Duration, Instant};

use alicloud_db_operator::crd::{
    BackupPlan, BackupPlanSpec, CredentialsRef, DeletionPolicy, RdsConnection,
};
use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::ResourceExt;
use kube::api::{Api, DeleteParams};

use common::{
    CREDENTIALS, CREDENTIALS_IN_USE, Controller, PASSWORD_SECRET, Setup, World, eventually,
    rds_connection,
};

/// The RDS instances of every world here, one public endpoint each.
const INSTANCES: [&str; 2] = ["rm-nsdel00001", "rm-nsdel00002"];
/// The BackupPlans of every world here.
const PLANS: [&str; 2] = ["nightly", "weekly"];
/// How long the namespace controller may take to empty and remove a namespace. It deletes
/// the content, then re-checks on its own backoff while finalizers hold objects.
const NAMESPACE_GONE: Duration = Duration::from_secs(90);

async fn start(prefix: &str) -> World {
    let setup = Setup {
        controllers: vec![
            Controller::BackupPlan,
            Controller::RdsConnection,
            Controller::Credentials,
        ],
        instances: INSTANCES.iter().map(|s| (*s).to_owned()).collect(),
        // Long: a deletion must succeed by releasing, never by giving up.
        deletion_timeout: Duration::from_secs(600),
        // Only the credentials Secret can authenticate, as in a namespace of its own.
        operator_credentials: false,
        ..Setup::default()
    };
    World::start(prefix, setup).await
}

/// A BackupPlan (PayAsYouGo) authenticating with the world's credentials Secret.
fn backup_plan(name: &str, policy: DeletionPolicy) -> BackupPlan {
    let spec = BackupPlanSpec {
        credentials_ref: Some(CredentialsRef {
            name: CREDENTIALS.into(),
        }),
        deletion_policy: policy,
        ..common::backup_plan_spec()
    };
    BackupPlan::new(name, spec)
}

/// An RdsConnection `conn-<i>` publishing `INSTANCES[i]`, authenticating with the world's
/// credentials Secret, writing the endpoint Secret `conn-<i>-endpoint`.
fn connection(i: usize, policy: DeletionPolicy) -> RdsConnection {
    let name = format!("conn-{i}");
    let mut obj = rds_connection(
        &name,
        INSTANCES[i],
        &format!("nsdel-{i}"),
        3306,
        CREDENTIALS,
    );
    obj.spec.deletion_policy = policy;
    obj
}

/// What the world holds once every object is Ready.
struct Populated {
    /// `status.backupPlanId` of each plan.
    plan_ids: Vec<String>,
}

/// Creates the plans and connections with `policy` and waits until all are Ready, their
/// endpoint Secrets written and the credentials Secret protected.
async fn populate(w: &World, policy: DeletionPolicy) -> Populated {
    for name in PLANS {
        w.create(&backup_plan(name, policy)).await;
    }
    for i in 0..INSTANCES.len() {
        w.create(&connection(i, policy)).await;
    }
    let mut plan_ids = Vec::new();
    for name in PLANS {
        let plan: BackupPlan = w.wait_ready(name).await;
        plan_ids.push(
            plan.status
                .and_then(|s| s.backup_plan_id)
                .expect("status.backupPlanId"),
        );
    }
    for (i, instance) in INSTANCES.iter().enumerate() {
        let name = format!("conn-{i}");
        w.wait_ready::<RdsConnection>(&name).await;
        let secret = w
            .secret(&format!("{name}-endpoint"))
            .await
            .expect("the endpoint Secret is written once Ready");
        assert_eq!(
            secret.owner_references()[0].name,
            name,
            "{:?}",
            secret.metadata
        );
        assert_eq!(w.public_connections(instance).len(), 1);
    }
    for id in &plan_ids {
        assert_eq!(w.plan_at_dbs(id).status, "running");
    }
    eventually(
        "the credentials Secret to be protected",
        Duration::from_secs(30),
        || async {
            let secret = w.secret(CREDENTIALS).await.ok_or("no Secret")?;
            if secret.finalizers().iter().any(|f| f == CREDENTIALS_IN_USE) {
                Ok(())
            } else {
                Err(format!("finalizers {:?}", secret.metadata.finalizers))
            }
        },
    )
    .await;
    assert!(
        w.secret(PASSWORD_SECRET).await.is_some(),
        "the password Secret is there"
    );
    Populated { plan_ids }
}

/// Deletes the world's namespace (as `kubectl delete namespace` does) and waits until it is
/// gone (404); how long that took.
async fn delete_namespace_and_wait(w: &World) -> Duration {
    let namespaces: Api<Namespace> = Api::all(w.client.clone());
    let started = Instant::now();
    namespaces
        .delete(&w.ns, &DeleteParams::default())
        .await
        .expect("delete the namespace");
    eventually(
        &format!("namespace {} to be gone", w.ns),
        NAMESPACE_GONE,
        || async {
            match namespaces.get_opt(&w.ns).await {
                Ok(None) => Ok(()),
                Ok(Some(ns)) => Err(format!(
                    "{:?}; left: {}",
                    ns.status.and_then(|s| s.conditions),
                    leftovers(w).await
                )),
                Err(e) => Err(e.to_string()),
            }
        },
    )
    .await;
    started.elapsed()
}

/// The objects still in the world's namespace with their finalizers, for failure messages.
async fn leftovers(w: &World) -> String {
    fn names<K: ResourceExt>(items: Vec<K>) -> Vec<String> {
        items
            .iter()
            .map(|o| format!("{} {:?}", o.name_any(), o.finalizers()))
            .collect()
    }
    let lp = kube::api::ListParams::default();
    let plans = w.api::<BackupPlan>().list(&lp).await.map(|l| l.items);
    let conns = w.api::<RdsConnection>().list(&lp).await.map(|l| l.items);
    let secrets = w.api::<Secret>().list(&lp).await.map(|l| l.items);
    format!(
        "BackupPlans {:?}, RdsConnections {:?}, Secrets {:?}",
        plans.map(names),
        conns.map(names),
        secrets.map(names)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_namespace_releases_every_plan_and_endpoint() {
    let started = Instant::now();
    let w = start("nsdel-delete").await;
    let populated = populate(&w, DeletionPolicy::Delete).await;

    // The credentials Secret goes with everything else; its in-use finalizer keeps it readable
    // until the plans and connections, which have no other credentials, have been released.
    let took = delete_namespace_and_wait(&w).await;
    println!("namespace gone {took:?} after its deletion");

    for id in &populated.plan_ids {
        assert_eq!(
            w.plan_at_dbs(id).status,
            "released",
            "plan {id} was released"
        );
    }
    for id in INSTANCES {
        assert!(
            w.public_connections(id).is_empty(),
            "the public endpoint of {id} was released: {:?}",
            w.public_connections(id)
        );
    }
    println!("test took {:?}", started.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_endpoint_secret_is_garbage_collected_after_its_rds_connection() {
    let started = Instant::now();
    let w = start("nsdel-gc").await;
    w.create(&connection(0, DeletionPolicy::Delete)).await;
    let obj: RdsConnection = w.wait_ready("conn-0").await;
    let secret = w
        .secret("conn-0-endpoint")
        .await
        .expect("the endpoint Secret");
    let owner = &secret.owner_references()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.uid.as_str()),
        ("RdsConnection", obj.uid().expect("uid").as_str())
    );

    // The operator never deletes the endpoint Secret itself: only the garbage collector does,
    // once the owner is gone.
    w.delete::<RdsConnection>("conn-0").await;
    w.wait_gone::<RdsConnection>("conn-0").await;
    let owner_gone = Instant::now();
    eventually(
        "the endpoint Secret to be garbage-collected",
        Duration::from_secs(60),
        || async {
            match w.secret("conn-0-endpoint").await {
                None => Ok(()),
                Some(s) => Err(format!(
                    "still there: deletionTimestamp {:?}, ownerReferences {:?}",
                    s.metadata.deletion_timestamp, s.metadata.owner_references
                )),
            }
        },
    )
    .await;
    println!(
        "endpoint Secret collected {:?} after its owner was gone",
        owner_gone.elapsed()
    );
    assert!(
        w.public_connections(INSTANCES[0]).is_empty(),
        "the endpoint was released"
    );
    assert!(
        w.secret(CREDENTIALS).await.is_some(),
        "the credentials Secret, which the RdsConnection does not own, stays"
    );
    println!("test took {:?}", started.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_namespace_with_retain_releases_nothing() {
    let started = Instant::now();
    let w = start("nsdel-retain").await;
    let populated = populate(&w, DeletionPolicy::Retain).await;

    let took = delete_namespace_and_wait(&w).await;
    println!("namespace gone {took:?} after its deletion");

    for id in &populated.plan_ids {
        assert_eq!(w.plan_at_dbs(id).status, "running", "plan {id} was kept");
    }
    for id in INSTANCES {
        assert_eq!(
            w.public_connections(id).len(),
            1,
            "the public endpoint of {id} was kept"
        );
    }
    let releases_or_stops: Vec<String> = w
        .snapshot()
        .calls
        .iter()
        .filter(|c| c.action.starts_with("Release") || c.action.starts_with("Stop"))
        .map(|c| format!("{} -> {}", c.action, c.outcome))
        .collect();
    assert!(
        releases_or_stops.is_empty(),
        "no Release*/Stop* call: {releases_or_stops:?}"
    );
    println!("test took {:?}", started.elapsed());
}
