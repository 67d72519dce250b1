//! `alicloud-db-operator`: the operator process. `run` starts the BackupPlan and RdsConnection
//! controllers, and the one protecting their credentials Secrets while in use, against the
//! cluster of the default kubeconfig (in-cluster config or `KUBECONFIG`). Every flag also reads
//! an environment variable; `RUST_LOG` sets the log filter.
//!
//! Fault injection for the crash test suite: `ALICLOUD_DB_OPERATOR_FAILPOINT=kill-after-create-backup-plan`
//! makes the process SIGKILL itself right after a successful CreateBackupPlan, before the plan
//! id reaches the status. It is read once at start-up and must never be set in production.

use std::sync::Arc;
use std::time::Duration;

use alicloud_db_operator::cloud::credentials::CredentialsError;
use alicloud_db_operator::cloud::{AlibabaCloud, ClientConfig, CredentialProvider, Endpoints};
use alicloud_db_operator::controller::{self, Context, ControllerConfig, Failpoint};
use anyhow::Context as _;
use clap::{Parser, Subcommand, ValueEnum};

/// How long in-flight reconciles may take to finish after SIGTERM/SIGINT.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

/// Kubernetes operator for Alibaba Cloud DBS backup plans and RDS public endpoints.
#[derive(Debug, Parser)]
#[command(name = "alicloud-db-operator", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// What the process does.
#[derive(Debug, Subcommand)]
enum Command {
    /// Run the controllers until SIGTERM or SIGINT.
    Run(RunArgs),
}

/// Flags of `run`; each has an environment fallback.
#[derive(Debug, clap::Args)]
struct RunArgs {
    /// Watch only this namespace (default: every namespace).
    #[arg(long, env = "WATCH_NAMESPACE", value_parser = parse_namespace)]
    watch_namespace: Option<String>,
    /// DBS endpoint override: a base URL (`http://127.0.0.1:8080`) or a host.
    #[arg(long, env = "ALICLOUD_DBS_ENDPOINT")]
    dbs_endpoint: Option<String>,
    /// RDS endpoint override: a base URL or a host.
    #[arg(long, env = "ALICLOUD_RDS_ENDPOINT")]
    rds_endpoint: Option<String>,
    /// STS endpoint override (RRSA token exchange): a base URL or a host.
    #[arg(long, env = "ALICLOUD_STS_ENDPOINT")]
    sts_endpoint: Option<String>,
    /// How often every object is compared with the cloud when nothing else happens.
    #[arg(long, env = "ALICLOUD_DB_OPERATOR_RESYNC_PERIOD", default_value = "5m", value_parser = parse_period)]
    resync_period: Duration,
    /// Maximum reconciles running at once, per kind.
    #[arg(long, env = "ALICLOUD_DB_OPERATOR_CONCURRENCY", default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..))]
    concurrency: u16,
    /// Wait between DBS CreateBackupPlan and ConfigureBackupPlan.
    #[arg(long, env = "ALICLOUD_DB_OPERATOR_CONFIGURE_DELAY", default_value = "5s", value_parser = parse_duration)]
    configure_delay: Duration,
    /// First retry delay after a failed reconcile; doubles per consecutive failure (with jitter).
    #[arg(long, env = "ALICLOUD_DB_OPERATOR_MIN_BACKOFF", default_value = "1s", value_parser = parse_period)]
    min_backoff: Duration,
    /// Cap of the retry delay after failed reconciles.
    #[arg(long, env = "ALICLOUD_DB_OPERATOR_MAX_BACKOFF", default_value = "5m", value_parser = parse_period)]
    max_backoff: Duration,
    /// Minimum retry delay after the cloud throttled a call.
    #[arg(long, env = "ALICLOUD_DB_OPERATOR_THROTTLED_DELAY", default_value = "30s", value_parser = parse_duration)]
    throttled_delay: Duration,
    /// How long a deletion may fail for want of usable credentials before the finalizer is
    /// removed anyway (the cloud resource may then remain).
    #[arg(long, env = "ALICLOUD_DB_OPERATOR_DELETION_TIMEOUT", default_value = "10m", value_parser = parse_duration)]
    deletion_timeout: Duration,
    /// How often to look again while an RDS instance is busy.
    #[arg(long, env = "ALICLOUD_DB_OPERATOR_INSTANCE_POLL_INTERVAL", default_value = "5s", value_parser = parse_period)]
    instance_poll_interval: Duration,
    /// Log format.
    #[arg(long, env = "ALICLOUD_DB_OPERATOR_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    /// Reporting instance of Events (the pod name).
    #[arg(long, env = "POD_NAME")]
    pod_name: Option<String>,
    /// Fault injection for crash tests only; see the crate documentation.
    #[arg(long, env = "ALICLOUD_DB_OPERATOR_FAILPOINT", hide = true)]
    failpoint: Option<Failpoint>,
}

/// Log output format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum LogFormat {
    /// One JSON object per line.
    Json,
    /// Human-readable lines.
    Text,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Run(args) => run(args).await,
    }
}

/// Starts the controllers and waits for them, or for a signal and then at most
/// [`SHUTDOWN_GRACE`] for in-flight reconciles.
async fn run(args: RunArgs) -> anyhow::Result<()> {
    init_logging(args.log_format);
    let client = kube::Client::try_default()
        .await
        .context("no Kubernetes configuration (in-cluster or KUBECONFIG)")?;
    let (cloud, default_credentials) = cloud_client(&args)?;
    if default_credentials.is_none() {
        tracing::warn!("no operator credentials configured; every object needs a credentialsRef");
    }
    let config = ControllerConfig {
        watch_namespace: args.watch_namespace,
        resync_period: args.resync_period,
        concurrency: args.concurrency,
        min_backoff: args.min_backoff,
        max_backoff: args.max_backoff.max(args.min_backoff),
        configure_delay: args.configure_delay,
        instance_poll_interval: args.instance_poll_interval,
        throttled_delay: args.throttled_delay,
        deletion_timeout: args.deletion_timeout,
        failpoint: args.failpoint,
    };
    if let Some(f) = config.failpoint {
        tracing::warn!(failpoint = ?f, "fault injection enabled: for crash tests only");
    }
    let ctx = Arc::new(Context::new(
        client,
        cloud,
        default_credentials,
        config,
        args.pod_name,
    ));
    tracing::info!(namespace = ?ctx.config.watch_namespace, "starting controllers");
    let controllers = futures::future::join3(
        controller::backup_plan::run(ctx.clone()),
        controller::rds_connection::run(ctx.clone()),
        controller::credentials_protection::run(ctx),
    );
    tokio::pin!(controllers);
    tokio::select! {
        _ = &mut controllers => {}
        () = shutdown_signal() => {
            tracing::info!("shutting down");
            if tokio::time::timeout(SHUTDOWN_GRACE, &mut controllers).await.is_err() {
                tracing::warn!("controllers did not stop within {SHUTDOWN_GRACE:?}");
            }
        }
    }
    Ok(())
}

/// The cloud client over HTTP and the operator's own credentials (environment access key,
/// else RRSA; `None` when neither is configured).
fn cloud_client(
    args: &RunArgs,
) -> anyhow::Result<(AlibabaCloud, Option<Arc<dyn CredentialProvider>>)> {
    let config = ClientConfig {
        endpoints: Endpoints {
            dbs: args.dbs_endpoint.clone(),
            rds: args.rds_endpoint.clone(),
            sts: args
                .sts_endpoint
                .clone()
                .or_else(|| Endpoints::from_env().sts),
        },
        ..ClientConfig::default()
    };
    let cloud = AlibabaCloud::new(config).context("building the Alibaba Cloud client")?;
    let credentials = match cloud.default_credentials() {
        Ok(c) => Some(c),
        Err(CredentialsError::NotConfigured) => None,
        Err(e) => return Err(e).context("operator credentials are partly configured"),
    };
    Ok((cloud, credentials))
}

/// `RUST_LOG` filter (default `info`), text or JSON lines on stderr.
fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

/// Resolves on SIGTERM or SIGINT.
async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = interrupt => {}
                    _ = term.recv() => {}
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM; only SIGINT stops the operator");
                let _ = interrupt.await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = interrupt.await;
    }
}

/// A namespace to watch; empty is refused rather than watching a namespace named "".
fn parse_namespace(s: &str) -> Result<String, String> {
    if s.is_empty() {
        return Err(
            "empty namespace (omit the flag or WATCH_NAMESPACE to watch every namespace)".into(),
        );
    }
    Ok(s.to_owned())
}

/// A duration that paces requeues: zero would requeue at once, forever (a hot loop of cloud
/// calls), so it is refused.
fn parse_period(s: &str) -> Result<Duration, String> {
    let d = parse_duration(s)?;
    if d.is_zero() {
        return Err(format!("{s:?} is zero; a period must be positive"));
    }
    Ok(d)
}

/// A duration such as `500ms`, `5s`, `10m`, `1h`, or a bare number of seconds.
fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(s.len());
    let (number, unit) = s.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("invalid duration {s:?}"))?;
    let seconds = match unit {
        "ms" => value / 1000.0,
        "" | "s" => value,
        "m" => value * 60.0,
        "h" => value * 3600.0,
        _ => {
            return Err(format!(
                "invalid duration unit in {s:?} (use ms, s, m or h)"
            ));
        }
    };
    Duration::try_from_secs_f64(seconds).map_err(|e| format!("invalid duration {s:?}: {e}"))
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn cli_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_duration("10m"), Ok(Duration::from_secs(600)));
        assert_eq!(parse_duration("2"), Ok(Duration::from_secs(2)));
        assert!(parse_duration("5 weeks").is_err());
        assert!(parse_duration("").is_err());
    }

    #[test]
    fn zero_periods_and_an_empty_namespace_are_refused() {
        for flag in [
            "--resync-period",
            "--min-backoff",
            "--max-backoff",
            "--instance-poll-interval",
        ] {
            for value in ["0", "0s", "0ms"] {
                let parsed = Cli::try_parse_from(["alicloud-db-operator", "run", flag, value]);
                assert!(parsed.is_err(), "{flag} {value} must be refused");
            }
        }
        let parsed = Cli::try_parse_from(["alicloud-db-operator", "run", "--watch-namespace", ""]);
        let message = parsed
            .expect_err("an empty namespace is refused")
            .to_string();
        assert!(message.contains("every namespace"), "{message}");
    }

    #[test]
    fn run_flags_parse_with_defaults() {
        let cli = Cli::try_parse_from([
            "alicloud-db-operator",
            "run",
            "--watch-namespace",
            "ns1",
            "--configure-delay",
            "1s",
        ])
        .expect("parses");
        let Command::Run(args) = cli.command;
        assert_eq!(args.watch_namespace.as_deref(), Some("ns1"));
        assert_eq!(args.configure_delay, Duration::from_secs(1));
        assert_eq!(args.concurrency, 8);
        assert_eq!(args.log_format, LogFormat::Text);
    }
}
