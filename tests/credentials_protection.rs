//! In-use protection of credentials Secrets against a real kube-apiserver and the Alibaba Cloud
//! emulator over HTTP, with all three controllers in-process (watching only the test's
//! namespace): a Secret deleted together with the objects that use it stays until their
//! finalizers have released the cloud resources with it, and a Secret nothing uses is never held.

#[allow(dead_code)]
mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use alicloud_db_operator::crd::{BackupPlan, BackupPlanSpec, CredentialsRef, RdsConnection};
use k8s_openapi::api::core::v1::Secret;
use kube::ResourceExt;
use serde_json::json;

use common::{
    CREDENTIALS_IN_USE, Controller, RDS_INSTANCE, Setup, World, backup_plan_spec, eventually,
    rds_connection,
};

async fn start(prefix: &str) -> World {
    let setup = Setup {
        controllers: vec![
            Controller::BackupPlan,
            Controller::RdsConnection,
            Controller::Credentials,
        ],
        // Long: a deletion must succeed by releasing, never by giving up.
        deletion_timeout: Duration::from_secs(600),
        // Only the credentials Secret can authenticate.
        operator_credentials: false,
        ..Setup::default()
    };
    World::start(prefix, setup).await
}

/// A BackupPlan (PayAsYouGo, deletion releases it) authenticating with `credentials`.
fn backup_plan(name: &str, credentials: &str) -> BackupPlan {
    let spec = BackupPlanSpec {
        credentials_ref: Some(CredentialsRef {
            name: credentials.into(),
        }),
        ..backup_plan_spec()
    };
    BackupPlan::new(name, spec)
}

/// An RdsConnection on the seeded instance authenticating with `credentials`.
fn connection(name: &str, credentials: &str) -> RdsConnection {
    let prefix = format!("{name}-app");
    rds_connection(name, RDS_INSTANCE, &prefix, 3306, credentials)
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

/// Waits until the Secret `name` satisfies `check` (`what`, for the failure message).
async fn wait_secret(w: &World, name: &str, what: &str, check: impl Fn(&Secret) -> bool) {
    eventually(what, Duration::from_secs(30), || async {
        match w.secret(name).await {
            Some(s) if check(&s) => Ok(()),
            Some(s) => Err(format!(
                "{:?} {:?}",
                s.metadata.finalizers, s.metadata.labels
            )),
            None => Err("gone".into()),
        }
    })
    .await;
}

/// Waits until the Secret `name` no longer exists.
async fn wait_secret_gone(w: &World, name: &str, timeout: Duration) {
    eventually("the Secret to be gone", timeout, || async {
        match w.secret(name).await {
            None => Ok(()),
            Some(s) => Err(format!("finalizers {:?}", s.metadata.finalizers)),
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_objects_and_their_credentials_secret_together_still_releases_the_cloud_resources()
{
    let w = start("credprot-together").await;
    w.create_credentials("alicloud", BTreeMap::new()).await;
    w.create(&backup_plan("nightly", "alicloud")).await;
    w.create(&connection("orders", "alicloud")).await;
    let plan: BackupPlan = w.wait_ready("nightly").await;
    let plan_id = plan
        .status
        .as_ref()
        .and_then(|s| s.backup_plan_id.clone())
        .expect("status.backupPlanId");
    w.wait_ready::<RdsConnection>("orders").await;
    assert_eq!(w.public_connections(RDS_INSTANCE).len(), 1);
    let secret = w.secret("alicloud").await.expect("credentials Secret");
    assert!(
        protected(&secret),
        "a Secret in use carries the finalizer and label {CREDENTIALS_IN_USE}: {:?}",
        secret.metadata
    );

    // `kubectl delete -f dir/`: the Secret first, then the objects.
    let started = Instant::now();
    w.delete::<Secret>("alicloud").await;
    w.delete::<BackupPlan>("nightly").await;
    w.delete::<RdsConnection>("orders").await;

    // The Secret stays, terminating, until both objects are gone.
    eventually(
        "both objects to be gone",
        Duration::from_secs(60),
        || async {
            // The Secret is read first: objects never come back, so if either still exists
            // afterwards, the Secret was read while in use and must have been protected.
            let secret = w.secret("alicloud").await;
            let plan = w
                .api::<BackupPlan>()
                .get_opt("nightly")
                .await
                .map_err(|e| e.to_string())?;
            let conn = w
                .api::<RdsConnection>()
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
        w.plan_at_dbs(&plan_id).status,
        "released",
        "the plan was released"
    );
    assert!(
        w.public_connections(RDS_INSTANCE).is_empty(),
        "the public endpoint was released"
    );
    let events = w.events().await;
    assert!(
        !events.iter().any(|(_, r)| r == "CloudResourceMayRemain"),
        "nothing was abandoned: {events:?}"
    );
    wait_secret_gone(&w, "alicloud", Duration::from_secs(60)).await;
    println!("Secret gone after {:?}", started.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unused_credentials_secret_is_not_blocked() {
    let w = start("credprot-unused").await;

    // Referenced by nothing: deleted at once.
    w.create_credentials("spare", BTreeMap::new()).await;
    w.delete::<Secret>("spare").await;
    wait_secret_gone(&w, "spare", Duration::from_secs(5)).await;

    // Referenced, then no longer: the last user moves to another Secret.
    w.create_credentials("first", BTreeMap::from([("team", "payments")]))
        .await;
    w.create_credentials("second", BTreeMap::new()).await;
    w.create(&connection("orders", "first")).await;
    w.wait_ready::<RdsConnection>("orders").await;
    wait_secret(&w, "first", "the Secret in use to be protected", protected).await;

    let moved = json!({"spec": {"credentialsRef": {"name": "second"}}});
    w.patch::<RdsConnection>("orders", moved).await;
    wait_secret(&w, "second", "the new Secret to be protected", protected).await;
    wait_secret(&w, "first", "the old Secret to be released", |s| !marked(s)).await;
    let first = w.secret("first").await.expect("first Secret");
    assert_eq!(
        first.labels().get("team").map(String::as_str),
        Some("payments"),
        "the user's own labels stay"
    );
    w.delete::<Secret>("first").await;
    wait_secret_gone(&w, "first", Duration::from_secs(5)).await;
    let second = w.secret("second").await.expect("second Secret");
    assert!(protected(&second), "{:?}", second.metadata);
}
