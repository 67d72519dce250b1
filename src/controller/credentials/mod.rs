//! Credentials Secrets: resolving the credentials an object's calls are signed with, and
//! protecting the Secrets they come from while objects use them (`protection`).
//!
//! An object's `credentialsRef` names a Secret in its own namespace; without one, the operator's
//! own credentials (environment AccessKey or RRSA) are used. The apply path of each kind resolves
//! them with [`Context::scope_protecting_credentials`], which also marks the Secret in use;
//! cleanup uses [`Context::scope`], which never writes.

mod cache;
mod protection;

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Secret;
use kube::Api;

pub use self::cache::{Following, SecretCache, version};
pub use self::protection::{CREDENTIALS_FIELD_MANAGER, CREDENTIALS_IN_USE, is_marked, run};
use super::{Context, Error};
use crate::cloud::{Credentials, Scope};
use crate::crd::{CredentialsRef, SecretKeyRef};

impl Context {
    /// Credentials for an object: its `credentialsRef` Secret in its own namespace, else the
    /// operator's own.
    pub async fn credentials(
        &self,
        namespace: &str,
        credentials_ref: Option<&CredentialsRef>,
    ) -> Result<Credentials, Error> {
        match credentials_ref {
            Some(r) => {
                if let Some(kept) = self.kept_credentials(namespace, &r.name, false) {
                    return Ok(kept);
                }
                let secret = self.secret(namespace, &r.name).await?;
                self.credentials_read(namespace, secret)
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
        let Some(r) = credentials_ref else {
            return self.scope(namespace, None, region).await;
        };
        // The common case: the watch shows the Secret marked already, at the version its
        // credentials were read at. No read, no write.
        if let Some(credentials) = self.kept_credentials(namespace, &r.name, true) {
            return Ok(Scope {
                credentials,
                region: region.to_owned(),
            });
        }
        // One read serves both: the credentials, and whether the Secret is marked already.
        let secret = self.secret(namespace, &r.name).await?;
        let protected = protection::is_protected(&secret.metadata);
        let credentials = self.credentials_read(namespace, secret)?;
        if !protected {
            protection::protect(self, namespace, &r.name).await?;
        }
        Ok(Scope {
            credentials,
            region: region.to_owned(),
        })
    }

    /// One key of a Secret in `namespace`, as UTF-8, with a version of the Secret
    /// (`<uid>/<resourceVersion>`) that changes whenever the Secret does and reveals nothing of it.
    pub async fn secret_value_versioned(
        &self,
        namespace: &str,
        key_ref: &SecretKeyRef,
    ) -> Result<(String, String), Error> {
        let secret = self.secret(namespace, &key_ref.name).await?;
        let version = version(&secret.metadata);
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

    /// The version of Secret `namespace/name` (see [`version`]) as the watch last saw it, when
    /// it saw it.
    pub fn secret_version(&self, namespace: &str, name: &str) -> Option<String> {
        self.secrets
            .metadata(namespace, name)
            .map(|seen| version(&seen.metadata))
    }

    /// The credentials kept from Secret `namespace/name`, when the watch shows it at the version
    /// they were read at (and, with `protected`, marked in use).
    fn kept_credentials(
        &self,
        namespace: &str,
        name: &str,
        protected: bool,
    ) -> Option<Credentials> {
        let seen = self.secrets.metadata(namespace, name)?;
        if protected && !protection::is_protected(&seen.metadata) {
            return None;
        }
        self.secrets
            .credentials(namespace, name, &version(&seen.metadata))
    }

    /// The credentials `secret` (just read) holds, kept for reconciles that find it unchanged.
    fn credentials_read(&self, namespace: &str, secret: Secret) -> Result<Credentials, Error> {
        let name = secret.metadata.name.clone().unwrap_or_default();
        let read_at = version(&secret.metadata);
        let credentials = credentials_in(namespace, secret)?;
        self.secrets.keep(namespace, &name, read_at, &credentials);
        Ok(credentials)
    }

    /// The Secret `namespace/name`; its absence is an error the user must fix.
    async fn secret(&self, namespace: &str, name: &str) -> Result<Secret, Error> {
        let api: Api<Secret> = self.api(namespace);
        api.get_opt(name)
            .await?
            .ok_or_else(|| Error::Secret(format!("Secret {namespace}/{name} not found")))
    }
}

/// The credentials a Secret in `namespace` holds.
fn credentials_in(namespace: &str, secret: Secret) -> Result<Credentials, Error> {
    let name = secret.metadata.name.unwrap_or_default();
    let data: BTreeMap<String, Vec<u8>> = secret
        .data
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k, v.0))
        .collect();
    Credentials::from_secret_data(&data)
        .map_err(|e| Error::Secret(format!("Secret {namespace}/{name}: {e}")))
}
