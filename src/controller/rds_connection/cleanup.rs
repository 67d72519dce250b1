//! Cleanup: release the endpoint behind the finalizer, or let go without a cloud call.

use kube::ResourceExt;
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use tracing::warn;

use super::act;
use super::decide::{self, Cleanup};
use super::report::{self, Reason, Report};
use super::requests;
use crate::controller::Error;
use crate::controller::conditions::Phase;
use crate::controller::failpoint::{self, Failpoint};
use crate::controller::runtime::Runtime;
use crate::crd::RdsConnection;

/// Releases the endpoint of an object being deleted; `Ok` lets the finalizer go.
pub async fn cleanup(rt: &Runtime<RdsConnection>, obj: &RdsConnection) -> Result<Action, Error> {
    let spec = &obj.spec;
    let managed = obj
        .status
        .as_ref()
        .and_then(|s| s.connection_string.as_deref());
    match decide::cleanup(spec, managed) {
        Cleanup::Forget { reason, message } => {
            rt.events
                .publish(obj, EventType::Normal, reason.as_str(), &message)
                .await;
            return Ok(Action::await_change());
        }
        Cleanup::Release => {}
    }
    let namespace = obj.namespace().unwrap_or_default();
    let scope = match rt
        .ctx
        .scope(&namespace, spec.credentials_ref.as_ref(), &spec.region)
        .await
    {
        Ok(scope) => scope,
        Err(e) => return failed(rt, obj, e).await,
    };
    let net_info = match rt
        .ctx
        .rds
        .describe_db_instance_net_info(&scope, &spec.db_instance_id)
        .await
    {
        Ok(n) => n,
        Err(e) if e.is_not_found() => {
            let note = format!(
                "instance {} no longer exists; nothing to release",
                spec.db_instance_id
            );
            return released(rt, obj, &note).await;
        }
        Err(e) => return failed(rt, obj, e.into()).await,
    };
    let Some(endpoint) = decide::endpoint_to_release(spec, super::ownership(obj), &net_info) else {
        let note = format!(
            "instance {} has no public endpoint of this object; nothing to release (an endpoint \
             this object did not create or adopt is never released)",
            spec.db_instance_id
        );
        return released(rt, obj, &note).await;
    };
    let network_type = requests::release_network_type(spec, &net_info);
    if let Err(e) = act::release(
        rt,
        &scope,
        &spec.db_instance_id,
        &endpoint.connection_string,
        network_type,
    )
    .await
    {
        return failed(rt, obj, e.into()).await;
    }
    failpoint::kill_if(
        rt.ctx.config.failpoint,
        Failpoint::KillAfterReleaseInstanceConnection,
        &endpoint.connection_string,
    );
    let note = format!(
        "released public endpoint {} of instance {}",
        endpoint.connection_string, spec.db_instance_id
    );
    released(rt, obj, &note).await
}

/// Records the release (or that there was nothing to release); the finalizer may go.
async fn released(
    rt: &Runtime<RdsConnection>,
    obj: &RdsConnection,
    note: &str,
) -> Result<Action, Error> {
    rt.events
        .publish(obj, EventType::Normal, Reason::Released.as_str(), note)
        .await;
    Ok(Action::await_change())
}

/// A failed release: reported in the status, then retried or given up per the runtime's
/// deletion policy.
async fn failed(
    rt: &Runtime<RdsConnection>,
    obj: &RdsConnection,
    error: Error,
) -> Result<Action, Error> {
    let phase = if error.is_stalled() {
        Phase::of_error(&error)
    } else {
        Phase::reconciling(
            Reason::Releasing,
            format!("retrying release: {}", error.user_message()),
        )
    };
    if let Err(e) = report::write(rt, obj, &Report::phase(phase)).await {
        warn!(error = %e, "writing the release failure to status failed");
    }
    let endpoint = obj
        .status
        .as_ref()
        .and_then(|s| s.connection_string.clone())
        .unwrap_or_else(|| {
            format!(
                "the endpoint with prefix {}",
                obj.spec.connection_string_prefix
            )
        });
    let resource = format!("{endpoint} of instance {}", obj.spec.db_instance_id);
    rt.deletion_failed(obj, error, &resource).await
}
