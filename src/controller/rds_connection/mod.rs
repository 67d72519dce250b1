//! RdsConnection controller: allocates, modifies and releases the public endpoint of an
//! ApsaraDB RDS instance, and publishes it in a Secret.
//!
//! Each reconcile reads as observe → decide → act → report:
//! - observe: `DescribeDBInstanceAttribute` (status) and `DescribeDBInstanceNetInfo`
//!   (endpoints), unless the object is Ready for its generation and was synced less than
//!   `resync_period` ago, in which case no cloud call is made at all;
//! - decide: [`decide::next_step`], a pure function of spec, status and observation;
//! - act: at most one mutating call (Allocate or Modify); a busy instance is never waited for
//!   in the worker, the object is requeued after `instance_poll_interval` instead;
//! - report: status by server-side apply, one Event per Ready transition, the endpoint Secret
//!   once Ready.
//!
//! Deletion releases the endpoint (`ReleaseInstanceConnection`) behind the finalizer;
//! "not found" of instance or endpoint counts as released. `deletionPolicy: Retain` and the
//! pause annotation drop the finalizer without a cloud call. When the release keeps failing for
//! a reason only the user can fix (credentials Secret gone, key rejected, call refused), it is
//! retried with backoff until `deletion_timeout` has passed since the deletion was requested,
//! then abandoned with a Warning Event `CloudResourceMayRemain` naming the endpoint that may be
//! left behind: a namespace being deleted takes the credentials Secret with it, and the object
//! must not hang forever. Transient failures (busy instance, throttling) retry until they pass.

mod cleanup;
mod decide;
mod report;

use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::jiff::Timestamp;
use kube::api::Api;
use kube::runtime::controller::{self, Action, Controller};
use kube::runtime::events::Recorder;
use kube::runtime::finalizer::{self, finalizer};
use kube::runtime::watcher;
use kube::{Resource, ResourceExt};
use tracing::{Instrument, info, info_span, warn};

use self::decide::{Observed, Step};
use self::report::{EndpointView, MANAGED_BY_LABEL, Report, ready, reconciling, stalled};
use super::backoff::{Backoff, FailureKind};
use super::conditions::Phase;
use super::own_writes::OwnWrites;
use super::{Context, Error, FINALIZER};
use crate::cloud::{CloudError, ErrorKind, Scope};
use crate::crd::{RdsConnection, is_paused};

/// Error codes of Allocate / Modify meaning "that endpoint name exists": our own earlier
/// attempt, or another instance's endpoint. `InvalidConnectionString.Duplicate` arrives with
/// HTTP 404 and must not be read as "instance not found".
const NAME_CONFLICT_CODES: &[&str] = &[
    "InvalidConnectionString.Duplicate",
    "OtherEndpoint.Exist",
    "NetTypeExists",
];

/// Whether a mutating call was refused because the instance is busy with another change
/// (`OperationDenied.DBInstanceStatus`, `IncorrectDBInstanceState`, ...): retryable, and sent
/// with a 4xx status, unlike outages (5xx, no response).
fn is_busy(e: &CloudError) -> bool {
    e.kind == ErrorKind::Retryable && e.http_status.is_some_and(|s| (400..500).contains(&s))
}

/// Runs the RdsConnection controller until the task is dropped or the process receives a signal.
pub async fn run(ctx: Arc<Context>) {
    let client = ctx.client.clone();
    let (connections, secrets) = match &ctx.config.watch_namespace {
        Some(ns) => (
            Api::<RdsConnection>::namespaced(client.clone(), ns),
            Api::<Secret>::namespaced(client.clone(), ns),
        ),
        None => (
            Api::<RdsConnection>::all(client.clone()),
            Api::<Secret>::all(client.clone()),
        ),
    };
    let reconciler = Arc::new(Reconciler {
        recorder: Recorder::new(client, ctx.reporter.clone()),
        backoff: Backoff::new(
            ctx.config.min_backoff,
            ctx.config.max_backoff,
            ctx.config.throttled_delay,
        ),
        ctx: ctx.clone(),
        writes: OwnWrites::default(),
    });
    let managed_secrets = format!("{}={}", MANAGED_BY_LABEL.0, MANAGED_BY_LABEL.1);
    info!(namespace = ?ctx.config.watch_namespace, concurrency = ctx.config.concurrency, "starting RdsConnection controller");
    let controller = Controller::new(connections, watcher::Config::default());
    super::observe_cache(&ctx, CONTROLLER, "RdsConnection", controller.store(), |o| {
        o.status.as_ref().map(|s| s.conditions.as_slice())
    });
    controller
        .owns(secrets, watcher::Config::default().labels(&managed_secrets))
        .with_config(controller::Config::default().concurrency(ctx.config.concurrency))
        .shutdown_on_signal()
        .run(
            |obj, r| {
                let metrics = r.ctx.metrics.clone();
                async move { metrics.reconcile(CONTROLLER, reconcile(obj, r)).await }
            },
            error_policy,
            reconciler,
        )
        .for_each(|result| async move {
            match result {
                Ok((obj, _)) => tracing::debug!(object = %obj, "reconciled"),
                Err(controller::Error::ReconcilerFailed(e, obj)) => {
                    warn!(object = %obj, reason = e.reason(), error = %e, "reconcile failed")
                }
                Err(e) => warn!(error = %e, "RdsConnection controller"),
            }
        })
        .await;
    info!("RdsConnection controller stopped");
}

/// Name of this controller in metrics.
const CONTROLLER: &str = "rdsconnection";

/// What every reconcile of this controller shares.
struct Reconciler {
    ctx: Arc<Context>,
    recorder: Recorder,
    backoff: Backoff,
    /// Status writes the watch cache may not show yet (read-your-writes).
    writes: OwnWrites<RdsConnection>,
}

/// Per-object state key: the UID, so a re-created object starts with a clean slate.
fn key(obj: &RdsConnection) -> String {
    obj.uid().unwrap_or_else(|| obj.name_any())
}

async fn reconcile(obj: Arc<RdsConnection>, r: Arc<Reconciler>) -> Result<Action, Error> {
    let namespace = obj
        .namespace()
        .ok_or_else(|| Error::InvalidSpec("an RdsConnection must live in a namespace".into()))?;
    let span = info_span!("reconcile", kind = "RdsConnection", namespace = %namespace, name = %obj.name_any());
    let api: Api<RdsConnection> = Api::namespaced(r.ctx.client.clone(), &namespace);
    let obj = r.writes.freshest(obj);
    let key = key(&obj);
    let result = finalizer(&api, FINALIZER, obj, |event| async {
        match event {
            finalizer::Event::Apply(o) => r.apply(&o).await,
            finalizer::Event::Cleanup(o) => {
                let done = r.cleanup(&o).await;
                if done.is_ok() {
                    r.writes.forget(&o);
                }
                done
            }
        }
    })
    .instrument(span)
    .await;
    match result {
        Ok(action) => {
            r.backoff.reset(&key);
            Ok(action)
        }
        Err(finalizer::Error::ApplyFailed(e) | finalizer::Error::CleanupFailed(e)) => Err(e),
        Err(finalizer::Error::AddFinalizer(e) | finalizer::Error::RemoveFinalizer(e)) => {
            Err(Error::Kube(e))
        }
        Err(e) => Err(Error::Finalizer(e.to_string())),
    }
}

/// Requeue after a failed reconcile: per-object exponential backoff with jitter, longer when
/// throttled.
fn error_policy(obj: Arc<RdsConnection>, error: &Error, r: Arc<Reconciler>) -> Action {
    Action::requeue(
        r.backoff
            .record_failure(&key(&obj), FailureKind::from(error)),
    )
}

impl Reconciler {
    /// Brings the endpoint to the spec (finalizer in place).
    async fn apply(&self, obj: &RdsConnection) -> Result<Action, Error> {
        let config = &self.ctx.config;
        if is_paused(&obj.metadata) {
            let phase = stalled(
                "Paused",
                "reconciliation paused by annotation db.alicloud.dev/paused=\"true\"; no cloud calls are made",
            );
            self.write_status(obj, &Report::phase(phase)).await?;
            return Ok(Action::await_change());
        }
        if let Err(message) = decide::validate(&obj.spec) {
            self.write_status(obj, &Report::phase(stalled("InvalidSpec", message)))
                .await?;
            return Ok(Action::await_change());
        }
        let generation = obj.meta().generation;
        if let Some(wait) = decide::fresh_for(
            obj.status.as_ref(),
            generation,
            Timestamp::now(),
            config.resync_period,
        ) {
            // Ready and synced recently: only make sure the Secret is still there.
            if let Err(e) = self.secret_from_status(obj).await {
                self.write_status(obj, &Report::phase(report::phase_of_error(&e)))
                    .await?;
                return Err(e);
            }
            return Ok(Action::requeue(wait));
        }
        let (mut report, action) = match self.reconcile_endpoint(obj).await {
            Ok(outcome) => outcome,
            Err(e) => {
                self.report_error(obj, &e).await;
                return Err(e);
            }
        };
        if let (Phase::Ready { .. }, Some(endpoint)) = (&report.phase, &report.endpoint)
            && let Err(e) = report::apply_secret(
                &self.ctx.client,
                obj,
                endpoint,
                endpoint.port.unwrap_or(obj.spec.port),
            )
            .await
        {
            report.phase = report::phase_of_error(&e);
            self.write_status(obj, &report).await?;
            return Err(e);
        }
        self.write_status(obj, &report).await?;
        Ok(action)
    }

    /// Observe → decide → act for a live object; returns what to report and when to look again.
    async fn reconcile_endpoint(&self, obj: &RdsConnection) -> Result<(Report, Action), Error> {
        let spec = &obj.spec;
        let managed = obj
            .status
            .as_ref()
            .and_then(|s| s.connection_string.as_deref());
        let namespace = obj.namespace().unwrap_or_default();
        let scope = self
            .ctx
            .scope_protecting_credentials(&namespace, spec.credentials_ref.as_ref(), &spec.region)
            .await?;
        let observed = match self.observe(&scope, &spec.db_instance_id).await {
            Ok(o) => o,
            Err(e) if e.is_not_found() => return Ok(self.instance_not_found(obj, &e)),
            Err(e) => return Err(e.into()),
        };
        let step = decide::next_step(spec, managed, &observed);
        let rds = &self.ctx.rds;
        let poll = Action::requeue(self.ctx.config.instance_poll_interval);
        let result = match &step {
            Step::Allocate(request) => match rds
                .allocate_instance_public_connection(&scope, request)
                .await
            {
                Ok(connection_string) => {
                    let message = format!(
                        "allocating public endpoint {connection_string}:{}",
                        request.port
                    );
                    let endpoint = EndpointView {
                        connection_string,
                        port: Some(request.port),
                        ip_address: None,
                    };
                    let report = Report {
                        endpoint: Some(endpoint),
                        ..self.observed_report(reconciling("Allocating", message), &observed)
                    };
                    return Ok((report, poll));
                }
                Err(e) => e,
            },
            Step::Modify { endpoint, request } => match rds
                .modify_db_instance_connection_string(&scope, request)
                .await
            {
                Ok(()) => {
                    let message = format!(
                        "modifying {} to prefix {} port {}",
                        endpoint.connection_string, request.connection_string_prefix, request.port
                    );
                    let report = Report {
                        endpoint: Some(EndpointView::from(endpoint)),
                        ..self.observed_report(reconciling("Modifying", message), &observed)
                    };
                    return Ok((report, poll));
                }
                Err(e) => e,
            },
            settled => return Ok(self.settle(settled, &observed)),
        };
        if is_busy(&result) {
            // The instance got busy between observe and act: wait, as if it had been seen busy.
            let message = format!(
                "the instance is busy with another change ({}); waiting",
                crate::controller::cloud_message(&result)
            );
            let report = Report {
                endpoint: decide::our_endpoint(spec, managed, &observed.net_info)
                    .map(EndpointView::from),
                synced: true,
                ..Report::phase(reconciling("WaitingForInstance", message))
            };
            return Ok((report, poll));
        }
        if !NAME_CONFLICT_CODES.iter().any(|code| result.has_code(code)) {
            return Err(result.into());
        }
        // The name exists somewhere. Ours (an earlier attempt got through) or another instance's?
        info!(code = ?result.code, "endpoint name conflict; reading the instance's endpoints again");
        let observed = match self.observe(&scope, &spec.db_instance_id).await {
            Ok(o) => o,
            Err(e) if e.is_not_found() => return Ok(self.instance_not_found(obj, &e)),
            Err(e) => return Err(e.into()),
        };
        Ok(self.settle(
            &decide::after_duplicate(spec, managed, &observed),
            &observed,
        ))
    }

    /// Report and requeue for a step that makes no cloud call.
    fn settle(&self, step: &Step, observed: &Observed) -> (Report, Action) {
        let config = &self.ctx.config;
        match step {
            Step::Ready { endpoint } => {
                let message = format!(
                    "public endpoint {}:{} is available",
                    endpoint.connection_string,
                    endpoint.port.unwrap_or_default()
                );
                let report = Report {
                    endpoint: Some(endpoint.into()),
                    ..self.observed_report(ready("Available", message), observed)
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
                    ..self.observed_report(reconciling("WaitingForInstance", message), observed)
                };
                (report, Action::requeue(config.instance_poll_interval))
            }
            Step::Stall { reason, message } => (
                self.observed_report(stalled(reason.as_str(), message.clone()), observed),
                Action::requeue(config.resync_period),
            ),
            // Mutating steps are acted on by the caller; reaching here means "look again".
            Step::Allocate(_) | Step::Modify { .. } => (
                self.observed_report(
                    reconciling("Reconciling", "re-reading the instance"),
                    observed,
                ),
                Action::requeue(config.instance_poll_interval),
            ),
        }
    }

    fn observed_report(&self, phase: Phase, observed: &Observed) -> Report {
        Report {
            phase,
            endpoint: None,
            instance_status: Some(observed.instance_status.clone()),
            synced: true,
        }
    }

    fn instance_not_found(&self, obj: &RdsConnection, e: &CloudError) -> (Report, Action) {
        let message = format!(
            "RDS instance {} does not exist in region {} ({})",
            obj.spec.db_instance_id,
            obj.spec.region,
            crate::controller::cloud_message(e)
        );
        let report = Report {
            synced: true,
            ..Report::phase(stalled("InstanceNotFound", message))
        };
        (report, Action::requeue(self.ctx.config.resync_period))
    }

    /// Reads the instance's status and endpoints.
    async fn observe(&self, scope: &Scope, db_instance_id: &str) -> Result<Observed, CloudError> {
        let rds = &self.ctx.rds;
        let (attribute, net_info) = tokio::join!(
            rds.describe_db_instance_attribute(scope, db_instance_id),
            rds.describe_db_instance_net_info(scope, db_instance_id),
        );
        Ok(Observed {
            instance_status: attribute?.db_instance_status,
            net_info: net_info?,
        })
    }

    async fn scope(&self, obj: &RdsConnection) -> Result<Scope, Error> {
        let namespace = obj.namespace().unwrap_or_default();
        self.ctx
            .scope(
                &namespace,
                obj.spec.credentials_ref.as_ref(),
                &obj.spec.region,
            )
            .await
    }

    /// Re-applies the Secret from what the status recorded (Ready, nothing to read).
    async fn secret_from_status(&self, obj: &RdsConnection) -> Result<(), Error> {
        let Some(status) = &obj.status else {
            return Ok(());
        };
        let Some(connection_string) = &status.connection_string else {
            return Ok(());
        };
        let endpoint = EndpointView {
            connection_string: connection_string.clone(),
            port: status.port,
            ip_address: status.ip_address.clone(),
        };
        report::apply_secret(
            &self.ctx.client,
            obj,
            &endpoint,
            status.port.unwrap_or(obj.spec.port),
        )
        .await
    }

    async fn write_status(&self, obj: &RdsConnection, report: &Report) -> Result<(), Error> {
        report::write_status(&self.ctx.client, &self.recorder, &self.writes, obj, report).await
    }

    /// Puts a failed reconcile into the status; a failure to do so is only logged, the
    /// original error is what the caller returns.
    async fn report_error(&self, obj: &RdsConnection, error: &Error) {
        if let Err(e) = self
            .write_status(obj, &Report::phase(report::phase_of_error(error)))
            .await
        {
            warn!(error = %e, "writing the error to status failed");
        }
    }
}
