//! Developer tasks: `cargo xtask demo`, `cargo xtask test`, `cargo xtask soak`, `cargo xtask bench`, `cargo xtask crds`,
//! `cargo xtask testenv`, `cargo xtask testenv up`.

mod bench;
mod cargo;
mod demo;
mod image;
mod manifests;
mod soak;
mod test;

use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "xtask", about = "Developer tasks of alicloud-db-operator")]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Try the operator end to end on this machine: control plane, emulator, operator,
    /// `examples/` applied until Ready, then deleted; leaves nothing running.
    Demo(demo::DemoArgs),
    /// Everything CI checks, in order, each step timed: SDK venv, control-plane binaries, helm and
    /// crane, fmt, clippy, rustdoc, generated files, image, `cargo test --workspace`.
    Test(test::TestArgs),
    /// The crash matrix's random SIGKILL rounds for longer (many rounds per run, fresh seeds until
    /// a duration has passed); not part of `test`.
    Soak(soak::SoakArgs),
    /// The operator at scale against the quota floor (release build, its own process): N
    /// BackupPlans or RdsConnections submitted at once; wall time ÷ floor, cloud calls, throttling,
    /// writes per object, steady-state calls and memory, time to first reconcile. Not part of
    /// `test`.
    Bench(Box<bench::BenchArgs>),
    /// Build the container image (static binaries, no daemon) as an OCI archive and check it.
    Image(image::ImageArgs),
    /// Render deploy/ (plain manifests) from the Helm chart with default values.
    Manifests(manifests::ManifestsArgs),
    /// Write the CRD YAML generated from src/crd/ into crds/ (and the Helm chart's files/crds/, if present).
    Crds {
        /// Only check that the committed YAML matches the Rust types; exit 1 if not.
        #[arg(long)]
        check: bool,
    },
    /// Prepare the control-plane binaries and print the assets folder; `up` starts a control plane.
    Testenv {
        #[command(subcommand)]
        action: Option<TestenvAction>,
    },
}

#[derive(Subcommand)]
enum TestenvAction {
    /// Start etcd + kube-apiserver with the CRDs installed and kube-controller-manager (namespace
    /// and garbage-collector controllers), print `KUBECONFIG=<path>` once ready, run until
    /// SIGINT/SIGTERM, then clean up.
    Up,
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Folders that receive the generated CRDs.
fn crd_dirs(root: &Path) -> Vec<PathBuf> {
    let mut dirs = vec![root.join("crds")];
    let chart = root.join("charts").join("alicloud-db-operator");
    if chart.join("Chart.yaml").exists() {
        // Rendered by the chart's templates/crds.yaml (templated CRDs, upgraded by `helm upgrade`).
        dirs.push(chart.join("files").join("crds"));
    }
    dirs
}

fn crds(check: bool) -> anyhow::Result<()> {
    let root = workspace_root();
    let mut stale = Vec::new();
    for dir in crd_dirs(&root) {
        std::fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
        for crd in alicloud_db_operator::crd::all_crds() {
            let path = dir.join(alicloud_db_operator::crd::crd_file_name(&crd));
            let yaml = alicloud_db_operator::crd::crd_yaml(&crd)?;
            let current = std::fs::read_to_string(&path).unwrap_or_default();
            if current == yaml {
                continue;
            }
            if check {
                stale.push(path);
            } else {
                std::fs::write(&path, yaml).with_context(|| format!("write {}", path.display()))?;
                println!("wrote {}", path.display());
            }
        }
    }
    if !stale.is_empty() {
        bail!(
            "generated CRDs differ from the committed YAML: {}; run `cargo xtask crds`",
            stale
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    Ok(())
}

async fn testenv(action: Option<TestenvAction>) -> anyhow::Result<()> {
    match action {
        None => {
            let assets = tokio::task::spawn_blocking(alicloud_testenv::ensure_assets).await??;
            eprintln!(
                "kube-apiserver:          {}",
                assets.kube_apiserver.display()
            );
            eprintln!("etcd:                    {}", assets.etcd.display());
            eprintln!("kubectl:                 {}", assets.kubectl.display());
            eprintln!(
                "kube-controller-manager: {}",
                assets.kube_controller_manager.display()
            );
            let folder = assets
                .kube_apiserver
                .parent()
                .map(Path::to_path_buf)
                .unwrap_or_default();
            println!("{}", folder.display());
            Ok(())
        }
        Some(TestenvAction::Up) => {
            let opts = alicloud_testenv::Options {
                crds_dir: Some(workspace_root().join("crds")),
                ..Default::default()
            };
            let plane = alicloud_testenv::ControlPlane::start(opts).await?;
            let version = plane.client().await.apiserver_version().await?;
            eprintln!(
                "kube-apiserver {} at {}, kube-controller-manager ({}), logs in {}",
                version.git_version,
                plane.server_url(),
                alicloud_testenv::KUBE_CONTROLLER_MANAGER_CONTROLLERS,
                plane.dir().display()
            );
            println!(
                "KUBECONFIG={}",
                std::fs::canonicalize(plane.kubeconfig_path())?.display()
            );
            use std::io::Write as _;
            std::io::stdout().flush()?;
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            eprintln!("stopping the control plane");
            drop(plane);
            Ok(())
        }
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().task {
        Task::Crds { check } => crds(check),
        Task::Demo(args) => demo::run(args).await,
        Task::Test(args) => test::run(&args),
        Task::Soak(args) => soak::run(&args),
        Task::Bench(args) => bench::run(*args).await,
        Task::Image(args) => image::run(&args),
        Task::Manifests(args) => manifests::run(&args),
        Task::Testenv { action } => testenv(action).await,
    }
}
