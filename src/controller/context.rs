//! What every reconcile shares: Kubernetes client, cloud clients, credentials, settings.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use kube::runtime::events::Reporter;

use super::{Error, WatchSync, credentials_protection};
use crate::cloud::{CredentialProvider, Credentials, DbsApi, RdsApi, Scope};
use crate::crd::{CredentialsRef, SecretKeyRef};
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
    /// How long a deletion may keep failing for want of usable credentials (or because the cloud
    /// rejects the call) before the finalizer is removed anyway, leaving the cloud resource.
    pub deletion_timeout: Duration,
    /// Fault injected for the crash test suite; `None` in production.
    pub failpoint: Option<Failpoint>,
}

/// A fault the operator injects into itself, for crash tests only
/// (`ALICLOUD_DB_OPERATOR_FAILPOINT`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Failpoint {
    /// `kill-after-create-backup-plan`: SIGKILL the process right after CreateBackupPlan
    /// succeeds, before the plan id reaches the status.
    KillAfterCreateBackupPlan,
}

impl std::str::FromStr for Failpoint {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "kill-after-create-backup-plan" => Ok(Self::KillAfterCreateBackupPlan),
            other => Err(format!(
                "unknown failpoint {other:?} (known: kill-after-create-backup-plan)"
            )),
        }
    }
}

impl Default for ControllerConfig {
    fn default() -> Self {
        Self {
            watch_namespace: None,
            resync_period: Duration::from_secs(300),
            concurrency: 8,
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
        }
    }

    /// This context reporting to `metrics` and `watches` (the process's own).
    pub fn with_telemetry(mut self, metrics: Arc<Metrics>, watches: Arc<WatchSync>) -> Self {
        self.metrics = metrics;
        self.watches = watches;
        self
    }

    /// Credentials for an object: its `credentialsRef` Secret in its own namespace, else the
    /// operator's own.
    pub async fn credentials(
        &self,
        namespace: &str,
        credentials_ref: Option<&CredentialsRef>,
    ) -> Result<Credentials, Error> {
        match credentials_ref {
            Some(r) => {
                let data = self.secret_data(namespace, &r.name).await?;
                Credentials::from_secret_data(&data)
                    .map_err(|e| Error::Secret(format!("Secret {namespace}/{}: {e}", r.name)))
            }
            None => match &self.default_credentials {
                Some(p) => Ok(p.credentials().await?),
                None => Err(Error::Secret(
                    "no credentialsRef and the operator has no credentials of its own \
                     (set ALIBABA_CLOUD_ACCESS_KEY_ID/ALIBABA_CLOUD_ACCESS_KEY_SECRET or RRSA)"
                        .into(),
                )),
            },
        }
    }

    /// A [`Scope`] for calls on behalf of an object.
    pub async fn scope(
        &self,
        namespace: &str,
        credentials_ref: Option<&CredentialsRef>,
        region: &str,
    ) -> Result<Scope, Error> {
        Ok(Scope {
            credentials: self.credentials(namespace, credentials_ref).await?,
            region: region.to_owned(),
        })
    }

    /// A [`Scope`] for the apply path: like [`Context::scope`], and marks the `credentialsRef`
    /// Secret in use so that it outlives the object and its cleanup can still authenticate.
    /// Cleanup paths use [`Context::scope`].
    pub async fn scope_protecting_credentials(
        &self,
        namespace: &str,
        credentials_ref: Option<&CredentialsRef>,
        region: &str,
    ) -> Result<Scope, Error> {
        let scope = self.scope(namespace, credentials_ref, region).await?;
        if let Some(r) = credentials_ref {
            credentials_protection::protect(&self.client, namespace, &r.name).await?;
        }
        Ok(scope)
    }

    /// One key of a Secret in `namespace`, as UTF-8.
    pub async fn secret_value(
        &self,
        namespace: &str,
        key_ref: &SecretKeyRef,
    ) -> Result<String, Error> {
        let data = self.secret_data(namespace, &key_ref.name).await?;
        let bytes = data.get(&key_ref.key).ok_or_else(|| {
            Error::Secret(format!(
                "Secret {namespace}/{} has no key {}",
                key_ref.name, key_ref.key
            ))
        })?;
        String::from_utf8(bytes.clone()).map_err(|_| {
            Error::Secret(format!(
                "Secret {namespace}/{} key {} is not UTF-8",
                key_ref.name, key_ref.key
            ))
        })
    }

    /// One key of a Secret in `namespace`, as UTF-8, with a version of the Secret
    /// (`<uid>/<resourceVersion>`) that changes whenever the Secret does and reveals nothing of it.
    pub async fn secret_value_versioned(
        &self,
        namespace: &str,
        key_ref: &SecretKeyRef,
    ) -> Result<(String, String), Error> {
        let api: Api<Secret> = Api::namespaced(self.client.clone(), namespace);
        let secret = api.get_opt(&key_ref.name).await?.ok_or_else(|| {
            Error::Secret(format!("Secret {namespace}/{} not found", key_ref.name))
        })?;
        let version = format!(
            "{}/{}",
            secret.metadata.uid.as_deref().unwrap_or_default(),
            secret
                .metadata
                .resource_version
                .as_deref()
                .unwrap_or_default()
        );
        let bytes = secret
            .data
            .as_ref()
            .and_then(|d| d.get(&key_ref.key))
            .ok_or_else(|| {
                Error::Secret(format!(
                    "Secret {namespace}/{} has no key {}",
                    key_ref.name, key_ref.key
                ))
            })?;
        let value = String::from_utf8(bytes.0.clone()).map_err(|_| {
            Error::Secret(format!(
                "Secret {namespace}/{} key {} is not UTF-8",
                key_ref.name, key_ref.key
            ))
        })?;
        Ok((value, version))
    }

    async fn secret_data(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<BTreeMap<String, Vec<u8>>, Error> {
        let api: Api<Secret> = Api::namespaced(self.client.clone(), namespace);
        let secret = api
            .get_opt(name)
            .await?
            .ok_or_else(|| Error::Secret(format!("Secret {namespace}/{name} not found")))?;
        Ok(secret
            .data
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| (k, v.0))
            .collect())
    }
}
