//! A real control plane for tests and tools: etcd and kube-apiserver on loopback, TLS with an
//! admin client certificate, a kubeconfig, this project's CRDs installed and discoverable, and
//! kube-controller-manager running the namespace and garbage-collector controllers (so deleting
//! a namespace empties and removes it, and ownerReferences are honoured).
//!
//! Integration tests call [`shared`] (one control plane per test binary, torn down when the
//! binary exits, even after a panic); `cargo xtask testenv up` uses [`ControlPlane::start`].

mod assets;
mod pki;
pub mod tools;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use base64::Engine;
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::runtime::wait::{await_condition, conditions};
use serde::Deserialize;

pub use assets::{Assets, KUBERNETES_VERSION, cache_dir, ensure as ensure_assets};

/// Why a control plane could not be had.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The binaries are missing and cannot be built.
    #[error("control-plane binaries: {0}")]
    Assets(String),
    /// A process did not start or become ready.
    #[error("starting the control plane: {0}")]
    Start(String),
    /// A call to the new API server failed.
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
}

/// What to start.
#[derive(Clone, Debug)]
pub struct Options {
    /// Folder of CRD YAML files to install (every `*.yaml`); `None` installs nothing.
    pub crds_dir: Option<PathBuf>,
    /// How long etcd + kube-apiserver may take to become ready (and, again,
    /// kube-controller-manager).
    pub ready_timeout: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            crds_dir: Some(workspace_crds_dir()),
            ready_timeout: Duration::from_secs(120),
        }
    }
}

/// `crds/` of this workspace.
pub fn workspace_crds_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("crds")
}

/// The controllers kube-controller-manager runs: namespace deletion and ownerReference garbage
/// collection. No scheduler or kubelet runs, so nothing else would have work to do, and the
/// service-account controllers would need credentials the harness does not hand out.
pub const KUBE_CONTROLLER_MANAGER_CONTROLLERS: &str =
    "namespace-controller,garbage-collector-controller";

/// Names of the processes, in start order (the order of [`ControlPlane::pids`]).
const PROCESS_NAMES: [&str; 3] = ["etcd", "kube-apiserver", "kube-controller-manager"];

/// A running etcd + kube-apiserver + kube-controller-manager. Dropping it stops all three and
/// removes its folder.
pub struct ControlPlane {
    dir: PathBuf,
    kubeconfig: PathBuf,
    assets: Assets,
    server: String,
    children: Vec<Child>,
    keep_dir: bool,
    /// kube-apiserver's command line, to start it again the same way.
    apiserver_args: Vec<std::ffi::OsString>,
}

impl ControlPlane {
    /// Starts a control plane and installs the CRDs; returns once the API server is ready, the
    /// CRDs are Established and discoverable, and kube-controller-manager is healthy.
    pub async fn start(opts: Options) -> Result<Self, Error> {
        let assets = tokio::task::spawn_blocking(assets::ensure)
            .await
            .map_err(|e| Error::Start(e.to_string()))??;
        let dir = make_temp_dir()?;
        let mut plane = ControlPlane {
            kubeconfig: dir.join("kubeconfig"),
            dir,
            assets,
            server: String::new(),
            children: Vec::new(),
            keep_dir: std::env::var_os("ALICLOUD_TESTENV_KEEP").is_some(),
            apiserver_args: Vec::new(),
        };
        // On any error below, `plane` is dropped and kills what it started.
        plane.boot(&opts).await?;
        Ok(plane)
    }

    async fn boot(&mut self, opts: &Options) -> Result<(), Error> {
        let pki = pki::generate(&self.dir.join("pki"))?;
        let etcd_port = free_port()?;
        let peer_port = free_port()?;
        let api_port = free_port()?;
        let etcd_log = log_file(&self.dir, "etcd.log")?;
        let etcd = Command::new(&self.assets.etcd)
            .args(["--name", "testenv", "--data-dir"])
            .arg(self.dir.join("etcd"))
            .arg(format!("--listen-client-urls=http://127.0.0.1:{etcd_port}"))
            .arg(format!(
                "--advertise-client-urls=http://127.0.0.1:{etcd_port}"
            ))
            .arg(format!("--listen-peer-urls=http://127.0.0.1:{peer_port}"))
            .arg(format!(
                "--initial-advertise-peer-urls=http://127.0.0.1:{peer_port}"
            ))
            .arg(format!(
                "--initial-cluster=testenv=http://127.0.0.1:{peer_port}"
            ))
            .args(["--unsafe-no-fsync", "--log-level", "warn"])
            .stdin(Stdio::null())
            .stdout(
                etcd_log
                    .try_clone()
                    .map_err(|e| Error::Start(e.to_string()))?,
            )
            .stderr(etcd_log)
            .spawn()
            .map_err(|e| Error::Start(format!("spawn {}: {e}", self.assets.etcd.display())))?;
        self.children.push(etcd);

        let mut kas = Command::new(&self.assets.kube_apiserver);
        kas.arg(format!("--etcd-servers=http://127.0.0.1:{etcd_port}"))
            .arg("--bind-address=127.0.0.1")
            .arg(format!("--secure-port={api_port}"))
            .arg(format!("--cert-dir={}", self.dir.join("kas").display()))
            .arg(format!("--tls-cert-file={}", pki.server_crt.display()))
            .arg(format!(
                "--tls-private-key-file={}",
                pki.server_key.display()
            ))
            .arg(format!("--client-ca-file={}", pki.ca_crt.display()))
            .arg("--service-cluster-ip-range=10.0.0.0/24")
            .arg(format!(
                "--service-account-issuer=https://127.0.0.1:{api_port}"
            ))
            .arg(format!(
                "--service-account-key-file={}",
                pki.sa_pub.display()
            ))
            .arg(format!(
                "--service-account-signing-key-file={}",
                pki.sa_key.display()
            ))
            .arg("--authorization-mode=RBAC")
            .arg("--allow-privileged=true")
            .arg("--disable-admission-plugins=ServiceAccount")
            .arg("--v=1");
        if !has_default_route() {
            kas.arg("--advertise-address=127.0.0.1")
                .arg("--endpoint-reconciler-type=none");
        }
        self.apiserver_args = kas.get_args().map(ToOwned::to_owned).collect();
        let kas = self.spawn_apiserver()?;
        self.children.push(kas);

        self.server = format!("https://127.0.0.1:{api_port}");
        write_kubeconfig(&self.kubeconfig, &self.server, &pki)?;
        self.wait_ready(opts.ready_timeout).await?;
        if let Some(crds) = &opts.crds_dir {
            self.install_crds(crds).await?;
        }
        // After the CRDs, so that the garbage collector's first discovery already watches them
        // (it rediscovers every 30 s for CRDs installed later).
        self.start_controller_manager(&pki, opts.ready_timeout)
            .await?;
        Ok(())
    }

    /// Starts kube-apiserver with [`ControlPlane::apiserver_args`], its output appended to
    /// `kube-apiserver.log`.
    fn spawn_apiserver(&self) -> Result<Child, Error> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("kube-apiserver.log"))
            .map_err(|e| Error::Start(format!("open kube-apiserver.log: {e}")))?;
        Command::new(&self.assets.kube_apiserver)
            .args(&self.apiserver_args)
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(|e| Error::Start(e.to_string()))?)
            .stderr(log)
            .spawn()
            .map_err(|e| {
                Error::Start(format!(
                    "spawn {}: {e}",
                    self.assets.kube_apiserver.display()
                ))
            })
    }

    /// Restarts kube-apiserver as an upgrade or a crash of a control-plane node would: stops it
    /// (SIGTERM, SIGKILL after 10 s), leaves the API unreachable for `down_for`, then starts it
    /// again with the same flags: the same etcd (every object and resource version kept), the
    /// same address and certificates, so clients reconnect with what they had. Returns once it
    /// is ready again. etcd and kube-controller-manager keep running.
    ///
    /// The watchdog of [`shared`] knows the first kube-apiserver's pid only: restart the API
    /// server of a control plane of your own ([`ControlPlane::start`]), which its drop stops.
    pub async fn restart_apiserver(&mut self, down_for: Duration) -> Result<(), Error> {
        let index = PROCESS_NAMES
            .iter()
            .position(|n| *n == "kube-apiserver")
            .unwrap_or(1);
        let Some(old) = self.children.get_mut(index) else {
            return Err(Error::Start("kube-apiserver is not running".into()));
        };
        terminate(old);
        tokio::time::sleep(down_for).await;
        let fresh = self.spawn_apiserver()?;
        self.children[index] = fresh;
        self.wait_ready(Duration::from_secs(120)).await
    }

    async fn wait_ready(&mut self, timeout: Duration) -> Result<(), Error> {
        let deadline = Instant::now() + timeout;
        let client = self.client().await;
        loop {
            self.check_running()?;
            let ready = client
                .request_text(
                    http::Request::get("/readyz")
                        .body(Vec::new())
                        .map_err(|e| Error::Start(e.to_string()))?,
                )
                .await
                .is_ok_and(|body| body.trim() == "ok");
            if ready {
                let ns: Api<Namespace> = Api::all(client.clone());
                if ns.get_opt("default").await.ok().flatten().is_some() {
                    return Ok(());
                }
            }
            if Instant::now() > deadline {
                return Err(Error::Start(format!(
                    "kube-apiserver not ready after {timeout:?}; log tail:\n{}",
                    tail(&self.dir.join("kube-apiserver.log"))
                )));
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// An error naming the first started process that has exited, with its log tail.
    fn check_running(&mut self) -> Result<(), Error> {
        for (child, name) in self.children.iter_mut().zip(PROCESS_NAMES) {
            if let Ok(Some(status)) = child.try_wait() {
                return Err(Error::Start(format!(
                    "{name} exited with {status}; log tail:\n{}",
                    tail(&self.dir.join(format!("{name}.log")))
                )));
            }
        }
        Ok(())
    }

    /// Starts kube-controller-manager with the admin client certificate (its own kubeconfig
    /// file), the controllers of [`KUBE_CONTROLLER_MANAGER_CONTROLLERS`], no leader election and
    /// no service-account credentials, serving `/healthz` on a free loopback port; returns once
    /// `/healthz` answers `ok`.
    async fn start_controller_manager(
        &mut self,
        pki: &pki::Pki,
        timeout: Duration,
    ) -> Result<(), Error> {
        let kubeconfig = self.dir.join("kube-controller-manager.kubeconfig");
        write_kubeconfig(&kubeconfig, &self.server, pki)?;
        let port = free_port()?;
        let log = log_file(&self.dir, "kube-controller-manager.log")?;
        let kcm = Command::new(&self.assets.kube_controller_manager)
            .arg(format!("--kubeconfig={}", kubeconfig.display()))
            .arg(format!(
                "--controllers={KUBE_CONTROLLER_MANAGER_CONTROLLERS}"
            ))
            .arg("--leader-elect=false")
            .arg("--use-service-account-credentials=false")
            .arg("--bind-address=127.0.0.1")
            .arg(format!("--secure-port={port}"))
            .arg(format!("--cert-dir={}", self.dir.join("kcm").display()))
            .arg("--v=2")
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(|e| Error::Start(e.to_string()))?)
            .stderr(log)
            .spawn()
            .map_err(|e| {
                Error::Start(format!(
                    "spawn {}: {e}",
                    self.assets.kube_controller_manager.display()
                ))
            })?;
        self.children.push(kcm);

        // Its serving certificate is self-signed; /healthz needs no credentials.
        let mut config = kube::Config::new(
            format!("https://127.0.0.1:{port}")
                .parse()
                .map_err(|e| Error::Start(format!("kube-controller-manager URL: {e}")))?,
        );
        config.accept_invalid_certs = true;
        config.connect_timeout = Some(Duration::from_secs(2));
        config.read_timeout = Some(Duration::from_secs(5));
        let client = kube::Client::try_from(config)?;
        let deadline = Instant::now() + timeout;
        loop {
            self.check_running()?;
            let healthy = client
                .request_text(
                    http::Request::get("/healthz")
                        .body(Vec::new())
                        .map_err(|e| Error::Start(e.to_string()))?,
                )
                .await
                .is_ok_and(|body| body.trim() == "ok");
            if healthy {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(Error::Start(format!(
                    "kube-controller-manager not healthy after {timeout:?}; log tail:\n{}",
                    tail(&self.dir.join("kube-controller-manager.log"))
                )));
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// Applies every `*.yaml` CRD in `dir` and waits until each is Established and its
    /// resources appear in discovery.
    pub async fn install_crds(&self, dir: &Path) -> Result<(), Error> {
        let client = self.client().await;
        let api: Api<CustomResourceDefinition> = Api::all(client.clone());
        let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(|e| Error::Start(format!("read {}: {e}", dir.display())))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
            .collect();
        entries.sort();
        let mut installed = Vec::new();
        for path in entries {
            let text = std::fs::read_to_string(&path)
                .map_err(|e| Error::Start(format!("read {}: {e}", path.display())))?;
            for doc in serde_yaml::Deserializer::from_str(&text) {
                let value = serde_json::Value::deserialize(doc)
                    .map_err(|e| Error::Start(format!("{}: {e}", path.display())))?;
                if value.is_null() {
                    continue;
                }
                let crd: CustomResourceDefinition = serde_json::from_value(value)
                    .map_err(|e| Error::Start(format!("{}: {e}", path.display())))?;
                let name = crd.metadata.name.clone().unwrap_or_default();
                api.patch(
                    &name,
                    &PatchParams::apply("alicloud-testenv").force(),
                    &Patch::Apply(&crd),
                )
                .await?;
                installed.push(crd);
            }
        }
        for crd in &installed {
            let name = crd.metadata.name.clone().unwrap_or_default();
            tokio::time::timeout(
                Duration::from_secs(60),
                await_condition(api.clone(), &name, conditions::is_crd_established()),
            )
            .await
            .map_err(|_| Error::Start(format!("CRD {name} not Established after 60 s")))?
            .map_err(|e| Error::Start(format!("waiting for CRD {name}: {e}")))?;
            wait_discoverable(&client, crd).await?;
        }
        Ok(())
    }

    /// The folder holding the PKI, data, logs and kubeconfig; removed on drop.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Path of the admin kubeconfig.
    pub fn kubeconfig_path(&self) -> &Path {
        &self.kubeconfig
    }

    /// URL of the API server.
    pub fn server_url(&self) -> &str {
        &self.server
    }

    /// The binaries this control plane runs.
    pub fn assets(&self) -> &Assets {
        &self.assets
    }

    /// A new client for the calling runtime, authenticated as the admin.
    pub async fn client(&self) -> kube::Client {
        kube::Client::try_from(self.config().await).expect("a client from the harness kubeconfig")
    }

    /// The configuration of an admin client of the control plane (to build a client with
    /// extra layers).
    pub async fn config(&self) -> kube::Config {
        let kubeconfig =
            Kubeconfig::read_from(&self.kubeconfig).expect("the harness wrote a valid kubeconfig");
        let mut config =
            kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
                .await
                .expect("the harness wrote a usable kubeconfig");
        config.read_timeout = Some(Duration::from_secs(60));
        config
    }

    /// Creates a fresh namespace named `<prefix>-<random>` and returns its name.
    pub async fn create_namespace(&self, prefix: &str) -> String {
        let api: Api<Namespace> = Api::all(self.client().await);
        let ns = Namespace {
            metadata: kube::api::ObjectMeta {
                generate_name: Some(format!("{prefix}-")),
                ..Default::default()
            },
            ..Default::default()
        };
        api.create(&PostParams::default(), &ns)
            .await
            .expect("create a test namespace")
            .metadata
            .name
            .expect("the API server names generated namespaces")
    }

    /// `kubectl` with `KUBECONFIG` pointing at this control plane.
    pub fn kubectl(&self) -> Command {
        let mut cmd = Command::new(&self.assets.kubectl);
        cmd.env("KUBECONFIG", &self.kubeconfig);
        cmd
    }

    /// Stops the processes (SIGTERM, then SIGKILL after 10 s) and removes the folder.
    fn stop(&mut self) {
        for child in self.children.iter_mut().rev() {
            terminate(child);
        }
        self.children.clear();
        if !self.keep_dir {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }

    /// Process ids of etcd, kube-apiserver and kube-controller-manager, in that order.
    pub fn pids(&self) -> Vec<u32> {
        self.children.iter().map(Child::id).collect()
    }
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The control plane of this test binary, started on first use with the workspace CRDs.
///
/// Statics are never dropped, so a watchdog process stops etcd, kube-apiserver and
/// kube-controller-manager and removes the folder as soon as this process is gone, however it
/// ends (success, panic, abort, kill).
/// Panics with the reason when no control plane can be had: tests never skip silently.
pub fn shared() -> &'static ControlPlane {
    static PLANE: OnceLock<ControlPlane> = OnceLock::new();
    PLANE.get_or_init(|| {
        let started = std::thread::spawn(|| {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| Error::Start(e.to_string()))?;
            rt.block_on(ControlPlane::start(Options::default()))
        })
        .join()
        .unwrap_or_else(|_| Err(Error::Start("the start-up thread panicked".into())));
        let plane = match started {
            Ok(p) => p,
            Err(e) => panic!("no control plane for the tests: {e}"),
        };
        spawn_watchdog(&plane.pids(), &plane.dir, plane.keep_dir);
        announce(&plane);
        plane
    })
}

/// Writes which control plane the tests run against to stderr, past the test harness's output
/// capture, so every `cargo test` run shows the real kube-apiserver version.
fn announce(plane: &ControlPlane) {
    use std::io::Write as _;
    let first_line = |bin: &Path| {
        std::process::Command::new(bin)
            .arg("--version")
            .output()
            .map_or_else(
                |e| format!("unknown ({e})"),
                |o| {
                    String::from_utf8_lossy(&o.stdout)
                        .lines()
                        .next()
                        .unwrap_or("")
                        .trim()
                        .to_owned()
                },
            )
    };
    let line = format!(
        "alicloud-testenv: kube-apiserver {} + {} + kube-controller-manager {} at {} (binaries: {})\n",
        first_line(&plane.assets.kube_apiserver),
        first_line(&plane.assets.etcd),
        first_line(&plane.assets.kube_controller_manager),
        plane.server,
        plane.assets.origin
    );
    let _ = std::io::stderr().lock().write_all(line.as_bytes());
}

fn spawn_watchdog(pids: &[u32], dir: &Path, keep_dir: bool) {
    let pids: Vec<String> = pids.iter().map(u32::to_string).collect();
    let pids = pids.join(" ");
    let rm = if keep_dir {
        String::new()
    } else {
        format!("rm -rf '{}'", dir.display())
    };
    let script = format!(
        "trap '' INT TERM HUP; while kill -0 {parent} 2>/dev/null; do sleep 0.5; done; \
         kill -TERM {pids} 2>/dev/null; i=0; while [ $i -lt 20 ] && kill -0 {pids} 2>/dev/null; do sleep 0.5; i=$((i+1)); done; \
         kill -KILL {pids} 2>/dev/null; {rm}",
        parent = std::process::id()
    );
    let spawned = Command::new("sh")
        .arg("-c")
        .arg(script)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
    if let Err(e) = spawned {
        eprintln!("alicloud-testenv: could not start the cleanup watchdog: {e}");
    }
}

fn terminate(child: &mut Child) {
    // Our own child, not reaped yet: the pid is still its.
    let _ = rustix::process::kill_process(
        rustix::process::Pid::from_child(child),
        rustix::process::Signal::TERM,
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
}

async fn wait_discoverable(
    client: &kube::Client,
    crd: &CustomResourceDefinition,
) -> Result<(), Error> {
    let group = &crd.spec.group;
    let plural = &crd.spec.names.plural;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        for v in crd.spec.versions.iter().filter(|v| v.served) {
            let found = client
                .list_api_group_resources(&format!("{group}/{}", v.name))
                .await
                .is_ok_and(|list| list.resources.iter().any(|r| &r.name == plural));
            if found {
                return Ok(());
            }
        }
        if Instant::now() > deadline {
            return Err(Error::Start(format!(
                "{plural}.{group} not in discovery after 30 s"
            )));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn write_kubeconfig(path: &Path, server: &str, pki: &pki::Pki) -> Result<(), Error> {
    let b64 = |p: &Path| -> Result<String, Error> {
        let bytes =
            std::fs::read(p).map_err(|e| Error::Start(format!("read {}: {e}", p.display())))?;
        Ok(base64::engine::general_purpose::STANDARD.encode(bytes))
    };
    let text = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: testenv\n  cluster:\n    server: {server}\n    certificate-authority-data: {ca}\n\
         users:\n- name: testenv-admin\n  user:\n    client-certificate-data: {crt}\n    client-key-data: {key}\n\
         contexts:\n- name: testenv\n  context:\n    cluster: testenv\n    user: testenv-admin\n    namespace: default\n\
         current-context: testenv\n",
        ca = b64(&pki.ca_crt)?,
        crt = b64(&pki.admin_crt)?,
        key = b64(&pki.admin_key)?,
    );
    std::fs::write(path, text).map_err(|e| Error::Start(format!("write {}: {e}", path.display())))
}

fn make_temp_dir() -> Result<PathBuf, Error> {
    let base = std::env::temp_dir();
    for _ in 0..16 {
        let n: u64 = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or_default();
        let dir = base.join(format!("alicloud-testenv-{}-{:x}", std::process::id(), n));
        if std::fs::create_dir(&dir).is_ok() {
            return Ok(dir);
        }
    }
    Err(Error::Start(format!(
        "could not create a folder under {}",
        base.display()
    )))
}

fn log_file(dir: &Path, name: &str) -> Result<std::fs::File, Error> {
    std::fs::File::create(dir.join(name)).map_err(|e| Error::Start(format!("create {name}: {e}")))
}

fn free_port() -> Result<u16, Error> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")
        .map_err(|e| Error::Start(format!("find a free port: {e}")))?;
    listener
        .local_addr()
        .map(|a| a.port())
        .map_err(|e| Error::Start(e.to_string()))
}

fn has_default_route() -> bool {
    std::fs::read_to_string("/proc/net/route").map_or(true, |t| {
        t.lines()
            .skip(1)
            .any(|l| l.split_whitespace().nth(1) == Some("00000000"))
    })
}

fn tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}
