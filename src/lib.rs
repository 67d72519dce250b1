//! alicloud-db-operator: manages Alibaba Cloud DBS backup plans and RDS public endpoints
//! as Kubernetes custom resources.

#![warn(missing_docs)]

pub mod cli;
pub mod cloud;
pub mod controller;
pub mod crd;
pub mod metrics;
pub mod server;
mod sync;
