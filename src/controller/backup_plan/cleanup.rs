//! Cleanup: what deletion does with the plan, per [`decide::cleanup`]. It never creates a plan;
//! when its finalizer may go without a release is the runtime's rule (`controller::deletion`).

use kube::ResourceExt;
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;

use super::act::{self, Ended};
use super::decide::{self, Cleanup};
use super::observe::PlanInventory;
use super::report::{self, Reason};
use super::{backup_plan_id, requests};
use crate::cloud::Scope;
use crate::controller::Error;
use crate::controller::conditions::Phase;
use crate::controller::failpoint::{self, Failpoint};
use crate::controller::runtime::Runtime;
use crate::crd::BackupPlan;

/// Deletion: release, stop or keep the plan.
pub async fn cleanup(
    rt: &Runtime<BackupPlan>,
    inventory: &PlanInventory,
    obj: &BackupPlan,
) -> Result<Action, Error> {
    let id = backup_plan_id(obj);
    let token = obj.status.as_ref().and_then(|s| s.client_token.clone());
    let dbs = &*rt.ctx.dbs;
    let (target, ended) = match decide::cleanup(&obj.spec, id.as_deref(), token.as_deref()) {
        Cleanup::Forget {
            warning,
            reason,
            message,
        } => {
            let type_ = if warning {
                EventType::Warning
            } else {
                EventType::Normal
            };
            rt.events
                .publish(obj, type_, reason.as_str(), &message)
                .await;
            return Ok(Action::await_change());
        }
        Cleanup::Release(id) => {
            let ended = match scope(rt, obj).await {
                // A plan this object did not create (adopted, or found by name after its status
                // was lost) is billed as it was bought, whatever the spec says.
                Ok(s) if obj.status.as_ref().is_none_or(|s| s.created_at.is_none()) => {
                    act::release_adopted(dbs, &s, &id).await
                }
                Ok(s) => act::release(dbs, &s, &id).await,
                Err(e) => Err(e),
            };
            (id, ended)
        }
        Cleanup::StopSubscription(id) => {
            let ended = match scope(rt, obj).await {
                Ok(s) => act::stop_subscription(dbs, &s, &id).await,
                Err(e) => Err(e),
            };
            (id, ended)
        }
        Cleanup::FindThenRelease(token) => {
            let plan_name = requests::plan_name(
                &obj.spec,
                &obj.namespace().unwrap_or_default(),
                &obj.name_any(),
            );
            let created = obj.metadata.creation_timestamp.as_ref().map(|t| t.0);
            let found = match scope(rt, obj).await {
                Ok(s) => {
                    act::find_then_release(dbs, &s, &obj.spec, &plan_name, created, &token).await
                }
                Err(e) => Err(e),
            };
            let ended = match found {
                Ok(Some(ended)) => Ok(ended),
                Ok(None) => {
                    let message = format!(
                        "CreateBackupPlan was sent with ClientToken {token} but its answer was \
                         lost; DBS lists no plan named {plan_name:?} and no unconfigured plan \
                         created since this object: nothing to release"
                    );
                    rt.events
                        .publish(
                            obj,
                            EventType::Normal,
                            Reason::NothingToRelease.as_str(),
                            &message,
                        )
                        .await;
                    return Ok(Action::await_change());
                }
                Err(e) => Err(e),
            };
            (format!("the plan of ClientToken {token}"), ended)
        }
    };
    match ended {
        Ok(Ended::Released(id)) => {
            failpoint::kill_if(
                rt.ctx.config.failpoint,
                Failpoint::KillAfterReleaseBackupPlan,
                &id,
            );
            inventory.forget(&id);
            let note = format!(
                "backup plan {id} released (irreversible); backups already in DBS built-in \
                 storage are kept, and billed, until their retention period expires them"
            );
            rt.events
                .publish(obj, EventType::Normal, Reason::PlanReleased.as_str(), &note)
                .await;
        }
        Ok(Ended::Stopped(id)) => {
            // Not forgotten: still at DBS under its name, and the lookup by name before a create
            // answers from the cache.
            subscription_stopped(rt, obj, &id).await;
        }
        Err(e) => return failed(rt, obj, &target, e).await,
    }
    Ok(Action::await_change())
}

/// Credentials for the deletion's calls; cleanup never marks a Secret in use.
async fn scope(rt: &Runtime<BackupPlan>, obj: &BackupPlan) -> Result<Scope, Error> {
    let ns = obj.namespace().unwrap_or_default();
    rt.ctx
        .scope(&ns, obj.spec.credentials_ref.as_ref(), &obj.spec.region)
        .await
}

/// Says that a Subscription plan was stopped, not released: billing continues.
async fn subscription_stopped(rt: &Runtime<BackupPlan>, obj: &BackupPlan, id: &str) {
    let message = format!(
        "Subscription plan {id} cannot be released through the API, and subscriptions cannot be \
         unsubscribed: the plan was stopped and is billed until its term ends"
    );
    let mut status = obj.status.clone().unwrap_or_default();
    status.cloud_status = Some(crate::cloud::dbs::PlanStatus::Pause.to_string());
    let phase = Phase::reconciling(Reason::SubscriptionNotReleased, message.clone());
    // The Warning below is the one Event of this transition.
    if let Err(e) = report::write(rt, obj, status, &phase, false).await {
        tracing::debug!(error = %e, "status of a deleted subscription plan not written");
    }
    rt.events
        .publish(
            obj,
            EventType::Warning,
            Reason::SubscriptionNotReleased.as_str(),
            &message,
        )
        .await;
}

/// A deletion that failed: reported in the status, then retried or given up per the runtime's
/// deletion policy.
async fn failed(
    rt: &Runtime<BackupPlan>,
    obj: &BackupPlan,
    id: &str,
    error: Error,
) -> Result<Action, Error> {
    let status = obj.status.clone().unwrap_or_default();
    if let Err(e) = report::write(rt, obj, status, &Phase::of_error(&error), true).await {
        tracing::warn!(error = %e, "writing the release failure to status failed");
    }
    rt.deletion_failed(obj, error, &format!("backup plan {id}"))
        .await
}
