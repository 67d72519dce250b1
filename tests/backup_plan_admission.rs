//! Invalid BackupPlan specs are rejected by the real kube-apiserver (OpenAPI schema and CEL
//! rules of the CRD), with a message naming the problem. No controller runs here.

use alicloud_db_operator::crd::BackupPlan;
use kube::Api;
use kube::api::{ApiResource, DynamicObject, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

/// A valid BackupPlan as JSON.
fn valid(name: &str) -> Value {
    json!({
        "apiVersion": "db.alicloud.dev/v1alpha1",
        "kind": "BackupPlan",
        "metadata": {"name": name},
        "spec": {
            "region": "cn-hangzhou",
            "databaseType": "MySQL",
            "instanceClass": "micro",
            "backupMethod": "logical",
            "source": {
                "instanceType": "RDS",
                "region": "cn-hangzhou",
                "instanceId": "rm-bp1test0001",
                "userName": "backup",
                "passwordSecretRef": {"name": "db-password", "key": "password"}
            },
            "schedule": {"weekdays": ["Monday"], "startTime": "14:22"}
        }
    })
}

/// `valid` with `change` applied to `spec` (a JSON merge: `null` removes a field).
fn with(name: &str, change: Value) -> Value {
    let mut obj = valid(name);
    merge(&mut obj["spec"], &change);
    obj
}

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

async fn api() -> (Api<DynamicObject>, String) {
    let plane = alicloud_testenv::shared();
    let client = plane.client().await;
    let ns = plane.create_namespace("bp-admission").await;
    let resource = ApiResource::erase::<BackupPlan>(&());
    (Api::namespaced_with(client, &ns, &resource), ns)
}

#[tokio::test(flavor = "multi_thread")]
async fn invalid_specs_are_rejected_at_admission_with_a_message_naming_the_problem() {
    let (api, _ns) = api().await;
    let cases: Vec<(&str, Value, &str)> = vec![
        ("bad-region", json!({"region": "Hangzhou"}), "region"),
        (
            "bad-enum",
            json!({"databaseType": "Sybase"}),
            "databaseType",
        ),
        (
            "bad-class",
            json!({"instanceClass": "huge"}),
            "instanceClass",
        ),
        (
            "sub-no-period",
            json!({"payType": "Subscription"}),
            "payType Subscription requires period and usedTime",
        ),
        (
            "period-postpay",
            json!({"period": "Month", "usedTime": 1}),
            "period and usedTime apply only to payType Subscription",
        ),
        (
            "year-too-long",
            json!({"payType": "Subscription", "period": "Year", "usedTime": 6}),
            "usedTime is 1..5 when period is Year",
        ),
        (
            "bad-start",
            json!({"schedule": {"weekdays": ["Monday"], "startTime": "25:00"}}),
            "startTime",
        ),
        (
            "no-weekdays",
            json!({"schedule": {"weekdays": [], "startTime": "10:00"}}),
            "weekdays",
        ),
        (
            "bad-weekday",
            json!({"schedule": {"weekdays": ["Funday"], "startTime": "10:00"}}),
            "weekdays",
        ),
        (
            "retention-order",
            json!({"retention": {"backupRetentionDays": 100, "infrequentAccessDays": 50, "archiveDays": 200}}),
            "archiveDays must be less than retention.backupRetentionDays",
        ),
        (
            "rds-no-id",
            json!({"source": {"instanceId": null}}),
            "source.instanceId is required",
        ),
        (
            "user-no-password",
            json!({"source": {"passwordSecretRef": null}}),
            "source.userName and source.passwordSecretRef go together",
        ),
        (
            "no-user",
            json!({"source": {"userName": null, "passwordSecretRef": null}}),
            "source.userName and source.passwordSecretRef are required",
        ),
        (
            "pg-no-db",
            json!({"databaseType": "PostgreSQL"}),
            "source.databaseName is required for PostgreSQL and MongoDB",
        ),
        (
            "log-interval-logical",
            json!({"backupLogIntervalSeconds": 60}),
            "backupLogIntervalSeconds applies only to backupMethod physical",
        ),
        (
            "drds-pay-as-you-go",
            json!({"databaseType": "DRDS"}),
            "DBS does not sell pay-as-you-go plans for DRDS",
        ),
        (
            "bad-plan-id",
            json!({"backupPlanId": "not-a-plan"}),
            "backupPlanId",
        ),
        (
            "bad-port",
            json!({"source": {"instanceType": "Other", "host": "10.0.0.1", "port": 70000, "region": null, "instanceId": null}}),
            "port",
        ),
    ];
    assert!(cases.len() >= 10);
    let mut failures = Vec::new();
    for (name, change, expected) in &cases {
        let obj: DynamicObject =
            serde_json::from_value(with(name, change.clone())).expect("a DynamicObject");
        match api.create(&PostParams::default(), &obj).await {
            Ok(_) => failures.push(format!("{name}: accepted")),
            Err(kube::Error::Api(e)) if e.code == 422 && e.message.contains(expected) => {}
            Err(e) => failures.push(format!(
                "{name}: expected a 422 naming {expected:?}, got {e}"
            )),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[tokio::test(flavor = "multi_thread")]
async fn immutable_fields_cannot_change_on_update() {
    let (api, _ns) = api().await;
    let base = with(
        "immutable",
        json!({"backupPlanId": "dbsabc12345", "backupObjects": [{"databaseName": "app"}]}),
    );
    let obj: DynamicObject = serde_json::from_value(base).expect("a DynamicObject");
    api.create(&PostParams::default(), &obj)
        .await
        .expect("a valid plan is accepted");
    let cases: Vec<(Value, &str)> = vec![
        (
            json!({"spec": {"region": "cn-shanghai"}}),
            "region is immutable",
        ),
        (
            json!({"spec": {"backupPlanId": "dbsother1234"}}),
            "backupPlanId cannot be changed or removed once set",
        ),
        (
            json!({"spec": {"backupPlanId": null}}),
            "backupPlanId cannot be changed or removed once set",
        ),
        (
            json!({"spec": {"databaseType": "MariaDB"}}),
            "databaseType is immutable",
        ),
        (
            json!({"spec": {"backupMethod": "physical"}}),
            "backupMethod is immutable",
        ),
        (
            json!({"spec": {"payType": "Subscription", "period": "Month", "usedTime": 1}}),
            "payType is immutable",
        ),
        (
            json!({"spec": {"schedule": null}}),
            "schedule cannot be removed once set",
        ),
        (
            json!({"spec": {"backupObjects": null}}),
            "backupObjects cannot be removed once set",
        ),
        (
            json!({"spec": {"storage": {"type": "System"}}}),
            "storage cannot be added or removed after creation",
        ),
        (
            json!({"spec": {"enableBackupLog": true}}),
            "enableBackupLog is immutable",
        ),
    ];
    let mut failures = Vec::new();
    for (patch, expected) in &cases {
        match api
            .patch("immutable", &PatchParams::default(), &Patch::Merge(patch))
            .await
        {
            Ok(_) => failures.push(format!("{patch}: accepted")),
            Err(kube::Error::Api(e)) if e.code == 422 && e.message.contains(expected) => {}
            Err(e) => failures.push(format!(
                "{patch}: expected a 422 naming {expected:?}, got {e}"
            )),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));

    // What has a Modify call stays changeable.
    let allowed = json!({"spec": {
        "schedule": {"weekdays": ["Tuesday", "Friday"], "startTime": "03:00"},
        "planName": "renamed",
        "retention": {"backupRetentionDays": 90, "infrequentAccessDays": 30, "archiveDays": 60},
        "source": {"instanceId": "rm-bp1test0002"},
        "backupObjects": [{"databaseName": "app"}, {"databaseName": "billing"}]
    }});
    api.patch(
        "immutable",
        &PatchParams::default(),
        &Patch::Merge(&allowed),
    )
    .await
    .expect("schedule, name, retention, source and backup object changes are accepted");

    // An object created without backupPlanId may name a plan later while it has none (the
    // repair after a lost status), but not once it has a plan of its own: that plan would be
    // orphaned.
    let created: DynamicObject =
        serde_json::from_value(with("created", json!({}))).expect("a DynamicObject");
    api.create(&PostParams::default(), &created)
        .await
        .expect("a valid plan is accepted");
    let status = json!({"status": {"backupPlanId": "dbsmine12345"}});
    api.patch_status("created", &PatchParams::default(), &Patch::Merge(&status))
        .await
        .expect("status written");
    match api
        .patch(
            "created",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"backupPlanId": "dbsother1234"}})),
        )
        .await
    {
        Err(kube::Error::Api(e))
            if e.code == 422 && e.message.contains("orphan the plan this object created") => {}
        other => panic!(
            "adding another backupPlanId to an object with a plan: expected a 422, got {other:?}"
        ),
    }
    api.patch(
        "created",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"backupPlanId": "dbsmine12345"}})),
    )
    .await
    .expect("naming the plan the object already has is accepted");

    let fresh: DynamicObject =
        serde_json::from_value(with("fresh", json!({}))).expect("a DynamicObject");
    api.create(&PostParams::default(), &fresh)
        .await
        .expect("a valid plan is accepted");
    api.patch(
        "fresh",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"backupPlanId": "dbsother1234"}})),
    )
    .await
    .expect("an object with no plan yet may name one");
}
