//! Report: reasons, where a step leaves the object (phase and requeue), and the status
//! (server-side apply through the shared status writer, only when it changed) with one Event per
//! Ready transition.

use std::sync::OnceLock;
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;
use kube::runtime::controller::Action;

use super::decide::Step;
use super::observe::{Observation, Sighting};
use crate::controller::cache;
use crate::controller::claims::Claim;
use crate::controller::conditions::{self, Phase, reasons};
use crate::controller::runtime::Runtime;
use crate::controller::{ControllerConfig, Error, Managed};
use crate::crd::{BackupPlan, BackupPlanStatus};

/// A typical Ready BackupPlan, which the controller's cache compresses the others against: the
/// field names and the usual values (see `controller::cache`).
const CACHE_SAMPLE: &str = r#"{"apiVersion":"db.alicloud.dev/v1alpha1","kind":"BackupPlan",
"metadata":{"name":"orders-00000","namespace":"default","uid":"00000000-0000-4000-8000-000000000000",
"resourceVersion":"1000000","generation":1,"creationTimestamp":"2026-01-01T00:00:00Z",
"finalizers":["db.alicloud.dev/finalizer"],
"annotations":{"db.alicloud.dev/backup-plan-id":"dbs00000000000"}},
"spec":{"region":"cn-hangzhou","databaseType":"MySQL","instanceClass":"small",
"backupMethod":"logical","payType":"PayAsYouGo","source":{"instanceType":"RDS",
"region":"cn-hangzhou","instanceId":"rm-0000000000000","userName":"backup",
"passwordSecretRef":{"name":"orders-password","key":"password"}},
"backupObjects":[{"databaseName":"orders"}],
"schedule":{"weekdays":["Monday","Thursday"],"startTime":"02:30"},
"retention":{"backupRetentionDays":30,"infrequentAccessDays":7,"archiveDays":14},
"storage":{"type":"System"},"deletionPolicy":"Delete",
"credentialsRef":{"name":"alicloud-credentials"}},
"status":{"backupPlanId":"dbs00000000000",
"clientToken":"default-orders-00000-00000000-0000-4000-8000-000000000000",
"orderId":"200000000000000","createdAt":"2026-01-01T00:00:05Z","cloudStatus":"running",
"precheckStartedAt":"2026-01-01T00:00:12Z","sourcePasswordVersion":"1000000",
"lastSyncTime":"2026-01-01T00:01:00Z","observedGeneration":1,"conditions":[
{"type":"Ready","status":"True","reason":"Available","message":"backup plan dbs00000000000 is running","observedGeneration":1,"lastTransitionTime":"2026-01-01T00:00:20Z"},
{"type":"Reconciling","status":"False","reason":"Idle","message":"","observedGeneration":1,"lastTransitionTime":"2026-01-01T00:00:20Z"},
{"type":"Stalled","status":"False","reason":"Progressing","message":"","observedGeneration":1,"lastTransitionTime":"2026-01-01T00:00:00Z"}]}}"#;

/// How old `status.lastSyncTime` may get before a sweep that changed nothing else refreshes it.
pub const SYNC_TIME_REFRESH: Duration = Duration::from_secs(15 * 60);

/// How soon to look again after a call that changes the plan.
pub const AFTER_CHANGE: Duration = Duration::from_secs(1);

reasons! {
    /// Why a BackupPlan is where it is (condition and Event reasons of this kind; failures use
    /// [`Error::reason`]).
    pub enum Reason {
        /// The plan is running and matches the spec.
        Available,
        /// The plan is being created, or has not been observed yet.
        Creating,
        /// DBS accepts the configuration only some time after the creation.
        WaitingToConfigure,
        /// `StartBackupPlan` is sent (recorded before the call, with its time) or was accepted;
        /// DBS runs its precheck.
        Prechecking,
        /// The plan was just created and DBS does not list it yet.
        WaitingForPlan,
        /// A `Modify*` call was accepted.
        Updating,
        /// A plan of this object was found at DBS by its name (its status was lost) and taken
        /// over instead of creating a second one.
        FoundByName,
        /// A plan with this object's name exists at DBS but for another source or engine.
        PlanNameTaken,
        /// Several plans with this object's name exist at DBS.
        AmbiguousPlanName,
        /// `spec.backupPlanId` names another plan than the one this object created.
        BackupPlanIdConflict,
        /// The spec asks for something DBS cannot do.
        InvalidSpec,
        /// The plan no longer exists at DBS.
        CloudPlanMissing,
        /// DBS locked the plan.
        CloudPlanLocked,
        /// The DBS precheck failed.
        PrecheckFailed,
        /// The plan is stopped or paused at DBS; the operator does not restart it.
        PlanNotRunning,
        /// The same modification was needed three reconciles in a row: DBS does not keep it.
        DriftNotConverging,
        /// CreateBackupPlan was refused: its ClientToken was used before with other parameters.
        CreateConflict,
        /// Deleted before any plan was created.
        NothingToRelease,
        /// `deletionPolicy: Retain` left the plan at DBS.
        PlanRetained,
        /// The plan was released.
        PlanReleased,
        /// A Subscription plan was stopped; it cannot be released through the API.
        SubscriptionNotReleased,
    }
}

impl Managed for BackupPlan {
    const KIND: &'static str = "BackupPlan";
    type Status = BackupPlanStatus;

    fn status(&self) -> Option<&BackupPlanStatus> {
        self.status.as_ref()
    }

    fn with_conditions(
        status: &BackupPlanStatus,
        conditions: Vec<Condition>,
        generation: Option<i64>,
    ) -> BackupPlanStatus {
        BackupPlanStatus {
            conditions,
            observed_generation: generation,
            ..status.clone()
        }
    }

    fn conditions(status: &BackupPlanStatus) -> &[Condition] {
        &status.conditions
    }

    fn claim(&self) -> Option<Claim> {
        super::claim(self)
    }

    fn secrets(&self) -> Vec<&str> {
        let password = self.spec.source.password_secret_ref.as_ref();
        let credentials = self.spec.credentials_ref.as_ref();
        [
            password.map(|r| r.name.as_str()),
            credentials.map(|r| r.name.as_str()),
        ]
        .into_iter()
        .flatten()
        .collect()
    }

    fn cache_dictionary() -> &'static [u8] {
        static DICTIONARY: OnceLock<Vec<u8>> = OnceLock::new();
        DICTIONARY.get_or_init(|| cache::dictionary::<Self>(CACHE_SAMPLE))
    }

    /// Anything but `lastSyncTime` changed, or the recorded `lastSyncTime` (else `createdAt`) is
    /// `SYNC_TIME_REFRESH` (15 minutes) old. A sweep that finds a plan as it was writes
    /// nothing: at 10,000 Ready plans a write per resync would be the API server's main load.
    fn worth_writing(previous: &BackupPlanStatus, next: &BackupPlanStatus, _phase: &Phase) -> bool {
        let without_sync_time = |s: &BackupPlanStatus| BackupPlanStatus {
            last_sync_time: None,
            ..s.clone()
        };
        if without_sync_time(previous) != without_sync_time(next) {
            return true;
        }
        // The first sync time waits for the next change too (it comes within seconds while the
        // plan is created), or for the refresh.
        let written = previous
            .last_sync_time
            .as_ref()
            .or(previous.created_at.as_ref())
            .map(|t| t.0.as_second());
        match (written, &next.last_sync_time) {
            (Some(before), Some(now)) => {
                let age = now.0.as_second().saturating_sub(before);
                u64::try_from(age).is_ok_and(|age| age >= SYNC_TIME_REFRESH.as_secs())
            }
            (None, now) => now.is_some(),
            (Some(_), None) => false,
        }
    }
}

/// Where a reconcile step leaves the object, and when to look again.
#[derive(Debug)]
pub struct Outcome {
    /// The phase to report.
    pub phase: Phase,
    /// When to reconcile again.
    pub action: Action,
}

impl Outcome {
    /// The object is in `phase`; look again per `action`.
    pub fn new(phase: Phase, action: Action) -> Self {
        Self { phase, action }
    }
}

/// Writes the status for a step's outcome (or failure) and passes the outcome on.
pub async fn report(
    rt: &Runtime<BackupPlan>,
    obj: &BackupPlan,
    status: BackupPlanStatus,
    outcome: Result<Outcome, Error>,
) -> Result<Action, Error> {
    match outcome {
        Ok(o) => {
            write(rt, obj, status, &o.phase, true).await?;
            Ok(o.action)
        }
        Err(e) => {
            if let Err(report_error) = write(rt, obj, status, &Phase::of_error(&e), true).await {
                tracing::warn!(error = %report_error, "could not record the failure in the status");
            }
            Err(e)
        }
    }
}

/// Writes `status` with the conditions of `phase` for the object's generation; with
/// `announce`, one Event per Ready transition.
pub async fn write(
    rt: &Runtime<BackupPlan>,
    obj: &BackupPlan,
    mut status: BackupPlanStatus,
    phase: &Phase,
    announce: bool,
) -> Result<(), Error> {
    let previous = obj
        .status
        .as_ref()
        .map(|s| s.conditions.as_slice())
        .unwrap_or_default();
    let generation = obj.metadata.generation;
    status.conditions =
        conditions::conditions_for(phase, generation, previous, whole_second(Timestamp::now()));
    status.observed_generation = generation;
    rt.write_status(obj, &status, phase, announce).await
}

/// The outcome of a step that makes no cloud call.
pub fn settle(id: Option<&str>, step: &Step, config: &ControllerConfig) -> Outcome {
    let id = id.unwrap_or("-");
    match step {
        Step::Stalled { reason, message } => {
            let action = match reason {
                Reason::InvalidSpec | Reason::BackupPlanIdConflict => Action::await_change(),
                _ => Action::requeue(config.resync_period),
            };
            Outcome::new(Phase::stalled(*reason, message.clone()), action)
        }
        Step::WaitToConfigure(left) => Outcome::new(
            waiting_to_configure(id, config.configure_delay),
            Action::requeue(*left),
        ),
        Step::Ready => Outcome::new(
            Phase::ready(Reason::Available, format!("backup plan {id} is running")),
            Action::requeue(config.resync_period),
        ),
        // Mutating steps are acted on by `act`; reaching here means "look again".
        Step::Observe
        | Step::Create
        | Step::Configure
        | Step::Start
        | Step::Prechecking(_)
        | Step::WaitForPlan(_)
        | Step::Modify(_) => Outcome::new(
            Phase::reconciling(Reason::Creating, "waiting for the plan to be observed"),
            Action::requeue(AFTER_CHANGE),
        ),
    }
}

/// The reason of the object's `Ready` condition as it was read.
pub fn ready_reason(obj: &BackupPlan) -> Option<&str> {
    obj.status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == conditions::READY)
        .map(|c| c.reason.as_str())
}

/// The phase of a plan started (or about to be, see `act::start`) while DBS prechecks it, with
/// its status at DBS as last known.
pub fn prechecking(id: &str, cloud_status: Option<&str>) -> Phase {
    Phase::reconciling(
        Reason::Prechecking,
        format!(
            "plan {id} started; DBS runs its precheck (status {})",
            cloud_status.unwrap_or("-")
        ),
    )
}

/// The phase of an object whose plan is being created (or waits for its turn to be).
pub fn creating() -> Phase {
    Phase::reconciling(Reason::Creating, "creating the backup plan at DBS")
}

/// The phase of a created plan until it may be configured.
pub fn waiting_to_configure(id: &str, configure_delay: Duration) -> Phase {
    Phase::reconciling(
        Reason::WaitingToConfigure,
        format!(
            "plan {id} created; DBS accepts its configuration {configure_delay:?} after creation"
        ),
    )
}

/// Records in the status what an observation of plan `id` found.
pub fn record_sighting(status: &mut BackupPlanStatus, id: &str, sighting: &Sighting) {
    status.backup_plan_id = Some(id.to_owned());
    status.last_sync_time = Some(Time(whole_second(sighting.observed_at)));
    status.cloud_status = match &sighting.observation {
        Observation::Found(d) => Some(d.backup_plan_status.to_string()),
        Observation::Missing => None,
    };
}

/// `ts` truncated to the second, as the API server stores times.
pub fn whole_second(ts: Timestamp) -> Timestamp {
    Timestamp::from_second(ts.as_second()).unwrap_or(ts)
}

/// `ts` rounded up to the next whole second, so a stored time is never earlier than the event.
pub fn ceil_second(ts: Timestamp) -> Timestamp {
    let extra = i64::from(ts.subsec_nanosecond() > 0);
    Timestamp::from_second(ts.as_second() + extra).unwrap_or(ts)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: i64) -> BackupPlanStatus {
        BackupPlanStatus {
            backup_plan_id: Some("dbsabc".into()),
            cloud_status: Some("running".into()),
            last_sync_time: Some(Time(Timestamp::from_second(seconds).expect("valid"))),
            ..BackupPlanStatus::default()
        }
    }

    #[test]
    fn a_sweep_that_changes_nothing_else_refreshes_the_sync_time_only_now_and_then() {
        let ready = Phase::ready(Reason::Available, "running");
        let refresh = i64::try_from(SYNC_TIME_REFRESH.as_secs()).expect("small");
        let worth = |a: &BackupPlanStatus, b: &BackupPlanStatus| {
            <BackupPlan as Managed>::worth_writing(a, b, &ready)
        };
        assert!(!worth(&at(1_000), &at(1_060)), "only lastSyncTime moved");
        assert!(!worth(&at(1_000), &at(1_000 + refresh - 1)));
        assert!(
            worth(&at(1_000), &at(1_000 + refresh)),
            "too old: refreshed"
        );
        let mut stopped = at(1_060);
        stopped.cloud_status = Some("stop".into());
        assert!(worth(&at(1_000), &stopped), "anything else changed");
        let created_at = |seconds| BackupPlanStatus {
            last_sync_time: None,
            created_at: Some(Time(Timestamp::from_second(seconds).expect("valid"))),
            ..at(0)
        };
        let synced = |seconds| BackupPlanStatus {
            created_at: created_at(1_000).created_at,
            ..at(seconds)
        };
        assert!(
            !worth(&created_at(1_000), &synced(1_002)),
            "the first sync time waits for the next change"
        );
        assert!(worth(&created_at(1_000), &synced(1_000 + refresh)));
        let never = BackupPlanStatus {
            last_sync_time: None,
            ..at(1_000)
        };
        assert!(
            worth(&never, &at(1_000)),
            "nothing to count from: the first sync time is written"
        );
        assert!(!worth(&at(1_000), &at(1_000)));
    }

    #[test]
    fn stored_times_round_the_right_way() {
        let t = Timestamp::from_millisecond(1_500).expect("valid");
        assert_eq!(whole_second(t).as_second(), 1);
        assert_eq!(ceil_second(t).as_second(), 2);
        let whole = Timestamp::from_second(7).expect("valid");
        assert_eq!(ceil_second(whole), whole);
    }
}
