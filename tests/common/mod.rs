//! The integration tests' one harness. A test that needs a cluster builds a [`World`]: a
//! namespace on the shared control plane with the samples' credentials and password Secrets, an
//! emulator, and either the controllers in-process or the operator binary as a child process.
//! Polling goes through [`eventually`]; the emulator's inventory is read typed
//! ([`alicloud_emulator::Snapshot`]).
//!
//! Every use of the operator library's controller API is in `world.rs`.
//!
//! Include it with `#[allow(dead_code)] mod common;`: each test binary uses part of it.

pub mod cluster;
pub mod emulator;
pub mod objects;
pub mod operator;
pub mod requests;
pub mod world;

use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

// Each test binary uses part of these.
#[allow(unused_imports)]
pub use self::{
    cluster::{
        apply_examples, delete_samples, kubectl, ready_states, samples_ready, wait_examples_ready,
    },
    emulator::{
        admin, calls, clear_faults, fail_always, fail_next, sample_emulator, start_emulator,
    },
    objects::{backup_plan_spec, condition, is, is_ready, rds_connection, ready_reason},
    operator::{Operator, fast_flags},
    world::{
        CREDENTIALS, CREDENTIALS_IN_USE, Controller, PASSWORD_SECRET, Setup, World, secret_value,
    },
};

/// The account of `examples/credentials-secret.yaml`, which every world's emulator accepts.
pub const ACCESS_KEY_ID: &str = "LTAI-example-id";
/// Its secret.
pub const ACCESS_KEY_SECRET: &str = "example-secret";
/// The region of every test object.
pub const REGION: &str = "cn-hangzhou";
/// The RDS instance `examples/` name.
pub const RDS_INSTANCE: &str = "rm-bp1orders0001";

/// What a probe of [`eventually`] returns: `Some`/`Ok` ends the wait; `Err` says what was seen.
pub trait Probe<T> {
    /// The value, or what was seen instead.
    fn result(self) -> Result<T, String>;
}

impl<T> Probe<T> for Option<T> {
    fn result(self) -> Result<T, String> {
        self.ok_or_else(|| "not yet".to_owned())
    }
}

impl<T> Probe<T> for Result<T, String> {
    fn result(self) -> Self {
        self
    }
}

/// Polls `probe` every 100 ms until it gives a value; after `timeout`, panics naming `what` and
/// the last thing seen.
pub async fn eventually<T, P, F, Fut>(what: &str, timeout: Duration, mut probe: F) -> T
where
    P: Probe<T>,
    F: FnMut() -> Fut,
    Fut: Future<Output = P>,
{
    let deadline = Instant::now() + timeout;
    loop {
        let last = match probe().await.result() {
            Ok(v) => return v,
            Err(last) => last,
        };
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}; last seen: {last}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `relative` in this workspace.
pub fn repo_path(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(relative)
}

/// GET `url`: status and body (status 0 and the error when it cannot connect).
pub async fn get(url: &str) -> (u16, String) {
    match reqwest::get(url).await {
        Ok(r) => {
            let status = r.status().as_u16();
            (status, r.text().await.unwrap_or_default())
        }
        Err(e) => (0, e.to_string()),
    }
}

/// One sample in the Prometheus text: the value of the series whose name and labels are
/// exactly `series` (`name{a="b",c="d"}`).
pub fn sample(metrics: &str, series: &str) -> Option<f64> {
    metrics.lines().find_map(|l| {
        let (name, value) = l.rsplit_once(' ')?;
        (name == series).then(|| value.parse().ok()).flatten()
    })
}
