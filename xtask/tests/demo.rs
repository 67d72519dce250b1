//! `cargo xtask demo`, run as a newcomer runs it: it reaches Ready, shows what it promises,
//! releases what the operator created, and leaves no process or folder behind — also when
//! interrupted with Ctrl-C (SIGINT) halfway.
//!
//! Each run gets its own `TMPDIR`. Every process the demo starts inherits it, and every folder
//! it makes lives in it, so "nothing left behind" is checked exactly: no live process has that
//! `TMPDIR` in its environment, and the folder is empty — whatever else runs on the machine.

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use rustix::process::Signal;

const XTASK: &str = env!("CARGO_BIN_EXE_xtask");
/// Covers building the operator and the emulator (cached by the test build, so usually
/// seconds) and, on a machine that never ran the tests, building kube-apiserver.
const RUN_TIMEOUT: Duration = Duration::from_secs(20 * 60);

/// A fresh, empty folder used as the demo's `TMPDIR`, removed at the end of the test.
struct TestTmp(PathBuf);

impl TestTmp {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("xtask-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create the test's TMPDIR");
        Self(dir)
    }

    /// The demo, with this folder as its `TMPDIR` and its output captured.
    fn demo(&self) -> Child {
        Command::new(XTASK)
            .arg("demo")
            .env("TMPDIR", &self.0)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start `xtask demo`")
    }

    /// Fails the test with whatever the demo left behind.
    fn assert_nothing_left(&self) {
        let processes = processes_with_tmpdir(&self.0);
        assert!(
            processes.is_empty(),
            "processes the demo started are still running:\n{}",
            processes.join("\n")
        );
        let entries: Vec<_> = std::fs::read_dir(&self.0)
            .expect("read the test's TMPDIR")
            .filter_map(|e| e.ok().map(|e| e.path().display().to_string()))
            .collect();
        assert!(
            entries.is_empty(),
            "the demo left folders behind: {entries:?}"
        );
    }
}

impl Drop for TestTmp {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `pid cmdline` of every live process whose environment holds `TMPDIR=<dir>`.
fn processes_with_tmpdir(dir: &Path) -> Vec<String> {
    let wanted = format!("TMPDIR={}", dir.display());
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").expect("read /proc").flatten() {
        let path = entry.path();
        let Ok(environ) = std::fs::read(path.join("environ")) else {
            continue;
        };
        if environ.split(|b| *b == 0).any(|v| v == wanted.as_bytes()) {
            let cmdline = std::fs::read(path.join("cmdline")).unwrap_or_default();
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            let pid = entry.file_name().to_string_lossy().into_owned();
            // A zombie (exited, not yet reaped) has an empty cmdline and no longer runs.
            if !cmdline.is_empty() {
                found.push(format!("{pid} {cmdline}"));
            }
        }
    }
    found
}

/// Waits for the child until `deadline`; kills it (SIGTERM, so it still cleans up) if late.
fn wait_until(child: &mut Child, timeout: Duration) -> ExitStatus {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait().expect("wait for the demo") {
            return status;
        }
        if Instant::now() > deadline {
            signal(child, Signal::TERM);
            let status = child.wait().expect("wait for the demo");
            panic!("the demo did not finish within {timeout:?} ({status} after SIGTERM)");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn signal(child: &Child, signal: Signal) {
    // A child this test spawned and has not reaped: the pid is still its.
    rustix::process::kill_process(rustix::process::Pid::from_child(child), signal)
        .expect("signal the demo");
}

/// Reads a pipe to the end on a thread, sending each line (also to the test's output).
fn lines_of(pipe: impl std::io::Read + Send + 'static) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(pipe).lines().map_while(Result::ok) {
            println!("demo| {line}");
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

#[test]
fn demo_reaches_ready_releases_what_it_created_and_leaves_nothing_behind() {
    let tmp = TestTmp::new("demo");
    let mut child = tmp.demo();
    let lines = lines_of(child.stdout.take().expect("stdout is piped"));
    let stderr = lines_of(child.stderr.take().expect("stderr is piped"));
    let status = wait_until(&mut child, RUN_TIMEOUT);
    let out = lines.iter().collect::<Vec<_>>().join("\n");
    let err = stderr.iter().collect::<Vec<_>>().join("\n");
    assert!(status.success(), "demo failed ({status}):\n{out}\n{err}");

    for expected in [
        "3/3 Ready",
        "kubectl get alicloud -A",
        "backupplan.db.alicloud.dev/orders-db",
        "rdsconnection.db.alicloud.dev/orders-db-public",
        "host      orders-db-pub.mysql.rds.aliyuncs.com",
        "ReleaseBackupPlan                  -> Success",
        "ReleaseInstanceConnection          -> Success",
        "deletionPolicy Retain",
        "cleaned up: operator, emulator, etcd + kube-apiserver",
    ] {
        assert!(out.contains(expected), "no {expected:?} in:\n{out}");
    }
    tmp.assert_nothing_left();
}

#[test]
fn ctrl_c_while_waiting_for_ready_stops_everything_it_started() {
    let tmp = TestTmp::new("demo-ctrl-c");
    let mut child = tmp.demo();
    let lines = lines_of(child.stdout.take().expect("stdout is piped"));
    let stderr = lines_of(child.stderr.take().expect("stderr is piped"));
    let deadline = Instant::now() + RUN_TIMEOUT;
    let mut seen = Vec::new();
    loop {
        match lines.recv_timeout(Duration::from_secs(1)) {
            Ok(line) => {
                let waiting = line.contains("Waiting for every object to be Ready");
                seen.push(line);
                if waiting {
                    break;
                }
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                let status = child.wait().expect("wait for the demo");
                let err: Vec<String> = stderr.try_iter().collect();
                panic!(
                    "the demo ended ({status}) before waiting for Ready:\n{}\n{}",
                    seen.join("\n"),
                    err.join("\n")
                );
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
        }
        if Instant::now() > deadline {
            signal(&child, Signal::TERM);
            let _ = child.wait();
            panic!(
                "the demo never started waiting for Ready:\n{}",
                seen.join("\n")
            );
        }
    }
    assert!(
        !processes_with_tmpdir(&tmp.0).is_empty(),
        "the demo runs processes while it waits"
    );

    signal(&child, Signal::INT);
    let interrupted = Instant::now();
    let status = wait_until(&mut child, Duration::from_secs(60));
    let out: Vec<String> = seen.into_iter().chain(lines.iter()).collect();
    let out = out.join("\n");
    assert_eq!(status.code(), Some(130), "exit status after SIGINT:\n{out}");
    assert!(
        interrupted.elapsed() < Duration::from_secs(45),
        "cleaning up took {:?}",
        interrupted.elapsed()
    );
    assert!(
        out.contains("SIGINT: stopping everything the demo started"),
        "{out}"
    );
    assert!(out.contains("cleaned up: operator, emulator"), "{out}");
    tmp.assert_nothing_left();
}
