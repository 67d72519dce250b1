//! The HTTP client: signs, rate-limits, sends and retries one RPC call, then hands the body to
//! [`verdict`] for the verdict.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use serde_json::Value;

use super::params::Params;
use super::shape;
use crate::cloud::accounts::{Accounts, Principal};
use crate::cloud::credentials::{CredentialsError, RrsaConfig, RrsaCredentials, default_chain};
use crate::cloud::endpoints::{Endpoints, Product};
use crate::cloud::limiter::{Quotas, RateLimiter};
use crate::cloud::observer::Observer;
use crate::cloud::signer::{
    FORM_CONTENT_TYPE, JSON_CONTENT_TYPE, SignatureVersion, V3Request, canonical_query, new_nonce,
    percent_encode, sign_v2, sign_v3, v2_common_params,
};
use crate::cloud::sts::{
    self, ASSUME_ROLE_WITH_OIDC, AssumeRoleWithOidc, CallerIdentity, GET_CALLER_IDENTITY, StsApi,
    StsCredentials,
};
use crate::cloud::wire::{Body, request_id, verdict};
use crate::cloud::{CloudError, CredentialProvider, Credentials, ErrorKind};

/// Tunables of [`AlibabaCloud`].
#[derive(Clone, Debug)]
pub struct ClientConfig {
    /// Endpoint overrides; unset products use the default host of the region.
    pub endpoints: Endpoints,
    /// Deadline of one HTTP attempt, body included.
    pub timeout: Duration,
    /// Deadline of establishing a connection.
    pub connect_timeout: Duration,
    /// Attempts per call, first included (at least 1).
    pub max_attempts: u32,
    /// First retry delay ceiling; doubles per attempt, full jitter.
    pub base_backoff: Duration,
    /// Cap of the retry delay ceiling.
    pub max_backoff: Duration,
    /// Client-side rate limits per (account, action).
    pub quotas: Quotas,
    /// `User-Agent` header.
    pub user_agent: String,
    /// Request signature scheme; V3 unless an endpoint needs V2.
    pub signature_version: SignatureVersion,
    /// Who hears about every attempt and rate-limiter wait (the operator's metrics).
    pub observer: Observer,
}

impl Default for ClientConfig {
    /// Default endpoints, 15 s per attempt, 5 s to connect, 4 attempts, 200 ms → 10 s backoff,
    /// [`Quotas::default`], V3 signatures.
    fn default() -> Self {
        Self {
            endpoints: Endpoints::default(),
            timeout: Duration::from_secs(15),
            connect_timeout: Duration::from_secs(5),
            max_attempts: 4,
            base_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(10),
            quotas: Quotas::default(),
            user_agent: operator_user_agent(None),
            signature_version: SignatureVersion::V3,
            observer: Observer::default(),
        }
    }
}

/// The `User-Agent` of the operator's calls, shaped like the official SDKs' (`AlibabaCloud
/// (os; arch) ...`): the operator, its version and, when known, the replica (pod) making them.
pub fn operator_user_agent(instance: Option<&str>) -> String {
    let mut ua = format!(
        "AlibabaCloud ({}; {}) alicloud-db-operator/{}",
        std::env::consts::OS,
        std::env::consts::ARCH,
        env!("CARGO_PKG_VERSION")
    );
    if let Some(pod) = instance.filter(|p| !p.is_empty()) {
        let pod: String = pod
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'))
            .collect();
        ua.push_str(" pod/");
        ua.push_str(&pod);
    }
    ua
}

/// Why the client could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ClientBuildError {
    /// The HTTP stack (TLS roots, ...) could not be set up.
    #[error("cannot build the HTTP client: {0}")]
    Http(#[from] reqwest::Error),
}

/// Alibaba Cloud over HTTP: implements [`crate::cloud::DbsApi`], [`crate::cloud::RdsApi`] and
/// [`StsApi`]. Cheap to clone; clones share the connection pool and the rate limiter.
#[derive(Clone)]
pub struct AlibabaCloud {
    inner: Arc<Inner>,
}

struct Inner {
    http: reqwest::Client,
    limiter: RateLimiter,
    /// Turns booked ahead of calls ([`AlibabaCloud::turn`]), at the same quotas.
    turns: RateLimiter,
    accounts: Accounts,
    config: ClientConfig,
}

impl std::fmt::Debug for AlibabaCloud {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AlibabaCloud")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

/// Whether repeating a call after an ambiguous failure is harmless.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Idempotency {
    /// Reads, and writes carrying a `ClientToken`: retried on any retryable failure.
    Safe,
    /// Other writes: retried only when the request surely did not reach the service
    /// (connect failure) or was refused by flow control.
    Unsafe,
}

/// One RPC call. `Debug` shows parameter names only.
#[derive(Debug)]
pub(crate) struct RpcCall<'a> {
    pub(crate) product: Product,
    pub(crate) action: &'static str,
    pub(crate) region: &'a str,
    /// `None` for anonymous calls (STS `AssumeRoleWithOIDC`).
    pub(crate) credentials: Option<&'a Credentials>,
    pub(crate) params: Params,
    pub(crate) idempotency: Idempotency,
}

/// A failed attempt, and whether the request may have reached the service.
struct AttemptError {
    error: CloudError,
    not_sent: bool,
}

impl AlibabaCloud {
    /// One signed call of `product` on behalf of `scope` (its credentials and region).
    pub(crate) async fn call_in_scope(
        &self,
        product: Product,
        scope: &crate::cloud::Scope,
        action: &'static str,
        params: Params,
        idempotency: Idempotency,
    ) -> Result<Value, CloudError> {
        self.call(RpcCall {
            product,
            action,
            region: &scope.region,
            credentials: Some(&scope.credentials),
            params,
            idempotency,
        })
        .await
    }

    /// A client with `config`.
    pub fn new(config: ClientConfig) -> Result<Self, ClientBuildError> {
        let http = reqwest::Client::builder()
            .user_agent(config.user_agent.clone())
            .connect_timeout(config.connect_timeout)
            // HTTP/1.1 keeps the signed `host` header exactly what the server sees.
            .http1_only()
            .build()?;
        Ok(Self {
            inner: Arc::new(Inner {
                http,
                limiter: RateLimiter::new(config.quotas.clone()),
                turns: RateLimiter::new(config.quotas.clone()),
                accounts: Accounts::default(),
                config,
            }),
        })
    }

    /// The configuration in use.
    pub fn config(&self) -> &ClientConfig {
        &self.inner.config
    }

    /// An RRSA provider that exchanges tokens at this client's STS endpoint.
    pub fn rrsa_credentials(&self, config: RrsaConfig) -> RrsaCredentials {
        RrsaCredentials::new(config, Arc::new(self.clone()))
    }

    /// The operator's own credentials from the process environment ([`default_chain`]), RRSA
    /// exchanging at this client's STS endpoint.
    pub fn default_credentials(&self) -> Result<Arc<dyn CredentialProvider>, CredentialsError> {
        self.default_credentials_from(&|name| std::env::var(name).ok())
    }

    /// Like [`AlibabaCloud::default_credentials`], reading variables through `lookup`.
    pub fn default_credentials_from(
        &self,
        lookup: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Arc<dyn CredentialProvider>, CredentialsError> {
        default_chain(lookup, Arc::new(self.clone()))
    }

    /// Whose quota (and plans) calls signed with `credentials` count against: the account STS
    /// `GetCallerIdentity` names for the key, looked up once per key (id and secret) and cached;
    /// the key itself while that lookup fails (see [`crate::cloud::accounts`]).
    pub async fn principal(&self, credentials: &Credentials) -> Principal {
        self.inner
            .accounts
            .principal(
                &credentials.access_key_id,
                &credentials.access_key_secret,
                || async {
                    self.caller_identity(credentials)
                        .await
                        .map(|identity| identity.account_id)
                },
            )
            .await
    }

    /// Books a turn for one call of `action` signed with `credentials`, at the account's quota
    /// like the call itself: how long until it is due. The bookings form a queue of their own
    /// (the call still waits for its token when it is sent), so a caller with a long wait ahead
    /// can let go of its worker and come back when its turn is due, first come, first served.
    pub async fn turn(&self, credentials: &Credentials, action: &str) -> Duration {
        let key = self.principal(credentials).await.key();
        self.inner.turns.book(&key, action)
    }

    /// How long a call of `action` signed with `credentials` would wait for its token under
    /// the account's quota if it were made now (the calls already waiting ahead of it); takes
    /// no token.
    pub async fn backlog(&self, credentials: &Credentials, action: &str) -> Duration {
        let key = self.principal(credentials).await.key();
        self.inner.limiter.backlog(&key, action)
    }

    /// STS `GetCallerIdentity`: who `credentials` are.
    pub async fn caller_identity(
        &self,
        credentials: &Credentials,
    ) -> Result<CallerIdentity, CloudError> {
        // Boxed: `call` looks up accounts, which calls `call` again (for this action only).
        let value = Box::pin(self.call(RpcCall {
            product: Product::Sts,
            action: GET_CALLER_IDENTITY,
            region: "",
            credentials: Some(credentials),
            params: Params::new(),
            idempotency: Idempotency::Safe,
        }))
        .await?;
        sts::parse_caller_identity(&value)
    }

    /// Runs one call with rate limiting, signing, retries and the success verdict.
    pub(crate) async fn call(&self, call: RpcCall<'_>) -> Result<Value, CloudError> {
        let config = &self.inner.config;
        let base_url = config.endpoints.base_url(call.product, call.region);
        let url = reqwest::Url::parse(&format!("{base_url}/")).map_err(|e| {
            CloudError::local(
                call.action,
                ErrorKind::Terminal,
                format!("invalid endpoint {base_url:?}: {e}"),
            )
        })?;
        let host = match (url.host_str(), url.port()) {
            (Some(h), Some(p)) => format!("{h}:{p}"),
            (Some(h), None) => h.to_owned(),
            (None, _) => {
                return Err(CloudError::local(
                    call.action,
                    ErrorKind::Terminal,
                    format!("endpoint {base_url:?} has no host"),
                ));
            }
        };
        // Quotas are counted per account: the limiter's key is the account of the credentials
        // (the identity lookup itself, and anonymous calls, count against the key).
        let limiter_key = match call.credentials {
            None => Principal::Key("anonymous".to_owned()),
            Some(c) if call.action == GET_CALLER_IDENTITY => {
                Principal::Key(c.access_key_id.clone())
            }
            Some(c) => self.principal(c).await,
        }
        .key();
        let max_attempts = config.max_attempts.max(1);
        let mut attempt = 1;
        loop {
            let queued = std::time::Instant::now();
            self.inner.limiter.acquire(&limiter_key, call.action).await;
            let sent = std::time::Instant::now();
            config
                .observer
                .limiter_wait(call.action, sent.duration_since(queued));
            let outcome = self.attempt(&call, &url, &host).await;
            let code = match &outcome {
                Ok(_) => "Success",
                Err(f) => f.error.code.as_deref().unwrap_or(f.error.kind.reason()),
            };
            config
                .observer
                .attempt(call.product, call.action, code, sent.elapsed());
            let failure = match outcome {
                Ok(value) => {
                    tracing::debug!(
                        action = call.action,
                        attempt,
                        request_id = request_id(&value).as_deref().unwrap_or("-"),
                        outcome = "Success",
                        "alibaba cloud call"
                    );
                    return Ok(value);
                }
                Err(f) => f,
            };
            let mut err = failure.error;
            scrub_secrets(&mut err.message, &call);
            let may_retry = may_retry(err.kind, call.idempotency, failure.not_sent);
            tracing::debug!(
                action = call.action,
                attempt,
                request_id = err.request_id.as_deref().unwrap_or("-"),
                outcome = err.code.as_deref().unwrap_or(err.kind.reason()),
                http_status = err.http_status,
                will_retry = may_retry && attempt < max_attempts,
                "alibaba cloud call"
            );
            if !may_retry || attempt >= max_attempts {
                return Err(err);
            }
            tokio::time::sleep(self.backoff(attempt, &err)).await;
            attempt += 1;
        }
    }

    /// Full-jitter delay before attempt `attempt + 1`: uniform in [0, base × 2^(attempt-1)]
    /// capped at `max_backoff`; throttling draws from at least [0, 1 s]; `Retry-After` is a floor.
    fn backoff(&self, attempt: u32, err: &CloudError) -> Duration {
        let config = &self.inner.config;
        let exp = config
            .base_backoff
            .saturating_mul(2u32.saturating_pow(attempt.saturating_sub(1)));
        let mut ceiling = exp.min(config.max_backoff);
        if err.kind == ErrorKind::Throttled {
            ceiling = ceiling.max(Duration::from_secs(1).min(config.max_backoff));
        }
        let jittered = ceiling.mul_f64(rand::random::<f64>());
        jittered.max(err.retry_after.unwrap_or_default())
    }

    async fn attempt(
        &self,
        call: &RpcCall<'_>,
        url: &reqwest::Url,
        host: &str,
    ) -> Result<Value, AttemptError> {
        let config = &self.inner.config;
        let mut params = call.params.clone();
        if let Some(name) = shape::region_param(call.product, call.action)
            && !params.has(name)
        {
            params = params.set(name, call.region);
        }
        let (body_pairs, query_pairs): (Vec<_>, Vec<_>) = params
            .to_pairs()
            .into_iter()
            .partition(|(k, _)| shape::in_body(call.product, call.action, k));
        let now = Utc::now();
        let nonce = new_nonce();
        let body = canonical_query(&body_pairs);
        let content_type = (!body.is_empty()).then_some(FORM_CONTENT_TYPE);
        let mut headers: Vec<(String, String)>;
        let query: String;
        match (config.signature_version, call.credentials) {
            (SignatureVersion::V2, Some(credentials)) => {
                // The V2 common parameters (with `Format=JSON`) and the signature, computed over
                // query and body alike, travel in the query string.
                let mut signed = v2_common_params(
                    call.action,
                    call.product.version(),
                    credentials,
                    now,
                    &nonce,
                );
                signed.extend(query_pairs.iter().cloned());
                let mut all = signed.clone();
                all.extend(body_pairs.iter().cloned());
                let signature = sign_v2("POST", &all, &credentials.access_key_secret);
                signed.push(("Signature".into(), signature));
                query = canonical_query(&signed);
                headers = content_type
                    .map(|ct| ("content-type".to_owned(), ct.to_owned()))
                    .into_iter()
                    .collect();
            }
            (_, credentials) => {
                query = canonical_query(&query_pairs);
                let anonymous = Credentials::new("", "");
                let req = V3Request {
                    method: "POST",
                    host,
                    action: call.action,
                    version: call.product.version(),
                    query: &query_pairs,
                    body: body.as_bytes(),
                    content_type,
                    now,
                    nonce: &nonce,
                };
                let signed = sign_v3(&req, credentials.unwrap_or(&anonymous));
                headers = signed.headers;
                if credentials.is_none() {
                    headers.retain(|(k, _)| k != "authorization");
                }
            }
        }
        // Like the official runtimes: ask for JSON (many Alibaba products answer XML by
        // default). Not a signed header.
        headers.push(("accept".into(), JSON_CONTENT_TYPE.into()));
        let mut url = url.clone();
        url.set_query((!query.is_empty()).then_some(query.as_str()));
        let mut header_map = HeaderMap::new();
        for (k, v) in headers {
            let name = HeaderName::from_bytes(k.as_bytes());
            let value = HeaderValue::from_str(&v);
            match (name, value) {
                (Ok(name), Ok(value)) => {
                    header_map.insert(name, value);
                }
                _ => {
                    return Err(AttemptError {
                        error: CloudError::local(
                            call.action,
                            ErrorKind::Terminal,
                            format!("header {k} has a value HTTP cannot carry"),
                        ),
                        not_sent: true,
                    });
                }
            }
        }
        let response = self
            .inner
            .http
            .post(url)
            .headers(header_map)
            .body(body)
            .timeout(config.timeout)
            .send()
            .await
            .map_err(|e| transport_error(call.action, e))?;
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let header_request_id = response
            .headers()
            .get("x-acs-request-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let response_type = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let bytes = response
            .bytes()
            .await
            .map_err(|e| transport_error(call.action, e))?;
        let body = Body {
            http_status: status,
            content_type: response_type.as_deref(),
            bytes: &bytes,
        };
        verdict(call.product, call.action, &body).map_err(|mut error| {
            error.retry_after = retry_after;
            if error.request_id.is_none() {
                error.request_id = header_request_id;
            }
            AttemptError {
                error,
                not_sent: false,
            }
        })
    }
}

/// Replaces every secret the call carried (password, OIDC token, access key secret, STS
/// token), raw or percent-encoded once or twice, in a message the service may have built from
/// our request (`SignatureDoesNotMatch` echoes the string to sign).
fn scrub_secrets(message: &mut String, call: &RpcCall<'_>) {
    let mut secrets: Vec<&str> = call.params.secret_values().collect();
    if let Some(c) = call.credentials {
        secrets.push(&c.access_key_secret);
        secrets.extend(c.security_token.as_deref());
    }
    for secret in secrets.into_iter().filter(|s| s.len() >= 4) {
        let once = percent_encode(secret);
        let twice = percent_encode(&once);
        for form in [twice, once, secret.to_owned()] {
            if message.contains(&form) {
                *message = message.replace(&form, "***");
            }
        }
    }
}

/// Whether a failed attempt may be repeated: throttling refusals always (the service did
/// nothing), other transient failures when the call is idempotent or surely never arrived.
fn may_retry(kind: ErrorKind, idempotency: Idempotency, not_sent: bool) -> bool {
    match kind {
        ErrorKind::Throttled => true,
        ErrorKind::Retryable => idempotency == Idempotency::Safe || not_sent,
        ErrorKind::NotFound | ErrorKind::InvalidCredentials | ErrorKind::Terminal => false,
    }
}

/// A failure without a response: retryable; "not sent" only when the connection never opened.
/// The URL (whose query string carries the parameters, secrets included) is left out.
fn transport_error(action: &'static str, e: reqwest::Error) -> AttemptError {
    let not_sent = e.is_connect();
    let e = e.without_url();
    let mut message = if e.is_timeout() {
        "request timed out".to_owned()
    } else {
        "request failed".to_owned()
    };
    let mut source: Option<&dyn std::error::Error> = Some(&e);
    while let Some(s) = source {
        message.push_str(": ");
        message.push_str(&s.to_string());
        source = s.source();
    }
    AttemptError {
        error: CloudError::local(action, ErrorKind::Retryable, message),
        not_sent,
    }
}

#[async_trait::async_trait]
impl StsApi for AlibabaCloud {
    async fn assume_role_with_oidc(
        &self,
        req: &AssumeRoleWithOidc,
    ) -> Result<StsCredentials, CloudError> {
        let value = self
            .call(RpcCall {
                product: Product::Sts,
                action: ASSUME_ROLE_WITH_OIDC,
                region: "",
                credentials: None,
                params: req.params().into(),
                // Each exchange issues fresh credentials; repeating one is harmless.
                idempotency: Idempotency::Safe,
            })
            .await?;
        sts::parse_response(&value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ErrorKind::*;
    use Idempotency::*;

    #[test]
    fn retry_policy_table() {
        let cases = [
            (Retryable, Safe, false, true),
            (Retryable, Unsafe, false, false),
            (Retryable, Unsafe, true, true),
            (Throttled, Unsafe, false, true),
            (Throttled, Safe, false, true),
            (NotFound, Safe, true, false),
            (InvalidCredentials, Safe, true, false),
            (Terminal, Safe, true, false),
        ];
        for (kind, idem, not_sent, want) in cases {
            assert_eq!(
                may_retry(kind, idem, not_sent),
                want,
                "{kind:?} {idem:?} {not_sent}"
            );
        }
    }

    #[test]
    fn backoff_is_jittered_capped_and_throttling_waits_longer() {
        let client = AlibabaCloud::new(ClientConfig {
            base_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(2),
            ..ClientConfig::default()
        })
        .unwrap();
        let transient = CloudError::local("A", Retryable, "x");
        for attempt in 1..10 {
            let d = client.backoff(attempt, &transient);
            let ceiling =
                Duration::from_millis(100 * 2u64.pow(attempt - 1)).min(Duration::from_secs(2));
            assert!(d <= ceiling, "attempt {attempt}: {d:?}");
        }
        let mut throttled = CloudError::local("A", Throttled, "x");
        assert!(client.backoff(1, &throttled) <= Duration::from_secs(1));
        throttled.retry_after = Some(Duration::from_secs(3));
        assert!(client.backoff(1, &throttled) >= Duration::from_secs(3));
    }

    #[test]
    fn echoed_secrets_are_scrubbed_from_messages() {
        let creds = Credentials {
            access_key_id: "id".into(),
            access_key_secret: "the-secret".into(),
            security_token: Some("tok/en+1".into()),
        };
        let call = RpcCall {
            product: Product::Dbs,
            action: "ConfigureBackupPlan",
            region: "cn-hangzhou",
            credentials: Some(&creds),
            params: Params::new().set("SourceEndpointPassword", "p@ss word"),
            idempotency: Idempotency::Unsafe,
        };
        let mut message = "string to sign: SourceEndpointPassword%3Dp%2540ss%2520word%26 \
            x-acs-security-token:tok/en+1 p@ss word the-secret"
            .to_owned();
        scrub_secrets(&mut message, &call);
        for leaked in ["p%2540ss", "p@ss", "tok/en", "the-secret"] {
            assert!(!message.contains(leaked), "{message}");
        }
    }

    #[tokio::test]
    async fn an_unreachable_endpoint_is_a_retryable_error() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let client = AlibabaCloud::new(ClientConfig {
            endpoints: Endpoints::all(format!("http://{addr}")),
            max_attempts: 2,
            base_backoff: Duration::from_millis(1),
            ..ClientConfig::default()
        })
        .unwrap();
        let creds = Credentials::new("id", "secret");
        let err = client
            .call(RpcCall {
                product: Product::Rds,
                action: "ReleaseInstanceConnection",
                region: "cn-hangzhou",
                credentials: Some(&creds),
                params: Params::new(),
                idempotency: Idempotency::Unsafe,
            })
            .await
            .unwrap_err();
        assert_eq!(err.kind, Retryable);
        assert_eq!(err.http_status, None);
        assert!(!format!("{err:?}").contains("secret"));
    }
}
