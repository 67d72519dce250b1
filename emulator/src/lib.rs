//! HTTP emulator of the Alibaba Cloud DBS (2019-03-06), RDS (2014-08-15) and
//! STS (2015-04-01) RPC APIs, for trying and testing alicloud-db-operator.
//!
//! Embed it with [`Emulator::start`] or run the `alicloud-emulator` binary.

#![warn(missing_docs)]

mod admin;
mod auth;
pub mod config;
mod dbs;
pub mod error;
mod faults;
mod quota;
mod rds;
mod server;
mod signature;
mod snapshot;
mod state;
mod sts;
mod wire;
mod xml;

pub use config::{DbsErrorMode, EmulatorConfig};
pub use error::EmulatorError;
pub use server::Emulator;
pub use snapshot::{InstanceSnapshot, Snapshot};
pub use state::{CallRecord, Connection, Plan, Precheck, PrecheckFailure};
