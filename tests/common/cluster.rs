//! `kubectl` on the shared control plane and the samples of `examples/`.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::Value;

use super::{Operator, eventually, repo_path};

/// `kubectl` of the shared control plane with `args`; panics with its output on failure.
pub fn kubectl(args: &[&str]) -> String {
    let out = alicloud_testenv::shared()
        .kubectl()
        .args(args)
        .output()
        .expect("run kubectl");
    assert!(
        out.status.success(),
        "kubectl {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `kubectl apply -f examples/` into `ns`.
pub fn apply_examples(ns: &str) {
    let examples = repo_path("examples");
    kubectl(&["apply", "-n", ns, "-f", &examples.display().to_string()]);
}

/// Deletes every BackupPlan and RdsConnection in `ns` and waits until they are gone (their
/// finalizers have released what they own in the cloud).
pub fn delete_samples(ns: &str) {
    kubectl(&[
        "delete",
        "backupplans,rdsconnections",
        "--all",
        "-n",
        ns,
        "--wait=true",
        "--timeout=90s",
    ]);
}

/// The `Ready` condition status of each object of `resource` (`backupplans`, ...) in `ns`.
pub fn ready_states(ns: &str, resource: &str) -> BTreeMap<String, String> {
    let out = kubectl(&["get", resource, "-n", ns, "-o", "json"]);
    let list: Value = serde_json::from_str(&out).expect("kubectl JSON");
    list["items"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|o| {
            let ready = o["status"]["conditions"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|c| c["type"] == "Ready")
                .and_then(|c| c["status"].as_str())
                .unwrap_or("Unknown")
                .to_owned();
            (
                o["metadata"]["name"].as_str().unwrap_or("").to_owned(),
                ready,
            )
        })
        .collect()
}

/// Whether the samples in `ns` (two BackupPlans, one RdsConnection) are all Ready; their
/// `Ready` statuses when not.
pub fn samples_ready(ns: &str) -> Result<(), String> {
    let plans = ready_states(ns, "backupplans");
    let conns = ready_states(ns, "rdsconnections");
    let ready = plans.len() == 2
        && conns.len() == 1
        && plans.values().chain(conns.values()).all(|s| s == "True");
    if ready {
        Ok(())
    } else {
        Err(format!("plans {plans:?}, connections {conns:?}"))
    }
}

/// Waits until the samples in `ns` are all Ready; fails at once, with its log, when `op` has
/// exited.
pub async fn wait_examples_ready(ns: &str, op: &mut Operator) {
    eventually(
        &format!("every sample in {ns} Ready"),
        Duration::from_secs(120),
        || {
            assert!(op.running(), "the operator exited:\n{}", op.log_tail(40));
            let ready = samples_ready(ns)
                .map_err(|seen| format!("{seen}\noperator log:\n{}", op.log_tail(40)));
            async move { ready }
        },
    )
    .await;
}
