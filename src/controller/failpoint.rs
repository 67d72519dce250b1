//! Faults the operator injects into itself, for the crash tests only
//! (`ALICLOUD_DB_OPERATOR_FAILPOINT`).
//!
//! Each failpoint is named `kill-after-<action>`, after the cloud call it follows: the process
//! SIGKILLs itself right after that call was answered with success, before anything it learned
//! from the answer reaches the object (status, annotation, finalizer). That is the moment a crash
//! costs the most: the cloud has changed and the cluster does not know yet. The one
//! `kill-before-<action>` kills between the intent recorded in the status and the call: a call
//! lost in flight.

use rustix::process::Signal;

/// A fault the operator injects into itself; `None` in production.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Failpoint {
    /// `kill-after-create-backup-plan`: SIGKILL the process right after CreateBackupPlan
    /// succeeds, before the plan id reaches the status.
    KillAfterCreateBackupPlan,
    /// `kill-after-configure-backup-plan`: SIGKILL the process right after ConfigureBackupPlan
    /// succeeds, before the configuration (password version, log interval) reaches the status.
    KillAfterConfigureBackupPlan,
    /// `kill-before-start-backup-plan`: SIGKILL the process after the start is recorded in the
    /// status (`precheckStartedAt`) and before StartBackupPlan is sent: a start lost in flight.
    KillBeforeStartBackupPlan,
    /// `kill-after-start-backup-plan`: SIGKILL the process right after StartBackupPlan
    /// succeeds, while DBS runs its precheck.
    KillAfterStartBackupPlan,
    /// `kill-after-modify-backup-plan`: SIGKILL the process right after a Modify* call of a plan
    /// (schedule, retention, name, objects, source endpoint) succeeds, before the status says so.
    KillAfterModifyBackupPlan,
    /// `kill-after-release-backup-plan`: SIGKILL the process right after ReleaseBackupPlan
    /// succeeds (or finds the plan gone), before the finalizer is removed.
    KillAfterReleaseBackupPlan,
    /// `kill-after-allocate-instance-public-connection`: SIGKILL the process right after
    /// AllocateInstancePublicConnection succeeds, before the endpoint reaches the status.
    KillAfterAllocateInstancePublicConnection,
    /// `kill-after-modify-db-instance-connection-string`: SIGKILL the process right after
    /// ModifyDBInstanceConnectionString succeeds, before the new endpoint reaches the status.
    KillAfterModifyDbInstanceConnectionString,
    /// `kill-after-release-instance-connection`: SIGKILL the process right after
    /// ReleaseInstanceConnection succeeds (or finds the endpoint gone), before the finalizer is
    /// removed.
    KillAfterReleaseInstanceConnection,
}

impl Failpoint {
    /// Every failpoint with its name, in lifecycle order.
    pub const ALL: [(&'static str, Failpoint); 9] = [
        (
            "kill-after-create-backup-plan",
            Self::KillAfterCreateBackupPlan,
        ),
        (
            "kill-after-configure-backup-plan",
            Self::KillAfterConfigureBackupPlan,
        ),
        (
            "kill-before-start-backup-plan",
            Self::KillBeforeStartBackupPlan,
        ),
        (
            "kill-after-start-backup-plan",
            Self::KillAfterStartBackupPlan,
        ),
        (
            "kill-after-modify-backup-plan",
            Self::KillAfterModifyBackupPlan,
        ),
        (
            "kill-after-release-backup-plan",
            Self::KillAfterReleaseBackupPlan,
        ),
        (
            "kill-after-allocate-instance-public-connection",
            Self::KillAfterAllocateInstancePublicConnection,
        ),
        (
            "kill-after-modify-db-instance-connection-string",
            Self::KillAfterModifyDbInstanceConnectionString,
        ),
        (
            "kill-after-release-instance-connection",
            Self::KillAfterReleaseInstanceConnection,
        ),
    ];

    /// Its name, as `ALICLOUD_DB_OPERATOR_FAILPOINT` takes it.
    pub fn name(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(_, f)| *f == self)
            .map_or("", |(name, _)| name)
    }
}

impl std::str::FromStr for Failpoint {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .iter()
            .find(|(name, _)| *name == s)
            .map(|(_, f)| *f)
            .ok_or_else(|| {
                let known: Vec<&str> = Self::ALL.iter().map(|(name, _)| *name).collect();
                format!("unknown failpoint {s:?} (known: {})", known.join(", "))
            })
    }
}

/// Kills the process with SIGKILL when `configured` is `at`: no destructor, no flush, as a
/// crash or an OOM kill would.
pub fn kill_if(configured: Option<Failpoint>, at: Failpoint, detail: &str) {
    if configured != Some(at) {
        return;
    }
    tracing::error!(failpoint = at.name(), detail, "failpoint reached: SIGKILL");
    if let Err(e) = rustix::process::kill_process(rustix::process::getpid(), Signal::KILL) {
        tracing::error!(error = %e, "failpoint: SIGKILL failed");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_failpoint_parses_from_its_name() {
        for (name, f) in Failpoint::ALL {
            assert_eq!(name.parse::<Failpoint>(), Ok(f));
            assert_eq!(f.name(), name);
            assert!(
                name.starts_with("kill-after-") || name.starts_with("kill-before-"),
                "{name}"
            );
        }
        let err = "kill-after-nothing".parse::<Failpoint>().unwrap_err();
        assert!(
            err.contains("kill-after-release-instance-connection"),
            "{err}"
        );
    }
}
