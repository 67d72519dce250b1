//! In-use protection of credentials Secrets: a Secret named by a `credentialsRef` outlives the
//! objects that use it, so their finalizers can still authenticate when `kubectl delete -f`, a
//! GitOps prune or a namespace deletion removes the Secret together with the objects (the pattern
//! Kubernetes uses for PersistentVolumeClaims).
//!
//! - Protect: the apply path of each kind, once it has resolved credentials from a Secret, puts
//!   the finalizer and the label [`CREDENTIALS_IN_USE`] on that Secret ([`protect`], through
//!   `Context::scope_protecting_credentials`) before any cloud call. Cleanup never does.
//! - Release: [`run`] watches the labelled Secrets (metadata only: it never reads Secret data) and
//!   the objects of both kinds. When no BackupPlan or RdsConnection in a Secret's namespace names
//!   it any more (an object being deleted still counts while it carries [`FINALIZER`]), it removes
//!   the finalizer and the label, and a pending deletion of the Secret completes.
//!
//! Both write with a JSON merge patch carrying the `resourceVersion` read just before (a conflict
//! is retried), under the field manager [`CREDENTIALS_FIELD_MANAGER`], so other finalizers,
//! labels and fields are left alone.

use std::collections::{HashMap, HashSet};
use std::fmt::Debug;
use std::sync::Arc;

use futures::{Stream, StreamExt, TryStreamExt, stream};
use k8s_openapi::api::core::v1::Secret;
use kube::api::{ListParams, ObjectMeta, PartialObjectMeta, Patch, PatchParams};
use kube::runtime::controller::{Action, Config, applier};
use kube::runtime::reflector::{self, ObjectRef};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use tracing::{debug, info, warn};

use crate::controller::backoff::{Backoff, FailureKind};
use crate::controller::runtime::{report_sync, shutdown_signal};
use crate::controller::{Context, Error, FINALIZER};
use crate::crd::{BackupPlan, CredentialsRef, RdsConnection};

/// Finalizer and label key the operator puts on a credentials Secret while objects use it.
pub const CREDENTIALS_IN_USE: &str = "db.alicloud.dev/credentials-in-use";

/// Field manager of the operator's writes to credentials Secrets.
pub const CREDENTIALS_FIELD_MANAGER: &str = "alicloud-db-operator-credentials";

/// Label selector of the Secrets the release controller looks after.
const IN_USE_SELECTOR: &str = "db.alicloud.dev/credentials-in-use=true";

/// How often a write that lost a race with another writer is tried again at once.
const CONFLICT_ATTEMPTS: usize = 3;

/// A Secret as the release controller sees it: metadata only.
type SecretMeta = PartialObjectMeta<Secret>;

/// A kind whose objects may name a credentials Secret in their own namespace.
trait UsesCredentials: Resource<DynamicType = ()> {
    /// The object's `spec.credentialsRef`.
    fn credentials_ref(&self) -> Option<&CredentialsRef>;
}

impl UsesCredentials for BackupPlan {
    fn credentials_ref(&self) -> Option<&CredentialsRef> {
        self.spec.credentials_ref.as_ref()
    }
}

impl UsesCredentials for RdsConnection {
    fn credentials_ref(&self) -> Option<&CredentialsRef> {
        self.spec.credentials_ref.as_ref()
    }
}

/// The Secret an object counts as a user of: the one its `credentialsRef` names, unless the
/// object is being deleted and its own finalizer is already gone (nothing of it will run again).
fn secret_in_use_by<K: UsesCredentials>(obj: &K) -> Option<&str> {
    let meta = obj.meta();
    let finishing = meta.deletion_timestamp.is_some() && !has_finalizer(meta, FINALIZER);
    obj.credentials_ref()
        .filter(|_| !finishing)
        .map(|r| r.name.as_str())
}

fn has_finalizer(meta: &ObjectMeta, finalizer: &str) -> bool {
    meta.finalizers.iter().flatten().any(|f| f == finalizer)
}

/// Whether the Secret carries both the finalizer and the label.
pub(super) fn is_protected(meta: &ObjectMeta) -> bool {
    has_finalizer(meta, CREDENTIALS_IN_USE) && has_label(meta)
}

/// Whether the Secret carries the finalizer or the label: it holds credentials that objects
/// use (or used until just now).
pub fn is_marked(meta: &ObjectMeta) -> bool {
    has_finalizer(meta, CREDENTIALS_IN_USE) || has_label(meta)
}

fn has_label(meta: &ObjectMeta) -> bool {
    meta.labels
        .as_ref()
        .and_then(|l| l.get(CREDENTIALS_IN_USE))
        .is_some_and(|v| v == "true")
}

/// Merge patch adding the finalizer and the label, guarded by the `resourceVersion` read.
fn protect_patch(meta: &ObjectMeta) -> Value {
    let mut finalizers = meta.finalizers.clone().unwrap_or_default();
    if !finalizers.iter().any(|f| f == CREDENTIALS_IN_USE) {
        finalizers.push(CREDENTIALS_IN_USE.to_owned());
    }
    json!({"metadata": {
        "resourceVersion": meta.resource_version,
        "finalizers": finalizers,
        "labels": {CREDENTIALS_IN_USE: "true"},
    }})
}

/// Merge patch removing the finalizer and the label, guarded by the `resourceVersion` read.
fn release_patch(meta: &ObjectMeta) -> Value {
    let finalizers: Vec<&String> = meta
        .finalizers
        .iter()
        .flatten()
        .filter(|f| *f != CREDENTIALS_IN_USE)
        .collect();
    json!({"metadata": {
        "resourceVersion": meta.resource_version,
        "finalizers": finalizers,
        "labels": {CREDENTIALS_IN_USE: null},
    }})
}

/// Marks the credentials Secret `namespace/name` as in use (finalizer and label), so that it
/// outlives the objects using it. Writes only when something is missing; leaves a Secret that is
/// already being deleted or is gone alone.
pub(crate) async fn protect(ctx: &Context, namespace: &str, name: &str) -> Result<(), Error> {
    let api: Api<Secret> = ctx.api(namespace);
    update_marks(&api, name, |meta| {
        (!is_protected(meta) && meta.deletion_timestamp.is_none()).then(|| protect_patch(meta))
    })
    .await?;
    Ok(())
}

/// Removes the finalizer and the label from `name`, if it still carries either.
async fn unprotect(api: &Api<Secret>, name: &str) -> Result<bool, Error> {
    update_marks(api, name, |meta| {
        is_marked(meta).then(|| release_patch(meta))
    })
    .await
}

/// Reads the Secret's metadata and applies the patch `change` derives from it, if any; retries at
/// once when another writer got in between. Returns whether it wrote.
async fn update_marks(
    api: &Api<Secret>,
    name: &str,
    change: impl Fn(&ObjectMeta) -> Option<Value>,
) -> Result<bool, Error> {
    let params = PatchParams {
        field_manager: Some(CREDENTIALS_FIELD_MANAGER.to_owned()),
        ..PatchParams::default()
    };
    let mut attempt = 0;
    loop {
        attempt += 1;
        let Some(secret) = api.get_metadata_opt(name).await? else {
            return Ok(false);
        };
        let Some(patch) = change(&secret.metadata) else {
            return Ok(false);
        };
        match api
            .patch_metadata(name, &params, &Patch::Merge(&patch))
            .await
        {
            Ok(_) => return Ok(true),
            Err(e) if is_status(&e, 404) => return Ok(false),
            Err(e) if is_status(&e, 409) && attempt < CONFLICT_ATTEMPTS => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

fn is_status(e: &kube::Error, code: u16) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == code)
}

/// Whether any BackupPlan or RdsConnection in `namespace` uses the Secret `name`.
async fn in_use(ctx: &Context, namespace: &str, name: &str) -> Result<bool, Error> {
    let plans: Api<BackupPlan> = ctx.api(namespace);
    let connections: Api<RdsConnection> = ctx.api(namespace);
    let lp = ListParams::default();
    let (plans, connections) = tokio::try_join!(plans.list(&lp), connections.list(&lp))?;
    Ok(plans.iter().any(|o| secret_in_use_by(o) == Some(name))
        || connections
            .iter()
            .any(|o| secret_in_use_by(o) == Some(name)))
}

/// Name of this controller in metrics.
const CONTROLLER: &str = "credentialssecret";

/// What every reconcile of the release controller shares.
struct Releaser {
    ctx: Arc<Context>,
    backoff: Backoff,
}

/// Runs the release controller until the process receives SIGTERM or SIGINT or the task is
/// dropped: watches the Secrets labelled in use and the objects of both kinds (in
/// `watch_namespace` only, when set) and releases every Secret nothing uses any more.
pub async fn run(ctx: Arc<Context>) {
    let (secrets, plans, connections) = (
        ctx.watched::<SecretMeta>(),
        ctx.watched::<BackupPlan>(),
        ctx.watched::<RdsConnection>(),
    );
    let (store, writer) = reflector::store::<SecretMeta>();
    ctx.metrics
        .controller_started(CONTROLLER, ctx.config.concurrency);
    report_sync(store.clone(), ctx.watches.clone(), "CredentialsSecrets");
    let protected = watcher(secrets, watcher::Config::default().labels(IN_USE_SELECTOR))
        .default_backoff()
        .reflect(writer)
        .touched_objects()
        .map_ok(|s| ObjectRef::from_obj(&s));
    let queue = stream::select_all([
        protected.boxed(),
        secrets_losing_users(plans).boxed(),
        secrets_losing_users(connections).boxed(),
    ]);
    let releaser = Arc::new(Releaser {
        backoff: Backoff::new(&ctx.config),
        ctx: ctx.clone(),
    });
    info!(namespace = ?ctx.config.watch_namespace, "starting credentials protection controller");
    let config = Config::default().concurrency(ctx.config.concurrency);
    applier(
        |secret, r: Arc<Releaser>| {
            let metrics = r.ctx.metrics.clone();
            Box::pin(async move { metrics.reconcile(CONTROLLER, reconcile(secret, r)).await })
        },
        error_policy,
        releaser,
        store,
        queue,
        config,
    )
    .take_until(shutdown_signal())
    .for_each(|result| async move {
        match result {
            Ok((secret, _)) => debug!(secret = %secret, "reconciled credentials Secret"),
            // A trigger for a Secret that is not (or no longer) labelled in use.
            Err(kube::runtime::controller::Error::ObjectNotFound(secret)) => {
                debug!(secret = %secret, "credentials Secret not protected; nothing to do");
            }
            Err(e) => warn!(error = %e, "credentials protection controller"),
        }
    })
    .await;
    info!("credentials protection controller stopped");
}

/// The Secrets to look at again when objects of kind `K` change: the one an object stopped
/// using (deleted, its finalizer gone, its `credentialsRef` changed) and the one it started using.
fn secrets_losing_users<K>(
    api: Api<K>,
) -> impl Stream<Item = Result<ObjectRef<SecretMeta>, watcher::Error>> + Send
where
    K: UsesCredentials + Clone + DeserializeOwned + Debug + Send + 'static,
{
    let mut users = SecretUsers::default();
    watcher(api, watcher::Config::default().any_semantic())
        .default_backoff()
        .map_ok(move |event| stream::iter(users.on_event(&event).into_iter().map(Ok)))
        .try_flatten()
}

/// Key of an object: namespace and name.
type ObjectKey = (String, String);

/// Which Secret each object of one kind was last seen using, so that an event about the object
/// can name the Secret it stopped using.
#[derive(Default)]
struct SecretUsers {
    using: HashMap<ObjectKey, String>,
    /// Objects seen during a re-list; those not seen again were deleted meanwhile.
    relisted: Option<HashSet<ObjectKey>>,
}

impl SecretUsers {
    /// The Secrets whose use changed with this event.
    fn on_event<K: UsesCredentials>(
        &mut self,
        event: &watcher::Event<K>,
    ) -> Vec<ObjectRef<SecretMeta>> {
        let mut changed = Vec::new();
        match event {
            watcher::Event::Apply(obj) | watcher::Event::InitApply(obj) => {
                let key = key(obj);
                if let (watcher::Event::InitApply(_), Some(seen)) = (event, &mut self.relisted) {
                    seen.insert(key.clone());
                }
                let now = secret_in_use_by(obj).map(str::to_owned);
                let before = match &now {
                    Some(name) => self.using.insert(key.clone(), name.clone()),
                    None => self.using.remove(&key),
                };
                if before != now {
                    changed.extend(
                        before
                            .into_iter()
                            .chain(now)
                            .map(|s| secret_ref(&key.0, &s)),
                    );
                }
            }
            watcher::Event::Delete(obj) => {
                let key = key(obj);
                let before = self.using.remove(&key);
                let last = obj.credentials_ref().map(|r| r.name.clone());
                let mut names: Vec<String> = before.into_iter().chain(last).collect();
                names.dedup();
                changed.extend(names.iter().map(|s| secret_ref(&key.0, s)));
            }
            watcher::Event::Init => self.relisted = Some(HashSet::new()),
            watcher::Event::InitDone => {
                let seen = self.relisted.take().unwrap_or_default();
                let gone: Vec<ObjectKey> = self
                    .using
                    .keys()
                    .filter(|k| !seen.contains(*k))
                    .cloned()
                    .collect();
                for key in gone {
                    if let Some(secret) = self.using.remove(&key) {
                        changed.push(secret_ref(&key.0, &secret));
                    }
                }
            }
        }
        changed
    }
}

fn key<K: Resource>(obj: &K) -> ObjectKey {
    (obj.namespace().unwrap_or_default(), obj.name_any())
}

fn secret_ref(namespace: &str, name: &str) -> ObjectRef<SecretMeta> {
    ObjectRef::new(name).within(namespace)
}

/// One Secret: keep the protection while an object uses it, remove it otherwise.
async fn reconcile(secret: Arc<SecretMeta>, r: Arc<Releaser>) -> Result<Action, Error> {
    let namespace = secret.namespace().unwrap_or_default();
    let name = secret.name_any();
    let ctx = &r.ctx;
    let result = async {
        if !is_marked(&secret.metadata) {
            return Ok(Action::await_change());
        }
        if in_use(ctx, &namespace, &name).await? {
            // Object events trigger the release; the periodic look is a safety net.
            return Ok(Action::requeue(r.ctx.config.resync_period));
        }
        let api: Api<Secret> = ctx.api(&namespace);
        if unprotect(&api, &name).await? {
            info!(namespace = %namespace, secret = %name,
                "credentials Secret no longer in use; protection removed");
        }
        // An object created between the listing and the patch may have seen the Secret still
        // protected and left it as it was: protect it again for that object.
        if in_use(ctx, &namespace, &name).await? {
            protect(ctx, &namespace, &name).await?;
        }
        Ok(Action::await_change())
    }
    .await;
    if result.is_ok() {
        r.backoff.reset(&*secret);
    }
    result
}

/// Requeue after a failed reconcile: per-Secret exponential backoff with jitter.
fn error_policy(secret: Arc<SecretMeta>, error: &Error, r: Arc<Releaser>) -> Action {
    let key = format!(
        "{}/{}",
        secret.namespace().unwrap_or_default(),
        secret.name_any()
    );
    let delay = r.backoff.record_failure(&*secret, FailureKind::from(error));
    warn!(secret = %key, reason = error.reason(), error = %error, retry_in = ?delay,
        "credentials Secret reconcile failed");
    Action::requeue(delay)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    use k8s_openapi::jiff::Timestamp;

    fn connection(name: &str, secret: Option<&str>) -> RdsConnection {
        serde_json::from_value(json!({
            "apiVersion": "db.alicloud.dev/v1alpha1",
            "kind": "RdsConnection",
            "metadata": {"name": name, "namespace": "team"},
            "spec": {
                "region": "cn-hangzhou",
                "dbInstanceId": "rm-1",
                "connectionStringPrefix": "app",
                "port": 3306,
                "credentialsRef": secret.map(|s| json!({"name": s})),
                "writeConnectionSecretToRef": {"name": "out"}
            }
        }))
        .expect("valid RdsConnection")
    }

    fn deleting(mut obj: RdsConnection, finalizers: &[&str]) -> RdsConnection {
        obj.metadata.deletion_timestamp = Some(Time(Timestamp::now()));
        obj.metadata.finalizers = Some(finalizers.iter().map(|f| (*f).to_owned()).collect());
        obj
    }

    #[test]
    fn an_object_being_deleted_uses_its_secret_only_while_its_finalizer_remains() {
        let live = connection("a", Some("creds"));
        assert_eq!(secret_in_use_by(&live), Some("creds"));
        let finishing = deleting(connection("a", Some("creds")), &[FINALIZER]);
        assert_eq!(secret_in_use_by(&finishing), Some("creds"));
        let finished = deleting(connection("a", Some("creds")), &["example.com/other"]);
        assert_eq!(secret_in_use_by(&finished), None);
        assert_eq!(secret_in_use_by(&connection("b", None)), None);
    }

    fn names(refs: Vec<ObjectRef<SecretMeta>>) -> Vec<String> {
        refs.into_iter().map(|r| r.name).collect()
    }

    #[test]
    fn a_changed_credentials_ref_names_the_secret_it_left() {
        let mut users = SecretUsers::default();
        let first = watcher::Event::Apply(connection("a", Some("old")));
        assert_eq!(names(users.on_event(&first)), ["old"]);
        assert!(users.on_event(&first).is_empty(), "no change, no trigger");
        let moved = watcher::Event::Apply(connection("a", Some("new")));
        assert_eq!(names(users.on_event(&moved)), ["old", "new"]);
        let deleted = watcher::Event::Delete(connection("a", Some("new")));
        assert_eq!(names(users.on_event(&deleted)), ["new"]);
    }

    #[test]
    fn an_object_deleted_while_the_watch_was_down_names_its_secret_after_the_relist() {
        let mut users = SecretUsers::default();
        users.on_event(&watcher::Event::Apply(connection("a", Some("creds"))));
        users.on_event(&watcher::Event::Apply(connection("b", Some("other"))));
        assert!(
            users
                .on_event(&watcher::Event::<RdsConnection>::Init)
                .is_empty()
        );
        users.on_event(&watcher::Event::InitApply(connection("b", Some("other"))));
        let done = users.on_event(&watcher::Event::<RdsConnection>::InitDone);
        assert_eq!(names(done), ["creds"]);
    }

    #[test]
    fn patches_keep_other_finalizers_and_guard_on_the_resource_version() {
        let meta = ObjectMeta {
            resource_version: Some("42".into()),
            finalizers: Some(vec!["example.com/other".into()]),
            ..ObjectMeta::default()
        };
        let add = protect_patch(&meta);
        assert_eq!(add["metadata"]["resourceVersion"], "42");
        assert_eq!(
            add["metadata"]["finalizers"],
            json!(["example.com/other", CREDENTIALS_IN_USE])
        );
        assert_eq!(add["metadata"]["labels"][CREDENTIALS_IN_USE], "true");
        let marked = ObjectMeta {
            finalizers: Some(vec!["example.com/other".into(), CREDENTIALS_IN_USE.into()]),
            ..meta
        };
        let remove = release_patch(&marked);
        assert_eq!(
            remove["metadata"]["finalizers"],
            json!(["example.com/other"])
        );
        assert_eq!(
            remove["metadata"]["labels"][CREDENTIALS_IN_USE],
            Value::Null
        );
    }
}
