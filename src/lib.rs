//! alicloud-db-operator: manages Alibaba Cloud DBS backup plans and RDS public endpoints
//! as Kubernetes custom resources.

pub mod cloud;
pub mod controller;
pub mod crd;
