//! Types shared by every kind: deletion policy, references to Secrets, well-known names.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Annotation that, set to `"true"`, stops every cloud call for the object.
pub const PAUSED_ANNOTATION: &str = "db.alicloud.dev/paused";

/// Whether an object's `db.alicloud.dev/paused` annotation is `"true"`.
pub fn is_paused(meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> bool {
    annotation(meta, PAUSED_ANNOTATION) == Some("true")
}

/// Annotation that, set to `"true"` on an object being deleted, removes its finalizer without
/// releasing its cloud resource: the way to finish a deletion by hand (a plan whose release DBS
/// keeps refusing, a paused object, credentials that are gone for good).
pub const ABANDON_ANNOTATION: &str = "db.alicloud.dev/abandon";

/// Whether an object's `db.alicloud.dev/abandon` annotation is `"true"`.
pub fn is_abandoned(meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> bool {
    annotation(meta, ABANDON_ANNOTATION) == Some("true")
}

/// The value of annotation `key`, if the object has it.
pub fn annotation<'a>(
    meta: &'a k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
    key: &str,
) -> Option<&'a str> {
    meta.annotations
        .as_ref()
        .and_then(|a| a.get(key))
        .map(String::as_str)
}

/// What happens to the cloud resource when the Kubernetes object is deleted.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum DeletionPolicy {
    /// Release the cloud resource, then remove the object.
    #[default]
    Delete,
    /// Leave the cloud resource as it is and only remove the object.
    Retain,
}

/// A Secret in the object's own namespace holding Alibaba Cloud credentials under the keys
/// `accessKeyId`, `accessKeySecret` and, for STS credentials, `securityToken`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CredentialsRef {
    /// Name of the Secret in the object's namespace.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
}

/// One key of a Secret in the object's own namespace.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretKeyRef {
    /// Name of the Secret in the object's namespace.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// Key inside the Secret's data.
    #[schemars(length(min = 1, max = 253))]
    pub key: String,
}

/// A Secret in the object's own namespace that the operator writes.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LocalSecretRef {
    /// Name of the Secret in the object's namespace.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
}
