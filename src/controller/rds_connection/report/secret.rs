//! The endpoint Secret: `host`, `port` and `endpoint` of the public endpoint, in the Secret
//! `writeConnectionSecretToRef` names, owned by the RdsConnection.

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

/// Refuses to write into a Secret controlled by another object, or into a credentials Secret
/// objects use: taking it over would hand its lifetime to this RdsConnection, and the garbage
/// collector would delete it with this object.
pub fn check_secret_owner(existing: Option<&Secret>, obj: &RdsConnection) -> Result<(), Error> {
    let Some(secret) = existing else {
        return Ok(());
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
        None => Ok(()),
    }
}

/// Creates or updates the endpoint Secret named by `writeConnectionSecretToRef`, owned by
/// `obj` (controller reference), by server-side apply.
pub async fn apply_secret(
    ctx: &Context,
    obj: &RdsConnection,
    endpoint: &EndpointView,
    port: i32,
) -> Result<(), Error> {
    let Some(target) = &obj.spec.write_connection_secret_to_ref else {
        return Ok(());
    };
    let namespace = obj.namespace().unwrap_or_default();
    let api: Api<Secret> = ctx.api(&namespace);
    check_secret_owner(api.get_opt(&target.name).await?.as_ref(), obj)?;
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
    Ok(())
}

/// Re-applies the Secret from what the status recorded (Ready, nothing to read).
pub async fn secret_from_status(ctx: &Context, obj: &RdsConnection) -> Result<(), Error> {
    let Some(status) = &obj.status else {
        return Ok(());
    };
    let Some(connection_string) = &status.connection_string else {
        return Ok(());
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
        let owned_by = |uid: &str, controller: bool| Secret {
            metadata: ObjectMeta {
                name: Some("endpoint".into()),
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
        assert!(
            check_secret_owner(None, &obj).is_ok(),
            "absent: we create it"
        );
        assert!(
            check_secret_owner(Some(&Secret::default()), &obj).is_ok(),
            "unowned: we take it"
        );
        assert!(
            check_secret_owner(Some(&owned_by("uid-1", true)), &obj).is_ok(),
            "ours"
        );
        assert!(
            check_secret_owner(Some(&owned_by("uid-2", false)), &obj).is_ok(),
            "non-controller owner"
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
