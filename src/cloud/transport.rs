//! Alibaba Cloud over HTTP: the client, its configuration, and the typed DBS/RDS calls.

mod client;
mod dbs_calls;
mod params;
mod rds_calls;

pub use client::{AlibabaCloud, ClientBuildError, ClientConfig, operator_user_agent};
pub use dbs_calls::{normalize_backup_period, normalize_endpoint_type};
