//! The catalogue of bad input: invalid specs and situations, each either rejected by the real
//! kube-apiserver (schema and CEL rules of the CRDs, `kubectl apply`'s strict field validation)
//! with a message naming the problem, or shown as `Stalled` with a specific reason and a
//! message naming the culprit. Rejected ones cause no cloud call at all; stalled ones make no
//! mutating call.

#[allow(dead_code)]
mod common;

use std::time::Duration;

use alicloud_db_operator::crd::{BackupPlan, RdsConnection};
use kube::api::{Api, ApiResource, DynamicObject, Patch, PatchParams};
use reqwest::Method;
use serde_json::{Value, json};

use common::emulator::sts_credentials;
use common::{
    ACCESS_KEY_ID, ACCESS_KEY_SECRET, CREDENTIALS, Controller, REGION, Setup, World, condition,
    is_ready,
};

/// What must happen to a case's object.
#[derive(Debug)]
enum Expect {
    /// The apiserver refuses it; its message contains this.
    Rejected(&'static str),
    /// The operator shows `Stalled=True` with this reason, and a `Ready` message containing the
    /// second string.
    Stalled(&'static str, String),
}

/// One bad input: an object (BackupPlan or RdsConnection, as JSON), optionally an update of
/// it (the object is then created paused, so that it makes no cloud call), and the outcome.
struct Case {
    name: &'static str,
    object: Value,
    update: Option<Value>,
    expect: Expect,
}

/// RDS instances of the world: the samples' one, and one per RdsConnection situation.
const TAKEN_ELSEWHERE: &str = "rm-bp1badinput002";
const TAKER: &str = "rm-bp1badinput003";
const BY_HAND: &str = "rm-bp1badinput004";
const SHARED: &str = "rm-bp1badinput005";
const LOCKED: &str = "rm-bp1badinput006";
/// An instance RDS does not know.
const UNKNOWN_INSTANCE: &str = "rm-bp1nothere01";
/// The plan name two plans want.
const SHARED_PLAN_NAME: &str = "bad-input-shared-plan";

/// `target` with `change` merged in (JSON merge patch: `null` removes a field).
fn merge(target: &mut Value, change: &Value) {
    match (target, change) {
        (Value::Object(t), Value::Object(c)) => {
            for (k, v) in c {
                if v.is_null() {
                    t.remove(k);
                } else {
                    merge(t.entry(k.clone()).or_insert(Value::Null), v);
                }
            }
        }
        (t, c) => *t = c.clone(),
    }
}

/// A valid BackupPlan `name` (operator credentials, the world's password Secret), with
/// `change` merged into its spec.
fn plan(name: &str, change: Value) -> Value {
    let mut obj = json!({
        "apiVersion": "db.alicloud.dev/v1alpha1",
        "kind": "BackupPlan",
        "metadata": {"name": name},
        "spec": {
            "region": REGION,
            "databaseType": "MySQL",
            "instanceClass": "micro",
            "backupMethod": "logical",
            "source": {
                "instanceType": "RDS",
                "region": REGION,
                "instanceId": "rm-bp1test0001",
                "userName": "backup",
                "passwordSecretRef": {"name": "db-password", "key": "password"}
            },
            "schedule": {"weekdays": ["Monday"], "startTime": "14:22"}
        }
    });
    merge(&mut obj["spec"], &change);
    obj
}

/// The RDS instance of the RdsConnection `name`, its own: an instance is managed by one object
/// only (the others show `AlreadyManaged`, whatever else is wrong with them).
fn instance_of(name: &str) -> String {
    let id: String = name.chars().filter(char::is_ascii_alphanumeric).collect();
    format!("rm-{id}")
}

/// A valid RdsConnection `name` on an instance of its own (credentials Secret of the world),
/// with `change` merged into its spec.
fn conn(name: &str, change: Value) -> Value {
    let mut obj = json!({
        "apiVersion": "db.alicloud.dev/v1alpha1",
        "kind": "RdsConnection",
        "metadata": {"name": name},
        "spec": {
            "region": REGION,
            "dbInstanceId": instance_of(name),
            "connectionStringPrefix": format!("{name}-pub"),
            "port": 3306,
            "credentialsRef": {"name": CREDENTIALS},
            "writeConnectionSecretToRef": {"name": format!("{name}-endpoint")}
        }
    });
    merge(&mut obj["spec"], &change);
    obj
}

fn rejected(name: &'static str, object: Value, message: &'static str) -> Case {
    Case {
        name,
        object,
        update: None,
        expect: Expect::Rejected(message),
    }
}

fn rejected_update(
    name: &'static str,
    object: Value,
    update: Value,
    message: &'static str,
) -> Case {
    Case {
        name,
        object,
        update: Some(update),
        expect: Expect::Rejected(message),
    }
}

fn stalled(name: &'static str, object: Value, reason: &'static str, says: &str) -> Case {
    Case {
        name,
        object,
        update: None,
        expect: Expect::Stalled(reason, says.to_owned()),
    }
}

/// Cases the apiserver refuses: schema, CEL rules, strict field validation, immutability.
fn admission_cases() -> Vec<Case> {
    vec![
        rejected(
            "bp-region",
            plan("bp-region", json!({"region": "Hangzhou"})),
            "spec.region",
        ),
        rejected(
            "bp-no-region",
            plan("bp-no-region", json!({"region": null})),
            "spec.region: Required value",
        ),
        rejected(
            "bp-engine",
            plan("bp-engine", json!({"databaseType": "Sybase"})),
            "spec.databaseType",
        ),
        rejected(
            "bp-sub-no-period",
            plan("bp-sub-no-period", json!({"payType": "Subscription"})),
            "payType Subscription requires period and usedTime",
        ),
        rejected(
            "bp-start-time",
            plan(
                "bp-start-time",
                json!({"schedule": {"weekdays": ["Monday"], "startTime": "25:00"}}),
            ),
            "spec.schedule.startTime",
        ),
        rejected(
            "bp-no-weekday",
            plan(
                "bp-no-weekday",
                json!({"schedule": {"weekdays": [], "startTime": "10:00"}}),
            ),
            "spec.schedule.weekdays",
        ),
        rejected(
            "bp-retention",
            plan(
                "bp-retention",
                json!({"retention": {"backupRetentionDays": 100, "infrequentAccessDays": 50, "archiveDays": 200}}),
            ),
            "archiveDays must be less than retention.backupRetentionDays",
        ),
        rejected(
            "bp-rds-no-id",
            plan("bp-rds-no-id", json!({"source": {"instanceId": null}})),
            "source.instanceId is required",
        ),
        rejected(
            "bp-user-no-password",
            plan(
                "bp-user-no-password",
                json!({"source": {"passwordSecretRef": null}}),
            ),
            "source.userName and source.passwordSecretRef go together",
        ),
        rejected(
            "bp-pg-no-db",
            plan("bp-pg-no-db", json!({"databaseType": "PostgreSQL"})),
            "source.databaseName is required for PostgreSQL and MongoDB",
        ),
        rejected(
            "bp-drds-postpay",
            plan("bp-drds-postpay", json!({"databaseType": "DRDS"})),
            "DBS does not sell pay-as-you-go plans for DRDS",
        ),
        rejected(
            "bp-plan-id",
            plan("bp-plan-id", json!({"backupPlanId": "not-a-plan"})),
            "spec.backupPlanId",
        ),
        rejected(
            "bp-creds-other-ns",
            plan(
                "bp-creds-other-ns",
                json!({"credentialsRef": {"name": CREDENTIALS, "namespace": "default"}}),
            ),
            "spec.credentialsRef.namespace",
        ),
        rejected(
            "bp-password-other-ns",
            plan(
                "bp-password-other-ns",
                json!({"source": {"passwordSecretRef": {"name": "db-password", "key": "password", "namespace": "default"}}}),
            ),
            "spec.source.passwordSecretRef.namespace",
        ),
        rejected(
            "bp-creds-empty-name",
            plan(
                "bp-creds-empty-name",
                json!({"credentialsRef": {"name": ""}}),
            ),
            "spec.credentialsRef.name",
        ),
        rejected(
            "bp-password-no-key",
            plan(
                "bp-password-no-key",
                json!({"source": {"passwordSecretRef": {"name": "db-password", "key": null}}}),
            ),
            "spec.source.passwordSecretRef.key: Required value",
        ),
        rejected(
            "rc-prefix-short",
            conn("rc-prefix-short", json!({"connectionStringPrefix": "abcd"})),
            "spec.connectionStringPrefix",
        ),
        rejected(
            "rc-prefix-case",
            conn(
                "rc-prefix-case",
                json!({"connectionStringPrefix": "MyPrefix1"}),
            ),
            "spec.connectionStringPrefix",
        ),
        rejected("rc-port", conn("rc-port", json!({"port": 80})), "spec.port"),
        rejected(
            "rc-instance-id",
            conn("rc-instance-id", json!({"dbInstanceId": "RM_123"})),
            "spec.dbInstanceId",
        ),
        rejected(
            "rc-region",
            conn("rc-region", json!({"region": "Hangzhou"})),
            "spec.region",
        ),
        rejected(
            "rc-network",
            conn("rc-network", json!({"instanceNetworkType": "Hybrid"})),
            "spec.instanceNetworkType",
        ),
        rejected(
            "rc-secret-other-ns",
            conn(
                "rc-secret-other-ns",
                json!({"writeConnectionSecretToRef": {"name": "x", "namespace": "default"}}),
            ),
            "spec.writeConnectionSecretToRef.namespace",
        ),
        rejected_update(
            "rc-region-change",
            conn("rc-region-change", json!({})),
            json!({"region": "cn-shanghai"}),
            "region is immutable",
        ),
        rejected_update(
            "rc-instance-change",
            conn("rc-instance-change", json!({})),
            json!({"dbInstanceId": "rm-bp1other0001"}),
            "dbInstanceId is immutable",
        ),
        rejected_update(
            "rc-prefix-rename-short",
            conn("rc-prefix-rename-short", json!({})),
            json!({"connectionStringPrefix": "short1"}),
            "a changed connectionStringPrefix must be 8..40",
        ),
        rejected_update(
            "bp-engine-change",
            plan("bp-engine-change", json!({})),
            json!({"databaseType": "MariaDB"}),
            "databaseType is immutable",
        ),
        rejected_update(
            "bp-method-change",
            plan("bp-method-change", json!({})),
            json!({"backupMethod": "physical"}),
            "backupMethod is immutable",
        ),
    ]
}

/// Situations the operator reports as Stalled: Secrets, credentials, the cloud's inventory.
/// `shared_plan_id` is the plan of the object `shared-name-base`.
fn stalled_cases(shared_plan_id: &str) -> Vec<Case> {
    let creds = |secret: &str| json!({"credentialsRef": {"name": secret}});
    vec![
        stalled(
            "bp-password-secret-missing",
            plan(
                "bp-password-secret-missing",
                json!({"source": {"passwordSecretRef": {"name": "no-such-password", "key": "password"}}}),
            ),
            "SecretNotUsable",
            "no-such-password",
        ),
        stalled(
            "bp-password-wrong-key",
            plan(
                "bp-password-wrong-key",
                json!({"source": {"passwordSecretRef": {"name": "db-password", "key": "passwd"}}}),
            ),
            "SecretNotUsable",
            "passwd",
        ),
        stalled(
            "bp-creds-missing",
            plan("bp-creds-missing", creds("no-such-creds")),
            "SecretNotUsable",
            "no-such-creds",
        ),
        stalled(
            "bp-creds-no-secret-key",
            plan("bp-creds-no-secret-key", creds("creds-no-secret-key")),
            "SecretNotUsable",
            "accessKeySecret",
        ),
        stalled(
            "bp-creds-empty-id",
            plan("bp-creds-empty-id", creds("creds-empty-id")),
            "SecretNotUsable",
            "accessKeyId",
        ),
        stalled(
            "bp-creds-name-with-namespace",
            plan(
                "bp-creds-name-with-namespace",
                creds(&format!("default/{CREDENTIALS}")),
            ),
            "SecretNotUsable",
            "default/alicloud-credentials",
        ),
        stalled(
            "bp-creds-unknown-key",
            plan("bp-creds-unknown-key", creds("creds-unknown-key")),
            "InvalidCredentials",
            "InvalidAccessKeyId.NotFound",
        ),
        stalled(
            "bp-creds-wrong-secret",
            plan("bp-creds-wrong-secret", creds("creds-wrong-secret")),
            "InvalidCredentials",
            "SignatureDoesNotMatch",
        ),
        stalled(
            "bp-sts-expired",
            plan("bp-sts-expired", creds("creds-sts-expired")),
            "InvalidCredentials",
            "InvalidSecurityToken.Expired",
        ),
        stalled(
            "bp-sts-no-token",
            plan("bp-sts-no-token", creds("creds-sts-no-token")),
            "InvalidCredentials",
            "InvalidSecurityToken.Malformed",
        ),
        stalled(
            "bp-sts-wrong-token",
            plan("bp-sts-wrong-token", creds("creds-sts-wrong-token")),
            "InvalidCredentials",
            "InvalidSecurityToken.Mismatch",
        ),
        stalled(
            "bp-plan-name-longer-than-sixty-four-characters-with-its-namespace",
            plan(
                "bp-plan-name-longer-than-sixty-four-characters-with-its-namespace",
                json!({}),
            ),
            "InvalidSpec",
            "spec.planName",
        ),
        stalled(
            "bp-empty-table",
            plan(
                "bp-empty-table",
                json!({"backupObjects": [{"databaseName": "orders", "tableIncludes": [""]}]}),
            ),
            "InvalidSpec",
            "backupObjects[0]",
        ),
        stalled(
            "bp-unknown-plan-id",
            plan(
                "bp-unknown-plan-id",
                json!({"backupPlanId": "dbs1nothere1"}),
            ),
            "CloudPlanMissing",
            "dbs1nothere1",
        ),
        stalled(
            "bp-plan-name-taken",
            plan(
                "bp-plan-name-taken",
                json!({"planName": SHARED_PLAN_NAME, "source": {"instanceId": "rm-bp1other0001"}}),
            ),
            "PlanNameTaken",
            SHARED_PLAN_NAME,
        ),
        stalled(
            "bp-plan-id-managed-twice",
            plan(
                "bp-plan-id-managed-twice",
                json!({"backupPlanId": shared_plan_id}),
            ),
            "AlreadyManaged",
            "shared-name-base",
        ),
        stalled(
            "rc-unknown-instance",
            conn(
                "rc-unknown-instance",
                json!({"dbInstanceId": UNKNOWN_INSTANCE}),
            ),
            "InstanceNotFound",
            UNKNOWN_INSTANCE,
        ),
        stalled(
            "rc-prefix-taken",
            conn(
                "rc-prefix-taken",
                json!({"dbInstanceId": TAKER, "connectionStringPrefix": "takenpfx01"}),
            ),
            "ConnectionStringTaken",
            "takenpfx01",
        ),
        stalled(
            "rc-endpoint-by-hand",
            conn("rc-endpoint-by-hand", json!({"dbInstanceId": BY_HAND})),
            "EndpointExists",
            "byhandpfx01",
        ),
        stalled(
            "rc-instance-managed-twice",
            conn("rc-instance-managed-twice", json!({"dbInstanceId": SHARED})),
            "AlreadyManaged",
            "rc-shared-base",
        ),
        stalled(
            "rc-instance-locked",
            conn("rc-instance-locked", json!({"dbInstanceId": LOCKED})),
            "InstanceLocked",
            "LockByExpiration",
        ),
        stalled(
            "rc-ports-clash",
            conn("rc-ports-clash", json!({"babelfishPort": 3306})),
            "InvalidSpec",
            "babelfishPort",
        ),
        stalled(
            "rc-double-hyphen",
            conn(
                "rc-double-hyphen",
                json!({"connectionStringPrefix": "double--hyphen"}),
            ),
            "InvalidSpec",
            "--",
        ),
        stalled(
            "rc-writes-its-credentials",
            conn(
                "rc-writes-its-credentials",
                json!({"writeConnectionSecretToRef": {"name": CREDENTIALS}}),
            ),
            "InvalidSpec",
            "writeConnectionSecretToRef",
        ),
        stalled(
            "rc-secret-exists",
            conn(
                "rc-secret-exists",
                json!({"writeConnectionSecretToRef": {"name": "not-ours"}}),
            ),
            "SecretExists",
            "not-ours",
        ),
        stalled(
            "rc-writes-used-credentials",
            conn(
                "rc-writes-used-credentials",
                json!({"credentialsRef": {"name": "creds-copy"}, "writeConnectionSecretToRef": {"name": CREDENTIALS}}),
            ),
            "SecretNotUsable",
            "holds credentials that objects use",
        ),
        stalled(
            "rc-creds-missing",
            conn("rc-creds-missing", creds("no-such-creds")),
            "SecretNotUsable",
            "no-such-creds",
        ),
        stalled(
            "rc-wrong-secret",
            conn("rc-wrong-secret", creds("creds-wrong-secret")),
            "InvalidCredentials",
            "SignatureDoesNotMatch",
        ),
        stalled(
            "rc-sts-expired",
            conn("rc-sts-expired", creds("creds-sts-expired")),
            "InvalidCredentials",
            "InvalidSecurityToken.Expired",
        ),
    ]
}

/// The dynamic API of the case object's kind in the world's namespace.
fn api_for(world: &World, object: &Value) -> Api<DynamicObject> {
    let resource = match object["kind"].as_str() {
        Some("BackupPlan") => ApiResource::erase::<BackupPlan>(&()),
        Some("RdsConnection") => ApiResource::erase::<RdsConnection>(&()),
        other => panic!("unknown kind {other:?}"),
    };
    Api::namespaced_with(world.client.clone(), &world.ns, &resource)
}

/// Creates `object` as `kubectl apply --server-side` does (strict field validation).
async fn apply(world: &World, object: &Value) -> Result<(), kube::Error> {
    let name = object["metadata"]["name"].as_str().expect("a name");
    let params = PatchParams::apply("bad-input-test").validation_strict();
    api_for(world, object)
        .patch(name, &params, &Patch::Apply(object))
        .await
        .map(drop)
}

/// Why the apiserver refused, or that it accepted.
fn refusal(result: Result<(), kube::Error>) -> Result<String, String> {
    match result {
        Ok(()) => Err("accepted".into()),
        Err(kube::Error::Api(e)) => Ok(e.message),
        Err(e) => Err(format!("not an API refusal: {e}")),
    }
}

/// A Secret `name` with `data` (string values).
async fn secret(world: &World, name: &str, data: Value) {
    let secret = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name}, "stringData": data});
    let params = PatchParams::apply("bad-input-test");
    world
        .secrets()
        .patch(name, &params, &Patch::Apply(&secret))
        .await
        .unwrap_or_else(|e| panic!("Secret {name}: {e}"));
}

/// `(Stalled reason, Ready message)` of the case's object, once Stalled.
async fn stalled_reason(world: &World, object: &Value) -> Result<(String, String), String> {
    let name = object["metadata"]["name"].as_str().expect("a name");
    let (stalled, ready) = if object["kind"] == "BackupPlan" {
        let o: BackupPlan = world.get(name).await;
        (condition(&o, "Stalled"), condition(&o, "Ready"))
    } else {
        let o: RdsConnection = world.get(name).await;
        (condition(&o, "Stalled"), condition(&o, "Ready"))
    };
    match stalled {
        Some(c) if c.status == "True" => {
            Ok((c.reason, ready.map(|r| r.message).unwrap_or_default()))
        }
        other => Err(format!(
            "Stalled {:?}, Ready {:?}",
            other.map(|c| (c.status, c.reason)),
            ready.map(|c| (c.status, c.reason, c.message))
        )),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_bad_input_is_rejected_at_admission_or_stalled_with_a_specific_reason() {
    let world = World::start(
        "bad-input",
        Setup {
            controllers: vec![
                Controller::BackupPlan,
                Controller::RdsConnection,
                Controller::Credentials,
            ],
            instances: vec![TAKEN_ELSEWHERE.to_owned()],
            ..Setup::default()
        },
    )
    .await;

    // Admission: refused with a message naming the problem, and not one cloud call.
    let admission = admission_cases();
    let mut failures = Vec::new();
    for case in &admission {
        let Expect::Rejected(expected) = case.expect else {
            unreachable!()
        };
        let result = match &case.update {
            None => apply(&world, &case.object).await,
            Some(update) => {
                // The object before the bad update: valid, paused, so it calls nothing.
                let mut paused = case.object.clone();
                paused["metadata"]["annotations"] = json!({"db.alicloud.dev/paused": "true"});
                apply(&world, &paused)
                    .await
                    .unwrap_or_else(|e| panic!("{}: the valid object: {e}", case.name));
                api_for(&world, &case.object)
                    .patch(
                        case.name,
                        &PatchParams::default(),
                        &Patch::Merge(json!({"spec": update})),
                    )
                    .await
                    .map(drop)
            }
        };
        match refusal(result) {
            Ok(message) if message.contains(expected) => {}
            Ok(message) => failures.push(format!(
                "{}: refused, but not naming {expected:?}: {message}",
                case.name
            )),
            Err(seen) => failures.push(format!("{}: {seen}", case.name)),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // Give the controllers time to act on anything that slipped through.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        world.call_count(),
        0,
        "admission-rejected objects cause no cloud call: {:#?}",
        world.snapshot().calls
    );

    // The situations: Secrets, credentials, and what the cloud already holds.
    secret(
        &world,
        "creds-no-secret-key",
        json!({"accessKeyId": ACCESS_KEY_ID}),
    )
    .await;
    secret(
        &world,
        "creds-empty-id",
        json!({"accessKeyId": "", "accessKeySecret": ACCESS_KEY_SECRET}),
    )
    .await;
    secret(
        &world,
        "creds-unknown-key",
        json!({"accessKeyId": "LTAI-unknown-key", "accessKeySecret": ACCESS_KEY_SECRET}),
    )
    .await;
    secret(
        &world,
        "creds-wrong-secret",
        json!({"accessKeyId": ACCESS_KEY_ID, "accessKeySecret": "not-the-secret"}),
    )
    .await;
    // STS credentials that expire a second after they are issued (the emulator's cap).
    world
        .admin(
            Method::PUT,
            "/settings",
            json!({"stsMaxDurationSeconds": 1}),
        )
        .await;
    let (expired_id, expired_secret, expired_token) =
        sts_credentials(&world.emulator, "1234567890123456").await;
    world
        .admin(
            Method::PUT,
            "/settings",
            json!({"stsMaxDurationSeconds": 0}),
        )
        .await;
    secret(
        &world,
        "creds-sts-expired",
        json!({"accessKeyId": expired_id, "accessKeySecret": expired_secret, "securityToken": expired_token}),
    )
    .await;
    let (sts_id, sts_secret, _token) = sts_credentials(&world.emulator, "1234567890123456").await;
    let (_, _, other_token) = sts_credentials(&world.emulator, "1234567890123456").await;
    secret(
        &world,
        "creds-sts-no-token",
        json!({"accessKeyId": sts_id, "accessKeySecret": sts_secret}),
    )
    .await;
    secret(
        &world,
        "creds-sts-wrong-token",
        json!({"accessKeyId": sts_id, "accessKeySecret": sts_secret, "securityToken": other_token}),
    )
    .await;
    secret(&world, "not-ours", json!({"host": "someone-else"})).await;
    secret(
        &world,
        "creds-copy",
        json!({"accessKeyId": ACCESS_KEY_ID, "accessKeySecret": ACCESS_KEY_SECRET}),
    )
    .await;
    // Every RdsConnection's instance exists, but the one that must not.
    let mut instances: Vec<String> = stalled_cases("dbs-any")
        .iter()
        .map(|c| {
            c.object["spec"]["dbInstanceId"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        })
        .filter(|id| !id.is_empty() && id != UNKNOWN_INSTANCE)
        .collect();
    instances.sort();
    instances.dedup();
    for id in instances {
        world
            .admin(
                Method::POST,
                "/instances",
                json!({"region": REGION, "dbInstanceId": id}),
            )
            .await;
    }
    world
        .add_public_connection(TAKEN_ELSEWHERE, "takenpfx01")
        .await;
    world.add_public_connection(BY_HAND, "byhandpfx01").await;
    // RDS locks an instance (an overdue payment).
    world
        .admin(
            Method::PUT,
            &format!("/instances/{LOCKED}"),
            json!({"lockMode": "LockByExpiration"}),
        )
        .await;
    // The managers of a plan name and of an instance, Ready before the others arrive.
    let plan_base = plan("shared-name-base", json!({"planName": SHARED_PLAN_NAME}));
    let locked_base = plan("locked-base", json!({}));
    let conn_base = conn("rc-shared-base", json!({"dbInstanceId": SHARED}));
    for base in [&plan_base, &locked_base, &conn_base] {
        apply(&world, base).await.expect("a valid base object");
    }
    let shared: BackupPlan = world.wait_ready("shared-name-base").await;
    let locked: BackupPlan = world.wait_ready("locked-base").await;
    let _: RdsConnection = world.wait_ready("rc-shared-base").await;
    let shared_id = shared.status.and_then(|s| s.backup_plan_id).expect("id");
    let locked_id = locked.status.and_then(|s| s.backup_plan_id).expect("id");
    // DBS locks a plan (an overdue payment).
    world
        .admin(
            Method::PATCH,
            &format!("/plans/{locked_id}"),
            json!({"status": "locked"}),
        )
        .await;
    let mut cases = stalled_cases(&shared_id);
    cases.push(stalled(
        "locked-base",
        locked_base.clone(),
        "CloudPlanLocked",
        &locked_id,
    ));
    let calls_before = world.snapshot().calls.len();
    for case in &cases {
        if case.name != "locked-base" {
            apply(&world, &case.object)
                .await
                .unwrap_or_else(|e| panic!("{}: {e}", case.name));
        }
    }
    // Every case reaches its reason (all are polled together; a case may pass through another
    // state first, e.g. Reconciling while a retry is pending).
    let deadline = std::time::Instant::now() + Duration::from_secs(40);
    let mut pending: Vec<&Case> = cases.iter().collect();
    let mut last_seen = std::collections::BTreeMap::new();
    while !pending.is_empty() && std::time::Instant::now() < deadline {
        let mut still = Vec::new();
        for case in pending {
            let Expect::Stalled(reason, says) = &case.expect else {
                unreachable!()
            };
            match stalled_reason(&world, &case.object).await {
                Ok((r, message)) if r == *reason && message.contains(says.as_str()) => {}
                seen => {
                    last_seen.insert(case.name, format!("{seen:?}"));
                    still.push(case);
                }
            }
        }
        pending = still;
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let failures: Vec<String> = pending
        .iter()
        .map(|case| {
            format!(
                "{}: expected {:?}, last seen {}",
                case.name, case.expect, last_seen[case.name]
            )
        })
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    let total = admission.len() + cases.len();
    eprintln!(
        "{} rejected at admission, {} stalled: {total} bad inputs",
        admission.len(),
        cases.len()
    );
    assert!(total >= 30, "at least 30 bad inputs: {total}");

    // Stalled objects changed nothing in the cloud: no mutating call once they arrived, but the
    // allocations of the taken prefix, which only RDS can refuse (the prefix is another
    // instance's; tried again at each resync, as the other instance may let it go).
    let snapshot = world.snapshot();
    let mutating = [
        "CreateBackupPlan",
        "ConfigureBackupPlan",
        "StartBackupPlan",
        "StopBackupPlan",
        "ReleaseBackupPlan",
        "ModifyBackupStrategy",
        "ModifyBackupSourceEndpoint",
        "ModifyBackupObjects",
        "ModifyBackupPlanName",
        "ModifyStorageStrategy",
        "AllocateInstancePublicConnection",
        "ModifyDBInstanceConnectionString",
        "ReleaseInstanceConnection",
        "ReleaseInstancePublicConnection",
    ];
    let after: Vec<String> = snapshot.calls[calls_before..]
        .iter()
        .filter(|c| mutating.contains(&c.action.as_str()))
        .map(|c| format!("{} {} {}", c.action, c.access_key_id, c.outcome))
        .filter(|c| {
            c != &format!(
                "AllocateInstancePublicConnection {ACCESS_KEY_ID} InvalidConnectionString.Duplicate"
            )
        })
        .collect();
    assert!(
        after.is_empty(),
        "no other mutating call once the bad inputs arrived: {after:#?}; public endpoints: {:#?}",
        snapshot.public_connections(None)
    );
    assert_eq!(
        world.public_connections(TAKER).len(),
        0,
        "the taken prefix was not allocated"
    );
    // And every base stayed as it was.
    for name in ["shared-name-base", "rc-shared-base"] {
        if name.starts_with("rc") {
            let o: RdsConnection = world.get(name).await;
            assert!(is_ready(&o), "{name}: {:?}", o.status);
        } else {
            let o: BackupPlan = world.get(name).await;
            assert!(is_ready(&o), "{name}: {:?}", o.status);
        }
    }
}
