//! Controllers: one module per kind, each in the same shape, and the runtime they share.
//!
//! - [`runtime`]: how a reconcile goes, written once (watches, finalizer, backoff, error policy,
//!   status writer, Events, metrics, shutdown); a kind implements [`runtime::Reconciler`].
//! - [`conditions`]: the `Ready` / `Reconciling` / `Stalled` phase model.
//! - [`claims`]: which object manages a cloud resource several objects name.
//! - [`deletion`]: when a finalizer may go without a release.
//! - [`credentials`]: resolving credentials, and protecting the Secrets they come from.
//! - `<kind>/`: `mod.rs` (wiring), `observe.rs` (cloud and cluster into facts), `decide.rs`
//!   (pure: facts + now → one step), `requests.rs` (spec → API requests), `act.rs` (the only
//!   mutating cloud calls), `report.rs` (reasons, status, Events), `cleanup.rs` (deletion).

mod backoff;
pub mod backup_plan;
pub mod cache;
pub mod claims;
pub mod conditions;
mod context;
pub mod credentials;
pub mod deletion;
mod error;
mod events;
mod failpoint;
pub mod rds_connection;
pub mod runtime;
mod status;
pub mod turns;
mod watch_sync;

pub use context::{Context, ControllerConfig};
pub use error::{Error, cloud_message};
pub use failpoint::Failpoint;
pub use runtime::shutdown_signal;
pub use status::Managed;
pub use watch_sync::WatchSync;

/// Finalizer both kinds put on their objects before creating anything in the cloud.
pub const FINALIZER: &str = "db.alicloud.dev/finalizer";

/// Field manager of every server-side apply the operator makes.
pub const FIELD_MANAGER: &str = "alicloud-db-operator";
