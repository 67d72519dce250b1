//! Alibaba Cloud's official Python SDKs (PyPI `alibabacloud_*`, pinned in
//! `tests/sdk_compat/requirements.txt`) against the emulator: requests signed exactly as the
//! SDKs sign them (V3 `ACS3-HMAC-SHA256`, the SDK default, and V2 HMAC-SHA1; query and form
//! parameters; STS security tokens) must be accepted, and the answers must parse into the SDKs'
//! response models with the documented field names and types.
//!
//! The check itself is `tests/sdk_compat/official_sdk_check.py`; this test starts the emulator
//! in-process and runs the script with the interpreter of the SDK venv, which
//! `bash tests/sdk_compat/setup.sh` creates (CI runs it). A missing venv fails the test.

#[allow(dead_code)]
mod common;

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use alicloud_emulator::Snapshot;
use sha2::{Digest, Sha256};

const REGION: &str = "cn-hangzhou";
const INSTANCE: &str = "rm-sdkcompat01";
const ACCESS_KEY_ID: &str = common::ACCESS_KEY_ID;
const ACCESS_KEY_SECRET: &str = common::ACCESS_KEY_SECRET;
const CONFIGURE_DELAY: Duration = Duration::from_millis(200);
const INSTANCE_BUSY: Duration = Duration::from_millis(200);
/// Short, so the script sees StartBackupPlan's precheck (`init` -> `check_pass` -> `running`).
const PRECHECK: Duration = Duration::from_millis(500);
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(180);

fn sdk_dir() -> PathBuf {
    common::repo_path("tests/sdk_compat")
}

/// `$ALICLOUD_SDK_VENV`, else `${XDG_CACHE_HOME:-$HOME/.cache}/alicloud-db-operator/sdk-venv`
/// (the same rule as setup.sh).
fn venv_dir() -> PathBuf {
    let non_empty = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty());
    if let Some(v) = non_empty("ALICLOUD_SDK_VENV") {
        return PathBuf::from(v);
    }
    let cache = non_empty("XDG_CACHE_HOME").map_or_else(
        || PathBuf::from(non_empty("HOME").expect("HOME is not set")).join(".cache"),
        PathBuf::from,
    );
    cache.join("alicloud-db-operator/sdk-venv")
}

/// The venv's interpreter; panics (never skips) when the venv is missing or stale.
fn venv_python() -> PathBuf {
    let venv = venv_dir();
    let python = venv.join("bin/python");
    let setup = "run `bash tests/sdk_compat/setup.sh` (CI does this in .ci/run)";
    assert!(
        python.exists(),
        "the official-SDK venv is missing ({} not found): {setup}",
        python.display()
    );
    let requirements = std::fs::read(sdk_dir().join("requirements.txt")).unwrap();
    let want = hex::encode(Sha256::digest(&requirements));
    let stamp = std::fs::read_to_string(venv.join(".sdk-compat-stamp")).unwrap_or_default();
    assert_eq!(
        stamp.lines().next().unwrap_or(""),
        want,
        "the official-SDK venv {} does not match tests/sdk_compat/requirements.txt: {setup}",
        venv.display()
    );
    python
}

fn calls(state: &Snapshot) -> Vec<(String, String, String)> {
    state
        .calls
        .iter()
        .map(|c| (c.action.clone(), c.access_key_id.clone(), c.outcome.clone()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn official_python_sdks_work_against_the_emulator() {
    let python = venv_python();
    let emu = common::start_emulator(|c| {
        c.rds_instances = vec![(REGION.into(), INSTANCE.into())];
        c.configure_delay = CONFIGURE_DELAY;
        c.instance_busy = INSTANCE_BUSY;
        c.precheck = PRECHECK;
    })
    .await;

    let started = Instant::now();
    let mut cmd = tokio::process::Command::new(&python);
    cmd.arg(sdk_dir().join("official_sdk_check.py"))
        .args(["--url", &emu.url()])
        .args(["--rds-instance", INSTANCE, "--region", REGION])
        .args(["--styles", "v3,v2"])
        .args([
            "--configure-delay-ms",
            &CONFIGURE_DELAY.as_millis().to_string(),
        ])
        .args(["--precheck-ms", &PRECHECK.as_millis().to_string()])
        // The account goes through the environment, not argv.
        .env("ALICLOUD_ACCESS_KEY_ID", ACCESS_KEY_ID)
        .env("ALICLOUD_ACCESS_KEY_SECRET", ACCESS_KEY_SECRET)
        .env("NO_PROXY", "127.0.0.1,localhost")
        .env("no_proxy", "127.0.0.1,localhost")
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env("PYTHONUNBUFFERED", "1")
        .stdin(Stdio::null())
        .kill_on_drop(true);
    let out = tokio::time::timeout(SCRIPT_TIMEOUT, cmd.output())
        .await
        .unwrap_or_else(|_| {
            panic!("official_sdk_check.py did not finish within {SCRIPT_TIMEOUT:?}")
        })
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", python.display()));
    let elapsed = started.elapsed();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let report = format!(
        "official_sdk_check.py exited with {} after {elapsed:?}\n--- stdout ---\n{stdout}--- stderr ---\n{stderr}",
        out.status
    );
    assert!(out.status.success(), "{report}");
    for line in ["[v3] wire:", "[v2] wire:", "ALL OK:"] {
        assert!(
            stdout.contains(line),
            "missing {line:?} in the output\n{report}"
        );
    }

    // The script really talked to this emulator, and it answered as expected.
    let log = calls(&emu.snapshot());
    let succeeded = |action: &str| {
        log.iter()
            .filter(|(a, k, o)| a == action && k == ACCESS_KEY_ID && o == "Success")
            .count()
    };
    for action in [
        "CreateBackupPlan",
        "ConfigureBackupPlan",
        "StartBackupPlan",
        "DescribeBackupPlanList",
        "ModifyBackupStrategy",
        "StopBackupPlan",
        "ReleaseBackupPlan",
        "AllocateInstancePublicConnection",
        "DescribeDBInstanceNetInfo",
        "DescribeDBInstanceAttribute",
        "ModifyDBInstanceConnectionString",
        "ReleaseInstanceConnection",
    ] {
        assert!(
            succeeded(action) >= 2,
            "expected {action} to succeed once per signing style\n{report}"
        );
    }
    let outcome = |action: &str, outcome: &str| {
        log.iter()
            .filter(|(a, _, o)| a == action && o == outcome)
            .count()
    };
    assert_eq!(outcome("AssumeRoleWithOIDC", "Success"), 2, "{report}");
    // Issue 10: the precheck refused a second Start, a reused ClientToken with other
    // parameters was refused, and ModifyBackupObjects went through, once per style.
    for (action, code) in [
        ("StartBackupPlan", "OperationConflict"),
        ("CreateBackupPlan", "IdempotentParameterMismatch"),
        ("ModifyBackupObjects", "Success"),
    ] {
        assert_eq!(outcome(action, code), 2, "{action} -> {code}\n{report}");
    }
    assert!(
        outcome("DescribeBackupPlanList", "SignatureDoesNotMatch") >= 2,
        "{report}"
    );
    assert!(
        log.iter().any(|(a, k, o)| a == "DescribeBackupPlanList"
            && k.starts_with("STS.")
            && o == "Success"),
        "no DBS call signed with STS credentials succeeded\n{report}"
    );
    // The SDKs ask for JSON themselves (V3 `accept: application/json`, V2 `Format=json`).
    let snapshot = emu.snapshot();
    let xml: Vec<&str> = snapshot
        .calls
        .iter()
        .filter(|c| c.format != "json")
        .map(|c| c.action.as_str())
        .collect();
    assert!(xml.is_empty(), "answered XML to {xml:?}\n{report}");
    // DBS errors went out with their 404, and once per style as HTTP 200 Success:false.
    let unknown_plan: Vec<u16> = snapshot
        .calls_of("ReleaseBackupPlan")
        .filter(|c| c.outcome == "InvalidJobId")
        .map(|c| c.http_status)
        .collect();
    assert_eq!(unknown_plan, [404, 200, 404, 200], "{report}");
    emu.shutdown().await;
    eprintln!("{stdout}official SDK check took {elapsed:?}");
}
