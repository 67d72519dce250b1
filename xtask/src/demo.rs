//! `cargo xtask demo`: the README's "Try it" in one command, on a machine with nothing running.
//!
//! Builds the operator and the emulator, starts a test control plane (etcd, kube-apiserver and
//! kube-controller-manager, CRDs installed), the emulator seeded with the samples' account and
//! RDS instance, and the operator pointed at both; applies `examples/`, shows progress until
//! every object is Ready, shows what Kubernetes and the emulated cloud now hold, deletes the
//! objects and shows what the operator released. Everything it started is stopped, and its folders removed, on success, on
//! error and on SIGINT/SIGTERM/SIGHUP. `--keep` leaves it all running once Ready, until Ctrl-C.

mod cloud;
pub(crate) mod processes;
mod progress;
mod samples;
mod wait;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use alicloud_db_operator::cli::parse_duration;
use anyhow::{Context as _, bail};
use k8s_openapi::api::core::v1::Secret;
use kube::api::Api;
use rustix::process::Signal;
use serde_json::Value;
use tokio::sync::watch;

use self::processes::{Process, free_port};
use self::progress::ObjectStatus;
use self::samples::Samples;

/// Options of `cargo xtask demo`.
#[derive(clap::Args, Debug)]
pub struct DemoArgs {
    /// Once every object is Ready, leave everything running (print KUBECONFIG, the emulator and
    /// metrics URLs) until Ctrl-C, then clean up; nothing is deleted.
    #[arg(long)]
    pub keep: bool,
    /// How long the objects may take to become Ready, and then to be deleted.
    #[arg(long, default_value = "180s", value_parser = parse_duration)]
    pub timeout: Duration,
}

/// What the demo started, stopped in reverse order by [`Session::shutdown`].
#[derive(Default)]
struct Session {
    workdir: Option<tempfile::TempDir>,
    emulator: Option<Process>,
    plane: Option<alicloud_testenv::ControlPlane>,
    operator: Option<Process>,
}

/// Where the running demo can be reached (printed by `--keep`).
struct Running {
    kubeconfig: PathBuf,
    emulator_url: String,
    metrics_url: String,
    operator_log: PathBuf,
}

/// Runs the demo; cleans up before returning, and exits 130/143 when interrupted.
pub async fn run(args: DemoArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let mut interrupt = interrupt_signal()?;
    let mut session = Session::default();
    let outcome = tokio::select! {
        result = script(&mut session, &args, started) => Some(result),
        _ = interrupt.wait_for(Option::is_some) => None,
    };
    let outcome = match outcome {
        Some(Ok(running)) if args.keep => {
            println!();
            println!("Everything is running; press Ctrl-C to stop it and clean up.");
            println!("  KUBECONFIG={}", running.kubeconfig.display());
            println!(
                "  emulator:     {}  (state: {0}/_emulator/state)",
                running.emulator_url
            );
            println!("  metrics:      {}", running.metrics_url);
            println!("  operator log: {}", running.operator_log.display());
            let _ = interrupt.wait_for(Option::is_some).await;
            println!();
            Some(Ok(()))
        }
        Some(result) => Some(result.map(|_| ())),
        None => None,
    };
    let signal = *interrupt.borrow();
    if let (None, Some(signal)) = (&outcome, signal) {
        println!();
        println!("{signal}: stopping everything the demo started");
    }
    session.shutdown().await;
    match outcome {
        Some(Ok(())) => {
            println!("demo finished in {}s", started.elapsed().as_secs());
            Ok(())
        }
        Some(Err(e)) => Err(e),
        None => {
            // Exit at once: a kube-apiserver build interrupted on first use would otherwise
            // hold the runtime until it finishes.
            std::process::exit(signal.map_or(1, Interrupt::exit_code))
        }
    }
}

/// The signal that interrupted the demo.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Interrupt {
    /// Ctrl-C.
    Int,
    /// `kill`, a CI runner or a service manager stopping it.
    Term,
    /// The terminal went away.
    Hup,
}

impl Interrupt {
    /// The shell's convention: 128 + the signal number.
    fn exit_code(self) -> i32 {
        128 + match self {
            Self::Int => Signal::INT,
            Self::Term => Signal::TERM,
            Self::Hup => Signal::HUP,
        }
        .as_raw()
    }
}

impl std::fmt::Display for Interrupt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Int => "SIGINT",
            Self::Term => "SIGTERM",
            Self::Hup => "SIGHUP",
        })
    }
}

/// A channel that receives the first SIGINT, SIGTERM or SIGHUP.
fn interrupt_signal() -> anyhow::Result<watch::Receiver<Option<Interrupt>>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut int = signal(SignalKind::interrupt())?;
    let mut term = signal(SignalKind::terminate())?;
    let mut hup = signal(SignalKind::hangup())?;
    let (tx, rx) = watch::channel(None);
    tokio::spawn(async move {
        let received = tokio::select! {
            _ = int.recv() => Interrupt::Int,
            _ = term.recv() => Interrupt::Term,
            _ = hup.recv() => Interrupt::Hup,
        };
        let _ = tx.send(Some(received));
        // Later signals are ignored while the demo cleans up.
        loop {
            tokio::select! {
                _ = int.recv() => {}
                _ = term.recv() => {}
                _ = hup.recv() => {}
            }
        }
    });
    Ok(rx)
}

impl Session {
    /// Stops the operator, the emulator and the control plane, in that order, and removes the
    /// demo's folder.
    async fn shutdown(&mut self) {
        let mut done = Vec::new();
        if let Some(operator) = self.operator.take() {
            operator.stop().await;
            done.push("operator".to_owned());
        }
        if let Some(emulator) = self.emulator.take() {
            emulator.stop().await;
            done.push("emulator".to_owned());
        }
        if let Some(plane) = self.plane.take() {
            let dir = plane.dir().to_path_buf();
            // Dropping stops etcd, kube-apiserver and kube-controller-manager (waiting for them)
            // and removes the folder.
            let _ = tokio::task::spawn_blocking(move || drop(plane)).await;
            done.push(format!(
                "etcd + kube-apiserver + kube-controller-manager ({} removed)",
                dir.display()
            ));
        }
        if let Some(workdir) = self.workdir.take() {
            let dir = workdir.path().display().to_string();
            if let Err(e) = workdir.close() {
                eprintln!("could not remove {dir}: {e}");
            }
            done.push(format!("{dir} removed"));
        }
        if !done.is_empty() {
            println!("cleaned up: {}", done.join(", "));
        }
    }

    fn operator(&mut self) -> anyhow::Result<&mut Process> {
        self.operator
            .as_mut()
            .context("the operator is not running")
    }
}

/// Milliseconds since the epoch, the emulator's clock for its call log.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default()
}

/// A section title with the time since the demo started: `==> [ 12s] Starting the operator`.
fn heading(started: Instant, text: &str) {
    println!();
    println!("==> [{:>3}s] {text}", started.elapsed().as_secs());
}

fn indented(text: &str) {
    for line in text.lines() {
        println!("    {line}");
    }
}

/// Everything up to Ready; then, unless `--keep`, deletion and the release report.
async fn script(
    session: &mut Session,
    args: &DemoArgs,
    started: Instant,
) -> anyhow::Result<Running> {
    let root = std::fs::canonicalize(crate::workspace_root())?;
    let samples = Samples::read(&root.join("examples"))?;

    heading(
        started,
        "Building the operator and the emulator (cargo build)",
    );
    let binaries = build_binaries(&root, false).await?;

    let workdir = tempfile::Builder::new()
        .prefix("alicloud-demo-")
        .tempdir()
        .context("create the demo's temporary folder")?;
    let workdir_path = workdir.path().to_path_buf();
    session.workdir = Some(workdir);

    heading(
        started,
        "Starting the emulator of Alibaba Cloud (DBS, RDS, STS)",
    );
    let mut cmd = clean_command(&binaries.emulator);
    cmd.args(["--listen", "127.0.0.1:0", "--account"])
        .arg(format!(
            "{}:{}",
            samples.access_key_id, samples.access_key_secret
        ));
    for (region, id) in &samples.rds_instances {
        cmd.arg("--rds-instance").arg(format!("{region}/{id}"));
    }
    let emulator = session.emulator.insert(Process::spawn(
        "emulator",
        cmd,
        &workdir_path.join("emulator.log"),
        true,
    )?);
    let emulator_url = emulator
        .first_line("listening on ", Duration::from_secs(30))
        .await?;
    let instances: Vec<String> = samples
        .rds_instances
        .iter()
        .map(|(r, i)| format!("{r}/{i}"))
        .collect();
    println!(
        "    {emulator_url}: account {} (from examples/), RDS instance {}",
        samples.access_key_id,
        instances.join(", ")
    );

    heading(
        started,
        "Starting the control plane (etcd + kube-apiserver + kube-controller-manager, CRDs installed)",
    );
    println!(
        "    (the first run builds kube-apiserver and kube-controller-manager from source: about 5 \
         minutes on 2 cores; \
         cached afterwards)"
    );
    let opts = alicloud_testenv::Options {
        crds_dir: Some(root.join("crds")),
        ..Default::default()
    };
    let plane = session
        .plane
        .insert(alicloud_testenv::ControlPlane::start(opts).await?);
    let client = plane.client().await;
    let version = client.apiserver_version().await?;
    let kubeconfig = std::fs::canonicalize(plane.kubeconfig_path())?;
    println!(
        "    kube-apiserver {} at {}",
        version.git_version,
        plane.server_url()
    );

    heading(started, "Starting the operator");
    let metrics_addr = format!("127.0.0.1:{}", free_port()?);
    let operator_log = workdir_path.join("operator.log");
    let mut cmd = clean_command(&binaries.operator);
    cmd.arg("run")
        .args(["--dbs-endpoint", &emulator_url])
        .args(["--rds-endpoint", &emulator_url])
        .args(["--sts-endpoint", &emulator_url])
        .args(["--metrics-addr", &metrics_addr])
        .args(["--configure-delay", "5s"])
        .env("KUBECONFIG", &kubeconfig)
        .env("ALIBABA_CLOUD_ACCESS_KEY_ID", &samples.access_key_id)
        .env(
            "ALIBABA_CLOUD_ACCESS_KEY_SECRET",
            &samples.access_key_secret,
        );
    session.operator = Some(Process::spawn("operator", cmd, &operator_log, false)?);
    let metrics_url = format!("http://{metrics_addr}/metrics");
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()?;
    wait::operator_ready(session, &http, &metrics_addr).await?;
    println!(
        "    ready (/readyz ok); metrics at {metrics_url}; log: {}",
        operator_log.display()
    );

    heading(started, "kubectl apply -f examples/");
    let plane = session.plane.as_ref().context("no control plane")?;
    let applied = kubectl(plane, &["apply", "-f", &path_arg(&samples.dir)]).await?;
    indented(&applied);

    heading(started, "Waiting for every object to be Ready");
    let objects = wait::all_ready(session, &client, &samples, args.timeout).await?;

    heading(started, "kubectl get alicloud -A");
    let plane = session.plane.as_ref().context("no control plane")?;
    indented(&kubectl(plane, &["get", "alicloud", "-A"]).await?);

    for conn in objects.iter().filter(|o| o.kind == "RdsConnection") {
        let Some(secret) = conn.text("/spec/writeConnectionSecretToRef/name") else {
            continue;
        };
        heading(
            started,
            &format!(
                "Secret {}/{secret} written by RdsConnection {} (decoded; no secret values in it)",
                conn.namespace, conn.name
            ),
        );
        for (key, value) in secret_data(&client, &conn.namespace, secret).await? {
            println!("    {key:<9} {value}");
        }
    }

    heading(started, "What the emulated cloud holds now");
    let state = cloud::state(&http, &emulator_url).await?;
    for line in cloud::inventory(&state) {
        println!("    {line}");
    }
    println!("    calls so far: {}", cloud::call_counts(&state));

    let running = Running {
        kubeconfig,
        emulator_url: emulator_url.clone(),
        metrics_url,
        operator_log,
    };
    if args.keep {
        return Ok(running);
    }

    heading(
        started,
        "kubectl delete -f examples/ (the operator releases what it created)",
    );
    let deleting_since = now_ms();
    let plane = session.plane.as_ref().context("no control plane")?;
    let deleted = kubectl(
        plane,
        &["delete", "-f", &path_arg(&samples.dir), "--wait=false"],
    )
    .await?;
    indented(&deleted);
    wait::all_deleted(session, &client, &samples, args.timeout).await?;

    heading(
        started,
        "What the operator released (emulator call log since the delete)",
    );
    let state = cloud::state(&http, &emulator_url).await?;
    for line in cloud::changing_calls(&state, deleting_since) {
        println!("    {line}");
    }
    heading(started, "What remains in the emulated cloud");
    for line in cloud::inventory(&state) {
        println!("    {line}");
    }
    println!();
    for line in explain_outcomes(&objects, &state) {
        println!("{line}");
    }
    println!();
    println!(
        "Everything applied is Ready and then deleted in {}s.",
        started.elapsed().as_secs()
    );
    Ok(running)
}

/// The executables `cargo build` produced.
pub(crate) struct Binaries {
    pub(crate) operator: PathBuf,
    pub(crate) emulator: PathBuf,
}

/// `cargo build` (with `--release` when `release`) of both binaries; cargo's own progress goes
/// to the terminal. The demo runs the debug build, the bench the release one.
pub(crate) async fn build_binaries(root: &Path, release: bool) -> anyhow::Result<Binaries> {
    let output = tokio::process::Command::from(crate::cargo::command())
        .current_dir(root)
        .arg("build")
        .args(release.then_some("--release"))
        .args(["--bins", "--message-format=json-render-diagnostics"])
        .args(["-p", "alicloud-db-operator", "-p", "alicloud-emulator"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::inherit())
        .kill_on_drop(true)
        // Not `output()`: it would capture stderr too, hiding cargo's progress.
        .spawn()
        .context("run cargo build")?
        .wait_with_output()
        .await
        .context("run cargo build")?;
    if !output.status.success() {
        let profile = if release { " --release" } else { "" };
        bail!("cargo build{profile} failed ({})", output.status);
    }
    let mut operator = None;
    let mut emulator = None;
    for line in String::from_utf8_lossy(&output.stdout).lines() {
        let Ok(message) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        let name = message.pointer("/target/name").and_then(Value::as_str);
        let exe = message.get("executable").and_then(Value::as_str);
        match (name, exe) {
            (Some("alicloud-db-operator"), Some(exe)) => operator = Some(PathBuf::from(exe)),
            (Some("alicloud-emulator"), Some(exe)) => emulator = Some(PathBuf::from(exe)),
            _ => {}
        }
    }
    Ok(Binaries {
        operator: operator.context("cargo build named no alicloud-db-operator executable")?,
        emulator: emulator.context("cargo build named no alicloud-emulator executable")?,
    })
}

/// A command for one of the demo's binaries, without the caller's Alibaba Cloud, emulator and
/// operator settings, so the demo runs the same on every machine.
fn clean_command(program: &Path) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(program);
    for (key, _) in std::env::vars_os() {
        let Some(key) = key.to_str() else { continue };
        let inherited_setting = key.starts_with("ALIBABA_CLOUD_")
            || key.starts_with("ALICLOUD_")
            || matches!(
                key,
                "KUBECONFIG" | "WATCH_NAMESPACE" | "POD_NAME" | "POD_NAMESPACE"
            );
        if inherited_setting {
            cmd.env_remove(key);
        }
    }
    cmd
}

fn path_arg(path: &Path) -> String {
    path.display().to_string()
}

/// Runs the control plane's `kubectl`; its stdout, or an error with its stderr.
async fn kubectl(plane: &alicloud_testenv::ControlPlane, args: &[&str]) -> anyhow::Result<String> {
    let mut cmd = tokio::process::Command::from(plane.kubectl());
    let output = cmd
        .args(args)
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .output()
        .await
        .context("run kubectl")?;
    if !output.status.success() {
        bail!(
            "kubectl {} failed ({}):\n{}",
            args.join(" "),
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// The decoded keys of a Secret, sorted.
async fn secret_data(
    client: &kube::Client,
    namespace: &str,
    name: &str,
) -> anyhow::Result<Vec<(String, String)>> {
    let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let secret = api
        .get(name)
        .await
        .with_context(|| format!("read Secret {namespace}/{name}"))?;
    Ok(secret
        .data
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k, String::from_utf8_lossy(&v.0).into_owned()))
        .collect())
}

/// One paragraph per object: what its deletion did in the cloud.
fn explain_outcomes(objects: &[ObjectStatus], state: &Value) -> Vec<String> {
    let mut lines = Vec::new();
    for o in objects {
        if o.kind == "RdsConnection" {
            let endpoint = o.text("/status/connectionString").unwrap_or("?");
            let what = if cloud::has_endpoint(state, endpoint) {
                format!("public endpoint {endpoint} is still allocated at RDS")
            } else {
                format!(
                    "public endpoint {endpoint} released (ReleaseInstanceConnection); the \
                     instance keeps its internal endpoint"
                )
            };
            lines.push(format!("- RdsConnection {}: {what}.", o.name));
            continue;
        }
        let id = o.text("/status/backupPlanId").unwrap_or("?");
        let pay_type = o.text("/spec/payType").unwrap_or("PayAsYouGo");
        let policy = o.text("/spec/deletionPolicy").unwrap_or("Delete");
        let status = cloud::plan(state, id)
            .and_then(|p| p.get("status"))
            .and_then(Value::as_str)
            .unwrap_or("unknown");
        let what = match (policy, pay_type) {
            ("Retain", _) => format!(
                "deletionPolicy Retain: the operator removed only the Kubernetes object and left \
                 plan {id} alone, so it is still {status} in the cloud, and billed (adopt it \
                 again with spec.backupPlanId)."
            ),
            (_, "Subscription") => format!(
                "Subscription plans cannot be released through the API or unsubscribed: plan \
                 {id} was stopped (StopBackupPlan) and is {status}; it is billed until its term \
                 ends."
            ),
            _ => format!(
                "plan {id} released (ReleaseBackupPlan, irreversible): now {status} at DBS; its \
                 backups in DBS storage are kept, and billed, until their retention expires them."
            ),
        };
        lines.push(format!("- BackupPlan {} ({pay_type}): {what}", o.name));
    }
    lines
}
