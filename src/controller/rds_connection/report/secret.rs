//! The endpoint Secret: `host`, `port` and `endpoint` of the public endpoint, in the Secret
//! `writeConnectionSecretToRef` names, owned by the RdsConnection.
//!
//! Only a Secret the operator created (it carries [`MANAGED_BY_LABEL`]) is ever written: an
//! existing Secret of the user's is never overwritten nor given an ownerReference, which would
//! hand its lifetime to the RdsConnection (the garbage collector would delete it, with all its
//! keys, together with the object). Such a Secret stalls the object with `SecretExists`.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, Patch, PatchParams};
use kube::{Resource, ResourceExt};

use super::EndpointView;
use crate::controller::credentials;
use crate::controller::{Context, Error, FIELD_MANAGER};
use crate::crd::RdsConnection;

/// Label put on every Secret this controller writes; the controller watches only those.
pub const MANAGED_BY_LABEL: (&str, &str) = ("app.kubernetes.io/managed-by", "alicloud-db-operator");

/// The data of the endpoint Secret.
pub fn secret_data(endpoint: &EndpointView, port: i32) -> BTreeMap<String, ByteString> {
    let host = endpoint.connection_string.clone();
    BTreeMap::from([
        (
            "endpoint".to_owned(),
            ByteString(format!("{host}:{port}").into_bytes()),
        ),
        ("port".to_owned(), ByteString(port.to_string().into_bytes())),
        ("host".to_owned(), ByteString(host.into_bytes())),
    ])
}

/// What became of the endpoint Secret.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SecretWrite {
    /// The Secret holds the endpoint (or the spec names no Secret).
    Written,
    /// A Secret the operator did not create has the name; it was left alone.
    Refused {
        /// The `Stalled` condition's message (reason `SecretExists`): which Secret, and what
        /// to do.
        message: String,
    },
}

/// Whether the existing Secret (if any) may be written. Refuses, as an error (`SecretNotUsable`),
/// a credentials Secret objects use and a Secret controlled by another object; answers
/// `Ok(Some(message))` for any other Secret that lacks [`MANAGED_BY_LABEL`]: the user's own,
/// left alone (`SecretExists`). `Ok(None)`: absent (it is created) or written by the operator.
pub fn check_secret_owner(
    existing: Option<&Secret>,
    obj: &RdsConnection,
) -> Result<Option<String>, Error> {
    let Some(secret) = existing else {
        return Ok(None);
    };
    let meta = secret.meta();
    if credentials::is_marked(meta) {
        return Err(Error::Secret(format!(
            "Secret {}/{} holds credentials that objects use; writeConnectionSecretToRef must \
             name another Secret",
            secret.namespace().unwrap_or_default(),
            secret.name_any()
        )));
    }
    let uid = obj.uid();
    let foreign = secret
        .owner_references()
        .iter()
        .find(|o| o.controller == Some(true) && Some(&o.uid) != uid.as_ref());
    match foreign {
        Some(owner) => Err(Error::Secret(format!(
            "Secret {}/{} is controlled by {} {}; writeConnectionSecretToRef must name a Secret \
             this object may own",
            secret.namespace().unwrap_or_default(),
            secret.name_any(),
            owner.kind,
            owner.name
        ))),
        None if !managed_by_operator(meta) => Ok(Some(format!(
            "Secret {}/{} exists and was not created by the operator (it lacks the label {}={}); \
             it is left alone: point writeConnectionSecretToRef at another name, or delete that \
             Secret or add the label to hand it over to this object",
            secret.namespace().unwrap_or_default(),
            secret.name_any(),
            MANAGED_BY_LABEL.0,
            MANAGED_BY_LABEL.1
        ))),
        None => Ok(None),
    }
}

/// Whether `meta` carries [`MANAGED_BY_LABEL`].
fn managed_by_operator(meta: &ObjectMeta) -> bool {
    meta.labels
        .as_ref()
        .and_then(|l| l.get(MANAGED_BY_LABEL.0))
        .is_some_and(|v| v == MANAGED_BY_LABEL.1)
}

/// Whether `writeConnectionSecretToRef` names a Secret this object may not write, checked
/// before any cloud call so that no endpoint is allocated (and exposed) for a Secret that
/// cannot receive it: `Ok(Some(message))` for `SecretExists`, `Err` for `SecretNotUsable` (see
/// [`check_secret_owner`]).
pub async fn secret_refusal(ctx: &Context, obj: &RdsConnection) -> Result<Option<String>, Error> {
    let Some(target) = &obj.spec.write_connection_secret_to_ref else {
        return Ok(None);
    };
    let api: Api<Secret> = ctx.api(&obj.namespace().unwrap_or_default());
    check_secret_owner(api.get_opt(&target.name).await?.as_ref(), obj)
}

/// Creates or updates the endpoint Secret named by `writeConnectionSecretToRef`, owned by
/// `obj` (controller reference), by server-side apply; a Secret the operator did not create is
/// left alone ([`SecretWrite::Refused`]).
pub async fn apply_secret(
    ctx: &Context,
    obj: &RdsConnection,
    endpoint: &EndpointView,
    port: i32,
) -> Result<SecretWrite, Error> {
    let Some(target) = &obj.spec.write_connection_secret_to_ref else {
        return Ok(SecretWrite::Written);
    };
    let namespace = obj.namespace().unwrap_or_default();
    let api: Api<Secret> = ctx.api(&namespace);
    if let Some(message) = check_secret_owner(api.get_opt(&target.name).await?.as_ref(), obj)? {
        return Ok(SecretWrite::Refused { message });
    }
    let owner = obj.controller_owner_ref(&()).ok_or_else(|| {
        Error::Secret("the RdsConnection has no uid yet, so it cannot own a Secret".into())
    })?;
    let secret = Secret {
        metadata: ObjectMeta {
            name: Some(target.name.clone()),
            namespace: Some(namespace),
            labels: Some(BTreeMap::from([(
                MANAGED_BY_LABEL.0.to_owned(),
                MANAGED_BY_LABEL.1.to_owned(),
            )])),
            owner_references: Some(vec![owner]),
            ..ObjectMeta::default()
        },
        data: Some(secret_data(endpoint, port)),
        type_: Some("Opaque".to_owned()),
        ..Secret::default()
    };
    api.patch(
        &target.name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&secret),
    )
    .await?;
    Ok(SecretWrite::Written)
}

/// Re-applies the Secret from what the status recorded (Ready, nothing to read).
pub async fn secret_from_status(ctx: &Context, obj: &RdsConnection) -> Result<SecretWrite, Error> {
    let Some(status) = &obj.status else {
        return Ok(SecretWrite::Written);
    };
    let Some(connection_string) = &status.connection_string else {
        return Ok(SecretWrite::Written);
    };
    let endpoint = EndpointView {
        connection_string: connection_string.clone(),
        port: status.port,
        ip_address: status.ip_address.clone(),
    };
    apply_secret(ctx, obj, &endpoint, status.port.unwrap_or(obj.spec.port)).await
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;

    use super::*;
    use crate::controller::credentials::CREDENTIALS_IN_USE;
    use crate::controller::rds_connection::report::tests::endpoint;
    use crate::crd::RdsConnectionSpec;

    #[test]
    fn secret_holds_host_port_and_endpoint() {
        let data = secret_data(&endpoint(), 3306);
        let get = |k: &str| String::from_utf8(data[k].0.clone()).expect("utf8");
        assert_eq!(get("host"), "myapp-db.mysql.rds.aliyuncs.com");
        assert_eq!(get("port"), "3306");
        assert_eq!(get("endpoint"), "myapp-db.mysql.rds.aliyuncs.com:3306");
        assert_eq!(data.len(), 3);
    }

    #[test]
    fn a_secret_controlled_by_someone_else_is_refused() {
        let spec: RdsConnectionSpec = serde_json::from_value(serde_json::json!({
            "region": "cn-hangzhou", "dbInstanceId": "rm-test0001",
            "connectionStringPrefix": "myapp-db", "port": 3306
        }))
        .expect("spec");
        let mut obj = RdsConnection::new("conn", spec);
        obj.metadata.uid = Some("uid-1".into());
        let ours = || {
            Some(BTreeMap::from([(
                MANAGED_BY_LABEL.0.to_owned(),
                MANAGED_BY_LABEL.1.to_owned(),
            )]))
        };
        let owned_by = |uid: &str, controller: bool| Secret {
            metadata: ObjectMeta {
                name: Some("endpoint".into()),
                labels: ours(),
                owner_references: Some(vec![OwnerReference {
                    api_version: "v1".into(),
                    kind: "Other".into(),
                    name: "other".into(),
                    uid: uid.into(),
                    controller: Some(controller),
                    block_owner_deletion: None,
                }]),
                ..ObjectMeta::default()
            },
            ..Secret::default()
        };
        let may_write =
            |secret: Option<&Secret>| matches!(check_secret_owner(secret, &obj), Ok(None));
        assert!(may_write(None), "absent: we create it");
        assert!(may_write(Some(&owned_by("uid-1", true))), "ours");
        assert!(
            may_write(Some(&owned_by("uid-2", false))),
            "ours, with a non-controller owner besides"
        );
        let labelled = Secret {
            metadata: ObjectMeta {
                labels: ours(),
                ..ObjectMeta::default()
            },
            ..Secret::default()
        };
        assert!(
            may_write(Some(&labelled)),
            "written by the operator (its owner gone)"
        );
        let users = Secret {
            metadata: ObjectMeta {
                name: Some("endpoint".into()),
                namespace: Some("apps".into()),
                labels: Some(BTreeMap::from([("app".into(), "web".into())])),
                ..ObjectMeta::default()
            },
            ..Secret::default()
        };
        let message = check_secret_owner(Some(&users), &obj)
            .expect("not an error")
            .expect("the user's Secret is refused");
        assert!(message.contains("apps/endpoint"), "{message}");
        assert!(message.contains(MANAGED_BY_LABEL.0), "{message}");
        let mut other_value = labelled.clone();
        other_value.metadata.labels = Some(BTreeMap::from([(
            MANAGED_BY_LABEL.0.to_owned(),
            "helm".to_owned(),
        )]));
        assert!(
            !may_write(Some(&other_value)),
            "managed by another tool is not ours"
        );
        let err = check_secret_owner(Some(&owned_by("uid-2", true)), &obj).expect_err("foreign");
        assert_eq!(err.reason(), "SecretNotUsable");
        let credentials = Secret {
            metadata: ObjectMeta {
                name: Some("alicloud-credentials".into()),
                labels: Some(BTreeMap::from([(CREDENTIALS_IN_USE.into(), "true".into())])),
                finalizers: Some(vec![CREDENTIALS_IN_USE.into()]),
                ..ObjectMeta::default()
            },
            ..Secret::default()
        };
        let err = check_secret_owner(Some(&credentials), &obj)
            .expect_err("another object's credentials are never taken over");
        assert_eq!(err.reason(), "SecretNotUsable");
    }
}
