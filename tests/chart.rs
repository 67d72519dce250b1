//! The Helm chart (`charts/alicloud-db-operator`) and the plain manifests rendered from it
//! (`deploy/`): lint, the values schema, renders of every `ci/*-values.yaml` accepted by a real
//! kube-apiserver, real `helm install`s and the permissions they grant, the rendered arguments
//! parsed by the operator's own CLI parser, and the CRDs kept equal to `crds/`. One test runs the
//! operator binary with the installed Deployment's arguments as the chart's ServiceAccount
//! through a whole lifecycle of the samples against the emulator: the least-privilege RBAC is
//! proven sufficient, not just small.
//!
//! helm comes from `alicloud_testenv::tools::helm()` (pinned, installed on first use); without it
//! the tests fail, they never skip.

#[allow(dead_code)]
mod common;

#[path = "chart/cluster.rs"]
mod cluster;
#[path = "chart/lifecycle.rs"]
mod lifecycle;
#[path = "chart/render.rs"]
mod render;
#[path = "chart/rendered.rs"]
mod rendered;
#[path = "chart/values.rs"]
mod values;
