//! `cargo xtask bench`: the operator at scale against the quota floor (issue 12's performance
//! figures), never part of `cargo xtask test`.
//!
//! Builds the operator and the emulator in release, starts the emulator (its own process, the
//! DBS 5 s configure rule, a precheck time, per-action quotas and a latency on every call), a
//! test control plane and the operator (its own process), submits N objects concurrently through
//! the kube client, and measures:
//! - wall time until every object is Ready, divided by the floor: the later of the last object's
//!   arrival and (for every action the objects need) calls ÷ the emulator's quota, plus the fixed
//!   waits (configure rule, precheck);
//! - cloud calls by action during creation (the operator's `alicloud_api_requests_total`),
//!   throttled calls (code `Throttling*`, and the emulator's call log), writes per object (the
//!   objects' resourceVersion bumps and status changes, seen by a watch);
//! - at steady state: cloud calls per resync period by action, operator RSS (VmRSS, VmHWM);
//! - p50/p99 time to the first reconcile (first status write) of a new object while N exist.
//!
//! Everything it starts is stopped on success, error, SIGINT, SIGTERM and SIGHUP.

mod figures;
mod measure;
mod stack;
mod tracker;
mod workload;

use std::path::PathBuf;
use std::time::Duration;

use alicloud_db_operator::cli::parse_duration;
use anyhow::Context as _;

use self::stack::Stack;

/// Options of `cargo xtask bench`.
#[derive(clap::Args, Debug, Clone)]
pub struct BenchArgs {
    /// What to measure: BackupPlans, RdsConnections, or both (each on a fresh stack).
    #[arg(long, value_enum, default_value_t = Scenario::Plans)]
    pub scenario: Scenario,
    /// Number of BackupPlans (scenario `plans`).
    #[arg(long, default_value_t = 1000)]
    pub plans: usize,
    /// Number of RdsConnections (scenario `connections`), one public endpoint each.
    #[arg(long, default_value_t = 1000)]
    pub connections: usize,
    /// RDS instances seeded in the emulator (default: one per connection; RDS allows one public
    /// endpoint per instance, so connections beyond the instances are `AlreadyManaged`).
    #[arg(long)]
    pub instances: Option<usize>,
    /// Latency the emulator adds to every cloud call, in milliseconds.
    #[arg(long, default_value_t = 50)]
    pub latency_ms: u64,
    /// The emulator's quota of every action, per account and second (ReleaseInstanceConnection
    /// keeps its documented 10/s). Default: the operator's documented client-side quota.
    #[arg(long, default_value_t = alicloud_db_operator::cloud::Quotas::default().default_per_second)]
    pub quota: u32,
    /// The DBS rule: ConfigureBackupPlan no sooner than this after CreateBackupPlan (emulator and
    /// operator).
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    pub configure_delay: Duration,
    /// How long the emulator's precheck after StartBackupPlan lasts.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    pub precheck: Duration,
    /// The operator's `--resync-period`.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    pub resync_period: Duration,
    /// Resync periods over which steady-state calls and memory are measured (0 skips it).
    #[arg(long, default_value_t = 2)]
    pub steady_periods: u32,
    /// New objects created one at a time, once N are Ready, to time their first reconcile (0
    /// skips it).
    #[arg(long, default_value_t = 50)]
    pub probes: usize,
    /// Creates in flight at once while submitting the objects.
    #[arg(long, default_value_t = 64)]
    pub submit_concurrency: usize,
    /// How long the objects may take to become Ready.
    #[arg(long, default_value = "30m", value_parser = parse_duration)]
    pub timeout: Duration,
    /// Extra argument for `alicloud-db-operator run` (repeatable), e.g.
    /// `--operator-arg=--concurrency=16`.
    #[arg(long, allow_hyphen_values = true)]
    pub operator_arg: Vec<String>,
    /// The operator's log filter (its `RUST_LOG`), e.g.
    /// `info,alicloud_db_operator::controller::backup_plan=debug`.
    #[arg(long, default_value = "info")]
    pub operator_log: String,
    /// Also write the figures as a markdown table to this file.
    #[arg(long)]
    pub markdown: Option<PathBuf>,
    /// Keep the operator's and emulator's logs in this folder (default: removed with the rest).
    #[arg(long)]
    pub keep_logs: Option<PathBuf>,
    /// Take a CPU profile of kube-apiserver (its `/debug/pprof/profile`) this long, from 10 s
    /// after the first create, into `apiserver-cpu.pprof` of `--keep-logs` (read it with
    /// `go tool pprof -top`). Needs `--keep-logs`.
    #[arg(long, value_parser = parse_duration, requires = "keep_logs")]
    pub profile_apiserver: Option<Duration>,
}

/// What a run measures.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scenario {
    /// N BackupPlans.
    Plans,
    /// N RdsConnections on M instances.
    Connections,
    /// Both, one after the other.
    All,
}

/// Runs the benchmark; stops everything before returning, and exits 130/143/129 when
/// interrupted.
pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    let root = std::fs::canonicalize(crate::workspace_root())?;
    if cfg!(debug_assertions) {
        return in_release(&root);
    }
    println!("==> building the operator and the emulator in release (cargo build --release)");
    let binaries = crate::demo::build_binaries(&root, true).await?;
    let kinds = match args.scenario {
        Scenario::Plans => vec![workload::Kind::BackupPlan],
        Scenario::Connections => vec![workload::Kind::RdsConnection],
        Scenario::All => vec![workload::Kind::BackupPlan, workload::Kind::RdsConnection],
    };
    let mut tables = Vec::new();
    for kind in kinds {
        let mut stack = Stack::default();
        let outcome = tokio::select! {
            result = scenario(&mut stack, &binaries, &root, &args, kind) => Ok(result),
            signal = stack::interrupted() => Err(signal),
        };
        if let Err(signal) = &outcome {
            println!();
            println!("{signal}: stopping everything the bench started");
        }
        stack.shutdown(args.keep_logs.as_deref()).await;
        match outcome {
            Ok(Ok(table)) => tables.push(table),
            Ok(Err(e)) => return Err(e),
            Err(signal) => std::process::exit(128 + signal.number()),
        }
    }
    let markdown = tables.join("\n");
    println!();
    println!("{markdown}");
    if let Some(path) = &args.markdown {
        std::fs::write(path, &markdown).with_context(|| format!("write {}", path.display()))?;
        println!("written to {}", path.display());
    }
    Ok(())
}

/// The bench's own client (the watch of every object, the submitting creates) shares the
/// machine's cores with the system it measures: built without optimisation it took about 16 s
/// of CPU over a 1,000-plan run, time the API server then lacked. So the bench runs as a release
/// build of xtask, with the same arguments; its exit status is this one's.
fn in_release(root: &std::path::Path) -> anyhow::Result<()> {
    println!("==> building xtask in release for the bench (cargo run --release --package xtask)");
    let status = crate::cargo::command()
        .current_dir(root)
        .args(["run", "--quiet", "--release", "--package", "xtask", "--"])
        .args(std::env::args_os().skip(1))
        .status()
        .context("run cargo")?;
    match status.code() {
        Some(0) => Ok(()),
        Some(code) => std::process::exit(code),
        None => anyhow::bail!("the release build of the bench was killed: {status}"),
    }
}

/// One scenario on a fresh stack: its figures as a markdown table.
async fn scenario(
    stack: &mut Stack,
    binaries: &crate::demo::Binaries,
    root: &std::path::Path,
    args: &BenchArgs,
    kind: workload::Kind,
) -> anyhow::Result<String> {
    let load = workload::Load::new(kind, args);
    stack.start(binaries, root, args, &load).await?;
    let run = workload::run(stack, args, &load).await?;
    Ok(figures::table(args, &load, &run))
}
