//! Finding, or building, the control-plane binaries: `kube-apiserver`, `etcd`, `kubectl`,
//! `kube-controller-manager`.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::Error;

/// Kubernetes release the harness builds when no `KUBEBUILDER_ASSETS` is given.
pub const KUBERNETES_VERSION: &str = "v1.36.3";

/// The build recipe, embedded so the harness works from any working directory.
const BUILD_SCRIPT: &str = include_str!("../scripts/build-kube-apiserver.sh");

/// Paths of the binaries a control plane runs.
#[derive(Clone, Debug)]
pub struct Assets {
    /// `kube-apiserver`.
    pub kube_apiserver: PathBuf,
    /// `etcd`.
    pub etcd: PathBuf,
    /// `kubectl` of the same release when available, else the one on `PATH`.
    pub kubectl: PathBuf,
    /// `kube-controller-manager` (the namespace and garbage-collector controllers run).
    pub kube_controller_manager: PathBuf,
    /// Where the binaries came from, for messages.
    pub origin: String,
}

/// Folder where built binaries are cached: `$ALICLOUD_TESTENV_CACHE`, else
/// `$XDG_CACHE_HOME/alicloud-db-operator/testenv/<version>`, else `~/.cache/...`.
pub fn cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("ALICLOUD_TESTENV_CACHE") {
        return PathBuf::from(dir).join(KUBERNETES_VERSION);
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir);
    base.join("alicloud-db-operator")
        .join("testenv")
        .join(KUBERNETES_VERSION)
}

// The binaries `build` makes, as named in the cache folder and by the build script.
const KUBE_APISERVER: &str = "kube-apiserver";
const KUBECTL: &str = "kubectl";
const KUBE_CONTROLLER_MANAGER: &str = "kube-controller-manager";

/// Finds the binaries, building the missing ones of kube-apiserver, kubectl and
/// kube-controller-manager into [`cache_dir`] if needed.
///
/// Order: `KUBEBUILDER_ASSETS` (a folder holding `kube-apiserver` and `etcd`, the envtest
/// convention, and optionally `kubectl` and `kube-controller-manager`) → the cache → a build
/// from the `k8s.io/kubernetes` Go module with the machine's Go toolchain. etcd comes from the
/// `etcd-bin-vendored` crate unless `KUBEBUILDER_ASSETS` has one. A `KUBEBUILDER_ASSETS` folder
/// without `kube-controller-manager` (setup-envtest's have none) gets the cached or built one.
pub fn ensure() -> Result<Assets, Error> {
    if let Some(dir) = std::env::var_os("KUBEBUILDER_ASSETS").filter(|d| !d.is_empty()) {
        let dir = PathBuf::from(dir);
        let kube_apiserver = dir.join(KUBE_APISERVER);
        let etcd = dir.join("etcd");
        for p in [&kube_apiserver, &etcd] {
            if !is_executable(p) {
                return Err(Error::Assets(format!(
                    "KUBEBUILDER_ASSETS={} has no executable {}; put kube-apiserver and etcd there, \
                     or unset KUBEBUILDER_ASSETS to let the harness build them",
                    dir.display(),
                    p.file_name().and_then(|n| n.to_str()).unwrap_or("?")
                )));
            }
        }
        let kubectl = Some(dir.join(KUBECTL))
            .filter(|p| is_executable(p))
            .unwrap_or_else(|| KUBECTL.into());
        let local_kcm = dir.join(KUBE_CONTROLLER_MANAGER);
        let (kube_controller_manager, origin) = if is_executable(&local_kcm) {
            (local_kcm, format!("KUBEBUILDER_ASSETS={}", dir.display()))
        } else {
            let cache = cache_dir();
            let kcm = cache.join(KUBE_CONTROLLER_MANAGER);
            if !is_executable(&kcm) {
                build(&cache, &[KUBE_CONTROLLER_MANAGER])?;
            }
            let origin = format!(
                "KUBEBUILDER_ASSETS={}, kube-controller-manager from cache {}",
                dir.display(),
                cache.display()
            );
            (kcm, origin)
        };
        return Ok(Assets {
            kube_apiserver,
            etcd,
            kubectl,
            kube_controller_manager,
            origin,
        });
    }
    let dir = cache_dir();
    let missing: Vec<&str> = [KUBE_APISERVER, KUBECTL, KUBE_CONTROLLER_MANAGER]
        .into_iter()
        .filter(|b| !is_executable(&dir.join(b)))
        .collect();
    if !missing.is_empty() {
        build(&dir, &missing)?;
    }
    Ok(Assets {
        kube_apiserver: dir.join(KUBE_APISERVER),
        etcd: vendored_etcd()?,
        kubectl: dir.join(KUBECTL),
        kube_controller_manager: dir.join(KUBE_CONTROLLER_MANAGER),
        origin: format!("cache {}", dir.display()),
    })
}

/// Builds `bins` (of kube-apiserver, kubectl, kube-controller-manager) at
/// [`KUBERNETES_VERSION`] into `dir`, holding a lock so that parallel test binaries build once;
/// only those still missing once the lock is held are built, the others are left as they are.
fn build(dir: &Path, bins: &[&str]) -> Result<(), Error> {
    std::fs::create_dir_all(dir)
        .map_err(|e| Error::Assets(format!("create {}: {e}", dir.display())))?;
    let lock_path = dir.join(".build.lock");
    let lock = std::fs::File::create(&lock_path)
        .map_err(|e| Error::Assets(format!("create {}: {e}", lock_path.display())))?;
    flock(&lock)?;
    let missing: Vec<&str> = bins
        .iter()
        .copied()
        .filter(|b| !is_executable(&dir.join(b)))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    let names = missing.join(", ");
    let go_ok = Command::new("go")
        .arg("version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !go_ok {
        return Err(Error::Assets(format!(
            "no {names} found and no Go toolchain to build it.\n\
             Either install Go >= 1.26 (the harness then builds {names} {KUBERNETES_VERSION} from the \
             k8s.io/kubernetes module into {}),\n\
             or set KUBEBUILDER_ASSETS to a folder holding kube-apiserver and etcd (e.g. from \
             `setup-envtest use -p path`) and kube-controller-manager.",
            dir.display()
        )));
    }
    let script = dir.join("build-kube-apiserver.sh");
    std::fs::write(&script, BUILD_SCRIPT)
        .map_err(|e| Error::Assets(format!("write {}: {e}", script.display())))?;
    eprintln!(
        "alicloud-testenv: building {names} {KUBERNETES_VERSION} into {} (first run only, several minutes)",
        dir.display()
    );
    let status = Command::new("bash")
        .arg(&script)
        .arg(KUBERNETES_VERSION)
        .arg(dir)
        .args(&missing)
        // Progress goes to stderr: stdout of `cargo xtask testenv` is the assets folder only.
        .stdout(std::process::Stdio::from(std::io::stderr()))
        .status()
        .map_err(|e| Error::Assets(format!("run {}: {e}", script.display())))?;
    if !status.success() {
        return Err(Error::Assets(format!(
            "building {names} failed ({status}); see the output above"
        )));
    }
    Ok(())
}

pub(crate) fn flock(file: &std::fs::File) -> Result<(), Error> {
    // Released when `file` is closed.
    file.lock()
        .map_err(|e| Error::Assets(format!("lock {file:?}: {e}")))
}

#[cfg(all(
    target_os = "linux",
    any(target_arch = "x86_64", target_arch = "aarch64")
))]
fn vendored_etcd() -> Result<PathBuf, Error> {
    etcd_bin_vendored::etcd_bin_path()
        .map(Path::to_path_buf)
        .map_err(|e| Error::Assets(format!("etcd-bin-vendored: {e}")))
}

#[cfg(not(all(
    target_os = "linux",
    any(target_arch = "x86_64", target_arch = "aarch64")
)))]
fn vendored_etcd() -> Result<PathBuf, Error> {
    Err(Error::Assets(
        "no vendored etcd for this platform; set KUBEBUILDER_ASSETS".into(),
    ))
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}
