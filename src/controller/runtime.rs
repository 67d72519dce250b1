//! The controller runtime every kind shares, written once: watches, concurrency, the finalizer,
//! backoff and error policy, the status writer, Events, metrics and shutdown.
//!
//! How a reconcile goes, for every kind:
//! 1. the object comes from the watch cache (inflated from its compact form, see
//!    [`super::cache`]), replaced by our own later status write if the cache has not caught up
//!    (`StatusWriter::freshest`);
//! 2. an object still waiting out the backoff of its last failure is requeued for the rest of
//!    the wait, unless its spec changed or its deletion was requested (`Backoff::holding`);
//! 3. a paused object being deleted waits (`Stalled`/`Paused`, no cloud call) until the user
//!    removes the pause or abandons the resource;
//! 4. kube's finalizer helper adds [`FINALIZER`] before anything else, then:
//!    - a live object: paused → `Paused`, no cloud call; another object manages its cloud
//!      resource → `Stalled`/`AlreadyManaged`, no cloud call (see [`super::claims`]); else the
//!      kind's [`Reconciler::apply`];
//!    - an object being deleted: `db.alicloud.dev/abandon: "true"` → the finalizer goes, nothing
//!      is released; another object manages the resource → the finalizer goes, nothing is
//!      released; else the kind's [`Reconciler::cleanup`], whose failures go through
//!      [`Runtime::deletion_failed`] (see [`super::deletion`] for when a finalizer may go);
//! 5. success clears the backoff; a failure goes to the error policy, which logs it once and
//!    requeues after the object's next backoff delay.
//!
//! A kind's `apply` reads as observe → decide → act → report in its own module.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures::{StreamExt, TryStreamExt as _};
use k8s_openapi::jiff::Timestamp;
use kube::runtime::controller::{self, Action, Controller};
use kube::runtime::events::EventType;
use kube::runtime::finalizer::{self, finalizer};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt as _, watcher};
use kube::{Resource, ResourceExt};
use tracing::Instrument;

use super::backoff::{Backoff, FailureKind};
use super::cache::{Cached, compact};
use super::claims::{self, Claim};
use super::conditions::{Phase, READY, conditions_for, is_transition, reasons};
use super::deletion::CredentialsClock;
use super::events::Events;
use super::status::{Managed, StatusWriter};
use super::{Context, Error, FINALIZER, WatchSync};
use crate::crd::{ABANDON_ANNOTATION, PAUSED_ANNOTATION, is_abandoned, is_paused};

/// What a kind plugs into the runtime.
#[async_trait]
pub trait Reconciler: Send + Sync + 'static {
    /// The custom resource this controller manages.
    type Object: Managed;

    /// Name of the controller in metrics (`backupplan`).
    const CONTROLLER: &'static str;

    /// Brings the cloud resource one step closer to the spec of an object that is not being
    /// deleted, and reports where it stands. The finalizer is in place.
    async fn apply(&self, obj: &Self::Object, rt: &Runtime<Self::Object>) -> Result<Action, Error>;

    /// Releases (or keeps) the cloud resource of an object being deleted; `Ok` lets the
    /// finalizer go.
    async fn cleanup(
        &self,
        obj: &Self::Object,
        rt: &Runtime<Self::Object>,
    ) -> Result<Action, Error>;

    /// The object's cloud resource in words, for messages: `backup plan dbs123`.
    fn resource(obj: &Self::Object) -> String;
}

reasons! {
    /// Reasons the runtime reports for every kind.
    pub enum RuntimeReason {
        /// Credentials stayed unusable for `--deletion-timeout`: the finalizer was removed and
        /// the cloud resource may remain.
        CloudResourceMayRemain,
        /// A deletion failed for a reason only the user can fix; it is retried.
        DeletionBlocked,
        /// The user abandoned the cloud resource: the finalizer was removed without a release.
        Abandoned,
        /// Another object manages the same cloud resource.
        AlreadyManaged,
        /// Paused by annotation: no cloud call is made.
        Paused,
    }
}

/// What every reconcile of one kind shares, besides the kind's own state.
pub struct Runtime<K: Managed> {
    /// The operator's context.
    pub ctx: Arc<Context>,
    /// Event publisher.
    pub events: Events,
    /// Status writer (read-your-writes).
    pub status: Arc<StatusWriter<K>>,
    backoff: Backoff,
    /// The controller's cache of every object of the kind.
    store: Store<Cached<K>>,
    credentials_failures: CredentialsClock,
}

impl<K: Managed> Runtime<K> {
    fn new(ctx: Arc<Context>, store: Store<Cached<K>>, status: Arc<StatusWriter<K>>) -> Self {
        Self {
            events: Events::new(&ctx),
            status,
            backoff: Backoff::new(&ctx.config),
            store,
            credentials_failures: CredentialsClock::default(),
            ctx,
        }
    }

    /// Sets the annotation `key` of `obj` to `value` (a JSON merge patch of the metadata, which
    /// leaves every other annotation alone) and hands the answer to the status writer, so the
    /// next reconcile sees the annotation even before the watch cache does. The write is
    /// announced first, so its watch event wakes nobody (`StatusWriter::expect_annotation`).
    pub async fn annotate(&self, obj: &K, key: &str, value: &str) -> Result<(), Error> {
        let api = self.ctx.api::<K>(&obj.namespace().unwrap_or_default());
        let patch = serde_json::json!({"metadata": {"annotations": {key: value}}});
        let params = kube::api::PatchParams {
            field_manager: Some(super::FIELD_MANAGER.to_owned()),
            ..Default::default()
        };
        self.status.expect_annotation(obj, key, value);
        let written = api
            .patch_metadata(&obj.name_any(), &params, &kube::api::Patch::Merge(&patch))
            .await
            .inspect_err(|_| self.status.unexpect(&obj.uid().unwrap_or_default()))?;
        let mut updated = obj.clone();
        *updated.meta_mut() = written.metadata;
        self.status.record(obj, updated);
        Ok(())
    }

    /// The object other than `obj` that manages the cloud resource `claim` names, if one does
    /// (`obj` claiming it as `claim`): for a kind that is about to take a resource over.
    pub fn manager_of(&self, obj: &K, claim: Claim) -> Option<Arc<Cached<K>>> {
        claims::manager_among(obj, claim, &self.store.state(), Cached::claim)
    }

    /// The object other than `obj` that manages the cloud resource `obj` claims, if one does.
    pub fn managed_by_other(&self, obj: &K) -> Option<Arc<Cached<K>>> {
        let claim = obj.claim()?;
        self.manager_of(obj, claim)
    }

    /// Writes `phase` as the object's conditions for `generation`, keeping the rest of the
    /// status; with `announce`, one Event when the Ready condition changes.
    pub async fn write_phase(
        &self,
        obj: &K,
        phase: &Phase,
        generation: Option<i64>,
        announce: bool,
    ) -> Result<(), Error> {
        let previous = obj.status().cloned().unwrap_or_default();
        let now = Timestamp::from_second(Timestamp::now().as_second()).unwrap_or_default();
        let conditions = conditions_for(phase, generation, K::conditions(&previous), now);
        let next = K::with_conditions(&previous, conditions, generation);
        self.write_status(obj, &next, phase, announce).await
    }

    /// Writes `next` as the status of `obj` when it is worth a write over the status the API
    /// server holds (`obj`'s, or an earlier write of this reconcile), and with `announce`
    /// records one Event when the Ready condition changes (status or reason).
    pub async fn write_status(
        &self,
        obj: &K,
        next: &K::Status,
        phase: &Phase,
        announce: bool,
    ) -> Result<(), Error> {
        // An earlier write of this reconcile is what the API server holds, not `obj`'s status.
        let written = self.status.written_over(obj);
        let current = written.as_deref().unwrap_or(obj).status();
        let previous = current.cloned().unwrap_or_default();
        if current.is_none() || K::worth_writing(&previous, next, phase) {
            self.status.apply(obj, next).await?;
        }
        if announce && is_transition(K::conditions(&previous), K::conditions(next)) {
            self.events
                .publish(obj, phase.event_type(), phase.reason, &phase.message)
                .await;
        }
        Ok(())
    }

    /// How a failed deletion goes on, for every kind (the caller has reported the failure in
    /// the status), per [`super::deletion`]: credentials unusable through `deletion_timeout` of
    /// this process's attempts → the finalizer goes with a Warning Event
    /// `CloudResourceMayRemain` naming `resource`; any other failure only the user can fix →
    /// retried with capped backoff, with a Warning Event `DeletionBlocked`, an `error` log line
    /// and a metric; transient failures → retried.
    pub async fn deletion_failed(
        &self,
        obj: &K,
        error: Error,
        resource: &str,
    ) -> Result<Action, Error> {
        let uid = obj.uid().unwrap_or_default();
        let timeout = self.ctx.config.deletion_timeout;
        if error.credentials_unusable() {
            let failing = self
                .credentials_failures
                .failing_for(&uid, timeout.saturating_mul(2));
            if failing >= timeout {
                let note = format!(
                    "gave up releasing {resource}: credentials stayed unusable for {failing:?} of \
                     attempts ({}); the finalizer was removed and {resource} may remain: release \
                     it in the Alibaba Cloud console",
                    error.user_message()
                );
                let reason = RuntimeReason::CloudResourceMayRemain;
                self.deletion_problem(obj, &error, reason, "given_up", &note)
                    .await;
                self.credentials_failures.reset(&uid);
                return Ok(Action::await_change());
            }
        } else {
            self.credentials_failures.reset(&uid);
        }
        if error.is_stalled() {
            let note = format!(
                "releasing {resource} failed: {}; retrying. To leave {resource} in the cloud and \
                 let the object go, set the annotation {ABANDON_ANNOTATION}: \"true\"",
                error.user_message()
            );
            let reason = RuntimeReason::DeletionBlocked;
            self.deletion_problem(obj, &error, reason, "blocked", &note)
                .await;
        }
        Err(error)
    }

    /// A deletion that did not release its cloud resource because of `error`, said everywhere
    /// it may be looked for: an `error` log line, the metric (`outcome`), and a Warning Event
    /// (refused in a terminating namespace: the other two remain).
    async fn deletion_problem(
        &self,
        obj: &K,
        error: &Error,
        reason: RuntimeReason,
        outcome: &'static str,
        note: &str,
    ) {
        tracing::error!(kind = K::KIND, namespace = ?obj.namespace(), name = %obj.name_any(),
            reason = reason.as_str(), error_reason = error.reason(), outcome, %note,
            "deletion did not release the cloud resource");
        self.ctx
            .metrics
            .deletion_problem(K::KIND, error.reason(), outcome);
        self.events
            .publish(obj, EventType::Warning, reason.as_str(), note)
            .await;
    }

    /// A live paused object: `Paused`, Ready kept as it was and the conditions kept at the
    /// generation last acted upon (a spec change made while paused is not claimed as observed).
    async fn paused(&self, obj: &K) -> Result<Action, Error> {
        let conditions = obj.status().map(K::conditions).unwrap_or_default();
        let ready = conditions.iter().find(|c| c.type_ == READY);
        let message =
            format!("paused by annotation {PAUSED_ANNOTATION}: \"true\"; no cloud calls are made");
        let phase = if ready.is_some_and(|c| c.status == "True") {
            Phase::ready(RuntimeReason::Paused, message)
        } else {
            Phase::reconciling(RuntimeReason::Paused, message)
        };
        let generation = ready.map_or(obj.meta().generation, |c| c.observed_generation);
        self.write_phase(obj, &phase, generation, true).await?;
        Ok(Action::await_change())
    }

    /// A paused object being deleted: the deletion waits, with no cloud call.
    async fn deletion_paused(&self, obj: &K, resource: &str) -> Result<Action, Error> {
        let phase = Phase::stalled(
            RuntimeReason::Paused,
            format!(
                "deletion waits: paused by annotation {PAUSED_ANNOTATION}: \"true\", so no cloud \
                 call is made. Remove the annotation to release {resource}, or set \
                 {ABANDON_ANNOTATION}: \"true\" to let the object go and leave {resource} in the cloud"
            ),
        );
        self.write_phase(obj, &phase, obj.meta().generation, true)
            .await?;
        Ok(Action::await_change())
    }

    /// A live object whose cloud resource `manager` manages: `Stalled`, no cloud call.
    async fn already_managed(
        &self,
        obj: &K,
        manager: &Cached<K>,
        resource: &str,
    ) -> Result<Action, Error> {
        let phase = Phase::stalled(
            RuntimeReason::AlreadyManaged,
            format!(
                "{resource} is managed by {} {}/{}; this object makes no change to it and \
                 deleting it releases nothing",
                K::KIND,
                manager.namespace().unwrap_or_default(),
                manager.name_any()
            ),
        );
        self.write_phase(obj, &phase, obj.meta().generation, true)
            .await?;
        Ok(Action::requeue(self.ctx.config.resync_period))
    }

    /// Deletion without a release: the user abandoned the resource, or another object manages
    /// it. Recorded in an Event, a log line and a metric; the finalizer goes.
    async fn let_go(&self, obj: &K, reason: RuntimeReason, note: &str) -> Action {
        tracing::info!(kind = K::KIND, namespace = ?obj.namespace(), name = %obj.name_any(),
            reason = reason.as_str(), %note, "finalizer removed without a release");
        let type_ = if reason == RuntimeReason::Abandoned {
            self.ctx
                .metrics
                .deletion_problem(K::KIND, reason.as_str(), "abandoned");
            EventType::Warning
        } else {
            EventType::Normal
        };
        self.events.publish(obj, type_, reason.as_str(), note).await;
        Action::await_change()
    }
}

/// The reconciler and the runtime, handed to every reconcile.
struct Shared<R: Reconciler> {
    reconciler: R,
    rt: Runtime<R::Object>,
}

/// Runs the controller of `R`'s kind until the process receives SIGTERM or SIGINT (in-flight
/// reconciles finish first) or the task is dropped. `watches` adds the kind's secondary watches
/// to the controller.
pub async fn run<R: Reconciler>(
    ctx: Arc<Context>,
    reconciler: R,
    config: watcher::Config,
    watches: impl FnOnce(Controller<Cached<R::Object>>) -> Controller<Cached<R::Object>>,
) {
    let kind = R::Object::KIND;
    tracing::info!(kind = %kind, namespace = ?ctx.config.watch_namespace,
        concurrency = ctx.config.concurrency, "starting controller");
    // The cache keeps every object compact (see `super::cache`), without what no controller
    // reads (`managedFields`, `kubectl apply`'s copy of the object).
    let (store, writer) = reflector::store();
    let status = Arc::new(StatusWriter::<R::Object>::new(ctx.client.clone()));
    let (shown, announced) = (status.clone(), status.clone());
    let (cache, known) = (store.clone(), store.clone());
    // A change of the status alone (our own writes) triggers no reconcile: each step requeues
    // itself when it needs to look again, and a write that woke the object at once made it
    // re-read its cloud resource after every status write. The status writer still hears of
    // every version, to forget our writes the cache now shows. It is handed the cache's object,
    // not the watch's: while the watcher re-lists, the listed objects run ahead of the cache
    // (swapped in only at the end of the list), and a write forgotten then would let the next
    // reconcile start from the older cached object (a ConfigureBackupPlan sent before the
    // 5 s rule, from a status without `createdAt`, was seen at 10,000 plans).
    // Our own annotation write wakes nobody either: the reconcile that wrote it requeues itself
    // (see `StatusWriter::expect_annotation`).
    let objects = watcher(ctx.watched::<R::Object>(), config)
        .map_ok(move |event| compact(event, &known, |obj| announced.is_quiet(obj)))
        .reflect(writer)
        .applied_objects()
        .try_filter(move |obj| {
            if let Some(cached) = cache.get(&ObjectRef::from_obj(obj)) {
                shown.caught_up(&*cached);
            }
            std::future::ready(obj.wakes())
        });
    let controller = Controller::for_stream(objects, store);
    observe_cache(&ctx, R::CONTROLLER, controller.store());
    let shared = Arc::new(Shared {
        reconciler,
        rt: Runtime::new(ctx.clone(), controller.store(), status),
    });
    watches(controller)
        .with_config(controller::Config::default().concurrency(ctx.config.concurrency))
        .shutdown_on_signal()
        .run(
            |obj, shared| {
                let metrics = shared.rt.ctx.metrics.clone();
                async move {
                    metrics
                        .reconcile(R::CONTROLLER, reconcile(obj, shared))
                        .await
                }
            },
            error_policy,
            shared,
        )
        .for_each(|result| async move {
            match result {
                Ok((obj, _)) => tracing::debug!(object = %obj, "reconciled"),
                // Logged by the error policy.
                Err(controller::Error::ReconcilerFailed(..)) => {}
                Err(e) => tracing::warn!(error = %e, "controller"),
            }
        })
        .await;
    tracing::info!(kind = %kind, "controller stopped");
}

/// One reconcile of any kind; see the module documentation.
async fn reconcile<R: Reconciler>(
    cached: Arc<Cached<R::Object>>,
    shared: Arc<Shared<R>>,
) -> Result<Action, Error> {
    let kind = R::Object::KIND;
    let obj = Arc::new(cached.inflate()?);
    let namespace = obj
        .namespace()
        .ok_or_else(|| Error::InvalidSpec(format!("{kind} {} has no namespace", obj.name_any())))?;
    let span = tracing::info_span!("reconcile", %kind, %namespace, name = %obj.name_any());
    let rt = &shared.rt;
    rt.events.tidy();
    let obj = rt.status.freshest(obj);
    let _settle = Settle { rt, obj: &obj };
    if let Some(wait) = rt.backoff.holding(&*obj) {
        return Ok(Action::requeue(wait));
    }
    let meta = obj.meta();
    let ours = meta.finalizers.iter().flatten().any(|f| f == FINALIZER);
    if meta.deletion_timestamp.is_some() && ours && is_paused(meta) && !is_abandoned(meta) {
        return rt
            .deletion_paused(&obj, &R::resource(&obj))
            .instrument(span)
            .await;
    }
    let api = rt.ctx.api::<R::Object>(&namespace);
    let result = finalizer(&api, FINALIZER, obj.clone(), |event| async {
        match event {
            finalizer::Event::Apply(o) => {
                if is_paused(o.meta()) {
                    return rt.paused(&o).await;
                }
                if let Some(manager) = rt.managed_by_other(&o) {
                    return rt.already_managed(&o, &manager, &R::resource(&o)).await;
                }
                shared.reconciler.apply(&o, rt).await
            }
            finalizer::Event::Cleanup(o) => {
                let resource = R::resource(&o);
                let done = if is_abandoned(o.meta()) {
                    let note = format!(
                        "{ABANDON_ANNOTATION}: \"true\": the finalizer was removed without \
                         releasing {resource}, which stays in the cloud (and is billed) until \
                         released in the Alibaba Cloud console"
                    );
                    Ok(rt.let_go(&o, RuntimeReason::Abandoned, &note).await)
                } else if let Some(manager) = rt.managed_by_other(&o) {
                    let note = format!(
                        "{resource} is managed by {} {}/{}: not released",
                        R::Object::KIND,
                        manager.namespace().unwrap_or_default(),
                        manager.name_any()
                    );
                    Ok(rt.let_go(&o, RuntimeReason::AlreadyManaged, &note).await)
                } else {
                    shared.reconciler.cleanup(&o, rt).await
                };
                if done.is_ok() {
                    rt.status.forget(&o);
                    rt.credentials_failures.reset(&o.uid().unwrap_or_default());
                }
                done
            }
        }
    })
    .instrument(span)
    .await;
    match result {
        Ok(action) => {
            rt.backoff.reset(&*obj);
            Ok(action)
        }
        Err(finalizer::Error::ApplyFailed(e) | finalizer::Error::CleanupFailed(e)) => Err(e),
        Err(finalizer::Error::AddFinalizer(e) | finalizer::Error::RemoveFinalizer(e)) => {
            Err(Error::Kube(e))
        }
        Err(e) => Err(Error::Finalizer(e.to_string())),
    }
}

/// Hands the status writer the cached object when a reconcile ends, however it ends.
struct Settle<'a, K: Managed> {
    rt: &'a Runtime<K>,
    obj: &'a K,
}

impl<K: Managed> Drop for Settle<'_, K> {
    fn drop(&mut self) {
        let Some(uid) = self.obj.uid() else {
            return;
        };
        let cached = self.rt.store.get(&Cached::key(self.obj));
        self.rt.status.settle(&uid, cached.as_deref());
    }
}

/// Requeue after a failed reconcile: per-object exponential backoff with jitter, at least the
/// throttling delay after throttling.
fn error_policy<R: Reconciler>(
    obj: Arc<Cached<R::Object>>,
    error: &Error,
    shared: Arc<Shared<R>>,
) -> Action {
    let delay = shared
        .rt
        .backoff
        .record_failure(&*obj, FailureKind::from(error));
    tracing::warn!(kind = R::Object::KIND, namespace = ?obj.namespace(), name = %obj.name_any(),
        reason = error.reason(), error = %error, retry_in = ?delay, "reconcile failed");
    Action::requeue(delay)
}

/// Wires a controller's cache into the process's telemetry: its concurrency and reconcile
/// series, the count of its objects by readiness, and its first sync for `/readyz`.
fn observe_cache<K: Managed>(ctx: &Context, controller: &'static str, store: Store<Cached<K>>) {
    ctx.metrics
        .controller_started(controller, ctx.config.concurrency);
    let census = store.clone();
    ctx.metrics
        .count_resources(K::KIND, move || ready_census(&census));
    report_sync(store, ctx.watches.clone(), K::KIND);
}

/// Counts the objects in `store` whose `Ready` condition is `True`, and the others.
fn ready_census<K: Managed>(store: &Store<Cached<K>>) -> (usize, usize) {
    let objects = store.state();
    let ready = objects.iter().filter(|o| o.is_ready()).count();
    (ready, objects.len() - ready)
}

/// Reports `store`'s first complete list to `watches` as `name`.
pub fn report_sync<K>(store: Store<K>, watches: Arc<WatchSync>, name: &'static str)
where
    K: kube::Resource + Clone + Send + Sync + 'static,
    K::DynamicType: Eq + std::hash::Hash + Clone + Send + Sync,
{
    tokio::spawn(async move {
        if store_ready(&store).await {
            watches.synced(name);
        }
    });
}

/// Waits until `store` holds its first complete list: true, or false when its writer is gone.
///
/// `Store::wait_until_ready` keeps a single waker (a oneshot receiver shared by every clone), so
/// a second waiter — the controller's own applier also waits — can steal the wake-up; the wait
/// is therefore re-polled every 500 ms.
pub async fn store_ready<K>(store: &Store<K>) -> bool
where
    K: kube::Resource + Clone + 'static,
    K::DynamicType: Eq + std::hash::Hash + Clone,
{
    loop {
        let wait = tokio::time::timeout(Duration::from_millis(500), store.wait_until_ready());
        if let Ok(result) = wait.await {
            return result.is_ok();
        }
    }
}

/// Resolves on SIGTERM or SIGINT.
pub async fn shutdown_signal() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM; only SIGINT stops the operator");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = terminate => {}
    }
}
