//! `alicloud-emulator` binary: runs the DBS/RDS/STS emulator until SIGINT/SIGTERM.

use std::collections::HashMap;
use std::io::Write as _;
use std::net::SocketAddr;
use std::time::Duration;

use alicloud_emulator::{DbsErrorMode, Emulator, EmulatorConfig};
use anyhow::Context as _;
use clap::Parser;

/// HTTP emulator of the Alibaba Cloud DBS (2019-03-06), RDS (2014-08-15) and
/// STS (2015-04-01) APIs. Every flag can also be set through the environment
/// variable shown; repeatable flags take comma-separated values there.
#[derive(Debug, Parser)]
#[command(name = "alicloud-emulator", version)]
struct Cli {
    /// Address to listen on; port 0 picks a free port. Once bound, prints
    /// `listening on http://ADDR` on stdout.
    #[arg(
        long,
        env = "ALICLOUD_EMULATOR_LISTEN",
        default_value = "127.0.0.1:8090"
    )]
    listen: SocketAddr,

    /// Static AccessKey pair `ACCESS_KEY_ID:SECRET[:ACCOUNT_UID]` (repeatable). With
    /// an account uid the key is a RAM user's of that account (keys of one account
    /// share its quotas); without, the key is an account of its own. With none,
    /// every signed request fails with InvalidAccessKeyId.NotFound (STS
    /// AssumeRoleWithOIDC still works; keys can be added via the admin API).
    #[arg(long = "account", env = "ALICLOUD_EMULATOR_ACCOUNT", value_delimiter = ',', value_parser = parse_account)]
    accounts: Vec<StaticKey>,

    /// Seed a Running MySQL VPC instance `REGION/INSTANCE_ID` (repeatable);
    /// it gets the internal endpoint `<id>-internal.mysql.rds.aliyuncs.com:3306`.
    #[arg(long = "rds-instance", env = "ALICLOUD_EMULATOR_RDS_INSTANCE", value_delimiter = ',', value_parser = parse_instance)]
    rds_instances: Vec<(String, String)>,

    /// Minimum delay between CreateBackupPlan and ConfigureBackupPlan (ms);
    /// earlier calls fail with ErrCode OperationDenied.
    #[arg(
        long,
        env = "ALICLOUD_EMULATOR_CONFIGURE_DELAY_MS",
        default_value_t = 5000
    )]
    configure_delay_ms: u64,

    /// How long an RDS instance stays in DBInstanceNetTypeChanging after a
    /// connection change (ms).
    #[arg(
        long,
        env = "ALICLOUD_EMULATOR_INSTANCE_BUSY_MS",
        default_value_t = 3000
    )]
    instance_busy_ms: u64,

    /// Per-second quota per (account, action) as `ACTION=N` (repeatable; `*`
    /// sets the default). Defaults: ReleaseInstanceConnection=10, others 100.
    #[arg(long = "quota", env = "ALICLOUD_EMULATOR_QUOTA", value_delimiter = ',', value_parser = parse_quota)]
    quotas: Vec<(String, u32)>,

    /// Cap (seconds) on the lifetime of STS credentials issued by
    /// AssumeRoleWithOIDC: Expiration = now + min(DurationSeconds, cap).
    #[arg(long, env = "ALICLOUD_EMULATOR_STS_MAX_DURATION")]
    sts_max_duration: Option<u64>,

    /// Length of the precheck begun by StartBackupPlan (ms): the plan is
    /// `init`, then `check_pass` from half-time, then `running`.
    #[arg(long, env = "ALICLOUD_EMULATOR_PRECHECK_MS", default_value_t = 5000)]
    precheck_ms: u64,

    /// How long a CreateBackupPlan ClientToken is remembered (ms); a token
    /// reused later creates a new plan.
    #[arg(
        long,
        env = "ALICLOUD_EMULATOR_CLIENT_TOKEN_TTL_MS",
        default_value_t = 3_600_000
    )]
    client_token_ttl_ms: u64,

    /// How long a new plan stays invisible to DescribeBackupPlanList (ms).
    #[arg(long, env = "ALICLOUD_EMULATOR_DESCRIBE_LAG_MS", default_value_t = 0)]
    describe_lag_ms: u64,

    /// How DBS business errors are sent: `http-status` (their 4xx status, which the official
    /// SDKs raise as exceptions) or `success-false` (HTTP 200 with `Success:false`).
    #[arg(
        long,
        env = "ALICLOUD_EMULATOR_DBS_ERRORS",
        default_value = "http-status"
    )]
    dbs_errors: DbsErrorMode,
}

/// A static key from `--account`: id, secret and the account it belongs to, if given.
type StaticKey = (String, String, Option<String>);

/// Parses `ACCESS_KEY_ID:SECRET[:ACCOUNT_UID]`.
fn parse_account(s: &str) -> Result<StaticKey, String> {
    let mut parts = s.splitn(3, ':');
    match (parts.next(), parts.next(), parts.next()) {
        (Some(id), Some(secret), account)
            if !id.is_empty() && !secret.is_empty() && account != Some("") =>
        {
            Ok((id.into(), secret.into(), account.map(str::to_owned)))
        }
        _ => Err(format!(
            "expected ACCESS_KEY_ID:SECRET[:ACCOUNT_UID], got {s:?}"
        )),
    }
}

/// Parses `REGION/INSTANCE_ID`.
fn parse_instance(s: &str) -> Result<(String, String), String> {
    match s.split_once('/') {
        Some((region, id)) if !region.is_empty() && !id.is_empty() => {
            Ok((region.into(), id.into()))
        }
        _ => Err(format!("expected REGION/INSTANCE_ID, got {s:?}")),
    }
}

/// Parses `ACTION=N`.
fn parse_quota(s: &str) -> Result<(String, u32), String> {
    let (action, n) = s
        .split_once('=')
        .ok_or_else(|| format!("expected ACTION=N, got {s:?}"))?;
    let n = n
        .parse::<u32>()
        .map_err(|e| format!("bad quota {n:?}: {e}"))?;
    Ok((action.to_string(), n))
}

/// Installs the SIGINT/SIGTERM handlers (before announcing readiness, so a
/// signal sent right after the listening line is never lost) and returns a
/// future that resolves on the first of them.
fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = ()>> {
    #[cfg(unix)]
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("installing the SIGTERM handler")?;
    #[cfg(unix)]
    let mut int = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())
        .context("installing the SIGINT handler")?;
    Ok(async move {
        #[cfg(unix)]
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        #[cfg(not(unix))]
        let _ = tokio::signal::ctrl_c().await;
    })
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let cli = Cli::parse();
    let config = EmulatorConfig {
        listen: cli.listen,
        key_accounts: cli
            .accounts
            .iter()
            .filter_map(|(id, _, account)| Some((id.clone(), account.clone()?)))
            .collect(),
        accounts: cli
            .accounts
            .into_iter()
            .map(|(id, secret, _)| (id, secret))
            .collect(),
        rds_instances: cli.rds_instances,
        configure_delay: Duration::from_millis(cli.configure_delay_ms),
        instance_busy: Duration::from_millis(cli.instance_busy_ms),
        quotas: cli.quotas.into_iter().collect::<HashMap<_, _>>(),
        sts_max_duration: cli.sts_max_duration.map(Duration::from_secs),
        precheck: Duration::from_millis(cli.precheck_ms),
        client_token_ttl: Duration::from_millis(cli.client_token_ttl_ms),
        describe_lag: Duration::from_millis(cli.describe_lag_ms),
        dbs_errors: cli.dbs_errors,
    };
    let signal = shutdown_signal()?;
    let emulator = Emulator::start(config)
        .await
        .context("starting the emulator")?;
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "listening on {}", emulator.url()).context("writing to stdout")?;
        out.flush().context("flushing stdout")?;
    }
    tracing::info!(url = %emulator.url(), "alicloud-emulator started");
    signal.await;
    tracing::info!("shutting down");
    emulator.shutdown().await;
    Ok(())
}
