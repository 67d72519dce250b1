//! What the controllers know of Secrets without reading them again.
//!
//! A reconcile needs the credentials of its `credentialsRef` Secret and the version of its
//! password Secret; a Ready object needs them once per resync period. Reading both Secrets in
//! every reconcile made two GETs per object and period, the API server's main load at 10,000
//! objects. Instead the BackupPlan controller keeps a metadata-only cache of the Secrets it
//! watches (it needs their changes as triggers anyway; no Secret data flows through it), and:
//!
//! - the version of a Secret (`<uid>/<resourceVersion>`) is read from that cache;
//! - the credentials parsed from a Secret are kept with the version they were read at, and
//!   served while the cache shows that version. Any change of the Secret shows a new version
//!   (and triggers the objects that name it), and the next reconcile reads it again.
//!
//! A Secret the cache does not show (not listed yet, just created, or no BackupPlan controller
//! in this process) is read as before. Credentials stay in memory only, like the operator's own.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};

use k8s_openapi::api::core::v1::Secret;
use kube::api::{ObjectMeta, PartialObjectMeta};
use kube::runtime::reflector::{ObjectRef, Store};

use crate::cloud::Credentials;
use crate::sync::lock;

/// The version of a Secret: changes whenever the Secret does, and reveals nothing of it.
pub fn version(meta: &ObjectMeta) -> String {
    format!(
        "{}/{}",
        meta.uid.as_deref().unwrap_or_default(),
        meta.resource_version.as_deref().unwrap_or_default()
    )
}

/// Secrets as last seen by the watch, and credentials parsed from them.
#[derive(Default)]
pub struct SecretCache {
    /// The watched Secrets' metadata, while a controller keeps it up to date.
    seen: RwLock<Option<Store<PartialObjectMeta<Secret>>>>,
    /// Per Secret (namespace, name): the version its credentials were read at, and them.
    credentials: Mutex<HashMap<(String, String), (String, Credentials)>>,
}

impl SecretCache {
    /// Serves versions from `store` until the returned guard is dropped (when the watch that
    /// fills the store stops: a store nobody updates any more must not be trusted).
    pub fn follow(self: &Arc<Self>, store: Store<PartialObjectMeta<Secret>>) -> Following {
        *self
            .seen
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(store);
        Following(self.clone())
    }

    /// The metadata of Secret `namespace/name` as the watch last saw it.
    pub fn metadata(&self, namespace: &str, name: &str) -> Option<Arc<PartialObjectMeta<Secret>>> {
        let seen = self
            .seen
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        seen.as_ref()?.get(&ObjectRef::new(name).within(namespace))
    }

    /// The credentials read from Secret `namespace/name` at `version`, if those were kept.
    pub fn credentials(&self, namespace: &str, name: &str, version: &str) -> Option<Credentials> {
        let map = lock(&self.credentials);
        let (kept, credentials) = map.get(&(namespace.to_owned(), name.to_owned()))?;
        (kept == version).then(|| credentials.clone())
    }

    /// Keeps `credentials`, read from Secret `namespace/name` at `version`.
    pub fn keep(&self, namespace: &str, name: &str, version: String, credentials: &Credentials) {
        lock(&self.credentials).insert(
            (namespace.to_owned(), name.to_owned()),
            (version, credentials.clone()),
        );
    }
}

/// Keeps a [`SecretCache`] serving versions from its store; stops it when dropped.
pub struct Following(Arc<SecretCache>);

impl Drop for Following {
    fn drop(&mut self) {
        *self
            .0
            .seen
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = None;
    }
}

#[cfg(test)]
mod tests {
    use kube::runtime::reflector;
    use kube::runtime::watcher::Event;

    use super::*;

    fn secret(rv: &str) -> PartialObjectMeta<Secret> {
        PartialObjectMeta {
            types: None,
            metadata: ObjectMeta {
                name: Some("creds".into()),
                namespace: Some("ns".into()),
                uid: Some("u1".into()),
                resource_version: Some(rv.into()),
                ..ObjectMeta::default()
            },
            _phantom: std::marker::PhantomData,
        }
    }

    fn credentials(id: &str) -> Credentials {
        Credentials {
            access_key_id: id.into(),
            access_key_secret: "s".into(),
            security_token: None,
        }
    }

    #[test]
    fn credentials_are_served_only_at_the_version_they_were_read() {
        let cache = SecretCache::default();
        cache.keep("ns", "creds", "u1/5".into(), &credentials("LTAIa"));
        assert_eq!(
            cache.credentials("ns", "creds", "u1/5"),
            Some(credentials("LTAIa"))
        );
        assert_eq!(cache.credentials("ns", "creds", "u1/6"), None, "changed");
        assert_eq!(cache.credentials("ns", "other", "u1/5"), None);
        assert_eq!(cache.credentials("other", "creds", "u1/5"), None);
    }

    #[test]
    fn versions_come_from_the_store_only_while_it_is_followed() {
        let cache = Arc::new(SecretCache::default());
        let (store, mut writer) = reflector::store();
        writer.apply_watcher_event(&Event::Apply(secret("7")));
        assert!(cache.metadata("ns", "creds").is_none(), "not followed yet");
        let following = cache.follow(store);
        let seen = cache.metadata("ns", "creds").expect("in the store");
        assert_eq!(version(&seen.metadata), "u1/7");
        assert!(cache.metadata("other", "creds").is_none());
        writer.apply_watcher_event(&Event::Apply(secret("8")));
        let seen = cache.metadata("ns", "creds").expect("in the store");
        assert_eq!(version(&seen.metadata), "u1/8", "the store is live");
        drop(following);
        assert!(cache.metadata("ns", "creds").is_none(), "the watch stopped");
    }
}
