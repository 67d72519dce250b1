//! What every reconcile shares: Kubernetes client, cloud clients, credentials, settings.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::NamespaceResourceScope;
use kube::runtime::events::Reporter;
use kube::{Api, Resource};

use super::WatchSync;
use super::credentials::SecretCache;
use super::failpoint::Failpoint;
use crate::cloud::{CredentialProvider, DbsApi, RdsApi};
use crate::metrics::Metrics;

/// Tunables of the controllers; every one is a flag with an environment fallback in `main`.
#[derive(Clone, Debug)]
pub struct ControllerConfig {
    /// Watch only this namespace; `None` watches every namespace.
    pub watch_namespace: Option<String>,
    /// How often every object is re-read from the cloud when nothing else happens.
    pub resync_period: Duration,
    /// Maximum reconciles running at once per kind.
    pub concurrency: u16,
    /// First delay after a failed reconcile; doubles per consecutive failure.
    pub min_backoff: Duration,
    /// Cap of the error backoff.
    pub max_backoff: Duration,
    /// How long to wait between DBS CreateBackupPlan and ConfigureBackupPlan (documented 5 s).
    pub configure_delay: Duration,
    /// How often to look again while an RDS instance is busy.
    pub instance_poll_interval: Duration,
    /// Delay before retrying after the cloud throttled a call (at least; longer if it said so).
    pub throttled_delay: Duration,
    /// How long a deletion may keep failing for want of usable credentials, counted from this
    /// process's first failed attempt, before the finalizer is removed anyway, leaving the cloud
    /// resource (see `controller::deletion`).
    pub deletion_timeout: Duration,
    /// Fault injected for the crash test suite; `None` in production.
    pub failpoint: Option<Failpoint>,
}

impl Default for ControllerConfig {
    fn default() -> Self {
        Self {
            watch_namespace: None,
            resync_period: Duration::from_secs(300),
            concurrency: 64,
            min_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(300),
            configure_delay: Duration::from_secs(5),
            instance_poll_interval: Duration::from_secs(5),
            throttled_delay: Duration::from_secs(30),
            deletion_timeout: Duration::from_secs(600),
            failpoint: None,
        }
    }
}

/// Shared state handed to every reconcile.
#[derive(Clone)]
pub struct Context {
    /// Kubernetes client.
    pub client: kube::Client,
    /// DBS calls.
    pub dbs: Arc<dyn DbsApi>,
    /// RDS calls.
    pub rds: Arc<dyn RdsApi>,
    /// The operator's own credentials, used when an object names no `credentialsRef`.
    pub default_credentials: Option<Arc<dyn CredentialProvider>>,
    /// Identity of the Events the operator records.
    pub reporter: Reporter,
    /// Tunables.
    pub config: ControllerConfig,
    /// Reconcile counts and durations, managed objects.
    pub metrics: Arc<Metrics>,
    /// Caches `/readyz` waits for.
    pub watches: Arc<WatchSync>,
    /// Secret versions and the credentials read from Secrets.
    pub secrets: Arc<SecretCache>,
}

impl Context {
    /// A context whose DBS and RDS calls both go to `cloud`, reporting Events as the operator
    /// (`instance`: this replica's pod name, when known).
    pub fn new<C: DbsApi + RdsApi + 'static>(
        client: kube::Client,
        cloud: C,
        default_credentials: Option<Arc<dyn CredentialProvider>>,
        config: ControllerConfig,
        instance: Option<String>,
    ) -> Self {
        let cloud = Arc::new(cloud);
        Self {
            client,
            dbs: cloud.clone(),
            rds: cloud,
            default_credentials,
            reporter: Reporter {
                controller: "alicloud-db-operator".into(),
                instance,
            },
            config,
            metrics: Arc::new(Metrics::new()),
            watches: Arc::new(WatchSync::default()),
            secrets: Arc::new(SecretCache::default()),
        }
    }

    /// This context reporting to `metrics` and `watches` (the process's own).
    pub fn with_telemetry(mut self, metrics: Arc<Metrics>, watches: Arc<WatchSync>) -> Self {
        self.metrics = metrics;
        self.watches = watches;
        self
    }

    /// The objects of kind `K` in `namespace`.
    pub fn api<K>(&self, namespace: &str) -> Api<K>
    where
        K: Resource<Scope = NamespaceResourceScope>,
        K::DynamicType: Default,
    {
        Api::namespaced(self.client.clone(), namespace)
    }

    /// The objects of kind `K` the controllers watch: in `watch_namespace`, else everywhere.
    pub fn watched<K>(&self) -> Api<K>
    where
        K: Resource<Scope = NamespaceResourceScope>,
        K::DynamicType: Default,
    {
        match &self.config.watch_namespace {
            Some(ns) => Api::namespaced(self.client.clone(), ns),
            None => Api::all(self.client.clone()),
        }
    }
}
