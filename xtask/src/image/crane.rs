//! `crane` (go-containerregistry) as a library of commands, and the in-memory registry it serves
//! on loopback, so an image is assembled and inspected without a container daemon.

use std::ffi::OsStr;
use std::io::{BufRead as _, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use anyhow::{Context as _, anyhow, bail};

/// The `crane` binary.
pub struct Crane {
    bin: PathBuf,
}

impl Crane {
    /// The pinned crane, installed with `go install` on first use.
    pub fn pinned() -> anyhow::Result<Self> {
        let bin = alicloud_testenv::tools::crane().context("finding or installing crane")?;
        Ok(Self { bin })
    }

    /// Runs `crane ARGS` and returns its stdout; fails with its stderr.
    pub fn run<I, S>(&self, args: I) -> anyhow::Result<String>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let args: Vec<_> = args.into_iter().map(|a| a.as_ref().to_owned()).collect();
        let shown = args
            .iter()
            .map(|a| a.to_string_lossy())
            .collect::<Vec<_>>()
            .join(" ");
        let output = Command::new(&self.bin)
            .args(&args)
            .stdin(Stdio::null())
            .output()
            .with_context(|| format!("running {}", self.bin.display()))?;
        if !output.status.success() {
            bail!(
                "`crane {shown}` failed ({}):\n{}",
                output.status,
                String::from_utf8_lossy(&output.stderr).trim()
            );
        }
        String::from_utf8(output.stdout)
            .with_context(|| format!("`crane {shown}` printed non-UTF-8"))
    }

    /// Starts `crane registry serve` on a free loopback port.
    pub fn serve_registry(&self) -> anyhow::Result<Registry> {
        let mut child = Command::new(&self.bin)
            .args(["registry", "serve", "--address", "127.0.0.1:0"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("starting {} registry serve", self.bin.display()))?;
        let stderr = child.stderr.take().context("registry stderr")?;
        let (port_tx, port_rx) = mpsc::channel();
        // Keeps draining the request log so the registry never blocks on a full pipe.
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(port) = line.rsplit_once("serving on port ").map(|(_, p)| p.trim()) {
                    let _ = port_tx.send(port.to_owned());
                }
            }
        });
        // Built before waiting, so that a registry that never reports its port is stopped too.
        let mut registry = Registry {
            child,
            host: String::new(),
        };
        let port = port_rx
            .recv_timeout(Duration::from_secs(20))
            .map_err(|_| anyhow!("`crane registry serve` did not report its port within 20 s"))?;
        registry.host = format!("127.0.0.1:{port}");
        Ok(registry)
    }
}

/// A running in-memory registry, stopped when dropped (also on errors).
pub struct Registry {
    child: Child,
    host: String,
}

impl Registry {
    /// `HOST:PORT/REPOSITORY:TAG` in this registry.
    pub fn reference(&self, repository: &str, tag: &str) -> String {
        format!("{}/{repository}:{tag}", self.host)
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
