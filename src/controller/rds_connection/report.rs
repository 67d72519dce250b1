//! Report: reasons, the status written after each reconcile (server-side apply through the
//! shared status writer), one Event per Ready transition, and the endpoint Secret ([`secret`]).

mod secret;

use std::sync::OnceLock;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;
use kube::Resource;
use kube::runtime::controller::Action;

pub use self::secret::{
    MANAGED_BY_LABEL, SecretWrite, apply_secret, secret_from_status, secret_refusal,
};
use super::decide::Step;
use super::observe::Observed;
use crate::cloud::CloudError;
use crate::cloud::rds::NetInfoEndpoint;
use crate::controller::cache;
use crate::controller::claims::Claim;
use crate::controller::conditions::{self, Phase, State, reasons};
use crate::controller::runtime::Runtime;
use crate::controller::{ControllerConfig, Error, Managed, cloud_message};
use crate::crd::{RdsConnection, RdsConnectionStatus};

reasons! {
    /// Why an RdsConnection is where it is (condition and Event reasons of this kind; failures
    /// use [`Error::reason`]).
    pub enum Reason {
        /// The endpoint matches the spec and the instance is `Running`.
        Available,
        /// `AllocateInstancePublicConnection` was accepted.
        Allocating,
        /// `ModifyDBInstanceConnectionString` was accepted.
        Modifying,
        /// The instance is busy; endpoint changes wait for `Running`.
        WaitingForInstance,
        /// Looking at the instance again.
        Reconciling,
        /// The spec asks for something RDS cannot do.
        InvalidSpec,
        /// The instance does not exist.
        InstanceNotFound,
        /// RDS locked the instance; endpoint changes wait until it is unlocked.
        InstanceLocked,
        /// The instance has a public endpoint this object did not create, and `adopt` is not
        /// set.
        EndpointExists,
        /// The Secret `writeConnectionSecretToRef` names exists and was not written by the
        /// operator; it is left alone.
        SecretExists,
        /// The prefix is in use by another instance.
        ConnectionStringTaken,
        /// A release is being retried.
        Releasing,
        /// The endpoint was released (or there was none).
        Released,
        /// `deletionPolicy: Retain` left the endpoint in place.
        Retained,
    }
}

/// Our endpoint as the status records it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EndpointView {
    /// Full connection string.
    pub connection_string: String,
    /// Port, when known.
    pub port: Option<i32>,
    /// IP address, when RDS reports one.
    pub ip_address: Option<String>,
}

impl From<&NetInfoEndpoint> for EndpointView {
    fn from(e: &NetInfoEndpoint) -> Self {
        Self {
            connection_string: e.connection_string.clone(),
            port: e.port,
            ip_address: e.ip_address.clone().filter(|ip| !ip.is_empty()),
        }
    }
}

/// What one reconcile learned and concluded, to be written to status.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Report {
    /// Ready / Reconciling / Stalled with reason and message.
    pub phase: Phase,
    /// Our endpoint as now known; `None` keeps what the status says.
    pub endpoint: Option<EndpointView>,
    /// Instance status read in this reconcile; `None` keeps the previous one.
    pub instance_status: Option<String>,
    /// Whether RDS was read in this reconcile (moves `lastSyncTime`).
    pub synced: bool,
}

impl Report {
    /// A report of what was observed in this reconcile, with `phase`.
    pub fn observed(phase: Phase, observed: &Observed) -> Self {
        Self {
            phase,
            endpoint: None,
            instance_status: Some(observed.instance_status.clone()),
            synced: true,
        }
    }

    /// A report that only changes the phase.
    pub fn phase(phase: Phase) -> Self {
        Self {
            phase,
            endpoint: None,
            instance_status: None,
            synced: false,
        }
    }
}

/// The next status from the previous one and this reconcile's report. Pure.
pub fn next_status(
    previous: &RdsConnectionStatus,
    report: &Report,
    generation: Option<i64>,
    now: Timestamp,
) -> RdsConnectionStatus {
    let mut next = previous.clone();
    if let Some(ep) = &report.endpoint {
        next.connection_string = Some(ep.connection_string.clone());
        next.port = ep.port.or(next.port);
        next.ip_address = ep.ip_address.clone();
    }
    if let Some(s) = &report.instance_status {
        next.instance_status = Some(s.clone());
    }
    if report.synced {
        next.last_sync_time = Some(Time(now));
    }
    next.observed_generation = generation;
    next.conditions =
        conditions::conditions_for(&report.phase, generation, &previous.conditions, now);
    next
}

/// A typical Ready RdsConnection, which the controller's cache compresses the others against:
/// the field names and the usual values (see `controller::cache`).
const CACHE_SAMPLE: &str = r#"{"apiVersion":"db.alicloud.dev/v1alpha1","kind":"RdsConnection",
"metadata":{"name":"orders-db-public","namespace":"default",
"uid":"00000000-0000-4000-8000-000000000000","resourceVersion":"1000000","generation":1,
"creationTimestamp":"2026-01-01T00:00:00Z","finalizers":["db.alicloud.dev/finalizer"],
"annotations":{"db.alicloud.dev/connection-string-prefix":"orders-db-pub"}},
"spec":{"region":"cn-hangzhou","dbInstanceId":"rm-bp1orders0001","connectionStringPrefix":"orders-db-pub",
"port":3306,"instanceNetworkType":"VPC","deletionPolicy":"Delete",
"credentialsRef":{"name":"alicloud-credentials"},
"writeConnectionSecretToRef":{"name":"orders-db-public"}},
"status":{"connectionString":"orders-db-pub.mysql.rds.aliyuncs.com","port":3306,
"ipAddress":"47.100.0.1","instanceStatus":"Running","lastSyncTime":"2026-01-01T00:01:00Z",
"observedGeneration":1,"conditions":[
{"type":"Ready","status":"True","reason":"Available","message":"public endpoint orders-db-pub.mysql.rds.aliyuncs.com:3306 is available","observedGeneration":1,"lastTransitionTime":"2026-01-01T00:00:20Z"},
{"type":"Reconciling","status":"False","reason":"Idle","message":"","observedGeneration":1,"lastTransitionTime":"2026-01-01T00:00:20Z"},
{"type":"Stalled","status":"False","reason":"Progressing","message":"","observedGeneration":1,"lastTransitionTime":"2026-01-01T00:00:00Z"}]}}"#;

impl Managed for RdsConnection {
    const KIND: &'static str = "RdsConnection";
    type Status = RdsConnectionStatus;

    fn status(&self) -> Option<&RdsConnectionStatus> {
        self.status.as_ref()
    }

    fn with_conditions(
        status: &RdsConnectionStatus,
        conditions: Vec<Condition>,
        generation: Option<i64>,
    ) -> RdsConnectionStatus {
        RdsConnectionStatus {
            conditions,
            observed_generation: generation,
            ..status.clone()
        }
    }

    fn conditions(status: &RdsConnectionStatus) -> &[Condition] {
        &status.conditions
    }

    fn claim(&self) -> Option<Claim> {
        super::claim(self)
    }

    fn secrets(&self) -> Vec<&str> {
        self.spec
            .credentials_ref
            .iter()
            .map(|r| r.name.as_str())
            .collect()
    }

    fn cache_dictionary() -> &'static [u8] {
        static DICTIONARY: OnceLock<Vec<u8>> = OnceLock::new();
        DICTIONARY.get_or_init(|| cache::dictionary::<Self>(CACHE_SAMPLE))
    }

    /// Anything but `lastSyncTime` changed, or the object is Ready (a Ready write records the
    /// sync time that lets the next trigger skip the cloud). Skipping sync-time-only writes
    /// while waiting keeps a status write from triggering another read.
    fn worth_writing(
        previous: &RdsConnectionStatus,
        next: &RdsConnectionStatus,
        phase: &Phase,
    ) -> bool {
        let strip = |s: &RdsConnectionStatus| RdsConnectionStatus {
            last_sync_time: None,
            ..s.clone()
        };
        phase.state == State::Ready || strip(previous) != strip(next)
    }
}

/// Writes the status for `report`, with an Event if the Ready condition changed.
pub async fn write(
    rt: &Runtime<RdsConnection>,
    obj: &RdsConnection,
    report: &Report,
) -> Result<(), Error> {
    let previous = obj.status.clone().unwrap_or_default();
    let next = next_status(&previous, report, obj.meta().generation, Timestamp::now());
    rt.write_status(obj, &next, &report.phase, true).await
}

/// Puts a failed reconcile into the status; a failure to do so is only logged, the original
/// error is what the caller returns.
pub async fn write_error(rt: &Runtime<RdsConnection>, obj: &RdsConnection, error: &Error) {
    if let Err(e) = write(rt, obj, &Report::phase(Phase::of_error(error))).await {
        tracing::warn!(error = %e, "writing the error to status failed");
    }
}

/// Report and requeue for a step that makes no cloud call.
pub fn settle(step: &Step, observed: &Observed, config: &ControllerConfig) -> (Report, Action) {
    match step {
        Step::Ready { endpoint } => {
            let message = format!(
                "public endpoint {}:{} is available",
                endpoint.connection_string,
                endpoint.port.unwrap_or_default()
            );
            let report = Report {
                endpoint: Some(endpoint.into()),
                ..Report::observed(Phase::ready(Reason::Available, message), observed)
            };
            (report, Action::requeue(config.resync_period))
        }
        Step::WaitForInstance { endpoint } => {
            let message = format!(
                "instance is {}; waiting for Running before changing its endpoint",
                observed.instance_status
            );
            let report = Report {
                endpoint: endpoint.as_ref().map(EndpointView::from),
                ..Report::observed(
                    Phase::reconciling(Reason::WaitingForInstance, message),
                    observed,
                )
            };
            (report, Action::requeue(config.instance_poll_interval))
        }
        Step::Stall { reason, message } => (
            Report::observed(Phase::stalled(*reason, message.clone()), observed),
            Action::requeue(config.resync_period),
        ),
        // Mutating steps are acted on by the caller; reaching here means "look again".
        Step::Allocate(_) | Step::Modify { .. } => (
            Report::observed(
                Phase::reconciling(Reason::Reconciling, "re-reading the instance"),
                observed,
            ),
            Action::requeue(config.instance_poll_interval),
        ),
    }
}

/// Report for an instance RDS does not know.
pub fn instance_not_found(
    obj: &RdsConnection,
    e: &CloudError,
    config: &ControllerConfig,
) -> (Report, Action) {
    let message = format!(
        "RDS instance {} does not exist in region {} ({})",
        obj.spec.db_instance_id,
        obj.spec.region,
        cloud_message(e)
    );
    let report = Report {
        synced: true,
        ..Report::phase(Phase::stalled(Reason::InstanceNotFound, message))
    };
    (report, Action::requeue(config.resync_period))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controller::conditions::{READY, RECONCILING};

    fn ts(s: i64) -> Timestamp {
        Timestamp::from_second(s).expect("valid")
    }

    pub(super) fn endpoint() -> EndpointView {
        EndpointView {
            connection_string: "myapp-db.mysql.rds.aliyuncs.com".into(),
            port: Some(3306),
            ip_address: Some("47.0.0.1".into()),
        }
    }

    #[test]
    fn ready_report_fills_endpoint_sync_time_and_conditions() {
        let report = Report {
            phase: Phase::ready(Reason::Available, "ok"),
            endpoint: Some(endpoint()),
            instance_status: Some("Running".into()),
            synced: true,
        };
        let s = next_status(&RdsConnectionStatus::default(), &report, Some(4), ts(100));
        assert_eq!(
            s.connection_string.as_deref(),
            Some("myapp-db.mysql.rds.aliyuncs.com")
        );
        assert_eq!(s.port, Some(3306));
        assert_eq!(s.ip_address.as_deref(), Some("47.0.0.1"));
        assert_eq!(s.instance_status.as_deref(), Some("Running"));
        assert_eq!(s.last_sync_time, Some(Time(ts(100))));
        assert_eq!(s.observed_generation, Some(4));
        let ready_cond = s
            .conditions
            .iter()
            .find(|c| c.type_ == READY)
            .expect("Ready");
        assert_eq!(
            (ready_cond.status.as_str(), ready_cond.reason.as_str()),
            ("True", "Available")
        );
    }

    #[test]
    fn phase_only_report_keeps_what_status_knew() {
        let before = next_status(
            &RdsConnectionStatus::default(),
            &Report {
                phase: Phase::ready(Reason::Available, ""),
                endpoint: Some(endpoint()),
                instance_status: Some("Running".into()),
                synced: true,
            },
            Some(1),
            ts(100),
        );
        let after = next_status(
            &before,
            &Report::phase(Phase::reconciling("CloudThrottled", "slow down")),
            Some(1),
            ts(200),
        );
        assert_eq!(after.connection_string, before.connection_string);
        assert_eq!(after.port, before.port);
        assert_eq!(
            after.last_sync_time,
            Some(Time(ts(100))),
            "no read, no new sync time"
        );
        let r = after
            .conditions
            .iter()
            .find(|c| c.type_ == RECONCILING)
            .expect("Reconciling");
        assert_eq!(
            (r.status.as_str(), r.reason.as_str()),
            ("True", "CloudThrottled")
        );
    }

    #[test]
    fn sync_time_alone_is_not_written_while_waiting_but_is_when_ready() {
        let waiting = Report {
            phase: Phase::reconciling("WaitingForInstance", "instance is Rebooting"),
            endpoint: None,
            instance_status: Some("Rebooting".into()),
            synced: true,
        };
        let first = next_status(&RdsConnectionStatus::default(), &waiting, Some(1), ts(100));
        let second = next_status(&first, &waiting, Some(1), ts(105));
        assert!(<RdsConnection as Managed>::worth_writing(
            &RdsConnectionStatus::default(),
            &first,
            &waiting.phase
        ));
        assert!(
            !<RdsConnection as Managed>::worth_writing(&first, &second, &waiting.phase),
            "only lastSyncTime moved"
        );
        let ready_report = Report {
            phase: Phase::ready(Reason::Available, ""),
            ..waiting.clone()
        };
        let r1 = next_status(&first, &ready_report, Some(1), ts(110));
        let r2 = next_status(&r1, &ready_report, Some(1), ts(410));
        assert!(
            <RdsConnection as Managed>::worth_writing(&r1, &r2, &ready_report.phase),
            "a resync of a Ready object records its time"
        );
    }

    #[test]
    fn an_error_repeated_with_another_request_id_gives_the_same_condition() {
        let failure = |request_id: &str| {
            Error::Cloud(CloudError::from_response(
                "DescribeDBInstanceNetInfo",
                Some("InvalidParameter".into()),
                "bad",
                Some(request_id.into()),
                Some(400),
            ))
        };
        assert_eq!(
            Phase::of_error(&failure("req-1")),
            Phase::of_error(&failure("req-2"))
        );
        assert!(!Phase::of_error(&failure("req-1")).message.contains("req-1"));
    }
}
