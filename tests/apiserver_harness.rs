//! Proves the test control plane is a real kube-apiserver backed by etcd: objects persist,
//! watches deliver, the CRD schema is enforced server-side, `/version` answers; and that
//! kube-controller-manager runs beside it: a deleted namespace goes away.

use std::time::Duration;

use alicloud_db_operator::crd::{BackupPlan, BackupPlanSpec};
use futures::{StreamExt, TryStreamExt};
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use serde_json::json;

fn plan(name: &str) -> BackupPlan {
    let spec: BackupPlanSpec = serde_json::from_value(json!({
        "region": "cn-hangzhou",
        "databaseType": "MySQL",
        "instanceClass": "small",
        "backupMethod": "logical",
        "source": {
            "instanceType": "RDS", "region": "cn-hangzhou", "instanceId": "rm-harness0001",
            "userName": "backup", "passwordSecretRef": {"name": "db", "key": "password"}
        },
        "schedule": {"weekdays": ["Monday"], "startTime": "02:00"}
    }))
    .expect("valid spec");
    BackupPlan::new(name, spec)
}

#[tokio::test]
async fn harness_runs_a_real_kube_apiserver() {
    let plane = alicloud_testenv::shared();
    let client = plane.client().await;

    let version = client.apiserver_version().await.expect("/version answers");
    println!(
        "kube-apiserver version: {} (platform {})",
        version.git_version, version.platform
    );
    assert!(
        version.git_version.starts_with("v1."),
        "stamped release, got {}",
        version.git_version
    );
    assert_ne!(
        version.minor, "0",
        "a real release reports its minor version"
    );

    let ns = plane.create_namespace("harness").await;
    let api: Api<BackupPlan> = Api::namespaced(client.clone(), &ns);

    let created = api
        .create(&PostParams::default(), &plan("nightly"))
        .await
        .expect("create BackupPlan");
    assert!(created.metadata.uid.is_some(), "the server assigns a UID");
    let read = api.get("nightly").await.expect("read it back");
    assert_eq!(read.spec, created.spec);
    assert_eq!(
        read.spec.deletion_policy,
        alicloud_db_operator::crd::DeletionPolicy::Delete,
        "schema default applied"
    );

    // A watch started now sees the update made after it.
    let stream = watcher(
        api.clone(),
        watcher::Config::default().fields("metadata.name=nightly"),
    )
    .applied_objects()
    .try_filter(|bp| {
        let done = bp
            .spec
            .schedule
            .as_ref()
            .is_some_and(|s| s.start_time == "03:30");
        async move { done }
    })
    .boxed();
    let patch = json!({"spec": {"schedule": {"weekdays": ["Monday"], "startTime": "03:30"}}});
    let updater = {
        let api = api.clone();
        async move {
            tokio::time::sleep(Duration::from_millis(300)).await;
            api.patch("nightly", &PatchParams::default(), &Patch::Merge(&patch))
                .await
                .expect("patch")
        }
    };
    let (seen, _) = tokio::join!(
        tokio::time::timeout(Duration::from_secs(30), stream.into_future()),
        updater
    );
    let (first, _) = seen.expect("the watch delivered the update within 30 s");
    let updated = first.expect("a watch event").expect("no watch error");
    assert_eq!(updated.spec.schedule.expect("schedule").start_time, "03:30");

    // The server enforces the CRD schema: a bad enum value (the error names the field) and a
    // CEL rule (its message is returned).
    for (name, field, value, expected) in [
        ("bad-enum", "instanceClass", "gigantic", "instanceClass"),
        (
            "bad-cel",
            "payType",
            "Subscription",
            "requires period and usedTime",
        ),
    ] {
        let mut bad = serde_json::to_value(plan(name)).expect("serialise");
        bad["spec"][field] = json!(value);
        let err = raw_create(&client, &ns, bad)
            .await
            .expect_err("the server rejects the object");
        assert!(err.contains(expected), "{name}: {err}");
    }
}

#[tokio::test]
async fn harness_runs_kube_controller_manager() {
    let plane = alicloud_testenv::shared();
    let pids = plane.pids();
    assert_eq!(
        pids.len(),
        3,
        "etcd, kube-apiserver, kube-controller-manager"
    );
    let stat = std::fs::read_to_string(format!("/proc/{}/stat", pids[2]))
        .expect("kube-controller-manager is running");
    assert!(
        stat.contains("(kube-controller")
            && stat.split_whitespace().nth(2).is_some_and(|s| s != "Z"),
        "{stat}"
    );

    // Only the namespace controller empties a terminating namespace and removes it.
    let client = plane.client().await;
    let ns = plane.create_namespace("harness-kcm").await;
    let api: Api<BackupPlan> = Api::namespaced(client.clone(), &ns);
    api.create(&PostParams::default(), &plan("nightly"))
        .await
        .expect("create BackupPlan");
    let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client);
    namespaces
        .delete(&ns, &kube::api::DeleteParams::default())
        .await
        .expect("delete the namespace");
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while namespaces
        .get_opt(&ns)
        .await
        .expect("read namespace")
        .is_some()
    {
        assert!(
            std::time::Instant::now() < deadline,
            "namespace {ns} still exists 60 s after its deletion"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn raw_create(client: &kube::Client, ns: &str, obj: serde_json::Value) -> Result<(), String> {
    let api: Api<kube::api::DynamicObject> = Api::namespaced_with(
        client.clone(),
        ns,
        &kube::api::ApiResource::erase::<BackupPlan>(&()),
    );
    let obj: kube::api::DynamicObject = serde_json::from_value(obj).map_err(|e| e.to_string())?;
    match api.create(&PostParams::default(), &obj).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) => Err(s.message),
        Err(e) => Err(e.to_string()),
    }
}

#[tokio::test]
async fn examples_are_accepted_by_the_server() {
    let plane = alicloud_testenv::shared();
    let ns = plane.create_namespace("examples").await;
    let examples = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let out = plane
        .kubectl()
        .args(["apply", "--dry-run=server", "-n", &ns, "-f"])
        .arg(&examples)
        .output()
        .expect("run kubectl");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "kubectl apply failed: {}{}",
        stdout,
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        stdout.matches("(server dry run)").count(),
        6,
        "every example object accepted: {stdout}"
    );
}
