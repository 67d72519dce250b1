//! The figures of a run as a markdown table (for `docs/benchmarks.md`): each with its target and
//! the command line that reproduces it.

use std::fmt::Write as _;
use std::time::Duration;

use alicloud_db_operator::cloud::Quotas;

use super::BenchArgs;
use super::measure::percentile;
use super::workload::{Kind, Load, Run};

/// The fraction of its quota the operator's client-side limiter uses (`cloud::limiter::PACING`,
/// not exported).
const PACING: f64 = 0.9;

/// The floor of a run: the later of the last arrival and, for every action each object needs
/// once, N ÷ quota; plus the fixed waits (the configure rule and the precheck of plans).
pub fn floor(args: &BenchArgs, load: &Load, last_arrival: Duration) -> Duration {
    let paced = load.n as f64 / f64::from(args.quota.max(1));
    let start = last_arrival.as_secs_f64().max(paced);
    Duration::from_secs_f64(start) + fixed_waits(args, load.kind)
}

fn fixed_waits(args: &BenchArgs, kind: Kind) -> Duration {
    match kind {
        Kind::BackupPlan => args.configure_delay + args.precheck,
        Kind::RdsConnection => Duration::ZERO,
    }
}

/// The command line reproducing this run's figures, with `extra` flags.
fn command(args: &BenchArgs, load: &Load, extra: &str) -> String {
    let mut cmd = format!("cargo xtask bench --scenario {}", load.kind.scenario());
    match load.kind {
        Kind::BackupPlan => write!(cmd, " --plans {}", load.n),
        Kind::RdsConnection => write!(cmd, " --connections {}", load.n),
    }
    .ok();
    if let (Kind::RdsConnection, Some(m)) = (load.kind, args.instances) {
        write!(cmd, " --instances {m}").ok();
    }
    write!(
        cmd,
        " --latency-ms {} --quota {}",
        args.latency_ms, args.quota
    )
    .ok();
    for (flag, value, default) in [
        (
            "--configure-delay",
            args.configure_delay,
            Duration::from_secs(5),
        ),
        ("--precheck", args.precheck, Duration::from_secs(5)),
        (
            "--resync-period",
            args.resync_period,
            Duration::from_secs(60),
        ),
    ] {
        if value != default {
            write!(cmd, " {flag} {}ms", value.as_millis()).ok();
        }
    }
    for arg in &args.operator_arg {
        write!(cmd, " --operator-arg={arg}").ok();
    }
    cmd.push_str(extra);
    format!("`{cmd}`")
}

fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

/// The run as a markdown section: a title naming the scenario and the machine, and a table.
pub fn table(args: &BenchArgs, load: &Load, run: &Run) -> String {
    let n = load.n;
    let kind = load.kind.name();
    let creation = command(args, load, " --steady-periods 0 --probes 0");
    let steady_cmd = command(args, load, " --probes 0");
    let probe_cmd = command(args, load, " --steady-periods 0");
    let mut rows: Vec<[String; 4]> = Vec::new();

    let floor = floor(args, load, run.last_arrival);
    let client = Quotas::default();
    let client_rate = load
        .kind
        .needed_actions()
        .iter()
        .map(|a| f64::from(client.per_second(a)) * PACING)
        .fold(f64::INFINITY, f64::min);
    let ratio = match run.all_ready {
        Some(wall) => format!(
            "**{:.2}** ({:.1} s ÷ floor {:.1} s: last arrival {:.1} s, {n} ÷ {}/s = {:.1} s, \
             fixed waits {:.0} s; the operator's own limiter paces at {client_rate:.0}/s, \
             i.e. {:.1} s)",
            wall.as_secs_f64() / floor.as_secs_f64(),
            wall.as_secs_f64(),
            floor.as_secs_f64(),
            run.last_arrival.as_secs_f64(),
            args.quota,
            n as f64 / f64::from(args.quota.max(1)),
            fixed_waits(args, load.kind).as_secs_f64(),
            n as f64 / client_rate,
        ),
        None => format!("not all Ready within {:?}: {}/{n}", args.timeout, run.ready),
    };
    rows.push([
        format!("Wall time until all {n} {kind}s Ready ÷ floor"),
        ratio,
        "≤ 1.25 at N = 1,000".into(),
        creation.clone(),
    ]);
    if let (Kind::RdsConnection, Some(wall)) = (load.kind, run.all_ready) {
        // The floor counts Allocate only. RDS reads one instance's endpoints per call, and the
        // controller reads them once before each Allocate (which endpoint is whose) and once
        // after (Allocate is asynchronous): two DescribeDBInstanceNetInfo per connection at
        // the same quota.
        let reads = 2.0 * n as f64 / f64::from(args.quota.max(1));
        let read_floor = run.last_arrival.as_secs_f64().max(reads);
        rows.push([
            "Wall time ÷ the floor of the reads (2 DescribeDBInstanceNetInfo per connection)"
                .into(),
            format!(
                "{:.2} ({:.1} s ÷ {read_floor:.1} s: 2 × {n} ÷ {}/s; the operator's limiter \
                 paces at {client_rate:.0}/s, i.e. {:.1} s)",
                wall.as_secs_f64() / read_floor,
                wall.as_secs_f64(),
                args.quota,
                2.0 * n as f64 / client_rate,
            ),
            "— (not an issue target)".into(),
            creation.clone(),
        ]);
    }
    let calls = &run.creation_calls;
    rows.push([
        "Cloud calls from the first create until all Ready, by action".into(),
        format!("{} (total {})", calls.describe(), calls.total()),
        "—".into(),
        creation.clone(),
    ]);
    if load.kind == Kind::BackupPlan {
        let describes = calls.of("DescribeBackupPlanList") as f64 / n.max(1) as f64;
        rows.push([
            "DescribeBackupPlanList per plan during creation".into(),
            format!("{describes:.2}"),
            "≤ 1 per plan per step".into(),
            creation.clone(),
        ]);
    }
    let (emu_throttled, logged) = run.emulator_throttled;
    rows.push([
        "Throttled calls during creation".into(),
        format!(
            "**{}** (operator's metrics); {emu_throttled} in the emulator's call log (its last \
             {logged} calls); demand: {n} objects submitted in {:.1} s against {}/s",
            calls.throttled(),
            run.last_arrival.as_secs_f64(),
            args.quota
        ),
        "0 at ≥ 2× quota demand".into(),
        creation.clone(),
    ]);
    rows.push([
        "Writes per object until all Ready (resourceVersion bumps after the create: finalizer, \
         annotation, status)"
            .into(),
        format!(
            "mean {:.2}, max {}; status changes mean {:.2}, max {}",
            run.writes.0, run.writes.1, run.status_writes.0, run.status_writes.1
        ),
        "—".into(),
        creation.clone(),
    ]);
    if let Some(steady) = &run.steady {
        let periods = steady.window.as_secs_f64() / args.resync_period.as_secs_f64();
        let per_period = |c: u64| c as f64 / periods;
        let by: Vec<String> = steady
            .calls
            .by_action()
            .iter()
            .map(|(a, c)| format!("{a} {:.1}", per_period(*c)))
            .collect();
        rows.push([
            format!(
                "Cloud calls per resync period ({:?}) at steady state, by action",
                args.resync_period
            ),
            if by.is_empty() {
                "none".into()
            } else {
                by.join(", ")
            },
            "—".into(),
            steady_cmd.clone(),
        ]);
        if load.kind == Kind::BackupPlan {
            let describes = per_period(steady.calls.of("DescribeBackupPlanList"));
            rows.push([
                "DescribeBackupPlanList per 100 plans per resync period".into(),
                format!("**{:.2}**", describes * 100.0 / n.max(1) as f64),
                "≤ 1".into(),
                steady_cmd.clone(),
            ]);
        }
        rows.push([
            format!("Operator memory at steady state with {n} {kind}s"),
            format!(
                "VmRSS **{}** (max sampled {}), VmHWM (peak, creation included) {}",
                mib(steady.rss_kib),
                mib(steady.rss_max_kib),
                mib(steady.hwm_kib)
            ),
            "≤ 48 MiB at 10,000 plans".into(),
            steady_cmd.clone(),
        ]);
    } else {
        rows.push([
            format!("Operator memory at the end with {n} {kind}s"),
            format!(
                "VmRSS {}, VmHWM {}",
                mib(run.memory_end.0),
                mib(run.memory_end.1)
            ),
            "≤ 48 MiB at 10,000 plans".into(),
            creation.clone(),
        ]);
    }
    if !run.probe_first_status.is_empty() {
        let p = |v: &[f64], q| percentile(v, q).unwrap_or(f64::NAN);
        rows.push([
            format!("Time to the first reconcile of a new {kind} while {n} exist (create → first status write), {} probes one at a time", run.probe_first_status.len()),
            format!(
                "p50 {:.3} s, p99 **{:.3} s** (first write of any kind: p50 {:.3} s, p99 {:.3} s)",
                p(&run.probe_first_status, 50.0),
                p(&run.probe_first_status, 99.0),
                p(&run.probe_first_write, 50.0),
                p(&run.probe_first_write, 99.0)
            ),
            "p99 ≤ 1 s with 10,000 existing".into(),
            probe_cmd,
        ]);
    }

    let mut out = String::new();
    writeln!(
        out,
        "### `cargo xtask bench --scenario {}`: {n} {kind}s, {} ms per call, quota {}/s",
        load.kind.scenario(),
        args.latency_ms,
        args.quota
    )
    .ok();
    writeln!(out).ok();
    writeln!(
        out,
        "Machine: {} at submit, {} once Ready; operator resync period {:?}{}.",
        run.machine_before,
        run.machine_after,
        args.resync_period,
        if args.operator_arg.is_empty() {
            String::new()
        } else {
            format!(", operator args {}", args.operator_arg.join(" "))
        }
    )
    .ok();
    writeln!(out).ok();
    writeln!(out, "| Figure | Value | Target | Reproduce |").ok();
    writeln!(out, "|---|---|---|---|").ok();
    for row in rows {
        writeln!(out, "| {} |", row.join(" | ")).ok();
    }
    out
}
