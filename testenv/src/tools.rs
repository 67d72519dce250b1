//! Finding, or installing, the command-line tools the chart and image checks use: `helm` and
//! `crane`, each pinned and built with `go install` through the Go module proxy into a cache
//! folder outside the repository (never committed).

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::Error;

/// A pinned Go tool.
#[derive(Clone, Copy, Debug)]
pub struct GoTool {
    /// Binary name.
    pub name: &'static str,
    /// Go package to install.
    pub package: &'static str,
    /// Module version.
    pub version: &'static str,
    /// Environment variable naming an existing binary to use instead.
    pub env: &'static str,
}

/// Helm 3, the chart's lint, template and install.
pub const HELM: GoTool = GoTool {
    name: "helm",
    package: "helm.sh/helm/v3/cmd/helm",
    version: "v3.22.0",
    env: "ALICLOUD_HELM",
};

/// crane, for building and inspecting the OCI image without a Docker daemon.
pub const CRANE: GoTool = GoTool {
    name: "crane",
    package: "github.com/google/go-containerregistry/cmd/crane",
    version: "v0.22.1",
    env: "ALICLOUD_CRANE",
};

/// Folder of installed tools: `$ALICLOUD_TOOLS_CACHE`, else
/// `$XDG_CACHE_HOME/alicloud-db-operator/tools`, else `~/.cache/...`.
pub fn tools_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("ALICLOUD_TOOLS_CACHE") {
        return PathBuf::from(dir);
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir);
    base.join("alicloud-db-operator").join("tools")
}

/// Path of `helm`, installing it first if needed.
pub fn helm() -> Result<PathBuf, Error> {
    ensure(HELM)
}

/// Path of `crane`, installing it first if needed.
pub fn crane() -> Result<PathBuf, Error> {
    ensure(CRANE)
}

/// The tool's binary: `$<tool.env>` when set, else `<tools_dir>/<name>-<version>/<name>`, built
/// with `go install` under a lock (parallel test binaries install once).
pub fn ensure(tool: GoTool) -> Result<PathBuf, Error> {
    if let Some(p) = std::env::var_os(tool.env).filter(|p| !p.is_empty()) {
        let p = PathBuf::from(p);
        if !is_executable(&p) {
            return Err(Error::Assets(format!(
                "{}={} is not an executable file",
                tool.env,
                p.display()
            )));
        }
        return Ok(p);
    }
    let dir = tools_dir().join(format!("{}-{}", tool.name, tool.version));
    let bin = dir.join(tool.name);
    if is_executable(&bin) {
        return Ok(bin);
    }
    std::fs::create_dir_all(&dir)
        .map_err(|e| Error::Assets(format!("create {}: {e}", dir.display())))?;
    let lock_path = dir.join(".install.lock");
    let lock = std::fs::File::create(&lock_path)
        .map_err(|e| Error::Assets(format!("create {}: {e}", lock_path.display())))?;
    crate::assets::flock(&lock)?;
    if is_executable(&bin) {
        return Ok(bin);
    }
    eprintln!(
        "alicloud-testenv: installing {}@{} into {} (first run only)",
        tool.package,
        tool.version,
        dir.display()
    );
    let output = Command::new("go")
        .args(["install", &format!("{}@{}", tool.package, tool.version)])
        .env("GOBIN", &dir)
        .env("CGO_ENABLED", "0")
        .env("GOTOOLCHAIN", "local")
        .env("GOFLAGS", "-trimpath")
        .output()
        .map_err(|e| {
            Error::Assets(format!(
                "cannot run `go install {}@{}` ({e}): install Go >= 1.26, or set {} to a {} binary",
                tool.package, tool.version, tool.env, tool.name
            ))
        })?;
    if !output.status.success() || !is_executable(&bin) {
        return Err(Error::Assets(format!(
            "`go install {}@{}` failed ({}): {}\nset {} to a {} binary instead",
            tool.package,
            tool.version,
            output.status,
            String::from_utf8_lossy(&output.stderr).trim(),
            tool.env,
            tool.name
        )));
    }
    Ok(bin)
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}
