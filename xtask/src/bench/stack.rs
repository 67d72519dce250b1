//! What the bench runs against: the release binaries, the emulator and the operator (each its
//! own process, in its own process group), and a test control plane; stopped in reverse order.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use serde_json::{Value, json};

use super::BenchArgs;
use super::workload::{ACCESS_KEY_ID, ACCESS_KEY_SECRET, Load};
use crate::demo::Binaries;
use crate::demo::processes::{Process, free_port};

/// A signal that interrupts the bench.
#[derive(Clone, Copy, Debug)]
pub enum Interrupt {
    /// Ctrl-C.
    Int,
    /// `kill`.
    Term,
    /// The terminal went away.
    Hup,
}

impl Interrupt {
    /// The signal's number (the exit code is 128 + it).
    pub fn number(self) -> i32 {
        match self {
            Self::Int => 2,
            Self::Term => 15,
            Self::Hup => 1,
        }
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

/// Resolves on the first SIGINT, SIGTERM or SIGHUP.
pub async fn interrupted() -> Interrupt {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut int), Ok(mut term), Ok(mut hup)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
        signal(SignalKind::hangup()),
    ) else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = int.recv() => Interrupt::Int,
        _ = term.recv() => Interrupt::Term,
        _ = hup.recv() => Interrupt::Hup,
    }
}

/// What the bench started.
#[derive(Default)]
pub struct Stack {
    workdir: Option<tempfile::TempDir>,
    emulator: Option<Process>,
    plane: Option<alicloud_testenv::ControlPlane>,
    operator: Option<Process>,
    /// The emulator's base URL.
    pub emulator_url: String,
    /// The operator's `/metrics` URL.
    pub metrics_url: String,
    /// The kube client of the control plane.
    pub client: Option<kube::Client>,
    /// HTTP client for the emulator's admin API and the operator's metrics.
    pub http: reqwest::Client,
}

impl Stack {
    /// Starts the emulator (quotas, delays, latency, instances), the control plane and the
    /// operator; returns once the operator answers `/readyz`.
    pub async fn start(
        &mut self,
        binaries: &Binaries,
        root: &Path,
        args: &BenchArgs,
        load: &Load,
    ) -> anyhow::Result<()> {
        self.http = reqwest::Client::builder()
            .timeout(Duration::from_secs(120))
            .build()?;
        let workdir = tempfile::Builder::new()
            .prefix("alicloud-bench-")
            .tempdir()
            .context("create the bench's temporary folder")?;
        let dir = workdir.path().to_path_buf();
        self.workdir = Some(workdir);

        let mut cmd = clean_command(&binaries.emulator);
        cmd.args(["--listen", "127.0.0.1:0", "--account"])
            .arg(format!("{ACCESS_KEY_ID}:{ACCESS_KEY_SECRET}"))
            .arg("--configure-delay-ms")
            .arg(args.configure_delay.as_millis().to_string())
            .arg("--precheck-ms")
            .arg(args.precheck.as_millis().to_string())
            .arg("--quota")
            .arg(format!("*={}", args.quota))
            .args(["--quota", "ReleaseInstanceConnection=10"])
            .env("RUST_LOG", "warn");
        let emulator = self.emulator.insert(Process::spawn(
            "emulator",
            cmd,
            &dir.join("emulator.log"),
            true,
        )?);
        self.emulator_url = emulator
            .first_line("listening on ", Duration::from_secs(30))
            .await?;
        self.admin_put(
            "/_emulator/faults/*",
            &json!({"errorRate": 0.0, "latencyMs": args.latency_ms}),
        )
        .await?;
        seed_instances(&self.http, &self.emulator_url, &load.instances).await?;
        println!(
            "    emulator {}: quota {}/s per action (ReleaseInstanceConnection 10/s), {} ms per \
             call, configure rule {:?}, precheck {:?}, {} RDS instances",
            self.emulator_url,
            args.quota,
            args.latency_ms,
            args.configure_delay,
            args.precheck,
            load.instances.len()
        );

        let opts = alicloud_testenv::Options {
            crds_dir: Some(root.join("crds")),
            ..Default::default()
        };
        let plane = self
            .plane
            .insert(alicloud_testenv::ControlPlane::start(opts).await?);
        let client = plane.client().await;
        let kubeconfig = std::fs::canonicalize(plane.kubeconfig_path())?;
        println!("    control plane at {}", plane.server_url());
        self.client = Some(client);

        let metrics_addr = format!("127.0.0.1:{}", free_port()?);
        let mut cmd = clean_command(&binaries.operator);
        cmd.arg("run")
            .args(["--dbs-endpoint", &self.emulator_url])
            .args(["--rds-endpoint", &self.emulator_url])
            .args(["--sts-endpoint", &self.emulator_url])
            .args(["--metrics-addr", &metrics_addr])
            .arg(format!(
                "--configure-delay={}ms",
                args.configure_delay.as_millis()
            ))
            .arg(format!(
                "--resync-period={}ms",
                args.resync_period.as_millis()
            ))
            .args(&args.operator_arg)
            .env("RUST_LOG", &args.operator_log)
            .env("KUBECONFIG", &kubeconfig)
            .env("ALIBABA_CLOUD_ACCESS_KEY_ID", ACCESS_KEY_ID)
            .env("ALIBABA_CLOUD_ACCESS_KEY_SECRET", ACCESS_KEY_SECRET);
        self.operator = Some(Process::spawn(
            "operator",
            cmd,
            &dir.join("operator.log"),
            false,
        )?);
        self.metrics_url = format!("http://{metrics_addr}/metrics");
        self.operator_ready(&metrics_addr).await?;
        println!(
            "    operator (pid {}) ready; metrics at {}",
            self.operator_pid().unwrap_or_default(),
            self.metrics_url
        );
        Ok(())
    }

    async fn operator_ready(&mut self, addr: &str) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(60);
        let url = format!("http://{addr}/readyz");
        loop {
            self.check_operator()?;
            let ready = self
                .http
                .get(&url)
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            if ready {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("the operator did not answer {url} within 60 s");
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// Fails with the operator's log if it has exited.
    pub fn check_operator(&mut self) -> anyhow::Result<()> {
        let operator = self.operator.as_mut().context("no operator")?;
        if let Some(status) = operator.exited() {
            bail!(
                "the operator exited ({status}); its log:\n{}",
                operator.log_tail(40)
            );
        }
        Ok(())
    }

    /// The last lines of the operator's log.
    pub fn operator_log_tail(&self, lines: usize) -> String {
        self.operator
            .as_ref()
            .map(|o| o.log_tail(lines))
            .unwrap_or_default()
    }

    /// The operator's process id.
    pub fn operator_pid(&self) -> Option<u32> {
        self.operator.as_ref().and_then(Process::pid)
    }

    /// The kube client.
    pub fn client(&self) -> anyhow::Result<kube::Client> {
        self.client.clone().context("no control plane")
    }

    /// `PUT` to the emulator's admin API.
    pub async fn admin_put(&self, path: &str, body: &Value) -> anyhow::Result<()> {
        let url = format!("{}{path}", self.emulator_url);
        let response = self.http.put(&url).json(body).send().await?;
        if !response.status().is_success() {
            bail!("PUT {url}: {}", response.status());
        }
        Ok(())
    }

    /// `GET /_emulator/state`.
    pub async fn emulator_state(&self) -> anyhow::Result<Value> {
        let url = format!("{}/_emulator/state", self.emulator_url);
        Ok(self.http.get(&url).send().await?.json().await?)
    }

    /// Stops the operator, the emulator and the control plane; removes (or keeps) the logs.
    pub async fn shutdown(&mut self, keep_logs: Option<&Path>) {
        if let Some(operator) = self.operator.take() {
            operator.stop().await;
        }
        if let Some(emulator) = self.emulator.take() {
            emulator.stop().await;
        }
        self.client = None;
        if let Some(plane) = self.plane.take() {
            let _ = tokio::task::spawn_blocking(move || drop(plane)).await;
        }
        if let Some(workdir) = self.workdir.take() {
            if let Some(keep) = keep_logs {
                let _ = std::fs::create_dir_all(keep);
                for log in ["operator.log", "emulator.log"] {
                    let _ = std::fs::copy(workdir.path().join(log), keep.join(log));
                }
                println!("logs kept in {}", keep.display());
            }
            let _ = workdir.close();
        }
    }
}

/// Seeds the RDS instances through the admin API, a few dozen at a time.
async fn seed_instances(
    http: &reqwest::Client,
    url: &str,
    instances: &[String],
) -> anyhow::Result<()> {
    use futures::StreamExt as _;
    let url = format!("{url}/_emulator/instances");
    let results: Vec<anyhow::Result<()>> = futures::stream::iter(instances)
        .map(|id| {
            let (http, url) = (http.clone(), url.clone());
            async move {
                let body = json!({"region": super::workload::REGION, "dbInstanceId": id,
                    "engine": "MySQL", "networkType": "VPC"});
                let response = http.post(&url).json(&body).send().await?;
                if !response.status().is_success() {
                    bail!("seed instance {id}: {}", response.status());
                }
                Ok(())
            }
        })
        .buffer_unordered(32)
        .collect()
        .await;
    results.into_iter().collect()
}

/// A command for a bench binary without the caller's Alibaba Cloud, operator and kube settings.
fn clean_command(program: &Path) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(program);
    for (key, _) in std::env::vars_os() {
        let Some(key) = key.to_str() else { continue };
        if key.starts_with("ALIBABA_CLOUD_")
            || key.starts_with("ALICLOUD_")
            || matches!(
                key,
                "KUBECONFIG" | "WATCH_NAMESPACE" | "POD_NAME" | "RUST_LOG"
            )
        {
            cmd.env_remove(key);
        }
    }
    cmd
}
