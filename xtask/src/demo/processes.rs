//! The demo's child processes (the operator and the emulator): started with their output in a
//! log file, each in its own process group so a Ctrl-C in the terminal reaches only the demo,
//! which then stops them in order (SIGTERM, SIGKILL after a grace period).

use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use anyhow::{Context as _, bail};
use tokio::io::{AsyncBufReadExt as _, BufReader};
use tokio::process::{Child, ChildStdout, Command};

/// How long a child may take to exit after SIGTERM before it is killed.
const GRACE: Duration = Duration::from_secs(10);

/// A running child process whose stderr (and stdout, unless taken) goes to `log`.
pub struct Process {
    name: &'static str,
    child: Child,
    log: PathBuf,
}

impl Process {
    /// Starts `cmd` with stdin closed and stderr appended to `log`; stdout goes to `log` too
    /// unless `capture_stdout`, then it is a pipe read with [`Process::first_line`].
    pub fn spawn(
        name: &'static str,
        mut cmd: Command,
        log: &Path,
        capture_stdout: bool,
    ) -> anyhow::Result<Self> {
        let file =
            std::fs::File::create(log).with_context(|| format!("create {}", log.display()))?;
        let stdout = if capture_stdout {
            Stdio::piped()
        } else {
            Stdio::from(file.try_clone()?)
        };
        let child = cmd
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(file)
            .process_group(0)
            // A backstop for panics: on drop the child is killed rather than orphaned.
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("start the {name}"))?;
        Ok(Self {
            name,
            child,
            log: log.to_path_buf(),
        })
    }

    /// Waits up to `timeout` for the first stdout line that starts with `prefix` and returns
    /// the rest of it; the remaining output is drained so the child never blocks on the pipe.
    pub async fn first_line(&mut self, prefix: &str, timeout: Duration) -> anyhow::Result<String> {
        let stdout: ChildStdout = self.child.stdout.take().context("stdout is not captured")?;
        let mut lines = BufReader::new(stdout).lines();
        let found = tokio::time::timeout(timeout, async {
            while let Some(line) = lines.next_line().await? {
                if let Some(rest) = line.strip_prefix(prefix) {
                    return Ok::<_, std::io::Error>(Some(rest.trim().to_owned()));
                }
            }
            Ok(None)
        })
        .await;
        match found {
            Ok(Ok(Some(rest))) => {
                tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
                Ok(rest)
            }
            Ok(Ok(None) | Err(_)) => bail!(
                "the {} closed its output before printing {prefix:?}; its log:\n{}",
                self.name,
                self.log_tail(30)
            ),
            Err(_) => bail!(
                "the {} printed no {prefix:?} line within {timeout:?}; its log:\n{}",
                self.name,
                self.log_tail(30)
            ),
        }
    }

    /// The process id, while the process has not been reaped.
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// `Some(status)` once the process has exited.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// The last `lines` lines of the log.
    pub fn log_tail(&self, lines: usize) -> String {
        tail(&self.log, lines)
    }

    /// SIGTERM, then SIGKILL if the process is still there after the grace period.
    pub async fn stop(mut self) {
        if self.exited().is_some() {
            return;
        }
        if let Some(pid) = self.child.id() {
            // A child we spawned and have not reaped, so the pid is still its.
            if let Some(pid) = i32::try_from(pid)
                .ok()
                .and_then(rustix::process::Pid::from_raw)
            {
                let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
            }
        }
        if tokio::time::timeout(GRACE, self.child.wait())
            .await
            .is_err()
        {
            eprintln!(
                "the {} ignored SIGTERM for {GRACE:?}; killing it",
                self.name
            );
            let _ = self.child.kill().await;
        }
    }
}

/// The last `lines` lines of a text file (empty if it cannot be read).
pub fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// A port on loopback that was free a moment ago.
pub fn free_port() -> anyhow::Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").context("find a free port")?;
    Ok(listener.local_addr()?.port())
}
