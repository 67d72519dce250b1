//! Credentials and where they come from: a Secret's data, the standard environment variables,
//! or RRSA (a projected OIDC token exchanged at STS), chained by [`default_chain`].

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::sts::{ASSUME_ROLE_WITH_OIDC, AssumeRoleWithOidc, StsApi, StsCredentials};
use super::{CloudError, ErrorKind};

/// Secret key holding the access key id.
pub const SECRET_KEY_ACCESS_KEY_ID: &str = "accessKeyId";
/// Secret key holding the access key secret.
pub const SECRET_KEY_ACCESS_KEY_SECRET: &str = "accessKeySecret";
/// Optional Secret key holding an STS security token.
pub const SECRET_KEY_SECURITY_TOKEN: &str = "securityToken";

/// Environment variable: access key id.
pub const ENV_ACCESS_KEY_ID: &str = "ALIBABA_CLOUD_ACCESS_KEY_ID";
/// Environment variable: access key secret.
pub const ENV_ACCESS_KEY_SECRET: &str = "ALIBABA_CLOUD_ACCESS_KEY_SECRET";
/// Environment variable: STS security token.
pub const ENV_SECURITY_TOKEN: &str = "ALIBABA_CLOUD_SECURITY_TOKEN";
/// Environment variable: RAM role to assume (RRSA).
pub const ENV_ROLE_ARN: &str = "ALIBABA_CLOUD_ROLE_ARN";
/// Environment variable: OIDC identity provider (RRSA).
pub const ENV_OIDC_PROVIDER_ARN: &str = "ALIBABA_CLOUD_OIDC_PROVIDER_ARN";
/// Environment variable: path of the projected service-account token (RRSA).
pub const ENV_OIDC_TOKEN_FILE: &str = "ALIBABA_CLOUD_OIDC_TOKEN_FILE";
/// Environment variable: optional STS session name (RRSA).
pub const ENV_ROLE_SESSION_NAME: &str = "ALIBABA_CLOUD_ROLE_SESSION_NAME";

/// Session name used when `ALIBABA_CLOUD_ROLE_SESSION_NAME` is unset.
pub const DEFAULT_ROLE_SESSION_NAME: &str = "alicloud-db-operator";

/// An access key pair, optionally with an STS security token. `Debug` never prints secrets.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// The AccessKey id (`LTAI...`, or `STS....` for temporary keys).
    pub access_key_id: String,
    /// The AccessKey secret; never printed.
    pub access_key_secret: String,
    /// STS security token of temporary credentials; never printed.
    pub security_token: Option<String>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("access_key_id", &self.access_key_id)
            .field("access_key_secret", &"***")
            .field(
                "security_token",
                &self.security_token.as_ref().map(|_| "***"),
            )
            .finish()
    }
}

/// Why credentials could not be read from configuration. Names keys and variables, never
/// values.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CredentialsError {
    /// A required key of a Secret is absent or empty.
    #[error("missing key {0:?}")]
    MissingKey(&'static str),
    /// A key of a Secret is not UTF-8.
    #[error("key {0:?} is not UTF-8")]
    NotUtf8(&'static str),
    /// Only one half of the access key pair is set in the environment.
    #[error("{present} is set but {missing} is not")]
    PartialAccessKey {
        /// The variable that is set.
        present: &'static str,
        /// The variable that is missing.
        missing: &'static str,
    },
    /// Some but not all of the RRSA variables are set.
    #[error(
        "RRSA is partially configured: {missing} not set (need {ENV_ROLE_ARN}, {ENV_OIDC_PROVIDER_ARN} and {ENV_OIDC_TOKEN_FILE})"
    )]
    PartialRrsa {
        /// Comma-separated names of the unset variables.
        missing: String,
    },
    /// Neither an access key pair nor RRSA is configured.
    #[error(
        "no credentials configured: set {ENV_ACCESS_KEY_ID}/{ENV_ACCESS_KEY_SECRET} or the RRSA variables {ENV_ROLE_ARN}, {ENV_OIDC_PROVIDER_ARN}, {ENV_OIDC_TOKEN_FILE}"
    )]
    NotConfigured,
}

impl Credentials {
    /// A long-lived access key pair.
    pub fn new(access_key_id: impl Into<String>, access_key_secret: impl Into<String>) -> Self {
        Self {
            access_key_id: access_key_id.into(),
            access_key_secret: access_key_secret.into(),
            security_token: None,
        }
    }

    /// Reads a Secret's data: `accessKeyId`, `accessKeySecret`, optional `securityToken`.
    /// Surrounding whitespace (a trailing newline from `echo`) is trimmed.
    pub fn from_secret_data(data: &BTreeMap<String, Vec<u8>>) -> Result<Self, CredentialsError> {
        let get = |key: &'static str| -> Result<Option<String>, CredentialsError> {
            match data.get(key) {
                None => Ok(None),
                Some(bytes) => {
                    let s =
                        std::str::from_utf8(bytes).map_err(|_| CredentialsError::NotUtf8(key))?;
                    let s = s.trim();
                    Ok((!s.is_empty()).then(|| s.to_owned()))
                }
            }
        };
        let required = |key: &'static str| get(key)?.ok_or(CredentialsError::MissingKey(key));
        Ok(Self {
            access_key_id: required(SECRET_KEY_ACCESS_KEY_ID)?,
            access_key_secret: required(SECRET_KEY_ACCESS_KEY_SECRET)?,
            security_token: get(SECRET_KEY_SECURITY_TOKEN)?,
        })
    }
}

/// A source of the operator's own credentials (environment, RRSA).
#[async_trait]
pub trait CredentialProvider: Send + Sync {
    /// Current credentials, refreshed when they are about to expire.
    async fn credentials(&self) -> Result<Credentials, CloudError>;
}

/// Fixed credentials (tests, or a key pair given on the command line).
#[derive(Clone, Debug)]
pub struct StaticCredentials(pub Credentials);

#[async_trait]
impl CredentialProvider for StaticCredentials {
    async fn credentials(&self) -> Result<Credentials, CloudError> {
        Ok(self.0.clone())
    }
}

/// `ALIBABA_CLOUD_ACCESS_KEY_ID` / `_SECRET` (+ `ALIBABA_CLOUD_SECURITY_TOKEN`), read once.
#[derive(Clone, Debug)]
pub struct EnvCredentials(Credentials);

impl EnvCredentials {
    /// Reads the process environment; `Ok(None)` when neither variable is set.
    pub fn from_env() -> Result<Option<Self>, CredentialsError> {
        Self::from_lookup(&|name| std::env::var(name).ok())
    }

    /// Reads through `lookup` (a variable name → value function).
    pub fn from_lookup(
        lookup: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Option<Self>, CredentialsError> {
        let get = |name| env_value(lookup, name);
        match (get(ENV_ACCESS_KEY_ID), get(ENV_ACCESS_KEY_SECRET)) {
            (None, None) => Ok(None),
            (Some(_), None) => Err(CredentialsError::PartialAccessKey {
                present: ENV_ACCESS_KEY_ID,
                missing: ENV_ACCESS_KEY_SECRET,
            }),
            (None, Some(_)) => Err(CredentialsError::PartialAccessKey {
                present: ENV_ACCESS_KEY_SECRET,
                missing: ENV_ACCESS_KEY_ID,
            }),
            (Some(id), Some(secret)) => Ok(Some(Self(Credentials {
                access_key_id: id,
                access_key_secret: secret,
                security_token: get(ENV_SECURITY_TOKEN),
            }))),
        }
    }
}

#[async_trait]
impl CredentialProvider for EnvCredentials {
    async fn credentials(&self) -> Result<Credentials, CloudError> {
        Ok(self.0.clone())
    }
}

/// A variable's value through `lookup`, trimmed; `None` when unset or blank.
fn env_value(lookup: &dyn Fn(&str) -> Option<String>, name: &str) -> Option<String> {
    lookup(name)
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
}

/// What RRSA needs: the role, the OIDC provider and the token file the kubelet rotates.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RrsaConfig {
    /// `ALIBABA_CLOUD_ROLE_ARN`.
    pub role_arn: String,
    /// `ALIBABA_CLOUD_OIDC_PROVIDER_ARN`.
    pub oidc_provider_arn: String,
    /// `ALIBABA_CLOUD_OIDC_TOKEN_FILE`; re-read at every exchange.
    pub token_file: PathBuf,
    /// `ALIBABA_CLOUD_ROLE_SESSION_NAME`, else [`DEFAULT_ROLE_SESSION_NAME`].
    pub role_session_name: String,
    /// Requested credential lifetime (`DurationSeconds`); `None` leaves STS's default (1 h).
    pub duration: Option<Duration>,
}

impl RrsaConfig {
    /// Reads the RRSA variables through `lookup`: `Ok(None)` when none of the three is set,
    /// an error when only some are.
    pub fn from_lookup(
        lookup: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Option<Self>, CredentialsError> {
        let get = |name| env_value(lookup, name);
        let role = get(ENV_ROLE_ARN);
        let provider = get(ENV_OIDC_PROVIDER_ARN);
        let file = get(ENV_OIDC_TOKEN_FILE);
        match (role, provider, file) {
            (None, None, None) => Ok(None),
            (Some(role_arn), Some(oidc_provider_arn), Some(file)) => Ok(Some(Self {
                role_arn,
                oidc_provider_arn,
                token_file: PathBuf::from(file),
                role_session_name: get(ENV_ROLE_SESSION_NAME)
                    .unwrap_or_else(|| DEFAULT_ROLE_SESSION_NAME.to_owned()),
                duration: None,
            })),
            (role, provider, file) => {
                let missing: Vec<&str> = [
                    (role.is_none(), ENV_ROLE_ARN),
                    (provider.is_none(), ENV_OIDC_PROVIDER_ARN),
                    (file.is_none(), ENV_OIDC_TOKEN_FILE),
                ]
                .into_iter()
                .filter_map(|(absent, name)| absent.then_some(name))
                .collect();
                Err(CredentialsError::PartialRrsa {
                    missing: missing.join(", "),
                })
            }
        }
    }
}

/// Whether credentials obtained at `obtained` and expiring at `expiration` should be replaced
/// at `now`: when less than 5 minutes or less than a fifth of their lifetime is left,
/// whichever comes first.
pub fn needs_refresh(
    obtained: DateTime<Utc>,
    expiration: DateTime<Utc>,
    now: DateTime<Utc>,
) -> bool {
    let lifetime = expiration - obtained;
    let margin = std::cmp::min(chrono::Duration::minutes(5), lifetime / 5);
    expiration - now <= margin
}

#[derive(Clone, Debug)]
struct Cached {
    issued: StsCredentials,
    obtained: DateTime<Utc>,
}

/// RRSA: exchanges the projected service-account token for STS credentials, caches them and
/// refreshes them before they expire. Concurrent callers share one in-flight exchange.
pub struct RrsaCredentials {
    config: RrsaConfig,
    sts: Arc<dyn StsApi>,
    cache: tokio::sync::Mutex<Option<Cached>>,
}

impl std::fmt::Debug for RrsaCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RrsaCredentials")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl RrsaCredentials {
    /// A provider exchanging tokens at `sts` (usually an [`super::AlibabaCloud`]).
    pub fn new(config: RrsaConfig, sts: Arc<dyn StsApi>) -> Self {
        Self {
            config,
            sts,
            cache: tokio::sync::Mutex::new(None),
        }
    }

    /// The configuration this provider uses.
    pub fn config(&self) -> &RrsaConfig {
        &self.config
    }

    async fn exchange(&self) -> Result<StsCredentials, CloudError> {
        let path = &self.config.token_file;
        let token = tokio::fs::read_to_string(path).await.map_err(|e| {
            CloudError::local(
                ASSUME_ROLE_WITH_OIDC,
                ErrorKind::InvalidCredentials,
                format!("cannot read the OIDC token file {}: {e}", path.display()),
            )
        })?;
        let token = token.trim();
        if token.is_empty() {
            return Err(CloudError::local(
                ASSUME_ROLE_WITH_OIDC,
                ErrorKind::InvalidCredentials,
                format!("the OIDC token file {} is empty", path.display()),
            ));
        }
        let req = AssumeRoleWithOidc {
            role_arn: self.config.role_arn.clone(),
            oidc_provider_arn: self.config.oidc_provider_arn.clone(),
            oidc_token: token.to_owned(),
            role_session_name: self.config.role_session_name.clone(),
            duration_seconds: self
                .config
                .duration
                .map(|d| u32::try_from(d.as_secs()).unwrap_or(u32::MAX)),
        };
        self.sts.assume_role_with_oidc(&req).await
    }
}

#[async_trait]
impl CredentialProvider for RrsaCredentials {
    async fn credentials(&self) -> Result<Credentials, CloudError> {
        self.credentials_at(Utc::now()).await
    }
}

impl RrsaCredentials {
    /// [`CredentialProvider::credentials`] as of `now`. A failed refresh falls back to the
    /// cached credentials while they have not expired (an STS blip must not fail every call).
    async fn credentials_at(&self, now: DateTime<Utc>) -> Result<Credentials, CloudError> {
        // Held across the exchange: concurrent callers wait for the one refresh in flight.
        let mut cache = self.cache.lock().await;
        if let Some(c) = cache.as_ref()
            && !needs_refresh(c.obtained, c.issued.expiration, now)
        {
            return Ok(c.issued.credentials.clone());
        }
        let obtained = Utc::now();
        let issued = match self.exchange().await {
            Ok(issued) => issued,
            Err(err) => {
                return match cache.as_ref() {
                    Some(c) if c.issued.expiration > now => {
                        tracing::warn!(
                            error = %err,
                            expiration = %c.issued.expiration,
                            "refreshing RRSA credentials failed; using the current ones until they expire"
                        );
                        Ok(c.issued.credentials.clone())
                    }
                    _ => Err(err),
                };
            }
        };
        tracing::debug!(
            access_key_id = %issued.credentials.access_key_id,
            expiration = %issued.expiration,
            "obtained STS credentials through RRSA"
        );
        let credentials = issued.credentials.clone();
        *cache = Some(Cached { issued, obtained });
        Ok(credentials)
    }
}

/// The operator's own credentials: the environment's access key pair if set, else RRSA if its
/// three variables are set (exchanging at `sts`), else an error. A partially set pair or RRSA
/// triple is an error rather than a silent fall-through.
pub fn default_chain(
    lookup: &dyn Fn(&str) -> Option<String>,
    sts: Arc<dyn StsApi>,
) -> Result<Arc<dyn CredentialProvider>, CredentialsError> {
    if let Some(env) = EnvCredentials::from_lookup(lookup)? {
        return Ok(Arc::new(env));
    }
    if let Some(config) = RrsaConfig::from_lookup(lookup)? {
        return Ok(Arc::new(RrsaCredentials::new(config, sts)));
    }
    Err(CredentialsError::NotConfigured)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::sync::Mutex;

    use super::*;

    fn lookup(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

    /// STS double: records the tokens it was given, issues credentials valid for `lifetime`.
    struct FakeSts {
        tokens: Mutex<Vec<String>>,
        lifetime: chrono::Duration,
    }

    #[async_trait]
    impl StsApi for FakeSts {
        async fn assume_role_with_oidc(
            &self,
            req: &AssumeRoleWithOidc,
        ) -> Result<StsCredentials, CloudError> {
            tokio::time::sleep(Duration::from_millis(20)).await;
            let n = {
                let mut t = self.tokens.lock().unwrap();
                t.push(req.oidc_token.clone());
                t.len()
            };
            Ok(StsCredentials {
                credentials: Credentials {
                    access_key_id: format!("STS.{n}"),
                    access_key_secret: "s".into(),
                    security_token: Some("t".into()),
                },
                expiration: Utc::now() + self.lifetime,
            })
        }
    }

    fn fake_sts(lifetime: chrono::Duration) -> Arc<FakeSts> {
        Arc::new(FakeSts {
            tokens: Mutex::new(Vec::new()),
            lifetime,
        })
    }

    fn rrsa_config(file: &std::path::Path) -> RrsaConfig {
        RrsaConfig {
            role_arn: "acs:ram::1:role/r".into(),
            oidc_provider_arn: "acs:ram::1:oidc-provider/p".into(),
            token_file: file.to_owned(),
            role_session_name: "s".into(),
            duration: None,
        }
    }

    #[test]
    fn secret_data_reads_the_three_keys() {
        let data: BTreeMap<String, Vec<u8>> = [
            ("accessKeyId".to_string(), b"LTAI1".to_vec()),
            ("accessKeySecret".to_string(), b"sekrit\n".to_vec()),
            ("securityToken".to_string(), b"tok".to_vec()),
        ]
        .into();
        let c = Credentials::from_secret_data(&data).unwrap();
        assert_eq!(c.access_key_id, "LTAI1");
        assert_eq!(c.access_key_secret, "sekrit");
        assert_eq!(c.security_token.as_deref(), Some("tok"));
    }

    #[test]
    fn secret_data_errors_name_the_key_never_the_value() {
        let data: BTreeMap<String, Vec<u8>> =
            [("accessKeyId".to_string(), b"LTAI-visible".to_vec())].into();
        let err = Credentials::from_secret_data(&data).unwrap_err();
        assert_eq!(err, CredentialsError::MissingKey("accessKeySecret"));
        assert!(err.to_string().contains("accessKeySecret"));
        assert!(!err.to_string().contains("LTAI-visible"));
        let data: BTreeMap<String, Vec<u8>> = [
            ("accessKeyId".to_string(), b"  ".to_vec()),
            ("accessKeySecret".to_string(), vec![0xff, 0xfe]),
        ]
        .into();
        assert_eq!(
            Credentials::from_secret_data(&data).unwrap_err(),
            CredentialsError::MissingKey("accessKeyId")
        );
    }

    #[test]
    fn chain_prefers_the_access_key_pair() {
        let sts = fake_sts(chrono::Duration::hours(1));
        let env = lookup(&[
            (ENV_ACCESS_KEY_ID, "id"),
            (ENV_ACCESS_KEY_SECRET, "secret"),
            (ENV_ROLE_ARN, "r"),
            (ENV_OIDC_PROVIDER_ARN, "p"),
            (ENV_OIDC_TOKEN_FILE, "/f"),
        ]);
        let p = default_chain(&env, sts).unwrap();
        let c = futures::executor::block_on(p.credentials()).unwrap();
        assert_eq!(c, Credentials::new("id", "secret"));
    }

    #[test]
    fn chain_falls_back_to_rrsa_then_errors() {
        let env = lookup(&[
            (ENV_ROLE_ARN, "r"),
            (ENV_OIDC_PROVIDER_ARN, "p"),
            (ENV_OIDC_TOKEN_FILE, "/f"),
            (ENV_ROLE_SESSION_NAME, "mine"),
        ]);
        let cfg = RrsaConfig::from_lookup(&env).unwrap().unwrap();
        assert_eq!(cfg.role_session_name, "mine");
        assert_eq!(cfg.token_file, PathBuf::from("/f"));
        assert!(default_chain(&env, fake_sts(chrono::Duration::hours(1))).is_ok());
        let err = default_chain(&lookup(&[]), fake_sts(chrono::Duration::hours(1))).err();
        assert_eq!(err, Some(CredentialsError::NotConfigured));
    }

    #[test]
    fn partially_set_rrsa_or_key_pair_is_a_hard_error() {
        let env = lookup(&[(ENV_ROLE_ARN, "r"), (ENV_OIDC_TOKEN_FILE, "/f")]);
        let err = default_chain(&env, fake_sts(chrono::Duration::hours(1)))
            .err()
            .unwrap();
        assert_eq!(
            err,
            CredentialsError::PartialRrsa {
                missing: ENV_OIDC_PROVIDER_ARN.into()
            }
        );
        let env = lookup(&[(ENV_ACCESS_KEY_ID, "id"), (ENV_ROLE_ARN, "r")]);
        let err = default_chain(&env, fake_sts(chrono::Duration::hours(1)))
            .err()
            .unwrap();
        assert!(matches!(err, CredentialsError::PartialAccessKey { .. }));
    }

    #[test]
    fn env_credentials_pick_up_the_security_token() {
        let env = lookup(&[
            (ENV_ACCESS_KEY_ID, "STS.id"),
            (ENV_ACCESS_KEY_SECRET, "s"),
            (ENV_SECURITY_TOKEN, "tok"),
        ]);
        let c = EnvCredentials::from_lookup(&env).unwrap().unwrap();
        assert_eq!(c.0.security_token.as_deref(), Some("tok"));
    }

    #[test]
    fn refresh_happens_before_expiry() {
        let t0 = Utc::now();
        let hour = t0 + chrono::Duration::hours(1);
        assert!(!needs_refresh(t0, hour, t0));
        assert!(!needs_refresh(
            t0,
            hour,
            hour - chrono::Duration::minutes(6)
        ));
        assert!(needs_refresh(t0, hour, hour - chrono::Duration::minutes(5)));
        assert!(needs_refresh(t0, hour, hour + chrono::Duration::minutes(1)));
        // Short lifetimes refresh at the last fifth.
        let short = t0 + chrono::Duration::seconds(10);
        assert!(!needs_refresh(t0, short, t0 + chrono::Duration::seconds(7)));
        assert!(needs_refresh(t0, short, t0 + chrono::Duration::seconds(8)));
    }

    #[tokio::test]
    async fn concurrent_callers_share_one_exchange_and_the_result_is_cached() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("token");
        std::fs::write(&file, "header.payload.sig\n").unwrap();
        let sts = fake_sts(chrono::Duration::hours(1));
        let p = Arc::new(RrsaCredentials::new(rrsa_config(&file), sts.clone()));
        let calls: Vec<_> = (0..10)
            .map(|_| {
                let p = p.clone();
                tokio::spawn(async move { p.credentials().await })
            })
            .collect();
        for c in calls {
            assert_eq!(c.await.unwrap().unwrap().access_key_id, "STS.1");
        }
        p.credentials().await.unwrap();
        assert_eq!(
            *sts.tokens.lock().unwrap(),
            vec!["header.payload.sig".to_string()]
        );
    }

    #[tokio::test]
    async fn every_exchange_rereads_the_rotated_token_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("token");
        std::fs::write(&file, "a.first.sig").unwrap();
        // Expired on arrival: every call exchanges again.
        let sts = fake_sts(chrono::Duration::zero());
        let p = RrsaCredentials::new(rrsa_config(&file), sts.clone());
        p.credentials().await.unwrap();
        std::fs::write(&file, "a.second.sig").unwrap();
        let c = p.credentials().await.unwrap();
        assert_eq!(c.access_key_id, "STS.2");
        assert_eq!(
            *sts.tokens.lock().unwrap(),
            vec!["a.first.sig".to_string(), "a.second.sig".to_string()]
        );
    }

    #[tokio::test]
    async fn a_failed_refresh_keeps_unexpired_credentials_until_expiry() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("token");
        std::fs::write(&file, "a.b.c").unwrap();
        let sts = fake_sts(chrono::Duration::hours(1));
        let p = RrsaCredentials::new(rrsa_config(&file), sts.clone());
        let first = p.credentials().await.unwrap();
        std::fs::remove_file(&file).unwrap();
        // Inside the refresh margin: the refresh fails, the still-valid credentials are served.
        let later = Utc::now() + chrono::Duration::minutes(58);
        assert_eq!(p.credentials_at(later).await.unwrap(), first);
        // Past expiry: the failure surfaces.
        let expired = Utc::now() + chrono::Duration::minutes(61);
        let err = p.credentials_at(expired).await.unwrap_err();
        assert_eq!(err.kind, ErrorKind::InvalidCredentials);
        assert_eq!(sts.tokens.lock().unwrap().len(), 1);
    }

    #[tokio::test]
    async fn unreadable_token_file_is_an_invalid_credentials_error() {
        let p = RrsaCredentials::new(
            rrsa_config(std::path::Path::new("/nonexistent/token")),
            fake_sts(chrono::Duration::hours(1)),
        );
        let err = p.credentials().await.unwrap_err();
        assert_eq!(err.kind, ErrorKind::InvalidCredentials);
        assert!(err.message.contains("/nonexistent/token"));
    }

    #[test]
    fn debug_never_prints_secrets() {
        let c = Credentials {
            access_key_id: "LTAIid".into(),
            access_key_secret: "very-secret-value".into(),
            security_token: Some("sts-token-value".into()),
        };
        let s = format!("{c:?} {:?}", StaticCredentials(c.clone()));
        assert!(!s.contains("very-secret-value"));
        assert!(!s.contains("sts-token-value"));
        assert!(s.contains("LTAIid"));
    }
}
