//! Cleanup: what deletion does with the plan. It never hangs: see the module documentation of
//! the controller.

use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;

use super::decide::{self, Cleanup};
use super::report::{publish, report_without_event};
use super::{State, backup_plan_id};
use crate::cloud::dbs::StopMethod;
use crate::controller::Error;
use crate::controller::conditions::Phase;
use crate::crd::{BackupPlan, is_paused};

/// Deletion: release, stop or keep the plan, per [`decide::cleanup`].
pub(super) async fn cleanup(obj: &BackupPlan, state: &State) -> Result<Action, Error> {
    let ctx = &state.ctx;
    let id = backup_plan_id(obj);
    let token = obj.status.as_ref().and_then(|s| s.client_token.clone());
    let decision = decide::cleanup(
        &obj.spec,
        is_paused(&obj.metadata),
        id.as_deref(),
        token.as_deref(),
    );
    let (mut id, mut subscription, recover) = match decision {
        Cleanup::Forget {
            warning,
            reason,
            message,
        } => {
            let kind = if warning {
                EventType::Warning
            } else {
                EventType::Normal
            };
            publish(state, obj, kind, reason, message).await;
            return Ok(Action::await_change());
        }
        Cleanup::Release(id) => (id, false, false),
        Cleanup::StopSubscription(id) => (id, true, false),
        Cleanup::RecoverThenRelease(token) => (token, false, true),
    };
    let ns = obj.namespace().unwrap_or_default();
    let scope = ctx
        .scope(&ns, obj.spec.credentials_ref.as_ref(), &obj.spec.region)
        .await;
    // An adopted plan is billed as it was bought, whatever the spec says: releasing a
    // subscription plan is refused, so ask DBS before choosing between release and stop.
    if let Ok(scope) = &scope
        && !subscription
        && !recover
        && obj.spec.backup_plan_id.is_some()
    {
        match ctx.dbs.describe_backup_plan_billing(scope, &id).await {
            Ok(billing) if billing.buy_charge_type.eq_ignore_ascii_case("PREPAY") => {
                tracing::info!(backup_plan_id = %id, "adopted plan is a subscription: stopping it instead of releasing it");
                subscription = true;
            }
            // Pay-as-you-go, or gone (the release below says so too).
            Ok(_) => {}
            Err(e) if e.is_not_found() || e.has_code("InvalidJobId") => {}
            Err(e) => return give_up_or_retry(obj, state, &id, e.into()).await,
        }
    }
    let outcome = match scope {
        Ok(scope) if subscription => ctx.dbs.stop_backup_plan(&scope, &id, StopMethod::All).await,
        Ok(scope) if recover => {
            // `id` is the ClientToken here: the repeated create answers with the plan the lost
            // answer named (or, if the first call never arrived, a new one), released at once.
            let req = decide::create_request(&obj.spec, &id);
            match ctx.dbs.create_backup_plan(&scope, &req).await {
                Ok(created) => {
                    tracing::info!(backup_plan_id = %created.backup_plan_id, "recovered the plan of a lost CreateBackupPlan answer");
                    let outcome = ctx
                        .dbs
                        .release_backup_plan(&scope, &created.backup_plan_id)
                        .await;
                    id = created.backup_plan_id;
                    outcome
                }
                Err(e) => Err(e),
            }
        }
        Ok(scope) => ctx.dbs.release_backup_plan(&scope, &id).await,
        Err(e) => return give_up_or_retry(obj, state, &id, e).await,
    };
    match outcome {
        Ok(()) => {}
        Err(e) if e.is_not_found() || e.has_code("InvalidJobId") => {
            tracing::info!(backup_plan_id = %id, "backup plan already gone at DBS");
        }
        // A subscription plan that was never configured has nothing running to stop.
        Err(e) if subscription && e.has_code("BackupPlanNotConfigured") => {}
        Err(e) => return give_up_or_retry(obj, state, &id, e.into()).await,
    }
    state.inventory.forget(&id);
    if subscription {
        let message = format!(
            "Subscription plan {id} cannot be released through the API: it was stopped and billing \
             continues until the subscription expires (unsubscribe in the billing console)"
        );
        let mut status = obj.status.clone().unwrap_or_default();
        status.cloud_status = Some("pause".into());
        let phase = Phase::Reconciling {
            reason: "SubscriptionNotReleased".into(),
            message: message.clone(),
        };
        // The Warning below is the one Event of this transition.
        if let Err(e) = report_without_event(obj, state, status, phase).await {
            tracing::debug!(error = %e, "status of a deleted subscription plan not written");
        }
        publish(
            state,
            obj,
            EventType::Warning,
            "SubscriptionNotReleased",
            message,
        )
        .await;
    } else {
        publish(
            state,
            obj,
            EventType::Normal,
            "PlanReleased",
            format!("backup plan {id} released"),
        )
        .await;
    }
    Ok(Action::await_change())
}

/// A deletion that failed: transient failures retry (with backoff) for ever; failures only the
/// user can fix (credentials, rejected call) retry until `deletion_timeout` has passed since
/// the deletion was requested, then the finalizer goes and the plan may remain.
async fn give_up_or_retry(
    obj: &BackupPlan,
    state: &State,
    id: &str,
    e: Error,
) -> Result<Action, Error> {
    let requested = obj.metadata.deletion_timestamp.as_ref().map(|t| t.0);
    let timeout = state.ctx.config.deletion_timeout;
    if !e.is_stalled() {
        return Err(e);
    }
    if decide::give_up_cleanup(requested, Timestamp::now(), timeout) {
        let message = format!(
            "gave up releasing backup plan {id} after {timeout:?}: {}; the plan may remain at DBS",
            e.user_message()
        );
        publish(
            state,
            obj,
            EventType::Warning,
            "CloudResourceMayRemain",
            message,
        )
        .await;
        return Ok(Action::await_change());
    }
    let message = format!(
        "cannot release backup plan {id}: {}; the finalizer is removed anyway {timeout:?} after deletion",
        e.user_message()
    );
    publish(state, obj, EventType::Warning, e.reason(), message).await;
    Err(e)
}
