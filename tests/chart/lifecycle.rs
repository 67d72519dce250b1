//! The operator running a whole lifecycle of the samples against the emulator with nothing but
//! what the chart grants its ServiceAccount: the least-privilege RBAC is sufficient, not just
//! small.

use std::path::Path;
use std::time::Duration;

use serde_json::Value;

use crate::cluster::{helm_install, helm_ok, kubectl_ok};
use crate::common::{self, Operator, samples_ready};
use crate::render::{RELEASE, operator_args};

/// A kubeconfig for the control plane that authenticates with `token` instead of the admin
/// certificate.
fn token_kubeconfig(plane: &alicloud_testenv::ControlPlane, token: &str, path: &Path) {
    let admin: Value = serde_yaml::from_str(
        &std::fs::read_to_string(plane.kubeconfig_path()).expect("read the admin kubeconfig"),
    )
    .expect("the admin kubeconfig is YAML");
    let ca = admin["clusters"][0]["cluster"]["certificate-authority-data"]
        .as_str()
        .expect("certificate-authority-data");
    let text = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: testenv\n  cluster:\n    server: {}\n    \
         certificate-authority-data: {ca}\nusers:\n- name: operator\n  user:\n    token: {token}\n\
         contexts:\n- name: operator\n  context:\n    cluster: testenv\n    user: operator\n\
         current-context: operator\n",
        plane.server_url()
    );
    std::fs::write(path, text).expect("write the ServiceAccount kubeconfig");
}

/// Panics with the log lines when the API server refused the operator anything (RBAC's
/// `... is forbidden: User "system:serviceaccount:..." cannot ...`), or when it exited (it could
/// not read or create its Lease, for one).
fn assert_not_refused(op: &mut Operator) {
    let log = op.log();
    let forbidden: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("is forbidden: User"))
        .collect();
    assert!(
        forbidden.is_empty(),
        "the operator was refused something:\n{}",
        forbidden.join("\n")
    );
    assert!(op.running(), "the operator exited:\n{}", op.log_tail(20));
}

#[tokio::test(flavor = "multi_thread")]
async fn the_operator_runs_a_whole_lifecycle_with_only_the_permissions_the_chart_grants() {
    let plane = alicloud_testenv::shared();
    let emulator = common::sample_emulator().await;
    let url = emulator.url();
    let ns = plane.create_namespace("chart-rbac").await;
    let release = ns.as_str();
    let fullname = format!("{release}-{RELEASE}");
    // The most confined install: one namespace, and the Lease permissions of leader election.
    let set = format!(
        "leaderElection.enabled=true,credentials.existingSecret=alicloud-credentials,\
         endpoints.dbs={url},endpoints.rds={url},endpoints.sts={url},\
         configureDelay=1s,resyncPeriod=5s,minBackoff=200ms,maxBackoff=3s,\
         instancePollInterval=500ms,deletionTimeout=60s"
    );
    helm_install(plane, &ns, "namespace-scoped-values.yaml", &["--set", &set]);

    // What the kubelet would run: the stored Deployment's args (metrics on a free loopback
    // port instead of 0.0.0.0:8080), POD_NAMESPACE, and the ServiceAccount's identity.
    let deployment: Value = serde_json::from_str(&kubectl_ok(
        plane,
        &[
            "get",
            "-n",
            &ns,
            &format!("deployment/{fullname}"),
            "-o",
            "json",
        ],
    ))
    .expect("kubectl JSON");
    let args: Vec<String> = operator_args(std::slice::from_ref(&deployment))
        .into_iter()
        .skip(1)
        .map(|a| {
            if a.starts_with("--metrics-addr=") {
                "--metrics-addr=127.0.0.1:0".to_owned()
            } else {
                a
            }
        })
        .collect();
    let token = kubectl_ok(
        plane,
        &["create", "token", &fullname, "-n", &ns, "--duration=1h"],
    );
    let kubeconfig = plane.dir().join(format!("{ns}-operator.kubeconfig"));
    token_kubeconfig(plane, token.trim(), &kubeconfig);
    let pod = "operator-0";
    let mut cmd = Operator::command(pod, &args);
    // `command` gives the operator the samples' AccessKey as its own (one sample has no
    // credentialsRef), as `credentials.existingSecret` does in the pod.
    cmd.env("KUBECONFIG", &kubeconfig).env("POD_NAMESPACE", &ns);
    let mut op = Operator::spawn(pod, cmd);

    common::apply_examples(&ns);
    // Ready, or fail at the first refusal rather than at a timeout.
    common::eventually("every sample Ready", Duration::from_secs(120), || {
        assert_not_refused(&mut op);
        let ready = samples_ready(&ns);
        async move { ready }
    })
    .await;
    let holder = kubectl_ok(
        plane,
        &[
            "get",
            "-n",
            &ns,
            &format!("lease/{fullname}"),
            "-o",
            "jsonpath={.spec.holderIdentity}",
        ],
    );
    assert_eq!(holder, pod, "the operator holds the Lease");
    let events = kubectl_ok(
        plane,
        &["get", "events.events.k8s.io", "-n", &ns, "-o", "name"],
    );
    assert!(!events.trim().is_empty(), "the operator recorded Events");

    // Deletion: finalizers of both kinds released, then the credentials Secret's own finalizer.
    kubectl_ok(
        plane,
        &[
            "delete",
            "backupplans,rdsconnections",
            "--all",
            "-n",
            &ns,
            "--timeout=90s",
        ],
    );
    kubectl_ok(
        plane,
        &[
            "delete",
            "secret",
            "alicloud-credentials",
            "-n",
            &ns,
            "--timeout=60s",
        ],
    );
    assert_not_refused(&mut op);
    assert!(op.terminate(Duration::from_secs(20)).await.is_some());
    helm_ok(plane, &["uninstall", release, "--namespace", &ns]);
}
