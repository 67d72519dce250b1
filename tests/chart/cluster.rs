//! The chart against the test control plane: renders accepted by the API server, real installs,
//! and the permissions they grant, asked of the API server's authorizer.

use std::io::Write as _;
use std::process::Stdio;

use crate::render::{RELEASE, cases, chart_dir, helm, template, workspace};

/// A request as authorization sees it: verb, API group, resource (`plural` or
/// `plural/subresource`).
type Request = (&'static str, &'static str, &'static str);

/// Every request the operator makes in the namespaces it watches (src/controller/**,
/// kube-runtime's finalizer helper and event recorder); every install must allow them.
const OPERATOR_REQUESTS: &[Request] = &[
    ("get", "db.alicloud.dev", "backupplans"),
    ("list", "db.alicloud.dev", "backupplans"),
    ("watch", "db.alicloud.dev", "backupplans"),
    ("patch", "db.alicloud.dev", "backupplans"),
    ("patch", "db.alicloud.dev", "backupplans/status"),
    ("update", "db.alicloud.dev", "backupplans/finalizers"),
    ("get", "db.alicloud.dev", "rdsconnections"),
    ("list", "db.alicloud.dev", "rdsconnections"),
    ("watch", "db.alicloud.dev", "rdsconnections"),
    ("patch", "db.alicloud.dev", "rdsconnections"),
    ("patch", "db.alicloud.dev", "rdsconnections/status"),
    ("update", "db.alicloud.dev", "rdsconnections/finalizers"),
    ("get", "", "secrets"),
    ("list", "", "secrets"),
    ("watch", "", "secrets"),
    ("create", "", "secrets"),
    ("patch", "", "secrets"),
    ("create", "events.k8s.io", "events"),
    ("patch", "events.k8s.io", "events"),
];

/// What the operator never does, so no install may allow it.
const NEVER_ALLOWED: &[Request] = &[
    ("delete", "", "secrets"),
    ("update", "", "secrets"),
    ("create", "db.alicloud.dev", "backupplans"),
    ("update", "db.alicloud.dev", "backupplans"),
    ("delete", "db.alicloud.dev", "rdsconnections"),
    ("update", "db.alicloud.dev", "rdsconnections/status"),
    ("create", "", "events"),
    ("list", "coordination.k8s.io", "leases"),
    ("get", "", "pods"),
    ("list", "", "configmaps"),
];

/// Asks the API server's authorizer (SubjectAccessReview) whether the ServiceAccount
/// `sa = (namespace, name)` may make each request in `namespace`, on the object `name` if given.
async fn authorized(
    sa: (&str, &str),
    namespace: &str,
    requests: &[Request],
    name: Option<&str>,
) -> Vec<(String, bool)> {
    use k8s_openapi::api::authorization::v1::{
        ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec,
    };
    let api: kube::Api<SubjectAccessReview> =
        kube::Api::all(alicloud_testenv::shared().client().await);
    let asks = requests.iter().map(|(verb, group, resource)| {
        let (resource, subresource) = match resource.split_once('/') {
            Some((r, s)) => (r, Some(s.to_owned())),
            None => (*resource, None),
        };
        let review = SubjectAccessReview {
            spec: SubjectAccessReviewSpec {
                user: Some(format!("system:serviceaccount:{}:{}", sa.0, sa.1)),
                groups: Some(vec![
                    "system:serviceaccounts".into(),
                    format!("system:serviceaccounts:{}", sa.0),
                    "system:authenticated".into(),
                ]),
                resource_attributes: Some(ResourceAttributes {
                    namespace: Some(namespace.to_owned()),
                    verb: Some((*verb).to_owned()),
                    group: Some((*group).to_owned()),
                    resource: Some(resource.to_owned()),
                    subresource: subresource.clone(),
                    name: name.map(str::to_owned),
                    ..Default::default()
                }),
                ..Default::default()
            },
            ..Default::default()
        };
        let api = api.clone();
        let what = format!(
            "{verb} {resource}{}{}{} in {namespace}",
            subresource.map(|s| format!("/{s}")).unwrap_or_default(),
            if group.is_empty() {
                String::new()
            } else {
                format!(".{group}")
            },
            name.map(|n| format!(" named {n}")).unwrap_or_default(),
        );
        async move {
            let answer = api
                .create(&Default::default(), &review)
                .await
                .unwrap_or_else(|e| panic!("SubjectAccessReview for {what}: {e}"));
            (what, answer.status.is_some_and(|s| s.allowed))
        }
    });
    futures::future::join_all(asks).await
}

fn assert_allowed(answers: &[(String, bool)], expected: bool) {
    let wrong: Vec<&str> = answers
        .iter()
        .filter(|(_, allowed)| *allowed != expected)
        .map(|(what, _)| what.as_str())
        .collect();
    let word = if expected { "denied" } else { "allowed" };
    assert!(wrong.is_empty(), "{word}: {wrong:?}");
}

pub(crate) fn kubectl_ok(plane: &alicloud_testenv::ControlPlane, args: &[&str]) -> String {
    let out = plane.kubectl().args(args).output().expect("run kubectl");
    assert!(
        out.status.success(),
        "kubectl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8 output")
}

pub(crate) fn helm_ok(plane: &alicloud_testenv::ControlPlane, args: &[&str]) {
    let out = helm(args, Some(plane.kubeconfig_path()));
    assert!(
        out.status.success(),
        "helm {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `helm install` of the chart as the release named after the namespace `ns`, into it, with
/// `ci/{values}` and then `extra` arguments. No --wait: the test control plane has no kubelet,
/// so no pod ever starts.
pub(crate) fn helm_install(
    plane: &alicloud_testenv::ControlPlane,
    ns: &str,
    values: &str,
    extra: &[&str],
) {
    let chart = chart_dir();
    let values = chart.join("ci").join(values);
    let chart = chart.to_str().expect("UTF-8 path");
    let values = values.to_str().expect("UTF-8 path");
    let args = ["install", ns, chart, "--namespace", ns, "-f", values];
    helm_ok(plane, &[&args, extra].concat());
}

#[tokio::test(flavor = "multi_thread")]
async fn every_values_file_renders_objects_the_apiserver_accepts() {
    let plane = alicloud_testenv::shared();
    // The test apiserver has no Prometheus Operator: a minimal ServiceMonitor CRD (a subset of
    // the upstream schema) stands in for it, so the ServiceMonitor values can be checked too.
    plane
        .install_crds(&workspace().join("tests/fixtures/prometheus-operator-crds"))
        .await
        .expect("install the ServiceMonitor CRD fixture");
    let ns = plane.create_namespace("chart-dry-run").await;
    let cases = cases();
    let failures: Vec<String> = std::thread::scope(|s| {
        let handles: Vec<_> = cases
            .iter()
            .map(|case| {
                let ns = ns.as_str();
                s.spawn(move || {
                    let text = match template(RELEASE, ns, case, &[]) {
                        Ok(t) => t,
                        Err(e) => return Some(format!("{}: helm template: {e}", case.name)),
                    };
                    let mut child = plane
                        .kubectl()
                        .args(["apply", "--dry-run=server", "--validate=strict", "-f", "-"])
                        .stdin(Stdio::piped())
                        .stdout(Stdio::piped())
                        .stderr(Stdio::piped())
                        .spawn()
                        .expect("run kubectl");
                    child
                        .stdin
                        .take()
                        .expect("stdin")
                        .write_all(text.as_bytes())
                        .expect("write the render to kubectl");
                    let out = child.wait_with_output().expect("kubectl finishes");
                    (!out.status.success()).then(|| {
                        format!(
                            "{}: kubectl apply --dry-run=server:\n{}",
                            case.name,
                            String::from_utf8_lossy(&out.stderr)
                        )
                    })
                })
            })
            .collect();
        handles
            .into_iter()
            .filter_map(|h| h.join().expect("dry-run thread"))
            .collect()
    });
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[tokio::test(flavor = "multi_thread")]
async fn helm_install_grants_what_the_operator_needs_and_uninstall_keeps_the_crds() {
    let plane = alicloud_testenv::shared();
    let ns = plane.create_namespace("chart-install").await;
    let release = ns.as_str();
    let fullname = format!("{release}-{RELEASE}");

    // The harness installed the CRDs from crds/, as `kubectl apply -f crds/` would; Helm takes
    // over existing objects that carry its ownership label and annotations.
    let crds = [
        "backupplans.db.alicloud.dev",
        "rdsconnections.db.alicloud.dev",
    ];
    for crd in crds {
        kubectl_ok(
            plane,
            &[
                "label",
                "crd",
                crd,
                "app.kubernetes.io/managed-by=Helm",
                "--overwrite",
            ],
        );
        kubectl_ok(
            plane,
            &[
                "annotate",
                "crd",
                crd,
                &format!("meta.helm.sh/release-name={release}"),
                &format!("meta.helm.sh/release-namespace={ns}"),
                "--overwrite",
            ],
        );
    }
    helm_install(plane, &ns, "leader-election-values.yaml", &[]);
    let lease_role = format!("{fullname}-leader-election");
    for object in [
        format!("deployment/{fullname}"),
        format!("serviceaccount/{fullname}"),
        format!("service/{fullname}-metrics"),
        format!("poddisruptionbudget/{fullname}"),
        format!("role/{lease_role}"),
        format!("rolebinding/{lease_role}"),
    ] {
        kubectl_ok(plane, &["get", "-n", &ns, &object]);
    }
    kubectl_ok(plane, &["get", &format!("clusterrole/{fullname}")]);
    kubectl_ok(plane, &["get", &format!("clusterrolebinding/{fullname}")]);
    for crd in crds {
        let labels = kubectl_ok(
            plane,
            &[
                "get",
                "crd",
                crd,
                "-o",
                "jsonpath={.metadata.labels.app\\.kubernetes\\.io/instance}",
            ],
        );
        assert_eq!(labels, release, "{crd} is part of the release");
    }

    // What the operator's ServiceAccount may do, asked of the API server's own authorizer, in
    // another namespace than its own (cluster scope).
    let sa = (ns.as_str(), fullname.as_str());
    assert_allowed(
        &authorized(sa, "default", OPERATOR_REQUESTS, None).await,
        true,
    );
    assert_allowed(&authorized(sa, "default", NEVER_ALLOWED, None).await, false);
    // The Lease: created by anyone's name, then only the one named by the values.
    let lease = format!("{RELEASE}-ci");
    let create: &[Request] = &[("create", "coordination.k8s.io", "leases")];
    let own: &[Request] = &[
        ("get", "coordination.k8s.io", "leases"),
        ("patch", "coordination.k8s.io", "leases"),
    ];
    let never: &[Request] = &[
        ("update", "coordination.k8s.io", "leases"),
        ("delete", "coordination.k8s.io", "leases"),
    ];
    assert_allowed(&authorized(sa, &ns, create, None).await, true);
    assert_allowed(&authorized(sa, &ns, own, Some(&lease)).await, true);
    assert_allowed(&authorized(sa, &ns, never, Some(&lease)).await, false);
    assert_allowed(
        &authorized(sa, &ns, own, Some("another-lease")).await,
        false,
    );
    assert_allowed(&authorized(sa, "default", own, Some(&lease)).await, false);

    helm_ok(plane, &["uninstall", release, "--namespace", &ns]);
    let gone = plane
        .kubectl()
        .args(["get", &format!("clusterrole/{fullname}")])
        .output()
        .expect("run kubectl");
    assert!(!gone.status.success(), "uninstall removes the ClusterRole");
    for crd in crds {
        kubectl_ok(plane, &["get", "crd", crd]);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_namespace_scoped_install_grants_nothing_outside_its_namespace() {
    let plane = alicloud_testenv::shared();
    let ns = plane.create_namespace("chart-ns-scope").await;
    let release = ns.as_str();
    let fullname = format!("{release}-{RELEASE}");
    helm_install(plane, &ns, "namespace-scoped-values.yaml", &[]);
    kubectl_ok(plane, &["get", "-n", &ns, &format!("role/{fullname}")]);
    let sa = (ns.as_str(), fullname.as_str());
    assert_allowed(&authorized(sa, &ns, OPERATOR_REQUESTS, None).await, true);
    assert_allowed(&authorized(sa, &ns, NEVER_ALLOWED, None).await, false);
    assert_allowed(
        &authorized(sa, "default", OPERATOR_REQUESTS, None).await,
        false,
    );
    helm_ok(plane, &["uninstall", release, "--namespace", &ns]);
}
