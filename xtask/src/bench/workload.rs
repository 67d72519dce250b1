//! The bench's objects and its phases: submit N at once, wait until all are Ready, measure the
//! steady state, then time the first reconcile of new objects one at a time.

use std::time::{Duration, Instant};

use anyhow::Context as _;
use futures::StreamExt as _;
use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::api::{Api, DynamicObject, PostParams};
use kube::discovery::ApiResource;
use serde_json::json;

use super::BenchArgs;
use super::measure::{self, Calls};
use super::stack::Stack;
use super::tracker::Tracker;

/// The operator's (static) access key in the emulator.
pub const ACCESS_KEY_ID: &str = "LTAIbench";
/// Its secret.
pub const ACCESS_KEY_SECRET: &str = "bench-secret";
/// Region of every plan and instance.
pub const REGION: &str = "cn-hangzhou";
/// Namespace of the objects.
const NAMESPACE: &str = "bench";
/// The Secret holding the plans' source password.
const PASSWORD_SECRET: &str = "bench-db-password";

/// The kind of object a scenario creates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// BackupPlans.
    BackupPlan,
    /// RdsConnections.
    RdsConnection,
}

impl Kind {
    /// The `--scenario` value.
    pub fn scenario(self) -> &'static str {
        match self {
            Self::BackupPlan => "plans",
            Self::RdsConnection => "connections",
        }
    }

    /// The kind's name.
    pub fn name(self) -> &'static str {
        match self {
            Self::BackupPlan => "BackupPlan",
            Self::RdsConnection => "RdsConnection",
        }
    }

    fn resource(self) -> ApiResource {
        match self {
            Self::BackupPlan => ApiResource::erase::<alicloud_db_operator::crd::BackupPlan>(&()),
            Self::RdsConnection => {
                ApiResource::erase::<alicloud_db_operator::crd::RdsConnection>(&())
            }
        }
    }

    /// The actions each object needs once, with no wait in between beyond the fixed ones.
    pub fn needed_actions(self) -> &'static [&'static str] {
        match self {
            Self::BackupPlan => &["CreateBackupPlan", "ConfigureBackupPlan", "StartBackupPlan"],
            Self::RdsConnection => &[
                "DescribeDBInstanceAttribute",
                "DescribeDBInstanceNetInfo",
                "AllocateInstancePublicConnection",
            ],
        }
    }
}

/// What a scenario creates.
pub struct Load {
    /// The kind.
    pub kind: Kind,
    /// How many objects.
    pub n: usize,
    /// RDS instances to seed.
    pub instances: Vec<String>,
}

impl Load {
    /// The load `args` ask for.
    pub fn new(kind: Kind, args: &BenchArgs) -> Self {
        let n = match kind {
            Kind::BackupPlan => args.plans,
            Kind::RdsConnection => args.connections,
        };
        let instances = match kind {
            Kind::BackupPlan => 0,
            Kind::RdsConnection => args.instances.unwrap_or(n + args.probes),
        };
        Self {
            kind,
            n,
            instances: (0..instances).map(instance_id).collect(),
        }
    }

    /// The `i`th object (`probe` ones are created one at a time after the N).
    fn object(&self, i: usize, probe: bool) -> anyhow::Result<DynamicObject> {
        let name = if probe {
            format!("probe-{i:05}")
        } else {
            format!("bench-{i:05}")
        };
        let resource = self.kind.resource();
        let spec = match self.kind {
            Kind::BackupPlan => json!({
                "region": REGION, "databaseType": "MySQL", "instanceClass": "small",
                "backupMethod": "logical", "payType": "PayAsYouGo",
                "source": {"instanceType": "RDS", "region": REGION, "instanceId": "rm-bench",
                    "userName": "backup",
                    "passwordSecretRef": {"name": PASSWORD_SECRET, "key": "password"}},
                "backupObjects": [{"databaseName": "orders"}],
                "schedule": {"weekdays": ["Monday", "Thursday"], "startTime": "02:30"},
                "retention": {"backupRetentionDays": 30, "infrequentAccessDays": 7,
                    "archiveDays": 14},
                "storage": {"type": "System"}, "deletionPolicy": "Delete",
            }),
            Kind::RdsConnection => {
                let index = if probe { self.n + i } else { i };
                let instance = self
                    .instances
                    .get(index % self.instances.len().max(1))
                    .cloned()
                    .unwrap_or_default();
                json!({
                    "region": REGION, "dbInstanceId": instance,
                    "connectionStringPrefix": format!("{name}-pub"), "port": 3306,
                    "instanceNetworkType": "VPC",
                    "writeConnectionSecretToRef": {"name": format!("{name}-public")},
                })
            }
        };
        Ok(serde_json::from_value(json!({
            "apiVersion": resource.api_version, "kind": resource.kind,
            "metadata": {"name": name, "namespace": NAMESPACE}, "spec": spec,
        }))?)
    }
}

fn instance_id(i: usize) -> String {
    format!("rm-bench{i:06}")
}

/// What one scenario measured.
pub struct Run {
    /// Machine and load when the objects were submitted.
    pub machine_before: String,
    /// Machine and load once all were Ready (or the wait gave up).
    pub machine_after: String,
    /// From the first create to the last create's answer.
    pub last_arrival: Duration,
    /// From the first create until every object was Ready; `None` when the wait gave up.
    pub all_ready: Option<Duration>,
    /// Objects Ready when the wait ended.
    pub ready: usize,
    /// Cloud calls from the first create until all were Ready.
    pub creation_calls: Calls,
    /// Throttled calls in the emulator's call log, and how many calls the log held.
    pub emulator_throttled: (u64, usize),
    /// Per object until all were Ready: writes (resourceVersion bumps after the create) and
    /// status changes, each as (mean, max).
    pub writes: (f64, u32),
    /// See `writes`.
    pub status_writes: (f64, u32),
    /// The steady state, unless skipped.
    pub steady: Option<Steady>,
    /// Seconds from each probe's create to its first write by the operator, and to its first
    /// status.
    pub probe_first_write: Vec<f64>,
    /// See `probe_first_write`.
    pub probe_first_status: Vec<f64>,
    /// Operator memory at the end, KiB: (VmRSS, VmHWM).
    pub memory_end: (u64, u64),
}

/// Steady-state readings.
pub struct Steady {
    /// How long the calls were counted.
    pub window: Duration,
    /// Cloud calls in the window.
    pub calls: Calls,
    /// VmRSS at the end of the window, KiB.
    pub rss_kib: u64,
    /// Highest VmRSS sampled in the window, KiB.
    pub rss_max_kib: u64,
    /// VmHWM at the end of the window, KiB.
    pub hwm_kib: u64,
}

/// Creates the namespace (and the password Secret), submits the objects, waits for Ready, then
/// the steady state and the probes.
pub async fn run(stack: &mut Stack, args: &BenchArgs, load: &Load) -> anyhow::Result<Run> {
    let client = stack.client()?;
    prepare_namespace(&client).await?;
    let resource = load.kind.resource();
    let (tracker, watch) = Tracker::start(client.clone(), NAMESPACE, &resource);
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), NAMESPACE, &resource);
    let objects = (0..load.n)
        .map(|i| load.object(i, false))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let pid = stack.operator_pid().context("no operator pid")?;

    let calls_before = Calls::scrape(&stack.http, &stack.metrics_url).await?;
    let machine_before = measure::machine();
    println!(
        "==> submitting {} {}s ({} creates in flight) — {machine_before}",
        load.n,
        load.kind.name(),
        args.submit_concurrency
    );
    let started = Instant::now();
    let started_ms = crate::demo::now_ms();
    let profile = args
        .profile_apiserver
        .zip(args.keep_logs.clone())
        .map(|(seconds, dir)| tokio::spawn(profile_apiserver(client.clone(), seconds, dir)));
    let arrivals: Vec<anyhow::Result<Duration>> = futures::stream::iter(objects)
        .map(|object| {
            let api = api.clone();
            async move {
                api.create(&PostParams::default(), &object)
                    .await
                    .with_context(|| {
                        format!("create {}", object.metadata.name.unwrap_or_default())
                    })?;
                Ok(started.elapsed())
            }
        })
        .buffer_unordered(args.submit_concurrency.max(1))
        .collect()
        .await;
    let mut last_arrival = Duration::ZERO;
    for arrival in arrivals {
        last_arrival = last_arrival.max(arrival?);
    }
    println!(
        "    all {} submitted in {:.1} s",
        load.n,
        last_arrival.as_secs_f64()
    );

    let names: Vec<String> = (0..load.n).map(|i| format!("bench-{i:05}")).collect();
    let (all_ready, ready) = wait_ready(stack, args, &tracker, &names, started).await?;
    let machine_after = measure::machine();
    let calls_after = Calls::scrape(&stack.http, &stack.metrics_url).await?;
    let creation_calls = calls_after.since(&calls_before);
    let emulator = stack.emulator_state().await?;
    let emulator_throttled = measure::emulator_throttled(&emulator);
    if let Some(profile) = profile {
        match profile.await {
            Ok(Ok(path)) => println!("    kube-apiserver CPU profile: {}", path.display()),
            Ok(Err(e)) => println!("    kube-apiserver CPU profile failed: {e:#}"),
            Err(e) => println!("    kube-apiserver CPU profile failed: {e}"),
        }
    }
    if let Some(keep) = &args.keep_logs {
        // The emulator's call log, for a closer look at the pacing than the 10 s windows.
        let _ = std::fs::create_dir_all(keep);
        let _ = std::fs::write(
            keep.join(format!("emulator-{}.json", load.kind.resource().plural)),
            serde_json::to_vec(&emulator)?,
        );
    }
    let metrics = client
        .request_text(http::Request::get("/metrics").body(Vec::new())?)
        .await
        .unwrap_or_default();
    println!("    API server requests (its /metrics, since it started):");
    for line in measure::apiserver_requests(&metrics, 100.0) {
        println!("      {line}");
    }
    println!("    timeline (emulator's call log):");
    for line in measure::timeline(&emulator, started_ms) {
        println!("      {line}");
    }
    let tracks = tracker.snapshot();
    let named: Vec<_> = names
        .iter()
        .filter_map(|n| tracks.get(n).map(|t| (n, t)))
        .collect();
    let stat = |f: &dyn Fn(&super::tracker::Track) -> u32| {
        let sum: u64 = named.iter().map(|(_, t)| u64::from(f(t))).sum();
        let max = named.iter().map(|(_, t)| f(t)).max().unwrap_or_default();
        (sum as f64 / named.len().max(1) as f64, max)
    };
    if let Some((name, track)) = named.get(named.len() / 2) {
        println!(
            "    writes of {name} in order: {}",
            track.history.join(", ")
        );
    }
    let writes = stat(&|t| t.writes);
    let status_writes = stat(&|t| t.status_writes);
    println!(
        "    cloud calls during creation: {} (throttled {})",
        creation_calls.describe(),
        creation_calls.throttled()
    );

    let steady = if args.steady_periods > 0 && all_ready.is_some() {
        Some(steady_state(stack, args, pid).await?)
    } else {
        None
    };
    let (probe_first_write, probe_first_status) = probes(stack, args, load, &api, &tracker).await?;
    let memory_end = measure::memory_kib(pid)?;
    drop(watch);
    Ok(Run {
        machine_before,
        machine_after,
        last_arrival,
        all_ready,
        ready,
        creation_calls,
        emulator_throttled,
        writes,
        status_writes,
        steady,
        probe_first_write,
        probe_first_status,
        memory_end,
    })
}

async fn prepare_namespace(client: &kube::Client) -> anyhow::Result<()> {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": NAMESPACE}}))?;
    namespaces.create(&PostParams::default(), &ns).await?;
    let secrets: Api<Secret> = Api::namespaced(client.clone(), NAMESPACE);
    let secret: Secret = serde_json::from_value(json!({
        "metadata": {"name": PASSWORD_SECRET}, "stringData": {"password": "bench-password"},
    }))?;
    secrets.create(&PostParams::default(), &secret).await?;
    Ok(())
}

/// Waits until every object in `names` is Ready (progress every 10 s); `None` after the timeout.
async fn wait_ready(
    stack: &mut Stack,
    args: &BenchArgs,
    tracker: &Tracker,
    names: &[String],
    started: Instant,
) -> anyhow::Result<(Option<Duration>, usize)> {
    let mut last_progress = Instant::now();
    loop {
        stack.check_operator()?;
        let (ready, last) = tracker.ready_among(names);
        if ready == names.len() {
            let last = last.unwrap_or(started);
            let took = last.saturating_duration_since(started);
            println!(
                "    all {} Ready {:.1} s after the first create",
                names.len(),
                took.as_secs_f64()
            );
            return Ok((Some(took), names.len()));
        }
        if started.elapsed() > args.timeout {
            println!(
                "    gave up after {:?}: {}/{} Ready; the operator's log ends with:\n{}",
                args.timeout,
                ready,
                names.len(),
                stack.operator_log_tail(20)
            );
            return Ok((None, ready));
        }
        if last_progress.elapsed() >= Duration::from_secs(10) {
            last_progress = Instant::now();
            let calls = Calls::scrape(&stack.http, &stack.metrics_url)
                .await
                .unwrap_or_default();
            let rss = stack
                .operator_pid()
                .and_then(|pid| measure::memory_kib(pid).ok())
                .map_or(0, |(rss, _)| rss);
            println!(
                "    [{:>4.0} s] {}/{} Ready; cloud calls so far {} (throttled {}); operator VmRSS \
                 {:.1} MiB",
                started.elapsed().as_secs_f64(),
                ready,
                names.len(),
                calls.total(),
                calls.throttled(),
                rss as f64 / 1024.0
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Counts cloud calls over `steady_periods` resync periods and samples the operator's memory.
async fn steady_state(stack: &mut Stack, args: &BenchArgs, pid: u32) -> anyhow::Result<Steady> {
    let window = args.resync_period * args.steady_periods;
    println!(
        "==> steady state: counting cloud calls for {} resync periods ({:?})",
        args.steady_periods, window
    );
    let before = Calls::scrape(&stack.http, &stack.metrics_url).await?;
    let end = Instant::now() + window;
    let mut rss_max_kib = 0;
    while Instant::now() < end {
        stack.check_operator()?;
        rss_max_kib = rss_max_kib.max(measure::memory_kib(pid)?.0);
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let after = Calls::scrape(&stack.http, &stack.metrics_url).await?;
    let (rss_kib, hwm_kib) = measure::memory_kib(pid)?;
    let calls = after.since(&before);
    println!(
        "    calls: {}; VmRSS {} KiB (max sampled {rss_max_kib} KiB), VmHWM {hwm_kib} KiB",
        calls.describe(),
        rss_kib
    );
    Ok(Steady {
        window,
        calls,
        rss_kib,
        rss_max_kib: rss_max_kib.max(rss_kib),
        hwm_kib,
    })
}

/// Creates `args.probes` objects one at a time, each once the previous one has its first
/// status: seconds to the first write and to the first status of each.
async fn probes(
    stack: &mut Stack,
    args: &BenchArgs,
    load: &Load,
    api: &Api<DynamicObject>,
    tracker: &Tracker,
) -> anyhow::Result<(Vec<f64>, Vec<f64>)> {
    if args.probes == 0 {
        return Ok((Vec::new(), Vec::new()));
    }
    println!(
        "==> first reconcile: {} new {}s one at a time, while {} exist",
        args.probes,
        load.kind.name(),
        load.n
    );
    let (mut first_write, mut first_status) = (Vec::new(), Vec::new());
    for i in 0..args.probes {
        stack.check_operator()?;
        let object = load.object(i, true)?;
        let name = object.metadata.name.clone().unwrap_or_default();
        let started = Instant::now();
        api.create(&PostParams::default(), &object).await?;
        let deadline = started + Duration::from_secs(60);
        loop {
            let track = tracker.get(&name);
            if let Some(status) = track.as_ref().and_then(|t| t.first_status) {
                let write = track.and_then(|t| t.first_write).unwrap_or(status);
                first_write.push(write.saturating_duration_since(started).as_secs_f64());
                first_status.push(status.saturating_duration_since(started).as_secs_f64());
                break;
            }
            if Instant::now() > deadline {
                println!("    probe {name}: no status within 60 s");
                first_status.push(f64::INFINITY);
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    let p = |v: &[f64], q| measure::percentile(v, q).unwrap_or(f64::NAN);
    println!(
        "    first status p50 {:.3} s, p99 {:.3} s (first write p50 {:.3} s, p99 {:.3} s)",
        p(&first_status, 50.0),
        p(&first_status, 99.0),
        p(&first_write, 50.0),
        p(&first_write, 99.0)
    );
    Ok((first_write, first_status))
}

/// A CPU profile of kube-apiserver over `length`, from 10 s after the first create (when the
/// creation runs at full pace), written to `dir/apiserver-cpu.pprof`.
async fn profile_apiserver(
    client: kube::Client,
    length: Duration,
    dir: std::path::PathBuf,
) -> anyhow::Result<std::path::PathBuf> {
    tokio::time::sleep(Duration::from_secs(10)).await;
    let uri = format!("/debug/pprof/profile?seconds={}", length.as_secs().max(1));
    let response = client
        .send(http::Request::get(uri).body(kube::client::Body::empty())?)
        .await?;
    let status = response.status();
    let bytes = response.into_body().collect_bytes().await?;
    anyhow::ensure!(status.is_success(), "kube-apiserver answered {status}");
    std::fs::create_dir_all(&dir)?;
    let path = dir.join("apiserver-cpu.pprof");
    std::fs::write(&path, &bytes)?;
    Ok(path)
}
