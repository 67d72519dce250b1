//! Controllers, one module per kind, and what they share: the [`Context`], conditions,
//! credentials resolution and the error type whose `reason()` feeds conditions, Events and
//! metrics; [`credentials_protection`] keeps credentials Secrets alive while objects use them.

mod backoff;
pub mod backup_plan;
pub mod conditions;
mod context;
pub mod credentials_protection;
mod error;
mod own_writes;
pub mod rds_connection;

pub use context::{Context, ControllerConfig, Failpoint};
pub use error::{Error, cloud_message};

/// Finalizer both kinds put on their objects before creating anything in the cloud.
pub const FINALIZER: &str = "db.alicloud.dev/finalizer";

/// Field manager of every server-side apply the operator makes.
pub const FIELD_MANAGER: &str = "alicloud-db-operator";
