//! What the chart accepts (lint, schema, contradictions) and what it writes: `deploy/` and the
//! CRDs, both kept equal to their sources.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use crate::render::{
    Case, RELEASE, cases, chart_dir, helm, objects, of_kind, render, template, workspace,
};

#[test]
fn chart_lints_clean_with_every_values_file() {
    let chart = chart_dir();
    let chart = chart.to_str().expect("UTF-8 path");
    let cases = cases();
    let failures: Vec<String> = std::thread::scope(|s| {
        let handles: Vec<_> = cases
            .iter()
            .map(|case| {
                s.spawn(move || {
                    let mut args = vec!["lint", "--strict", chart];
                    if let Some(v) = &case.values {
                        args.extend(["-f", v.to_str().expect("UTF-8 path")]);
                    }
                    let out = helm(&args, None);
                    let text = String::from_utf8_lossy(&out.stdout).into_owned()
                        + &String::from_utf8_lossy(&out.stderr);
                    let clean = out.status.success()
                        && !text.contains("[WARNING]")
                        && !text.contains("[ERROR]");
                    (!clean).then(|| format!("{}:\n{text}", case.name))
                })
            })
            .collect();
        handles
            .into_iter()
            .filter_map(|h| h.join().expect("lint thread"))
            .collect()
    });
    assert!(
        failures.is_empty(),
        "helm lint --strict:\n{}",
        failures.join("\n")
    );
}

#[test]
fn ci_values_cover_the_documented_install_modes() {
    let names: BTreeSet<String> = cases().into_iter().map(|c| c.name).collect();
    for required in [
        "namespace-scoped",
        "leader-election",
        "emulator",
        "servicemonitor",
    ] {
        assert!(
            names.contains(required),
            "ci/{required}-values.yaml is missing"
        );
    }
}

#[test]
fn the_schema_rejects_wrong_types_unknown_keys_and_bad_values_naming_the_key() {
    let default = Case::defaults();
    let cases: &[(&str, &str)] = &[
        ("concurrency=eight", "concurrency"),
        ("replicaCount=two", "replicaCount"),
        ("concurrencyy=8", "concurrencyy"),
        ("metrics.prot=9090", "prot"),
        ("emulator.acount.accessKeyId=x", "acount"),
        ("logFormat=yaml", "logFormat"),
        ("resyncPeriod=0s", "resyncPeriod"),
        ("installScope=cluster-wide", "installScope"),
    ];
    let failures: Vec<String> = std::thread::scope(|s| {
        let handles: Vec<_> = cases
            .iter()
            .map(|(set, key)| {
                let default = &default;
                s.spawn(move || match template(RELEASE, RELEASE, default, &[set]) {
                    Ok(_) => Some(format!("--set {set} was accepted")),
                    Err(e) if e.contains(key) => None,
                    Err(e) => Some(format!("--set {set}: the error does not name {key}: {e}")),
                })
            })
            .collect();
        handles
            .into_iter()
            .filter_map(|h| h.join().expect("schema thread"))
            .collect()
    });
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn contradictory_values_fail_with_a_message_saying_what_to_change() {
    let default = Case::defaults();
    let cases: &[(&[&str], &str)] = &[
        (
            &["watchNamespace=team-a"],
            "watchNamespace is only used with installScope: namespace",
        ),
        (
            &["emulator.enabled=true", "endpoints.dbs=dbs.aliyuncs.com"],
            "leave endpoints.dbs",
        ),
        (
            &["emulator.enabled=true", "credentials.existingSecret=ak"],
            "leave credentials.existingSecret",
        ),
        (
            &[
                "credentials.existingSecret=ak",
                "credentials.rrsa.roleArn=acs:ram::1:role/r",
                "credentials.rrsa.oidcProviderArn=acs:ram::1:oidc-provider/p",
            ],
            "not both",
        ),
        (
            &["credentials.rrsa.roleArn=acs:ram::1:role/r"],
            "needs credentials.rrsa.oidcProviderArn",
        ),
    ];
    for (set, message) in cases {
        match template(RELEASE, RELEASE, &default, set) {
            Ok(_) => panic!("{set:?} was accepted"),
            Err(e) => assert!(e.contains(message), "{set:?}: {e}"),
        }
    }
}

#[test]
fn deploy_manifests_are_the_chart_rendered_with_default_values() {
    let default = Case::defaults();
    let rendered = template(RELEASE, RELEASE, &default, &["crds.enabled=false"])
        .unwrap_or_else(|e| panic!("helm template: {e}"));
    let path = workspace().join("deploy/alicloud-db-operator.yaml");
    let committed = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e}; run `cargo xtask manifests`", path.display()));
    let body = committed
        .strip_prefix("# Generated by `cargo xtask manifests`")
        .and_then(|rest| rest.split_once('\n'))
        .map_or_else(
            || panic!("{} lacks its generated header", path.display()),
            |(_, body)| body,
        );
    assert!(
        body == rendered,
        "{} differs from what the chart renders now; run `cargo xtask manifests`",
        path.display()
    );

    let deployed = objects(&rendered);
    assert!(
        of_kind(&deployed, "CustomResourceDefinition")
            .next()
            .is_none(),
        "deploy/ leaves the CRDs to crds/"
    );
    for o in &deployed {
        if !matches!(
            o["kind"].as_str(),
            Some("ClusterRole" | "ClusterRoleBinding")
        ) {
            assert_eq!(o["metadata"]["namespace"], RELEASE, "{}", o["kind"]);
        }
    }
    let namespace = std::fs::read_to_string(workspace().join("deploy/00-namespace.yaml"))
        .expect("deploy/00-namespace.yaml");
    let namespace = objects(&namespace);
    assert_eq!(namespace.len(), 1);
    assert_eq!(namespace[0]["kind"], "Namespace");
    assert_eq!(namespace[0]["metadata"]["name"], RELEASE);
}

/// A CRD without the metadata the chart adds (labels, annotations).
fn without_chart_metadata(mut crd: Value) -> Value {
    let meta = crd["metadata"].as_object_mut().expect("metadata");
    meta.remove("labels");
    meta.remove("annotations");
    crd
}

#[test]
fn chart_crds_are_the_generated_crds_kept_on_uninstall() {
    let committed: BTreeMap<String, Value> = std::fs::read_dir(workspace().join("crds"))
        .expect("crds/")
        .map(|e| e.expect("entry").path())
        .map(|p| {
            let crd = objects(&std::fs::read_to_string(&p).expect("read a CRD"))
                .pop()
                .expect("one CRD per file");
            (
                crd["metadata"]["name"].as_str().expect("name").to_owned(),
                crd,
            )
        })
        .collect();
    let rendered: Vec<&Value> =
        of_kind(&render("default").objects, "CustomResourceDefinition").collect();
    assert_eq!(
        rendered.len(),
        committed.len(),
        "every CRD of crds/ is rendered"
    );
    for crd in rendered {
        let name = crd["metadata"]["name"].as_str().expect("name");
        assert_eq!(
            crd["metadata"]["annotations"]["helm.sh/resource-policy"], "keep",
            "{name}"
        );
        assert_eq!(
            crd["metadata"]["labels"]["app.kubernetes.io/instance"],
            RELEASE
        );
        assert!(
            without_chart_metadata(crd.clone()) == committed[name],
            "{name}: the chart renders a CRD that differs from crds/; run `cargo xtask crds`"
        );
    }

    let default = Case::defaults();
    let unkept =
        objects(&template(RELEASE, RELEASE, &default, &["crds.keep=false"]).expect("render"));
    for crd in of_kind(&unkept, "CustomResourceDefinition") {
        assert!(crd["metadata"]["annotations"].is_null(), "crds.keep=false");
    }
    let disabled =
        objects(&template(RELEASE, RELEASE, &default, &["crds.enabled=false"]).expect("render"));
    assert!(
        of_kind(&disabled, "CustomResourceDefinition")
            .next()
            .is_none()
    );
}
