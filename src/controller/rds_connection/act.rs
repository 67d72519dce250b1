//! Act: the only place that changes anything at RDS for this kind: one Allocate or Modify per
//! reconcile, and the release on deletion. The prefix annotation is written before the call
//! it announces (intent persisted before acting).

use kube::runtime::controller::Action;
use tracing::info;

use super::decide::{self, Step};
use super::observe::{self, Observed};
use super::report::{self, EndpointView, Reason, Report};
use crate::cloud::{CloudError, Scope};
use crate::controller::conditions::Phase;
use crate::controller::failpoint::{self, Failpoint};
use crate::controller::runtime::Runtime;
use crate::controller::{Error, cloud_message};
use crate::crd::{CONNECTION_STRING_PREFIX_ANNOTATION, RdsConnection};

/// Error codes of Allocate / Modify meaning "that endpoint name exists": our own earlier
/// attempt, or another instance's endpoint. `InvalidConnectionString.Duplicate` arrives with
/// HTTP 404 and must not be read as "instance not found".
const NAME_CONFLICT_CODES: &[&str] = &[
    "InvalidConnectionString.Duplicate",
    "OtherEndpoint.Exist",
    "NetTypeExists",
];

/// Records the prefix `step` needs in the annotation (see [`decide::prefix_to_record`]), then
/// performs `step` (at most one mutating call) and says what to report and when to look again.
/// A failed annotation write fails the reconcile before any call to RDS.
pub async fn act(
    rt: &Runtime<RdsConnection>,
    scope: &Scope,
    obj: &RdsConnection,
    step: Step,
    observed: Observed,
) -> Result<(Report, Action), Error> {
    let mut owned = super::ownership(obj);
    let recorded = decide::prefix_to_record(&step, owned.annotated);
    if let Some(prefix) = recorded.as_deref() {
        record_prefix(rt, obj, prefix).await?;
        owned.annotated = Some(prefix);
    }
    let config = &rt.ctx.config;
    let rds = &*rt.ctx.rds;
    let poll = Action::requeue(config.instance_poll_interval);
    let failure = match &step {
        Step::Allocate(request) => {
            match rds
                .allocate_instance_public_connection(scope, request)
                .await
            {
                Ok(connection_string) => {
                    failpoint::kill_if(
                        config.failpoint,
                        Failpoint::KillAfterAllocateInstancePublicConnection,
                        &connection_string,
                    );
                    let message = format!(
                        "allocating public endpoint {connection_string}:{}",
                        request.port
                    );
                    let report = Report {
                        endpoint: Some(EndpointView {
                            connection_string,
                            port: Some(request.port),
                            ip_address: None,
                        }),
                        ..Report::observed(
                            Phase::reconciling(Reason::Allocating, message),
                            &observed,
                        )
                    };
                    return Ok((report, poll));
                }
                Err(e) => e,
            }
        }
        Step::Modify { endpoint, request } => {
            match rds
                .modify_db_instance_connection_string(scope, request)
                .await
            {
                Ok(()) => {
                    failpoint::kill_if(
                        config.failpoint,
                        Failpoint::KillAfterModifyDbInstanceConnectionString,
                        &endpoint.connection_string,
                    );
                    let message = format!(
                        "modifying {} to prefix {} port {}",
                        endpoint.connection_string, request.connection_string_prefix, request.port
                    );
                    let report = Report {
                        endpoint: Some(EndpointView::from(endpoint)),
                        ..Report::observed(
                            Phase::reconciling(Reason::Modifying, message),
                            &observed,
                        )
                    };
                    return Ok((report, poll));
                }
                Err(e) => e,
            }
        }
        settled => return Ok(report::settle(settled, &observed, config)),
    };
    let spec = &obj.spec;
    if failure.is_busy() {
        // The instance got busy between observe and act: wait, as if it had been seen busy.
        let message = format!(
            "the instance is busy with another change ({}); waiting",
            cloud_message(&failure)
        );
        let report = Report {
            endpoint: decide::our_endpoint(spec, owned, &observed.net_info).map(EndpointView::from),
            synced: true,
            ..Report::phase(Phase::reconciling(Reason::WaitingForInstance, message))
        };
        return Ok((report, poll));
    }
    if !NAME_CONFLICT_CODES
        .iter()
        .any(|code| failure.has_code(code))
    {
        return Err(failure.into());
    }
    // The name exists somewhere. Ours (an earlier attempt got through) or another instance's?
    info!(code = ?failure.code, "endpoint name conflict; reading the instance's endpoints again");
    let observed = match observe::observe(rds, scope, &spec.db_instance_id).await {
        Ok(o) => o,
        Err(e) if e.is_not_found() => return Ok(report::instance_not_found(obj, &e, config)),
        Err(e) => return Err(e.into()),
    };
    let step = decide::after_duplicate(spec, owned, &observed);
    Ok(report::settle(&step, &observed, config))
}

/// Writes `prefix` to the annotation `db.alicloud.dev/connection-string-prefix` of `obj`; the
/// next reconcile sees it even before the watch cache does (deciding from the object without it
/// could take our own new endpoint for a foreign one).
async fn record_prefix(
    rt: &Runtime<RdsConnection>,
    obj: &RdsConnection,
    prefix: &str,
) -> Result<(), Error> {
    rt.annotate(obj, CONNECTION_STRING_PREFIX_ANNOTATION, prefix)
        .await?;
    info!(prefix, "recorded the endpoint prefix in the annotation");
    Ok(())
}

/// `ReleaseInstanceConnection` of `connection_string`; an endpoint or instance already gone
/// counts as released.
pub async fn release(
    rt: &Runtime<RdsConnection>,
    scope: &Scope,
    db_instance_id: &str,
    connection_string: &str,
    network_type: &str,
) -> Result<(), CloudError> {
    match rt
        .ctx
        .rds
        .release_instance_connection(scope, db_instance_id, connection_string, network_type)
        .await
    {
        Err(e) if e.is_not_found() => Ok(()),
        other => other,
    }
}
