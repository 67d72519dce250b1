//! Faults the operator injects into itself, for the crash tests only
//! (`ALICLOUD_DB_OPERATOR_FAILPOINT`).

use rustix::process::Signal;

/// A fault the operator injects into itself; `None` in production.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Failpoint {
    /// `kill-after-create-backup-plan`: SIGKILL the process right after CreateBackupPlan
    /// succeeds, before the plan id reaches the status.
    KillAfterCreateBackupPlan,
    /// `kill-after-start-backup-plan`: SIGKILL the process right after StartBackupPlan
    /// succeeds, while DBS runs its precheck.
    KillAfterStartBackupPlan,
}

impl std::str::FromStr for Failpoint {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "kill-after-create-backup-plan" => Ok(Self::KillAfterCreateBackupPlan),
            "kill-after-start-backup-plan" => Ok(Self::KillAfterStartBackupPlan),
            other => Err(format!(
                "unknown failpoint {other:?} (known: kill-after-create-backup-plan, \
                 kill-after-start-backup-plan)"
            )),
        }
    }
}

/// Kills the process with SIGKILL when `configured` is `at`: no destructor, no flush, as a
/// crash or an OOM kill would.
pub fn kill_if(configured: Option<Failpoint>, at: Failpoint, detail: &str) {
    if configured != Some(at) {
        return;
    }
    tracing::error!(failpoint = ?at, detail, "failpoint reached: SIGKILL");
    if let Err(e) = rustix::process::kill_process(rustix::process::getpid(), Signal::KILL) {
        tracing::error!(error = %e, "failpoint: SIGKILL failed");
    }
}
