//! kube-apiserver restarted on the same etcd, address and certificates: what was stored is still
//! there, and a client made before the restart works after it.

use std::time::Duration;

use alicloud_testenv::{ControlPlane, Options};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, PostParams};

#[tokio::test]
async fn a_restarted_apiserver_keeps_its_objects_and_its_clients() {
    let mut plane = ControlPlane::start(Options {
        crds_dir: None,
        ..Default::default()
    })
    .await
    .expect("control plane starts");
    let client = plane.client().await;
    let maps: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let cm: ConfigMap = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "before-restart"},
        "data": {"k": "v"}
    }))
    .expect("ConfigMap");
    let created = maps
        .create(&PostParams::default(), &cm)
        .await
        .expect("create");
    let pid_before = plane.pids()[1];

    plane
        .restart_apiserver(Duration::from_millis(500))
        .await
        .expect("kube-apiserver comes back");

    assert_ne!(plane.pids()[1], pid_before, "a new kube-apiserver process");
    assert!(
        plane.pids().iter().all(|p| *p != 0),
        "etcd and kube-controller-manager kept"
    );
    let read = maps
        .get("before-restart")
        .await
        .expect("the old client reads");
    assert_eq!(read.metadata.uid, created.metadata.uid, "same object");
    assert_eq!(
        read.data.and_then(|d| d.get("k").cloned()).as_deref(),
        Some("v")
    );
    let log = std::fs::read_to_string(plane.dir().join("kube-apiserver.log")).expect("log");
    assert!(!log.is_empty());
}
