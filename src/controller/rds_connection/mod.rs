//! RdsConnection controller: allocates, modifies and releases the public endpoint of an
//! ApsaraDB RDS instance, and publishes it in a Secret.
//!
//! Each reconcile reads as observe → decide → act → report:
//! - observe: `DescribeDBInstanceAttribute` (status) and `DescribeDBInstanceNetInfo`
//!   (endpoints), unless the object is Ready for its generation and was synced less than
//!   `resync_period` ago, in which case no cloud call is made at all; a Ready object's periodic
//!   check also waits while the account's reads are backed up (`decide::check_deferral`);
//! - decide: `decide::next_step`, a pure function of spec, status, the prefix annotation and
//!   observation; only an endpoint this object created, already manages or was told to adopt
//!   (`spec.adopt`) is ever changed (see `decide`);
//! - act: the annotation `db.alicloud.dev/connection-string-prefix` is written before the
//!   mutating call it announces, then at most one mutating call (Allocate or Modify); a busy
//!   instance is never waited for in the worker, the object is requeued after
//!   `instance_poll_interval` instead;
//! - report: status by server-side apply, one Event per Ready transition, the endpoint Secret
//!   once Ready (never a Secret the operator did not create: `SecretExists`).
//!
//! Deletion releases our endpoint (`ReleaseInstanceConnection`), by the same ownership rule,
//! behind the finalizer; "not found" of instance or endpoint counts as released, and
//! `deletionPolicy: Retain` drops the finalizer without a cloud call. Pause, abandon,
//! `AlreadyManaged` and when a failing release may give up are the runtime's rules
//! (`controller::deletion`).

mod act;
mod cleanup;
mod decide;
mod observe;
mod report;
mod requests;

use std::sync::Arc;

use async_trait::async_trait;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::jiff::Timestamp;
use kube::runtime::controller::Action;
use kube::runtime::watcher;
use kube::{Resource, ResourceExt};

use self::decide::Ownership;
use self::report::{MANAGED_BY_LABEL, Reason, Report, SecretWrite};
use super::claims::Claim;
use super::conditions::{Phase, State};
use super::runtime::{self, Reconciler, Runtime};
use super::{Context, Error};
use crate::cloud::Scope;
use crate::crd::{CONNECTION_STRING_PREFIX_ANNOTATION, RdsConnection, annotation};

/// Runs the RdsConnection controller until the task is dropped or the process receives a signal.
pub async fn run(ctx: Arc<Context>) {
    let managed_secrets = format!("{}={}", MANAGED_BY_LABEL.0, MANAGED_BY_LABEL.1);
    let secrets = ctx.watched::<Secret>();
    runtime::run(
        ctx,
        RdsConnections,
        watcher::Config::default(),
        |controller| controller.owns(secrets, watcher::Config::default().labels(&managed_secrets)),
    )
    .await;
}

/// The instance whose public endpoint the object manages; created (or recorded) by it once its
/// status or its annotation names an endpoint.
fn claim(obj: &RdsConnection) -> Option<Claim> {
    let owned = ownership(obj);
    Some(Claim {
        key: format!("{}/{}", obj.spec.region, obj.spec.db_instance_id),
        created: owned.managed.is_some() || owned.annotated.is_some(),
    })
}

/// The RdsConnection kind, as the runtime drives it.
struct RdsConnections;

#[async_trait]
impl Reconciler for RdsConnections {
    type Object = RdsConnection;
    const CONTROLLER: &'static str = "rdsconnection";

    async fn apply(
        &self,
        obj: &RdsConnection,
        rt: &Runtime<RdsConnection>,
    ) -> Result<Action, Error> {
        if let Err(message) = decide::validate(&obj.spec) {
            let phase = Phase::stalled(Reason::InvalidSpec, message);
            report::write(rt, obj, &Report::phase(phase)).await?;
            return Ok(Action::await_change());
        }
        let generation = obj.meta().generation;
        let resync = rt.ctx.config.resync_period;
        let (status, now) = (obj.status.as_ref(), Timestamp::now());
        // The scope a periodic check looked up to ask about its account's backlog serves the
        // reconcile that follows when the check goes ahead.
        let mut scope = None;
        let wait = match decide::fresh_for(status, generation, now, resync) {
            Some(wait) => Some(wait),
            None if decide::deferrable_check(status, generation, now, resync) => {
                // Unreadable credentials: the check goes ahead and reports why.
                scope = scope_of(rt, obj).await.ok();
                match &scope {
                    Some(scope) => {
                        decide::check_deferral(observe::backlog(&*rt.ctx.rds, scope).await)
                    }
                    None => None,
                }
            }
            None => None,
        };
        if let Some(wait) = wait {
            // Ready and synced recently (or its check yields to other objects' reads): only
            // make sure the Secret is still there.
            return match report::secret_from_status(&rt.ctx, obj).await {
                Ok(SecretWrite::Written) => Ok(Action::requeue(wait)),
                Ok(SecretWrite::Refused { message }) => stop_at_secret(rt, obj, Ok(message)).await,
                Err(e) => stop_at_secret(rt, obj, Err(e)).await,
            };
        }
        // Before any cloud call: an endpoint allocated for a Secret that cannot receive it
        // would be public for nothing.
        match report::secret_refusal(&rt.ctx, obj).await {
            Ok(None) => {}
            Ok(Some(message)) => return stop_at_secret(rt, obj, Ok(message)).await,
            Err(e) => return stop_at_secret(rt, obj, Err(e)).await,
        }
        let (mut report, mut action) = match reconcile_endpoint(rt, obj, scope).await {
            Ok(outcome) => outcome,
            Err(e) => {
                report::write_error(rt, obj, &e).await;
                return Err(e);
            }
        };
        if let (State::Ready, Some(endpoint)) = (report.phase.state, &report.endpoint) {
            let port = endpoint.port.unwrap_or(obj.spec.port);
            match report::apply_secret(&rt.ctx, obj, endpoint, port).await {
                Ok(SecretWrite::Written) => {}
                // Left alone; looked at again when the object changes, or at the resync.
                Ok(SecretWrite::Refused { message }) => {
                    report.phase = Phase::stalled(Reason::SecretExists, message);
                    action = Action::requeue(resync);
                }
                Err(e) => {
                    report.phase = Phase::of_error(&e);
                    report::write(rt, obj, &report).await?;
                    return Err(e);
                }
            }
        }
        report::write(rt, obj, &report).await?;
        Ok(action)
    }

    async fn cleanup(
        &self,
        obj: &RdsConnection,
        rt: &Runtime<RdsConnection>,
    ) -> Result<Action, Error> {
        cleanup::cleanup(rt, obj).await
    }

    fn resource(obj: &RdsConnection) -> String {
        let endpoint = obj
            .status
            .as_ref()
            .and_then(|s| s.connection_string.clone())
            .unwrap_or_else(|| "the public endpoint".to_owned());
        format!("{endpoint} of RDS instance {}", obj.spec.db_instance_id)
    }
}

/// The endpoint Secret cannot be written: `Stalled`/`SecretExists` with the refusal's message
/// (looked at again after a resync period), or the error reading it, reported and returned.
async fn stop_at_secret(
    rt: &Runtime<RdsConnection>,
    obj: &RdsConnection,
    refusal: Result<String, Error>,
) -> Result<Action, Error> {
    match refusal {
        Ok(message) => {
            let phase = Phase::stalled(Reason::SecretExists, message);
            report::write(rt, obj, &Report::phase(phase)).await?;
            Ok(Action::requeue(rt.ctx.config.resync_period))
        }
        Err(e) => {
            report::write(rt, obj, &Report::phase(Phase::of_error(&e))).await?;
            Err(e)
        }
    }
}

/// The credentials (marked as in use) and region `obj`'s calls go out with.
async fn scope_of(rt: &Runtime<RdsConnection>, obj: &RdsConnection) -> Result<Scope, Error> {
    let spec = &obj.spec;
    let namespace = obj.namespace().unwrap_or_default();
    rt.ctx
        .scope_protecting_credentials(&namespace, spec.credentials_ref.as_ref(), &spec.region)
        .await
}

/// Observe → decide → act for a live object (in `scope`, looked up here when not given);
/// returns what to report and when to look again.
async fn reconcile_endpoint(
    rt: &Runtime<RdsConnection>,
    obj: &RdsConnection,
    scope: Option<Scope>,
) -> Result<(Report, Action), Error> {
    let spec = &obj.spec;
    let scope = match scope {
        Some(scope) => scope,
        None => scope_of(rt, obj).await?,
    };
    let observed = match observe::observe(&*rt.ctx.rds, &scope, &spec.db_instance_id).await {
        Ok(o) => o,
        Err(e) if e.is_not_found() => {
            return Ok(report::instance_not_found(obj, &e, &rt.ctx.config));
        }
        Err(e) => return Err(e.into()),
    };
    let step = decide::next_step(spec, ownership(obj), &observed);
    act::act(rt, &scope, obj, step, observed).await
}

/// What `obj` remembers of its endpoint: `status.connectionString` and the prefix annotation.
fn ownership(obj: &RdsConnection) -> Ownership<'_> {
    Ownership {
        managed: obj
            .status
            .as_ref()
            .and_then(|s| s.connection_string.as_deref()),
        annotated: annotation(&obj.metadata, CONNECTION_STRING_PREFIX_ANNOTATION),
    }
}
