//! Rendering the chart with helm, and finding things in what it rendered.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

use alicloud_db_operator::cli::{Cli, Command as CliCommand, RunArgs};
use clap::Parser;
use serde::Deserialize;
use serde_json::Value;

/// Release name and namespace of `deploy/` and of the renders checked without a cluster.
pub(crate) const RELEASE: &str = "alicloud-db-operator";

/// The workspace root.
pub(crate) fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `charts/alicloud-db-operator`.
pub(crate) fn chart_dir() -> PathBuf {
    workspace().join("charts").join(RELEASE)
}

/// The pinned helm, installed on first use; panics (never skips) when it cannot be had.
fn helm_bin() -> &'static Path {
    static HELM: OnceLock<PathBuf> = OnceLock::new();
    HELM.get_or_init(|| {
        alicloud_testenv::tools::helm()
            .unwrap_or_else(|e| panic!("no helm for the chart tests: {e}"))
    })
}

/// One set of chart values: the defaults, or a file under `ci/`.
#[derive(Clone, Debug)]
pub(crate) struct Case {
    pub(crate) name: String,
    pub(crate) values: Option<PathBuf>,
}

impl Case {
    /// The chart's default values.
    pub(crate) fn defaults() -> Self {
        Self {
            name: "default".into(),
            values: None,
        }
    }
}

/// The defaults and every `ci/*-values.yaml`, sorted.
pub(crate) fn cases() -> Vec<Case> {
    let ci = chart_dir().join("ci");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&ci)
        .unwrap_or_else(|e| panic!("read {}: {e}", ci.display()))
        .map(|e| e.expect("a directory entry").path())
        .filter(|p| p.to_string_lossy().ends_with("-values.yaml"))
        .collect();
    files.sort();
    let mut cases = vec![Case::defaults()];
    cases.extend(files.into_iter().map(|p| {
        Case {
            name: p
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_suffix("-values.yaml"))
                .expect("a *-values.yaml name")
                .to_owned(),
            values: Some(p),
        }
    }));
    cases
}

/// Runs helm with `args`; `kubeconfig` for the commands that talk to a cluster.
pub(crate) fn helm(args: &[&str], kubeconfig: Option<&Path>) -> Output {
    let mut cmd = Command::new(helm_bin());
    cmd.args(args).stdin(Stdio::null());
    if let Some(k) = kubeconfig {
        cmd.env("KUBECONFIG", k);
    }
    cmd.output()
        .unwrap_or_else(|e| panic!("run {}: {e}", helm_bin().display()))
}

/// `helm template RELEASE chart --namespace NS [-f values] [--set ...]`: the output, or stderr.
pub(crate) fn template(
    release: &str,
    namespace: &str,
    case: &Case,
    set: &[&str],
) -> Result<String, String> {
    let chart = chart_dir();
    let mut args = vec![
        "template",
        release,
        chart.to_str().expect("UTF-8 path"),
        "--namespace",
        namespace,
    ];
    if let Some(values) = &case.values {
        args.extend(["-f", values.to_str().expect("UTF-8 path")]);
    }
    for s in set {
        args.extend(["--set", s]);
    }
    let out = helm(&args, None);
    if out.status.success() {
        Ok(String::from_utf8(out.stdout).expect("UTF-8 output"))
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

/// The objects of a multi-document YAML text.
pub(crate) fn objects(yaml: &str) -> Vec<Value> {
    serde_yaml::Deserializer::from_str(yaml)
        .map(|doc| Value::deserialize(doc).expect("valid YAML"))
        .filter(|v| !v.is_null())
        .collect()
}

/// A render of one case, release [`RELEASE`] in namespace [`RELEASE`].
pub(crate) struct Render {
    pub(crate) case: Case,
    pub(crate) objects: Vec<Value>,
}

/// Every case rendered once per test binary (in parallel).
pub(crate) fn renders() -> &'static [Render] {
    static RENDERS: OnceLock<Vec<Render>> = OnceLock::new();
    RENDERS.get_or_init(|| {
        let cases = cases();
        std::thread::scope(|s| {
            let handles: Vec<_> = cases
                .iter()
                .map(|case| s.spawn(move || template(RELEASE, RELEASE, case, &[])))
                .collect();
            cases
                .iter()
                .zip(handles)
                .map(|(case, h)| {
                    let text = h
                        .join()
                        .expect("render thread")
                        .unwrap_or_else(|e| panic!("helm template ({}): {e}", case.name));
                    Render {
                        case: case.clone(),
                        objects: objects(&text),
                    }
                })
                .collect()
        })
    })
}

/// The render of `ci/<name>-values.yaml` (or of the defaults: `default`).
pub(crate) fn render(name: &str) -> &'static Render {
    renders()
        .iter()
        .find(|r| r.case.name == name)
        .unwrap_or_else(|| panic!("no values case {name}: ci/{name}-values.yaml is missing"))
}

/// The objects of one kind.
pub(crate) fn of_kind<'a>(
    objects: &'a [Value],
    kind: &'a str,
) -> impl Iterator<Item = &'a Value> + 'a {
    objects.iter().filter(move |o| o["kind"] == kind)
}

/// The `app.kubernetes.io/component` label: `operator` or `emulator`.
pub(crate) fn component(o: &Value) -> &str {
    o["metadata"]["labels"]["app.kubernetes.io/component"]
        .as_str()
        .unwrap_or_default()
}

/// The operator's Deployment in a render.
pub(crate) fn operator_deployment(objects: &[Value]) -> &Value {
    let mut found = of_kind(objects, "Deployment").filter(|d| component(d) == "operator");
    let deployment = found.next().expect("an operator Deployment");
    assert!(found.next().is_none(), "one operator Deployment");
    deployment
}

/// The operator's container in a render.
pub(crate) fn operator_container(objects: &[Value]) -> &Value {
    operator_deployment(objects)["spec"]["template"]["spec"]["containers"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["name"] == "operator"))
        .expect("a container named operator")
}

/// The operator container's `args`, starting with the subcommand.
pub(crate) fn operator_args(objects: &[Value]) -> Vec<String> {
    operator_container(objects)["args"]
        .as_array()
        .expect("explicit args")
        .iter()
        .map(|a| a.as_str().expect("string args").to_owned())
        .collect()
}

/// The rendered args, parsed by the operator's own parser.
pub(crate) fn parse_args(case: &str, args: &[String]) -> RunArgs {
    let argv = std::iter::once("alicloud-db-operator").chain(args.iter().map(String::as_str));
    match Cli::try_parse_from(argv) {
        Ok(Cli {
            command: CliCommand::Run(run),
        }) => run,
        Err(e) => panic!("{case}: the operator refuses the rendered args {args:?}:\n{e}"),
    }
}

/// The environment variable `name` of a container.
pub(crate) fn env_var<'a>(container: &'a Value, name: &str) -> Option<&'a Value> {
    container["env"]
        .as_array()?
        .iter()
        .find(|e| e["name"] == name)
}

/// Every rule of every Role and ClusterRole, with the kind and namespace of its role.
pub(crate) fn rbac_rules(objects: &[Value]) -> Vec<(String, Value)> {
    objects
        .iter()
        .filter(|o| o["kind"] == "Role" || o["kind"] == "ClusterRole")
        .flat_map(|role| {
            let owner = format!(
                "{} {}/{}",
                role["kind"].as_str().unwrap_or_default(),
                role["metadata"]["namespace"].as_str().unwrap_or("-"),
                role["metadata"]["name"].as_str().unwrap_or_default()
            );
            role["rules"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .map(move |r| (owner.clone(), r))
        })
        .collect()
}

/// The strings of a JSON array (empty for anything else).
pub(crate) fn strings(v: &Value) -> Vec<&str> {
    v.as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}
