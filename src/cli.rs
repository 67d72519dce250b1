//! The command line of `alicloud-db-operator`: every flag of `run`, each with an environment
//! variable, so the Helm chart's rendered arguments can be checked with the real parser.

use std::net::SocketAddr;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};

use crate::controller::Failpoint;

/// Kubernetes operator for Alibaba Cloud DBS backup plans and RDS public endpoints.
#[derive(Debug, Parser)]
#[command(name = "alicloud-db-operator", version, about)]
pub struct Cli {
    #[command(subcommand)]
    /// What to do.
    pub command: Command,
}

/// What the process does.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the controllers until SIGTERM or SIGINT.
    Run(RunArgs),
}

/// Flags of `run`; each has an environment fallback.
#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// Watch only this namespace (default: every namespace).
    #[arg(long, env = "WATCH_NAMESPACE", value_parser = parse_namespace)]
    pub watch_namespace: Option<String>,
    /// DBS endpoint override: a base URL (`http://127.0.0.1:8090`) or a host.
    #[arg(long, env = "ALICLOUD_DBS_ENDPOINT")]
    pub dbs_endpoint: Option<String>,
    /// RDS endpoint override: a base URL or a host.
    #[arg(long, env = "ALICLOUD_RDS_ENDPOINT")]
    pub rds_endpoint: Option<String>,
    /// STS endpoint override (RRSA token exchange): a base URL or a host.
    #[arg(long, env = "ALICLOUD_STS_ENDPOINT")]
    pub sts_endpoint: Option<String>,
    /// How often every object is compared with the cloud when nothing else happens.
    #[arg(long, env = "ALICLOUD_DB_OPERATOR_RESYNC_PERIOD", default_value = "5m", value_parser = parse_period)]
    pub resync_period: Duration,
    /// Maximum reconciles running at once, per kind. A reconcile whose call is paced under the
    /// account's quota waits for its slot in its worker (up to about a second, see
    /// `controller::turns`): 1,000 plans created at once keep 64 workers busy (about 80 with
    /// more; 128 workers took 7 MiB more memory at 10,000 plans).
    #[arg(long, env = "ALICLOUD_DB_OPERATOR_CONCURRENCY", default_value_t = 64, value_parser = clap::value_parser!(u16).range(1..))]
    pub concurrency: u16,
    /// Wait between DBS CreateBackupPlan and ConfigureBackupPlan.
    #[arg(long, env = "ALICLOUD_DB_OPERATOR_CONFIGURE_DELAY", default_value = "5s", value_parser = parse_duration)]
    pub configure_delay: Duration,
    /// First retry delay after a failed reconcile; doubles per consecutive failure (with jitter).
    #[arg(long, env = "ALICLOUD_DB_OPERATOR_MIN_BACKOFF", default_value = "1s", value_parser = parse_period)]
    pub min_backoff: Duration,
    /// Cap of the retry delay after failed reconciles.
    #[arg(long, env = "ALICLOUD_DB_OPERATOR_MAX_BACKOFF", default_value = "5m", value_parser = parse_period)]
    pub max_backoff: Duration,
    /// Minimum retry delay after the cloud throttled a call.
    #[arg(long, env = "ALICLOUD_DB_OPERATOR_THROTTLED_DELAY", default_value = "30s", value_parser = parse_duration)]
    pub throttled_delay: Duration,
    /// How long a deletion may fail for want of usable credentials (counted from the operator's
    /// first failed attempt) before the finalizer is removed anyway (the cloud resource may then
    /// remain). Other failures are retried until fixed or abandoned.
    #[arg(long, env = "ALICLOUD_DB_OPERATOR_DELETION_TIMEOUT", default_value = "10m", value_parser = parse_duration)]
    pub deletion_timeout: Duration,
    /// How often to look again while an RDS instance is busy.
    #[arg(long, env = "ALICLOUD_DB_OPERATOR_INSTANCE_POLL_INTERVAL", default_value = "5s", value_parser = parse_period)]
    pub instance_poll_interval: Duration,
    /// Deadline of one HTTP attempt of a cloud call (body included); a call that gets no
    /// answer in time is retried like a 5xx.
    #[arg(long, env = "ALICLOUD_DB_OPERATOR_CLOUD_TIMEOUT", default_value = "15s", value_parser = parse_period)]
    pub cloud_timeout: Duration,
    /// Log format.
    #[arg(long, env = "ALICLOUD_DB_OPERATOR_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Address of the HTTP server for `/metrics` (Prometheus text), `/healthz` and `/readyz`.
    #[arg(
        long,
        env = "ALICLOUD_DB_OPERATOR_METRICS_ADDR",
        default_value = "0.0.0.0:8080"
    )]
    pub metrics_addr: SocketAddr,
    /// Run only while holding a Lease, so that several replicas never act at once.
    #[arg(long, env = "ALICLOUD_DB_OPERATOR_LEADER_ELECT", default_value_t = false, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub leader_elect: bool,
    /// Name of the leader-election Lease.
    #[arg(long, env = "ALICLOUD_DB_OPERATOR_LEADER_ELECTION_ID", default_value = "alicloud-db-operator", value_parser = parse_name)]
    pub leader_election_id: String,
    /// Namespace of the leader-election Lease (default: the pod's namespace, else `default`).
    #[arg(long, env = "POD_NAMESPACE", value_parser = parse_namespace)]
    pub leader_election_namespace: Option<String>,
    /// How long a Lease is valid without renewal; a follower takes over at most this long after
    /// the leader stops renewing.
    #[arg(long, env = "ALICLOUD_DB_OPERATOR_LEADER_ELECTION_LEASE_DURATION", default_value = "15s", value_parser = parse_period)]
    pub leader_election_lease_duration: Duration,
    /// This replica's name: the leader-election identity, the reporting instance of Events and
    /// part of the User-Agent of every cloud call (the chart sets it from the pod name).
    #[arg(long, env = "POD_NAME")]
    pub pod_name: Option<String>,
    /// Fault injection for crash tests only; see the crate documentation.
    #[arg(long, env = "ALICLOUD_DB_OPERATOR_FAILPOINT", hide = true)]
    pub failpoint: Option<Failpoint>,
}

/// Log output format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// One JSON object per line.
    Json,
    /// Human-readable lines.
    Text,
}

/// A namespace to watch; empty is refused rather than watching a namespace named "".
pub fn parse_namespace(s: &str) -> Result<String, String> {
    if s.is_empty() {
        return Err(
            "empty namespace (omit the flag or WATCH_NAMESPACE to watch every namespace)".into(),
        );
    }
    Ok(s.to_owned())
}

/// A non-empty object name.
pub fn parse_name(s: &str) -> Result<String, String> {
    if s.is_empty() {
        return Err("empty name".into());
    }
    Ok(s.to_owned())
}

/// A duration that paces requeues: zero would requeue at once, forever (a hot loop of cloud
/// calls), so it is refused.
pub fn parse_period(s: &str) -> Result<Duration, String> {
    let d = parse_duration(s)?;
    if d.is_zero() {
        return Err(format!("{s:?} is zero; a period must be positive"));
    }
    Ok(d)
}

/// A duration such as `500ms`, `5s`, `10m`, `1h`, or a bare number of seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
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
        assert_eq!(args.concurrency, 64);
        assert_eq!(args.log_format, LogFormat::Text);
    }

    #[test]
    fn readme_documents_every_flag_and_its_environment_variable() {
        let readme = include_str!("../README.md");
        let command = Cli::command();
        let run = command.find_subcommand("run").expect("run subcommand");
        for arg in run.get_arguments().filter(|a| !a.is_hide_set()) {
            let Some(long) = arg.get_long() else { continue };
            if long == "help" {
                continue;
            }
            let flag = format!("`--{long}`");
            assert!(readme.contains(&flag), "README lacks {flag}");
            if let Some(env) = arg.get_env() {
                let env = format!("`{}`", env.to_string_lossy());
                assert!(readme.contains(&env), "README lacks {env} of --{long}");
            }
        }
    }
}
