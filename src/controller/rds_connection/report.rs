//! Report: the status written after each reconcile (server-side apply on the status
//! subresource), one Event per Ready transition, and the endpoint Secret.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::events::{Event, EventType, Recorder};
use kube::{Resource, ResourceExt};

use crate::cloud::rds::NetInfoEndpoint;
use crate::controller::conditions::{self, Phase};
use crate::controller::credentials_protection::CREDENTIALS_IN_USE;
use crate::controller::own_writes::OwnWrites;
use crate::controller::{Error, FIELD_MANAGER};
use crate::crd::{RdsConnection, RdsConnectionStatus};

/// Label put on every Secret this controller writes; the controller watches only those.
pub const MANAGED_BY_LABEL: (&str, &str) = ("app.kubernetes.io/managed-by", "alicloud-db-operator");

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

/// `Reconciling` with a reason and message.
pub fn reconciling(reason: &str, message: impl Into<String>) -> Phase {
    Phase::Reconciling {
        reason: reason.to_owned(),
        message: message.into(),
    }
}

/// `Stalled` with a reason and message.
pub fn stalled(reason: &str, message: impl Into<String>) -> Phase {
    Phase::Stalled {
        reason: reason.to_owned(),
        message: message.into(),
    }
}

/// `Ready` with a reason and message.
pub fn ready(reason: &str, message: impl Into<String>) -> Phase {
    Phase::Ready {
        reason: reason.to_owned(),
        message: message.into(),
    }
}

/// The phase a failed reconcile leaves the object in: `Stalled` when only the user can fix it,
/// `Reconciling` while retrying.
pub fn phase_of_error(error: &Error) -> Phase {
    if error.is_stalled() {
        stalled(error.reason(), error.user_message())
    } else {
        reconciling(
            error.reason(),
            format!("retrying: {}", error.user_message()),
        )
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

/// Whether `next` needs writing: anything but `lastSyncTime` changed, or the object is Ready
/// (a Ready write records the sync time that lets the next trigger skip the cloud). Skipping
/// sync-time-only writes while waiting keeps a status write from triggering another read.
pub fn needs_write(
    previous: &RdsConnectionStatus,
    next: &RdsConnectionStatus,
    phase: &Phase,
) -> bool {
    let strip = |s: &RdsConnectionStatus| RdsConnectionStatus {
        last_sync_time: None,
        ..s.clone()
    };
    matches!(phase, Phase::Ready { .. }) || strip(previous) != strip(next)
}

/// Writes the status for `report` and records an Event if the Ready condition changed.
pub async fn write_status(
    client: &kube::Client,
    recorder: &Recorder,
    writes: &OwnWrites<RdsConnection>,
    obj: &RdsConnection,
    report: &Report,
) -> Result<(), Error> {
    let previous = obj.status.clone().unwrap_or_default();
    let generation = obj.meta().generation;
    let next = next_status(&previous, report, generation, Timestamp::now());
    if !needs_write(&previous, &next, &report.phase) {
        return Ok(());
    }
    writes.apply_status(client, obj, &next).await?;
    if conditions::is_transition(&previous.conditions, &next.conditions) {
        let type_ = match report.phase {
            Phase::Stalled { .. } => EventType::Warning,
            Phase::Ready { .. } | Phase::Reconciling { .. } => EventType::Normal,
        };
        publish(
            recorder,
            obj,
            type_,
            report.phase.reason(),
            report.phase.message(),
        )
        .await;
    }
    Ok(())
}

/// Records an Event about `obj`; a failure to record is logged, never fails the reconcile.
pub async fn publish(
    recorder: &Recorder,
    obj: &RdsConnection,
    type_: EventType,
    reason: &str,
    note: &str,
) {
    let event = Event {
        type_,
        reason: reason.to_owned(),
        note: Some(truncate(note, 1000)),
        action: "Reconcile".to_owned(),
        secondary: None,
    };
    if let Err(e) = recorder.publish(&event, &obj.object_ref(&())).await {
        tracing::warn!(error = %e, reason, "recording an Event failed");
    }
}

fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

/// The data of the endpoint Secret.
pub fn secret_data(endpoint: &EndpointView, port: i32) -> BTreeMap<String, ByteString> {
    let host = endpoint.connection_string.clone();
    BTreeMap::from([
        (
            "endpoint".to_owned(),
            ByteString(format!("{host}:{port}").into_bytes()),
        ),
        ("port".to_owned(), ByteString(port.to_string().into_bytes())),
        ("host".to_owned(), ByteString(host.into_bytes())),
    ])
}

/// Refuses to write into a Secret controlled by another object, or into a credentials Secret
/// objects use: taking it over would hand its lifetime to this RdsConnection, and the garbage
/// collector would delete it with this object.
pub fn check_secret_owner(existing: Option<&Secret>, obj: &RdsConnection) -> Result<(), Error> {
    let Some(secret) = existing else {
        return Ok(());
    };
    let meta = secret.meta();
    let credentials_in_use = meta
        .labels
        .as_ref()
        .is_some_and(|l| l.contains_key(CREDENTIALS_IN_USE))
        || meta
            .finalizers
            .iter()
            .flatten()
            .any(|f| f == CREDENTIALS_IN_USE);
    if credentials_in_use {
        return Err(Error::Secret(format!(
            "Secret {}/{} holds credentials that objects use; writeConnectionSecretToRef must \
             name another Secret",
            secret.namespace().unwrap_or_default(),
            secret.name_any()
        )));
    }
    let uid = obj.uid();
    let foreign = secret
        .owner_references()
        .iter()
        .find(|o| o.controller == Some(true) && Some(&o.uid) != uid.as_ref());
    match foreign {
        Some(owner) => Err(Error::Secret(format!(
            "Secret {}/{} is controlled by {} {}; writeConnectionSecretToRef must name a Secret \
             this object may own",
            secret.namespace().unwrap_or_default(),
            secret.name_any(),
            owner.kind,
            owner.name
        ))),
        None => Ok(()),
    }
}

/// Creates or updates the endpoint Secret named by `writeConnectionSecretToRef`, owned by
/// `obj` (controller reference), by server-side apply.
pub async fn apply_secret(
    client: &kube::Client,
    obj: &RdsConnection,
    endpoint: &EndpointView,
    port: i32,
) -> Result<(), Error> {
    let Some(target) = &obj.spec.write_connection_secret_to_ref else {
        return Ok(());
    };
    let namespace = obj.namespace().unwrap_or_default();
    let api: Api<Secret> = Api::namespaced(client.clone(), &namespace);
    check_secret_owner(api.get_opt(&target.name).await?.as_ref(), obj)?;
    let owner = obj.controller_owner_ref(&()).ok_or_else(|| {
        Error::Secret("the RdsConnection has no uid yet, so it cannot own a Secret".into())
    })?;
    let secret = Secret {
        metadata: ObjectMeta {
            name: Some(target.name.clone()),
            namespace: Some(namespace),
            labels: Some(BTreeMap::from([(
                MANAGED_BY_LABEL.0.to_owned(),
                MANAGED_BY_LABEL.1.to_owned(),
            )])),
            owner_references: Some(vec![owner]),
            ..ObjectMeta::default()
        },
        data: Some(secret_data(endpoint, port)),
        type_: Some("Opaque".to_owned()),
        ..Secret::default()
    };
    api.patch(
        &target.name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&secret),
    )
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;

    use super::*;
    use crate::cloud::CloudError;
    use crate::controller::conditions::{READY, RECONCILING};
    use crate::crd::RdsConnectionSpec;

    fn ts(s: i64) -> Timestamp {
        Timestamp::from_second(s).expect("valid")
    }

    fn endpoint() -> EndpointView {
        EndpointView {
            connection_string: "myapp-db.mysql.rds.aliyuncs.com".into(),
            port: Some(3306),
            ip_address: Some("47.0.0.1".into()),
        }
    }

    #[test]
    fn ready_report_fills_endpoint_sync_time_and_conditions() {
        let report = Report {
            phase: ready("Available", "ok"),
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
                phase: ready("Available", ""),
                endpoint: Some(endpoint()),
                instance_status: Some("Running".into()),
                synced: true,
            },
            Some(1),
            ts(100),
        );
        let after = next_status(
            &before,
            &Report::phase(reconciling("CloudThrottled", "slow down")),
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
            phase: reconciling("WaitingForInstance", "instance is Rebooting"),
            endpoint: None,
            instance_status: Some("Rebooting".into()),
            synced: true,
        };
        let first = next_status(&RdsConnectionStatus::default(), &waiting, Some(1), ts(100));
        let second = next_status(&first, &waiting, Some(1), ts(105));
        assert!(needs_write(
            &RdsConnectionStatus::default(),
            &first,
            &waiting.phase
        ));
        assert!(
            !needs_write(&first, &second, &waiting.phase),
            "only lastSyncTime moved"
        );
        let ready_report = Report {
            phase: ready("Available", ""),
            ..waiting.clone()
        };
        let r1 = next_status(&first, &ready_report, Some(1), ts(110));
        let r2 = next_status(&r1, &ready_report, Some(1), ts(410));
        assert!(
            needs_write(&r1, &r2, &ready_report.phase),
            "a resync of a Ready object records its time"
        );
    }

    #[test]
    fn secret_holds_host_port_and_endpoint() {
        let data = secret_data(&endpoint(), 3306);
        let get = |k: &str| String::from_utf8(data[k].0.clone()).expect("utf8");
        assert_eq!(get("host"), "myapp-db.mysql.rds.aliyuncs.com");
        assert_eq!(get("port"), "3306");
        assert_eq!(get("endpoint"), "myapp-db.mysql.rds.aliyuncs.com:3306");
        assert_eq!(data.len(), 3);
    }

    #[test]
    fn a_secret_controlled_by_someone_else_is_refused() {
        let spec: RdsConnectionSpec = serde_json::from_value(serde_json::json!({
            "region": "cn-hangzhou", "dbInstanceId": "rm-test0001",
            "connectionStringPrefix": "myapp-db", "port": 3306
        }))
        .expect("spec");
        let mut obj = RdsConnection::new("conn", spec);
        obj.metadata.uid = Some("uid-1".into());
        let owned_by = |uid: &str, controller: bool| Secret {
            metadata: ObjectMeta {
                name: Some("endpoint".into()),
                owner_references: Some(vec![OwnerReference {
                    api_version: "v1".into(),
                    kind: "Other".into(),
                    name: "other".into(),
                    uid: uid.into(),
                    controller: Some(controller),
                    block_owner_deletion: None,
                }]),
                ..ObjectMeta::default()
            },
            ..Secret::default()
        };
        assert!(
            check_secret_owner(None, &obj).is_ok(),
            "absent: we create it"
        );
        assert!(
            check_secret_owner(Some(&Secret::default()), &obj).is_ok(),
            "unowned: we take it"
        );
        assert!(
            check_secret_owner(Some(&owned_by("uid-1", true)), &obj).is_ok(),
            "ours"
        );
        assert!(
            check_secret_owner(Some(&owned_by("uid-2", false)), &obj).is_ok(),
            "non-controller owner"
        );
        let err = check_secret_owner(Some(&owned_by("uid-2", true)), &obj).expect_err("foreign");
        assert_eq!(err.reason(), "SecretNotUsable");
        let credentials = Secret {
            metadata: ObjectMeta {
                name: Some("alicloud-credentials".into()),
                labels: Some(BTreeMap::from([(CREDENTIALS_IN_USE.into(), "true".into())])),
                finalizers: Some(vec![CREDENTIALS_IN_USE.into()]),
                ..ObjectMeta::default()
            },
            ..Secret::default()
        };
        let err = check_secret_owner(Some(&credentials), &obj)
            .expect_err("another object's credentials are never taken over");
        assert_eq!(err.reason(), "SecretNotUsable");
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
            phase_of_error(&failure("req-1")),
            phase_of_error(&failure("req-2"))
        );
        assert!(
            !phase_of_error(&failure("req-1"))
                .message()
                .contains("req-1")
        );
    }

    #[test]
    fn long_event_notes_are_cut_on_a_char_boundary() {
        let s = "é".repeat(600);
        let t = truncate(&s, 1000);
        assert!(t.len() <= 1000 + '…'.len_utf8());
        assert!(t.ends_with('…'));
    }
}
