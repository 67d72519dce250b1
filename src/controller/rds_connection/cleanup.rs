//! Deletion: release the endpoint behind the finalizer, or let go without a cloud call.

use k8s_openapi::jiff::Timestamp;
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use tracing::warn;

use super::Reconciler;
use super::decide::{self, Cleanup};
use super::report::{self, Report, reconciling};
use crate::cloud::rds::NetInfoEndpoint;
use crate::controller::Error;
use crate::crd::{RdsConnection, is_paused};

impl Reconciler {
    /// Releases the endpoint of an object being deleted; `Ok` lets the finalizer go.
    pub(super) async fn cleanup(&self, obj: &RdsConnection) -> Result<Action, Error> {
        let spec = &obj.spec;
        let managed = obj
            .status
            .as_ref()
            .and_then(|s| s.connection_string.as_deref());
        if let Cleanup::Forget { reason, message } =
            decide::cleanup(spec, managed, is_paused(&obj.metadata))
        {
            let type_ = if reason == "Paused" {
                EventType::Warning
            } else {
                EventType::Normal
            };
            report::publish(&self.recorder, obj, type_, reason, &message).await;
            return Ok(Action::await_change());
        }
        let scope = match self.scope(obj).await {
            Ok(scope) => scope,
            Err(e) => return self.cleanup_failed(obj, e).await,
        };
        let net_info = match self
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
                report::publish(&self.recorder, obj, EventType::Normal, "Released", &note).await;
                return Ok(Action::await_change());
            }
            Err(e) => return self.cleanup_failed(obj, e.into()).await,
        };
        let Some(NetInfoEndpoint {
            connection_string, ..
        }) = decide::endpoint_to_release(spec, managed, &net_info)
        else {
            let note = format!(
                "instance {} has no public endpoint of this object; nothing to release",
                spec.db_instance_id
            );
            report::publish(&self.recorder, obj, EventType::Normal, "Released", &note).await;
            return Ok(Action::await_change());
        };
        let released = self
            .ctx
            .rds
            .release_instance_connection(
                &scope,
                &spec.db_instance_id,
                connection_string,
                decide::release_network_type(spec, &net_info),
            )
            .await;
        match released {
            Ok(()) => {}
            Err(e) if e.is_not_found() => {}
            Err(e) => return self.cleanup_failed(obj, e.into()).await,
        }
        let note = format!(
            "released public endpoint {connection_string} of instance {}",
            spec.db_instance_id
        );
        report::publish(&self.recorder, obj, EventType::Normal, "Released", &note).await;
        Ok(Action::await_change())
    }

    /// A failed release. Transient failures (busy instance, throttling, outages) retry with
    /// backoff for as long as they last; failures only the user can fix (credentials, a
    /// rejected call) retry until `deletion_timeout` has passed since the deletion was
    /// requested, then the finalizer goes with a Warning Event naming what may remain.
    async fn cleanup_failed(&self, obj: &RdsConnection, error: Error) -> Result<Action, Error> {
        let requested = obj.metadata.deletion_timestamp.as_ref().map(|t| t.0);
        let timeout = self.ctx.config.deletion_timeout;
        if error.is_stalled() && decide::give_up_release(requested, Timestamp::now(), timeout) {
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
            let note = format!(
                "gave up releasing {endpoint} of instance {} after {timeout:?}: {error}; the \
                 finalizer was removed and the endpoint may remain: release it in the Alibaba \
                 Cloud console",
                obj.spec.db_instance_id
            );
            warn!(%note, "abandoning release");
            report::publish(
                &self.recorder,
                obj,
                EventType::Warning,
                "CloudResourceMayRemain",
                &note,
            )
            .await;
            return Ok(Action::await_change());
        }
        let phase = if error.is_stalled() {
            report::phase_of_error(&error)
        } else {
            reconciling(
                "Releasing",
                format!("retrying release: {}", error.user_message()),
            )
        };
        if let Err(e) = self.write_status(obj, &Report::phase(phase)).await {
            warn!(error = %e, "writing the release failure to status failed");
        }
        Err(error)
    }
}
