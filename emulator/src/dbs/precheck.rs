//! The asynchronous precheck DBS runs after StartBackupPlan, computed from its start time
//! whenever a plan is read or acted on (no background task).

use super::DbsError;
use crate::state::{Plan, Precheck};
use crate::wire::random_alphanumeric;

/// Advances `plan`'s precheck to `now_ms`: `init` for the first half of the precheck,
/// `check_pass` for the second (unless a failure is armed), then `running`, or the armed
/// failure's status with its `ErrMessage`.
pub fn settle(plan: &mut Plan, now_ms: i64) {
    let Some(precheck) = &plan.precheck else {
        return;
    };
    let elapsed = now_ms - precheck.started_at_ms;
    if elapsed >= precheck.duration_ms {
        plan.precheck = None;
        match &plan.precheck_failure {
            Some(failure) => {
                plan.status.clone_from(&failure.status);
                plan.err_message.clone_from(&failure.message);
            }
            None => plan.status = "running".into(),
        }
    } else if plan.precheck_failure.is_none() && elapsed.saturating_mul(2) >= precheck.duration_ms {
        plan.status = "check_pass".into();
    } else {
        plan.status = "init".into();
    }
}

/// Begins a precheck of `duration_ms` at `now_ms` and records the full backup set the start
/// creates; returns its id (`CreatedFullBackupsetId`).
pub fn begin(plan: &mut Plan, now_ms: i64, duration_ms: i64) -> String {
    plan.err_message.clear();
    plan.precheck = Some(Precheck {
        started_at_ms: now_ms,
        duration_ms,
    });
    settle(plan, now_ms);
    record_full_backup(plan)
}

/// Forgets a running precheck (the plan was stopped, released or needs a new precheck).
pub fn cancel(plan: &mut Plan) {
    plan.precheck = None;
}

/// Records a new full backup set of `plan`; returns its id.
pub fn record_full_backup(plan: &mut Plan) -> String {
    let id = random_alphanumeric(13).to_ascii_lowercase();
    plan.full_backup_set_ids.push(id.clone());
    id
}

/// `OperationConflict`: StartBackupPlan while the plan's precheck is still running.
pub fn running_error(id: &str) -> DbsError {
    DbsError {
        code: "OperationConflict",
        message: format!(
            "The backup plan {id} is being prechecked; wait until the precheck is over."
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::EmulatorConfig;
    use crate::state::{PrecheckFailure, State};

    /// A configured (`init`) plan, through the public actions' own state type.
    fn plan() -> Plan {
        let mut state = State::from_config(&EmulatorConfig::default());
        let who = crate::auth::Principal {
            account_id: "acct".into(),
        };
        let pairs: Vec<(String, String)> = [
            ("Region", "cn-hangzhou"),
            ("InstanceClass", "micro"),
            ("DatabaseType", "MySQL"),
            ("BackupMethod", "logical"),
            ("Period", "Month"),
            ("UsedTime", "1"),
        ]
        .iter()
        .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
        .collect();
        let p = crate::wire::Params::from_pairs(&pairs);
        assert!(super::super::lifecycle::create(&mut state, &who, &p, 0).is_ok());
        let mut plan = state.plans.into_values().next().expect("created");
        plan.status = "init".into();
        plan
    }

    #[test]
    fn precheck_status_follows_the_time_since_start() {
        let failure = PrecheckFailure {
            message: "can not connect".into(),
            status: "stop".into(),
        };
        // (failure armed, ms after the start, status, ErrMessage, still prechecking)
        let cases = [
            (false, 0, "init", "", true),
            (false, 499, "init", "", true),
            (false, 500, "check_pass", "", true),
            (false, 999, "check_pass", "", true),
            (false, 1000, "running", "", false),
            (true, 500, "init", "", true),
            (true, 1000, "stop", "can not connect", false),
        ];
        for (fails, at, status, message, running) in cases {
            let mut p = plan();
            p.precheck_failure = fails.then(|| failure.clone());
            let set = begin(&mut p, 10_000, 1000);
            settle(&mut p, 10_000 + at);
            assert_eq!(
                (
                    p.status.as_str(),
                    p.err_message.as_str(),
                    p.precheck.is_some()
                ),
                (status, message, running),
                "failure {fails}, {at} ms"
            );
            assert_eq!(p.full_backup_set_ids, vec![set]);
        }
    }

    #[test]
    fn a_zero_precheck_ends_at_once() {
        let mut p = plan();
        begin(&mut p, 0, 0);
        assert_eq!((p.status.as_str(), p.precheck.is_none()), ("running", true));
    }
}
