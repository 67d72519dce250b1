//! `cargo xtask soak`: the crash matrix's random rounds (`tests/crash_matrix.rs`) for longer than
//! the test command runs them: many rounds per run, runs with fresh seeds until a duration has
//! passed. Each run prints its seed; the first failing run stops the soak and names the command
//! that repeats it. Not part of `cargo xtask test`.

use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use alicloud_db_operator::cli::parse_duration;
use anyhow::{Context as _, bail};

use crate::{cargo, workspace_root};

/// The test the soak repeats.
const TEST: &str = "random_sigkills_over_many_rounds_leave_no_duplicate_leak_or_stuck_object";

/// Options of `cargo xtask soak`.
#[derive(clap::Args, Debug)]
pub struct SoakArgs {
    /// Rounds (SIGKILLs) per run (`ALICLOUD_CRASH_ROUNDS`).
    #[arg(long, default_value_t = 60)]
    pub rounds: u32,
    /// Start runs until this much time has passed (at least one run), e.g. `10m`.
    #[arg(long, default_value = "10m", value_parser = parse_duration)]
    pub duration: Duration,
    /// Seed of the first run (`ALICLOUD_CRASH_SEED`); later runs add 1 each. Default: the clock.
    #[arg(long)]
    pub seed: Option<u64>,
}

/// Builds the test binary once, then runs it with fresh seeds until `duration` has passed.
pub fn run(args: &SoakArgs) -> anyhow::Result<()> {
    let root = workspace_root();
    let status = cargo::command()
        .current_dir(&root)
        .args(["test", "--test", "crash_matrix", "--no-run"])
        .status()
        .context("build tests/crash_matrix.rs")?;
    if !status.success() {
        bail!("building tests/crash_matrix.rs failed");
    }
    let first_seed = args.seed.unwrap_or_else(|| {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or_default()
    });
    let started = Instant::now();
    let mut runs = 0u64;
    loop {
        let seed = first_seed.wrapping_add(runs);
        let run_started = Instant::now();
        eprintln!(
            "[soak {:>5.0}s] run {}: ALICLOUD_CRASH_ROUNDS={} ALICLOUD_CRASH_SEED={seed}",
            started.elapsed().as_secs_f64(),
            runs + 1,
            args.rounds
        );
        let status = test_command(args.rounds, seed)
            .current_dir(&root)
            .status()
            .context("run tests/crash_matrix.rs")?;
        runs += 1;
        if !status.success() {
            bail!(
                "run {runs} failed after {:?}; repeat it with: ALICLOUD_CRASH_ROUNDS={} \
                 ALICLOUD_CRASH_SEED={seed} cargo test --test crash_matrix {TEST} -- --nocapture",
                run_started.elapsed(),
                args.rounds
            );
        }
        eprintln!(
            "[soak {:>5.0}s] run {runs} passed in {:.0}s",
            started.elapsed().as_secs_f64(),
            run_started.elapsed().as_secs_f64()
        );
        if started.elapsed() >= args.duration {
            break;
        }
    }
    eprintln!(
        "soak: {runs} runs of {} rounds each ({} SIGKILLs), all passed, in {:.0}s",
        args.rounds,
        runs * u64::from(args.rounds),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// `cargo test` of the random rounds with `rounds` and `seed`, output unfiltered.
fn test_command(rounds: u32, seed: u64) -> Command {
    let mut cmd = cargo::command();
    cmd.args(["test", "--test", "crash_matrix", TEST, "--", "--nocapture"])
        .env("ALICLOUD_CRASH_ROUNDS", rounds.to_string())
        .env("ALICLOUD_CRASH_SEED", seed.to_string());
    cmd
}
