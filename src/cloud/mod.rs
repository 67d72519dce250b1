//! Alibaba Cloud client: request signing, credentials, the DBS / RDS / STS calls the controllers
//! make, error classification and client-side rate limiting.
//!
//! Controllers depend only on the [`DbsApi`] and [`RdsApi`] traits; [`AlibabaCloud`] implements
//! them over HTTP (V3-signed POST forms, client-side rate limiting, safe retries, one success
//! verdict, one error classification), and wrappers (metrics) can implement the same traits.
//! Nothing in this module knows about Kubernetes.
//!
//! Typical wiring in `main`:
//! ```no_run
//! # async fn wire() -> anyhow::Result<()> {
//! use alicloud_db_operator::cloud::{AlibabaCloud, ClientConfig, CredentialProvider, Endpoints, Scope};
//! let cloud = AlibabaCloud::new(ClientConfig {
//!     endpoints: Endpoints::from_env(),
//!     ..ClientConfig::default()
//! })?;
//! // The operator's own identity: env AccessKey pair, else RRSA (exchanged at STS).
//! let own = cloud.default_credentials()?;
//! let scope = Scope { credentials: own.credentials().await?, region: "cn-hangzhou".into() };
//! # let _ = scope; Ok(()) }
//! ```

pub mod accounts;
pub mod credentials;
pub mod dbs;
pub mod endpoints;
pub mod error;
pub mod limiter;
pub mod observer;
pub mod rds;
pub mod signer;
pub mod sts;
mod transport;
mod wire;

pub use accounts::Principal;
pub use credentials::{
    CredentialProvider, Credentials, CredentialsError, EnvCredentials, RrsaConfig, RrsaCredentials,
    StaticCredentials, default_chain,
};
pub use dbs::DbsApi;
pub use dbs::{normalize_backup_period, normalize_endpoint_type};
pub use endpoints::{Endpoints, Product};
pub use error::{CloudError, ErrorKind, classify};
pub use limiter::{Quotas, RateLimiter};
pub use observer::{CallObserver, Observer};
pub use rds::RdsApi;
pub use signer::SignatureVersion;
pub use sts::{AssumeRoleWithOidc, CallerIdentity, StsApi, StsCredentials};
pub use transport::{AlibabaCloud, ClientBuildError, ClientConfig, operator_user_agent};

/// Who makes a call and where: the credentials it is signed with and the region it targets.
#[derive(Clone, Debug)]
pub struct Scope {
    /// Credentials the request is signed with.
    pub credentials: Credentials,
    /// Region of the resource (`Region` for DBS, `RegionId` for RDS); also picks the endpoint.
    pub region: String,
}
