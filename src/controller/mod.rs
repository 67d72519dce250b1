//! Controllers, one module per kind, and what they share: the [`Context`], conditions,
//! credentials resolution and the error type whose `reason()` feeds conditions, Events and
//! metrics; [`credentials_protection`] keeps credentials Secrets alive while objects use them.

mod backoff;
pub mod backup_plan;
pub mod conditions;
mod context;
pub mod credentials_protection;
mod error;
mod own_writes;
pub mod rds_connection;
mod watch_sync;

pub use context::{Context, ControllerConfig, Failpoint};
pub use error::{Error, cloud_message};
pub use watch_sync::WatchSync;

/// Finalizer both kinds put on their objects before creating anything in the cloud.
pub const FINALIZER: &str = "db.alicloud.dev/finalizer";

/// Field manager of every server-side apply the operator makes.
pub const FIELD_MANAGER: &str = "alicloud-db-operator";

/// Locks a std mutex, recovering from poisoning (the maps behind it stay usable).
pub(crate) fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Wires a controller's cache into the process's telemetry: its concurrency and reconcile
/// series, the count of its objects by readiness (`kind`), and its first sync for `/readyz`.
pub(crate) fn observe_cache<K>(
    ctx: &Context,
    controller: &'static str,
    kind: &'static str,
    store: kube::runtime::reflector::Store<K>,
    conditions: fn(&K) -> Option<&[k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition]>,
) where
    K: kube::Resource<DynamicType = ()> + Clone + Send + Sync + 'static,
{
    ctx.metrics
        .controller_started(controller, ctx.config.concurrency);
    let census = store.clone();
    ctx.metrics
        .count_resources(kind, move || ready_census(&census, conditions));
    report_sync(store, ctx.watches.clone(), kind);
}

/// Counts the objects in `store` whose `Ready` condition is `True`, and the others.
fn ready_census<K>(
    store: &kube::runtime::reflector::Store<K>,
    conditions: fn(&K) -> Option<&[k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition]>,
) -> (usize, usize)
where
    K: kube::Resource<DynamicType = ()> + Clone + 'static,
{
    let objects = store.state();
    let ready = objects
        .iter()
        .filter(|o| {
            conditions(o).is_some_and(|cs| {
                cs.iter()
                    .any(|c| c.type_ == conditions::READY && c.status == "True")
            })
        })
        .count();
    (ready, objects.len() - ready)
}

/// Reports `store`'s first complete list to `watches` as `name`.
///
/// `Store::wait_until_ready` keeps a single waker (a oneshot receiver shared by every clone), so
/// a second waiter — the controller's own applier also waits — can steal the wake-up; the wait
/// is therefore re-polled every 500 ms.
pub(crate) fn report_sync<K>(
    store: kube::runtime::reflector::Store<K>,
    watches: std::sync::Arc<WatchSync>,
    name: &'static str,
) where
    K: kube::Resource + Clone + Send + Sync + 'static,
    K::DynamicType: Eq + std::hash::Hash + Clone + Send + Sync,
{
    tokio::spawn(async move {
        loop {
            match tokio::time::timeout(
                std::time::Duration::from_millis(500),
                store.wait_until_ready(),
            )
            .await
            {
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
