//! What the rendered objects say, for every values file: the operator's arguments (parsed by its
//! own CLI parser), the install scope, leader election, RBAC, pod security, the emulator and the
//! operator's credentials.

use std::collections::BTreeSet;
use std::path::Path;

use alicloud_db_operator::cli::{Cli, LogFormat};
use clap::CommandFactory;
use serde_json::Value;

use crate::render::{
    Case, RELEASE, component, env_var, objects, of_kind, operator_args, operator_container,
    operator_deployment, parse_args, rbac_rules, render, renders, strings, template,
};

#[test]
fn rendered_args_parse_with_the_operator_cli_and_cover_every_flag() {
    let mut rendered_flags = BTreeSet::new();
    for r in renders() {
        let args = operator_args(&r.objects);
        assert_eq!(
            args.first().map(String::as_str),
            Some("run"),
            "{}",
            r.case.name
        );
        for a in &args[1..] {
            let (flag, _) = a
                .split_once('=')
                .unwrap_or_else(|| panic!("{}: {a} is not --flag=value", r.case.name));
            rendered_flags.insert(flag.trim_start_matches("--").to_owned());
        }
        let parsed = parse_args(&r.case.name, &args);
        let container = operator_container(&r.objects);
        for (var, field) in [
            ("POD_NAME", "metadata.name"),
            ("POD_NAMESPACE", "metadata.namespace"),
        ] {
            let env =
                env_var(container, var).unwrap_or_else(|| panic!("{}: no {var} env", r.case.name));
            assert_eq!(env["valueFrom"]["fieldRef"]["fieldPath"], field);
        }
        assert!(env_var(container, "RUST_LOG").is_some(), "{}", r.case.name);
        if r.case.name == "default" {
            assert_eq!(parsed.log_format, LogFormat::Json);
            assert!(!parsed.leader_elect);
            assert_eq!(parsed.watch_namespace, None);
            assert_eq!(parsed.metrics_addr.port(), 8080);
        }
    }
    // Every flag of `run` has a value in the chart; only --pod-name comes from the environment
    // (POD_NAME, the downward API), and the hidden fault injection stays out.
    let cli = Cli::command();
    let run = cli.find_subcommand("run").expect("a run subcommand");
    let missing: Vec<&str> = run
        .get_arguments()
        .filter(|a| !a.is_hide_set())
        .filter_map(|a| a.get_long())
        .filter(|l| !["help", "version", "pod-name"].contains(l))
        .filter(|l| !rendered_flags.contains(*l))
        .collect();
    assert!(
        missing.is_empty(),
        "flags no values file renders: {missing:?}"
    );
}

#[test]
fn namespace_scope_watches_the_namespace_its_role_is_in() {
    let r = render("namespace-scoped");
    let parsed = parse_args(&r.case.name, &operator_args(&r.objects));
    let watched = parsed
        .watch_namespace
        .expect("--watch-namespace in namespace scope");
    assert!(
        of_kind(&r.objects, "ClusterRole").next().is_none()
            && of_kind(&r.objects, "ClusterRoleBinding").next().is_none(),
        "namespace scope grants nothing cluster-wide"
    );
    let roles: Vec<&Value> = of_kind(&r.objects, "Role").collect();
    assert_eq!(roles.len(), 1, "one Role (no leader election)");
    assert_eq!(roles[0]["metadata"]["namespace"], watched.as_str());
    let binding = of_kind(&r.objects, "RoleBinding")
        .next()
        .expect("a RoleBinding");
    assert_eq!(binding["metadata"]["namespace"], watched.as_str());
    assert_eq!(binding["roleRef"]["name"], roles[0]["metadata"]["name"]);
    assert_eq!(
        binding["subjects"][0]["name"],
        operator_deployment(&r.objects)["spec"]["template"]["spec"]["serviceAccountName"]
    );

    let custom = Case {
        name: "namespace-scoped, watchNamespace".into(),
        values: r.case.values.clone(),
    };
    let objects = objects(
        &template(RELEASE, RELEASE, &custom, &["watchNamespace=team-a"])
            .unwrap_or_else(|e| panic!("helm template: {e}")),
    );
    let parsed = parse_args(&custom.name, &operator_args(&objects));
    assert_eq!(parsed.watch_namespace.as_deref(), Some("team-a"));
    for kind in ["Role", "RoleBinding"] {
        let o = of_kind(&objects, kind).next().expect(kind);
        assert_eq!(o["metadata"]["namespace"], "team-a", "{kind}");
    }
}

#[test]
fn more_than_one_replica_turns_leader_election_on_with_a_lease_role() {
    let r = render("leader-election");
    let parsed = parse_args(&r.case.name, &operator_args(&r.objects));
    assert!(parsed.leader_elect);
    assert_eq!(parsed.leader_election_namespace.as_deref(), Some(RELEASE));
    let deployment = operator_deployment(&r.objects);
    assert_eq!(deployment["spec"]["replicas"], 2);
    assert_eq!(deployment["spec"]["strategy"]["type"], "RollingUpdate");
    let lease_role = of_kind(&r.objects, "Role")
        .find(|role| {
            role["rules"].as_array().is_some_and(|rules| {
                rules
                    .iter()
                    .any(|rule| strings(&rule["resources"]) == ["leases"])
            })
        })
        .expect("a Role for the Lease");
    assert_eq!(lease_role["metadata"]["namespace"], RELEASE);
    let named: Vec<&str> = lease_role["rules"]
        .as_array()
        .expect("rules")
        .iter()
        .flat_map(|rule| strings(&rule["resourceNames"]))
        .collect();
    assert_eq!(named, [parsed.leader_election_id.as_str()]);
    assert!(
        of_kind(&r.objects, "PodDisruptionBudget").next().is_some(),
        "the leader-election values turn the PDB on"
    );

    // Without leader election two pods must never overlap, not even during a rollout.
    let default = render("default");
    let deployment = operator_deployment(&default.objects);
    assert_eq!(deployment["spec"]["strategy"]["type"], "Recreate");
    assert!(
        !rbac_rules(&default.objects)
            .iter()
            .any(|(_, rule)| strings(&rule["resources"]).contains(&"leases")),
        "no Lease permissions without leader election"
    );
}

#[test]
fn rbac_rules_include_the_finalizers_and_no_wildcards() {
    for r in renders() {
        let rules = rbac_rules(&r.objects);
        for (owner, rule) in &rules {
            for field in ["apiGroups", "resources", "verbs", "resourceNames"] {
                assert!(
                    !strings(&rule[field]).iter().any(|s| s.contains('*')),
                    "{}: {owner} has a wildcard in {field}: {rule}",
                    r.case.name
                );
            }
            assert!(
                rule.get("nonResourceURLs").is_none(),
                "{}: {owner}",
                r.case.name
            );
        }
        let granted = |resource: &str, verb: &str| {
            rules.iter().any(|(_, rule)| {
                strings(&rule["resources"]).contains(&resource)
                    && strings(&rule["verbs"]).contains(&verb)
            })
        };
        for (resource, verb) in [
            ("backupplans/finalizers", "update"),
            ("rdsconnections/finalizers", "update"),
            ("backupplans/status", "patch"),
            ("rdsconnections/status", "patch"),
            ("secrets", "patch"),
            ("events", "create"),
        ] {
            assert!(
                granted(resource, verb),
                "{}: {verb} {resource} is not granted",
                r.case.name
            );
        }
        assert!(
            !granted("secrets", "delete"),
            "{}: Secrets are never deleted by the operator",
            r.case.name
        );
    }
}

#[test]
fn every_pod_runs_as_non_root_with_a_read_only_root_filesystem() {
    for r in renders() {
        for d in of_kind(&r.objects, "Deployment") {
            let what = format!("{}: {}", r.case.name, d["metadata"]["name"]);
            let pod = &d["spec"]["template"]["spec"];
            let sc = &pod["securityContext"];
            assert_eq!(sc["runAsNonRoot"], true, "{what}");
            assert_eq!(sc["runAsUser"], 65532, "{what}");
            assert_eq!(sc["runAsGroup"], 65532, "{what}");
            assert_eq!(sc["seccompProfile"]["type"], "RuntimeDefault", "{what}");
            for c in pod["containers"].as_array().expect("containers") {
                let sc = &c["securityContext"];
                assert_eq!(sc["readOnlyRootFilesystem"], true, "{what}");
                assert_eq!(sc["allowPrivilegeEscalation"], false, "{what}");
                assert_eq!(strings(&sc["capabilities"]["drop"]), ["ALL"], "{what}");
                assert!(c["resources"]["requests"].is_object(), "{what}: requests");
                assert!(c["livenessProbe"].is_object(), "{what}: liveness probe");
                assert!(c["readinessProbe"].is_object(), "{what}: readiness probe");
            }
        }
        let operator = operator_container(&r.objects);
        assert_eq!(operator["livenessProbe"]["httpGet"]["path"], "/healthz");
        assert_eq!(operator["readinessProbe"]["httpGet"]["path"], "/readyz");
        for probe in ["livenessProbe", "readinessProbe"] {
            assert_eq!(operator[probe]["httpGet"]["port"], "metrics");
        }
    }
}

#[test]
fn the_emulator_values_point_the_operator_at_the_emulator_and_its_account() {
    let r = render("emulator");
    let parsed = parse_args(&r.case.name, &operator_args(&r.objects));
    let service = of_kind(&r.objects, "Service")
        .find(|s| component(s) == "emulator")
        .expect("an emulator Service");
    let url = format!(
        "http://{}.{RELEASE}.svc:{}",
        service["metadata"]["name"].as_str().expect("name"),
        service["spec"]["ports"][0]["port"]
    );
    assert_eq!(parsed.dbs_endpoint.as_deref(), Some(url.as_str()));
    assert_eq!(parsed.rds_endpoint.as_deref(), Some(url.as_str()));
    assert_eq!(parsed.sts_endpoint.as_deref(), Some(url.as_str()));

    let emulator = of_kind(&r.objects, "Deployment")
        .find(|d| component(d) == "emulator")
        .expect("an emulator Deployment");
    let container = &emulator["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(
        strings(&container["command"]),
        ["/usr/local/bin/alicloud-emulator"]
    );
    let args = strings(&container["args"]);
    assert!(args.contains(&"--listen=0.0.0.0:8090"), "{args:?}");
    assert!(
        args.contains(&"--rds-instance=cn-shanghai/rm-uf6analytics01"),
        "{args:?}"
    );
    assert_eq!(emulator["metadata"]["namespace"], RELEASE);

    // One Secret holds the account: the emulator's --account and the operator's own credentials.
    let secret = of_kind(&r.objects, "Secret")
        .find(|s| component(s) == "emulator")
        .expect("the emulator account Secret");
    let data = &secret["stringData"];
    assert_eq!(
        data["account"],
        format!(
            "{}:{}",
            data["accessKeyId"].as_str().expect("id"),
            data["accessKeySecret"].as_str().expect("secret")
        )
    );
    let secret_name = &secret["metadata"]["name"];
    let operator = operator_container(&r.objects);
    for (var, key) in [
        ("ALIBABA_CLOUD_ACCESS_KEY_ID", "accessKeyId"),
        ("ALIBABA_CLOUD_ACCESS_KEY_SECRET", "accessKeySecret"),
    ] {
        let from = &env_var(operator, var).unwrap_or_else(|| panic!("no {var}"))["valueFrom"]["secretKeyRef"];
        assert_eq!(&from["name"], secret_name, "{var}");
        assert_eq!(from["key"], key, "{var}");
    }
    let account = env_var(container, "ALICLOUD_EMULATOR_ACCOUNT").expect("the emulator account");
    assert_eq!(&account["valueFrom"]["secretKeyRef"]["name"], secret_name);
}

#[test]
fn credentials_values_become_the_operator_environment() {
    let r = render("credentials-secret");
    let operator = operator_container(&r.objects);
    let token = env_var(operator, "ALIBABA_CLOUD_SECURITY_TOKEN").expect("the optional token");
    assert_eq!(token["valueFrom"]["secretKeyRef"]["optional"], true);
    assert_eq!(
        env_var(operator, "ALIBABA_CLOUD_ACCESS_KEY_ID").expect("the key id")["valueFrom"]["secretKeyRef"]
            ["name"],
        "alicloud-operator-credentials"
    );

    let r = render("rrsa");
    let operator = operator_container(&r.objects);
    let token_file =
        env_var(operator, "ALIBABA_CLOUD_OIDC_TOKEN_FILE").expect("token file")["value"]
            .as_str()
            .expect("a path");
    let mount = operator["volumeMounts"]
        .as_array()
        .and_then(|m| m.iter().find(|m| m["name"] == "rrsa-token"))
        .expect("the token volume is mounted");
    assert_eq!(
        Path::new(token_file).parent(),
        Some(Path::new(mount["mountPath"].as_str().expect("a path")))
    );
    let volume = &operator_deployment(&r.objects)["spec"]["template"]["spec"]["volumes"][0];
    assert_eq!(
        volume["projected"]["sources"][0]["serviceAccountToken"]["audience"],
        "sts.aliyuncs.com"
    );
    for var in ["ALIBABA_CLOUD_ROLE_ARN", "ALIBABA_CLOUD_OIDC_PROVIDER_ARN"] {
        assert!(env_var(operator, var).is_some(), "{var}");
    }

    // Defaults: no operator credentials at all; every object then names its own Secret.
    let operator = operator_container(&render("default").objects);
    for var in ["ALIBABA_CLOUD_ACCESS_KEY_ID", "ALIBABA_CLOUD_ROLE_ARN"] {
        assert!(env_var(operator, var).is_none(), "{var} in the defaults");
    }
}
