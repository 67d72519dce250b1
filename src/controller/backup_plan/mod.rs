//! BackupPlan controller: keeps a DBS backup plan created, configured, started and in line with
//! its `BackupPlan` object, and releases (or stops, or keeps) it when the object is deleted.
//!
//! Each reconcile reads as observe → decide → act → report: `decide` picks the one next step
//! from the spec, the status and the observed plan (pure, table-tested); this module performs
//! the step's one cloud call and writes the status (server-side apply, field manager
//! `alicloud-db-operator`) plus one Event per Ready transition. Steady-state observations come
//! from the shared `sweep::PlanInventory`, filled by one batched listing per account, region
//! and resync period.
//!
//! Deletion never hangs: paused objects and `deletionPolicy: Retain` drop the finalizer without
//! a cloud call; a plan already gone counts as released; when credentials cannot be resolved
//! (or DBS keeps rejecting the call) for `deletion_timeout` after the deletion was requested,
//! the finalizer is removed anyway with a Warning Event `CloudResourceMayRemain`.

mod apply;
mod cleanup;
mod decide;
mod report;
mod sweep;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::Secret;
use kube::core::PartialObjectMeta;
use kube::runtime::controller::{Action, Config as ControllerRuntimeConfig, Controller};
use kube::runtime::events::Recorder;
use kube::runtime::finalizer::{Event as FinalizerEvent, finalizer};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Api, ResourceExt};

use self::apply::apply;
use self::cleanup::cleanup;
use self::sweep::PlanInventory;
use super::backoff::{self, FailureKind, Schedule};
use super::own_writes::OwnWrites;
use super::{Context, Error, FINALIZER, lock};
use crate::crd::BackupPlan;

/// What the BackupPlan controller keeps between reconciles.
struct State {
    ctx: Arc<Context>,
    recorder: Recorder,
    inventory: PlanInventory,
    failures: Mutex<HashMap<ObjectRef<BackupPlan>, Failures>>,
    /// Status writes the watch cache may not show yet (read-your-writes).
    writes: OwnWrites<BackupPlan>,
}

/// Consecutive failed reconciles of one object, and when it may be tried again.
struct Failures {
    count: u32,
    retry_at: Instant,
    generation: Option<i64>,
}

/// Runs the BackupPlan controller until the process receives SIGTERM or SIGINT (in-flight
/// reconciles finish first) or the task is dropped.
pub async fn run(ctx: Arc<Context>) {
    let api: Api<BackupPlan> = match &ctx.config.watch_namespace {
        Some(ns) => Api::namespaced(ctx.client.clone(), ns),
        None => Api::all(ctx.client.clone()),
    };
    let config = ControllerRuntimeConfig::default().concurrency(ctx.config.concurrency);
    let state = Arc::new(State {
        recorder: Recorder::new(ctx.client.clone(), ctx.reporter.clone()),
        ctx,
        inventory: PlanInventory::default(),
        failures: Mutex::default(),
        writes: OwnWrites::default(),
    });
    let secrets: Api<PartialObjectMeta<Secret>> = match &state.ctx.config.watch_namespace {
        Some(ns) => Api::namespaced(state.ctx.client.clone(), ns),
        None => Api::all(state.ctx.client.clone()),
    };
    let controller = Controller::new(api, watcher::Config::default().any_semantic());
    let plans = controller.store();
    super::observe_cache(&state.ctx, CONTROLLER, "BackupPlan", plans.clone(), |o| {
        o.status.as_ref().map(|s| s.conditions.as_slice())
    });
    // Secrets are watched for their metadata only: a change of resourceVersion is all the
    // trigger needs, and Secret data (every Secret's, in the watched namespaces) never flows
    // through the operator. The password itself is read by name when a plan needs it.
    controller
        .watches(
            secrets,
            watcher::Config::default().any_semantic(),
            move |secret| referencing_plans(&plans.state(), &secret),
        )
        .with_config(config)
        .shutdown_on_signal()
        .run(
            |obj, state| {
                let metrics = state.ctx.metrics.clone();
                async move { metrics.reconcile(CONTROLLER, reconcile(obj, state)).await }
            },
            error_policy,
            state,
        )
        .for_each(|result| async move {
            match result {
                Ok((obj, _)) => tracing::debug!(object = %obj, "reconciled BackupPlan"),
                Err(e) => tracing::debug!(error = %e, "BackupPlan reconcile failed"),
            }
        })
        .await;
}

/// Name of this controller in metrics.
const CONTROLLER: &str = "backupplan";

/// The plans whose password or credentials live in `secret`: a change of the Secret (a rotated
/// password, fixed credentials) reconciles them at once instead of at the next resync.
fn referencing_plans(
    plans: &[Arc<BackupPlan>],
    secret: &PartialObjectMeta<Secret>,
) -> Vec<ObjectRef<BackupPlan>> {
    let name = secret.name_any();
    plans
        .iter()
        .filter(|p| p.namespace() == secret.namespace())
        .filter(|p| {
            let password = p.spec.source.password_secret_ref.as_ref().map(|r| &r.name);
            let credentials = p.spec.credentials_ref.as_ref().map(|r| &r.name);
            password == Some(&name) || credentials == Some(&name)
        })
        .map(|p| ObjectRef::from_obj(&**p))
        .collect()
}

/// One reconcile: the finalizer helper adds the finalizer before anything else and routes to
/// [`apply`] or [`cleanup`].
async fn reconcile(obj: Arc<BackupPlan>, state: Arc<State>) -> Result<Action, Error> {
    let ns = obj
        .namespace()
        .ok_or_else(|| Error::InvalidSpec("BackupPlan without namespace".into()))?;
    let api: Api<BackupPlan> = Api::namespaced(state.ctx.client.clone(), &ns);
    let obj = state.writes.freshest(obj);
    let key = ObjectRef::from_obj(&*obj);
    if let Some(wait) = backing_off(&state, &key, &obj) {
        // Our own status write after a failure triggers a watch event; it must not cut the
        // backoff short. A spec change or a deletion does.
        return Ok(Action::requeue(wait));
    }
    let result = finalizer(&api, FINALIZER, obj, |event| async {
        match event {
            FinalizerEvent::Apply(obj) => apply(&obj, &state).await,
            FinalizerEvent::Cleanup(obj) => {
                let done = cleanup(&obj, &state).await;
                if done.is_ok() {
                    state.writes.forget(&obj);
                }
                done
            }
        }
    })
    .await
    .map_err(|e| match e {
        kube::runtime::finalizer::Error::ApplyFailed(e)
        | kube::runtime::finalizer::Error::CleanupFailed(e) => e,
        other => Error::Finalizer(other.to_string()),
    });
    if result.is_ok() {
        lock(&state.failures).remove(&key);
    }
    result
}

/// Per-object exponential backoff with jitter; throttling waits at least `throttled_delay`.
fn error_policy(obj: Arc<BackupPlan>, error: &Error, state: Arc<State>) -> Action {
    let cfg = &state.ctx.config;
    let mut map = lock(&state.failures);
    let entry = map.entry(ObjectRef::from_obj(&*obj)).or_insert(Failures {
        count: 0,
        retry_at: Instant::now(),
        generation: None,
    });
    entry.count = entry.count.saturating_add(1);
    let schedule = Schedule {
        min: cfg.min_backoff,
        max: cfg.max_backoff,
        throttled: cfg.throttled_delay,
    };
    let delay = backoff::delay(
        entry.count,
        schedule,
        FailureKind::from(error),
        rand::random::<f64>(),
    );
    entry.retry_at = Instant::now() + delay;
    entry.generation = obj.metadata.generation;
    drop(map);
    tracing::warn!(object = %obj.name_any(), namespace = ?obj.namespace(), reason = error.reason(),
        error = %error, retry_in = ?delay, "BackupPlan reconcile failed");
    Action::requeue(delay)
}

/// How long `obj` must still wait after its last failure; `None` when it may run now (no
/// failure, backoff over, spec changed or deletion requested).
fn backing_off(state: &State, key: &ObjectRef<BackupPlan>, obj: &BackupPlan) -> Option<Duration> {
    let map = lock(&state.failures);
    let f = map.get(key)?;
    if f.generation != obj.metadata.generation || obj.metadata.deletion_timestamp.is_some() {
        return None;
    }
    Some(f.retry_at.saturating_duration_since(Instant::now())).filter(|d| !d.is_zero())
}

/// The object's plan id: adopted (`spec.backupPlanId`) or created (`status.backupPlanId`).
fn backup_plan_id(obj: &BackupPlan) -> Option<String> {
    obj.spec
        .backup_plan_id
        .clone()
        .or_else(|| obj.status.as_ref().and_then(|s| s.backup_plan_id.clone()))
}
