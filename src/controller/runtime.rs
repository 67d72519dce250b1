//! The controller runtime every kind shares, written once: watches, concurrency, the finalizer,
//! backoff and error policy, the status writer, Events, metrics and shutdown.
//!
//! How a reconcile goes, for every kind:
//! 1. the object comes from the watch cache, replaced by our own later status write if the cache
//!    has not caught up (`StatusWriter::freshest`);
//! 2. an object still waiting out the backoff of its last failure is requeued for the rest of
//!    the wait, unless its spec changed or its deletion was requested (`Backoff::holding`);
//! 3. kube's finalizer helper adds [`FINALIZER`] before anything else, then hands the object
//!    to the kind's [`Reconciler::apply`] or, once it is being deleted, [`Reconciler::cleanup`];
//! 4. success clears the backoff; a failure goes to the error policy, which logs it once and
//!    requeues after the object's next backoff delay.
//!
//! A kind's `apply` reads as observe → decide → act → report in its own module.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt;
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use kube::runtime::controller::{self, Action, Controller};
use kube::runtime::events::EventType;
use kube::runtime::finalizer::{self, finalizer};
use kube::runtime::reflector::Store;
use kube::runtime::watcher;
use tracing::Instrument;

use super::backoff::{Backoff, FailureKind, deletion_timed_out};
use super::conditions::{Phase, is_ready, is_transition, reasons};
use super::events::Events;
use super::status::{Managed, StatusWriter};
use super::{Context, Error, FINALIZER, WatchSync};

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
}

reasons! {
    /// Reasons the runtime reports for every kind.
    pub enum RuntimeReason {
        /// A deletion gave up; the cloud resource may remain.
        CloudResourceMayRemain,
    }
}

/// What every reconcile of one kind shares, besides the kind's own state.
pub struct Runtime<K> {
    /// The operator's context.
    pub ctx: Arc<Context>,
    /// Event publisher.
    pub events: Events,
    /// Status writer (read-your-writes).
    pub status: StatusWriter<K>,
    backoff: Backoff,
}

impl<K: Managed> Runtime<K> {
    fn new(ctx: Arc<Context>) -> Self {
        Self {
            events: Events::new(&ctx),
            status: StatusWriter::new(ctx.client.clone()),
            backoff: Backoff::new(&ctx.config),
            ctx,
        }
    }

    /// Writes `next` as the status of `obj` when it is worth a write, and with `announce`
    /// records one Event when the Ready condition changes (status or reason).
    pub async fn write_status(
        &self,
        obj: &K,
        next: &K::Status,
        phase: &Phase,
        announce: bool,
    ) -> Result<(), Error> {
        let previous = obj.status().cloned().unwrap_or_default();
        if obj.status().is_none() || K::worth_writing(&previous, next, phase) {
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
    /// the status): transient failures are retried with backoff for as long as they last;
    /// failures only the user can fix (credentials, a rejected call) are retried until
    /// `deletion_timeout` has passed since the deletion was requested, then the finalizer goes
    /// with a Warning Event `CloudResourceMayRemain` naming `resource`, so that a namespace
    /// deleted together with its credentials Secret never hangs.
    pub async fn deletion_failed(
        &self,
        obj: &K,
        error: Error,
        resource: &str,
    ) -> Result<Action, Error> {
        let requested = obj.meta().deletion_timestamp.as_ref().map(|t| t.0);
        let timeout = self.ctx.config.deletion_timeout;
        if !error.is_stalled() || !deletion_timed_out(requested, Timestamp::now(), timeout) {
            return Err(error);
        }
        let note = format!(
            "gave up releasing {resource} after {timeout:?}: {}; the finalizer was removed and \
             {resource} may remain: release it in the Alibaba Cloud console",
            error.user_message()
        );
        tracing::warn!(%note, "abandoning the release");
        let reason = RuntimeReason::CloudResourceMayRemain.as_str();
        self.events
            .publish(obj, EventType::Warning, reason, &note)
            .await;
        Ok(Action::await_change())
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
    watches: impl FnOnce(Controller<R::Object>) -> Controller<R::Object>,
) {
    let kind = R::Object::KIND;
    tracing::info!(kind = %kind, namespace = ?ctx.config.watch_namespace,
        concurrency = ctx.config.concurrency, "starting controller");
    let controller = Controller::new(ctx.watched::<R::Object>(), config);
    observe_cache(&ctx, R::CONTROLLER, controller.store());
    let shared = Arc::new(Shared {
        reconciler,
        rt: Runtime::new(ctx.clone()),
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
    obj: Arc<R::Object>,
    shared: Arc<Shared<R>>,
) -> Result<Action, Error> {
    let kind = R::Object::KIND;
    let namespace = obj
        .namespace()
        .ok_or_else(|| Error::InvalidSpec(format!("{kind} {} has no namespace", obj.name_any())))?;
    let span = tracing::info_span!("reconcile", %kind, %namespace, name = %obj.name_any());
    let rt = &shared.rt;
    let obj = rt.status.freshest(obj);
    if let Some(wait) = rt.backoff.holding(&*obj) {
        return Ok(Action::requeue(wait));
    }
    let api = rt.ctx.api::<R::Object>(&namespace);
    let result = finalizer(&api, FINALIZER, obj.clone(), |event| async {
        match event {
            finalizer::Event::Apply(o) => shared.reconciler.apply(&o, rt).await,
            finalizer::Event::Cleanup(o) => {
                let done = shared.reconciler.cleanup(&o, rt).await;
                if done.is_ok() {
                    rt.status.forget(&o);
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

/// Requeue after a failed reconcile: per-object exponential backoff with jitter, at least the
/// throttling delay after throttling.
fn error_policy<R: Reconciler>(
    obj: Arc<R::Object>,
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
fn observe_cache<K: Managed>(ctx: &Context, controller: &'static str, store: Store<K>) {
    ctx.metrics
        .controller_started(controller, ctx.config.concurrency);
    let census = store.clone();
    ctx.metrics
        .count_resources(K::KIND, move || ready_census(&census));
    report_sync(store, ctx.watches.clone(), K::KIND);
}

/// Counts the objects in `store` whose `Ready` condition is `True`, and the others.
fn ready_census<K: Managed>(store: &Store<K>) -> (usize, usize) {
    let objects = store.state();
    let ready = objects
        .iter()
        .filter(|o| o.status().is_some_and(|s| is_ready(K::conditions(s))))
        .count();
    (ready, objects.len() - ready)
}

/// Reports `store`'s first complete list to `watches` as `name`.
///
/// `Store::wait_until_ready` keeps a single waker (a oneshot receiver shared by every clone), so
/// a second waiter — the controller's own applier also waits — can steal the wake-up; the wait
/// is therefore re-polled every 500 ms.
pub fn report_sync<K>(store: Store<K>, watches: Arc<WatchSync>, name: &'static str)
where
    K: kube::Resource + Clone + Send + Sync + 'static,
    K::DynamicType: Eq + std::hash::Hash + Clone + Send + Sync,
{
    tokio::spawn(async move {
        loop {
            match tokio::time::timeout(Duration::from_millis(500), store.wait_until_ready()).await {
                Ok(Ok(())) => {
                    watches.synced(name);
                    return;
                }
                Ok(Err(_)) => return,
                Err(_) => {}
            }
        }
    });
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
