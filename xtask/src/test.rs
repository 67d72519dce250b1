//! `cargo xtask test`: every check CI runs, in order, each step timed and logged like
//! `[ci   12s] ...`, failing fast with the step's name. `.ci/run` installs what a fresh machine
//! lacks and then runs this; `cargo test`'s output reaches stdout unfiltered.
//!
//! Sibling tasks (`crds --check`, `manifests --check`, `image`) run as subprocesses of this very
//! binary, so this file knows their names only; a task not (yet) defined is skipped.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, bail};
use clap::CommandFactory as _;

/// Options of `cargo xtask test`.
#[derive(clap::Args, Debug)]
pub struct TestArgs {
    /// Skip a step by name (repeatable); `--list` shows the names.
    #[arg(long, value_name = "STEP")]
    pub skip: Vec<String>,
    /// Print the steps and exit.
    #[arg(long)]
    pub list: bool,
}

/// What a step does.
enum Action {
    /// Run a program from the workspace root.
    Run(Vec<String>),
    /// Run `cargo` with these arguments.
    Cargo(Vec<&'static str>),
    /// Run a task of this xtask binary (`cargo xtask <args>`).
    Xtask(Vec<&'static str>),
    /// Build or find etcd, kube-apiserver, kubectl and kube-controller-manager.
    ControlPlaneBinaries,
    /// Build or find helm and crane.
    Tools,
}

/// One step of the run.
struct Step {
    name: &'static str,
    title: String,
    action: Action,
}

/// Every step, in order; the sibling tasks only when this binary defines them.
fn steps() -> Vec<Step> {
    let step = |name, title: &str, action| Step {
        name,
        title: title.to_owned(),
        action,
    };
    let mut steps = vec![
        step(
            "sdk",
            "official Alibaba Cloud SDKs (venv for tests/sdk_compat.rs)",
            Action::Run(vec!["bash".into(), "tests/sdk_compat/setup.sh".into()]),
        ),
        step(
            "control-plane",
            "control-plane binaries (etcd, kube-apiserver, kubectl, kube-controller-manager)",
            Action::ControlPlaneBinaries,
        ),
        step("tools", "helm and crane", Action::Tools),
        step(
            "fmt",
            "cargo fmt --all -- --check",
            Action::Cargo(vec!["fmt", "--all", "--", "--check"]),
        ),
        step(
            "clippy",
            "cargo clippy --workspace --all-targets -- -D warnings",
            Action::Cargo(vec![
                "clippy",
                "--workspace",
                "--all-targets",
                "--",
                "-D",
                "warnings",
            ]),
        ),
        step(
            "doc",
            "cargo doc --workspace --no-deps, warnings denied",
            Action::Cargo(vec![
                "--config",
                "build.rustdocflags=['-D', 'warnings']",
                "doc",
                "--workspace",
                "--no-deps",
            ]),
        ),
    ];
    let tasks: [(&'static str, &[&'static str]); 3] = [
        ("crds", &["crds", "--check"]),
        ("manifests", &["manifests", "--check"]),
        ("image", &["image"]),
    ];
    for (name, args) in tasks {
        if xtask_defines(args) {
            steps.push(step(
                name,
                &format!("cargo xtask {}", args.join(" ")),
                Action::Xtask(args.to_vec()),
            ));
        }
    }
    steps.push(step(
        "test",
        "cargo test --workspace",
        Action::Cargo(vec!["test", "--workspace"]),
    ));
    steps
}

/// Whether this binary has the task `args[0]` with every `--flag` in `args[1..]`.
fn xtask_defines(args: &[&str]) -> bool {
    let cli = crate::Cli::command();
    let Some(task) = cli.find_subcommand(args[0]) else {
        return false;
    };
    args[1..].iter().all(|flag| {
        let long = flag.trim_start_matches("--");
        task.get_arguments().any(|a| a.get_long() == Some(long))
    })
}

/// `$CARGO_TARGET_DIR`, else the shared cache `~/.cache/alicloud-db-operator/cargo-target`, so
/// that a warm run only rebuilds this workspace's crates.
fn target_dir() -> OsString {
    if let Some(dir) = std::env::var_os("CARGO_TARGET_DIR").filter(|d| !d.is_empty()) {
        return dir;
    }
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir);
    cache
        .join("alicloud-db-operator")
        .join("cargo-target")
        .into_os_string()
}

/// The `[ci   12s]` clock: from `$ALICLOUD_CI_START` (epoch seconds, set by `.ci/run` so its own
/// steps and these share one clock), else from now.
struct Clock {
    offset: Duration,
    started: Instant,
}

impl Clock {
    fn new() -> Self {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        let offset = std::env::var("ALICLOUD_CI_START")
            .ok()
            .and_then(|s| s.parse::<u64>().ok())
            .map(|start| Duration::from_secs(now.saturating_sub(start)))
            .unwrap_or_default();
        Self {
            offset,
            started: Instant::now(),
        }
    }

    fn log(&self, message: &str) {
        let secs = (self.offset + self.started.elapsed()).as_secs();
        println!("[ci {secs:>4}s] {message}");
    }
}

/// Runs every step not skipped; fails with the first step that fails.
pub fn run(args: &TestArgs) -> anyhow::Result<()> {
    let steps = steps();
    if args.list {
        for s in &steps {
            println!("{:<14} {}", s.name, s.title);
        }
        return Ok(());
    }
    if let Some(unknown) = args
        .skip
        .iter()
        .find(|n| !steps.iter().any(|s| s.name == n.as_str()))
    {
        bail!("--skip {unknown}: no such step (see `cargo xtask test --list`)");
    }
    let root = crate::workspace_root();
    let target = target_dir();
    let clock = Clock::new();
    clock.log(&format!(
        "CARGO_TARGET_DIR={}",
        PathBuf::from(&target).display()
    ));
    let mut timings = Vec::new();
    for step in &steps {
        if args.skip.iter().any(|n| n == step.name) {
            clock.log(&format!("skipped: {}", step.title));
            continue;
        }
        clock.log(&step.title);
        let started = Instant::now();
        let result = match &step.action {
            Action::Run(argv) => {
                let mut cmd = Command::new(&argv[0]);
                cmd.args(&argv[1..]);
                status(cmd.current_dir(&root))
            }
            Action::Cargo(argv) => {
                let mut cmd = crate::cargo::command();
                cmd.args(argv).env("CARGO_TARGET_DIR", &target);
                status(cmd.current_dir(&root))
            }
            Action::Xtask(argv) => {
                let exe = std::env::current_exe().context("find this xtask binary")?;
                let mut cmd = Command::new(exe);
                cmd.args(argv).env("CARGO_TARGET_DIR", &target);
                status(cmd.current_dir(&root))
            }
            Action::ControlPlaneBinaries => alicloud_testenv::ensure_assets()
                .map(|assets| clock.log(&format!("assets: {}", assets.origin)))
                .map_err(anyhow::Error::from),
            Action::Tools => alicloud_testenv::tools::helm()
                .and_then(|helm| Ok((helm, alicloud_testenv::tools::crane()?)))
                .map(|(helm, crane)| {
                    clock.log(&format!("helm: {}", helm.display()));
                    clock.log(&format!("crane: {}", crane.display()));
                })
                .map_err(anyhow::Error::from),
        };
        let took = started.elapsed().as_secs();
        if let Err(e) = result {
            clock.log(&format!(
                "FAILED: step {:?} ({}) after {took}s",
                step.name, step.title
            ));
            return Err(e.context(format!("step {:?} failed", step.name)));
        }
        timings.push(format!("{} {took}s", step.name));
    }
    clock.log(&format!("done ({})", timings.join(", ")));
    Ok(())
}

/// Runs `cmd` with inherited stdio; an error names the exit status.
fn status(cmd: &mut Command) -> anyhow::Result<()> {
    let shown = format!("{:?}", cmd.get_program());
    let status = cmd.status().with_context(|| format!("run {shown}"))?;
    if !status.success() {
        bail!("{shown} exited with {status}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_run_checks_before_the_test_suite_and_tests_last() {
        let names: Vec<&str> = steps().iter().map(|s| s.name).collect();
        assert_eq!(
            &names[..5],
            ["sdk", "control-plane", "tools", "fmt", "clippy"]
        );
        assert_eq!(names.last(), Some(&"test"));
        assert!(names.contains(&"crds"), "{names:?}");
    }

    #[test]
    fn a_task_or_flag_this_binary_lacks_is_not_a_step() {
        assert!(xtask_defines(&["crds", "--check"]));
        assert!(!xtask_defines(&["crds", "--no-such-flag"]));
        assert!(!xtask_defines(&["no-such-task"]));
    }
}
