//! What the tests read of both kinds' status: conditions and the generation acted upon.

use alicloud_db_operator::crd::{BackupPlan, RdsConnection};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::Resource;

/// A kind whose status carries kstatus conditions and `observedGeneration`.
pub trait Conditioned: Resource {
    /// `status.conditions` (empty without a status).
    fn conditions(&self) -> &[Condition];
    /// `status.observedGeneration`.
    fn observed_generation(&self) -> Option<i64>;
}

impl Conditioned for BackupPlan {
    fn conditions(&self) -> &[Condition] {
        self.status.as_ref().map_or(&[], |s| &s.conditions)
    }
    fn observed_generation(&self) -> Option<i64> {
        self.status.as_ref().and_then(|s| s.observed_generation)
    }
}

impl Conditioned for RdsConnection {
    fn conditions(&self) -> &[Condition] {
        self.status.as_ref().map_or(&[], |s| &s.conditions)
    }
    fn observed_generation(&self) -> Option<i64> {
        self.status.as_ref().and_then(|s| s.observed_generation)
    }
}

/// The condition `type_` of `obj`.
pub fn condition<K: Conditioned>(obj: &K, type_: &str) -> Option<Condition> {
    obj.conditions().iter().find(|c| c.type_ == type_).cloned()
}

/// Whether the condition `type_` of `obj` has `status` and `reason`.
pub fn is<K: Conditioned>(obj: &K, type_: &str, status: &str, reason: &str) -> bool {
    condition(obj, type_).is_some_and(|c| c.status == status && c.reason == reason)
}

/// Whether `obj` is Ready (reason `Available`) for its current generation.
pub fn is_ready<K: Conditioned>(obj: &K) -> bool {
    is(obj, "Ready", "True", "Available") && obj.observed_generation() == obj.meta().generation
}

/// The reason of `obj`'s `Ready` condition while it is `True`.
pub fn ready_reason<K: Conditioned>(obj: &K) -> Option<String> {
    condition(obj, "Ready")
        .filter(|c| c.status == "True")
        .map(|c| c.reason)
}
