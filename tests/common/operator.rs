//! The operator binary as a child process: its log (JSON) in a file, its metrics address read
//! from it, SIGKILL when dropped.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::Value;

use super::{ACCESS_KEY_ID, ACCESS_KEY_SECRET, eventually};

/// Flags that make the operator quick against the emulator at `url`.
pub fn fast_flags(url: &str) -> Vec<String> {
    [
        "--dbs-endpoint",
        url,
        "--rds-endpoint",
        url,
        "--sts-endpoint",
        url,
        "--configure-delay",
        "1s",
        "--resync-period",
        "5s",
        "--min-backoff",
        "200ms",
        "--max-backoff",
        "3s",
        "--throttled-delay",
        "2s",
        "--instance-poll-interval",
        "500ms",
        "--deletion-timeout",
        "60s",
        "--log-format",
        "json",
        // Any free port: several operator processes run at once in the test suite.
        "--metrics-addr",
        "127.0.0.1:0",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect()
}

/// The operator binary running as a child process; SIGKILLed when dropped.
pub struct Operator {
    /// Name used as `POD_NAME` (leader-election identity, User-Agent).
    pub name: String,
    child: Child,
    log: PathBuf,
}

impl Operator {
    /// Runs `cmd` (the operator binary or a wrapper exec-ing it), its stderr into a log file.
    pub fn spawn(name: &str, mut cmd: Command) -> Self {
        let stamp = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        let log = std::env::temp_dir().join(format!(
            "alicloud-op-{name}-{}-{stamp:x}.log",
            std::process::id()
        ));
        let file = std::fs::File::create(&log).expect("create log file");
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(file));
        let child = cmd.spawn().expect("start the operator");
        eprintln!("operator {name}: pid {}, log {}", child.id(), log.display());
        Self {
            name: name.to_owned(),
            child,
            log,
        }
    }

    /// `alicloud-db-operator run ARGS` with `KUBECONFIG` of the shared control plane, the
    /// samples' account as the operator's own credentials and `POD_NAME=name`.
    pub fn command(name: &str, args: &[String]) -> Command {
        Self::command_for(alicloud_testenv::shared().kubeconfig_path(), name, args)
    }

    /// [`Operator::command`] against the control plane of `kubeconfig` (a test's own one).
    pub fn command_for(kubeconfig: &Path, name: &str, args: &[String]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_alicloud-db-operator"));
        cmd.arg("run")
            .args(args)
            .env("KUBECONFIG", kubeconfig)
            .env("ALIBABA_CLOUD_ACCESS_KEY_ID", ACCESS_KEY_ID)
            .env("ALIBABA_CLOUD_ACCESS_KEY_SECRET", ACCESS_KEY_SECRET)
            .env("POD_NAME", name)
            .env("RUST_LOG", "info,alicloud_db_operator=debug")
            .env_remove("POD_NAMESPACE")
            .env_remove("WATCH_NAMESPACE")
            .env_remove("ALICLOUD_DB_OPERATOR_FAILPOINT");
        cmd
    }

    /// The process's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Path of the log file.
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// The last `n` lines of the log, for failure messages.
    pub fn log_tail(&self, n: usize) -> String {
        let log = self.log();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }

    /// The `http://ADDR` of the metrics server, read from the JSON log once it is bound.
    pub async fn metrics_url(&mut self) -> String {
        let what = format!("operator {} to log its metrics address", self.name);
        eventually(&what, Duration::from_secs(30), || {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "operator {} exited ({status}) before serving metrics:\n{}",
                    self.name,
                    self.log_tail(30)
                );
            }
            let url = self.log().lines().find_map(|line| {
                let v: Value = serde_json::from_str(line).ok()?;
                let serving = v["fields"]["message"] == "serving /metrics, /healthz and /readyz";
                serving
                    .then(|| v["fields"]["addr"].as_str().map(|a| format!("http://{a}")))
                    .flatten()
            });
            let seen = url.ok_or_else(|| self.log_tail(30));
            async move { seen }
        })
        .await
    }

    /// Whether the process is still running.
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// SIGKILL, and reap.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// The exit status, once the process has exited (within `within`).
    pub async fn wait_exit(&mut self, within: Duration) -> ExitStatus {
        let what = format!("operator {} to exit", self.name);
        eventually(&what, within, || {
            let status = self.child.try_wait().expect("poll the operator");
            async move { status }
        })
        .await
    }

    /// Waits until a failpoint has SIGKILLed the process.
    pub async fn wait_killed_by_failpoint(&mut self) {
        use std::os::unix::process::ExitStatusExt;
        let exit = self.wait_exit(Duration::from_secs(90)).await;
        assert_eq!(exit.signal(), Some(9), "killed by SIGKILL: {exit:?}");
    }

    /// SIGTERM, and wait up to `within` for the exit status.
    pub async fn terminate(&mut self, within: Duration) -> Option<ExitStatus> {
        // Our own child, not reaped yet: the pid is still its.
        rustix::process::kill_process(
            rustix::process::Pid::from_child(&self.child),
            rustix::process::Signal::TERM,
        )
        .expect("SIGTERM the operator");
        let deadline = std::time::Instant::now() + within;
        while std::time::Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        None
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        self.kill();
    }
}
