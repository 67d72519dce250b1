//! What the process-level tests share: the operator binary as a child process (JSON logs in a
//! file, its metrics address read from them, SIGKILL on drop), the emulator with the samples'
//! account and instance, `kubectl apply -f examples/`, and polling helpers.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use alicloud_emulator::{Emulator, EmulatorConfig};
use serde_json::Value;

/// The account of `examples/credentials-secret.yaml`.
pub const ACCESS_KEY_ID: &str = "LTAI-example-id";
/// Its secret.
pub const ACCESS_KEY_SECRET: &str = "example-secret";
/// The RDS instance `examples/` name.
pub const RDS_INSTANCE: (&str, &str) = ("cn-hangzhou", "rm-bp1orders0001");

/// The emulator with the samples' account and instance, configure delay 1 s.
pub async fn sample_emulator() -> Emulator {
    Emulator::start(EmulatorConfig {
        accounts: vec![(ACCESS_KEY_ID.into(), ACCESS_KEY_SECRET.into())],
        rds_instances: vec![(RDS_INSTANCE.0.into(), RDS_INSTANCE.1.into())],
        configure_delay: Duration::from_secs(1),
        instance_busy: Duration::from_millis(500),
        ..Default::default()
    })
    .await
    .expect("emulator starts")
}

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
        let log = std::env::temp_dir().join(format!(
            "alicloud-op-{name}-{}-{}.log",
            std::process::id(),
            uuid_like()
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
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_alicloud-db-operator"));
        cmd.arg("run")
            .args(args)
            .env("KUBECONFIG", alicloud_testenv::shared().kubeconfig_path())
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
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            for line in self.log().lines() {
                let Ok(v) = serde_json::from_str::<Value>(line) else {
                    continue;
                };
                if v["fields"]["message"] == "serving /metrics, /healthz and /readyz"
                    && let Some(addr) = v["fields"]["addr"].as_str()
                {
                    return format!("http://{addr}");
                }
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "operator {} exited ({status}) before serving metrics:\n{}",
                    self.name,
                    self.log_tail(30)
                );
            }
            assert!(
                Instant::now() < deadline,
                "operator {} never logged its metrics address:\n{}",
                self.name,
                self.log_tail(30)
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
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

    /// SIGTERM, and wait up to `within` for the exit status.
    pub async fn terminate(&mut self, within: Duration) -> Option<std::process::ExitStatus> {
        let pid = i32::try_from(self.child.id()).expect("pid fits");
        // SAFETY: kill(2) on our own child's pid, which we have not reaped yet.
        unsafe {
            libc::kill(pid, libc::SIGTERM);
        }
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
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

fn uuid_like() -> String {
    format!(
        "{:x}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default()
    )
}

/// GET `url`: status and body.
pub async fn get(url: &str) -> (u16, String) {
    match reqwest::get(url).await {
        Ok(r) => {
            let status = r.status().as_u16();
            (status, r.text().await.unwrap_or_default())
        }
        Err(e) => (0, e.to_string()),
    }
}

/// Polls `check` every 200 ms until it gives `Some`, or panics with `what` after `timeout`.
pub async fn eventually<T, F, Fut>(timeout: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?}: {what}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// `kubectl` of the shared control plane with `args`; panics with its output on failure.
pub fn kubectl(args: &[&str]) -> String {
    let out = alicloud_testenv::shared()
        .kubectl()
        .args(args)
        .output()
        .expect("run kubectl");
    assert!(
        out.status.success(),
        "kubectl {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `kubectl apply -f examples/` into `ns`.
pub fn apply_examples(ns: &str) {
    kubectl(&[
        "apply",
        "-n",
        ns,
        "-f",
        &examples_dir().display().to_string(),
    ]);
}

/// Deletes every BackupPlan and RdsConnection in `ns` and waits until they are gone (their
/// finalizers have released what they own in the cloud).
pub fn delete_samples(ns: &str) {
    kubectl(&[
        "delete",
        "backupplans,rdsconnections",
        "--all",
        "-n",
        ns,
        "--wait=true",
        "--timeout=90s",
    ]);
}

/// `examples/` of this workspace.
pub fn examples_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples")
}

/// The `Ready` condition status of each object of `resource` (`backupplans`, ...) in `ns`.
pub fn ready_states(ns: &str, resource: &str) -> BTreeMap<String, String> {
    let out = kubectl(&["get", resource, "-n", ns, "-o", "json"]);
    let list: Value = serde_json::from_str(&out).expect("kubectl JSON");
    list["items"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|o| {
            let ready = o["status"]["conditions"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|c| c["type"] == "Ready")
                .and_then(|c| c["status"].as_str())
                .unwrap_or("Unknown")
                .to_owned();
            (
                o["metadata"]["name"].as_str().unwrap_or("").to_owned(),
                ready,
            )
        })
        .collect()
}

/// Waits until the samples in `ns` (two BackupPlans, one RdsConnection) are all Ready.
pub async fn wait_examples_ready(ns: &str, op: &Operator) {
    let what = format!("every sample in {ns} Ready");
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let plans = ready_states(ns, "backupplans");
        let conns = ready_states(ns, "rdsconnections");
        if plans.len() == 2
            && conns.len() == 1
            && plans.values().chain(conns.values()).all(|s| s == "True")
        {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "timed out: {what}; plans {plans:?}, connections {conns:?}\noperator log:\n{}",
            op.log_tail(40)
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// One sample in the Prometheus text: the value of the series whose name and labels are
/// exactly `series` (`name{a="b",c="d"}`).
pub fn sample(metrics: &str, series: &str) -> Option<f64> {
    metrics.lines().find_map(|l| {
        let (name, value) = l.rsplit_once(' ')?;
        (name == series).then(|| value.parse().ok()).flatten()
    })
}

/// The emulator's call log.
pub async fn calls(emulator: &Emulator) -> Vec<Value> {
    emulator.state().await["calls"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}
