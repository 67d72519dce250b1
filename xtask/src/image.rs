//! `cargo xtask image`: the operator's container image, built and checked without a container
//! daemon. Both binaries are built statically and packed into one layer at /usr/local/bin,
//! `crane` turns that into an OCI image in an in-memory registry on loopback and saves it as an
//! OCI layout; the layout is checked (config, filesystem, the binaries running from that
//! filesystem as uid 65532) and only then written out as an OCI image archive.
//! `deploy/Dockerfile` builds the same image; a test below keeps the two in step.

mod crane;
mod oci;
mod probe;
mod tar;
mod verify;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{Context as _, bail, ensure};

use self::crane::{Crane, Registry};

/// The operator binary, the image's entrypoint.
const OPERATOR: &str = "alicloud-db-operator";
/// The emulator binary, shipped alongside for demos and end-to-end tests.
const EMULATOR: &str = "alicloud-emulator";
/// Where the binaries live in the image (relative to its root).
const BIN_DIR: &str = "usr/local/bin";
/// The image's user: distroless' `nonroot`, numeric so `runAsNonRoot` can check it.
const USER: &str = "65532:65532";
/// The image's default command (arguments to the entrypoint).
const CMD: &str = "run";
/// The only target the image is built for; a separate `--target` keeps the static build's
/// RUSTFLAGS from invalidating the host build cache.
const TARGET: &str = "x86_64-unknown-linux-gnu";
/// Static linking of glibc; its built-in `files` and `dns` resolvers need no NSS libraries.
const RUSTFLAGS: &str = "-C target-feature=+crt-static";
/// Repository name of the image in the loopback registry.
const REPOSITORY: &str = "alicloud-db-operator";
/// Name the archive gives the image: the Helm chart's default `image.repository`, so a loaded
/// archive is what the chart's default values pull (tag: the chart's appVersion).
const IMAGE_NAME: &str = "ghcr.io/alicloud-db-operator/alicloud-db-operator";
/// `org.opencontainers.image.description`.
const DESCRIPTION: &str =
    "Kubernetes operator for Alibaba Cloud DBS backup plans and RDS public endpoints";
/// Version of the workspace, shared by xtask and both binaries (`version.workspace = true`).
const VERSION: &str = env!("CARGO_PKG_VERSION");
/// mtime of every file in the layer and the archive, for reproducible digests.
const MTIME: u64 = 0;

/// Options of `cargo xtask image`.
#[derive(clap::Args, Debug, Default)]
pub struct ImageArgs {
    /// Where to write the OCI image archive
    /// (default: image/alicloud-db-operator-oci.tar in the cargo target dir).
    #[arg(long)]
    pub output: Option<PathBuf>,
}

/// Builds, checks and saves the image; fails with what differs. The archive is written only
/// once every check has passed.
pub fn run(args: &ImageArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let step = |what: &str| eprintln!("[image {:>4}s] {what}", started.elapsed().as_secs());
    preflight()?;
    let root = crate::workspace_root()
        .canonicalize()
        .context("workspace root")?;
    let target_dir = target_dir(&root)?;
    let image_dir = target_dir.join("image");
    let work = image_dir.join("work");
    // One run at a time per target folder: runs share the work folder, the output and port 53.
    fs::create_dir_all(&image_dir).with_context(|| format!("creating {}", image_dir.display()))?;
    let lock_path = image_dir.join(".lock");
    let lock = fs::File::create(&lock_path)
        .with_context(|| format!("creating {}", lock_path.display()))?;
    if lock.try_lock().is_err() {
        eprintln!(
            "waiting for another `cargo xtask image` ({})",
            lock_path.display()
        );
        lock.lock()
            .with_context(|| format!("locking {}", lock_path.display()))?;
    }
    if work.exists() {
        fs::remove_dir_all(&work).with_context(|| format!("removing {}", work.display()))?;
    }
    fs::create_dir_all(&work).with_context(|| format!("creating {}", work.display()))?;
    let output = args
        .output
        .clone()
        .unwrap_or_else(|| image_dir.join(format!("{REPOSITORY}-oci.tar")));
    // An archive from an earlier run must not outlive a failed one.
    if output.exists() {
        fs::remove_file(&output).with_context(|| format!("removing {}", output.display()))?;
    }

    step("static release build of alicloud-db-operator and alicloud-emulator");
    build(&root, &target_dir)?;
    let release = target_dir.join(TARGET).join("release");
    for binary in [OPERATOR, EMULATOR] {
        verify::assert_static(&release.join(binary))?;
    }

    step("layer tarball");
    let layer = work.join("layer.tar");
    oci::write_layer(&layer, &release)?;

    step("image in a loopback registry (crane)");
    let crane = Crane::pinned()?;
    let registry = crane.serve_registry()?;
    let labels = labels(&root);
    let digest = assemble(&crane, &registry, &layer, &labels)?;
    let layout = work.join("layout");
    crane.run([
        "pull".as_ref(),
        "--format=oci".as_ref(),
        registry.reference(REPOSITORY, "built").as_ref(),
        layout.as_os_str(),
    ])?;
    oci::write_index(&layout, &digest)?;

    step("checking the image as saved");
    check(&crane, &registry, &layout, &digest, &labels, &work).with_context(|| {
        format!(
            "the image failed its checks; files kept in {}",
            work.display()
        )
    })?;
    drop(registry);

    step("OCI archive");
    oci::write_archive(&layout, &output)?;
    let (compressed, unpacked) = (
        oci::dir_size(&layout.join("blobs"))?,
        fs::metadata(&layer)?.len(),
    );
    fs::remove_dir_all(&work).with_context(|| format!("removing {}", work.display()))?;
    step("done");
    println!("image:    {IMAGE_NAME}:{VERSION} (linux/amd64)");
    println!("digest:   {digest}");
    println!(
        "size:     {} compressed (what a node pulls), {} unpacked",
        mib(compressed),
        mib(unpacked)
    );
    println!("archive:  {}", output.display());
    println!(
        "checked:  config (entrypoint, cmd, user {USER}, linux/amd64, labels); filesystem \
         (only the two static binaries, 0:0 0755); --version of both, `run --help`, the emulator \
         serving, the operator resolving a name via DNS and calling out, all as {USER} from the \
         image's filesystem"
    );
    Ok(())
}

/// The layer on an empty OCI base, then entrypoint, cmd, user, platform and labels, tagged
/// `built` in the registry; returns the manifest digest.
fn assemble(
    crane: &Crane,
    registry: &Registry,
    layer: &Path,
    labels: &[(&str, String)],
) -> anyhow::Result<String> {
    let base = registry.reference(REPOSITORY, "layer");
    let built = registry.reference(REPOSITORY, "built");
    crane.run([
        "append".as_ref(),
        "--oci-empty-base".as_ref(),
        "-f".as_ref(),
        layer.as_os_str(),
        "-t".as_ref(),
        base.as_ref(),
    ])?;
    let mut mutate = vec![
        "mutate".to_owned(),
        base,
        format!("--entrypoint={}", verify::entrypoint()),
        format!("--cmd={CMD}"),
        format!("--user={USER}"),
        "--set-platform=linux/amd64".to_owned(),
    ];
    mutate.extend(labels.iter().map(|(k, v)| format!("--label={k}={v}")));
    mutate.extend(["-t".to_owned(), built.clone()]);
    crane.run(&mutate)?;
    Ok(crane.run(["digest", built.as_str()])?.trim().to_owned())
}

/// Pushes the saved layout back (so what is checked is what the archive will hold), then
/// checks manifest, config, filesystem and the binaries running from it.
fn check(
    crane: &Crane,
    registry: &Registry,
    layout: &Path,
    digest: &str,
    labels: &[(&str, String)],
    work: &Path,
) -> anyhow::Result<()> {
    let saved = registry.reference(REPOSITORY, "saved");
    crane.run(["push".as_ref(), layout.as_os_str(), saved.as_ref()])?;
    let saved_digest = crane.run(["digest", saved.as_str()])?.trim().to_owned();
    ensure!(
        saved_digest == digest,
        "the saved layout has digest {saved_digest}, the built image {digest}"
    );
    let manifest = crane.run(["manifest", saved.as_str()])?;
    ensure!(
        manifest.contains(r#""mediaType":"application/vnd.oci.image.manifest.v1+json""#),
        "the image manifest is not an OCI manifest:\n{manifest}"
    );
    verify::config(&crane.run(["config", saved.as_str()])?, labels)?;
    let export = work.join("export.tar");
    crane.run(["export".as_ref(), saved.as_ref(), export.as_os_str()])?;
    let rootfs = work.join("rootfs");
    oci::unpack(&export, &rootfs)?;
    verify::filesystem(&rootfs)?;
    let jail = verify::Jail::new(&rootfs)?;
    verify::binaries_run(&jail, VERSION)?;
    verify::emulator_serves(&jail)?;
    verify::operator_calls_out_by_name(&jail, &work.join("operator-probe.log"))
}

/// The checks run the image's binaries natively and enter its filesystem with chroot.
fn preflight() -> anyhow::Result<()> {
    if !cfg!(all(target_os = "linux", target_arch = "x86_64")) {
        bail!("`cargo xtask image` runs the image's linux/amd64 binaries: run it on x86-64 Linux");
    }
    let status = fs::read_to_string("/proc/self/status").context("reading /proc/self/status")?;
    let euid = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|ids| ids.split_whitespace().nth(1))
        .context("no Uid line in /proc/self/status")?;
    if euid != "0" {
        bail!(
            "`cargo xtask image` must run as root: it checks the image by running its binaries \
             under `chroot --userspec={USER}` and serves DNS on port 53 (CI runs as root)"
        );
    }
    Ok(())
}

/// `$CARGO_TARGET_DIR` (relative to the current folder, as cargo reads it), else `target/`.
fn target_dir(root: &Path) -> anyhow::Result<PathBuf> {
    match std::env::var_os("CARGO_TARGET_DIR").filter(|d| !d.is_empty()) {
        Some(dir) => Ok(std::path::absolute(dir)?),
        None => Ok(root.join("target")),
    }
}

/// The static release build, the same command as deploy/Dockerfile's.
fn build(root: &Path, target_dir: &Path) -> anyhow::Result<()> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = Command::new(cargo)
        .current_dir(root)
        .env("CARGO_TARGET_DIR", target_dir)
        .env("RUSTFLAGS", RUSTFLAGS)
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .args(["build", "--release", "--locked", "--target", TARGET])
        .args(["-p", OPERATOR, "-p", EMULATOR])
        .status()
        .context("running cargo build")?;
    ensure!(
        status.success(),
        "the static release build failed ({status})"
    );
    Ok(())
}

/// OCI labels; `revision` is the git commit when there is one.
fn labels(root: &Path) -> Vec<(&'static str, String)> {
    let mut labels = vec![
        ("org.opencontainers.image.title", REPOSITORY.to_owned()),
        (
            "org.opencontainers.image.description",
            DESCRIPTION.to_owned(),
        ),
        ("org.opencontainers.image.version", VERSION.to_owned()),
        ("org.opencontainers.image.licenses", "Apache-2.0".to_owned()),
    ];
    let head = Command::new("git")
        .current_dir(root)
        .args(["rev-parse", "HEAD"])
        .stderr(Stdio::null())
        .output();
    if let Ok(out) = head
        && out.status.success()
    {
        let revision = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        labels.push(("org.opencontainers.image.revision", revision));
    }
    labels
}

/// A program on PATH, or in the sbin folders a non-root PATH may lack.
fn find_program(name: &str) -> anyhow::Result<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/bin", "/bin"].map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
        .with_context(|| format!("`{name}` not found on PATH (GNU coreutils provides it)"))
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// deploy/Dockerfile cannot be built in CI (no daemon); this keeps it building the image
    /// `cargo xtask image` builds and checks.
    #[test]
    fn dockerfile_builds_the_image_the_xtask_checks() {
        let path = crate::workspace_root().join("deploy/Dockerfile");
        let dockerfile = fs::read_to_string(&path).expect("deploy/Dockerfile");
        let lines: Vec<&str> = dockerfile.lines().map(str::trim).collect();
        let has_line = |expected: &str| lines.contains(&expected);
        for expected in [
            "FROM --platform=linux/amd64 scratch".to_owned(),
            format!("USER {USER}"),
            format!(r#"ENTRYPOINT ["{}"]"#, verify::entrypoint()),
            format!(r#"CMD ["{CMD}"]"#),
            format!("ARG VERSION={VERSION}"),
            format!("COPY --from=build --chmod=0755 /out/{OPERATOR} /out/{EMULATOR} /{BIN_DIR}/"),
        ] {
            assert!(
                has_line(&expected),
                "{} lacks the line {expected:?}",
                path.display()
            );
        }
        for expected in [
            format!("RUSTFLAGS='{RUSTFLAGS}'"),
            format!("--target {TARGET}"),
            format!("-p {OPERATOR} -p {EMULATOR}"),
            "--release --locked".to_owned(),
        ] {
            assert!(
                dockerfile.contains(&expected),
                "{} lacks {expected:?}",
                path.display()
            );
        }
        for (key, value) in labels(&crate::workspace_root()) {
            let value = match key {
                "org.opencontainers.image.version" => "${VERSION}".to_owned(),
                "org.opencontainers.image.revision" => "${REVISION}".to_owned(),
                _ => value,
            };
            let expected = format!(r#"{key}="{value}""#);
            assert!(
                dockerfile.contains(&expected),
                "{} lacks the label {expected}",
                path.display()
            );
        }
    }

    #[test]
    fn the_archive_names_the_image_the_chart_pulls_by_default() {
        let chart = crate::workspace_root().join("charts/alicloud-db-operator");
        let values = fs::read_to_string(chart.join("values.yaml")).expect("the chart's values");
        assert!(
            values.contains(&format!("repository: {IMAGE_NAME}")),
            "values.yaml image.repository is not {IMAGE_NAME}"
        );
        let chart_yaml = fs::read_to_string(chart.join("Chart.yaml")).expect("Chart.yaml");
        assert!(
            chart_yaml.contains(&format!("appVersion: \"{VERSION}\"")),
            "Chart.yaml appVersion is not {VERSION}, the image's tag"
        );
    }
}
