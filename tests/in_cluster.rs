//! RBAC proven in-cluster: the operator binary runs with in-cluster configuration — a
//! ServiceAccount token from the TokenRequest API, the control plane's CA and the namespace
//! mounted at `/var/run/secrets/kubernetes.io/serviceaccount` in a private mount namespace —
//! under exactly the ClusterRole of `deploy/` (rendered from the chart), never as admin.
//!
//! With those rules the samples go through their whole lifecycle. Without a rule the operator
//! needs, it says which permission is missing. Needs root (unshare + mount), as CI has.

#[allow(dead_code)]
mod common;

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{Secret, ServiceAccount};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, PolicyRule, RoleRef, Subject};
use kube::api::{ObjectMeta, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde_json::Value;

use common::{
    ACCESS_KEY_ID, ACCESS_KEY_SECRET, Operator, apply_examples, delete_samples, eventually,
    fast_flags, get, kubectl, repo_path, sample_emulator, wait_examples_ready,
};

/// The manifests `kubectl apply -f deploy/` installs.
fn deploy_manifest() -> PathBuf {
    repo_path("deploy/alicloud-db-operator.yaml")
}

/// The rules of the ClusterRole in `deploy/`.
fn chart_rules() -> Vec<PolicyRule> {
    let text = std::fs::read_to_string(deploy_manifest()).expect("read deploy/ manifest");
    let mut roles = Vec::new();
    for doc in serde_yaml::Deserializer::from_str(&text) {
        let v: Value = match serde::Deserialize::deserialize(doc) {
            Ok(v) => v,
            Err(e) => panic!("deploy/ YAML: {e}"),
        };
        if v["kind"] == "ClusterRole" {
            roles.push(serde_json::from_value::<ClusterRole>(v).expect("a ClusterRole"));
        }
    }
    assert_eq!(roles.len(), 1, "deploy/ has one ClusterRole");
    roles.remove(0).rules.unwrap_or_default()
}

/// A ServiceAccount bound to a ClusterRole with `rules`, and a folder holding what a pod of it
/// would find mounted: `token`, `ca.crt`, `namespace`.
struct Identity {
    client: Client,
    role: String,
    dir: tempfile::TempDir,
}

impl Identity {
    async fn new(name: &str, rules: Vec<PolicyRule>) -> Self {
        let plane = alicloud_testenv::shared();
        let client = plane.client().await;
        let ns = plane.create_namespace("operator-system").await;
        let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), &ns);
        accounts
            .create(
                &PostParams::default(),
                &ServiceAccount {
                    metadata: ObjectMeta {
                        name: Some(name.into()),
                        ..Default::default()
                    },
                    ..Default::default()
                },
            )
            .await
            .expect("create ServiceAccount");
        let role = format!("alicloud-db-operator-{name}-{ns}");
        let identity = Self {
            client: client.clone(),
            role: role.clone(),
            dir: tempfile::tempdir().expect("temp dir"),
        };
        identity.set_rules(rules).await;
        let bindings: Api<ClusterRoleBinding> = Api::all(client.clone());
        bindings
            .create(
                &PostParams::default(),
                &ClusterRoleBinding {
                    metadata: ObjectMeta {
                        name: Some(role.clone()),
                        ..Default::default()
                    },
                    role_ref: RoleRef {
                        api_group: "rbac.authorization.k8s.io".into(),
                        kind: "ClusterRole".into(),
                        name: role.clone(),
                    },
                    subjects: Some(vec![Subject {
                        kind: "ServiceAccount".into(),
                        name: name.into(),
                        namespace: Some(ns.clone()),
                        ..Default::default()
                    }]),
                },
            )
            .await
            .expect("create ClusterRoleBinding");
        let token = accounts
            .create_token_request(
                name,
                &PostParams::default(),
                &TokenRequest {
                    spec: TokenRequestSpec {
                        audiences: vec![],
                        expiration_seconds: Some(3600),
                        ..Default::default()
                    },
                    ..Default::default()
                },
            )
            .await
            .expect("TokenRequest")
            .status
            .expect("token issued")
            .token;
        let dir = identity.dir.path();
        std::fs::write(dir.join("token"), token).expect("write token");
        std::fs::copy(plane.dir().join("pki").join("ca.crt"), dir.join("ca.crt")).expect("copy CA");
        std::fs::write(dir.join("namespace"), &ns).expect("write namespace");
        identity
    }

    /// Replaces the ClusterRole's rules (server-side apply).
    async fn set_rules(&self, rules: Vec<PolicyRule>) {
        let roles: Api<ClusterRole> = Api::all(self.client.clone());
        let role = ClusterRole {
            metadata: ObjectMeta {
                name: Some(self.role.clone()),
                ..Default::default()
            },
            rules: Some(rules),
            ..Default::default()
        };
        roles
            .patch(
                &self.role,
                &PatchParams::apply("in-cluster-test").force(),
                &Patch::Apply(&role),
            )
            .await
            .expect("apply ClusterRole");
    }

    /// The operator with in-cluster configuration only: no kubeconfig, an empty HOME, the
    /// service-account folder bind-mounted at the standard path in a private mount namespace.
    fn operator(&self, name: &str, args: &[String]) -> Operator {
        let server = alicloud_testenv::shared().server_url().to_owned();
        let port = server.rsplit(':').next().expect("port in server URL");
        let home = self.dir.path().join("home");
        std::fs::create_dir_all(&home).expect("HOME");
        let mut cmd = Command::new("unshare");
        cmd.args(["--mount", "--propagation", "private", "sh", "-c"])
            .arg(
                "set -e; mkdir -p /run/secrets; mount -t tmpfs none /run/secrets; \
                 mkdir -p /run/secrets/kubernetes.io/serviceaccount; \
                 mount --bind \"$1\" /run/secrets/kubernetes.io/serviceaccount; shift; exec \"$@\"",
            )
            .arg("sh")
            .arg(self.dir.path())
            .arg(env!("CARGO_BIN_EXE_alicloud-db-operator"))
            .arg("run")
            .args(args)
            .env_remove("KUBECONFIG")
            .env("HOME", &home)
            .env("KUBERNETES_SERVICE_HOST", "127.0.0.1")
            .env("KUBERNETES_SERVICE_PORT", port)
            .env("ALIBABA_CLOUD_ACCESS_KEY_ID", ACCESS_KEY_ID)
            .env("ALIBABA_CLOUD_ACCESS_KEY_SECRET", ACCESS_KEY_SECRET)
            .env("POD_NAME", name)
            .env("RUST_LOG", "info,alicloud_db_operator=debug")
            .env_remove("WATCH_NAMESPACE")
            .env_remove("POD_NAMESPACE");
        Operator::spawn(name, cmd)
    }
}

/// The log with JSON string escapes undone, to search for API server messages.
fn plain_log(op: &Operator) -> String {
    op.log().replace("\\\"", "\"")
}

/// `rules` with `verb` taken off every rule that names `resource`.
fn without_verb(mut rules: Vec<PolicyRule>, resource: &str, verb: &str) -> Vec<PolicyRule> {
    let mut found = false;
    for r in &mut rules {
        if r.resources.iter().flatten().any(|x| x == resource) {
            found |= r.verbs.iter().any(|v| v == verb);
            r.verbs.retain(|v| v != verb);
        }
    }
    assert!(found, "the chart grants {verb} on {resource}");
    rules.retain(|r| !r.verbs.is_empty());
    rules
}

/// `rules` without `resource`.
fn without_resource(mut rules: Vec<PolicyRule>, resource: &str) -> Vec<PolicyRule> {
    let mut found = false;
    for r in &mut rules {
        if let Some(res) = &mut r.resources {
            found |= res.iter().any(|x| x == resource);
            res.retain(|x| x != resource);
        }
    }
    assert!(found, "the chart grants {resource}");
    rules.retain(|r| r.resources.as_ref().is_none_or(|r| !r.is_empty()));
    rules
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_charts_rbac_is_enough_and_every_rule_is_needed() {
    let rules = chart_rules();
    let plane = alicloud_testenv::shared();
    let emulator = sample_emulator().await;

    // 1. The whole lifecycle, cluster-wide, with exactly the chart's rules.
    let ns = plane.create_namespace("in-cluster").await;
    let identity = Identity::new("alicloud-db-operator", rules.clone()).await;
    let mut op = identity.operator("in-cluster-op", &fast_flags(&emulator.url()));
    let url = op.metrics_url().await;
    eventually("readyz 200 in cluster", Duration::from_secs(60), || async {
        (get(&format!("{url}/readyz")).await.0 == 200).then_some(())
    })
    .await;
    assert!(
        !plain_log(&op).contains("forbidden"),
        "no permission error at start:\n{}",
        op.log_tail(30)
    );
    apply_examples(&ns);
    wait_examples_ready(&ns, &mut op).await;
    let secrets: Api<Secret> = Api::namespaced(plane.client().await, &ns);
    let endpoint = secrets
        .get("orders-db-public")
        .await
        .expect("endpoint Secret written");
    let keys: Vec<String> = endpoint.data.unwrap_or_default().into_keys().collect();
    for key in ["host", "port", "endpoint"] {
        assert!(
            keys.iter().any(|k| k == key),
            "endpoint Secret has {key}: {keys:?}"
        );
    }
    let credentials = secrets
        .get("alicloud-credentials")
        .await
        .expect("credentials Secret");
    assert!(
        credentials
            .metadata
            .finalizers
            .iter()
            .flatten()
            .any(|f| f == "db.alicloud.dev/credentials-in-use"),
        "credentials Secret protected: {:?}",
        credentials.metadata.finalizers
    );
    delete_samples(&ns);
    let log = emulator.snapshot();
    for action in ["ReleaseBackupPlan", "ReleaseInstanceConnection"] {
        assert!(
            log.calls_of(action).any(|c| c.outcome == "Success"),
            "{action} recorded"
        );
    }
    kubectl(&[
        "delete",
        "secret",
        "alicloud-credentials",
        "-n",
        &ns,
        "--wait=false",
    ]);
    eventually(
        "credentials Secret released and gone",
        Duration::from_secs(60),
        || async {
            secrets
                .get_opt("alicloud-credentials")
                .await
                .ok()?
                .is_none()
                .then_some(())
        },
    )
    .await;
    assert!(
        !plain_log(&op).contains("forbidden"),
        "no permission error in the lifecycle:\n{}",
        op.log_tail(30)
    );
    op.kill();

    // 2. Without a rule it needs, the operator names the missing permission. Each case runs
    // its own operator, watching only its own namespace.
    let cases = [
        (
            "no-secret-patch",
            without_verb(rules.clone(), "secrets", "patch"),
            r#"cannot patch resource "secrets""#,
        ),
        (
            "no-plan-status",
            without_resource(rules.clone(), "backupplans/status"),
            r#"cannot patch resource "backupplans/status""#,
        ),
    ];
    let mut running = Vec::new();
    for (name, rules, needle) in cases {
        let ns = plane.create_namespace(name).await;
        let identity = Identity::new(name, rules).await;
        let mut args = fast_flags(&emulator.url());
        args.extend(["--watch-namespace".to_owned(), ns.clone()]);
        let op = identity.operator(name, &args);
        apply_examples(&ns);
        running.push((identity, op, needle));
    }
    for (_, op, needle) in &running {
        eventually(
            &format!("{}: a log line saying {needle}", op.name),
            Duration::from_secs(60),
            || async { plain_log(op).contains(needle).then_some(()) },
        )
        .await;
    }
    drop(running);

    // 3. A cache that cannot list keeps /readyz at 503, naming it; the rule back makes it 200.
    let ns = plane.create_namespace("no-list").await;
    let identity = Identity::new(
        "no-list",
        without_verb(rules.clone(), "rdsconnections", "list"),
    )
    .await;
    let mut args = fast_flags(&emulator.url());
    args.extend(["--watch-namespace".to_owned(), ns.clone()]);
    let mut op = identity.operator("no-list", &args);
    let url = op.metrics_url().await;
    eventually(
        "readyz 503 naming RdsConnection",
        Duration::from_secs(30),
        || async {
            let (code, body) = get(&format!("{url}/readyz")).await;
            (code == 503 && body.contains("RdsConnection")).then_some(())
        },
    )
    .await;
    // Still 503 once the operator has tried to list again and been refused again.
    let refused = r#"cannot list resource "rdsconnections""#;
    let refusals = plain_log(&op).matches(refused).count();
    eventually(
        "another refused list in the log",
        Duration::from_secs(60),
        || async { (plain_log(&op).matches(refused).count() > refusals).then_some(()) },
    )
    .await;
    let (code, body) = get(&format!("{url}/readyz")).await;
    assert_eq!(code, 503, "still not ready without list: {body}");
    assert!(
        plain_log(&op).contains(r#"cannot list resource "rdsconnections""#),
        "the log names the missing permission:\n{}",
        op.log_tail(20)
    );
    identity.set_rules(rules).await;
    eventually(
        "readyz 200 once it may list",
        Duration::from_secs(90),
        || async { (get(&format!("{url}/readyz")).await.0 == 200).then_some(()) },
    )
    .await;
}
