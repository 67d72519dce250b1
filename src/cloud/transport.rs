//! Alibaba Cloud over HTTP: the client (signing, rate limiting, retries, the success verdict)
//! and its configuration. The typed DBS and RDS calls built on it live with their API models,
//! in `dbs/http.rs` and `rds/http.rs`.

mod client;
mod params;
mod shape;

pub(crate) use client::Idempotency;
pub use client::{AlibabaCloud, ClientBuildError, ClientConfig, operator_user_agent};
pub(crate) use params::Params;
